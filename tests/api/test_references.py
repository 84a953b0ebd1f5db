"""Media by reference on the form endpoints: a file field sent as an http(s) URL (fetched by the service) or
as `upload:<id>`; with a job, the URL fetched by its worker after the 202."""

import json
from pathlib import Path

import pytest

from renders.lifecycle import worker
from renders.models import RenderLog

from .. import media
from ..conftest import post, save
from ..sources import serving

pytestmark = pytest.mark.django_db
FRAME = 1 / 25


@pytest.fixture
def source_server(tmp_path, settings, clips):
    settings.VIDEOAPI_FETCH_ALLOW_PRIVATE = True
    root = tmp_path / "www"
    root.mkdir()
    (root / "basic.mp4").write_bytes(clips.basic.read_bytes())
    (root / "still.png").write_bytes(clips.png.read_bytes())
    with serving(root) as server:
        yield server


def test_a_trim_of_a_url(api, source_server, tmp_path):
    r = post(api, "/api/trim", {"video": f"{source_server.url}/basic.mp4", "start": "0.5", "end": "1.5"})
    assert r.status_code == 200, r.body[:300]
    out = media.probe(save(r, tmp_path / "o.mp4"))
    assert abs(out["frames"] * FRAME - 1.0) <= FRAME
    assert source_server.hits == ["/basic.mp4"]
    log = RenderLog.objects.get(id=r["X-Render-Id"])
    assert log.inputs[0]["field"] == "video" and log.inputs[0]["video_codec"] == "h264"


def test_every_file_field_takes_a_url(api, source_server, tmp_path):
    """A template with its avatar, a join of two URLs (the same URL fetched once), a join by segments."""
    url, png = f"{source_server.url}/basic.mp4", f"{source_server.url}/still.png"
    r = post(api, "/api/persona/render", {"video": url, "name": "Ada", "avatar": png, "logo": png})
    assert r.status_code == 200, r.body[:300]
    r = post(api, "/api/concatenate", {"videos": [url, url]})
    assert r.status_code == 200, r.body[:300]
    assert abs(media.probe(save(r, tmp_path / "j.mp4"))["frames"] * FRAME - 4.0) <= FRAME
    r = post(api, "/api/concatenate-multipart", {"segment_0": url, "segment_1": url, "order_0": "2"})
    assert r.status_code == 200, r.body[:300]
    assert source_server.hits.count("/basic.mp4") == 3  # once per request
    assert source_server.hits.count("/still.png") == 1  # avatar and logo: one URL, one fetch


def test_a_url_that_fails_is_400_naming_the_field(api, source_server):
    r = post(api, "/api/trim", {"video": f"{source_server.url}/missing.mp4", "start": "0"})
    assert r.status_code == 400
    body = json.loads(r.body)
    assert list(body["fields"]) == ["video"] and "404" in body["fields"]["video"][0]
    r = post(api, "/api/trim", {"video": "ftp://example.com/a.mp4", "start": "0"})
    assert r.status_code == 400 and list(json.loads(r.body)["fields"]) == ["video"]
    r = post(api, "/api/trim", {"video": f"{source_server.url}/still.png", "start": "0"})
    assert r.status_code == 415 and "video" in json.loads(r.body)["fields"]  # probed like an upload


def test_a_url_is_only_text_where_the_field_is_text(api, source_server, tmp_path):
    """The closing template's `url` is text to draw: an https value there is drawn, never fetched."""
    r = post(api, "/api/closing/render", {"video": f"{source_server.url}/basic.mp4", "cta": "Try it",
                                          "url": "https://example.com/start"})
    assert r.status_code == 200, r.body[:300]
    assert source_server.hits == ["/basic.mp4"]


@pytest.mark.django_db(transaction=True)
def test_a_job_fetches_its_url_in_the_worker(api, source_server, tmp_path):
    r = post(api, "/api/trim", {"video": f"{source_server.url}/basic.mp4", "start": "0.5"},
             HTTP_PREFER="respond-async")
    assert r.status_code == 202, r.body[:300]
    assert source_server.hits == []
    job_id = json.loads(r.body)["id"]
    assert RenderLog.objects.get(pk=job_id).params["kind"] == "form"
    worker.run(job_id)
    log = RenderLog.objects.get(pk=job_id)
    assert log.status == "succeeded" and log.params["kind"] == "trim" and source_server.hits == ["/basic.mp4"]
    result = api.get(f"/api/jobs/{job_id}/result")
    out = tmp_path / "job.mp4"
    out.write_bytes(b"".join(result.streaming_content))
    assert abs(media.probe(out)["frames"] * FRAME - 1.5) <= FRAME


def test_a_pending_job_keeps_its_delivery_headers_out_of_its_parameters(api, source_server):
    r = post(api, "/api/trim", {"video": f"{source_server.url}/basic.mp4", "start": "0",
                                "output_url": "https://example.com/put?sig=abc",
                                "output_headers": '{"x-token": "s3cr3t-token"}'})
    assert r.status_code == 202, r.body[:300]
    log = RenderLog.objects.get(pk=json.loads(r.body)["id"])
    assert log.params["kind"] == "form" and "s3cr3t-token" not in json.dumps(log.params)
    assert "sig=abc" not in json.dumps(log.params)
    assert log.delivery["headers"] == {"x-token": "s3cr3t-token"}  # kept for the worker, apart
    assert api.delete(f"/api/jobs/{log.pk}").status_code == 204


