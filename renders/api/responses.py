"""The download: a rendered file as a FileResponse whose close() deletes the workspace.

The WSGI server calls close() when the download ends, when the client
disconnects and when streaming fails (also when it used sendfile through
``wsgi.file_wrapper``: Django points the wrapper's close at this method).
close() is idempotent and never raises: the cleanup runs first, and the
parent's close() (which closes the file and the request) always runs after
it in a ``finally``.
"""

import logging
import re

from django.http import FileResponse, HttpResponse, StreamingHttpResponse
from django.utils.http import content_disposition_header

from renders.errors import RangeNotSatisfiable
from renders.lifecycle import storage

logger = logging.getLogger("renders.response")


def negotiated_type(accept: str, real: str) -> str:
    """`application/octet-stream` when the client asks for it and not for the real type (generated clients do)."""
    wanted = {part.split(";")[0].strip().lower() for part in accept.split(",") if part.strip()}
    family = real.split("/")[0] + "/*"
    if "application/octet-stream" in wanted and not wanted & {real, family, "*/*"}:
        return "application/octet-stream"
    return real


def file_response(result, *, render_id, accept: str, server_timing: str, on_close) -> "CleanupFileResponse":
    """A rendered `Result` as the download: its name, type (as negotiated), headers; `on_close` cleans up."""
    response = CleanupFileResponse(
        open(result.path, "rb"),  # noqa: SIM115  (the response streams it and closes it)
        as_attachment=True,
        filename=result.filename,
        content_type=negotiated_type(accept, result.content_type),
        on_close=on_close,
    )
    response["Server-Timing"] = server_timing
    return _headed(response, render_id, result.headers)


def _headed(response, render_id, headers: dict):
    """The headers every delivery of a render carries (synchronous or a job's result)."""
    response["Cache-Control"] = "no-store"
    response["X-Render-Id"] = str(render_id)
    for name, value in headers.items():
        response[name] = value
    return response


RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")
CHUNK = 256 * 1024


def requested_range(header: str, size: int):
    """The one byte range [first, last] a `Range` header asks for; None for the whole file (no header, an
    invalid one such as `bytes=5-2`, which RFC 9110 says to ignore, or several ranges, which we may answer
    whole); raises ValueError when it cannot be satisfied (it starts past the end)."""
    match = RANGE_RE.match(header.replace(" ", "")) if header else None
    if not match or not (match[1] or match[2]):
        return None
    if match[1]:
        first = int(match[1])
        last = min(int(match[2]), size - 1) if match[2] else size - 1
    else:  # a suffix: the last N bytes
        first, last = max(0, size - int(match[2])), size - 1
    if match[1] and match[2] and int(match[2]) < first:
        return None  # last before first: invalid, so ignored
    if first >= size or first > last:
        raise ValueError("unsatisfiable")
    return first, last


def result_response(log, request, *, on_close, workspace=None):
    """A job's result, from its workspace or (its `result` names an object) from the object store: the
    synchronous answer's headers, one `Range` honoured (206). `on_close(span, whole=...)` gets the [first, last]
    bytes this answer delivered (all, or as far as a cut connection got), or None when it delivered none, and
    whether it delivered all it was asked for."""
    result = log.result
    key = result.get("object")
    size = log.output_size if key else (workspace.path / result["file"]).stat().st_size
    try:
        span = requested_range(request.META.get("HTTP_RANGE", ""), size)
    except ValueError:
        on_close(None, whole=False)
        raise RangeNotSatisfiable(f"the file has {size} bytes", headers={"Content-Range": f"bytes */{size}"}) \
            from None
    first, last = span or (0, size - 1)
    content_type = negotiated_type(request.META.get("HTTP_ACCEPT", ""), result["content_type"])
    status = 206 if span else 200
    if request.method == "HEAD":  # the headers only: nothing is delivered, the result stays
        on_close(None, whole=False)
        response = HttpResponse(status=status, content_type=content_type)
    else:
        if key:
            handle = storage.open_range(key, first, last)
        else:
            handle = open(workspace.path / result["file"], "rb")  # noqa: SIM115  (the response closes it)
            handle.seek(first)
        response = ResultResponse(handle, first, last, on_close=on_close, status=status, content_type=content_type)
    response["Content-Length"] = str(last - first + 1)
    if span:
        response["Content-Range"] = f"bytes {first}-{last}/{size}"
    response["Accept-Ranges"] = "bytes"
    response["Content-Disposition"] = content_disposition_header(True, result["filename"])
    response["X-Accel-Buffering"] = "no"  # nginx passes the bytes on as they come: delivered means sent on
    return _headed(response, log.pk, result.get("headers", {}))


def stored_result_redirect(log):
    """A job's result in the object store: 302 to a presigned URL of it (valid VIDEOAPI_S3_URL_TTL s), which
    answers the download itself (Range included), with the download name and type."""
    result = log.result
    response = HttpResponse(status=302)
    response["Location"] = storage.presigned_get(result["object"], result["filename"], result["content_type"])
    return _headed(response, log.pk, {})


class ResultResponse(StreamingHttpResponse):
    """Bytes [first, last] of an open file, streamed; close() tells which of them were handed to the server.

    A generator, not sendfile: the server writes each chunk before asking
    for the next, so every chunk before the one a cut connection failed on
    was delivered, and a generator run to its end delivered the whole range.
    """

    def __init__(self, handle, first, last, *, on_close, **kwargs):
        self._handle, self._first, self._last = handle, first, last
        self._on_close = on_close
        self._sent = 0  # bytes the server has written on (it asked for the chunk after them)
        super().__init__(self._chunks(), **kwargs)

    def _chunks(self):
        left = self._last - self._first + 1  # the handle stands at `first` (a file seeked, an object's range)
        while left > 0:
            data = self._handle.read(min(CHUNK, left))
            if not data:
                return
            left -= len(data)
            yield data
            self._sent += len(data)

    def delivered(self):
        """The [first, last] bytes delivered, or None when none were."""
        return (self._first, self._first + self._sent - 1) if self._sent else None

    def close(self):
        try:
            self._handle.close()
            on_close, self._on_close = self._on_close, None
            if on_close is not None:
                on_close(self.delivered(), whole=self._sent == self._last - self._first + 1)
        except Exception:  # never let cleanup break the server's close path
            logger.exception("cleanup on result close failed")
        finally:
            super().close()


class CleanupFileResponse(FileResponse):
    def __init__(self, *args, on_close, **kwargs):
        self._on_close = on_close
        self._cleanup_done = False
        super().__init__(*args, **kwargs)

    def close(self):
        try:
            if not self._cleanup_done:
                self._cleanup_done = True
                self._on_close()
        except Exception:  # never let cleanup break the server's close path
            logger.exception("cleanup on response close failed")
        finally:
            super().close()
