"""A validated render becomes a queued job: the queue limit, the Idempotency-Key, the hand-over of the workspace.

`submit` runs in the request while it still holds the workspace's lock:
it marks the workspace as a job's (`.job`) (with object storage, puts its
files in the store: lifecycle.objects), then in one transaction checks
the host's queue limit, sets the RenderLog `queued` and enqueues the task;
only after the commit is the lock released. At every instant either the lock
is held or the database says `queued`, and the sweep takes the lock before
it reads the database: no window in which the workspace could be swept. With
object storage the workspace is deleted once the job is queued: the worker
that takes it, on any host, brings the files back from the store.
"""

import logging
import zlib

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from renders.errors import Busy
from renders.lifecycle import jobs, objects, worker
from renders.lifecycle.render import Render
from renders.models import RenderLog

logger = logging.getLogger("renders.jobs")

Status = RenderLog.Status


def submit(render: Render, *, owner: str, idempotency_key: str = "", callback_url: str | None = None,
           base_url: str, delivery: tuple[str, dict] | None = None) -> RenderLog:
    """Queue the accepted `render` as a job of `owner`; returns the job that answers the request: this one,
    or, when a twin with the same Idempotency-Key got here first, that twin (this render then keeps nothing).
    `base_url` is the service's address as the client used it (the result's URL in webhooks); `delivery`
    is lifecycle.delivery.check_destination's (url, headers): the worker PUTs the result there."""
    render.workspace.mark_job(render.id)
    shared = objects.enabled()
    if shared:  # any host's worker takes it: its files go to the object store first
        try:
            objects.send_inputs(render.id, render.workspace)
        except BaseException:
            objects.drop(render.id)
            raise
    now = timezone.now()
    try:
        with transaction.atomic():
            _serialise_host_queue()
            limit = settings.VIDEOAPI_MAX_QUEUED_JOBS
            if RenderLog.objects.filter(host=settings.VIDEOAPI_HOST_ID, status=Status.QUEUED).count() >= limit:
                raise Busy(f"{limit} jobs are already waiting on this host (VIDEOAPI_MAX_QUEUED_JOBS); try again "
                           "later", headers={"Retry-After": "30"})
            render.log.record(status=Status.QUEUED, is_job=True, http_status=202, queued_at=now, progress=0.0,
                              idempotency_key=idempotency_key, callback_url=callback_url or "",
                              base_url=base_url, task_id=worker.enqueue(render.id),
                              **({"delivery": {"url": delivery[0], "headers": delivery[1]}} if delivery else {}))
    except BaseException as exc:
        if shared:
            objects.drop(render.id)
        if not isinstance(exc, IntegrityError):
            raise
        first = jobs.earlier_job(owner, idempotency_key)
        if first is None:
            raise
        render.log.record(status=Status.REJECTED, http_status=202, error_code="duplicate",
                          error_message=f"the same Idempotency-Key as job {first.pk}, which answered it")
        render.cleanup()
        return first
    if shared:
        render.workspace.delete()  # its files are in the store, for whichever worker takes the job
    else:
        render.workspace.release_lock()  # the job owns it now: the database says so
    logger.info("event=queued render_id=%s endpoint=%s", render.id, render.log.endpoint)
    return render.log


def _serialise_host_queue():
    """Submissions to one host count its queue one at a time (SQLite's BEGIN IMMEDIATE already does)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [zlib.crc32(settings.VIDEOAPI_HOST_ID.encode())])
