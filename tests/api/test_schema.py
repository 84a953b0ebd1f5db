"""The published OpenAPI schema: it agrees with the contract, stands alone, and its examples render."""

import json
import re

import pytest

from renders import errors
from renders.models import JobStatus

from .. import media
from ..apidoc import form, schema
from ..conftest import post

pytestmark = pytest.mark.django_db

REQUIRED = {
    "/api/intro/render": {"video", "full_name", "team", "role"},
    "/api/announcement/render": {"video", "headline"},
    "/api/how-it-works/render": {"video", "steps"},
    "/api/persona/render": {"video", "name"},
    "/api/demo/render": {"video", "title"},
    "/api/closing/render": {"video", "cta"},
    "/api/trim": {"video", "start"},
    "/api/trim/preview": {"video", "start"},
    "/api/concatenate": {"videos"},
}


def test_every_endpoint_is_described(client):
    doc = schema(client)
    jobs = {"/api/jobs", "/api/jobs/{job_id}", "/api/jobs/{job_id}/result"}
    compose = {"/api/compose", "/api/compose/schema", "/api/templates", "/api/templates/{template_id}",
               "/api/templates/{template_id}/render"}
    uploads = {"/api/uploads", "/api/uploads/{upload_id}"}
    others = {"/api/concatenate-multipart", "/api/options"} | jobs | compose | uploads
    assert set(doc["paths"]) == set(REQUIRED) | others
    assert set(doc["paths"]["/api/options"]) == {"get"}
    assert set(doc["paths"]["/api/jobs/{job_id}"]) == {"get", "delete"}
    assert set(doc["paths"]["/api/uploads"]) == {"get", "post"}
    assert set(doc["paths"]["/api/uploads/{upload_id}"]) == {"get", "delete"}
    stored = doc["paths"]["/api/uploads"]["post"]
    assert {"201", "413", "415", "422", "507"} <= set(stored["responses"])
    assert stored["requestBody"]["content"]["multipart/form-data"]["schema"]["$ref"].endswith("/UploadFormRequest")
    assert set(doc["components"]["schemas"]["Upload"]["properties"]) == {
        "id", "kind", "bytes", "filename", "media", "created_at", "expires_at"}
    job = doc["components"]["schemas"]["Job"]["properties"]
    assert {"id", "status", "progress", "eta_seconds", "result", "error"} <= set(job)
    assert {"409", "410", "421"} <= set(doc["paths"]["/api/jobs/{job_id}/result"]["get"]["responses"])
    for path, required in REQUIRED.items():
        body = form(doc, path)
        assert set(body.get("required", [])) == required, path
        assert "final_filename" in body["properties"]
        responses = doc["paths"][path]["post"]["responses"]
        assert {"200", "202", "400", "401", "413", "415", "422", "500", "503", "504"} <= set(responses)
        headers = {p["name"] for p in doc["paths"][path]["post"].get("parameters", []) if p["in"] == "header"}
        assert headers == {"Prefer", "Idempotency-Key"}
        assert {"video/mp4", "application/octet-stream"} <= set(responses["200"]["content"])
        operation = doc["paths"][path]["post"]
        assert operation["summary"] and "curl -X POST" in operation["description"]
        assert "API.md" not in operation["description"] and "params()" not in operation["description"]
        assert responses["400"]["content"]["application/json"]["schema"]["$ref"].endswith("/Error")
    assert "image/jpeg" in doc["paths"]["/api/trim/preview"]["post"]["responses"]["200"]["content"]


def test_required_uploads_lead_every_form(client):
    """The upload a render needs is the form's first field in /api/, before the optional files (logo, captions,
    music, avatar) and the shared fields."""
    doc = schema(client)
    first = {path: next(iter(form(doc, path)["properties"])) for path in RENDERS}
    assert first == {path: {"/api/concatenate": "videos", "/api/concatenate-multipart": "segment_0"}.get(path, "video")
                     for path in RENDERS}


def test_job_operations_are_described(client):
    """Each job operation says what it answers, not only its summary."""
    paths = schema(client)["paths"]
    job, listing = paths["/api/jobs/{job_id}"], paths["/api/jobs"]["get"]["description"]
    result = paths["/api/jobs/{job_id}/result"]["get"]["description"]
    for status in JobStatus.values:
        assert f"`{status}`" in job["get"]["description"], status
    assert "`progress`" in job["get"]["description"] and "`worker_lost`" in job["get"]["description"]
    assert "(204)" in job["delete"]["description"] and "404" in job["get"]["description"]
    assert "`status`" in listing and "`limit`" in listing and "`next`" in listing
    for fact in ("Accept-Ranges", "206", "416", "409 `not_ready`", "Retry-After", "410 `gone`", "421 `misdirected`",
                 "`expires_at`", "`HEAD`"):
        assert fact in result, fact


def enum(doc, prop):
    """A property's enum, following drf-spectacular's component references."""
    ref = prop.get("$ref") or next((p["$ref"] for p in prop.get("allOf", []) + prop.get("oneOf", []) if "$ref" in p),
                                   None)
    return doc["components"]["schemas"][ref.rsplit("/", 1)[1]]["enum"] if ref else prop["enum"]


