
"""Reading the service's own OpenAPI document in tests."""

import yaml


def url(name):
    return f"/api/{name}/render"


def schema(client):
    r = client.get("/api/schema")
    assert r.status_code == 200  # public, no token
    return yaml.safe_load(r.content)


def form(doc, path):
    body = doc["paths"][path]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    if "$ref" in body:
        body = doc["components"]["schemas"][body["$ref"].rsplit("/", 1)[1]]
    return body
