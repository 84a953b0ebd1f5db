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


def test_admin_lists_searches_and_shows_saved_templates(admin_client):
    from renders.models import ComposeTemplate

    edit = {"timeline": {"tracks": [{"clips": [{"asset": {"type": "text", "text": "Hi {{name}} <b>"}, "start": 0,
                                                "length": 1}]}]}}
    promo = ComposeTemplate.objects.create(owner="key:abcd1234", name="Spring promo", edit=edit)
    other = ComposeTemplate.objects.create(owner="user:7", name="Outro card", edit={"timeline": {}})
    page = admin_client.get("/admin/renders/composetemplate/").content.decode()
    assert "Spring promo" in page and "Outro card" in page and "key:abcd1234" in page
    found = admin_client.get("/admin/renders/composetemplate/?q=spring").content.decode()
    assert "Spring promo" in found and "Outro card" not in found
    detail = admin_client.get(f"/admin/renders/composetemplate/{promo.pk}/change/")
    assert detail.status_code == 200
    html = detail.content.decode()
    shown = html.replace("&quot;", '"')
    assert '{\n  "timeline": {\n    "tracks": [' in shown  # pretty JSON
    assert '"text": "Hi {{name}} &lt;b&gt;"' in shown  # escaped
    assert 'name="name"' not in html  # read-only: no form fields to change it
    assert admin_client.get("/admin/renders/composetemplate/add/").status_code == 403
    assert admin_client.post(f"/admin/renders/composetemplate/{other.pk}/delete/", {"post": "yes"}).status_code == 302
    assert list(ComposeTemplate.objects.all()) == [promo]
