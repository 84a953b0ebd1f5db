"""A render request's job side: who owns it, `Prefer: respond-async`, its Idempotency-Key, and the 202 answer.

Read from the headers before the body, so a repeated Idempotency-Key is
answered with the first request's job before anything is uploaded. (A
`callback_url` in the form asks for a job too.)
"""

from rest_framework.response import Response

from renders.errors import invalid
from renders.lifecycle import jobs
from renders.models import ClientKey, RenderLog
from renders.representation import job_json

MAX_IDEMPOTENCY_KEY = 255


def owner_of(request) -> str:
    """Who owns a job: the API key (a client), else the account, else everyone (auth off)."""
    auth = getattr(request, "auth", None)
    if isinstance(auth, ClientKey):
        return f"key:{auth.prefix}"  # the key's public, unique prefix
    user = getattr(request, "user", None)
    if getattr(user, "is_authenticated", False):
        return f"user:{user.pk}"
    return "anonymous"


def prefers_async(request) -> bool:
    """`Prefer: respond-async` (RFC 7240: a comma-separated list of preferences, each with optional parameters)."""
    for header in request.META.get("HTTP_PREFER", "").split(","):
        if header.split(";")[0].strip().lower() == "respond-async":
            return True
    return False


class JobRequest:
    """What a render request's headers say about running it as a job."""

    def __init__(self, request):
        self.owner = owner_of(request)
        self.prefer_async = prefers_async(request)
        key = request.META.get("HTTP_IDEMPOTENCY_KEY", "").strip()
        if len(key) > MAX_IDEMPOTENCY_KEY or not (key.isascii() and key.isprintable()):
            # HTTP carries header values as bytes that servers read as Latin-1: only ASCII means the same
            # thing to every client and proxy, so only ASCII is taken (a UTF-8 key would be stored garbled)
            raise invalid("Idempotency-Key", f"must be at most {MAX_IDEMPOTENCY_KEY} visible ASCII characters "
                                             "(letters, digits, punctuation, spaces)")
        self.idempotency_key = key

    def earlier_job(self) -> RenderLog | None:
        """The job this client already submitted with this Idempotency-Key (within 24 hours)."""
        return jobs.earlier_job(self.owner, self.idempotency_key)

    def wanted(self, callback_url: str | None) -> bool:
        return self.prefer_async or bool(callback_url)


def accepted(log: RenderLog, request) -> Response:
    """202: the job, where to poll it, and that the preference was applied."""
    return Response(job_json(log, request), status=202, headers={
        "Location": f"/api/jobs/{log.id}", "Preference-Applied": "respond-async", "X-Render-Id": str(log.id),
        "Cache-Control": "no-store"})
