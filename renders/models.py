import base64
import secrets
import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone
from rest_framework_api_key.models import AbstractAPIKey, BaseAPIKeyManager


def current_host() -> str:
    """This render host's name (VIDEOAPI_HOST_ID); rows made before hosts were recorded get the migrating host's."""
    return settings.VIDEOAPI_HOST_ID


class JobStatus(models.TextChoices):
    """A job's status as its client sees it (docs/API.md, "Jobs"): the RenderLog's status, told simply."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


class RenderLog(models.Model):
    """One row per request that reached a render endpoint and passed auth."""

    class Status(models.TextChoices):
        RECEIVED = "received"
        QUEUED = "queued"  # a job waiting for its host's worker
        RENDERING = "rendering"
        SUCCEEDED = "succeeded"
        REJECTED = "rejected"
        FAILED = "failed"
        TIMEOUT = "timeout"
        CANCELLED = "cancelled"  # a job the client cancelled
        EXPIRED = "expired"  # a job's result never downloaded within VIDEOAPI_JOB_RESULT_TTL

    class Cleanup(models.TextChoices):
        PENDING = "pending"
        DELETED = "deleted"
        FAILED = "failed"
        SWEPT = "swept"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    endpoint = models.CharField(max_length=40, db_index=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RECEIVED, db_index=True)
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    client_address = models.GenericIPAddressField(null=True, blank=True)
    api_key = models.CharField(max_length=80, blank=True, help_text="the API key's name (never its secret)")
    host = models.CharField(max_length=100, default=current_host, db_index=True,
                            help_text="the render host (VIDEOAPI_HOST_ID) that handled the request")

    params = models.JSONField(default=dict, blank=True,
                              help_text="the render's plan (renders.plans); for a refused request, the text "
                                        "fields as received (cut to their limits, secrets left out)")
    inputs = models.JSONField(default=list, blank=True,
                              help_text="uploads: field, size, probe summary; for a refused request, each file's "
                                        "field, name and size as received")
    output_size = models.BigIntegerField(null=True, blank=True)
    details = models.JSONField(default=dict, blank=True, help_text="endpoint specifics, e.g. concat mode")

    received_at = models.DateTimeField(default=timezone.now, db_index=True)
    render_started_at = models.DateTimeField(null=True, blank=True)
    render_finished_at = models.DateTimeField(null=True, blank=True)
    response_closed_at = models.DateTimeField(null=True, blank=True)

    ffmpeg_argv = models.JSONField(default=list, blank=True)
    ffmpeg_exit_code = models.IntegerField(null=True, blank=True)
    ffmpeg_stderr = models.TextField(blank=True, help_text="tail of FFmpeg's stderr (bounded)")

    error_code = models.CharField(max_length=40, blank=True, db_index=True)
    error_message = models.TextField(blank=True)

    workspace = models.CharField(max_length=500, blank=True)
    cleanup_status = models.CharField(max_length=16, choices=Cleanup.choices, default=Cleanup.PENDING, db_index=True)
    cleanup_at = models.DateTimeField(null=True, blank=True)
    cleanup_error = models.TextField(blank=True)

    # -- jobs (asynchronous renders; renders/lifecycle/jobs.py) --
    is_job = models.BooleanField(default=False, db_index=True,
                                 help_text="a job: answered 202 and queued (Prefer: respond-async)")
    client_ref = models.CharField(max_length=80, blank=True,
                                  help_text="who may see this job: key:<prefix>, user:<id>, or anonymous")
    idempotency_key = models.CharField(max_length=255, blank=True)
    task_id = models.CharField(max_length=64, blank=True, help_text="the task framework's id for this job's run")
    queued_at = models.DateTimeField(null=True, blank=True)
    worker_id = models.CharField(max_length=100, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True,
                                            help_text="a running job whose worker stops renewing this is lost")
    progress = models.FloatField(null=True, blank=True)
    eta_seconds = models.FloatField(null=True, blank=True)
    result = models.JSONField(default=dict, blank=True,
                              help_text="a job's result: file in the workspace, name, type, headers")
    result_expires_at = models.DateTimeField(null=True, blank=True)
    result_delivered = models.JSONField(default=list, blank=True,
                                        help_text="byte ranges of the result delivered so far")
    result_downloaded_at = models.DateTimeField(null=True, blank=True)
    callback_url = models.CharField(max_length=2048, blank=True, help_text="where the job's webhook goes")
    base_url = models.CharField(max_length=2048, blank=True,
                                help_text="the service's address as the submitting client used it (result URLs)")
    delivery = models.JSONField(null=True, blank=True,
                                help_text="where the job's result is PUT: {url, headers} (the headers may hold "
                                          "secrets: never shown)")

    class Meta:
        ordering = ["-received_at"]
        constraints = [models.UniqueConstraint(fields=["client_ref", "idempotency_key"],
                                               condition=~models.Q(idempotency_key=""), name="job_idempotency")]
        # every admin filter, ordered by -received_at, reads one index range
        indexes = [models.Index(fields=["endpoint", "received_at"]), models.Index(fields=["status", "received_at"]),
                   models.Index(fields=["cleanup_status", "received_at"]), models.Index(fields=["host", "received_at"]),
                   models.Index(fields=["error_code", "received_at"]),
                   models.Index(fields=["client_ref", "received_at"]), models.Index(fields=["host", "status"])]

    def __str__(self):
        return f"{self.endpoint} {self.id} ({self.status})"

    @property
    def job_status(self) -> str:
        """The status a job's client sees (JobStatus)."""
        return JOB_STATUS_OF[self.status]

    @property
    def job_ended(self) -> bool:
        """Nothing of the job is kept any more: failed, refused, cancelled or expired."""
        return self.job_status in (JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.EXPIRED)

    @property
    def render_seconds(self):
        if self.render_started_at and self.render_finished_at:
            return (self.render_finished_at - self.render_started_at).total_seconds()
        return None

    def record(self, **fields):
        """Write the given fields at once, in one short autocommit UPDATE.

        Never a read-modify-write and never inside a long transaction: the
        render and the download run with no database lock held. A client's NUL
        characters are recorded as U+FFFD: PostgreSQL's text and JSON cannot
        hold NUL, and a refused request must still be on record.
        """
        fields = {name: storable(value) for name, value in fields.items()}
        for name, value in fields.items():
            setattr(self, name, value)
        type(self).objects.filter(pk=self.pk).update(**fields)

    def record_if(self, while_status: str, /, **fields) -> bool:
        """`record()`, only while the row's status is still `while_status` (a job: a cancel or a reaper may
        have ended it meanwhile); True when it was written."""
        fields = {name: storable(value) for name, value in fields.items()}
        if not type(self).objects.filter(pk=self.pk, status=while_status).update(**fields):
            return False
        for name, value in fields.items():
            setattr(self, name, value)
        return True


