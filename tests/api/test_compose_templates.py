"""Saved compose templates: CRUD, validation under the edit's paths, ownership, pages, rendering with merge values."""

import copy
import io
import uuid

import numpy as np
import pytest
from PIL import Image
from rest_framework.test import APIClient

from renders.models import ComposeTemplate, RenderLog

from .. import media

pytestmark = pytest.mark.django_db

RED = {"asset": {"type": "color", "color": "#FF0000"}, "start": 0, "length": 1}
MINIMAL = {"timeline": {"tracks": [{"clips": [RED]}]}}
GREETING = {"timeline": {"tracks": [
    {"clips": [{"asset": {"type": "text", "text": "Hello {{name}}", "style": {"size": 0.2}}, "start": 0, "length": 1}]},
    {"clips": [RED]},
]}}


def send(client, method, url, data=None, **extra):
    """A JSON request whose whole answer is read (a streamed file closes, its workspace goes)."""
    response = getattr(client, method)(url, data, format="json", **extra) if data is not None else \
        getattr(client, method)(url, **extra)
    response.body = b"".join(response.streaming_content) if response.streaming else response.content
    return response


def save(client, edit=MINIMAL, name="promo", **fields):
    response = send(client, "post", "/api/templates", {"name": name, "edit": edit, **fields})
    assert response.status_code == 201, response.body
    return response.json()


def save_file(response, path):
    path.write_bytes(response.body)
    return path


def picture(png: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(png)) as image:
        return np.asarray(image.convert("RGB"))


@pytest.fixture
def other(other_token):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {other_token}")
    return client


def test_crud_round_trip(api):
    created = send(api, "post", "/api/templates", {"name": "promo", "description": "a greeting", "edit": GREETING})
    assert created.status_code == 201
    body = created.json()
    assert created["Location"] == f"/api/templates/{body['id']}"
    assert set(body) == {"id", "name", "description", "edit", "placeholders", "created_at", "updated_at"}
    assert (body["name"], body["description"], body["edit"], body["placeholders"]) == (
        "promo", "a greeting", GREETING, ["name"])
    assert ComposeTemplate.objects.get(pk=body["id"]).owner.startswith("key:")

    shown = send(api, "get", created["Location"])
    assert shown.status_code == 200 and shown.json() == body
    # any spelling of the id
    assert send(api, "get", f"/api/templates/{body['id'].upper().replace('-', '')}").json()["id"] == body["id"]

    changed = {"timeline": {"tracks": [{"clips": [{**RED, "asset": {"type": "color", "color": "{{brand}}"}}]}]},
               "merge": {"brand": "#00FF00"}}
    replaced = send(api, "put", created["Location"], {"name": "renamed", "edit": changed})
    assert replaced.status_code == 200
    after = replaced.json()
    assert (after["id"], after["name"], after["description"], after["edit"], after["placeholders"]) == (
        body["id"], "renamed", "", changed, ["brand"])
    assert after["created_at"] == body["created_at"] and after["updated_at"] >= body["updated_at"]
    assert send(api, "get", created["Location"]).json() == after

    assert send(api, "delete", created["Location"]).status_code == 204
    gone = send(api, "get", created["Location"])
    assert gone.status_code == 404 and gone.json()["code"] == "not_found"
    assert not ComposeTemplate.objects.exists()


def test_the_edit_is_checked_with_its_problems_under_edit_paths(api):
    bad = copy.deepcopy(GREETING)
    bad["timeline"]["tracks"][1]["clips"][0]["start"] = -1
    bad["timeline"]["tracks"][1]["clips"][0]["asset"]["color"] = "red"
    bad["output"] = {"format": "avi"}
    response = send(api, "post", "/api/templates", {"name": "", "edit": bad})
    assert response.status_code == 400
    answer = response.json()
    assert answer["code"] == "invalid_input"
    assert set(answer["fields"]) == {"name", "edit.timeline.tracks[1].clips[0].start",
                                     "edit.timeline.tracks[1].clips[0].asset.color", "edit.output.format"}
    assert answer["fields"]["edit.timeline.tracks[1].clips[0].start"][0].startswith("must be at least 0")
    assert not ComposeTemplate.objects.exists()

    for edit, field, message in (("not an object", "edit", "must be a JSON object"),
                                 ({"output": {}}, "edit.timeline", "This field is required.")):
        response = send(api, "post", "/api/templates", {"name": "x", "edit": edit})
        assert response.status_code == 400 and response.json()["fields"][field] == [message], response.json()
    missing = send(api, "post", "/api/templates", {"description": "x" * 2001})
    assert missing.status_code == 400
    assert set(missing.json()["fields"]) == {"name", "edit", "description"}
    assert send(api, "post", "/api/templates", {"name": "x" * 201, "edit": MINIMAL}).json()["fields"] == {
        "name": ["Ensure this field has no more than 200 characters."]}
    # a PUT is checked the same way and changes nothing when refused
    kept = save(api)
    refused = send(api, "put", f"/api/templates/{kept['id']}", {"name": "new", "edit": bad})
    assert refused.status_code == 400 and "edit.output.format" in refused.json()["fields"]
    assert send(api, "get", f"/api/templates/{kept['id']}").json() == kept


