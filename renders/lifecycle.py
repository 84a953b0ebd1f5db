"""The life of one render (docs/ARCHITECTURE.md): RenderLog, workspace, FFmpeg, cleanup.

`Render.begin()` creates the RenderLog row and the locked workspace;
`receive()` streams the uploads into it; `run_ffmpeg()` runs and records
FFmpeg; `respond()` hands the output to a cleanup response; `abort()` is
the one error path, recording what a refused request brought and deleting
the workspace at once. Every RenderLog write
is a single short UPDATE with no transaction held across FFmpeg or the
download.
"""

import logging
import shutil
import time
import uuid
from pathlib import Path

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.utils import timezone

from . import ffmpeg, metrics, plans
from .authentication import key_name
from .clients import client_address
from .errors import InsufficientStorage, PayloadTooLarge, RenderFailed, RenderTimeout, describe
from .models import RenderLog
from .responses import CleanupFileResponse
from .uploads import BodyStream, WorkspaceUploadHandler, received
from .workspace import CleanupError, Workspace, temp_root

logger = logging.getLogger("renders.lifecycle")

STDERR_KEEP = 16 * 1024
DISK_FULL_BELOW = 1024 * 1024  # a failed FFmpeg with less free than this ran out of disk


def free_bytes(path) -> int:
    return shutil.disk_usage(path).free