_S = RenderLog.Status
JOB_STATUS_OF = {  # RenderLog.Status -> JobStatus: the one place a job's status is told
    _S.RECEIVED: JobStatus.QUEUED, _S.QUEUED: JobStatus.QUEUED, _S.RENDERING: JobStatus.RUNNING,
    _S.SUCCEEDED: JobStatus.SUCCEEDED, _S.FAILED: JobStatus.FAILED, _S.TIMEOUT: JobStatus.FAILED,
    _S.REJECTED: JobStatus.FAILED, _S.CANCELLED: JobStatus.CANCELLED, _S.EXPIRED: JobStatus.EXPIRED,
}


def statuses_for(job_status: str) -> list[str]:
    """The RenderLog statuses a job listed under `job_status` may have (a received request is not a job yet)."""
    return [code for code, shown in JOB_STATUS_OF.items() if shown == job_status and code != _S.RECEIVED]


class ComposeTemplate(models.Model):
    """A client's saved compose edit, {{placeholders}} left in: rendered later with merge values."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.CharField(max_length=80,
                             help_text="who may use it: key:<prefix>, user:<id>, or anonymous (as a job's)")
    name = models.CharField(max_length=200)
    description = models.TextField(max_length=2000, blank=True)
    edit = models.JSONField(help_text="the compose edit, placeholders unmerged")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["owner", "created_at"])]

    def __str__(self):
        return f"{self.name} ({self.owner})"


class Upload(models.Model):
    """A file a client stored once (POST /api/uploads) to use in any number of renders as `upload:<id>`.

    The file lives under its id (renders/lifecycle/uploads_store.py), never under the client's name; deleting
    the row deletes the file (a post_delete receiver there), from the API, the admin or the sweep.
    """

    class Kind(models.TextChoices):
        VIDEO = "video"
        IMAGE = "image"
        AUDIO = "audio"
        CAPTIONS = "captions"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.CharField(max_length=80,
                             help_text="who may use it: key:<prefix>, user:<id>, or anonymous (as a job's)")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    filename = models.CharField(max_length=100, blank=True, help_text="the client's file name, made safe; "
                                                                      "never a path on disk")
    bytes = models.BigIntegerField()
    media = models.JSONField(default=dict, blank=True, help_text="what probing found")
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(db_index=True, help_text="deleted by sweep_temp after this "
                                                               "(VIDEOAPI_UPLOAD_TTL)")

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["owner", "created_at"])]

    def __str__(self):
        return f"{self.filename or self.id} ({self.kind}, {self.owner})"


class JobHost(models.Model):
    """A render host whose render_worker is alive: the worker touches its row every second. A job queued on a
    host whose worker has not been seen for VIDEOAPI_JOB_START_TIMEOUT fails (nobody would ever run it); a
    busy host's long queue does not."""

    host = models.CharField(max_length=100, primary_key=True)
    heartbeat_at = models.DateTimeField()

    def __str__(self):
        return f"{self.host} (seen {self.heartbeat_at:%Y-%m-%d %H:%M:%S})"


