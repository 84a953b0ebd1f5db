"""loudness: EBU R128 normalisation on every house-format endpoint (issues 21 and 30, API.md "Finishing").

Outputs are measured here independently of the code under test, with
FFmpeg's own `ebur128=peak=true` meter.
"""

import math

import pytest

from renders import plans
from renders.media import loudness
from renders.models import RenderLog

from .. import media
from ..apidoc import form, schema
from ..conftest import post, save
from ..media import assert_on_target, r128

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


# ---- every kind of sound, long or short, to every target (issue 30): within 0.5 LU, peaks at most -1 dBTP

SOUNDS = {  # lavfi recipes of the kinds of sound the service is given (bench/loudness.py has the full table)
    "steady": "anoisesrc=c=pink:a=0.1:r=48000:seed=1",
    "bursty": "anoisesrc=c=pink:a=0.3:r=48000:seed=2,volume='lt(mod(t,1),0.25)':eval=frame",
    # the issue's clip: pink noise with short -5 dBFS clicks, -26 LUFS
    "spiky": "anoisesrc=c=pink:a=0.25:r=48000:seed=3[n];aevalsrc='0.56*lt(mod(t,0.5),0.0005)':s=48000[c];"
             "[n][c]amix=inputs=2:normalize=0",
}


def noise(path, kind, seconds):
    """A 128x128 clip with `seconds` of the `kind` of sound (kept as PCM: the recipe's own peaks)."""
    return media.make(path.with_suffix(".mov"), "-f", "lavfi", "-i", f"color=c=gray:s=128x128:r=25:d={seconds}",
                      "-filter_complex", f"{SOUNDS[kind]},atrim=end={seconds},aformat=channel_layouts=stereo[a]",
                      "-map", "0:v", "-map", "[a]", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "pcm_s16le",
                      "-t", f"{seconds}")


@pytest.fixture(scope="module")
def kinds(tmp_path_factory):
    d = tmp_path_factory.mktemp("sounds")
    return {(kind, seconds): noise(d / f"{kind}{seconds}", kind, seconds)
            for kind in SOUNDS for seconds in (1, 2, 4)}


# each kind at each length once, the five kinds of target spread over them (the bench has the cross product)
MATRIX = [("steady", 1, "-10"), ("steady", 2, "broadcast"), ("steady", 4, "-31"),
          ("bursty", 1, "web"), ("bursty", 2, "streaming"), ("bursty", 4, "-23"),
          ("spiky", 1, "streaming"), ("spiky", 2, "web"), ("spiky", 4, "-10")]


@pytest.mark.parametrize(("kind", "seconds", "target"), MATRIX)
def test_every_kind_of_sound_lands_on_target(api, kinds, tmp_path, kind, seconds, target):
    r = post(api, "/api/trim", {"video": kinds[kind, seconds], "start": "0", "loudness": target})
    assert r.status_code == 200, r.body[:300]
    applied = RenderLog.objects.get(id=r["X-Render-Id"]).details["loudness"]
    measured = r128(save(r, tmp_path / "o.mp4"))
    assert abs(measured["i"] - loudness.parse_target(target)) <= 0.5, (measured, applied, applied.get("limited"))
    assert measured["tp"] <= -1.0, (measured, applied)
    assert applied["mode"] in ("gain", "gain+limiter"), applied
    if kind == "spiky":  # one gain would push the clicks past the ceiling: the limiter catches them
        assert applied["mode"] == "gain+limiter" and applied["limited"], applied


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
    assert applied["target"] == WEB and applied["mode"] == "gain"
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


