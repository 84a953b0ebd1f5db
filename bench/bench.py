"""Benchmarks: the numbers behind the service's speed claims, as ratios from one run.

    .venv/bin/python bench/bench.py [--seconds 10] [--repeat 3]

Runs the exact FFmpeg commands the service builds (same builders, same
runner) on generated 720p house-format inputs and prints a table:
- joining three segments by the copy path vs forcing the re-encode path;
- a trim preview (mp4 and jpg) vs the full accurate trim of the same span;
- what HDR tone mapping adds: an accurate trim of a 1080p 10-bit HEVC HLG
  source vs the same pattern as 10-bit SDR, with the conversion after
  scaling to the canvas (what the service does) and before it;
- a template render (through the API view, in process) with a Chinese and
  Hindi name against a Latin one: font fallback and shaping cost;
- the three `quality` settings on detailed, moving 720p footage: encode
  time, file size and SSIM against the source.
Machines are shared and noisy: compare the ratios, not the seconds.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "videoapi.settings")
STATE = tempfile.TemporaryDirectory(prefix="videoapi-bench-state-")
os.environ.setdefault("VIDEOAPI_STATE_DIR", STATE.name)
os.environ.setdefault("VIDEOAPI_AUTH", "none")  # the in-process API rows need no token
os.environ.setdefault("VIDEOAPI_LOG_LEVEL", "WARNING")

import django

django.setup()

from renders.media import (
    builders,
    ffmpeg,
)
from renders.media.probe import probe_video
from renders.media.spec import house_format


def run(args, cwd):
    result = ffmpeg.run(args, cwd=cwd, timeout=600)
    if not result.ok:
        raise SystemExit(result.stderr_tail)
    return result.seconds


def timed(label, repeat, make_args, cwd):
    times = [run(make_args(i), cwd) for i in range(repeat)]
    return label, statistics.median(times)


def main():
    with tempfile.TemporaryDirectory(prefix="videoapi-bench-") as work:
        bench(Path(work))


def bench(work):
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each input segment")
    parser.add_argument("--repeat", type=int, default=3)
    options = parser.parse_args()
    spec = house_format()
    print(f"canvas {spec.width}x{spec.height}@{spec.fps}, preset {spec.preset}, "
          f"3 x {options.seconds:g} s segments, median of {options.repeat}")

    names = []
    for index, source in enumerate(["testsrc2", "smptehdbars", "rgbtestsrc"]):
        name = f"seg{index}.mp4"
        graph = work / f"seg{index}.graph"
        graph.write_text(f"[0:v]scale=out_color_matrix=bt709:out_range=tv,format=yuv420p[v];"
                         f"sine=f={440 * (index + 1)}:d={options.seconds}[a]")
        run(["-f", "lavfi", "-i", f"{source}=s={spec.width}x{spec.height}:r={spec.fps}:d={options.seconds}",
             *builders.graph_args(graph.name), *builders.house_output_args(spec, name)], work)
        names.append(name)
    infos = [probe_video(work / n, "video") for n in names]
    assert len({i.copy_layout() for i in infos}) == 1, "segments should share one layout"
    (work / "list.ffconcat").write_text(builders.concat_list(names))

    def copy_args(i):
        return builders.concat_copy_args("list.ffconcat", "mov", spec, f"copy{i}.mp4")

    def reencode_args(i):
        chains, _ = builders.concat_graph(infos, spec)
        (work / "join.graph").write_text(";".join(chains))
        inputs = [a for n, info in zip(names, infos) for a in builders.input_args(n, info)]
        return inputs + builders.graph_args("join.graph") + builders.house_output_args(spec, f"re{i}.mp4")

    rows = [timed("concat: copy path", options.repeat, copy_args, work),
            timed("concat: forced re-encode", options.repeat, reencode_args, work)]

    src, info = names[0], infos[0]
    span = min(options.seconds - 1, 8.0)

    def trim_args(i):
        args = builders.trim_accurate_args(src, info, spec, 0.5, span, "trim.graph", f"trim{i}.mp4")
        (work / "trim.graph").write_text(";\n".join(builders.normalize_graph(0, info, spec, span)))
        return args

    rows += [
        timed(f"trim accurate ({span:g} s)", options.repeat, trim_args, work),
        timed(f"trim preview mp4 360p ({span:g} s)", options.repeat,
              lambda i: builders.preview_mp4_args(src, info, 0.5, span, 360, 30, f"p{i}.mp4"), work),
        timed("trim preview jpg 360p", options.repeat,
              lambda i: builders.preview_jpg_args(src, info, 0.5, 360, f"p{i}.jpg"), work),
    ]
    print()
    print(f"{'operation':<36} {'seconds':>9} {'ratio':>9}")
    print("-" * 56)
    base = {"concat": rows[1][1], "trim": rows[2][1]}
    for label, seconds in rows:
        reference = base["concat"] if label.startswith("concat") else base["trim"]
        print(f"{label:<36} {seconds:>9.3f} {reference / seconds:>8.1f}x")
    print()
    print("ratio: how many times faster than the re-encode (concat) or the full trim (trim rows)")
    hdr_rows(work, spec, options)


def hdr_rows(work, spec, options):
    """Tone mapping's cost on a 1080p trim, and why it runs after scaling."""
    from renders.media import colour

    span = min(options.seconds - 1, 8.0)
    sources = {}
    for kind, trc in (("sdr", "bt709"), ("hlg", "arib-std-b67")):
        name = f"{kind}1080.mp4"
        convert = "" if kind == "sdr" else f"zscale=tin=709:min=709:pin=709:t={trc}:m=2020_ncl:p=2020:npl=100,"
        tags = "bt709" if kind == "sdr" else "bt2020"
        run(["-f", "lavfi", "-i", f"smptehdbars=s=1920x1080:r={spec.fps}:d={span + 1}",
             "-vf", f"{convert}format=yuv420p10le", "-c:v", "libx265", "-preset", "ultrafast",
             "-x265-params", "log-level=error", "-color_primaries", tags, "-color_trc", trc,
             "-colorspace", "bt709" if kind == "sdr" else "bt2020nc", name], work)
        sources[kind] = (name, probe_video(work / name, "video"))

    def trim(kind, before_scaling=False):
        name, info = sources[kind]

        def args(i):
            argv = builders.trim_accurate_args(name, info, spec, 0.5, span, "hdr.graph", f"h{kind}{i}.mp4")
            text = ";\n".join(builders.normalize_graph(0, info, spec, span))
            if before_scaling:  # the same conversion, run on the 1080p source frames instead
                convert = ",".join(colour.to_sdr(info.colour))
                text = text.replace("[0:v:0]", f"[0:v:0]{convert},", 1).replace(
                    ",".join(colour.to_sdr(info.colour)) + ",pad", "format=yuv420p,pad", 1)
            (work / "hdr.graph").write_text(text)
            return argv
        return args

    def template(kind):
        """A template's graph: the house chain plus a fading text card laid over it (as the intro draws it)."""
        from renders.media import text

        name, info = sources[kind]
        card = text.Placed(("Ada Lovelace", "Engineer"), 48, (255, 255, 255, 255), 60, 400, "L", 16, 1.0, span - 1)
        text.render_block(card).save(work / "card.png")

        def args(i):
            chains = builders.normalize_graph(0, info, spec, span, out_v="base")
            chains += [builders.still_chain(1, spec.fps, card.start, card.end, 0.5, "card"),
                       builders.overlay("base", "card", card.x, card.y, "v")]
            (work / "tpl.graph").write_text(";".join(chains))
            return (builders.input_args(name, info) + builders.image_input_args("card.png", "png_pipe")
                    + builders.graph_args("tpl.graph") + builders.house_output_args(spec, f"t{kind}{i}.mp4"))
        return args

    trims = [timed(f"trim 1080p 10-bit SDR ({span:g} s)", options.repeat, trim("sdr"), work),
             timed("  same, HLG tone-mapped after scaling", options.repeat, trim("hlg"), work),
             timed("  same, HLG tone-mapped before scaling", options.repeat, trim("hlg", True), work)]
    templates = [timed(f"template 1080p 10-bit SDR ({span:g} s)", options.repeat, template("sdr"), work),
                 timed("  same, HLG tone-mapped", options.repeat, template("hlg"), work)]
    print()
    print(f"{'HDR to SDR (canvas ' + str(spec.width) + 'x' + str(spec.height) + ')':<40} {'seconds':>9} {'vs SDR':>9}")
    print("-" * 60)
    for group in (trims, templates):
        for label, seconds in group:
            print(f"{label:<40} {seconds:>9.3f} {seconds / group[0][1]:>8.2f}x")
    script_rows(work, spec, options)
    quality_rows(work, spec, options)


