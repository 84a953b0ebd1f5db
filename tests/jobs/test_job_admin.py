"""Jobs as an operator sees them: the admin's list, detail, filters, dashboard and cancel action, and the
job gauges on /metrics (read off the database at scrape time, whichever process or host asks)."""

from datetime import timedelta
from pathlib import Path
from unittest import mock

import pytest
from django.conf import settings
from django.db import OperationalError
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from renders.models import RenderLog

from ..conftest import leftovers, post, wait_for

pytestmark = pytest.mark.django_db
LIST = "/admin/renders/renderlog/"


def queued_job(api, clips):
    """A job as a client submits it (no worker: it stays queued, its workspace kept for the worker)."""
    r = post(api, "/api/trim", {"video": clips.basic, "start": "0"}, HTTP_PREFER="respond-async",
             HTTP_IDEMPOTENCY_KEY="admin-test")
    assert r.status_code == 202
    log = RenderLog.objects.get(pk=r.data["id"])
    assert log.status == "queued" and Path(log.workspace).is_dir()
    return log


def running_job(host="render-9", progress=0.42, eta=75.0, **fields):
    """A job some worker is running (on another host: no workspace here)."""
    now = timezone.now()
    return RenderLog.objects.create(**{
        "endpoint": "intro", "status": "rendering", "is_job": True, "host": host,
        "queued_at": now - timedelta(seconds=3), "render_started_at": now - timedelta(seconds=1),
        "worker_id": f"{host}:1234:0", "progress": progress, "eta_seconds": eta,
        "lease_expires_at": now + timedelta(seconds=60), "task_id": "task-77", "client_ref": "key:abcd1234",
        **fields})


def test_list_detail_filters_and_dashboard_show_jobs(api, clips, admin_client):
    queued = queued_job(api, clips)
    running = running_job()
    sync = RenderLog.objects.create(endpoint="trim", status="succeeded", cleanup_status="deleted")
    try:
        html = admin_client.get(LIST).content.decode()
        assert '<progress max="100" value="42"' in html and "42 %" in html and "0:01:15" in html  # progress, ETA
        for status in ("Queued", "Cancelled", "Expired"):  # the status filter lists the model's choices
            assert f"?status__exact={status.lower()}" in html and f">{status}</a>" in html
        assert "?is_job=1" in html and "?is_job=0" in html  # the kind filter: jobs, or rendered in their request
        jobs_only = admin_client.get(LIST, {"is_job": "1"}).content.decode()
        assert f'value="{queued.pk}"' in jobs_only and f'value="{running.pk}"' in jobs_only
        assert f'value="{sync.pk}"' not in jobs_only
        not_jobs = admin_client.get(LIST, {"is_job": "0"}).content.decode()
        assert f'value="{sync.pk}"' in not_jobs and f'value="{queued.pk}"' not in not_jobs
        waiting = admin_client.get(LIST, {"status__exact": "queued"}).content.decode()
        assert f'value="{queued.pk}"' in waiting and f'value="{running.pk}"' not in waiting

        dashboard = html[html.index('id="job-queues"'):html.index("Under the temp root")]
        assert f"<code>{settings.VIDEOAPI_HOST_ID}</code></td><td>1</td><td>0</td>" in dashboard  # 1 queued here
        assert "<code>render-9</code></td><td>0</td><td>1</td>" in dashboard  # 1 running there
        assert f"{str(running.pk)[:8]}</code></a> 42 %" in dashboard
        assert "2.00 s / 2.00 s (1 started)" in dashboard  # its wait: queued 3 s ago, started 1 s ago

        detail = admin_client.get(f"{LIST}{running.pk}/change/").content.decode()
        for text in ("render-9:1234:0", "task-77", "key:abcd1234", "Lease expires at", "Queued at",
                     "Result expires at", "Result downloaded at", "Idempotency key", "42 %", "0:01:15"):
            assert text in detail, text
        assert 'name="worker_id"' not in detail  # read-only, like the rest
        detail = admin_client.get(f"{LIST}{queued.pk}/change/").content.decode()
        assert "admin-test" in detail and queued.task_id in detail and "0 %" in detail  # queued: progress 0
    finally:
        api.delete(f"/api/jobs/{queued.pk}")
    assert not Path(queued.workspace).exists()


def test_cancel_action(api, clips, admin_client):
    queued = queued_job(api, clips)
    failed = running_job(status="failed", error_code="worker_lost")
    sync = RenderLog.objects.create(endpoint="trim", status="succeeded", cleanup_status="deleted")
    try:
        r = admin_client.post(LIST, {"action": "cancel_jobs", "index": 0,
                                     "_selected_action": [queued.pk, failed.pk, sync.pk]}, follow=True)
        assert r.status_code == 200
        assert "Cancelled 1 job(s), 1 already over (failed, expired or downloaded), 1 not jobs" in r.content.decode()
        queued.refresh_from_db()
        assert queued.status == "cancelled" and queued.render_finished_at
        assert not Path(queued.workspace).exists()  # the queued job's inputs are gone at once
    finally:
        if Path(queued.workspace).exists():  # only when the action failed: leave nothing behind
            api.delete(f"/api/jobs/{queued.pk}")
    assert RenderLog.objects.get(pk=failed.pk).status == "failed"
    assert RenderLog.objects.get(pk=sync.pk).status == "succeeded"
    assert api.get(f"/api/jobs/{queued.pk}").data["status"] == "cancelled"  # the client sees it
    r = admin_client.post(LIST, {"action": "cancel_jobs", "index": 0, "_selected_action": [queued.pk]}, follow=True)
    assert "Cancelled 0 job(s)" in r.content.decode()  # cancelling twice changes nothing


