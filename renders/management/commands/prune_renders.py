"""Delete RenderLog rows older than a given age (retention), and the task framework's finished rows with them."""

import re
from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from renders.lifecycle import taskqueue
from renders.models import RenderLog

UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_age(text: str) -> timedelta:
    match = re.fullmatch(r"\s*(\d+)\s*([smhdw])\s*", text or "")
    if not match:
        raise ValueError("use a number and a unit, e.g. 30d, 12h, 2w")
    return timedelta(**{UNITS[match[2]]: int(match[1])})


class Command(BaseCommand):
    help = "Delete RenderLog rows received longer ago than --older-than (e.g. 30d)."

    def add_arguments(self, parser):
        parser.add_argument("--older-than", required=True, help="age such as 30d, 12h, 2w")
        parser.add_argument("--dry-run", action="store_true")

    def handle(self, *args, older_than, dry_run, **options):
        try:
            age = parse_age(older_than)
        except ValueError as exc:
            raise CommandError(f"--older-than: {exc}") from None
        # rows whose workspace may still exist are kept until a sweep settles them
        old = RenderLog.objects.filter(received_at__lt=timezone.now() - age).exclude(
            cleanup_status__in=[RenderLog.Cleanup.PENDING, RenderLog.Cleanup.FAILED])
        count = old.count()
        before = timezone.now() - age
        task_rows = taskqueue.finished_before(before).count()
        if not dry_run:
            old.delete()
            taskqueue.finished_before(before).delete()
        verb = "would delete" if dry_run else "deleted"
        self.stdout.write(f"{verb} {count} render log row(s) older than {older_than}, and {task_rows} finished "
                          "task row(s)")
