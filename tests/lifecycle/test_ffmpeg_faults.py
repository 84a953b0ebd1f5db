"""FFmpeg failing, hanging, lying; errors mid-render. Nothing may be left."""

import json
import os
import time
from pathlib import Path

import pytest

from renders.lifecycle.render import Render
from renders.models import RenderLog

from ..conftest import post

pytestmark = pytest.mark.django_db

ENDPOINTS = [
    ("/api/trim", {"start": "0.5"}),
    ("/api/trim", {"start": "0.5", "mode": "fast"}),
    ("/api/trim/preview", {"start": "0.5"}),
    ("/api/trim/preview", {"start": "0.5", "format": "jpg"}),
]


def fake_ffmpeg(tmp_path, body):
    """A stand-in FFmpeg binary (a real process the runner starts and watches)."""
    script = tmp_path / "fake-ffmpeg"
    script.write_text("#!/bin/sh\n" + body + "\n")
    script.chmod(0o755)
    return str(script)


def body(response):
    return json.loads(response.body)


@pytest.mark.parametrize(("url", "fields"), ENDPOINTS)
def test_ffmpeg_failure_is_500_and_logged(api, clips, settings, tmp_path, url, fields):
    settings.VIDEOAPI_FFMPEG = fake_ffmpeg(tmp_path, 'echo "Error: secret /srv/path exploded" >&2; exit 3')
    r = post(api, url, {"video": clips.basic, **fields})
    assert r.status_code == 500
    data = body(r)
    assert data["code"] == "render_failed"
    assert "exploded" not in data["detail"] and "/srv" not in data["detail"]
    log = RenderLog.objects.get(id=data["render_id"])
    assert log.status == "failed" and log.ffmpeg_exit_code == 3
    assert "secret /srv/path exploded" in log.ffmpeg_stderr
    assert log.ffmpeg_argv[0][0] == settings.VIDEOAPI_FFMPEG
    assert log.cleanup_status == "deleted" and log.render_started_at and log.render_finished_at


@pytest.mark.parametrize(("url", "fields"), ENDPOINTS)
def test_ffmpeg_exit_zero_without_output_is_500(api, clips, settings, tmp_path, url, fields):
    settings.VIDEOAPI_FFMPEG = fake_ffmpeg(tmp_path, "exit 0")
    r = post(api, url, {"video": clips.basic, **fields})
    assert r.status_code == 500
    assert body(r)["detail"] == "FFmpeg produced no output"
    assert RenderLog.objects.get(id=body(r)["render_id"]).status == "failed"


def test_ffmpeg_empty_output_is_500(api, clips, settings, tmp_path):
    settings.VIDEOAPI_FFMPEG = fake_ffmpeg(tmp_path, 'for last; do :; done; : > "$last"')
    r = post(api, "/api/trim", {"video": clips.basic, "start": "0.5"})
    assert r.status_code == 500
    assert body(r)["detail"] == "FFmpeg produced an empty output"


def test_real_ffmpeg_timeout_is_504(api, clips, settings):
    settings.VIDEOAPI_FFMPEG_TIMEOUT = 0.01
    r = post(api, "/api/trim", {"video": clips.basic, "start": "0.5"})
    assert r.status_code == 504
    data = body(r)
    assert data["code"] == "render_timeout"
    assert "Prefer: respond-async" in data["detail"]  # the same request can run as a job
    log = RenderLog.objects.get(id=data["render_id"])
    assert log.status == "timeout" and log.http_status == 504 and log.cleanup_status == "deleted"
    assert log.ffmpeg_exit_code == -9


def test_timeout_kills_the_whole_process_group(api, clips, settings, tmp_path):
    pidfile = tmp_path / "child.pid"
    settings.VIDEOAPI_FFMPEG_TIMEOUT = 0.5
    # the "ffmpeg" starts a grandchild and waits: both must die
    settings.VIDEOAPI_FFMPEG = fake_ffmpeg(tmp_path, f"sleep 60 & echo $! > {pidfile}; wait")
    started = time.monotonic()
    r = post(api, "/api/trim", {"video": clips.basic, "start": "0.5"})
    assert r.status_code == 504
    assert time.monotonic() - started < 10
    child = int(pidfile.read_text())
    for _ in range(50):
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        # a zombie still answers kill(0); check its state
        stat = Path(f"/proc/{child}/stat")
        if not stat.exists() or stat.read_text().split()[2] == "Z":
            break
        time.sleep(0.1)
    else:
        pytest.fail("the grandchild survived the timeout")


def test_unexpected_error_mid_render_cleans_up(api, clips, monkeypatch):
    def explode(self, args, measures=False):
        raise RuntimeError("bug")

    monkeypatch.setattr(Render, "run_ffmpeg", explode)
    r = post(api, "/api/trim", {"video": clips.basic, "start": "0.5"})
    assert r.status_code == 500
    data = body(r)
    assert data["code"] == "internal_error" and "bug" not in data["detail"]
    log = RenderLog.objects.get(id=data["render_id"])
    assert log.status == "failed" and log.cleanup_status == "deleted"


def test_cleanup_failure_is_recorded(api, clips, monkeypatch):
    from renders.lifecycle import workspace

    real = workspace.remove_tree

    def fail_once(path):
        real(path)
        raise workspace.CleanupError("rmtree(x): Permission denied")

    monkeypatch.setattr(workspace, "remove_tree", fail_once)
    r = post(api, "/api/trim", {"video": clips.basic, "start": "0.5"})
    assert r.status_code == 200
    log = RenderLog.objects.get(id=r["X-Render-Id"])
    assert log.cleanup_status == "failed" and "Permission denied" in log.cleanup_error
    assert log.status == "succeeded"