def test_field_details(client):
    doc = schema(client)
    trim = form(doc, "/api/trim")["properties"]
    assert enum(doc, trim["mode"]) == ["accurate", "fast"] and trim["video"]["format"] == "binary"
    preview = form(doc, "/api/trim/preview")["properties"]
    assert (preview["height"]["minimum"], preview["height"]["maximum"]) == (144, 720)
    persona = form(doc, "/api/persona/render")["properties"]
    assert persona["quote"]["maxLength"] == 240 and persona["avatar"]["format"] == "binary"
    assert form(doc, "/api/concatenate")["properties"]["videos"]["items"]["format"] == "binary"
    multipart = form(doc, "/api/concatenate-multipart")["properties"]
    assert multipart["segment_0"]["format"] == "binary" and multipart["order_1"]["type"] == "integer"
    assert "order_2" not in multipart and "segment_2" not in multipart  # listed: the two a join needs
    assert form(doc, "/api/concatenate-multipart")["additionalProperties"] is True  # the rest
    assert multipart["canvas"] == form(doc, "/api/concatenate")["properties"]["canvas"]  # described alike
    assert multipart["transition"]["enum"] == ["none", "crossfade"]
    assert multipart["fps"]["enum"] == [24, 25, 30, 50, 60] and multipart["quality"]["default"] == "standard"


# ---- the examples: what "Try it out" in /api/ sends when nothing is typed ---------------------------------

PLACEHOLDERS = {"string": "string", "integer": 0, "number": 0, "boolean": True}


def resolved(doc, prop):
    """A property with the component it refers to (allOf/$ref) merged in."""
    merged = dict(prop)
    for part in prop.get("allOf", []) + ([prop] if "$ref" in prop else []):
        if "$ref" in part:
            merged = {**doc["components"]["schemas"][part["$ref"].rsplit("/", 1)[1]], **merged}
    return merged


def prefilled(doc, prop):
    """Swagger UI's value for a form field nobody touched: its example, else default, else first choice, else
    a placeholder of its type ("string", 0)."""
    prop = resolved(doc, prop)
    for key in ("example", "default"):
        if key in prop:
            return prop[key]
    return prop["enum"][0] if "enum" in prop else PLACEHOLDERS[prop.get("type", "string")]


# the file a person would choose for each file field that takes no video (music: a video's sound is fine)
FILES = {"avatar": lambda c: c.png, "logo": lambda c: c.png, "captions": lambda c: c.captions}


def untouched_form(doc, path, clips):
    """The request Swagger UI sends for `path` once a file is chosen for every file field (an image for
    the avatar and the logo, captions for captions) and nothing else is typed."""
    content = doc["paths"][path]["post"]["requestBody"]["content"]["multipart/form-data"]
    encoding = content.get("encoding", {})
    data = {}
    for name, prop in form(doc, path)["properties"].items():
        items = prop.get("items", {})
        if prop.get("format") == "binary":
            data[name] = FILES[name](clips) if name in FILES else clips.basic
        elif items.get("format") == "binary":
            data[name] = [clips.basic] * max(prop.get("minItems", 1), 1)
        else:
            value = prefilled(doc, prop)
            if isinstance(value, list) and not encoding.get(name, {}).get("explode"):
                value = ",".join(map(str, value))  # what Swagger UI makes of an array without explode
            data[name] = value
    return data


RENDERS = [*REQUIRED, "/api/concatenate-multipart"]


def test_every_form_field_has_a_usable_prefill(client):
    """No field falls back to Swagger UI's placeholder ("string" in a time field is a 400)."""
    doc = schema(client)
    for path in RENDERS:
        for name, prop in form(doc, path)["properties"].items():
            prop = resolved(doc, prop)
            if prop.get("format") == "binary" or prop.get("items", {}).get("format") == "binary":
                continue
            assert {"example", "default", "enum"} & set(prop), (path, name)


@pytest.mark.parametrize("path", RENDERS)
def test_examples_together_make_a_valid_request(api, client, clips, tmp_path, path):
    """Each operation's prefilled form, posted as Swagger UI would with a real clip, renders (200)."""
    doc = schema(client)
    data = untouched_form(doc, path, clips)
    r = post(api, path, data)
    assert r.status_code == 200, (path, {k: v for k, v in data.items() if not hasattr(v, "name")}, r.body[:400])
    expected = "image/jpeg" if data.get("format") == "jpg" else "video/mp4"
    assert r["Content-Type"] == expected
    out = tmp_path / "out"
    out.write_bytes(r.body)
    info = media.probe(out)
    assert info["frames"] > 0 and info["vcodec"] == "h264"
    if data.get("final_filename"):
        assert f'filename="{data["final_filename"]}.mp4"' in r["Content-Disposition"]


def test_options_operation_answers(api, client):
    doc = schema(client)
    assert "requestBody" not in doc["paths"]["/api/options"]["get"]
    r = api.get("/api/options")
    assert r.status_code == 200 and "endpoints" in r.json()


