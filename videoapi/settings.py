"""Django settings: every value comes from the environment with a safe default.

docs/SETTINGS.md lists each variable (tests/deployment/test_settings_docs.py checks the two agree).
"""

import base64
import hashlib
import os
import re
import secrets
import socket
import tempfile
from pathlib import Path

import dj_database_url
from corsheaders.defaults import default_headers as default_cors_headers
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name, default):
    return os.environ.get(name, default)


def env_bool(name, default):
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in {"1", "true", "yes", "on"}:
        return True
    if raw.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean, got {raw!r}")


def env_number(name, default, kind=int, minimum=None):
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a {kind.__name__}, got {raw!r}") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {value}")
    return value


# Settings renamed so that each name says what waits for what: new name -> the old one, still read for one
# release when the new one is not set (a system check, in renders/apps.py, warns while an old one is in use).
RENAMED = {
    "VIDEOAPI_SLOT_WAIT_TIMEOUT": "VIDEOAPI_QUEUE_TIMEOUT",  # a synchronous request waiting for a render slot
    "VIDEOAPI_JOB_START_TIMEOUT": "VIDEOAPI_JOB_QUEUE_TIMEOUT",  # a queued job waiting for a live worker
}
DEPRECATED_SETTINGS_IN_USE = {}  # old name -> "used" (the new one unset) or "ignored" (both set)


def renamed(name):
    """The environment name to read for the setting `name`: itself, or (not set) its old name, noted."""
    old = RENAMED[name]
    if os.environ.get(old, "") == "":
        return name
    DEPRECATED_SETTINGS_IN_USE[old] = "ignored" if os.environ.get(name, "") != "" else "used"
    return name if DEPRECATED_SETTINGS_IN_USE[old] == "ignored" else old


def env_canvas(name, default):
    raw = env_str(name, default)
    try:
        width, height = (int(part) for part in raw.lower().split("x"))
    except ValueError:
        raise ImproperlyConfigured(f"{name} must look like 1280x720, got {raw!r}") from None
    if width < 64 or height < 64 or width % 2 or height % 2 or width > 7680 or height > 7680:
        raise ImproperlyConfigured(f"{name} needs even sides between 64 and 7680, got {raw!r}")
    return width, height


# Where the service keeps its own state (SQLite file, generated secret key, cache).
STATE_DIR = Path(env_str("VIDEOAPI_STATE_DIR", str(BASE_DIR / "var")))
STATE_DIR.mkdir(parents=True, exist_ok=True)

# Prometheus multiprocess mode: every worker writes its counters here.
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(STATE_DIR / "prometheus"))
Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).mkdir(parents=True, exist_ok=True)


def _secret_key():
    key = os.environ.get("DJANGO_SECRET_KEY")
    if key and key.startswith("change-me"):
        raise ImproperlyConfigured("DJANGO_SECRET_KEY is still the placeholder of deploy/videoapi.env: set a real key")
    if key:
        return key
    # No key given: make one once and keep it, so every gunicorn worker and
    # every restart signs sessions with the same key.
    path = STATE_DIR / "secret_key"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        key = secrets.token_urlsafe(50)
        handle.write(key)
    return key


SECRET_KEY = _secret_key()
DEBUG = env_bool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = [h.strip() for h in env_str("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]").split(",")
                 if h.strip()]
CSRF_TRUSTED_ORIGINS = [o.strip() for o in env_str("DJANGO_CSRF_TRUSTED_ORIGINS", "").split(",") if o.strip()]

