"""/healthz, /readyz and /metrics: plain Django views for probes and scrapers."""

import os
import shutil
import tempfile
import time
from collections import defaultdict
from datetime import timedelta

from django.conf import settings
from django.db import Error as DatabaseError
from django.db import connection
from django.http import HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.http import require_GET
from prometheus_client import CollectorRegistry, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily

from renders.lifecycle.slots import slots_in_use
from renders.lifecycle.workspace import NAME_RE, dir_size, temp_root
from renders.media import ffmpeg, fonts
from renders.models import JobHost, RenderLog

_FFMPEG_OK = {"checked": 0.0, "ok": False, "detail": ""}
FFMPEG_CHECK_EVERY = 60.0


@require_GET
def healthz(request):
    """The process is alive and answering."""
    return JsonResponse({"status": "ok"})


def _check_ffmpeg():
    now = time.monotonic()
    if now - _FFMPEG_OK["checked"] > FFMPEG_CHECK_EVERY or not _FFMPEG_OK["ok"]:
        try:
            with tempfile.TemporaryDirectory(dir=temp_root(), prefix=".ready-") as cwd:
                result = ffmpeg.run(["-version"], cwd=cwd, timeout=10)
            _FFMPEG_OK.update(ok=result.ok, detail="" if result.ok else f"exit {result.returncode}")
        except OSError as exc:
            _FFMPEG_OK.update(ok=False, detail=exc.strerror or str(exc))
        _FFMPEG_OK["checked"] = now
    return _FFMPEG_OK["ok"], _FFMPEG_OK["detail"]


def _check_temp_root():
    root = temp_root()
    try:
        with tempfile.NamedTemporaryFile(dir=root, prefix=".ready-"):
            pass
    except OSError as exc:
        return False, f"not writable: {exc.strerror}"
    free = shutil.disk_usage(root).free
    if free < settings.VIDEOAPI_MIN_FREE_BYTES:
        return False, f"only {free} bytes free (minimum {settings.VIDEOAPI_MIN_FREE_BYTES})"
    return True, f"{free} bytes free"


def _check_database():
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return True, ""
    except Exception as exc:  # noqa: BLE001  (any driver error means not ready)
        return False, type(exc).__name__


def _check_worker():
    """This host's render worker is alive: its heartbeat (every second) is younger than VIDEOAPI_JOB_LEASE.
    A host whose worker was never seen is not failed for it (it may be starting); one whose worker stopped
    beating is: its queue would wait for nobody."""
    try:
        seen = JobHost.objects.filter(host=settings.VIDEOAPI_HOST_ID).values_list("heartbeat_at", flat=True).first()
    except DatabaseError:
        return True, "unknown (the database check says why)"
    if seen is None:
        return True, "no render_worker seen on this host yet"
    age = (timezone.now() - seen).total_seconds()
    if age > settings.VIDEOAPI_JOB_LEASE:
        return False, (f"render_worker last seen {age:.0f} s ago (more than VIDEOAPI_JOB_LEASE, "
                       f"{settings.VIDEOAPI_JOB_LEASE:g} s): this host's jobs wait for nobody"), {"age": round(age, 1)}
    return True, f"render_worker seen {age:.1f} s ago", {"age": round(age, 1)}


def _check_fonts():
    """The primary font loads; the detail says which scripts the installed fonts draw (fonts.coverage)."""
    try:
        coverage = fonts.coverage()
    except Exception as exc:  # noqa: BLE001  (ImproperlyConfigured: no primary font; any failure: not ready)
        return False, str(exc), {}
    detail = f"{len(coverage['fonts'])} fonts drawing {len(coverage['covered'])} scripts"
    if coverage["partial"]:
        detail += "; in part only: " + ", ".join(coverage["partial"])
    return True, detail, {"scripts": coverage["covered"], "scripts_partial": coverage["partial"]}


@require_GET
def readyz(request):
    """Ready to take renders: FFmpeg runs, temp root writable with room, database reachable, fonts load."""
    checks = {}
    for name, check in (("ffmpeg", _check_ffmpeg), ("temp_root", _check_temp_root), ("database", _check_database),
                        ("fonts", _check_fonts), ("render_worker", _check_worker)):
        ok, detail, *extra = check()
        checks[name] = {"ok": ok, "detail": detail, **(extra[0] if extra else {})}
    ready = all(c["ok"] for c in checks.values())
    return JsonResponse({"status": "ready" if ready else "not ready", "checks": checks}, status=200 if ready else 503)


@require_GET
def metrics_view(request):
    return HttpResponse(exposition(), content_type="text/plain; version=0.0.4; charset=utf-8")


class TempRootCollector:
    """Gauges read off the temp root when scraped."""

    def collect(self):
        root = temp_root()
        count, size, oldest = 0, 0, 0.0
        now = time.time()
        for entry in os.scandir(root):
            if not NAME_RE.match(entry.name) or entry.is_symlink():
                continue
            count += 1
            size += dir_size(root / entry.name)
            try:
                oldest = max(oldest, now - entry.stat(follow_symlinks=False).st_mtime)
            except FileNotFoundError:
                pass
        yield GaugeMetricFamily("videoapi_workspaces_in_flight", "Render workspaces under the temp root", value=count)
        yield GaugeMetricFamily("videoapi_temp_root_bytes", "Bytes in render workspaces under the temp root",
                                value=size)
        yield GaugeMetricFamily("videoapi_oldest_workspace_age_seconds", "Age of the oldest workspace", value=oldest)
        yield GaugeMetricFamily("videoapi_render_slots_busy", "Render slots held right now", value=slots_in_use())


