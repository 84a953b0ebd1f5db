"""/healthz, /readyz and /metrics: plain Django views for probes and scrapers."""

import os
import shutil
import tempfile
import time

from django.conf import settings
from django.db import connection
from django.http import HttpResponse, JsonResponse
from django.views.decorators.http import require_GET
from prometheus_client import CollectorRegistry, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily

from renders.lifecycle.slots import slots_in_use
from renders.lifecycle.workspace import NAME_RE, dir_size, temp_root
from renders.media import ffmpeg, fonts

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
    except Exception as exc:  # any driver error means not ready
        return False, type(exc).__name__


def _check_fonts():
    """The primary font loads; the detail says which scripts the installed fonts draw (fonts.coverage)."""
    try:
        coverage = fonts.coverage()
    except Exception as exc:  # ImproperlyConfigured: no primary font
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
                        ("fonts", _check_fonts)):
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


def exposition() -> bytes:
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)
    else:  # pragma: no cover - single process without the env var
        from prometheus_client import REGISTRY

        registry = REGISTRY
    registry.register(TempRootCollector())
    return generate_latest(registry)
