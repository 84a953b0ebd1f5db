"""What a client is shown of a job: one serializer for the API's answers, the webhooks' payload and the schema.

It sits beside the models, below every layer, because two layers tell a job:
the HTTP face (a 202, GET /api/jobs/<id>, the list) and the job's life,
whose end announces the job in a webhook. URLs are absolute: for the
request being answered (context `request`), else as the submitting client
addressed the service (the RenderLog's `base_url`, for a webhook).
"""

from rest_framework import serializers

from renders.models import JobStatus, RenderLog


class JobResultSerializer(serializers.Serializer):
    url = serializers.URLField(required=False, help_text="GET it for the file (Range honoured); absent when the "
                                                         "result was delivered to the job's `output_url`")
    delivered_to = serializers.URLField(required=False, help_text="the job's `output_url` (without its query) "
                                                                  "that the result was PUT to; nothing is kept here")
    content_type = serializers.CharField()
    bytes = serializers.IntegerField()
    filename = serializers.CharField()
    expires_at = serializers.DateTimeField(
        required=False,
        help_text="when the result is deleted if not downloaded before; once downloaded, when it was (absent when "
                  "delivered)")
    downloaded_at = serializers.DateTimeField(required=False, help_text="present once every byte was delivered")


class JobErrorSerializer(serializers.Serializer):
    code = serializers.CharField()
    detail = serializers.CharField()


class JobSerializer(serializers.Serializer):
    """A job (a RenderLog with `is_job`), as GET /api/jobs/<id> answers it."""

    id = serializers.UUIDField()
    endpoint = serializers.CharField()
    status = serializers.ChoiceField(JobStatus.choices, source="job_status")
    progress = serializers.FloatField(min_value=0, max_value=1)
    eta_seconds = serializers.FloatField(allow_null=True, help_text="while running, when FFmpeg tells its speed")
    created_at = serializers.DateTimeField(source="received_at")
    started_at = serializers.DateTimeField(source="render_started_at", allow_null=True)
    finished_at = serializers.DateTimeField(source="render_finished_at", allow_null=True)
    result = JobResultSerializer(allow_null=True, help_text="when succeeded")
    error = JobErrorSerializer(allow_null=True, help_text="when failed")

    def to_representation(self, log: RenderLog) -> dict:
        status = log.job_status
        moment = self.fields["created_at"].to_representation
        result = error = None
        if status == JobStatus.SUCCEEDED and log.result.get("delivered_to"):
            result = {"delivered_to": log.result["delivered_to"], "bytes": log.output_size,
                      "content_type": log.result.get("content_type"), "filename": log.result.get("filename")}
        elif status == JobStatus.SUCCEEDED:
            result = {"url": self.result_url(log), "content_type": log.result.get("content_type"),
                      "bytes": log.output_size, "filename": log.result.get("filename"),
                      "expires_at": moment(log.result_expires_at) if log.result_expires_at else None}
            if log.result_downloaded_at:
                result["downloaded_at"] = moment(log.result_downloaded_at)
        elif status == JobStatus.FAILED:
            error = {"code": log.error_code, "detail": log.error_message}
        running = status == JobStatus.RUNNING
        ended = status not in (JobStatus.QUEUED, JobStatus.RUNNING)
        return {
            "id": str(log.id), "endpoint": log.endpoint, "status": str(status),
            "progress": round(1.0 if status == JobStatus.SUCCEEDED else (log.progress or 0.0), 4),
            "eta_seconds": round(log.eta_seconds, 1) if running and log.eta_seconds is not None else None,
            "created_at": moment(log.received_at),
            "started_at": moment(log.render_started_at) if log.render_started_at else None,
            "finished_at": moment(log.render_finished_at) if ended and log.render_finished_at else None,
            "result": result, "error": error,
        }

    def result_url(self, log: RenderLog) -> str:
        path = f"/api/jobs/{log.id}/result"
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request is not None else log.base_url.rstrip("/") + path


def job_json(log: RenderLog, request=None) -> dict:
    """The job as JSON (a plain dict): for `request`, or for a webhook when None."""
    return JobSerializer(log, context={"request": request}).data
