"""The operator's view of renders: what ran, what failed, what was cleaned."""

import json
import os
import re
import shlex
import uuid
from datetime import timedelta

from django.conf import settings
from django.contrib import admin, messages
from django.core.cache import cache
from django.core.paginator import Paginator
from django.db import connection
from django.db.models import Count, Q
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.html import format_html

from renders import webhooks
from renders.errors import ERROR_CODES
from renders.health import job_stats
from renders.lifecycle import (
    jobs,
    sweep,
    uploads_store,  # noqa: F401  (its post_delete receiver: deleting a row deletes its file)
)
from renders.lifecycle.workspace import CleanupError, temp_root
from renders.models import ComposeTemplate, RenderLog, Upload, WebhookDelivery


def dashboard():
    """What an operator wants at a glance: today's renders, failures, cleanups, leftovers."""
    since = timezone.now() - timedelta(hours=24)
    recent = RenderLog.objects.filter(received_at__gte=since)
    # one pass over the day's rows (the received_at index): totals and cleanup outcomes together
    counts = recent.aggregate(
        renders=Count("id"),
        succeeded=Count("id", filter=Q(status=RenderLog.Status.SUCCEEDED)),
        rejected=Count("id", filter=Q(status=RenderLog.Status.REJECTED)),
        failed=Count("id", filter=Q(status__in=[RenderLog.Status.FAILED, RenderLog.Status.TIMEOUT])),
        **{f"cleanup_{c}": Count("id", filter=Q(cleanup_status=c)) for c in RenderLog.Cleanup.values},
    )
    totals = {k: v for k, v in counts.items() if not k.startswith("cleanup_")}
    cleanups = {k.removeprefix("cleanup_"): v for k, v in counts.items() if k.startswith("cleanup_") and v}
    return {"totals": totals, "cleanups": cleanups, "leftovers": sweep.leftovers(), "host": settings.VIDEOAPI_HOST_ID,
            "failed_cleanups": capped_count(RenderLog.objects.filter(cleanup_status=RenderLog.Cleanup.FAILED)),
            "jobs": job_stats()}


def capped_count(queryset) -> str:
    """How many rows, counted up to COUNT_CAP ("50000+" past it, "" for none): never a count over every row."""
    n = queryset.order_by()[:COUNT_CAP].count()
    return "" if not n else f"{n}+" if n >= COUNT_CAP else str(n)


# ---- a list that stays fast with a year of renders ---------------------------------------------
#
# No filter runs a DISTINCT over the table (their choices are known or come from
# recent rows, cached), no date hierarchy (its month list is a DISTINCT over every
# row: the date filter's ranges use the received_at index instead), the page count
# is estimated or capped, and search goes by id range or over failed rows only.

COUNT_CAP = 50_000
UUID_HEX = re.compile(r"^[0-9a-f]{4,32}$")


class CappedCountPaginator(Paginator):
    """Counts up to COUNT_CAP rows (an estimate from the database's statistics for the whole table)."""

    @cached_property
    def count(self):
        queryset = self.object_list
        if not queryset.query.where:
            estimate = table_estimate(queryset.model)
            # no statistics yet (a new PostgreSQL table before ANALYZE): count it
            return estimate if estimate is not None else queryset.count()
        return queryset.order_by()[:COUNT_CAP].count()


def table_estimate(model):
    table = model._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE relname = %s", [table])
            row = cursor.fetchone()
            return int(row[0]) if row and row[0] and row[0] > 0 else None
        if connection.vendor == "sqlite":
            cursor.execute(f'SELECT max(rowid) - min(rowid) + 1 FROM "{table}"')  # noqa: S608  (the model's own table)
            row = cursor.fetchone()
            return int(row[0]) if row and row[0] else 0
    return None


class ValuesFilter(admin.SimpleListFilter):
    """A filter whose choices are known without scanning the table."""

    def lookups(self, request, model_admin):
        return [(value, value) for value in self.values()]

    def queryset(self, request, queryset):
        return queryset.filter(**{self.parameter_name: self.value()}) if self.value() is not None else queryset


class EndpointFilter(ValuesFilter):
    title, parameter_name = "endpoint", "endpoint"

    def values(self):
        from renders.api.views import RENDER_VIEWS

        return [view.endpoint for view in RENDER_VIEWS] + ["compose", "template-render"]


class ErrorCodeFilter(ValuesFilter):
    title, parameter_name = "error code", "error_code"

    def values(self):
        return ERROR_CODES


class HostFilter(ValuesFilter):
    title, parameter_name = "host", "host"

    def values(self):
        def recent():
            since = timezone.now() - timedelta(days=30)
            hosts = set(RenderLog.objects.filter(received_at__gte=since).order_by().values_list("host", flat=True)
                        .distinct())
            return sorted(hosts | {settings.VIDEOAPI_HOST_ID})
        return cache.get_or_set("renders:admin:hosts", recent, 60)


