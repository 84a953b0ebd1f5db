"""Stored uploads (docs/API.md, "Uploads"): POST/GET/DELETE /api/uploads, their files, expiry, resolve_upload."""

import errno
import os
import stat
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone
from rest_framework.test import APIClient

from renders.errors import InvalidInput
from renders.lifecycle import uploads_store
from renders.lifecycle.sweep import sweep
from renders.lifecycle.workspace import Workspace
from renders.models import Upload

from .. import media
from ..conftest import leftovers, post

pytestmark = pytest.mark.django_db
FIELDS = {"id", "kind", "bytes", "filename", "media", "created_at", "expires_at"}


@pytest.fixture(scope="module")
def sounds(tmp_path_factory):
    d = tmp_path_factory.mktemp("sounds")

    class Sounds:
        wav = media.make(d / "tone.wav", "-f", "lavfi", "-i", "sine=f=440:d=1")
        m4a = media.make(d / "tone.m4a", "-f", "lavfi", "-i", "sine=f=440:d=1", "-c:a", "aac")

    return Sounds


@pytest.fixture(autouse=True)
def uploads_deleted_after(db):
    """Each test's uploads go with their rows (the receiver deletes the files) before the temp root is checked:
    a file left then is a leak the autouse check reports."""
    yield
    Upload.objects.all().delete()


def uploads_dir() -> Path:
    return Path(settings.VIDEOAPI_TEMP_ROOT) / "uploads"


def stored(path: Path, client) -> dict:
    response = post(client, "/api/uploads", {"file": path})
    assert response.status_code == 201, response.body[:500]
    return response.json()


def other(other_token):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {other_token}")
    return client


@pytest.mark.parametrize(("name", "kind"), [("basic", "video"), ("png", "image"), ("wav", "audio"),
                                            ("m4a", "audio"), ("captions", "captions")])
def test_each_kind_is_told_by_probing(api, clips, sounds, name, kind):
    source = getattr(clips, name, None) or getattr(sounds, name)
    response = post(api, "/api/uploads", {"file": source})
    assert response.status_code == 201, response.body[:500]
    body = response.json()
    assert set(body) == FIELDS
    assert response["Location"] == f"/api/uploads/{body['id']}"
    assert (body["kind"], body["bytes"], body["filename"]) == (kind, source.stat().st_size, source.name)
    found = body["media"]
    if kind == "video":
        assert (found["width"], found["height"], found["video_codec"]) == (320, 240, "h264")
        assert found["duration"] == pytest.approx(2, abs=0.1) and found["audio_codec"] == "aac"
    elif kind == "image":
        assert (found["width"], found["height"], found["demuxer"]) == (64, 64, "png_pipe")
    elif kind == "audio":
        assert found["duration"] == pytest.approx(1, abs=0.1) and found["channels"] == 1
        assert found["demuxer"] == ("wav" if name == "wav" else "mov")  # an .m4a is a video container, no picture
    else:
        assert found == {"format": "srt", "size": source.stat().st_size, "cues": 1, "duration": 1.0}
    created, expires = (timezone.datetime.fromisoformat(body[key]) for key in ("created_at", "expires_at"))
    assert (expires - created).total_seconds() == settings.VIDEOAPI_UPLOAD_TTL == 86400
    # named by its id (never by the client), private and read-only, the bytes as sent
    on_disk = uploads_dir() / body["id"]
    assert on_disk.read_bytes() == source.read_bytes()
    assert stat.S_IMODE(on_disk.stat().st_mode) == 0o400
    assert leftovers() == [f"uploads/{body['id']}"]  # the request's workspace is gone
    row = Upload.objects.get(pk=body["id"])
    assert (row.kind, row.bytes, row.media) == (kind, body["bytes"], found)


def test_the_file_name_is_kept_only_made_safe():
    assert uploads_store.safe_name("../../etc/pa;ss\x00wd\u200b.mp4") == "pa_ss_wd_.mp4"
    assert uploads_store.safe_name('C:\\Users\\me\\"clip".MOV') == "clip_.MOV"
    assert uploads_store.safe_name("...") == "" and uploads_store.safe_name(None) == ""
    long = uploads_store.safe_name("x" * 300 + ".webm")
    assert len(long) == 100 and long.endswith(".webm")