@pytest.mark.parametrize("name", ["peaky", "peaky_long"])
def test_peaky_input_is_limited_on_target(api, tones, tmp_path, name):
    """A gain the true peak does not allow (2 s: too short for loudnorm's dynamic mode; 4 s): the gain, a
    true-peak limiter, the limited sound measured and the gain corrected; on target, under the ceiling, 48 kHz."""
    r = post(api, "/api/trim", {"video": tones[name], "start": "0", "loudness": "web"})
    assert r.status_code == 200, r.body[:300]
    out = save(r, tmp_path / "o.mp4")
    assert_on_target(r128(out), tolerance=0.5)
    assert media.probe(out)["sample_rate"] == 48000
    applied = RenderLog.objects.get(id=r["X-Render-Id"]).details["loudness"]
    assert applied["mode"] == "gain+limiter", applied
    first = WEB - applied["measured"]["i"]
    assert applied["measured"]["tp"] + first > loudness.TRUE_PEAK  # one gain would have passed the ceiling
    assert 1 <= len(applied["limited"]) <= loudness.MAX_TRIES
    assert applied["limited"][0]["gain_db"] == pytest.approx(first, abs=0.01)
    assert applied["gain_db"] == pytest.approx(first + applied["correction_db"], abs=0.02)
    assert applied["correction_db"] > 0  # the limiter took loudness off with the click: it is given back
    rendered = [t for t in applied["limited"] if t["gain_db"] == applied["gain_db"]]  # the encode measured
    assert rendered and rendered[0]["tp"] <= loudness.PEAK_GOAL and abs(rendered[0]["i"] - WEB) <= 0.5


def test_silent_clip_stays_silent(api, tones, tmp_path):
    r = post(api, "/api/trim", {"video": tones["silent"], "start": "0", "loudness": "web"})
    assert r.status_code == 200, r.body[:300]
    out = r128(save(r, tmp_path / "o.mp4"))
    assert math.isinf(out["tp"]) or out["tp"] < -90, out
    applied = RenderLog.objects.get(id=r["X-Render-Id"]).details["loudness"]
    assert applied["mode"] == "silent" and applied["gain_db"] == 0.0 and applied["measured"]["i"] is None


def test_clip_without_sound_is_fine(api, clips, tmp_path):
    r = post(api, "/api/trim", {"video": clips.noaudio, "start": "0", "loudness": "web"})
    assert r.status_code == 200, r.body[:300]
    applied = RenderLog.objects.get(id=r["X-Render-Id"]).details["loudness"]
    assert applied["mode"] == "none" and applied["reason"] == "no audio"


def assert_halves_on_target(out, tolerance=1.0):
    """Each 2 s half of a joined output on target, and within 1.5 LU of the other."""
    first, second = r128(out, 0, 2), r128(out, 2, 2)
    assert abs(first["i"] - second["i"]) <= 1.5, (first, second)
    assert_on_target(first, tolerance=tolerance)
    assert_on_target(second, tolerance=tolerance)


def test_join_brings_each_segment_on_target(api, kinds, tmp_path):
    """A spiky segment (limited) and a steady one (one gain): each within 0.5 LU of the target."""
    r = post(api, "/api/concatenate", {"videos": [kinds["spiky", 2], kinds["steady", 2]], "loudness": "web"})
    assert r.status_code == 200, r.body[:300]
    assert_halves_on_target(save(r, tmp_path / "o.mp4"), tolerance=0.5)
    applied = RenderLog.objects.get(id=r["X-Render-Id"]).details["loudness"]
    assert [item["mode"] for item in applied["inputs"]] == ["gain+limiter", "gain"], applied


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
    assert loudness.mode(measured, -16) == "gain"
    assert loudness.apply_filter(measured, -16) == "volume=11.70dB"
    summary = loudness.summary(measured, -16)
    assert summary["gain_db"] == 11.7 and summary["mode"] == "gain" and "limited" not in summary
    silent = loudness.parse_measurement(STDERR.replace("-27.7 LUFS", "-70.0 LUFS").replace("-29.8 dBFS", "-inf dBFS"))
    assert silent.silent and loudness.apply_filter(silent, -16) == ""
    assert loudness.summary(silent, -16)["mode"] == "silent"
    assert loudness.summary(None, -16)["mode"] == "none"
    with pytest.raises(ValueError):
        loudness.parse_measurement("nothing here")