# Behind a TLS-terminating proxy (deploy/nginx): gunicorn trusts the proxy's
# X-Forwarded-Proto (FORWARDED_ALLOW_IPS) and so tells Django the request was
# https; DJANGO_HTTPS=true then makes cookies secure, redirects plain http
# (health probes and metrics excepted) and sends HSTS.
DJANGO_HTTPS = env_bool("DJANGO_HTTPS", False)
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = DJANGO_HTTPS
SECURE_SSL_REDIRECT = DJANGO_HTTPS
SECURE_REDIRECT_EXEMPT = [r"^(healthz|readyz|metrics)$"]
SECURE_HSTS_SECONDS = env_number("DJANGO_HSTS_SECONDS", 31536000 if DJANGO_HTTPS else 0, int, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_HSTS_PRELOAD", False)
SECURE_CONTENT_TYPE_NOSNIFF = True
SESSION_COOKIE_HTTPONLY = True

# Addresses of the proxies whose X-Forwarded-For / X-Forwarded-Proto are
# believed: the same variable gunicorn reads for its forwarded_allow_ips.
# Comma-separated addresses or networks; "*" trusts every peer.
FORWARDED_ALLOW_IPS = [a.strip() for a in env_str("FORWARDED_ALLOW_IPS", "127.0.0.1,::1").split(",") if a.strip()]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",  # plain keys from before hashed keys, until migrate_authtokens
    "rest_framework_api_key",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI's assets, served by us (no CDN)
    "corsheaders",
    "django_tasks",  # the task framework (Django 6's django.tasks, backported): jobs run on it
    "django_tasks_db",  # its database backend: the queue lives in the service's own database
    "renders",
]

# No ConditionalGetMiddleware / GZipMiddleware: they may replace a streaming
# render response with another one, and the cleanup lives in its close().
MIDDLEWARE = [
    "corsheaders.middleware.CorsMiddleware",  # answers preflights before auth
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",  # admin CSS/JS under gunicorn
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "videoapi.urls"
WSGI_APPLICATION = "videoapi.wsgi.application"
APPEND_SLASH = False  # the API answers with and without the slash itself

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# Database: SQLite in WAL mode by default; DATABASE_URL (e.g.
# postgres://user:pw@host/db) for a real deployment. No request holds a
# transaction open: every RenderLog write is its own short autocommit, and
# SQLite takes the write lock up front (BEGIN IMMEDIATE) so that concurrent
# workers queue for it instead of failing with "database is locked".
_default_sqlite = f"sqlite:///{STATE_DIR / 'db.sqlite3'}"
DATABASES = {"default": dj_database_url.parse(env_str("DATABASE_URL", _default_sqlite), conn_max_age=60,
                                               conn_health_checks=True)}
# CONN_HEALTH_CHECKS: a persistent connection is pinged before a request
# reuses it, so the first request after a database restart does not fail on
# a dead connection. A request that finds the database down is answered 503
# `unavailable` with Retry-After (renders/errors.py).
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=30000;",
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# A cache shared by every worker on the host (throttle counters).
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
        "LOCATION": str(STATE_DIR / "cache"),
    }
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = STATE_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}


