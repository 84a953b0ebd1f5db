"""Results delivered to the client's own storage (renders.lifecycle.delivery) against a real HTTP server on
loopback that records every PUT (tests/destination.py), and one job run in process that delivers its result.

The server is allowed by VIDEOAPI_FETCH_ALLOW_PRIVATE (the `private_ok` fixture); the test of the address
rule turns it off. Waits between attempts go to a recorder, never to the clock.
"""

import json
import os
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone

from renders.errors import CODES, DeliveryFailed, InvalidInput
from renders.lifecycle import jobs, worker
from renders.lifecycle.delivery import check_destination, deliver
from renders.models import RenderLog
from renders.representation import job_json

from ..conftest import post
from ..destination import HANG_SECONDS, receiving

DATA = os.urandom(300 * 1024 + 7)  # many of the sender's blocks, not a round number
# a presigned query: percent-escapes, a plus, an empty value, an order that must stay as it is
QUERY = ("X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIA%2F20261204%2Fus-east-1%2Fs3%2Faws4_request"
         "&X-Amz-SignedHeaders=host&empty=&plus=a+b&X-Amz-Signature=0f%2B1e%3D")


@pytest.fixture
def private_ok(settings):
    settings.VIDEOAPI_FETCH_ALLOW_PRIVATE = True
    settings.VIDEOAPI_DELIVERY_RETRY_DELAYS = (2.0, 10.0, 30.0)


@pytest.fixture
def destination(private_ok):
    with receiving() as server:
        yield server


@pytest.fixture
def result_file(tmp_path) -> Path:
    path = tmp_path / "output.mp4"
    path.write_bytes(DATA)
    return path


class Waits(list):
    """The injected sleep: records each delay, waits for none."""

    def __call__(self, seconds):
        self.append(seconds)


def put(path, url, headers=None, content_type="video/mp4", **more):
    waits = Waits()
    try:
        return deliver(path, url, headers or {}, content_type, sleep=waits, **more), waits
    except DeliveryFailed as exc:
        exc.waits = waits
        raise


# ---- the PUT -------------------------------------------------------------------------------------------


def test_the_body_arrives_byte_exact_with_its_length_and_the_query_untouched(destination, result_file):
    result, waits = put(result_file, f"{destination.url}/ok/bucket/out.mp4?{QUERY}", filename="trim.mp4")
    [received] = destination.puts
    assert received.path == f"/ok/bucket/out.mp4?{QUERY}"
    assert received.body == DATA
    assert received.headers["content-length"] == str(len(DATA)) and "transfer-encoding" not in received.headers
    assert received.headers["content-type"] == "video/mp4"
    assert result == {"delivered_to": f"{destination.url}/ok/bucket/out.mp4", "bytes": len(DATA),
                      "content_type": "video/mp4", "filename": "trim.mp4"}
    assert waits == []


def test_output_headers_are_sent_and_may_replace_the_content_type(destination, result_file):
    headers = {"x-amz-meta-owner": "client 7", "x-ms-blob-type": "BlockBlob", "Content-Type": "application/x-mine"}
    put(result_file, f"{destination.url}/ok/a.mp4", headers)
    [received] = destination.puts
    assert received.headers["x-amz-meta-owner"] == "client 7"
    assert received.headers["x-ms-blob-type"] == "BlockBlob"
    assert received.headers["content-type"] == "application/x-mine"
    assert received.headers["host"] == destination.url.removeprefix("http://")


def test_a_5xx_is_retried_after_each_delay(destination, result_file):
    result, waits = put(result_file, f"{destination.url}/flaky2/a.mp4?{QUERY}")
    assert waits == [2.0, 10.0]
    assert [p.body == DATA for p in destination.to("/flaky2/a.mp4")] == [True, True, True]
    assert all(p.path.endswith(QUERY) for p in destination.puts)
    assert result["delivered_to"] == f"{destination.url}/flaky2/a.mp4"


def test_a_429_is_retried(destination, result_file):
    _result, waits = put(result_file, f"{destination.url}/busy/a.mp4")
    assert waits == [2.0] and len(destination.to("/busy/a.mp4")) == 2


