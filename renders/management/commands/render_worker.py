"""`manage.py render_worker`: run this host's render jobs beside gunicorn (the engine is renders.lifecycle.worker).

SIGTERM or SIGINT: stop claiming, let running jobs finish, exit. A second
one: stop their FFmpeg runs at once (the jobs fail `worker_lost`) and exit.
With --exit-with-parent the worker stops the same way when the process that
started it goes away, and with --exit-with PID when process PID does
(scripts/serve gives both: its supervisor, and gunicorn's master).
"""

import os
import signal

from django.conf import settings
from django.core.management.base import BaseCommand

import renders.api.views  # noqa: F401  (registers the render forms a job whose URL sources it fetches is planned with)
from renders.lifecycle.worker import Worker
from renders.warmup import warm


class Command(BaseCommand):
    help = "Run this host's render jobs (beside gunicorn; scripts/serve starts one)."

    def add_arguments(self, parser):
        parser.add_argument("--threads", type=int, default=None,
                            help="jobs run at once at most (default VIDEOAPI_JOB_WORKERS); the render slots, "
                                 "shared with synchronous renders, are the host-wide limit")
        parser.add_argument("--interval", type=float, default=None,
                            help="seconds between polls of the queue when idle (default VIDEOAPI_JOB_POLL_INTERVAL)")
        parser.add_argument("--batch", action="store_true", help="exit once the queue is empty and nothing runs")
        parser.add_argument("--exit-with-parent", nargs="?", type=int, const=-1, default=None, metavar="PID",
                            help="stop (gracefully) when the process that started this one (or PID, which "
                                 "should be its parent: scripts/serve passes its own) is no longer its parent")
        parser.add_argument("--exit-with", type=int, default=None, metavar="PID",
                            help="stop (gracefully) when process PID (the gunicorn master beside it) is gone")

    def handle(self, *args, threads=None, interval=None, batch=False, exit_with_parent=None, exit_with=None,
               **options):
        # the parent to outlive: the PID given (the starter's own, so a parent gone before this line still
        # counts), else whoever started us
        parent = None
        if exit_with_parent is not None:
            parent = exit_with_parent if exit_with_parent > 0 else os.getppid()
        worker = Worker(threads or settings.VIDEOAPI_JOB_WORKERS,
                        settings.VIDEOAPI_JOB_POLL_INTERVAL if interval is None else interval, batch, parent,
                        exit_with)
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, worker.stop)
        warm()  # the first job does not pay for imports, fonts and FFmpeg's path
        worker.serve()
