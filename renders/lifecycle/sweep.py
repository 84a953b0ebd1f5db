"""Removing what dead workers left behind under the temp root.

A workspace whose lock nobody holds belongs to a finished or dead render.
The sweep takes that lock itself (so two sweeps, or a sweep and a render,
never race), kills any process still working inside it (an FFmpeg that
outlived its worker), deletes it and marks its RenderLog `swept`. Each host
sweeps its own temp root and marks only RenderLogs it recorded itself
(`host` = VIDEOAPI_HOST_ID), so hosts sharing one database never mark each
other's renders. Locked workspaces are never touched, however old; entries
not named like a workspace, and everything outside the root, are never
touched at all. Stored uploads (`uploads/`, uploads_store.py) go by their
own rule, `uploads_store.expire`: past their `expires_at`. The admin lists
the temp root and retries a cleanup with the same code (`leftovers`, `remove`).
"""

import logging
import os
import signal
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from renders.lifecycle import jobs, objects, uploads_store
from renders.lifecycle.locks import try_lock
from renders.lifecycle.workspace import (
    JOB_MARKER,
    LOCK_NAME,
    NAME_RE,
    CleanupError,
    dir_size,
    is_locked,
    is_workspace,
    remove_tree,
    temp_root,
)
from renders.models import RenderLog

logger = logging.getLogger("renders.sweep")


@dataclass
class SweepReport:
    scanned: int = 0
    deleted: list = field(default_factory=list)
    bytes_freed: int = 0
    skipped_live: list = field(default_factory=list)
    skipped_young: list = field(default_factory=list)
    kept_jobs: list = field(default_factory=list)  # queued jobs, results not yet downloaded
    long_locked: list = field(default_factory=list)
    ignored: list = field(default_factory=list)
    killed_processes: list = field(default_factory=list)
    uploads_deleted: list = field(default_factory=list)  # stored uploads expired (and files no upload names)
    objects_deleted: list = field(default_factory=list)  # job objects no live job needs (object storage)
    errors: dict = field(default_factory=dict)
    dry_run: bool = False

    def as_dict(self):
        return asdict(self)


def _take_lock(path: Path):
    """The workspace's lock if nobody holds it, else None. A missing lock file counts as free (-1)."""
    try:
        return try_lock(path / LOCK_NAME)
    except (FileNotFoundError, NotADirectoryError):  # gone, or a file named like a workspace
        return -1


def processes_inside(path: Path) -> list[int]:
    """PIDs whose working directory is `path` (Linux /proc); [] elsewhere."""
    found = []
    target = str(path)
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if not entry.isdigit():
            continue
        try:
            if os.readlink(f"/proc/{entry}/cwd").removesuffix(" (deleted)") == target:
                found.append(int(entry))
        except OSError:
            continue
    return found


def entries(root: Path) -> list:
    """The temp root's entries by name, the render slots' and the stored uploads' directories aside."""
    return [entry for entry in sorted(os.scandir(root), key=lambda e: e.name)
            if entry.name not in (".slots", uploads_store.UPLOADS_DIR)]


def leftovers() -> list[dict]:
    """The workspaces under this host's temp root now: name, bytes, and whether a live render holds each."""
    root = temp_root()
    return [{"name": entry.name, "bytes": dir_size(root / entry.name), "live": is_locked(root / entry.name)}
            for entry in entries(root) if NAME_RE.match(entry.name) and not entry.is_symlink()]


def remove(path: Path) -> bool:
    """Delete one workspace now, whatever its age, as the sweep does: under its lock, after killing what
    still runs inside. False (nothing touched) while a live render holds it; CleanupError or OSError when
    it cannot be deleted."""
    path = Path(os.path.abspath(path))
    if not is_workspace(path):
        raise CleanupError(f"refusing to delete {path}: not a workspace under the temp root")
    lock = -1 if path.is_symlink() else _take_lock(path)
    if lock is None:
        return False
    try:
        _remove_held(path, [])
    finally:
        if lock != -1:
            os.close(lock)
    return True


def _remove_held(path: Path, killed: list):
    """Kill the processes still inside a workspace whose lock the caller holds (their PIDs added to `killed`),
    then delete it."""
    for pid in processes_inside(path):
        try:
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
            logger.warning("event=orphan_killed pid=%s path=%s", pid, path)
        except ProcessLookupError:
            pass
    remove_tree(path)


