"""Webhooks: signed per Standard Webhooks, retried, never a way into the private network.

A receiver on loopback (started once for the module) records every request
and checks its signature with the secret the test registered for its path,
by its own HMAC code: neither the code under test nor the signing library
verifies anything here. Loopback is a private address, so every delivery
test allows private targets, as an intranet operator would.
"""

import base64
import itertools
import json
import re
import signal
import socket
import ssl
import subprocess
import threading
import time
from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.db import connection
from django_tasks_db.management.commands import db_worker
from django_tasks_db.management.commands.db_worker import Worker
from django_tasks_db.models import DBTaskResult
from rest_framework import serializers

from renders import webhooks
from renders.api.callbacks import CallbackUrlField
from renders.models import ClientKey, RenderLog, WebhookDelivery, new_webhook_secret
from renders.webhooks.tasks import deliver_webhook

from ..housekeeping import metric_value
from ..receiver import Receiver

pytestmark = pytest.mark.django_db


# ---- the receiver -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def receiver():
    r = Receiver()
    yield r
    r.stop()


@pytest.fixture
def private_ok(settings):
    settings.VIDEOAPI_WEBHOOK_ALLOW_PRIVATE = True
    settings.VIDEOAPI_WEBHOOK_RETRY_DELAYS = (0.2, 0.2, 0.2)
    return settings


@pytest.fixture
def client_key(db):
    return ClientKey.objects.create_key(name="partner", user=User.objects.create_user("partner"))[0]


def job(url, key=None, status="succeeded"):
    """A finished render standing in for a job, with the callback its request gave."""
    return RenderLog.objects.create(endpoint="trim", status=status, user=key.user if key else None,
                                    api_key=key.name if key else "", details={"callback_url": url})


