"""The render list's queries stay index-friendly: no DISTINCT over the table, id search by range."""

import re
import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from renders.models import RenderLog

pytestmark = pytest.mark.django_db


def make(n=30):
    rows = [RenderLog(id=uuid.uuid4(), endpoint="trim", status="failed" if i % 3 == 0 else "succeeded",
                      error_code="render_failed" if i % 3 == 0 else "",
                      error_message="FFmpeg failed (exit code 1)" if i % 3 == 0 else "", cleanup_status="deleted")
            for i in range(n)]
    RenderLog.objects.bulk_create(rows)
    return rows


def test_list_and_filters_run_no_distinct_over_the_table(admin_client):
    make()
    from django.core.cache import cache

    cache.set("renders:admin:hosts", ["render-1"], 60)  # the host list: cached, from recent rows
    for query in ("", "?endpoint=trim", "?status__exact=failed", "?error_code=render_failed", "?host=render-1",
                  "?cleanup_status__exact=deleted", "?is_job=1", "?p=1"):
        with CaptureQueriesContext(connection) as queries:
            assert admin_client.get("/admin/renders/renderlog/" + query).status_code == 200
        sql = " ".join(q["sql"] for q in queries.captured_queries if "renders_renderlog" in q["sql"])
        assert "DISTINCT" not in sql, query  # neither filter choices nor a date hierarchy scan the table


def test_search_by_id_prefix_and_by_error(admin_client):
    rows = make()
    target = rows[4]
    for term in (str(target.id), target.id.hex[:8], str(target.id)[:13]):
        page = admin_client.get("/admin/renders/renderlog/", {"q": term}).content.decode()
        assert f'value="{target.id}"' in page, term
    page = admin_client.get("/admin/renders/renderlog/", {"q": "exit code 1"}).content.decode()
    failed = [r for r in rows if r.status == "failed"]
    assert all(f'value="{r.id}"' in page for r in failed)
    assert not any(f'value="{r.id}"' in page for r in rows if r.status != "failed")


def test_count_is_estimated_or_capped(monkeypatch):
    from renders import admin as render_admin

    make(12)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:  # fresh statistics, as autovacuum keeps them on a live table
            cursor.execute(f"ANALYZE {RenderLog._meta.db_table}")
    monkeypatch.setattr(render_admin, "COUNT_CAP", 5)
    assert render_admin.CappedCountPaginator(RenderLog.objects.filter(endpoint="trim"), 50).count == 5
    assert render_admin.CappedCountPaginator(RenderLog.objects.all(), 50).count >= 12  # the table estimate


COUNTED = re.compile(r"\bCOUNT\(", re.IGNORECASE)
CAPPED = re.compile(r"^SELECT COUNT\(\*\) FROM \(SELECT .* LIMIT (\d+)\) subquery$", re.IGNORECASE | re.DOTALL)
# the dashboard's totals: one pass over the last 24 hours (the received_at index)
DAY = re.compile(r'^SELECT COUNT\("renders_renderlog"\."id"\) AS "renders", .* FROM "renders_renderlog" '
                 r'WHERE "renders_renderlog"\."received_at" >= \'[^\']+\'(::timestamptz)?$', re.IGNORECASE | re.DOTALL)


def counts(url, admin_client):
    with CaptureQueriesContext(connection) as queries:
        page = admin_client.get(url)
    assert page.status_code == 200, url
    return [q["sql"] for q in queries.captured_queries if "renders_renderlog" in q["sql"] and COUNTED.search(q["sql"])]


def test_no_list_counts_every_row(admin_client):
    """A list that matches a million rows still counts at most COUNT_CAP of them (the whole table: an estimate).

    Django's paginator counts every matching row, and its "N total" beside a filtered
    count every row of the table: with either back, a query below is neither capped nor
    one of the dashboard's, which count the last 24 hours only.
    """
    from django.core.cache import cache

    from renders import admin as render_admin

    make()
    cache.set("renders:admin:hosts", ["render-1"], 60)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:  # statistics, as autovacuum keeps them: the estimate's source
            cursor.execute(f"ANALYZE {RenderLog._meta.db_table}")
    capped_lists = 0
    for query in ("", "?p=1", "?endpoint=trim", "?status__exact=failed", "?error_code=render_failed",
                  "?host=render-1", "?cleanup_status__exact=deleted", "?is_job=1", "?q=exit+code", "?q=abcd",
                  "?status__exact=failed&q=FFmpeg", "?received_at__gte=2020-01-01+00%3A00%3A00%2B00%3A00"):
        for sql in counts("/admin/renders/renderlog/" + query, admin_client):
            capped = CAPPED.match(sql)
            assert capped or DAY.match(sql), f"{query or 'unfiltered'}: unbounded count: {sql}"
            if capped:
                assert int(capped[1]) <= render_admin.COUNT_CAP, sql
                capped_lists += "cleanup_status\" = 'failed'" not in sql  # not the dashboard's own
    assert capped_lists == 10  # each filtered or searched list counted its rows, capped; the unfiltered two did not


def test_job_gauges_read_index_ranges_only():
    """The dashboard's and /metrics' job figures: the queued and running jobs (the status index) and the jobs
    received lately (the received_at index), never a scan of the table."""
    from renders.health import job_stats

    make()
    with CaptureQueriesContext(connection) as queries:
        job_stats()
    sqls = [q["sql"] for q in queries.captured_queries]
    assert len(sqls) == 2 and not any(COUNTED.search(sql) or "DISTINCT" in sql for sql in sqls)
    if connection.vendor == "sqlite":  # PostgreSQL's planner rightly scans a 30-row table
        for sql in sqls:
            with connection.cursor() as cursor:
                cursor.execute("EXPLAIN QUERY PLAN " + sql)
                plan = " | ".join(row[-1] for row in cursor.fetchall())
            assert plan.startswith("SEARCH renders_renderlog USING INDEX") and "SCAN" not in plan, plan
