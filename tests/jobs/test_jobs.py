"""Jobs (asynchronous renders) through a real gunicorn and a real render_worker, on the test database.

One gunicorn and one worker serve the module; tests that stop, kill or
reconfigure a worker start their own.
"""

import json
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
from django.conf import settings

from renders.lifecycle.sweep import processes_inside, sweep
from renders.models import RenderLog

from .. import media
from ..conftest import leftovers, wait_for
from ..jobclient import ASYNC, call, poll, submit
from ..server import gunicorn, read_head
from ..sources import serving

pytestmark = [pytest.mark.server, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def service(served):
    """The module's gunicorn with a plain worker running."""
    served.start_worker()
    return served.address, served.worker


def test_submit_poll_download_then_gone(service, token, clips, tmp_path):
    address, _worker = service
    status, head, job = submit(address, token, fields={"video": clips.basic, "start": "0.5", "end": "1.5"})
    assert status == 202, job
    assert head["location"] == f"/api/jobs/{job['id']}"
    assert head["preference-applied"] == "respond-async" and head["x-render-id"] == job["id"]
    assert job["status"] == "queued" and job["endpoint"] == "trim" and job["result"] is None
    job, _seen = poll(address, token, job["id"])
    assert job["status"] == "succeeded" and job["progress"] == 1 and job["error"] is None
    assert wait_for(lambda: _task(RenderLog.objects.get(pk=job["id"]).task_id).status == "SUCCESSFUL" or None, 5)
    result = job["result"]
    workspace = Path(RenderLog.objects.get(pk=job["id"]).workspace)
    # only the result is kept for the download: the upload, the graph and any text images are gone
    assert sorted(p.name for p in workspace.iterdir()) == sorted([".job", ".lock", RenderLog.objects.get(
        pk=job["id"]).result["file"]])
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
    status, head, body = call(address, "GET", f"/api/jobs/{job['id']}/result", token)
    assert status == 410 and json.loads(body)["code"] == "gone"
    assert json.loads(body)["render_id"] == head["x-render-id"] == job["id"]  # every answer past auth names it
    log = RenderLog.objects.get(pk=job["id"])
    assert log.result_downloaded_at and log.cleanup_status == "deleted" and log.is_job
    # once downloaded, the result's expiry is the download: the API and the admin (the row) say the same
    shown = json.loads(call(address, "GET", f"/api/jobs/{job['id']}", token)[2])["result"]
    assert shown["expires_at"] == shown["downloaded_at"]
    assert log.result_expires_at == log.result_downloaded_at
    assert shown["expires_at"] == log.result_expires_at.isoformat().replace("+00:00", "Z")


def test_validation_errors_stay_synchronous(service, token, clips):
    address, _worker = service
    for fields, code in [({"video": clips.text, "start": "0"}, 415), ({"video": clips.basic, "start": "x"}, 400)]:
        status, head, body = call(address, "POST", "/api/trim", token, fields, ASYNC)
        assert status == code, body
        assert "location" not in head
    status, _head, body = call(address, "GET", "/api/jobs", token)
    assert status == 200 and json.loads(body)["results"] == []
    assert leftovers() == []


def job_of(job_id):
    return RenderLog.objects.get(pk=job_id)


def test_progress_rises_with_an_eta_then_reaches_one(served, token, long_clip):
    served.slow()
    status, _head, job = submit(served.address, token, fields={"video": long_clip, "start": "0"})
    assert status == 202
    job, seen = poll(served.address, token, job["id"])
    assert job["status"] == "succeeded" and job["progress"] == 1.0
    running = [j["progress"] for j in seen if j["status"] == "running"]
    inside = sorted({p for p in running if 0 < p < 1})
    assert len(inside) >= 3, running
    assert running == sorted(running), "progress went back"
    assert any(j["eta_seconds"] is not None and j["eta_seconds"] > 0 for j in seen if j["status"] == "running")
    call(served.address, "GET", f"/api/jobs/{job['id']}/result", token)
    assert wait_for(lambda: leftovers() == [] or None, 5) is not None


def running_job(served, token, clip):
    status, _head, job = submit(served.address, token, fields={"video": clip, "start": "0"})
    assert status == 202, job
    job, _seen = poll(served.address, token, job["id"], until=("running",))
    assert wait_for(lambda: processes_inside(Path(job_of(job["id"]).workspace)), 10)
    return job


def test_cancel_a_running_job_kills_ffmpeg_within_a_second(served, token, long_clip):
    served.slow()
    job = running_job(served, token, long_clip)
    workspace = Path(job_of(job["id"]).workspace)
    status, _head, _body = call(served.address, "DELETE", f"/api/jobs/{job['id']}", token)
    assert status == 204
    asked = time.monotonic()
    assert wait_for(lambda: not processes_inside(workspace), 2)
    assert time.monotonic() - asked < 1.0
    assert wait_for(lambda: not workspace.exists(), 5)
    job, _seen = poll(served.address, token, job["id"])
    assert job["status"] == "cancelled" and job["result"] is None
    status, _head, body = call(served.address, "GET", f"/api/jobs/{job['id']}/result", token)
    assert status == 410 and json.loads(body)["code"] == "gone"
    assert leftovers() == []


def test_a_queued_job_cancelled_never_runs(served, token, clips):
    served.stop_worker()
    status, _head, job = submit(served.address, token, fields={"video": clips.basic, "start": "0"})
    workspace = Path(job_of(job["id"]).workspace)
    assert workspace.exists()
    status, _head, _body = call(served.address, "DELETE", f"/api/jobs/{job['id']}", token)
    assert status == 204 and not workspace.exists()  # the host that answered holds it: deleted at once
    served.start_worker()
    assert wait_for(lambda: job_of(job["id"]).task_id and _task(job_of(job["id"]).task_id).status != "READY", 10)
    log = job_of(job["id"])
    assert log.status == "cancelled" and log.render_started_at is None and log.ffmpeg_argv == []
    assert leftovers() == []


def _task(task_id):
    from django_tasks_db.models import DBTaskResult

    return DBTaskResult.objects.get(id=task_id)


def test_no_moment_for_the_sweep_between_request_and_worker(served, token, clips):
    served.stop_worker()
    status, _head, job = submit(served.address, token, fields={"video": clips.basic, "start": "0"})
    assert status == 202
    report = sweep(grace=0)
    assert report.deleted == [] and len(report.kept_jobs) == 1
    served.start_worker()
    job, _seen = poll(served.address, token, job["id"])
    assert job["status"] == "succeeded"
    status, _head, _body = call(served.address, "GET", f"/api/jobs/{job['id']}/result", token)
    assert status == 200
    assert wait_for(lambda: leftovers() == [] or None, 5) is not None


def test_jobs_queued_while_the_worker_is_stopped_run_when_it_starts(served, token, clips):
    served.stop_worker()
    ids = [submit(served.address, token, fields={"video": clips.basic, "start": "0", "end": "1"})[2]["id"]
           for _ in range(4)]
    time.sleep(0.5)
    assert {job_of(i).status for i in ids} == {"queued"}
    served.start_worker()
    for job_id in ids:
        job, _seen = poll(served.address, token, job_id)
        assert job["status"] == "succeeded"
        assert call(served.address, "GET", f"/api/jobs/{job_id}/result", token)[0] == 200
    assert wait_for(lambda: leftovers() == [] or None, 5) is not None


def test_a_worker_killed_mid_job_fails_it_worker_lost(served, token, long_clip):
    worker = served.slow()
    job = running_job(served, token, long_clip)
    log = job_of(job["id"])
    workspace = Path(log.workspace)
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait()
    served.stop_worker()
    assert wait_for(lambda: not processes_inside(workspace), 5), "FFmpeg outlived its worker"
    job, _seen = poll(served.address, token, job["id"], seconds=settings.VIDEOAPI_JOB_LEASE)
    assert job["status"] == "failed" and job["error"]["code"] == "worker_lost"
    status, _head, body = call(served.address, "GET", f"/api/jobs/{job['id']}/result", token)
    assert status == 500 and json.loads(body)["code"] == "worker_lost"
    assert _task(log.task_id).status == "FAILED"
    sweep()
    assert leftovers() == []


def test_a_lost_lease_on_any_host_fails_the_job(db):
    """Another host's worker stopped renewing its lease: any host's housekeeping fails the job."""
    from datetime import timedelta

    from django.utils import timezone

    from renders.lifecycle import jobs

    log = RenderLog.objects.create(endpoint="trim", host="another-host", is_job=True, status="rendering",
                                   lease_expires_at=timezone.now() - timedelta(seconds=1))
    fresh = RenderLog.objects.create(endpoint="trim", host="another-host", is_job=True, status="rendering",
                                     lease_expires_at=timezone.now() + timedelta(seconds=30))
    jobs.reap()
    assert job_of(log.pk).status == "failed" and job_of(log.pk).error_code == "worker_lost"
    assert job_of(fresh.pk).status == "rendering"


def test_result_expires_after_its_ttl(served, token, clips):
    served.start_worker(VIDEOAPI_JOB_RESULT_TTL=1)
    status, _head, job = submit(served.address, token, fields={"video": clips.basic, "start": "0"})
    job, _seen = poll(served.address, token, job["id"])
    assert job["status"] == "succeeded" and job["result"]["expires_at"]
    served.stop_worker()  # the sweep, not the worker's housekeeping, does it here
    time.sleep(1.2)
    from django.core.management import call_command

    call_command("sweep_temp")
    assert leftovers() == []
    job, _seen = poll(served.address, token, job["id"])
    assert job["status"] == "expired" and job["result"] is None
    status, _head, body = call(served.address, "GET", f"/api/jobs/{job['id']}/result", token)
    assert status == 410 and json.loads(body)["code"] == "gone"


def finished_job(served, token, clip, **fields):
    served.start_worker()
    _status, _head, job = submit(served.address, token, fields={"video": clip, "start": "0", **fields})
    job, _seen = poll(served.address, token, job["id"])
    assert job["status"] == "succeeded"
    return job


def test_an_interrupted_download_leaves_the_result_for_a_retry(served, token, big_clip, tmp_path):
    job = finished_job(served, token, big_clip, mode="fast")  # copied: several MB, more than socket buffers
    host, port = served.address.split(":")
    sock = socket.create_connection((host, int(port)))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
    sock.sendall(f"GET /api/jobs/{job['id']}/result HTTP/1.1\r\nHost: {served.address}\r\n"
                 f"Authorization: Token {token}\r\nConnection: close\r\n\r\n".encode())
    status, headers, _first = read_head(sock)
    assert status == 200 and int(headers["content-length"]) > 5_000_000
    sock.recv(8192)
    sock.close()
    time.sleep(0.5)
    assert job_of(job["id"]).result_downloaded_at is None and leftovers() != []
    status, _head, body = call(served.address, "GET", f"/api/jobs/{job['id']}/result", token)
    assert status == 200 and len(body) == job["result"]["bytes"]
    assert wait_for(lambda: leftovers() == [] or None, 5) is not None


def test_a_cut_download_resumed_with_curl_completes_the_result(served, token, tmp_path):
    """curl's own pattern: `--max-time` cuts the first download, `-C -` resumes from what reached the file.
    The cut download's bytes count: the resume completes the result, which then goes (no 200 again)."""
    # ~18 MB (under the tests' upload limit), copied by a fast trim: more than loopback's socket buffers hold
    huge = media.make(tmp_path / "huge.mp4", "-f", "lavfi", "-i",
                      "nullsrc=s=640x360:r=25:d=2.2,geq=random(1)*255:128:128",
                      "-c:v", "libx264", "-preset", "ultrafast", "-qp", "0", "-g", "25")
    job = finished_job(served, token, huge, mode="fast")
    url, size = f"http://{served.address}/api/jobs/{job['id']}/result", job["result"]["bytes"]
    assert size > 15_000_000  # the premise: the cut leaves most of it unsent
    part = tmp_path / "p.mp4"
    auth = ["-H", f"Authorization: Token {token}"]
    cut = subprocess.run(["curl", "-sS", "--limit-rate", "500K", "--max-time", "1", "-o", str(part), *auth, url],
                         capture_output=True, text=True, timeout=30)
    assert cut.returncode == 28 and 0 < part.stat().st_size < size, (cut.returncode, part.stat().st_size)
    time.sleep(0.5)  # the cut download's close has recorded what it delivered
    log = job_of(job["id"])
    assert log.result_downloaded_at is None and log.result_delivered[0][0] == 0 and leftovers() != []
    assert log.result_delivered[0][1] + 1 >= part.stat().st_size  # at least every byte curl kept
    resumed = subprocess.run(["curl", "-sS", "-f", "-C", "-", "-o", str(part), "-w", "%{http_code}", *auth, url],
                             capture_output=True, text=True, timeout=30)
    assert resumed.returncode == 0 and resumed.stdout == "206", (resumed.returncode, resumed.stdout, resumed.stderr)
    assert part.stat().st_size == size and media.probe(part)["vcodec"] == "h264"
    assert wait_for(lambda: leftovers() == [] or None, 5) is not None  # every byte delivered: deleted at once
    assert job_of(job["id"]).result_downloaded_at is not None
    assert call(served.address, "GET", f"/api/jobs/{job['id']}/result", token)[0] == 410


def test_a_range_download_resumes(served, token, clips, tmp_path):
    job = finished_job(served, token, clips.basic)
    url, size = f"/api/jobs/{job['id']}/result", job["result"]["bytes"]
    status, head, first = call(served.address, "GET", url, token, headers={"Range": "bytes=0-999"})
    assert status == 206 and len(first) == 1000 and head["content-range"] == f"bytes 0-999/{size}"
    assert head["x-render-id"] == job["id"] and head["content-disposition"]
    assert leftovers() != []  # part of it delivered: kept
    status, head, rest = call(served.address, "GET", url, token, headers={"Range": "bytes=1000-"})
    assert status == 206 and head["content-range"] == f"bytes 1000-{size - 1}/{size}"
    (tmp_path / "joined.mp4").write_bytes(first + rest)
    assert media.probe(tmp_path / "joined.mp4")["vcodec"] == "h264"
    assert wait_for(lambda: leftovers() == [] or None, 5) is not None  # every byte delivered: deleted
    assert call(served.address, "GET", url, token)[0] == 410


def test_a_range_past_the_end_is_416_and_a_tail_alone_keeps_the_result(served, token, clips):
    job = finished_job(served, token, clips.basic)
    url, size = f"/api/jobs/{job['id']}/result", job["result"]["bytes"]
    status, head, body = call(served.address, "GET", url, token, headers={"Range": f"bytes={size}-"})
    assert status == 416 and head["content-range"] == f"bytes */{size}"
    assert head["content-type"] == "application/json"  # the error envelope, naming the render
    assert json.loads(body)["code"] == "range_not_satisfiable" and json.loads(body)["render_id"] == job["id"]
    status, _head, tail = call(served.address, "GET", url, token, headers={"Range": "bytes=-100"})
    assert status == 206 and len(tail) == 100
    status, _head, _body = call(served.address, "HEAD", url, token)
    assert status == 200
    assert leftovers() != [] and job_of(job["id"]).result_downloaded_at is None
    status, head, body = call(served.address, "GET", url, token, headers={"Range": "bytes=5-2"})
    assert status == 200 and len(body) == size  # an invalid range (last before first) is ignored: RFC 9110
    assert "content-range" not in head and body[-100:] == tail
    assert wait_for(lambda: leftovers() == [] or None, 5) is not None  # the ignored range delivered it all


def test_result_before_the_end_is_409_not_ready(served, token, long_clip):
    served.slow()
    job = running_job(served, token, long_clip)
    status, head, body = call(served.address, "GET", f"/api/jobs/{job['id']}/result", token)
    assert status == 409 and json.loads(body)["code"] == "not_ready" and int(head["retry-after"]) >= 1
    assert call(served.address, "DELETE", f"/api/jobs/{job['id']}", token)[0] == 204
    assert wait_for(lambda: leftovers() == [] or None, 5) is not None


def test_idempotency_key_answers_the_first_job(served, token, clips, other_token):
    served.stop_worker()
    key = {"Idempotency-Key": "order-42"}
    fields = {"video": clips.basic, "start": "0"}
    first = submit(served.address, token, fields=fields, headers=key)
    again = submit(served.address, token, fields=fields, headers=key)
    assert first[0] == again[0] == 202
    assert again[1]["location"] == first[1]["location"] and again[2]["id"] == first[2]["id"]
    theirs = submit(served.address, other_token, fields=fields, headers=key)
    assert theirs[0] == 202 and theirs[2]["id"] != first[2]["id"]
    assert RenderLog.objects.count() == 2
    status, _head, body = call(served.address, "POST", "/api/trim", token, fields,
                               {**ASYNC, "Idempotency-Key": "x" * 256})
    assert status == 400 and "Idempotency-Key" in json.loads(body)["fields"]
    for job_id, who in ((first[2]["id"], token), (theirs[2]["id"], other_token)):
        assert call(served.address, "DELETE", f"/api/jobs/{job_id}", who)[0] == 204
    assert leftovers() == []


def test_another_clients_job_is_404(served, token, other_token, clips):
    served.stop_worker()
    status, _head, job = submit(served.address, token, fields={"video": clips.basic, "start": "0"})
    for method, path in (("GET", f"/api/jobs/{job['id']}"), ("GET", f"/api/jobs/{job['id']}/result"),
                         ("DELETE", f"/api/jobs/{job['id']}")):
        status, _head, body = call(served.address, method, path, other_token)
        assert status == 404 and json.loads(body)["code"] == "not_found", (method, path)
    assert json.loads(call(served.address, "GET", "/api/jobs", other_token)[2])["results"] == []
    assert call(served.address, "GET", "/api/jobs/not-a-uuid", token)[0] == 404
    assert job_of(job["id"]).status == "queued"
    assert call(served.address, "DELETE", f"/api/jobs/{job['id']}", token)[0] == 204
    assert leftovers() == []


def test_the_list_is_newest_first_paginated_and_filtered(served, token, clips):
    served.stop_worker()
    ids = [submit(served.address, token, fields={"video": clips.basic, "start": "0"})[2]["id"] for _ in range(3)]
    call(served.address, "DELETE", f"/api/jobs/{ids[0]}", token)
    status, _head, body = call(served.address, "GET", "/api/jobs?limit=2", token)
    page = json.loads(body)
    assert status == 200 and [j["id"] for j in page["results"]] == ids[:0:-1] and page["next"]
    status, _head, body = call(served.address, "GET", page["next"].split(served.address, 1)[1], token)
    assert [j["id"] for j in json.loads(body)["results"]] == [ids[0]]
    queued = json.loads(call(served.address, "GET", "/api/jobs?status=queued", token)[2])["results"]
    assert sorted(j["id"] for j in queued) == sorted(ids[1:])
    status, _head, body = call(served.address, "GET", "/api/jobs?status=bogus", token)
    assert status == 400 and "status" in json.loads(body)["fields"]
    for job_id in ids[1:]:
        call(served.address, "DELETE", f"/api/jobs/{job_id}", token)
    assert leftovers() == []


def test_thirty_jobs_at_once_never_exceed_the_slots(served, token, clips):
    served.start_worker()
    peak, stop = [0], threading.Event()

    def watch():
        root = str(Path(settings.VIDEOAPI_TEMP_ROOT).resolve())
        while not stop.is_set():
            count = 0
            for pid in filter(str.isdigit, os.listdir("/proc")):
                try:
                    if os.readlink(f"/proc/{pid}/cwd").startswith(root):
                        count += "ffmpeg" in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
                except OSError:
                    continue
            peak[0] = max(peak[0], count)
            time.sleep(0.02)

    watcher = threading.Thread(target=watch)
    watcher.start()
    answers = []
    submitters = [threading.Thread(target=lambda: answers.append(
        submit(served.address, token, fields={"video": clips.basic, "start": "0", "end": "1"}))) for _ in range(30)]
    for thread in submitters:
        thread.start()
    for thread in submitters:
        thread.join()
    try:
        assert [a[0] for a in answers] == [202] * 30
        for _status, _head, job in answers:
            job, _seen = poll(served.address, token, job["id"], seconds=120)
            assert job["status"] == "succeeded"
    finally:
        stop.set()
        watcher.join()
    assert 1 <= peak[0] <= settings.VIDEOAPI_MAX_CONCURRENT_RENDERS
    for _status, _head, job in answers:
        assert call(served.address, "GET", f"/api/jobs/{job['id']}/result", token)[0] == 200
    assert wait_for(lambda: leftovers() == [] or None, 10) is not None


def test_a_failed_render_fails_the_job_with_the_synchronous_code(served, token, clips, tmp_path):
    failing = tmp_path / "ffmpeg-fails"
    failing.write_text('#!/bin/sh\necho "Error: exploded" >&2\nexit 3\n')
    failing.chmod(0o755)
    served.start_worker(VIDEOAPI_FFMPEG=str(failing))
    status, _head, job = submit(served.address, token, fields={"video": clips.basic, "start": "0"})
    job, _seen = poll(served.address, token, job["id"])
    assert job["status"] == "failed" and job["error"]["code"] == "render_failed"
    status, _head, body = call(served.address, "GET", f"/api/jobs/{job['id']}/result", token)
    assert status == 500 and json.loads(body)["code"] == "render_failed"
    log = job_of(job["id"])
    assert log.params["kind"] == "trim" and log.inputs and "exploded" in log.ffmpeg_stderr  # the plan kept on record
    assert leftovers() == []
    task = wait_for(lambda: (lambda t: t if t.status != "RUNNING" else None)(_task(log.task_id)), 5)
    assert task.status == "FAILED" and task.exception_class_path.endswith("taskqueue.JobEnded")  # agrees with the job
    assert "render_failed" in task.traceback


def test_a_job_runs_under_its_own_time_limit_and_fails_render_timeout_past_it(served, token, long_clip):
    served.slow(VIDEOAPI_FFMPEG_TIMEOUT=1)  # a request waiting for its answer would be stopped after 1 s...
    status, _head, job = submit(served.address, token, fields={"video": long_clip, "start": "0"})
    job, _seen = poll(served.address, token, job["id"])
    assert job["status"] == "succeeded", job  # ...a job (about 3 s here) is not: it has its own limit
    assert call(served.address, "GET", f"/api/jobs/{job['id']}/result", token)[0] == 200
    assert wait_for(lambda: leftovers() == [] or None, 5) is not None
    served.slow(VIDEOAPI_JOB_FFMPEG_TIMEOUT=1)
    status, _head, job = submit(served.address, token, fields={"video": long_clip, "start": "0"})
    job, _seen = poll(served.address, token, job["id"])
    assert job["status"] == "failed" and job["error"]["code"] == "render_timeout"
    assert "VIDEOAPI_JOB_FFMPEG_TIMEOUT" in job["error"]["detail"]
    status, _head, body = call(served.address, "GET", f"/api/jobs/{job['id']}/result", token)
    assert status == 504 and json.loads(body)["code"] == "render_timeout"
    assert leftovers() == []


def test_the_queue_limit_answers_503_busy(served, token, clips):
    served.stop_worker()
    with gunicorn({"VIDEOAPI_MAX_QUEUED_JOBS": "2"}, workers=1, threads=2) as (address, _proc):
        answers = [submit(address, token, fields={"video": clips.basic, "start": "0"}) for _ in range(3)]
    assert [a[0] for a in answers] == [202, 202, 503]
    assert answers[2][2]["code"] == "busy" and int(answers[2][1]["retry-after"]) > 0
    assert len(leftovers()) == 2  # the refused one's workspace is gone
    for _status, _head, job in answers[:2]:
        call(served.address, "DELETE", f"/api/jobs/{job['id']}", token)
    assert leftovers() == []


def test_a_cancel_during_a_download_deletes_the_result_when_that_download_ends(served, token, big_clip):
    job = finished_job(served, token, big_clip, mode="fast")
    host, port = served.address.split(":")
    sock = socket.create_connection((host, int(port)))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 256 * 1024)  # less than the file; not a crawl
    sock.sendall(f"GET /api/jobs/{job['id']}/result HTTP/1.1\r\nHost: {served.address}\r\n"
                 f"Authorization: Token {token}\r\nConnection: close\r\n\r\n".encode())
    status, headers, body = read_head(sock)
    assert status == 200
    assert call(served.address, "DELETE", f"/api/jobs/{job['id']}", token)[0] == 204
    assert job_of(job["id"]).status == "cancelled"
    assert leftovers() != []  # the download under way holds it: it may finish
    while chunk := sock.recv(1 << 16):
        body += chunk
    sock.close()
    assert len(body) == int(headers["content-length"])
    assert wait_for(lambda: leftovers() == [] or None, 5) is not None  # gone when that download ended
    log = job_of(job["id"])
    assert log.status == "cancelled" and log.result_downloaded_at is None
    assert call(served.address, "GET", f"/api/jobs/{job['id']}/result", token)[0] == 410


