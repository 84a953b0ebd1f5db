"""The project's own docs: the README's and docs/API.md's examples run as printed against a live server,
on the files `manage.py make_samples` writes."""

import io
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
from django.core.management import call_command
from PIL import Image

from renders.management.commands.make_samples import AVATAR, SAMPLES
from renders.media import ffmpeg

from .. import media
from ..server import gunicorn, render_worker

pytestmark = [pytest.mark.server, pytest.mark.django_db(transaction=True)]
ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    """`manage.py make_samples DIR`, counting the FFmpeg runs it makes through the service's runner."""
    directory = tmp_path_factory.mktemp("samples") / "new"  # the command makes it
    runs = []
    real_run = ffmpeg.run

    def counted(args, **kwargs):
        result = real_run(args, **kwargs)
        runs.append(result)
        return result

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ffmpeg, "run", counted)
        call_command("make_samples", str(directory), stdout=io.StringIO())
    return SimpleNamespace(dir=directory, runs=runs)


def curl_blocks(document: Path):
    return [b for b in re.findall(r"```bash\n(.*?)```", document.read_text(), re.S) if "curl " in b]


def uploads(block: str):
    return set(re.findall(r"=@([\w.-]+)", block))


def run_examples(blocks, address, directory, token):
    for block in blocks:
        script = block.replace("http://localhost:8000", f"http://{address}")
        result = subprocess.run(["bash", "-e", "-c", script], cwd=directory, capture_output=True, text=True,
                                timeout=180, env={**os.environ, "TOKEN": token})
        assert result.returncode == 0, f"{block}\n{result.stderr[-2000:]}"


def test_make_samples_writes_valid_clips_and_an_avatar(samples):
    assert sorted(p.name for p in samples.dir.iterdir()) == sorted([s.name for s in SAMPLES] + [AVATAR])
    assert {"test.mp4", "clip.mp4", "talk.mp4"} == {s.name for s in SAMPLES}
    assert len(samples.runs) == len(SAMPLES) and all(r.ok for r in samples.runs)  # through renders/media/ffmpeg.py
    for sample in SAMPLES:
        info = media.probe(samples.dir / sample.name)
        assert info["streams"] == 2 and (info["vcodec"], info["width"], info["height"]) == ("h264", 1280, 720)
        assert info["frames"] == sample.seconds * sample.rate and abs(info["v_duration"] - sample.seconds) < 0.05
        assert (info["acodec"], info["channels"], info["sample_rate"]) == ("aac", 2, 48000)
        assert abs(info["a_duration"] - sample.seconds) < 0.05 and info["faststart"]
        assert media.dominant_frequency(samples.dir / sample.name, 0.3) == pytest.approx(
            float(re.match(r"f=(\d+)", sample.tone)[1]), abs=5)  # with sound, not silence
    with Image.open(samples.dir / AVATAR) as avatar:
        assert (avatar.format, avatar.size, avatar.mode) == ("PNG", (256, 256), "RGBA")
        assert avatar.getpixel((0, 0))[3] == 0 and avatar.getpixel((128, 128))[3] == 255


def test_make_samples_keeps_existing_files_unless_forced(tmp_path):
    mine = tmp_path / "test.mp4"
    mine.write_bytes(b"my own video")
    out = io.StringIO()
    call_command("make_samples", str(tmp_path), stdout=out)
    assert mine.read_bytes() == b"my own video" and "kept" in out.getvalue()
    assert media.probe(tmp_path / "clip.mp4")["frames"] > 0
    before = (tmp_path / "clip.mp4").stat().st_mtime_ns
    call_command("make_samples", str(tmp_path), "--force", stdout=io.StringIO())
    assert media.probe(mine)["frames"] == 150 and (tmp_path / "clip.mp4").stat().st_mtime_ns != before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([s.name for s in SAMPLES] + [AVATAR])  # no part


