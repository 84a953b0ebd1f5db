"""Prometheus metrics, correct across gunicorn's worker processes.

Counters and histograms use prometheus_client's multiprocess mode (one
file per process under PROMETHEUS_MULTIPROC_DIR, summed at scrape time;
the gunicorn config clears dead processes' files at start and marks dead workers).
What lives on disk (workspaces in flight, bytes and age under the temp
root, busy render slots) is measured from the host at scrape time, so it is
right whatever process asks (health.TempRootCollector). So are the jobs'
gauges (queue depth, oldest queued, recent wait, progress), from the
database, every host's (health.JobCollector): right whichever process or
host is scraped, and whether or not this host's worker is running.
"""

from prometheus_client import Counter, Histogram

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


# webhooks (renders.webhooks): counted when a delivery ends
WEBHOOK_DELIVERIES = Counter("videoapi_webhook_deliveries_total", "Webhook deliveries by final outcome "
                             "(succeeded, failed, gone: the receiver answered 410)", ["outcome"])
WEBHOOK_ATTEMPTS = Histogram("videoapi_webhook_attempts", "Attempts a webhook delivery took, by final outcome",
                             ["outcome"], buckets=(1, 2, 3, 4, 5, 6, 7, 10, 15, 21))


def webhook_delivered(outcome, attempts):
    WEBHOOK_DELIVERIES.labels(outcome).inc()
    WEBHOOK_ATTEMPTS.labels(outcome).observe(attempts)


JOB_WAIT_SECONDS = Histogram("videoapi_job_wait_seconds", "Time a job waited in its host's queue before its render "
                             "started", ["host"], buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 1800))


def job_started(host, waited):
    """Observed in the render_worker (its multiprocess files outlive a gunicorn restart: gunicorn.conf.py
    clears dead processes' files only)."""
    JOB_WAIT_SECONDS.labels(host).observe(waited)
