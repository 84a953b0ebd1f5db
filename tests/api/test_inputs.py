"""Every probed property that reaches an FFmpeg argument, proven with a clip; cost limits.

A failure an input causes is never a 500: what the service accepts renders
(trim, a template and a preview), what it will not handle is a 400 naming
the limit before FFmpeg runs.
"""

import json

import pytest

from renders.models import RenderLog

from .. import media
from ..conftest import post, save

pytestmark = pytest.mark.django_db


def merged_channels(count):
    """`count` copies of a tone merged into one stream of `count` channels in no known order."""
    labels = "".join(f"[s{i}]" for i in range(count))
    return ["-filter_complex", f"[1:a]asplit={count}{labels};{labels}amerge=inputs={count}[a]", "-map", "0:v",
            "-map", "[a]"]


VIDEO = ["-f", "lavfi", "-i", "testsrc2=s=160x90:r=25:d=1"]
TONE = ["-f", "lavfi", "-i", "sine=f=440:d=1"]
H264 = ["-c:v", "libx264", "-preset", "ultrafast"]

CLIPS = {
    # audio: channel counts and layouts, sample rates, sample formats
    "mono_8k": (VIDEO + ["-f", "lavfi", "-i", "sine=d=1:r=8000"] + H264 + ["-c:a", "aac"], "mp4"),
    "5.1_layout": (VIDEO + TONE + H264 + ["-c:a", "aac", "-ac", "6"], "mp4"),
    "7.1_pcm": (VIDEO + TONE + H264 + ["-c:a", "pcm_s24le", "-ac", "8"], "mkv"),
    "9ch_unknown_order": (VIDEO + TONE + merged_channels(9) + H264 + ["-c:a", "pcm_s16le"], "mkv"),
    "16ch_unknown_order": (VIDEO + TONE + merged_channels(16) + H264 + ["-c:a", "pcm_s16le"], "mkv"),
    "96k_float": (VIDEO + ["-f", "lavfi", "-i", "sine=d=1:r=96000"] + H264 + ["-c:a", "pcm_f32le"], "mkv"),
    "22k_mp3": (VIDEO + ["-f", "lavfi", "-i", "sine=d=1:r=22050"] + H264 + ["-c:a", "libmp3lame"], "mkv"),
    # picture: pixel formats and bit depths, rotation, field order, odd sizes, timestamps
    "yuv422p10_h264": (VIDEO + TONE + ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv422p10le",
                                       "-c:a", "aac"], "mp4"),
    "gray_ffv1": (VIDEO + TONE + ["-c:v", "ffv1", "-pix_fmt", "gray", "-c:a", "aac"], "mkv"),
    "rgb_ffv1": (VIDEO + TONE + ["-c:v", "ffv1", "-pix_fmt", "bgr0", "-c:a", "aac"], "mkv"),
    "yuva420p_vp9": (VIDEO + TONE + ["-vf", "format=yuva420p", "-c:v", "libvpx-vp9", "-deadline", "realtime",
                                     "-cpu-used", "8", "-c:a", "libopus"], "webm"),
    "rotated_270": (VIDEO + TONE + H264 + ["-c:a", "aac", "-metadata:s:v", "rotate=270"], "mp4"),
    "interlaced_tff": (["-f", "lavfi", "-i", "testsrc2=s=320x180:r=25:d=1"] + TONE + [
        "-c:v", "libx264", "-preset", "ultrafast", "-flags", "+ildct+ilme", "-x264-params", "tff=1",
        "-field_order", "tt", "-c:a", "aac"], "mkv"),
    "odd_size_321x243": (["-f", "lavfi", "-i", "testsrc2=s=321x243:r=25:d=1"] + TONE + [
        "-c:v", "ffv1", "-c:a", "aac"], "mkv"),
    "h264_in_avi": (VIDEO + TONE + H264 + ["-c:a", "libmp3lame", "-bsf:v", "h264_mp4toannexb"], "avi"),
    "mpeg2_ts_no_audio": (VIDEO + ["-c:v", "mpeg2video", "-an"], "ts"),
    "low_fps_5": (["-f", "lavfi", "-i", "testsrc2=s=160x90:r=5:d=1"] + TONE + H264 + ["-c:a", "aac"], "mp4"),
}


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    d = tmp_path_factory.mktemp("inputs")
    return {name: media.make(d / f"{name}.{ext}", *args, "-t", "1") for name, (args, ext) in CLIPS.items()}


