"""`Authorization: Token <key>` against hashed client keys (djangorestframework-api-key).

Keys are stored as SHA-512 hashes of high-entropy random keys, found by
their public prefix; a key's last use is recorded (at most once a minute).
Plain DRF authtoken keys from before still work through
`LegacyTokenAuthentication` until `manage.py migrate_authtokens` turns
them into hashed keys (the same secret, so clients need no change). Only
those: a plain token made after hashed keys came in (the time the
migration that made them was applied), by the shell, DRF's
`drf_create_token` or any other path, is refused.
"""

from datetime import timedelta

from django.conf import settings
from django.db.migrations.recorder import MigrationRecorder
from django.utils import timezone
from rest_framework import authentication, exceptions, permissions

from renders.models import ClientKey

LAST_USE_EVERY = timedelta(minutes=1)

# The service's one auth decision is VIDEOAPI_AUTH, read per request (so one setting switches every
# endpoint): `token` asks every API request for a key, `none` opens the API (trusted networks) and
# ignores any Authorization header. REST_FRAMEWORK's defaults name the classes below, and no view
# overrides them.


def keys_required() -> bool:
    return settings.VIDEOAPI_AUTH == "token"


class ServiceAccess(permissions.BasePermission):
    """An authenticated key when VIDEOAPI_AUTH is `token`; anyone when it is `none`."""

    def has_permission(self, request, view):
        return not keys_required() or bool(request.user and request.user.is_authenticated)


class ClientKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Token"

    def authenticate(self, request):
        if not keys_required():
            return None
        parts = authentication.get_authorization_header(request).split()
        if not parts or parts[0].lower() != self.keyword.lower().encode():
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed("malformed Authorization header: use 'Token <key>'")
        try:
            key = parts[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("invalid key") from None
        try:
            client_key = ClientKey.objects.get_from_key(key)
        except ClientKey.DoesNotExist:
            return None  # maybe a legacy token; the last authenticator refuses it otherwise
        if client_key.has_expired:
            raise exceptions.AuthenticationFailed("this key has expired")
        if not client_key.user.is_active:
            raise exceptions.AuthenticationFailed("the key's account is disabled")
        now = timezone.now()
        if client_key.last_used_at is None or now - client_key.last_used_at > LAST_USE_EVERY:
            ClientKey.objects.filter(pk=client_key.pk).update(last_used_at=now)
        return client_key.user, client_key

    def authenticate_header(self, request):
        return f'{self.keyword} realm="api"'


HASHED_KEYS_MIGRATION = ("renders", "0003_client_keys")


_since = None


def hashed_keys_since():
    """When this database got hashed keys (None: not recorded). Plain tokens made later are never valid."""
    global _since
    if _since is None:  # it never changes once recorded
        app, name = HASHED_KEYS_MIGRATION
        _since = (MigrationRecorder.Migration.objects.filter(app=app, name=name)
                  .values_list("applied", flat=True).first())
    return _since


def is_legacy(token) -> bool:
    """A plain token from before hashed keys: the only kind still accepted (until migrated)."""
    since = hashed_keys_since()
    return since is not None and token.created < since


class LegacyTokenAuthentication(authentication.TokenAuthentication):
    """Plain authtoken keys made before hashed keys, until they are migrated; none made since."""

    def authenticate(self, request):
        return super().authenticate(request) if keys_required() else None

    def authenticate_credentials(self, key):
        user, token = super().authenticate_credentials(key)  # unknown key, disabled user: 401
        if not is_legacy(token):
            raise exceptions.AuthenticationFailed(
                "plain tokens made since hashed API keys are not accepted: make a key in the admin "
                "(API keys) or with manage.py create_api_key")
        return user, token
