"""The admin with a year of history: seed N RenderLogs, time the render list's pages.

    .venv/bin/python bench/admin.py [--rows 1000000] [--repeat 3]
    DATABASE_URL=postgres://... .venv/bin/python bench/admin.py   # the same on PostgreSQL

Seeds (once; rows are added until there are N) into its own SQLite file
under a temp state dir, or into DATABASE_URL, then times each page as an
operator opens it (the whole request through Django's test client, logged
in as a superuser): the list with its dashboard, every filter, search by
id and by error, a deep page. Prints the median of `--repeat` runs.
"""

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "videoapi.settings")
os.environ.setdefault("VIDEOAPI_STATE_DIR", os.path.join(tempfile.gettempdir(), "videoapi-bench-admin"))
os.environ.setdefault("DJANGO_ALLOWED_HOSTS", "testserver")
os.environ.setdefault("VIDEOAPI_LOG_LEVEL", "WARNING")

import django

django.setup()

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.utils import timezone

from renders.models import RenderLog

ENDPOINTS = ["intro", "trim", "concatenate", "closing", "trim-preview", "demo", "persona"]


def seed(rows):
    have = RenderLog.objects.count()
    if have >= rows:
        return have, 0.0
    started, now, batch = time.monotonic(), timezone.now(), []
    for _ in range(rows - have):
        failed = random.random() < 0.03
        batch.append(RenderLog(
            id=uuid.uuid4(), endpoint=random.choice(ENDPOINTS), status="failed" if failed else "succeeded",
            http_status=500 if failed else 200, host=random.choice(["render-1", "render-2"]),
            received_at=now - timedelta(seconds=random.uniform(0, 365 * 86400)),
            error_code="render_failed" if failed else "",
            error_message=f"FFmpeg failed (exit code {random.choice([1, 234])})" if failed else "",
            cleanup_status="deleted"))
        if len(batch) == 10_000:
            RenderLog.objects.bulk_create(batch)
            batch = []
    RenderLog.objects.bulk_create(batch)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {RenderLog._meta.db_table}")
    return rows, time.monotonic() - started


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    options = parser.parse_args()
    call_command("migrate", verbosity=0)
    total, seconds = seed(options.rows)
    user = get_user_model().objects.filter(username="bench").first() or \
        get_user_model().objects.create_superuser(
            "bench", password="bench-only-0123456789")  # noqa: S106  (a throwaway database's user)
    client = Client()
    client.force_login(user)
    failed = RenderLog.objects.filter(status="failed").first()
    midnight = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    week = {"received_at__gte": str(midnight - timedelta(days=7)),  # what the date filter's "Past 7 days" links
            "received_at__lt": str(midnight + timedelta(days=1))}
    pages = {
        "list (with dashboard)": {}, "filter endpoint": {"endpoint": "demo"},
        "filter status": {"status__exact": "failed"}, "filter host": {"host": "render-2"},
        "filter cleanup": {"cleanup_status__exact": "deleted"}, "filter error code": {"error_code": "render_failed"},
        "filter date (7 days)": week, "search id": {"q": str(failed.id)},
        "search id prefix": {"q": failed.id.hex[:8]}, "search error": {"q": "exit code 234"},
        "page 500": {"p": "500"},
    }
    print(f"{connection.vendor}, {total} RenderLogs" + (f" (seeded in {seconds:.0f} s)" if seconds else ""))
    print(f"{'page':<26} {'ms':>8}")
    print("-" * 36)
    for name, query in pages.items():
        client.get("/admin/renders/renderlog/", query)  # warm
        times = []
        for _ in range(options.repeat):
            started = time.perf_counter()
            response = client.get("/admin/renders/renderlog/", query)
            times.append(time.perf_counter() - started)
            assert response.status_code == 200, (name, response.status_code)
        print(f"{name:<26} {statistics.median(times) * 1000:8.1f}")


if __name__ == "__main__":
    main()
