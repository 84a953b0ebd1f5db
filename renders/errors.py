"""The one JSON error shape of the API (docs/API.md, "Errors"), for every failure, and its codes.

    {"code": ..., "detail": ..., "fields": {...}, "render_id": ...}

`detail` is for people: it never carries a server path or FFmpeg's stderr.
`CODES` says once, for every code, its status and when it happens: the
exceptions, the answers, the admin's filter and the API's description read it.
"""

import logging
from typing import NamedTuple

from django.conf import settings
from django.core.exceptions import PermissionDenied, RequestDataTooBig, SuspiciousOperation
from django.db import InterfaceError, OperationalError
from django.http import Http404, UnreadablePostError
from rest_framework import exceptions
from rest_framework.response import Response

logger = logging.getLogger("renders")


class Code(NamedTuple):
    """One error code of the contract."""

    status: int | None  # the HTTP status it comes with (recorded in the RenderLog); None: the refusal's own
    when: str  # what it means, as the API's description and docs/API.md say it
    sent: bool = True  # False: no error answer a client reads carries it; only the RenderLog has it


# Every `code` an error answer or a RenderLog can hold (the admin's error filter lists them without scanning
# the table; a unit test feeds answer_for() every kind of exception it handles and checks its code is here).
CODES = {
    "invalid_input": Code(400, "a field is missing, malformed, out of range or inconsistent with another "
                               "(`fields` names each), or the body is not a readable form"),
    "not_authenticated": Code(401, "no key, or a wrong, revoked or expired one"),
    "payload_too_large": Code(413, "the body is over the upload limit, or one text field is over the 2.5 MB "
                                   "in-memory field limit (named in `fields`)"),
    "unsupported_media": Code(415, "an upload is not of an accepted kind (a video; an image for an avatar or "
                                   "logo; sound for music), or the body is not `multipart/form-data`"),
    "undecodable_media": Code(422, "it looks like a video (image, sound) but cannot be decoded (damaged or "
                                   "truncated)"),
    "throttled": Code(429, "over this client's request rate; see `Retry-After`"),
    "render_failed": Code(500, "FFmpeg failed on this input"),
    "internal_error": Code(500, "a defect of the service"),
    "busy": Code(503, "every render slot stayed taken while the request waited, the host's job queue is full, "
                      "or a job's result is being checked that moment; nothing was kept; see `Retry-After`"),
    "unavailable": Code(503, "the service's database, or its object store, is unreachable; nothing was kept; see "
                             "`Retry-After`"),
    "render_timeout": Code(504, "the render ran past its time limit and was stopped"),
    "insufficient_storage": Code(507, "the temporary disk cannot hold the upload or the render, or a stored "
                                      "upload would take the client past its quota of stored uploads; nothing "
                                      "was kept; see `Retry-After`"),
    "worker_lost": Code(500, "a job's worker died while it ran, or no worker took the job in time (the job's "
                             "`error`, and the answer for its result); for a synchronous render only in the "
                             "RenderLog: its client saw the connection drop"),
    "delivery_failed": Code(502, "a job's result could not be PUT to its `output_url`: the destination refused it "
                                 "(its status and reason in `detail`), or kept failing or was unreachable through "
                                 "every retry (the job's `error`, and the answer for its result)"),
    "method_not_allowed": Code(405, "a method the path does not take (`Allow` lists those it does)"),
    "permission_denied": Code(403, "the key may not do this"),
    "not_found": Code(404, "no such path, or no such job, saved template or stored upload (another "
                           "client's included)"),
    "error": Code(None, "any other refusal by the HTTP layer, with its own status"),
    "client_disconnected": Code(400, "the client went away before its request body was complete (fewer bytes "
                                     "than its `Content-Length`, a reset connection, a chunked body cut off): "
                                     "the RenderLog records the request as `rejected` with this code and 400; "
                                     "the client, gone, never reads an answer", sent=False),
    "not_ready": Code(409, "a job's result was asked for before the job finished; see `Retry-After`"),
    "duplicate": Code(202, "a job submission whose `Idempotency-Key` another submission took first: it is "
                           "answered that job (202), and only its RenderLog has this code", sent=False),
    "gone": Code(410, "a job's result was already downloaded, cancelled or expired"),
    "misdirected": Code(421, "a host was asked directly for a job result another host holds (named in "
                             "`X-Videoapi-Host`)"),
    "range_not_satisfiable": Code(416, "a job result's `Range` starts past its end "
                                       "(`Content-Range: bytes */<size>`)"),
}
ERROR_CODES = list(CODES)


