"""The six template renders: fields, limits, house format, text drawn literally."""

import json
import re
from pathlib import Path

import numpy as np
import pytest

from renders.api.fields import TextField
from renders.api.templates import TEMPLATES
from renders.models import RenderLog

from .. import media
from ..apidoc import url
from ..conftest import post, save
from ..media import changed

pytestmark = pytest.mark.django_db

FRAME = 1 / 25
REQUIRED = {
    "intro": {"full_name": "John Doe", "team": "Test Team", "role": "Developer"},
    "announcement": {"headline": "Big news"},
    "how-it-works": {"steps": ["Upload", "Pick", "Download"]},
    "persona": {"name": "Ada Lovelace"},
    "demo": {"title": "Demo"},
    "closing": {"cta": "Try it today"},
}
OPTIONAL_TEXT = {
    "announcement": {"subheadline": 200},
    "how-it-works": {"title": 80},
    "persona": {"title": 80, "quote": 240},
    "demo": {"caption": 200},
    "closing": {"url": 200, "tagline": 120},
}
LIMITS = {"full_name": 80, "team": 80, "role": 80, "headline": 120, "name": 80, "title": 80, "cta": 80}
NAMES = [t.endpoint for t in TEMPLATES]


def drawn(params):
    """The texts a stored template plan draws, in order."""
    return [block["text"] for card in params["cards"] for block in card["blocks"]]


@pytest.fixture(scope="module")
def still(tmp_path_factory):
    """3 s of flat grey with a tone: any drawn pixel stands out."""
    d = tmp_path_factory.mktemp("still")
    return media.lavfi_clip(d / "grey.mp4", seconds=3, size="320x180", video_src="color=c=0x808080:", rate=25,
                            extra=["-crf", "0"])


def documented_templates():
    """docs/API.md's templates table: endpoint -> (required {field: max length}, optional {field: max length}).

    A length is None where the row gives none (files, numbers, times, the steps list).
    """
    text = (Path(__file__).resolve().parents[2] / "docs" / "API.md").read_text()
    table = text.split("| template | required (max length) | optional | draws |", 1)[1].split("\n\n", 1)[0]
    rows = {}
    for endpoint, required, optional in re.findall(r"^\| `([\w-]+)` \| (.*?) \| (.*?) \|", table, re.M):
        rows[endpoint] = tuple({name: int(limit) if limit else None
                                for name, limit in re.findall(r"`(\w+)`(?:[^`]*?\((\d+)[,)])?", column)}
                               for column in (required, optional))
    return rows


def test_test_tables_match_the_declarations_and_the_docs():
    """REQUIRED, LIMITS and OPTIONAL_TEXT (which the tests below trust) are what TEMPLATES declares, and what
    docs/API.md's table tells clients: same templates in the same order, same fields, same lengths."""
    declared = {t.endpoint: t for t in TEMPLATES}
    documented = documented_templates()
    assert len(declared) == len(TEMPLATES)  # each endpoint declared once
    assert list(declared) == list(REQUIRED) == list(documented)
    for name, template in declared.items():
        required = {f: field for f, field in template.fields.items() if field.required}
        optional = {f: field for f, field in template.fields.items() if not field.required}
        doc_required, doc_optional = documented[name]
        assert set(required) == set(REQUIRED[name]) == set(doc_required), name
        assert set(optional) == set(doc_optional), name
        for field_name, field in required.items():
            if isinstance(field, TextField):
                assert field.max_length == LIMITS[field_name] == doc_required[field_name], (name, field_name)
        text_limits = {f: field.max_length for f, field in optional.items() if isinstance(field, TextField)}
        assert text_limits == OPTIONAL_TEXT.get(name, {}) == {f: n for f, n in doc_optional.items() if n}, name
    steps = declared["how-it-works"].fields["steps"]
    assert f"`steps`: {steps.min_length}-{steps.max_length} items of {steps.child.max_length}" in \
        (Path(__file__).resolve().parents[2] / "docs" / "API.md").read_text()