def test_placeholders_stand_where_values_would_be_invalid_until_merged(api):
    edit = {"timeline": {"tracks": [{"clips": [{**RED, "asset": {"type": "color", "color": "{{brand}}"}}]}],
                         "background": "{{ backdrop }}"}}
    body = save(api, edit)
    assert body["placeholders"] == ["backdrop", "brand"]
    # a placeholder waives only the string holding it
    edit["timeline"]["tracks"][0]["clips"][0]["start"] = "soon"
    response = send(api, "post", "/api/templates", {"name": "x", "edit": edit})
    assert response.status_code == 400
    assert set(response.json()["fields"]) == {"edit.timeline.tracks[0].clips[0].start"}


def test_bodies_that_are_not_json_objects_are_refused(api):
    for body, content_type, status in ((b"{not json", "application/json", 400), (b"[1]", "application/json", 400),
                                       (b"name=x", "application/x-www-form-urlencoded", 415)):
        response = api.post("/api/templates", body, content_type=content_type)
        assert response.status_code == status, response.content
        assert response.json()["code"] in ("invalid_input", "unsupported_media")
    assert not ComposeTemplate.objects.exists()


def test_another_clients_template_is_not_found(api, other):
    mine = save(api, GREETING)
    url = f"/api/templates/{mine['id']}"
    for method, data in (("get", None), ("put", {"name": "taken", "edit": MINIMAL}), ("delete", None)):
        response = send(other, method, url, data)
        assert (response.status_code, response.json()["code"]) == (404, "not_found"), method
    rendered = send(other, "post", f"{url}/render", {"merge": {"name": "x"}})
    assert (rendered.status_code, rendered.json()["code"]) == (404, "not_found")
    assert send(other, "get", "/api/templates").json()["results"] == []
    assert send(api, "get", url).json() == mine  # untouched
    assert not RenderLog.objects.exists()
    for wrong in ("not-a-uuid", str(uuid.uuid4())):
        response = send(api, "get", f"/api/templates/{wrong}")
        assert (response.status_code, response.json()["code"]) == (404, "not_found")
        assert send(api, "post", f"/api/templates/{wrong}/render", {}).status_code == 404


def test_the_list_is_the_clients_own_newest_first_in_pages(api, other):
    names = [f"t{number}" for number in range(5)]
    for name in names:
        save(api, name=name)
    save(other, name="theirs")
    first = send(api, "get", "/api/templates?limit=2").json()
    assert [item["name"] for item in first["results"]] == ["t4", "t3"]
    assert first["previous"] is None and first["next"]
    second = send(api, "get", first["next"]).json()
    third = send(api, "get", second["next"]).json()
    assert [item["name"] for item in second["results"] + third["results"]] == ["t2", "t1", "t0"]
    assert third["next"] is None
    assert set(first["results"][0]) == {"id", "name", "description", "edit", "placeholders", "created_at",
                                        "updated_at"}
    everything = send(api, "get", "/api/templates").json()["results"]
    assert [item["name"] for item in everything] == names[::-1]
    for query, field in (("limit=0", "limit"), ("limit=101", "limit"), ("limit=x", "limit"),
                         ("cursor=garbage", "cursor")):
        response = send(api, "get", f"/api/templates?{query}")
        assert response.status_code == 400 and field in response.json()["fields"], query


def test_render_with_merge_values(api, tmp_path):
    template = save(api, GREETING)
    response = send(api, "post", f"/api/templates/{template['id']}/render", {"merge": {"name": "World"}})
    assert response.status_code == 200, response.body
    assert response["Content-Type"] == "video/mp4"
    out = media.probe(save_file(response, tmp_path / "out.mp4"))
    assert (out["width"], out["height"]) == (320, 180)
    assert abs(out["frames"] / out["fps"] - 1.0) < 0.05, out
    log = RenderLog.objects.get(pk=response["X-Render-Id"])
    assert log.status == RenderLog.Status.SUCCEEDED and log.endpoint == "template-render"
    edit = log.params["edit"]
    assert edit["timeline"]["tracks"][0]["clips"][0]["asset"]["text"] == "Hello World"
    # the saved template keeps its placeholder
    assert ComposeTemplate.objects.get(pk=template["id"]).edit == GREETING