class ServiceError(exceptions.APIException):
    """An error of the contract: a stable code (its status from CODES), a human message."""

    status_code = CODES["invalid_input"].status
    default_code = "invalid_input"
    default_detail = "invalid input"

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.status_code = CODES[cls.default_code].status

    def __init__(self, detail=None, fields=None, headers=None):
        super().__init__(detail or self.default_detail, self.default_code)
        self.fields = fields or {}
        self.headers = headers or {}


class InvalidInput(ServiceError):
    pass


class ClientDisconnected(ServiceError):
    """The client went away before its request body was complete.

    The client's doing, not ours: recorded as a rejection with its own code
    (the 400 is never delivered), never logged as an error.
    """

    default_code = "client_disconnected"
    default_detail = "the client disconnected before the request body was complete"


def invalid(field, message):
    """A 400 naming one field."""
    return InvalidInput(f"{field}: {message}", fields={field: [message]})


class PayloadTooLarge(ServiceError):
    default_code = "payload_too_large"
    default_detail = "request body is over the size limit"


class InsufficientStorage(ServiceError):
    default_code = "insufficient_storage"
    default_detail = "the temp disk cannot hold this render; try again later"

    def __init__(self, detail=None, fields=None, headers=None):
        super().__init__(detail, fields, {"Retry-After": "30", **(headers or {})})


class UnsupportedMedia(ServiceError):
    default_code = "unsupported_media"
    default_detail = "the upload is not an accepted video"


class UndecodableMedia(ServiceError):
    default_code = "undecodable_media"
    default_detail = "the upload looks like a video but cannot be decoded"


class Busy(ServiceError):
    default_code = "busy"
    default_detail = "every render slot is busy; try again shortly"


class Unavailable(ServiceError):
    """A store the service depends on (the object store) cannot be reached or refused us: temporary, ours."""

    default_code = "unavailable"
    default_detail = "the service's storage is unavailable; try again shortly"

    def __init__(self, detail=None, fields=None, headers=None):
        super().__init__(detail, fields, {"Retry-After": str(settings.VIDEOAPI_DB_RETRY_AFTER), **(headers or {})})


class RenderFailed(ServiceError):
    default_code = "render_failed"
    default_detail = "the render failed"


class RenderTimeout(ServiceError):
    default_code = "render_timeout"
    default_detail = "the render took too long and was stopped"


class DeliveryFailed(ServiceError):
    default_code = "delivery_failed"
    default_detail = "the result could not be delivered to its output_url"


class NotReady(ServiceError):
    default_code = "not_ready"
    default_detail = "the job has not finished yet"


class Gone(ServiceError):
    default_code = "gone"
    default_detail = "the job's result is no longer kept"


class Misdirected(ServiceError):
    default_code = "misdirected"
    default_detail = "this host does not hold the job's result"


class RangeNotSatisfiable(ServiceError):
    default_code = "range_not_satisfiable"
    default_detail = "the range asked for starts past the end of the file"


def _messages(value, prefix=""):
    """All messages under one field, nested ones labelled (`item 2: ...`)."""
    if isinstance(value, dict):
        out = []
        for key, sub in value.items():
            label = f"item {int(key) + 1}" if str(key).isdigit() else str(key)
            out += _messages(sub, f"{prefix}{label}: ")
        return out
    if isinstance(value, list):
        return [m for item in value for m in _messages(item, prefix)]
    return [f"{prefix}{value}"]


def _flatten(detail):
    """DRF's nested ErrorDetail structure -> {field: [str, ...]}."""
    if isinstance(detail, dict):
        return {str(key): _messages(value) for key, value in detail.items()}
    return {"non_field_errors": _messages(detail)}


class ErrorAnswer(NamedTuple):
    """How the service answers an exception: the HTTP status and the envelope's parts."""

    status: int
    code: str
    detail: str
    fields: dict
    headers: dict


