"""deploy/, proven with the real programs: nginx, systemd-analyze, PostgreSQL, two hosts.

The files that need no server (systemd units, env file, crontab, nginx -t)
are checked in both passes. The stack (nginx in front of two gunicorn
instances standing for two render hosts, sharing one PostgreSQL) runs in the
PostgreSQL pass of scripts/test, started once for this module.
"""

import contextlib
import ctypes.util
import itertools
import json
import os
import re
import shlex
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection, connections
from django.utils import timezone

from renders.media.ffmpeg import ffmpeg_binary
from renders.models import RenderLog
from videoapi import settings as production_settings

from .. import media
from ..conftest import wait_for
from ..deploy import (
    DEPLOY,
    ROOT,
    SHIPPED_BODY_LIMIT,
    Nginx,
    https,
    named_unix_sockets,
    nginx_binary,
    render_site,
    seccomp_environment,
    self_signed_cert,
    tls_socket,
    unit_system_calls,
)
from ..jobclient import call, poll, submit
from ..jobclient import slow_ffmpeg as readrate_ffmpeg
from ..pgcluster import Cluster
from ..server import free_port, gunicorn, multipart, read_head, read_response, render_worker, request, wait_port

CLIENT = "127.0.0.3"  # a client's address on loopback (nginx itself talks to the hosts from 127.0.0.1)
OUTSIDER = "127.0.0.2"  # an address the operator paths do not allow


def unit(name):
    """A systemd unit as {key: [values]} (sections flattened; keys repeat)."""
    values = {}
    for line in (DEPLOY / "systemd" / name).read_text().splitlines():
        if "=" in line and not line.lstrip().startswith(("#", "[")):
            key, _, value = line.partition("=")
            values.setdefault(key.strip(), []).append(value.strip())
    return values


def env_file():
    values = {}
    for line in (DEPLOY / "videoapi.env").read_text().splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def clean_env(**overrides):
    """A process environment with none of the test suite's settings in it."""
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")}
    return {**keep, **overrides}


# ---- files that need no server ---------------------------------------------------------------------


UNITS = ["videoapi.service", "videoapi-worker.service", "videoapi-migrate.service", "videoapi-sweep.service",
         "videoapi-sweep.timer", "videoapi-prune.service", "videoapi-prune.timer"]
SERVICES = [name for name in UNITS if name.endswith(".service")]
# `systemd-analyze security` rates videoapi.service at most this (5.0 before the sandbox was tightened); the
# other units at most what it rates the service (lower is safer).
SERVICE_EXPOSURE_BOUND = 1.5


def systemd_analyze():
    found = shutil.which("systemd-analyze")
    if not found:
        pytest.skip("systemd-analyze is not installed (Debian package systemd)")
    return found


def units_here(directory: Path, names=UNITS):
    """The units as an operator installs them, their /srv/videoapi pointed at this checkout (so executables exist)."""
    for name in names:
        (directory / name).write_text((DEPLOY / "systemd" / name).read_text().replace("/srv/videoapi", str(ROOT)))
    return [directory / name for name in names]


