"""Through a real gunicorn: the numbers an API client sees.

    .venv/bin/python bench/api.py [--repeat 5] [--jobs 24] [--only ROW ...]

Starts the service as production runs it (the shipped gunicorn.conf.py, the
production settings module, SQLite in a temp state dir, API-key auth) on a
loopback port, generates its inputs with FFmpeg, and prints one table.
Under `python -m tests.pgcluster --createdb -- ...` it uses that PostgreSQL
instead of SQLite. The rows:

- API wall time / FFmpeg time: an intro render (720p, 5 s) on a warm
  worker; FFmpeg's time comes from the response's Server-Timing header;
- a fresh worker's first request as a client sees it: the whole request's
  wall time over the same worker's next three (jpg previews of the 720p
  clip), sent the moment a fresh server's port accepts and right after a
  reload (HUP), median over several fresh servers, with the warm-up and
  without it (VIDEOAPI_WARM_WORKERS=0);
- trim preview (mp4, 360p) / accurate trim: 8 s of a 1080p source, end to end;
- forced re-encode / copy join: 3 x 10 s 720p house segments (the re-encode
  is forced by giving the last segment 44.1 kHz sound);
- cleanup: from the client's last byte to the workspace gone (p50, p95);
- worker RSS before and at its peak during a 45 MB and a 450 MB upload
  (each on a fresh worker), and after probing refuses it;
- throughput: a mixed workload (templates, trims, previews, joins) from 4
  concurrent clients at 1, 2 and 4 render slots, with the thread budget
  shared out among the slots (the default) and with FFmpeg's own threading.

Every ratio is measured in one run, from medians of `--repeat` requests.
Machines are shared and noisy: compare the ratios, not the seconds.
"""

import argparse
import concurrent.futures
import contextlib
import http.client
import os
import signal
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
WORK = Path(tempfile.mkdtemp(prefix="videoapi-bench-api-"))
ENV = {
    "DJANGO_SETTINGS_MODULE": "videoapi.settings",
    "VIDEOAPI_STATE_DIR": str(WORK / "state"),
    "VIDEOAPI_TEMP_ROOT": str(WORK / "renders"),
    # SQLite in the temp dir, or the PostgreSQL that tests.pgcluster --createdb hands over
    "DATABASE_URL": os.environ.get("DATABASE_URL", "") if os.environ.get("DATABASE_URL", "").startswith("postgres")
    else f"sqlite:///{WORK / 'state' / 'db.sqlite3'}",
    "VIDEOAPI_TEST_DIR": str(WORK),  # where tests.server writes gunicorn's log
    "VIDEOAPI_SLOT_WAIT_TIMEOUT": "600",  # the throughput rows queue on purpose
    "VIDEOAPI_LOG_LEVEL": "WARNING",
    "DJANGO_SECRET_KEY": "bench-only-secret-key-not-for-production-use-0123456789abcdef",
}
os.environ.update(ENV)

import django

django.setup()

from django.core.management import call_command

from renders.media import (
    builders,
    ffmpeg,
)
from tests.server import gunicorn, multipart_parts

TEMP_ROOT = Path(ENV["VIDEOAPI_TEMP_ROOT"])
INTRO = {"full_name": "Ada Lovelace", "role": "Head of Engineering", "team": "Analytical Engines"}


def make(name, *args):
    """Generate an input with FFmpeg (through the service's runner)."""
    result = ffmpeg.run([*args, name], cwd=WORK, timeout=600)
    if not result.ok:
        raise SystemExit(result.stderr_tail)
    return WORK / name