def run_worker():
    """The real database worker on the webhooks queue, until no attempt is due.

    Inside a test's transaction it must keep the connection (it closes
    connections whose autocommit is off: the test's); the signal handlers it
    sets are restored. test_a_hanging_receiver_does_not_delay_other_deliveries
    runs workers untouched, on a database without the test transaction.
    """
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT)}
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(db_worker, "close_old_connections", lambda: None)
            call_command("db_worker", queue_name="webhooks", batch=True, interval=0.05, startup_delay=False,
                         reload=False, verbosity=0, stdout=StringIO())
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def deliver(delivery, seconds=20):
    """Run the worker until the delivery ends (retries wait for their delay); the delivery, refreshed."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        run_worker()
        delivery.refresh_from_db()
        if delivery.status != WebhookDelivery.Status.PENDING:
            return delivery
        time.sleep(0.05)
    raise AssertionError(f"still pending after {seconds} s: {delivery.attempts}")


# ---- deliveries ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("event", "status"), [("render.succeeded", "succeeded"), ("render.failed", "failed"),
                                          ("render.cancelled", "cancelled")])
def test_each_event_arrives_signed_with_the_keys_secret_and_the_job(receiver, private_ok, client_key, event, status):
    url, path = receiver.url("ok", client_key.webhook_secret)
    log = job(url, client_key, status="failed" if status == "failed" else "succeeded")
    data = {"id": str(log.id), "endpoint": "trim", "status": status, "filename": "café ✓ 東京.mp4",
            "error": {"code": "render_failed", "detail": "x"} if status == "failed" else None}
    before = metric_value("videoapi_webhook_deliveries_total", outcome="succeeded")
    delivery = deliver(webhooks.notify(log, event, data))
    assert delivery.status == "succeeded" and delivery.client_key == client_key
    [request] = receiver.on(path)
    assert request["valid"]
    headers = request["headers"]
    assert headers["webhook-id"] == delivery.webhook_id and headers["webhook-id"].startswith("msg_")
    assert headers["content-type"] == "application/json"
    assert headers["host"] == f"127.0.0.1:{receiver.port}"
    body = json.loads(request["body"])
    assert body["type"] == event and body["data"] == data and body["timestamp"].endswith("Z")
    [attempt] = delivery.attempts
    assert attempt["status_code"] == 200 and 0 <= attempt["seconds"] < 2 and attempt["at"].endswith("Z")
    assert metric_value("videoapi_webhook_deliveries_total", outcome="succeeded") == before + 1
    assert not DBTaskResult.objects.filter(status="READY").exists()


def test_without_a_key_the_operators_secret_signs_and_without_any_nothing_is_sent(receiver, private_ok):
    secret = new_webhook_secret()
    private_ok.VIDEOAPI_WEBHOOK_SECRET = secret
    url, path = receiver.url("ok", secret)
    delivery = deliver(webhooks.notify(job(url), "render.succeeded", {"id": "x"}))
    assert delivery.status == "succeeded" and delivery.client_key is None
    assert [r["valid"] for r in receiver.on(path)] == [True]
    # a key made before webhooks (none of its own) signs with the operator's secret too
    old = ClientKey.objects.create_key(name="old", user=User.objects.create_user("old"), webhook_secret="")[0]
    url, path = receiver.url("ok", secret)
    assert deliver(webhooks.notify(job(url, old), "render.succeeded", {})).status == "succeeded"
    assert [r["valid"] for r in receiver.on(path)] == [True]

    private_ok.VIDEOAPI_WEBHOOK_SECRET = ""
    url, path = receiver.url("ok", secret)
    delivery = deliver(webhooks.notify(job(url), "render.succeeded", {}))
    assert delivery.status == "failed" and "no webhook secret" in delivery.attempts[0]["error"]
    assert receiver.on(path) == []


def test_500_twice_then_200_is_three_attempts_of_one_webhook_id(receiver, private_ok, client_key):
    url, path = receiver.url("flaky", client_key.webhook_secret)
    before = metric_value("videoapi_webhook_attempts_bucket", outcome="succeeded", le="3.0")
    delivery = deliver(webhooks.notify(job(url, client_key), "render.succeeded", {"id": "j"}))
    assert delivery.status == "succeeded"
    assert [a["status_code"] for a in delivery.attempts] == [500, 500, 200]
    got = receiver.on(path)
    assert len(got) == 3 and all(r["valid"] for r in got)
    assert {r["headers"]["webhook-id"] for r in got} == {delivery.webhook_id}
    assert len({r["body"] for r in got}) == 1  # the same body every time, freshly signed
    gaps = [b["at"] - a["at"] for a, b in itertools.pairwise(got)]
    assert all(gap >= 0.2 for gap in gaps), gaps  # each retry waited for its delay
    assert metric_value("videoapi_webhook_attempts_bucket", outcome="succeeded", le="3.0") == before + 1


def test_410_stops_and_used_up_delays_fail(receiver, private_ok, client_key):
    private_ok.VIDEOAPI_WEBHOOK_RETRY_DELAYS = (0, 0)
    url, path = receiver.url("status/410", client_key.webhook_secret)
    gone = deliver(webhooks.notify(job(url, client_key), "render.succeeded", {}))
    assert gone.status == "gone" and [a["status_code"] for a in gone.attempts] == [410]
    assert len(receiver.on(path)) == 1
    url, path = receiver.url("status/503", client_key.webhook_secret)
    failed = deliver(webhooks.notify(job(url, client_key), "render.succeeded", {}))
    assert failed.status == "failed" and [a["status_code"] for a in failed.attempts] == [503, 503, 503]
    assert failed.next_attempt_at is None and len(receiver.on(path)) == 3


def test_an_endless_answer_is_read_only_up_to_the_cap(receiver, private_ok, client_key):
    """Read to its end, the answer would last until the deadline (a timeout); capped, the 200 counts at once."""
    private_ok.VIDEOAPI_WEBHOOK_TIMEOUT = 3.0
    url, _path = receiver.url("endless", client_key.webhook_secret)
    delivery = deliver(webhooks.notify(job(url, client_key), "render.succeeded", {}))
    [attempt] = delivery.attempts
    assert delivery.status == "succeeded" and attempt["status_code"] == 200 and attempt["seconds"] < 1


def test_a_redirect_is_not_followed(receiver, private_ok, client_key):
    private_ok.VIDEOAPI_WEBHOOK_RETRY_DELAYS = (0,)
    url, path = receiver.url("redirect", client_key.webhook_secret)
    delivery = deliver(webhooks.notify(job(url, client_key), "render.succeeded", {}))
    assert delivery.status == "failed" and [a["status_code"] for a in delivery.attempts] == [302, 302]
    assert len(receiver.on(path)) == 2
    assert receiver.on(f"/target{path}") == []  # where it pointed saw nothing


def test_a_receiver_that_trickles_its_answer_is_cut_at_the_deadline_and_retried(receiver, private_ok, client_key):
    private_ok.VIDEOAPI_WEBHOOK_TIMEOUT = 1.0
    private_ok.VIDEOAPI_WEBHOOK_RETRY_DELAYS = (0.1,)
    url, path = receiver.url("hang", client_key.webhook_secret)
    delivery = deliver(webhooks.notify(job(url, client_key), "render.succeeded", {}))
    assert delivery.status == "failed" and len(receiver.on(path)) == 2
    for attempt in delivery.attempts:  # a byte every 0.2 s never resets the clock: the whole attempt is 1 s
        assert attempt["error"] == "timed out after 1 s" and 0.9 <= attempt["seconds"] < 1.6, attempt


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_a_hanging_receiver_does_not_delay_other_deliveries(receiver, settings):
    """Two workers: while one waits out a dead receiver, the other delivers at once."""
    settings.VIDEOAPI_WEBHOOK_ALLOW_PRIVATE = True
    settings.VIDEOAPI_WEBHOOK_TIMEOUT = 3.0
    settings.VIDEOAPI_WEBHOOK_RETRY_DELAYS = ()
    key = ClientKey.objects.create_key(name="partner", user=User.objects.create_user("partner"))[0]
    workers = [Worker(queue_names=["webhooks"], interval=0.05, batch=False, backend_name="default",
                      startup_delay=False, max_tasks=None, worker_id=f"test-{n}", excluded_queue_names=[])
               for n in range(2)]

    def work(worker):
        try:
            worker.run()
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(w,), daemon=True) for w in workers]
    for thread in threads:
        thread.start()
    try:
        hang_url, hang_path = receiver.url("hang", key.webhook_secret)
        hanging = webhooks.notify(job(hang_url, key), "render.succeeded", {})
        assert wait(lambda: receiver.on(hang_path))
        ok_url, ok_path = receiver.url("ok", key.webhook_secret)
        sent = time.monotonic()
        healthy = webhooks.notify(job(ok_url, key), "render.succeeded", {})
        assert wait(lambda: receiver.on(ok_path), 5)
        assert receiver.on(ok_path)[0]["at"] - sent < 1.0
        hanging.refresh_from_db()
        assert hanging.status == "pending" and not hanging.attempts  # still being waited out meanwhile
        assert wait(lambda: WebhookDelivery.objects.get(pk=hanging.pk).status == "failed", 6)
        hanging.refresh_from_db()
        assert hanging.attempts[0]["error"] == "timed out after 3 s"
        healthy.refresh_from_db()
        assert healthy.status == "succeeded"
    finally:
        for worker in workers:
            worker.running = False
        for thread in threads:
            thread.join(5)


def wait(predicate, seconds=5):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_an_ipv6_receiver_gets_its_bracketed_host(private_ok, client_key):
    v6 = Receiver("::1")
    try:
        url, path = v6.url("ok", client_key.webhook_secret)
        assert deliver(webhooks.notify(job(url, client_key), "render.succeeded", {})).status == "succeeded"
        [request] = v6.on(path)
        assert request["valid"] and request["headers"]["host"] == f"[::1]:{v6.port}"
    finally:
        v6.stop()


# ---- where a webhook may go ---------------------------------------------------------------------

class CallbackForm(serializers.Serializer):
    callback_url = CallbackUrlField()


def refusal(url):
    form = CallbackForm(data={"callback_url": url})
    return None if form.is_valid() else form.errors["callback_url"][0]


@pytest.mark.parametrize(("url", "says"), [
    ("http://127.0.0.1:9/hook", "127.0.0.1, a loopback address"),
    ("http://[::1]:9/hook", "::1, a loopback address"),
    ("http://localhost:9/hook", "localhost resolves to 127.0.0.1, a loopback address"),
    ("http://10.1.2.3/hook", "10.1.2.3, a private address"),
    ("http://192.168.0.10/hook", "a private address"),
    ("http://169.254.169.254/latest/meta-data", "169.254.169.254, a link-local address"),
    ("http://100.64.0.1/hook", "a shared (100.64.0.0/10) address"),
    ("http://0.0.0.0:9/hook", "an unspecified address"),
    ("http://224.0.0.1/hook", "a multicast address"),
    ("http://[::ffff:127.0.0.1]:9/hook", "a loopback (an IPv4-mapped form of 127.0.0.1) address"),
    ("http://[64:ff9b::a00:1]/hook", "a private (a NAT64 form of 10.0.0.1) address"),
    ("http://[2002:a00:1::1]/hook", "a private (a 6to4 form of 10.0.0.1) address"),
    ("http://[fe80::1]/hook", "a link-local address"),
    ("http://2130706433:9/hook", "2130706433 resolves to 127.0.0.1"),
])
def test_non_public_targets_are_refused_naming_the_address(settings, url, says):
    settings.VIDEOAPI_WEBHOOK_ALLOW_PRIVATE = False
    message = refusal(url)
    assert says in message and "callbacks go to public addresses only" in message, message


@pytest.mark.parametrize(("url", "says"), [
    ("file:///etc/passwd", "must be an http or https URL"),
    ("ftp://example.com/hook", "must be an http or https URL"),
    ("gopher://127.0.0.1:25/", "must be an http or https URL"),
    ("http://user:pw@127.0.0.1:9/hook", "must not contain credentials"),
    ("https://token@127.0.0.1/hook", "must not contain credentials"),
    ("http:///hook", "must name a host"),
    ("http://127.0.0.1:0/hook", "the port must be a number from 1 to 65535"),
    ("http://127.0.0.1:99999/hook", "the port must be a number from 1 to 65535"),
    ("http://127.0.0.1/a b", "must not contain spaces or control characters"),
    ("http://127.0.0.1/" + "a" * 2048, "must be at most 2048 characters"),
    ("http://nothing.invalid/hook", "does not resolve"),
])
def test_malformed_urls_are_refused_even_when_private_targets_are_allowed(settings, url, says):
    settings.VIDEOAPI_WEBHOOK_ALLOW_PRIVATE = True
    assert says in refusal(url)


def test_the_operators_flag_allows_private_targets(settings):
    settings.VIDEOAPI_WEBHOOK_ALLOW_PRIVATE = False
    assert refusal("http://127.0.0.1:9/hook") and refusal("http://localhost:9/hook")
    settings.VIDEOAPI_WEBHOOK_ALLOW_PRIVATE = True
    for url in ("http://127.0.0.1:9/hook", "http://localhost:9/hook", "https://[::1]/hook"):
        assert refusal(url) is None
        assert CallbackForm(data={"callback_url": url}).is_valid() and webhooks.validate_callback_url(url) == url


def fake_dns(monkeypatch, answers):
    """getaddrinfo answering `answers[name]` (a list of addresses, or a callable giving one) for made-up names."""
    real = socket.getaddrinfo
    asked = []

    def getaddrinfo(host, port, *args, **kwargs):
        if host not in answers:
            return real(host, port, *args, **kwargs)
        asked.append(host)
        found = answers[host]() if callable(answers[host]) else answers[host]
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "",
                 (a, port, 0, 0) if ":" in a else (a, port)) for a in found]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return asked


def test_a_name_that_resolves_to_a_private_address_is_refused(settings, monkeypatch):
    settings.VIDEOAPI_WEBHOOK_ALLOW_PRIVATE = False
    fake_dns(monkeypatch, {"hooks.example.com": ["10.0.0.7"], "mixed.example.com": ["93.184.215.14", "fd00::1"],
                           "public.example.com": ["93.184.215.14", "2606:4700::1111"]})
    assert "hooks.example.com resolves to 10.0.0.7, a private address" in refusal("https://hooks.example.com/h")
    # any address counts, not only the first
    assert "mixed.example.com resolves to fd00::1, a private address" in refusal("https://mixed.example.com/h")
    assert refusal("https://public.example.com/h") is None  # no connection is made by the check


def test_dns_rebinding_after_the_check_is_refused_at_delivery(settings, monkeypatch, client_key):
    """The name answers a public address when the URL is checked, a private one when the webhook is due."""
    settings.VIDEOAPI_WEBHOOK_ALLOW_PRIVATE = False
    settings.VIDEOAPI_WEBHOOK_RETRY_DELAYS = ()
    answers = iter([["93.184.215.14"], ["127.0.0.1"]])
    asked = fake_dns(monkeypatch, {"rebind.example.com": lambda: next(answers)})
    url = "http://rebind.example.com/hook"
    assert refusal(url) is None
    delivery = deliver(webhooks.notify(job(url, client_key), "render.succeeded", {}))
    assert delivery.status == "failed" and len(asked) == 2
    assert delivery.attempts[0]["error"] == ("refused: rebind.example.com resolves to 127.0.0.1, a loopback "
                                             "address: callbacks go to public addresses only")


def test_the_connection_goes_to_the_address_that_was_checked(receiver, private_ok, monkeypatch, client_key):
    """One resolution per attempt, and the connection goes to its answer: a name that would answer another
    address to a second lookup (127.0.0.2, where another receiver listens) never gets one."""
    other = Receiver("127.0.0.2", receiver.port)
    try:
        answers = iter([["127.0.0.1"]] + [["127.0.0.2"]] * 10)
        asked = fake_dns(monkeypatch, {"hooks.test": lambda: next(answers)})
        url, path = receiver.url("ok", client_key.webhook_secret, host="hooks.test")
        delivery = deliver(webhooks.notify(job(url, client_key), "render.succeeded", {}))
        assert delivery.status == "succeeded" and asked == ["hooks.test"]
        [request] = receiver.on(path)
        assert request["valid"] and request["headers"]["host"] == f"hooks.test:{receiver.port}"
        assert other.requests == []
    finally:
        other.stop()


def tls_files(directory):
    """A throwaway CA and a certificate it signed for hooks.test (the openssl command line)."""
    def openssl(*args):
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True, timeout=30)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "1", "-subj", "/CN=webhook test CA",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign")
    openssl("req", *ec, "-keyout", "leaf.key", "-out", "leaf.csr", "-subj", "/CN=hooks.test")
    (directory / "leaf.ext").write_text("subjectAltName=DNS:hooks.test\nbasicConstraints=CA:FALSE\n")
    openssl("x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "leaf.pem", "-days", "1", "-extfile", "leaf.ext")
    return directory / "ca.pem", directory / "leaf.pem", directory / "leaf.key"


def test_https_checks_the_certificate_against_the_host_name_on_the_checked_address(private_ok, monkeypatch,
                                                                                   client_key, tmp_path):
    """Connected to the checked address, TLS still sends the URL's name (SNI) and checks the certificate for it."""
    ca, cert, key = tls_files(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    secure = Receiver(tls=context)
    try:
        private_ok.VIDEOAPI_WEBHOOK_RETRY_DELAYS = ()
        asked = fake_dns(monkeypatch, {"hooks.test": ["127.0.0.1"], "other.test": ["127.0.0.1"]})
        monkeypatch.setenv("SSL_CERT_FILE", str(ca))  # OpenSSL's default trust store: the test CA
        url, path = secure.url("ok", client_key.webhook_secret, host="hooks.test", scheme="https")
        delivery = deliver(webhooks.notify(job(url, client_key), "render.succeeded", {}))
        assert delivery.status == "succeeded" and asked == ["hooks.test"] and secure.server_names == ["hooks.test"]
        assert [r["valid"] for r in secure.on(path)] == [True]
        # the same address under a name the certificate does not carry
        url, path = secure.url("ok", client_key.webhook_secret, host="other.test", scheme="https")
        delivery = deliver(webhooks.notify(job(url, client_key), "render.succeeded", {}))
        assert delivery.status == "failed" and "other.test" in delivery.attempts[0]["error"], delivery.attempts
        # a certificate from a CA nobody trusts
        monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "none.pem"))
        url, path = secure.url("ok", client_key.webhook_secret, host="hooks.test", scheme="https")
        delivery = deliver(webhooks.notify(job(url, client_key), "render.succeeded", {}))
        assert delivery.status == "failed" and "CERTIFICATE_VERIFY_FAILED" in delivery.attempts[0]["error"]
        assert secure.on(path) == []
    finally:
        secure.stop()


