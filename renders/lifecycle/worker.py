"""The render worker: the job task, running one job, and the engine that claims tasks (`manage.py render_worker`).

The main thread polls this host's queue (settings.VIDEOAPI_JOB_QUEUE) every
VIDEOAPI_JOB_POLL_INTERVAL seconds and claims a job only after taking a free
render slot (the same host-wide slots as synchronous renders), so a claimed
job never waits and FFmpeg runs never outnumber the slots; while jobs wait
and slots are free it claims back to back. Each claimed job runs in one of
the render lane's threads, holding its slot. A second lane claims webhook
deliveries (the shared queue "webhooks", any host's) for
VIDEOAPI_WEBHOOK_WORKERS threads of their own, outside the render slots.
Every second the main thread also keeps house: the heartbeat that says this
host has a live worker, tasks orphaned by a killed worker, what time decided
(lifecycle.jobs.reap, through the sweep's job rules), overdue webhooks.

Running one job (`run`): take the workspace's lock, move `queued` ->
`rendering` with one conditional UPDATE (nothing happens if the job was
cancelled meanwhile), run the plan. Every PROGRESS_PERIOD while FFmpeg runs,
`Watch` writes progress, ETA and the lease in one UPDATE; when it touches no
row the job was cancelled or declared lost, and FFmpeg is killed. Success
keeps only the result for its download (a job with an `output_url` PUTs it
there first and keeps nothing); failure deletes the workspace.

Stopping (`Worker.stop`): the first SIGTERM or SIGINT stops claiming and lets
running jobs finish; a second stops their FFmpeg runs at once (the jobs fail
`worker_lost`).
"""

import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import DatabaseError, close_old_connections, connection
from django.utils import timezone
from django_tasks import task

from renders import metrics, plans
from renders.lifecycle import delivery, jobs, objects, taskqueue
from renders.lifecycle.render import Render, Stopped
from renders.lifecycle.slots import free_slot
from renders.lifecycle.sources import resolve
from renders.lifecycle.sweep import sweep
from renders.lifecycle.workspace import LOCK_NAME, Workspace, workspace_path
from renders.media.ffmpeg import PROGRESS_PERIOD
from renders.models import RenderLog
from renders.plans.running import perform
from renders.webhooks import tasks as webhook_tasks

logger = logging.getLogger("renders.worker")

Status = RenderLog.Status
HOUSEKEEPING_EVERY = 1.0
RESUME_WEBHOOKS_EVERY = 60.0


@task(queue_name=settings.VIDEOAPI_JOB_QUEUE)
def render_job(render_id: str):
    """Run one job (the RenderLog `render_id`) on this host. (The render worker calls `run` itself, with its
    claim's worker id; this entry point is what the task framework records and any other runner calls.)"""
    run(render_id)


def enqueue(render_id) -> str:
    """Queue the job on this host's queue; returns the task's id. Runs inside the caller's transaction."""
    return render_job.using(queue_name=taskqueue.job_queue()).enqueue(str(render_id)).id


# ---- one job ------------------------------------------------------------------------------------------


class Watch:
    """A running job's progress tick (ffmpeg.run's `watch`): progress, ETA and the lease in one UPDATE.

    Returns False (FFmpeg is killed) when the UPDATE finds the job no longer
    `rendering` on this worker: cancelled, or declared lost.
    """

    def __init__(self, log: RenderLog, length: float | None, abandon=lambda: False):
        self.log = log
        self.length = length
        self.best = 0.0
        self.abandon = abandon
        self.renewed = time.monotonic()

    def __call__(self, report, measures: bool = False) -> bool:
        if self.abandon():
            return False
        fields = {"lease_expires_at": timezone.now() + timedelta(seconds=settings.VIDEOAPI_JOB_LEASE)}
        if not measures and self.length and report.out_seconds is not None:
            self.best = max(self.best, min(0.99, report.out_seconds / self.length))
            fields["progress"] = round(self.best, 4)
            if report.speed and report.speed > 0:
                fields["eta_seconds"] = max(0.0, (self.length - report.out_seconds) / report.speed)
        try:
            mine = RenderLog.objects.filter(pk=self.log.pk, status=Status.RENDERING,
                                            worker_id=self.log.worker_id).update(**fields) == 1
        except DatabaseError:  # the database away for a moment: render on while the lease last written holds
            connection.close_if_unusable_or_obsolete()
            logger.warning("event=progress_unrecorded render_id=%s", self.log.pk)
            return time.monotonic() - self.renewed < settings.VIDEOAPI_JOB_LEASE - 2 * PROGRESS_PERIOD
        if mine:
            self.renewed = time.monotonic()
        return mine


