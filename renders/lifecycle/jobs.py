"""Jobs: a render received, validated and planned in its request, then run by this host's `render_worker`.

The RenderLog is the job (its id, status, progress, result); the task
framework (tasks.py) only carries "run this RenderLog" to the worker. The
life of a job:

1. **Submit** (`submit`, in the request, while it still holds the
   workspace's lock): mark the workspace as a job's (`.job`), then in one
   transaction check the host's queue limit, set the RenderLog `queued` and
   enqueue the task; only after the commit is the lock released. At every
   instant either the lock is held or the database says `queued`, and the
   sweep takes the lock before it reads the database: no window in which
   the workspace could be swept.
2. **Run** (`run`, in a worker thread that already holds a render slot):
   take the workspace's lock, move `queued` -> `rendering` with one
   conditional UPDATE (nothing happens if the job was cancelled meanwhile),
   run the plan. Every PROGRESS_PERIOD while FFmpeg runs, one UPDATE writes
   progress, ETA and the lease; when it touches no row the job was
   cancelled or declared lost, and FFmpeg is killed.
3. **Finish**: success records the result and releases the lock, leaving
   the files for the download; failure deletes the workspace at once.
4. **Download** (`download`): under a shared lock; the download that
   completes the file's delivered bytes deletes the workspace.
5. **Housekeeping** (`settle`, the one place of time's rules, applied by
   `reap`, by a GET and by the sweep's rules for `.job` workspaces): a
   running job whose worker died (its lock is gone, or its lease ran out)
   fails with `worker_lost`; a result past VIDEOAPI_JOB_RESULT_TTL expires;
   a job queued on a host with no live worker for VIDEOAPI_JOB_QUEUE_TIMEOUT
   fails; the workspaces of finished jobs are deleted.
"""

import ipaddress
import logging
import math
import threading
import time
import zlib
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.http import HttpResponse
from django.utils import timezone
from rest_framework.response import Response

from renders import metrics, plans, webhooks
from renders.errors import Busy, Gone, Misdirected, NotReady, ServiceError, invalid
from renders.lifecycle import tasks
from renders.lifecycle.clients import is_trusted_proxy
from renders.lifecycle.render import Render, Stopped
from renders.lifecycle.responses import result_response
from renders.lifecycle.workspace import LOCK_NAME, Workspace, is_locked, temp_root
from renders.media.ffmpeg import PROGRESS_PERIOD
from renders.models import ClientKey, JobHost, RenderLog
from renders.plans.operations import perform

logger = logging.getLogger("renders.jobs")

Status = RenderLog.Status
IDEMPOTENCY_WINDOW = timedelta(hours=24)
MAX_IDEMPOTENCY_KEY = 255
ENDED = (Status.FAILED, Status.TIMEOUT, Status.REJECTED, Status.CANCELLED, Status.EXPIRED)  # nothing kept
JOB_STATUS = {  # RenderLog status -> the job's status in the API
    Status.RECEIVED: "queued", Status.QUEUED: "queued", Status.RENDERING: "running", Status.SUCCEEDED: "succeeded",
    Status.FAILED: "failed", Status.TIMEOUT: "failed", Status.REJECTED: "failed", Status.CANCELLED: "cancelled",
    Status.EXPIRED: "expired",
}
API_STATUSES = ("queued", "running", "succeeded", "failed", "cancelled", "expired")


# ---- the request's side -----------------------------------------------------------------------------


def client_ref(request) -> str:
    """Who owns a job: the API key (a client), else the account, else everyone (auth off)."""
    auth = getattr(request, "auth", None)
    if isinstance(auth, ClientKey):
        return f"key:{auth.prefix}"  # the key's public, unique prefix
    user = getattr(request, "user", None)
    if getattr(user, "is_authenticated", False):
        return f"user:{user.pk}"
    return "anonymous"


def wants_job(request) -> bool:
    """`Prefer: respond-async` (RFC 7240: a comma-separated list of preferences, each with optional parameters)."""
    for header in request.META.get("HTTP_PREFER", "").split(","):
        if header.split(";")[0].strip().lower() == "respond-async":
            return True
    return False


