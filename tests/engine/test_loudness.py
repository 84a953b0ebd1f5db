"""loudness: EBU R128 normalisation on every house-format endpoint (issue 21, API.md "Finishing").

Outputs are measured here independently of the code under test, with
FFmpeg's own `ebur128=peak=true` meter.
"""

import math
import re
import subprocess

import imageio_ffmpeg
import pytest

from renders import plans
from renders.media import loudness
from renders.models import RenderLog

from .. import media
from ..apidoc import form, schema
from ..conftest import post, save

pytestmark = pytest.mark.django_db
WEB = -16.0


def tone(path, dbfs, seconds=2.0, freq=440, extra=""):
    """A 320x240 clip with a stereo sine whose peak is `dbfs` (0 = full scale), or silence (None);
    `extra` is added to the sound's expression."""
    amplitude = 0 if dbfs is None else 10 ** (dbfs / 20)
    expression = f"{amplitude:.6f}*sin(2*PI*{freq}*t){extra}"
    return media.make(path, "-f", "lavfi", "-i", f"testsrc2=s=320x240:r=25:d={seconds}",
                      "-f", "lavfi", "-i", f"aevalsrc='{expression}':s=48000:c=stereo:d={seconds}",
                      "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "192k",
                      "-shortest")


@pytest.fixture(scope="module")
def tones(tmp_path_factory):
    d = tmp_path_factory.mktemp("loud")
    return {"quiet": tone(d / "quiet.mp4", -30), "loud": tone(d / "loud.mp4", -3),
            "silent": tone(d / "silent.mp4", None),
            # -30 dBFS with a click near full scale: +15 dB of gain would clip it
            "peaky": tone(d / "peaky.mp4", -30, extra="+between(t,1,1.0001)*0.9"),
            "peaky_long": tone(d / "peaky_long.mp4", -30, seconds=4.0, extra="+between(t,1,1.0001)*0.9")}


@pytest.fixture(scope="module")
def house(tmp_path_factory, tones):
    d = tmp_path_factory.mktemp("loudhouse")
    return {name: media.house_clip(d / f"{name}.mp4", tones[name]) for name in ("quiet", "loud")}


def r128(path, start=None, length=None) -> dict:
    """Integrated loudness (LUFS) and true peak (dBTP) of `path`'s sound, or of [start, start + length)."""
    window = []
    if start is not None:
        window = ["-ss", f"{start}", "-t", f"{length}"]
    done = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostats", "-nostdin", *window,
                           "-i", str(path), "-map", "0:a:0", "-af", "ebur128=peak=true", "-f", "null", "-"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    summary = done.stderr[done.stderr.rindex("Summary:"):]
    integrated = float(re.search(r"I:\s+(-?[\d.]+|-inf) LUFS", summary)[1])
    peak = re.search(r"True peak:\s+Peak:\s+(-?[\d.]+|-inf) dBFS", summary)[1]
    return {"i": integrated, "tp": float(peak)}


def assert_on_target(measured, target=WEB):
    assert abs(measured["i"] - target) <= 1.0, measured
    assert measured["tp"] <= -1.0, measured


@pytest.mark.parametrize("level", ["quiet", "loud"])
def test_intro_template_to_web(api, tones, tmp_path, level):
    before = r128(tones[level])
    r = post(api, "/api/intro/render", {"video": tones[level], "full_name": "Ada", "role": "Engineer",
                                        "team": "Analytical", "loudness": "web"})
    assert r.status_code == 200, r.body[:300]
    after = r128(save(r, tmp_path / "o.mp4"))
    assert abs(before["i"] - WEB) > 10  # it had to move
    assert_on_target(after)
    log = RenderLog.objects.get(id=r["X-Render-Id"])
    applied = log.details["loudness"]
    assert applied["target"] == WEB and applied["mode"] == "linear"
    assert abs(applied["measured"]["i"] - before["i"]) < 1.0
    assert abs(applied["gain_db"] - (WEB - applied["measured"]["i"])) < 0.01
    assert log.params["spec"]["loudness"] == WEB
    assert plans.load(log.params).spec.loudness == WEB


@pytest.mark.parametrize("level", ["quiet", "loud"])
def test_trim_accurate_to_a_number(api, tones, tmp_path, level):
    r = post(api, "/api/trim", {"video": tones[level], "start": "0.2", "end": "1.8", "loudness": "-20"})
    assert r.status_code == 200, r.body[:300]
    assert_on_target(r128(save(r, tmp_path / "o.mp4")), -20.0)


def test_demo_measures_after_the_speed_change(api, tones, tmp_path):
    r = post(api, "/api/demo/render", {"video": tones["loud"], "title": "Fast", "speed": "2", "loudness": "-23"})
    assert r.status_code == 200, r.body[:300]
    assert_on_target(r128(save(r, tmp_path / "o.mp4")), -23.0)


def test_closing_measures_after_the_fade_out(api, tones, tmp_path):
    r = post(api, "/api/closing/render", {"video": tones["quiet"], "cta": "Sign up", "fade_out": "0.5",
                                          "loudness": "streaming"})
    assert r.status_code == 200, r.body[:300]
    # the fade-out is part of what was measured, so the whole output lands on the target
    assert_on_target(r128(save(r, tmp_path / "o.mp4")), -14.0)


