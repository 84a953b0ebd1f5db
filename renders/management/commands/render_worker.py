"""Run this host's render jobs: `manage.py render_worker` (one process per host, beside gunicorn).

One thread polls this host's queue (settings.VIDEOAPI_JOB_QUEUE) every
VIDEOAPI_JOB_POLL_INTERVAL seconds, and claims a job only after taking a
free render slot (the same host-wide slots as synchronous renders), so a
claimed job never waits and FFmpeg runs never outnumber the slots; while
jobs are waiting and slots are free it claims back to back. Each claimed
job runs in one of `--threads` executor threads, holding its slot.

Every second the main thread also does the housekeeping that time decides
(jobs.reap) and deletes this host's finished job workspaces (the sweep's job
rules).

SIGTERM or SIGINT: stop claiming, let running jobs finish, exit. A second
one: stop their FFmpeg runs at once (the jobs fail `worker_lost`) and exit.
With --exit-with-parent the worker stops the same way when the process that
started it (gunicorn, in scripts/serve) goes away.
"""

import logging
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import close_old_connections

from renders.lifecycle import jobs, tasks
from renders.lifecycle.slots import free_slot
from renders.lifecycle.sweep import sweep

logger = logging.getLogger("renders.worker")

HOUSEKEEPING_EVERY = 1.0


class Worker:
    def __init__(self, threads: int, interval: float, batch: bool, exit_with_parent: bool):
        self.threads = threads
        self.interval = interval
        self.batch = batch
        self.parent = os.getppid() if exit_with_parent else None
        self.stopping = threading.Event()
        self.abandoning = threading.Event()
        self.wake = threading.Event()  # a job of ours ended (its slot is free), or a stop was asked
        self.idle = threading.Semaphore(threads)
        self.running = 0
        self.lock = threading.Lock()
        self.count = 0
        self.id_prefix = f"{settings.VIDEOAPI_HOST_ID[:40]}:{os.getpid()}"

    def stop(self, signum=None, frame=None):
        if self.stopping.is_set():
            logger.warning("event=worker_abandoning signal=%s", signum)
            self.abandoning.set()
        else:
            logger.info("event=worker_stopping signal=%s running=%s", signum, self.running)
            self.stopping.set()
        self.wake.set()

    def serve(self):
        from renders.warmup import warm

        warm()  # the first job does not pay for imports, fonts and FFmpeg's path
        logger.info("event=worker_started queue=%s threads=%s interval=%s", settings.VIDEOAPI_JOB_QUEUE,
                    self.threads, self.interval)
        pool = ThreadPoolExecutor(self.threads, thread_name_prefix="render-job")
        next_housekeeping = 0.0
        try:
            while not self.stopping.is_set():
                if time.monotonic() >= next_housekeeping:
                    self.housekeeping()
                    next_housekeeping = time.monotonic() + HOUSEKEEPING_EVERY
                self.wake.clear()  # a job ending from here on wakes the wait below at once
                try:
                    if self.claim_one(pool):
                        continue  # jobs may be waiting: claim the next at once
                    if self.batch and self.running == 0 and tasks.queued_tasks() == 0:
                        break
                except Exception:  # the database away, say: keep the worker, try again shortly
                    logger.exception("event=claim_failed")
                    close_old_connections()
                    self.stopping.wait(max(self.interval, 1.0))
                    continue
                self.wake.wait(self.interval)  # the next poll, or at once when one of our jobs frees its slot
        finally:
            pool.shutdown(wait=True)  # running jobs finish (or stop, when abandoning)
            close_old_connections()
            logger.info("event=worker_stopped jobs=%s", self.count)

    def claim_one(self, pool) -> bool:
        if not self.idle.acquire(blocking=False):
            return False
        slot = free_slot()
        if slot is None:
            self.idle.release()
            return False
        try:
            self.count += 1
            claimed = tasks.claim(f"{self.id_prefix}:{self.count}")
        except BaseException:
            os.close(slot)
            self.idle.release()
            raise
        if claimed is None:
            os.close(slot)
            self.idle.release()
            return False
        with self.lock:
            self.running += 1
        pool.submit(self.execute, claimed, slot)
        return True

    def execute(self, claimed, slot):
        try:
            jobs.CURRENT.worker_id = claimed.worker_ids[-1] if claimed.worker_ids else ""
            jobs.CURRENT.abandon = self.abandoning.is_set
            tasks.execute(claimed)
        except BaseException:
            logger.exception("event=job_crashed task_id=%s", claimed.id)
        finally:
            os.close(slot)
            with self.lock:
                self.running -= 1
            self.idle.release()
            self.wake.set()

    def housekeeping(self):
        if self.parent is not None and os.getppid() != self.parent:
            logger.info("event=parent_gone")
            self.stop()
            return
        try:
            sweep(jobs_only=True)
        except Exception:
            logger.exception("event=housekeeping_failed")
        finally:
            close_old_connections()


class Command(BaseCommand):
    help = "Run this host's render jobs (beside gunicorn; scripts/serve starts one)."

    def add_arguments(self, parser):
        parser.add_argument("--threads", type=int, default=None,
                            help="jobs run at once at most (default VIDEOAPI_JOB_WORKERS); the render slots, "
                                 "shared with synchronous renders, are the host-wide limit")
        parser.add_argument("--interval", type=float, default=None,
                            help="seconds between polls of the queue when idle (default VIDEOAPI_JOB_POLL_INTERVAL)")
        parser.add_argument("--batch", action="store_true", help="exit once the queue is empty and nothing runs")
        parser.add_argument("--exit-with-parent", action="store_true",
                            help="stop (gracefully) when the process that started this one exits")

    def handle(self, *args, threads=None, interval=None, batch=False, exit_with_parent=False, **options):
        worker = Worker(threads or settings.VIDEOAPI_JOB_WORKERS,
                        settings.VIDEOAPI_JOB_POLL_INTERVAL if interval is None else interval, batch,
                        exit_with_parent)
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, worker.stop)
        worker.serve()