@pytest.mark.parametrize("name", NAMES)
def test_render_in_house_format(api, clips, tmp_path, name):
    r = post(api, url(name), {"video": clips.basic, **REQUIRED[name]})
    assert r.status_code == 200, r.body[:400]
    assert r["Content-Disposition"] == f'attachment; filename="{name}.mp4"'
    out = media.probe(save(r, tmp_path / "o.mp4"))
    assert (out["vcodec"], out["pix_fmt"], out["width"], out["height"], out["fps"]) == ("h264", "yuv420p", 320, 180, 25)
    assert (out["acodec"], out["sample_rate"], out["channels"]) == ("aac", 48000, 2)
    assert out["faststart"]
    assert abs(out["frames"] * FRAME - 2.0) <= FRAME
    assert abs(out["a_duration"] - out["frames"] * FRAME) <= FRAME
    log = RenderLog.objects.get(id=r["X-Render-Id"])
    assert log.status == "succeeded" and log.cleanup_status == "deleted"
    assert log.response_closed_at <= log.cleanup_at
    timing = dict(part.split(";")[:2] for part in r["Server-Timing"].split(", "))
    ffmpeg_ms, total_ms = float(timing["ffmpeg"][4:]), float(timing["total"][4:])
    assert 0 < ffmpeg_ms <= total_ms  # FFmpeg's runs are part of the request's time


def open_graph_text(log):
    return " ".join(" ".join(argv) for argv in log.ffmpeg_argv)


@pytest.mark.parametrize(("name", "field"), [(n, f) for n in NAMES for f in ["video", *REQUIRED[n]]])
def test_required_field_missing(api, clips, name, field):
    data = {"video": clips.basic, **REQUIRED[name]}
    data.pop(field)
    r = post(api, url(name), data)
    assert r.status_code == 400
    body = json.loads(r.body)
    assert body["code"] == "invalid_input" and field in body["fields"]


@pytest.mark.parametrize(("name", "field"), [(n, f) for n in NAMES for f in REQUIRED[n] if f != "steps"])
def test_blank_required_text_counts_as_missing(api, clips, name, field):
    r = post(api, url(name), {"video": clips.basic, **REQUIRED[name], field: "   "})
    assert r.status_code == 400
    assert json.loads(r.body)["fields"][field] == ["This field is required."]


@pytest.mark.parametrize(
    ("name", "field", "limit"),
    [(n, f, LIMITS[f]) for n in NAMES for f in REQUIRED[n] if f in LIMITS]
    + [(n, f, limit) for n, fields in OPTIONAL_TEXT.items() for f, limit in fields.items()],
)
def test_text_limits(api, clips, name, field, limit):
    ok = post(api, url(name), {"video": clips.basic, **REQUIRED[name], field: "x" * limit, "duration": "0.5"})
    assert ok.status_code == 200, ok.body[:300]
    r = post(api, url(name), {"video": clips.basic, **REQUIRED[name], field: "x" * (limit + 1)})
    assert r.status_code == 400
    assert field in json.loads(r.body)["fields"]


@pytest.mark.parametrize(
    ("name", "fields", "field"),
    [
        ("how-it-works", {"steps": [f"s{i}" for i in range(9)]}, "steps"),
        ("how-it-works", {"steps": ["x" * 101]}, "steps"),
        ("how-it-works", {"steps": '["a", 3]'}, "steps"),
        ("how-it-works", {"steps": '["a", '}, "steps"),
        ("how-it-works", {"steps": "[]"}, "steps"),
        ("how-it-works", {"steps": ["a", "b"], "step_duration": "0.9"}, "step_duration"),
        ("demo", {"speed": "5"}, "speed"),
        ("demo", {"speed": "0.2"}, "speed"),
        ("demo", {"speed": "fast"}, "speed"),
        ("closing", {"fade_out": "6"}, "fade_out"),
        ("closing", {"fade_out": "-1"}, "fade_out"),
        ("intro", {"start": "1.9"}, "start"),
        ("intro", {"start": "x"}, "start"),
        ("intro", {"duration": "0"}, "duration"),
        ("intro", {"full_name": "bell\x07"}, "full_name"),
        ("intro", {"full_name": "two\nlines"}, "full_name"),
    ],
)
def test_invalid_fields(api, clips, name, fields, field):
    r = post(api, url(name), {"video": clips.basic, **REQUIRED[name], **fields})
    assert r.status_code == 400, r.body[:300]
    assert field in json.loads(r.body)["fields"]


