"""Can house segments join by copying both streams? The measurement behind the answer.

    .venv/bin/python bench/copyjoin.py [--segments 20]

Cuts one source (a moving picture; pink noise under a tone, so a gap or a
click shows) into `--segments` house-format segments of uneven lengths with
the service's own accurate-trim builder, then joins them six ways:

- today: the copy path as shipped (video copied, sound decoded and re-encoded);
- copy: both streams copied from the house segments as they are (AAC with
  its encoder priming hidden by an edit list);
- in-band, audio <= video: segments re-made so their sound needs no edit
  list (the priming is part of the encoded sound, the source shifted to
  line up) and never runs past the picture; both streams copied;
- in-band, whole AAC frames: the same, but the sound rounded up to whole
  1024-sample frames, so the concat demuxer's offsets come from the sound
  and the picture's last frame is held a little longer;
- priming dropped, lead-out: whole AAC frames again, encoded with 1024 more
  samples of what follows in the source, keeping packets 1..m (the priming
  packet dropped, timestamps from 0, no edit list), so that at a join the
  decoder overlaps one segment's lead-out with the next one's first frame
  (an MDCT crossfade) instead of playing priming;
- priming dropped, silent end: the same for segments cut where their
  source ends (a template over a whole clip): nothing follows, so silence.

For each join it prints how far the sound sits from where the picture says
it should be (cross-correlated against the source, decoded continuously as
most players play it), the drift between the first and last join, and the
deepest level dip within 30 ms of a join (5 ms windows against the 200 ms
around it; the uncut source at the same points is the reference).
BENCH_VERBOSE=1 also prints every join's numbers.
"""

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "videoapi.settings")
STATE = tempfile.TemporaryDirectory(prefix="videoapi-bench-state-")
os.environ.setdefault("VIDEOAPI_STATE_DIR", STATE.name)
os.environ["VIDEOAPI_CANVAS"] = "320x180"
os.environ["VIDEOAPI_FPS"] = "30"

import django

django.setup()

import av

from renders.media import (
    builders,
    ffmpeg,
)
from renders.media.probe import probe_video
from renders.media.spec import house_format

RATE, FPS, AAC = 48000, 30, 1024


def run(work, *args):
    result = ffmpeg.run(list(args), cwd=work, timeout=600)
    if not result.ok:
        raise SystemExit(result.stderr_tail)


def pcm(work, name, stamps=False):
    """The file's sound as mono float samples, decoded in order (or placed by timestamps)."""
    raw = Path(name).stem + (".ts" if stamps else "") + ".f32"
    run(work, "-i", name, "-map", "0:a:0", *(["-af", "aresample=async=1:first_pts=0"] if stamps else []),
        "-ac", "1", "-ar", str(RATE), "-f", "f32le", raw)
    return np.fromfile(work / raw, dtype="<f4")


def video_starts(work, name, frame_counts):
    """Presentation time of each segment's first frame in the joined file."""
    with av.open(str(work / name)) as container:
        stream = container.streams.video[0]
        times = sorted(float(p.pts * stream.time_base) for p in container.demux(stream) if p.pts is not None)
    index = np.cumsum([0] + frame_counts[:-1])
    return [times[i] for i in index]


def offset_ms(joined, source, at_joined, at_source, window=0.3, reach=1.0):
    """Lag (ms) of `joined` around `at_joined` against `source` at `at_source`: positive = sound late."""
    ref = source[int((at_source + 0.1) * RATE):int((at_source + 0.1 + window) * RATE)]
    start = int((at_joined + 0.1 - reach) * RATE)
    if start < 0:
        joined, start = np.concatenate([np.zeros(-start, dtype=joined.dtype), joined]), 0
    seg = joined[start:start + len(ref) + int(2 * reach * RATE)]
    seg = np.pad(seg, (0, len(ref) + int(2 * reach * RATE) - len(seg)))
    corr = np.correlate(seg, ref, mode="valid")
    return (np.argmax(corr) - int(reach * RATE)) / RATE * 1000


