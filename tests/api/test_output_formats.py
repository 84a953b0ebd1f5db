"""`format`: mp4 (default), webm (VP9 + Opus) or gif (palette, no sound) on the templates, the accurate trim and
both joins; its refusals; mp4 byte for byte as without the field; /api/options, the schema, stored plans."""

import json

import numpy as np
import pytest

from renders import plans
from renders.api import views
from renders.media import spec as output_spec
from renders.models import RenderLog

from .. import media
from ..apidoc import form, schema, url
from ..conftest import leftovers, post, save

pytestmark = pytest.mark.django_db
FRAME = 1 / 25
FLAT = (48, 128, 192)  # the flat input's colour
INTRO = {"full_name": "Ada", "team": "Engines", "role": "Lead", "start": "0.2", "duration": "1"}
COLORS = {"red": (255, 0, 0), "green": (0, 128, 0), "blue": (0, 0, 255)}


@pytest.fixture(scope="module")
def flat(tmp_path_factory):
    """2 s of one flat colour with a tone: what a palette must keep."""
    return media.tone_clip(tmp_path_factory.mktemp("flat") / "flat.mp4", color="0x" + bytes(FLAT).hex(), freq=440,
                           seconds=2, size="320x180")


@pytest.fixture(scope="module")
def tones(tmp_path_factory):
    d = tmp_path_factory.mktemp("tones")
    return {c: media.tone_clip(d / f"{c}.mp4", color=c, freq=f, size="320x180")
            for c, f in (("red", 440), ("blue", 1320))}


@pytest.fixture(scope="module")
def house(tmp_path_factory, tones):
    """The tone clips in the house format: as mp4 they join by stream copy."""
    d = tmp_path_factory.mktemp("house")
    return {c: media.house_clip(d / f"{c}.mp4", path) for c, path in tones.items()}


def fields_of(r):
    return json.loads(r.body)["fields"]


def colour_at(path, when):
    rgb = media.frame_at(path, when)[60:120, 100:220].reshape(-1, 3).mean(axis=0)
    return min(COLORS, key=lambda c: np.abs(rgb - COLORS[c]).sum())


def assert_webm(r, path, length, filename):
    assert r.status_code == 200, r.body[:300]
    assert r["Content-Type"] == "video/webm"
    assert r["Content-Disposition"] == f'attachment; filename="{filename}"'
    out = media.probe(save(r, path))
    assert out["format"] == "matroska,webm" and out["streams"] == 2
    assert (out["vcodec"], out["pix_fmt"], out["width"], out["height"], out["fps"]) == ("vp9", "yuv420p", 320, 180, 25)
    assert (out["acodec"], out["sample_rate"], out["channels"]) == ("opus", 48000, 2)
    assert abs(out["frames"] * FRAME - length) <= FRAME + 1e-6, out
    assert abs(out["a_duration"] - length) <= FRAME + 1e-6, out
    return out


def assert_gif(r, path, length, filename, fps=15):
    assert r.status_code == 200, r.body[:300]
    assert r["Content-Type"] == "image/gif"
    assert r["Content-Disposition"] == f'attachment; filename="{filename}"'
    out = media.probe(save(r, path))
    assert out["format"] == "gif" and out["streams"] == 1 and "acodec" not in out  # no sound
    assert (out["vcodec"], out["width"], out["height"]) == ("gif", 320, 180)
    frame = 1 / fps
    assert abs(out["frames"] * frame - length) <= frame + 1e-6, out
    assert abs(out["v_duration"] - out["frames"] * frame) <= 0.01, out  # each frame shown 1/fps s (in 1/100 s)
    return out


def test_webm_from_a_template(api, clips, tmp_path):
    r = post(api, url("intro"), {"video": clips.basic, **INTRO, "format": "webm"})
    assert_webm(r, tmp_path / "o.webm", 2.0, "intro.webm")
    log = RenderLog.objects.get(id=r["X-Render-Id"])
    assert log.params["spec"]["format"] == "webm"
    argv = " ".join(log.ffmpeg_argv[-1])
    assert "-c:v libvpx-vp9" in argv and "-c:a libopus" in argv and "-b:v 0" in argv and "libx264" not in argv
    # the text is drawn as on the mp4
    during, before = media.frame_at(tmp_path / "o.webm", 0.8), media.frame_at(tmp_path / "o.webm", 0.05)
    assert media.changed(during, before) > 0.01


