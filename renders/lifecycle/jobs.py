"""A job's state after it was submitted: cancel, the rules time decides, the webhook at its end.

A job is a RenderLog with `is_job`. Its life (docs/ARCHITECTURE.md, "Jobs"):
`lifecycle.submission.submit` queues it from the request; `lifecycle.worker`
runs it; `lifecycle.downloads` hands out its result. This module holds what
any of them, a GET, the admin or the sweep may do to a job that exists:

- `cancel`: a queued job never runs, a running one is stopped by its own
  next progress tick, a result is deleted.
- `settle`, the one place of time's rules: a running job whose worker died
  (its workspace's lock is gone, or its lease ran out) fails `worker_lost`;
  a result past VIDEOAPI_JOB_RESULT_TTL expires; a job queued on a host
  whose worker has not been seen for VIDEOAPI_JOB_START_TIMEOUT fails; an
  ended job's files on this host are deleted. `reap` settles every job time
  may have decided; `sweep_rule` tells the sweep what to keep.
- `announce`: the webhook of a job that ended, if it asked for one.

Every change is a conditional UPDATE on the job's status, so a cancel, a
worker and a reaper racing each other leave one outcome.
"""

import logging
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from renders import metrics, webhooks
from renders.errors import CODES, ServiceError
from renders.lifecycle import objects, taskqueue
from renders.lifecycle.render import Render
from renders.lifecycle.workspace import Workspace, is_locked, temp_root
from renders.models import JobHost, JobStatus, RenderLog
from renders.representation import job_json

logger = logging.getLogger("renders.jobs")

Status = RenderLog.Status
IDEMPOTENCY_WINDOW = timedelta(hours=24)
EVENT_STATUS = {"render.succeeded": JobStatus.SUCCEEDED, "render.failed": JobStatus.FAILED,
                "render.cancelled": JobStatus.CANCELLED}


def jobs_of(owner: str):
    """The jobs `owner` (lifecycle.submission's client reference) may see."""
    return RenderLog.objects.filter(is_job=True, client_ref=owner)


def earlier_job(owner: str, idempotency_key: str) -> RenderLog | None:
    """The job `owner` already submitted with this Idempotency-Key within the last 24 hours."""
    if not idempotency_key:
        return None
    mine = RenderLog.objects.filter(client_ref=owner, idempotency_key=idempotency_key)
    mine.filter(queued_at__lt=timezone.now() - IDEMPOTENCY_WINDOW).update(idempotency_key="")
    return mine.first()


def cancel(log: RenderLog) -> RenderLog:
    """DELETE: a queued job never runs, a running one is stopped (by its own next progress tick), a result is
    deleted. A failed or expired job, or a downloaded result, stays as it is. Returns the job as it now is."""
    now = timezone.now()
    changed = RenderLog.objects.filter(pk=log.pk).filter(
        status__in=[Status.QUEUED, Status.RENDERING, Status.RECEIVED]
    ).update(status=Status.CANCELLED, render_finished_at=now, eta_seconds=None) or RenderLog.objects.filter(
        pk=log.pk, status=Status.SUCCEEDED, result_downloaded_at__isnull=True
    ).update(status=Status.CANCELLED)
    if changed:
        logger.info("event=cancelled render_id=%s", log.pk)
        announce(log.pk, "render.cancelled")
    log.refresh_from_db()
    if is_local(log) and log.status == Status.CANCELLED:
        discard(log)
    if log.status == Status.CANCELLED and objects.enabled():
        drop_objects(log)
    return log


def announce(log_id, event: str):
    """A job ended: its webhook, if it asked for one (renders.webhooks signs, sends and retries it). Sent only
    if the job still reads so: when a cancel overtook a success (or a failure), the cancel's event is the one
    that tells."""
    log = RenderLog.objects.filter(pk=log_id).first()
    if log is None or not log.callback_url or log.job_status != EVENT_STATUS[event]:
        return
    try:
        webhooks.notify(log, event, job_json(log), url=log.callback_url)  # signed with the submitting key
    except Exception:  # a webhook must never undo or hide the job's own outcome
        logger.exception("event=webhook_not_queued render_id=%s", log_id)


def fail_lost(log: RenderLog, *, stale: bool = False, detail: str = ""):
    """A job whose worker died (or that no worker took in time): failed `worker_lost`."""
    if stale:
        detail = detail or f"no worker started this job within {settings.VIDEOAPI_JOB_START_TIMEOUT:g} s"
        states = [Status.QUEUED]
    else:
        detail = detail or "the worker running this job stopped (killed, or its host restarted)"
        states = [Status.RENDERING, Status.QUEUED]
    if RenderLog.objects.filter(pk=log.pk, status__in=states).update(
            status=Status.FAILED, http_status=CODES["worker_lost"].status, error_code="worker_lost",
            error_message=detail,
            render_finished_at=timezone.now(), eta_seconds=None):
        logger.warning("event=worker_lost render_id=%s detail=%r", log.pk, detail)
        metrics.rendered(log.endpoint, Status.FAILED)
        taskqueue.mark_lost(log.task_id)
        announce(log.pk, "render.failed")


def expire(log: RenderLog):
    if RenderLog.objects.filter(pk=log.pk, status=Status.SUCCEEDED, result_downloaded_at__isnull=True,
                                result_expires_at__lt=timezone.now()).update(status=Status.EXPIRED):
        logger.info("event=expired render_id=%s", log.pk)
        drop_objects(log)


