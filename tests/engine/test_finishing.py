"""Finishing on every house-format endpoint: captions, a logo, a soundtrack that ducks (API.md "Finishing").

Real FFmpeg on tiny generated clips; pictures are checked by their pixels, sound by the level of each
tone (an FFT of the decoded output), outputs by probing.
"""

import json

import numpy as np
import pytest

from renders.media import captions, text
from renders.models import RenderLog

from .. import media
from ..apidoc import form, schema
from ..conftest import post, save
from ..media import png_bomb

pytestmark = pytest.mark.django_db


def changed(a, b) -> float:
    """Share of pixels that differ visibly between two frames (or regions)."""
    return float((np.abs(a.astype(int) - b.astype(int)).max(axis=-1) > 30).mean())


def caption_area(frame):
    """The bottom-centre band of the safe area where captions are drawn."""
    height, width = frame.shape[:2]
    margin = text.safe_margin(width, height)
    return frame[height // 2: height - margin + 1, width // 4: 3 * width // 4]


def details(response) -> dict:
    return RenderLog.objects.get(id=response["X-Render-Id"]).details


# ---- captions ---------------------------------------------------------------------------------------


def test_captions_drawn_during_each_cue_only(api, grey, tmp_path):
    cues = media.srt(tmp_path / "c.srt", (0.2, 0.8, "Hello <i>world</i>"), (1.2, 1.6, "Second line"),
               (2.5, 3.0, "Past the end"))
    r = post(api, "/api/trim", {"video": grey, "start": "0", "captions": cues})
    assert r.status_code == 200, r.body[:300]
    out = save(r, tmp_path / "o.mp4")
    plain = media.frame_at(grey, 1.0)
    shown = {t: changed(caption_area(media.frame_at(out, t)), caption_area(plain)) for t in (0.1, 0.5, 1.0, 1.4, 1.8)}
    assert shown[0.5] > 0.01 and shown[1.4] > 0.01, shown
    assert shown[0.1] == shown[1.0] == shown[1.8] == 0, shown
    first, second = media.frame_at(out, 0.5), media.frame_at(out, 1.4)
    assert changed(caption_area(first), caption_area(second)) > 0.005  # two different texts
    top = first[: first.shape[0] // 2]  # nothing drawn outside the caption band
    assert changed(top, plain[: plain.shape[0] // 2]) == 0
    assert details(r)["captions"] == {"format": "srt", "cues": 2, "dropped": 1, "moved": []}
    log = RenderLog.objects.get(id=r["X-Render-Id"])
    assert [i["kind"] for i in log.inputs] == ["video", "captions"] and log.inputs[1]["cues"] == 3


def test_a_cue_running_past_the_end_is_cut_there(api, grey, tmp_path):
    cues = media.srt(tmp_path / "c.srt", (1.5, 9.0, "Until the end"))
    r = post(api, "/api/trim", {"video": grey, "start": "0", "end": "1.8", "captions": cues})
    assert r.status_code == 200, r.body[:300]
    out = save(r, tmp_path / "o.mp4")
    assert abs(media.probe(out)["v_duration"] - 1.8) < 0.05
    assert changed(caption_area(media.frame_at(out, 1.75)), caption_area(media.frame_at(grey, 1.0))) > 0.01
    assert details(r)["captions"]["cues"] == 1 and details(r)["captions"]["dropped"] == 0


def test_every_cue_past_the_end_draws_nothing(api, grey, tmp_path):
    cues = media.srt(tmp_path / "c.srt", (3.0, 4.0, "Later"), (5.0, 6.0, "Much later"))
    r = post(api, "/api/trim", {"video": grey, "start": "0", "captions": cues})
    assert r.status_code == 200, r.body[:300]
    out = save(r, tmp_path / "o.mp4")
    assert changed(media.frame_at(out, 1.0), media.frame_at(grey, 1.0)) == 0
    assert details(r)["captions"] == {"format": "srt", "cues": 0, "dropped": 2}


@pytest.mark.parametrize("field", ["captions", "logo", "music", "ducking"])
def test_fast_trim_refuses_finishing(api, clips, field):
    value = {"captions": clips.captions, "logo": clips.png, "music": clips.basic, "ducking": "false"}[field]
    r = post(api, "/api/trim", {"video": clips.basic, "start": "0", "mode": "fast", field: value})
    assert r.status_code == 400 and list(json.loads(r.body)["fields"]) == [field]


def test_webvtt_markup_and_settings_are_not_drawn(api, grey, tmp_path):
    vtt = tmp_path / "c.vtt"
    vtt.write_text("\ufeffWEBVTT - a header\nKind: captions\n\nNOTE a comment\n\nSTYLE\n::cue { color: red }\n\n"
                   "intro\n00:00.200 --> 00:00.800 align:center line:90%\n<v Ada><b>Hi</b> <c.loud>there</c>"
                   " <00:00.500>&amp; you</v>\n\n00:01.200 --> 00:01.800\nHi there &amp; you\n", encoding="utf-8")
    kind, cues = captions.parse(vtt.read_bytes())
    assert kind == "vtt" and [c.text for c in cues] == ["Hi there & you", "Hi there & you"]
    r = post(api, "/api/trim", {"video": grey, "start": "0", "captions": vtt})
    assert r.status_code == 200, r.body[:300]
    out = save(r, tmp_path / "o.mp4")
    # the marked-up cue and the plain one are drawn alike: no tag reached the picture
    assert changed(caption_area(media.frame_at(out, 0.5)), caption_area(media.frame_at(out, 1.5))) == 0
    assert changed(caption_area(media.frame_at(out, 0.5)), caption_area(media.frame_at(grey, 1.0))) > 0.01


def test_cjk_arabic_and_devanagari_cues_are_real_glyphs(api, grey, tmp_path):
    pairs = [("张张张", "这这这"), ("ععع", "ببب"), ("ककक", "खखख")]
    cues, at = [], 0.1
    for pair in pairs:
        for line in pair:
            cues.append((at, at + 0.25, line))
            at += 0.3
    r = post(api, "/api/trim", {"video": grey, "start": "0", "captions": media.srt(tmp_path / "c.srt", *cues)})
    assert r.status_code == 200, r.body[:300]
    out = save(r, tmp_path / "o.mp4")
    plain = caption_area(media.frame_at(grey, 1.0))
    frames = [caption_area(media.frame_at(out, start + 0.12)) for start, _end, _line in cues]
    for index in range(0, len(frames), 2):
        assert changed(frames[index], plain) > 0.005 and changed(frames[index + 1], plain) > 0.005
        assert changed(frames[index], frames[index + 1]) > 0.002, cues[index][2]  # not the same box twice


def test_cue_times_are_output_times_after_the_speed_change(api, grey, tmp_path):
    cues = media.srt(tmp_path / "c.srt", (0.3, 0.7, "In"), (0.9, 1.5, "Past the 1 s output"))
    r = post(api, "/api/demo/render", {"video": grey, "title": "Fast", "speed": "2", "captions": cues})
    assert r.status_code == 200, r.body[:300]
    assert abs(media.probe(save(r, tmp_path / "o.mp4"))["v_duration"] - 1.0) < 0.05
    assert details(r)["captions"] == {"format": "srt", "cues": 2, "dropped": 0, "moved": []}
    r = post(api, "/api/demo/render", {"video": grey, "title": "Fast", "speed": "4", "start": "0",
                                       "captions": cues})
    assert details(r)["captions"] == {"format": "srt", "cues": 1, "dropped": 1, "moved": []}  # 0.5 s of output


def test_cues_on_the_joined_timeline(api, grey, tmp_path):
    cues = media.srt(tmp_path / "c.srt", (2.5, 3.0, "In the second clip"))
    r = post(api, "/api/concatenate", {"videos": [grey, grey], "captions": cues})
    assert r.status_code == 200, r.body[:300]
    assert r["X-Concat-Mode"] == "reencode"
    out = save(r, tmp_path / "o.mp4")
    plain = caption_area(media.frame_at(grey, 1.0))
    assert changed(caption_area(media.frame_at(out, 2.7)), plain) > 0.01
    assert changed(caption_area(media.frame_at(out, 0.7)), plain) == 0


MALFORMED = [
    ("1\n00:00:01,000 -> 00:00:02,000\nText\n", 2, "bad timing line"),
    ("1\n00:00:01,000 --> 00:00:02,000\nOne\n\n2\n00:00:0x,000 --> 00:00:03,000\nTwo\n", 6, "bad timing line"),
    ("1\n00:00:02,000 --> 00:00:01,000\nBackwards\n", 2, "must end after it starts"),
    ("1\n00:00:01,000 --> 00:00:02,000\nOne\n\nsome garbage\n", 5, "expected a cue number"),
    ("1\n00:00:03,000 --> 00:00:04,000\nOne\n\n2\n00:00:01,000 --> 00:00:02,000\nTwo\n", 6, "in order"),
    ("1\n00:00:01,000 --> 00:00:02,000\n<i></i>\n", 3, "no text"),
    ("WEBVTT\n\n00:01.000 --> 00:02.000 colour:red\nText\n", 3, "unknown cue setting"),
    ("WEBVTT\n\n1:00:01.0 --> 00:02.000\nText\n", 3, "bad timing line"),
    ("1\n00:00:01,000 --> 00:00:02,000\nA \ue000 glyph\n", 3, "no installed font"),
    ("", 1, "empty"),
]


@pytest.mark.parametrize(("content", "line", "message"), MALFORMED)
def test_malformed_captions_name_the_line(api, clips, tmp_path, content, line, message):
    path = tmp_path / "c.srt"
    path.write_text(content, encoding="utf-8")
    r = post(api, "/api/trim", {"video": clips.basic, "start": "0", "captions": path})
    assert r.status_code == 400, r.body[:300]
    body = json.loads(r.body)
    assert list(body["fields"]) == ["captions"]
    assert body["fields"]["captions"][0].startswith(f"line {line}: ") and message in body["fields"]["captions"][0]


def test_non_utf8_and_binary_captions_name_the_line(api, clips, tmp_path):
    latin1 = tmp_path / "latin1.srt"
    latin1.write_bytes("1\n00:00:01,000 --> 00:00:02,000\nCaf\u00e9\n".encode("latin-1"))
    binary = tmp_path / "binary.srt"
    binary.write_bytes(clips.png.read_bytes())
    for path, line in ((latin1, 3), (binary, 1)):
        r = post(api, "/api/trim", {"video": clips.basic, "start": "0", "captions": path})
        assert r.status_code == 400, r.body[:300]
        assert json.loads(r.body)["fields"]["captions"][0].startswith(f"line {line}: ")


def test_caption_limits(api, clips, tmp_path):
    many = media.srt(tmp_path / "many.srt",
                     *[(k * 0.01, k * 0.01 + 0.005, "x") for k in range(captions.MAX_CUES + 1)])
    r = post(api, "/api/trim", {"video": clips.basic, "start": "0", "captions": many})
    assert r.status_code == 400 and "more than 2000 cues" in json.loads(r.body)["fields"]["captions"][0]
    big = tmp_path / "big.srt"
    big.write_text("1\n00:00:01,000 --> 00:00:02,000\n" + "x " * 600_000 + "\n", encoding="utf-8")
    r = post(api, "/api/trim", {"video": clips.basic, "start": "0", "captions": big})
    assert r.status_code == 400 and json.loads(r.body)["fields"]["captions"] == ["at most 1 MB"]


def test_parser_details():
    kind, cues = captions.parse(b"\xef\xbb\xbf1\r\n00:00:01,000 --> 00:00:02,500 X1:10 X2:20 Y1:1 Y2:2\r\n"
                                b"<font color=\"red\">{\\an8}Top</font>\r\n  second  \r\n\r\n"
                                b"2\r\n00:00:02.000 --> 00:00:03,000\r\nOverlap cut\r\n")
    assert kind == "srt"
    assert cues == (captions.Cue(1.0, 2.0, "Top\nsecond"), captions.Cue(2.0, 3.0, "Overlap cut"))
    assert captions.fit(cues, 2.5, 25) == ([(25, 50, "Top\nsecond"), (50, 62, "Overlap cut")], 0)
    assert captions.fit(cues, 1.0, 25) == ([], 2)


def test_two_thousand_cues_render_as_one_input(api, grey, tmp_path):
    """The limit's worth of cues: one concat input of stills, not an overlay per cue."""
    many = media.srt(tmp_path / "many.srt", *[(k * 0.002, k * 0.002 + 0.001, f"cue {k % 7}")
                                          for k in range(captions.MAX_CUES)])
    r = post(api, "/api/trim", {"video": grey, "start": "0", "captions": many})
    assert r.status_code == 200, r.body[:300]
    argv = RenderLog.objects.get(id=r["X-Render-Id"]).ffmpeg_argv[-1]
    assert argv.count("-i") == 2  # the video and the captions' list
    assert details(r)["captions"]["cues"] >= 1


# ---- logo ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def logos(tmp_path_factory):
    """A red 40x20 logo whose right half is transparent, and an SVG."""
    from PIL import Image

    d = tmp_path_factory.mktemp("logos")
    image = Image.new("RGBA", (40, 20), (255, 0, 0, 255))
    image.paste((0, 0, 0, 0), (20, 0, 40, 20))
    image.save(d / "logo.png")
    svg = d / "logo.svg"
    svg.write_text('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10" '
                   'fill="red"/></svg>')
    return {"png": d / "logo.png", "svg": svg, "dir": d}


def red(frame):
    return (frame[..., 0] > 170) & (frame[..., 1] < 90) & (frame[..., 2] < 90)


@pytest.mark.parametrize(("canvas", "position"), [("16:9", "top-left"), ("9:16", "top-right"), ("1:1", "bottom-left"),
                                              ("4:5", "bottom-right")])
def test_logo_in_its_corner_inside_the_safe_margin(api, grey, logos, tmp_path, canvas, position):
    r = post(api, "/api/trim", {"video": grey, "start": "0", "canvas": canvas, "fit": "cover", "logo": logos["png"],
                                "logo_position": position, "logo_size": "0.2"})
    assert r.status_code == 200, r.body[:300]
    frame = media.frame_at(save(r, tmp_path / "o.mp4"), 1.0)
    height, width = frame.shape[:2]
    margin = text.safe_margin(width, height)
    rows, columns = np.nonzero(red(frame))
    assert len(rows) > 0.5 * (0.2 * width) ** 2 / 4  # the opaque half, about (w/2 x h) of the logo
    vertical, horizontal = position.split("-")
    assert (rows.min() >= margin - 1) if vertical == "top" else (rows.max() <= height - margin)
    assert (rows.max() < height // 2) if vertical == "top" else (rows.min() > height // 2)
    assert (columns.min() >= margin - 1) if horizontal == "left" else (columns.max() <= width - margin)
    assert (columns.max() < width // 2) if horizontal == "left" else (columns.min() > width // 2)
    # the transparent half shows the picture: grey right of the red half, inside the logo's box
    x, y, w, h = details(r)["logo"]["box"]
    assert abs(int(frame[y + h // 2, x + 3 * w // 4, 0]) - 128) < 20
    assert abs(w - round(0.2 * width)) <= 1


def test_logo_opacity(api, grey, logos, tmp_path):
    r = post(api, "/api/trim", {"video": grey, "start": "0", "logo": logos["png"], "logo_opacity": "0.5",
                                "logo_position": "top-left", "logo_size": "0.3"})
    assert r.status_code == 200, r.body[:300]
    frame = media.frame_at(save(r, tmp_path / "o.mp4"), 1.0).astype(int)
    x, y, w, h = details(r)["logo"]["box"]
    r_, g_, b_ = frame[y + h // 2, x + w // 4]
    assert abs(r_ - (255 + 128) / 2) < 20 and abs(g_ - 64) < 20, (r_, g_, b_)


def test_svg_and_bomb_logos_are_refused_before_decoding(api, clips, logos, tmp_path):
    r = post(api, "/api/trim", {"video": clips.basic, "start": "0", "logo": logos["svg"]})
    assert r.status_code == 415 and "logo" in json.loads(r.body)["fields"]
    r = post(api, "/api/trim", {"video": clips.basic, "start": "0", "logo": png_bomb(tmp_path / "b.png", 9000)})
    assert r.status_code == 400 and "9000x9000" in json.loads(r.body)["fields"]["logo"][0]
    r = post(api, "/api/trim", {"video": clips.basic, "start": "0", "logo": clips.basic})
    assert r.status_code == 415 and "logo" in json.loads(r.body)["fields"]
    assert RenderLog.objects.filter(ffmpeg_argv=[]).count() == 3


@pytest.mark.parametrize(("field", "value"), [("logo_size", "0.6"), ("logo_opacity", "2"), ("logo_position", "middle"),
                                          ("music_volume", "3"), ("ducking", "perhaps")])
def test_bad_finishing_values_name_the_field(api, clips, field, value):
    r = post(api, "/api/trim", {"video": clips.basic, "start": "0", field: value})
    assert r.status_code == 400 and list(json.loads(r.body)["fields"]) == [field]


# ---- music --------------------------------------------------------------------------------------------


def level(path, start, length, freq) -> float:
    """The level (dB, relative) of the `freq` Hz tone in the first channel of `path` over [start, start+length)."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        rate = stream.codec_context.sample_rate
        samples = np.concatenate([f.to_ndarray()[0] for f in container.decode(stream)])
    window = samples[int(start * rate): int((start + length) * rate)]
    spectrum = np.abs(np.fft.rfft(window * np.hanning(len(window))))
    bins = np.fft.rfftfreq(len(window), 1 / rate)
    band = spectrum[(bins > freq - 15) & (bins < freq + 15)]
    return 20 * np.log10(band.max() / len(window) + 1e-12)


@pytest.fixture(scope="module")
def sounds(tmp_path_factory):
    d = tmp_path_factory.mktemp("music")
    return {
        "short": media.make(d / "short.wav", "-f", "lavfi", "-i", "sine=f=220:d=0.7:r=44100"),
        "long": media.make(d / "long.mp3", "-f", "lavfi", "-i", "sine=f=220:d=5", "-c:a", "libmp3lame"),
        "flac": media.make(d / "m.flac", "-f", "lavfi", "-i", "sine=f=220:d=1"),
        "ogg": media.make(d / "m.ogg", "-f", "lavfi", "-i", "sine=f=220:d=1", "-c:a", "libvorbis"),
        "m4a": media.make(d / "m.m4a", "-f", "lavfi", "-i", "sine=f=220:d=1", "-c:a", "aac"),
        "adts": media.make(d / "m.aac", "-f", "lavfi", "-i", "sine=f=220:d=1", "-c:a", "aac", "-f", "adts"),
        # 3 s of flat grey whose sound is "speech" (a 1 kHz tone at -20 dBFS) for 0.8 s, then a pause
        "speech": media.make(d / "speech.mp4", "-f", "lavfi", "-i", "color=c=0x808080:s=320x180:r=25:d=3",
                             "-f", "lavfi", "-i", "aevalsrc='0.1*sin(2*PI*1000*t)*lt(t,0.8)':s=48000:d=3",
                             "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac",
                             "-shortest"),
    }


def test_music_under_a_video_without_sound_is_looped(api, clips, sounds, tmp_path):
    r = post(api, "/api/trim", {"video": clips.noaudio, "start": "0", "music": sounds["short"]})
    assert r.status_code == 200, r.body[:300]
    out = save(r, tmp_path / "o.mp4")
    info = media.probe(out)
    assert abs(info["a_duration"] - 2.0) < 0.05 and info["channels"] == 2 and info["sample_rate"] == 48000
    assert media.dominant_frequency(out, 0.2) == pytest.approx(220, abs=8)
    assert media.dominant_frequency(out, 0.8) == pytest.approx(220, abs=8)  # past the 0.7 s file: looped
    assert level(out, 0.2, 0.3, 220) > level(out, 1.75, 0.2, 220) + 6  # the fade-out
    assert details(r)["music"] == {"volume_db": -18.0, "ducking": True, "looped": True, "duration": 0.7,
                                   "fade_out": 1.0}
    log = RenderLog.objects.get(id=r["X-Render-Id"])
    assert [i["kind"] for i in log.inputs] == ["video", "audio"]


def test_music_ducks_under_speech(api, sounds, tmp_path):
    outs = {"none": save(post(api, "/api/trim", {"video": sounds["speech"], "start": "0"}), tmp_path / "none.mp4")}
    for ducking in ("true", "false"):
        r = post(api, "/api/trim", {"video": sounds["speech"], "start": "0", "music": sounds["long"],
                                    "ducking": ducking, "music_volume": "-12"})
        assert r.status_code == 200, r.body[:300]
        outs[ducking] = save(r, tmp_path / f"{ducking}.mp4")
    speech, pause = (0.3, 0.4), (1.4, 0.4)  # the fade-out starts at 2 s
    ducked = level(outs["true"], *speech, 220), level(outs["true"], *pause, 220)
    plain = level(outs["false"], *speech, 220), level(outs["false"], *pause, 220)
    assert ducked[1] - ducked[0] >= 10, ducked  # at least 10 dB lower under speech than in the pause
    assert abs(plain[1] - plain[0]) < 2, plain  # without ducking the soundtrack stays level
    assert abs(ducked[1] - plain[1]) < 2  # and in the pause it is back to its level
    # the video's own sound is not lowered by the mix (amix without normalising)
    assert abs(level(outs["true"], *speech, 1000) - level(outs["none"], *speech, 1000)) < 1


def test_long_music_is_cut_and_faded(api, grey, sounds, tmp_path):
    plain = save(post(api, "/api/trim", {"video": grey, "start": "0"}), tmp_path / "plain.mp4")
    r = post(api, "/api/trim", {"video": grey, "start": "0", "music": sounds["long"], "ducking": "false",
                                "music_volume": "0"})
    assert r.status_code == 200, r.body[:300]
    out = save(r, tmp_path / "o.mp4")
    assert abs(media.probe(out)["a_duration"] - 2.0) < 0.05
    start, end = level(out, 0.3, 0.4, 220), level(out, 1.8, 0.2, 220)
    assert start - end > 10 and details(r)["music"]["looped"] is False
    assert abs(level(out, 0.3, 0.4, 440) - level(plain, 0.3, 0.4, 440)) < 1  # the video's own tone kept


@pytest.mark.parametrize("video", ["noaudio", "speech"])
def test_loudness_applies_to_the_mix(api, clips, sounds, tmp_path, video):
    """With music, the output's sound is the mix: it is what reaches the loudness target (a silent video's
    soundtrack included); a template and a trim alike."""
    from ..media import assert_on_target, r128

    source = clips.noaudio if video == "noaudio" else sounds["speech"]
    for path, fields in (("/api/trim", {"start": "0"}),
                         ("/api/closing/render", {"cta": "Sign up", "fade_out": "0"})):
        r = post(api, path, {"video": source, "music": sounds["long"], "loudness": "web", **fields})
        assert r.status_code == 200, r.body[:300]
        out = save(r, tmp_path / "o.mp4")
        assert_on_target(r128(out))
        assert details(r)["loudness"]["mode"] in ("gain", "gain+limiter")


@pytest.mark.parametrize("kind", ["flac", "ogg", "m4a", "adts"])
def test_common_audio_formats(api, clips, sounds, tmp_path, kind):
    r = post(api, "/api/trim", {"video": clips.noaudio, "start": "0", "end": "1", "music": sounds[kind]})
    assert r.status_code == 200, (kind, r.body[:300])
    assert media.dominant_frequency(save(r, tmp_path / "o.mp4"), 0.2) == pytest.approx(220, abs=8)


def test_text_and_image_as_music_are_415(api, clips):
    for bad in (clips.text, clips.png, clips.playlist):
        r = post(api, "/api/trim", {"video": clips.basic, "start": "0", "music": bad})
        assert r.status_code == 415, r.body[:300]
        assert list(json.loads(r.body)["fields"]) == ["music"]


def test_music_longer_than_the_input_limit(api, clips, sounds, settings):
    settings.VIDEOAPI_MAX_INPUT_SECONDS = 3
    r = post(api, "/api/trim", {"video": clips.basic, "start": "0", "music": sounds["long"]})
    assert r.status_code == 400 and "at most 3 s" in json.loads(r.body)["fields"]["music"][0]


# ---- every endpoint; joins ------------------------------------------------------------------------------

FIELDS = ["captions", "logo", "logo_position", "logo_size", "logo_opacity", "music", "music_volume", "ducking"]


def test_options_and_schema_list_every_field(api, client):
    options = api.get("/api/options").json()["endpoints"]
    for path, endpoint in options.items():
        if path == "/api/trim/preview":
            assert not set(FIELDS) & set(endpoint["fields"])
            continue
        fields = endpoint["fields"]
        assert set(FIELDS) <= set(fields), path
        assert (fields["captions"]["type"], fields["logo"]["type"], fields["music"]["type"]) == \
            ("captions", "image", "audio")
        assert fields["logo_position"]["choices"] == ["top-left", "top-right", "bottom-left", "bottom-right"]
        assert fields["logo_position"]["default"] == "top-right"
        assert (fields["logo_size"]["min_value"], fields["logo_size"]["max_value"], fields["logo_size"]["default"]) \
            == (0.05, 0.5, 0.12)
        assert (fields["music_volume"]["min_value"], fields["music_volume"]["default"]) == (-60, -18)
        assert fields["ducking"] == {**fields["ducking"], "type": "boolean", "default": True}
        assert fields["captions"]["max_bytes"] == 1024 * 1024 and fields["captions"]["max_cues"] == 2000
    doc = schema(client)
    for path in options:
        properties = form(doc, path)["properties"]
        if path == "/api/trim/preview":
            assert not set(FIELDS) & set(properties)
            continue
        assert set(FIELDS) <= set(properties), path
        assert {properties[name]["format"] for name in ("captions", "logo", "music")} == {"binary"}
        assert properties["ducking"]["type"] == "boolean" and properties["logo_size"]["maximum"] == 0.5


def test_every_finishing_on_a_template(api, grey, logos, sounds, tmp_path):
    cues = media.srt(tmp_path / "c.srt", (0.2, 1.8, "Captioned"))
    r = post(api, "/api/intro/render", {"video": grey, "full_name": "Ada", "role": "Engineer", "team": "Analytical",
                                        "captions": cues, "logo": logos["png"], "music": sounds["short"],
                                        "loudness": "web"})
    assert r.status_code == 200, r.body[:300]
    out = save(r, tmp_path / "o.mp4")
    info = media.probe(out)
    assert (info["width"], info["height"], info["frames"]) == (320, 180, 50)
    assert set(details(r)) >= {"loudness", "captions", "logo", "music"}
    assert red(media.frame_at(out, 1.0)).sum() > 20


@pytest.fixture(scope="module")
def house(tmp_path_factory, grey, clips):
    d = tmp_path_factory.mktemp("finhouse")
    return [media.house_clip(d / f"{n}.mp4", grey) for n in ("a", "b")]


def test_copy_join_with_music_still_copies_the_picture(api, house, sounds, logos, tmp_path):
    plain = post(api, "/api/concatenate", {"videos": house})
    assert plain["X-Concat-Mode"] == "copy"
    r = post(api, "/api/concatenate", {"videos": house, "music": sounds["short"], "loudness": "web",
                                       "ducking": "false"})
    assert r.status_code == 200, r.body[:300]
    assert r["X-Concat-Mode"] == "copy"
    out = save(r, tmp_path / "o.mp4")
    assert media.video_packets(out) == media.video_packets(save(plain, tmp_path / "plain.mp4"))
    assert media.dominant_frequency(out, 3.0, 0.1) in (pytest.approx(220, abs=8), pytest.approx(440, abs=8))
    assert level(out, 2.2, 0.3, 220) > -70  # the soundtrack runs on past the first input
    assert details(r)["mode"] == "copy" and set(details(r)) >= {"music", "loudness"}
    # a logo (or captions) must re-encode the picture: the join does so in one pass
    r = post(api, "/api/concatenate", {"videos": house, "logo": logos["png"]})
    assert r.status_code == 200 and r["X-Concat-Mode"] == "reencode"
    assert red(media.frame_at(save(r, tmp_path / "l.mp4"), 3.0)).sum() > 20


# ---- captions keep clear of what else is drawn ---------------------------------------------------------


LONG_CAPTION = "A long caption that wraps onto a second line at this canvas, as subtitles often do"


def drawn_by_render(out, plain, when):
    """The pixels the render itself drew at `when` (its text, its logo): where its frame differs from the clip."""
    frame = media.frame_at(out, when)
    return frame, np.abs(frame.astype(int) - media.frame_at(plain, when).astype(int)).max(axis=-1) > 30


def assert_untouched(frame, reference, pixels):
    """`pixels` of `frame` are those of `reference`: none differs visibly (over 30 levels: a caption drawn
    over them differs by 100 or more), and on average by no more than the encoder's noise."""
    difference = np.abs(frame.astype(int) - reference.astype(int)).max(axis=-1)[pixels]
    assert difference.max() <= 30 and difference.mean() <= 3, (difference.max(), difference.mean())


@pytest.mark.parametrize("canvas", ["16:9", "9:16"])
def test_captions_never_cover_a_templates_text_and_come_back_when_it_leaves(api, grey, tmp_path, canvas):
    fields = {"video": grey, "team": "Platform team", "full_name": "Ada Lovelace", "role": "Engineer",
              "canvas": canvas, "start": "0.2", "duration": "1.0"}
    bare = post(api, "/api/intro/render", fields)
    assert bare.status_code == 200, bare.body[:300]
    bare_out = save(bare, tmp_path / "bare.mp4")
    grey = save(post(api, "/api/trim", {"video": grey, "start": "0", "canvas": canvas}), tmp_path / "grey.mp4")
    cues = media.srt(tmp_path / "c.srt", (0.0, 2.0, LONG_CAPTION))
    r = post(api, "/api/intro/render", {**fields, "captions": cues})
    assert r.status_code == 200, r.body[:300]
    out = save(r, tmp_path / "o.mp4")
    card, card_pixels = drawn_by_render(bare_out, grey, 0.8)  # the lower third, fully shown
    assert card_pixels.mean() > 0.01
    with_caption = media.frame_at(out, 0.8)
    # not one pixel of the card changes visibly (the encoder's noise at the glyphs' edges aside), and the
    # caption is drawn elsewhere
    assert_untouched(with_caption, card, card_pixels)
    assert changed(with_caption, card) > 0.005
    moved = details(r)["captions"]["moved"]
    assert len(moved) == 1 and moved[0][:2] == [0.2, 1.2], moved  # exactly while the card shows
    # before the card comes and once it has gone, the caption is at the bottom, nothing drawn at the top
    for when in (0.1, 1.6):
        frame, plain = media.frame_at(out, when), media.frame_at(grey, when)
        assert changed(caption_area(frame), caption_area(plain)) > 0.01, when
        assert changed(frame[: frame.shape[0] // 3], plain[: plain.shape[0] // 3]) == 0, when


def test_captions_keep_clear_of_a_logo_at_the_bottom(api, grey, clips, tmp_path):
    fields = {"video": grey, "start": "0", "logo": clips.png, "logo_position": "bottom-left", "logo_size": "0.25"}
    bare_out = save(post(api, "/api/trim", fields), tmp_path / "bare.mp4")
    cues = media.srt(tmp_path / "c.srt", (0.0, 2.0, LONG_CAPTION))
    r = post(api, "/api/trim", {**fields, "captions": cues})
    assert r.status_code == 200, r.body[:300]
    logo, logo_pixels = drawn_by_render(bare_out, grey, 1.0)
    assert logo_pixels.mean() > 0.02
    frame = media.frame_at(save(r, tmp_path / "o.mp4"), 1.0)
    assert_untouched(frame, logo, logo_pixels)
    assert changed(frame, logo) > 0.005  # the caption is drawn, above the logo or at the top
    assert details(r)["captions"]["moved"] != []