def attempts_table(delivery):
    """Every attempt of a delivery, one line each: when, the answer or the error, how long."""
    lines = [f"{a.get('at', '?')}  {a.get('status_code') or a.get('error', '?')}  ({a.get('seconds', 0):.2f} s)"
             for a in delivery.attempts or []]
    return format_html('<pre style="white-space: pre-wrap">{}</pre>', "\n".join(lines) or "-")


class WebhookDeliveryInline(admin.TabularInline):
    """A render's webhooks (read-only); "send again" is an action of the webhook deliveries' list."""

    model = WebhookDelivery
    fields = ("created_at", "event", "status", "webhook_id", "url", "attempt_log", "next_attempt_at")
    readonly_fields = fields
    extra = max_num = 0
    can_delete = False
    show_change_link = True

    @admin.display(description="attempts")
    def attempt_log(self, obj):
        return attempts_table(obj)

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    list_display = ("created_at", "event", "status", "attempt_count", "next_attempt_at", "url", "webhook_id",
                    "render")
    list_filter = ("status", "event")
    search_fields = ("webhook_id", "url")
    list_select_related = ("render",)
    fields = ("webhook_id", "event", "status", "url", "render", "client_key", "created_at", "next_attempt_at",
              "attempt_log", "payload")
    readonly_fields = fields
    actions = ["send_again"]

    @admin.display(description="attempts")
    def attempt_count(self, obj):
        return len(obj.attempts or [])

    @admin.display(description="attempts")
    def attempt_log(self, obj):
        return attempts_table(obj)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.action(description="Send again (same webhook-id and body, a fresh round of retries)")
    def send_again(self, request, queryset):
        pending = queryset.filter(status=WebhookDelivery.Status.PENDING).count()
        sent = [webhooks.send_again(delivery) for delivery in queryset.exclude(status=WebhookDelivery.Status.PENDING)]
        note = f", skipped {pending} still being delivered" if pending else ""
        self.message_user(request, f"sent again {len(sent)}{note}", messages.SUCCESS)


class KindFilter(admin.SimpleListFilter):
    title, parameter_name = "kind", "is_job"

    def lookups(self, request, model_admin):
        return [("1", "jobs (Prefer: respond-async)"), ("0", "rendered in their request")]

    def queryset(self, request, queryset):
        return queryset.filter(is_job=self.value() == "1") if self.value() in ("0", "1") else queryset


