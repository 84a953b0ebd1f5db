"""The life of one render's RenderLog (docs/ARCHITECTURE.md): its states, its FFmpeg runs, its cleanup.

`Render.begin()` creates the RenderLog row and the locked workspace;
`receive()` has the body streamed into it (uploads.Receipt); `accepted()`
stores the plan; `run_ffmpeg()` runs and records FFmpeg and turns its
failures into the service's errors; `succeed()` records the success (a
synchronous render's, whose download's close then calls `cleanup()`, or a
job's, whose result stays for its download); `abort()` is the one error
path, recording what a refused request brought and deleting the workspace
at once. Every RenderLog write is a single short UPDATE with no transaction
held across FFmpeg or the download.
"""

import logging
import time
import uuid
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from renders import metrics, plans
from renders.errors import InsufficientStorage, RenderFailed, RenderTimeout, answer_for
from renders.lifecycle.clients import client_address
from renders.lifecycle.uploads import Receipt
from renders.lifecycle.workspace import CleanupError, Workspace, free_bytes, workspace_path
from renders.media import ffmpeg
from renders.models import RenderLog, key_name

logger = logging.getLogger("renders.lifecycle")

DISK_FULL_BELOW = 1024 * 1024  # a failed FFmpeg with less free than this ran out of disk


class Stopped(Exception):
    """A job's FFmpeg run was stopped by its progress tick: the job was cancelled or taken from its worker."""


def log_status_for(http_status: int) -> str:
    """Refusals (4xx, and 503 busy: nothing was rendered) are `rejected`."""
    if http_status == 504:
        return RenderLog.Status.TIMEOUT
    if http_status >= 500 and http_status != 503:
        return RenderLog.Status.FAILED
    return RenderLog.Status.REJECTED