# ---- secrets ------------------------------------------------------------------------------------

def secret_bytes(secret):
    assert secret.startswith("whsec_")
    return base64.b64decode(secret.removeprefix("whsec_"), validate=True)


def test_create_api_key_prints_the_webhook_secret_once_and_rotates_it(db, admin_user):
    out = StringIO()
    call_command("create_api_key", "partner portal", "--user", "admin", stdout=out)
    printed = out.getvalue().split("webhook secret (shown once; signs the webhooks of its jobs): ")[1].split()[0]
    key = ClientKey.objects.get(name="partner portal")
    assert printed == key.webhook_secret and len(secret_bytes(printed)) == 32
    out = StringIO()
    call_command("create_api_key", "--rotate-webhook-secret", "partner portal", "--user", "admin", stdout=out)
    rotated = out.getvalue().rsplit(": ", 1)[1].strip()
    key.refresh_from_db()
    assert rotated == key.webhook_secret != printed and len(secret_bytes(rotated)) == 32
    assert ClientKey.objects.count() == 1  # rotating made no key
    with pytest.raises(Exception, match="no usable key 'nobody'"):
        call_command("create_api_key", "--rotate-webhook-secret", "nobody", "--user", "admin", stdout=StringIO())
    other = ClientKey.objects.create_key(name="second", user=admin_user)[0]
    assert other.webhook_secret not in (printed, rotated)  # each key its own
    out = StringIO()
    call_command("ensure_admin", stdout=out)  # the admin exists with a key: nothing new shown
    assert "whsec_" not in out.getvalue()