class Submission:
    """What a render request says about running as a job, read from its headers before the body: who owns
    it, `Prefer: respond-async`, and its Idempotency-Key. (A `callback_url` in the form asks for a job too.)"""

    def __init__(self, request):
        self.client_ref = client_ref(request)
        self.prefer_async = wants_job(request)
        key = request.META.get("HTTP_IDEMPOTENCY_KEY", "").strip()
        if len(key) > MAX_IDEMPOTENCY_KEY or not key.isprintable():
            raise invalid("Idempotency-Key", f"must be at most {MAX_IDEMPOTENCY_KEY} printable characters")
        self.idempotency_key = key

    def earlier_job(self) -> RenderLog | None:
        """The job this client already submitted with this Idempotency-Key within the last 24 hours."""
        if not self.idempotency_key:
            return None
        mine = RenderLog.objects.filter(client_ref=self.client_ref, idempotency_key=self.idempotency_key)
        mine.filter(queued_at__lt=timezone.now() - IDEMPOTENCY_WINDOW).update(idempotency_key="")
        return mine.first()

    def earlier(self, request):
        """The answer to a repeated Idempotency-Key (the first job, 202), checked before the body is read."""
        log = self.earlier_job()
        return accepted_response(log, request) if log else None

    def begin(self, request, endpoint, form):
        return Render.begin(request, endpoint, form=form, client_ref=self.client_ref)

    def wanted(self, callback_url: str | None) -> bool:
        return self.prefer_async or bool(callback_url)


def submit(render: Render, request, submission: Submission, callback_url: str | None = None):
    """The accepted request becomes a queued job (module docstring, step 1); returns the 202 answer.

    Its Idempotency-Key is taken here, in the same transaction: of two twins
    received side by side, the second to get here answers the first's job
    and keeps nothing.
    """
    render.workspace.mark_job(render.id)
    now = timezone.now()
    try:
        with transaction.atomic():
            _serialise_host_queue()
            limit = settings.VIDEOAPI_MAX_QUEUED_JOBS
            if RenderLog.objects.filter(host=settings.VIDEOAPI_HOST_ID, status=Status.QUEUED).count() >= limit:
                raise Busy(f"{limit} jobs are already waiting on this host (VIDEOAPI_MAX_QUEUED_JOBS); try again "
                           "later", headers={"Retry-After": "30"})
            render.log.record(status=Status.QUEUED, is_job=True, http_status=202, queued_at=now, progress=0.0,
                              idempotency_key=submission.idempotency_key, callback_url=callback_url or "",
                              base_url=request.build_absolute_uri("/"), task_id=tasks.enqueue(render.id))
    except IntegrityError:
        first = submission.earlier_job()
        if first is None:
            raise
        render.log.record(status=Status.REJECTED, http_status=202, error_code="duplicate",
                          error_message=f"the same Idempotency-Key as job {first.pk}, which answered it")
        render.cleanup()
        return accepted_response(first, request)
    render.workspace.release_lock()  # the job owns it now: the database says so
    logger.info("event=queued render_id=%s endpoint=%s", render.id, render.log.endpoint)
    return accepted_response(render.log, request)


def _serialise_host_queue():
    """Submissions to one host count its queue one at a time (SQLite's BEGIN IMMEDIATE already does)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [zlib.crc32(settings.VIDEOAPI_HOST_ID.encode())])


def accepted_response(log: RenderLog, request):
    location = f"/api/jobs/{log.id}"
    return Response(job_data(log, request), status=202, headers={
        "Location": location, "Preference-Applied": "respond-async", "X-Render-Id": str(log.id),
        "Cache-Control": "no-store"})


# ---- what a client sees -------------------------------------------------------------------------------


def job_data(log: RenderLog, request=None) -> dict:
    """The job as the API shows it; URLs absolute, for `request` or (a webhook) as its submitter saw them."""
    status = JOB_STATUS[log.status]
    result = error = None
    if status == "succeeded":
        info = log.result
        path = f"/api/jobs/{log.id}/result"
        url = request.build_absolute_uri(path) if request is not None else log.base_url.rstrip("/") + path
        result = {"url": url,
                  "content_type": info.get("content_type"), "bytes": log.output_size,
                  "filename": info.get("filename"),
                  "expires_at": _iso(log.result_downloaded_at or log.result_expires_at)}
        if log.result_downloaded_at:
            result["downloaded_at"] = _iso(log.result_downloaded_at)
    elif status == "failed":
        error = {"code": log.error_code, "detail": log.error_message}
    progress = 1.0 if status == "succeeded" else (log.progress or 0.0)
    return {
        "id": str(log.id), "endpoint": log.endpoint, "status": status, "progress": round(progress, 4),
        "eta_seconds": round(log.eta_seconds, 1) if status == "running" and log.eta_seconds is not None else None,
        "created_at": _iso(log.received_at), "started_at": _iso(log.render_started_at),
        "finished_at": _iso(log.render_finished_at) if status not in ("queued", "running") else None,
        "result": result, "error": error,
    }


def _iso(moment):
    return moment.isoformat().replace("+00:00", "Z") if moment else None


def jobs_of(request):
    return RenderLog.objects.filter(is_job=True, client_ref=client_ref(request))


def status_filter(value: str) -> list:
    if value not in API_STATUSES:
        raise invalid("status", f"must be one of {', '.join(API_STATUSES)}")
    return [code for code, name in JOB_STATUS.items() if name == value and code != Status.RECEIVED]


def current(log: RenderLog) -> RenderLog:
    """The job as it stands (GET): settled (`settle`), and on its own host its files deleted once it has
    ended; so a client asking is one more way time's rules are kept."""
    log = settle(log)
    if _local(log) and (log.status in ENDED or log.result_downloaded_at):
        discard(log)
    return log


