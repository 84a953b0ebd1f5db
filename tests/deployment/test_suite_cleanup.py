"""The test suite keeps the cleanup promise too: a run that is stopped (SIGTERM: a CI timeout, `kill`) tears
down and removes its directory; a run that is killed outright takes its servers with it, and the next run
removes what it left (its directory, with any render workspace in it)."""

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from ..conftest import _processes_of, sweep_dead_runs, wait_for

ROOT = Path(__file__).resolve().parents[2]
# a test that starts a real gunicorn and render worker and renders for a few seconds
LONG_TEST = "tests/jobs/test_jobs.py::test_progress_rises_with_an_eta_then_reaches_one"


def dead_pid() -> int:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    return gone.pid


def test_the_next_run_removes_a_dead_runs_directory_and_stops_its_servers(tmp_path):
    dead = tmp_path / "videoapi-tests-dead"
    (dead / "renders" / "trim_881fbd2e-af8e-4347-9ae1-67ecea54ca8a").mkdir(parents=True)
    (dead / "renders" / "trim_881fbd2e-af8e-4347-9ae1-67ecea54ca8a" / ".lock").touch()
    (dead / ".owner").write_text(str(dead_pid()))
    server = subprocess.Popen(["sleep", "60"], env={**os.environ, "VIDEOAPI_TEST_DIR": str(dead)})
    alive = tmp_path / "videoapi-tests-alive"
    alive.mkdir()
    (alive / ".owner").write_text(str(os.getpid()))
    foreign = tmp_path / "videoapi-tests-foreign"  # no owner named: not ours to judge
    foreign.mkdir()
    try:
        assert sweep_dead_runs(tmp_path) == [dead]
        assert server.wait(timeout=10) == -signal.SIGKILL
        assert not dead.exists() and alive.exists() and foreign.exists()
    finally:
        server.kill()


def run_long_test(directory: Path):
    # a run of its own: none of this run's settings (its temp root, its database) carried over
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("VIDEOAPI_", "DJANGO_", "PROMETHEUS_")) and key != "DATABASE_URL"}
    env["VIDEOAPI_TEST_DIR"] = str(directory)
    child = subprocess.Popen([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", LONG_TEST], cwd=ROOT,
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    # rendering: its gunicorn and worker are up and a job holds a workspace
    assert wait_for(lambda: any((directory / "renders").glob("*_*")) or None, seconds=60), child.poll()
    return child


@pytest.mark.server
@pytest.mark.slow
def test_a_run_stopped_with_sigterm_tears_down_and_removes_its_directory():
    directory = Path(tempfile.mkdtemp(prefix="videoapi-tests-"))
    child = run_long_test(directory)
    child.send_signal(signal.SIGTERM)
    output = child.communicate(timeout=90)[0].decode(errors="replace")
    assert "KeyboardInterrupt" in output, output[-2000:]
    assert not directory.exists(), sorted(p.name for p in directory.rglob("*"))
    assert wait_for(lambda: _processes_of(directory) == [] or None, seconds=10), _processes_of(directory)


@pytest.mark.server
@pytest.mark.slow
def test_a_killed_runs_servers_stop_and_the_next_run_removes_what_it_left():
    directory = Path(tempfile.mkdtemp(prefix="videoapi-tests-"))
    child = run_long_test(directory)
    (directory / ".owner").write_text(str(child.pid))  # (it did not make the directory: it was given it)
    child.kill()
    child.communicate(timeout=30)
    # its gunicorn and render worker got SIGTERM from the kernel when it died, and stop
    assert wait_for(lambda: _processes_of(directory) == [] or None, seconds=60), _processes_of(directory)
    assert (directory / "test.sqlite3").exists()  # what the next run must remove
    assert directory in sweep_dead_runs(directory.parent)
    assert not directory.exists()
