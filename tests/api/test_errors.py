"""The error codes are said once (renders.errors.CODES): the answers, docs/API.md and the schema agree with it."""

import re
from pathlib import Path

import pytest
from django.core.exceptions import PermissionDenied, RequestDataTooBig, SuspiciousOperation
from django.db import OperationalError
from django.http import Http404, UnreadablePostError
from rest_framework import exceptions

from renders import errors
from renders.api import schema as api_schema

from ..apidoc import schema

API_MD = Path(__file__).resolve().parents[2] / "docs" / "API.md"


def documented_codes() -> dict:
    """docs/API.md's error table, "Errors" section: code -> status cell (`400`, `other`)."""
    text = API_MD.read_text(encoding="utf-8")
    section = text[text.index("\n## Errors\n") + 1:]
    section = section[:section.index("\n## ")]
    rows = {}
    for status, codes in re.findall(r"^\| (\w+) \| ((?:`\w+`(?: / )?)+) \|", section, re.M):
        for code in re.findall(r"`(\w+)`", codes):
            assert code not in rows, f"{code} is in docs/API.md's error table twice"
            rows[code] = status
    return rows


def status_text(code: errors.Code) -> str:
    return str(code.status) if code.status is not None else "other"


def test_docs_error_table_is_the_code_table():
    """Every code in docs/API.md's table is in CODES and the other way round, each with the same status."""
    documented = documented_codes()
    assert set(documented) - set(errors.CODES) == set(), "in docs/API.md, not in renders.errors.CODES"
    assert set(errors.CODES) - set(documented) == set(), "in renders.errors.CODES, not in docs/API.md"
    assert documented == {name: status_text(code) for name, code in errors.CODES.items()}
    assert documented["not_found"] == "404" and documented["client_disconnected"] == "400"


def test_error_codes_are_the_table():
    assert list(errors.CODES) == errors.ERROR_CODES
    assert all(re.fullmatch(r"[a-z_]+", name) and code.when for name, code in errors.CODES.items())


def every_service_error():
    def subclasses(cls):
        return [cls, *(s for sub in cls.__subclasses__() for s in subclasses(sub))]

    return subclasses(errors.ServiceError)


@pytest.mark.parametrize("cls", every_service_error(), ids=lambda cls: cls.__name__)
def test_each_exception_takes_its_status_from_the_table(cls):
    assert cls.status_code == errors.CODES[cls.default_code].status
    answer = errors.answer_for(cls())
    assert (answer.status, answer.code) == (errors.CODES[cls.default_code].status, cls.default_code)


OUTSIDE = [  # raised by DRF, Django or the database, answered with our codes
    (exceptions.ValidationError({"start": ["bad"]}), "invalid_input"),
    (exceptions.NotAuthenticated(), "not_authenticated"),
    (exceptions.AuthenticationFailed(), "not_authenticated"),
    (exceptions.Throttled(3), "throttled"),
    (exceptions.UnsupportedMediaType("text/plain"), "unsupported_media"),
    (exceptions.ParseError(), "invalid_input"),
    (exceptions.MethodNotAllowed("GET"), "method_not_allowed"),
    (exceptions.PermissionDenied(), "permission_denied"),
    (PermissionDenied(), "permission_denied"),
    (exceptions.NotFound(), "not_found"),
    (Http404(), "not_found"),
    (UnreadablePostError("gone"), "client_disconnected"),
    (RequestDataTooBig(), "payload_too_large"),
    (SuspiciousOperation(), "invalid_input"),
    (OperationalError("down"), "unavailable"),
    (ValueError("a bug"), "internal_error"),
]


@pytest.mark.parametrize(("exc", "code"), OUTSIDE, ids=[code for _exc, code in OUTSIDE])
def test_other_exceptions_are_answered_with_the_tables_status(exc, code):
    answer = errors.answer_for(exc)
    assert (answer.status, answer.code) == (errors.CODES[code].status, code)


def test_the_code_without_a_status_keeps_the_refusals_own():
    answer = errors.answer_for(exceptions.NotAcceptable())
    assert (answer.status, answer.code) == (406, "error") and errors.CODES["error"].status is None


def error_responses(doc):
    """(where, status, description) of every answer of the schema that is an error envelope."""
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            for status, response in operation["responses"].items():
                content = response.get("content", {}).get("application/json", {})
                if content.get("schema", {}).get("$ref", "").endswith("/Error"):
                    yield f"{method} {path}", int(status), response["description"]


@pytest.mark.django_db
def test_schema_error_descriptions_come_from_the_table(client):
    """Each render endpoint's error answers are described by every code CODES gives that status (an answer
    carries), in its words; every error answer of the schema names only codes of its status."""
    doc = schema(client)
    responses = list(error_responses(doc))
    assert len(responses) > 100
    for where, status, description in responses:
        named = re.findall(r"(?:^|\n\n)`?(\w+)`?", description)
        assert named and all(errors.CODES[code].status == status for code in named), (where, status, description)
        if where.startswith("post "):
            assert description == api_schema.error_description(status), (where, status)
    for status in (400, 500, 503):
        sent = [name for name, code in errors.CODES.items() if code.status == status and code.sent]
        assert api_schema.error_description(status) == "\n\n".join(
            f"`{name}`: {errors.CODES[name].when}" for name in sent)
    assert "client_disconnected" not in api_schema.error_description(400)  # no answer a client reads has it
    assert "`busy`" in api_schema.error_description(503) and "`unavailable`" in api_schema.error_description(503)
    not_found = doc["paths"]["/api/jobs/{job_id}"]["get"]["responses"]["404"]["description"]
    assert not_found == f"`not_found`: {errors.CODES['not_found'].when}" and "job" in not_found


@pytest.mark.django_db
def test_schema_error_table_is_the_code_table(client):
    """The description's table has every code with its status and meaning, client_disconnected included."""
    about = schema(client)["info"]["description"]
    rows = {code: (status, when) for status, code, when in re.findall(r"^\| (\S+) \| `(\w+)` \| (.*) \|$", about,
                                                                     re.M)}
    assert rows == {name: (status_text(code), code.when) for name, code in errors.CODES.items()}


def test_every_error_code_is_known_to_the_admin_filter():
    """The admin's error-code filter lists ERROR_CODES without scanning the table: answer_for() never says another."""
    from django.core.exceptions import PermissionDenied, RequestDataTooBig, SuspiciousOperation
    from django.db import OperationalError
    from django.http import Http404
    from rest_framework import exceptions

    from renders import errors

    def subclasses(cls):
        return [cls, *(s for sub in cls.__subclasses__() for s in subclasses(sub))]

    raised = [cls() for cls in subclasses(errors.ServiceError)] + [
        exceptions.ValidationError({"start": ["bad"]}), exceptions.NotAuthenticated(), exceptions.Throttled(3),
        exceptions.UnsupportedMediaType("text/plain"), exceptions.ParseError(), exceptions.MethodNotAllowed("GET"),
        PermissionDenied(), exceptions.NotFound(), Http404(), RequestDataTooBig(), SuspiciousOperation(),
        exceptions.NotAcceptable(), OperationalError("down"), ValueError("a bug"),
    ]
    codes = {errors.answer_for(exc).code for exc in raised}
    assert codes - set(errors.ERROR_CODES) == set()
    assert {"error", "unavailable", "internal_error", "insufficient_storage"} <= codes