class Render:
    def __init__(self, log: RenderLog, workspace: Workspace, accept: str = "", form=None, secrets=()):
        self.log = log
        self.workspace = workspace
        self.receipt = Receipt(workspace)
        self._ffmpeg_runs = []
        self.accept = accept  # the request's Accept header (api.responses.negotiated_type)
        self._began = time.monotonic()
        self._form = form  # the endpoint's serializer class: the limits a refused request's fields are cut to
        self._secrets = secrets  # the request's credential: never recorded, even when sent in a field
        self._accepted = False
        self.watch = None  # a job's progress tick (worker.Watch), handed to FFmpeg runs

    @property
    def id(self):
        return self.log.id

    def keep_secret(self, value: str):
        """A value of the request never to be recorded (e.g. headers a delivery carries)."""
        self._secrets = (*self._secrets, value)

    @classmethod
    def begin(cls, request, endpoint: str, form=None, **fields) -> "Render":
        """The RenderLog row and the locked workspace; `form` is the endpoint's serializer class (its limits
        cut what a refused request recorded); `fields` are more of the RenderLog's (a job's)."""
        render_id = uuid.uuid4()
        user = request.user if getattr(request.user, "is_authenticated", False) else None
        log = RenderLog.objects.create(
            id=render_id, endpoint=endpoint, user=user, api_key=key_name(getattr(request, "auth", None)),
            client_address=client_address(request), workspace=str(workspace_path(endpoint, render_id)), **fields,
        )
        request.render_id = render_id
        try:
            workspace = Workspace.create(endpoint, render_id)
        except OSError as exc:
            log.record(status=RenderLog.Status.FAILED, http_status=500, error_code="internal_error",
                       error_message=f"could not create workspace: {exc}", cleanup_status=RenderLog.Cleanup.DELETED,
                       cleanup_at=timezone.now())
            raise
        logger.info("event=received render_id=%s endpoint=%s client=%s", render_id, endpoint, log.client_address)
        credential = request.META.get("HTTP_AUTHORIZATION", "").rpartition(" ")[2]
        return cls(log, workspace, accept=request.META.get("HTTP_ACCEPT", ""),
                   form=form,
                   secrets=(credential, credential.partition(".")[2]) if credential else ())

    @classmethod
    def resume(cls, log: RenderLog, workspace: Workspace) -> "Render":
        """An accepted render picked up again from its RenderLog and workspace (a job, in the worker)."""
        render = cls(log, workspace)
        render._accepted = True  # its plan is on record: a failure must not replace it with what a body brought
        return render

    # -- receiving ----------------------------------------------------------

    def receive(self, request):
        """The body, streamed into the workspace (uploads.Receipt.read); returns the parsed form."""
        return self.receipt.read(request)

    def accepted(self, plan):
        """The request is valid: its plan is the render's parameters."""
        self.log.record(params=plans.dump(plan), inputs=[upload.summary() for upload in plan.uploads])
        self._accepted = True

    # -- rendering ----------------------------------------------------------

    def run_ffmpeg(self, args: list[str], measures: bool = False) -> ffmpeg.FFmpegResult:
        """Run one FFmpeg command of the render; `measures`: it writes no output (a job's progress ignores it)."""
        if not self._ffmpeg_runs and not self.log.render_started_at:
            self.log.record(status=RenderLog.Status.RENDERING, render_started_at=timezone.now())
        watch = None
        if self.watch is not None:
            def watch(report):
                return self.watch(report, measures)
        limit = settings.VIDEOAPI_JOB_FFMPEG_TIMEOUT if self.log.is_job else settings.VIDEOAPI_FFMPEG_TIMEOUT
        result = ffmpeg.run(args, cwd=self.workspace.path, watch=watch, timeout=limit)
        self._ffmpeg_runs.append(result)
        stderr = "\n".join(r.stderr_tail for r in self._ffmpeg_runs if r.stderr_tail)[-ffmpeg.STDERR_TAIL_BYTES:]
        self.log.record(
            ffmpeg_argv=[r.argv for r in self._ffmpeg_runs], ffmpeg_exit_code=result.returncode, ffmpeg_stderr=stderr
        )
        if result.stopped:
            raise Stopped()
        if result.timed_out:
            if self.log.is_job:
                raise RenderTimeout(f"the job ran past its limit of {limit:g} s (VIDEOAPI_JOB_FFMPEG_TIMEOUT) "
                                    "and was stopped")
            raise RenderTimeout(
                f"the render ran past the limit of {limit:g} s for a request that waits for its answer, and was "
                f"stopped; send the same request with `Prefer: respond-async` to run it as a job (limit "
                f"{settings.VIDEOAPI_JOB_FFMPEG_TIMEOUT:g} s)")
        if result.returncode != 0:
            if "No space left on device" in result.stderr_tail or free_bytes(self.workspace.path) < DISK_FULL_BELOW:
                raise InsufficientStorage("the temp disk filled up during the render; try again later")
            raise RenderFailed(f"FFmpeg failed (exit code {result.returncode})")
        return result

    @staticmethod
    def require_output(path: Path):
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise RenderFailed("FFmpeg produced no output") from None
        if size == 0:
            raise RenderFailed("FFmpeg produced an empty output")
        return size

    # -- finishing ----------------------------------------------------------

    def succeed(self, result, delivered: dict | None = None, stored: str | None = None) -> int:
        """The render succeeded: record it; returns the result's size. A synchronous render's download then
        cleans up when it closes; a job's result is kept for its download (or VIDEOAPI_JOB_RESULT_TTL), and
        recorded only while the job is still rendering (a cancel that came first wins: Stopped). `delivered`:
        the job's result is in its client's storage (lifecycle.delivery): recorded as gone from here, as if
        downloaded (nothing to cancel, expire or sweep). `stored`: the result's key in the object store
        (lifecycle.objects), where its download comes from."""
        size = self.require_output(result.path)
        finished = timezone.now()
        fields = {"status": RenderLog.Status.SUCCEEDED, "http_status": 200, "output_size": size,
                      "render_finished_at": finished, "details": result.details}
        if self.log.is_job:
            if delivered is not None:
                fields.update(progress=1.0, eta_seconds=None, result=delivered, result_expires_at=finished,
                              result_downloaded_at=finished)
            else:
                kept = {"file": result.path.name, "filename": result.filename, "content_type": result.content_type,
                        "headers": result.headers}
                fields.update(progress=1.0, eta_seconds=None,
                              result={**kept, "object": stored} if stored else kept,
                              result_expires_at=finished + timedelta(seconds=settings.VIDEOAPI_JOB_RESULT_TTL))
            if not self.log.record_if(RenderLog.Status.RENDERING, **fields):
                raise Stopped()
        else:
            self.log.record(**fields)
        seconds = (finished - self.log.render_started_at).total_seconds() if self.log.render_started_at else None
        metrics.rendered(self.log.endpoint, RenderLog.Status.SUCCEEDED, seconds)
        logger.info("event=%s render_id=%s seconds=%s bytes=%s", "job_succeeded" if self.log.is_job else "rendered",
                    self.id, f"{seconds:.3f}" if seconds is not None else "-", size)
        return size

    def server_timing(self) -> str:
        """Where the time went, for browsers' network panels and the benchmark: FFmpeg's runs vs the whole request."""
        ffmpeg_ms = sum(run.seconds for run in self._ffmpeg_runs) * 1000
        total_ms = (time.monotonic() - self._began) * 1000
        return f'ffmpeg;dur={ffmpeg_ms:.1f};desc="FFmpeg", total;dur={total_ms:.1f};desc="received to first byte"'

    def abort(self, exc: BaseException) -> bool:
        """Any failure before a response exists: record it, delete at once. A job's failure is recorded only
        while it is still rendering (a cancel or a reaper may have ended it meanwhile); returns whether this
        recorded it. The workspace goes either way."""
        while_status = RenderLog.Status.RENDERING if self.log.is_job else None
        answer = answer_for(exc)
        status = log_status_for(answer.status)
        now = timezone.now()
        fields = {"status": status, "http_status": answer.status, "error_code": answer.code,
                  "error_message": answer.detail}
        if self.log.render_started_at:
            fields["render_finished_at"] = now
        if not self._accepted:
            try:
                fields.update(self.receipt.brought(self._form().fields if self._form else {}, self._secrets))
            except Exception:  # a description must never hide the failure it describes
                logger.warning("event=received_unrecorded render_id=%s", self.id, exc_info=True)
        recorded = False
        try:
            if while_status is None:
                self.log.record(**fields)
                recorded = True
            else:
                recorded = self.log.record_if(while_status, **fields)
        except Exception:
            logger.exception("could not record the failure render_id=%s", self.id)
        if recorded or while_status is None:
            metrics.rendered(self.log.endpoint, metrics.ABORTED if answer.code == "client_disconnected" else status)
            logger.info("event=%s render_id=%s http_status=%s code=%s detail=%r", status, self.id, answer.status,
                        answer.code, answer.detail)
        self.cleanup()
        return recorded

    def cleanup(self, response_closed: bool = False):
        """Delete the workspace and record the outcome; never raises."""
        fields = {"response_closed_at": timezone.now()} if response_closed else {}
        try:
            self.workspace.delete()
        except (CleanupError, OSError) as exc:
            logger.error("event=cleanup_failed render_id=%s path=%s error=%s", self.id, self.workspace.path, exc)
            metrics.cleanup(RenderLog.Cleanup.FAILED)
            fields.update(cleanup_status=RenderLog.Cleanup.FAILED, cleanup_at=timezone.now(),
                          cleanup_error=str(exc)[:2000])
        else:
            logger.info("event=cleaned render_id=%s response_closed=%s", self.id, response_closed)
            metrics.cleanup(RenderLog.Cleanup.DELETED)
            fields.update(cleanup_status=RenderLog.Cleanup.DELETED, cleanup_at=timezone.now())
        try:
            self.log.record(**fields)
        except Exception:
            logger.exception("could not record cleanup render_id=%s", self.id)
