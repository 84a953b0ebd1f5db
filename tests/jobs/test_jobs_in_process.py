"""Jobs: the pieces that need no worker (the server tests in test_jobs.py run the real thing)."""

import base64

import pytest
from django.test import RequestFactory

from renders.api.asynchronous import prefers_async
from renders.api.responses import requested_range
from renders.lifecycle import downloads, jobs, taskqueue, worker
from renders.models import RenderLog

from ..conftest import post

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(("header", "wanted"), [
    ("respond-async", True), ("respond-async, wait=10", True), ("wait=5; x, Respond-Async", True),
    ("respond-async; foo=bar", True), ("", False), ("return=minimal", False), ("respond-asynchronous", False),
])
def test_prefer_respond_async(header, wanted):
    assert prefers_async(RequestFactory().post("/", HTTP_PREFER=header)) is wanted


@pytest.mark.parametrize(("header", "size", "span"), [
    ("", 100, None), ("bytes=0-9", 100, (0, 9)), ("bytes=90-", 100, (90, 99)), ("bytes=-10", 100, (90, 99)),
    ("bytes=-500", 100, (0, 99)), ("bytes=50-500", 100, (50, 99)), ("bytes=0-9,20-29", 100, None),
    ("items=0-9", 100, None), ("bytes=-", 100, None), ("bytes=9-3", 100, None), ("bytes=150-20", 100, None),
])
def test_requested_range(header, size, span):
    assert requested_range(header, size) == span


@pytest.mark.parametrize("header", ["bytes=100-", "bytes=100-200", "bytes=-0"])
def test_unsatisfiable_ranges(header):
    with pytest.raises(ValueError):
        requested_range(header, 100)


def test_delivered_ranges_merge():
    assert downloads.merge([[50, 99], [0, 9], [10, 20], [15, 30]]) == [[0, 30], [50, 99]]
    assert downloads.merge([[0, 49], [50, 99]]) == [[0, 99]]


def test_methods_outside_the_contract_are_405_with_allow(api):
    r = api.put("/api/jobs/6f1c0000-0000-4000-8000-000000000000")
    assert r.status_code == 405 and r.json()["code"] == "method_not_allowed"
    assert {m.strip() for m in r["Allow"].split(",")} >= {"GET", "DELETE"}
    r = api.post("/api/jobs")
    assert r.status_code == 405 and "GET" in r["Allow"] and "POST" not in r["Allow"]


def test_unknown_job_is_404(api):
    r = api.get("/api/jobs/6f1c0000-0000-4000-8000-000000000000")
    assert r.status_code == 404 and r.json()["code"] == "not_found"
    assert api.get("/api/jobs/6f1c0000-0000-4000-8000-000000000000/result").status_code == 404
    assert api.delete("/api/jobs/6f1c0000-0000-4000-8000-000000000000").status_code == 404


def test_jobs_need_a_key(client):
    r = client.get("/api/jobs")
    assert r.status_code == 401


def test_a_queued_job_in_process(api, clips):
    """Submitting needs no worker: 202, the job listed, its workspace kept (marked), then cancelled."""
    r = post(api, "/api/trim", {"video": clips.basic, "start": "0"}, HTTP_PREFER="respond-async")
    assert r.status_code == 202 and r["Location"] == f"/api/jobs/{r.data['id']}"
    log = RenderLog.objects.get(pk=r.data["id"])
    assert log.status == "queued" and log.is_job and log.task_id and log.params["kind"] == "trim"
    from pathlib import Path

    assert (Path(log.workspace) / ".job").read_text() == str(log.pk)
    r = api.get("/api/jobs")
    assert [job["id"] for job in r.data["results"]] == [str(log.pk)]
    assert api.delete(f"/api/jobs/{log.pk}").status_code == 204
    assert not Path(log.workspace).exists()
    assert RenderLog.objects.get(pk=log.pk).status == "cancelled"


def test_a_refused_submission_frees_its_idempotency_key(api, clips):
    r = post(api, "/api/trim", {"video": clips.basic, "start": "x"}, HTTP_PREFER="respond-async",
             HTTP_IDEMPOTENCY_KEY="k1")
    assert r.status_code == 400
    r = post(api, "/api/trim", {"video": clips.basic, "start": "0"}, HTTP_PREFER="respond-async",
             HTTP_IDEMPOTENCY_KEY="k1")
    assert r.status_code == 202
    api.delete(f"/api/jobs/{r.data['id']}")


