"""Loudness on every kind of sound (issue 30): a printed table, measured from the outside as a user would.

    .venv/bin/python bench/loudness.py [--kinds steady,bursty,spiky,speech] [--seconds 1,2,4,10]
                                       [--targets web,streaming,broadcast,-31,-10] [--levels quiet,loud]
                                       [--normalize PATH-TO-ffmpeg-normalize]

Generated clips (a 128x128 picture; the sound is what costs): steady pink
noise, bursty noise (on a quarter of each second), spiky pink noise with
short -5 dBFS clicks (the issue's clip), speech-like noise (band-passed,
syllable-rate envelope), each quiet and loud. Each is trimmed through the
API in process (`/api/trim`, `loudness=<target>`) and the downloaded file
measured with `ebur128=peak=true`: ours. Against it, on the same clip:
loudnorm's two-pass (the service's method before: the meter's figures
into `loudnorm=...:linear=true`, TP -1.5, then the same AAC encode), and
ffmpeg-normalize's (its default EBU mode, AAC at the house bitrate) when
given its path. Columns: LUFS / dBTP before and after, the miss (LU), the
mode the RenderLog recorded and the render's wall time.
"""

import argparse
import os
import subprocess
import tempfile
import time
from pathlib import Path

os.environ.setdefault("VIDEOAPI_CANVAS", "128x128")  # before Django is set up: the picture costs nothing here

from bench import (  # bench/bench.py: Django set up, the project's FFmpeg runner
    ffmpeg,
    run,
)

SOUNDS = {  # peak amplitude of the loud variant; the quiet one is 20 dB lower
    "steady": "anoisesrc=c=pink:a={a}:r=48000:seed=1",
    "bursty": "anoisesrc=c=pink:a={a}:r=48000:seed=2,volume='lt(mod(t,1),0.25)':eval=frame",
    "spiky": ("anoisesrc=c=pink:a={a}*0.25:r=48000:seed=3[n];"
              "aevalsrc='{a}*0.56*lt(mod(t,0.5),0.0005)':s=48000[c];[n][c]amix=inputs=2:normalize=0"),
    "speech": ("anoisesrc=c=pink:a={a}:r=48000:seed=4,bandpass=f=700:width_type=h:w=1200,"
               "volume='0.2+0.8*pow(abs(sin(2*PI*2.3*t)),3)*lt(mod(t,2.7),2.2)':eval=frame"),
}
LEVELS = {"loud": 1.0, "quiet": 0.1}
TARGETS = {"web": -16.0, "streaming": -14.0, "broadcast": -23.0, "-31": -31.0, "-10": -10.0}


def r128(path) -> tuple[float, float]:
    """Integrated loudness and true peak of `path`'s sound, as `ebur128=peak=true` reads it."""
    from renders.media import loudness

    path = Path(path)
    result = ffmpeg.run([*loudness.MEASURE_LOGLEVEL, "-i", path.name, "-map", "0:a:0", "-af", loudness.METER,
                         "-f", "null", "-"], cwd=path.parent, timeout=300)
    measured = loudness.parse_measurement(result.stderr_tail)
    return measured.i, measured.tp


