"""sweep_temp, render slots, health, metrics, retention, cleanup failures and the admin dashboard."""

import json
import os
import shutil
import subprocess
import time
import uuid
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from renders import health
from renders.lifecycle import slots, workspace
from renders.lifecycle.render import Render
from renders.models import RenderLog

from ..conftest import post, wait_for
from ..housekeeping import make_leftover, metric_value, sweep_cmd

pytestmark = pytest.mark.django_db


def test_sweep_deletes_dead_workspaces_and_marks_them(tmp_path):
    render_id, path = make_leftover()
    report = json.loads(sweep_cmd("--json"))
    assert report["deleted"] == [path.name] and report["bytes_freed"] == 1000
    assert not path.exists()
    log = RenderLog.objects.get(id=render_id)
    assert log.cleanup_status == "swept" and log.status == "failed" and log.error_code == "worker_lost"


def test_sweep_never_touches_live_young_or_foreign_entries(tmp_path):
    live = workspace.Workspace.create("intro", uuid.uuid4())
    old = time.time() - 86400 * 3
    os.utime(live.path, (old, old))
    young_id, young = make_leftover(age=1)
    stranger = workspace.temp_root() / "not-a-workspace"
    stranger.mkdir()
    outside = tmp_path / "precious"
    outside.mkdir()
    (outside / "keep").write_text("keep")
    link = workspace.temp_root() / f"trim_{uuid.uuid4()}"
    os.symlink(outside, link)
    os.utime(link, (old, old), follow_symlinks=False)
    try:
        report = json.loads(sweep_cmd("--json", "--grace", "60"))
        assert live.path.name in report["skipped_live"] and live.path.name in report["long_locked"]
        assert young.name in report["skipped_young"] and "not-a-workspace" in report["ignored"]
        assert live.path.exists() and young.exists() and stranger.exists()
        assert (outside / "keep").read_text() == "keep"  # the link was removed, not followed
        assert not os.path.lexists(link)
    finally:
        live.delete()
        shutil.rmtree(young)
        stranger.rmdir()
    assert RenderLog.objects.get(id=young_id).cleanup_status == "pending"


def test_sweep_dry_run_and_human_summary():
    render_id, path = make_leftover()
    text = sweep_cmd("--dry-run")
    assert "would delete 1 (1000 B)" in text and path.exists()
    assert RenderLog.objects.get(id=render_id).cleanup_status == "pending"
    assert "deleted 1 (1000 B)" in sweep_cmd()
    assert not path.exists()


def immutable(path, on):
    """Make a file undeletable (chattr +i as root, a read-only directory otherwise)."""
    if os.geteuid() == 0:
        if not shutil.which("chattr"):
            pytest.skip("chattr is not installed")
        result = subprocess.run(["chattr", "+i" if on else "-i", str(path)], capture_output=True)
        if result.returncode:
            pytest.skip(f"chattr does not work here: {result.stderr.decode().strip()}")
    else:
        path.parent.chmod(0o500 if on else 0o700)


def test_undeletable_file_is_recorded_shown_and_repaired(api, clips, admin_client, monkeypatch):
    real_succeed = Render.succeed
    stuck = []

    def succeed_with_stuck_file(self, output):
        path = self.workspace.path / "stuck"
        path.write_text("x")
        immutable(path, True)
        stuck.append(path)
        return real_succeed(self, output)

    monkeypatch.setattr(Render, "succeed", succeed_with_stuck_file)
    before = metric_value("videoapi_cleanups_total", outcome="failed")
    try:
        r = post(api, "/api/trim", {"video": clips.basic, "start": "0.5"})
        assert r.status_code == 200
        log = RenderLog.objects.get(id=r["X-Render-Id"])
        assert log.cleanup_status == "failed" and "stuck" in log.cleanup_error
        assert metric_value("videoapi_cleanups_total", outcome="failed") == before + 1
        page = admin_client.get("/admin/renders/renderlog/").content.decode()
        assert "left behind" in page and "with a failed cleanup" in page
        with pytest.raises(CommandError):
            sweep_cmd("--grace", "0")  # still undeletable: the sweep says so and exits non-zero
    finally:
        for path in stuck:
            immutable(path, False)
    assert "deleted 1" in sweep_cmd("--grace", "0")
    assert RenderLog.objects.get(id=r["X-Render-Id"]).cleanup_status == "swept"