def test_ensure_admin_shows_the_first_keys_webhook_secret(db):
    out = StringIO()
    call_command("ensure_admin", stdout=out)
    shown = out.getvalue().split("signs the webhooks of its jobs): ")[1].split()[0]
    assert shown == ClientKey.objects.get(name="scripts/serve").webhook_secret


def test_the_admin_shows_a_new_keys_webhook_secret_once_and_rotates_it(admin_client, admin_user):
    r = admin_client.post("/admin/renders/clientkey/add/", {"name": "mobile app", "user": admin_user.pk,
                                                            "expiry_date_0": "", "expiry_date_1": ""}, follow=True)
    key = ClientKey.objects.get(name="mobile app")
    page = r.content.decode()
    assert f"The webhook secret for mobile app is: {key.webhook_secret}" in page
    for url in ("/admin/renders/clientkey/", f"/admin/renders/clientkey/{key.pk}/change/"):
        again = admin_client.get(url).content.decode()
        assert "mobile app" in again and key.webhook_secret not in again and "whsec_" not in again
    old = key.webhook_secret
    r = admin_client.post("/admin/renders/clientkey/", {"action": "rotate_webhook_secret",
                                                        "_selected_action": [key.pk]}, follow=True)
    key.refresh_from_db()
    assert key.webhook_secret != old and f"is: {key.webhook_secret} (shown once" in r.content.decode()
    assert key.webhook_secret not in admin_client.get("/admin/renders/clientkey/").content.decode()