def inputs(address, token):
    """The bench's uploads; the join segments are the service's own output (house format)."""
    src = "testsrc2=s={}:r=30:d={}"
    encode = ["-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p", "-g", "60",
              "-c:a", "aac", "-b:a", "160k", "-ac", "2", "-shortest", "-movflags", "+faststart"]
    clips = {
        "intro": make("intro.mp4", "-f", "lavfi", "-i", src.format("1280x720", 5), "-f", "lavfi",
                      "-i", "sine=f=440:d=5:r=48000", *encode),
        "source": make("source1080.mp4", "-f", "lavfi", "-i", src.format("1920x1080", 10), "-f", "lavfi",
                       "-i", "sine=f=330:d=10:r=48000", *encode),
        "segments": [],
    }
    for i in range(3):
        raw = make(f"raw{i}.mp4", "-f", "lavfi", "-i", src.format("1280x720", 10), "-f", "lavfi",
                   "-i", f"sine=f={440 * (i + 1)}:d=10:r=48000", *encode)
        segment = WORK / f"seg{i}.mp4"
        segment.write_bytes(post(address, token, "/api/trim", {"video": raw, "start": "0"}, keep=True).body)
        clips["segments"].append(segment)
    # the same three, the last with its sound at 44.1 kHz: the layouts differ, so the join re-encodes
    clips["mixed"] = clips["segments"][:2] + [make("seg2-44k.mp4", "-i", "seg2.mp4", "-c:v", "copy", "-c:a", "aac",
                                                   "-ar", "44100", "-movflags", "+faststart")]
    clips["uploads"] = {}
    for megabytes in (45, 450):
        clips["uploads"][megabytes] = WORK / f"upload-{megabytes}MB.mp4"
        with open(clips["uploads"][megabytes], "wb") as handle:
            handle.truncate(megabytes * 1000 * 1000)  # sparse: the body is sent, probing refuses it afterwards
    return clips


# ---- one request -------------------------------------------------------------


@dataclass
class Answer:
    status: int
    wall: float  # request start to the last byte read
    ffmpeg: float  # Server-Timing ffmpeg
    total: float  # Server-Timing total: the service's own span, from receiving the request to its first byte
    render_id: str
    headers: dict
    body: bytes | None
    cleanup: float | None  # the client's last byte to the workspace gone

    @property
    def outside(self):
        """What the client waited outside the service's own span: connecting, a worker's boot, routing, auth."""
        return self.wall - self.total


def post(address, token, path, fields, expect=200, keep=False, sent=None):
    """Stream a multipart POST (files read in 1 MiB chunks), read the whole answer, time its cleanup."""
    parts, content_type = multipart_parts(fields)
    length = sum(p.stat().st_size if isinstance(p, Path) else len(p) for p in parts)
    host, port = address.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=900)
    started = time.monotonic()
    conn.putrequest("POST", path)
    for name, value in (("Content-Type", content_type), ("Content-Length", str(length)),
                        ("Authorization", f"Token {token}")):
        conn.putheader(name, value)
    conn.endheaders()
    for part in parts:
        if isinstance(part, Path):
            with open(part, "rb") as handle:
                while chunk := handle.read(1 << 20):
                    conn.send(chunk)
        else:
            conn.send(part)
    if sent is not None:
        sent()  # the whole body is on its way
    response = conn.getresponse()
    body = response.read()
    finished = time.monotonic()
    conn.close()
    if expect is not None and response.status != expect:
        raise SystemExit(f"{path}: expected {expect}, got {response.status}: {body[:300]!r}")
    render_id = response.getheader("X-Render-Id", "")
    cleanup = cleanup_latency(render_id, finished) if render_id else None
    timing = dict(p.split(";")[:2] for p in response.getheader("Server-Timing", "ffmpeg;dur=0").split(", "))
    return Answer(response.status, finished - started, float(timing["ffmpeg"][4:]) / 1000,
                  float(timing.get("total", "dur=0")[4:]) / 1000, render_id, dict(response.getheaders()),
                  body if keep else None, cleanup)


def cleanup_latency(render_id, finished):
    """Seconds from the client's last byte until the render's workspace is gone (0 if it already was)."""
    while any(TEMP_ROOT.glob(f"*_{render_id}")):
        if time.monotonic() - finished > 10:
            raise SystemExit(f"workspace of {render_id} still there after 10 s")
        time.sleep(0.0005)
    return max(0.0, time.monotonic() - finished)


@contextlib.contextmanager
def serve(**env):
    settings = {"GUNICORN_WORKERS": "2", "GUNICORN_THREADS": "8", **ENV, **env}
    workers, threads = int(settings.pop("GUNICORN_WORKERS")), int(settings.pop("GUNICORN_THREADS"))
    with gunicorn(extra_env=settings, workers=workers, threads=threads) as (address, proc):
        log = WORK / f"gunicorn-{address.split(':')[1]}.log"
        deadline = time.monotonic() + 60
        while log.read_text().count(" ready") < workers:  # each worker logs once it is ready (warm or not)
            if time.monotonic() > deadline:
                raise SystemExit(f"workers did not get ready: {log.read_text()[-2000:]}")
            time.sleep(0.05)
        yield address, proc


