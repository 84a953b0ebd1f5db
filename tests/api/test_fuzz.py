"""schemathesis against the live schema: no 500s, every answer as the schema says, nothing left.

Bounded: a fixed number of examples per operation and a fixed seed. A share
of the generated bodies carry a tiny real clip in their file fields (the
schema's binary fields have no example a fuzzer could use), so positive
cases are real renders, not only refusals. (Every typed field with text from
all of Unicode, through the API: test_properties.py.)
"""

import json
import os
import urllib.request

import pytest
import schemathesis
from hypothesis import HealthCheck
from hypothesis import settings as hsettings
from schemathesis.specs.openapi import checks

from ..conftest import leftovers, wait_for
from ..server import gunicorn

pytestmark = [pytest.mark.server, pytest.mark.slow, pytest.mark.django_db(transaction=True)]
EXAMPLES = 12
CHECKS = [checks.status_code_conformance, checks.content_type_conformance, checks.response_schema_conformance,
          checks.response_headers_conformance]


@pytest.fixture(scope="module")
def live(tmp_path_factory, django_db_setup, clips):
    with gunicorn(workers=2, threads=4) as (address, _proc):
        raw = urllib.request.urlopen(f"http://{address}/api/schema?format=json", timeout=30).read()
        path = tmp_path_factory.mktemp("fuzz") / "schema.json"
        path.write_bytes(raw)
        yield {"address": address, "schema": path, "clip": clips.basic.read_bytes(), "clip_path": clips.basic}


@pytest.fixture(scope="module")
def api_schema(live):
    schema = schemathesis.openapi.from_path(str(live["schema"]))
    schema.config.update(base_url=f"http://{live['address']}")
    clip = live["clip"]

    @schema.hook
    def map_body(context, body):
        """Every other multipart body gets real clips in its file fields."""
        if not isinstance(body, dict) or hash(tuple(sorted(body))) % 2:
            return body
        for key, value in list(body.items()):
            if key in ("video", "avatar") or key.startswith("segment_"):
                body[key] = clip if key != "avatar" else value
            elif key == "videos":
                body[key] = [clip, clip]
        return body

    return schema


def delete_uploads(address, token):
    """DELETE every upload the client has stored (each must answer 204), through the API."""
    from ..jobclient import call

    while True:
        status, _head, body = call(address, "GET", "/api/uploads?limit=100", token)
        assert status == 200, body[:300]
        ids = [item["id"] for item in json.loads(body)["results"]]
        if not ids:
            return
        for upload_id in ids:
            assert call(address, "DELETE", f"/api/uploads/{upload_id}", token)[0] == 204


def test_api_survives_generated_requests(api_schema, live, token):
    """Every operation, EXAMPLES generated requests each (fixed seed): no 500, answers as documented."""
    from hypothesis import given

    seen = {}
    for result in api_schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @hsettings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                   suppress_health_check=list(HealthCheck))
        def check(case):
            response = case.call(headers={"Authorization": f"Token {token}"}, timeout=120)
            # B023 is silenced below: check() runs within this iteration (right after), so it sees this operation
            seen.setdefault(operation.label, set()).add(response.status_code)  # noqa: B023
            assert response.status_code < 500 or response.status_code in (503, 507), \
                (operation.label, response.status_code, response.text[:300])  # noqa: B023
            # the answers must be as documented; a schema-valid request may still be refused (a random
            # "video" is no video), so positive-data acceptance is not one of the checks
            case.validate_response(response, checks=CHECKS)

        check()
    # ten renders, /api/options, the jobs (list, status, cancel, result), compose and its schema, saved templates
    # (list, save, read, replace, delete, render), stored uploads (list, store, read, delete)
    assert len(seen) == 27
    assert any(200 in codes for label, codes in seen.items() if "/render" in label or "trim" in label), seen
    # schemathesis sends real (tiny) images as binary fields: some were stored, and are deleted as a client would
    assert 201 in seen["POST /api/uploads"], seen
    delete_uploads(live["address"], token)
    # every workspace the server made is gone once it has answered (it deletes them as each answer closes)
    assert wait_for(lambda: leftovers() == [], seconds=10), leftovers()


def test_the_jobs_operations_and_options_pass_every_check(live, token, tmp_path):
    """schemathesis as an outsider runs it (its CLI, every check it has, positive and negative data, 40
    examples an operation, the stateful phase following the answers' ids) against the operations whose every
    schema-valid request must be accepted: the jobs (list, status, cancel, result) and /api/options. (The
    renders cannot promise positive-data acceptance: a schema-valid "video" is random bytes, rightly refused;
    the test above covers them.) Two settings say what the contract decides; see the config below."""
    import subprocess
    import sys
    from pathlib import Path

    from ..jobclient import call, submit

    cli = Path(sys.executable).parent / "schemathesis"
    config = tmp_path / "schemathesis.toml"
    config.write_text(
        # 410 is the contract's answer to a schema-valid request for a result that is gone (cancelled,
        # expired, downloaded): a right answer, not a refusal
        '[checks.positive_data_acceptance]\n'
        'expected-statuses = ["2xx", "3xx", "401", "403", "404", "409", "410", "429", "5xx"]\n')
    status, _head, job = submit(live["address"], token, fields={"video": live["clip_path"], "start": "0"})
    assert status == 202  # a real job (queued: no worker here) for the operations that take an id
    result = subprocess.run(
        [str(cli), "--config-file", str(config), "run", str(live["schema"]), "--url", f"http://{live['address']}",
         "--checks", "all",
         # DELETE cancels a job, which the contract keeps visible as `cancelled` (its client asks what became
         # of it): not a deletion, so "still there after DELETE" is what must happen
         "--exclude-checks", "use_after_free",
         "--max-examples", "40", "--seed", "1", "--generation-deterministic", "--workers", "2",
         "--include-path-regex", "^/api/(jobs|options)", "-H", f"Authorization: Token {token}"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path, env={**os.environ, "NO_COLOR": "1"})
    call(live["address"], "DELETE", f"/api/jobs/{job['id']}", token)  # whatever the run left of it
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "Selected: 5/27" in result.stdout and "Tested: 5" in result.stdout, result.stdout[-3000:]
    assert wait_for(lambda: leftovers() == [], seconds=10), leftovers()