def negotiated_type(accept: str, real: str) -> str:
    """`application/octet-stream` when the client asks for it and not for the real type (generated clients do)."""
    wanted = {part.split(";")[0].strip().lower() for part in accept.split(",") if part.strip()}
    family = real.split("/")[0] + "/*"
    if "application/octet-stream" in wanted and not wanted & {real, family, "*/*"}:
        return "application/octet-stream"
    return real


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
        self._ffmpeg_runs = []
        self.accept = accept  # the request's Accept header (lifecycle.negotiated_type)
        self._began = time.monotonic()
        self._form = form  # the endpoint's serializer class: the limits a refused request's fields are cut to
        self._secrets = secrets  # the request's credential: never recorded, even when sent in a field
        self._handler = None  # the upload handler (the files begun, if the body is never parsed)
        self._data = None  # the parsed form
        self._accepted = False

    @property
    def id(self):
        return self.log.id

    @classmethod
    def begin(cls, request, endpoint: str) -> "Render":
        render_id = uuid.uuid4()
        user = request.user if getattr(request.user, "is_authenticated", False) else None
        path = temp_root() / f"{endpoint}_{render_id}"
        log = RenderLog.objects.create(
            id=render_id, endpoint=endpoint, user=user, api_key=key_name(getattr(request, "auth", None)),
            client_address=client_address(request), workspace=str(path),
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
        view = (getattr(request, "parser_context", None) or {}).get("view")
        credential = request.META.get("HTTP_AUTHORIZATION", "").rpartition(" ")[2]
        return cls(log, workspace, accept=request.META.get("HTTP_ACCEPT", ""),
                   form=getattr(view, "serializer_class", None),
                   secrets=(credential, credential.partition(".")[2]) if credential else ())

    # -- receiving ----------------------------------------------------------

    def receive(self, request):
        """Stream the multipart body into the workspace.

        413 when the declared length is over the limit (before a byte is read)
        or the body grows past it; 507 when the declared length cannot fit in
        the temp disk's free space, or the disk fills while the body arrives.
        A chunked body (no declared length) is read to its end under the same
        limit.
        """
        limit = settings.VIDEOAPI_MAX_UPLOAD_BYTES
        django_request = request._request
        meta = django_request.META
        try:
            declared = int(meta.get("CONTENT_LENGTH") or 0)
        except ValueError:
            declared = 0
        if declared > limit:
            raise PayloadTooLarge(f"request body is {declared} bytes; the limit is {limit} bytes")
        free = free_bytes(self.workspace.path)
        if declared > free:
            raise InsufficientStorage(f"the temp disk has {free} bytes free; this upload needs {declared}")
        chunked = not declared and "chunked" in meta.get("HTTP_TRANSFER_ENCODING", "").lower()
        raw = meta["wsgi.input"] if chunked else django_request._stream
        body = BodyStream(raw, limit, declared)  # a body ending short of `declared`: the client hung up
        django_request._stream = body
        if chunked:  # the parsers read up to CONTENT_LENGTH; the body stream ends the read at the real end
            meta["CONTENT_LENGTH"] = str(limit)
        handler = self._handler = WorkspaceUploadHandler(self.workspace, limit, django_request)
        django_request.upload_handlers = [handler]
        try:
            self._data = request.data  # parses now, into the workspace
            return self._data
        except BaseException as exc:
            # the body stream's limit, a full disk, a broken body: Django closes the file being
            # written only for its own StopUpload, and an open file keeps its disk space after
            # the workspace is deleted
            handler.upload_interrupted()
            if isinstance(exc, RequestDataTooBig):
                field = body.field or "a text field"
                message = f"over the in-memory field limit of {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes"
                raise PayloadTooLarge(f"{field}: {message}", fields={field: [message]}) from None
            raise

    def accepted(self, plan):
        """The request is valid: its plan is the render's parameters."""
        self._accepted = True
        self.log.record(params=plans.dump(plan), inputs=[upload.summary() for upload in plan.uploads])

    def received(self) -> dict:
        """What a request refused before `accepted()` brought: RenderLog `params` and `inputs` (uploads.received)."""
        if self._data is not None:
            form_fields = self._form().fields if self._form is not None else {}
            params, inputs = received(self._data, form_fields, self._secrets)
        else:  # the body was never parsed to its end: the files begun, as far as they came
            params, inputs = {}, [dict(item) for item in self._handler.files] if self._handler else []
        return {"params": params, "inputs": inputs}

    # -- rendering ----------------------------------------------------------

    def run_ffmpeg(self, args: list[str]) -> ffmpeg.FFmpegResult:
        if not self._ffmpeg_runs:
            self.log.record(status=RenderLog.Status.RENDERING, render_started_at=timezone.now())
        result = ffmpeg.run(args, cwd=self.workspace.path)
        self._ffmpeg_runs.append(result)
        stderr = "\n".join(r.stderr_tail for r in self._ffmpeg_runs if r.stderr_tail)[-STDERR_KEEP:]
        self.log.record(
            ffmpeg_argv=[r.argv for r in self._ffmpeg_runs], ffmpeg_exit_code=result.returncode, ffmpeg_stderr=stderr
        )
        if result.timed_out:
            raise RenderTimeout(
                f"the render ran past the limit of {settings.VIDEOAPI_FFMPEG_TIMEOUT:g} s and was stopped"
            )
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

    def respond(self, output) -> CleanupFileResponse:
        size = self.require_output(output.path)
        finished = timezone.now()
        self.log.record(
            status=RenderLog.Status.SUCCEEDED,
            http_status=200,
            output_size=size,
            render_finished_at=finished,
            details=output.details,
        )
        seconds = (finished - self.log.render_started_at).total_seconds() if self.log.render_started_at else None
        metrics.rendered(self.log.endpoint, RenderLog.Status.SUCCEEDED, seconds)
        logger.info("event=rendered render_id=%s seconds=%s bytes=%s", self.id,
                    f"{seconds:.3f}" if seconds is not None else "-", size)
        response = CleanupFileResponse(
            open(output.path, "rb"),
            as_attachment=True,
            filename=output.filename,
            content_type=negotiated_type(self.accept, output.content_type),
            on_close=lambda: self.cleanup(response_closed=True),
        )
        response["Cache-Control"] = "no-store"
        response["X-Render-Id"] = str(self.id)
        response["Server-Timing"] = self.server_timing()
        for name, value in output.headers.items():
            response[name] = value
        logger.info("event=streaming render_id=%s bytes=%s", self.id, size)
        return response

    def server_timing(self) -> str:
        """Where the time went, for browsers' network panels and the benchmark: FFmpeg's runs vs the whole request."""
        ffmpeg_ms = sum(run.seconds for run in self._ffmpeg_runs) * 1000
        total_ms = (time.monotonic() - self._began) * 1000
        return f'ffmpeg;dur={ffmpeg_ms:.1f};desc="FFmpeg", total;dur={total_ms:.1f};desc="received to first byte"'

    def abort(self, exc: BaseException):
        """Any failure before a response exists: record it, delete at once."""
        status_code, code, detail, _fields, _headers = describe(exc)
        status = log_status_for(status_code)
        now = timezone.now()
        fields = dict(status=status, http_status=status_code, error_code=code, error_message=detail)
        if self.log.render_started_at:
            fields["render_finished_at"] = now
        if not self._accepted:
            try:
                fields.update(self.received())
            except Exception:  # a description must never hide the failure it describes
                logger.warning("event=received_unrecorded render_id=%s", self.id, exc_info=True)
        metrics.rendered(self.log.endpoint, metrics.ABORTED if code == "client_disconnected" else status)
        logger.info("event=%s render_id=%s http_status=%s code=%s detail=%r", status, self.id, status_code, code, detail)
        try:
            self.log.record(**fields)
        except Exception:
            logger.exception("could not record the failure render_id=%s", self.id)
        self.cleanup()

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