def test_a_5xx_forever_fails_after_four_attempts(destination, result_file):
    with pytest.raises(DeliveryFailed) as failed:
        put(result_file, f"{destination.url}/fail/a.mp4")
    assert failed.value.waits == [2.0, 10.0, 30.0]
    assert len(destination.to("/fail/a.mp4")) == 4
    assert "500 Internal Server Error" in str(failed.value.detail) and "4 attempts" in str(failed.value.detail)
    assert failed.value.status_code == CODES["delivery_failed"].status == 502
    assert failed.value.default_code == "delivery_failed"


def test_a_403_is_final_at_once_and_names_the_storages_reason(destination, result_file):
    with pytest.raises(DeliveryFailed) as failed:
        put(result_file, f"{destination.url}/deny/a.mp4?{QUERY}")
    assert failed.value.waits == [] and len(destination.puts) == 1
    assert "403 Forbidden (SignatureDoesNotMatch)" in str(failed.value.detail)
    assert "X-Amz" not in str(failed.value.detail)  # the signature is never repeated


def test_a_redirect_is_not_followed(destination, result_file):
    with pytest.raises(DeliveryFailed) as failed:
        put(result_file, f"{destination.url}/moved/a.mp4")
    assert "307" in str(failed.value.detail) and "redirects are not followed" in str(failed.value.detail)
    assert failed.value.waits == [] and destination.to("/ok/a.mp4") == [] and len(destination.puts) == 1


def test_a_private_address_is_refused_without_the_setting(destination, result_file, settings):
    settings.VIDEOAPI_FETCH_ALLOW_PRIVATE = False
    with pytest.raises(DeliveryFailed) as failed:
        put(result_file, f"{destination.url}/ok/a.mp4")
    assert "loopback" in str(failed.value.detail) and "public addresses only" in str(failed.value.detail)
    assert failed.value.waits == [] and destination.puts == []


def test_a_refused_connection_is_retried_then_fails(private_ok, result_file):
    with receiving() as gone:
        url = f"{gone.url}/ok/a.mp4"
    with pytest.raises(DeliveryFailed) as failed:
        put(result_file, url)
    assert failed.value.waits == [2.0, 10.0, 30.0]
    assert "the connection was refused" in str(failed.value.detail)


def test_each_attempt_is_bounded_by_the_fetch_timeout(destination, result_file, settings):
    settings.VIDEOAPI_FETCH_TIMEOUT = 0.5
    settings.VIDEOAPI_DELIVERY_RETRY_DELAYS = (1.0,)
    with pytest.raises(DeliveryFailed) as failed:
        put(result_file, f"{destination.url}/slow/a.mp4")
    assert failed.value.waits == [1.0] and len(destination.to("/slow/a.mp4")) == 2
    assert "longer than 0.5 s" in str(failed.value.detail)
    assert HANG_SECONDS > 0.5 * 4  # the server would have answered, had the client waited


# ---- the form --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("headers", [
    {"Host": "elsewhere"}, {"content-length": "1"}, {"Transfer-Encoding": "chunked"}, {"Connection": "close"},
    {"x-a": "1", "X-A": "2"}, {"bad name": "1"}, {"x-a": 1}, {"x-a": "line\r\nInjected: 1"}, ["x-a"],
    "not json", '["x-a"]', {f"x-{i}": "1" for i in range(51)},
])
def test_bad_output_headers_are_refused_naming_the_field(headers):
    with pytest.raises(InvalidInput) as refused:
        check_destination("https://storage.example.com/a.mp4", headers)
    assert list(refused.value.fields) == ["output_headers"]
    assert str(refused.value.detail).startswith("output_headers: ")


@pytest.mark.parametrize("url", ["ftp://example.com/a", "https://user:pw@example.com/a", "https://exa mple.com/",
                                 "", None, "https://example.com:99999/a"])
def test_a_bad_output_url_is_refused_naming_the_field(url):
    with pytest.raises(InvalidInput) as refused:
        check_destination(url, None)
    assert list(refused.value.fields) == ["output_url"]


def test_a_good_destination_is_taken_as_given():
    url = f"https://bucket.s3.amazonaws.com/out.mp4?{QUERY}"
    assert check_destination(url, '{"x-amz-acl": "private"}') == (url, {"x-amz-acl": "private"})
    assert check_destination(url, None) == (url, {})
    assert check_destination(url, {"Content-Type": "video/mp4"}, field="output.url") == (
        url, {"Content-Type": "video/mp4"})


