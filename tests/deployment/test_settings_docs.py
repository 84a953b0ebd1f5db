"""docs/SETTINGS.md against the code: every variable the settings read is documented, nothing documented is
stale, and the renamed settings still take their old names (with a warning) for one release."""

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NAME = r"(?:VIDEOAPI|DJANGO|GUNICORN)_[A-Z0-9_]+|DATABASE_URL|FORWARDED_ALLOW_IPS|PROMETHEUS_MULTIPROC_DIR"
NOT_SETTINGS = {"DJANGO_SETTINGS_MODULE"}  # which settings module to load: said in docs/DEPLOYING.md


def read_by_the_code() -> set[str]:
    """Every environment variable named in the settings module and the gunicorn config (as a string literal),
    and every one the app's code reads from the environment itself (a management command's defaults)."""
    names = set()
    for path in (ROOT / "videoapi" / "settings.py", ROOT / "videoapi" / "gunicorn.conf.py"):
        names |= set(re.findall(rf"[\"']({NAME})[\"']", path.read_text()))
    for path in (ROOT / "renders").rglob("*.py"):
        names |= set(re.findall(rf"os\.environ(?:\.get\(|\[)[\"']({NAME})[\"']", path.read_text()))
    return names - NOT_SETTINGS


def documented() -> set[str]:
    return set(re.findall(rf"`({NAME})`", (ROOT / "docs" / "SETTINGS.md").read_text()))


def test_every_variable_the_settings_read_is_documented():
    read = read_by_the_code()
    assert len(read) > 50  # the scan found the settings (a broken pattern would find none)
    assert read - documented() == set(), "read by the code, missing from docs/SETTINGS.md"


def test_every_variable_documented_is_read():
    stale = {name for name in documented() if name.startswith("VIDEOAPI_")} - read_by_the_code()
    assert stale == set(), "in docs/SETTINGS.md, read by nothing"


def check(env: dict, tmp_path) -> subprocess.CompletedProcess:
    """`manage.py check` with the production settings module and only `env` of the renamed settings set."""
    clean = {key: value for key, value in os.environ.items() if not key.startswith(("VIDEOAPI_", "DJANGO_"))}
    code = ("import django; django.setup(); from django.conf import settings; "
            "print('value', settings.VIDEOAPI_SLOT_WAIT_TIMEOUT, settings.VIDEOAPI_JOB_START_TIMEOUT); "
            "from django.core.management import call_command; call_command('check')")
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={**clean, "DJANGO_SETTINGS_MODULE": "videoapi.settings",
                               "VIDEOAPI_STATE_DIR": str(tmp_path), **env})


def test_the_new_names_are_read_without_a_warning(tmp_path):
    result = check({"VIDEOAPI_SLOT_WAIT_TIMEOUT": "7", "VIDEOAPI_JOB_START_TIMEOUT": "70"}, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "value 7.0 70.0" in result.stdout and "videoapi.W001" not in result.stdout + result.stderr


def test_an_old_name_still_works_for_a_release_and_check_says_so(tmp_path):
    result = check({"VIDEOAPI_QUEUE_TIMEOUT": "9", "VIDEOAPI_JOB_QUEUE_TIMEOUT": "90"}, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "value 9.0 90.0" in result.stdout
    warnings = result.stdout + result.stderr
    assert "videoapi.W001" in warnings and "VIDEOAPI_QUEUE_TIMEOUT is deprecated" in warnings
    assert "set VIDEOAPI_SLOT_WAIT_TIMEOUT instead" in warnings and "set VIDEOAPI_JOB_START_TIMEOUT" in warnings


def test_with_both_names_set_the_new_one_wins_and_check_says_the_old_is_ignored(tmp_path):
    result = check({"VIDEOAPI_QUEUE_TIMEOUT": "9", "VIDEOAPI_SLOT_WAIT_TIMEOUT": "4"}, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "value 4.0" in result.stdout
    assert "VIDEOAPI_QUEUE_TIMEOUT is set but ignored: VIDEOAPI_SLOT_WAIT_TIMEOUT is set too" in (
        result.stdout + result.stderr)