def run(render_id: str, worker_id: str = "", abandon=lambda: False):
    """Run one job in this thread (which holds a render slot). Never raises for the render's own failures.
    `worker_id` names the claim (the lease is this worker's); `abandon()` says the worker is stopping at once."""
    log = RenderLog.objects.filter(pk=render_id).first()
    if log is None:
        logger.warning("event=job_missing render_id=%s", render_id)
        return
    if log.status != Status.QUEUED:  # cancelled (or given up) before it ran
        jobs.discard(log)
        return
    shared = objects.enabled()  # any host's job: a workspace of this host's own, the files from the store
    workspace = own_workspace(log) if shared else Workspace.adopt(Path(log.workspace), wait=5.0)
    if workspace is None:
        held = (Path(log.workspace) / LOCK_NAME).exists()
        jobs.fail_lost(log, detail="the job's workspace was still held when its worker took it" if held else
                       "the job's workspace was missing when its worker took it")
        return
    render = Render.resume(log, workspace)
    try:
        now = timezone.now()
        here = {"host": settings.VIDEOAPI_HOST_ID, "workspace": str(workspace.path)} if shared else {}
        if not RenderLog.objects.filter(pk=log.pk, status=Status.QUEUED).update(
                status=Status.RENDERING, render_started_at=now, worker_id=worker_id, progress=0.0,
                lease_expires_at=now + timedelta(seconds=settings.VIDEOAPI_JOB_LEASE), **here):
            render.cleanup()  # cancelled a moment ago
            return
        log.refresh_from_db()
        waited = (now - log.queued_at).total_seconds()
        metrics.job_started(log.host, waited)
        logger.info("event=job_started render_id=%s worker=%s waited=%.3f", log.pk, worker_id, waited)
        if shared:
            objects.bring_inputs(log.pk, workspace)
        plan = resolve(plans.load(log.params), workspace)  # a composition's URL sources are fetched here
        render.accepted(plan)
        render.watch = Watch(log, plan.output_length, abandon)
        result = perform(plan, workspace, render.run_ffmpeg)
        delivered = deliver_result(log, result, abandon) if log.delivery else None
        stored = objects.store_result(log.pk, result.path) if shared and delivered is None else None
        render.succeed(result, delivered, stored)
        if shared:
            objects.drop_inputs(log.pk)
        if delivered is not None or shared:
            render.cleanup()  # the result is in the client's storage, or in ours: nothing of it stays here
        else:
            try:
                workspace.keep_only(result.path.name)  # the result stays for its download (or the TTL), nothing else
            except OSError as exc:  # the download is unharmed; the sweep deletes the rest with the result
                logger.warning("event=inputs_kept render_id=%s error=%s", log.pk, exc)
            workspace.release_lock()
        jobs.announce(log.pk, "render.succeeded")
    except Stopped:
        if abandon():
            jobs.fail_lost(log, detail="the worker was stopped while this job ran")
        logger.info("event=job_stopped render_id=%s", log.pk)
        render.cleanup()
        if shared:
            jobs.drop_objects(log)
    except BaseException as exc:
        connection.close_if_unusable_or_obsolete()  # a database error mid-render: record on a fresh connection
        if render.abort(exc):
            jobs.announce(log.pk, "render.failed")
        if shared:
            jobs.drop_objects(log)
        if not isinstance(exc, Exception):
            raise
    finally:
        workspace.release_lock()  # whatever happened, this thread lets go (a no-op once deleted or released)


