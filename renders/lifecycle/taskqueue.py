"""The task framework's claim and run primitives for jobs (django-tasks with its database backend).

`django-tasks` is the backport of Django 6's `django.tasks`, and
`django-tasks-db` its database backend (the queue is a table in the service's
own database: SQLite locks it with BEGIN EXCLUSIVE, PostgreSQL claims with
SELECT ... FOR UPDATE SKIP LOCKED). The library runs a task and records
whether it returned; what a render job needs beyond that (progress, cancel,
a lease that notices a dead worker) is the RenderLog's (lifecycle.jobs and
lifecycle.worker). Each host has its own queue (settings.VIDEOAPI_JOB_QUEUE)
because a job runs where its upload is.
"""

import logging

from django.conf import settings
from django.db import close_old_connections
from django.db.utils import OperationalError
from django.utils import timezone
from django_tasks.signals import task_finished, task_started
from django_tasks_db.models import DBTaskResult
from django_tasks_db.utils import exclusive_transaction, is_locked_database_exception

from renders.models import RenderLog

logger = logging.getLogger("renders.jobs")

READY, RUNNING, FAILED = "READY", "RUNNING", "FAILED"


def job_queue() -> str:
    """Where jobs wait: this host's queue (their files are on its disk), or with object storage the one queue
    every host's worker takes from."""
    return settings.SHARED_JOB_QUEUE if settings.VIDEOAPI_STORAGE == "s3" else settings.VIDEOAPI_JOB_QUEUE


def claim(worker_id: str, queue: str | None = None) -> DBTaskResult | None:
    """The next ready task of `queue` (this host's jobs by default; "webhooks"), claimed for `worker_id` (None
    when there is none)."""
    close_old_connections()
    tasks = DBTaskResult.objects.ready().filter(backend_name="default",
                                                queue_name=queue or job_queue())
    with exclusive_transaction(tasks.db):
        try:
            found = tasks.get_locked()
            if found is not None:
                found.claim(worker_id)
            return found
        except OperationalError as exc:
            if is_locked_database_exception(exc):
                return None
            raise


def execute(db_task: DBTaskResult, call=None):
    """Run a claimed task and record its outcome, as the library's own worker does (signals included).
    `call(*args, **kwargs)` runs it in place of the task's own function (the render worker passes what only
    it knows: the claim's worker id, whether it is abandoning)."""
    backend = type(db_task.task.get_backend())
    try:
        result = db_task.task_result
        task_started.send(sender=backend, task_result=result)
        value = (call or db_task.task.call)(*result.args, **result.kwargs)
        db_task.set_successful(value)
    except JobEnded as exc:  # the task ran; its job did not succeed: the row says so too, no bug to log
        db_task.set_failed(exc)
    except BaseException as exc:  # our job code records render failures itself: this is a bug, kept on record
        logger.exception("event=task_failed task_id=%s", db_task.id)
        db_task.set_failed(exc)
        if not isinstance(exc, Exception):
            raise
    finally:
        task_finished.send(sender=backend, task_result=db_task.task_result)
        close_old_connections()


def requeue_orphans(alive) -> int:
    """Tasks of this host's queue claimed by a worker process that died before it started their job (the job
    still `queued`): back to READY, so the next worker runs them. `alive(pid)` says whether a process lives.
    Workers name themselves `<host>:<pid>:<n>`."""
    count = 0
    prefix = f"{settings.VIDEOAPI_HOST_ID[:40]}:"
    for found in DBTaskResult.objects.filter(status=RUNNING, queue_name=job_queue()):
        claimer = (found.worker_ids or [""])[-1]
        pid = claimer[len(prefix):].split(":")[0] if claimer.startswith(prefix) else ""
        if not pid.isdigit() or alive(int(pid)):
            continue
        render_id = (found.args_kwargs.get("args") or [None])[0]
        if RenderLog.objects.filter(pk=render_id, status=RenderLog.Status.QUEUED).exists():
            count += DBTaskResult.objects.filter(id=found.id, status=RUNNING).update(status=READY, started_at=None)
    return count


def queued_tasks() -> int:
    """Tasks waiting on this host's queue."""
    return DBTaskResult.objects.ready().filter(queue_name=job_queue()).count()


class JobEnded(Exception):
    """A task that ran to its end while its job did not succeed (failed, lost, cancelled): raised so that the
    task row reads FAILED like the job (its message names the job's status and code)."""


class WorkerLost(Exception):
    """What a task row records when the worker running it died (the library would leave it RUNNING)."""


def mark_lost(task_id: str):
    """A task whose worker died stays RUNNING in the library for ever: record it failed."""
    if task_id:
        DBTaskResult.objects.filter(id=task_id, status=RUNNING).update(
            status=FAILED, finished_at=timezone.now(),
            exception_class_path=f"{__name__}.WorkerLost",
            traceback="the worker running this task died (its job failed worker_lost)")


def finished_before(before):
    """The task rows (every queue) that finished before `before`: what prune_renders deletes."""
    return DBTaskResult.objects.finished().filter(finished_at__lt=before)