@pytest.mark.parametrize("name", NAMES)
def test_non_video_upload(api, clips, name):
    """A text file as the video is refused by its content, before FFmpeg renders anything."""
    r = post(api, url(name), {"video": clips.text, **REQUIRED[name]})
    assert r.status_code == 415
    body = json.loads(r.body)
    assert body["code"] == "unsupported_media" and list(body["fields"]) == ["video"]
    log = RenderLog.objects.get(id=body["render_id"])
    assert (log.status, log.http_status, log.error_code) == ("rejected", 415, "unsupported_media")
    assert log.ffmpeg_argv == [] and log.output_size is None and log.cleanup_status == "deleted"


def region_diff(a, b):
    return np.abs(a.astype(int) - b.astype(int)).mean()


@pytest.mark.parametrize("name", NAMES)
def test_text_drawn_only_inside_its_window(api, still, tmp_path, name):
    r = post(api, url(name), {"video": still, **REQUIRED[name], "start": "1", "duration": "1"})
    assert r.status_code == 200
    out = save(r, tmp_path / "o.mp4")
    before, during, after = (media.frame_at(out, t) for t in (0.5, 1.5, 2.6))
    grey = np.full_like(before, 128)
    assert changed(before, grey) == 0
    if name != "closing":  # closing is fading to black by then
        assert changed(after, grey) == 0
    assert changed(during, grey) > 0.01, "no text drawn inside the window"


@pytest.mark.parametrize("value", ["%{pts}", "%{localtime}", "%{n} %{frame_num}", "%{eif:t:d}"])
def test_text_is_never_expanded(api, still, tmp_path, value):
    r = post(api, url("intro"), {"video": still, **REQUIRED["intro"], "full_name": value, "start": "0.2",
                                 "duration": "2.6"})
    assert r.status_code == 200
    out = save(r, tmp_path / "o.mp4")
    one, two = media.frame_at(out, 1.0), media.frame_at(out, 2.0)
    assert changed(one, np.full_like(one, 128)) > 0.01  # something is drawn
    assert changed(one, two, threshold=12) == 0  # and it is the same a second later


def test_injection_attempt_draws_literally(api, still, tmp_path):
    attack = "x':fontcolor=red:text='y"
    r = post(api, url("demo"), {"video": still, "title": attack, "caption": "a,b;c[d]=e\\f$g",
                                "start": "0.2", "duration": "2"})
    assert r.status_code == 200
    frame = media.frame_at(save(r, tmp_path / "o.mp4"), 1.0).astype(int)
    red = (frame[..., 0] > 150) & (frame[..., 1] < 90) & (frame[..., 2] < 90)
    assert red.sum() == 0
    log = RenderLog.objects.get(id=r["X-Render-Id"])
    assert attack not in open_graph_text(log)  # the text travels in a file, never in the graph


def test_awkward_text_renders(api, clips, tmp_path):
    r = post(api, url("persona"), {
        "video": clips.basic,
        "name": "O'Brien: \"Q\" \\ back {x} [y] , ; = $HOME %",
        "title": "שלום עולם مرحبا 😀 ✓",
        "quote": "W" * 80 + "\nSecond paragraph, with 'quotes'\n\n\n\nand gaps",
    })
    assert r.status_code == 200
    params = RenderLog.objects.get(id=r["X-Render-Id"]).params
    _name, title, quote = drawn(params)
    assert quote.count("\n") == 3 and title == "שלום עולם مرحبا 😀 ✓"  # runs of blank lines folded to one


