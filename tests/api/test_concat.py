"""concatenate and concatenate-multipart: order, copy path, re-encode, crossfade, errors."""

import functools
import json
import operator

import numpy as np
import pytest

from renders.models import RenderLog

from .. import media
from ..conftest import post, save
from ..media import assert_house

pytestmark = pytest.mark.django_db
FRAME = 1 / 25
COLORS = {"red": (255, 0, 0), "green": (0, 128, 0), "blue": (0, 0, 255)}
FREQS = {"red": 440, "green": 880, "blue": 1320}


@pytest.fixture(scope="module")
def tones(tmp_path_factory):
    d = tmp_path_factory.mktemp("tones")
    return {c: media.tone_clip(d / f"{c}.mp4", color=c, freq=f) for c, f in FREQS.items()}


@pytest.fixture(scope="module")
def house(tmp_path_factory, tones):
    """House-format versions of the tone clips (what this service outputs)."""
    d = tmp_path_factory.mktemp("house")
    return {c: media.house_clip(d / f"{c}.mp4", path) for c, path in tones.items()}


def colour_at(path, when):
    rgb = media.frame_at(path, when)[60:120, 100:220].reshape(-1, 3).mean(axis=0)
    return min(COLORS, key=lambda c: np.abs(rgb - COLORS[c]).sum())


def assert_sequence(path, names, each=1.0):
    """Segment k shows colour k and sounds tone k (picture and sound in step)."""
    for k, name in enumerate(names):
        middle = k * each + each / 2
        assert colour_at(path, middle) == name, (k, name)
        assert abs(media.dominant_frequency(path, middle - 0.15, 0.3) - FREQS[name]) < 20, (k, name)


def body(r):
    return json.loads(r.body)


def test_concatenate_house_inputs_by_copy(api, house, tmp_path):
    r = post(api, "/api/concatenate", {"videos": [house["blue"], house["red"], house["green"]]})
    assert r.status_code == 200, r.body[:300]
    assert r["X-Concat-Mode"] == "copy"
    assert r["Content-Disposition"] == 'attachment; filename="concatenate.mp4"'
    out = save(r, tmp_path / "o.mp4")
    info = media.probe(out)
    assert_house(info, 3.0)
    assert_sequence(out, ["blue", "red", "green"])
    log = RenderLog.objects.get(id=r["X-Render-Id"])
    assert log.details["mode"] == "copy"
    assert [item["field"] for item in log.params["inputs"]] == ["videos[0]", "videos[1]", "videos[2]"]
    assert "-c:v copy" in " ".join(log.ffmpeg_argv[0]) and "libx264" not in " ".join(log.ffmpeg_argv[0])


def test_template_outputs_join_by_copy(api, clips, tmp_path):
    parts = []
    for name, fields in [("intro", {"full_name": "A", "team": "B", "role": "C"}), ("closing", {"cta": "Bye"}),
                         ("demo", {"title": "D", "speed": "2"})]:
        r = post(api, f"/api/{name}/render", {"video": clips.basic, **fields})
        parts.append(save(r, tmp_path / f"{name}.mp4"))
    trimmed = save(post(api, "/api/trim", {"video": clips.noaudio, "start": "0.5"}), tmp_path / "trim.mp4")
    r = post(api, "/api/concatenate-multipart", {**{f"segment_{i}": p for i, p in enumerate(parts + [trimmed])},
                                                 "final_filename": "final"})
    assert r.status_code == 200
    assert r["X-Concat-Mode"] == "copy"
    assert r["Content-Disposition"] == 'attachment; filename="final.mp4"'
    assert_house(media.probe(save(r, tmp_path / "o.mp4")), 2 + 2 + 1 + 1.5)


def test_mixed_inputs_reencode_to_house_format(api, variants, tones, tmp_path):
    names = ["vertical", "mono_44k_noaudio", "vp9_webm", "square_48k_stereo"]  # 30/25 fps, no audio, VP9, 9:16
    paths = [variants[n][0] for n in names] + [tones["red"]]
    r = post(api, "/api/concatenate", {"videos": paths})
    assert r.status_code == 200, r.body[:300]
    assert r["X-Concat-Mode"] == "reencode"
    out = save(r, tmp_path / "o.mp4")
    from renders.media.probe import probe_video

    expected = sum(round(probe_video(p, "v").duration * 25) / 25 for p in paths)
    assert_house(media.probe(out), expected)
    # the last segment starts exactly where the others end: picture and tone line up
    start = expected - 1.0
    assert colour_at(out, start + 0.5) == "red"
    assert abs(media.dominant_frequency(out, start + 0.35, 0.3) - 440) < 20