def test_keys_migrated_from_plain_tokens_and_old_keys_have_no_secret_until_rotated(db):
    from datetime import timedelta

    from rest_framework.authtoken.models import Token

    from renders.api.authentication import hashed_keys_since

    user = User.objects.create_user("legacy")
    token = Token.objects.create(user=user)
    Token.objects.filter(pk=token.pk).update(created=hashed_keys_since() - timedelta(days=30))
    call_command("migrate_authtokens", stdout=StringIO())
    key = ClientKey.objects.get(user=user)
    assert key.webhook_secret == ""  # never shown, so none: the operator's secret signs until it is rotated
    assert key.rotate_webhook_secret() == ClientKey.objects.get(pk=key.pk).webhook_secret != ""


# ---- the admin ----------------------------------------------------------------------------------

def test_the_admin_shows_every_attempt_and_sends_again_with_the_same_webhook_id(receiver, private_ok, client_key,
                                                                               admin_client):
    private_ok.VIDEOAPI_WEBHOOK_RETRY_DELAYS = (0,)
    url, path = receiver.url("status/500", client_key.webhook_secret)
    log = job(url, client_key)
    first = deliver(webhooks.notify(log, "render.succeeded", {"id": str(log.id)}))
    assert first.status == "failed"
    page = admin_client.get(f"/admin/renders/renderlog/{log.id}/change/").content.decode()
    assert first.webhook_id in page and "render.succeeded" in page and page.count("  500  (") == 2
    # the receiver is mended (same path now answers 200), the operator sends again
    receiver.secrets[path.replace("/status/500/", "/ok/")] = client_key.webhook_secret
    WebhookDelivery.objects.filter(pk=first.pk).update(url=url.replace("/status/500/", "/ok/"))
    pending = webhooks.notify(log, "render.succeeded", {})  # still pending: not sent twice
    r = admin_client.post("/admin/renders/webhookdelivery/", {"action": "send_again",
                                                              "_selected_action": [first.pk, pending.pk]},
                          follow=True)
    assert "Sent again 1, skipped 1 still being delivered" in r.content.decode()
    again = WebhookDelivery.objects.exclude(pk__in=[first.pk, pending.pk]).get()
    assert (again.webhook_id, again.payload, again.status) == (first.webhook_id, first.payload, "pending")
    deliver(again)
    mended = receiver.on(path.replace("/status/500/", "/ok/"))
    assert [r["headers"]["webhook-id"] for r in mended] == [first.webhook_id] and mended[0]["valid"]
    assert again.status == "succeeded"
    listing = admin_client.get("/admin/renders/webhookdelivery/").content.decode()
    assert first.webhook_id in listing


