"""A render's private temp directory: create, lock, name files, delete.

Layout: ``<VIDEOAPI_TEMP_ROOT>/<endpoint>_<render_id>/`` (mode 0700) with a
``.lock`` file on which the owning worker holds an exclusive ``flock`` for
as long as the render and its download live. The lock dies with the
process, so ``sweep_temp`` can tell a dead worker's leftovers (unlocked)
from a live render (locked) without any shared bookkeeping.
"""

import errno
import fcntl
import logging
import os
import re
import shutil
import stat
import sys
from pathlib import Path

from django.conf import settings

from renders.lifecycle.locks import is_held, try_lock

logger = logging.getLogger("renders.workspace")

LOCK_NAME = ".lock"
JOB_MARKER = ".job"  # a job's workspace: unlocked between request and worker, kept by its RenderLog's state
NAME_RE = re.compile(
    r"^(?P<endpoint>[a-z][a-z-]*)_(?P<render_id>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$")


class CleanupError(Exception):
    pass


def temp_root() -> Path:
    root = Path(settings.VIDEOAPI_TEMP_ROOT)
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    return root.resolve()


def workspace_path(endpoint: str, render_id) -> Path:
    """Where a render's workspace lives: `<temp root>/<endpoint>_<render id>` (what the sweep recognises)."""
    return temp_root() / f"{endpoint}_{render_id}"


def is_workspace(path: Path) -> bool:
    """Whether `path` (absolute) names a workspace: a direct child of the temp root, named like one."""
    return path.parent == temp_root() and bool(NAME_RE.match(path.name))


def free_bytes(path) -> int:
    return shutil.disk_usage(path).free


class Workspace:
    def __init__(self, path: Path, lock_fd: int | None):
        self.path = path
        self._lock_fd = lock_fd
        self._counter = 0
        self.deleted = False

    @classmethod
    def create(cls, endpoint: str, render_id) -> "Workspace":
        path = workspace_path(endpoint, render_id)
        if not NAME_RE.match(path.name):
            raise ValueError(f"bad workspace name {path.name!r}")
        os.mkdir(path, 0o700)  # fails if it exists: never adopt a directory
        try:
            fd = os.open(path / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BaseException:
            shutil.rmtree(path, ignore_errors=True)
            raise
        logger.debug("event=workspace_created render_id=%s path=%s", render_id, path)
        return cls(path, fd)

    @classmethod
    def adopt(cls, path: Path, *, shared: bool = False, wait: float = 0.0) -> "Workspace | None":
        """Take the lock of an existing workspace (a job's, handed over by its request): exclusive to run it,
        shared to read its result beside other downloads. Waits up to `wait` seconds for another holder; None
        when the workspace is gone or still held."""
        path = Path(path)
        if not is_workspace(path):
            raise ValueError(f"not a workspace: {path}")
        try:
            fd = try_lock(path / LOCK_NAME, shared=shared, wait=wait)
        except (FileNotFoundError, NotADirectoryError):
            return None
        if fd is None:
            return None
        if not (path / LOCK_NAME).exists():  # deleted between open and lock: nothing to adopt
            os.close(fd)
            return None
        workspace = cls(path, fd)
        workspace._counter = 1000  # names the job makes never meet the request's
        return workspace

    def try_exclusive(self) -> bool:
        """Turn a shared lock into an exclusive one if nobody else holds the workspace.

        On failure the lock is dropped (flock converts by unlocking first), so
        this is only for the end of a holder's use: delete if alone, else leave.
        """
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False

    def mark_job(self, render_id):
        """Say that this workspace outlives its request: the sweep asks the RenderLog before touching it."""
        (self.path / JOB_MARKER).write_text(str(render_id), encoding="ascii")

    def new_path(self, prefix: str, suffix: str) -> Path:
        """A fresh file name chosen by the service (never by a client)."""
        self._counter += 1
        return self.path / f"{prefix}_{self._counter}{suffix}"

    def release_lock(self):
        if self._lock_fd is not None:
            try:
                os.close(self._lock_fd)  # closing drops the flock
            finally:
                self._lock_fd = None

    def delete(self):
        """Delete the workspace; idempotent. Raises CleanupError on failure."""
        try:
            if not self.deleted:
                remove_tree(self.path)
                self.deleted = True
        finally:
            # The lock is dropped only after the files are gone, so a sweep
            # can never race a half-deleted live workspace.
            self.release_lock()

    def keep_only(self, name: str):
        """Delete everything but the file `name` (a job's result) and the workspace's own markers: a finished
        job's uploads and intermediate files are not kept for its download. Never follows a link."""
        for entry in os.scandir(self.path):
            if entry.name in (name, LOCK_NAME, JOB_MARKER):
                continue
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)


def is_locked(path: Path) -> bool:
    """True when some live process holds the workspace's lock."""
    try:
        return is_held(path / LOCK_NAME)
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return False
        raise


def remove_tree(path: Path):
    """Delete a workspace directory safely.

    Refuses anything that is not a direct child of the temp root named like
    a workspace, and never follows symlinks (a link inside is unlinked, not
    followed). A missing directory is success: deletion is idempotent.
    """
    root = temp_root()
    path = Path(os.path.abspath(path))
    if not is_workspace(path):
        raise CleanupError(f"refusing to delete {path}: not a workspace under the temp root")
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        # Something replaced the workspace with a link or a file: remove that
        # entry itself, never what it points at.
        os.unlink(path)
        return
    errors = []

    def onexc(func, target, exc):
        if isinstance(exc, FileNotFoundError):
            return
        errors.append(f"{func.__name__}({os.path.relpath(target, root)}): {exc.strerror or exc}")

    if sys.version_info >= (3, 12):
        shutil.rmtree(path, onexc=onexc)  # rmtree never follows symlinks
    else:
        shutil.rmtree(path, onerror=lambda func, target, info: onexc(func, target, info[1]))
    if errors or os.path.lexists(path):
        raise CleanupError("; ".join(errors) or "directory still exists")


def dir_size(path: Path) -> int:
    total = 0
    for dirpath, _dirnames, filenames in os.walk(path, followlinks=False):
        for name in filenames:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                pass
    return total
