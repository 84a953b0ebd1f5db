"""The operator's view of renders: what ran, what failed, what was cleaned."""

import json
import shlex

from django.contrib import admin
from django.utils.html import format_html

from .models import RenderLog


@admin.register(RenderLog)
class RenderLogAdmin(admin.ModelAdmin):
    list_display = ("received_at", "endpoint", "status", "http_status", "error_code", "render_time",
                    "output_size", "cleanup_status", "user", "short_id")
    list_filter = ("endpoint", "status", "cleanup_status", "error_code", ("received_at", admin.DateFieldListFilter))
    search_fields = ("id", "error_message", "error_code", "cleanup_error", "client_address")
    date_hierarchy = "received_at"
    list_per_page = 50
    show_full_result_count = False
    fieldsets = (
        (None, {"fields": ("id", "endpoint", "status", "http_status", "user", "client_address")}),
        ("Error", {"fields": ("error_code", "error_message")}),
        ("Request", {"fields": ("params_pretty", "inputs_pretty", "output_size", "details_pretty")}),
        ("Timings", {"fields": ("received_at", "render_started_at", "render_finished_at", "render_time",
                                "response_closed_at")}),
        ("FFmpeg", {"fields": ("ffmpeg_command", "ffmpeg_exit_code", "ffmpeg_stderr_pretty")}),
        ("Cleanup", {"fields": ("workspace", "cleanup_status", "cleanup_at", "cleanup_error")}),
    )

    def get_readonly_fields(self, request, obj=None):
        return [f for fields in (fs[1]["fields"] for fs in self.fieldsets) for f in fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="id")
    def short_id(self, obj):
        return str(obj.id)[:8]

    @admin.display(description="render time (s)")
    def render_time(self, obj):
        seconds = obj.render_seconds
        return f"{seconds:.2f}" if seconds is not None else "-"

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