# ---- the pieces the jobs wire in ----------------------------------------------------------------

def test_notify_needs_a_callback_and_a_known_event(db):
    log = RenderLog.objects.create(endpoint="trim")
    assert webhooks.notify(log, "render.succeeded", {}) is None  # the request gave no callback_url
    with pytest.raises(ValueError, match=r"render\.succeeded, render\.failed, render\.cancelled"):
        webhooks.notify(log, "render.started", {}, url="http://127.0.0.1:9/")
    assert not WebhookDelivery.objects.exists()


def test_settings_are_validated(monkeypatch):
    from videoapi import settings as real

    monkeypatch.setenv("VIDEOAPI_WEBHOOK_RETRY_DELAYS", "1, 2.5,60")
    assert real.env_delays("VIDEOAPI_WEBHOOK_RETRY_DELAYS", "5") == (1.0, 2.5, 60.0)
    monkeypatch.setenv("VIDEOAPI_WEBHOOK_RETRY_DELAYS", "none")
    assert real.env_delays("VIDEOAPI_WEBHOOK_RETRY_DELAYS", "5") == ()
    monkeypatch.delenv("VIDEOAPI_WEBHOOK_RETRY_DELAYS")
    assert real.env_delays("VIDEOAPI_WEBHOOK_RETRY_DELAYS", "5,300,1800,7200,18000,36000") == (
        5, 300, 1800, 7200, 18000, 36000)
    for bad in ("5,soon", "-1", "1e9", ",".join(["1"] * 21)):
        monkeypatch.setenv("VIDEOAPI_WEBHOOK_RETRY_DELAYS", bad)
        with pytest.raises(ImproperlyConfigured, match="VIDEOAPI_WEBHOOK_RETRY_DELAYS"):
            real.env_delays("VIDEOAPI_WEBHOOK_RETRY_DELAYS", "5")
    good = new_webhook_secret()
    monkeypatch.setenv("VIDEOAPI_WEBHOOK_SECRET", good)
    assert real.env_webhook_secret("VIDEOAPI_WEBHOOK_SECRET") == good
    short = "whsec_" + base64.b64encode(b"short").decode()
    for bad in (good.removeprefix("whsec_"), "whsec_", "whsec_not base64!", short):
        monkeypatch.setenv("VIDEOAPI_WEBHOOK_SECRET", bad)
        with pytest.raises(ImproperlyConfigured, match="VIDEOAPI_WEBHOOK_SECRET must be whsec_"):
            real.env_webhook_secret("VIDEOAPI_WEBHOOK_SECRET")


