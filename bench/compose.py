"""Compositions (POST /api/compose): a printed table of what they cost, as ratios from one run.

    .venv/bin/python bench/compose.py [--seconds 10] [--repeat 3]

Rows:
- the intro template vs the composition that draws the same name card over
  the same clip (three text clips at the lower left, fading in and out),
  both through the API view in process; goal: within 10 %;
- a png still at frame_at=30 of a 60 s, 20-clip composition (3 s clips of
  one 60 s 720p source) vs decoding that one frame from the source with
  FFmpeg alone; goals: under 1 s, at most 1.5x the decode;
- checking an edit and making its plan for 10, 50 and 100 clips (goal: 100
  clips under 50 ms), and the filter graph's size for them (it should grow
  linearly);
- one render of 100 image clips: peak memory of FFmpeg and of this process
  (goal: under 1 GB).
Machines are shared and noisy: compare the ratios, not the seconds.
"""

import argparse
import json
import resource
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from bench import run  # bench/bench.py: Django set up, the project's FFmpeg runner


def cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeat", type=int, default=3)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="videoapi-bench-compose-") as work:
        bench(Path(work), options)


def post(client, path, fields, files=()):
    handles = {name: open(value, "rb") for name, value in files}  # noqa: SIM115  (closed below)
    try:
        started, cpu = time.perf_counter(), cpu_seconds()
        response = client.post(path, {**fields, **handles}, format="multipart", HTTP_HOST="localhost")
        assert response.status_code == 200, response.content[:500]
        b"".join(response.streaming_content)
        return time.perf_counter() - started, cpu_seconds() - cpu, response
    finally:
        for handle in handles.values():
            handle.close()


def intro_rows(work, client, source, options):
    intro = {"full_name": "Ada Lovelace", "role": "Head of Engineering", "team": "Platform"}
    card = [("Ada Lovelace", 0.075 * 0.6, "#FFFFFF", -0.16), ("Head of Engineering", 0.05 * 0.6, "#FFFFFF", -0.09),
            ("Platform", 0.05 * 0.6, "#FFD54A", -0.03)]
    edit = {"timeline": {"tracks": [
        {"clips": [{"asset": {"type": "text", "text": text, "style": {"size": size, "color": color,
                                                                      "box_color": "#0000008C"}},
                    "start": 0.5, "length": 4, "position": "bottom-left", "offset": {"x": 0, "y": y},
                    "transition": {"in": "fade", "out": "fade"}}]}
        for text, size, color, y in card] + [
        {"clips": [{"asset": {"type": "video", "src": "attach:video"}, "start": 0}]}]}}
    variants = {
        "intro template": lambda: post(client, "/api/intro/render", intro, [("video", source)]),
        "the same as a composition": lambda: post(client, "/api/compose", {"edit": json.dumps(edit)},
                                                  [("video", source)]),
    }
    for render in variants.values():
        render()  # warm: fonts, URLconf, PyAV
    times = {name: [] for name in variants}
    for _round in range(options.repeat):
        for name, render in variants.items():
            times[name].append(render()[:2])
    wall = {name: statistics.median(w for w, _c in values) for name, values in times.items()}
    cpu = {name: statistics.median(c for _w, c in values) for name, values in times.items()}
    print(f"\n{'render':<28} {'wall s':>8} {'vs intro':>9} {'CPU s':>8} {'vs intro':>9}   goal <= 1.10")
    print("-" * 78)
    for name in variants:
        print(f"{name:<28} {wall[name]:>8.3f} {wall[name] / wall['intro template']:>8.2f}x {cpu[name]:>8.3f} "
              f"{cpu[name] / cpu['intro template']:>8.2f}x")


def still_rows(work, client, options):
    from django.conf import settings

    width, height = settings.VIDEOAPI_CANVAS
    long = work / "long.mp4"
    run(["-f", "lavfi", "-i", f"testsrc2=s={width}x{height}:r=30:d=60", "-f", "lavfi", "-i", "sine=f=440:d=60",
         "-c:v", "libx264", "-preset", "veryfast", "-g", "60", "-c:a", "aac", "-y", long.name], work)
    clips = [{"asset": {"type": "video", "src": "attach:video", "trim": 3 * k}, "start": 3 * k, "length": 3,
              "transition": {"in": "fade"} if k else None} for k in range(20)]
    for clip in clips:
        if clip["transition"] is None:
            clip.pop("transition")
    edit = {"timeline": {"tracks": [{"clips": clips}]}, "output": {"format": "png", "frame_at": 30}}
    decode = []
    stills = []
    for _round in range(options.repeat + 1):
        started = time.perf_counter()
        run(["-ss", "30", "-i", long.name, "-frames:v", "1", "-y", "frame.png"], work)
        decode.append(time.perf_counter() - started)
        wall, _cpu, response = post(client, "/api/compose", {"edit": json.dumps(edit)}, [("video", long)])
        stills.append((wall, float(response["Server-Timing"].split("dur=")[1].split(";")[0]) / 1000))
    decode, stills = decode[1:], stills[1:]  # the first round warms the page cache
    frame = statistics.median(decode)
    wall = statistics.median(w for w, _f in stills)
    ffmpeg = statistics.median(f for _w, f in stills)
    print(f"\n{'a png at 30 s of 60 s, 20 clips':<40} {'s':>8} {'vs decode':>10}   goals: < 1 s, <= 1.5x")
    print("-" * 78)
    print(f"{'FFmpeg: decode the frame from the source':<40} {frame:>8.3f} {1:>9.2f}x")
    print(f"{'compose still: its FFmpeg run':<40} {ffmpeg:>8.3f} {ffmpeg / frame:>9.2f}x")
    print(f"{'compose still: the whole request':<40} {wall:>8.3f} {wall / frame:>9.2f}x")