def test_admin_retry_cleanup_action(admin_client):
    render_id, path = make_leftover(status=RenderLog.Status.SUCCEEDED)
    RenderLog.objects.filter(id=render_id).update(cleanup_status="failed", cleanup_error="EPERM")
    r = admin_client.post("/admin/renders/renderlog/",
                          {"action": "retry_cleanup", "index": 0, "_selected_action": [render_id]}, follow=True)
    assert "Cleaned 1, still in use 0, failed again 0" in r.content.decode()
    assert not path.exists()
    assert RenderLog.objects.get(id=render_id).cleanup_status == "deleted"


def test_admin_retry_cleanup_is_the_sweeps_removal(admin_client):
    """Under the workspace's lock, as the sweep: a live render's is left alone, a record naming no workspace
    fails (the temp root itself is never a target), a process left inside is killed."""
    live = workspace.Workspace.create("intro", uuid.uuid4())
    RenderLog.objects.create(id=live.path.name.split("_")[1], endpoint="intro", status="succeeded",
                             workspace=str(live.path), cleanup_status="failed")
    nameless = RenderLog.objects.create(endpoint="trim", status="succeeded", workspace="", cleanup_status="failed")
    orphan_id, orphan = make_leftover(status=RenderLog.Status.SUCCEEDED)
    RenderLog.objects.filter(id=orphan_id).update(cleanup_status="failed")
    sleeper = subprocess.Popen(["sleep", "60"], cwd=orphan)
    try:
        r = admin_client.post("/admin/renders/renderlog/", {
            "action": "retry_cleanup", "index": 0,
            "_selected_action": [live.path.name.split("_")[1], nameless.pk, orphan_id]}, follow=True)
        assert "Cleaned 1, still in use 1, failed again 1" in r.content.decode()
        assert live.path.exists() and workspace.temp_root().exists() and not orphan.exists()
        assert sleeper.wait(timeout=5) == -9  # killed by the removal
        assert "refusing to delete" in RenderLog.objects.get(pk=nameless.pk).cleanup_error
        assert RenderLog.objects.get(id=orphan_id).cleanup_status == "deleted"
    finally:
        sleeper.kill()
        live.delete()


def test_a_file_named_like_a_workspace_is_shown_and_swept(admin_client):
    name = f"trim_{uuid.uuid4()}"
    (workspace.temp_root() / name).write_bytes(b"x" * 10)
    os.utime(workspace.temp_root() / name, (time.time() - 3600,) * 2)
    page = admin_client.get("/admin/renders/renderlog/").content.decode()
    assert name in page and "left behind" in page
    assert json.loads(sweep_cmd("--json"))["deleted"] == [name]
    assert not os.path.lexists(workspace.temp_root() / name)


def test_busy_when_every_slot_is_taken(api, clips, settings):
    settings.VIDEOAPI_MAX_CONCURRENT_RENDERS = 1
    settings.VIDEOAPI_SLOT_WAIT_TIMEOUT = 0.3
    with slots.render_slot():
        started = time.monotonic()
        r = post(api, "/api/trim", {"video": clips.basic, "start": "0.5"})
        waited = time.monotonic() - started
    assert r.status_code == 503 and r["Retry-After"]
    body = json.loads(r.body)
    assert body["code"] == "busy" and waited >= 0.3
    assert RenderLog.objects.get(id=body["render_id"]).status == "rejected"
    assert post(api, "/api/trim", {"video": clips.basic, "start": "0.5"}).status_code == 200


def test_health_endpoints(client, settings, monkeypatch):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    assert set(ready.json()["checks"]) == {"ffmpeg", "temp_root", "database", "fonts", "render_worker"}
    settings.VIDEOAPI_MIN_FREE_BYTES = 10**18
    low = client.get("/readyz")
    assert low.status_code == 503 and not low.json()["checks"]["temp_root"]["ok"]
    settings.VIDEOAPI_MIN_FREE_BYTES = 0
    settings.VIDEOAPI_FFMPEG = "/nonexistent/ffmpeg"
    monkeypatch.setitem(health._FFMPEG_OK, "checked", 0.0)
    broken = client.get("/readyz")
    assert broken.status_code == 503 and not broken.json()["checks"]["ffmpeg"]["ok"]
    settings.VIDEOAPI_FFMPEG = ""
    monkeypatch.setitem(health._FFMPEG_OK, "checked", 0.0)


