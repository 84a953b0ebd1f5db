"""Phone and camera footage: HDR to SDR, colour tags, 10-bit, full range, VFR, extra tracks.

The HDR clips are made from a colour-bar pattern whose true colours are
known (the same pattern encoded as SDR BT.709): converted by zscale to
BT.2020 with the HLG or PQ transfer, encoded as 10-bit HEVC and tagged as
phones tag them. A correct pipeline gives back (nearly) the SDR pattern.
"""

import itertools
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from renders.models import RenderLog

from .. import media
from ..conftest import post, save

pytestmark = pytest.mark.django_db
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
PATTERN = "smptehdbars=s=320x180:r=25:d=1"
TRANSFERS = {"hlg": "arib-std-b67", "pq": "smpte2084"}


@pytest.fixture(scope="module")
def pattern(tmp_path_factory):
    d = tmp_path_factory.mktemp("colour")

    def audio(seconds=1):
        return ["-f", "lavfi", "-i", f"sine=f=440:d={seconds}", "-c:a", "aac", "-shortest"]

    clips = {"dir": d}
    clips["sdr"] = media.make(d / "sdr.mp4", "-f", "lavfi", "-i", PATTERN, *audio(),
                              "-vf", "setparams=color_primaries=bt709:color_trc=bt709:colorspace=bt709:range=tv",
                              "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p")
    for kind, trc in TRANSFERS.items():
        clips[kind] = media.make(
            d / f"{kind}.mp4", "-f", "lavfi", "-i", PATTERN, *audio(),
            "-vf", f"zscale=tin=709:min=709:pin=709:rin=limited:t={trc}:m=2020_ncl:p=2020:r=limited:npl=100,"
                   "format=yuv420p10le",
            "-c:v", "libx265", "-x265-params", f"log-level=error:colorprim=bt2020:transfer={trc}:colormatrix=bt2020nc",
            "-color_primaries", "bt2020", "-color_trc", trc, "-colorspace", "bt2020nc", "-tag:v", "hvc1")
    return clips


tags = media.frame_tags
BT709_TV = (1, 1, 1, 1)  # primaries, transfer, matrix: BT.709; range: limited