def test_a_lost_attempt_is_queued_again_and_a_second_task_does_nothing(receiver, private_ok, client_key):
    url, path = receiver.url("ok", client_key.webhook_secret)
    lost = webhooks.notify(job(url, client_key), "render.succeeded", {})
    DBTaskResult.objects.all().delete()  # as if a worker had died holding it
    out = StringIO()
    call_command("resume_webhooks", stdout=out)
    assert "queued again 0" in out.getvalue()  # not overdue yet
    WebhookDelivery.objects.filter(pk=lost.pk).update(next_attempt_at=lost.next_attempt_at - timedelta(minutes=5))
    call_command("resume_webhooks", stdout=out)
    assert "queued again 1" in out.getvalue()
    assert deliver(lost).status == "succeeded" and len(receiver.on(path)) == 1
    # a retry scheduled later: a second task for it, run now, makes no attempt
    url, path = receiver.url("status/500", client_key.webhook_secret)
    private_ok.VIDEOAPI_WEBHOOK_RETRY_DELAYS = (600,)
    later = webhooks.notify(job(url, client_key), "render.succeeded", {})
    run_worker()
    later.refresh_from_db()
    assert later.status == "pending" and len(later.attempts) == 1
    assert deliver_webhook.call(str(later.pk)) == "not_due"
    later.refresh_from_db()
    assert len(later.attempts) == 1 and len(receiver.on(path)) == 1


