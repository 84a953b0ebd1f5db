"""Render slots: at most VIDEOAPI_MAX_CONCURRENT_RENDERS FFmpeg runs per host.

A slot is an exclusive ``flock`` on one of N files in ``<temp root>/.slots``.
That is shared by every worker process on the host, needs no server, and a
slot held by a worker that dies is released by the kernel with its file
descriptors, so no counter can get stuck.

A synchronous request that has to wait for a slot says so with a locked
``wait-*`` file beside them, and the job worker takes no slot while one
exists: a client holding a connection open goes before a job, which waits
anyway (without this, the worker, woken the moment a job frees a slot, would
take it before a request polling every POLL_SECONDS could).
"""

import contextlib
import fcntl
import os
import random
import time
import uuid

from django.conf import settings

from renders.errors import Busy
from renders.lifecycle.locks import is_held, try_lock
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
        fd = try_lock(directory / f"slot-{index}", create=True)
        if fd is not None:
            return fd
    return None


@contextlib.contextmanager
def render_slot(timeout=None):
    """Hold one render slot for the duration of the block, or raise Busy."""
    count = settings.VIDEOAPI_MAX_CONCURRENT_RENDERS
    timeout = settings.VIDEOAPI_SLOT_WAIT_TIMEOUT if timeout is None else timeout
    deadline = time.monotonic() + timeout
    fd = _try_take(count)
    if fd is None:
        with _waiting():
            while fd is None:
                if time.monotonic() >= deadline:
                    raise Busy(headers={"Retry-After": str(max(1, round(timeout / 2) or 1))})
                time.sleep(POLL_SECONDS)
                fd = _try_take(count)
    try:
        yield
    finally:
        os.close(fd)


@contextlib.contextmanager
def _waiting():
    """This request waits for a slot: a `wait-*` file locked for as long (its lock dies with the process)."""
    path = slot_dir() / f"wait-{uuid.uuid4().hex}"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        path.unlink(missing_ok=True)
        os.close(fd)


def requests_waiting() -> bool:
    """Whether a synchronous request on this host waits for a slot (a dead one's file is removed)."""
    directory = slot_dir()
    for name in os.listdir(directory):
        if not name.startswith("wait-"):
            continue
        try:
            fd = try_lock(directory / name)
        except FileNotFoundError:
            continue
        if fd is None:
            return True
        (directory / name).unlink(missing_ok=True)  # its request died waiting
        os.close(fd)
    return False


def free_slot() -> int | None:
    """A render slot for a job if one is free at once and no synchronous request waits for one (its
    descriptor: closing it frees the slot), else None.

    The job worker takes a slot before it claims a job, so a claimed job never
    waits for one and FFmpeg runs never outnumber the slots.
    """
    if requests_waiting():
        return None
    return _try_take(settings.VIDEOAPI_MAX_CONCURRENT_RENDERS)


def slots_in_use():
    directory = slot_dir()
    return sum(is_held(directory / f"slot-{index}", create=True)
               for index in range(settings.VIDEOAPI_MAX_CONCURRENT_RENDERS))