def scrape():
    """/metrics as {(name, labels as a sorted tuple): value}."""
    r = Client().get("/metrics")
    assert r.status_code == 200
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(r.content.decode()) for sample in family.samples}


def value(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))))


def test_job_gauges(api, clips):
    here = settings.VIDEOAPI_HOST_ID
    samples = scrape()
    assert value(samples, "videoapi_job_metrics_up") == 1
    assert value(samples, "videoapi_jobs", host=here, status="queued") == 0  # this host: listed with nothing
    assert value(samples, "videoapi_job_oldest_queued_seconds", host=here) == 0
    assert value(samples, "videoapi_job_recent_wait_seconds", host=here, stat="mean") is None  # none started lately

    queued = queued_job(api, clips)
    try:
        RenderLog.objects.filter(pk=queued.pk).update(queued_at=timezone.now() - timedelta(seconds=100))
        now = timezone.now()
        running = running_job(progress=0.25, eta=12.0)  # waited 2 s
        running_job(host="render-9", progress=None, eta=None,  # just started (no tick yet): waited 4 s
                    queued_at=now - timedelta(seconds=4), render_started_at=now)
        RenderLog.objects.create(endpoint="trim", status="succeeded", is_job=True, host="render-9",  # too long ago
                                 received_at=now - timedelta(minutes=20), queued_at=now - timedelta(minutes=20),
                                 render_started_at=now - timedelta(minutes=10))
        RenderLog.objects.create(endpoint="trim", status="rendering", host="render-9")  # a synchronous render
        samples = scrape()
        assert value(samples, "videoapi_jobs", host=here, status="queued") == 1
        assert value(samples, "videoapi_jobs", host=here, status="running") == 0
        assert 100 <= value(samples, "videoapi_job_oldest_queued_seconds", host=here) < 160
        assert value(samples, "videoapi_jobs", host="render-9", status="running") == 2  # jobs only
        assert value(samples, "videoapi_jobs", host="render-9", status="queued") == 0
        assert value(samples, "videoapi_job_progress", host="render-9", render_id=str(running.pk)) == 0.25
        assert value(samples, "videoapi_job_eta_seconds", host="render-9", render_id=str(running.pk)) == 12.0
        wait = "videoapi_job_recent_wait_seconds"
        assert value(samples, wait, host="render-9", stat="mean") == pytest.approx(3.0, abs=0.1)
        assert value(samples, wait, host="render-9", stat="max") == pytest.approx(4.0, abs=0.1)
        assert value(samples, "videoapi_jobs_started_recently", host="render-9") == 2
        progress = [key for key in samples if key[0] == "videoapi_job_progress"]
        assert len(progress) == 2  # running jobs only, never a queued or finished one
    finally:
        api.delete(f"/api/jobs/{queued.pk}")
    samples = scrape()
    assert value(samples, "videoapi_jobs", host=here, status="queued") == 0


def test_scrape_answers_with_the_database_down():
    """The job gauges need the database; without it /metrics still answers, saying so."""
    running_job()
    with mock.patch("django.db.backends.utils.CursorWrapper.execute",
                    side_effect=OperationalError("connection refused")):
        samples = scrape()
    assert value(samples, "videoapi_job_metrics_up") == 0
    assert not [key for key in samples if key[0] in ("videoapi_jobs", "videoapi_job_progress")]
    assert value(samples, "videoapi_workspaces_in_flight") == 0  # the rest as usual
    assert value(scrape(), "videoapi_job_metrics_up") == 1


@pytest.mark.server
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_gunicorn_reports_the_workers_job(served, token, long_clip):
    """The render_worker (another process) runs the job; gunicorn's /metrics sees its progress and wait."""
    from ..jobclient import call, poll, submit

    def gauges():
        status, _head, body = call(served.address, "GET", "/metrics")
        assert status == 200
        return {(s.name, tuple(sorted(s.labels.items()))): s.value
                for family in text_string_to_metric_families(body.decode()) for s in family.samples}

    served.slow()
    histogram = value(gauges(), "videoapi_job_wait_seconds_count", host=settings.VIDEOAPI_HOST_ID) or 0
    status, _head, job = submit(served.address, token, fields={"video": long_clip, "start": "0"})
    assert status == 202
    here, seen = settings.VIDEOAPI_HOST_ID, []

    def progressing():
        samples = gauges()
        progress = value(samples, "videoapi_job_progress", host=here, render_id=job["id"])
        seen.append(progress)
        return progress is not None and 0 < progress < 1 and samples

    samples = wait_for(progressing, 30)
    assert samples, seen
    assert value(samples, "videoapi_jobs", host=here, status="running") == 1
    assert value(samples, "videoapi_job_eta_seconds", host=here, render_id=job["id"]) >= 0
    assert 0 <= value(samples, "videoapi_job_recent_wait_seconds", host=here, stat="max") < 5  # an idle worker took it
    job, _seen = poll(served.address, token, job["id"])
    assert job["status"] == "succeeded"
    samples = gauges()
    assert value(samples, "videoapi_job_progress", host=here, render_id=job["id"]) is None  # running jobs only
    assert value(samples, "videoapi_jobs", host=here, status="running") == 0
    assert value(samples, "videoapi_jobs_started_recently", host=here) == 1
    # the worker's own histogram of the wait (its multiprocess file), summed by gunicorn's scrape
    assert value(samples, "videoapi_job_wait_seconds_count", host=here) == histogram + 1
    call(served.address, "GET", f"/api/jobs/{job['id']}/result", token)  # the download deletes the result
    assert wait_for(lambda: leftovers() == [] or None, 5) is not None
