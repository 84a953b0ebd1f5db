"""What finishing adds to a template render (issue 21's budget): a printed table of ratios from one run.

    .venv/bin/python bench/finishing.py [--seconds 10] [--repeat 3]

The `intro` template on a generated clip (1280x720, 30 fps, a stereo tone),
through the API view in process (upload, probe, plan, the FFmpeg runs, the
download), plain and with each finishing field: `loudness=web`, captions
(ten cues, and the limit of 2,000 cues), a logo, music (ducked), and all of
them at once; then the two loudness steps alone (measure: loudnorm's first
pass vs the EBU R128 meter; apply: loudnorm's linear mode vs `volume`).
The variants take turns within each round, so a slow moment
of a shared machine falls on all of them; each row is the median of the
rounds. Besides the wall time, each row gives the CPU time the render
cost: this process's (upload, probe, text and caption stills) plus its
FFmpeg children's (`getrusage`), which other people's load on a shared
machine hardly moves; the ratios are read from it. Goals: loudness at most
+15 %, captions and a logo at most +10 %.
"""

import argparse
import resource
import statistics
import tempfile
import time
from pathlib import Path

from bench import ffmpeg, run  # bench/bench.py: Django set up, the project's FFmpeg runner
from tests.media import srt

GOALS = {"loudness=web": 1.15, "captions, 10 cues": 1.10, "logo": 1.10}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeat", type=int, default=3)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="videoapi-bench-finishing-") as work:
        bench(Path(work), options)


def bench(work, options):
    from django.conf import settings
    from django.core.management import call_command
    from PIL import Image
    from rest_framework.test import APIClient

    call_command("migrate", verbosity=0)
    width, height = settings.VIDEOAPI_CANVAS
    length = options.seconds
    source = work / "src.mp4"
    run(["-f", "lavfi", "-i", f"testsrc2=s={width}x{height}:r={settings.VIDEOAPI_FPS}:d={length}", "-f", "lavfi",
         "-i", f"aevalsrc='0.1*sin(2*PI*440*t)|0.1*sin(2*PI*660*t)':s=48000:d={length}", "-c:v", "libx264",
         "-preset", "ultrafast", "-c:a", "aac", source.name], work)
    music = work / "music.mp3"
    run(["-f", "lavfi", "-i", "sine=f=220:d=4", "-c:a", "libmp3lame", music.name], work)
    logo = work / "logo.png"
    image = Image.new("RGBA", (600, 300), (220, 30, 30, 255))
    image.paste((0, 0, 0, 0), (300, 0, 600, 300))
    image.save(logo)
    few = srt(work / "few.srt", *[(k + 0.1, k + 0.9, f"Caption number {k + 1}, a line people read")
                                  for k in range(int(length))])
    many = srt(work / "many.srt", *[(k * length / 2000, (k + 1) * length / 2000, f"Cue {k}") for k in range(2000)])
    variants = {
        "plain": {},
        "loudness=web": {"loudness": "web"},
        "captions, 10 cues": {"captions": few},
        "captions, 2,000 cues": {"captions": many},
        "logo": {"logo": logo},
        "music (ducked)": {"music": music},
        "all of them": {"loudness": "web", "captions": few, "logo": logo, "music": music},
    }
    client = APIClient()

    def render(fields):
        handles = {name: open(value, "rb") for name, value in fields.items()  # noqa: SIM115  (closed below)
                   if isinstance(value, Path)}
        try:
            with open(source, "rb") as handle:
                started, cpu = time.perf_counter(), cpu_seconds()
                response = client.post("/api/intro/render", {"video": handle, "full_name": "Ada Lovelace",
                                                             "role": "Head of Engineering", "team": "Platform",
                                                             **fields, **handles},
                                       format="multipart", HTTP_HOST="localhost")
                assert response.status_code == 200, response.content[:300]
                b"".join(response.streaming_content)
                return time.perf_counter() - started, cpu_seconds() - cpu
        finally:
            for handle in handles.values():
                handle.close()

    render({})  # warm: fonts, URLconf, PyAV
    times = {name: [] for name in variants}
    for _round in range(options.repeat):
        for name, fields in variants.items():
            times[name].append(render(fields))
    wall = {name: statistics.median(w for w, _c in values) for name, values in times.items()}
    cpu = {name: statistics.median(c for _w, c in values) for name, values in times.items()}
    print(f"intro {length:g} s at {width}x{height}@{settings.VIDEOAPI_FPS}, preset {settings.VIDEOAPI_X264_PRESET}, "
          f"median of {options.repeat}, through the API view in process")
    print(f"{'finishing':<24} {'wall s':>8} {'vs plain':>9} {'CPU s':>8} {'vs plain':>9} {'goal':>8}")
    print("-" * 72)
    for name in variants:
        goal = f"<= {GOALS[name]:.2f}" if name in GOALS else ""
        print(f"{name:<24} {wall[name]:>8.3f} {wall[name] / wall['plain']:>8.2f}x {cpu[name]:>8.3f} "
              f"{cpu[name] / cpu['plain']:>8.2f}x {goal:>8}")
    loudness_rows(work, source, options.repeat)