@admin.register(RenderLog)
class RenderLogAdmin(admin.ModelAdmin):
    # what the service is about first: the cleanup status is in sight at 1400 px, beside the filters
    list_display = ("received_at", "endpoint", "status", "cleanup_status", "job_progress", "job_eta", "http_status",
                    "error_code", "render_time", "output_size", "host", "user", "short_id")
    # "status" lists the model's choices (queued, cancelled, expired included), never a DISTINCT
    list_filter = (EndpointFilter, "status", KindFilter, HostFilter, "cleanup_status",
                   ErrorCodeFilter, ("received_at", admin.DateFieldListFilter))
    search_fields = ("id", "error_message")  # see get_search_results
    search_help_text = "A render id (or its first characters), or words of an error message."
    list_per_page = 50
    show_full_result_count = False
    paginator = CappedCountPaginator
    change_list_template = "admin/renders/renderlog/change_list.html"
    actions = ["retry_cleanup", "cancel_jobs"]
    inlines = [WebhookDeliveryInline]

    def get_search_results(self, request, queryset, search_term):
        """An id, or its start, by index range; otherwise words of the errors of failed renders only."""
        term = search_term.strip().lower().replace("-", "")
        if not term:
            return queryset, False
        if UUID_HEX.match(term):
            if len(term) == 32:
                return queryset.filter(id=uuid.UUID(term)), False
            low, high = uuid.UUID(term.ljust(32, "0")), uuid.UUID(term.ljust(32, "f"))
            by_id = queryset.filter(id__gte=low, id__lte=high)
            if by_id.exists():
                return by_id, False
        words = search_term.strip()
        failed = queryset.filter(error_code__gt="")  # errors exist on failed and refused renders only
        return failed.filter(Q(error_code=words) | Q(error_message__icontains=words)
                             | Q(cleanup_error__icontains=words)), False

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "dashboard": dashboard()}
        return super().changelist_view(request, extra_context=extra_context)

    @admin.action(description="Retry cleanup of the selected renders' workspaces")
    def retry_cleanup(self, request, queryset):
        done, live, failed = 0, 0, 0
        pending = queryset.exclude(cleanup_status__in=[RenderLog.Cleanup.DELETED, RenderLog.Cleanup.SWEPT])
        # A workspace lives on the host that rendered it: this host retries its own only.
        elsewhere = pending.exclude(host=settings.VIDEOAPI_HOST_ID).count()
        for log in pending.filter(host=settings.VIDEOAPI_HOST_ID):
            try:
                if not sweep.remove(temp_root() / os.path.basename(log.workspace or "")):
                    live += 1
                    continue
            except (CleanupError, OSError) as exc:
                log.record(cleanup_error=str(exc)[:2000], cleanup_at=timezone.now())
                failed += 1
            else:
                log.record(cleanup_status=RenderLog.Cleanup.DELETED, cleanup_at=timezone.now(), cleanup_error="")
                done += 1
        level = messages.ERROR if failed else messages.SUCCESS
        note = f", {elsewhere} on other hosts (retry from their admin or run sweep_temp there)" if elsewhere else ""
        self.message_user(request, f"cleaned {done}, still in use {live}, failed again {failed}{note}", level)

    @admin.action(description="Cancel selected jobs")
    def cancel_jobs(self, request, queryset):
        """As the client's DELETE: a queued job never runs, a running one is stopped, a result is deleted
        (on another host, by that host's worker within a second)."""
        cancelled, unchanged = 0, 0
        for log in queryset.filter(is_job=True).exclude(status=RenderLog.Status.CANCELLED):
            jobs.cancel(log)
            if log.status == RenderLog.Status.CANCELLED:
                cancelled += 1
            else:
                unchanged += 1
        others = queryset.filter(is_job=False).count()
        note = f", {unchanged} already over (failed, expired or downloaded)" if unchanged else ""
        note += f", {others} not jobs (a render in its request cannot be cancelled)" if others else ""
        self.message_user(request, f"cancelled {cancelled} job(s){note}",
                          messages.SUCCESS if cancelled else messages.WARNING)

    fieldsets = (
        (None, {"fields": ("id", "endpoint", "status", "http_status", "host", "user", "api_key", "client_address")}),
        ("Error", {"fields": ("error_code", "error_message")}),
        ("Request", {"fields": ("params_pretty", "inputs_pretty", "output_size", "details_pretty")}),
        ("Timings", {"fields": ("received_at", "render_started_at", "render_finished_at", "render_time",
                                "response_closed_at")}),
        ("FFmpeg", {"fields": ("ffmpeg_command", "ffmpeg_exit_code", "ffmpeg_stderr_pretty")}),
        ("Cleanup", {"fields": ("workspace", "cleanup_status", "cleanup_at", "cleanup_error")}),
        ("Job", {"fields": ("is_job", "queued_at", "worker_id", "lease_expires_at", "job_progress", "job_eta",
                            "result_pretty", "result_expires_at", "result_delivered", "result_downloaded_at",
                            "delivery_shown",
                            "task_id", "client_ref", "idempotency_key")}),
    )

    def get_readonly_fields(self, request, obj=None):
        return [f for fields in (fs[1]["fields"] for fs in self.fieldsets) for f in fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser

    @admin.display(description="id")
    def short_id(self, obj):
        return str(obj.id)[:8]

    @admin.display(description="render time (s)")
    def render_time(self, obj):
        seconds = obj.render_seconds
        return f"{seconds:.2f}" if seconds is not None else "-"

    @admin.display(description="progress")
    def job_progress(self, obj):
        if not obj.is_job or obj.progress is None:
            return "-"
        percent = round(obj.progress * 100)
        return format_html('<span style="white-space: nowrap"><progress max="100" value="{}" style="width: 5em">'
                           '</progress> {} %</span>', percent, percent)

    @admin.display(description="ETA")
    def job_eta(self, obj):
        if obj.status != RenderLog.Status.RENDERING or obj.eta_seconds is None:
            return "-"
        return str(timedelta(seconds=round(obj.eta_seconds)))

    @admin.display(description="result")
    def result_pretty(self, obj):
        return self._pre(json.dumps(obj.result, indent=2, ensure_ascii=False)) if obj.result else "-"

    @admin.display(description="output_url")
    def delivery_shown(self, obj):
        """Where the result is PUT: the URL without its query (a presigned signature), the headers' names alone
        (their values may be credentials)."""
        if not obj.delivery:
            return "-"
        url = str(obj.delivery.get("url", ""))
        base, _, query = url.partition("?")
        shown = {"url": base.split("#", 1)[0] + (f"?… ({len(query)} characters)" if query else ""),
                 "header names": sorted(obj.delivery.get("headers") or {})}
        return self._pre(json.dumps(shown, indent=2, ensure_ascii=False))

    @staticmethod
    def _pre(text):
        return format_html('<pre style="white-space: pre-wrap; max-height: 30em; overflow: auto">{}</pre>', text)

    @admin.display(description="parameters")
    def params_pretty(self, obj):
        return self._pre(json.dumps(obj.params, indent=2, ensure_ascii=False))

    @admin.display(description="inputs")
    def inputs_pretty(self, obj):
        return self._pre(json.dumps(obj.inputs, indent=2, ensure_ascii=False))

    @admin.display(description="details")
    def details_pretty(self, obj):
        return self._pre(json.dumps(obj.details, indent=2, ensure_ascii=False))

    @admin.display(description="FFmpeg command(s)")
    def ffmpeg_command(self, obj):
        commands = [shlex.join(argv) for argv in obj.ffmpeg_argv or []]
        return self._pre("\n\n".join(commands) or "-")

    @admin.display(description="FFmpeg stderr (tail)")
    def ffmpeg_stderr_pretty(self, obj):
        return self._pre(obj.ffmpeg_stderr or "-")


# ---- saved compose templates ---------------------------------------------------------------


@admin.register(ComposeTemplate)
class ComposeTemplateAdmin(admin.ModelAdmin):
    """Clients' saved edits (made and changed through the API): seen, searched by name, deleted."""

    list_display = ("name", "owner", "created_at", "updated_at")
    search_fields = ("name",)
    fields = ("id", "name", "owner", "description", "edit_pretty", "created_at", "updated_at")
    readonly_fields = fields

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="edit")
    def edit_pretty(self, obj):
        return RenderLogAdmin._pre(json.dumps(obj.edit, indent=2, ensure_ascii=False))


