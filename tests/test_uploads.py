"""The upload path under pressure: chunked bodies, oversized fields, a full temp disk."""

import io
import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
from django.conf import settings

from renders.models import RenderLog

from . import media
from .conftest import leftovers, post, save, wait_for
from .server import gunicorn, multipart, read_response

pytestmark = pytest.mark.django_db


def chunked_request(address, path, fields, token, chunk=64 * 1024):
    """POST with Transfer-Encoding: chunked (no Content-Length), as curl -T - and streaming clients do."""
    import socket

    body, ctype = multipart(fields)
    host, port = address.split(":")
    with socket.create_connection((host, int(port)), timeout=60) as sock:
        sock.sendall((f"POST {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: {ctype}\r\n"
                      f"Transfer-Encoding: chunked\r\nAuthorization: Token {token}\r\nConnection: close\r\n\r\n")
                     .encode())
        try:
            for offset in range(0, len(body), chunk):
                piece = body[offset:offset + chunk]
                sock.sendall(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            sock.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered early (413) and closed
        return read_response(sock)


@pytest.mark.server
@pytest.mark.django_db(transaction=True)
def test_chunked_uploads_are_read_to_the_end_under_the_limit(token, clips, tmp_path):
    with gunicorn() as (address, _proc):
        status, headers, body = chunked_request(address, "/api/trim", {"video": clips.basic, "start": "0.5"}, token)
        assert status == 200, body[:300]
        out = tmp_path / "o.mp4"
        out.write_bytes(body)
        assert media.probe(out)["vcodec"] == "h264"
        # a chunked body past the limit: 413 while it streams, nothing kept
        filler = b"x" * (settings.VIDEOAPI_MAX_UPLOAD_BYTES + 1024 * 1024)
        status, headers, body = chunked_request(address, "/api/trim", {"video": clips.basic, "start": "0.5",
                                                                         "padding": filler.decode()}, token)
        assert status == 413 and json.loads(body)["code"] == "payload_too_large"
        assert wait_for(lambda: leftovers() == [], seconds=10)
    assert RenderLog.objects.get(id=headers["x-render-id"]).status == "rejected"


def test_text_field_over_the_memory_limit_is_413_naming_it(api, clips, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    r = post(api, "/api/intro/render", {"video": clips.basic, "team": "T", "role": "R", "full_name": "x" * 50_000})
    assert r.status_code == 413
    body = json.loads(r.body)
    assert body["code"] == "payload_too_large" and "full_name" in body["fields"]
    assert "10000 bytes" in body["fields"]["full_name"][0]


@pytest.fixture
def small_disk(settings):
    """A 12 MB tmpfs as the temp root (mounted here, unmounted after; needs root)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount = Path(os.environ["VIDEOAPI_TEST_DIR"]) / f"small-{uuid.uuid4().hex[:6]}"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=12m,mode=0700", "tmpfs", str(mount)],
                            capture_output=True, text=True)
    if result.returncode:
        mount.rmdir()
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    settings.VIDEOAPI_TEMP_ROOT = mount
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
        mount.rmdir()


def open_files_under(path):
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(path)):
            found.append(target)
    return found


def test_full_temp_disk_is_507_and_gives_its_space_back(api, clips, tmp_path, small_disk):
    big = media.make(tmp_path / "big.mkv", "-f", "lavfi", "-i", "nullsrc=s=640x360:r=25:d=2.6,geq=random(1)*255:128:128",
                     "-c:v", "ffv1")
    assert 13 * 1024 * 1024 < big.stat().st_size < settings.VIDEOAPI_MAX_UPLOAD_BYTES
    # declared length over the free space: refused before the body is read
    r = post(api, "/api/trim", {"video": big, "start": "0"})
    assert r.status_code == 507 and json.loads(r.body)["code"] == "insufficient_storage" and r["Retry-After"]
    # the disk fills during the render: a small upload, a large output, little room left
    ballast = small_disk / "ballast"
    ballast.write_bytes(b"\0" * (11 * 1024 * 1024))
    try:
        r = post(api, "/api/trim", {"video": clips.basic, "start": "0", "canvas": "1920x1080", "quality": "high"})
        assert r.status_code == 507, r.body[:300]
        assert RenderLog.objects.get(id=r["X-Render-Id"]).status == "failed"
    finally:
        ballast.unlink()
    assert sorted(p.name for p in small_disk.iterdir() if p.name != ".slots") == []
    assert open_files_under(small_disk) == []  # nothing deleted is kept open: the space is back
    assert shutil.disk_usage(small_disk).free > 11 * 1024 * 1024
    r = post(api, "/api/trim", {"video": clips.basic, "start": "1"})  # and the next render works
    assert r.status_code == 200
    assert media.probe(save(r, tmp_path / "ok.mp4"))["vcodec"] == "h264"


def worker_open_files(master_pid, under):
    """Files the gunicorn master's workers hold open under `under` (deleted ones included)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1]) != master_pid:
                continue
            for fd in os.listdir(f"/proc/{pid}/fd"):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith(str(under)):
                    found.append(target)
        except OSError:
            continue
    return found


@pytest.mark.server
@pytest.mark.django_db(transaction=True)
def test_disk_filling_during_a_chunked_upload_is_507_and_the_worker_keeps_nothing_open(token, clips, tmp_path,
                                                                                        small_disk):
    with gunicorn({"VIDEOAPI_TEMP_ROOT": str(small_disk)}) as (address, proc):
        noise = os.urandom(14 * 1024 * 1024)  # no declared length: only the disk can stop it
        status, headers, body = chunked_request(address, "/api/trim", {"video": clips.basic, "start": "0"}, token)
        assert status == 200  # the worker is up and has rendered once
        path = tmp_path / "noise.bin"
        path.write_bytes(noise)
        status, headers, body = chunked_request(address, "/api/trim", {"video": path, "start": "0"}, token)
        assert status == 507 and json.loads(body)["code"] == "insufficient_storage"
        assert wait_for(lambda: not [p for p in small_disk.iterdir() if p.name != ".slots"], seconds=10)
        assert wait_for(lambda: worker_open_files(proc.pid, small_disk) == [], seconds=10), \
            worker_open_files(proc.pid, small_disk)
        assert shutil.disk_usage(small_disk).free > 11 * 1024 * 1024  # the space is back at once
        status, _, body = chunked_request(address, "/api/trim", {"video": clips.basic, "start": "1"}, token)
        assert status == 200  # and the next render works


def test_an_upload_cut_off_by_the_limit_leaves_no_open_file(api, settings, tmp_path):
    """A chunked body passing the limit mid-file: 413, and the half-written upload is closed at once.

    An open file keeps its disk space after the workspace is deleted, for as
    long as the request object lives; only Django's own StopUpload closes it.
    """
    settings.VIDEOAPI_MAX_UPLOAD_BYTES = 1024 * 1024  # past the parser's first reads: the file is being written
    upload = tmp_path / "clip.mp4"
    upload.write_bytes(os.urandom(2 * 1024 * 1024))
    body, ctype = multipart({"start": "0", "video": upload})
    # as gunicorn hands over a de-chunked body: no length, a stream that ends (the test client's own cannot)
    r = api.generic("POST", "/api/trim", body, content_type=ctype, CONTENT_LENGTH="",
                    HTTP_TRANSFER_ENCODING="chunked", **{"wsgi.input": io.BytesIO(body)})
    assert r.status_code == 413 and json.loads(r.content)["code"] == "payload_too_large"
    root = os.path.realpath(settings.VIDEOAPI_TEMP_ROOT)
    open_under_root = [target for fd in os.listdir("/proc/self/fd")
                       if (target := _fd_target(fd)).startswith(root)]
    assert r.wsgi_request is not None and open_under_root == []  # the request is alive, its upload closed
    assert leftovers() == []


def _fd_target(fd):
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return ""