def answer_for(exc) -> ErrorAnswer:
    """The answer to any exception (ErrorAnswer); anything unforeseen is a 500 `internal_error`."""
    return ErrorAnswer(*_answer(exc))


def _answer(exc):
    if isinstance(exc, ServiceError):
        return exc.status_code, exc.default_code, str(exc.detail), exc.fields, exc.headers
    if isinstance(exc, exceptions.ValidationError):
        fields = _flatten(exc.detail)
        first_field, messages = next(iter(fields.items()), ("non_field_errors", ["invalid input"]))
        detail = messages[0] if first_field == "non_field_errors" else f"{first_field}: {messages[0]}"
        return _coded("invalid_input", detail, fields)
    if isinstance(exc, (exceptions.NotAuthenticated, exceptions.AuthenticationFailed)):
        return _coded("not_authenticated", str(exc.detail), headers={"WWW-Authenticate": 'Token realm="api"'})
    if isinstance(exc, exceptions.Throttled):
        headers = {"Retry-After": str(exc.wait or 1)} if exc.wait is not None else {}
        return _coded("throttled", "request was throttled; try again later", headers=headers)
    if isinstance(exc, exceptions.UnsupportedMediaType):
        return _coded("unsupported_media", "send the request as multipart/form-data")
    if isinstance(exc, exceptions.ParseError):
        return _coded("invalid_input", "the multipart body could not be parsed")
    if isinstance(exc, exceptions.MethodNotAllowed):
        return _coded("method_not_allowed", str(exc.detail), headers={"Allow": "POST"})
    if isinstance(exc, (exceptions.PermissionDenied, PermissionDenied)):
        return _coded("permission_denied", "you may not do that")
    if isinstance(exc, (exceptions.NotFound, Http404)):
        return _coded("not_found", "not found")
    if isinstance(exc, UnreadablePostError):
        # Django's wrapper of the server's input failing (the upload path raises ClientDisconnected itself;
        # this catches a body read anywhere else)
        return _coded("client_disconnected", ClientDisconnected.default_detail)
    if isinstance(exc, RequestDataTooBig):
        return _coded("payload_too_large", "a text field is over the in-memory field limit")
    if isinstance(exc, SuspiciousOperation):
        # Django's own request limits (too many fields or files).
        return _coded("invalid_input", "the request has too many fields or files")
    if isinstance(exc, exceptions.APIException):
        return exc.status_code, "error", str(exc.detail), {}, {}
    if isinstance(exc, (OperationalError, InterfaceError)):
        # The database is unreachable (down, restarting, out of connections):
        # a temporary condition of ours, not a bug, and nothing was rendered.
        return _coded("unavailable", "the service's database is unavailable; try again shortly",
                      headers={"Retry-After": str(settings.VIDEOAPI_DB_RETRY_AFTER)})
    return _coded("internal_error", "an internal error occurred")


def _coded(code, detail, fields=None, headers=None):
    """An answer with `code` and the status CODES gives it."""
    return CODES[code].status, code, detail, fields or {}, headers or {}


def error_response(exc, render_id=None):
    answer = answer_for(exc)
    body = {"code": answer.code, "detail": answer.detail, "fields": answer.fields}
    if render_id:
        body["render_id"] = str(render_id)
    response = Response(body, status=answer.status, headers=answer.headers)
    if render_id:
        response["X-Render-Id"] = str(render_id)
    response["Cache-Control"] = "no-store"
    return response


def exception_handler(exc, context):
    request = context.get("request")
    render_id = getattr(request, "render_id", None) if request is not None else None
    status_code = answer_for(exc).status
    if status_code == 503 and not isinstance(exc, ServiceError):
        logger.error("event=database_unavailable render_id=%s error=%s", render_id, str(exc).strip()[:300])
    elif status_code >= 500 and not isinstance(exc, ServiceError):
        logger.error("unexpected error render_id=%s", render_id, exc_info=exc)  # (DRF calls this outside except)
    response = error_response(exc, render_id)
    view = context.get("view")
    if status_code == 405 and view is not None:
        response["Allow"] = ", ".join(view.allowed_methods)
    return response
