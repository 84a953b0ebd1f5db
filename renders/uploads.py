"""Upload handling: stream every uploaded file straight into the workspace.

Django's default handlers keep small files in memory and spill big ones
into the system temp dir; for renders neither is wanted. The handler below
writes each file, chunk by chunk, to a name the service chooses inside the
render's workspace, and counts bytes against the size limit as they arrive
(the Content-Length check comes first, in the view; the counter catches a
body that is larger than its header says).
"""

import errno
import os
import re

from django.core.files.uploadedfile import UploadedFile
from django.core.files.uploadhandler import FileUploadHandler

from .errors import InsufficientStorage, PayloadTooLarge

FIELD_NAME = re.compile(rb'Content-Disposition:[^\r\n]*?\bname="([^"\r\n]{1,100})"', re.IGNORECASE)


class BodyStream:
    """The request body as the multipart parser reads it: counted, and watched for field names.

    - A body sent with `Transfer-Encoding: chunked` has no Content-Length;
      gunicorn de-chunks it, and this stream lets the parser read it to its
      end while the byte limit still holds (413 the moment it is passed).
    - The name of the part being read is kept, so that a text field over
      Django's in-memory field limit can be named in the 413.
    """

    def __init__(self, raw, limit):
        self.raw = raw
        self.limit = limit
        self.read_bytes = 0
        self.field = ""
        self._tail = b""

    def read(self, size=-1):
        return self._seen(self.raw.read(size) if size is not None and size >= 0 else self.raw.read())

    def readline(self, size=-1):
        return self._seen(self.raw.readline(size) if size is not None and size >= 0 else self.raw.readline())

    def _seen(self, data):
        self.read_bytes += len(data)
        if self.read_bytes > self.limit:
            raise PayloadTooLarge(f"request body is over the limit of {self.limit} bytes")
        # A header can straddle two reads: look at the end of the last read joined to the start of
        # this one, then at this one. A case-insensitive regex over every byte of a video costs
        # ~2.5 ms per MB, so a plain search for the header's name (as clients spell it) comes first,
        # and no read is copied whole.
        for window in (self._tail + data[:512], data):
            if b"isposition" in window or b"ISPOSITION" in window:
                names = FIELD_NAME.findall(window)
                if names:
                    self.field = names[-1].decode("utf-8", "replace")
        self._tail = data[-512:] if len(data) >= 512 else (self._tail + data)[-512:]
        return data


class WorkspaceFile(UploadedFile):
    """An upload that lives in the workspace under a service-chosen name."""

    def __init__(self, path, field_name, client_name, content_type, size):
        super().__init__(open(path, "rb"), client_name, content_type, size)
        self.path = path
        self.field_name = field_name

    def temporary_file_path(self):
        return str(self.path)

    def close(self):
        try:
            return self.file.close()
        except FileNotFoundError:
            pass


class RefuseUploadHandler(FileUploadHandler):
    """Default for every view that did not install its own: take no files.

    Only the render views accept uploads, and they install
    `WorkspaceUploadHandler`; anywhere else a file part is dropped unread.
    """

    def receive_data_chunk(self, raw_data, start):
        return None

    def file_complete(self, file_size):
        return None


class WorkspaceUploadHandler(FileUploadHandler):
    chunk_size = 256 * 1024

    def __init__(self, workspace, max_bytes, request=None):
        super().__init__(request)
        self.workspace = workspace
        self.max_bytes = max_bytes
        self.received = 0
        self._handle = None
        self._path = None

    def new_file(self, field_name, file_name, content_type, content_length, charset=None, content_type_extra=None):
        super().new_file(field_name, file_name, content_type, content_length, charset, content_type_extra)
        self._path = self.workspace.new_path("upload", ".bin")
        fd = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        self._handle = os.fdopen(fd, "wb")

    def receive_data_chunk(self, raw_data, start):
        self.received += len(raw_data)
        if self.received > self.max_bytes:
            self._close()
            raise PayloadTooLarge(f"request body is over the limit of {self.max_bytes} bytes")
        try:
            self._handle.write(raw_data)
        except OSError as exc:
            self._close()  # now, not at garbage collection: an open deleted file keeps its disk space
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise InsufficientStorage("the temp disk is full; try again later") from exc
            raise
        return None

    def file_complete(self, file_size):
        self._close()
        return WorkspaceFile(self._path, self.field_name, self.file_name, self.content_type, file_size)

    def upload_interrupted(self):
        self._close()

    def _close(self):
        if self._handle is not None:
            handle, self._handle = self._handle, None
            try:
                handle.close()  # flushing the last buffer can fail on a full disk too
            except OSError:
                pass