def cancel(log: RenderLog):
    """DELETE: a queued job never runs, a running one is stopped (by its own next progress tick), a result is
    deleted. A failed or expired job, or a downloaded result, stays as it is."""
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
    if _local(log) and log.status == Status.CANCELLED:
        discard(log)


EVENT_STATUS = {"render.succeeded": "succeeded", "render.failed": "failed", "render.cancelled": "cancelled"}


def announce(log_id, event: str):
    """A job ended: its webhook, if it asked for one (renders.webhooks signs, sends and retries it). Sent only
    if the job still reads so: when a cancel overtook a success (or a failure), the cancel's event is the one
    that tells."""
    log = RenderLog.objects.filter(pk=log_id).first()
    if log is None or not log.callback_url or JOB_STATUS[log.status] != EVENT_STATUS[event]:
        return
    try:
        webhooks.notify(log, event, job_data(log), url=log.callback_url)  # signed with the submitting key
    except Exception:  # a webhook must never undo or hide the job's own outcome
        logger.exception("event=webhook_not_queued render_id=%s", log_id)


# ---- the worker's side ------------------------------------------------------------------------------


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


CURRENT = threading.local()  # the executor thread's worker id and `abandon` (render_worker sets them)


def run(render_id: str):
    """Run one job in this thread (which holds a render slot). Never raises for the render's own failures."""
    worker_id = getattr(CURRENT, "worker_id", "")
    abandon = getattr(CURRENT, "abandon", lambda: False)
    log = RenderLog.objects.filter(pk=render_id).first()
    if log is None:
        logger.warning("event=job_missing render_id=%s", render_id)
        return
    if log.status != Status.QUEUED:  # cancelled (or given up) before it ran
        discard(log)
        return
    workspace = Workspace.adopt(Path(log.workspace), wait=5.0)
    if workspace is None:
        held = (Path(log.workspace) / LOCK_NAME).exists()
        fail_lost(log, detail="the job's workspace was still held when its worker took it" if held else
                  "the job's workspace was missing when its worker took it")
        return
    render = Render.resume(log, workspace)
    try:
        now = timezone.now()
        if not RenderLog.objects.filter(pk=log.pk, status=Status.QUEUED).update(
                status=Status.RENDERING, render_started_at=now, worker_id=worker_id, progress=0.0,
                lease_expires_at=now + timedelta(seconds=settings.VIDEOAPI_JOB_LEASE)):
            render.cleanup()  # cancelled a moment ago
            return
        log.refresh_from_db()
        metrics.job_started(log.host, (now - log.queued_at).total_seconds())
        logger.info("event=job_started render_id=%s worker=%s waited=%.3f", log.pk, worker_id,
                    (now - log.queued_at).total_seconds())
        plan = plans.load(log.params)
        render.watch = Watch(log, plan.output_length, abandon)
        result = perform(plan, workspace, render.run_ffmpeg)
        size = render.require_output(result.path)
        finished = timezone.now()
        if not log.record_if(
                Status.RENDERING, status=Status.SUCCEEDED, http_status=200, output_size=size,
                render_finished_at=finished, details=result.details, progress=1.0, eta_seconds=None,
                result={"file": result.path.name, "filename": result.filename,
                        "content_type": result.content_type, "headers": result.headers},
                result_expires_at=finished + timedelta(seconds=settings.VIDEOAPI_JOB_RESULT_TTL)):
            raise Stopped()
        seconds = (finished - now).total_seconds()
        metrics.rendered(log.endpoint, Status.SUCCEEDED, seconds)
        logger.info("event=job_succeeded render_id=%s seconds=%.3f bytes=%s", log.pk, seconds, size)
        workspace.release_lock()  # the result stays for its download (or the TTL)
        announce(log.pk, "render.succeeded")
    except Stopped:
        if abandon():
            fail_lost(log, detail="the worker was stopped while this job ran")
        logger.info("event=job_stopped render_id=%s", log.pk)
        render.cleanup()
    except BaseException as exc:
        connection.close_if_unusable_or_obsolete()  # a database error mid-render: record on a fresh connection
        if render.abort(exc, while_status=Status.RENDERING):
            announce(log.pk, "render.failed")
        if not isinstance(exc, Exception):
            raise
    finally:
        workspace.release_lock()  # whatever happened, this thread lets go (a no-op once deleted or released)