def test_peaky_input_gets_the_limiter():
    # +20 dB of gain would take a -10 dBTP peak to +10: the gain, then the limiter at 192 kHz
    peaky = loudness.Measurement(i=-36.0, tp=-10.0, lra=3.0, thresh=-46.0)
    assert loudness.mode(peaky, -16) == "gain+limiter"
    text = loudness.apply_filter(peaky, -16)
    assert text.startswith("volume=20.00dB,aresample=192000,alimiter=") and text.endswith(",aresample=48000")
    assert "level=0" in text and "latency=1" in text and f"limit={10 ** (loudness.LIMIT / 20):.5f}" in text
    edge = loudness.Measurement(i=-30.0, tp=-16.0, lra=3.0, thresh=-40.0)  # +14 dB: peak at -2.0 exactly
    assert loudness.mode(edge, -16) == "gain"


def test_corrections():
    peaky = loudness.Measurement(i=-36.0, tp=-10.0, lra=3.0, thresh=-46.0)

    def tried(gain, limit, i, tp):
        return loudness.Try(gain, limit, loudness.Measurement(i=i, tp=tp, lra=3.0, thresh=i - 10))

    first = tried(20.0, loudness.LIMIT, -18.0, -2.6)
    assert loudness.next_try(peaky, [first], -16) == pytest.approx((22.0, loudness.LIMIT))  # what it missed by
    assert loudness.next_try(peaky, [tried(20.0, loudness.LIMIT, -16.1, -2.6)], -16) is None  # close enough
    # +2 dB before the limiter gave +1 LU: the secant asks for 2 dB more per LU still missing
    second = tried(22.0, loudness.LIMIT, -17.0, -2.6)
    assert loudness.next_try(peaky, [first, second], -16) == pytest.approx((24.0, loudness.LIMIT))
    # the encoded peak 0.5 dB over the goal: the limit 0.7 dB lower, and half of that given back as gain
    over = tried(24.0, loudness.LIMIT, -16.1, loudness.PEAK_GOAL + 0.5)
    gain, limit = loudness.next_try(peaky, [over], -16)
    assert limit == pytest.approx(loudness.LIMIT - 0.7) and gain == pytest.approx(24.0 + 0.1 + 0.35)
    assert loudness.next_try(peaky, [tried(20.0, loudness.LIMIT, -60.0, -20)], -16)[0] == 20.0 + loudness.MAX_EXTRA
    assert loudness.best([first, second, over], -16) == second  # the nearest whose peak is under the goal
    summary = loudness.summary(peaky, -16, [first, second], second)
    assert summary["mode"] == "gain+limiter" and summary["gain_db"] == 22.0 and summary["correction_db"] == 2.0
    assert summary["limited"][0] == {"gain_db": 20.0, "limit_dbtp": loudness.LIMIT, "i": -18.0, "tp": -2.6,
                                     "lra": 3.0, "thresh": -28.0}
    assert loudness.apply_filter(peaky, -16, second).startswith("volume=22.00dB,")


def test_codec_band():
    """FFmpeg's AAC encoder's cutoff for the house bitrates (libavcodec/psymodel.h)."""
    assert [loudness.codec_cutoff(b) for b in ("96k", "160k", "192k", "128000")] == [15000, 17000, 18000, 16000]
    assert loudness.measure_filter(17000) == ("firequalizer=gain='if(lt(f,17000),0,-100)',"
                                              "ebur128=peak=true:framelog=quiet")


def test_targets():
    assert loudness.parse_target("off") is None
    assert loudness.parse_target("Web") == -16
    assert loudness.parse_target("-31") == -31 and loudness.parse_target(-10) == -10
    for bad in ("-31.5", "-9.9", "loud", "", "nan", None):
        with pytest.raises(ValueError):
            loudness.parse_target(bad)
