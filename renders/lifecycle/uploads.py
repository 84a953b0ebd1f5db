"""Upload handling: stream every uploaded file straight into the workspace.

Django's default handlers keep small files in memory and spill big ones
into the system temp dir; for renders neither is wanted. The handler below
writes each file, chunk by chunk, to a name the service chooses inside the
render's workspace, and counts bytes against the size limit as they arrive.
`Receipt.read()` checks the declared length against the limit and the free
disk before a byte is read; the counting stream then catches a body that is
larger than its header says, and a chunked body that has no header.

A body that ends before its declared length, or whose reading fails in the
WSGI server (the connection reset or timed out, a chunked body cut off), is
a client that went away: `ClientDisconnected`, the client's doing and not an
error of ours. `received()` describes what a rejected request brought, for
its RenderLog.
"""

import errno
import os
import re
import unicodedata

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.core.files.uploadedfile import UploadedFile
from django.core.files.uploadhandler import FileUploadHandler
from rest_framework import serializers

from renders.errors import ClientDisconnected, InsufficientStorage, InvalidInput, PayloadTooLarge
from renders.lifecycle.workspace import free_bytes

try:  # the body errors of the WSGI server the service ships with; another server's are OSErrors or bugs
    from gunicorn.http.errors import ChunkMissingTerminator
    from gunicorn.http.errors import ParseException as ServerBodyError
except ImportError:  # pragma: no cover
    ChunkMissingTerminator = ServerBodyError = ()

FIELD_NAME = re.compile(rb'Content-Disposition:[^\r\n]*?\bname="([^"\r\n]{1,100})"', re.IGNORECASE)


class BodyStream:
    """The request body as the multipart parser reads it: counted, and watched for field names.

    - A body sent with `Transfer-Encoding: chunked` has no Content-Length;
      gunicorn de-chunks it, and this stream lets the parser read it to its
      end while the byte limit still holds (413 the moment it is passed).
    - The name of the part being read is kept, so that a text field over
      Django's in-memory field limit can be named in the 413.
    - The end of the stream before the declared length, and any failure of
      the server's input, is `ClientDisconnected` (gunicorn's malformed
      chunk framing is a 400); nothing else reading the body needs to know.
    """

    def __init__(self, raw, limit, declared=0):
        self.raw = raw
        self.limit = limit
        self.declared = declared  # the Content-Length; 0 for a chunked body
        self.read_bytes = 0
        self.field = ""
        self._tail = b""

    def read(self, size=-1):
        whole = size is None or size < 0
        return self._seen(self._from_server(self.raw.read, () if whole else (size,)), size)

    def readline(self, size=-1):
        whole = size is None or size < 0
        return self._seen(self._from_server(self.raw.readline, () if whole else (size,)), size)

    def _from_server(self, read, args):
        try:
            return read(*args)
        except (ConnectionResetError, BrokenPipeError) as exc:
            raise self.disconnected("the connection was reset") from exc
        except TimeoutError as exc:
            raise self.disconnected("the connection timed out") from exc
        except OSError as exc:  # gunicorn's NoMoreData: the connection closed inside a chunk
            raise self.disconnected("the connection closed inside the body") from exc
        except ChunkMissingTerminator as exc:
            if b"\r\n".startswith(getattr(exc, "term", None) or b""):  # it closed where a chunk's CRLF belongs
                raise self.disconnected("the connection closed inside the body") from exc
            raise InvalidInput("the chunked request body is malformed") from exc
        except ServerBodyError as exc:  # a bad chunk size or extension: the client's bytes, not our defect
            raise InvalidInput("the chunked request body is malformed") from exc

    def disconnected(self, how):
        return ClientDisconnected(f"the client disconnected before its request body was complete ({how})")

    def _seen(self, data, size=-1):
        if not data and size != 0 and self.read_bytes < self.declared:  # the stream ended short of its length
            raise self.disconnected(f"the connection closed after {self.read_bytes} of the {self.declared} bytes "
                                    "its Content-Length declared")
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

    probe_summary = None  # what probing found, once the field that takes it has probed it

    def __init__(self, path, field_name, client_name, content_type, size):
        super().__init__(open(path, "rb"), client_name, content_type, size)  # noqa: SIM115  (closed with the upload)
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
        self.files = []  # every file part begun: field, client's name (as sent; cut when recorded), bytes written
        self._handle = None
        self._path = None

    def new_file(self, field_name, file_name, content_type, content_length, charset=None, content_type_extra=None):
        super().new_file(field_name, file_name, content_type, content_length, charset, content_type_extra)
        if len(self.files) < MAX_RECORDED:
            self.files.append({"field": field_name, "file": file_name or "", "bytes": 0, "complete": False})
        self._path = self.workspace.new_path("upload", ".bin")
        fd = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        self._handle = os.fdopen(fd, "wb")

    def receive_data_chunk(self, raw_data, start):
        self.received += len(raw_data)
        if self.files:
            self.files[-1]["bytes"] += len(raw_data)
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
        if self.files:
            self.files[-1]["complete"] = True
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