def test_systemd_units_verify(tmp_path):
    analyze = systemd_analyze()
    paths = units_here(tmp_path)
    result = subprocess.run([analyze, "verify", "--man=no", *map(str, paths)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0 and not result.stderr.strip() and not result.stdout.strip(), result.stderr
    # verify really reads them: a unit with a typo is refused
    (tmp_path / "broken.service").write_text((tmp_path / "videoapi.service").read_text()
                                             .replace("ExecStart=", "ExecStrat="))
    broken = subprocess.run([analyze, "verify", "--man=no", str(tmp_path / "broken.service")],
                            capture_output=True, text=True, timeout=60)
    assert "ExecStrat" in broken.stderr


def exposure(analyze, path):
    """`systemd-analyze security`'s overall rating of a unit file (0 safest, 10 exposed)."""
    result = subprocess.run([analyze, "security", "--offline=true", "--no-pager", str(path)],
                            capture_output=True, text=True, timeout=60, env={**os.environ, "SYSTEMD_COLORS": "0"})
    match = re.search(rf"Overall exposure level for {re.escape(path.name)}: (\d+(?:\.\d+)?)", result.stdout)
    assert match, result.stdout[-2000:] + result.stderr
    return float(match[1])


def test_units_security_ratings(tmp_path):
    analyze = systemd_analyze()
    ratings = {path.name: exposure(analyze, path) for path in units_here(tmp_path, SERVICES)}
    assert ratings["videoapi.service"] <= SERVICE_EXPOSURE_BOUND, ratings
    for rating in ratings.values():  # the timers' and the migration's units are no looser than the service
        assert rating <= ratings["videoapi.service"], ratings
    # the rating reads the sandbox: the same unit without its syscall filter and capability limit rates worse
    loose = tmp_path / "loose.service"
    loose.write_text("\n".join(line for line in (tmp_path / "videoapi.service").read_text().splitlines()
                               if not line.startswith(("SystemCallFilter=", "CapabilityBoundingSet="))))
    assert exposure(analyze, loose) > ratings["videoapi.service"] + 1


def test_service_unit_sandbox_covers_the_configured_paths():
    env = env_file()
    for name in SERVICES:
        service = unit(name)
        for key, value in [("PrivateTmp", "true"), ("ProtectSystem", "strict"), ("NoNewPrivileges", "true"),
                           ("PrivateDevices", "true"), ("User", "videoapi")]:
            assert service[key] == [value], (name, key)
        assert service["EnvironmentFile"] == ["/etc/videoapi/videoapi.env"], name
        writable = [Path(p) for values in service["ReadWritePaths"] for p in values.split()]
        for setting in ("VIDEOAPI_TEMP_ROOT", "VIDEOAPI_STATE_DIR"):
            path = Path(env[setting])
            assert any(path == w or w in path.parents for w in writable), f"{name}: {setting}={path} is not writable"
            # PrivateTmp gives each unit its own /tmp and /var/tmp: the sweep unit could not see a temp root there
            assert not str(path).startswith(("/tmp/", "/var/tmp/")), setting  # noqa: S108  (checks, not uses)
    service = unit("videoapi.service")
    assert re.fullmatch(r"\d+[KMGT]?", service["MemoryMax"][0])
    # graceful stop: systemd waits at least as long as gunicorn lets renders finish
    graceful = production_settings.DEFAULT_FFMPEG_TIMEOUT + 30
    assert int(service["TimeoutStopSec"][0]) >= graceful


@pytest.mark.server
@pytest.mark.django_db(transaction=True)
def test_service_renders_under_the_units_system_call_filters(tmp_path, token, clips):
    """gunicorn, its workers and FFmpeg under videoapi.service's SystemCallFilter, MemoryDenyWriteExecute and
    NoNewPrivileges, for real."""
    analyze = systemd_analyze()
    if not ctypes.util.find_library("seccomp"):
        pytest.skip("libseccomp is not installed (Debian package libseccomp2)")
    service = unit("videoapi.service")
    assert service["SystemCallErrorNumber"] == ["EPERM"] and service["NoNewPrivileges"] == ["true"]
    for name in SERVICES:  # one filter for every unit
        assert unit(name)["SystemCallFilter"] == service["SystemCallFilter"], name
    allowed = unit_system_calls(analyze, service["SystemCallFilter"])
    assert {"execve", "clone", "pidfd_open", "flock"} <= allowed
    assert not {"setuid", "setrlimit", "sched_setaffinity", "mount", "reboot", "ptrace"} & allowed
    assert service["MemoryDenyWriteExecute"] == ["true"]
    env = seccomp_environment(tmp_path, allowed, deny_write_execute=True)
    with gunicorn(env, workers=1, threads=4) as (address, proc):
        status = Path(f"/proc/{proc.pid}/status").read_text()
        assert re.search(r"^Seccomp:\s+2$", status, re.M) and re.search(r"^NoNewPrivs:\s+1$", status, re.M)
        assert re.search(r"^Seccomp_filters:\s+2$", status, re.M)  # the allow list and the write-or-execute one
        jobs = [("/api/trim", {"video": clips.basic, "start": "0.5", "end": "1.5"}, "video/mp4"),
                ("/api/intro/render", {"video": clips.basic, "team": "Team", "full_name": "Ada Lovelace",
                                       "role": "Engineer"}, "video/mp4"),
                ("/api/trim/preview", {"video": clips.basic, "start": "0", "duration": "1"}, "video/mp4")]
        for path, fields, kind in jobs:
            code, headers, body = request(address, path, fields, token)
            assert code == 200 and headers["content-type"] == kind, (path, body[:300])
            (tmp_path / "out.mp4").write_bytes(body)
            assert media.probe(tmp_path / "out.mp4")["vcodec"] == "h264"
        with socket.create_connection(tuple(address.rsplit(":", 1)), timeout=30) as sock:
            sock.sendall(b"GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            code, _, body = read_response(sock)
        assert code == 200 and json.loads(body)["checks"]["ffmpeg"]["ok"] is True, body
        # videoapi-worker.service's command (tests.server.render_worker runs exactly it) renders a job
        assert worker_argv() == ["manage.py", "render_worker"]
        with render_worker(env) as worker:
            def filtered():  # the filters are installed as its Python starts
                status = Path(f"/proc/{worker.pid}/status").read_text()
                return (re.search(r"^Seccomp_filters:\s+2$", status, re.M)
                        and re.search(r"^NoNewPrivs:\s+1$", status, re.M))

            assert wait_for(filtered, seconds=10)
            code, _, job = submit(address, token, fields={"video": clips.basic, "start": "0.5", "end": "1.5"})
            assert code == 202, job
            job, _ = poll(address, token, job["id"])
            assert job["status"] == "succeeded", job
            code, headers, body = call(address, "GET", f"/api/jobs/{job['id']}/result", token)
            assert code == 200 and headers["content-type"] == "video/mp4"
            (tmp_path / "job.mp4").write_bytes(body)
            assert media.probe(tmp_path / "job.mp4")["vcodec"] == "h264"
        assert worker.returncode == 0, worker.log_path.read_text()[-2000:]  # stopped by SIGTERM, cleanly
    # the sweep and prune units' commands under the same filter
    result = run_unit_command("videoapi-sweep.service", "ExecStart", {**os.environ, **env})
    assert result.returncode == 0 and json.loads(result.stdout)["errors"] == {}, result.stderr
    # the filters are real: what they take out fails
    for code in ["import os; os.setuid(os.getuid())",
                 "import mmap; mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)"]:
        refused = subprocess.run([sys.executable, "-c", code], env={**os.environ, **env}, capture_output=True,
                                 text=True, timeout=60)
        assert refused.returncode != 0 and "Operation not permitted" in refused.stderr, code


def worker_argv():
    """videoapi-worker.service's ExecStart after its Python: the command tests.server.render_worker runs."""
    argv = shlex.split(unit("videoapi-worker.service")["ExecStart"][0])
    assert argv[0] == "/srv/videoapi/.venv/bin/python"
    return argv[1:]


def test_worker_unit_stops_gracefully_and_comes_back():
    """The worker's unit: SIGTERM to the worker alone (it finishes running jobs, FFmpeg is not signalled), time
    for a render to finish before systemd kills, always restarted, migrations checked like the service, pulled in
    by the service and in the same sandbox."""
    worker, service = unit("videoapi-worker.service"), unit("videoapi.service")
    assert worker["KillMode"] == ["mixed"] and worker.get("KillSignal", ["SIGTERM"]) == ["SIGTERM"]
    assert int(worker["TimeoutStopSec"][0]) >= production_settings.DEFAULT_JOB_FFMPEG_TIMEOUT + 30
    assert worker["Restart"] == ["always"] and worker["StartLimitIntervalSec"] == ["0"]
    assert worker["ExecStartPre"] == service["ExecStartPre"] and " migrate --check" in worker["ExecStartPre"][0]
    assert "videoapi-worker.service" in " ".join(service["Wants"])
    assert "videoapi-migrate.service" in " ".join(worker["After"])
    for key in ("Wants", "Requires", "BindsTo", "PartOf"):  # a restart of gunicorn never stops a running job
        assert "videoapi.service" not in " ".join(worker.get(key, [])), key
    sandbox = {key: values for key, values in service.items()
               if key not in ("Description", "Documentation", "ExecStart", "ExecReload", "Restart", "Wants", "After",
                              "TimeoutStopSec")}  # the worker's stop waits for a job, the service's for a request
    assert {key: worker.get(key) for key in sandbox} == sandbox
    assert "render_worker" not in "".join(line for line in (DEPLOY / "crontab").read_text().splitlines()
                                          if not line.startswith("#"))  # a long-running process, not a cron job


def seconds(analyze, span):
    """A systemd time span (OnUnitActiveSec=5min, 1h 30s, ...) in seconds, as systemd itself reads it."""
    result = subprocess.run([analyze, "timespan", span], capture_output=True, text=True, timeout=30, check=True)
    return int(re.search(r"μs: (\d+)", result.stdout)[1]) / 1e6


def test_timers_fire_at_the_documented_intervals():
    """The sweep every 5 minutes (cron's */5 alike), the prune once a day at 03:30."""
    analyze = systemd_analyze()
    sweep = unit("videoapi-sweep.timer")
    assert len(sweep["OnUnitActiveSec"]) == 1 and "OnCalendar" not in sweep
    assert seconds(analyze, sweep["OnUnitActiveSec"][0]) == 5 * 60
    assert seconds(analyze, sweep["OnBootSec"][0]) <= 5 * 60  # and soon after boot, not only 5 min after a run
    assert seconds(analyze, sweep["AccuracySec"][0]) <= 60
    cron = next(line for line in (DEPLOY / "crontab").read_text().splitlines() if "sweep_temp" in line)
    assert cron.split()[:5] == ["*/5", "*", "*", "*", "*"]
    assert "every 5 minutes" in unit("videoapi-sweep.timer")["Description"][0]

    prune = unit("videoapi-prune.timer")
    assert len(prune["OnCalendar"]) == 1
    result = subprocess.run([analyze, "calendar", "--iterations=3", prune["OnCalendar"][0]], capture_output=True,
                            text=True, timeout=30, check=True, env={**os.environ, "TZ": "UTC"})
    times = [datetime.strptime(found, "%Y-%m-%d %H:%M:%S")
             for found in re.findall(r"(?:Next elapse|Iter\. #\d): \w+ (\S+ \S+)", result.stdout)]
    assert len(times) == 3, result.stdout
    assert {b - a for a, b in itertools.pairwise(times)} == {timedelta(days=1)}
    assert times[0].time() == datetime.strptime("03:30", "%H:%M").time()
    assert seconds(analyze, prune["RandomizedDelaySec"][0]) <= 3600
    # the check reads systemd's own semantics: the interval as it was once broken is refused
    assert seconds(analyze, "5d") != 5 * 60 and seconds(analyze, "5m") == 5 * 60


def run_unit_command(name, key, env, index=-1):
    """Run a unit's Exec line as systemd would: its WorkingDirectory, its environment, paths pointed here."""
    service = unit(name)
    argv = shlex.split(service[key][index].replace("/srv/videoapi/.venv/bin/python", sys.executable))
    workdir = service["WorkingDirectory"][0].replace("/srv/videoapi", str(ROOT))
    return subprocess.run(argv, cwd=workdir, env=env, capture_output=True, text=True, timeout=180)


def test_migrations_are_one_deliberate_step_not_every_start(tmp_path):
    """videoapi.service never migrates (hosts starting together would race); videoapi-migrate.service does."""
    service, migrate = unit("videoapi.service"), unit("videoapi-migrate.service")
    assert "videoapi-migrate.service" in " ".join(service["After"])
    for key in ("Wants", "Requires", "BindsTo", "Requisite", "Upholds"):  # ordered after it, never pulling it in
        assert "videoapi-migrate" not in " ".join(service.get(key, [])), key
    assert "WantedBy" not in migrate and migrate["Type"] == ["oneshot"]  # started by hand, on one host
    # refused while a migration is missing, the service retries until it is in: no start limit gives up on it
    assert service["Restart"] == ["on-failure"] and service["StartLimitIntervalSec"] == ["0"]
    commands = [c for key in ("ExecStartPre", "ExecStart", "ExecStartPost") for c in service.get(key, [])]
    assert [c for c in commands if " migrate" in c] == [c for c in commands if " migrate --check" in c] != []

    database = tmp_path / "fresh.sqlite3"
    values = env_file()
    values.update(DJANGO_SECRET_KEY="k" * 10 + "-tests-only-migrate-0123456789abcdefghijklmnop",
                  DATABASE_URL=f"sqlite:///{database}", VIDEOAPI_STATE_DIR=str(tmp_path / "state"),
                  VIDEOAPI_TEMP_ROOT=str(tmp_path / "renders"))
    env = clean_env(**values)

    def tables():
        with sqlite3.connect(database) as db:
            return [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]

    # the service's own start, on a database this release has not migrated: refused, and nothing written
    refused = run_unit_command("videoapi.service", "ExecStartPre", env)
    assert refused.returncode == 1, refused.stderr
    assert not database.exists() or tables() == []
    # the deliberate step migrates; then the service starts
    done = run_unit_command("videoapi-migrate.service", "ExecStart", env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert {"django_migrations", "renders_renderlog"} <= set(tables())
    started = run_unit_command("videoapi.service", "ExecStartPre", env)
    assert started.returncode == 0, started.stdout + started.stderr


def test_check_deploy_is_clean_with_the_documented_settings(tmp_path):
    values = env_file()
    assert values["DJANGO_SECRET_KEY"].startswith("change-me")
    values.update(DJANGO_SECRET_KEY="k" * 10 + "-tests-only-deploy-check-0123456789abcdefghijklmnop",
                  VIDEOAPI_STATE_DIR=str(tmp_path / "state"), VIDEOAPI_TEMP_ROOT=str(tmp_path / "renders"))
    command = [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"]
    result = subprocess.run(command, cwd=ROOT, env=clean_env(**values), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout
    # the HTTPS switch is what makes it clean
    values["DJANGO_HTTPS"] = "false"
    plain = subprocess.run(command, cwd=ROOT, env=clean_env(**values), capture_output=True, text=True, timeout=120)
    assert plain.returncode != 0 and "SESSION_COOKIE_SECURE" in plain.stderr + plain.stdout
    # the placeholder key is refused outright
    values.update(DJANGO_HTTPS="true", DJANGO_SECRET_KEY="change-me")
    refused = subprocess.run(command, cwd=ROOT, env=clean_env(**values), capture_output=True, text=True, timeout=120)
    assert refused.returncode != 0 and "placeholder" in refused.stderr


@contextlib.contextmanager
def syslog(directory: Path):
    """A syslog socket for `logger`: cron's PATH with a `logger` in front that runs the real one against it."""
    real = shutil.which("logger", path="/usr/bin:/bin")
    if not real:
        pytest.skip("logger is not installed (Debian package bsdutils)")
    bindir = directory / "bin"
    bindir.mkdir()
    path = directory / "log.sock"
    (bindir / "logger").write_text(f'#!/bin/sh\nexec {real} --socket-errors=on --socket={path} "$@"\n')
    (bindir / "logger").chmod(0o755)
    messages = []
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(0.2)

        def received():
            with contextlib.suppress(TimeoutError):
                while True:
                    messages.append(sock.recv(65536).decode())
            return messages

        yield f"{bindir}:/usr/bin:/bin", received


@pytest.mark.django_db(transaction=True)  # the cron jobs are other processes: they see committed rows only
def test_crontab_lines_run_as_written_and_log_to_syslog(tmp_path):
    """Each crontab line, only its paths pointed here as the README tells an operator, sweeps or prunes for real."""
    text = (DEPLOY / "crontab").read_text()
    assert re.search(r"^SHELL=/bin/sh$", text, re.M)
    jobs = {}
    for line in text.splitlines():
        if line.strip() and not line.startswith("#") and "=" not in line.split()[0]:
            fields = line.split(maxsplit=5)
            jobs[fields[5].split("manage.py ")[1].split()[0]] = (fields[:5], fields[5])
    assert set(jobs) == {"sweep_temp", "prune_renders"}
    # the same commands as the systemd units (output flags aside)
    for name, service in [("sweep_temp", "videoapi-sweep.service"), ("prune_renders", "videoapi-prune.service")]:
        assert unit(service)["ExecStart"][0].replace("/srv/videoapi/", "").replace(" --json", "") in jobs[name][1]

    # something for each job to do: a dead worker's workspace, a render log from 40 days ago
    leftover = Path(settings.VIDEOAPI_TEMP_ROOT) / f"trim_{uuid.uuid4()}"
    leftover.mkdir(mode=0o700, parents=True)
    (leftover / ".lock").touch()
    (leftover / "upload_1.bin").write_bytes(b"x" * 1000)
    os.utime(leftover, (time.time() - 3600, time.time() - 3600))
    old = RenderLog.objects.create(endpoint="trim", status="succeeded", cleanup_status="deleted")
    RenderLog.objects.filter(id=old.id).update(received_at=timezone.now() - timedelta(days=40))
    kept = RenderLog.objects.create(endpoint="trim", status="succeeded", cleanup_status="deleted")

    envfile = tmp_path / "videoapi.env"
    envfile.write_text(f"DJANGO_SETTINGS_MODULE=tests.settings\nVIDEOAPI_TEMP_ROOT={settings.VIDEOAPI_TEMP_ROOT}\n"
                       f"VIDEOAPI_STATE_DIR={settings.STATE_DIR}\nDATABASE_URL={os.environ['DATABASE_URL']}\n"
                       "VIDEOAPI_SWEEP_GRACE=60\n")
    venv_python = ROOT / ".venv" / "bin" / "python"
    with syslog(tmp_path) as (path, received), contextlib.ExitStack() as cleanup:
        cleanup.callback(shutil.rmtree, leftover, ignore_errors=True)  # even if the sweep fails
        for name, (_schedule, command) in jobs.items():
            command = command.replace("/srv/videoapi", str(ROOT)).replace("/etc/videoapi/videoapi.env", str(envfile))
            if not venv_python.exists():
                command = command.replace(".venv/bin/python", sys.executable)
            result = subprocess.run(["/bin/sh", "-c", command], capture_output=True, text=True, timeout=120,
                                    env={"PATH": path, "HOME": str(tmp_path), "SHELL": "/bin/sh",
                                         "VIDEOAPI_TEST_DIR": os.environ["VIDEOAPI_TEST_DIR"]})
            assert result.returncode == 0 and not result.stdout and not result.stderr, (name, result)
        lines = received()
    assert not leftover.exists()
    assert list(RenderLog.objects.values_list("id", flat=True)) == [kept.id]
    sweep = [m for m in lines if " videoapi-sweep: " in m]
    prune = [m for m in lines if " videoapi-prune: " in m]
    assert any("deleted 1 (" in m and "errors 0" in m for m in sweep), lines
    assert any("deleted 1 render log row(s) older than 30d" in m for m in prune), lines
    assert len(sweep) + len(prune) == len(lines)


def test_the_docs_quote_the_shipped_files():
    """docs/OPERATING.md's cron line is deploy/crontab's, and docs/DEPLOYING.md's install steps copy every unit
    shipped (and nothing else), run the migration and enable the service, its worker and the timers."""
    import fnmatch

    operating, deploying = ((ROOT / "docs" / name).read_text() for name in ("OPERATING.md", "DEPLOYING.md"))
    crontab = [line for line in (DEPLOY / "crontab").read_text().splitlines() if line[:1] in "*0123456789"]
    quoted = [line.strip() for line in operating.splitlines() if re.match(r"\s*[*\d/,-]+( [*\d/,-]+){4} \S", line)]
    assert quoted and set(quoted) <= set(crontab), quoted
    [copy] = [line for line in deploying.splitlines() if line.startswith("cp deploy/systemd/")]
    patterns = [word.removeprefix("deploy/systemd/") for word in copy.split()[1:-1]]
    shipped = sorted(path.name for path in (DEPLOY / "systemd").iterdir())
    assert sorted(shipped) == sorted(UNITS)
    copied = sorted(name for name in shipped if any(fnmatch.fnmatch(name, pattern) for pattern in patterns))
    assert copied == sorted(UNITS), (patterns, copied)
    assert "systemctl start videoapi-migrate.service" in deploying
    [enable] = [line for line in deploying.splitlines() if line.startswith("systemctl enable --now")]
    assert set(enable.split()[3:]) == {"videoapi.service", "videoapi-worker.service", "videoapi-sweep.timer",
                                       "videoapi-prune.timer"}


def test_nginx_site_matches_the_service_settings(tmp_path):
    text = (DEPLOY / "nginx" / "videoapi.conf").read_text()
    directives = dict(re.findall(r"^\s*(\w+)\s+([^;{]+);", text, re.M))
    assert (int(directives["client_max_body_size"]) == production_settings.DEFAULT_MAX_UPLOAD_BYTES
            == int(SHIPPED_BODY_LIMIT))
    assert directives["proxy_request_buffering"] == "off"
    assert directives["proxy_max_temp_file_size"] == "0"
    assert directives["limit_conn"].startswith("videoapi_per_client") and directives["client_body_timeout"] == "30s"
    longest_render = production_settings.DEFAULT_FFMPEG_TIMEOUT + production_settings.DEFAULT_SLOT_WAIT_TIMEOUT
    for name in ("proxy_read_timeout", "proxy_send_timeout"):
        assert int(directives[name].rstrip("s")) > longest_render, name
    if not nginx_binary():
        pytest.skip("nginx is not installed (Debian package nginx-light); the syntax check needs it")
    cert, key = self_signed_cert(tmp_path)
    site = render_site(["127.0.0.1:9"], free_port(), free_port(), cert, key, 1024)
    result = Nginx(tmp_path, site).check_config()
    assert result.returncode == 0, result.stderr


# ---- scripts/serve: gunicorn and its render worker, started and stopped together --------------------------


def serve_here(directory: Path):
    """scripts/serve as written, beside stand-ins for the two files it sources to install things (bootstrap.sh:
    the virtualenv, here this interpreter's; system-packages.sh: the fonts, here nothing to install)."""
    serve = (ROOT / "scripts" / "serve").read_text()
    for sourced in ("bootstrap.sh", "system-packages.sh"):
        assert f'source "$(dirname "$0")/{sourced}"' in serve
    bootstrap = (ROOT / "scripts" / "bootstrap.sh").read_text()
    assert 'cd "$(dirname "${BASH_SOURCE[0]}")/.."' in bootstrap and 'export PATH="$PWD/.venv/bin:$PATH"' in bootstrap
    scripts = directory / "scripts"
    scripts.mkdir()
    (scripts / "serve").write_text(serve)
    (scripts / "serve").chmod(0o755)
    (scripts / "bootstrap.sh").write_text(
        f"set -euo pipefail\ncd {shlex.quote(str(ROOT))}\n"
        f"export PATH={shlex.quote(str(Path(sys.executable).parent))}:$PATH\n")
    (scripts / "system-packages.sh").write_text("ensure_packages() { :; }\nFONT_PACKAGES_LIST=()\n")
    return scripts / "serve"


def children(pid):
    found = {}
    for entry in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError):
            if int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found[int(entry)] = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    return found


def alive(pid):
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def healthy(port) -> bool:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", "/healthz")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


def descendants(pid):
    """{pid: command line} of every process below `pid`."""
    found, todo = {}, [pid]
    while todo:
        below = children(todo.pop())
        found.update(below)
        todo.extend(below)
    return found


def worker_of(pid):
    """The render_worker scripts/serve started (under its supervisor), or None."""
    return next((found for found, line in descendants(pid).items() if "manage.py render_worker --exit-with " in line),
                None)


@contextlib.contextmanager
def served_by_script(directory: Path, **extra_env):
    """scripts/serve running in a process group of its own (as in a terminal): (address, gunicorn master,
    worker pid, log)."""
    port = free_port()
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "VIDEOAPI_BIND": f"127.0.0.1:{port}",
           "GUNICORN_WORKERS": "1", "GUNICORN_THREADS": "4", "GUNICORN_ACCESS_LOG": "", "VIDEOAPI_WARM_WORKERS": "0",
           **extra_env}
    log = directory / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(serve_here(directory))], env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        wait_port(port, proc, lambda: log.read_text()[-3000:], seconds=60)
        # a gunicorn worker answering, not only the master's socket: a signal sent while the worker still
        # boots is another test (gunicorn's), not this one's
        assert wait_for(lambda: healthy(port), seconds=30), log.read_text()[-3000:]
        worker = wait_for(lambda: worker_of(proc.pid), seconds=10)
        assert worker, descendants(proc.pid)
        assert wait_for(lambda: "event=worker_started" in log.read_text(), seconds=30), log.read_text()[-3000:]
        yield f"127.0.0.1:{port}", proc, worker, log
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # whatever a failed test left running
        proc.wait()


@pytest.mark.server
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_serve_starts_a_render_worker_and_stops_it_with_gunicorn(tmp_path, token, clips):
    (tmp_path / "term").mkdir()
    with served_by_script(tmp_path / "term") as (address, master, worker, log):
        code, _, job = submit(address, token, fields={"video": clips.basic, "start": "0.5", "end": "1.5"})
        assert code == 202, job
        job, _ = poll(address, token, job["id"], seconds=30)
        assert job["status"] == "succeeded", (job, log.read_text()[-2000:])
        code, _, body = call(address, "GET", f"/api/jobs/{job['id']}/result", token)
        assert code == 200 and len(body) == job["result"]["bytes"]
        master.send_signal(signal.SIGTERM)  # systemd's or an operator's stop of gunicorn
        assert master.wait(timeout=30) == 0
        assert wait_for(lambda: not alive(worker), seconds=5), "the worker outlived gunicorn"
        assert "event=companion_gone" in log.read_text() and "event=worker_stopped" in log.read_text()
        assert "restarting" not in log.read_text()  # a stop is not a crash

    (tmp_path / "kill").mkdir()
    with served_by_script(tmp_path / "kill") as (address, master, worker, log):
        master.send_signal(signal.SIGKILL)  # the master dies without a word: the worker notices its parent gone
        master.wait()
        assert wait_for(lambda: not alive(worker), seconds=5), "the worker outlived a killed gunicorn"
        assert "event=worker_stopped" in log.read_text()

    (tmp_path / "ctrl-c").mkdir()
    with served_by_script(tmp_path / "ctrl-c") as (address, master, worker, log):
        # Ctrl-C in the terminal: the whole foreground group (bash starts `&` commands with SIGINT ignored; the
        # worker sets its own handler, and stops on its parent's exit anyway)
        os.killpg(master.pid, signal.SIGINT)
        master.wait(timeout=30)
        assert wait_for(lambda: not alive(worker), seconds=5), "Ctrl-C left the worker running"
        assert "event=worker_stopping signal=2" in log.read_text()


@pytest.mark.server
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_serve_restarts_a_killed_worker_whose_running_job_fails_without_anyone_asking(tmp_path, token):
    long_clip = media.lavfi_clip(tmp_path / "six.mp4", seconds=6, size="160x90")
    lease = 6
    with served_by_script(tmp_path, VIDEOAPI_FFMPEG=readrate_ffmpeg(tmp_path, rate=1.0),
                          VIDEOAPI_JOB_LEASE=str(lease)) as (address, master, worker, log):
        code, _, job = submit(address, token, fields={"video": long_clip, "start": "0"})
        assert code == 202, job
        assert wait_for(lambda: RenderLog.objects.get(pk=job["id"]).status == "rendering" or None, seconds=20)
        os.kill(worker, signal.SIGKILL)  # out of memory, say; nobody polls the job from here on
        started = time.monotonic()
        failed = wait_for(lambda: (lambda row: row if row.status == "failed" else None)(
            RenderLog.objects.get(pk=job["id"])), seconds=lease + 10)
        assert failed and failed.error_code == "worker_lost", RenderLog.objects.get(pk=job["id"]).status
        assert time.monotonic() - started < lease  # the restarted worker noticed the dead lock at once
        assert wait_for(lambda: not Path(failed.workspace).exists() or None, seconds=10), "its upload stayed"
        again = wait_for(lambda: (lambda pid: pid if pid and pid != worker else None)(worker_of(master.pid)),
                         seconds=10)
        assert again, descendants(master.pid)
        assert "serve: render_worker exited (code 137)" in log.read_text() and "restarting it in 1 s" in log.read_text()
        code, _, job = submit(address, token, fields={"video": long_clip, "start": "5"})  # the new worker serves
        job, _ = poll(address, token, job["id"], seconds=30)
        assert job["status"] == "succeeded", job
        assert call(address, "GET", f"/api/jobs/{job['id']}/result", token)[0] == 200
        master.send_signal(signal.SIGTERM)
        assert master.wait(timeout=30) == 0
        assert wait_for(lambda: not alive(again), seconds=5), "the restarted worker outlived gunicorn"


# ---- the stack: nginx in front of two hosts on one PostgreSQL -------------------------------------------


@dataclass
class Host:
    name: str
    address: str
    proc: object
    env: dict
    temp_root: Path
    home: Path
    worker: object = None  # its render_worker (the same environment as its gunicorn)

    def workspaces(self):
        return sorted(p.name for p in self.temp_root.iterdir() if p.name != ".slots") if self.temp_root.exists() else []

    def log(self):
        port = self.address.rsplit(":", 1)[1]
        return (Path(os.environ["VIDEOAPI_TEST_DIR"]) / f"gunicorn-{port}.log").read_text(errors="replace")


@dataclass
class Stack:
    hosts: dict
    nginx: Nginx
    https_port: int
    http_port: int
    upstreams: list = field(default_factory=list)


def slow_ffmpeg(directory: Path):
    """FFmpeg that first sleeps on chosen trims: `-ss 1.234` 40 s (to be killed), `-ss 0.777` 6 s."""
    script = directory / "ffmpeg-slow"
    script.write_text(f'#!/bin/sh\ncase "$*" in\n  *"-ss 1.234"*) sleep 40 ;;\n  *"-ss 0.777"*) sleep 6 ;;\n'
                      f'esac\nexec {ffmpeg_binary()} "$@"\n')
    script.chmod(0o755)
    return str(script)


@pytest.fixture(scope="module")
def stack(django_db_setup, tmp_path_factory):
    if connection.vendor != "postgresql":
        pytest.skip("runs in the PostgreSQL pass of scripts/test: the two hosts share one PostgreSQL database")
    if not nginx_binary():
        pytest.skip("nginx is not installed (Debian package nginx-light) and could not be installed")
    workdir = tmp_path_factory.mktemp("stack")
    ffmpeg = slow_ffmpeg(workdir)
    with contextlib.ExitStack() as exits:
        hosts = {}
        for name in ("host-a", "host-b"):
            base = workdir / name
            home = base / "home"  # each host's own $HOME and $XDG_RUNTIME_DIR: nothing of gunicorn's may appear there
            (home / "run").mkdir(parents=True)
            env = {"VIDEOAPI_HOST_ID": name, "VIDEOAPI_TEMP_ROOT": str(base / "renders"),
                   "VIDEOAPI_STATE_DIR": str(base / "state"), "VIDEOAPI_FFMPEG": ffmpeg,
                   "FORWARDED_ALLOW_IPS": "127.0.0.1", "DJANGO_HTTPS": "true", "VIDEOAPI_SWEEP_GRACE": "0",
                   # the site's name, as deploy/videoapi.env has it, and the address the tests' clients dial
                   "DJANGO_ALLOWED_HOSTS": env_file()["DJANGO_ALLOWED_HOSTS"] + ",127.0.0.1",
                   "HOME": str(home), "XDG_RUNTIME_DIR": str(home / "run")}
            address, proc = exits.enter_context(gunicorn(env, workers=2, threads=4))
            worker = exits.enter_context(render_worker(env))
            hosts[name] = Host(name, address, proc, env, base / "renders", home, worker)
        cert, key = self_signed_cert(workdir)
        http_port, https_port = free_port(), free_port()
        upstreams = [h.address for h in hosts.values()]
        # a short client_body_timeout (the shipped 30 s, shortened) so stalled clients are cut off in the test's time
        site = render_site(upstreams, http_port, https_port, cert, key, settings.VIDEOAPI_MAX_UPLOAD_BYTES, "2s",
                           routes={h.name: h.address for h in hosts.values()})
        (workdir / "nginx").mkdir()
        nginx = Nginx(workdir / "nginx", site)
        assert nginx.check_config().returncode == 0
        nginx.start(https_port)
        exits.callback(nginx.stop)
        yield Stack(hosts, nginx, https_port, http_port, upstreams)


def render_request(port, path, fields, token, source=CLIENT):
    return https(port, "POST", path, fields=fields, source=source, headers={"Authorization": f"Token {token}"})


def assert_nothing_left(stack):
    assert wait_for(lambda: not any(h.workspaces() for h in stack.hosts.values()), seconds=10), \
        {n: h.workspaces() for n, h in stack.hosts.items()}
    assert stack.nginx.temp_entries() == [] and stack.nginx.open_temp_files() == []


@pytest.mark.server
@pytest.mark.django_db(transaction=True)
def test_mixed_renders_through_nginx_on_two_hosts(stack, token, clips, tmp_path, django_user_model):
    jobs = []
    for i in range(20):
        kind = ["intro", "trim", "concatenate", "closing", "trim-preview"][i % 5]
        if kind == "intro":
            jobs.append(("/api/intro/render", {"video": clips.basic, "team": f"Team {i}", "full_name": "Ada Lovelace",
                                               "role": "Engineer"}, "house"))
        elif kind == "closing":
            jobs.append(("/api/closing/render", {"video": clips.basic, "cta": "Sign up"}, "house"))
        elif kind == "trim":
            jobs.append(("/api/trim", {"video": clips.basic, "start": "0.5", "end": "1.5"}, "trim"))
        elif kind == "concatenate":
            jobs.append(("/api/concatenate", {"videos": [clips.basic, clips.basic]}, "join"))
        else:
            jobs.append(("/api/trim/preview", {"video": clips.basic, "start": "0", "duration": "1"}, "preview"))

    def run(job):
        path, fields, kind = job
        return kind, render_request(stack.https_port, path, fields, token)

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(run, jobs))
    ids = []
    for index, (kind, (status, headers, body)) in enumerate(results):
        assert status == 200, (jobs[index][0], body[:300])
        ids.append(headers["x-render-id"])
        out = tmp_path / f"out{index}.mp4"
        out.write_bytes(body)
        info = media.probe(out)
        assert info["vcodec"] == "h264" and info["faststart"]
        if kind == "house":
            assert (info["width"], info["height"]) == tuple(settings.VIDEOAPI_CANVAS)
        if kind in ("trim", "join"):
            assert abs(info["v_duration"] - {"trim": 1.0, "join": 4.0}[kind]) < 0.1
        if kind != "preview":
            assert info["acodec"] == "aac"
    logs = RenderLog.objects.filter(id__in=ids)
    assert RenderLog.objects.count() == 20 == len(set(ids))  # one row per request: none lost, none doubled
    assert {str(i) for i in logs.values_list("id", flat=True)} == set(ids)
    assert set(logs.values_list("host", flat=True)) == {"host-a", "host-b"}
    assert set(logs.values_list("client_address", flat=True)) == {CLIENT}  # the client, not nginx
    assert set(logs.values_list("cleanup_status", flat=True)) == {"deleted"}
    assert_nothing_left(stack)

    # The admin over HTTPS behind the proxy: secure cookies, CSRF passes with no trusted-origins setting.
    django_user_model.objects.create_superuser("ops", password="ops-password-1234")
    origin = f"https://127.0.0.1:{stack.https_port}"
    status, headers, page = https(stack.https_port, "GET", "/admin/login/")
    assert status == 200
    csrf_cookie = headers["set-cookie"]
    assert "Secure" in csrf_cookie
    csrf = re.search(r"csrftoken=([^;]+)", csrf_cookie)[1]
    form_token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page)[1].decode()
    status, headers, _ = https(stack.https_port, "POST", "/admin/login/?next=/admin/", headers={
        "Cookie": f"csrftoken={csrf}", "Origin": origin, "Referer": f"{origin}/admin/login/",
        "Content-Type": "application/x-www-form-urlencoded", "Host": f"127.0.0.1:{stack.https_port}"},
        body=f"csrfmiddlewaretoken={form_token}&username=ops&password=ops-password-1234&next=/admin/")
    assert status == 302, "login through the proxy failed (CSRF or scheme)"
    session_cookie = headers["set-cookie"]
    assert "sessionid=" in session_cookie and "Secure" in session_cookie and "HttpOnly" in session_cookie
    session = re.search(r"sessionid=([^;]+)", session_cookie)[1]
    status, _, page = https(stack.https_port, "GET", "/admin/renders/renderlog/?host=host-b",
                            headers={"Cookie": f"sessionid={session}"})
    assert status == 200 and b"host-b" in page
    status, _, page = https(stack.https_port, "GET", "/admin/renders/renderlog/",
                            headers={"Cookie": f"sessionid={session}"})
    assert status == 200 and b"host-a" in page and b"host-b" in page


def send_head_only(port, path, length, token=None, source=CLIENT):
    """Send a POST's headers (declaring `length` bytes of body) and no body; return the answer."""
    sock = tls_socket(port, source)
    lines = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Content-Type: multipart/form-data; boundary=x",
             f"Content-Length: {length}", "Connection: close"]
    if token:
        lines.append(f"Authorization: Token {token}")
    started = time.monotonic()
    with sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        status, headers, rest = read_head(sock)
        with contextlib.suppress(OSError):
            while len(rest) < int(headers.get("content-length", 0)):
                chunk = sock.recv(4096)
                if not chunk:
                    break
                rest += chunk
    return status, headers, rest, time.monotonic() - started


