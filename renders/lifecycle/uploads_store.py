"""Uploads stored once (POST /api/uploads) and used by any number of renders as `upload:<id>`.

Where a stored file lives is said by two functions only, `store()` and
`link_into()` (and `discard()`, their undoing), so another storage can take
their place. Here: `<VIDEOAPI_TEMP_ROOT>/uploads/<id>`, named by the upload's
id (never by the client), read-only (0400: a hard link shares its inode's
mode, so the links renders work on are read-only too), on the filesystem of
the workspaces. A render gets a hard link in its own workspace (a copy where
linking fails), so deleting the upload meanwhile takes nothing from it.

The request is received as a render's is (a workspace, uploads.Receipt),
probed to tell its kind, then moved out of the workspace, which is deleted.
Deleting an `Upload` row, from the API, the admin or the sweep, deletes its
file (a post_delete receiver). `expire()` is the sweep's rule.
"""

import errno
import logging
import os
import shutil
import uuid
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.db.models import Sum
from django.db.models.signals import post_delete
from django.utils import timezone

from renders.errors import InsufficientStorage, InvalidInput, PayloadTooLarge, UnsupportedMedia, invalid
from renders.lifecycle import storage
from renders.lifecycle.uploads import Receipt, WorkspaceFile, clean_basename, trim_name
from renders.lifecycle.workspace import CleanupError, Workspace, temp_root
from renders.media import captions
from renders.media.probe import (
    AUDIO_DEMUXERS,
    IMAGE_DEMUXERS,
    VIDEO_DEMUXERS,
    probe_audio,
    probe_image,
    probe_video,
    sniff,
)
from renders.models import Upload

logger = logging.getLogger("renders.uploads")

UPLOADS_DIR = "uploads"  # under the temp root; the sweep of workspaces leaves it alone
REFERENCE = "upload:"
FIELD = "file"
FORM_SLACK = 16 * 1024  # a one-file multipart body's bytes beyond the file (boundaries, part headers)
NOT_MEDIA = ("not a recognised video (MP4/MOV, Matroska/WebM, AVI, MPEG-TS), image (PNG, JPEG, WebP), sound "
             "(MP3, AAC/M4A, WAV, FLAC, Ogg) or captions file (SRT, WebVTT)")


# ---- where the files live ----------------------------------------------------------------------------


def uploads_root() -> Path:
    path = temp_root() / UPLOADS_DIR
    path.mkdir(mode=0o700, exist_ok=True)
    return path


def _path(upload: Upload) -> Path:
    return uploads_root() / str(uuid.UUID(str(upload.pk)))


def _copy(source: Path, target: Path):
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "wb") as out, open(source, "rb") as src:
            shutil.copyfileobj(src, out, 1024 * 1024)
    except BaseException:
        target.unlink(missing_ok=True)
        raise


def _key(upload: Upload) -> str:
    return f"uploads/{uuid.UUID(str(upload.pk))}"


def store(upload: Upload, source_path: Path):
    """Keep the received file `source_path` as `upload`'s (moved, or copied across filesystems), read-only;
    with object storage, as the object `uploads/<id>` (every host reads it)."""
    if settings.VIDEOAPI_STORAGE == "s3":
        storage.put_file(_key(upload), Path(source_path))
        Path(source_path).unlink(missing_ok=True)
        return
    target = _path(upload)
    try:
        os.replace(source_path, target)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        _copy(Path(source_path), target)
    os.chmod(target, 0o400)
    os.utime(target)  # its age is its time here (the sweep spares young files no row names yet)


def link_into(upload: Upload, directory: Path) -> Path:
    """`upload`'s file in `directory` under a new service-chosen name: a hard link, or a copy where the link
    fails (another filesystem, too many links); with object storage, a copy of the object. FileNotFoundError
    when the upload's file is gone."""
    target = Path(directory) / f"stored_{uuid.uuid4().hex[:16]}.bin"
    if settings.VIDEOAPI_STORAGE == "s3":
        try:
            storage.get_file(_key(upload), target)
        except BaseException:
            target.unlink(missing_ok=True)
            raise
        os.chmod(target, 0o400)
        return target
    source = _path(upload)
    try:
        os.link(source, target, follow_symlinks=False)
    except OSError as exc:
        if exc.errno == errno.ENOENT or not source.exists():
            raise FileNotFoundError(errno.ENOENT, "the upload's file is gone") from exc
        _copy(source, target)
        os.chmod(target, 0o400)
    return target