def fail_lost(log: RenderLog, *, stale: bool = False, detail: str = ""):
    """A job whose worker died (or that no worker took in time): failed `worker_lost`."""
    if stale:
        detail = detail or f"no worker started this job within {settings.VIDEOAPI_JOB_QUEUE_TIMEOUT:g} s"
        states = [Status.QUEUED]
    else:
        detail = detail or "the worker running this job stopped (killed, or its host restarted)"
        states = [Status.RENDERING, Status.QUEUED]
    if RenderLog.objects.filter(pk=log.pk, status__in=states).update(
            status=Status.FAILED, http_status=500, error_code="worker_lost", error_message=detail,
            render_finished_at=timezone.now(), eta_seconds=None):
        logger.warning("event=worker_lost render_id=%s detail=%r", log.pk, detail)
        metrics.rendered(log.endpoint, Status.FAILED)
        tasks.mark_lost(log.task_id)
        announce(log.pk, "render.failed")


def expire(log: RenderLog):
    if RenderLog.objects.filter(pk=log.pk, status=Status.SUCCEEDED, result_downloaded_at__isnull=True,
                                result_expires_at__lt=timezone.now()).update(status=Status.EXPIRED):
        logger.info("event=expired render_id=%s", log.pk)


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
        (log.lease_expires_at is not None and log.lease_expires_at < now) or (_local(log) and _unheld(log)))


def _stale(log, now) -> bool:
    """Queued, and its host's worker has not been seen for VIDEOAPI_JOB_QUEUE_TIMEOUT: nobody would run it."""
    cut = now - _queue_timeout()
    return (log.status == Status.QUEUED and log.queued_at is not None and log.queued_at < cut
            and not JobHost.objects.filter(host=log.host, heartbeat_at__gte=cut).exists())


def _expired(log, now) -> bool:
    return (log.status == Status.SUCCEEDED and not log.result_downloaded_at
            and log.result_expires_at is not None and log.result_expires_at < now)


def settle(log: RenderLog) -> RenderLog:
    """Apply what time alone decides to one job (`_lost`, `_stale`, `_expired`); returns it as it now is.
    The one place these rules live: a GET, the workers' housekeeping and the sweep all come here."""
    now = timezone.now()
    if _lost(log, now):
        fail_lost(log)
    elif _stale(log, now):
        fail_lost(log, stale=True)
    elif _expired(log, now):
        expire(log)
    log.refresh_from_db()
    return log


def reap():
    """`settle` every job time may have decided, on every host (each worker runs this every second, and
    sweep_temp): the candidates are read by index, the rules applied one by one."""
    now = timezone.now()
    cut = now - _queue_timeout()
    candidates = (
        RenderLog.objects.filter(status=Status.RENDERING, lease_expires_at__lt=now)
        | RenderLog.objects.filter(status=Status.QUEUED, queued_at__lt=cut).exclude(
            host__in=JobHost.objects.filter(heartbeat_at__gte=cut).values("host"))
        | RenderLog.objects.filter(status=Status.SUCCEEDED, is_job=True, result_downloaded_at__isnull=True,
                                   result_expires_at__lt=now)
    )
    for log in candidates:
        settle(log)


def heartbeat():
    """This host's worker is alive (render_worker, every second)."""
    now = timezone.now()
    if not JobHost.objects.filter(host=settings.VIDEOAPI_HOST_ID).update(heartbeat_at=now):
        JobHost.objects.get_or_create(host=settings.VIDEOAPI_HOST_ID, defaults={"heartbeat_at": now})


def _queue_timeout():
    return timedelta(seconds=settings.VIDEOAPI_JOB_QUEUE_TIMEOUT)


def _local(log) -> bool:
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
        log = settle(log)
        if log.status in (Status.RENDERING, Status.RECEIVED):
            fail_lost(log)  # nobody held its lock: its worker (or its request) died
    now = timezone.now()
    if log.status == Status.QUEUED and not _stale(log, now):
        return "keep"
    if log.status == Status.SUCCEEDED and not log.result_downloaded_at and not _expired(log, now):
        return "keep"
    return "delete"


