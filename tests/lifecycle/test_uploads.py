"""The upload path under pressure: chunked bodies, oversized fields, a full temp disk."""

import http.client
import io
import json
import os
import shutil
import socket
import struct
import subprocess
import uuid
from pathlib import Path

import pytest
from django.conf import settings

from renders.models import RenderLog

from .. import media
from ..conftest import leftovers, post, save, wait_for
from ..server import gunicorn, multipart, read_response

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
    big = media.make(tmp_path / "big.mkv", "-f", "lavfi", "-i",
                     "nullsrc=s=640x360:r=25:d=2.6,geq=random(1)*255:128:128",
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
        status, _headers, body = chunked_request(address, "/api/trim", {"video": clips.basic, "start": "0"}, token)
        assert status == 200  # the worker is up and has rendered once
        path = tmp_path / "noise.bin"
        path.write_bytes(noise)
        status, _headers, body = chunked_request(address, "/api/trim", {"video": path, "start": "0"}, token)
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


# ---- a client that goes away mid-upload ---------------------------------------------------------------


def hang_up_mid_upload(address, path, fields, token, *, keep, chunked=False, cut="mid-chunk", reset=False,
                       before_close=None):
    """Send the headers and the first `keep` bytes of the body, then go away.

    Content-Length: the header declares the whole body. Chunked: the bytes go
    as 16 KiB chunks, then the body is cut `mid-chunk` (a chunk header
    promising more than follows) or `before-crlf` (a chunk's data without
    the CRLF that ends it). `reset`: hang up with an RST instead of a FIN,
    after `before_close()` says the server is reading.
    """
    body, ctype = multipart(fields)
    host, port = address.split(":")
    sock = socket.create_connection((host, int(port)), timeout=30)
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {len(body)}"
    sock.sendall((f"POST {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: {ctype}\r\n{framing}\r\n"
                  f"Authorization: Token {token}\r\n\r\n").encode())
    part = body[:keep]
    if not chunked:
        sock.sendall(part)
    else:
        whole, tail = part[:len(part) - len(part) % 16384], part[len(part) - len(part) % 16384:]
        for offset in range(0, len(whole), 16384):
            sock.sendall(b"4000\r\n" + whole[offset:offset + 16384] + b"\r\n")
        if cut == "mid-chunk":
            sock.sendall(f"{len(tail) + 5000:x}\r\n".encode() + tail)
        else:
            sock.sendall(f"{len(tail):x}\r\n".encode() + tail)
    if before_close:
        before_close()
    if reset:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def scrape(address):
    """The server's /metrics text (a plain HTTP GET on loopback)."""
    host, port = address.split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        connection.request("GET", "/metrics")
        return connection.getresponse().read().decode()
    finally:
        connection.close()


def counter(text, name, **labels):
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


@pytest.mark.server
@pytest.mark.django_db(transaction=True)
def test_a_client_hanging_up_mid_upload_is_recorded_as_its_abort(token, clips):
    """Content-Length and chunked bodies cut off, by FIN and by RST: `rejected`/`client_disconnected`, no traceback.

    Before, the chunked ones were 500 `internal_error` (Django's
    UnreadablePostError over gunicorn's NoMoreData) with a traceback and
    counted `failed`, and a short Content-Length body was 400 "video: This
    field is required." (the parser saw the end of the stream and fewer parts).
    """
    fields = {"start": "0.5", "video": clips.basic}
    body, _ctype = multipart(fields)
    video_part = body.index(b'name="video"')
    cases = [
        ("length, cut between parts", {"keep": body.rindex(b"--", 0, video_part)}),
        ("length, cut mid-file", {"keep": len(body) // 2}),
        ("length, cut mid-file by a reset", {"keep": len(body) // 2, "reset": True}),
        ("chunked, cut mid-chunk", {"keep": len(body) // 2, "chunked": True}),
        ("chunked, cut before a chunk's CRLF", {"keep": len(body) // 2, "chunked": True, "cut": "before-crlf"}),
    ]
    seen = []
    with gunicorn(workers=1) as (address, _proc):
        log_file = Path(os.environ["VIDEOAPI_TEST_DIR"]) / f"gunicorn-{address.split(':')[1]}.log"
        for name, how in cases:
            known = set(RenderLog.objects.values_list("id", flat=True))

            def started(known=known):
                return RenderLog.objects.exclude(id__in=known).first()

            hang_up_mid_upload(address, "/api/trim", fields, token, before_close=lambda: wait_for(started), **how)
            log = wait_for(lambda: (row := started()) is not None and row.cleanup_status != "pending" and row)
            assert log, name
            assert (log.status, log.http_status, log.error_code) == ("rejected", 400, "client_disconnected"), \
                (name, log.status, log.error_code, log.error_message)
            assert "disconnected" in log.error_message, name
            assert log.cleanup_status == "deleted" and log.render_started_at is None, name
            assert leftovers() == [], name  # the workspace went at once
            if name == "length, cut mid-file":  # what came is on record: the file begun, as far as it came
                assert log.inputs == [{"field": "video", "file": clips.basic.name, "complete": False,
                                       "bytes": log.inputs[0]["bytes"]}] and 0 < log.inputs[0]["bytes"] < len(body) // 2
                assert f"after {len(body) // 2} of the {len(body)} bytes" in log.error_message
            seen.append(log.id)
        metrics = scrape(address)
        server_log = log_file.read_text()
    assert counter(metrics, "videoapi_renders_total", endpoint="trim", outcome="aborted") == len(cases)
    assert counter(metrics, "videoapi_renders_total", endpoint="trim", outcome="failed") == 0
    assert counter(metrics, "videoapi_renders_total", endpoint="trim", outcome="rejected") == 0
    assert "Traceback" not in server_log and " ERROR " not in server_log, server_log[-3000:]
    assert server_log.count("code=client_disconnected") == len(cases)
    assert len(set(seen)) == len(cases)


@pytest.mark.server
@pytest.mark.django_db(transaction=True)
def test_a_malformed_chunked_body_is_400_not_500(token, clips):
    """A chunk size that is not hex is the client's mistake: 400 `invalid_input`, no traceback (it was a 500)."""
    body, ctype = multipart({"start": "0.5", "video": clips.basic})
    with gunicorn(workers=1) as (address, _proc):
        log_file = Path(os.environ["VIDEOAPI_TEST_DIR"]) / f"gunicorn-{address.split(':')[1]}.log"
        host, port = address.split(":")
        with socket.create_connection((host, int(port)), timeout=30) as sock:
            sock.sendall((f"POST /api/trim HTTP/1.1\r\nHost: {address}\r\nContent-Type: {ctype}\r\n"
                          f"Transfer-Encoding: chunked\r\nAuthorization: Token {token}\r\nConnection: close\r\n\r\n"
                          ).encode() + f"{1000:x}\r\n".encode() + body[:1000] + b"\r\nzz\r\n" + body[1000:2000])
            status, headers, answer = read_response(sock)
        server_log = log_file.read_text()
    assert status == 400, answer[:300]
    assert json.loads(answer)["code"] == "invalid_input" and "malformed" in json.loads(answer)["detail"]
    log = RenderLog.objects.get(id=headers["x-render-id"])
    assert (log.status, log.error_code, log.cleanup_status) == ("rejected", "invalid_input", "deleted")
    assert "Traceback" not in server_log and " ERROR " not in server_log, server_log[-3000:]


# ---- what a refused request brought, on its RenderLog --------------------------------------------------


def logged(response):
    return RenderLog.objects.get(id=json.loads(response.body)["render_id"])


def test_a_refused_request_records_what_it_brought_cut_and_without_secrets(api, clips, token):
    secret = token.partition(".")[2]
    assert len(secret) >= 16
    r = post(api, "/api/intro/render", {
        "video": clips.basic, "full_name": "N" * 500, "role": "Engineer", "start": "soon" * 50,
        "team": f"our key is {token}", "password": "hunter2-hunter2", "api_key": token, "note": "x" * 300,
    })
    assert r.status_code == 400 and json.loads(r.body)["code"] == "invalid_input"
    log = logged(r)
    assert log.status == "rejected"
    assert log.params["full_name"] == "N" * 80 + "\u2026 (500 characters)"  # its field's limit: 80
    assert log.params["start"] == ("soon" * 50)[:100] + "\u2026 (200 characters)"  # no declared limit: 100
    assert log.params["note"] == "x" * 100 + "\u2026 (300 characters)"  # a field the form does not know
    assert log.params["role"] == "Engineer"
    assert log.params["team"] == log.params["password"] == log.params["api_key"] == "[not recorded]"
    [upload] = log.inputs  # as received, and what probing found (the video itself was valid)
    assert (upload["field"], upload["file"], upload["bytes"]) == ("video", "basic.mp4", clips.basic.stat().st_size)
    assert (upload["kind"], upload["video_codec"]) == ("video", "h264")
    everything = json.dumps([log.params, log.inputs, log.details, log.error_message, log.api_key])
    assert secret not in everything and "hunter2" not in everything
    assert "Token" not in everything and "Authorization" not in everything  # nothing from the headers


def test_a_text_file_as_video_and_a_missing_field_are_on_record(api, clips):
    r = post(api, "/api/trim", {"video": clips.text, "start": "0.5", "final_filename": "cut"})
    assert r.status_code == 415
    log = logged(r)
    assert log.params == {"start": "0.5", "final_filename": "cut"}
    assert log.inputs == [{"field": "video", "file": "notes.txt", "bytes": clips.text.stat().st_size}]
    r = post(api, "/api/intro/render", {"video": clips.basic, "team": "Core", "role": "Engineer"})
    assert r.status_code == 400 and "full_name" in json.loads(r.body)["fields"]
    log = logged(r)
    assert log.params == {"team": "Core", "role": "Engineer"}  # what came, and so what did not
    assert [item["field"] for item in log.inputs] == ["video"]


def test_a_refused_list_is_recorded_to_its_limits(api, clips):
    steps = [f"step {i}" for i in range(10)]
    steps[1] = "s" * 150
    r = post(api, "/api/how-it-works/render", {"video": clips.basic, "steps": steps})
    assert r.status_code == 400 and "steps" in json.loads(r.body)["fields"]
    recorded = logged(r).params["steps"]
    # the list's limit (8 items) and each item's (100 characters)
    assert recorded == ["step 0", "s" * 100 + "\u2026 (150 characters)", *steps[2:8], "\u2026 (10 values)"]


def test_an_accepted_render_keeps_its_validated_params_when_it_fails(api, clips, monkeypatch):
    from renders.lifecycle.render import Render

    def explode(self, args, measures=False):
        raise RuntimeError("bug")

    monkeypatch.setattr(Render, "run_ffmpeg", explode)
    r = post(api, "/api/trim", {"video": clips.basic, "start": "0.5", "note": "not a field"})
    assert r.status_code == 500
    log = logged(r)
    assert log.params["start"] == 0.5 and "note" not in log.params  # validated, not as received
    assert log.inputs[0]["field"] == "video" and log.inputs[0]["duration"] > 1.9  # the probe's summary


def test_a_refused_request_records_the_probe_where_one_ran(api, clips):
    r = post(api, "/api/trim", {"video": clips.basic, "start": "5"})  # past the end of a 2 s clip
    assert r.status_code == 400 and "start" in json.loads(r.body)["fields"]
    item = logged(r).inputs[0]
    assert (item["field"], item["file"], item["kind"], item["video_codec"]) == ("video", "basic.mp4", "video", "h264")
    assert abs(item["duration"] - 2.0) < 0.1


def test_a_refused_request_with_nul_characters_is_on_record(api, clips):
    """PostgreSQL's text and JSON hold no NUL: what a client sent is recorded with U+FFFD in its place."""
    r = post(api, "/api/intro/render", {"video": clips.basic, "full_name": "A\x00B", "role": "R", "team": "T",
                                        "fit": "co\x00ver", "note\x00": "x\x00y"})
    assert r.status_code == 400 and json.loads(r.body)["fields"].keys() >= {"fit"}
    log = logged(r)
    assert log.status == "rejected" and log.error_code == "invalid_input" and "\ufffd" in log.error_message
    assert log.params["fit"] == "co\ufffdver" and log.params["note\ufffd"] == "x\ufffdy"
    assert post(api, "/api/trim", {"video": clips.basic, "start": "0.5"}).status_code == 200  # nothing poisoned


def test_a_body_never_read_to_its_end_records_its_files_without_secrets():
    """The files a cut-off body began are recorded like a parsed one's: names cut, a secret never kept."""
    from types import SimpleNamespace

    from renders.lifecycle.uploads import NOT_RECORDED, Receipt

    secret = "s3cr3t-s3cr3t-s3cr3t"
    receipt = Receipt(workspace=None)
    receipt.handler = SimpleNamespace(files=[
        {"field": "video", "file": f"clip-{secret}.mp4", "bytes": 10, "complete": False},
        {"field": "f" * 300, "file": "n" * 300 + ".mp4", "bytes": 0, "complete": False},
    ])
    first, second = receipt.brought(secrets=(f"Prefix.{secret}", secret))["inputs"]
    assert first == {"field": "video", "file": NOT_RECORDED, "bytes": 10, "complete": False}
    assert second["field"] == "f" * 100 + "\u2026 (300 characters)" and second["file"].endswith("(304 characters)")