def worker_pids(proc):
    return [int(p) for p in Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()]


def rss_kib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


# ---- the rows ----------------------------------------------------------------


def p95(values):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def warm_rows(token, clips, repeat, cleanups):
    rows = []
    with serve() as (address, _proc):
        post(address, token, "/api/intro/render", {"video": clips["intro"], **INTRO})  # both workers see traffic
        answers = [post(address, token, "/api/intro/render", {"video": clips["intro"], **INTRO}) for _ in range(repeat)]
        cleanups += [a.cleanup for a in answers]
        wall, ff = statistics.median(a.wall for a in answers), statistics.median(a.ffmpeg for a in answers)
        rows.append(("intro render, warm worker: API wall / FFmpeg", f"{wall / ff:.3f}",
                     f"wall {wall:.3f} s, FFmpeg {ff:.3f} s, overhead {1000 * (wall - ff):.0f} ms"))

        source = clips["source"]
        trims, previews, decodes = [], [], []
        decode = ["-ss", "1", "-t", "8", *builders.threads(), "-i", source.name, "-map", "0:v", "-f", "null", "-"]
        for _ in range(repeat):  # interleaved, so all see the same machine
            trims.append(post(address, token, "/api/trim", {"video": source, "start": "1", "duration": "8"}))
            previews.append(post(address, token, "/api/trim/preview",
                                 {"video": source, "start": "1", "duration": "8", "height": "360"}))
            decodes.append(ffmpeg.run(decode, cwd=WORK).seconds)
        cleanups += [a.cleanup for a in trims + previews]
        trim, preview = statistics.median(a.wall for a in trims), statistics.median(a.wall for a in previews)
        rows.append(("trim preview mp4 360p / accurate trim (8 s of 1080p)", f"{preview / trim:.2f}",
                     f"preview {preview:.3f} s, trim {trim:.3f} s"))
        rows.append(("  decoding those 8 s alone / accurate trim", f"{statistics.median(decodes) / trim:.2f}",
                     f"decode {statistics.median(decodes):.3f} s (same thread budget, no output)"))

        copies, reencodes = [], []
        for _ in range(repeat):
            copies.append(post(address, token, "/api/concatenate", {"videos": clips["segments"]}))
            reencodes.append(post(address, token, "/api/concatenate", {"videos": clips["mixed"]}))
        assert {a.headers["X-Concat-Mode"] for a in copies} == {"copy"}, "the house segments should join by copy"
        assert {a.headers["X-Concat-Mode"] for a in reencodes} == {"reencode"}
        cleanups += [a.cleanup for a in copies + reencodes]
        copy, reencode = statistics.median(a.wall for a in copies), statistics.median(a.wall for a in reencodes)
        rows.append(("forced re-encode / copy join (3 x 10 s 720p)", f"{reencode / copy:.1f}x",
                     f"copy {copy:.3f} s, re-encode {reencode:.3f} s"))
    return rows


