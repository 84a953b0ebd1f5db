"""The cleanup promise under a real WSGI server (gunicorn on loopback)."""

import threading
from pathlib import Path

import pytest
from django.conf import settings

from renders.models import RenderLog

from .. import media
from ..conftest import leftovers, wait_for
from ..server import gunicorn, raw_request, read_head, request

pytestmark = [pytest.mark.server, pytest.mark.django_db(transaction=True)]


def test_dropped_download_deletes_workspace(token, big_clip):
    with gunicorn() as (address, _proc):
        sock = raw_request(address, "/api/trim", {"video": big_clip, "start": "0", "mode": "fast"}, token, rcvbuf=8192)
        status, headers, first = read_head(sock)
        assert status == 200
        total = int(headers["content-length"])
        assert total > 5_000_000
        got = len(first)
        while got < 64 * 1024:
            got += len(sock.recv(8192))
        render_id = headers["x-render-id"]
        workspace = Path(RenderLog.objects.get(id=render_id).workspace)
        # half way (or less): the download is still going, the workspace is there
        assert got < total // 2
        assert workspace.exists()
        assert RenderLog.objects.get(id=render_id).cleanup_status == "pending"
        sock.close()  # the client goes away
        assert wait_for(lambda: RenderLog.objects.get(id=render_id).cleanup_status == "deleted")
        assert not workspace.exists()
        log = RenderLog.objects.get(id=render_id)
        assert log.response_closed_at is not None and log.status == "succeeded"


def test_parallel_renders(token, tmp_path, clips):
    results = {}

    def one(i):
        fields = {"video": clips.basic, "start": f"0.{i}", "duration": "1"}
        results[i] = request(address, "/api/trim" if i % 2 else "/api/trim/preview/", fields, token)

    with gunicorn() as (address, _proc):
        threads = [threading.Thread(target=one, args=(i,)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
    assert len(results) == 6
    for i, (status, headers, body) in results.items():
        assert status == 200, body[:300]
        assert int(headers["content-length"]) == len(body)
        path = tmp_path / f"{i}.mp4"
        path.write_bytes(body)
        out = media.probe(path)
        assert out["vcodec"] == "h264" and abs(out["frames"] / 25 - 1.0) <= 1 / 25
        assert (out["height"]) == (180 if i % 2 else 360)
    assert wait_for(lambda: RenderLog.objects.filter(cleanup_status="deleted").count() == 6)
    assert leftovers() == []


def test_errors_through_the_server(token, clips):
    with gunicorn() as (address, _proc):
        status, headers, body = request(address, "/api/trim", {"video": clips.text, "start": "0"}, token)
        assert status == 415 and b'"unsupported_media"' in body and headers["x-render-id"]
        status, _headers, body = request(address, "/api/trim", {"video": clips.basic, "start": "0"}, "bad")
        assert status == 401
    assert Path(settings.VIDEOAPI_TEMP_ROOT).exists()
