"""videoapi/gunicorn.conf.py's hooks, run as gunicorn runs them: the master's startup sweep, and the metrics
files it clears (a live process's kept)."""

from pathlib import Path

import pytest

from renders.models import RenderLog

from ..housekeeping import make_leftover

pytestmark = pytest.mark.django_db


@pytest.mark.django_db(transaction=True)  # the hook closes database connections before forking
def test_startup_sweep_in_gunicorn_config(monkeypatch, tmp_path):
    """The gunicorn master sweeps once before starting workers (and resets its metrics dir)."""
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "metrics"))
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "counter_123.db").write_bytes(b"stale")  # pid 123: not a live process here
    assert not Path("/proc/123").exists()
    render_id, path = make_leftover()
    namespace = {}
    source = (Path(__file__).resolve().parents[2] / "videoapi" / "gunicorn.conf.py").read_text()
    exec(compile(source, "gunicorn.conf.py", "exec"), namespace)

    class Server:
        class log:
            messages = []

            @classmethod
            def info(cls, *args):
                cls.messages.append(args[0] % args[1:])

    namespace["on_starting"](Server)
    assert not path.exists()
    assert "deleted 1 workspace" in Server.log.messages[0]
    assert not (tmp_path / "metrics" / "counter_123.db").exists()  # a dead process's (this test's own may be there)
    assert RenderLog.objects.get(id=render_id).cleanup_status == "swept"


def test_gunicorn_start_keeps_the_metrics_of_live_processes(tmp_path):
    """scripts/serve starts the render worker before gunicorn: gunicorn's fresh start must not drop its counts."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    for pid in (os.getppid(), gone.pid):
        (tmp_path / f"counter_{pid}.db").write_bytes(b"x")
    (tmp_path / "junk").write_bytes(b"x")
    namespace = {}
    source = (Path(__file__).resolve().parents[2] / "videoapi" / "gunicorn.conf.py").read_text()
    exec(compile(source, "gunicorn.conf.py", "exec"), namespace)
    namespace["clear_metrics"](str(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"counter_{os.getppid()}.db"]