def quality_rows(work, spec, options):
    """draft / standard / high: time, size and SSIM of an accurate trim of detailed, moving footage."""
    import re

    from renders.media.spec import house_format as spec_for

    span = min(options.seconds - 1, 8.0)
    source = "detail.mp4"
    # a deterministic stand-in for detailed camera footage: a zooming fractal (fine detail everywhere, all moving)
    fractal = f"mandelbrot=s={spec.width}x{spec.height}:r={spec.fps}:end_scale=0.05,trim=duration={span + 1}"
    run(["-f", "lavfi", "-i", fractal, "-f", "lavfi", "-i", f"sine=d={span + 1}", "-c:v", "libx264", "-qp", "4",
         "-preset", "ultrafast", "-c:a", "aac", source], work)
    info = probe_video(work / source, "video")
    rows = []
    for quality in ("draft", "standard", "high"):
        encode = spec_for(quality=quality)

        def args(i, encode=encode, quality=quality):
            argv = builders.trim_accurate_args(source, info, encode, 0.0, span, "q.graph", f"q{quality}.mp4")
            (work / "q.graph").write_text(";\n".join(builders.normalize_graph(0, info, encode, span)))
            return argv
        label, seconds = timed(quality, options.repeat, args, work)
        out = work / f"q{quality}.mp4"
        result = ffmpeg.run(["-loglevel", "info", "-i", out.name, "-i", source, "-lavfi", "[0:v][1:v]ssim",
                             "-f", "null", "-"],
                            cwd=work, timeout=600)
        ssim = float(re.search(r"All:([0-9.]+)", result.stderr_tail)[1])
        rows.append((label, seconds, out.stat().st_size, ssim))
    print()
    print(f"{'quality (detailed 720p, ' + format(span, 'g') + ' s)':<28} {'seconds':>9} {'vs std':>8} "
          f"{'MB':>8} {'vs std':>8} {'SSIM':>8}")
    print("-" * 76)
    base_time, base_size = rows[1][1], rows[1][2]
    for label, seconds, size, ssim in rows:
        print(f"{label:<28} {seconds:>9.3f} {seconds / base_time:>7.2f}x {size / 1e6:>8.2f} "
              f"{size / base_size:>7.2f}x {ssim:>8.4f}")