# ---- jobs, from the database ---------------------------------------------------------------------
#
# The database is the one place that knows every host's queue, whichever gunicorn worker or host is
# scraped and whether or not a host's render_worker runs (a dead worker's queue is what an alert wants
# to see). Every host reports every host's jobs: aggregate with max by (host), never sum.

JOB_WAIT_WINDOW = timedelta(minutes=5)
# a job started in the window was received at most its queueing time (VIDEOAPI_JOB_START_TIMEOUT, then it
# fails) plus its upload before: this bound lets the received_at index find it (render_started_at has none)
UPLOAD_ALLOWANCE = timedelta(minutes=15)


def job_stats(now=None) -> dict:
    """Per host: queued and running jobs, the oldest queued job's age, each running job's progress and
    ETA, and the wait (queued to started) of the jobs started in the last JOB_WAIT_WINDOW.

    Two small queries: the queued and running jobs (a few per host: VIDEOAPI_MAX_QUEUED_JOBS and the
    render slots bound them; the status index), and the jobs received in a bounded recent range (the
    received_at index). Never a scan of the table. This host is always listed.
    """
    now = now or timezone.now()
    hosts = defaultdict(lambda: {"queued": 0, "running": 0, "oldest_queued": 0.0, "running_jobs": [], "waits": []})
    hosts[settings.VIDEOAPI_HOST_ID]  # this host is listed even with nothing queued
    active = RenderLog.objects.filter(is_job=True, status__in=[RenderLog.Status.QUEUED, RenderLog.Status.RENDERING])
    for host, status, render_id, queued_at, progress, eta in active.order_by().values_list(
            "host", "status", "id", "queued_at", "progress", "eta_seconds"):
        entry = hosts[host]
        if status == RenderLog.Status.QUEUED:
            entry["queued"] += 1
            if queued_at:
                entry["oldest_queued"] = max(entry["oldest_queued"], (now - queued_at).total_seconds())
        else:
            entry["running"] += 1
            entry["running_jobs"].append({"id": str(render_id), "progress": progress or 0.0, "eta": eta})
    since = now - JOB_WAIT_WINDOW
    received = since - timedelta(seconds=settings.VIDEOAPI_JOB_START_TIMEOUT) - UPLOAD_ALLOWANCE
    started = RenderLog.objects.filter(received_at__gte=received, is_job=True, render_started_at__gte=since,
                                       queued_at__isnull=False)
    for host, queued_at, started_at in started.order_by().values_list("host", "queued_at", "render_started_at"):
        hosts[host]["waits"].append(max(0.0, (started_at - queued_at).total_seconds()))
    for entry in hosts.values():
        waits = entry.pop("waits")
        entry["wait_mean"] = sum(waits) / len(waits) if waits else None
        entry["wait_max"] = max(waits) if waits else None
        entry["started"] = len(waits)
    return dict(sorted(hosts.items()))


class JobCollector:
    """Job gauges read off the database when scraped; with the database down, only videoapi_job_metrics_up 0."""

    def collect(self):
        try:
            stats = job_stats()
        except DatabaseError:
            stats = None
        yield GaugeMetricFamily("videoapi_job_metrics_up", "1 if the job gauges could be read from the database",
                                value=0 if stats is None else 1)
        if stats is None:
            return
        jobs = GaugeMetricFamily("videoapi_jobs", "Jobs queued or running, per host (every host's, from the "
                                 "database)", labels=["host", "status"])
        oldest = GaugeMetricFamily("videoapi_job_oldest_queued_seconds", "Age of the oldest queued job, per host "
                                   "(0 with none queued)", labels=["host"])
        wait = GaugeMetricFamily("videoapi_job_recent_wait_seconds", "Time from queued to render started of the jobs "
                                 f"started in the last {JOB_WAIT_WINDOW.seconds // 60} minutes, per host",
                                 labels=["host", "stat"])
        started = GaugeMetricFamily("videoapi_jobs_started_recently", "Jobs started in the last "
                                    f"{JOB_WAIT_WINDOW.seconds // 60} minutes, per host", labels=["host"])
        progress = GaugeMetricFamily("videoapi_job_progress", "A running job's progress (0 to 1)",
                                     labels=["host", "render_id"])
        eta = GaugeMetricFamily("videoapi_job_eta_seconds", "A running job's estimated seconds to go",
                                labels=["host", "render_id"])
        for host, entry in stats.items():
            jobs.add_metric([host, "queued"], entry["queued"])
            jobs.add_metric([host, "running"], entry["running"])
            oldest.add_metric([host], entry["oldest_queued"])
            started.add_metric([host], entry["started"])
            if entry["started"]:
                wait.add_metric([host, "mean"], entry["wait_mean"])
                wait.add_metric([host, "max"], entry["wait_max"])
            for job in entry["running_jobs"]:
                progress.add_metric([host, job["id"]], job["progress"])
                if job["eta"] is not None:
                    eta.add_metric([host, job["id"]], job["eta"])
        beat = GaugeMetricFamily("videoapi_job_worker_heartbeat_age_seconds", "Seconds since each host's "
                                 "render_worker last beat (every second while alive); past VIDEOAPI_JOB_LEASE its "
                                 "/readyz fails", labels=["host"])
        now = timezone.now()
        for host, seen in JobHost.objects.order_by("host").values_list("host", "heartbeat_at"):
            beat.add_metric([host], max(0.0, (now - seen).total_seconds()))
        yield from (jobs, oldest, wait, started, progress, eta, beat)


def exposition() -> bytes:
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)
    else:  # pragma: no cover - single process without the env var
        from prometheus_client import REGISTRY

        registry = REGISTRY
    registry.register(TempRootCollector())
    registry.register(JobCollector())
    return generate_latest(registry)
