"""Jobs (issue 19) through a real gunicorn and a real render_worker: the speed goals, one table.

    .venv/bin/python bench/jobs.py [--runs 6] [--only latency overhead throughput progress ...]

Starts the service as bench/api.py does (its helpers: the production
settings, SQLite in a temp state dir, API-key auth, gunicorn with the
shipped gunicorn.conf.py) plus a `manage.py render_worker` with the default
poll interval (VIDEOAPI_JOB_POLL_INTERVAL), both on the same slots
(VIDEOAPI_MAX_CONCURRENT_RENDERS=2) and both running FFmpeg through a tiny
wrapper script that appends its start and end times (bash's EPOCHREALTIME,
microseconds, no fork) and the workspace it runs in to a file. The rows:

- latency: from a job's `queued_at` (RenderLog) to its FFmpeg starting, on
  an idle host, submissions spaced by a random 0-0.5 s (random phases
  against the worker's poll); 2 x runs jobs. Goal: median <= 0.5 s.
- overhead: a job's total (submit to `succeeded` seen by a client polling
  every 20 ms) minus its FFmpeg time (the wrapper's), against the same
  render done synchronously (Server-Timing total minus ffmpeg), alternating.
  Goal: within 0.6 s.
- throughput: 30 jobs submitted at once (one client thread per job; the
  client watches GET /api/jobs every 0.2 s and downloads each result as it
  succeeds) against 30 synchronous renders at once (30 threads each waiting
  for its file), same slots; wall time until all 30 files are downloaded;
  max(1, runs // 3) pairs, alternating. Goal: jobs within 10 % of sync.
- progress: the same FFmpeg encode run in this process through
  renders.media.ffmpeg.run without `watch`, with a `watch` that does
  nothing, and with the worker's own Watch (one UPDATE of a RenderLog per
  tick), alternating, max(6, runs) each. Goal: under 1 %.

The renders are the intro template over a short 720p clip. Everything
lives in bench/api.py's temp dir and is removed at the end. Machines are
shared and noisy: read the ratios, each measured within one run.
"""

import argparse
import concurrent.futures
import json
import os
import random
import shlex
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import api  # bench/api.py: sets the environment up (its temp dir is ours) and calls django.setup()
from api import INTRO, WORK, make, post, serve
from django.conf import settings
from django.core.management import call_command

from renders.media import builders, ffmpeg
from renders.models import ClientKey, RenderLog
from tests.jobclient import call
from tests.server import render_worker

SLOTS = 2
THREADS = 16  # per gunicorn worker (2 workers): 30 synchronous requests wait for a slot at once, plus the polls
CONCURRENT = 30
STAMPS = WORK / "ffmpeg-stamps.txt"
WRAPPER = WORK / "ffmpeg-stamped"


def write_wrapper():
    """FFmpeg behind a stamp of its start and end (bash's EPOCHREALTIME: no fork, microseconds)."""
    real = shlex.quote(ffmpeg.ffmpeg_binary())
    WRAPPER.write_text(f'#!/bin/bash\necho "start $EPOCHREALTIME $PWD" >> {STAMPS}\n{real} "$@"\nrc=$?\n'
                       f'echo "end $EPOCHREALTIME $PWD" >> {STAMPS}\nexit $rc\n')
    WRAPPER.chmod(0o755)


def stamps(render_id):
    """[(start, end)] of the FFmpeg runs in the render's workspace (wall-clock seconds)."""
    runs, started = [], None
    for line in STAMPS.read_text().splitlines() if STAMPS.exists() else []:
        kind, when, where = line.split(" ", 2)
        if where.endswith(f"_{render_id}"):
            if kind == "start":
                started = float(when)
            elif started is not None:
                runs.append((started, float(when)))
                started = None
    return runs


def new_token(name):
    from django.contrib.auth import get_user_model

    _key, token = ClientKey.objects.create_key(name=name, user=get_user_model().objects.get(username="admin"))
    return token


# ---- HTTP for jobs (bench/api.py's post() sends no extra headers: tests/jobs/test_jobs.py's call() does) ---------


