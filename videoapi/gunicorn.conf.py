"""gunicorn settings (see docs/DEPLOYING.md).

gthread workers: each worker process serves several requests on threads,
so a slow client downloading a render does not block renders, and the
worker's heartbeat comes from its main loop, so a long render or a long
download is not killed by `timeout` (the sync worker sends no heartbeat
while it handles a request). Render concurrency is limited separately by
the host-wide render slots (VIDEOAPI_MAX_CONCURRENT_RENDERS).
"""

import os

from django.conf import settings as django_settings

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "videoapi.settings")

bind = os.environ.get("VIDEOAPI_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", "2"))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "8"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
# On SIGTERM a worker stops accepting and gets this long to finish its
# renders and downloads (each one's close() then cleans up); anything still
# running after that dies with the worker and is removed by sweep_temp.
# The FFmpeg timeout is read from Django's settings (one parser for every
# setting; a bad value stops the server here, before any worker starts).
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", int(django_settings.VIDEOAPI_FFMPEG_TIMEOUT) + 30))
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
# The master loads the app and warms it (on_starting, renders/warmup.py) before
# it opens the port, and each worker forks from it ready: no client waits for
# a worker to import Django, the views, the fonts or PyAV, neither after a
# start nor when a worker is replaced. A reload (HUP) re-reads this file and
# forks new workers from the code already loaded: new code needs a restart.
preload_app = True


def on_starting(server):
    """Once, in the master, before it listens: fresh metrics, sweep leftovers, warm up.

    VIDEOAPI_WARM_WORKERS=0 skips the warm-up (bench/api.py measures the difference).
    """
    import gc

    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "videoapi.settings")
    django.setup()
    clear_metrics(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    from renders.lifecycle.sweep import sweep

    report = sweep()
    server.log.info("startup sweep: deleted %d workspace(s), %d byte(s), %d live, %d error(s)",
                    len(report.deleted), report.bytes_freed, len(report.skipped_live), len(report.errors))
    if os.environ.get("VIDEOAPI_WARM_WORKERS", "1") == "0":
        server.log.info("warm-up off")
    else:
        from renders.warmup import warm

        try:
            warm()
        except Exception:  # a service that cannot warm up still serves (and fails loudly where it must)
            server.log.exception("warm-up failed")
    from django.db import connections

    connections.close_all()  # never hand a database connection to forked workers
    # What the master loaded stays out of the workers' garbage collections: a
    # collection would touch (and so copy) every page they share with it.
    gc.freeze()


def clear_metrics(metrics_dir):
    """A fresh start of the multiprocess metrics: every file of a process that is gone. A live process's files
    (the render worker's: scripts/serve starts it before gunicorn) stay, or its counts would vanish."""
    import re

    os.makedirs(metrics_dir, exist_ok=True)
    for name in os.listdir(metrics_dir):
        match = re.search(r"_(\d+)\.db$", name)
        if match and match[1] != str(os.getpid()):
            try:
                os.kill(int(match[1]), 0)
                continue  # alive
            except ProcessLookupError:
                pass
            except PermissionError:
                continue  # alive, another user's
        os.unlink(os.path.join(metrics_dir, name))


def post_worker_init(worker):
    """A worker forked from the warmed master has nothing left to load (preload_app).

    Its quick-stop signals are handled once: Ctrl-C in a terminal sends SIGINT
    to the worker while the master, handling its own SIGINT, sends it SIGQUIT.
    gunicorn's gthread handler starts with `ThreadPoolExecutor.shutdown()`,
    whose lock is not re-entrant, so a second signal landing inside the first
    handler deadlocked the worker (seen about once in eight Ctrl-Cs in
    tests/deployment/test_deploy.py), and the master waited out its graceful timeout.
    """
    import signal

    quit_now = worker.handle_quit

    def quit_once(sig, frame):
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGQUIT, signal.SIG_IGN)
        quit_now(sig, frame)

    signal.signal(signal.SIGINT, quit_once)
    signal.signal(signal.SIGQUIT, quit_once)
    worker.log.info("worker %s ready", worker.pid)


def worker_exit(server, worker):
    """A worker that stopped as asked, with nothing left in flight, leaves at once.

    Tearing down its interpreter would touch (and so copy) the pages it shares
    with the master, CPU taken from the workers that replace it on a reload
    (docs/BENCHMARKS.md, "A fresh worker's first request"). Its log lines are
    already written, its renders finished and their workspaces deleted.
    """
    import sys

    if worker.booted and not worker.alive and getattr(worker, "nr_conns", 0) == 0:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
