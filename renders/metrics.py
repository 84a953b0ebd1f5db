"""Prometheus metrics, correct across gunicorn's worker processes.

Counters and histograms use prometheus_client's multiprocess mode (one
file per process under PROMETHEUS_MULTIPROC_DIR, summed at scrape time;
the gunicorn config empties the directory at start and marks dead workers).
What lives on disk (workspaces in flight, bytes and age under the temp
root, busy render slots) is measured from the host at scrape time, so it is
right whatever process asks.
"""

import os
import time

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily

from .workspace import NAME_RE, dir_size, temp_root

# outcome: the RenderLog status (succeeded, rejected, failed, timeout), or `aborted` for a client that went
# away mid-upload (a rejected RenderLog with code client_disconnected): neither a failure of ours nor a bad request
ABORTED = "aborted"
RENDERS = Counter("videoapi_renders_total", "Requests that reached a render endpoint, by final outcome "
                  "(succeeded, rejected, aborted, failed, timeout)", ["endpoint", "outcome"])
RENDER_SECONDS = Histogram("videoapi_render_duration_seconds", "Time from render start to output ready",
                           ["endpoint"], buckets=(0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600))
CLEANUPS = Counter("videoapi_cleanups_total", "Workspace cleanups by outcome (deleted, failed, swept)", ["outcome"])


def rendered(endpoint, outcome, seconds=None):
    RENDERS.labels(endpoint, outcome).inc()
    if seconds is not None:
        RENDER_SECONDS.labels(endpoint).observe(seconds)


def cleanup(outcome):
    CLEANUPS.labels(outcome).inc()


class TempRootCollector:
    """Gauges read off the temp root when scraped."""

    def collect(self):
        from .slots import slots_in_use

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