def test_metrics_count_renders_and_cleanups(api, clips):
    ok_before = metric_value("videoapi_renders_total", endpoint="trim", outcome="succeeded")
    bad_before = metric_value("videoapi_renders_total", endpoint="trim", outcome="rejected")
    deleted_before = metric_value("videoapi_cleanups_total", outcome="deleted")
    hist_before = metric_value("videoapi_render_duration_seconds_count", endpoint="trim")
    post(api, "/api/trim", {"video": clips.basic, "start": "0.5"})
    post(api, "/api/trim", {"video": clips.text, "start": "0.5"})
    assert metric_value("videoapi_renders_total", endpoint="trim", outcome="succeeded") == ok_before + 1
    assert metric_value("videoapi_renders_total", endpoint="trim", outcome="rejected") == bad_before + 1
    assert metric_value("videoapi_cleanups_total", outcome="deleted") == deleted_before + 2
    assert metric_value("videoapi_render_duration_seconds_count", endpoint="trim") == hist_before + 1
    _, path = make_leftover(content=b"y" * 5000)
    try:
        assert metric_value("videoapi_workspaces_in_flight") == 1
        assert metric_value("videoapi_temp_root_bytes") == 5000
        assert metric_value("videoapi_oldest_workspace_age_seconds") >= 3500
    finally:
        shutil.rmtree(path)


def test_prune_renders():
    old_id, path = make_leftover(status=RenderLog.Status.SUCCEEDED)
    shutil.rmtree(path)
    RenderLog.objects.filter(id=old_id).update(received_at=timezone.now() - timezone.timedelta(days=40),
                                               cleanup_status="deleted")
    pending_id, path2 = make_leftover()
    shutil.rmtree(path2)
    RenderLog.objects.filter(id=pending_id).update(received_at=timezone.now() - timezone.timedelta(days=40))
    fresh = RenderLog.objects.create(endpoint="trim", cleanup_status="deleted")
    out = StringIO()
    call_command("prune_renders", "--older-than", "30d", stdout=out)
    assert "deleted 1" in out.getvalue()
    assert set(RenderLog.objects.values_list("id", flat=True)) == {pending_id, fresh.id}
    with pytest.raises(CommandError):
        call_command("prune_renders", "--older-than", "soon")


def test_throttle(api, clips, settings):
    from django.core.cache import cache

    cache.clear()
    settings.VIDEOAPI_THROTTLE_RATE = "2/minute"
    assert post(api, "/api/trim", {"video": clips.text, "start": "0"}).status_code == 415
    assert post(api, "/api/trim", {"video": clips.text, "start": "0"}).status_code == 415
    r = post(api, "/api/trim", {"video": clips.basic, "start": "0"})
    assert r.status_code == 429
    body = json.loads(r.body)
    assert body["code"] == "throttled" and int(r["Retry-After"]) > 0 and "render_id" not in body
    assert RenderLog.objects.count() == 2  # refused before a RenderLog or any upload
    cache.clear()


def test_slot_of_a_killed_process_is_freed(settings):
    settings.VIDEOAPI_MAX_CONCURRENT_RENDERS = 1
    settings.VIDEOAPI_SLOT_WAIT_TIMEOUT = 0
    pid = os.fork()
    if pid == 0:  # child: take the only slot and hang on to it
        with slots.render_slot():
            time.sleep(60)
        os._exit(0)
    try:
        assert wait_for(lambda: slots.slots_in_use() == 1)
        with pytest.raises(Exception) as busy, slots.render_slot():
            pass
        assert busy.value.status_code == 503
    finally:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
    with slots.render_slot():  # the kernel dropped the dead holder's lock
        assert slots.slots_in_use() == 1
    assert slots.slots_in_use() == 0
