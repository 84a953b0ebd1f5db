"""Per-client rate limit for the render endpoints (VIDEOAPI_THROTTLE_RATE)."""

from django.conf import settings
from rest_framework.throttling import SimpleRateThrottle


class RenderRateThrottle(SimpleRateThrottle):
    """One budget per user (per address when the API is open), shared by all
    render endpoints and, through the file cache, by all workers on the host."""

    scope = "render"

    def get_rate(self):
        return settings.VIDEOAPI_THROTTLE_RATE

    def get_cache_key(self, request, view):
        user = getattr(request, "user", None)
        ident = f"user-{user.pk}" if getattr(user, "is_authenticated", False) else self.get_ident(request)
        return self.cache_format % {"scope": self.scope, "ident": ident}