@pytest.mark.server
@pytest.mark.django_db(transaction=True)
def test_refusals_arrive_before_the_body_is_sent(stack, token):
    limit = settings.VIDEOAPI_MAX_UPLOAD_BYTES
    status, _headers, body, seconds = send_head_only(stack.https_port, "/api/trim", limit + 1, token)
    assert status == 413 and seconds < 5
    assert json.loads(body)["code"] == "payload_too_large" and str(limit) in json.loads(body)["detail"]
    # 401 is the service's own answer, streamed back through nginx with no body sent
    status, _headers, body, seconds = send_head_only(stack.https_port, "/api/trim", 10_000_000)
    assert status == 401 and seconds < 5
    assert json.loads(body)["code"] == "not_authenticated"
    assert RenderLog.objects.count() == 0  # neither reached a render
    assert_nothing_left(stack)


@pytest.mark.server
@pytest.mark.django_db(transaction=True)  # same group as the other stack tests: pytest-django orders by database use
def test_operator_paths_only_from_the_named_addresses(stack):
    for path in ("/metrics", "/admin/"):
        status, _, _ = https(stack.https_port, "GET", path, source=OUTSIDER)
        assert status == 403, path
    status, _, body = https(stack.https_port, "GET", "/metrics")
    assert status == 200 and b"videoapi_workspaces_in_flight" in body
    status, headers, _ = https(stack.https_port, "GET", "/admin/")
    assert status == 302 and "/admin/login/" in headers["location"]
    # /readyz tells free disk bytes, fonts and the database's state: the operator's and the probes' only
    status, _, body = https(stack.https_port, "GET", "/readyz", source=OUTSIDER)
    assert status == 403 and b"fonts" not in body and b"free" not in body
    status, _, body = https(stack.https_port, "GET", "/readyz")
    assert status == 200 and json.loads(body)["checks"]["database"]["ok"] is True
    status, _, _ = https(stack.https_port, "GET", "/healthz", source=OUTSIDER)  # public paths stay public
    assert status == 200
    status, _, _ = https(stack.https_port, "GET", "/api/schema", source=OUTSIDER)
    assert status == 200


