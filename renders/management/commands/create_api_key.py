"""Make an API key for a client and print it with its webhook secret (the only time either is shown).

`--rotate-webhook-secret` gives an existing key (NAME, of --user) a new
webhook secret instead, printed once; the old one stops signing at once.
"""

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from renders.models import ClientKey


class Command(BaseCommand):
    help = "Create a named API key acting as USER; print it and its webhook secret once."

    def add_arguments(self, parser):
        parser.add_argument("name", help="who uses the key, e.g. 'video-builder front end'")
        parser.add_argument("--user", default="admin", help="the account the key acts as (default: admin)")
        parser.add_argument("--expires-in-days", type=int, default=None, help="make the key expire")
        parser.add_argument("--rotate-webhook-secret", action="store_true",
                            help="make no key: give USER's existing key NAME a new webhook secret, printed once")

    def handle(self, *args, name, user, expires_in_days, rotate_webhook_secret, **options):
        account = get_user_model().objects.filter(username=user).first()
        if account is None:
            raise CommandError(f"no user {user!r}")
        if rotate_webhook_secret:
            keys = list(ClientKey.objects.filter(user=account, name=name, revoked=False)[:2])
            if len(keys) != 1:
                raise CommandError(f"{'no' if not keys else 'more than one'} usable key {name!r} of {user!r}: "
                                   "rotate in the admin (API keys, action 'Rotate the webhook secret')")
            secret = keys[0].rotate_webhook_secret()
            self.stdout.write(f"New webhook secret of {name!r} ({keys[0].prefix}...; shown once): {secret}")
            return
        expiry = timezone.now() + timedelta(days=expires_in_days) if expires_in_days else None
        key, secret = ClientKey.objects.create_key(name=name[:50], user=account, expiry_date=expiry)
        self.stdout.write(f"API key {name!r} for {user!r} (shown once; only its hash is stored): {secret}")
        self.stdout.write(f"  export TOKEN={secret}")
        self.stdout.write(f"Its webhook secret (shown once; signs the webhooks of its jobs): {key.webhook_secret}")