def loudness_rows(work, source, repeat):
    """The two loudness steps on the source's sound alone: measuring (loudnorm's first pass, as the
    service measured before, vs the EBU R128 meter, and the meter band-limited as it is now) and applying
    a gain (loudnorm's linear mode vs `volume`, and `volume` with the true-peak limiter peaky sound gets)."""
    from renders.media import builders, loudness
    from renders.media.probe import probe_video

    info = probe_video(source, "video")
    inputs = builders.input_args(source.name, info)
    length = builders.whole_frames(info.duration, 30)
    steps = {
        "measure: loudnorm first pass": "loudnorm=I=-16.00:TP=-1.50:LRA=7.00:print_format=json",
        "measure: ebur128=peak=true": loudness.METER,
        "measure: band-limited, ebur128 (now)": loudness.measure_filter(loudness.codec_cutoff("160k")),
    }
    rows, outputs = [], {}

    def timed(label, filters, command):
        """The median wall time of the audio-only command `command(graph)`, the graph being the house audio
        chain and then `filters`."""
        graph = work / "loudness.graph"
        graph.write_text(builders.house_audio(0, info, length, post=filters))
        times = []
        for _ in range(repeat):
            started = time.perf_counter()
            result = ffmpeg.run(command(graph.name), cwd=work, timeout=600)
            assert result.ok, result.stderr_tail
            times.append(time.perf_counter() - started)
        rows.append((label, statistics.median(times)))
        outputs[label] = result.stderr_tail

    for label, measure in steps.items():
        timed(label, measure, lambda graph: builders.measure_args(inputs, graph))
    measured = loudness.parse_measurement(outputs["measure: ebur128=peak=true"])
    gain = f"{loudness.gain(measured, -16.0):.2f}"
    applies = {
        "apply: loudnorm linear": f"loudnorm=I=-16:TP=-1.5:LRA=7.1:measured_I={measured.i}:measured_TP={measured.tp}"
                                  f":measured_LRA={measured.lra}:measured_thresh={measured.thresh}:linear=true"
                                  ":print_format=none,aresample=48000",
        "apply: volume": f"volume={gain}dB",
        "apply: volume + limiter at 192 kHz (peaky sound)": loudness.limited(float(gain)),
    }
    for label, apply in applies.items():
        timed(label, apply, lambda graph: [*inputs, *builders.graph_args(graph), "-map", "[a]", "-c:a", "aac",
                                           "-f", "mp4", "apply.m4a"])
    print()
    print(f"{f'loudness steps, {info.duration:g} s of stereo, audio only':<44} {'wall s':>8}")
    print("-" * 54)
    for label, seconds in rows:
        print(f"{label:<44} {seconds:>8.3f}")


def cpu_seconds() -> float:
    """CPU time of this process and of its finished children (FFmpeg)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


if __name__ == "__main__":
    main()