def test_steps_are_sent_as_repeated_fields(client):
    """Without `explode`, Swagger UI joins a list with commas: three steps would arrive as one."""
    doc = schema(client)
    encoding = doc["paths"]["/api/how-it-works/render"]["post"]["requestBody"]["content"]["multipart/form-data"]
    assert encoding["encoding"]["steps"] == {"style": "form", "explode": True}


# ---- the schema stands alone -------------------------------------------------------------------------------


def test_schema_and_docs_page_refer_to_no_repository_file(client):
    text = client.get("/api/schema").content.decode()
    page = client.get("/api/").content.decode()
    for where in (text, page):
        assert not re.search(r"docs/|README|ARCHITECTURE|SECURITY|\w\.md\b|repositor", where), \
            re.search(r".{0,80}(docs/|README|ARCHITECTURE|SECURITY|\w\.md\b|repositor).{0,80}", where)[0]


def test_description_holds_the_contract(client, settings):
    settings.VIDEOAPI_MAX_UPLOAD_BYTES = 3 * 1024 ** 2
    doc = schema(client)
    about = doc["info"]["description"]
    # auth
    assert "Authorization: Token <key>" in about and "401 `not_authenticated`" in about
    # the error envelope: the example is the Error schema's shape, and every code is explained with its status
    envelope = json.loads(re.search(r"\n {4}(\{.*?\})\n\n", about, re.S)[1])
    assert set(envelope) == set(doc["components"]["schemas"]["Error"]["properties"])
    rows = {code: status for status, code in re.findall(r"^\| (\S+) \| `(\w+)` \|", about, re.M)}
    assert set(rows) == set(errors.ERROR_CODES)
    for cls in vars(errors).values():  # each refusal's status in the table is the one it is answered with
        if isinstance(cls, type) and issubclass(cls, errors.ServiceError) and cls.default_code in rows:
            assert rows[cls.default_code] == str(cls.status_code), cls
    # headers, cleanup, this service's own limits
    for header in ("X-Render-Id", "Content-Disposition", "Cache-Control", "X-Trim-Start", "X-Concat-Mode",
                   "Server-Timing", "Retry-After"):
        assert f"`{header}`" in about, header
    assert "keeps nothing" in about and "deleted the moment the download" in about and "streams once" in about
    assert "A job keeps only its result, until it is downloaded or expires" in about
    assert "at most 3 MiB" in about


def test_description_tells_jobs_and_webhooks(client, settings):
    """Jobs (how to ask, follow, download; how long a result is kept; 410 after) and webhooks, from the settings."""
    settings.VIDEOAPI_JOB_RESULT_TTL = 1234.0
    settings.VIDEOAPI_WEBHOOK_RETRY_DELAYS = (5.0, 120.0, 7200.0)
    about = schema(client)["info"]["description"]
    assert "a job" in about.split("## Authentication")[0]  # the opening paragraph says a render may be one
    jobs = about.split("## Jobs")[1].split("## Webhooks")[0]
    for fact in ("`Prefer: respond-async`", "`202`", "`Location: /api/jobs/<id>`", "GET /api/jobs/<id>/result",
                 "409 `not_ready`", "within 1234 s", "`expired`", "410 `gone`", "`Idempotency-Key`"):
        assert fact in jobs, fact
    hooks = about.split("## Webhooks")[1].split("## Cleanup")[0]
    for fact in ("`callback_url`", "`render.succeeded`", "`webhook-signature`", "HMAC-SHA256", "`whsec_`",
                 "retried 3 times", "5 s, 2 min, 2 h"):
        assert fact in hooks, fact
    settings.VIDEOAPI_WEBHOOK_RETRY_DELAYS = ()
    assert "is not retried" in schema(client)["info"]["description"]


def test_description_follows_the_auth_setting(client, settings):
    settings.VIDEOAPI_AUTH = "none"
    about = schema(client)["info"]["description"]
    assert "without authentication" in about and "Authorization: Token" not in about


def test_security_follows_the_auth_setting(client, settings):
    """One auth decision (VIDEOAPI_AUTH, read per request) for the endpoints and for what the schema says."""
    operations = [op for item in schema(client)["paths"].values() for op in item.values()]
    assert len(operations) == 27 and all(op["security"] == [{"tokenAuth": []}] for op in operations)
    assert client.post("/api/trim").status_code == 401 and client.get("/api/options").status_code == 401
    assert client.post("/api/compose").status_code == 401 and client.get("/api/templates").status_code == 401
    assert client.post("/api/uploads").status_code == 401 and client.get("/api/uploads").status_code == 401
    settings.VIDEOAPI_AUTH = "none"
    doc = schema(client)
    assert all(op["security"] == [{}] for item in doc["paths"].values() for op in item.values())
    assert "securitySchemes" not in doc.get("components", {})
    assert client.get("/api/options").status_code == 200
    assert client.get("/api/options", HTTP_AUTHORIZATION="Token not-a-key").status_code == 200  # ignored
