"""Run this host's render jobs: `manage.py render_worker` (one process per host, beside gunicorn).

The main thread polls this host's queue (settings.VIDEOAPI_JOB_QUEUE) every
VIDEOAPI_JOB_POLL_INTERVAL seconds, and claims a job only after taking a
free render slot (the same host-wide slots as synchronous renders), so a
claimed job never waits and FFmpeg runs never outnumber the slots; while
jobs are waiting and slots are free it claims back to back. Each claimed
job runs in one of `--threads` executor threads, holding its slot. The
same loop claims webhook deliveries (the shared queue "webhooks", any
host's) for VIDEOAPI_WEBHOOK_WORKERS threads of their own, outside the
render slots: a slow receiver holds one of those threads for at most
VIDEOAPI_WEBHOOK_TIMEOUT and never a render.

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
from renders.webhooks import tasks as webhook_tasks

logger = logging.getLogger("renders.worker")

HOUSEKEEPING_EVERY = 1.0
RESUME_WEBHOOKS_EVERY = 60.0


class Lane:
    """Tasks of one queue run in a pool of threads: this host's render jobs (each in a render slot, taken before
    the claim), or webhook deliveries (any host's; no slot: they never hold up a render)."""

    def __init__(self, worker, name: str, queue: str | None, threads: int, needs_slot: bool):
        self.worker, self.name, self.queue, self.needs_slot, self.threads = worker, name, queue, needs_slot, threads
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix=name)
        self.idle = threading.Semaphore(threads)
        self.running = 0
        self.lock = threading.Lock()

    def claim_one(self) -> bool:
        """Claim one ready task if a thread (and, for a render, a slot) is free; True when one was claimed."""
        if not self.idle.acquire(blocking=False):
            return False
        slot = free_slot() if self.needs_slot else None
        if self.needs_slot and slot is None:
            self.idle.release()
            return False
        try:
            claimed = tasks.claim(self.worker.next_id(), self.queue)
        except BaseException:
            self.release(slot)
            raise
        if claimed is None:
            self.release(slot)
            return False
        with self.lock:
            self.running += 1
        self.pool.submit(self.execute, claimed, slot)
        return True

    def execute(self, claimed, slot):
        try:
            jobs.CURRENT.worker_id = claimed.worker_ids[-1] if claimed.worker_ids else ""
            jobs.CURRENT.abandon = self.worker.abandoning.is_set
            tasks.execute(claimed)
        except BaseException:
            logger.exception("event=task_crashed lane=%s task_id=%s", self.name, claimed.id)
        finally:
            with self.lock:
                self.running -= 1
            with self.worker.lock:
                self.worker.done += 1
            self.release(slot)
            self.worker.wake.set()

    def release(self, slot):
        if slot is not None:
            os.close(slot)
        self.idle.release()


class Worker:
    def __init__(self, threads: int, interval: float, batch: bool, exit_with_parent):
        self.interval = interval
        self.batch = batch
        # the parent to outlive: the PID given (the starter's own, so a parent gone before this line still
        # counts), else whoever started us
        self.parent = (exit_with_parent if exit_with_parent > 0 else os.getppid()) if exit_with_parent else None
        self.done = 0  # tasks run
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.abandoning = threading.Event()
        self.wake = threading.Event()  # a task of ours ended (its thread and slot are free), or a stop was asked
        self.count = 0
        self.id_prefix = f"{settings.VIDEOAPI_HOST_ID[:40]}:{os.getpid()}"
        self.lanes = [Lane(self, "render-job", None, threads, needs_slot=True),
                      Lane(self, "webhook", webhook_tasks.QUEUE, settings.VIDEOAPI_WEBHOOK_WORKERS, needs_slot=False)]

    def next_id(self) -> str:
        self.count += 1
        return f"{self.id_prefix}:{self.count}"

    def stop(self, signum=None, frame=None):
        if self.stopping.is_set():
            logger.warning("event=worker_abandoning signal=%s", signum)
            self.abandoning.set()
        else:
            logger.info("event=worker_stopping signal=%s running=%s", signum, [lane.running for lane in self.lanes])
            self.stopping.set()
        self.wake.set()

    def serve(self):
        from renders.warmup import warm

        warm()  # the first job does not pay for imports, fonts and FFmpeg's path
        logger.info("event=worker_started queue=%s threads=%s interval=%s", settings.VIDEOAPI_JOB_QUEUE,
                    self.lanes[0].threads, self.interval)
        next_housekeeping = next_resume = 0.0
        try:
            while not self.stopping.is_set():
                now = time.monotonic()
                if now >= next_housekeeping:
                    self.housekeeping(resume_webhooks=now >= next_resume)
                    next_housekeeping = time.monotonic() + HOUSEKEEPING_EVERY
                    next_resume = next_resume if now < next_resume else now + RESUME_WEBHOOKS_EVERY
                self.wake.clear()  # a task ending from here on wakes the wait below at once
                try:
                    if any([lane.claim_one() for lane in self.lanes]):
                        continue  # more may be waiting: claim again at once
                    if self.batch and not any(lane.running for lane in self.lanes) and tasks.queued_tasks() == 0:
                        break
                except Exception:  # the database away, say: keep the worker, try again shortly
                    logger.exception("event=claim_failed")
                    close_old_connections()
                    self.stopping.wait(max(self.interval, 1.0))
                    continue
                self.wake.wait(self.interval)  # the next poll, or at once when a task of ours frees its thread
        finally:
            for lane in self.lanes:
                lane.pool.shutdown(wait=True)  # running jobs finish (or stop, when abandoning)
            close_old_connections()
            logger.info("event=worker_stopped tasks=%s", self.done)

    def housekeeping(self, resume_webhooks=False):
        if self.parent is not None and os.getppid() != self.parent:
            logger.info("event=parent_gone")
            self.stop()
            return
        try:
            jobs.heartbeat()  # this host has a live worker: its queued jobs are waiting, not forgotten
            tasks.requeue_orphans(alive)  # claimed by a worker killed before it started them
            sweep(jobs_only=True)
            if resume_webhooks:
                webhook_tasks.resume_overdue()  # attempts whose task died with a killed worker
        except Exception:
            logger.exception("event=housekeeping_failed")
        finally:
            close_old_connections()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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

    def handle(self, *args, threads=None, interval=None, batch=False, exit_with_parent=None, **options):
        worker = Worker(threads or settings.VIDEOAPI_JOB_WORKERS,
                        settings.VIDEOAPI_JOB_POLL_INTERVAL if interval is None else interval, batch,
                        exit_with_parent)
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, worker.stop)
        worker.serve()