@pytest.mark.parametrize("canvas", ["180x320", "240x240"])
def test_long_words_stay_inside_any_canvas(api, still, tmp_path, settings, canvas):
    settings.VIDEOAPI_CANVAS = tuple(int(v) for v in canvas.split("x"))
    r = post(api, url("intro"), {"video": still, "full_name": "W" * 80, "team": "M" * 80, "role": "Q" * 80,
                                 "start": "0.2", "duration": "2"})
    assert r.status_code == 200
    out = save(r, tmp_path / "o.mp4")
    assert media.probe(out)["width"] == settings.VIDEOAPI_CANVAS[0]
    during, before = media.frame_at(out, 1.0), media.frame_at(out, 0.1)
    assert changed(during, before) > 0.02  # the text is drawn ...
    for edge in (slice(0, 2), slice(-2, None)):  # ... and keeps off the left and right edges
        assert changed(during[:, edge], before[:, edge]) == 0


def test_how_it_works_shows_steps_one_after_another(api, still, tmp_path):
    r = post(api, url("how-it-works"), {"video": still, "steps": '["First", "Second"]', "start": "0.5",
                                        "step_duration": "1"})
    assert r.status_code == 200
    out = save(r, tmp_path / "o.mp4")
    first, second = media.frame_at(out, 1.0), media.frame_at(out, 2.0)
    assert changed(first, second) > 0.005  # a different step is on screen
    params = RenderLog.objects.get(id=r["X-Render-Id"]).params
    assert drawn(params) == ["1. First", "2. Second"]
    assert [(card["start"], card["end"]) for card in params["cards"]] == [(0.5, 1.5), (1.5, 2.5)]


def test_how_it_works_repeated_field(api, clips):
    r = post(api, url("how-it-works"), {"video": clips.basic, "steps": ["One", "Two", "Three"]})
    assert r.status_code == 200
    assert drawn(RenderLog.objects.get(id=r["X-Render-Id"]).params) == ["1. One", "2. Two", "3. Three"]


def test_persona_avatar_is_drawn(api, still, clips, tmp_path):
    without = save(post(api, url("persona"), {"video": still, "name": "Ada", "start": "0.2", "duration": "2"}),
                   tmp_path / "a.mp4")
    r = post(api, url("persona"), {"video": still, "name": "Ada", "avatar": clips.png, "start": "0.2",
                                   "duration": "2"})
    assert r.status_code == 200
    frame = media.frame_at(save(r, tmp_path / "b.mp4"), 1.0).astype(int)
    red = (frame[..., 0] > 180) & (frame[..., 1] < 80) & (frame[..., 2] < 80)
    assert red.sum() > 100  # the red avatar is there
    plain = media.frame_at(without, 1.0).astype(int)
    assert ((plain[..., 0] > 180) & (plain[..., 1] < 80)).sum() == 0
    log = RenderLog.objects.get(id=r["X-Render-Id"])
    assert sorted(i["kind"] for i in log.inputs) == ["image", "video"]


@pytest.mark.parametrize(("fixture", "status"), [("text", 415), ("basic", 415)])
def test_persona_avatar_must_be_an_image(api, clips, fixture, status):
    r = post(api, url("persona"), {"video": clips.basic, "name": "Ada", "avatar": getattr(clips, fixture)})
    assert r.status_code == status
    assert "avatar" in json.loads(r.body)["fields"]


def test_persona_avatar_too_large(api, clips, tmp_path):
    big = media.make(tmp_path / "big.png", "-f", "lavfi", "-i", "color=c=red:s=4097x8:d=1", "-frames:v", "1")
    r = post(api, url("persona"), {"video": clips.basic, "name": "Ada", "avatar": big})
    assert r.status_code == 400
    assert "4096" in json.loads(r.body)["fields"]["avatar"][0]