def test_a_job_carries_the_finishing_through_its_stored_plan(served, token, clips, tmp_path):
    """Captions and a loudness target: what the request asked for is what the worker renders."""
    served.start_worker()
    status, _head, job = submit(served.address, token, fields={
        "video": clips.basic, "start": "0", "loudness": "web", "captions": clips.captions})
    assert status == 202, job
    job, _seen = poll(served.address, token, job["id"])
    assert job["status"] == "succeeded", job
    details = job_of(job["id"]).details
    assert details["loudness"]["target"] == -16 and details["captions"]["cues"] == 1
    status, _head, body = call(served.address, "GET", f"/api/jobs/{job['id']}/result", token)
    (tmp_path / "out.mp4").write_bytes(body)
    assert status == 200 and media.probe(tmp_path / "out.mp4")["acodec"] == "aac"
    assert wait_for(lambda: leftovers() == [] or None, 5) is not None


def test_a_composition_job_fetches_its_source_in_the_real_worker(served, token, tmp_path):
    """POST /api/compose as a job through gunicorn: the 202 before any fetch, the URL fetched once by the
    worker, the result the composition of the fetched clip; then a source that fails fails the job."""
    served.start_worker(VIDEOAPI_FETCH_ALLOW_PRIVATE="true")
    (tmp_path / "www").mkdir()
    media.tone_clip(tmp_path / "www" / "red.mp4", color="red", freq=440, seconds=1, size="320x180")
    with serving(tmp_path / "www") as source:
        url = f"{source.url}/red.mp4"
        edit = {"timeline": {"tracks": [{"clips": [{"asset": {"type": "video", "src": url}, "start": 0},
                                                   {"asset": {"type": "video", "src": url}, "start": 1}]}]}}
        status, _head, job = submit(served.address, token, "/api/compose", fields={"edit": json.dumps(edit)})
        assert status == 202 and job["endpoint"] == "compose"
        job, _seen = poll(served.address, token, job["id"])
        assert job["status"] == "succeeded", job
        assert source.hits == ["/red.mp4"]
        status, _head, body = call(served.address, "GET", f"/api/jobs/{job['id']}/result", token)
        assert status == 200
        (tmp_path / "out.mp4").write_bytes(body)
        out = media.probe(tmp_path / "out.mp4")
        assert abs(out["frames"] / 25 - 2.0) <= 1 / 25 and out["acodec"] == "aac"
        edit["timeline"]["tracks"][0]["clips"][1]["asset"]["src"] = f"{source.url}/gone.mp4"
        status, _head, job = submit(served.address, token, "/api/compose", fields={"edit": json.dumps(edit)})
        job, _seen = poll(served.address, token, job["id"])
        assert job["status"] == "failed" and job["error"]["code"] == "invalid_input"
        assert "timeline.tracks[0].clips[1].asset.src" in job["error"]["detail"] and "404" in job["error"]["detail"]
    assert wait_for(lambda: leftovers() == [] or None, 5) is not None