def test_docs_name_the_sample_command_and_it_covers_every_upload():
    """Every file an example uploads is a sample, or the output of an example before it."""
    readme, api = (ROOT / "README.md").read_text(), (DOCS / "API.md").read_text()
    for text in (readme, api):
        assert ".venv/bin/python manage.py make_samples" in text
    made = {s.name for s in SAMPLES} | {AVATAR}
    for document in (ROOT / "README.md", DOCS / "API.md"):
        for block in curl_blocks(document):
            assert uploads(block) <= made, (document.name, uploads(block) - made)
            made |= set(re.findall(r"-o ([\w.-]+)", block))


def test_readme_curl_examples_run_on_the_samples(token, samples, tmp_path):
    blocks = curl_blocks(ROOT / "README.md")  # a first render, a first job
    assert len(blocks) == 2 and all(uploads(block) == {"test.mp4"} for block in blocks)
    shutil.copytree(samples.dir, tmp_path, dirs_exist_ok=True)
    with gunicorn() as (address, _proc), render_worker():
        run_examples(blocks, address, tmp_path, token)
    trim, intro = media.probe(tmp_path / "trim.mp4"), media.probe(tmp_path / "output.mp4")
    assert abs(trim["v_duration"] - 2.5) < 0.05 and (trim["width"], trim["height"]) == (320, 180)
    assert abs(intro["v_duration"] - 5.0) < 0.05 and intro["acodec"] == "aac"
    job = media.probe(tmp_path / "intro.mp4")  # the job's result: the same render as the synchronous one
    assert abs(job["v_duration"] - intro["v_duration"]) < 0.05 and job["acodec"] == "aac"


def test_api_md_curl_examples_run_as_printed(token, samples, tmp_path):
    blocks = curl_blocks(DOCS / "API.md")
    assert len(blocks) >= 5
    shutil.copytree(samples.dir, tmp_path, dirs_exist_ok=True)
    with gunicorn() as (address, _proc), render_worker():  # the jobs example needs this host's worker
        run_examples(blocks, address, tmp_path, token)
        [jobs] = [b for b in blocks if "Prefer: respond-async" in b]
        (tmp_path / "job.mp4").unlink()
        run_examples([jobs], address, tmp_path, token)  # again, as a reader would: a new job, not the first (410)
    job = media.probe(tmp_path / "job.mp4")
    assert abs(job["v_duration"] - 2.0) < 0.05 and job["vcodec"] == "h264"
    assert "endpoints" in json.loads((tmp_path / "options.json").read_text())
    intro = media.probe(tmp_path / "intro.mp4")
    assert (intro["width"], intro["height"]) == (180, 320) and intro["vcodec"] == "h264"
    for name in ("steps.mp4", "persona.mp4", "trim.mp4", "fast.mp4", "joined.mp4", "final.mp4"):
        assert media.probe(tmp_path / name)["frames"] > 0, name
    assert abs(media.probe(tmp_path / "trim.mp4")["v_duration"] - 2.0) < 0.05
    assert "x-trim-start:" in (tmp_path / "fast-headers.txt").read_text().lower()
    assert "x-concat-mode:" in (tmp_path / "join-headers.txt").read_text().lower()
    assert (tmp_path / "still.jpg").read_bytes()[:3] == b"\xff\xd8\xff"
    # the compose guide's three examples
    lower_third = media.probe(tmp_path / "lower-third.mp4")
    assert abs(lower_third["v_duration"] - 8.0) < 0.05 and lower_third["acodec"] == "aac"  # the talk's length
    slideshow = media.probe(tmp_path / "slideshow.mp4")
    assert (slideshow["width"], slideshow["height"]) == (180, 180) and abs(slideshow["v_duration"] - 5.5) < 0.05
    assert media.dominant_frequency(tmp_path / "slideshow.mp4", 1.0) == pytest.approx(660, abs=10)  # the music
    for name in ("Ada", "Grace", "Katherine"):
        assert abs(media.probe(tmp_path / f"welcome-{name}.mp4")["v_duration"] - 3.0) < 0.05
    with Image.open(tmp_path / "welcome-poster.png") as poster:
        assert poster.format == "PNG" and poster.size == (320, 180)


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