def submit(address, token, fields):
    status, _head, body = call(address, "POST", "/api/intro/render", token, fields, {"Prefer": "respond-async"})
    if status != 202:
        raise SystemExit(f"job submission: expected 202, got {status}: {body[:300]!r}")
    return json.loads(body)["id"]


def download(address, token, job_id):
    status, _head, body = call(address, "GET", f"/api/jobs/{job_id}/result", token)
    if status != 200 or not body:
        raise SystemExit(f"job {job_id} result: {status} {body[:300]!r}")
    return len(body)


def wait_status(job_id, seconds=120):
    """The job's RenderLog status once it has ended (read from the database: no load on gunicorn)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        status = RenderLog.objects.filter(pk=job_id).values_list("status", flat=True).first()
        if status not in (None, "received", "queued", "rendering"):
            if status != "succeeded":
                raise SystemExit(f"job {job_id} ended {status}")
            return
        time.sleep(0.05)
    raise SystemExit(f"job {job_id} did not finish in {seconds} s")


def summary(values, unit="s", scale=1.0, digits=3):
    return (f"{scale * statistics.median(values):.{digits}f} {unit}",
            f"{scale * min(values):.{digits}f}", f"{scale * max(values):.{digits}f}")


# ---- the rows ---------------------------------------------------------------------------------------------


def latency_rows(address, token, fields, runs):
    """queued_at -> FFmpeg's start on an idle host, split at the worker's claim (render_started_at)."""
    waits, claims, preps = [], [], []
    for _ in range(runs):
        time.sleep(random.uniform(0, 0.5))  # a random phase against the worker's poll
        job_id = submit(address, token, fields)
        wait_status(job_id)
        log = RenderLog.objects.get(pk=job_id)
        first = stamps(job_id)[0][0]
        waits.append(first - log.queued_at.timestamp())
        claims.append((log.render_started_at - log.queued_at).total_seconds())
        preps.append(first - log.render_started_at.timestamp())
    return [
        ("latency", "queued -> FFmpeg starts, idle host", *summary(waits), "<= 0.5 s median",
         "yes" if statistics.median(waits) <= 0.5 else "NO", f"{runs} jobs"),
        ("", "  of which queued -> the worker starts it", *summary(claims), "", "",
         "queued_at -> render_started_at (the poll and the claim)"),
        ("", "  of which started -> FFmpeg starts", *summary(preps), "", "",
         "render_started_at -> the wrapper's start"),
    ]


def overhead_rows(address, token, fields, runs):
    sync, job, downloads = [], [], []
    for _ in range(runs):
        answer = post(address, token, "/api/intro/render", fields)
        sync.append((answer.total - answer.ffmpeg, answer.wall - answer.ffmpeg))
        time.sleep(random.uniform(0, 0.5))
        started = time.time()
        job_id = submit(address, token, fields)
        while True:
            status, _head, body = call(address, "GET", f"/api/jobs/{job_id}", token)
            state = json.loads(body)["status"]
            if state == "succeeded":
                break
            if state not in ("queued", "running") or status != 200:
                raise SystemExit(f"job {job_id}: {status} {body[:300]!r}")
            time.sleep(0.02)
        done = time.time()
        download(address, token, job_id)
        downloads.append(time.time() - done)
        spent = sum(end - start for start, end in stamps(job_id))
        job.append(done - started - spent)
    sync_span, sync_wall = [s for s, _ in sync], [w for _, w in sync]
    difference = statistics.median(job) - statistics.median(sync_span)
    return [
        ("overhead", "job: submit -> succeeded, minus FFmpeg", *summary(job), "", "",
         f"{runs} jobs polled every 20 ms; then the download {1000 * statistics.median(downloads):.0f} ms"),
        ("", "sync: Server-Timing total - ffmpeg", *summary(sync_span), "", "",
         f"the client's wall time - ffmpeg: {statistics.median(sync_wall):.3f} s"),
        ("", "  job overhead - sync overhead (medians)", f"{difference:+.3f} s", "", "", "<= 0.6 s",
         "yes" if difference <= 0.6 else "NO",
         f"against the client's sync wall: {statistics.median(job) - statistics.median(sync_wall):+.3f} s"),
    ]


def sync_burst(address, token, fields):
    began, started = time.time(), time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(CONCURRENT) as pool:
        answers = list(pool.map(lambda _: post(address, token, "/api/intro/render", fields), range(CONCURRENT)))
    assert all(a.status == 200 for a in answers)
    return began, time.monotonic() - started, [a.render_id for a in answers]


def job_burst(address, fields):
    """30 jobs at once from one client; it lists its jobs every 0.2 s and downloads each result once it is
    ready (one list request instead of 30 status polls: 30 polls every 0.2 s would cost the renders CPU)."""
    token = new_token(f"burst-{time.monotonic_ns()}")  # its own client: the list holds only this burst
    ready = {}
    done = threading.Event()

    def watch():
        while not done.is_set():
            _status, _head, body = call(address, "GET", "/api/jobs?limit=100", token)
            for job in json.loads(body)["results"]:
                if job["status"] not in ("queued", "running") and job["id"] in ready:
                    ready[job["id"]].set()
            done.wait(0.2)

    def one(_):
        job_id = submit(address, token, fields)
        ready[job_id] = event = threading.Event()
        if not event.wait(300):
            raise SystemExit(f"job {job_id} not ready after 300 s")
        download(address, token, job_id)
        return job_id

    watcher = threading.Thread(target=watch)
    began, started = time.time(), time.monotonic()
    watcher.start()
    try:
        with concurrent.futures.ThreadPoolExecutor(CONCURRENT) as pool:
            ids = list(pool.map(one, range(CONCURRENT)))
    finally:
        done.set()
        watcher.join()
    return began, time.monotonic() - started, ids


def slot_use(ids, began, wall):
    """How the burst used the slots, from the wrapper's stamps: FFmpeg's seconds in all; the share of slots x
    (first start .. last end) FFmpeg ran; the median hand-over (an FFmpeg run ending to the next one starting,
    once every slot has had one); the head (burst start to the first FFmpeg start) and the tail (the last
    FFmpeg end to the last file downloaded); and the wall time per second of FFmpeg work per slot (wall /
    (FFmpeg seconds / slots): 1.0 would be slots always busy and nothing before or after)."""
    runs = sorted(run for render_id in ids for run in stamps(render_id))
    ends = sorted(end for _start, end in runs)
    span = ends[-1] - runs[0][0]
    gaps = []
    for start, _end in runs[SLOTS:]:
        before = [end for end in ends if end <= start]
        if before:
            gaps.append(start - before[-1])
    work = sum(end - start for start, end in runs)
    return {"work": work, "busy": work / (SLOTS * span), "handover": statistics.median(gaps),
            "head": runs[0][0] - began, "tail": began + wall - ends[-1], "per_work": wall / (work / SLOTS)}


def throughput_rows(address, token, fields, pairs):
    syncs, jobs_, use = [], [], {"sync": [], "jobs": []}
    for _ in range(pairs):
        began, wall, ids = sync_burst(address, token, fields)
        syncs.append(wall)
        use["sync"].append(slot_use(ids, began, wall))
        began, wall, ids = job_burst(address, fields)
        jobs_.append(wall)
        use["jobs"].append(slot_use(ids, began, wall))
    ratio = statistics.median(j / s for j, s in zip(jobs_, syncs))

    def median(kind, key, scale=1.0):
        return scale * statistics.median(u[key] for u in use[kind])

    def busy(kind):
        return (f"FFmpeg {median(kind, 'work'):.1f} s in all, busy {median(kind, 'busy', 100):.1f} % of "
                f"slots x span, hand-over {median(kind, 'handover', 1000):.0f} ms, head "
                f"{median(kind, 'head', 1000):.0f} ms, tail {median(kind, 'tail', 1000):.0f} ms (medians)")

    per_work = statistics.median(j["per_work"] / s["per_work"] for j, s in zip(use["jobs"], use["sync"]))

    return [
        ("throughput", f"{CONCURRENT} sync renders at once: wall", *summary(syncs), "", "",
         f"{pairs} runs; {busy('sync')}"),
        ("", f"{CONCURRENT} jobs at once: wall", *summary(jobs_), "", "", f"alternating with sync; {busy('jobs')}"),
        ("", "  jobs / sync (median of the pairs)", f"{ratio:.3f}", "", "", "<= 1.10",
         "yes" if ratio <= 1.10 else "NO", ", ".join(f"{j / s:.3f}" for j, s in zip(jobs_, syncs))),
        ("", "  the same per second of FFmpeg work", f"{per_work:.3f}", "", "", "", "",
         "wall / (FFmpeg seconds / slots), jobs over sync: the ratio without FFmpeg's own slow-downs"),
    ]


def progress_rows(clip, runs):
    """One FFmpeg encode (a few seconds), in this process, without and with a `watch`.

    Each run's wall time, and its CPU time: FFmpeg's (the children's rusage)
    plus this thread's (starting FFmpeg, the ticks, the UPDATEs). On a shared
    machine the CPU time is the steadier of the two.
    """
    import resource
    from datetime import timedelta

    from django.utils import timezone

    from renders.lifecycle.jobs import Watch

    folder = WORK / "progress"
    folder.mkdir(exist_ok=True)
    length = 10.0
    args = ["-i", str(clip), *builders.threads(), "-c:v", "libx264", "-preset", "veryfast", "-crf", "20",
            "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "160k", "-t", str(length), "out.mp4"]
    log = RenderLog.objects.create(endpoint="bench", status=RenderLog.Status.RENDERING, worker_id="bench",
                                   render_started_at=timezone.now(),
                                   lease_expires_at=timezone.now() + timedelta(seconds=600))
    ticks = []

    def nothing(report):
        ticks.append(report.out_seconds)
        return True

    def cpu():
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        return children.ru_utime + children.ru_stime + time.thread_time()

    variants = [("none", None), ("nothing", nothing), ("worker", Watch(log, length))]
    walls, cpus = {name: [] for name, _ in variants}, {name: [] for name, _ in variants}
    for index in range(runs):
        for name, watch in variants[index % 3:] + variants[:index % 3]:  # each goes first as often
            before = cpu()
            result = ffmpeg.run(args, cwd=folder, watch=watch)
            if not result.ok:
                raise SystemExit(result.stderr_tail)
            cpus[name].append(cpu() - before)
            walls[name].append(result.seconds)
    log.refresh_from_db()
    progress_written = log.progress
    # the tick alone, many times over: the CPU one call of the worker's Watch takes (read FFmpeg's report and
    # one UPDATE of the RenderLog), against the PROGRESS_PERIOD of render between two calls
    report, watch, calls = ffmpeg.Progress(folder / "none.txt"), Watch(log, length), 200
    report.speed, started = 1.0, time.thread_time()
    for index in range(calls):
        report.out_seconds = length * index / calls
        report.read()
        if not watch(report):
            raise SystemExit("the Watch's UPDATE found no row")
    tick = (time.thread_time() - started) / calls

    def percent(ratios):
        return [f"{100 * (statistics.median(ratios) - 1):+.2f} %", f"{100 * (min(ratios) - 1):+.2f}",
                f"{100 * (max(ratios) - 1):+.2f}"]

    rows = [("progress", f"encode {length:g} s of 720p, no watch: wall", *summary(walls["none"]), "", "",
             (f"{runs} runs of each variant, alternating; CPU {statistics.median(cpus['none']):.3f} s; "
              f"{len(ticks) / runs:.0f} ticks a run; the Watch wrote progress {progress_written}"))]
    for name, label in (("nothing", "a watch doing nothing"), ("worker", "the worker's Watch")):
        wall = [w / b for w, b in zip(walls[name], walls["none"])]
        used = [c / b for c, b in zip(cpus[name], cpus["none"])]
        rows.append(("", f"  {label}: wall / none", *percent(wall), "< 1 %",
                     "yes" if statistics.median(wall) < 1.01 else "NO",
                     f"median {statistics.median(walls[name]):.3f} s"))
        rows.append(("", f"  {label}: CPU / none", *percent(used), "< 1 %",
                     "yes" if statistics.median(used) < 1.01 else "NO",
                     f"median {statistics.median(cpus[name]):.3f} s"))
    share = tick / ffmpeg.PROGRESS_PERIOD
    rows.append(("", f"  one Watch tick's CPU / {ffmpeg.PROGRESS_PERIOD:g} s", f"{100 * share:.3f} %", "", "",
                 "< 1 %", "yes" if share < 0.01 else "NO",
                 (f"{1000 * tick:.3f} ms a tick (read the report, one UPDATE), mean of {calls}; the ticks' whole "
                  "cost, if it all came out of FFmpeg's time")))
    return rows


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=6,
                        help="overhead pairs; latency 2x, progress max(6, N) each, throughput max(1, N // 3) pairs")
    rows_ = ["latency", "overhead", "throughput", "progress"]
    parser.add_argument("--only", nargs="*", choices=rows_, default=rows_)
    options = parser.parse_args()
    call_command("migrate", verbosity=0)
    with open(os.devnull, "w") as quiet:
        call_command("ensure_admin", stdout=quiet)
    token = new_token("bench-jobs")
    write_wrapper()
    src = "testsrc2=s=1280x720:r=30:d={}"
    encode = ["-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p", "-g", "60",
              "-c:a", "aac", "-b:a", "160k", "-ac", "2", "-shortest", "-movflags", "+faststart"]
    clip = make("clip2s.mp4", "-f", "lavfi", "-i", src.format(2), "-f", "lavfi", "-i", "sine=f=440:d=2:r=48000",
                *encode)
    long_clip = make("clip10s.mp4", "-f", "lavfi", "-i", src.format(10), "-f", "lavfi",
                     "-i", "sine=f=440:d=10:r=48000", *encode)
    fields = {"video": clip, **INTRO}
    import django
    import imageio_ffmpeg

    django.db.connections.close_all()
    env = {"VIDEOAPI_MAX_CONCURRENT_RENDERS": str(SLOTS), "VIDEOAPI_FFMPEG": str(WRAPPER)}
    poll = settings.VIDEOAPI_JOB_POLL_INTERVAL
    print(f"{os.cpu_count()} cores, Python {sys.version.split()[0]}, FFmpeg {imageio_ffmpeg.get_ffmpeg_version()}; "
          f"2 gunicorn workers x {THREADS} threads, VIDEOAPI_MAX_CONCURRENT_RENDERS={SLOTS}, "
          f"VIDEOAPI_FFMPEG_THREADS={settings.VIDEOAPI_FFMPEG_THREADS}, render_worker with "
          f"VIDEOAPI_JOB_POLL_INTERVAL={poll:g} (threads = slots), VIDEOAPI_SLOT_WAIT_TIMEOUT="
          f"{api.ENV['VIDEOAPI_SLOT_WAIT_TIMEOUT']}; intro template over a 2 s 1280x720 clip", flush=True)
    rows = []
    if set(options.only) & {"latency", "overhead", "throughput"}:
        with serve(GUNICORN_THREADS=str(THREADS), **env) as (address, _proc), \
                render_worker({"DJANGO_SETTINGS_MODULE": "videoapi.settings", **env}, args=("--interval", str(poll))):
            post(address, token, "/api/intro/render", fields)  # both gunicorn workers and the worker see traffic
            post(address, token, "/api/intro/render", fields)
            wait_status(submit(address, token, fields))
            if "latency" in options.only:
                rows += latency_rows(address, token, fields, 2 * options.runs)
            if "overhead" in options.only:
                rows += overhead_rows(address, token, fields, options.runs)
            if "throughput" in options.only:
                rows += throughput_rows(address, token, fields, max(1, options.runs // 3))
    if "progress" in options.only:
        rows += progress_rows(long_clip, max(6, options.runs))
    print()
    print(f"{'row':<11}{'measure':<48}{'median':>11}{'min':>8}{'max':>8}  {'goal':<16}{'met':<5}detail")
    print("-" * 150)
    for name, label, median, low, high, goal, met, detail in rows:
        print(f"{name:<11}{label:<48}{median:>11}{low:>8}{high:>8}  {goal:<16}{met:<5}{detail}")


if __name__ == "__main__":
    try:
        main()
    finally:
        import shutil

        if not os.environ.get("BENCH_KEEP"):
            shutil.rmtree(WORK, ignore_errors=True)
