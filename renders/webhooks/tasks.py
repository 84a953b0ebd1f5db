"""Webhook attempts on the task framework (django-tasks, queue "webhooks").

Each attempt is one task: it runs `deliver_once` and, when a retry is due,
enqueues the next attempt to run after the delay. Every render_worker
claims these tasks for threads of its own (VIDEOAPI_WEBHOOK_WORKERS, outside
the render slots), and an attempt never outlasts VIDEOAPI_WEBHOOK_TIMEOUT, so
a slow or dead receiver holds one thread for at most that long per attempt
while the others deliver. Renders never wait for a webhook. An attempt is
taken with a conditional UPDATE (delivery.deliver_once), so a resumed task
and a late one never both send it.
"""

from datetime import timedelta

from django.conf import settings
from django.utils import timezone
from django_tasks import task

from renders.models import WebhookDelivery
from renders.webhooks.delivery import RETRY, deliver_once

QUEUE = "webhooks"


@task(queue_name=QUEUE)
def deliver_webhook(delivery_id: str) -> str:
    delivery = WebhookDelivery.objects.select_related("client_key").filter(pk=delivery_id).first()
    if delivery is None:  # its render was deleted meanwhile
        return "missing"
    outcome = deliver_once(delivery)
    if outcome == RETRY:
        deliver_webhook.using(run_after=delivery.next_attempt_at).enqueue(delivery_id)
    return outcome


def enqueue(delivery: WebhookDelivery):
    """Queue the delivery's next attempt now."""
    deliver_webhook.enqueue(str(delivery.pk))


def resume_overdue(grace: float = 60) -> int:
    """Queue again every pending delivery whose attempt is overdue by more than an attempt's time and `grace`.

    Its task was lost (a worker killed mid-attempt leaves its task running
    for ever). Should the task only be late (workers far behind), the
    second one finds the attempt made and not due again, and does nothing.
    """
    cutoff = timezone.now() - timedelta(seconds=settings.VIDEOAPI_WEBHOOK_TIMEOUT + grace)
    overdue = list(WebhookDelivery.objects.filter(status=WebhookDelivery.Status.PENDING, next_attempt_at__lt=cutoff))
    for delivery in overdue:
        enqueue(delivery)
    return len(overdue)
