"""Object storage (VIDEOAPI_STORAGE=s3) on a real S3 store (SeaweedFS on loopback): uploads as objects, a job's
inputs and result in the bucket, the result answered by a presigned redirect or streamed, every lifetime rule."""

import json
import urllib.request
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from renders.lifecycle import jobs, objects, storage, worker
from renders.lifecycle.sweep import sweep
from renders.models import RenderLog

from .. import media
from ..conftest import post, save

pytestmark = pytest.mark.django_db(transaction=True)  # the worker closes its connection when a job ends
FRAME = 1 / 25


def keys(prefix=""):
    return sorted(storage.keys(prefix))


def job_keys(job_id):
    return keys(f"jobs/{job_id}/")


def submit_trim(api, clips, **fields):
    r = post(api, "/api/trim", {"video": clips.basic, "start": "0.5", **fields}, HTTP_PREFER="respond-async")
    assert r.status_code == 202, r.body[:300]
    return json.loads(r.body)["id"]


def test_an_upload_is_an_object_used_by_renders(api, clips, s3_storage, tmp_path):
    with open(clips.basic, "rb") as handle:
        r = api.post("/api/uploads", {"file": handle}, format="multipart")
    assert r.status_code == 201, r.content[:300]
    upload_id = r.json()["id"]
    assert keys("uploads/") == [f"uploads/{upload_id}"]
    assert storage.size(f"uploads/{upload_id}") == clips.basic.stat().st_size
    r = post(api, "/api/trim", {"video": f"upload:{upload_id}", "start": "1"})
    assert r.status_code == 200, r.body[:300]
    assert abs(media.probe(save(r, tmp_path / "o.mp4"))["frames"] * FRAME - 1.0) <= FRAME
    assert api.delete(f"/api/uploads/{upload_id}").status_code == 204
    assert keys("uploads/") == []


def test_a_job_goes_through_the_store_and_its_result_is_a_presigned_redirect(api, clips, s3_storage, tmp_path):
    job_id = submit_trim(api, clips)
    log = RenderLog.objects.get(pk=job_id)
    # queued on the one shared queue, its files in the store, nothing on this host's disk
    assert DBTaskResult.objects.get(id=log.task_id).queue_name == "shared-jobs"
    assert [key.rsplit("/", 1)[1] for key in job_keys(job_id)] == [Path(log.params["video"]["name"]).name]
    assert not Path(log.workspace).exists()
    worker.run(job_id)
    log = RenderLog.objects.get(pk=job_id)
    assert log.status == "succeeded", log.error_message
    assert job_keys(job_id) == [log.result["object"]] and log.result["object"].startswith(f"jobs/{job_id}/result/")
    assert not Path(log.workspace).exists()  # the worker's own workspace is gone too
    r = api.get(f"/api/jobs/{job_id}/result")
    assert r.status_code == 302 and r["Cache-Control"] == "no-store" and r["X-Render-Id"] == job_id
    with urllib.request.urlopen(r["Location"], timeout=30) as fetched:  # noqa: S310  (the store on loopback)
        body = fetched.read()
        assert fetched.headers["Content-Type"] == "video/mp4"
        assert log.result["filename"] in fetched.headers["Content-Disposition"]
    assert len(body) == log.output_size
    (tmp_path / "o.mp4").write_bytes(body)
    assert abs(media.probe(tmp_path / "o.mp4")["frames"] * FRAME - 1.5) <= FRAME
    # the result lives until its TTL, then the object goes
    RenderLog.objects.filter(pk=job_id).update(result_expires_at=timezone.now() - timedelta(seconds=1))
    assert api.get(f"/api/jobs/{job_id}").json()["status"] == "expired"
    assert job_keys(job_id) == []
    assert api.get(f"/api/jobs/{job_id}/result").status_code == 410


def test_a_streamed_result_honours_range_and_goes_once_downloaded(api, clips, s3_storage, settings):
    settings.VIDEOAPI_S3_PROXY = True
    job_id = submit_trim(api, clips)
    worker.run(job_id)
    log = RenderLog.objects.get(pk=job_id)
    r = api.get(f"/api/jobs/{job_id}/result", HTTP_RANGE="bytes=0-99")
    assert r.status_code == 206 and r["Content-Range"] == f"bytes 0-99/{log.output_size}"
    head = b"".join(r.streaming_content)
    r.close()
    assert len(head) == 100 and head[4:8] == b"ftyp"
    assert job_keys(job_id) == [log.result["object"]]  # part of it: kept
    r = api.get(f"/api/jobs/{job_id}/result", HTTP_RANGE="bytes=100-")
    rest = b"".join(r.streaming_content)
    r.close()
    assert len(head + rest) == log.output_size
    assert job_keys(job_id) == []  # every byte delivered: the object is gone
    assert api.get(f"/api/jobs/{job_id}/result").status_code == 410