# ---- a job that delivers ---------------------------------------------------------------------------------


def submitted(api, clips, destination_url, headers):
    """A trim sent with `output_url` (and `output_headers`): a job, without asking for one."""
    fields = {"video": clips.basic, "start": "0", "output_url": destination_url}
    if headers:
        fields["output_headers"] = json.dumps(headers)
    r = post(api, "/api/trim", fields)
    assert r.status_code == 202, r.body[:300]
    log = RenderLog.objects.get(pk=r.data["id"])
    assert log.delivery == {"url": destination_url, "headers": headers}
    return r.data["id"]


def test_the_form_fields_are_checked_before_anything_is_queued(api, clips):
    r = post(api, "/api/trim", {"video": clips.basic, "start": "0", "output_url": "ftp://example.com/a"})
    assert r.status_code == 400 and list(r.json()["fields"]) == ["output_url"]
    r = post(api, "/api/trim", {"video": clips.basic, "start": "0", "output_headers": '{"x-a": "1"}'})
    assert r.status_code == 400 and r.json()["fields"] == {"output_headers": ["only with output_url"]}
    r = post(api, "/api/trim", {"video": clips.basic, "start": "0", "output_url": "https://example.com/a",
                                "output_headers": '{"Host": "evil"}'})
    assert r.status_code == 400 and list(r.json()["fields"]) == ["output_headers"]
    log = RenderLog.objects.get(pk=r["X-Render-Id"])
    assert "evil" not in json.dumps(log.params)  # the headers are never recorded
    assert not RenderLog.objects.filter(is_job=True).exists()


@pytest.mark.django_db(transaction=True)
def test_a_composition_delivers_and_its_headers_are_not_recorded(api, destination):
    url = f"{destination.url}/ok/compose.mp4?{QUERY}"
    edit = {"timeline": {"tracks": [{"clips": [{"asset": {"type": "color", "color": "#FF0000"}, "start": 0,
                                                 "length": 1}]}]},
            "output_url": url, "output_headers": {"x-amz-acl": "private", "x-token": "s3cr3t-value"}}
    r = api.post("/api/compose", edit, format="json")
    assert r.status_code == 202, r.content[:300]
    job_id = r.json()["id"]
    log = RenderLog.objects.get(pk=job_id)
    assert "s3cr3t-value" not in json.dumps(log.params)
    assert log.params["edit"]["output_headers"] == {"x-amz-acl": "[not recorded]", "x-token": "[not recorded]"}
    worker.run(job_id)
    [received] = destination.puts
    assert received.headers["x-token"] == "s3cr3t-value" and received.path == f"/ok/compose.mp4?{QUERY}"
    assert api.get(f"/api/jobs/{job_id}").json()["result"]["delivered_to"] == f"{destination.url}/ok/compose.mp4"


@pytest.mark.django_db(transaction=True)  # the worker closes its connection when the job ends
def test_a_job_delivers_its_result_and_keeps_nothing(api, clips, destination):
    url = f"{destination.url}/ok/jobs/out.mp4?{QUERY}"
    job_id = submitted(api, clips, url, {"x-secret-token": "s3cr3t"})
    worker.run(job_id)
    log = RenderLog.objects.get(pk=job_id)
    assert log.status == "succeeded", log.error_message
    [received] = destination.puts
    assert received.path == f"/ok/jobs/out.mp4?{QUERY}" and received.headers["x-secret-token"] == "s3cr3t"
    assert len(received.body) == log.output_size > 1000 and received.body[4:8] == b"ftyp"
    assert not Path(log.workspace).exists()
    job = api.get(f"/api/jobs/{job_id}").json()
    assert job["status"] == "succeeded"
    assert job["result"] == {"delivered_to": f"{destination.url}/ok/jobs/out.mp4", "bytes": log.output_size,
                             "content_type": "video/mp4", "filename": log.result["filename"]}
    assert job_json(log)["result"] == job["result"]  # the webhook's payload says the same
    assert "s3cr3t" not in json.dumps(job) and "X-Amz" not in json.dumps(job)
    gone = api.get(f"/api/jobs/{job_id}/result")
    assert gone.status_code == 410 and "output_url" in gone.json()["detail"]
    assert api.delete(f"/api/jobs/{job_id}").status_code == 204
    assert RenderLog.objects.get(pk=job_id).status == "succeeded"  # delivered: nothing left to cancel