def plain_http(port, head):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head.encode())
        return read_response(sock)


@pytest.mark.server
@pytest.mark.django_db(transaction=True)
def test_plain_http_answers_the_health_probe_and_redirects_the_rest(stack):
    """Port 80: a load balancer's probe gets 200 whatever Host it sends (none, the address it dialled, the name)."""
    for head in ["GET /healthz HTTP/1.0\r\n\r\n",
                 "GET /healthz HTTP/1.1\r\nHost: 10.20.30.40\r\nConnection: close\r\n\r\n",
                 f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{stack.http_port}\r\nConnection: close\r\n\r\n",
                 "GET /healthz HTTP/1.1\r\nHost: videos.example.com\r\nConnection: close\r\n\r\n"]:
        for _ in stack.hosts:  # nginx takes turns: each host answers
            status, _, body = plain_http(stack.http_port, head)
            assert status == 200 and json.loads(body) == {"status": "ok"}, (head, status, body[:300])
    # and no host logged a refused Host header (Django's DisallowedHost, with its traceback)
    for host in stack.hosts.values():
        assert "Invalid HTTP_HOST" not in host.log(), host.name
    # everything else on plain http goes to https
    status, headers, _ = plain_http(stack.http_port, f"GET /api/trim HTTP/1.1\r\nHost: 127.0.0.1:{stack.http_port}\r\n"
                                                     "Connection: close\r\n\r\n")
    assert status == 308 and headers["location"].startswith("https://")
    status, headers, _ = plain_http(stack.http_port, "GET /readyz HTTP/1.1\r\nHost: 10.20.30.40\r\n"
                                                     "Connection: close\r\n\r\n")
    assert status == 308
    # the log check above sees a refused Host: a name nobody allowed, passed on by the https site
    for _ in range(10):  # until nginx has passed one to each host
        status, _, _ = https(stack.https_port, "GET", "/healthz", headers={"Host": "not-ours.example.org"})
        assert status == 400
        if all("Invalid HTTP_HOST" in host.log() for host in stack.hosts.values()):
            break
    assert all("Invalid HTTP_HOST" in host.log() for host in stack.hosts.values())


