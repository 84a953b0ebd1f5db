"""Delete render workspaces left behind by dead workers (cron, and at server start)."""

import json

from django.core.management.base import BaseCommand, CommandError

from renders.lifecycle.sweep import sweep


def human_bytes(count):
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024


class Command(BaseCommand):
    help = "Delete unlocked render workspaces older than the grace age under VIDEOAPI_TEMP_ROOT."

    def add_arguments(self, parser):
        parser.add_argument("--grace", type=float, default=None,
                            help="seconds a workspace must be old (default VIDEOAPI_SWEEP_GRACE)")
        parser.add_argument("--dry-run", action="store_true", help="report what would be deleted, delete nothing")
        parser.add_argument("--json", action="store_true", help="print the report as JSON")

    def handle(self, *args, grace=None, dry_run=False, **options):
        report = sweep(grace=grace, dry_run=dry_run)
        if options["json"]:
            self.stdout.write(json.dumps(report.as_dict(), indent=2))
        else:
            verb = "would delete" if dry_run else "deleted"
            self.stdout.write(
                f"scanned {report.scanned}, {verb} {len(report.deleted)} ({human_bytes(report.bytes_freed)}), "
                f"skipped live {len(report.skipped_live)}, skipped young {len(report.skipped_young)}, "
                f"ignored {len(report.ignored)}, errors {len(report.errors)}"
            )
            for name in report.long_locked:
                self.stderr.write(self.style.WARNING(f"warning: {name} has been locked for a long time"))
            for name, error in report.errors.items():
                self.stderr.write(self.style.ERROR(f"error: {name}: {error}"))
        if report.errors:
            raise CommandError(f"{len(report.errors)} workspace(s) could not be deleted", returncode=1)