def discard(upload: Upload):
    """Delete `upload`'s file (none is fine: deleting is idempotent)."""
    if settings.VIDEOAPI_STORAGE == "s3":
        storage.delete(_key(upload))
        return
    try:
        _path(upload).unlink()
    except FileNotFoundError:
        pass


def _row_deleted(sender, instance, **kwargs):
    try:
        discard(instance)
    except OSError as exc:  # the row is gone: the sweep deletes the orphaned file later
        logger.error("event=upload_file_not_deleted upload_id=%s error=%s", instance.pk, exc)


post_delete.connect(_row_deleted, sender=Upload, dispatch_uid="renders.uploads_store.discard")


# ---- what a file is ------------------------------------------------------------------------------------


def identify(path: Path, field: str = FIELD) -> tuple[str, dict]:
    """(kind, what probing found) of a file, by its content; the probes' own errors otherwise (415 what is none
    of the kinds, 422 a damaged one, 400 one over a limit or captions with a wrong line)."""
    demuxer = sniff(path)
    if demuxer in IMAGE_DEMUXERS:
        return Upload.Kind.IMAGE, probe_image(path, field).summary()
    if demuxer in VIDEO_DEMUXERS:
        try:
            return Upload.Kind.VIDEO, probe_video(path, field).summary()
        except UnsupportedMedia:  # a container with no picture: its sound, if it has one
            return Upload.Kind.AUDIO, probe_audio(path, field).summary()
    if demuxer in AUDIO_DEMUXERS:
        return Upload.Kind.AUDIO, probe_audio(path, field).summary()
    if path.stat().st_size == 0:
        raise UnsupportedMedia(f"{field}: the file is empty", fields={field: ["the file is empty"]})
    with open(path, "rb") as handle:
        data = handle.read(captions.MAX_BYTES + 1)
    try:
        kind, cues = captions.parse(data)
    except captions.CaptionError as exc:
        if data.removeprefix(b"\xef\xbb\xbf").startswith(b"WEBVTT") or b"-->" in data:
            raise invalid(field, str(exc)) from None  # captions with a fault: its line, as a render says
        raise UnsupportedMedia(f"{field}: {NOT_MEDIA}", fields={field: [NOT_MEDIA]}) from None
    return Upload.Kind.CAPTIONS, {"format": kind, "size": len(data), "cues": len(cues),
                                  "duration": round(cues[-1].end, 3) if cues else 0.0}


def safe_name(raw) -> str:
    """The client's file name as shown back (uploads.clean_basename), at most 100 characters, its extension
    kept. Never used as a path."""
    name = clean_basename(raw)
    if len(name) > 100:
        stem, dot, ext = name.rpartition(".")
        name = f"{trim_name(stem[:99 - len(ext)])}.{ext}" if dot and stem and len(ext) <= 10 else trim_name(name[:100])
    return name


# ---- a client's uploads --------------------------------------------------------------------------------


def live(owner: str):
    """`owner`'s uploads not yet expired."""
    return Upload.objects.filter(owner=owner, expires_at__gt=timezone.now())


def live_bytes(owner: str) -> int:
    return live(owner).aggregate(total=Sum("bytes"))["total"] or 0


def over_quota(total: int) -> InsufficientStorage:
    limit = settings.VIDEOAPI_MAX_UPLOADS_BYTES
    message = (f"this client's stored uploads would take {total} bytes; at most {limit} bytes are kept for one "
               "client (VIDEOAPI_MAX_UPLOADS_BYTES): delete some, or wait for them to expire")
    return InsufficientStorage(message, fields={FIELD: [message]})


def the_file(data, field: str = FIELD) -> WorkspaceFile:
    """The one file of the form, in `field`; 400 naming what else was sent."""
    others = sorted(str(key) for key in data if key != field)
    if others:
        raise InvalidInput(f"{others[0]}: unknown field (send one file in `{field}`)",
                           fields={key: ["unknown field"] for key in others})
    values = data.getlist(field) if hasattr(data, "getlist") else [data.get(field)]
    if not values or values == [None]:
        raise invalid(field, "This field is required.")
    if len(values) > 1:
        raise invalid(field, "send one file")
    if not isinstance(values[0], WorkspaceFile):
        raise invalid(field, "must be an uploaded file")
    return values[0]