# ---- stored uploads -----------------------------------------------------------------------------


@admin.register(Upload)
class UploadAdmin(admin.ModelAdmin):
    """Clients' stored uploads (made through the API): seen, searched, deleted (the file with the row:
    uploads_store's post_delete receiver, for one and for a selection alike)."""

    list_display = ("filename", "kind", "owner", "bytes", "created_at", "expires_at")
    list_filter = ("kind",)
    search_fields = ("filename", "owner")
    fields = ("id", "filename", "kind", "owner", "bytes", "media_pretty", "created_at", "expires_at")
    readonly_fields = fields

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="media")
    def media_pretty(self, obj):
        return RenderLogAdmin._pre(json.dumps(obj.media, indent=2, ensure_ascii=False))


# ---- API keys ---------------------------------------------------------------------------

from rest_framework_api_key.admin import APIKeyModelAdmin  # noqa: E402
from rest_framework_api_key.models import APIKey  # noqa: E402

from renders.models import ClientKey  # noqa: E402

admin.site.unregister(APIKey)  # the library's own model is unused: keys here belong to a user


@admin.register(ClientKey)
class ClientKeyAdmin(APIKeyModelAdmin):
    """Make a key (shown once, on saving), name it for its client, revoke it, give it an end date."""

    list_display = ("name", "prefix", "user", "created", "last_used_at", "expiry_date", "_has_expired", "revoked",
                    "has_webhook_secret")
    list_filter = ("revoked", "created", "user")
    search_fields = ("name", "prefix", "user__username")
    fields = ("name", "user", "expiry_date", "revoked", "prefix", "created", "last_used_at", "has_webhook_secret")
    actions = ["rotate_webhook_secret"]

    def get_readonly_fields(self, request, obj=None):
        return (*super().get_readonly_fields(request, obj), "created", "last_used_at", "has_webhook_secret")

    @admin.display(description="webhook secret", boolean=True)
    def has_webhook_secret(self, obj):
        """Whether the key signs its own webhooks (never the secret: it is shown once, when made or rotated)."""
        return bool(obj.webhook_secret)

    def save_model(self, request, obj, form=None, change=False):
        created = not obj.pk
        super().save_model(request, obj, form, change)  # shows the key once
        if created:
            self.message_user(request, f"The webhook secret for {obj.name} is: {obj.webhook_secret} (it signs the "
                                       "webhooks of this key's jobs; shown once too).", messages.WARNING)

    @admin.action(description="Rotate the webhook secret of the selected keys (each new one shown once)")
    def rotate_webhook_secret(self, request, queryset):
        for key in queryset:
            secret = key.rotate_webhook_secret()
            self.message_user(request, f"The new webhook secret for {key.name} ({key.prefix}...) is: {secret} "
                                       "(shown once; the old one no longer signs).", messages.WARNING)


# ---- plain tokens from before hashed keys: not in the admin ----------------------------------
#
# DRF's token admin adds plain tokens (stored as they are) and shows each one's secret
# (in its list, page titles and the deletion log). None is made any more:
# `manage.py migrate_authtokens` turns the old ones into hashed keys with the same
# secret, which are then seen, revoked and expired under "API keys".

from rest_framework.authtoken.models import TokenProxy  # noqa: E402

admin.site.unregister(TokenProxy)
