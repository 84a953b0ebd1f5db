"""The one JSON error shape of the API (docs/API.md, "Errors"), for every failure.

    {"code": ..., "detail": ..., "fields": {...}, "render_id": ...}

`detail` is for people: it never carries a server path or FFmpeg's stderr.
"""

import logging
from typing import NamedTuple

from django.conf import settings
from django.core.exceptions import PermissionDenied, RequestDataTooBig, SuspiciousOperation
from django.db import InterfaceError, OperationalError
from django.http import Http404, UnreadablePostError
from rest_framework import exceptions, status
from rest_framework.response import Response

logger = logging.getLogger("renders")


class ServiceError(exceptions.APIException):
    """An error of the contract: a status, a stable code, a human message."""

    status_code = status.HTTP_400_BAD_REQUEST
    default_code = "invalid_input"
    default_detail = "invalid input"

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
    status_code = 413
    default_code = "payload_too_large"
    default_detail = "request body is over the size limit"


class InsufficientStorage(ServiceError):
    status_code = 507
    default_code = "insufficient_storage"
    default_detail = "the temp disk cannot hold this render; try again later"

    def __init__(self, detail=None, fields=None, headers=None):
        super().__init__(detail, fields, {"Retry-After": "30", **(headers or {})})


class UnsupportedMedia(ServiceError):
    status_code = 415
    default_code = "unsupported_media"
    default_detail = "the upload is not an accepted video"


class UndecodableMedia(ServiceError):
    status_code = 422
    default_code = "undecodable_media"
    default_detail = "the upload looks like a video but cannot be decoded"


class Busy(ServiceError):
    status_code = 503
    default_code = "busy"
    default_detail = "every render slot is busy; try again shortly"


class RenderFailed(ServiceError):
    status_code = 500
    default_code = "render_failed"
    default_detail = "the render failed"


class RenderTimeout(ServiceError):
    status_code = 504
    default_code = "render_timeout"
    default_detail = "the render took too long and was stopped"


class NotReady(ServiceError):
    status_code = 409
    default_code = "not_ready"
    default_detail = "the job has not finished yet"


class Gone(ServiceError):
    status_code = 410
    default_code = "gone"
    default_detail = "the job's result is no longer kept"


class Misdirected(ServiceError):
    status_code = 421
    default_code = "misdirected"
    default_detail = "this host does not hold the job's result"


class RangeNotSatisfiable(ServiceError):
    status_code = 416
    default_code = "range_not_satisfiable"
    default_detail = "the range asked for starts past the end of the file"


# Every `code` a RenderLog can hold (the admin's error filter lists them without scanning the table);
# a unit test feeds answer_for() every kind of exception it handles and checks its code is here.
ERROR_CODES = ["invalid_input", "not_authenticated", "payload_too_large", "unsupported_media", "undecodable_media",
               "throttled", "render_failed", "internal_error", "busy", "unavailable", "render_timeout",
               "insufficient_storage", "worker_lost", "method_not_allowed", "permission_denied", "not_found",
               "error", "client_disconnected", "not_ready", "duplicate", "gone", "misdirected",
               "range_not_satisfiable"]


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
        return 400, "invalid_input", detail, fields, {}
    if isinstance(exc, (exceptions.NotAuthenticated, exceptions.AuthenticationFailed)):
        return 401, "not_authenticated", str(exc.detail), {}, {"WWW-Authenticate": 'Token realm="api"'}
    if isinstance(exc, exceptions.Throttled):
        headers = {"Retry-After": str(exc.wait or 1)} if exc.wait is not None else {}
        return 429, "throttled", "request was throttled; try again later", {}, headers
    if isinstance(exc, exceptions.UnsupportedMediaType):
        return 415, "unsupported_media", "send the request as multipart/form-data", {}, {}
    if isinstance(exc, exceptions.ParseError):
        return 400, "invalid_input", "the multipart body could not be parsed", {}, {}
    if isinstance(exc, exceptions.MethodNotAllowed):
        return 405, "method_not_allowed", str(exc.detail), {}, {"Allow": "POST"}
    if isinstance(exc, (exceptions.PermissionDenied, PermissionDenied)):
        return 403, "permission_denied", "you may not do that", {}, {}
    if isinstance(exc, (exceptions.NotFound, Http404)):
        return 404, "not_found", "not found", {}, {}
    if isinstance(exc, UnreadablePostError):
        # Django's wrapper of the server's input failing (the upload path raises ClientDisconnected itself;
        # this catches a body read anywhere else)
        return 400, "client_disconnected", ClientDisconnected.default_detail, {}, {}
    if isinstance(exc, RequestDataTooBig):
        return 413, "payload_too_large", "a text field is over the in-memory field limit", {}, {}
    if isinstance(exc, SuspiciousOperation):
        # Django's own request limits (too many fields or files).
        return 400, "invalid_input", "the request has too many fields or files", {}, {}
    if isinstance(exc, exceptions.APIException):
        return exc.status_code, "error", str(exc.detail), {}, {}
    if isinstance(exc, (OperationalError, InterfaceError)):
        # The database is unreachable (down, restarting, out of connections):
        # a temporary condition of ours, not a bug, and nothing was rendered.
        return 503, "unavailable", "the service's database is unavailable; try again shortly", {}, \
            {"Retry-After": str(settings.VIDEOAPI_DB_RETRY_AFTER)}
    return 500, "internal_error", "an internal error occurred", {}, {}


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
        logger.exception("unexpected error render_id=%s", render_id, exc_info=exc)
    response = error_response(exc, render_id)
    view = context.get("view")
    if status_code == 405 and view is not None:
        response["Allow"] = ", ".join(view.allowed_methods)
    return response
