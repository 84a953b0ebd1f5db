"""Two hosts on one PostgreSQL sharing one bucket (SeaweedFS): any host's worker runs any job, an upload made
through one host is used through the other, a result is had from either. Real gunicorn, real workers.

Runs in the PostgreSQL pass of scripts/test (two processes sharing a database is what PostgreSQL is for)."""

import contextlib
import json
import urllib.request
from pathlib import Path

import boto3
import pytest
from django.db import connection

from renders.models import RenderLog

from .. import media
from ..conftest import leftovers, wait_for
from ..jobclient import ASYNC, call, poll, submit
from ..server import gunicorn, render_worker

pytestmark = [pytest.mark.server, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def hosts(django_db_setup, object_store, tmp_path_factory):
    """host-a and host-b: their own temp roots and state, one database, one bucket; no worker yet."""
    if connection.vendor != "postgresql":
        pytest.skip("runs in the PostgreSQL pass of scripts/test: the two hosts share one PostgreSQL database")
    workdir = tmp_path_factory.mktemp("object-hosts")
    with contextlib.ExitStack() as exits:
        found = {}
        for name in ("host-a", "host-b"):
            env = {"VIDEOAPI_HOST_ID": name, "VIDEOAPI_TEMP_ROOT": str(workdir / name / "renders"),
                   "VIDEOAPI_STATE_DIR": str(workdir / name / "state"), "VIDEOAPI_SWEEP_GRACE": "0",
                   "VIDEOAPI_STORAGE": "s3", "VIDEOAPI_S3_BUCKET": object_store.bucket,
                   "VIDEOAPI_S3_ENDPOINT_URL": object_store.endpoint_url, "VIDEOAPI_S3_REGION": object_store.region,
                   "AWS_ACCESS_KEY_ID": object_store.access_key, "AWS_SECRET_ACCESS_KEY": object_store.secret_key}
            address, _proc = exits.enter_context(gunicorn(env, workers=2, threads=4))
            found[name] = {"address": address, "env": env, "root": workdir / name / "renders"}
        yield found


def object_keys(hosts) -> list[str]:
    env = hosts["host-a"]["env"]
    client = boto3.client(
        "s3", endpoint_url=env["VIDEOAPI_S3_ENDPOINT_URL"], region_name=env["VIDEOAPI_S3_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"])
    found = client.list_objects_v2(Bucket=env["VIDEOAPI_S3_BUCKET"]).get("Contents", [])
    return [entry["Key"] for entry in found]


def workspaces(host):
    root = host["root"]
    return sorted(p.name for p in root.iterdir() if p.name not in (".slots", "uploads")) if root.exists() else []


def test_a_job_sent_to_one_host_is_rendered_by_the_others_worker(hosts, token, clips, tmp_path):
    a, b = hosts["host-a"], hosts["host-b"]
    with render_worker(b["env"]):  # only host-b has a worker
        status, _head, job = submit(a["address"], token, fields={"video": clips.basic, "start": "0.5"})
        assert status == 202, job
        assert workspaces(a) == []  # its files went to the bucket: nothing waits on host-a's disk
        job, _seen = poll(a["address"], token, job["id"])
    assert job["status"] == "succeeded", job
    log = RenderLog.objects.get(pk=job["id"])
    assert log.host == "host-b" and log.result["object"].startswith(f"jobs/{log.pk}/result/")
    for host in (a, b):  # either host answers with the presigned URL of the one object
        status, head, _body = call(host["address"], "GET", f"/api/jobs/{log.pk}/result", token)
        assert status == 302, _body
        with urllib.request.urlopen(head["location"], timeout=30) as fetched:  # noqa: S310  (loopback store)
            body = fetched.read()
        assert len(body) == log.output_size
    (tmp_path / "o.mp4").write_bytes(body)
    assert abs(media.probe(tmp_path / "o.mp4")["frames"] / 25 - 1.5) <= 1 / 25
    assert workspaces(a) == [] and workspaces(b) == []
    assert call(b["address"], "DELETE", f"/api/jobs/{log.pk}", token)[0] == 204  # its result object goes now
    assert not [key for key in object_keys(hosts) if str(log.pk) in key]


def test_an_upload_through_one_host_is_used_through_the_other(hosts, token, clips, tmp_path):
    a, b = hosts["host-a"], hosts["host-b"]
    status, _head, body = call(a["address"], "POST", "/api/uploads", token, fields={"file": clips.basic})
    assert status == 201, body
    upload_id = json.loads(body)["id"]
    status, _head, body = call(b["address"], "POST", "/api/trim", token,
                               fields={"video": f"upload:{upload_id}", "start": "1"})
    assert status == 200, body[:300]
    (tmp_path / "o.mp4").write_bytes(body)
    assert abs(media.probe(tmp_path / "o.mp4")["frames"] / 25 - 1.0) <= 1 / 25
    assert call(b["address"], "DELETE", f"/api/uploads/{upload_id}", token)[0] == 204
    assert call(a["address"], "GET", f"/api/uploads/{upload_id}", token)[0] == 404


def test_a_burst_sent_to_one_host_is_shared_by_both_workers(hosts, token, clips):
    """Eight jobs, all sent to host-a, with a worker on each host: both take some (how evenly, and what that
    means for speed, is measured by bench/objects.py, not asserted here)."""
    a, b = hosts["host-a"], hosts["host-b"]
    with render_worker(a["env"]), render_worker(b["env"]):
        ids = []
        for _ in range(8):
            status, _head, job = submit(a["address"], token, fields={"video": clips.basic, "start": "0"},
                                        headers=ASYNC)
            assert status == 202, job
            ids.append(job["id"])
        for job_id in ids:
            job, _seen = poll(a["address"], token, job_id)
            assert job["status"] == "succeeded", job
    rendered_by = [RenderLog.objects.get(pk=job_id).host for job_id in ids]
    assert set(rendered_by) == {"host-a", "host-b"}, rendered_by
    for job_id in ids:  # read once: each result object goes at its TTL; cancel deletes it now
        assert call(b["address"], "DELETE", f"/api/jobs/{job_id}", token)[0] == 204
    assert not [key for key in object_keys(hosts) if any(job_id in key for job_id in ids)]
    assert wait_for(lambda: leftovers() == [] or None, 5) is not None
    assert not any(Path(RenderLog.objects.get(pk=job_id).workspace).exists() for job_id in ids)