def own_workspace(log: RenderLog) -> Workspace | None:
    """A job's workspace on this host (object storage: the job's files come from the store): made, or one a
    worker that died before starting it left (unheld: taken over)."""
    try:
        return Workspace.create(log.endpoint, log.pk)
    except FileExistsError:
        return Workspace.adopt(workspace_path(log.endpoint, log.pk))


def deliver_result(log: RenderLog, result, abandon) -> dict:
    """PUT the rendered file to the job's output_url (lifecycle.delivery); the job's `result`. The lease is
    renewed to cover each attempt and, while waiting to retry, every PROGRESS_PERIOD; a cancel or an abandoning
    worker is heard there (Stopped)."""
    def keep():
        lease = settings.VIDEOAPI_JOB_LEASE + settings.VIDEOAPI_FETCH_TIMEOUT  # an attempt's longest, and more
        if abandon() or not RenderLog.objects.filter(pk=log.pk, status=Status.RENDERING,
                                                     worker_id=log.worker_id).update(
                lease_expires_at=timezone.now() + timedelta(seconds=lease)):
            raise Stopped()

    def wait(seconds):
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            time.sleep(min(left, PROGRESS_PERIOD))
            keep()

    keep()
    return delivery.deliver(result.path, log.delivery["url"], log.delivery.get("headers") or {},
                            result.content_type, filename=result.filename, sleep=wait)


# ---- the engine ---------------------------------------------------------------------------------------


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
            claimed = taskqueue.claim(self.worker.next_id(), self.queue)
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
            taskqueue.execute(claimed, call=self.call_for(claimed))
        except BaseException:
            logger.exception("event=task_crashed lane=%s task_id=%s", self.name, claimed.id)
        finally:
            with self.lock:
                self.running -= 1
            with self.worker.lock:
                self.worker.done += 1
            self.release(slot)
            self.worker.wake.set()

    def call_for(self, claimed):
        """A render job runs with its claim's worker id and the worker's abandon flag; other tasks as they are."""
        if not self.needs_slot:
            return None
        worker_id = claimed.worker_ids[-1] if claimed.worker_ids else ""

        def call(render_id):
            run(render_id, worker_id, self.worker.abandoning.is_set)
            ended = RenderLog.objects.filter(pk=render_id).values_list("status", "error_code").first()
            if ended is None:
                raise taskqueue.JobEnded("the job no longer exists")
            if ended[0] != Status.SUCCEEDED:  # the task row agrees with the job
                raise taskqueue.JobEnded(f"the job ended {ended[0]}" + (f" ({ended[1]})" if ended[1] else ""))
            return "succeeded"

        return call

    def release(self, slot):
        if slot is not None:
            os.close(slot)
        self.idle.release()


class Worker:
    def __init__(self, threads: int, interval: float, batch: bool = False, parent: int | None = None,
                 companion: int | None = None):
        """`parent`: a PID; when this process's parent is no longer it, the worker stops as if signalled.
        `companion`: a PID (the gunicorn master beside it); when that process is gone, the same."""
        self.interval = interval
        self.batch = batch
        self.parent = parent
        self.companion = companion
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
        """Workers name their claims `<host>:<pid>:<n>` (taskqueue.requeue_orphans reads the pid back)."""
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
        logger.info("event=worker_started queue=%s threads=%s interval=%s", taskqueue.job_queue(),
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
                    if any(lane.claim_one() for lane in self.lanes):
                        continue  # more may be waiting: claim again at once
                    if self.batch and not any(lane.running for lane in self.lanes) and taskqueue.queued_tasks() == 0:
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
        if self.companion is not None and not alive(self.companion):
            logger.info("event=companion_gone pid=%s", self.companion)
            self.stop()
            return
        try:
            jobs.heartbeat()  # this host has a live worker: its queued jobs are waiting, not forgotten
            taskqueue.requeue_orphans(alive)  # claimed by a worker killed before it started them
            sweep(jobs_only=True)
            if resume_webhooks:
                webhook_tasks.resume_overdue()  # attempts whose task died with a killed worker
        except Exception:
            logger.exception("event=housekeeping_failed")
        finally:
            close_old_connections()


def alive(pid: int) -> bool:
    """The process lives (a zombie, dead but not yet reaped by its parent, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True
