"""Process-level faults under real gunicorn: killed workers, bursts, slow clients."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from django.conf import settings

from renders.media.ffmpeg import ffmpeg_binary
from renders.models import RenderLog

from .. import media
from ..conftest import leftovers, wait_for
from ..server import gunicorn, raw_request, read_head, request

pytestmark = [pytest.mark.server, pytest.mark.django_db(transaction=True)]
ROOT = Path(__file__).resolve().parents[2]


def wrapper(tmp_path, rules):
    """An FFmpeg stand-in that delays chosen renders, then runs the real FFmpeg.

    `rules`: (substring of the arguments, shell to run first) pairs.
    """
    cases = "\n".join(f'  *"{needle}"*) {action} ;;' for needle, action in rules)
    script = tmp_path / "ffmpeg-wrapper"
    script.write_text(f'#!/bin/sh\ncase "$*" in\n{cases}\nesac\nexec {ffmpeg_binary()} "$@"\n')
    script.chmod(0o755)
    return str(script)


def processes_under_temp_root(*matches):
    root = str(Path(settings.VIDEOAPI_TEMP_ROOT).resolve())
    found = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cwd = os.readlink(f"/proc/{pid}/cwd")
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            stat = Path(f"/proc/{pid}/stat").read_text().split()
        except OSError:
            continue
        if cwd.startswith(root) and any(m in cmdline for m in matches) and stat[2] != "Z":
            found[int(pid)] = int(stat[3])  # pid -> parent pid
    return found


def alive(pid):
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except OSError:
        return False
    return state != "Z"


def test_killed_worker_is_swept_while_live_render_survives(token, clips, tmp_path):
    ffmpeg = wrapper(tmp_path, [("-ss 1.234", "exec sleep 120"), ("-ss 0.777", "sleep 4")])
    with gunicorn({"VIDEOAPI_FFMPEG": ffmpeg}, workers=2, threads=2) as (address, _proc):
        doomed = threading.Thread(target=lambda: _swallow(request, address, "/api/trim",
                                                            {"video": clips.basic, "start": "1.234"}, token))
        doomed.start()
        sleeper = wait_for(lambda: processes_under_temp_root("sleep 120"))
        assert sleeper, "the slow render never started"
        (pid, worker), = sleeper.items()
        dead_log = RenderLog.objects.get(status="rendering")
        dead_workspace = Path(dead_log.workspace)
        os.kill(worker, signal.SIGKILL)  # the worker dies mid-render (OOM killer, kill -9, ...)
        assert wait_for(lambda: not alive(pid), seconds=5), "FFmpeg outlived its worker"
        doomed.join(timeout=10)
        assert dead_workspace.exists()  # nobody could clean up: the sweep must

        results = {}
        live = threading.Thread(target=lambda: results.update(r=request(
            address, "/api/trim", {"video": clips.basic, "start": "0.777"}, token)))
        live.start()
        live_log = wait_for(lambda: RenderLog.objects.filter(status="rendering").exclude(id=dead_log.id).first())
        live_workspace = Path(live_log.workspace)
        sweep = subprocess.run([sys.executable, "manage.py", "sweep_temp", "--grace", "0", "--json"], cwd=ROOT,
                               env={**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"},
                               capture_output=True, text=True, timeout=60)
        assert sweep.returncode == 0, sweep.stderr
        report = json.loads(sweep.stdout)
        assert report["deleted"] == [dead_workspace.name]
        assert live_workspace.name in report["skipped_live"]
        assert not dead_workspace.exists() and live_workspace.exists()
        live.join(timeout=60)
    status, headers, body = results["r"]
    assert status == 200
    (tmp_path / "live.mp4").write_bytes(body)
    assert media.probe(tmp_path / "live.mp4")["vcodec"] == "h264"
    dead_log.refresh_from_db()
    assert dead_log.cleanup_status == "swept" and dead_log.status == "failed" and dead_log.error_code == "worker_lost"
    assert RenderLog.objects.get(id=headers["x-render-id"]).cleanup_status == "deleted"
    assert leftovers() == []


def _swallow(fn, *args):
    try:
        fn(*args)
    except OSError:
        pass  # the connection dies with the worker


def test_burst_never_exceeds_render_slots(token, clips, tmp_path):
    slots = 2
    ffmpeg = wrapper(tmp_path, [("-ss", "sleep 1.5")])
    env = {"VIDEOAPI_FFMPEG": ffmpeg, "VIDEOAPI_MAX_CONCURRENT_RENDERS": str(slots),
           "VIDEOAPI_SLOT_WAIT_TIMEOUT": "0.5"}
    peak, stop = [0], threading.Event()

    def watch():
        while not stop.is_set():
            # one scan: the wrapper becomes FFmpeg by exec, under the same pid
            peak[0] = max(peak[0], len(processes_under_temp_root(ffmpeg, ffmpeg_binary())))
            time.sleep(0.02)

    results = []
    with gunicorn(env, workers=2, threads=4) as (address, _proc):
        watcher = threading.Thread(target=watch)
        watcher.start()
        threads = [threading.Thread(target=lambda: results.append(request(
            address, "/api/trim", {"video": clips.basic, "start": "0.5"}, token))) for _ in range(3 * slots)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        stop.set()
        watcher.join()
    statuses = sorted(status for status, _, _ in results)
    assert len(results) == 3 * slots
    assert set(statuses) <= {200, 503} and statuses.count(200) >= slots and 503 in statuses
    for status, headers, body in results:
        if status == 503:
            assert headers["retry-after"] and json.loads(body)["code"] == "busy"
    assert 1 <= peak[0] <= slots
    assert RenderLog.objects.count() == 3 * slots
    assert wait_for(lambda: RenderLog.objects.filter(cleanup_status="deleted").count() == 3 * slots)
    assert leftovers() == []


def test_slow_client_keeps_workspace_until_done(token, tmp_path):
    big = media.make(tmp_path / "big.mp4", "-f", "lavfi", "-i",
                     "nullsrc=s=640x360:r=25:d=1.2,geq=random(1)*255:128:128",
                     "-c:v", "libx264", "-preset", "ultrafast", "-qp", "0", "-g", "25")
    with gunicorn() as (address, _proc):
        sock = raw_request(address, "/api/trim", {"video": big, "start": "0", "mode": "fast"}, token, rcvbuf=8192)
        status, headers, got = read_head(sock)
        assert status == 200
        log = RenderLog.objects.get(id=headers["x-render-id"])
        total, received = int(headers["content-length"]), len(got)
        slept = False
        while received < total:
            chunk = sock.recv(65536)
            assert chunk
            received += len(chunk)
            if received > total // 3 and not slept:
                time.sleep(2)  # a slow client: the render stays on disk meanwhile
                assert Path(log.workspace).exists()
                log.refresh_from_db()
                assert log.cleanup_status == "pending"
                slept = True
        sock.close()
        assert wait_for(lambda: RenderLog.objects.get(id=log.id).cleanup_status == "deleted")
    assert not Path(log.workspace).exists()