def test_gif_from_trim_keeps_a_flat_colour(api, flat, tmp_path):
    r = post(api, "/api/trim", {"video": flat, "start": "0.5", "end": "1.5", "format": "gif",
                                "final_filename": "loop"})
    out = assert_gif(r, tmp_path / "o.gif", 1.0, "loop.gif")
    assert out["frames"] == 15 and out["v_duration"] == 1.0  # 15 fps by default
    pixels = media.frame_at(tmp_path / "o.gif", 0.5).reshape(-1, 3).astype(int)
    assert np.abs(pixels - FLAT).max() <= 6, pixels.mean(axis=0)
    log = RenderLog.objects.get(id=r["X-Render-Id"])
    assert log.params["spec"]["fps"] == 15 and r["X-Trim-Start"] == "0.5"
    argv = " ".join(log.ffmpeg_argv[-1])
    assert "-c:v gif" in argv and "-c:a" not in argv and "[a]" not in argv


def test_gif_frame_rate_is_asked_up_to_30(api, clips, tmp_path):
    r = post(api, "/api/trim", {"video": clips.basic, "start": "0", "end": "1", "format": "gif", "fps": "30"})
    out = assert_gif(r, tmp_path / "o.gif", 1.0, "trim.gif", fps=30)
    assert out["frames"] == 30 and out["v_duration"] == 1.0


@pytest.mark.parametrize("output", ["webm", "gif"])
def test_plain_join_of_house_inputs_is_reencoded(api, house, tmp_path, output):
    """Inputs that join by copy into mp4 are re-encoded into webm or gif, in order."""
    r = post(api, "/api/concatenate", {"videos": [house["blue"], house["red"]], "format": output})
    path = tmp_path / f"o.{output}"
    if output == "webm":
        assert_webm(r, path, 2.0, "concatenate.webm")
        assert abs(media.dominant_frequency(path, 0.35, 0.3) - 1320) < 20
        assert abs(media.dominant_frequency(path, 1.35, 0.3) - 440) < 20
    else:
        assert_gif(r, path, 2.0, "concatenate.gif")
    assert r["X-Concat-Mode"] == "reencode"
    assert [colour_at(path, t) for t in (0.5, 1.5)] == ["blue", "red"]
    assert RenderLog.objects.get(id=r["X-Render-Id"]).details["mode"] == "reencode"
    mp4 = post(api, "/api/concatenate", {"videos": [house["blue"], house["red"]], "format": "mp4"})
    assert mp4.status_code == 200 and mp4["X-Concat-Mode"] == "copy"  # the same inputs into mp4: a copy


@pytest.mark.parametrize("output", ["webm", "gif"])
def test_crossfade_join(api, tones, tmp_path, output):
    r = post(api, "/api/concatenate-multipart", {"segment_0": tones["red"], "segment_1": tones["blue"],
                                                 "transition": "crossfade", "transition_duration": "0.4",
                                                 "format": output})
    path = tmp_path / f"o.{output}"
    if output == "webm":
        assert_webm(r, path, 1.6, "concatenate-multipart.webm")
    else:  # whole frames at 15 fps: 1 + 1 - 6/15
        assert_gif(r, path, 2 - 6 / 15, "concatenate-multipart.gif")
    assert r["X-Concat-Mode"] == "reencode"
    middle = media.frame_at(path, 0.8)[60:120, 100:220].reshape(-1, 3).mean(axis=0)
    assert middle[0] > 60 and middle[2] > 60  # red and blue mixed in the fade
    assert [colour_at(path, t) for t in (0.2, 1.4)] == ["red", "blue"]


@pytest.fixture(scope="module")
def peaky(tmp_path_factory):
    """A -30 dBFS tone with a click near full scale: loudness=web needs the limiter."""
    path = tmp_path_factory.mktemp("peaky") / "peaky.mp4"
    return media.make(path, "-f", "lavfi", "-i", "color=c=gray:s=160x90:r=25:d=2", "-f", "lavfi", "-i",
                      "aevalsrc='0.0316*sin(2*PI*440*t)+between(t,1,1.0001)*0.9':s=48000:c=stereo:d=2",
                      "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "192k",
                      "-shortest")