# ---- one request's body ------------------------------------------------------------------------


class Receipt:
    """What one request's body brought into its workspace: the parsed form, and the files begun."""

    def __init__(self, workspace):
        self.workspace = workspace
        self.data = None  # the parsed form, once the body has been read to its end
        self.handler = None  # the upload handler: the files begun, if the body never was

    def read(self, request):
        """Stream the multipart body of a DRF request into the workspace; returns the parsed form.

        413 when the declared length is over the limit (before a byte is read)
        or the body grows past it; 507 when the declared length cannot fit in
        the temp disk's free space, or the disk fills while the body arrives.
        A chunked body (no declared length) is read to its end under the same
        limit.
        """
        limit = settings.VIDEOAPI_MAX_UPLOAD_BYTES
        meta = request.META
        try:
            declared = int(meta.get("CONTENT_LENGTH") or 0)
        except ValueError:
            declared = 0
        if declared > limit:
            raise PayloadTooLarge(f"request body is {declared} bytes; the limit is {limit} bytes")
        free = free_bytes(self.workspace.path)
        if declared > free:
            raise InsufficientStorage(f"the temp disk has {free} bytes free; this upload needs {declared}")
        # Django reads a body only through the request's private `_stream`, made from `wsgi.input`
        # when the request object is built, and only up to CONTENT_LENGTH: it has no public hook to
        # count, limit or watch a body, nor to read one that is chunked. So the stream is swapped
        # here, before anything has read it.
        django_request = request._request
        chunked = not declared and "chunked" in meta.get("HTTP_TRANSFER_ENCODING", "").lower()
        raw = meta["wsgi.input"] if chunked else django_request._stream
        body = BodyStream(raw, limit, declared)  # a body ending short of `declared`: the client hung up
        django_request._stream = body
        if chunked:  # the parsers read up to CONTENT_LENGTH; the body stream ends the read at the real end
            meta["CONTENT_LENGTH"] = str(limit)
        handler = self.handler = WorkspaceUploadHandler(self.workspace, limit, django_request)
        request.upload_handlers = [handler]
        try:
            self.data = request.data  # parses now, into the workspace
            return self.data
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

    def brought(self, form_fields=None, secrets=()) -> dict:
        """What a refused request brought, as its RenderLog records it: {"params", "inputs"} (see received())."""
        if self.data is not None:
            params, inputs = received(self.data, form_fields, secrets)
        else:  # the body was never parsed to its end: the files begun, as far as they came
            clean = cleaner(secrets)
            params = {}
            inputs = [{**item, "field": clean(item["field"], NAME_KEEP), "file": clean(item["file"], NAME_KEEP)}
                      for item in (self.handler.files if self.handler else [])]
        return {"params": params, "inputs": inputs}


# ---- what a rejected request brought, for its RenderLog --------------------------------------