def test_get_answers_the_same_json_and_only_to_its_client(api, clips, other_token):
    body = stored(clips.captions, api)
    answer = api.get(f"/api/uploads/{body['id']}")
    assert answer.status_code == 200 and answer.json() == body and answer["Cache-Control"] == "no-store"
    assert api.get(f"/api/uploads/{body['id'].upper().replace('-', '')}").json() == body  # any UUID spelling
    stranger = other(other_token)
    assert stranger.get(f"/api/uploads/{body['id']}").status_code == 404
    assert stranger.delete(f"/api/uploads/{body['id']}").status_code == 404
    assert stranger.get("/api/uploads").json()["results"] == []
    assert (uploads_dir() / body["id"]).exists() and Upload.objects.filter(pk=body["id"]).exists()
    for bad in ("not-a-uuid", str(uuid.uuid4()), "1" * 40):
        refused = api.get(f"/api/uploads/{bad}")
        assert refused.status_code == 404 and refused.json()["code"] == "not_found"
        assert api.delete(f"/api/uploads/{bad}").status_code == 404


def test_the_list_is_newest_first_in_pages(api, clips, tmp_path):
    made = []
    for number in range(3):
        source = tmp_path / f"c{number}.srt"
        source.write_text(f"1\n00:00:00,000 --> 00:00:01,000\nline {number}\n", encoding="utf-8")
        made.append(stored(source, api))
    first = api.get("/api/uploads?limit=2")
    assert first.status_code == 200
    page = first.json()
    assert [item["id"] for item in page["results"]] == [made[2]["id"], made[1]["id"]]
    assert page["results"][0] == made[2] and page["previous"] is None and page["next"]
    rest = api.get(page["next"]).json()
    assert [item["id"] for item in rest["results"]] == [made[0]["id"]] and rest["next"] is None
    assert api.get("/api/uploads?limit=0").json()["fields"] == {"limit": ["must be an integer from 1 to 100"]}
    assert api.get("/api/uploads?cursor=garbage").status_code == 400


def test_delete_removes_the_file(api, clips):
    body = stored(clips.png, api)
    assert (uploads_dir() / body["id"]).exists()
    assert api.delete(f"/api/uploads/{body['id']}").status_code == 204
    assert not (uploads_dir() / body["id"]).exists() and not Upload.objects.exists()
    assert api.get(f"/api/uploads/{body['id']}").status_code == 404
    assert leftovers() == []


@pytest.mark.parametrize(("name", "status", "code"), [("text", 415, "unsupported_media"),
                                                      ("playlist", 415, "unsupported_media"),
                                                      ("truncated", 422, "undecodable_media"),
                                                      ("truncated_tail", 422, "undecodable_media")])
def test_what_is_no_kind_or_damaged_is_refused_and_nothing_kept(api, clips, name, status, code):
    response = post(api, "/api/uploads", {"file": getattr(clips, name)})
    assert response.status_code == status, response.body[:300]
    assert response.json()["code"] == code and list(response.json()["fields"]) == ["file"]
    assert leftovers() == [] and not Upload.objects.exists()


def test_broken_captions_are_refused_naming_the_line(api, tmp_path):
    source = tmp_path / "broken.vtt"
    source.write_text("WEBVTT\n\n00:00:02.000 --> 00:00:01.000\nbackwards\n", encoding="utf-8")
    response = post(api, "/api/uploads", {"file": source})
    assert response.status_code == 400 and response.json()["detail"].startswith("file: line 3")
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    assert post(api, "/api/uploads", {"file": empty}).json()["fields"] == {"file": ["the file is empty"]}
    assert leftovers() == [] and not Upload.objects.exists()


