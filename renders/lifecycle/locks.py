"""Opening a lock file and trying its flock without waiting: how slots, workspaces and the sweep take locks.

A flock is held by the open file: closing the descriptor releases it, and the
kernel releases it when its process dies, so no lock outlives its holder.
"""

import fcntl
import os
import time


def try_lock(path, *, shared: bool = False, create: bool = False, wait: float = 0.0) -> int | None:
    """A descriptor of `path` holding its flock (exclusive, or `shared`), or None while another process holds
    it (after trying for up to `wait` seconds). Closing the descriptor releases the lock.

    `create` makes a missing file (mode 0600); otherwise a missing file raises FileNotFoundError. A symlink
    is never followed (OSError ELOOP).
    """
    flags = os.O_RDWR | os.O_CREAT if create else os.O_RDONLY
    fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    deadline = time.monotonic() + wait
    try:
        while True:
            try:
                fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
                return fd
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    return None
                time.sleep(0.02)
    except BaseException:
        os.close(fd)
        raise


def is_held(path, *, create: bool = False) -> bool:
    """Whether another process holds `path`'s lock (it is taken and released at once to find out)."""
    fd = try_lock(path, create=create)
    if fd is None:
        return True
    os.close(fd)
    return False
