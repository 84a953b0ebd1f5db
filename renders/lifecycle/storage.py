"""The object store (VIDEOAPI_STORAGE=s3): the one place the service touches objects.

Everything goes through Django's `storages["media"]` (django-storages' S3
backend, configured in videoapi/settings.py); where the backend has no call
(an exact-key streamed upload, a streamed download to a file, a byte range,
a listing with dates) it uses the boto3 client and bucket that backend
already holds, so there is one client configuration. Keys are chosen by the
service: `uploads/<uuid>`, `jobs/<uuid>/input/<name>`, `jobs/<uuid>/result/<name>`.

A missing object is FileNotFoundError. A store that cannot be reached,
refuses our credentials or has no such bucket is errors.Unavailable (503
`unavailable`): the cause is logged, the client is told only which store.
"""

import contextlib
import logging
import mimetypes
from datetime import UTC, datetime, timedelta
from pathlib import Path

from boto3.exceptions import Boto3Error
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import BotoCoreError, ClientError
from django.core.files.storage import storages
from django.utils.http import content_disposition_header

from renders.errors import RangeNotSatisfiable, Unavailable

logger = logging.getLogger("renders.storage")

UNAVAILABLE = "the object store is unavailable; try again shortly"
MISSING_KEY = {"NoSuchKey", "NotFound", "404"}  # a HEAD's 404 has no code of its own: "404"
# One transfer's memory, whatever the file's size: 4 parts of 8 MB in flight, at most 32 chunks (256 KB) of a
# download waiting for the disk (boto3's defaults, 10 parts and 100 chunks, let a transfer hold ~80 MB).
TRANSFER = TransferConfig(multipart_threshold=8 * 1024 * 1024, multipart_chunksize=8 * 1024 * 1024,
                          max_concurrency=4, max_io_queue=32)


def media():
    """The django-storages S3 backend (`STORAGES["media"]`)."""
    return storages["media"]


def _key(key: str) -> str:
    if not key or key.startswith("/") or any(part in {"", ".", ".."} for part in key.split("/")):
        raise ValueError(f"not an object key: {key!r}")
    return key


def _unavailable(action, key, exc):
    logger.error("event=object_store_unavailable action=%s key=%s error=%s", action, key,
                 str(exc).strip()[:300] or type(exc).__name__)
    return Unavailable(UNAVAILABLE)


def _bucket_exists(storage) -> bool:
    try:
        storage.connection.meta.client.head_bucket(Bucket=storage.bucket_name)
    except ClientError as exc:
        if _code(exc) in {"404", "NoSuchBucket", "NotFound"}:
            return False
        raise
    return True


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


@contextlib.contextmanager
def _store(action, key):
    """Store failures -> Unavailable; a missing key (not a missing bucket) -> FileNotFoundError."""
    storage = media()
    try:
        yield storage
    except (ClientError, FileNotFoundError) as exc:  # (the backend turns some 404s into FileNotFoundError)
        code = _code(exc) if isinstance(exc, ClientError) else "404"
        if code == "InvalidRange":
            raise RangeNotSatisfiable() from None
        if code not in MISSING_KEY:
            raise _unavailable(action, key, exc) from None
        try:
            bucket = _bucket_exists(storage)  # a HEAD says 404 for a missing bucket too
        except (ClientError, BotoCoreError) as failure:
            raise _unavailable(action, key, failure) from None
        if not bucket:
            raise _unavailable(action, key, f"no bucket {storage.bucket_name!r}") from None
        raise FileNotFoundError(f"no object {key!r}") from None
    except (BotoCoreError, Boto3Error) as exc:
        raise _unavailable(action, key, exc) from None


def put_file(key: str, path: Path) -> int:
    """Upload the file at `path` to `key` (replacing it), streamed: multipart past the backend's threshold.

    Not the backend's save(): with file_overwrite off it would pick another name if `key` existed.
    """
    key = _key(key)
    with _store("put", key) as storage:
        content_type = mimetypes.guess_type(key)[0] or storage.default_content_type
        extra = {**storage.get_object_parameters(key), "ContentType": content_type}
        storage.bucket.upload_file(str(path), key, ExtraArgs=extra, Config=TRANSFER)
    return Path(path).stat().st_size


def get_file(key: str, path: Path) -> int:
    """Download `key` into `path` in bounded chunks (never the whole object in memory); returns its bytes."""
    key = _key(key)
    with _store("get", key) as storage:
        storage.bucket.download_file(key, str(path), Config=TRANSFER)
    return Path(path).stat().st_size


def open_range(key: str, start: int = 0, end: int | None = None):
    """A stream of bytes `start`..`end` (inclusive; None: to the end) of `key`: botocore's StreamingBody
    (`read(n)`, `iter_chunks(size)`, `close()`). The caller closes it."""
    key = _key(key)
    with _store("range", key) as storage:
        span = f"bytes={start}-{'' if end is None else end}"
        return storage.connection.meta.client.get_object(Bucket=storage.bucket_name, Key=key, Range=span)["Body"]


def delete(key: str) -> None:
    """Remove `key`; a key already gone is not an error."""
    key = _key(key)
    with _store("delete", key) as storage:
        storage.delete(key)


def exists(key: str) -> bool:
    key = _key(key)
    with _store("exists", key) as storage:
        if storage.exists(key):
            return True
        if not _bucket_exists(storage):  # (exists() reads a missing bucket's 404 as a missing key)
            raise _unavailable("exists", key, f"no bucket {storage.bucket_name!r}")
        return False


def size(key: str) -> int:
    key = _key(key)
    with _store("size", key) as storage:
        return storage.size(key)


def presigned_get(key: str, filename: str, content_type: str) -> str:
    """A URL that GETs `key` for VIDEOAPI_S3_URL_TTL seconds with no other credential, answered as an
    attachment named `filename` of type `content_type` (the headers the service itself would send)."""
    key = _key(key)
    with _store("presign", key) as storage:
        return storage.url(key, parameters={
            "ResponseContentDisposition": content_disposition_header(True, filename),
            "ResponseContentType": content_type,
        })


def older_than(prefix: str, seconds: float) -> list[str]:
    """Keys under `prefix` last modified more than `seconds` ago (the store's dates, this host's clock)."""
    with _store("list", prefix) as storage:
        cutoff = datetime.now(UTC) - timedelta(seconds=seconds)
        pages = storage.connection.meta.client.get_paginator("list_objects_v2").paginate(
            Bucket=storage.bucket_name, Prefix=prefix)
        return [entry["Key"] for page in pages for entry in page.get("Contents", ())
                if entry["LastModified"] < cutoff]


def keys(prefix: str) -> list[str]:
    """Every key under `prefix`."""
    with _store("list", prefix) as storage:
        pages = storage.connection.meta.client.get_paginator("list_objects_v2").paginate(
            Bucket=storage.bucket_name, Prefix=prefix)
        return [entry["Key"] for page in pages for entry in page.get("Contents", ())]
