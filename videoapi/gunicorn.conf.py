"""gunicorn settings (see the README's "Deploying").

gthread workers: each worker process serves several requests on threads,
so a slow client downloading a render does not block renders, and the
worker's heartbeat comes from its main loop, so a long render or a long
download is not killed by `timeout` (the sync worker sends no heartbeat
while it handles a request). Render concurrency is limited separately by
the host-wide render slots (VIDEOAPI_MAX_CONCURRENT_RENDERS).
"""

import os

bind = os.environ.get("VIDEOAPI_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", "2"))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "8"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
# On SIGTERM a worker stops accepting and gets this long to finish its
# renders and downloads (each one's close() then cleans up); anything still
# running after that dies with the worker and is removed by sweep_temp.
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", str(int(float(os.environ.get("VIDEOAPI_FFMPEG_TIMEOUT", "300"))) + 30)))
keepalive = 5
# gunicorn's control socket (gunicornc) is off. Its default path is one per
# user ($XDG_RUNTIME_DIR or $HOME/.gunicorn/gunicorn.ctl): every instance on a
# host binds the same file, the last one takes it over and the first to stop
# unlinks it from under the others; under deploy/systemd the home directory is
# read-only, so it fails anyway. systemd already stops, reloads (HUP) and
# resizes (`systemctl kill -s TTIN/TTOU --kill-whom=main`) the service.
control_socket_disable = True
# The proxies (deploy/nginx) whose X-Forwarded-Proto gunicorn believes; Django
# reads the same variable to take the client address from X-Forwarded-For.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-") or None  # empty: no access log
errorlog = "-"
wsgi_app = "videoapi.wsgi:application"


def on_starting(server):
    """Once, in the master, before workers start: fresh metrics, sweep leftovers."""
    import shutil

    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "videoapi.settings")
    django.setup()
    metrics_dir = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    shutil.rmtree(metrics_dir, ignore_errors=True)
    os.makedirs(metrics_dir, exist_ok=True)
    from renders.sweep import sweep

    report = sweep()
    from django.db import connections

    connections.close_all()  # never hand a database connection to forked workers
    server.log.info("startup sweep: deleted %d workspace(s), %d byte(s), %d live, %d error(s)",
                    len(report.deleted), report.bytes_freed, len(report.skipped_live), len(report.errors))


def post_worker_init(worker):
    """Each worker loads views, fonts, PyAV and the FFmpeg path before its first request.

    VIDEOAPI_WARM_WORKERS=0 turns it off (bench/api.py measures the difference).
    """
    if os.environ.get("VIDEOAPI_WARM_WORKERS", "1") == "0":
        worker.log.info("worker %s ready (warm-up off)", worker.pid)
        return
    from renders.warmup import warm

    try:
        warm()
    except Exception:  # a worker that cannot warm up still serves (and fails loudly where it must)
        worker.log.exception("warm-up failed")
    worker.log.info("worker %s ready", worker.pid)


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