def test_webm_loudness_is_checked_through_opus(api, peaky, tmp_path):
    """The limited sound is encoded as the webm encodes it (Opus) and measured: on target, under the ceiling."""
    r = post(api, "/api/trim", {"video": peaky, "start": "0", "format": "webm", "loudness": "web"})
    assert_webm(r, tmp_path / "o.webm", 2.0, "trim.webm")
    media.assert_on_target(media.r128(tmp_path / "o.webm"), tolerance=0.5)
    log = RenderLog.objects.get(id=r["X-Render-Id"])
    assert log.details["loudness"]["mode"] == "gain+limiter", log.details
    checks = [" ".join(args) for args in log.ffmpeg_argv if "-map [a]" in " ".join(args)][1:]  # after the measure
    assert checks and all("-c:a libopus" in args for args in checks)


def test_gif_with_logo_and_captions(api, grey, clips, tmp_path):
    cues = media.srt(tmp_path / "c.srt", (0.2, 1.8, "Hello"))
    r = post(api, "/api/trim", {"video": grey, "start": "0", "format": "gif", "logo": clips.png,
                                "logo_position": "top-left", "captions": cues})
    assert_gif(r, tmp_path / "o.gif", 2.0, "trim.gif")
    frame = media.frame_at(tmp_path / "o.gif", 1.0).astype(int)
    plain = media.frame_at(grey, 1.0).astype(int)
    height, width = frame.shape[:2]
    assert media.changed(frame[: height // 3, : width // 3], plain[: height // 3, : width // 3]) > 0.05  # the logo
    assert media.changed(frame[height // 2:], plain[height // 2:]) > 0.005  # the caption
    corner = frame[: height // 3, : width // 3]
    assert ((corner[..., 0] > 200) & (corner[..., 1] < 60) & (corner[..., 2] < 60)).mean() > 0.05  # the red logo


def test_mp4_is_byte_for_byte_as_without_the_field(api, clips, house):
    for path, data in (("/api/trim", {"video": clips.basic, "start": "0.2", "end": "1.2"}),
                       (url("intro"), {"video": clips.basic, **INTRO}),
                       ("/api/concatenate", {"videos": [house["red"], house["blue"]]}),
                       ("/api/concatenate", {"videos": [clips.basic, clips.noaudio], "transition": "crossfade"})):
        before, after = post(api, path, data), post(api, path, {**data, "format": "mp4"})
        assert before.status_code == after.status_code == 200
        assert before.body == after.body, path
        assert before["Content-Type"] == after["Content-Type"] == "video/mp4"
        assert before["Content-Disposition"] == after["Content-Disposition"]
        assert before.get("X-Concat-Mode") == after.get("X-Concat-Mode")


def test_fast_trim_takes_format_mp4(api, clips):
    r = post(api, "/api/trim", {"video": clips.basic, "start": "0.5", "mode": "fast", "format": "mp4"})
    assert r.status_code == 200 and r["Content-Type"] == "video/mp4" and r["X-Trim-Start"] == "0"


REFUSALS = [
    ("gif at 60 fps", "/api/trim", {"start": "0", "format": "gif", "fps": "60"}, "fps", "at most 30 fps"),
    ("gif with loudness", "/api/trim", {"start": "0", "format": "gif", "loudness": "web"}, "loudness",
     "gif has no sound"),
    ("gif with music", url("closing"), {"cta": "Bye", "format": "gif", "music": "video"}, "music", "gif has no sound"),
    ("fast trim into webm", "/api/trim", {"start": "0", "mode": "fast", "format": "webm"}, "format", "mode=accurate"),
    ("fast trim into gif", "/api/trim", {"start": "0", "mode": "fast", "format": "gif"}, "format", "mode=accurate"),
    ("unknown format", "/api/trim", {"start": "0", "format": "avi"}, "format", "not a valid choice"),
    ("unknown format on a join", "/api/concatenate", {"videos": 2, "format": "mov"}, "format", "not a valid choice"),
]


@pytest.mark.parametrize(("path", "data", "field", "message"), [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS])
def test_refusals_name_the_field(api, clips, path, data, field, message):
    sent = {"video": clips.basic}
    for key, value in data.items():
        if key == "videos":
            sent = {key: [clips.basic] * value}
        else:
            sent[key] = clips.basic if value == "video" else value
    r = post(api, path, sent)
    assert r.status_code == 400, r.body[:300]
    assert list(fields_of(r)) == [field] and message in fields_of(r)[field][0]
    assert RenderLog.objects.get(id=r["X-Render-Id"]).cleanup_status == "deleted"
    assert leftovers() == []


@pytest.fixture(scope="module")
def long_clips(tmp_path_factory):
    """A 61 s clip and three of 21 s, tiny: a gif of any of them whole, or of the three joined, is over 60 s."""
    d = tmp_path_factory.mktemp("long")
    return {"61": media.lavfi_clip(d / "61.mp4", seconds=61, size="64x36", rate=10),
            "21": media.lavfi_clip(d / "21.mp4", seconds=21, size="64x36", rate=10)}


def test_a_gif_over_60_seconds_is_refused_naming_the_field(api, long_clips, settings):
    settings.VIDEOAPI_MAX_INPUT_SECONDS = 90
    assert output_spec.GIF_MAX_SECONDS == 60
    for extra, field in (({"end": "60.5"}, "end"), ({"duration": "60.5"}, "duration"), ({}, "format")):
        r = post(api, "/api/trim", {"video": long_clips["61"], "start": "0", "format": "gif", **extra})
        assert r.status_code == 400 and list(fields_of(r)) == [field], r.body[:300]
        assert "at most 60 s" in fields_of(r)[field][0]
    r = post(api, "/api/concatenate", {"videos": [long_clips["21"]] * 3, "format": "gif"})
    assert r.status_code == 400 and list(fields_of(r)) == ["format"] and "63.000 s" in fields_of(r)["format"][0]
    r = post(api, url("demo"), {"video": long_clips["61"], "title": "Slow", "format": "gif"})
    assert r.status_code == 400 and list(fields_of(r)) == ["format"]
    assert leftovers() == []


def test_accept_never_traps_a_format(api, clips):
    """A download's type is its format's: an Accept naming another type (video/mp4) still gets the webm it
    asked for in the form; only an Accept asking for application/octet-stream alone changes the label."""
    data = {"video": clips.basic, "start": "0", "end": "0.5", "format": "webm"}
    r = post(api, "/api/trim", data, HTTP_ACCEPT="video/mp4")
    assert r.status_code == 200 and r["Content-Type"] == "video/webm"
    r = post(api, "/api/trim", data, HTTP_ACCEPT="application/octet-stream")
    assert r.status_code == 200 and r["Content-Type"] == "application/octet-stream"
    r = post(api, "/api/trim", {**data, "format": "gif"}, HTTP_ACCEPT="image/*, application/octet-stream")
    assert r.status_code == 200 and r["Content-Type"] == "image/gif"


def test_options_and_schema_publish_the_field(api, client):
    doc = api.get("/api/options").json()
    assert {name: f["content_type"] for name, f in doc["formats"].items()} == {
        "mp4": "video/mp4", "webm": "video/webm", "gif": "image/gif"}
    for path, endpoint in doc["endpoints"].items():
        field = endpoint["fields"]["format"]
        if path == "/api/trim/preview":  # its own format, unchanged
            assert field["choices"] == ["mp4", "jpg"]
        else:
            assert (field["choices"], field["default"], field["required"]) == (["mp4", "webm", "gif"], "mp4", False)
    described = schema(client)
    for path in ("/api/trim", "/api/concatenate", "/api/concatenate-multipart", url("intro"), url("closing")):
        prop = form(described, path)["properties"]["format"]
        assert prop.get("default") == "mp4", path
        content = described["paths"][path]["post"]["responses"]["200"]["content"]
        assert {"video/mp4", "video/webm", "image/gif", "application/octet-stream"} <= set(content), path
    preview = described["paths"]["/api/trim/preview"]["post"]["responses"]["200"]["content"]
    assert "video/webm" not in preview and "image/gif" not in preview


@pytest.fixture
def planned(monkeypatch):
    """The plans the view hands to perform."""
    seen = []
    real = views.perform

    def spying(plan, workspace, run):
        seen.append(plan)
        return real(plan, workspace, run)

    monkeypatch.setattr(views, "perform", spying)
    return seen


def test_a_plan_keeps_its_format_through_storage(api, clips, planned):
    r = post(api, "/api/concatenate", {"videos": [clips.basic] * 2, "format": "gif"})
    assert r.status_code == 200
    r = post(api, "/api/trim", {"video": clips.basic, "start": "0"})
    assert r.status_code == 200
    gif, mp4 = planned
    stored = json.loads(json.dumps(plans.dump(gif)))
    assert stored["spec"]["format"] == "gif" and plans.load(stored) == gif
    older = plans.dump(mp4)
    del older["spec"]["format"]  # a plan stored before the field existed
    assert plans.load(older) == mp4 and plans.load(older).spec.format == "mp4"
    with pytest.raises(ValueError):
        plans.load({**older, "spec": {**older["spec"], "format": "avi"}})