@pytest.mark.server
@pytest.mark.django_db(transaction=True)
def test_hosts_open_no_shared_control_socket(stack):
    """gunicorn's control socket is off: no instance binds one, none appears under $HOME or $XDG_RUNTIME_DIR."""
    for host in stack.hosts.values():
        assert host.proc.poll() is None
        assert named_unix_sockets(host.proc.pid) == [], host.name
        assert [str(p) for p in host.home.rglob("*") if "gunicorn" in p.name] == [], host.name
        assert "control socket" not in host.log().lower(), host.name


def start_download(port, token, clip, rcvbuf=16384):
    sock = tls_socket(port, CLIENT, rcvbuf=rcvbuf)
    body, ctype = multipart({"video": clip, "start": "0", "mode": "fast"})
    sock.sendall((f"POST /api/trim HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: {ctype}\r\n"
                  f"Content-Length: {len(body)}\r\nAuthorization: Token {token}\r\nConnection: close\r\n\r\n").encode()
                 + body)
    status, headers, first = read_head(sock)
    assert status == 200
    return sock, headers, first


def stalled_download_temp_files(nginx, port, token, clip):
    """Start a download, stall it, and return what nginx holds in its temp dirs meanwhile; then finish it."""
    sock, headers, got = start_download(port, token, clip)
    with sock:
        time.sleep(1.5)  # the client reads nothing: nginx's buffers fill up
        held = nginx.open_temp_files()
        total = int(headers["content-length"])
        received = len(got)
        while received < total:
            chunk = sock.recv(1 << 16)
            if not chunk:
                break
            received += len(chunk)
    return held, received, total, headers