def script_rows(work, spec, options):
    """An intro render through the API view: Latin vs CJK vs Devanagari names (fonts load once per process)."""
    from django.core.management import call_command
    from rest_framework.test import APIClient

    call_command("migrate", verbosity=0)
    source = work / "intro-src.mp4"
    run(["-f", "lavfi", "-i", f"testsrc2=s={spec.width}x{spec.height}:r={spec.fps}:d=6", "-f", "lavfi",
         "-i", "sine=d=6", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", source.name], work)
    client = APIClient()
    names = {"Latin": ("Ada Lovelace", "Head of Engineering"), "Chinese": ("张伟 Zhang Wei", "工程部主管"),
             "Hindi": ("अनुष्का शर्मा", "इंजीनियरिंग प्रमुख")}

    def render(name, role):
        with open(source, "rb") as handle:
            started = time.perf_counter()
            response = client.post("/api/intro/render", {"video": handle, "full_name": name, "role": role,
                                                         "team": "Platform"}, format="multipart",
                                   HTTP_HOST="localhost")
            assert response.status_code == 200, response.content[:300]
            b"".join(response.streaming_content)
            return time.perf_counter() - started

    render(*names["Latin"])  # warm: fonts, URLconf, PyAV
    rows = [(f"intro 6 s, {script} name", statistics.median(render(*names[script]) for _ in range(options.repeat)))
            for script in names]
    print()
    print(f"{'template text (API, in process)':<40} {'seconds':>9} {'vs Latin':>9}")
    print("-" * 60)
    for label, seconds in rows:
        print(f"{label:<40} {seconds:>9.3f} {seconds / rows[0][1]:>8.2f}x")


if __name__ == "__main__":
    main()