def drop_objects(log: RenderLog):
    """A job that ended (or whose result was downloaded) no longer needs its objects (lifecycle.objects): they
    are deleted, and the result no longer names its key (so this happens once). Failures are left to the
    sweep: the job's own outcome stands."""
    log.refresh_from_db(fields=["result"])
    if not objects.enabled() and not (log.result or {}).get("object"):
        return
    try:
        objects.drop(log.pk)
    except ServiceError as exc:
        logger.warning("event=objects_kept render_id=%s error=%s", log.pk, exc)
        return
    if (log.result or {}).get("object"):
        RenderLog.objects.filter(pk=log.pk).update(result={k: v for k, v in log.result.items() if k != "object"})


def discard(log: RenderLog) -> bool:
    """Delete a finished job's workspace on this host if nobody holds it (a running FFmpeg, a download)."""
    workspace = Workspace.adopt(Path(log.workspace)) if Path(log.workspace).parent == temp_root() else None
    if workspace is None:
        return False
    Render.resume(log, workspace).cleanup()
    return True


def _lost(log, now) -> bool:
    """Running, but its worker is gone: its lease ran out (any host can tell), or (its own host can tell at
    once) nobody holds its workspace's lock any more."""
    return log.status == Status.RENDERING and (
        (log.lease_expires_at is not None and log.lease_expires_at < now) or (is_local(log) and _unheld(log)))


def _stale(log, now) -> bool:
    """Queued, and its host's worker has not been seen for VIDEOAPI_JOB_START_TIMEOUT: nobody would run it."""
    cut = now - _start_timeout()
    alive = JobHost.objects.filter(heartbeat_at__gte=cut)  # with the shared queue (objects), any host's worker
    return (log.status == Status.QUEUED and log.queued_at is not None and log.queued_at < cut
            and not (alive if objects.enabled() else alive.filter(host=log.host)).exists())


def _expired(log, now) -> bool:
    return (log.status == Status.SUCCEEDED and not log.result_downloaded_at
            and log.result_expires_at is not None and log.result_expires_at < now)


def apply_time_rules(log: RenderLog) -> RenderLog:
    """What time alone decides for one job (`_lost`, `_stale`, `_expired`); returns it as it now is."""
    now = timezone.now()
    if _lost(log, now):
        fail_lost(log)
    elif _stale(log, now):
        fail_lost(log, stale=True)
    elif _expired(log, now):
        expire(log)
    log.refresh_from_db()
    return log


def settle(log: RenderLog) -> RenderLog:
    """The job brought to what it now is: time's rules applied and, on its own host, the files of a job that
    ended (or whose result was downloaded) deleted. A GET and the workers' housekeeping come here."""
    log = apply_time_rules(log)
    if is_local(log) and (log.job_ended or log.result_downloaded_at):
        discard(log)
    if (log.job_ended or log.result_downloaded_at) and (log.result or {}).get("object"):
        drop_objects(log)
    return log


def reap():
    """Apply time's rules to every job they may have decided, on every host (each worker runs this every
    second, and sweep_temp): the candidates are read by index, the rules applied one by one."""
    now = timezone.now()
    cut = now - _start_timeout()
    candidates = (
        RenderLog.objects.filter(status=Status.RENDERING, lease_expires_at__lt=now)
        # this host's running jobs: one whose workspace lock died with its worker is lost at once
        | RenderLog.objects.filter(status=Status.RENDERING, host=settings.VIDEOAPI_HOST_ID)
        | (RenderLog.objects.none() if objects.enabled() and JobHost.objects.filter(heartbeat_at__gte=cut).exists()
           else RenderLog.objects.filter(status=Status.QUEUED, queued_at__lt=cut).exclude(
               host__in=JobHost.objects.filter(heartbeat_at__gte=cut).values("host")))
        | RenderLog.objects.filter(status=Status.SUCCEEDED, is_job=True, result_downloaded_at__isnull=True,
                                   result_expires_at__lt=now)
    )
    for log in candidates:
        apply_time_rules(log)


def heartbeat():
    """This host's worker is alive (the render worker, every second)."""
    now = timezone.now()
    if not JobHost.objects.filter(host=settings.VIDEOAPI_HOST_ID).update(heartbeat_at=now):
        JobHost.objects.get_or_create(host=settings.VIDEOAPI_HOST_ID, defaults={"heartbeat_at": now})


def _start_timeout():
    return timedelta(seconds=settings.VIDEOAPI_JOB_START_TIMEOUT)


def is_local(log) -> bool:
    """The job was received, and its files are kept, on this host."""
    return log.host == settings.VIDEOAPI_HOST_ID


def _unheld(log) -> bool:
    path = Path(log.workspace)
    return path.exists() and not is_locked(path)


def sweep_rule(log: RenderLog | None, record: bool = True) -> str:
    """What the sweep does with an unlocked job workspace whose RenderLog is `log` (the sweep holds its lock):
    "keep" a queued job and a result waiting for its download, "delete" anything else, after recording
    (unless `record` is False: a dry run) what it found: a dead worker, an expired result."""
    if log is None:
        return "delete"
    if record:
        log = apply_time_rules(log)
        if log.status in (Status.RENDERING, Status.RECEIVED):
            fail_lost(log)  # nobody held its lock: its worker (or its request) died
    now = timezone.now()
    if log.status == Status.QUEUED and not _stale(log, now):
        return "keep"
    if log.status == Status.SUCCEEDED and not log.result_downloaded_at and not _expired(log, now):
        return "keep"
    return "delete"
