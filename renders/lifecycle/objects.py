"""A job's files in object storage (VIDEOAPI_STORAGE=s3): what lets any host's worker run any job.

The request that queues a job puts the files its workspace holds under
`jobs/<id>/input/` and deletes the workspace; the worker that claims it
(on any host: the queue is shared) makes its own workspace, brings the
inputs in, renders, puts the result at `jobs/<id>/result/<file>`, and
deletes its workspace and the inputs. The result object lives by the same
rules as a result on disk (deleted at its TTL, at cancel, once streamed
whole); what a crash left is the sweep's (`orphans`).
"""

import logging
import uuid
from pathlib import Path

from django.conf import settings

from renders.lifecycle import storage
from renders.models import RenderLog

logger = logging.getLogger("renders.jobs")

Status = RenderLog.Status
PREFIX = "jobs/"


def enabled() -> bool:
    return settings.VIDEOAPI_STORAGE == "s3"


def inputs_prefix(job_id) -> str:
    return f"{PREFIX}{job_id}/input/"


def send_inputs(job_id, workspace) -> int:
    """Put every file of the workspace (not its lock and marks) under the job's inputs; the bytes sent."""
    sent = 0
    for path in sorted(workspace.path.iterdir()):
        if path.is_file() and not path.name.startswith("."):
            sent += storage.put_file(inputs_prefix(job_id) + path.name, path)
    return sent


def bring_inputs(job_id, workspace) -> int:
    """The job's inputs into this host's workspace, under their own names; the bytes brought."""
    brought = 0
    prefix = inputs_prefix(job_id)
    for key in storage.keys(prefix):
        brought += storage.get_file(key, workspace.path / Path(key[len(prefix):]).name)
    return brought


def store_result(job_id, path: Path) -> str:
    """Put the rendered file; its key."""
    key = f"{PREFIX}{job_id}/result/{path.name}"
    storage.put_file(key, path)
    return key


def drop_inputs(job_id):
    for key in storage.keys(inputs_prefix(job_id)):
        storage.delete(key)


def drop(job_id):
    """Every object of the job (its inputs, its result)."""
    for key in storage.keys(f"{PREFIX}{job_id}/"):
        storage.delete(key)


def live(log: RenderLog | None) -> bool:
    """Whether a job still needs its objects: waiting, running, or a result not yet downloaded nor expired."""
    if log is None:
        return False
    if log.status in (Status.QUEUED, Status.RENDERING, Status.RECEIVED):
        return True
    return log.status == Status.SUCCEEDED and not log.result_downloaded_at and log.result is not None \
        and "object" in log.result


def orphans(grace: float, delete: bool = True) -> list[str]:
    """The job objects older than `grace` seconds whose job no longer needs them (a crash's leftovers); deleted
    unless `delete` is False (a dry run)."""
    found = []
    for key in storage.older_than(PREFIX, grace):
        try:
            job_id = uuid.UUID(key[len(PREFIX):].split("/", 1)[0])
        except ValueError:
            job_id = None
        if job_id is not None and live(RenderLog.objects.filter(pk=job_id).first()):
            continue
        found.append(key)
        if delete:
            storage.delete(key)
    if found:
        logger.info("event=objects_swept count=%s", len(found))
    return found
