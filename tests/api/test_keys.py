"""API keys: hashed at rest, named, revocable, expiring, last use recorded; plain tokens migrated."""

import hashlib
import json
from datetime import timedelta
from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db import connection
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from renders.api.authentication import hashed_keys_since
from renders.models import ClientKey, RenderLog

from ..conftest import post

pytestmark = pytest.mark.django_db


def client_with(key):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def stored_text():
    """Everything the key tables hold, as text: what a database dump would show."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {ClientKey._meta.db_table}")  # noqa: S608  (the model's own table)
        return json.dumps(cursor.fetchall(), default=str)


def test_keys_are_stored_hashed_and_recorded_by_name(clips):
    user = User.objects.create_user("frontend")
    key, secret = ClientKey.objects.create_key(name="video-builder", user=user)
    assert secret not in stored_text() and secret.split(".")[1] not in stored_text()
    assert hashlib.sha512(secret.encode()).hexdigest() in key.hashed_key  # SHA-512 of a random key
    r = post(client_with(secret), "/api/trim", {"video": clips.basic, "start": "1"})
    assert r.status_code == 200
    log = RenderLog.objects.get(id=r["X-Render-Id"])
    assert (log.api_key, log.user) == ("video-builder", user) and secret not in json.dumps(log.params)
    key.refresh_from_db()
    assert key.last_used_at is not None and timezone.now() - key.last_used_at < timedelta(minutes=1)


def test_revoked_expired_and_wrong_keys_are_401(clips):
    user = User.objects.create_user("frontend")
    revoked, revoked_secret = ClientKey.objects.create_key(name="old", user=user)
    revoked.revoked = True
    revoked.save()
    _expired, expired_secret = ClientKey.objects.create_key(name="temp", user=user,
                                                            expiry_date=timezone.now() - timedelta(days=1))
    _ok, ok_secret = ClientKey.objects.create_key(name="ok", user=user)
    wrong = ok_secret[:-1] + ("y" if ok_secret.endswith("x") else "x")  # one character off (never the key itself)
    for secret in (revoked_secret, expired_secret, wrong, "", "nonsense.key"):
        r = post(client_with(secret), "/api/trim", {"video": clips.basic, "start": "1"})
        assert r.status_code == 401 and json.loads(r.body)["code"] == "not_authenticated", secret
        assert r["WWW-Authenticate"].startswith("Token")
    assert RenderLog.objects.count() == 0


def old_plain_token(user):
    """A plain token as made before hashed keys came in (the migration that brought them)."""
    token = Token.objects.create(user=user)
    Token.objects.filter(pk=token.pk).update(created=hashed_keys_since() - timedelta(days=30))
    return token.key


def test_plain_tokens_keep_working_until_migrated_then_keep_working_hashed(clips):
    user = User.objects.create_user("legacy")
    plain = old_plain_token(user)
    r = post(client_with(plain), "/api/trim", {"video": clips.basic, "start": "1"})
    assert r.status_code == 200
    assert RenderLog.objects.get(id=r["X-Render-Id"]).api_key.startswith("legacy token")
    out = StringIO()
    call_command("migrate_authtokens", stdout=out)
    assert "migrated 1" in out.getvalue() and not Token.objects.exists()
    assert plain not in stored_text()
    r = post(client_with(plain), "/api/trim", {"video": clips.basic, "start": "1"})  # the same secret
    assert r.status_code == 200
    assert RenderLog.objects.get(id=r["X-Render-Id"]).api_key == "migrated token of legacy"
    call_command("migrate_authtokens", stdout=StringIO())  # idempotent
    assert ClientKey.objects.count() == 1


def test_commands_show_a_key_once(django_user_model):
    out = StringIO()
    call_command("ensure_admin", stdout=out)
    first = out.getvalue()
    secret = first.split("export TOKEN=")[1].split()[0]
    assert ClientKey.objects.get(user__username="admin").name == "scripts/serve"
    again = StringIO()
    call_command("ensure_admin", stdout=again)
    assert secret not in again.getvalue() and "scripts/serve" in again.getvalue()
    made = StringIO()
    call_command("create_api_key", "partner portal", "--user", "admin", "--expires-in-days", "30", stdout=made)
    key = ClientKey.objects.get(name="partner portal")
    assert key.expiry_date is not None and made.getvalue().split("export TOKEN=")[1].split()[0] not in stored_text()


def test_the_commands_ensure_admin_suggests_run_in_a_plain_shell(django_user_model):
    """Its hints name the checkout's .venv python: a plain shell's `python` has no Django."""
    import os
    import re
    import subprocess
    import sys
    from pathlib import Path

    first, again = StringIO(), StringIO()
    call_command("ensure_admin", stdout=first)
    call_command("ensure_admin", stdout=again)
    hints = re.findall(r"with: (.+?)\)$", first.getvalue() + again.getvalue(), re.M)
    assert len(hints) == 2 and {h.split()[2] for h in hints} == {"changepassword", "create_api_key"}, hints
    root = Path(__file__).resolve().parents[2]
    venv_python = root / ".venv" / "bin" / "python"
    for hint in hints:
        assert hint.startswith(".venv/bin/python manage.py "), hint
        command = hint if venv_python.exists() else hint.replace(".venv/bin/python", sys.executable, 1)
        result = subprocess.run(["/bin/sh", "-c", command.replace("NAME", "'a name'") + " --help"], cwd=root,
                                capture_output=True, text=True, timeout=120,
                                env={"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "tests.settings",
                                     "VIDEOAPI_TEST_DIR": os.environ["VIDEOAPI_TEST_DIR"]})
        assert result.returncode == 0 and "usage: manage.py" in result.stdout, (hint, result.stderr[-500:])


def test_admin_makes_a_key_and_shows_it_once(admin_client, admin_user):
    r = admin_client.post("/admin/renders/clientkey/add/", {"name": "mobile app", "user": admin_user.pk,
                                                            "expiry_date_0": "", "expiry_date_1": ""}, follow=True)
    assert r.status_code == 200
    page = r.content.decode()
    key = ClientKey.objects.get(name="mobile app")
    secret = page.split("The API key for mobile app is: ")[1].split(".", 2)
    secret = f"{secret[0]}.{secret[1]}"
    assert secret.startswith(key.prefix) and secret not in stored_text()
    listing = admin_client.get("/admin/renders/clientkey/").content.decode()
    assert "mobile app" in listing and secret not in listing


def refused(secret, clips):
    r = post(client_with(secret), "/api/trim", {"video": clips.basic, "start": "1"})
    assert r.status_code == 401 and json.loads(r.body)["code"] == "not_authenticated", r.body
    return json.loads(r.body)


def test_a_disabled_accounts_keys_are_401(clips):
    user = User.objects.create_user("gone")
    _key, secret = ClientKey.objects.create_key(name="front end", user=user)
    plain = old_plain_token(User.objects.create_user("gone-too"))
    for s in (secret, plain):  # both work while the account is active
        assert post(client_with(s), "/api/trim", {"video": clips.basic, "start": "1"}).status_code == 200
    User.objects.filter(username__startswith="gone").update(is_active=False)
    assert "disabled" in refused(secret, clips)["detail"]
    refused(plain, clips)
    assert RenderLog.objects.count() == 2  # the refused requests made none


def test_no_plain_token_made_since_hashed_keys_authenticates(clips):
    """The promise is hashed keys: plain tokens from before work until migrated, a plain token made since never."""
    shell = Token.objects.create(user=User.objects.create_user("shell")).key  # e.g. from manage.py shell
    out = StringIO()
    User.objects.create_user("cli")
    call_command("drf_create_token", "cli", stdout=out)  # DRF's own command
    command = out.getvalue().split("Generated token ")[1].split()[0]
    assert Token.objects.filter(key=command).exists()
    for secret in (shell, command):
        assert "create_api_key" in refused(secret, clips)["detail"]
    old = old_plain_token(User.objects.create_user("old"))
    assert post(client_with(old), "/api/trim", {"video": clips.basic, "start": "1"}).status_code == 200
    out = StringIO()
    call_command("migrate_authtokens", stdout=out)  # carries the old one over, drops the new one
    assert "migrated 1 " in out.getvalue() and "deleted 2 plain token(s)" in out.getvalue()
    assert not Token.objects.exists() and list(ClientKey.objects.values_list("name", flat=True)) == [
        "migrated token of old"]
    for secret in (shell, command):
        refused(secret, clips)
    assert post(client_with(old), "/api/trim", {"video": clips.basic, "start": "1"}).status_code == 200
    assert all(secret not in stored_text() for secret in (shell, command, old))
