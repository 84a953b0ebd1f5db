"""Test settings: the real settings module, fed a tiny canvas and private dirs.

Values are put into the environment before the real settings read it, so a
gunicorn started by a test (which inherits this environment and uses this
module) sees exactly the same configuration.
"""

import os
import tempfile

if not os.environ.get("VIDEOAPI_TEST_DIR"):  # the pytest process makes it; servers it starts inherit it
    os.environ["VIDEOAPI_TEST_DIR"] = tempfile.mkdtemp(prefix="videoapi-tests-")
    # whose it is: a later run removes it if this process died without its cleanup (conftest.sweep_dead_runs)
    with open(os.path.join(os.environ["VIDEOAPI_TEST_DIR"], ".owner"), "w") as owner:
        owner.write(str(os.getpid()))
_base = os.environ["VIDEOAPI_TEST_DIR"]
for key, value in {
    "VIDEOAPI_STATE_DIR": os.path.join(_base, "state"),
    "VIDEOAPI_TEMP_ROOT": os.path.join(_base, "renders"),
    "VIDEOAPI_CANVAS": "320x180",
    "VIDEOAPI_FPS": "25",
    "VIDEOAPI_X264_PRESET": "ultrafast",
    "VIDEOAPI_FFMPEG_TIMEOUT": "60",
    "VIDEOAPI_MAX_INPUT_SECONDS": "30",
    "VIDEOAPI_MAX_UPLOAD_BYTES": str(20 * 1024 * 1024),
    "VIDEOAPI_SLOT_WAIT_TIMEOUT": "20",
    "VIDEOAPI_MAX_CONCURRENT_RENDERS": "4",
    "DATABASE_URL": "sqlite:///" + os.path.join(_base, "test.sqlite3"),
    "DJANGO_SECRET_KEY": "tests-only-secret-key-not-for-production-use-0123456789",
}.items():
    os.environ.setdefault(key, value)

from videoapi.settings import *  # noqa: E402, F403

DATABASES["default"]["TEST"] = {"NAME": DATABASES["default"]["NAME"]}  # noqa: F405  (a file gunicorn can share)
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
WHITENOISE_USE_FINDERS = True  # admin CSS without collectstatic