@pytest.mark.parametrize("name", CLIPS)
def test_every_input_property_renders(api, made, tmp_path, name):
    clip = made[name]
    for endpoint, fields in (("/api/trim", {"start": "0", "end": "0.8"}),
                             ("/api/demo/render", {"title": "Demo", "speed": "1.5", "start": "0.1", "duration": "0.3"}),
                             ("/api/trim/preview", {"start": "0", "duration": "0.8"})):
        r = post(api, endpoint, {"video": clip, **fields})
        assert r.status_code == 200, (endpoint, r.body[:300])
        info = media.probe(save(r, tmp_path / "o.mp4"))
        assert info["vcodec"] == "h264" and info["pix_fmt"] == "yuv420p"
        if endpoint != "/api/trim/preview":  # (a preview of a silent source stays silent)
            assert info["acodec"] == "aac" and info["channels"] == 2
            assert (info["width"], info["height"]) == (320, 180) and info["sample_rate"] == 48000
            assert abs(info["a_duration"] - info["v_duration"]) <= 1 / 25 + 1e-3


def test_unknown_channel_order_is_mixed_down_with_every_channel(api, made, tmp_path):
    r = post(api, "/api/trim", {"video": made["9ch_unknown_order"], "start": "0"})
    assert r.status_code == 200
    assert abs(media.dominant_frequency(save(r, tmp_path / "o.mp4"), 0.3) - 440) < 20  # the tone survived


def test_interlaced_input_is_deinterlaced(api, made):
    from renders.media import builders
    from renders.media.probe import probe_video
    from renders.media.spec import house_format

    info = probe_video(made["interlaced_tff"], "video")
    assert info.interlaced and not probe_video(made["mono_8k"], "video").interlaced
    assert "bwdif=" in builders.normalize_graph(0, info, house_format(), 1.0)[0]
    assert "bwdif" not in builders.normalize_graph(0, probe_video(made["mono_8k"], "video"), house_format(), 1.0)[0]
    r = post(api, "/api/trim", {"video": made["interlaced_tff"], "start": "0"})
    assert RenderLog.objects.get(id=r["X-Render-Id"]).inputs[0]["interlaced"] is True


@pytest.fixture(scope="module")
def costly(tmp_path_factory):
    d = tmp_path_factory.mktemp("costly")
    return {
        "pixels": media.make(d / "big.mkv", "-f", "lavfi", "-i", "color=c=gray:s=1280x720:r=25:d=0.2",
                             "-c:v", "ffv1"),
        "fps": media.make(d / "fast.mkv", "-f", "lavfi", "-i", "testsrc2=s=64x64:r=1000:d=0.2", "-c:v", "ffv1"),
        "channels": media.make(d / "many.mkv", *VIDEO, *TONE, *merged_channels(17), "-c:v", "ffv1",
                               "-c:a", "pcm_s16le", "-t", "0.2"),
    }


@pytest.mark.parametrize(("kind", "setting", "limit", "words"), [
    ("pixels", "VIDEOAPI_MAX_INPUT_PIXELS", 640 * 360, "VIDEOAPI_MAX_INPUT_PIXELS"),
    ("fps", "VIDEOAPI_MAX_INPUT_FPS", 240, "at most 240 fps"),
    ("channels", "VIDEOAPI_MAX_AUDIO_CHANNELS", 16, "at most 16 are accepted"),
])
def test_cost_limits_refuse_before_ffmpeg_runs(api, costly, settings, kind, setting, limit, words):
    setattr(settings, setting, limit)
    r = post(api, "/api/trim", {"video": costly[kind], "start": "0"})
    assert r.status_code == 400
    body = json.loads(r.body)
    assert body["code"] == "invalid_input" and words in body["fields"]["video"][0]
    log = RenderLog.objects.get(id=r["X-Render-Id"])
    assert log.ffmpeg_argv == [] and log.status == "rejected"  # FFmpeg never ran


def test_default_limits_admit_real_camera_formats(settings):
    assert settings.VIDEOAPI_MAX_INPUT_PIXELS >= 7680 * 4320  # 8K phones
    assert settings.VIDEOAPI_MAX_INPUT_FPS >= 240  # phone slow motion
    assert settings.VIDEOAPI_MAX_AUDIO_CHANNELS >= 16
