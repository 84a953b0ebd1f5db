"""Queue again the webhook attempts whose task was lost (a worker killed mid-attempt); run it on a timer."""

from django.core.management.base import BaseCommand

from renders.webhooks import resume_overdue


class Command(BaseCommand):
    help = "Queue again every pending webhook delivery whose attempt is overdue (its task was lost)."

    def add_arguments(self, parser):
        parser.add_argument("--grace", type=float, default=60, help="seconds past an attempt's time limit "
                                                                    "before an attempt counts as lost (default 60)")

    def handle(self, *args, grace, **options):
        self.stdout.write(f"queued again {resume_overdue(grace)} overdue webhook delivery(ies)")