def test_peaky_short_input_is_capped_under_the_ceiling(api, tones, tmp_path):
    """Under 3 s loudnorm's dynamic mode cannot run: one gain, capped so the peak stays under the ceiling."""
    r = post(api, "/api/trim", {"video": tones["peaky"], "start": "0", "loudness": "web"})
    assert r.status_code == 200, r.body[:300]
    out = save(r, tmp_path / "o.mp4")
    measured = r128(out)
    assert measured["tp"] <= -1.0, measured
    assert measured["i"] < WEB - 5, measured  # quieter than the target: the peak decides
    applied = RenderLog.objects.get(id=r["X-Render-Id"]).details["loudness"]
    assert applied["mode"] == "capped", applied
    assert abs(measured["i"] - (applied["measured"]["i"] + applied["gain_db"])) <= 1.0, (measured, applied)


def test_peaky_input_falls_back_to_dynamic_mode_at_the_house_rate(api, tones, tmp_path):
    """A gain the true peak does not allow: loudnorm's dynamic mode (192 kHz inside), still on target,
    under the ceiling and at 48 kHz."""
    r = post(api, "/api/trim", {"video": tones["peaky_long"], "start": "0", "loudness": "web"})
    assert r.status_code == 200, r.body[:300]
    out = save(r, tmp_path / "o.mp4")
    measured = r128(out)
    assert measured["tp"] <= -1.0, measured
    assert abs(measured["i"] - WEB) <= 2.0, measured
    assert media.probe(out)["sample_rate"] == 48000
    applied = RenderLog.objects.get(id=r["X-Render-Id"]).details["loudness"]
    assert applied["mode"] == "dynamic", applied


def test_silent_clip_stays_silent(api, tones, tmp_path):
    r = post(api, "/api/trim", {"video": tones["silent"], "start": "0", "loudness": "web"})
    assert r.status_code == 200, r.body[:300]
    out = r128(save(r, tmp_path / "o.mp4"))
    assert math.isinf(out["tp"]) or out["tp"] < -90, out
    applied = RenderLog.objects.get(id=r["X-Render-Id"]).details["loudness"]
    assert applied["mode"] == "none" and applied["gain_db"] == 0.0 and applied["measured"]["i"] is None


def test_clip_without_sound_is_fine(api, clips, tmp_path):
    r = post(api, "/api/trim", {"video": clips.noaudio, "start": "0", "loudness": "web"})
    assert r.status_code == 200, r.body[:300]
    applied = RenderLog.objects.get(id=r["X-Render-Id"]).details["loudness"]
    assert applied["mode"] == "none" and applied["reason"] == "no audio"


def assert_halves_on_target(out):
    """Each 2 s half of a joined output on target, and within 1.5 LU of the other."""
    first, second = r128(out, 0, 2), r128(out, 2, 2)
    assert abs(first["i"] - second["i"]) <= 1.5, (first, second)
    assert_on_target(first)
    assert_on_target(second)


def test_join_reencoded_every_input_to_target(api, tones, tmp_path):
    r = post(api, "/api/concatenate", {"videos": [tones["quiet"], tones["loud"]], "loudness": "web"})
    assert r.status_code == 200, r.body[:300]
    assert r["X-Concat-Mode"] == "reencode"
    out = save(r, tmp_path / "o.mp4")
    assert_halves_on_target(out)
    applied = RenderLog.objects.get(id=r["X-Render-Id"]).details["loudness"]
    assert [item["field"] for item in applied["inputs"]] == ["videos[0]", "videos[1]"]


def test_join_multipart_with_crossfade(api, tones, tmp_path):
    r = post(api, "/api/concatenate-multipart", {"segment_0": tones["loud"], "segment_1": tones["quiet"],
                                                 "transition": "crossfade", "loudness": "broadcast"})
    assert r.status_code == 200, r.body[:300]
    out = save(r, tmp_path / "o.mp4")
    first, second = r128(out, 0, 1.5), r128(out, 2.2, 1.5)
    assert abs(first["i"] - second["i"]) <= 1.5, (first, second)
    assert abs(first["i"] + 23) <= 1.0


def test_join_by_copy_keeps_copying_the_picture(api, house, tmp_path):
    without = post(api, "/api/concatenate", {"videos": [house["quiet"], house["loud"]]})
    assert without["X-Concat-Mode"] == "copy"
    plain = save(without, tmp_path / "plain.mp4")
    assert abs(r128(plain, 0, 2)["i"] - r128(plain, 2, 2)["i"]) > 20  # the jump the issue measured
    r = post(api, "/api/concatenate", {"videos": [house["quiet"], house["loud"]], "loudness": "web"})
    assert r.status_code == 200, r.body[:300]
    assert r["X-Concat-Mode"] == "copy"
    out = save(r, tmp_path / "o.mp4")
    assert_halves_on_target(out)
    log = RenderLog.objects.get(id=r["X-Render-Id"])
    assert log.details["mode"] == "copy"
    # the picture is the inputs' own packets: the same as the plain copy join's
    assert media.video_packets(out) == media.video_packets(plain)