def sweep(grace: float | None = None, dry_run: bool = False, now: float | None = None,
          jobs_only: bool = False) -> SweepReport:
    """Sweep this host's temp root. A job's workspace (it holds `.job`) is judged by its RenderLog, not its
    age (jobs.sweep_rule); `jobs_only` looks at nothing else (the render worker's housekeeping)."""
    grace = settings.VIDEOAPI_SWEEP_GRACE if grace is None else grace
    # longer than any render may hold its lock (a job's limit is the longer one), with a wide margin
    long_locked_after = max(settings.VIDEOAPI_FFMPEG_TIMEOUT, settings.VIDEOAPI_JOB_FFMPEG_TIMEOUT) * 2 + 3600
    now = time.time() if now is None else now
    root = temp_root()
    report = SweepReport(dry_run=dry_run)
    if not dry_run:
        try:
            jobs.reap()  # what time alone decides (lost workers, expired results), before the disk
        # the database may be down, whatever its error: the disk is still swept (job workspaces kept)
        except Exception as exc:  # noqa: BLE001
            report.errors["database"] = str(exc)[:300]
            logger.error("event=reap_failed error=%s", exc)
    if not jobs_only:
        try:
            report.uploads_deleted = uploads_store.expire(datetime.fromtimestamp(now, tz=UTC), grace, dry_run)
        except Exception as exc:  # noqa: BLE001  (as above: the database may be down; nothing is deleted on a guess)
            report.errors["uploads"] = str(exc)[:300]
            logger.error("event=uploads_expiry_failed error=%s", exc)
        if report.uploads_deleted:
            logger.info("event=uploads_expired count=%s", len(report.uploads_deleted))
        if objects.enabled():
            try:
                report.objects_deleted = objects.orphans(grace, delete=not dry_run)
            except Exception as exc:  # noqa: BLE001  (the store or the database away: nothing deleted on a guess)
                report.errors["objects"] = str(exc)[:300]
                logger.error("event=objects_sweep_failed error=%s", exc)
    for entry in entries(root):
        match = NAME_RE.match(entry.name)
        path = root / entry.name
        is_job = bool(match) and not entry.is_symlink() and os.path.lexists(path / JOB_MARKER)
        if jobs_only and not is_job:
            continue
        report.scanned += 1
        if not match:
            report.ignored.append(entry.name)
            continue
        try:
            age = now - entry.stat(follow_symlinks=False).st_mtime
        except FileNotFoundError:
            continue  # deleted meanwhile by its owner
        if age < grace and not is_job:
            report.skipped_young.append(entry.name)
            continue
        lock = -1 if entry.is_symlink() else _take_lock(path)
        if lock is None:
            report.skipped_live.append(entry.name)
            if age > long_locked_after:
                report.long_locked.append(entry.name)
                logger.warning("event=long_locked path=%s age=%.0f", path, age)
            continue
        try:
            # read again under the lock: a request may have handed its workspace to a job since the first look
            is_job = is_job or (not entry.is_symlink() and os.path.lexists(path / JOB_MARKER))
            if is_job and _keep_job(match["render_id"], dry_run):
                report.kept_jobs.append(entry.name)
                continue
            size = 0 if entry.is_symlink() else dir_size(path)
            if dry_run:
                report.deleted.append(entry.name)
                report.bytes_freed += size
                continue
            _remove_held(path, report.killed_processes)
        except (CleanupError, OSError) as exc:
            report.errors[entry.name] = str(exc)
            logger.error("event=sweep_failed path=%s error=%s", path, exc)
            continue
        finally:
            if lock not in (None, -1):
                os.close(lock)
        report.deleted.append(entry.name)
        report.bytes_freed += size
        _mark_swept(match["render_id"])
        logger.info("event=swept render_id=%s path=%s bytes=%s", match["render_id"], path, size)
    return report


def _keep_job(render_id: str, dry_run: bool) -> bool:
    """Whether a job's unlocked workspace stays, by its RenderLog (the caller holds its lock). When the
    database cannot say, it stays: the sweep never deletes what it cannot classify."""
    try:
        log = RenderLog.objects.filter(id=render_id, host=settings.VIDEOAPI_HOST_ID).first()
        return jobs.sweep_rule(log, record=not dry_run) == "keep"
    except Exception as exc:  # noqa: BLE001  (anything unclassifiable is kept: the sweep never deletes on a guess)
        logger.error("event=job_unclassified render_id=%s error=%s", render_id, exc)
        return True


def _mark_swept(render_id: str):
    from renders import metrics

    metrics.cleanup("swept")
    # Only this host's renders: another host's RenderLog is that host's to mark.
    log = RenderLog.objects.filter(id=render_id, host=settings.VIDEOAPI_HOST_ID).first()
    if log is None:
        return
    fields = {"cleanup_status": RenderLog.Cleanup.SWEPT, "cleanup_at": timezone.now()}
    if log.status in (RenderLog.Status.RECEIVED, RenderLog.Status.RENDERING):
        fields.update(status=RenderLog.Status.FAILED, error_code="worker_lost",
                      error_message="the worker handling this render died; its workspace was swept")
    log.record(**fields)