def test_prune_renders_also_prunes_finished_task_rows():
    from datetime import timedelta
    from io import StringIO

    from django.core.management import call_command
    from django.utils import timezone
    from django_tasks_db.models import DBTaskResult

    old, fresh, waiting = (worker.enqueue(f"00000000-0000-4000-8000-00000000000{i}") for i in range(3))
    DBTaskResult.objects.filter(id=old).update(status="SUCCESSFUL", finished_at=timezone.now() - timedelta(days=40))
    DBTaskResult.objects.filter(id=fresh).update(status="FAILED", finished_at=timezone.now())
    out = StringIO()
    call_command("prune_renders", "--older-than", "30d", stdout=out)
    assert "and 1 finished task row(s)" in out.getvalue()
    assert {str(i) for i in DBTaskResult.objects.values_list("id", flat=True)} == {fresh, waiting}


def test_a_browser_front_end_may_send_and_read_the_job_headers(client, settings):
    settings.CORS_ALLOWED_ORIGINS = ["http://127.0.0.1:5173"]
    preflight = client.options("/api/trim", HTTP_ORIGIN="http://127.0.0.1:5173",
                               HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
                               HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization, prefer, idempotency-key")
    allowed = preflight["Access-Control-Allow-Headers"].lower()
    assert all(h in allowed for h in ("authorization", "prefer", "idempotency-key", "range"))
    r = client.get("/api/jobs", HTTP_ORIGIN="http://127.0.0.1:5173")
    exposed = r["Access-Control-Expose-Headers"].lower()
    assert all(h in exposed for h in ("location", "preference-applied", "content-range", "retry-after"))


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


@pytest.mark.parametrize("cursor", [
    "l%C3%8B%C2%A9",  # not base64
    base64.b64encode(b"p=garbage").decode(),  # decodes, but its position is no time
    base64.b64encode(b"r=1&p=2026-13-45").decode(),  # looks like a date, is none
    base64.b64encode(b"o=x").decode(),  # a garbled offset
])
def test_a_cursor_the_service_did_not_make_is_400_naming_it(api, cursor):
    r = api.get(f"/api/jobs?cursor={cursor}&limit=15")
    assert r.status_code == 400 and list(r.json()["fields"]) == ["cursor"]


def test_a_cursor_the_service_made_is_followed(api, clips):
    for _ in range(3):
        r = post(api, "/api/trim", {"video": clips.basic, "start": "0"}, HTTP_PREFER="respond-async")
        assert r.status_code == 202
    first = api.get("/api/jobs?limit=2").json()
    assert len(first["results"]) == 2 and first["next"]
    rest = api.get(first["next"].split("testserver", 1)[-1]).json()
    assert len(rest["results"]) == 1 and rest["results"][0]["id"] not in {j["id"] for j in first["results"]}
    for job in first["results"] + rest["results"]:
        assert api.delete(f"/api/jobs/{job['id']}").status_code == 204  # cancelled: nothing left


@pytest.mark.parametrize("limit", ["abc", "null", "0", "-3", "101", "1.5", "", "\u0661"])
def test_a_limit_that_is_not_1_to_100_is_400_naming_it(api, limit):
    r = api.get("/api/jobs", {"limit": limit})
    assert r.status_code == 400 and list(r.json()["fields"]) == ["limit"] and "1 to 100" in r.json()["detail"]


def test_any_spelling_of_a_job_id_finds_it_and_a_non_uuid_is_a_json_404(api, clips):
    job = post(api, "/api/trim", {"video": clips.basic, "start": "0"}, HTTP_PREFER="respond-async").data["id"]
    for spelling in (job.upper(), job.replace("-", ""), f"{{{job}}}", f"urn:uuid:{job}"):
        for path in (f"/api/jobs/{spelling}", f"/api/jobs/{spelling}/result"):
            r = api.get(path)
            assert r.status_code in (200, 409) and r["X-Render-Id"] == job, (path, r.status_code)
    for method, path in [(api.get, "/api/jobs/not-a-uuid"), (api.get, "/api/jobs/not-a-uuid/result"),
                         (api.delete, "/api/jobs/not-a-uuid"), (api.get, "/api/jobs/x/y/z"),
                         (api.delete, "/api/nothing")]:
        r = method(path)
        assert r.status_code == 404 and r["Content-Type"] == "application/json", (path, r.status_code)
        assert r.json()["code"] == "not_found"
    assert api.delete(f"/api/jobs/{job.upper()}").status_code == 204


@pytest.mark.parametrize(("key", "taken"), [("trim-clip-1", True), ("a b:c/d=e", True), ("ключ", False),
                                        ("café", False), ("tab\there", False), ("x" * 255, True), ("x" * 256, False)])
def test_an_idempotency_key_is_visible_ascii(api, clips, key, taken):
    header = key.encode("utf-8").decode("latin-1")  # as a WSGI server hands a UTF-8 header to Django
    r = post(api, "/api/trim", {"video": clips.basic, "start": "0"}, HTTP_PREFER="respond-async",
             HTTP_IDEMPOTENCY_KEY=header)
    assert r.status_code == (202 if taken else 400), r.content
    if taken:
        assert api.delete(f"/api/jobs/{r.data['id']}").status_code == 204
    else:
        assert list(r.json()["fields"]) == ["Idempotency-Key"] and "ASCII" in r.json()["detail"]


# ---- what the review found: each fix proven -------------------------------------------------------------


def queued_job(api, clips):
    r = post(api, "/api/trim", {"video": clips.basic, "start": "0"}, HTTP_PREFER="respond-async")
    assert r.status_code == 202
    return RenderLog.objects.get(pk=r.data["id"])


def test_a_long_queue_on_a_live_host_is_not_stale_a_dead_hosts_is(api, clips, settings):
    from datetime import timedelta
    from pathlib import Path

    from django.utils import timezone

    from renders.models import JobHost

    settings.VIDEOAPI_JOB_START_TIMEOUT = 60
    log = queued_job(api, clips)
    RenderLog.objects.filter(pk=log.pk).update(queued_at=timezone.now() - timedelta(seconds=120))
    jobs.heartbeat()  # this host's worker is alive: the job waits its turn
    jobs.reap()
    assert RenderLog.objects.get(pk=log.pk).status == "queued"
    JobHost.objects.update(heartbeat_at=timezone.now() - timedelta(seconds=120))  # nobody seen for too long
    jobs.reap()
    log.refresh_from_db()
    assert log.status == "failed" and log.error_code == "worker_lost" and "no worker" in log.error_message
    jobs.settle(log)
    assert not Path(log.workspace).exists()


def test_a_task_claimed_by_a_killed_worker_before_its_job_started_is_ready_again(api, clips, monkeypatch):
    import subprocess
    import sys

    from django_tasks_db.models import DBTaskResult


    monkeypatch.setattr(taskqueue, "close_old_connections", lambda: None)  # it would close the test's transaction
    log = queued_job(api, clips)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    claimed = taskqueue.claim(f"{settings_host()}:{gone.pid}:1")
    assert str(claimed.id) == log.task_id and claimed.status == "RUNNING"
    assert taskqueue.requeue_orphans(worker.alive) == 1
    assert DBTaskResult.objects.get(id=log.task_id).status == "READY"
    own = taskqueue.claim(f"{settings_host()}:{__import__('os').getpid()}:1")  # a live claimer keeps its task
    assert taskqueue.requeue_orphans(worker.alive) == 0 and DBTaskResult.objects.get(id=own.id).status == "RUNNING"
    jobs.cancel(log)


def settings_host():
    from django.conf import settings

    return settings.VIDEOAPI_HOST_ID[:40]


@pytest.mark.django_db(transaction=True)  # the job closes a connection a database error made unusable
def test_a_database_error_mid_job_fails_it_and_lets_go_of_its_workspace(api, clips, monkeypatch):
    from pathlib import Path

    from django.db import OperationalError

    from renders.lifecycle import workspace as workspaces

    log = queued_job(api, clips)

    def broken(*args, **kwargs):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(worker, "perform", broken)
    worker.run(str(log.pk))
    log.refresh_from_db()
    assert log.status in ("failed", "rejected") and log.error_code == "unavailable"
    assert not Path(log.workspace).exists() and not workspaces.is_locked(Path(log.workspace))


def test_progress_ticks_ride_out_a_database_blip_while_the_lease_holds(monkeypatch, settings):
    import time

    from django.db import OperationalError

    from renders.media.ffmpeg import Progress

    settings.VIDEOAPI_JOB_LEASE = 10
    watch = worker.Watch(RenderLog(pk="6f1c0000-0000-4000-8000-000000000000", worker_id="w"), 10.0)
    report = Progress(None)
    report.out_seconds, report.speed = 5.0, 1.0

    class Down:
        def filter(self, *args, **kwargs):
            raise OperationalError("down")

    monkeypatch.setattr(RenderLog, "objects", Down())
    assert watch(report) is True  # renewed a moment ago: render on
    watch.renewed = time.monotonic() - 9.5
    assert watch(report) is False  # its lease is about to run out: stop (it will be reaped, not run twice)


def test_a_webhook_says_only_what_the_job_still_is(db):
    from renders.models import WebhookDelivery

    log = RenderLog.objects.create(endpoint="trim", is_job=True, status="cancelled",
                                   callback_url="https://example.com/hook", base_url="http://x/")
    jobs.announce(log.pk, "render.succeeded")  # a cancel overtook the success
    assert not WebhookDelivery.objects.exists()
    jobs.announce(log.pk, "render.cancelled")
    assert WebhookDelivery.objects.get().event == "render.cancelled"


def test_a_synchronous_request_waiting_for_a_slot_goes_before_jobs(settings):
    import threading

    from renders.lifecycle import slots

    settings.VIDEOAPI_MAX_CONCURRENT_RENDERS = 1
    taken = slots.free_slot()
    assert taken is not None and slots.free_slot() is None  # full
    got = threading.Event()

    def request():
        with slots.render_slot(timeout=5):
            got.set()

    waiter = threading.Thread(target=request)
    waiter.start()
    try:
        assert _eventually(slots.requests_waiting)
        import os

        os.close(taken)  # a job ends
        assert slots.free_slot() is None  # the worker does not take it: the request does
        assert got.wait(2)
    finally:
        waiter.join()
    assert not slots.requests_waiting()
    fd = slots.free_slot()
    assert fd is not None
    __import__("os").close(fd)


def _eventually(predicate, seconds=2.0):
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False


def test_the_upgrade_points_tasks_queued_before_it_at_the_worker_module():
    import importlib

    from django.apps import apps
    from django.utils.module_loading import import_string
    from django_tasks_db.models import DBTaskResult

    migration = importlib.import_module("renders.migrations.0010_job_modules")
    task_id = worker.enqueue("00000000-0000-4000-8000-000000000009")
    DBTaskResult.objects.filter(id=task_id).update(task_path=migration.OLD)  # as queued before the upgrade
    migration.forwards(apps, None)
    assert import_string(DBTaskResult.objects.get(id=task_id).task_path) is worker.render_job


def test_readyz_fails_naming_the_worker_once_its_heartbeat_is_older_than_the_lease(client, settings):
    import re
    from datetime import timedelta

    from django.utils import timezone

    from renders.models import JobHost

    settings.VIDEOAPI_JOB_LEASE = 10
    r = client.get("/readyz")
    # may be starting
    assert r.status_code == 200 and "no render_worker seen" in r.json()["checks"]["render_worker"]["detail"]
    jobs.heartbeat()
    r = client.get("/readyz")
    assert r.status_code == 200 and r.json()["checks"]["render_worker"]["ok"] is True
    JobHost.objects.update(heartbeat_at=timezone.now() - timedelta(seconds=11))  # the worker died 11 s ago
    r = client.get("/readyz")
    check = r.json()["checks"]["render_worker"]
    assert r.status_code == 503 and check["ok"] is False and "VIDEOAPI_JOB_LEASE" in check["detail"]
    assert 11 <= check["age"] < 20
    text = client.get("/metrics").content.decode()
    age = re.search(r'videoapi_job_worker_heartbeat_age_seconds\{host="([^"]+)"\} ([0-9.e+]+)', text)
    assert age and age[1] == settings.VIDEOAPI_HOST_ID and 11 <= float(age[2]) < 20
