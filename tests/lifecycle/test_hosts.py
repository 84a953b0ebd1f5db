"""Several hosts on one database, the client address behind a proxy, the database going away."""

import json
import shutil
from unittest import mock

import pytest
from django.db import OperationalError
from django.test import RequestFactory

from renders.lifecycle.clients import client_address
from renders.models import RenderLog

from ..conftest import post
from ..housekeeping import make_leftover, sweep_cmd

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(("peer", "forwarded", "expected"), [
    ("203.0.113.9", "", "203.0.113.9"),                      # no proxy
    ("203.0.113.9", "198.51.100.1", "203.0.113.9"),          # an untrusted peer's header is ignored
    ("127.0.0.1", "198.51.100.1", "198.51.100.1"),           # nginx on loopback
    ("127.0.0.1", "6.6.6.6, 198.51.100.1", "198.51.100.1"),  # a client-written hop stays to the left
    ("127.0.0.1", "198.51.100.1, 10.0.0.5", "198.51.100.1"),  # two trusted proxies in a row
    ("127.0.0.1", "not-an-address", "127.0.0.1"),           # garbage: believe nothing
    ("127.0.0.1", "[2001:db8::1]:4711", "2001:db8::1"),
    ("127.0.0.1", "198.51.100.1:5000", "198.51.100.1"),
    ("::1", "2001:db8::7", "2001:db8::7"),
])
def test_client_address_through_trusted_proxies(settings, peer, forwarded, expected):
    settings.FORWARDED_ALLOW_IPS = ["127.0.0.1", "::1", "10.0.0.0/8"]
    meta = {"REMOTE_ADDR": peer}
    if forwarded:
        meta["HTTP_X_FORWARDED_FOR"] = forwarded
    assert client_address(RequestFactory().get("/", **meta)) == expected


def test_client_address_trusts_everyone_with_star(settings):
    settings.FORWARDED_ALLOW_IPS = ["*"]
    request = RequestFactory().get("/", REMOTE_ADDR="192.0.2.1", HTTP_X_FORWARDED_FOR="198.51.100.1, 192.0.2.50")
    assert client_address(request) == "198.51.100.1"


def test_render_records_host_and_forwarded_client(api, clips, settings):
    settings.VIDEOAPI_HOST_ID = "render-7"
    r = post(api, "/api/trim", {"video": clips.basic, "start": "0.5"}, REMOTE_ADDR="127.0.0.1",
             HTTP_X_FORWARDED_FOR="198.51.100.23")
    assert r.status_code == 200
    log = RenderLog.objects.get(id=r["X-Render-Id"])
    assert (log.host, log.client_address) == ("render-7", "198.51.100.23")


def test_sweep_never_marks_another_hosts_render(settings):
    own_id, own = make_leftover()
    other_id, other = make_leftover()
    RenderLog.objects.filter(id=other_id).update(host="some-other-host")
    report = json.loads(sweep_cmd("--json"))
    assert sorted(report["deleted"]) == sorted([own.name, other.name])  # what is on this disk is this host's to delete
    assert RenderLog.objects.get(id=own_id).cleanup_status == "swept"
    theirs = RenderLog.objects.get(id=other_id)
    assert (theirs.cleanup_status, theirs.status, theirs.error_code) == ("pending", "rendering", "")


def test_admin_shows_hosts_and_retries_only_its_own(admin_client, settings):
    own_id, own = make_leftover(status=RenderLog.Status.SUCCEEDED)
    other_id, other = make_leftover(status=RenderLog.Status.SUCCEEDED)
    RenderLog.objects.filter(id__in=[own_id, other_id]).update(cleanup_status="failed")
    RenderLog.objects.filter(id=other_id).update(host="render-9")
    from django.core.cache import cache

    cache.delete("renders:admin:hosts")  # the filter's host list is cached for a minute
    page = admin_client.get("/admin/renders/renderlog/").content.decode()
    assert f"host <code>{settings.VIDEOAPI_HOST_ID}</code>" in page  # the temp root shown is this host's
    assert "render-9" in page and "?host=render-9" in page  # column and filter
    page = admin_client.get("/admin/renders/renderlog/?host=render-9").content.decode()
    assert f'value="{other_id}"' in page and f'value="{own_id}"' not in page  # the rows' checkboxes
    r = admin_client.post("/admin/renders/renderlog/", {"action": "retry_cleanup", "index": 0,
                                                        "_selected_action": [own_id, other_id]}, follow=True)
    assert "1 on other hosts" in r.content.decode()
    assert RenderLog.objects.get(id=own_id).cleanup_status == "deleted" and not own.exists()
    assert RenderLog.objects.get(id=other_id).cleanup_status == "failed"
    assert other.exists()  # only a sweep or the admin of its own host removes it
    shutil.rmtree(other)


def test_database_error_is_503_before_the_upload_is_read(api, clips):
    """The real outage is proven against PostgreSQL in test_deploy; this forces it on any database."""
    with mock.patch("renders.models.ClientKeyManager.get_from_key",
                    side_effect=OperationalError("connection refused")), \
            mock.patch("renders.lifecycle.render.Render.receive") as receive:
        r = post(api, "/api/trim", {"video": clips.basic, "start": "0.5"})
    assert r.status_code == 503 and int(r["Retry-After"]) > 0
    body = json.loads(r.body)
    assert body["code"] == "unavailable" and "database" in body["detail"]
    receive.assert_not_called()
    assert RenderLog.objects.count() == 0
