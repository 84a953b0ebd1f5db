"""Turn plain DRF authtoken keys (stored as-is) into hashed API keys with the same secret.

Clients keep sending the same `Authorization: Token <key>`; afterwards the
database holds only a SHA-512 hash of it. Only tokens from before hashed
keys are carried over: a plain token made since (never accepted) is deleted,
not turned into a key. Idempotent.
"""

from django.core.management.base import BaseCommand
from django.db import transaction
from rest_framework.authtoken.models import Token
from rest_framework_api_key.crypto import concatenate

from renders.api.authentication import is_legacy
from renders.models import ClientKey


class Command(BaseCommand):
    help = ("Replace every plain authtoken key from before hashed keys with a hashed API key (same secret); "
            "delete the plain ones.")

    def handle(self, *args, **options):
        generator = ClientKey.objects.key_generator
        moved, dropped = 0, []
        for token in Token.objects.select_related("user"):
            with transaction.atomic():
                if not is_legacy(token):  # made after hashed keys came in: it never worked, so no client uses it
                    dropped.append(token.user.get_username())
                    token.delete()
                    continue
                prefix, hashed = token.key[:8], generator.hash(token.key)
                if not ClientKey.objects.filter(prefix=prefix).exists():
                    ClientKey.objects.create(id=concatenate(prefix, hashed), prefix=prefix, hashed_key=hashed,
                                             name=f"migrated token of {token.user.get_username()}"[:50],
                                             user=token.user, webhook_secret="")  # never shown: none until rotated
                token.delete()
            moved += 1
        self.stdout.write(f"migrated {moved} plain token(s) to hashed API keys")
        if dropped:
            self.stdout.write(f"deleted {len(dropped)} plain token(s) made after hashed keys came in (never "
                              f"accepted; make keys with create_api_key instead), of: {', '.join(sorted(dropped))}")
