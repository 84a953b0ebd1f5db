"""Make sure there is an admin user with an API key (the README's start command runs this).

On a fresh install it creates the user (printing a generated password once)
and a key named "scripts/serve" (printed once: only its hash is stored) with
its webhook secret (printed once too).
Later runs print which keys exist; `manage.py create_api_key` makes more.
"""

import os
import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from renders.models import ClientKey


class Command(BaseCommand):
    help = "Create the admin user and its first API key if missing."

    def add_arguments(self, parser):
        parser.add_argument("--username", default=os.environ.get("VIDEOAPI_ADMIN_USER", "admin"))

    def handle(self, *args, **options):
        User = get_user_model()
        username = options["username"]
        user = User.objects.filter(username=username).first()
        if user is None:
            password = os.environ.get("VIDEOAPI_ADMIN_PASSWORD") or secrets.token_urlsafe(12)
            user = User.objects.create_superuser(username, email="", password=password)
            self.stdout.write(f"Created admin user {username!r} with password: {password}")
            self.stdout.write(f"  (shown once; change it with: .venv/bin/python manage.py changepassword {username})")
        usable = ClientKey.objects.filter(user=user, revoked=False)
        if usable.exists():
            names = ", ".join(f"{k.name} ({k.prefix}...)" for k in usable[:5])
            self.stdout.write(f"API keys for {username!r}: {names}")
            self.stdout.write("  (only their hashes are stored; make another with: "
                              f".venv/bin/python manage.py create_api_key NAME --user {username})")
            return
        key, secret = ClientKey.objects.create_key(name="scripts/serve", user=user)
        self.stdout.write(f"API key for {username!r} (shown once; only its hash is stored): {secret}")
        self.stdout.write(f"  export TOKEN={secret}")
        self.stdout.write(f"Its webhook secret (shown once; signs the webhooks of its jobs): {key.webhook_secret}")