def test_a_missing_merge_value_is_named(api):
    template = save(api, GREETING)
    for body in ({}, {"merge": {"other": "x"}}):
        response = send(api, "post", f"/api/templates/{template['id']}/render", body)
        assert response.status_code == 400
        assert response.json()["fields"]["merge.name"] == ["missing: used by timeline.tracks[0].clips[0].asset.text"]
    log = RenderLog.objects.get(pk=response["X-Render-Id"])
    assert (log.endpoint, log.status, log.error_code) == ("template-render", RenderLog.Status.REJECTED,
                                                          "invalid_input")


def test_the_render_body_takes_merge_and_output_only(api):
    template = save(api, GREETING)
    url = f"/api/templates/{template['id']}/render"
    response = send(api, "post", url, {"merge": {"name": "x"}, "timeline": {}, "extra": 1})
    assert response.status_code == 400
    assert response.json()["fields"] == {"extra": ["unknown field"], "timeline": ["unknown field"]}
    for key in ("merge", "output"):
        response = send(api, "post", url, {key: ["not", "an", "object"]})
        assert response.status_code == 400 and response.json()["fields"] == {key: ["must be an object"]}


def test_output_keys_override_the_templates_one_by_one(api):
    edit = {**GREETING, "output": {"format": "webm", "frame_at": 0.5}}
    template = save(api, edit)
    response = send(api, "post", f"/api/templates/{template['id']}/render",
                    {"merge": {"name": "World"}, "output": {"format": "png"}})
    assert response.status_code == 200, response.body
    assert response["Content-Type"] == "image/png" and response.body.startswith(b"\x89PNG")
    log = RenderLog.objects.get(pk=response["X-Render-Id"])
    assert log.params["edit"]["output"] == {"format": "png", "frame_at": 0.5}
    refused = send(api, "post", f"/api/templates/{template['id']}/render",
                   {"merge": {"name": "World"}, "output": {"format": "avi"}})
    assert refused.status_code == 400 and set(refused.json()["fields"]) == {"output.format"}


@pytest.mark.parametrize("value", ["{{other}}", '"}, {"x":1', "{{name}}"])
def test_merge_values_are_text_never_structure(api, value):
    template = save(api, {**GREETING, "output": {"format": "png"}})
    response = send(api, "post", f"/api/templates/{template['id']}/render", {"merge": {"name": value}})
    assert response.status_code == 200, response.body
    log = RenderLog.objects.get(pk=response["X-Render-Id"])
    expected = copy.deepcopy(GREETING)
    expected["timeline"]["tracks"][0]["clips"][0]["asset"]["text"] = f"Hello {value}"
    assert log.params["edit"] == {**expected, "output": {"format": "png"}}
    pixels = picture(response.body)
    white = (pixels.min(axis=2) > 200).mean()
    red = ((pixels[..., 0] > 200) & (pixels[..., 1] < 60) & (pixels[..., 2] < 60)).mean()
    assert red > 0.5 and white > 0.002, (red, white)  # the text is drawn over the colour


def test_a_template_render_may_be_a_job(api):
    template = save(api, GREETING)
    url = f"/api/templates/{template['id']}/render"
    first = send(api, "post", url, {"merge": {"name": "Later"}}, HTTP_PREFER="respond-async",
                 HTTP_IDEMPOTENCY_KEY="greeting-1")
    assert first.status_code == 202 and first["Preference-Applied"] == "respond-async"
    job = first.json()
    assert job["endpoint"] == "template-render" and first["Location"] == f"/api/jobs/{job['id']}"
    log = RenderLog.objects.get(pk=job["id"])
    assert log.is_job and log.params["edit"]["timeline"]["tracks"][0]["clips"][0]["asset"]["text"] == "Hello Later"
    again = send(api, "post", url, {"merge": {"name": "Later"}}, HTTP_PREFER="respond-async",
                 HTTP_IDEMPOTENCY_KEY="greeting-1")
    assert again.status_code == 202 and again.json()["id"] == job["id"]
    assert send(api, "get", "/api/jobs").json()["results"][0]["id"] == job["id"]
    assert send(api, "delete", f"/api/jobs/{job['id']}").status_code == 204  # cancelled: nothing left


def test_templates_need_a_key(client):
    for method, url in (("get", "/api/templates"), ("post", "/api/templates"),
                        ("get", f"/api/templates/{uuid.uuid4()}"), ("post", f"/api/templates/{uuid.uuid4()}/render")):
        response = getattr(client, method)(url, content_type="application/json")
        assert (response.status_code, response.json()["code"]) == (401, "not_authenticated"), (method, url)


def test_a_body_over_the_limit_is_413(api):
    from renders.api.template_views import MAX_BODY_BYTES

    big = b'{"name": "x", "edit": {"pad": "' + b"x" * MAX_BODY_BYTES + b'"}}'
    response = api.post("/api/templates", big, content_type="application/json")
    assert (response.status_code, response.json()["code"]) == (413, "payload_too_large")
    assert not ComposeTemplate.objects.exists()