def make(work, kind, level, seconds) -> Path:
    path = work / f"{kind}-{level}-{seconds:g}.mov"  # the sound kept as PCM: what is measured is the recipe's
    sound = SOUNDS[kind].format(a=LEVELS[level])
    run(["-f", "lavfi", "-i", f"color=c=gray:s=128x128:r=25:d={seconds}", "-filter_complex",
         f"{sound},atrim=end={seconds},aformat=channel_layouts=stereo[a]", "-map", "0:v", "-map", "[a]",
         "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "pcm_s24le", "-t", f"{seconds}", path.name], work)
    return path


def two_pass_loudnorm(work, source, target, bitrate) -> tuple[float, float]:
    """loudnorm's two-pass as the service did it before: the meter's values in, linear=true, TP -1.5."""
    from renders.media import loudness

    result = ffmpeg.run([*loudness.MEASURE_LOGLEVEL, "-i", source.name, "-map", "0:a", "-af", loudness.METER,
                         "-f", "null", "-"], cwd=work, timeout=300)
    m = loudness.parse_measurement(result.stderr_tail)
    lra = min(50.0, max(7.0, round(m.lra + 0.15, 1)))
    apply = (f"loudnorm=I={target}:TP=-1.5:LRA={lra}:measured_I={m.i}:measured_TP={m.tp}:measured_LRA={m.lra}"
             f":measured_thresh={m.thresh}:linear=true:print_format=none,aresample=48000")
    run(["-i", source.name, "-map", "0:a", "-af", apply,
         "-c:a", "aac", "-b:a", bitrate, "-ac", "2", "loudnorm.m4a"], work)
    return r128(work / "loudnorm.m4a")


def ffmpeg_normalize(work, tool, source, target, bitrate) -> tuple[float, float] | None:
    out = work / "normalize.m4a"
    # ffmpeg-normalize is another program (a scratch venv's), not FFmpeg: the runner cannot start it
    done = subprocess.run([tool, str(source), "-vn", "-t", f"{target}", "-tp", "-1.5", "-c:a", "aac", "-b:a", bitrate,
                           "-ar", "48000", "-f", "-o", str(out)], capture_output=True, text=True, check=False,
                          env={**os.environ, "FFMPEG_PATH": ffmpeg.ffmpeg_binary()})
    if done.returncode:
        return None
    return r128(out)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--kinds", default=",".join(SOUNDS))
    parser.add_argument("--seconds", default="1,2,4,10")
    parser.add_argument("--targets", default=",".join(TARGETS))
    parser.add_argument("--levels", default="quiet,loud")
    parser.add_argument("--normalize", default="")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="videoapi-bench-loudness-") as work:
        bench(Path(work), options)


def bench(work, options):
    from django.conf import settings
    from django.core.management import call_command
    from rest_framework.test import APIClient

    from renders.models import RenderLog

    call_command("migrate", verbosity=0)
    client, bitrate = APIClient(), settings.VIDEOAPI_AUDIO_BITRATE
    print("| sound | s | target | in LUFS / dBTP | ours LUFS / dBTP (miss) | mode | s | "
          "loudnorm 2-pass (miss) | ffmpeg-normalize (miss) |")
    print("|---|---|---|---|---|---|---|---|---|")
    worst = 0.0
    for kind in options.kinds.split(","):
        for level in options.levels.split(","):
            for seconds in (float(s) for s in options.seconds.split(",")):
                source = make(work, kind, level, seconds)
                before = r128(source)
                for name in options.targets.split(","):
                    target = TARGETS[name]
                    with open(source, "rb") as handle:
                        started = time.perf_counter()
                        response = client.post("/api/trim", {"video": handle, "start": "0", "loudness": name},
                                               format="multipart", HTTP_HOST="localhost")
                        elapsed = time.perf_counter() - started
                    assert response.status_code == 200, response.content[:300]
                    out = work / "ours.mp4"
                    out.write_bytes(b"".join(response.streaming_content) if response.streaming else response.content)
                    ours = r128(out)
                    mode = RenderLog.objects.get(id=response["X-Render-Id"]).details["loudness"]["mode"]
                    theirs = two_pass_loudnorm(work, source, target, bitrate)
                    other = ffmpeg_normalize(work, options.normalize, source, target, bitrate) \
                        if options.normalize else None
                    worst = max(worst, abs(ours[0] - target))
                    print(f"| {kind}, {level} | {seconds:g} | {target:g} | {before[0]:.1f} / {before[1]:.1f} | "
                          f"{cell(ours, target)} | {mode} | {elapsed:.2f} | {cell(theirs, target)} | "
                          f"{cell(other, target) if other else 'n/a'} |", flush=True)
    print(f"\nworst miss (ours): {worst:.2f} LU")


def cell(measured, target) -> str:
    return f"{measured[0]:.1f} / {measured[1]:.1f} ({measured[0] - target:+.1f})"


if __name__ == "__main__":
    main()