# ---- the result ---------------------------------------------------------------------------------------


def download(log: RenderLog, request):
    """GET /api/jobs/<id>/result: the file (Range honoured), or why not."""
    log = current(log)
    status = JOB_STATUS[log.status]
    if status in ("queued", "running"):
        wait = max(1, math.ceil(log.eta_seconds)) if status == "running" and log.eta_seconds else 2
        raise NotReady(f"the job is {status}", headers={"Retry-After": str(min(wait, 60))})
    if status == "failed":
        raise _error_of(log)
    if status in ("cancelled", "expired") or log.result_downloaded_at:
        raise Gone(f"the job's result is gone ({'downloaded' if log.result_downloaded_at else status})")
    if not _local(log):
        return _route(log, request)
    workspace = Workspace.adopt(Path(log.workspace), shared=True, wait=2.0)
    if workspace is None:
        if (Path(log.workspace) / LOCK_NAME).exists():  # held a moment by the sweep: still there
            raise Busy("the result is being checked; ask again in a moment", headers={"Retry-After": "1"})
        raise Gone("the job's result is gone")
    try:
        return result_response(log, workspace, request, on_close=lambda span: finished_download(log, workspace, span))
    except BaseException:
        workspace.release_lock()
        raise


def _error_of(log):
    error = ServiceError(log.error_message or "the render failed")
    error.status_code = log.http_status or 500
    error.default_code = log.error_code or "render_failed"
    return error


def _route(log, request):
    """A result held by another host: behind the shipped nginx, an internal redirect to that host; asked
    directly, 421 naming it (never a 404: the result exists)."""
    if through_our_proxy(request) and not request.META.get("HTTP_X_VIDEOAPI_ROUTED"):
        # nginx keeps this answer's Content-Type (charset included) over the holder's: none of its own
        response = HttpResponse(status=200, content_type="application/octet-stream")
        response["X-Accel-Redirect"] = f"/_videoapi/route/{log.host}/api/jobs/{log.pk}/result"
        response["X-Render-Id"] = str(log.pk)
        return response
    raise Misdirected(f"the result is held by host {log.host}; ask through the service's public address",
                      headers={"X-Videoapi-Host": log.host})


def through_our_proxy(request) -> bool:
    """The shipped nginx site marks what it proxies (`X-Videoapi-Proxy: accel`); believed only from a trusted
    proxy (FORWARDED_ALLOW_IPS), like X-Forwarded-For."""
    peer = request.META.get("REMOTE_ADDR") or ""
    try:
        trusted = is_trusted_proxy(ipaddress.ip_address(peer))
    except ValueError:
        return False
    return trusted and request.META.get("HTTP_X_VIDEOAPI_PROXY") == "accel"


def finished_download(log: RenderLog, workspace: Workspace, span):
    """A download ended; `span` is the [first, last] bytes it delivered, or None when it was cut short.
    Once every byte of the result has been delivered, by one download or several, the job is downloaded and
    its workspace deleted (by this download if no other holds it, else by the last one or the sweep)."""
    if span is None:  # interrupted: the result stays for a retry, unless the job ended meanwhile
        if RenderLog.objects.filter(pk=log.pk, status=Status.SUCCEEDED).exists() or not workspace.try_exclusive():
            workspace.release_lock()
            return
        Render.resume(log, workspace).cleanup(response_closed=True)
        return
    first, last = span
    size = log.output_size or 0
    with transaction.atomic():
        row = RenderLog.objects.select_for_update().get(pk=log.pk)
        ranges = merge([*row.result_delivered, [first, last]])
        fields = {"result_delivered": ranges}
        complete = ranges == [[0, size - 1]]
        if complete and not row.result_downloaded_at and row.status == Status.SUCCEEDED:
            fields["result_downloaded_at"] = timezone.now()
        RenderLog.objects.filter(pk=log.pk).update(**fields)
    if complete:
        logger.info("event=downloaded render_id=%s", log.pk)
    if (complete or row.status != Status.SUCCEEDED) and workspace.try_exclusive():
        # the whole file is out, or the job was cancelled or expired while this download ran: it goes now
        Render.resume(log, workspace).cleanup(response_closed=True)
        return
    workspace.release_lock()


def merge(ranges) -> list:
    """Byte ranges [first, last] merged into the fewest covering ranges."""
    out = []
    for first, last in sorted(ranges):
        if out and first <= out[-1][1] + 1:
            out[-1][1] = max(out[-1][1], last)
        else:
            out.append([first, last])
    return out