@pytest.mark.django_db(transaction=True)
def test_a_job_checks_its_fields_before_the_202_and_the_rest_in_the_worker(api, source_server):
    r = post(api, "/api/trim", {"video": f"{source_server.url}/basic.mp4", "start": "soon"},
             HTTP_PREFER="respond-async")
    assert r.status_code == 400 and list(json.loads(r.body)["fields"]) == ["start"]
    assert source_server.hits == []
    r = post(api, "/api/trim", {"video": f"{source_server.url}/basic.mp4", "start": "5"},
             HTTP_PREFER="respond-async")  # past the end: only the file says so
    assert r.status_code == 202
    job_id = json.loads(r.body)["id"]
    worker.run(job_id)
    log = RenderLog.objects.get(pk=job_id)
    assert log.status == "rejected" and log.error_code == "invalid_input" and "start" in log.error_message
    assert not Path(log.workspace).exists()


def test_an_unknown_upload_is_400_naming_the_field(api):
    r = post(api, "/api/trim", {"video": "upload:7c3e0d1a-0000-4000-8000-000000000000", "start": "0"})
    assert r.status_code == 400 and json.loads(r.body)["fields"] == {"video": ["no such upload"]}


def upload(api, path) -> str:
    with open(path, "rb") as handle:
        r = api.post("/api/uploads", {"file": handle}, format="multipart")
    assert r.status_code == 201, r.content[:300]
    return r.json()["id"]


def test_an_upload_is_used_by_any_number_of_renders(api, clips, tmp_path):
    video = upload(api, clips.basic)
    for _ in range(2):
        r = post(api, "/api/trim", {"video": f"upload:{video}", "start": "1"})
        assert r.status_code == 200, r.body[:300]
        assert abs(media.probe(save(r, tmp_path / "o.mp4"))["frames"] * FRAME - 1.0) <= FRAME
    assert api.get(f"/api/uploads/{video}").status_code == 200  # a render does not consume it
    edit = {"timeline": {"tracks": [{"clips": [{"asset": {"type": "video", "src": f"upload:{video}"}, "start": 0}]}]}}
    r = api.post("/api/compose", edit, format="json")
    assert r.status_code == 200 and b"".join(r.streaming_content)[4:8] == b"ftyp"
    assert api.delete(f"/api/uploads/{video}").status_code == 204


def test_another_clients_upload_is_no_such_upload(api, clips, other_token):
    from rest_framework.test import APIClient

    theirs = APIClient()
    theirs.credentials(HTTP_AUTHORIZATION=f"Token {other_token}")
    video = upload(theirs, clips.basic)
    r = post(api, "/api/trim", {"video": f"upload:{video}", "start": "0"})
    assert r.status_code == 400 and json.loads(r.body)["fields"] == {"video": ["no such upload"]}
    assert theirs.delete(f"/api/uploads/{video}").status_code == 204


@pytest.mark.django_db(transaction=True)
def test_an_upload_deleted_after_its_job_was_accepted_still_renders(api, clips, tmp_path):
    """The job works on its own link, made at the 202: deleting the upload then breaks nothing."""
    video = upload(api, clips.basic)
    r = post(api, "/api/trim", {"video": f"upload:{video}", "start": "0.5"}, HTTP_PREFER="respond-async")
    assert r.status_code == 202, r.body[:300]
    assert api.delete(f"/api/uploads/{video}").status_code == 204
    job_id = json.loads(r.body)["id"]
    worker.run(job_id)
    assert RenderLog.objects.get(pk=job_id).status == "succeeded"
    result = api.get(f"/api/jobs/{job_id}/result")
    out = tmp_path / "job.mp4"
    out.write_bytes(b"".join(result.streaming_content))
    assert abs(media.probe(out)["frames"] * FRAME - 1.5) <= FRAME


TEN = {  # every form endpoint, its files all given by URL
    "/api/trim": {"video": "{v}", "start": "0.5"},
    "/api/trim/preview": {"video": "{v}", "start": "0.5", "duration": "1"},
    "/api/concatenate": {"videos": ["{v}", "{v}"]},
    "/api/concatenate-multipart": {"segment_0": "{v}", "segment_1": "{v}"},
    "/api/intro/render": {"video": "{v}", "full_name": "Ada", "role": "Lead", "team": "Core", "logo": "{png}"},
    "/api/announcement/render": {"video": "{v}", "headline": "News", "music": "{v}"},
    "/api/how-it-works/render": {"video": "{v}", "steps": ["One", "Two"]},
    "/api/persona/render": {"video": "{v}", "name": "Ada", "avatar": "{png}"},
    "/api/demo/render": {"video": "{v}", "title": "Demo", "captions": "{srt}"},
    "/api/closing/render": {"video": "{v}", "cta": "Go"},
}


@pytest.mark.parametrize("path", list(TEN))
def test_every_endpoint_takes_its_files_by_url(api, source_server, clips, path):
    (source_server.root / "c.srt").write_text(clips.captions.read_text())
    urls = {"v": f"{source_server.url}/basic.mp4", "png": f"{source_server.url}/still.png",
            "srt": f"{source_server.url}/c.srt"}

    def filled(value):
        return [filled(item) for item in value] if isinstance(value, list) else value.format(**urls)

    r = post(api, path, {key: filled(value) for key, value in TEN[path].items()})
    assert r.status_code == 200, r.body[:300]
    assert r.body[4:8] == b"ftyp"
    assert source_server.hits.count("/basic.mp4") == 1  # each distinct URL once per request


@pytest.mark.parametrize("path", ["/api/trim", "/api/concatenate-multipart", "/api/intro/render"])
def test_a_body_with_no_form_is_a_400_not_a_crash(api, path):
    """(found by the fuzzer: an empty body reached the reference step as a plain dict)"""
    r = api.post(path)
    assert r.status_code in (400, 415) and r.json()["code"] in ("invalid_input", "unsupported_media")
