"""The jobs' HTTP face, without a worker: Prefer and Range, methods and keys, cursors and limits, job ids in any
spelling, Idempotency-Key, the headers a browser front end sends and reads."""

import base64

import pytest
from django.test import RequestFactory

from renders.api.asynchronous import prefers_async
from renders.api.responses import requested_range

from ..conftest import post

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(("header", "wanted"), [
    ("respond-async", True), ("respond-async, wait=10", True), ("wait=5; x, Respond-Async", True),
    ("respond-async; foo=bar", True), ("", False), ("return=minimal", False), ("respond-asynchronous", False),
])
def test_prefer_respond_async(header, wanted):
    assert prefers_async(RequestFactory().post("/", HTTP_PREFER=header)) is wanted


@pytest.mark.parametrize(("header", "size", "span"), [
    ("", 100, None), ("bytes=0-9", 100, (0, 9)), ("bytes=90-", 100, (90, 99)), ("bytes=-10", 100, (90, 99)),
    ("bytes=-500", 100, (0, 99)), ("bytes=50-500", 100, (50, 99)), ("bytes=0-9,20-29", 100, None),
    ("items=0-9", 100, None), ("bytes=-", 100, None), ("bytes=9-3", 100, None), ("bytes=150-20", 100, None),
])
def test_requested_range(header, size, span):
    assert requested_range(header, size) == span


@pytest.mark.parametrize("header", ["bytes=100-", "bytes=100-200", "bytes=-0"])
def test_unsatisfiable_ranges(header):
    with pytest.raises(ValueError):
        requested_range(header, 100)


def test_methods_outside_the_contract_are_405_with_allow(api):
    r = api.put("/api/jobs/6f1c0000-0000-4000-8000-000000000000")
    assert r.status_code == 405 and r.json()["code"] == "method_not_allowed"
    assert {m.strip() for m in r["Allow"].split(",")} >= {"GET", "DELETE"}
    r = api.post("/api/jobs")
    assert r.status_code == 405 and "GET" in r["Allow"] and "POST" not in r["Allow"]


def test_unknown_job_is_404(api):
    r = api.get("/api/jobs/6f1c0000-0000-4000-8000-000000000000")
    assert r.status_code == 404 and r.json()["code"] == "not_found"
    assert api.get("/api/jobs/6f1c0000-0000-4000-8000-000000000000/result").status_code == 404
    assert api.delete("/api/jobs/6f1c0000-0000-4000-8000-000000000000").status_code == 404


def test_jobs_need_a_key(client):
    r = client.get("/api/jobs")
    assert r.status_code == 401


def test_a_refused_submission_frees_its_idempotency_key(api, clips):
    r = post(api, "/api/trim", {"video": clips.basic, "start": "x"}, HTTP_PREFER="respond-async",
             HTTP_IDEMPOTENCY_KEY="k1")
    assert r.status_code == 400
    r = post(api, "/api/trim", {"video": clips.basic, "start": "0"}, HTTP_PREFER="respond-async",
             HTTP_IDEMPOTENCY_KEY="k1")
    assert r.status_code == 202
    api.delete(f"/api/jobs/{r.data['id']}")


def test_a_browser_front_end_may_send_and_read_the_job_headers(client, settings):
    settings.CORS_ALLOWED_ORIGINS = ["http://127.0.0.1:5173"]
    preflight = client.options("/api/trim", HTTP_ORIGIN="http://127.0.0.1:5173",
                               HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
                               HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization, prefer, idempotency-key")
    allowed = preflight["Access-Control-Allow-Headers"].lower()
    assert all(h in allowed for h in ("authorization", "prefer", "idempotency-key", "range"))
    r = client.get("/api/jobs", HTTP_ORIGIN="http://127.0.0.1:5173")
    exposed = r["Access-Control-Expose-Headers"].lower()
    assert all(h in exposed for h in ("location", "preference-applied", "content-range", "retry-after"))


@pytest.mark.parametrize("cursor", [
    "l%C3%8B%C2%A9",  # not base64
    base64.b64encode(b"p=garbage").decode(),  # decodes, but its position is no time
    base64.b64encode(b"r=1&p=2026-13-45").decode(),  # looks like a date, is none
    base64.b64encode(b"o=x").decode(),  # a garbled offset
])
def test_a_cursor_the_service_did_not_make_is_400_naming_it(api, cursor):
    r = api.get(f"/api/jobs?cursor={cursor}&limit=15")
    assert r.status_code == 400 and list(r.json()["fields"]) == ["cursor"]


def test_a_cursor_the_service_made_is_followed(api, clips):
    for _ in range(3):
        r = post(api, "/api/trim", {"video": clips.basic, "start": "0"}, HTTP_PREFER="respond-async")
        assert r.status_code == 202
    first = api.get("/api/jobs?limit=2").json()
    assert len(first["results"]) == 2 and first["next"]
    rest = api.get(first["next"].split("testserver", 1)[-1]).json()
    assert len(rest["results"]) == 1 and rest["results"][0]["id"] not in {j["id"] for j in first["results"]}
    for job in first["results"] + rest["results"]:
        assert api.delete(f"/api/jobs/{job['id']}").status_code == 204  # cancelled: nothing left


@pytest.mark.parametrize("limit", ["abc", "null", "0", "-3", "101", "1.5", "", "\u0661"])
def test_a_limit_that_is_not_1_to_100_is_400_naming_it(api, limit):
    r = api.get("/api/jobs", {"limit": limit})
    assert r.status_code == 400 and list(r.json()["fields"]) == ["limit"] and "1 to 100" in r.json()["detail"]


def test_any_spelling_of_a_job_id_finds_it_and_a_non_uuid_is_a_json_404(api, clips):
    job = post(api, "/api/trim", {"video": clips.basic, "start": "0"}, HTTP_PREFER="respond-async").data["id"]
    for spelling in (job.upper(), job.replace("-", ""), f"{{{job}}}", f"urn:uuid:{job}"):
        for path in (f"/api/jobs/{spelling}", f"/api/jobs/{spelling}/result"):
            r = api.get(path)
            ready = 409 if path.endswith("/result") else 200  # queued: no worker here, so no result yet
            assert r.status_code == ready and r["X-Render-Id"] == job, (path, r.status_code)
    for method, path in [(api.get, "/api/jobs/not-a-uuid"), (api.get, "/api/jobs/not-a-uuid/result"),
                         (api.delete, "/api/jobs/not-a-uuid"), (api.get, "/api/jobs/x/y/z"),
                         (api.delete, "/api/nothing")]:
        r = method(path)
        assert r.status_code == 404 and r["Content-Type"] == "application/json", (path, r.status_code)
        assert r.json()["code"] == "not_found"
    assert api.delete(f"/api/jobs/{job.upper()}").status_code == 204


@pytest.mark.parametrize(("key", "taken"), [("trim-clip-1", True), ("a b:c/d=e", True), ("ключ", False),
                                        ("café", False), ("tab\there", False), ("x" * 255, True), ("x" * 256, False)])
def test_an_idempotency_key_is_visible_ascii(api, clips, key, taken):
    header = key.encode("utf-8").decode("latin-1")  # as a WSGI server hands a UTF-8 header to Django
    r = post(api, "/api/trim", {"video": clips.basic, "start": "0"}, HTTP_PREFER="respond-async",
             HTTP_IDEMPOTENCY_KEY=header)
    assert r.status_code == (202 if taken else 400), r.content
    if taken:
        assert api.delete(f"/api/jobs/{r.data['id']}").status_code == 204
    else:
        assert list(r.json()["fields"]) == ["Idempotency-Key"] and "ASCII" in r.json()["detail"]