def first_request_rows(token, clips, repeat):
    """A fresh worker's first request as a client sees it: the whole request's wall time at the client.

    Nothing waits for the worker to say it is ready (a client cannot see
    that). After a start, the first request goes out as soon as the port
    accepts a connection: its wall time over the median of the next three.
    After a reload (HUP), requests go out back to back from the moment the
    new worker is forked (the old one may still take the first, and then
    stops): the extra wait summed over the first three, over three steady
    ones. jpg previews of the 720p clip, one worker, several fresh servers;
    the time outside the service's own span (wall minus Server-Timing
    total) shows whether a difference lies inside the view or before it.
    """
    rows = []
    preview = ("/api/trim/preview", {"video": clips["intro"], "start": "1", "format": "jpg"})
    runs = max(3, repeat)
    for warm in ("1", "0"):
        starts, reloads = [], []
        for _ in range(runs):
            with gunicorn(extra_env={**ENV, "VIDEOAPI_WARM_WORKERS": warm}, workers=1, threads=8) as (address, proc):
                starts.append([post(address, token, *preview) for _ in range(4)])
                old = set(worker_pids(proc))
                os.kill(proc.pid, signal.SIGHUP)
                deadline = time.monotonic() + 60
                while not set(worker_pids(proc)) - old:
                    if time.monotonic() > deadline:
                        raise SystemExit("the reload did not fork a new worker")
                    time.sleep(0.002)
                reloads.append([post(address, token, *preview) for _ in range(6)])
        if os.environ.get("BENCH_VERBOSE"):
            for when, answers in [("start", a) for a in starts] + [("reload", a) for a in reloads]:
                print(f"VIDEOAPI_WARM_WORKERS={warm} {when}: wall", [round(1000 * a.wall) for a in answers],
                      "span", [round(1000 * a.total) for a in answers], "ms", flush=True)

        def median_of(values):
            return 1000 * statistics.median(values)

        steady = [statistics.median(a.wall for a in answers[1:]) for answers in starts]
        extra = median_of(a[0].wall - s for a, s in zip(starts, steady))
        outside = median_of(a[0].outside - statistics.median(x.outside for x in a[1:]) for a in starts)
        detail = (f"first {median_of(a[0].wall for a in starts):.0f} ms, next {median_of(steady):.0f} ms; outside "
                  f"the service's span {outside:+.0f} ms; median over {runs} fresh servers")
        label = "a fresh worker's first request over its next three" if warm == "1" else "  the same, warm-up off"
        rows.append((("start", warm), label, f"{extra:+.0f} ms", detail))

        steady = [statistics.median(a.wall for a in answers[3:]) for answers in reloads]
        extra = median_of(sum(x.wall for x in a[:3]) - 3 * s for a, s in zip(reloads, steady))
        outside = median_of(sum(x.outside for x in a[:3]) - 3 * statistics.median(x.outside for x in a[3:])
                            for a in reloads)
        detail = (f"slowest of them {median_of(max(x.wall for x in a[:3]) for a in reloads):.0f} ms, steady "
                  f"{median_of(steady):.0f} ms; outside the service's span {outside:+.0f} ms; median over {runs} "
                  "servers")
        label = "  the first three after a reload (HUP), summed" if warm == "1" else "  the same, warm-up off"
        rows.append((("reload", warm), label, f"{extra:+.0f} ms", detail))
    order = [("start", "1"), ("start", "0"), ("reload", "1"), ("reload", "0")]  # each "the same" under its row
    return [row[1:] for row in sorted(rows, key=lambda row: order.index(row[0]))]


def upload_rows(token, clips):
    """A fresh worker per size: growth that does not follow the size is buffers, not the upload."""
    return [row for megabytes, path in clips["uploads"].items() for row in upload_row(token, clips, megabytes, path)]


def upload_row(token, clips, megabytes, path):
    with serve(GUNICORN_WORKERS="1") as (address, proc):
        pid = worker_pids(proc)[0]
        for _ in range(2):  # a worker's first requests allocate for good (connections, caches): not the upload's
            post(address, token, "/api/trim", {"video": clips["intro"], "start": "0", "duration": "1"})
        before, peaks, done, phase = rss_kib(pid), {"upload": 0, "answer": 0}, threading.Event(), ["upload"]

        def sample():
            while not done.is_set():
                peaks[phase[0]] = max(peaks[phase[0]], rss_kib(pid))
                time.sleep(0.01)

        sampler = threading.Thread(target=sample)
        sampler.start()
        try:
            answer = post(address, token, "/api/trim", {"video": path, "start": "0"}, expect=None,
                          sent=lambda: phase.__setitem__(0, "answer"))
        finally:
            done.set()
            sampler.join()
    if answer.status >= 500:
        raise SystemExit(f"the {megabytes} MB upload got {answer.status}")
    return [(f"worker RSS growth during a {megabytes} MB upload", f"{(peaks['upload'] - before) / 1024:+.1f} MB",
             (f"{before / 1024:.0f} MB before, {peaks['upload'] / 1024:.0f} MB peak while it arrived, upload "
              f"{answer.wall:.1f} s")),
            ("  then probing it and answering", f"{(peaks['answer'] - before) / 1024:+.1f} MB",
             f"answer {answer.status}: not a video")]