def s3_media_storage(bucket, endpoint_url, region, url_ttl):
    """STORAGES["media"]: django-storages' S3 backend (renders/lifecycle/storage.py is its one user).

    Credentials are boto3's own chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, or an instance role).
    """
    options = {
        "bucket_name": bucket,
        "endpoint_url": endpoint_url or None,  # None: AWS
        "region_name": region,
        "signature_version": "s3v4",
        "default_acl": None,
        "querystring_expire": url_ttl,
        "file_overwrite": False,
    }
    if endpoint_url:  # S3-compatible stores (SeaweedFS, MinIO) answer on one host: bucket in the path
        options["addressing_style"] = "path"
    return {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": options}


# Object storage for uploads, job inputs and results: `local` (nothing changes) or `s3`.
VIDEOAPI_STORAGE = env_str("VIDEOAPI_STORAGE", "local")
if VIDEOAPI_STORAGE not in {"local", "s3"}:
    raise ImproperlyConfigured(f"VIDEOAPI_STORAGE must be 'local' or 's3', got {VIDEOAPI_STORAGE!r}")
VIDEOAPI_S3_BUCKET = env_str("VIDEOAPI_S3_BUCKET", "")
VIDEOAPI_S3_ENDPOINT_URL = env_str("VIDEOAPI_S3_ENDPOINT_URL", "")  # empty: AWS
VIDEOAPI_S3_REGION = env_str("VIDEOAPI_S3_REGION", "") or "us-east-1"
VIDEOAPI_S3_URL_TTL = env_number("VIDEOAPI_S3_URL_TTL", 300, int, minimum=1)
if VIDEOAPI_S3_URL_TTL > 7 * 86400:  # the longest a SigV4 presigned URL may live
    raise ImproperlyConfigured(f"VIDEOAPI_S3_URL_TTL is at most 604800 seconds, got {VIDEOAPI_S3_URL_TTL}")
VIDEOAPI_S3_PROXY = env_bool("VIDEOAPI_S3_PROXY", False)  # true: results stream through the service
if VIDEOAPI_STORAGE == "s3":
    if not VIDEOAPI_S3_BUCKET:
        raise ImproperlyConfigured("VIDEOAPI_STORAGE=s3 needs VIDEOAPI_S3_BUCKET")
    STORAGES["media"] = s3_media_storage(VIDEOAPI_S3_BUCKET, VIDEOAPI_S3_ENDPOINT_URL, VIDEOAPI_S3_REGION,
                                         VIDEOAPI_S3_URL_TTL)

# Uploads: the render views install their own handler, which streams every
# file into the render's workspace; nothing goes through Django's temp dir.
FILE_UPLOAD_HANDLERS = ["renders.lifecycle.uploads.RefuseUploadHandler"]
DATA_UPLOAD_MAX_NUMBER_FILES = 64

# ---- The render service ----
VIDEOAPI_AUTH = env_str("VIDEOAPI_AUTH", "token")
if VIDEOAPI_AUTH not in {"token", "none"}:
    raise ImproperlyConfigured("VIDEOAPI_AUTH must be 'token' or 'none'")
VIDEOAPI_THROTTLE_RATE = env_str("VIDEOAPI_THROTTLE_RATE", "") or None  # e.g. "30/minute"
VIDEOAPI_TEMP_ROOT = Path(env_str("VIDEOAPI_TEMP_ROOT", os.path.join(tempfile.gettempdir(), "videoapi")))
VIDEOAPI_FFMPEG = env_str("VIDEOAPI_FFMPEG", "")  # empty: the imageio-ffmpeg binary
# Defaults that deploy/ repeats (nginx's body limit and timeouts): tests compare them.
DEFAULT_FFMPEG_TIMEOUT, DEFAULT_MAX_UPLOAD_BYTES, DEFAULT_SLOT_WAIT_TIMEOUT = 300.0, 500 * 1024 * 1024, 30.0
VIDEOAPI_FFMPEG_TIMEOUT = env_number("VIDEOAPI_FFMPEG_TIMEOUT", DEFAULT_FFMPEG_TIMEOUT, float, minimum=0.1)
VIDEOAPI_MAX_UPLOAD_BYTES = env_number("VIDEOAPI_MAX_UPLOAD_BYTES", DEFAULT_MAX_UPLOAD_BYTES, int, minimum=1024)
VIDEOAPI_MAX_INPUT_SECONDS = env_number("VIDEOAPI_MAX_INPUT_SECONDS", 600.0, float, minimum=1)
VIDEOAPI_MAX_OUTPUT_SECONDS = env_number("VIDEOAPI_MAX_OUTPUT_SECONDS", 600.0, float, minimum=1)
# What an accepted input may cost to decode. Defaults admit every real phone and camera format:
# 8K DCI frames (8192x4320: 8K phones record 7680x4320), 240 fps (phone slow motion), 16 audio
# channels (broadcast tracks, Atmos 9.1.6 beds).
VIDEOAPI_MAX_INPUT_PIXELS = env_number("VIDEOAPI_MAX_INPUT_PIXELS", 8192 * 4320, int, minimum=64 * 64)
VIDEOAPI_MAX_INPUT_FPS = env_number("VIDEOAPI_MAX_INPUT_FPS", 240.0, float, minimum=1)
VIDEOAPI_MAX_AUDIO_CHANNELS = env_number("VIDEOAPI_MAX_AUDIO_CHANNELS", 16, int, minimum=1)
VIDEOAPI_CANVAS = env_canvas("VIDEOAPI_CANVAS", "1280x720")
VIDEOAPI_FPS = env_number("VIDEOAPI_FPS", 30, int, minimum=1)
VIDEOAPI_PREVIEW_MAX_SECONDS = env_number("VIDEOAPI_PREVIEW_MAX_SECONDS", 60.0, float, minimum=1)
VIDEOAPI_X264_PRESET = env_str("VIDEOAPI_X264_PRESET", "veryfast")
VIDEOAPI_X264_CRF = env_number("VIDEOAPI_X264_CRF", 20, int, minimum=0)
VIDEOAPI_AUDIO_BITRATE = env_str("VIDEOAPI_AUDIO_BITRATE", "160k")
VIDEOAPI_PREVIEW_CRF = env_number("VIDEOAPI_PREVIEW_CRF", 30, int, minimum=0)
VIDEOAPI_FONT = env_str("VIDEOAPI_FONT", "")  # empty: first bundled-system DejaVu Sans Bold found
VIDEOAPI_FONTS_DIR = env_str("VIDEOAPI_FONTS_DIR", "")  # brand fonts a request may name (TTF/OTF)
VIDEOAPI_MAX_CONCURRENT_RENDERS = env_number("VIDEOAPI_MAX_CONCURRENT_RENDERS", max(1, os.cpu_count() or 1), int,
                                             minimum=1)
# Threads per FFmpeg run (decoder, filters, x264): the cores shared out among the
# render slots, so N slots never oversubscribe the host; 0 leaves it to FFmpeg
# (a thread per core for every run). docs/BENCHMARKS.md has the measurements.
VIDEOAPI_FFMPEG_THREADS = env_number(
    "VIDEOAPI_FFMPEG_THREADS", max(1, (os.cpu_count() or 1) // VIDEOAPI_MAX_CONCURRENT_RENDERS), int, minimum=0)
VIDEOAPI_SLOT_WAIT_TIMEOUT = env_number(renamed("VIDEOAPI_SLOT_WAIT_TIMEOUT"), DEFAULT_SLOT_WAIT_TIMEOUT, float,
                                        minimum=0)
VIDEOAPI_SWEEP_GRACE = env_number("VIDEOAPI_SWEEP_GRACE", 60.0, float, minimum=0)
VIDEOAPI_MIN_FREE_BYTES = env_number("VIDEOAPI_MIN_FREE_BYTES", 1024**3, int, minimum=0)
# Which render host this is: recorded on every RenderLog; sweep_temp and the
# admin's view of the temp root speak for this host only.
VIDEOAPI_HOST_ID = env_str("VIDEOAPI_HOST_ID", "") or socket.gethostname()
if not re.fullmatch(r"[A-Za-z0-9._-]{1,100}", VIDEOAPI_HOST_ID):
    # it names the host in nginx's route map, in job queue names and in worker ids; keep it stable too:
    # a host's queued jobs and results are found under its id
    raise ImproperlyConfigured("VIDEOAPI_HOST_ID must be 1-100 letters, digits, '.', '_' or '-' "
                               f"(got {VIDEOAPI_HOST_ID!r})")
VIDEOAPI_DB_RETRY_AFTER = env_number("VIDEOAPI_DB_RETRY_AFTER", 5, int, minimum=1)

# Webhooks (renders.webhooks): callbacks go only to public addresses unless the operator allows private ones
# (an intranet, the tests); each attempt has a hard deadline and is retried after each delay.
VIDEOAPI_WEBHOOK_ALLOW_PRIVATE = env_bool("VIDEOAPI_WEBHOOK_ALLOW_PRIVATE", False)
VIDEOAPI_WEBHOOK_TIMEOUT = env_number("VIDEOAPI_WEBHOOK_TIMEOUT", 10.0, float, minimum=0.1)
# deliveries one render_worker makes at once (threads beside its render jobs, never in a render slot)
VIDEOAPI_WEBHOOK_WORKERS = env_number("VIDEOAPI_WEBHOOK_WORKERS", 4, int, minimum=1)

# Sources by URL (renders.lifecycle.fetch): fetched only from public addresses unless the operator allows
# private ones (an intranet, the tests); one deadline for the whole fetch, redirects included.
VIDEOAPI_FETCH_ALLOW_PRIVATE = env_bool("VIDEOAPI_FETCH_ALLOW_PRIVATE", False)
VIDEOAPI_FETCH_TIMEOUT = env_number("VIDEOAPI_FETCH_TIMEOUT", 60.0, float, minimum=0.1)


def env_delays(name, default):
    raw = env_str(name, "") or default
    if raw.strip().lower() == "none":
        return ()
    try:
        delays = tuple(float(part) for part in raw.split(",") if part.strip())
    except ValueError:
        raise ImproperlyConfigured(
            f"{name} must be comma-separated seconds like 5,300,1800 (or none), got {raw!r}") from None
    if any(not 0 <= d <= 7 * 86400 for d in delays) or len(delays) > 20:
        raise ImproperlyConfigured(f"{name} takes at most 20 delays of 0 to 604800 seconds each, got {raw!r}")
    return delays


VIDEOAPI_WEBHOOK_RETRY_DELAYS = env_delays("VIDEOAPI_WEBHOOK_RETRY_DELAYS", "5,300,1800,7200,18000,36000")
# A job's result PUT to its output_url (renders.lifecycle.delivery): retried after each delay while the
# destination answers 5xx, 408 or 429, or cannot be reached; each attempt bounded by VIDEOAPI_FETCH_TIMEOUT.
VIDEOAPI_DELIVERY_RETRY_DELAYS = env_delays("VIDEOAPI_DELIVERY_RETRY_DELAYS", "2,10,30")


def env_webhook_secret(name):
    raw = env_str(name, "")
    if not raw:
        return ""
    try:
        key = base64.b64decode(raw.removeprefix("whsec_"), validate=True)
    except ValueError:
        key = b""
    if not raw.startswith("whsec_") or len(key) < 24:
        raise ImproperlyConfigured(f"{name} must be whsec_ and the base64 of at least 24 random bytes "
                                   "(e.g. from: python -c \"import base64,secrets; "
                                   "print('whsec_'+base64.b64encode(secrets.token_bytes(32)).decode())\")")
    return raw


# Signs webhooks when auth is off, and for API keys without a secret of their own.
VIDEOAPI_WEBHOOK_SECRET = env_webhook_secret("VIDEOAPI_WEBHOOK_SECRET")

# Jobs (asynchronous renders, renders/lifecycle/jobs.py). A job runs on the host
# that received its upload, from that host's queue of the task framework.
VIDEOAPI_JOB_RESULT_TTL = env_number("VIDEOAPI_JOB_RESULT_TTL", 3600.0, float, minimum=1)
VIDEOAPI_JOB_LEASE = env_number("VIDEOAPI_JOB_LEASE", 60.0, float, minimum=2)
# A job's FFmpeg runs have their own limit: jobs exist for renders longer than a client holds a connection.
DEFAULT_JOB_FFMPEG_TIMEOUT = 3600.0
VIDEOAPI_JOB_FFMPEG_TIMEOUT = env_number("VIDEOAPI_JOB_FFMPEG_TIMEOUT", DEFAULT_JOB_FFMPEG_TIMEOUT, float, minimum=0.1)
VIDEOAPI_JOB_START_TIMEOUT = env_number(renamed("VIDEOAPI_JOB_START_TIMEOUT"), 3600.0, float, minimum=1)
VIDEOAPI_MAX_QUEUED_JOBS = env_number("VIDEOAPI_MAX_QUEUED_JOBS", 100, int, minimum=0)
# Uploads stored once (POST /api/uploads) under VIDEOAPI_TEMP_ROOT/uploads: kept this many seconds after they
# are made, and at most this many bytes of them per client.
VIDEOAPI_UPLOAD_TTL = env_number("VIDEOAPI_UPLOAD_TTL", 86400.0, float, minimum=1)
VIDEOAPI_MAX_UPLOADS_BYTES = env_number("VIDEOAPI_MAX_UPLOADS_BYTES", 10 * 1024 ** 3, int, minimum=0)
VIDEOAPI_JOB_POLL_INTERVAL = env_number("VIDEOAPI_JOB_POLL_INTERVAL", 0.2, float, minimum=0.01)
VIDEOAPI_JOB_WORKERS = env_number("VIDEOAPI_JOB_WORKERS", VIDEOAPI_MAX_CONCURRENT_RENDERS, int, minimum=1)
VIDEOAPI_JOB_QUEUE = VIDEOAPI_HOST_ID  # local storage: each host runs the jobs it received (their files are here)
SHARED_JOB_QUEUE = "shared-jobs"  # object storage: one queue, any host's worker takes any job
# the task table's queue name: at most 32 characters, and never the webhooks' or the shared queue
if len(VIDEOAPI_JOB_QUEUE) > 32 or VIDEOAPI_JOB_QUEUE in ("webhooks", SHARED_JOB_QUEUE):
    VIDEOAPI_JOB_QUEUE = VIDEOAPI_JOB_QUEUE[:23] + "-" + hashlib.sha256(VIDEOAPI_HOST_ID.encode()).hexdigest()[:8]
TASKS = {
    "default": {
        "BACKEND": "django_tasks_db.DatabaseBackend",
        # this host's jobs, everyone's (object storage), the webhooks every host delivers
        "QUEUES": [VIDEOAPI_JOB_QUEUE, SHARED_JOB_QUEUE, "webhooks"],
    }
}

REST_FRAMEWORK = {
    # VIDEOAPI_AUTH is applied per request by these classes (renders/api/authentication.py)
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "renders.api.authentication.ClientKeyAuthentication", "renders.api.authentication.LegacyTokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["renders.api.authentication.ServiceAccess"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.MultiPartParser"],
    "EXCEPTION_HANDLER": "renders.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "renders.api.schema.ServiceSchema",
}
# Browser front ends on other origins (comma-separated, e.g. https://app.example.com); empty: CORS off.
CORS_ALLOWED_ORIGINS = [o.strip().rstrip("/") for o in env_str("VIDEOAPI_CORS_ALLOWED_ORIGINS", "").split(",")
                        if o.strip()]
CORS_URLS_REGEX = r"^/api/.*$"
CORS_EXPOSE_HEADERS = ["X-Render-Id", "Content-Disposition", "X-Concat-Mode", "X-Trim-Start", "Retry-After",
                       "Server-Timing", "Location", "Preference-Applied", "Content-Range", "Accept-Ranges"]
# jobs: Prefer (respond-async), Idempotency-Key, and Range to resume a result's download
CORS_ALLOW_HEADERS = [*default_cors_headers, "prefer", "idempotency-key", "range"]
CORS_PREFLIGHT_MAX_AGE = 600

SPECTACULAR_SETTINGS = {
    "TITLE": "videoapi",
    # the description is the service's whole contract, written per request from the live settings
    # (renders.api.schema.contract_and_examples)
    "VERSION": "1.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "AUTHENTICATION_WHITELIST": ["renders.api.authentication.ClientKeyAuthentication"],  # one scheme: Token <key>
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SWAGGER_UI_SETTINGS": {"persistAuthorization": True, "tryItOutEnabled": True, "displayRequestDuration": True},
    "COMPONENT_SPLIT_REQUEST": True,
    # two form fields are named `format` (the output's, the preview's): the output's enum gets its own name
    "ENUM_NAME_OVERRIDES": {"OutputFormatEnum": "renders.media.spec.FORMATS"},
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "renders.api.schema.paths_without_trailing_slash",
        "renders.api.schema.contract_and_examples",
        "renders.api.schema.edit_components",
    ],
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "line": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "line"}},
    "root": {"handlers": ["console"], "level": env_str("VIDEOAPI_LOG_LEVEL", "INFO")},
    "loggers": {"django": {"level": "INFO"}},
}