@pytest.mark.django_db(transaction=True)
def test_a_job_whose_delivery_is_refused_fails_delivery_failed(api, clips, destination):
    job_id = submitted(api, clips, f"{destination.url}/deny/out.mp4", {})
    worker.run(job_id)
    log = RenderLog.objects.get(pk=job_id)
    assert (log.status, log.http_status, log.error_code) == ("failed", 502, "delivery_failed")
    assert not Path(log.workspace).exists()
    job = api.get(f"/api/jobs/{job_id}").json()
    assert job["status"] == "failed" and job["error"]["code"] == "delivery_failed"
    assert "403 Forbidden" in job["error"]["detail"]
    answer = api.get(f"/api/jobs/{job_id}/result")
    assert answer.status_code == 502 and answer.json()["code"] == "delivery_failed"


@pytest.mark.django_db(transaction=True)
def test_a_job_retries_in_the_worker_with_its_lease_kept(api, clips, destination, settings):
    settings.VIDEOAPI_DELIVERY_RETRY_DELAYS = (0.3,)
    job_id = submitted(api, clips, f"{destination.url}/flaky1/out.mp4", {})
    leases = []

    def lease(_put):  # the storage's thread: the job's lease as each attempt runs
        leases.append(RenderLog.objects.get(pk=job_id).lease_expires_at - timezone.now())
        connection.close()

    destination.on_put = lease
    worker.run(job_id)
    assert RenderLog.objects.get(pk=job_id).status == "succeeded"
    assert len(destination.to("/flaky1/out.mp4")) == 2
    covers = timedelta(seconds=settings.VIDEOAPI_JOB_LEASE + settings.VIDEOAPI_FETCH_TIMEOUT - 5)
    assert len(leases) == 2 and all(left > covers for left in leases)  # an attempt never outlives the lease


@pytest.mark.django_db(transaction=True)
def test_a_job_cancelled_while_its_delivery_waits_stops_retrying(api, clips, destination, settings):
    settings.VIDEOAPI_DELIVERY_RETRY_DELAYS = (0.3, 0.3, 0.3)
    job_id = submitted(api, clips, f"{destination.url}/fail/out.mp4", {})

    def cancel(_put):  # the client's DELETE, while the first attempt is answered 500
        jobs.cancel(RenderLog.objects.get(pk=job_id))
        connection.close()

    destination.on_put = cancel
    worker.run(job_id)
    log = RenderLog.objects.get(pk=job_id)
    assert log.status == "cancelled" and len(destination.puts) == 1
    assert not Path(log.workspace).exists()


@pytest.mark.django_db(transaction=True)
def test_a_worker_stopping_at_once_is_heard_between_attempts(api, clips, destination, settings):
    settings.VIDEOAPI_DELIVERY_RETRY_DELAYS = (0.3, 0.3, 0.3)
    job_id = submitted(api, clips, f"{destination.url}/fail/out.mp4", {})
    worker.run(job_id, abandon=lambda: bool(destination.puts))  # the second SIGTERM came with the first PUT
    log = RenderLog.objects.get(pk=job_id)
    assert (log.status, log.error_code) == ("failed", "worker_lost") and len(destination.puts) == 1
    assert not Path(log.workspace).exists()


def test_the_admin_shows_the_destination_without_its_secrets():
    from django.contrib import admin

    log = RenderLog(delivery={"url": f"https://bucket.example.com/out.mp4?{QUERY}",
                              "headers": {"x-amz-security-token": "s3cr3t", "x-amz-acl": "private"}})
    shown = admin.site._registry[RenderLog].delivery_shown(log)
    assert "https://bucket.example.com/out.mp4?…" in shown and "x-amz-security-token" in shown
    assert "s3cr3t" not in shown and "private" not in shown and "Signature" not in shown
    assert admin.site._registry[RenderLog].delivery_shown(RenderLog()) == "-"