def test_crossfade(api, house, tmp_path):
    r = post(api, "/api/concatenate", {"videos": [house["red"], house["green"], house["blue"]],
                                       "transition": "crossfade", "transition_duration": "0.2"})
    assert r.status_code == 200
    assert r["X-Concat-Mode"] == "reencode"  # a transition always re-encodes
    out = save(r, tmp_path / "o.mp4")
    assert_house(media.probe(out), 3.0 - 2 * 0.2)
    assert colour_at(out, 0.3) == "red" and colour_at(out, 1.3) == "green" and colour_at(out, 2.3) == "blue"
    mid_fade = media.frame_at(out, 0.9)[60:120, 100:220].reshape(-1, 3).mean(axis=0)
    assert mid_fade[0] > 60 and mid_fade[1] > 30  # red and green mixed during the fade


def test_multipart_orders_by_order_fields(api, house, tmp_path):
    r = post(api, "/api/concatenate-multipart", {
        "segment_0": house["red"], "segment_1": house["green"], "segment_7": house["blue"],
        "order_0": "10", "order_1": "-5", "order_7": " 3 ",
    })
    assert r.status_code == 200, r.body[:300]
    out = save(r, tmp_path / "o.mp4")
    assert_sequence(out, ["green", "blue", "red"])
    inputs = RenderLog.objects.get(id=r["X-Render-Id"]).params["inputs"]
    assert [item["field"] for item in inputs] == ["segment_1", "segment_7", "segment_0"]


def test_multipart_segment_without_order_sorts_by_index(api, house, tmp_path):
    r = post(api, "/api/concatenate-multipart", {
        "segment_2": house["red"], "segment_0": house["green"], "segment_1": house["blue"], "order_2": "1",
    })
    assert r.status_code == 200
    # keys: segment_0 -> 0, segment_1 -> 1, segment_2 -> 1 (explicit); ties broken by index
    inputs = RenderLog.objects.get(id=r["X-Render-Id"]).params["inputs"]
    assert [item["field"] for item in inputs] == ["segment_0", "segment_1", "segment_2"]
    assert_sequence(save(r, tmp_path / "o.mp4"), ["green", "blue", "red"])


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"segment_0": "red", "segment_1": "green", "order_0": "1", "order_1": "1"}, "order_1"),
        ({"segment_0": "red", "segment_1": "green", "order_3": "1"}, "order_3"),
        ({"segment_0": "red", "segment_x": "green"}, "segment_x"),
        ({"segment_0": "red", "segment_-1": "green"}, "segment_-1"),
        ({"segment_0": "red", "segment_1": "green", "order_0": "1.5"}, "order_0"),
        ({"segment_0": "red", "segment_1": "green", "order_0": "abc"}, "order_0"),
        ({"segment_0": "red", "segment_1": "green", "order_x": "1"}, "order_x"),
        ({"segment_0": "red"}, "segments"),
        ({}, "segments"),
        ({"segment_0": "red", "segment_1": "green", "transition": "wipe"}, "transition"),
        ({"segment_0": "red", "segment_1": "green", "transition": "crossfade", "transition_duration": "0.5"},
         "transition_duration"),
        ({"segment_0": "red", "segment_1": "green", "transition_duration": "3"}, "transition_duration"),
        ({"segment_0": "red", "segment_1": "not a file"}, "segment_1"),
    ],
)
def test_multipart_invalid(api, house, fields, field):
    data = {k: house.get(v, v) if k.startswith("segment") else v for k, v in fields.items()}
    r = post(api, "/api/concatenate-multipart", data)
    assert r.status_code == 400, r.body[:300]
    assert field in body(r)["fields"], body(r)
    log = RenderLog.objects.get(id=body(r)["render_id"])
    assert log.status == "rejected" and log.cleanup_status == "deleted"


def test_multipart_same_index_twice(api, house):
    r = post(api, "/api/concatenate-multipart", {"segment_1": house["red"], "segment_01": house["green"]})
    assert r.status_code == 400
    assert "twice" in " ".join(functools.reduce(operator.iadd, body(r)["fields"].values(), []))


@pytest.mark.parametrize("count", [1, 21])
def test_concatenate_counts(api, house, count):
    r = post(api, "/api/concatenate", {"videos": [house["red"]] * count})
    assert r.status_code == 400
    assert "videos" in body(r)["fields"]


@pytest.mark.parametrize("url", ["/api/concatenate", "/api/concatenate-multipart"])
def test_non_video_among_inputs_refuses_everything(api, house, clips, url):
    files = [house["red"], clips.text, house["green"]]
    data = {"videos": files} if url.endswith("concatenate") else {f"segment_{i}": f for i, f in enumerate(files)}
    r = post(api, url, data)
    assert r.status_code == 415
    assert body(r)["code"] == "unsupported_media"
    assert list(body(r)["fields"]) == (["videos"] if url.endswith("concatenate") else ["segment_1"])


def test_twenty_inputs_join(api, house, tmp_path):
    r = post(api, "/api/concatenate", {"videos": [house["red"], house["green"]] * 10})
    assert r.status_code == 200 and r["X-Concat-Mode"] == "copy"
    assert_house(media.probe(save(r, tmp_path / "o.mp4")), 20.0)
