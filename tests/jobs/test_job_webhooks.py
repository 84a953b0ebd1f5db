"""Jobs and their webhooks end to end: a real gunicorn, a real render_worker (which also delivers the
webhooks), and a receiver on loopback that checks every signature itself (tests/webhooks/test_webhooks.py)."""

import json
import time

import pytest

from renders.models import ClientKey, RenderLog, WebhookDelivery

from ..conftest import leftovers, wait_for
from ..jobclient import call, poll, slow_ffmpeg
from ..receiver import Receiver
from ..server import gunicorn, render_worker

pytestmark = [pytest.mark.server, pytest.mark.django_db(transaction=True)]
PRIVATE = {"VIDEOAPI_WEBHOOK_ALLOW_PRIVATE": "true", "VIDEOAPI_WEBHOOK_RETRY_DELAYS": "0.2,0.2",
           "VIDEOAPI_WEBHOOK_TIMEOUT": "2"}
FAILING_START = "0.777"  # a trim from here fails in this module's FFmpeg


def ffmpeg_for_this_module(directory):
    """Real FFmpeg at 4x real time, except that a trim from FAILING_START fails as FFmpeg would."""
    slow = slow_ffmpeg(directory, rate=4)
    script = directory / "ffmpeg-fails-sometimes"
    script.write_text(f'#!/bin/sh\ncase "$*" in *"-ss {FAILING_START}"*) echo "Error: exploded" >&2; exit 3 ;; esac\n'
                      f'exec {slow} "$@"\n')
    script.chmod(0o755)
    return str(script)


@pytest.fixture(scope="module")
def receiver():
    r = Receiver()
    yield r
    r.stop()


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    ffmpeg = ffmpeg_for_this_module(tmp_path_factory.mktemp("ffmpeg"))
    with gunicorn(PRIVATE) as (address, _proc), render_worker({**PRIVATE, "VIDEOAPI_FFMPEG": ffmpeg}):
        yield address


def secret_of(token):
    return ClientKey.objects.get(prefix=token.partition(".")[0]).webhook_secret


def deliveries(receiver, path, count=1, seconds=20):
    assert wait_for(lambda: len(receiver.on(path)) >= count, seconds), receiver.on(path)
    return receiver.on(path)


def test_callback_url_alone_makes_a_job_and_a_signed_success_webhook(service, receiver, token, clips):
    url, path = receiver.url("ok", secret_of(token))
    status, head, body = call(service, "POST", "/api/trim", token, {"video": clips.basic, "start": "0",
                                                                      "callback_url": url})
    job = json.loads(body)
    assert status == 202 and head["location"] == f"/api/jobs/{job['id']}"
    [got] = deliveries(receiver, path)
    assert got["valid"], "the signature does not verify with the key's secret"
    message = json.loads(got["body"])
    assert message["type"] == "render.succeeded" and message["data"]["id"] == job["id"]
    assert message["data"]["status"] == "succeeded"
    assert message["data"]["result"]["url"] == f"http://{service}/api/jobs/{job['id']}/result"
    assert got["headers"]["webhook-id"].startswith("msg_")
    status, _head, video = call(service, "GET", f"/api/jobs/{job['id']}/result", token)
    assert status == 200 and len(video) == message["data"]["result"]["bytes"]
    assert wait_for(lambda: leftovers() == [] or None, 5) is not None


def test_a_receiver_failing_twice_gets_three_attempts_with_one_webhook_id(service, receiver, token, clips):
    url, path = receiver.url("flaky", secret_of(token))  # 500, 500, then 200
    _status, _head, body = call(service, "POST", "/api/trim", token,
                               {"video": clips.basic, "start": "0", "callback_url": url},
                               {"Prefer": "respond-async"})
    job = json.loads(body)
    got = deliveries(receiver, path, 3)
    assert {g["headers"]["webhook-id"] for g in got} == {got[0]["headers"]["webhook-id"]}
    assert all(g["valid"] for g in got)
    # the receiver has answered the third; the worker records it a moment later
    delivery = wait_for(lambda: WebhookDelivery.objects.filter(render_id=job["id"], status="succeeded").first())
    assert delivery and len(delivery.attempts) == 3
    call(service, "GET", f"/api/jobs/{job['id']}/result", token)
    assert wait_for(lambda: leftovers() == [] or None, 5) is not None


def test_a_cancelled_job_sends_render_cancelled(service, receiver, token, long_clip):
    url, path = receiver.url("ok", secret_of(token))
    _status, _head, body = call(service, "POST", "/api/trim", token,
                               {"video": long_clip, "start": "0", "callback_url": url})
    job = json.loads(body)
    poll(service, token, job["id"], until=("running",))
    assert call(service, "DELETE", f"/api/jobs/{job['id']}", token)[0] == 204
    [got] = deliveries(receiver, path)
    message = json.loads(got["body"])
    assert got["valid"] and message["type"] == "render.cancelled" and message["data"]["status"] == "cancelled"
    assert wait_for(lambda: leftovers() == [] or None, 5) is not None


def test_a_job_that_fails_sends_render_failed(service, receiver, token, clips):
    url, path = receiver.url("ok", secret_of(token))
    _status, _head, body = call(service, "POST", "/api/trim", token,
                               {"video": clips.basic, "start": FAILING_START, "callback_url": url})
    job = json.loads(body)
    [got] = deliveries(receiver, path)
    message = json.loads(got["body"])
    assert got["valid"] and message["type"] == "render.failed"
    assert message["data"]["id"] == job["id"] and message["data"]["error"]["code"] == "render_failed"
    assert leftovers() == []


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/x", "http://localhost/x", "http://10.1.2.3/x",
                                 "file:///etc/passwd", "http://user:pw@example.com/x", "http://[::1",
                                 "http://[notanip]/x"])
def test_callback_urls_into_the_private_network_are_400_without_the_operators_flag(api, clips, url):
    from ..conftest import post

    r = post(api, "/api/trim", {"video": clips.basic, "start": "0", "callback_url": url})
    assert r.status_code == 400 and "callback_url" in r.json()["fields"]
    assert RenderLog.objects.get(pk=r["X-Render-Id"]).status == "rejected"
    assert leftovers() == []


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory):
    from .. import media

    return media.lavfi_clip(tmp_path_factory.mktemp("long") / "six.mp4", seconds=6, size="160x90")


def test_the_webhook_never_waits_for_the_render_slots(service, receiver, token, clips):
    """Deliveries run in their own threads: a hanging receiver does not hold up the next job's webhook."""
    hang, hang_path = receiver.url("hang", secret_of(token))
    ok, ok_path = receiver.url("ok", secret_of(token))
    first = json.loads(call(service, "POST", "/api/trim", token,
                            {"video": clips.basic, "start": "0", "callback_url": hang})[2])
    deliveries(receiver, hang_path)
    started = time.monotonic()
    second = json.loads(call(service, "POST", "/api/trim", token,
                             {"video": clips.basic, "start": "0", "callback_url": ok})[2])
    deliveries(receiver, ok_path)
    assert time.monotonic() - started < 5
    for job in (first, second):
        call(service, "GET", f"/api/jobs/{job['id']}/result", token)
    assert wait_for(lambda: leftovers() == [] or None, 5) is not None