@pytest.mark.server
@pytest.mark.django_db(transaction=True)
def test_downloads_are_not_spooled_and_a_dropped_client_leaves_nothing(stack, token, big_clip, tmp_path):
    held, received, total, headers = stalled_download_temp_files(stack.nginx, stack.https_port, token, big_clip)
    assert total > 5_000_000 and received == total
    assert held == []  # nothing of the render in nginx's temp files, even while the client stalls
    log = RenderLog.objects.get(id=headers["x-render-id"])
    assert wait_for(lambda: not Path(log.workspace).exists(), seconds=10)
    assert_nothing_left(stack)

    # The client drops half way: the host notices through nginx and cleans up.
    sock, headers, got = start_download(stack.https_port, token, big_clip)
    with sock:
        while len(got) < 64 * 1024:
            got += sock.recv(8192)
    log = RenderLog.objects.get(id=headers["x-render-id"])
    assert wait_for(lambda: RenderLog.objects.get(id=log.id).cleanup_status == "deleted", seconds=15)
    assert not Path(log.workspace).exists()
    assert_nothing_left(stack)

    # The check above can see spooling: the same site without proxy_max_temp_file_size 0 spools to disk.
    site = (stack.nginx.workdir / "site.conf").read_text()
    assert "proxy_max_temp_file_size 0;" in site
    port = free_port()
    site = (site.replace("proxy_max_temp_file_size 0;", "")
            .replace(f"listen 127.0.0.1:{stack.https_port} ssl;", f"listen 127.0.0.1:{port} ssl;")
            .replace(f"listen 127.0.0.1:{stack.http_port};", f"listen 127.0.0.1:{free_port()};"))
    (tmp_path / "default").mkdir()
    spooling = Nginx(tmp_path / "default", site)
    spooling.start(port)
    try:
        held, received, total, _ = stalled_download_temp_files(spooling, port, token, big_clip)
    finally:
        spooling.stop()
    assert received == total
    assert held, "nginx's default buffering should spool a stalled download to proxy_temp_path"
    assert_nothing_left(stack)