def storable(value):
    """`value` with every NUL in its strings (keys included) replaced by U+FFFD."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, (list, tuple)):
        return [storable(item) for item in value]
    if isinstance(value, dict):
        return {storable(key): storable(item) for key, item in value.items()}
    return value


def new_webhook_secret() -> str:
    """A Standard Webhooks secret: `whsec_` and the base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


class ClientKeyManager(BaseAPIKeyManager):
    def get_from_key(self, key: str) -> "ClientKey":
        # keys made here are "<prefix>.<secret>"; keys migrated from plain tokens have no dot:
        # their first 8 characters are their prefix
        prefix = key.partition(".")[0] if "." in key else key[:8]
        api_key = self.get_usable_keys().get(prefix=prefix)
        if not api_key.is_valid(key):
            raise self.model.DoesNotExist("Key is not valid.")
        return api_key


class ClientKey(AbstractAPIKey):
    """An API key for one client: stored hashed (SHA-512 of a high-entropy key), shown once when made.

    Named for the client that uses it, revocable and optionally expiring in the
    admin; the requests it authenticates act as `user`.
    """

    objects = ClientKeyManager()
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="client_keys",
                             help_text="the account the key's requests act as")
    last_used_at = models.DateTimeField(null=True, blank=True)
    # Signs the key's webhooks (Standard Webhooks), so it is kept as it is, not hashed (SECURITY.md);
    # shown once when made or rotated. Keys made before webhooks have none until rotated.
    webhook_secret = models.CharField(max_length=100, blank=True, default=new_webhook_secret, editable=False,
                                      help_text="whsec_...: signs this key's webhooks; shown once")

    def rotate_webhook_secret(self) -> str:
        """Give the key a new webhook secret (the old one stops signing at once) and return it."""
        self.webhook_secret = new_webhook_secret()
        type(self).objects.filter(pk=self.pk).update(webhook_secret=self.webhook_secret)
        return self.webhook_secret

    class Meta(AbstractAPIKey.Meta):
        verbose_name = "API key"
        verbose_name_plural = "API keys"


def key_name(auth) -> str:
    """How a RenderLog names the credential of its request (never the secret)."""
    if isinstance(auth, ClientKey):
        return auth.name
    if auth is not None:
        return "legacy token (run manage.py migrate_authtokens)"
    return ""


class WebhookDelivery(models.Model):
    """One webhook message for one render, and every attempt to deliver it (renders.webhooks).

    A "send again" from the admin is a new delivery with the same `webhook_id`
    and payload: receivers that deduplicate by `webhook-id` see a retry.
    """

    class Status(models.TextChoices):
        PENDING = "pending"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        GONE = "gone"  # the receiver answered 410: never again

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    render = models.ForeignKey(RenderLog, on_delete=models.CASCADE, related_name="webhook_deliveries")
    webhook_id = models.CharField(max_length=64, db_index=True, help_text="the webhook-id header: one per message")
    event = models.CharField(max_length=40, help_text="render.succeeded, render.failed or render.cancelled")
    url = models.CharField(max_length=2048)
    payload = models.JSONField(help_text="the body: type, timestamp, data")
    client_key = models.ForeignKey(ClientKey, null=True, blank=True, on_delete=models.SET_NULL,
                                   help_text="whose webhook secret signs it (none: VIDEOAPI_WEBHOOK_SECRET)")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True)
    attempts = models.JSONField(default=list, blank=True,
                                help_text="each attempt: at, status_code or error, seconds")
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "webhook deliveries"

    def __str__(self):
        return f"{self.event} {self.webhook_id} ({self.status})"