@pytest.mark.parametrize(("speed", "length"), [("2", 1.0), ("0.5", 4.0), ("0.25", 8.0)])
def test_demo_speed_changes_picture_and_sound(api, clips, tmp_path, speed, length):
    r = post(api, url("demo"), {"video": clips.basic, "title": "Demo", "speed": speed})
    assert r.status_code == 200
    out = media.probe(save(r, tmp_path / "o.mp4"))
    assert abs(out["frames"] * FRAME - length) <= FRAME
    assert abs(out["a_duration"] - length) <= FRAME


def test_demo_speed_keeps_pitch(api, tmp_path):
    import av

    clip = media.lavfi_clip(tmp_path / "tone.mp4", seconds=2, sample_rate=48000)
    r = post(api, url("demo"), {"video": clip, "title": "Demo", "speed": "2"})
    with av.open(str(save(r, tmp_path / "o.mp4"))) as c:
        samples = np.concatenate([f.to_ndarray()[0] for f in c.decode(audio=0)])
    spectrum = np.abs(np.fft.rfft(samples[4800:4800 + 16384]))
    peak = np.fft.rfftfreq(16384, 1 / 48000)[spectrum.argmax()]
    assert abs(peak - 440) < 15  # a 440 Hz tone stays 440 Hz at double speed


def test_closing_fades_to_black_and_silence(api, clips, tmp_path):
    import av

    r = post(api, url("closing"), {"video": clips.basic, "cta": "Bye", "fade_out": "0.5", "duration": "1"})
    out = save(r, tmp_path / "o.mp4")
    last, before_fade = media.frame_at(out, 1.96), media.frame_at(out, 1.4)
    assert before_fade.mean() > 40
    assert last.mean() < 3  # black on the last frame
    with av.open(str(out)) as c:
        samples = np.concatenate([f.to_ndarray()[0] for f in c.decode(audio=0)])
    tail = np.abs(samples[-960:]).mean()
    middle = np.abs(samples[len(samples) // 2 - 4800: len(samples) // 2]).mean()
    assert tail < middle / 10


def test_announcement_dims_the_frame(api, still, tmp_path):
    r = post(api, url("announcement"), {"video": still, "headline": "Hi", "start": "1", "duration": "1"})
    out = save(r, tmp_path / "o.mp4")
    corner = lambda frame: frame[:10, :10].mean()  # noqa: E731  (no text there)
    assert corner(media.frame_at(out, 1.5)) < corner(media.frame_at(out, 0.5)) * 0.7


@pytest.mark.parametrize("canvas", ["640x360", "360x640"])
def test_frames_for_people_to_look_at(api, clips, tmp_path, settings, canvas):
    """Saves one frame of each template (16:9 and 9:16) under artifacts/ for a human check."""
    from PIL import Image

    settings.VIDEOAPI_CANVAS = tuple(int(v) for v in canvas.split("x"))
    artifacts = Path(__file__).resolve().parents[2] / "artifacts"
    artifacts.mkdir(exist_ok=True)
    extra = {"announcement": {"subheadline": "A longer subheadline that wraps onto a second line on narrow canvases"},
             "how-it-works": {"title": "How it works"}, "persona": {"title": "Analyst", "avatar": clips.png,
                                                                   "quote": "Two lines\nof quote"},
             "demo": {"caption": "Twice as fast", "speed": "2"}, "closing": {"url": "https://example.com/start"}}
    for name in NAMES:
        r = post(api, url(name), {"video": clips.basic, **REQUIRED[name], **extra.get(name, {}), "start": "0.1"})
        assert r.status_code == 200
        frame = media.frame_at(save(r, tmp_path / f"{name}.mp4"), 0.8)
        assert frame.shape[:2] == settings.VIDEOAPI_CANVAS[::-1]
        Image.fromarray(frame).save(artifacts / f"template-{name}-{canvas}.png")
