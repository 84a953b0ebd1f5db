"""Jobs (asynchronous renders) through a real gunicorn and a real render_worker, on the test database.

One gunicorn and one worker serve the module; tests that stop, kill or
reconfigure a worker start their own.
"""

import http.client
import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest
from django.conf import settings

from renders.models import RenderLog

from . import media
from .conftest import leftovers, wait_for
from .server import gunicorn, multipart, render_worker

pytestmark = [pytest.mark.server, pytest.mark.django_db(transaction=True)]

ASYNC = {"Prefer": "respond-async"}


def call(address, method, path, token=None, fields=None, headers=None, timeout=60):
    """One HTTP request on its own connection: (status, headers (lower-case names), body)."""
    host, port = address.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    head = dict(headers or {})
    if token:
        head["Authorization"] = f"Token {token}"
    body = None
    if fields is not None:
        body, head["Content-Type"] = multipart(fields)
    try:
        conn.request(method, path, body=body, headers=head)
        response = conn.getresponse()
        data = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, data
    finally:
        conn.close()


def submit(address, token, path="/api/trim", fields=None, headers=None):
    status, head, body = call(address, "POST", path, token, fields, {**ASYNC, **(headers or {})})
    return status, head, json.loads(body)


def poll(address, token, job_id, until=("succeeded", "failed", "cancelled", "expired"), seconds=60):
    seen = []

    def done():
        status, _head, body = call(address, "GET", f"/api/jobs/{job_id}", token)
        assert status == 200, body
        job = json.loads(body)
        seen.append(job)
        return job if job["status"] in until else None

    job = wait_for(done, seconds)
    assert job, f"job {job_id} never reached {until}: {seen[-1:]}"
    return job, seen


@pytest.fixture(scope="module")
def service():
    with gunicorn() as (address, _proc), render_worker() as worker:
        yield address, worker


def test_submit_poll_download_then_gone(service, token, clips, tmp_path):
    address, _worker = service
    status, head, job = submit(address, token, fields={"video": clips.basic, "start": "0.5", "end": "1.5"})
    assert status == 202, job
    assert head["location"] == f"/api/jobs/{job['id']}"
    assert head["preference-applied"] == "respond-async" and head["x-render-id"] == job["id"]
    assert job["status"] == "queued" and job["endpoint"] == "trim" and job["result"] is None
    job, _seen = poll(address, token, job["id"])
    assert job["status"] == "succeeded" and job["progress"] == 1 and job["error"] is None
    result = job["result"]
    assert result["url"] == f"http://{address}/api/jobs/{job['id']}/result"
    assert result["content_type"] == "video/mp4" and result["filename"].endswith(".mp4")
    status, head, body = call(address, "GET", f"/api/jobs/{job['id']}/result", token)
    assert status == 200 and len(body) == result["bytes"] == int(head["content-length"])
    assert head["x-trim-start"] == "0.5" and head["cache-control"] == "no-store"
    assert result["filename"] in head["content-disposition"] and head["accept-ranges"] == "bytes"
    (tmp_path / "out.mp4").write_bytes(body)
    out = media.probe(tmp_path / "out.mp4")
    assert out["vcodec"] == "h264" and abs(out["frames"] / 25 - 1.0) <= 1 / 25
    assert wait_for(lambda: leftovers() == [] or None, 5) is not None
    status, _head, body = call(address, "GET", f"/api/jobs/{job['id']}/result", token)
    assert status == 410 and json.loads(body)["code"] == "gone"
    log = RenderLog.objects.get(pk=job["id"])
    assert log.result_downloaded_at and log.cleanup_status == "deleted" and log.is_job


def test_validation_errors_stay_synchronous(service, token, clips):
    address, _worker = service
    for fields, code in [({"video": clips.text, "start": "0"}, 415), ({"video": clips.basic, "start": "x"}, 400)]:
        status, head, body = call(address, "POST", "/api/trim", token, fields, ASYNC)
        assert status == code, body
        assert "location" not in head
    status, _head, body = call(address, "GET", "/api/jobs", token)
    assert status == 200 and json.loads(body)["results"] == []
    assert leftovers() == []