@pytest.mark.server
@pytest.mark.django_db(transaction=True)
def test_stalled_uploads_cannot_starve_renders(stack, token, clips):
    """20 uploads that stall after their headers, from one address: renders from others go on; nginx cuts them off."""
    body, ctype = multipart({"video": clips.basic, "start": "0"})
    stalled, refused = [], 0
    for _ in range(20):
        sock = tls_socket(stack.https_port, OUTSIDER)
        sock.sendall((f"POST /api/trim HTTP/1.1\r\nHost: 127.0.0.1:{stack.https_port}\r\nContent-Type: {ctype}\r\n"
                      f"Content-Length: {len(body)}\r\nAuthorization: Token {token}\r\n\r\n").encode() + body[:1000])
        stalled.append(sock)
    time.sleep(0.5)
    started = time.monotonic()
    status, _, _ = render_request(stack.https_port, "/api/trim", {"video": clips.basic, "start": "0.5"}, token)
    assert status == 200 and time.monotonic() - started < 10  # another client renders at once
    closed = 0
    for sock in stalled:  # the per-address limit refused most at once; client_body_timeout ends the rest
        with sock:
            try:
                status, _, _ = read_head(sock)
                refused += status == 429
                closed += status in (408, 429, 400, 502)
            except (ConnectionError, OSError):
                closed += 1
    assert refused >= 20 - 8 and closed == 20
    status, _, _ = render_request(stack.https_port, "/api/trim", {"video": clips.basic, "start": "0.5"}, token,
                                  source=OUTSIDER)
    assert status == 200  # and the address may render again once its stalled uploads are gone
    assert_nothing_left(stack)


@pytest.mark.server
@pytest.mark.django_db(transaction=True)
def test_database_outage_is_503_and_recovery_needs_no_restart(stack, token, clips):
    cluster = Cluster.from_env()
    if cluster is None:
        pytest.skip("the PostgreSQL cluster was not started by tests.pgcluster")
    fields = {"video": clips.basic, "start": "0", "end": "0.5"}

    def burst():
        with ThreadPoolExecutor(8) as pool:
            return [r[0] for r in pool.map(lambda _: render_request(stack.https_port, "/api/trim", fields, token),
                                           range(8))]

    assert burst() == [200] * 8  # every worker thread now holds a database connection
    cluster.stop("fast")
    try:
        for _ in range(4):  # both hosts, several workers
            status, headers, body, seconds = send_head_only(stack.https_port, "/api/trim", 1_000_000, token)
            assert status == 503 and seconds < 5, body
            assert json.loads(body)["code"] == "unavailable" and int(headers["retry-after"]) > 0
        status, _, body = https(stack.https_port, "GET", "/readyz")
        assert status == 503 and json.loads(body)["checks"]["database"]["ok"] is False
    finally:
        cluster.start()
        connections.close_all()  # this process's own connection died with the server
    assert burst() == [200] * 8  # the first request on each stale connection succeeds
    # and each host's render worker, which polled the queue all through the outage, still runs jobs
    for host in stack.hosts.values():
        assert host.worker.poll() is None, (host.name, host.worker.log_path.read_text()[-3000:])
    jobs = [submit_through_nginx(stack, token, {"video": clips.basic, "start": "0", "end": "0.5"}) for _ in range(2)]
    assert {RenderLog.objects.get(id=job["id"]).host for job in jobs} == {"host-a", "host-b"}
    for job in jobs:
        poll_through_nginx(stack, token, job["id"], seconds=20)
        status, _, _ = job_request(stack, "GET", result_path(job["id"]), token)
        assert status == 200
    assert_nothing_left(stack)


# ---- jobs on two hosts: any host answers a job, nginx routes a result to the host that holds it --------------


def job_request(stack, method, path, token, source=CLIENT, headers=None, **kwargs):
    return https(stack.https_port, method, path, source=source,
                 headers={"Authorization": f"Token {token}", **(headers or {})}, **kwargs)


def submit_through_nginx(stack, token, fields):
    status, headers, body = job_request(stack, "POST", "/api/trim", token, fields=fields,
                                        headers={"Prefer": "respond-async"})
    assert status == 202 and headers["location"] == f"/api/jobs/{json.loads(body)['id']}", body
    return json.loads(body)


def poll_through_nginx(stack, token, job_id, until=("succeeded",), seconds=60):
    seen = []

    def done():
        status, _, body = job_request(stack, "GET", f"/api/jobs/{job_id}", token)
        assert status == 200, body  # whichever host nginx asks: the job is in the shared database
        seen.append(json.loads(body))
        return seen[-1] if seen[-1]["status"] in until else None

    job = wait_for(done, seconds)
    assert job, seen[-1:]
    return job


def held_bytes(job_id):
    """The result as it lies on the disk of the host that holds it."""
    log = RenderLog.objects.get(id=job_id)
    return log.host, (Path(log.workspace) / log.result["file"]).read_bytes()


def result_path(job_id):
    return f"/api/jobs/{job_id}/result"


@pytest.mark.server
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_jobs_through_nginx_any_host_routes_each_result_to_its_holder(stack, token, clips, tmp_path):
    address_of = {name: host.address for name, host in stack.hosts.items()}
    jobs = [submit_through_nginx(stack, token, {"video": clips.basic, "start": "0.5", "end": "1.5"})
            for _ in range(6)]
    for job in jobs:
        assert poll_through_nginx(stack, token, job["id"])["result"]["url"].endswith(result_path(job["id"]))
    holders = {job["id"]: RenderLog.objects.get(id=job["id"]).host for job in jobs}
    assert set(holders.values()) == {"host-a", "host-b"}, holders  # each host's worker ran its own
    expected = {job_id: held_bytes(job_id)[1] for job_id in holders}

    # Asked directly, a host that does not hold a result says which host does (never 404, never an empty body).
    some = jobs[0]["id"]
    other = next(name for name in stack.hosts if name != holders[some])
    other_address = address_of[other]
    https_ = {"X-Forwarded-Proto": "https"}  # (the hosts redirect plain http to https; 127.0.0.1 is believed)
    status, headers, body = call(other_address, "GET", result_path(some), token, headers=https_)
    assert status == 421 and json.loads(body)["code"] == "misdirected", body
    assert headers["x-videoapi-host"] == holders[some]
    # from nginx (a trusted proxy) with the shipped site's marker: the internal redirect to the holder instead
    status, headers, body = call(other_address, "GET", result_path(some), token,
                                 headers={**https_, "X-Videoapi-Proxy": "accel"})
    assert status == 200 and body == b""
    assert headers["x-accel-redirect"] == f"/_videoapi/route/{holders[some]}{result_path(some)}"
    # ... but never a second time: after nginx's hop a misplaced result is 421 (a wrong map line cannot loop)
    status, _, body = call(other_address, "GET", result_path(some), token,
                           headers={**https_, "X-Videoapi-Proxy": "accel", "X-Videoapi-Routed": "1"})
    assert status == 421 and json.loads(body)["code"] == "misdirected"
    # The internal location is not reachable from outside.
    status, _, _ = job_request(stack, "GET", f"/_videoapi/route/{holders[some]}{result_path(some)}", token)
    assert status == 404

    # Downloads through nginx, the same holder's results back to back: nginx takes turns, so some reach the
    # holder and some the other host (which redirects them); every one gets the right bytes. What a client sends
    # in the routing headers is replaced by nginx.
    answered = {}
    for job_id in sorted(holders, key=lambda i: holders[i]):
        status, headers, body = job_request(stack, "GET", result_path(job_id), token,
                                            headers={"X-Videoapi-Routed": "1", "X-Videoapi-Proxy": "no"})
        assert status == 200 and body == expected[job_id], (status, body[:300])
        assert headers["x-render-id"] == job_id and headers["content-length"] == str(len(expected[job_id]))
        answered[job_id] = {k: v for k, v in headers.items() if k not in ("date", "x-render-id")}
        (tmp_path / "out.mp4").write_bytes(body)
        info = media.probe(tmp_path / "out.mp4")
        assert info["vcodec"] == "h264" and abs(info["v_duration"] - 1.0) < 0.1
    assert wait_for(lambda: all(stack.nginx.hops(result_path(job_id)) for job_id in holders), seconds=5)  # logged
    hops = {job_id: stack.nginx.hops(result_path(job_id))[-1] for job_id in holders}
    for job_id, path in hops.items():
        assert path[-1] == address_of[holders[job_id]], (job_id, path)  # the holder sent the bytes
    assert any(len(path) == 2 for path in hops.values()), hops  # some went through the other host ...
    assert any(len(path) == 1 for path in hops.values()), hops  # ... some straight to the holder
    for job_id in holders:
        status, _, body = job_request(stack, "GET", result_path(job_id), token)
        assert status == 410 and json.loads(body)["code"] == "gone"  # downloaded: deleted on its host
    assert_nothing_left(stack)
    # A routed download answers exactly the headers of a direct one (a synchronous render's).
    direct = next(answered[job_id] for job_id, path in hops.items() if len(path) == 1)
    assert direct["content-type"] == "video/mp4"
    for job_id, path in hops.items():
        assert answered[job_id] == direct, (path, answered[job_id])


