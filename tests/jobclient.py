
"""Jobs over real HTTP: submit, poll, call; a module's gunicorn whose render worker starts and stops per test."""

import http.client
import json
from pathlib import Path

from renders.media.ffmpeg import ffmpeg_binary

from .conftest import wait_for
from .server import multipart, render_worker

ASYNC = {"Prefer": "respond-async"}


def call(address, method, path, token=None, fields=None, headers=None, timeout=60):
    """One HTTP request on its own connection: (status, headers (lower-case names), body)."""
    host, port = address.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    head = dict(headers or {})
    if token:
        head["Authorization"] = f"Token {token}"
    body = None
    if fields is not None:
        body, head["Content-Type"] = multipart(fields)
    try:
        conn.request(method, path, body=body, headers=head)
        response = conn.getresponse()
        data = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, data
    finally:
        conn.close()


def submit(address, token, path="/api/trim", fields=None, headers=None):
    status, head, body = call(address, "POST", path, token, fields, {**ASYNC, **(headers or {})})
    return status, head, json.loads(body)


def poll(address, token, job_id, until=("succeeded", "failed", "cancelled", "expired"), seconds=60):
    seen = []

    def done():
        status, _head, body = call(address, "GET", f"/api/jobs/{job_id}", token)
        assert status == 200, body
        job = json.loads(body)
        seen.append(job)
        return job if job["status"] in until else None

    job = wait_for(done, seconds)
    assert job, f"job {job_id} never reached {until}: {seen[-1:]}"
    return job, seen


def slow_ffmpeg(directory: Path, rate: float = 2.0) -> str:
    """Real FFmpeg reading its inputs at `rate` times real time: a job that lasts, at almost no CPU."""
    script = directory / "ffmpeg-readrate"
    script.write_text('#!/bin/bash\nargs=()\nfor a in "$@"; do [ "$a" = -i ] && args+=(-readrate ' + str(rate)
                      + '); args+=("$a"); done\nexec ' + ffmpeg_binary() + ' "${args[@]}"\n')
    script.chmod(0o755)
    return str(script)


class Service:
    """One gunicorn for the module; its render_worker started and stopped as each test needs."""

    def __init__(self, address, directory):
        self.address = address
        self.directory = directory
        self._worker = None
        self.worker = None
        self.env = None

    def start_worker(self, **env):
        env = {key: str(value) for key, value in env.items()}
        if self.worker is not None and self.env == env:
            return self.worker
        self.stop_worker()
        self._worker = render_worker(env)
        self.worker = self._worker.__enter__()
        self.env = env
        return self.worker

    def stop_worker(self):
        if self._worker is not None:
            self._worker.__exit__(None, None, None)
        self._worker = self.worker = self.env = None

    def slow(self, **env):
        """A worker whose FFmpeg reads at 2x real time (so a 6 s clip renders in about 3 s)."""
        return self.start_worker(VIDEOAPI_FFMPEG=slow_ffmpeg(self.directory), **env)
