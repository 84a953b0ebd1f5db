import pytest

from renders.models import RenderLog

from ..conftest import post

pytestmark = pytest.mark.django_db


def test_admin_lists_and_shows_renders(api, admin_client, clips):
    ok = post(api, "/api/trim", {"video": clips.basic, "start": "0.5"})
    bad = post(api, "/api/trim", {"video": clips.text, "start": "0"})
    page = admin_client.get("/admin/renders/renderlog/")
    assert page.status_code == 200
    html = page.content.decode()
    assert ok["X-Render-Id"][:8] in html and bad["X-Render-Id"][:8] in html
    filtered = admin_client.get("/admin/renders/renderlog/?status__exact=rejected").content.decode()
    assert bad["X-Render-Id"][:8] in filtered and ok["X-Render-Id"][:8] not in filtered
    found = admin_client.get(f"/admin/renders/renderlog/?q={bad['X-Render-Id']}").content.decode()
    assert bad["X-Render-Id"][:8] in found and ok["X-Render-Id"][:8] not in found
    detail = admin_client.get(f"/admin/renders/renderlog/{ok['X-Render-Id']}/change/")
    assert detail.status_code == 200
    text = detail.content.decode()
    assert "-protocol_whitelist file" in text and "libx264" in text and "Deleted" in text
    assert RenderLog.objects.count() == 2


def test_admin_offers_no_plain_tokens(admin_client, admin_user):
    """Plain tokens are stored as they are: the admin neither makes nor shows them (API keys replace them)."""
    from rest_framework.authtoken.models import Token

    index = admin_client.get("/admin/")
    assert index.status_code == 200 and "API keys" in index.content.decode()
    assert "authtoken" not in index.content.decode() and "Auth Token" not in index.content.decode()
    for url in ("/admin/authtoken/tokenproxy/add/", "/admin/authtoken/tokenproxy/", "/admin/authtoken/"):
        assert admin_client.get(url).status_code == 404, url
    assert admin_client.post("/admin/authtoken/tokenproxy/add/", {"user": admin_user.pk}).status_code == 404
    assert not Token.objects.exists()