def planning_rows(work):
    from renders.api.compose import compose_plan
    from renders.api.edit import parse_edit
    from renders.lifecycle.workspace import Workspace
    from renders.plans.composing import picture_graph

    print(f"\n{'clips':>6} {'check + plan ms':>16} {'graph chains':>13} {'graph bytes':>12}   goal: 100 clips < 50 ms")
    print("-" * 78)
    for count in (10, 50, 100):
        clips = [{"asset": {"type": "color", "color": "#336699"}, "start": k * 0.5, "length": 1, "scale": 0.5,
                  "position": "top-left", "offset": {"x": 0.01 * k, "y": 0}, "opacity": 0.9,
                  "transition": {"in": "slide-left", "out": "fade", "duration": 0.2}} for k in range(count)]
        edit = {"timeline": {"tracks": [{"clips": clips}]}, "merge": {"unused": "x"}}
        times = []
        for _ in range(20):
            started = time.perf_counter()
            checked, merged, values = parse_edit(json.loads(json.dumps(edit)))
            plan = compose_plan(checked, merged, values, {})
            times.append(time.perf_counter() - started)
        plan = replace(plan, duration=max(layer.end for layer in plan.layers))
        workspace = Workspace(work, None)  # colour clips write nothing into it
        graph, _details = picture_graph(plan, workspace, 0.0, plan.duration)
        text = ";\n".join(graph.chains)
        print(f"{count:>6} {statistics.median(times) * 1000:>16.2f} {len(graph.chains):>13} {len(text):>12}")


def memory_rows(work, client):
    from PIL import Image

    images = []  # 20 files (a request takes at most DATA_UPLOAD_MAX_NUMBER_FILES); each clip is its own input
    for k in range(20):
        path = work / f"image{k}.png"
        Image.new("RGB", (1280, 720), ((k * 37) % 256, (k * 91) % 256, (k * 53) % 256)).save(path)
        images.append(path)
    clips = [{"asset": {"type": "image", "src": f"attach:image{k % 20}"}, "start": k * 0.2, "length": 1,
              "fit": "cover", "scale": 0.5, "position": "top-left", "offset": {"x": (k % 10) * 0.05, "y": 0},
              "effect": "zoom-in" if k % 2 else None} for k in range(100)]
    for clip in clips:
        if clip["effect"] is None:
            clip.pop("effect")
    edit = {"timeline": {"tracks": [{"clips": clips}]}}
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    wall, _cpu, _response = post(client, "/api/compose", {"edit": json.dumps(edit)},
                                 [(f"image{k}", path) for k, path in enumerate(images)])
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"\n{'100 image clips (720p PNGs), 20.8 s':<40} {'MB':>8}   goal: < 1024 MB")
    print("-" * 78)
    ffmpeg_peak = f"{children / 1024:>8.0f}" if children > before else "   (<= an earlier FFmpeg's peak)"
    print(f"{'FFmpeg peak RSS':<40} {ffmpeg_peak}")
    print(f"{'this process (API, probing, plan) peak':<40} {own / 1024:>8.0f}")
    print(f"{'wall seconds':<40} {wall:>8.2f}")


def bench(work, options):
    from django.conf import settings
    from django.core.management import call_command
    from rest_framework.test import APIClient

    call_command("migrate", verbosity=0)
    width, height = settings.VIDEOAPI_CANVAS
    source = work / "src.mp4"
    run(["-f", "lavfi", "-i", f"testsrc2=s={width}x{height}:r={settings.VIDEOAPI_FPS}:d={options.seconds}",
         "-f", "lavfi", "-i", f"sine=f=440:d={options.seconds}", "-c:v", "libx264", "-preset", "ultrafast",
         "-c:a", "aac", source.name], work)
    client = APIClient()
    print(f"canvas {width}x{height}@{settings.VIDEOAPI_FPS}, preset {settings.VIDEOAPI_X264_PRESET}, "
          f"median of {options.repeat}, through the API views in process")
    memory_rows(work, client)  # first: FFmpeg's peak RSS is a maximum over every child so far
    intro_rows(work, client, source, options)
    still_rows(work, client, options)
    planning_rows(work)


if __name__ == "__main__":
    main()