def workload(clips):
    source, intro = clips["source"], clips["intro"]
    return [
        ("/api/intro/render", {"video": intro, **INTRO}),
        ("/api/trim", {"video": source, "start": "1", "duration": "4"}),
        ("/api/trim/preview", {"video": source, "start": "1", "duration": "4"}),
        ("/api/closing/render", {"video": intro, "cta": "Try it today", "url": "example.com"}),
        ("/api/concatenate", {"videos": clips["segments"]}),
        ("/api/trim/preview", {"video": source, "start": "2", "format": "jpg"}),
    ]


def throughput_rows(token, clips, jobs, clients=4):
    rows = []
    mix = workload(clips)
    cores = os.cpu_count() or 1
    for slots in (1, 2, 4):
        for threads in (str(max(1, cores // slots)), "0"):
            with serve(VIDEOAPI_MAX_CONCURRENT_RENDERS=str(slots), VIDEOAPI_FFMPEG_THREADS=threads) as (address, _p):
                started = time.monotonic()
                with concurrent.futures.ThreadPoolExecutor(clients) as pool:
                    answers = list(pool.map(lambda i: post(address, token, *mix[i % len(mix)]), range(jobs)))
                elapsed = time.monotonic() - started
            walls = [a.wall for a in answers]
            label = f"{threads} (cores / slots)" if threads != "0" else "0 (FFmpeg's own)"
            rows.append((slots, label, 60 * jobs / elapsed, statistics.median(walls), p95(walls)))
    return rows


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5, help="requests per measured row (median)")
    parser.add_argument("--jobs", type=int, default=24, help="requests per throughput run")
    parser.add_argument("--only", nargs="*", choices=["warm", "first", "upload", "throughput"],
                        default=["warm", "first", "upload", "throughput"])
    options = parser.parse_args()
    call_command("migrate", verbosity=0)
    with open(os.devnull, "w") as quiet:
        call_command("ensure_admin", stdout=quiet)
    from django.contrib.auth import get_user_model

    from renders.models import ClientKey

    _key, token = ClientKey.objects.create_key(name="bench", user=get_user_model().objects.get(username="admin"))
    django.db.connections.close_all()
    with serve() as (address, _proc):
        clips = inputs(address, token)
    import imageio_ffmpeg

    print(f"{os.cpu_count()} cores, Python {sys.version.split()[0]}, FFmpeg {imageio_ffmpeg.get_ffmpeg_version()} "
          f"({ffmpeg.ffmpeg_binary()}); median of {options.repeat}")
    rows, cleanups = [], []
    if "warm" in options.only:
        rows += warm_rows(token, clips, options.repeat, cleanups)
    if "first" in options.only:
        rows += first_request_rows(token, clips, options.repeat)
    if cleanups:
        rows.append(("cleanup after the last byte, p50 / p95",
                     f"{1000 * statistics.median(cleanups):.1f} / {1000 * p95(cleanups):.1f} ms",
                     f"{len(cleanups)} renders"))
    if "upload" in options.only:
        rows += upload_rows(token, clips)
    print()
    print(f"{'measure':<56} {'value':>12}  detail")
    print("-" * 110)
    for label, value, detail in rows:
        print(f"{label:<56} {value:>12}  {detail}")
    if "throughput" in options.only:
        table = throughput_rows(token, clips, options.jobs)
        print()
        print(f"throughput: {options.jobs} mixed requests from 4 concurrent clients, 2 gunicorn workers x 8 threads")
        print(f"{'slots':>5}  {'threads per FFmpeg run':<24} {'renders/min':>11} {'p50 s':>7} {'p95 s':>7}")
        print("-" * 60)
        for slots, threads, per_minute, p50, p95_ in table:
            print(f"{slots:>5}  {threads:<24} {per_minute:>11.1f} {p50:>7.2f} {p95_:>7.2f}")


if __name__ == "__main__":
    try:
        main()
    finally:
        import shutil

        if not os.environ.get("BENCH_KEEP"):
            shutil.rmtree(WORK, ignore_errors=True)