def test_cancel_and_failure_leave_no_object(api, clips, s3_storage, settings):
    job_id = submit_trim(api, clips)
    assert job_keys(job_id)
    assert api.delete(f"/api/jobs/{job_id}").status_code == 204
    assert job_keys(job_id) == []
    job_id = submit_trim(api, clips)
    for key in job_keys(job_id):  # its input lost from the store: the render fails, and leaves nothing
        storage.delete(key)
    storage.put_file(f"jobs/{job_id}/input/stray.txt", Path(__file__))
    worker.run(job_id)
    log = RenderLog.objects.get(pk=job_id)
    assert log.status == "failed" and log.error_code == "render_failed"
    assert job_keys(job_id) == [] and not Path(log.workspace).exists()


def test_sweep_deletes_what_no_live_job_needs(api, clips, s3_storage, tmp_path):
    live = submit_trim(api, clips)
    stray = tmp_path / "stray.bin"
    stray.write_bytes(b"left by a worker that died")
    dead = uuid.uuid4()
    storage.put_file(f"jobs/{dead}/input/upload_1.bin", stray)
    storage.put_file("jobs/not-a-job/x", stray)
    report = sweep(grace=0)
    # (the session's bucket may hold what earlier tests left: their jobs' rows are gone, so it goes too)
    assert {f"jobs/{dead}/input/upload_1.bin", "jobs/not-a-job/x"} <= set(report.objects_deleted)
    assert not any(key.startswith(f"jobs/{live}/") for key in report.objects_deleted)
    assert job_keys(live)  # queued: its inputs stay
    jobs.cancel(RenderLog.objects.get(pk=live))
    assert keys("jobs/") == []


def test_a_store_that_is_down_is_503_and_keeps_nothing(api, clips, s3_storage, settings, monkeypatch):
    from ..conftest import use_s3

    use_s3(settings, monkeypatch, s3_storage, endpoint_url="http://127.0.0.1:9")
    r = post(api, "/api/trim", {"video": clips.basic, "start": "0.5"}, HTTP_PREFER="respond-async")
    assert r.status_code == 503 and json.loads(r.body)["code"] == "unavailable"
    assert not RenderLog.objects.filter(is_job=True, status="queued").exists()
    assert objects.enabled()


def test_output_url_to_a_presigned_put_of_a_bucket(api, clips, object_store, settings):
    """The client presigns a PUT with boto3 for its own bucket; the job's result lands there, byte for byte
    what the service rendered, and the service keeps nothing (the local mode: the store is only the client's)."""
    settings.VIDEOAPI_FETCH_ALLOW_PRIVATE = True  # the client's store is on loopback here
    client = object_store.client()
    key = f"client-results/{uuid.uuid4()}.mp4"
    url = client.generate_presigned_url("put_object", Params={"Bucket": object_store.bucket, "Key": key},
                                        ExpiresIn=600)
    r = post(api, "/api/trim", {"video": clips.basic, "start": "0.5", "output_url": url})
    assert r.status_code == 202, r.body[:300]
    job_id = json.loads(r.body)["id"]
    worker.run(job_id)
    log = RenderLog.objects.get(pk=job_id)
    assert log.status == "succeeded", log.error_message
    stored = client.get_object(Bucket=object_store.bucket, Key=key)["Body"].read()
    assert len(stored) == log.output_size and stored[4:8] == b"ftyp"
    assert log.result["delivered_to"] == url.split("?")[0]
    assert not Path(log.workspace).exists()
    client.delete_object(Bucket=object_store.bucket, Key=key)


def test_a_wrongly_signed_put_fails_the_job_for_good(api, clips, object_store, settings):
    settings.VIDEOAPI_FETCH_ALLOW_PRIVATE = True
    settings.VIDEOAPI_DELIVERY_RETRY_DELAYS = (0.1,)
    client = object_store.client(secret_key="not-the-secret")  # signed with the wrong key: refused (403)
    url = client.generate_presigned_url("put_object", Params={"Bucket": object_store.bucket, "Key": "x.mp4"},
                                        ExpiresIn=600)
    r = post(api, "/api/trim", {"video": clips.basic, "start": "0.5", "output_url": url})
    job_id = json.loads(r.body)["id"]
    worker.run(job_id)
    log = RenderLog.objects.get(pk=job_id)
    assert (log.status, log.error_code) == ("failed", "delivery_failed") and "403" in log.error_message
    assert not Path(log.workspace).exists()