def dip_db(samples, at, reach=0.03, window=0.005):
    """The quietest 5 ms within `reach` of `at`, in dB against the surrounding 200 ms."""
    def rms(a, b):
        part = samples[max(0, int(a * RATE)):int(b * RATE)]
        return float(np.sqrt(np.mean(part**2))) if len(part) else 0.0
    around = rms(at - 0.1, at + 0.1) or 1e-9
    steps = np.arange(at - reach, at + reach - window, window / 2)
    return 20 * np.log10(max(min(rms(t, t + window) for t in steps), 1e-6) / around)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--segments", type=int, default=20)
    options = parser.parse_args()
    rng = np.random.default_rng(7)
    counts = [int(c) for c in rng.integers(31, 76, options.segments)]  # frames; not multiples of 16
    total = sum(counts) / FPS + 1
    with tempfile.TemporaryDirectory(prefix="videoapi-bench-copyjoin-") as name:
        work = Path(name)
        run(work, "-f", "lavfi", "-i", f"testsrc2=s=320x180:r={FPS}:d={total}",
            "-f", "lavfi", "-i", f"anoisesrc=color=pink:seed=3:a=0.2:r={RATE}:d={total}",
            "-f", "lavfi", "-i", f"sine=f=440:r={RATE}:d={total}",
            "-filter_complex", "[1][2]amix=inputs=2:normalize=0[a]", "-map", "0:v", "-map", "[a]",
            "-c:v", "libx264", "-preset", "ultrafast", "-g", "15", "-c:a", "pcm_s16le", "source.mov")
        source_info = probe_video(work / "source.mov", "video")
        source = pcm(work, "source.mov")
        spec = house_format()
        starts = np.cumsum([0] + counts[:-1]) / FPS
        plain, inband, whole, spliced, silent = [], [], [], [], []
        for i, (start, frames) in enumerate(zip(starts, counts)):
            length = frames / FPS
            seg = f"seg{i}.mp4"
            args = builders.trim_accurate_args("source.mov", source_info, spec, float(start), length, "g.txt", seg)
            (work / "g.txt").write_text(";\n".join(builders.normalize_graph(0, source_info, spec, length)))
            run(work, *args)
            plain.append(seg)
            # in-band priming: the encoder's 1024 priming samples are played, so feed it the source from
            # 1024 samples later and mux with no edit list; its length decides how the sound ends
            for kind, samples, out in (("le", int(length * RATE) // AAC * AAC, inband),
                                       ("whole", -(-int(length * RATE) // AAC) * AAC, whole)):
                audio = f"a{i}{kind}.m4a"
                run(work, "-ss", f"{start + AAC / RATE:.6f}", "-i", "source.mov", "-map", "0:a",
                    "-af", f"atrim=end_sample={samples - AAC},apad=whole_len={samples - AAC}",
                    "-c:a", "aac", "-b:a", spec.audio_bitrate, "-ac", "2", "-ar", str(RATE),
                    "-use_editlist", "0", audio)
                both = f"seg{i}{kind}.mp4"
                run(work, "-i", seg, "-i", audio, "-map", "0:v", "-map", "1:a", "-c", "copy",
                    "-movflags", "+faststart", both)
                out.append(both)
            # priming dropped, lead-out kept: encode the sound to whole AAC frames plus 1024 samples of what
            # follows in the source, keep packets 1..m (no priming packet, pts from 0, no edit list): at a
            # join the decoder overlaps one segment's lead-out with the next one's start (an MDCT crossfade)
            # (a segment cut at its source's end has no continuation: the same with silence after the video)
            frames_aac = -(-int(length * RATE) // AAC)
            for kind, keep, out in (("splice", (frames_aac + 1) * AAC, spliced),
                                    ("silent", int(length * RATE), silent)):
                audio = f"a{i}{kind}.m4a"
                run(work, "-ss", f"{start:.6f}", "-i", "source.mov", "-map", "0:a",
                    "-af", f"atrim=end_sample={keep},apad=whole_len={(frames_aac + 1) * AAC}",
                    "-c:a", "aac", "-b:a", spec.audio_bitrate, "-ac", "2", "-ar", str(RATE),
                    "-bsf:a", f"noise=drop=eq(n\\,0)+gt(n\\,{frames_aac})", "-use_editlist", "0", audio)
                both = f"seg{i}{kind}.mp4"
                run(work, "-i", seg, "-i", audio, "-map", "0:v", "-map", "1:a", "-c", "copy",
                    "-movflags", "+faststart", both)
                out.append(both)
        joined = {}
        for label, names in (("today", plain), ("copy", plain), ("in-band, audio <= video", inband),
                             ("in-band, whole AAC frames", whole), ("priming dropped, lead-out", spliced),
                             ("priming dropped, silent end", silent)):
            listing = f"join{len(joined)}.ffconcat"
            (work / listing).write_text(builders.concat_list(names))
            out = f"joined{len(joined)}.mp4"
            if label == "today":
                run(work, *builders.concat_copy_args(listing, "mov", spec, out))
            else:
                run(work, "-f", "concat", "-safe", "1", "-i", listing, "-c", "copy", "-movflags", "+faststart", out)
            joined[label] = out

        print(f"{options.segments} segments of {min(counts)}-{max(counts)} frames at {FPS} fps, "
              f"sound {RATE} Hz AAC ({AAC}-sample frames = {AAC / RATE * 1000:.2f} ms; a video frame "
              f"is {1000 / FPS:.2f} ms)")
        print()
        print(f"{'join':<28} {'offset at joins, ms (min / max)':>32} {'drift first->last, ms':>22} "
              f"{'worst dip at a join, dB':>24}")
        print("-" * 110)
        for label, out in joined.items():
            sound = pcm(work, out)
            at = video_starts(work, out, counts)
            offsets = [offset_ms(sound, source, t, s) for t, s in zip(at[1:], starts[1:])]
            dips = [dip_db(sound, t) for t in at[1:]]
            if os.environ.get("BENCH_VERBOSE"):
                print(label, [round(float(o), 1) for o in offsets], [round(float(d), 1) for d in dips])
            print(f"{label:<28} {min(offsets):>14.1f} / {max(offsets):<15.1f} {offsets[-1] - offsets[0]:>22.1f} "
                  f"{min(dips):>24.1f}")
        reference = [dip_db(source, s) for s in starts[1:]]
        print(f"{'(the source, uncut)':<28} {'':>32} {'':>22} {min(reference):>24.1f}")


if __name__ == "__main__":
    main()
