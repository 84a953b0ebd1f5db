"""The project's own docs: docs/API.md's examples run as printed against a live server."""

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from . import media
from .server import gunicorn

pytestmark = [pytest.mark.server, pytest.mark.django_db(transaction=True)]
DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_api_md_curl_examples_run_as_printed(token, clips, tmp_path):
    blocks = re.findall(r"```bash\n(.*?)```", (DOCS / "API.md").read_text(), re.S)
    assert len(blocks) >= 4
    media.lavfi_clip(tmp_path / "talk.mp4", seconds=4)
    for name, source in (("clip.mp4", clips.basic), ("avatar.png", clips.png)):
        shutil.copy(source, tmp_path / name)
    with gunicorn() as (address, _proc):
        for block in blocks:
            script = block.replace("http://localhost:8000", f"http://{address}")
            result = subprocess.run(["bash", "-e", "-c", script], cwd=tmp_path, capture_output=True, text=True,
                                    timeout=180, env={**os.environ, "TOKEN": token})
            assert result.returncode == 0, f"{block}\n{result.stderr[-2000:]}"
    assert "endpoints" in json.loads((tmp_path / "options.json").read_text())
    intro = media.probe(tmp_path / "intro.mp4")
    assert (intro["width"], intro["height"]) == (180, 320) and intro["vcodec"] == "h264"
    for name in ("steps.mp4", "persona.mp4", "trim.mp4", "fast.mp4", "joined.mp4", "final.mp4"):
        assert media.probe(tmp_path / name)["frames"] > 0, name
    assert abs(media.probe(tmp_path / "trim.mp4")["v_duration"] - 2.0) < 0.05
    assert "x-trim-start:" in (tmp_path / "fast-headers.txt").read_text().lower()
    assert "x-concat-mode:" in (tmp_path / "join-headers.txt").read_text().lower()
    assert (tmp_path / "still.jpg").read_bytes()[:3] == b"\xff\xd8\xff"


def test_generated_python_client_renders_a_trim(token, clips, tmp_path, monkeypatch):
    """openapi-python-client, fed the live schema, makes a client whose trim returns the MP4's bytes."""
    import importlib
    import sys
    import urllib.request

    generator = shutil.which("openapi-python-client") or str(Path(sys.executable).parent / "openapi-python-client")
    if not Path(generator).exists():
        pytest.skip("openapi-python-client is not installed (requirements.txt installs it)")
    with gunicorn() as (address, _proc):
        schema = tmp_path / "schema.json"
        schema.write_bytes(urllib.request.urlopen(f"http://{address}/api/schema?format=json", timeout=30).read())
        result = subprocess.run([generator, "generate", "--path", str(schema), "--meta", "none",
                                 "--output-path", str(tmp_path / "videoapi_client")],
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "Warning" not in result.stdout, result.stdout  # every operation, response included, was understood
        monkeypatch.syspath_prepend(str(tmp_path))
        package = importlib.import_module("videoapi_client")
        trim = importlib.import_module("videoapi_client.api.trim.trim")
        models = importlib.import_module("videoapi_client.models")
        types = importlib.import_module("videoapi_client.types")
        client = package.AuthenticatedClient(base_url=f"http://{address}", token=token, prefix="Token",
                                             timeout=__import__("httpx").Timeout(120))
        with open(clips.basic, "rb") as handle:
            body = models.TrimRequest(video=types.File(payload=handle, file_name="clip.mp4"), start="0.5",
                                      end="1.5", canvas="1:1")
            response = trim.sync_detailed(client=client, body=body)
    assert response.status_code == 200
    output = tmp_path / "out.mp4"
    output.write_bytes(response.parsed.payload.read())
    info = media.probe(output)
    assert (info["width"], info["height"]) == (180, 180) and abs(info["v_duration"] - 1.0) < 0.05