@pytest.mark.server
@pytest.mark.django_db(transaction=True)
def test_a_range_download_through_the_route_and_an_unmapped_host(stack, token, clips):
    job = submit_through_nginx(stack, token, {"video": clips.basic, "start": "0", "end": "1"})
    url = poll_through_nginx(stack, token, job["id"])["result"]["url"]
    assert url == f"https://127.0.0.1:{stack.https_port}{result_path(job['id'])}"  # the public address
    holder, expected = held_bytes(job["id"])
    # HEAD twice (nginx takes turns: one is routed, and nginx keeps it a HEAD): the headers, no bytes, no download
    for _ in range(2):
        status, headers, body = job_request(stack, "HEAD", result_path(job["id"]), token)
        assert status == 200 and body == b"" and headers["content-length"] == str(len(expected))
    assert wait_for(lambda: len(stack.nginx.hops(result_path(job["id"]))) == 2, seconds=5)  # both logged
    assert sorted(map(len, stack.nginx.hops(result_path(job["id"])))) == [1, 2]
    # two partial downloads back to back: nginx sends one of them to the host that does not hold the result
    status, headers, head = job_request(stack, "GET", result_path(job["id"]), token, headers={"Range": "bytes=0-999"})
    assert status == 206 and head == expected[:1000], status
    assert headers["content-range"] == f"bytes 0-999/{len(expected)}"
    status, headers, tail = job_request(stack, "GET", result_path(job["id"]) + "?resume=1", token,
                                        headers={"Range": "bytes=1000-"})
    assert status == 206 and head + tail == expected
    assert wait_for(lambda: len(stack.nginx.hops(result_path(job["id"]) + "?resume=1")) == 1, seconds=5)
    hops = stack.nginx.hops(result_path(job["id"])) + stack.nginx.hops(result_path(job["id"]) + "?resume=1")
    assert sorted(map(len, hops[-2:])) == [1, 2], hops  # one of them was routed (with its Range and its query)
    assert all(path[-1] == stack.hosts[holder].address for path in hops[-2:])
    status, _, body = job_request(stack, "GET", result_path(job["id"]), token)
    assert status == 410  # every byte delivered, by two downloads on two paths: deleted

    # A result held by a host the route map does not name: 502 in the service's envelope, not a hang or a 404.
    ghost = RenderLog.objects.create(
        endpoint="trim", status="succeeded", is_job=True, client_ref=RenderLog.objects.get(id=job["id"]).client_ref,
        host="host-z",
        workspace="/nonexistent/trim_x", output_size=10, result={"file": "out.mp4", "filename": "out.mp4",
                                                                 "content_type": "video/mp4", "headers": {}},
        result_expires_at=timezone.now() + timedelta(hours=1), cleanup_status="deleted")
    status, headers, body = job_request(stack, "GET", result_path(ghost.id), token)
    assert status == 502 and json.loads(body)["code"] == "unavailable", body
    assert_nothing_left(stack)


@pytest.mark.server
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_delete_through_nginx_cancels_a_job_on_either_host(stack, token, clips):
    """Running jobs (FFmpeg slowed 6 s) and finished ones on both hosts, each cancelled through nginx, whichever
    host nginx asks: their FFmpeg stopped, their workspaces gone from the host that held them."""
    running = [submit_through_nginx(stack, token, {"video": clips.basic, "start": "0.777"}) for _ in range(2)]
    finished = [submit_through_nginx(stack, token, {"video": clips.basic, "start": "0.5"}) for _ in range(2)]
    for job in finished:
        poll_through_nginx(stack, token, job["id"])
    assert wait_for(lambda: RenderLog.objects.filter(id__in=[j["id"] for j in running], status="rendering").count()
                    == 2, seconds=20)
    jobs = running + finished
    assert {RenderLog.objects.get(id=j["id"]).host for j in running} == {"host-a", "host-b"}
    assert {RenderLog.objects.get(id=j["id"]).host for j in finished} == {"host-a", "host-b"}
    for job in jobs:
        status, _, body = job_request(stack, "DELETE", f"/api/jobs/{job['id']}", token)
        assert status == 204, body
    started = time.monotonic()
    for job in jobs:
        assert poll_through_nginx(stack, token, job["id"], until=("cancelled",), seconds=5)["status"] == "cancelled"
        status, _, body = job_request(stack, "GET", result_path(job["id"]), token)
        assert status == 410 and json.loads(body)["code"] == "gone"
    assert_nothing_left(stack)  # the running ones stopped, every workspace deleted on its own host
    assert time.monotonic() - started < 10  # not the 6 s sleep plus the render: stopped
    assert wait_for(lambda: {r.cleanup_status for r in RenderLog.objects.filter(id__in=[j["id"] for j in jobs])}
                    <= {"deleted", "swept"}, seconds=5)


@pytest.mark.server
@pytest.mark.django_db(transaction=True)
def test_killed_host_is_swept_by_its_timer_while_the_other_serves(stack, token, clips):
    """Last in this module: it kills one host for good."""
    results = {}

    def call(name, start):
        results[name] = render_request(stack.https_port, "/api/trim", {"video": clips.basic, "start": start}, token)

    doomed = threading.Thread(target=call, args=("doomed", "1.234"))
    doomed.start()
    first = wait_for(lambda: RenderLog.objects.filter(status="rendering").first())
    assert first, "the slow render never started"
    survivor = threading.Thread(target=call, args=("survivor", "0.777"))
    survivor.start()
    second = wait_for(lambda: RenderLog.objects.filter(status="rendering").exclude(id=first.id).first())
    assert second and second.host != first.host, "nginx should spread two renders over the two hosts"
    dead, live = stack.hosts[first.host], stack.hosts[second.host]

    os.killpg(dead.proc.pid, signal.SIGKILL)  # master and workers: the host is gone
    with contextlib.suppress(ProcessLookupError):
        os.killpg(dead.worker.pid, signal.SIGKILL)  # and its render worker
    doomed.join(timeout=30)
    status, _, body = results["doomed"]
    assert status == 502 and json.loads(body)["code"] == "unavailable"  # sent to a host that died: never replayed
    # the other host keeps serving new requests
    status, headers, _ = render_request(stack.https_port, "/api/trim", {"video": clips.basic, "start": "0"}, token)
    assert status == 200 and RenderLog.objects.get(id=headers["x-render-id"]).host == live.name
    assert Path(first.workspace).exists()  # nobody could clean up: the dead host's timer must

    sweep = unit("videoapi-sweep.service")
    argv = shlex.split(sweep["ExecStart"][0].replace("/srv/videoapi/.venv/bin/python", sys.executable))
    workdir = sweep["WorkingDirectory"][0].replace("/srv/videoapi", str(ROOT))
    result = subprocess.run(argv, cwd=workdir, env={**os.environ, **dead.env}, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["deleted"] == [Path(first.workspace).name]
    assert not Path(first.workspace).exists()
    first.refresh_from_db()
    assert (first.cleanup_status, first.status, first.error_code) == ("swept", "failed", "worker_lost")
    second.refresh_from_db()
    assert (second.status, second.cleanup_status) == ("rendering", "pending")  # untouched
    assert Path(second.workspace).exists()

    survivor.join(timeout=60)
    assert results["survivor"][0] == 200
    assert wait_for(lambda: live.workspaces() == [], seconds=10)
    # (recorded just after the workspace is gone)
    assert wait_for(lambda: RenderLog.objects.get(id=second.id).cleanup_status == "deleted", seconds=5)
