"""The admin as an operator sees it: real gunicorn, headless Chromium, screenshots."""

import re

import pytest
from django.conf import settings
from django.contrib.auth.models import User

from renders.models import RenderLog

from ..conftest import ARTIFACTS
from ..server import gunicorn, request

pytestmark = [pytest.mark.server, pytest.mark.django_db(transaction=True)]


# the colour of an element's text and of the first background behind it that is not transparent
COLOURS = """e => {
    let behind = e;
    while (behind && getComputedStyle(behind).backgroundColor.replace(/ /g, "") === "rgba(0,0,0,0)") {
        behind = behind.parentElement;
    }
    return [getComputedStyle(e).color, behind ? getComputedStyle(behind).backgroundColor : "rgb(255, 255, 255)"];
}"""


# whether an element is in sight once the page is scrolled down to it (never sideways)
SEEN = """e => {
    window.scrollTo(0, window.scrollY + e.getBoundingClientRect().top - 100);
    const box = e.getBoundingClientRect(), x = box.left + box.width / 2, y = box.top + box.height / 2;
    return x >= 0 && x <= window.innerWidth && e.contains(document.elementFromPoint(x, y));
}"""


def contrast(first: str, second: str) -> float:
    """WCAG 2's contrast ratio of two opaque CSS colours ("rgb(r, g, b)")."""
    def luminance(css):
        channels = [float(v) / 255 for v in re.findall(r"[\d.]+", css)[:3]]
        r, g, b = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * r + 0.7152 * g + 0.0722 * b
    high, low = sorted((luminance(first), luminance(second)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def test_contrast_ratio():
    assert contrast("rgb(0, 0, 0)", "rgb(255, 255, 255)") == pytest.approx(21)
    assert contrast("rgb(102, 102, 102)", "rgb(65, 118, 144)") < 2  # Django's quiet grey on its header blue


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
        # the host on the temp root's bar is readable (WCAG AA: at least 4.5:1)
        host = page.query_selector("#render-dashboard h2:has-text('Under the temp root') code")
        assert host.inner_text() == settings.VIDEOAPI_HOST_ID
        assert contrast(*host.evaluate(COLOURS)) >= 4.5, host.evaluate(COLOURS)
        page.screenshot(path=str(ARTIFACTS / "admin-renderlog-list.png"), full_page=True)
        # at 1400 px wide, the cleanup status is on screen without scrolling sideways (not hidden past the edge
        # of the list's own scrolling box: what is drawn at the cell's centre is the cell)
        page.set_viewport_size({"width": 1400, "height": 900})
        ok_cell = f'tr:has(input[value="{ok[1]["x-render-id"]}"]) td.field-cleanup_status'
        for cell in ("th.column-cleanup_status", ok_cell):
            assert page.eval_on_selector(cell, SEEN), cell
        assert page.inner_text(ok_cell) == "Deleted"
        page.screenshot(path=str(ARTIFACTS / "admin-renderlog-list-1400.png"))

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
