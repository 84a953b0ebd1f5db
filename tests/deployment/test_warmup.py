"""The warm-up: gunicorn's master loads and warms the app before it listens; workers fork from it ready.

A client cannot tell a booting worker from a ready one: it sends as soon as
the port accepts. So what a first request needs must be in every worker's
memory by then, after a start and after a reload (HUP). Checked from outside,
through the log's order and each worker's memory map (/proc/<pid>/maps):
PyAV's FFmpeg libraries and the template fonts are mapped the moment the
worker exists.
"""

import os
import signal
from pathlib import Path

import pytest

from renders.media import fonts

from ..conftest import wait_for
from ..server import gunicorn, request

pytestmark = [pytest.mark.server, pytest.mark.django_db(transaction=True)]


def log_of(address):
    return Path(os.environ["VIDEOAPI_TEST_DIR"]) / f"gunicorn-{address.split(':')[1]}.log"


def forked_worker(proc, not_in=()):
    """A worker's pid as soon as the master has forked it (one not in `not_in`)."""

    def find():
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        return next((int(pid) for pid in children if int(pid) not in not_in), None)

    return wait_for(find, seconds=30)


def assert_loaded(pid):
    """PyAV's FFmpeg libraries and the default font are in the worker's memory before it has served anything."""
    maps = Path(f"/proc/{pid}/maps").read_text()
    assert "libavcodec" in maps, "PyAV is not loaded"
    assert fonts.primary_path() in maps, "the default font is not loaded"


def test_workers_fork_warm_from_a_master_that_warmed_up_before_listening():
    with gunicorn(workers=1) as (address, proc):
        # the port accepts now: whatever the log says at this moment happened before
        lines = log_of(address).read_text().splitlines()
        warmed = [i for i, line in enumerate(lines) if "event=warmed" in line]
        listening = [i for i, line in enumerate(lines) if "Listening at" in line]
        assert len(warmed) == 1 and listening and warmed[0] < listening[0], "\n".join(lines[-30:])
        assert f"pid={proc.pid} " in lines[warmed[0]]  # in the master, once for every worker
        first = forked_worker(proc)
        assert_loaded(first)
        # a reload forks new workers from the same warm master
        os.kill(proc.pid, signal.SIGHUP)
        second = forked_worker(proc, not_in={first})
        assert_loaded(second)
        status, _headers, _body = request(address, "/api/trim", {"video": "not-a-file", "start": "0"}, None)
        assert status == 401
    text = log_of(address).read_text()
    assert text.count("event=warmed") == 1 and "warm-up failed" not in text


def test_warm_up_off_is_said_and_the_service_still_serves():
    """VIDEOAPI_WARM_WORKERS=0 (the benchmark's comparison) skips it and says so."""
    with gunicorn({"VIDEOAPI_WARM_WORKERS": "0"}, workers=1) as (address, _proc):
        status, _headers, _body = request(address, "/api/trim", {"video": "not-a-file", "start": "0"}, None)
    text = log_of(address).read_text()
    assert status == 401 and "warm-up off" in text and "event=warmed" not in text