@pytest.mark.parametrize("value", ["-40", "loud", "-9", "nan", "inf"])
def test_bad_values_name_the_field(api, tones, value):
    r = post(api, "/api/trim", {"video": tones["quiet"], "start": "0", "loudness": value})
    assert r.status_code == 400, r.body[:300]
    assert list(r.json()["fields"]) == ["loudness"]


def test_fast_trim_refuses_loudness(api, tones):
    r = post(api, "/api/trim", {"video": tones["quiet"], "start": "0", "mode": "fast", "loudness": "web"})
    assert r.status_code == 400, r.body[:300]
    assert list(r.json()["fields"]) == ["loudness"]


def test_options_and_schema_list_it(api, client):
    options = api.get("/api/options").json()
    for path in ("/api/trim", "/api/concatenate", "/api/concatenate-multipart", "/api/intro/render",
                 "/api/closing/render"):
        field = options["endpoints"][path]["fields"]["loudness"]
        assert field["choices"] == ["off", "web", "streaming", "broadcast"]
        assert (field["min_value"], field["max_value"]) == (-31, -10)
    assert "loudness" not in options["endpoints"]["/api/trim/preview"]["fields"]
    doc = schema(client)
    for path in ("/api/trim", "/api/concatenate", "/api/concatenate-multipart", "/api/persona/render"):
        described = form(doc, path)["properties"]["loudness"]
        assert described["default"] == "off" and described["oneOf"][0]["enum"][1:] == ["web", "streaming", "broadcast"]
        assert described["oneOf"][1] == {"type": "number", "minimum": -31, "maximum": -10}
    assert "loudness" not in form(doc, "/api/trim/preview")["properties"]


def test_off_is_the_default(api, tones, tmp_path):
    r = post(api, "/api/trim", {"video": tones["quiet"], "start": "0", "loudness": "off"})
    assert r.status_code == 200
    log = RenderLog.objects.get(id=r["X-Render-Id"])
    assert "loudness" not in log.details and len(log.ffmpeg_argv) == 1
    assert log.params["spec"]["loudness"] is None


# ---- the pure parts -----------------------------------------------------------------------

STDERR = """[Parsed_ebur128_5 @ 0x7f] Summary:

  Integrated loudness:
    I:         -27.7 LUFS
    Threshold: -37.7 LUFS

  Loudness range:
    LRA:         0.0 LU
    Threshold: -47.7 LUFS
    LRA low:   -27.8 LUFS
    LRA high:  -27.7 LUFS

  True peak:
    Peak:      -29.8 dBFS
[out#0/null @ 0x55] video:0KiB audio:1500KiB
"""


def test_parse_and_filters():
    measured = loudness.parse_measurement(STDERR)
    assert measured == loudness.Measurement(i=-27.7, tp=-29.8, lra=0.0, thresh=-37.7)
    assert loudness.expected_mode(measured, -16, 2.0) == "linear"
    text = loudness.apply_filter(measured, -16)
    assert text == "volume=11.70dB"  # loudnorm's linear mode is this one gain; the filter itself costs more
    peaky = loudness.apply_filter(loudness.Measurement(i=-27.7, tp=-3.8, lra=0.0, thresh=-37.7), -16)
    assert "measured_I=-27.70" in peaky and "linear=true" in peaky and peaky.endswith(",aresample=48000")
    assert loudness.summary(measured, -16, 2.0)["gain_db"] == 11.7
    silent = loudness.parse_measurement(STDERR.replace("-27.7 LUFS", "-70.0 LUFS").replace("-29.8 dBFS", "-inf dBFS"))
    assert silent.silent and loudness.apply_filter(silent, -16) == ""
    assert loudness.summary(silent, -16, 2.0)["mode"] == "none"
    with pytest.raises(ValueError):
        loudness.parse_measurement("nothing here")


def test_peaky_input_expects_dynamic_mode():
    # +20 dB of gain would take a -10 dBTP peak to +10: loudnorm gives up linear mode
    peaky = loudness.Measurement(i=-36.0, tp=-10.0, lra=3.0, thresh=-46.0)
    assert loudness.expected_mode(peaky, -16, 3.0) == "dynamic"
    assert loudness.expected_mode(peaky, -16, 2.9) == "capped"
    assert loudness.applied_gain(peaky, -16, 2.9) == pytest.approx(8.5)  # -1.5 - (-10)
    wide = loudness.Measurement(i=-30.0, tp=-30.0, lra=18.0, thresh=-40.0)
    assert loudness.expected_mode(wide, -16, 10.0) == "linear"  # the target LRA follows the measured one
    assert loudness.target_lra(wide) == pytest.approx(18.1) and loudness.apply_filter(wide, -16) == "volume=14.00dB"


def test_targets():
    assert loudness.parse_target("off") is None
    assert loudness.parse_target("Web") == -16
    assert loudness.parse_target("-31") == -31 and loudness.parse_target(-10) == -10
    for bad in ("-31.5", "-9.9", "loud", "", "nan", None):
        with pytest.raises(ValueError):
            loudness.parse_target(bad)
