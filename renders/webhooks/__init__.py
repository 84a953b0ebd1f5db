"""Webhooks: a signed POST to the client's callback URL when its job ends (docs/API.md, "Webhooks").

    notify(log, "render.succeeded", job_json)   # when a job ends: record the delivery, queue its first attempt

The delivery is signed as the Standard Webhooks specification says, with the
API key's webhook secret (else VIDEOAPI_WEBHOOK_SECRET), retried with the
same webhook-id after each delay of VIDEOAPI_WEBHOOK_RETRY_DELAYS, and sent
only to public addresses (`targets`). This package imports nothing of the
service but its models and metrics.
"""

import uuid
from datetime import UTC, datetime

from django.utils import timezone

from renders.models import ClientKey, RenderLog, WebhookDelivery
from renders.webhooks.delivery import deliver_once
from renders.webhooks.targets import MAX_URL_LENGTH, CallbackRefused, validate_callback_url
from renders.webhooks.tasks import enqueue, resume_overdue

EVENTS = ("render.succeeded", "render.failed", "render.cancelled")

__all__ = ["EVENTS", "MAX_URL_LENGTH", "CallbackRefused", "deliver_once", "key_of", "notify", "resume_overdue",
           "send_again", "validate_callback_url"]


def key_of(log: RenderLog) -> ClientKey | None:
    """The API key a render was made with: the one its job names (`client_ref` "key:<prefix>"), else its
    account's key of that name (the newest, should names repeat)."""
    kind, _, prefix = log.client_ref.partition(":")
    if kind == "key":
        return ClientKey.objects.filter(prefix=prefix).first()
    if not log.user_id or not log.api_key:
        return None
    return ClientKey.objects.filter(user_id=log.user_id, name=log.api_key).order_by("-created").first()


def notify(log: RenderLog, event: str, data: dict, *, url: str | None = None,
           key: ClientKey | None = None) -> WebhookDelivery | None:
    """Record a webhook for `log` and queue its first attempt; None when the render asked for no callback.

    `url` defaults to the render's `details["callback_url"]`; `key` (whose
    secret signs) to the key the render was made with (`key_of`).
    """
    if event not in EVENTS:
        raise ValueError(f"unknown webhook event {event!r}: one of {', '.join(EVENTS)}")
    url = url or (log.details or {}).get("callback_url")
    if not url:
        return None
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    delivery = WebhookDelivery.objects.create(
        render=log, webhook_id=f"msg_{uuid.uuid4().hex}", event=event, url=url,
        payload={"type": event, "timestamp": now, "data": data}, client_key=key or key_of(log),
        next_attempt_at=timezone.now())
    enqueue(delivery)
    return delivery


def send_again(delivery: WebhookDelivery) -> WebhookDelivery:
    """A new delivery of the same message (same webhook-id, same body), with a fresh round of retries.

    Standard Webhooks says a message sent again keeps its webhook-id, so a
    receiver that already handled it recognises it.
    """
    again = WebhookDelivery.objects.create(
        render_id=delivery.render_id, webhook_id=delivery.webhook_id, event=delivery.event, url=delivery.url,
        payload=delivery.payload, client_key_id=delivery.client_key_id, next_attempt_at=timezone.now())
    enqueue(again)
    return again
