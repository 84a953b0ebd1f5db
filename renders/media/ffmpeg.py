"""The FFmpeg runner: the only code in the project that starts a process.

- argument lists only, never a shell;
- ``-nostdin``, its own session/process group, and (on Linux) a parent-death
  signal, so FFmpeg dies with the worker that started it;
- a timeout that kills the whole process group;
- stderr goes to a file in the workspace and only a bounded tail is kept;
- the working directory is the render's workspace, so every file name in
  the argument list is a relative name the service chose;
- for a job, FFmpeg's own progress report (``-progress``, a small file in the
  workspace) is read between waits and handed to a `watch` callback, which
  can also stop the run (a cancelled or lost job).
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
PROGRESS_PERIOD = 0.5  # seconds between FFmpeg's progress reports, and between calls of a run's `watch`
PROGRESS_NAME = "ffmpeg-progress.txt"


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
    stopped: bool = False  # its `watch` asked for it to stop

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


class Progress:
    """FFmpeg's progress report, read as it grows: how far the output has got, and how fast."""

    def __init__(self, path: Path):
        self.path = path
        self._offset = 0
        self._partial = b""
        self.out_seconds: float | None = None
        self.speed: float | None = None

    def read(self):
        try:
            with open(self.path, "rb") as handle:
                handle.seek(self._offset)
                data = handle.read()
        except FileNotFoundError:
            return
        self._offset += len(data)
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        for line in lines:
            key, _, value = line.decode("ascii", "replace").strip().partition("=")
            try:
                if key == "out_time_us" and value != "N/A":
                    self.out_seconds = max(0.0, int(value) / 1e6)
                elif key == "speed" and value.endswith("x"):
                    self.speed = float(value[:-1])
            except ValueError:
                continue


class _Stop(Exception):
    pass


def run(args: list[str], *, cwd: Path, timeout: float | None = None, log_name: str = "ffmpeg.log",
        watch=None) -> FFmpegResult:
    """Run ffmpeg with ``args`` in ``cwd``; never raises for FFmpeg's own failures.

    With `watch`, FFmpeg reports its progress and `watch(progress)` is called
    every PROGRESS_PERIOD while it runs; when it returns False the run is
    killed and its result says `stopped`.
    """
    timeout = settings.VIDEOAPI_FFMPEG_TIMEOUT if timeout is None else timeout
    argv = [ffmpeg_binary(), "-hide_banner", "-nostdin", "-nostats", "-loglevel", "warning", "-y"]
    tick, progress_path = None, None
    if watch is not None:
        progress_path = Path(cwd) / PROGRESS_NAME
        argv += ["-progress", PROGRESS_NAME, "-stats_period", f"{PROGRESS_PERIOD:g}"]
        progress = Progress(progress_path)

        def tick():
            progress.read()
            if watch(progress) is False:
                raise _Stop
    argv += args
    log_path = Path(cwd) / log_name  # stderr goes to a file in cwd (a workspace, or make_samples' folder)
    started = time.monotonic()
    timed_out = stopped = False
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
            _wait(proc, timeout, tick)
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill_group(proc)
        except _Stop:
            stopped = True
            _kill_group(proc)
        except BaseException:
            _kill_group(proc)
            raise
    seconds = time.monotonic() - started
    result = FFmpegResult(argv, proc.returncode, _tail(log_path), timed_out, seconds, stopped)
    log_path.unlink(missing_ok=True)
    if progress_path is not None:
        progress_path.unlink(missing_ok=True)
    logger.debug("event=ffmpeg exit=%s timed_out=%s seconds=%.2f argv=%s stderr=%r", proc.returncode, timed_out,
                 seconds, argv, result.stderr_tail)
    return result


def _wait(proc: subprocess.Popen, timeout: float | None, tick=None):
    """Wait for FFmpeg to exit, waking the moment it does (and every PROGRESS_PERIOD for `tick`).

    `Popen.wait(timeout=...)` polls with sleeps of up to 50 ms, which every
    render would pay after FFmpeg has finished; a pidfd (Linux 5.3+) becomes
    readable exactly when the process exits.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        pidfd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):  # not Linux, or an old kernel
        pidfd = None
    try:
        while True:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            if tick is None:
                wait = remaining
            else:
                wait = PROGRESS_PERIOD if remaining is None else min(PROGRESS_PERIOD, remaining)
            if _exited(proc, pidfd, wait):
                break
            if remaining is not None and remaining <= wait:
                raise subprocess.TimeoutExpired(proc.args, timeout)
            tick()
    finally:
        if pidfd is not None:
            os.close(pidfd)
    proc.wait()


def _exited(proc: subprocess.Popen, pidfd: int | None, seconds: float | None) -> bool:
    """Whether FFmpeg exits within `seconds` (None: wait for ever)."""
    if pidfd is None:
        try:
            proc.wait(timeout=seconds)
            return True
        except subprocess.TimeoutExpired:
            return False
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    return bool(poller.poll(None if seconds is None else max(0, int(seconds * 1000))))


def _kill_group(proc: subprocess.Popen):
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()
