"""The admin as an operator sees it: real gunicorn, headless Chromium, screenshots."""


import pytest
from django.contrib.auth.models import User

from renders.models import RenderLog

from .conftest import ARTIFACTS
from .server import gunicorn, request

pytestmark = [pytest.mark.server, pytest.mark.django_db(transaction=True)]


def test_admin_pages_in_a_browser(browser, token, clips):
    User.objects.create_superuser("operator", password="operator-pass-123")
    ARTIFACTS.mkdir(exist_ok=True)
    with gunicorn() as (address, _proc):
        ok = request(address, "/api/trim", {"video": clips.basic, "start": "0.5"}, token)
        bad = request(address, "/api/trim", {"video": clips.text, "start": "0"}, token)
        assert ok[0] == 200 and bad[0] == 415
        job = RenderLog.objects.create(endpoint="intro", status="rendering", is_job=True, host="render-9",
                                       progress=0.42, eta_seconds=75, worker_id="render-9:77:0")  # on another host
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"http://{address}/admin/login/?next=/admin/renders/renderlog/")
        page.fill("#id_username", "operator")
        page.fill("#id_password", "operator-pass-123")
        page.click("input[type=submit]")
        page.wait_for_selector("#render-dashboard")
        text = page.inner_text("body")
        assert "Last 24 hours" in text and "Nothing: every render has been cleaned up." in text
        assert ok[1]["x-render-id"][:8] in text and bad[1]["x-render-id"][:8] in text
        assert page.eval_on_selector(f'tr:has(input[value="{job.pk}"]) progress', "e => e.value") == 42
        assert "42 %" in page.inner_text(f'tr:has(input[value="{job.pk}"])')  # progress and ETA in the list
        assert "0:01:15" in page.inner_text(f'tr:has(input[value="{job.pk}"])')
        assert "render-9" in page.inner_text("#job-queues")  # the dashboard's queues per host
        # the admin's own stylesheet is served (whitenoise): the header is styled, not raw HTML
        assert page.eval_on_selector("#header", "e => getComputedStyle(e).backgroundColor") != "rgba(0, 0, 0, 0)"
        page.screenshot(path=str(ARTIFACTS / "admin-renderlog-list.png"), full_page=True)

        page.goto(f"http://{address}/admin/renders/renderlog/{ok[1]['x-render-id']}/change/")
        detail = page.inner_text("body")
        assert "-protocol_whitelist file" in detail and "Deleted" in detail
        page.screenshot(path=str(ARTIFACTS / "admin-renderlog-detail.png"), full_page=True)
        page.goto(f"http://{address}/admin/renders/renderlog/{bad[1]['x-render-id']}/change/")
        assert "unsupported_media" in page.inner_text("body")
        page.goto(f"http://{address}/admin/renders/renderlog/{job.pk}/change/")
        assert "render-9:77:0" in page.inner_text("body") and "42 %" in page.inner_text("body")
        page.screenshot(path=str(ARTIFACTS / "admin-renderlog-job.png"), full_page=True)
    assert (ARTIFACTS / "admin-renderlog-list.png").stat().st_size > 10_000
    assert RenderLog.objects.count() == 3
