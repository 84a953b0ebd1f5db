"""The download: a rendered file as a FileResponse whose close() deletes the workspace.

The WSGI server calls close() when the download ends, when the client
disconnects and when streaming fails (also when it used sendfile through
``wsgi.file_wrapper``: Django points the wrapper's close at this method).
close() is idempotent and never raises: the cleanup runs first, and the
parent's close() (which closes the file and the request) always runs after
it in a ``finally``.
"""

import logging

from django.http import FileResponse

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
        open(result.path, "rb"),
        as_attachment=True,
        filename=result.filename,
        content_type=negotiated_type(accept, result.content_type),
        on_close=on_close,
    )
    response["Cache-Control"] = "no-store"
    response["X-Render-Id"] = str(render_id)
    response["Server-Timing"] = server_timing
    for name, value in result.headers.items():
        response[name] = value
    return response


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