def bars(frame):
    """Mean saturation and brightness of the pattern's upper bars (HSV, 0..1)."""
    top = frame[: frame.shape[0] * 6 // 10].astype(float) / 255
    high, low = top.max(axis=2), top.min(axis=2)
    saturation = np.where(high > 0, (high - low) / np.maximum(high, 1e-6), 0)
    return saturation.mean(), top.mean()


# What the pipeline achieves on the HDR patterns (measured: saturation 94.6 % of the SDR
# pattern's for PQ, 96.3 % for HLG; brightness within 0.5 %). Without the tone map the
# brightness is 3-4 % high, outside BRIGHTNESS.
SATURATION, BRIGHTNESS = 0.07, 0.02


def close(value, reference, tolerance=SATURATION):
    return abs(value - reference) <= tolerance * reference


@pytest.mark.parametrize("kind", ["hlg", "pq"])
def test_hdr_trim_and_template_come_out_true_sdr(api, pattern, kind, tmp_path):
    results = {}
    for source in ("sdr", kind):
        trim = post(api, "/api/trim", {"video": pattern[source], "start": "0", "end": "1"})
        intro = post(api, "/api/intro/render", {"video": pattern[source], "team": "T", "full_name": "Ada",
                                                "role": "R", "start": "0.8", "duration": "0.2"})
        for name, r in (("trim", trim), ("intro", intro)):
            assert r.status_code == 200, r.body[:300]
            out = save(r, tmp_path / f"{source}-{name}.mp4")
            assert tags(out) == BT709_TV, (source, name)
            results[source, name] = media.frame_at(out, 0.4)
    for name in ("trim", "intro"):
        sdr_sat, sdr_light = bars(results["sdr", name])
        hdr_sat, hdr_light = bars(results[kind, name])
        assert close(hdr_sat, sdr_sat), f"{name}: saturation {hdr_sat:.3f} vs SDR {sdr_sat:.3f}"
        assert close(hdr_light, sdr_light, BRIGHTNESS), f"{name}: brightness {hdr_light:.3f} vs SDR {sdr_light:.3f}"
    # what a naive 8-bit conversion shows is far off (the defect this guards against)
    naive_sat, _ = bars(media.frame_at(pattern[kind], 0.4))
    assert naive_sat < 0.8 * bars(results["sdr", "trim"])[0]
    log = RenderLog.objects.filter(endpoint="trim").order_by("-received_at").first()
    colour = log.inputs[0]["colour"]
    assert (colour["hdr"], colour["color_transfer"], colour["bit_depth"]) == (kind, TRANSFERS[kind], 10)
    assert colour["color_primaries"] == "bt2020"
    ARTIFACTS.mkdir(exist_ok=True)
    side_by_side = np.concatenate([media.frame_at(pattern[kind], 0.4)[:180, :320], results[kind, "trim"],
                                   results["sdr", "trim"]], axis=1)
    Image.fromarray(side_by_side).save(ARTIFACTS / f"colour-{kind}-naive-vs-service-vs-sdr.png")


def test_hdr_joined_with_sdr_has_no_seam(api, pattern, tmp_path):
    r = post(api, "/api/concatenate", {"videos": [pattern["hlg"], pattern["sdr"], pattern["pq"]]})
    assert r.status_code == 200 and r["X-Concat-Mode"] == "reencode"
    out = save(r, tmp_path / "joined.mp4")
    assert tags(out) == BT709_TV
    parts = [bars(media.frame_at(out, t)) for t in (0.4, 1.4, 2.4)]
    (hlg_sat, hlg_light), (sdr_sat, sdr_light), (pq_sat, pq_light) = parts
    for sat, light in ((hlg_sat, hlg_light), (pq_sat, pq_light)):
        assert close(sat, sdr_sat) and close(light, sdr_light, BRIGHTNESS), parts


@pytest.fixture(scope="module")
def sd_601(tmp_path_factory):
    """An SD clip tagged BT.601 (SMPTE 170M primaries, transfer and matrix) throughout."""
    return media.lavfi_clip(tmp_path_factory.mktemp("sd601") / "sd601.mp4", extra=[
        "-vf", "setparams=color_primaries=smpte170m:color_trc=smpte170m:colorspace=smpte170m:range=tv"])


@pytest.mark.parametrize("source", ["untagged", "bt601"])
@pytest.mark.parametrize(("endpoint", "fields"), [
    ("/api/trim", {"start": "0.2"}),
    ("/api/trim/preview", {"start": "0", "duration": "1"}),
    ("/api/closing/render", {"cta": "Go"}),
    ("/api/concatenate", {}),
    ("/api/concatenate", {"transition": "crossfade"}),
])
def test_sdr_outputs_are_tagged_bt709(api, clips, sd_601, source, endpoint, fields, tmp_path):
    """Every video output says BT.709 whatever the source said (or did not say): the tags come from
    the graph's last filter, not from the encoder's options, which this FFmpeg ignores."""
    video = {"untagged": clips.basic, "bt601": sd_601}[source]
    assert tags(video) == ((2, 2, 2, 0) if source == "untagged" else (6, 6, 6, 1))
    data = {"videos": [video, video]} if endpoint == "/api/concatenate" else {"video": video}
    r = post(api, endpoint, {**data, **fields})
    assert r.status_code == 200, r.body[:300]
    if endpoint == "/api/concatenate":
        assert r["X-Concat-Mode"] == "reencode"
    assert tags(save(r, tmp_path / "out.mp4")) == BT709_TV


def patch_grid(frame, rows=4, columns=8):
    """Mean RGB of the inner part of each cell of a grid over the frame."""
    means = []
    for ys in np.array_split(np.arange(frame.shape[0]), rows):
        means.extend(frame[ys[3:-3]][:, xs[3:-3]].reshape(-1, 3).mean(axis=0)
                     for xs in np.array_split(np.arange(frame.shape[1]), columns))
    return np.array(means)


@pytest.mark.parametrize("source", ["sdr", "pq", "sd"])
def test_still_preview_is_a_true_jpeg_with_the_videos_colours(api, pattern, clips, source, tmp_path):
    """A JPEG is read as BT.601 full range (JFIF) by every viewer: the still must be written so, and
    then show the colours of the same frame of the video (BT.709 pixels in it were 20-28 levels off)."""
    video = {"sdr": pattern["sdr"], "pq": pattern["pq"], "sd": clips.basic}[source]  # 709, HDR, untagged 601
    r = post(api, "/api/trim/preview", {"video": video, "start": "0.4", "format": "jpg", "height": "180"})
    assert r.status_code == 200
    still = save(r, tmp_path / "still.jpg")
    assert still.read_bytes()[6:11] == b"JFIF\0"
    with av.open(str(still)) as container:  # how FFmpeg describes the file: full-range BT.601
        frame = next(container.decode(video=0))
        assert (frame.format.name, int(frame.colorspace), int(frame.color_range)) == ("yuvj420p", 5, 2)
        by_ffmpeg = frame.to_ndarray(format="rgb24")
    by_libjpeg = media.jpeg_rgb(still)
    r = post(api, "/api/trim", {"video": video, "start": "0", "end": "1", "canvas": f"{by_libjpeg.shape[1]}x180"})
    assert r.status_code == 200
    moving = save(r, tmp_path / "trim.mp4")
    assert tags(moving) == BT709_TV
    reference = patch_grid(media.frame_at(moving, 0.4))
    for reader, picture in (("libjpeg", by_libjpeg), ("ffmpeg", by_ffmpeg)):
        difference = np.abs(patch_grid(picture) - reference)  # measured: at most 4 levels, 1.5 on average
        assert difference.max() < 8 and difference.mean() < 2.5, (reader, difference.max(axis=1).round(1))


def test_hdr_preview_is_tone_mapped_too(api, pattern, tmp_path):
    sdr_sat, sdr_light = bars(media.frame_at(pattern["sdr"], 0.0))
    for fmt in ("mp4", "jpg"):
        r = post(api, "/api/trim/preview", {"video": pattern["pq"], "start": "0", "duration": "1", "format": fmt})
        assert r.status_code == 200
        path = save(r, tmp_path / f"p.{fmt}")
        sat, light = bars(media.jpeg_rgb(path) if fmt == "jpg" else media.frame_at(path, 0.0))
        assert close(sat, sdr_sat) and close(light, sdr_light, BRIGHTNESS), (fmt, sat, sdr_sat, light, sdr_light)


NITS = (100, 400, 1000)


def patch_means(frame, count):
    """Mean RGB of the inner part of each of `count` vertical stripes."""
    columns = np.array_split(np.arange(frame.shape[1]), count)
    return [frame[10:-10, cols[6:-6]].reshape(-1, 3).astype(float) for cols in columns]


def test_pq_highlights_roll_off_instead_of_clipping(api, tmp_path):
    """Grey patches at 100, 400 and 1000 nits: brighter than SDR white, so only a tone map keeps them apart."""
    clip = media.pq_patches(tmp_path / "nits.mp4", NITS)
    r = post(api, "/api/trim", {"video": clip, "start": "0", "end": "1"})
    assert r.status_code == 200, r.body[:300]
    video = save(r, tmp_path / "trim.mp4")
    assert tags(video) == BT709_TV
    r = post(api, "/api/trim/preview", {"video": clip, "start": "0.4", "format": "jpg", "height": "180"})
    assert r.status_code == 200
    still = save(r, tmp_path / "still.jpg")
    for name, frame in (("trim", media.frame_at(video, 0.4)), ("still", media.jpeg_rgb(still))):
        patches = patch_means(frame, len(NITS))
        means = [patch.mean() for patch in patches]
        assert all(np.ptp(patch.mean(axis=0)) < 3 for patch in patches), (name, "grey stays grey")
        assert means[0] > 180, (name, "100 nits (HDR reference white) stays bright", means)
        assert all(b - a >= 4 for a, b in itertools.pairwise(means)), (name, "distinct and in order", means)
        brightest = patches[-1]
        assert brightest.mean() < 252 and (brightest >= 255).mean() < 0.01, (name, "1000 nits below clipping", means)


def test_full_range_mjpeg_keeps_black_black_and_white_white(api, tmp_path):
    clip = media.make(tmp_path / "mjpeg.mov", "-f", "lavfi", "-i",
                      "color=black:s=320x180:r=25:d=1,drawbox=x=160:y=0:w=160:h=180:color=white:t=fill",
                      "-c:v", "mjpeg", "-pix_fmt", "yuvj420p", "-q:v", "2")
    r = post(api, "/api/trim", {"video": clip, "start": "0"})
    assert r.status_code == 200
    out = save(r, tmp_path / "out.mp4")
    assert tags(out) == BT709_TV
    frame = media.frame_at(out, 0.4).astype(float)
    assert frame[20:160, 20:140].mean() < 4  # black
    assert frame[20:160, 180:300].mean() > 251  # white


def test_prores_422_hq_10bit_keeps_its_colours(api, pattern, tmp_path):
    clip = media.make(tmp_path / "prores.mov", "-f", "lavfi", "-i", PATTERN,
                      "-vf", "setparams=color_primaries=bt709:color_trc=bt709:colorspace=bt709:range=tv",
                      "-c:v", "prores_ks", "-profile:v", "3", "-pix_fmt", "yuv422p10le")
    outputs = {}
    for name, source in (("prores", clip), ("sdr", pattern["sdr"])):
        r = post(api, "/api/trim", {"video": source, "start": "0", "end": "1"})
        assert r.status_code == 200
        outputs[name] = media.frame_at(save(r, tmp_path / f"{name}.mp4"), 0.4).astype(float)
    log = RenderLog.objects.filter(endpoint="trim").order_by("received_at").first()
    assert log.inputs[0]["colour"]["bit_depth"] == 10 and log.inputs[0]["colour"]["chroma"] == "4:2:2"
    # each bar's mean colour within 3 levels of the 8-bit SDR pattern
    columns = np.array_split(np.arange(320), 7)
    for cols in columns:
        inner = cols[4:-4]
        a = outputs["prores"][10:90, inner].mean(axis=(0, 1))
        b = outputs["sdr"][10:90, inner].mean(axis=(0, 1))
        assert np.abs(a - b).max() < 3, (a, b)


def test_vfr_phone_clip_trimmed_to_10s_stays_in_sync(api, tmp_path):
    """A flash and a beep at 9.0 s in a variable-frame-rate source: they stay together after the trim."""
    clip = media.make(
        tmp_path / "vfr.mp4",
        "-f", "lavfi", "-i", "color=black:s=160x90:r=30:d=12,drawbox=x=0:y=0:w=160:h=90:color=white:t=fill:"
                             "enable='between(t,9,9.3)'",
        "-f", "lavfi", "-i", "sine=f=1000:r=48000:d=12,volume=volume='between(t,9,9.3)':eval=frame",
        "-vf", "select='not(eq(mod(n,7),3))*not(eq(mod(n,11),5))'", "-fps_mode", "vfr",
        "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-shortest")
    r = post(api, "/api/trim", {"video": clip, "start": "0", "end": "10"})
    assert r.status_code == 200
    out = save(r, tmp_path / "out.mp4")
    info = media.probe(out)
    frame = 1 / info["fps"]
    assert abs(info["v_duration"] - 10) <= frame and abs(info["a_duration"] - 10) <= frame
    with av.open(str(out)) as container:
        flash = next(f.time for f in container.decode(container.streams.video[0])
                     if f.to_ndarray(format="gray").mean() > 128)
    with av.open(str(out)) as container:
        stream = container.streams.audio[0]
        samples = np.concatenate([f.to_ndarray()[0] for f in container.decode(stream)])
        assert np.abs(samples).max() > 0.05
        beep = np.argmax(np.abs(samples) > 0.03) / stream.codec_context.sample_rate
    assert abs(flash - 9.0) <= frame and abs(beep - flash) <= frame, (flash, beep)


def test_extra_tracks_use_the_default_audio_track(api, tmp_path):
    """Stereo 440 Hz (not default), 5.1 at 880 Hz (default) and a timecode track."""
    clip = media.make(tmp_path / "tracks.mov", "-f", "lavfi", "-i", "testsrc2=s=320x180:r=25:d=1",
                      "-f", "lavfi", "-i", "sine=f=440:d=1", "-f", "lavfi", "-i", "sine=f=880:d=1",
                      "-map", "0:v", "-map", "1:a", "-map", "2:a", "-c:v", "libx264", "-preset", "ultrafast",
                      "-c:a", "aac", "-ac:a:0", "2", "-ac:a:1", "6", "-disposition:a:0", "0",
                      "-disposition:a:1", "default", "-timecode", "01:00:00:00")
    with av.open(str(clip)) as container:
        assert len(container.streams.audio) == 2 and len(container.streams.data) >= 1  # the timecode track
    for endpoint, fields in (("/api/trim", {"start": "0"}), ("/api/intro/render", {"team": "T", "full_name": "A",
                                                                                    "role": "R"})):
        r = post(api, endpoint, {"video": clip, **fields})
        assert r.status_code == 200, r.body[:300]
        out = save(r, tmp_path / "out.mp4")
        assert abs(media.dominant_frequency(out, 0.3) - 880) < 20
        assert media.probe(out)["channels"] == 2  # 5.1 downmixed to the house stereo


def test_undecodable_default_audio_track_is_skipped(api, tmp_path):
    """A default audio track in a codec FFmpeg cannot decode: the decodable one is used instead."""
    made = media.make(tmp_path / "two.mkv", "-f", "lavfi", "-i", "testsrc2=s=320x180:r=25:d=1",
                      "-f", "lavfi", "-i", "sine=f=440:d=1", "-f", "lavfi", "-i", "sine=f=880:d=1",
                      "-map", "0:v", "-map", "1:a", "-map", "2:a", "-c:v", "libx264", "-preset", "ultrafast",
                      "-c:a:0", "ac3", "-c:a:1", "aac", "-disposition:a:0", "default", "-disposition:a:1", "0")
    data = made.read_bytes()
    assert data.count(b"A_AC3") == 1
    clip = tmp_path / "unknown-codec.mkv"
    clip.write_bytes(data.replace(b"A_AC3", b"A_ZZ9"))  # same length: a codec id no FFmpeg knows
    r = post(api, "/api/trim", {"video": clip, "start": "0"})
    assert r.status_code == 200, r.body[:300]
    assert abs(media.dominant_frequency(save(r, tmp_path / "out.mp4"), 0.3) - 880) < 20
    log = RenderLog.objects.get(id=r["X-Render-Id"])
    assert (log.inputs[0]["audio_track"], log.inputs[0]["audio_tracks"]) == (1, 2)
