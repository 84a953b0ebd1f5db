"""Jobs run in this process, without a worker (tests/jobs/test_jobs.py runs the real thing): the queue, claims,
faults mid-job, slots, housekeeping, the task rows, readiness. Their HTTP face is in test_job_requests.py."""

import pytest

from renders.lifecycle import downloads, jobs, taskqueue, worker
from renders.models import RenderLog

from ..conftest import post

pytestmark = pytest.mark.django_db


def test_delivered_ranges_merge():
    assert downloads.merge([[50, 99], [0, 9], [10, 20], [15, 30]]) == [[0, 30], [50, 99]]
    assert downloads.merge([[0, 49], [50, 99]]) == [[0, 99]]


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
    assert log.status == "rejected" and log.error_code == "unavailable"  # a 503 is logged as a refusal
    assert api.get(f"/api/jobs/{log.pk}").json()["status"] == "failed"  # what its client reads
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
