"""Make an API key for a client and print it (the only time it is shown: only its hash is stored)."""

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from renders.models import ClientKey


class Command(BaseCommand):
    help = "Create a named API key acting as USER; print it once."

    def add_arguments(self, parser):
        parser.add_argument("name", help="who uses the key, e.g. 'video-builder front end'")
        parser.add_argument("--user", default="admin", help="the account the key acts as (default: admin)")
        parser.add_argument("--expires-in-days", type=int, default=None, help="make the key expire")

    def handle(self, *args, name, user, expires_in_days, **options):
        account = get_user_model().objects.filter(username=user).first()
        if account is None:
            raise CommandError(f"no user {user!r}")
        expiry = timezone.now() + timedelta(days=expires_in_days) if expires_in_days else None
        _key, secret = ClientKey.objects.create_key(name=name[:50], user=account, expiry_date=expiry)
        self.stdout.write(f"API key {name!r} for {user!r} (shown once; only its hash is stored): {secret}")
        self.stdout.write(f"  export TOKEN={secret}")
