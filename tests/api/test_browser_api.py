"""The API from a browser: the interactive docs, and a front end on another origin (CORS)."""

import contextlib
import functools
import http.server
import shutil
import threading
from pathlib import Path

import pytest

from renders.models import RenderLog

from ..conftest import ARTIFACTS
from ..server import free_port, gunicorn

pytestmark = [pytest.mark.server, pytest.mark.django_db(transaction=True)]

PAGE = """<!doctype html><html><body><p id="state">loading</p><script>
async function upload(api, token) {
  const clip = await (await fetch("clip.mp4")).blob();
  const form = new FormData();
  form.append("video", clip, "clip.mp4");
  form.append("start", "0.5");
  try {
    const r = await fetch(api + "/api/trim", {method: "POST", headers: {Authorization: "Token " + token}, body: form});
    const blob = await r.blob();
    return {status: r.status, renderId: r.headers.get("X-Render-Id"), size: blob.size, type: blob.type,
            disposition: r.headers.get("Content-Disposition")};
  } catch (e) {
    return {error: String(e)};
  }
}
document.getElementById("state").textContent = "ready";
</script></body></html>"""


@contextlib.contextmanager
def static_site(directory: Path, host: str):
    """A plain HTTP server for a front end's files, on a loopback address of its own."""
    port = free_port()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(directory))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer((host, port), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.shutdown()
        server.server_close()


def test_front_end_on_another_origin(browser, token, clips, tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text(PAGE)
    shutil.copy(clips.basic, site / "clip.mp4")
    with static_site(site, "127.0.0.1") as allowed, static_site(site, "127.0.0.2") as stranger, \
            gunicorn({"VIDEOAPI_CORS_ALLOWED_ORIGINS": allowed}) as (address, _proc):
        api = f"http://{address}"
        results = {}
        for name, origin in (("allowed", allowed), ("stranger", stranger)):
            page = browser.new_page()
            page.goto(f"{origin}/index.html")
            page.wait_for_function("document.getElementById('state').textContent === 'ready'")
            results[name] = page.evaluate("([api, token]) => upload(api, token)", [api, token])
            page.close()
    ok = results["allowed"]
    assert ok.get("status") == 200, ok
    assert ok["type"] == "video/mp4" and ok["size"] > 10_000 and "trim.mp4" in ok["disposition"]
    assert RenderLog.objects.get(id=ok["renderId"]).status == "succeeded"  # the script could read X-Render-Id
    assert "error" in results["stranger"] and "Failed to fetch" in results["stranger"]["error"]
    assert RenderLog.objects.count() == 1  # the browser never sent the stranger's upload


def test_docs_page_authorize_and_try_every_render_untouched(browser, token, clips, tmp_path):
    """In /api/: authorize, then on every render choose only the files and press Execute: each answers 200.

    The form's other fields keep what the schema prefilled (its examples), so this is "Try it out" exactly as a
    newcomer meets it.
    """
    ARTIFACTS.mkdir(exist_ok=True)
    statuses, texts, first_files, compose_status = {}, {}, {}, None
    with gunicorn() as (address, _proc):
        page = browser.new_page(viewport={"width": 1300, "height": 1600})
        page.goto(f"http://{address}/")  # redirects to the docs
        page.wait_for_selector(".swagger-ui .opblock")
        assert page.url.endswith("/api/")
        about = page.locator(".swagger-ui .information-container").inner_text()
        assert "keeps nothing" in about and "insufficient_storage" in about  # the contract, on the page
        page.click("button.authorize")
        page.fill(".modal-ux input[type=text]", f"Token {token}")
        page.click(".modal-ux button.authorize")
        page.click(".modal-ux button.btn-done")
        blocks = page.locator(".opblock-post")
        for index in range(blocks.count()):
            block = blocks.nth(index)
            path = block.locator(".opblock-summary-path").first.inner_text().strip()
            if path.startswith(("/api/templates", "/api/uploads")):  # saved templates, stored uploads: not renders
                continue
            block.locator(".opblock-summary").first.click()
            if path == "/api/compose":  # a JSON body, prefilled with the schema's example edit (no file needed)
                block.locator("button.execute").click()
                status = block.locator(".live-responses-table tbody .response-col_status").first
                status.wait_for(timeout=120_000)
                compose_status = status.inner_text().strip()
                continue
            files = block.locator("input[type=file]")
            files.first.wait_for()
            for i in range(files.count()):
                name = files.nth(i).locator("xpath=ancestor::tr[@data-property-name]").get_attribute(
                    "data-property-name")
                # an image where an image goes, subtitles for captions; videos (and their sound, as music) elsewhere
                chosen = {"avatar": clips.png, "logo": clips.png, "captions": clips.captions}.get(name, clips.basic)
                files.nth(i).set_input_files(str(chosen))
                first_files.setdefault(path, name)
            block.locator("button.execute").click()
            status = block.locator(".live-responses-table tbody .response-col_status").first
            status.wait_for(timeout=120_000)
            statuses[path], texts[path] = status.inner_text().strip(), block.inner_text()
        page.screenshot(path=str(ARTIFACTS / "api-docs-try-it-out.png"), full_page=True)
    assert compose_status == "200"  # the compose example renders as sent
    assert len(statuses) == 10, statuses
    assert statuses == dict.fromkeys(statuses, "200"), {p: texts[p][-800:] for p, s in statuses.items()
                                                             if s != "200"}
    # the upload a render needs is the first file input, before the optional logo, captions, music, avatar
    assert first_files == {path: {"/api/concatenate": "videos", "/api/concatenate-multipart": "segment_0"}.get(
        path, "video") for path in statuses}, first_files
    trim = texts["/api/trim"].lower()
    assert "x-render-id" in trim and "launch-video.mp4" in trim
    logs = RenderLog.objects.exclude(endpoint="compose")
    assert len(logs) == 10 and {log.status for log in logs} == {"succeeded"}
    assert {(log.params["spec"]["width"], log.params["spec"]["height"]) for log in logs
            if "spec" in log.params} == {(180, 320)}  # 9:16
