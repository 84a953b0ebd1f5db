"""One attempt to deliver a webhook, and what follows from its answer.

An attempt resolves the callback's host and checks every address
(`targets`), connects to the checked address itself (`pinned`: the Host
header, TLS server name and certificate check use the URL's host name), POSTs the body
signed per Standard Webhooks, never follows a redirect and reads at most
MAX_RESPONSE_BYTES of the answer. The whole attempt, TLS handshake and a
receiver that trickles its answer byte by byte included, ends at
VIDEOAPI_WEBHOOK_TIMEOUT: a watchdog shuts the socket down at the deadline.
"""

import json
import logging
import socket
import time
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from renders import metrics
from renders.models import WebhookDelivery, storable
from renders.webhooks.pinned import Deadline, send
from renders.webhooks.targets import CallbackRefused, Target, parse

logger = logging.getLogger("renders.webhooks")

MAX_RESPONSE_BYTES = 64 * 1024
USER_AGENT = "videoapi-webhooks/1"
RETRY = "retry"  # deliver_once's outcome when another attempt is due at next_attempt_at
NOT_DUE = "not_due"  # a second task for an attempt that is not due yet (resume_overdue): nothing done


class AttemptFailed(Exception):
    """The attempt got no HTTP answer (refused, timed out, reset, bad TLS); the message says which."""


def post(target: Target, body: bytes, headers: dict, timeout: float) -> int:
    """POST `body` to the target's checked addresses; the answer's status code, or AttemptFailed.

    One resolution, every address checked (CallbackRefused otherwise); the
    addresses are tried in its order while one refuses the connection or
    has no route (an AAAA record on a host without IPv6), never another.
    """
    deadline = Deadline(timeout)
    addresses = target.addresses(deadline.remaining())
    try:
        with deadline:
            connection, response = send(target, addresses, "POST", deadline, headers=headers, body=body)
            try:
                response.read(MAX_RESPONSE_BYTES)  # a redirect is an answer like any other: never followed
                if deadline.expired:  # what was parsed was cut short by the watchdog (a status line, no headers)
                    raise TimeoutError
                return response.status
            finally:
                connection.close()
    except Exception as exc:  # noqa: BLE001  (whatever ended the attempt is its recorded failure, not the task's)
        if deadline.expired or isinstance(exc, (TimeoutError, socket.timeout)):
            raise AttemptFailed(f"timed out after {timeout:g} s") from None
        raise AttemptFailed(storable(f"{type(exc).__name__}: {exc}"[:300])) from None


def secret_for(delivery: WebhookDelivery) -> str:
    """The key's webhook secret, else the operator's VIDEOAPI_WEBHOOK_SECRET ("" when neither is set)."""
    key = delivery.client_key
    return (key.webhook_secret if key is not None else "") or settings.VIDEOAPI_WEBHOOK_SECRET


def body_of(delivery: WebhookDelivery) -> str:
    """The body as sent: the same bytes at every attempt (keys sorted, whatever order the database keeps)."""
    return json.dumps(delivery.payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def signed_headers(secret: str, webhook_id: str, body: str, now: datetime) -> dict:
    """The Standard Webhooks headers for one attempt (a fresh timestamp each time, the same webhook-id)."""
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(webhook_id, now, body),
    }


ATTEMPT_GRACE = 30  # seconds past an attempt's deadline before a taken attempt counts as lost


def deliver_once(delivery: WebhookDelivery) -> str:
    """Make one attempt, record it on the delivery and return what follows.

    2xx: `succeeded`; 410: `gone` (never again); anything else (another
    status, a redirect, a timeout, a refused address, no connection):
    `retry` after the next delay of VIDEOAPI_WEBHOOK_RETRY_DELAYS, or
    `failed` once the delays are used up. A delivery no longer pending is
    left alone (its status is returned), and so is one whose next attempt
    is not due yet (NOT_DUE).
    """
    if delivery.status != WebhookDelivery.Status.PENDING:
        return delivery.status
    if delivery.next_attempt_at and delivery.next_attempt_at > timezone.now() + timedelta(seconds=1):
        return NOT_DUE
    # Take this attempt: of two tasks for it (a resumed one and a late one), only one gets here. Until the
    # attempt is recorded its next attempt reads "after the attempt's deadline", so nothing resumes it early.
    taken = timezone.now() + timedelta(seconds=settings.VIDEOAPI_WEBHOOK_TIMEOUT + ATTEMPT_GRACE)
    if not WebhookDelivery.objects.filter(pk=delivery.pk, status=WebhookDelivery.Status.PENDING,
                                          next_attempt_at=delivery.next_attempt_at).update(next_attempt_at=taken):
        return NOT_DUE
    delivery.refresh_from_db(fields=["attempts"])
    now = datetime.now(UTC)
    started = time.monotonic()
    attempt = {"at": now.isoformat().replace("+00:00", "Z")}
    final = None
    secret = secret_for(delivery)
    if not secret:
        attempt["error"] = "no webhook secret: the API key has none and VIDEOAPI_WEBHOOK_SECRET is not set"
        final = WebhookDelivery.Status.FAILED
    else:
        body = body_of(delivery)
        try:
            headers = signed_headers(secret, delivery.webhook_id, body, now)
            code = post(parse(delivery.url), body.encode(), headers, settings.VIDEOAPI_WEBHOOK_TIMEOUT)
        except CallbackRefused as exc:
            attempt["error"] = f"refused: {exc.messages[0]}"
        except AttemptFailed as exc:
            attempt["error"] = str(exc)
        else:
            attempt["status_code"] = code
            if 200 <= code < 300:
                final = WebhookDelivery.Status.SUCCEEDED
            elif code == 410:
                final = WebhookDelivery.Status.GONE
    attempt["seconds"] = round(time.monotonic() - started, 3)
    attempts = [*delivery.attempts, attempt]
    delays = settings.VIDEOAPI_WEBHOOK_RETRY_DELAYS
    retries_made = len(attempts) - 1
    if final is None and retries_made >= len(delays):
        final = WebhookDelivery.Status.FAILED
    next_attempt_at = None if final else timezone.now() + timedelta(seconds=delays[retries_made])
    fields = {"attempts": attempts, "status": final or WebhookDelivery.Status.PENDING,
              "next_attempt_at": next_attempt_at}
    for name, value in fields.items():
        setattr(delivery, name, value)
    WebhookDelivery.objects.filter(pk=delivery.pk).update(**fields)
    if final:
        metrics.webhook_delivered(final, len(attempts))
        log = logger.info if final == WebhookDelivery.Status.SUCCEEDED else logger.warning
        log("webhook %s %s for render %s: %s after %d attempt(s)", delivery.webhook_id, delivery.event,
            delivery.render_id, final, len(attempts))
    return final or RETRY
