"""Make sure there is an admin user with an API token, and print the token.

Used by the README's start command: on a fresh install it creates the
user (printing a generated password once); every run prints the token.
"""

import os
import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from rest_framework.authtoken.models import Token


class Command(BaseCommand):
    help = "Create the admin user if missing and print its API token."

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
            self.stdout.write("  (shown once; change it with: python manage.py changepassword " + username + ")")
        token, _ = Token.objects.get_or_create(user=user)
        self.stdout.write(f"API token for {username!r}: {token.key}")
        self.stdout.write(f'  export TOKEN={token.key}')