def receive(request, owner: str) -> Upload:
    """Store the file of a POST /api/uploads request for `owner`: streamed into a workspace as a render's
    upload is, probed, moved out; the workspace is deleted whatever happens. Refused past the client's
    quota (507) before the body is read when its declared length already says so."""
    limit = settings.VIDEOAPI_MAX_UPLOADS_BYTES
    used = live_bytes(owner)
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if used + max(declared - FORM_SLACK, 1) > limit:
        raise over_quota(used + max(declared - FORM_SLACK, 1))
    workspace = Workspace.create("upload", uuid.uuid4())
    data = None
    try:
        try:
            data = Receipt(workspace).read(request)
        except PayloadTooLarge as exc:
            exc.fields = exc.fields or {FIELD: [str(exc.detail)]}
            raise
        received = the_file(data)
        path = Path(received.path)
        kind, media = identify(path)
        size = path.stat().st_size
        if used + size > limit:
            raise over_quota(used + size)
        now = timezone.now()
        upload = Upload(owner=owner, kind=kind, filename=safe_name(received.name), bytes=size, media=media,
                        created_at=now, expires_at=now + timedelta(seconds=settings.VIDEOAPI_UPLOAD_TTL))
        received.close()
        store(upload, path)
        try:
            upload.save(force_insert=True)
        except BaseException:
            discard(upload)
            raise
        total = live_bytes(owner)  # counted again with this one in: of two racing uploads, one sees both
        if total > limit:
            upload.delete()
            raise over_quota(total)
        logger.info("event=upload_stored upload_id=%s kind=%s bytes=%s", upload.pk, kind, size)
        return upload
    finally:
        for value in (data.values() if data is not None else ()):
            if isinstance(value, WorkspaceFile):
                value.close()
        try:
            workspace.delete()
        except (CleanupError, OSError) as exc:  # the sweep deletes it later
            logger.error("event=cleanup_failed path=%s error=%s", workspace.path, exc)


# ---- renders using them ------------------------------------------------------------------------------


def find_upload(ref, owner: str, field: str) -> Upload:
    """The live upload `ref` ("upload:<id>") of `owner`; 400 naming `field` ("no such upload") for anything
    else: unknown, another client's, expired, or no reference at all."""
    refused = invalid(field, "no such upload")
    if not isinstance(ref, str) or not ref.startswith(REFERENCE):
        raise refused
    try:
        upload_id = uuid.UUID(ref[len(REFERENCE):])
    except ValueError:
        raise refused from None
    upload = live(owner).filter(pk=upload_id).first()
    if upload is None:
        raise refused
    return upload


def resolve_upload(ref: str, owner: str, directory: Path, field: str) -> Path:
    """The file of upload `ref` of `owner`, linked into `directory` (a render's workspace) under a name the
    service chooses; 400 naming `field` ("no such upload") as find_upload says, or when its file is gone."""
    upload = find_upload(ref, owner, field)
    try:
        return link_into(upload, directory)
    except FileNotFoundError:
        raise invalid(field, "no such upload") from None


# ---- the sweep's rule --------------------------------------------------------------------------------


def expire(now: datetime | None = None, grace: float = 0.0, dry_run: bool = False) -> list[str]:
    """Delete the uploads past their `expires_at` (their rows, whose receiver deletes the files), and files
    of this host's uploads directory older than `grace` seconds that no row names (their row deleted by
    another host, or a request that died between the file and its row); returns what was (would be) deleted."""
    now = now or timezone.now()
    deleted = []
    expired = list(Upload.objects.filter(expires_at__lte=now).values_list("pk", flat=True))
    for start in range(0, len(expired), 500):
        batch = expired[start:start + 500]
        if not dry_run:
            Upload.objects.filter(pk__in=batch, expires_at__lte=now).delete()
        deleted += [str(pk) for pk in batch]
    if settings.VIDEOAPI_STORAGE == "s3":  # objects of no row, older than the grace
        for key in storage.older_than("uploads/", grace):
            name = key.rsplit("/", 1)[1]
            if name in deleted or Upload.objects.filter(pk=_uuid_or_none(name)).exists():
                continue
            if not dry_run:
                storage.delete(key)
            deleted.append(name)
        return deleted
    root = temp_root() / UPLOADS_DIR
    if not root.is_dir():
        return deleted
    names = {}
    for entry in os.scandir(root):
        try:
            names[str(uuid.UUID(entry.name))] = entry
        except ValueError:
            continue  # not named by the service: not its to delete
    known = {str(pk) for pk in Upload.objects.filter(pk__in=list(names)).values_list("pk", flat=True)}
    for name, entry in sorted(names.items()):
        if name in known or name in deleted:
            continue
        try:
            if now.timestamp() - entry.stat(follow_symlinks=False).st_mtime < grace:
                continue
            if not dry_run:
                os.unlink(entry.path)
        except FileNotFoundError:
            continue
        deleted.append(name)
    return deleted


def _uuid_or_none(name: str):
    try:
        return uuid.UUID(name)
    except ValueError:
        return None
