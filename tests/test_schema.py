"""The published OpenAPI schema agrees with docs/API.md."""

import pytest
import yaml

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


def schema(client):
    r = client.get("/api/schema")
    assert r.status_code == 200  # public, no token
    return yaml.safe_load(r.content)


def form(doc, path):
    body = doc["paths"][path]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    if "$ref" in body:
        body = doc["components"]["schemas"][body["$ref"].rsplit("/", 1)[1]]
    return body


def test_every_endpoint_is_described(client):
    doc = schema(client)
    assert set(doc["paths"]) == set(REQUIRED) | {"/api/concatenate-multipart", "/api/options"}
    assert set(doc["paths"]["/api/options"]) == {"get"}
    for path, required in REQUIRED.items():
        body = form(doc, path)
        assert set(body.get("required", [])) == required, path
        assert "final_filename" in body["properties"]
        responses = doc["paths"][path]["post"]["responses"]
        assert {"200", "400", "401", "413", "415", "422", "500", "503", "504"} <= set(responses)
        assert {"video/mp4", "application/octet-stream"} <= set(responses["200"]["content"])
        operation = doc["paths"][path]["post"]
        assert operation["summary"] and "curl -X POST" in operation["description"]
        assert "API.md" not in operation["description"] and "params()" not in operation["description"]
        assert responses["400"]["content"]["application/json"]["schema"]["$ref"].endswith("/Error")
    assert "image/jpeg" in doc["paths"]["/api/trim/preview"]["post"]["responses"]["200"]["content"]


def enum(doc, prop):
    """A property's enum, following drf-spectacular's component references."""
    ref = prop.get("$ref") or next((p["$ref"] for p in prop.get("allOf", []) + prop.get("oneOf", []) if "$ref" in p), None)
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
    assert multipart["segment_0"]["format"] == "binary" and multipart["order_19"]["type"] == "integer"
    assert multipart["transition"]["enum"] == ["none", "crossfade"]
    assert multipart["fps"]["enum"] == [24, 25, 30, 50, 60] and multipart["quality"]["default"] == "standard"
