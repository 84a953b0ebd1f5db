"""The cleanup response: a FileResponse whose close() deletes the workspace.

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