TEXT_KEEP = 100  # characters kept of a text value whose field declares no limit (and of unknown fields)
NAME_KEEP = 100  # characters kept of a field or file name
MAX_RECORDED = 50  # fields, files and list items recorded at most
NOT_RECORDED = "[not recorded]"
SECRET_NAME = re.compile(r"pass|secret|token|key|auth|credential|cookie|session", re.IGNORECASE)


def cut(text, limit):
    """`text` as recorded: at most `limit` characters, saying how long it was when cut."""
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters)"


def limits(form_fields, name):
    """(characters kept per value, values kept) of form field `name`: its declared limits, or the defaults."""
    field = form_fields.get(name) if form_fields else None
    items = MAX_RECORDED
    if isinstance(field, serializers.ListField):
        items = min(field.max_length or MAX_RECORDED, MAX_RECORDED)
        field = field.child
    chars = field.max_length if isinstance(field, serializers.CharField) and field.max_length else TEXT_KEEP
    return chars, items


def cleaner(secrets):
    """clean(text, limit): `text` as recorded, or `[not recorded]` when it holds one of the request's secrets."""
    secrets = [s for s in secrets if s and len(s) >= 8]

    def clean(text, limit):
        return NOT_RECORDED if any(secret in text for secret in secrets) else cut(text, limit)

    return clean


def received(data, form_fields=None, secrets=()):
    """(params, inputs) describing a parsed request that was refused.

    params: each text field as sent, cut to its field's limit (TEXT_KEEP when
    it declares none); inputs: each file's field, name, size and, where a
    probe ran, what it found. Nothing from the headers; a field whose name
    sounds secret (a password, a key) or whose value holds the request's own
    credential is `[not recorded]`. `form_fields` are the endpoint form's
    declared fields (their limits).
    """
    clean = cleaner(secrets)

    params, inputs = {}, []
    entries = (data.lists() if hasattr(data, "lists")
               else ((k, v if isinstance(v, list) else [v]) for k, v in data.items()))
    for number, (name, values) in enumerate(entries):
        if number >= MAX_RECORDED:
            params["…"] = "more fields not recorded"
            break
        name = str(name)
        chars, items = limits(form_fields, name)
        texts = []
        for value in values:
            if isinstance(value, UploadedFile):
                if len(inputs) < MAX_RECORDED:
                    upload = {"field": cut(name, NAME_KEEP), "file": clean(value.name or "", NAME_KEEP),
                              "bytes": value.size}
                    inputs.append({**upload, **(getattr(value, "probe_summary", None) or {})})
            else:
                texts.append(value)
        if not texts:
            continue
        if SECRET_NAME.search(name) and name not in (form_fields or {}):  # the form's own fields hold no secrets
            recorded = NOT_RECORDED
        else:
            recorded = [clean(str(text), chars) for text in texts[:items]]
            if len(texts) > items:
                recorded.append(f"… ({len(texts)} values)")
            recorded = recorded[0] if len(recorded) == 1 else recorded
        params[clean(name, NAME_KEEP)] = recorded
    return params, inputs


# ---- a client's file names --------------------------------------------------------------------------------

FILENAME_BAD = re.compile(r'[\x00-\x1f\x7f"\'`\\/:*?<>|;]+')


def clean_basename(raw) -> str:
    """A client's file name as it may be shown or offered back: its last path part (either slash), NFC, control
    characters as `_`, every Unicode space as a plain one, quote, path and shell characters as `_`, no spaces,
    dots or underscores at either end. Never used as a path on disk."""
    name = unicodedata.normalize("NFC", str(raw or "")).replace("\\", "/").split("/")[-1]
    name = "".join("_" if unicodedata.category(c)[0] == "C" else " " if unicodedata.category(c)[0] == "Z" else c
                   for c in name)
    return trim_name(FILENAME_BAD.sub("_", name))


def trim_name(name: str) -> str:
    """No spaces, dots or underscores at either end (any Unicode space counts)."""
    while True:
        trimmed = name.strip().strip("._").strip()
        if trimmed == name:
            return name
        name = trimmed