def test_a_body_over_the_limit_is_413_naming_file(api, clips, settings):
    settings.VIDEOAPI_MAX_UPLOAD_BYTES = 10_000
    assert clips.basic.stat().st_size > 10_000
    response = post(api, "/api/uploads", {"file": clips.basic})
    assert response.status_code == 413 and response.json()["code"] == "payload_too_large"
    assert "10000 bytes" in response.json()["detail"] and list(response.json()["fields"]) == ["file"]
    assert leftovers() == [] and not Upload.objects.exists()


def test_the_form_is_one_file_in_file(api, clips):
    missing = post(api, "/api/uploads", {"other": clips.png})
    assert missing.status_code == 400 and missing.json()["fields"] == {"other": ["unknown field"]}
    nothing = api.post("/api/uploads", {}, format="multipart")
    assert nothing.status_code == 400 and nothing.json()["fields"] == {"file": ["This field is required."]}
    text = post(api, "/api/uploads", {"file": "not a file"})
    assert text.status_code == 400 and text.json()["fields"] == {"file": ["must be an uploaded file"]}
    two = post(api, "/api/uploads", {"file": [clips.png, clips.png]})
    assert two.status_code == 400 and two.json()["fields"] == {"file": ["send one file"]}
    json_body = api.post("/api/uploads", {"file": "x"}, format="json")
    assert json_body.status_code == 415 and json_body.json()["code"] == "unsupported_media"
    assert leftovers() == [] and not Upload.objects.exists()


def test_past_the_clients_quota_is_507_and_nothing_kept(api, clips, other_token, settings):
    size = clips.captions.stat().st_size
    settings.VIDEOAPI_MAX_UPLOADS_BYTES = size * 3 // 2
    kept = stored(clips.captions, api)
    response = post(api, "/api/uploads", {"file": clips.captions})
    assert response.status_code == 507 and response.json()["code"] == "insufficient_storage"
    detail = response.json()["detail"]
    assert f"at most {size * 3 // 2} bytes" in detail and "VIDEOAPI_MAX_UPLOADS_BYTES" in detail
    assert leftovers() == [f"uploads/{kept['id']}"] and Upload.objects.count() == 1
    # a body whose declared length is past the quota is refused before it is read
    big = post(api, "/api/uploads", {"file": clips.basic})
    assert big.status_code == 507 and f"at most {size * 3 // 2} bytes" in big.json()["detail"]
    # the quota is each client's own; a deleted upload frees its share
    assert post(other(other_token), "/api/uploads", {"file": clips.captions}).status_code == 201
    assert api.delete(f"/api/uploads/{kept['id']}").status_code == 204
    assert post(api, "/api/uploads", {"file": clips.captions}).status_code == 201


def test_uploads_expire_and_the_sweep_deletes_them(api, clips):
    old, young = stored(clips.captions, api), stored(clips.png, api)
    Upload.objects.filter(pk=old["id"]).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert api.get(f"/api/uploads/{old['id']}").status_code == 404  # expired: gone for its client at once
    assert [item["id"] for item in api.get("/api/uploads").json()["results"]] == [young["id"]]
    report = sweep(dry_run=True)
    assert report.uploads_deleted == [old["id"]] and (uploads_dir() / old["id"]).exists()
    report = sweep()
    assert report.uploads_deleted == [old["id"]] and report.errors == {}
    assert not (uploads_dir() / old["id"]).exists() and not Upload.objects.filter(pk=old["id"]).exists()
    assert (uploads_dir() / young["id"]).exists()
    # after its VIDEOAPI_UPLOAD_TTL the other goes too
    report = sweep(now=time.time() + settings.VIDEOAPI_UPLOAD_TTL + 1)
    assert report.uploads_deleted == [young["id"]] and leftovers() == [] and not Upload.objects.exists()


def test_the_sweep_deletes_files_no_upload_names_once_old(api, clips):
    kept = stored(clips.captions, api)
    orphan, young = uploads_dir() / str(uuid.uuid4()), uploads_dir() / str(uuid.uuid4())
    stranger = uploads_dir() / "not-ours"
    for path in (orphan, young, stranger):
        path.write_bytes(b"x")
    os.utime(orphan, (time.time() - 3600, time.time() - 3600))
    report = sweep(grace=60)
    assert report.uploads_deleted == [orphan.name]
    assert not orphan.exists() and young.exists() and stranger.exists() and (uploads_dir() / kept["id"]).exists()
    assert "uploads" not in report.ignored  # the service's own directory, not a stray entry
    young.unlink()
    stranger.unlink()


