"""The FFmpeg runner: the only code in the project that starts a process.

- argument lists only, never a shell;
- ``-nostdin``, its own session/process group, and (on Linux) a parent-death
  signal, so FFmpeg dies with the worker that started it;
- a timeout that kills the whole process group;
- stderr goes to a file in the workspace and only a bounded tail is kept;
- the working directory is the render's workspace, so every file name in
  the argument list is a relative name the service chose.
"""

import ctypes
import functools
import logging
import os
import select
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

logger = logging.getLogger("renders.ffmpeg")

STDERR_TAIL_BYTES = 16 * 1024  # what a run keeps of its stderr, and what a RenderLog keeps of all its runs
PR_SET_PDEATHSIG = 1


@functools.cache
def _binary_for(configured: str) -> str:
    if configured:
        return configured
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def ffmpeg_binary() -> str:
    return _binary_for(settings.VIDEOAPI_FFMPEG)


@dataclass
class FFmpegResult:
    argv: list[str]
    returncode: int | None
    stderr_tail: str
    timed_out: bool
    seconds: float

    @property
    def ok(self) -> bool:
        return not self.timed_out and self.returncode == 0


try:
    _LIBC = ctypes.CDLL("libc.so.6", use_errno=True)  # loaded once here: the forked child only calls prctl
except OSError:  # not glibc Linux: no parent-death signal
    _LIBC = None


def _die_with_parent():  # runs in the child between fork and exec
    _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _tail(path: Path, limit: int = STDERR_TAIL_BYTES) -> str:
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - limit))
            data = handle.read()
    except FileNotFoundError:
        return ""
    text = data.decode("utf-8", "replace")
    if size > limit:
        text = "[...]\n" + text.split("\n", 1)[-1]
    return text


def run(args: list[str], *, cwd: Path, timeout: float | None = None, log_name: str = "ffmpeg.log") -> FFmpegResult:
    """Run ffmpeg with ``args`` in ``cwd``; never raises for FFmpeg's own failures."""
    timeout = settings.VIDEOAPI_FFMPEG_TIMEOUT if timeout is None else timeout
    argv = [ffmpeg_binary(), "-hide_banner", "-nostdin", "-nostats", "-loglevel", "warning", "-y", *args]
    log_path = Path(cwd) / log_name  # stderr goes to a file in cwd (a workspace, or make_samples' folder)
    started = time.monotonic()
    timed_out = False
    with open(log_path, "wb") as stderr:
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=True,
            preexec_fn=_die_with_parent if _LIBC is not None else None,
            close_fds=True,
        )
        try:
            _wait(proc, timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill_group(proc)
        except BaseException:
            _kill_group(proc)
            raise
    seconds = time.monotonic() - started
    result = FFmpegResult(argv, proc.returncode, _tail(log_path), timed_out, seconds)
    log_path.unlink(missing_ok=True)
    logger.debug("event=ffmpeg exit=%s timed_out=%s seconds=%.2f argv=%s stderr=%r", proc.returncode, timed_out,
                 seconds, argv, result.stderr_tail)
    return result


def _wait(proc: subprocess.Popen, timeout: float | None):
    """Wait for FFmpeg to exit, waking the moment it does.

    `Popen.wait(timeout=...)` polls with sleeps of up to 50 ms, which every
    render would pay after FFmpeg has finished; a pidfd (Linux 5.3+) becomes
    readable exactly when the process exits.
    """
    try:
        pidfd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):  # not Linux, or an old kernel
        proc.wait(timeout=timeout)
        return
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        if not poller.poll(None if timeout is None else max(0, int(timeout * 1000))):
            raise subprocess.TimeoutExpired(proc.args, timeout)
    finally:
        os.close(pidfd)
    proc.wait()


def _kill_group(proc: subprocess.Popen):
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()