def test_the_documented_receiver_verifies_a_real_delivery(receiver, private_ok, client_key):
    """docs/OPERATING.md's verify(), run as printed, on what the receiver got."""
    operating = (Path(__file__).resolve().parents[2] / "docs" / "OPERATING.md").read_text()
    [code] = re.findall(r"## Webhooks.*?```python\n(.*?)```", operating, re.DOTALL)
    namespace = {}
    exec(code, namespace)
    url, path = receiver.url("ok", client_key.webhook_secret)
    deliver(webhooks.notify(job(url, client_key), "render.failed", {"id": "j1"}))
    [request] = receiver.on(path)
    event = namespace["verify"](client_key.webhook_secret, request["headers"], request["body"])
    assert event["type"] == "render.failed" and event["data"] == {"id": "j1"}
    with pytest.raises(ValueError, match="not signed with this secret"):
        namespace["verify"](new_webhook_secret(), request["headers"], request["body"])
    with pytest.raises(ValueError, match="not signed"):
        namespace["verify"](client_key.webhook_secret, request["headers"], request["body"] + b" ")
    stale = {**request["headers"], "webhook-timestamp": str(int(time.time()) - 600)}
    with pytest.raises(ValueError, match="too old"):
        namespace["verify"](client_key.webhook_secret, stale, request["body"])


def test_a_slow_resolver_counts_against_the_attempts_deadline(private_ok, monkeypatch, client_key):
    private_ok.VIDEOAPI_WEBHOOK_TIMEOUT = 0.5
    private_ok.VIDEOAPI_WEBHOOK_RETRY_DELAYS = ()
    fake_dns(monkeypatch, {"slow.test": lambda: time.sleep(2) or ["127.0.0.1"]})
    delivery = deliver(webhooks.notify(job("http://slow.test/hook", client_key), "render.succeeded", {}))
    [attempt] = delivery.attempts
    assert attempt["error"] == "refused: the host slow.test did not resolve within 0.5 s" and attempt["seconds"] < 1
    started = time.monotonic()
    assert refusal("http://slow.test/hook") == "the host slow.test did not resolve within 0.5 s"  # nor a request
    assert time.monotonic() - started < 1


def test_the_callback_field_publishes_itself_and_a_blank_one_is_not_sent(settings):
    assert CallbackUrlField().openapi() == {"type": "string", "format": "uri", "maxLength": 2048, "default": "",
                                            "description": CallbackUrlField().help_text}
    for blank in ("", "   "):
        form = CallbackForm(data={"callback_url": blank})
        assert form.is_valid() and "callback_url" not in form.validated_data


def test_an_address_that_refuses_the_connection_gives_way_to_the_next_checked_one(receiver, private_ok,
                                                                                  monkeypatch, client_key):
    """A name with two addresses, the first with nothing listening: the second, from the same answer, gets it."""
    asked = fake_dns(monkeypatch, {"two.test": ["127.0.0.3", "127.0.0.1"]})
    url, path = receiver.url("ok", client_key.webhook_secret, host="two.test")
    delivery = deliver(webhooks.notify(job(url, client_key), "render.succeeded", {}))
    assert delivery.status == "succeeded" and len(delivery.attempts) == 1 and asked == ["two.test"]
    assert [r["valid"] for r in receiver.on(path)] == [True]


def test_two_tasks_for_one_attempt_send_it_once(receiver, private_ok, client_key):
    """A resumed task and a late one for the same attempt: the attempt is taken atomically, sent once."""
    from renders.webhooks.delivery import NOT_DUE

    url, path = receiver.url("ok", client_key.webhook_secret)
    delivery = webhooks.notify(job(url, client_key), "render.succeeded", {"id": "x"})
    first, second = (WebhookDelivery.objects.get(pk=delivery.pk) for _ in range(2))  # both loaded while due
    assert webhooks.deliver_once(first) == "succeeded"
    assert webhooks.deliver_once(second) == NOT_DUE
    assert len(receiver.on(path)) == 1
    assert len(WebhookDelivery.objects.get(pk=delivery.pk).attempts) == 1
