"""A job's result on its way out: whether it can be had, holding its workspace, counting the bytes delivered.

A download holds the workspace's lock shared, so the sweep and a cancel leave
it alone while bytes flow. The download whose bytes complete the result
(alone, or with the ranges delivered before it) records the job downloaded
and deletes the workspace, or leaves that to the last download still
holding it.
"""

import logging
import math
from pathlib import Path

from django.db import transaction
from django.utils import timezone

from renders.errors import Busy, Gone, NotReady, ServiceError
from renders.lifecycle import jobs
from renders.lifecycle.render import Render
from renders.lifecycle.workspace import LOCK_NAME, Workspace
from renders.models import JobStatus, RenderLog

logger = logging.getLogger("renders.jobs")

Status = RenderLog.Status


def require_result(log: RenderLog):
    """Raise why the (settled) job's result cannot be downloaded: not ready yet, failed, or gone."""
    status = log.job_status
    if status in (JobStatus.QUEUED, JobStatus.RUNNING):
        wait = max(1, math.ceil(log.eta_seconds)) if status == JobStatus.RUNNING and log.eta_seconds else 2
        raise NotReady(f"the job is {status}", headers={"Retry-After": str(min(wait, 60))})
    if status == JobStatus.FAILED:
        raise _error_of(log)
    if log.result.get("delivered_to"):
        raise Gone("the job's result was delivered to its output_url; none is kept here")
    if status in (JobStatus.CANCELLED, JobStatus.EXPIRED) or log.result_downloaded_at:
        raise Gone(f"the job's result is gone ({'downloaded' if log.result_downloaded_at else status})")


def _error_of(log):
    error = ServiceError(log.error_message or "the render failed")
    error.status_code = log.http_status or 500
    error.default_code = log.error_code or "render_failed"
    error.told_again = True  # recorded (and logged) when the job failed: this answer only repeats it
    return error


def hold(log: RenderLog) -> Workspace:
    """The result's workspace, held shared for one download (release it, or `finished` does)."""
    workspace = Workspace.adopt(Path(log.workspace), shared=True, wait=2.0)
    if workspace is None:
        if (Path(log.workspace) / LOCK_NAME).exists():  # held a moment by the sweep: still there
            raise Busy("the result is being checked; ask again in a moment", headers={"Retry-After": "1"})
        raise Gone("the job's result is gone")
    return workspace


def finished(log: RenderLog, workspace: Workspace, span, whole: bool = True):
    """A download ended; `span` is the [first, last] bytes it delivered (all it was asked for, or as far as a
    cut connection got), or None when it delivered none; `whole`: it delivered all it was asked for.

    Every byte delivered counts, a cut download's too, so a download cut short and then resumed completes
    the result like one full download. The result is downloaded (and its workspace deleted, by this download
    if no other holds it, else by the last one or the sweep) when the delivered ranges cover it and the
    download that covers the last of it ran to its end: a cut download's "delivered" bytes may still have
    been in the socket's buffers when the client went away, so it never deletes the result by itself (the
    client's resume asks for what it lacks and completes it)."""
    complete, status = counted(log, span, whole)
    if (complete or status != Status.SUCCEEDED) and workspace.try_exclusive():
        # the whole file is out, or the job was cancelled or expired while this download ran: it goes now
        Render.resume(log, workspace).cleanup(response_closed=True)
        return
    workspace.release_lock()  # the result stays for the rest (a resume, another range) until its TTL


def counted(log: RenderLog, span, whole: bool) -> tuple[bool, str]:
    """Record the bytes one download delivered; (whether the result is now downloaded, the job's status)."""
    if span is None:
        return False, RenderLog.objects.filter(pk=log.pk).values_list("status", flat=True).first()
    complete = False
    with transaction.atomic():
        row = RenderLog.objects.select_for_update().get(pk=log.pk)
        ranges = merge([*row.result_delivered, list(span)])
        fields = {"result_delivered": ranges}
        complete = whole and ranges == [[0, (log.output_size or 0) - 1]]
        if complete and not row.result_downloaded_at and row.status == Status.SUCCEEDED:
            # from now on the result is gone: its expiry is the moment it was downloaded (API and admin agree)
            fields["result_downloaded_at"] = fields["result_expires_at"] = timezone.now()
        RenderLog.objects.filter(pk=log.pk).update(**fields)
    if complete:
        logger.info("event=downloaded render_id=%s", log.pk)
    return complete, row.status


def finished_stored(log: RenderLog, span, whole: bool = True):
    """A download of a result in the object store (streamed: VIDEOAPI_S3_PROXY) ended: its bytes counted as
    `finished` counts them; once the result is downloaded (or the job ended meanwhile) the object goes."""
    complete, status = counted(log, span, whole)
    if complete or status != Status.SUCCEEDED:
        jobs.drop_objects(log)


def merge(ranges) -> list:
    """Byte ranges [first, last] merged into the fewest covering ranges."""
    out = []
    for first, last in sorted(ranges):
        if out and first <= out[-1][1] + 1:
            out[-1][1] = max(out[-1][1], last)
        else:
            out.append([first, last])
    return out
