"""Any accepted source comes out in the house format, in sync."""

import pytest

from renders.media.probe import probe_video

from .. import media
from ..conftest import post, save
from ..media import assert_house

pytestmark = pytest.mark.django_db


def test_probe_of_variants(variants):
    rotated = probe_video(variants["rotated"][0], "video")
    assert rotated.rotation in (90, 270) and (rotated.width, rotated.height) == (240, 320)
    assert probe_video(variants["vp9_webm"][0], "video").demuxer == "matroska"
    assert probe_video(variants["mpeg4_avi"][0], "video").demuxer == "avi"
    assert probe_video(variants["h264_ts"][0], "video").demuxer == "mpegts"
    assert probe_video(variants["anamorphic"][0], "video").sar == pytest.approx(4 / 3, abs=0.01)
    assert not probe_video(variants["mono_44k_noaudio"][0], "video").has_audio


@pytest.mark.parametrize(
    "name",
    ["vertical", "square_48k_stereo", "mono_44k_noaudio", "hevc", "vp9_webm", "mpeg4_avi", "h264_ts",
     "yuv444_25fps", "anamorphic", "rotated", "vfr"],
)
def test_template_from_any_source(api, variants, tmp_path, name):
    path, _ = variants[name]
    length = probe_video(path, "video").duration  # e.g. an AVI whose MP3 runs 40 ms longer
    r = post(api, "/api/intro/render", {"video": path, "full_name": "A", "team": "B", "role": "C"})
    assert r.status_code == 200, r.body[:300]
    assert_house(media.probe(save(r, tmp_path / "o.mp4")), length)


def test_rotation_is_applied(api, variants, tmp_path):
    """A portrait-rotated source is shown upright: pillarboxed, not stretched."""
    r = post(api, "/api/trim", {"video": variants["rotated"][0], "start": "0"})
    frame = media.frame_at(save(r, tmp_path / "o.mp4"), 0.5)
    # 240x320 upright scaled into 320x180 is 134 px wide: black bars left and right
    assert frame[:, :80].max() < 40 and frame[:, -80:].max() < 40
    assert frame[:, 100:220].mean() > 40
