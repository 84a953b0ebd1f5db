"""Render slots: at most VIDEOAPI_MAX_CONCURRENT_RENDERS FFmpeg runs per host.

A slot is an exclusive ``flock`` on one of N files in ``<temp root>/.slots``.
That is shared by every worker process on the host, needs no server, and a
slot held by a worker that dies is released by the kernel with its file
descriptors, so no counter can get stuck.
"""

import contextlib
import fcntl
import os
import random
import time

from django.conf import settings

from renders.errors import Busy
from renders.lifecycle.workspace import temp_root

POLL_SECONDS = 0.05


def slot_dir():
    path = temp_root() / ".slots"
    path.mkdir(mode=0o700, exist_ok=True)
    return path


def _try_take(count):
    directory = slot_dir()
    order = list(range(count))
    random.shuffle(order)
    for index in order:
        fd = os.open(directory / f"slot-{index}", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        return fd
    return None


@contextlib.contextmanager
def render_slot(timeout=None):
    """Hold one render slot for the duration of the block, or raise Busy."""
    count = settings.VIDEOAPI_MAX_CONCURRENT_RENDERS
    timeout = settings.VIDEOAPI_QUEUE_TIMEOUT if timeout is None else timeout
    deadline = time.monotonic() + timeout
    while True:
        fd = _try_take(count)
        if fd is not None:
            break
        if time.monotonic() >= deadline:
            raise Busy(headers={"Retry-After": str(max(1, int(round(timeout / 2)) or 1))})
        time.sleep(POLL_SECONDS)
    try:
        yield
    finally:
        os.close(fd)


def free_slot() -> int | None:
    """A render slot if one is free at once (its descriptor: closing it frees the slot), else None.

    The job worker takes a slot before it claims a job, so a claimed job never
    waits for one and FFmpeg runs never outnumber the slots.
    """
    return _try_take(settings.VIDEOAPI_MAX_CONCURRENT_RENDERS)


def slots_in_use():
    count = settings.VIDEOAPI_MAX_CONCURRENT_RENDERS
    used = 0
    for index in range(count):
        path = slot_dir() / f"slot-{index}"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(fd, fcntl.LOCK_UN)
        except BlockingIOError:
            used += 1
        finally:
            os.close(fd)
    return used