def test_resolve_upload_links_the_file_into_a_workspace(api, clips, token, other_token):
    body = stored(clips.basic, api)
    owner = Upload.objects.get(pk=body["id"]).owner
    workspace = Workspace.create("trim", uuid.uuid4())
    try:
        linked = uploads_store.resolve_upload(f"upload:{body['id']}", owner, workspace.path, "video")
        original = uploads_dir() / body["id"]
        assert linked.parent == workspace.path and body["id"] not in linked.name and "basic" not in linked.name
        assert linked.stat().st_ino == original.stat().st_ino  # a hard link: no copy of the bytes
        assert not stat.S_IMODE(linked.stat().st_mode) & 0o222  # read-only
        again = uploads_store.resolve_upload(f"upload:{body['id']}", owner, workspace.path, "video")
        assert again != linked  # each use its own name
        # deleting the upload mid-render takes nothing from the render
        assert api.delete(f"/api/uploads/{body['id']}").status_code == 204
        assert not original.exists() and linked.read_bytes() == clips.basic.read_bytes()
    finally:
        workspace.delete()


@pytest.mark.parametrize("ref", ["another client's", "unknown", "expired", "upload:not-a-uuid", "no prefix", None])
def test_resolve_upload_refuses_what_is_not_the_clients_live_upload(api, clips, ref, tmp_path):
    body = stored(clips.captions, api)
    owner = Upload.objects.get(pk=body["id"]).owner
    given, as_owner = f"upload:{body['id']}", owner
    if ref == "another client's":
        as_owner = "key:someone"
    elif ref == "unknown":
        given = f"upload:{uuid.uuid4()}"
    elif ref == "expired":
        Upload.objects.filter(pk=body["id"]).update(expires_at=timezone.now())
    elif ref == "no prefix":
        given = body["id"]
    elif ref is not None:
        given = ref
    else:
        given = None
    with pytest.raises(InvalidInput) as refused:
        uploads_store.resolve_upload(given, as_owner, tmp_path, "captions")
    assert refused.value.fields == {"captions": ["no such upload"]} and str(refused.value.detail).startswith("captions")
    assert list(tmp_path.iterdir()) == []


def test_resolve_upload_copies_where_it_cannot_link(api, clips, tmp_path, monkeypatch):
    body = stored(clips.png, api)
    owner = Upload.objects.get(pk=body["id"]).owner

    def no_link(*args, **kwargs):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", no_link)
    copied = uploads_store.resolve_upload(f"upload:{body['id']}", owner, tmp_path, "image")
    assert copied.read_bytes() == clips.png.read_bytes()
    assert copied.stat().st_ino != (uploads_dir() / body["id"]).stat().st_ino
    assert stat.S_IMODE(copied.stat().st_mode) == 0o400


def test_the_admin_lists_and_deletes_uploads_with_their_files(api, clips, admin_client):
    body = stored(clips.captions, api)
    listing = admin_client.get("/admin/renders/upload/")
    assert listing.status_code == 200 and clips.captions.name in listing.content.decode()
    assert admin_client.get(f"/admin/renders/upload/{body['id']}/change/").status_code == 200
    assert admin_client.get("/admin/renders/upload/add/").status_code == 403
    response = admin_client.post(f"/admin/renders/upload/{body['id']}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not Upload.objects.exists() and not (uploads_dir() / body["id"]).exists()
    more = [stored(clips.captions, api)["id"] for _ in range(2)]
    response = admin_client.post("/admin/renders/upload/", {"action": "delete_selected", "_selected_action": more,
                                                           "post": "yes"})
    assert response.status_code == 302 and not Upload.objects.exists() and leftovers() == []
