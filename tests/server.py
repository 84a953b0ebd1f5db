"""Serve the app with real gunicorn on a free loopback port (tests only)."""

import contextlib
import ctypes
import http.server
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, log, seconds=30):
    """Wait until something listens on 127.0.0.1:`port`; fail with `log()` if `proc` dies or time runs out."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server on port {port} did not start: {log()}") from None
            time.sleep(0.1)


def server_metrics_dir() -> str:
    """Where the servers a test starts (gunicorn, render_worker) keep their multiprocess metrics: their own
    directory, not the test process's (which renders in-process too, and lives through every test)."""
    path = Path(os.environ["VIDEOAPI_TEST_DIR"]) / "server-metrics"
    path.mkdir(exist_ok=True)
    return str(path)


_LIBC = ctypes.CDLL(None, use_errno=True)
PR_SET_PDEATHSIG = 1


def stop_with_the_tests():
    """(Between fork and exec.) A server a test starts gets SIGTERM (its graceful stop) when the test process
    dies, however it dies: a killed test run leaves no server running, holding workspaces."""
    _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


@contextlib.contextmanager
def gunicorn(extra_env=None, workers=2, threads=4):
    port = free_port()
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "VIDEOAPI_BIND": f"127.0.0.1:{port}",
           "PROMETHEUS_MULTIPROC_DIR": server_metrics_dir(),
           "GUNICORN_WORKERS": str(workers), "GUNICORN_THREADS": str(threads), "GUNICORN_ACCESS_LOG": "",
           **(extra_env or {})}
    log = open(Path(os.environ["VIDEOAPI_TEST_DIR"]) / f"gunicorn-{port}.log", "wb")  # noqa: SIM115  (the server's)
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "videoapi" / "gunicorn.conf.py")],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        preexec_fn=stop_with_the_tests,
    )
    try:
        wait_port(port, proc, lambda: Path(log.name).read_text()[-3000:])
        yield f"127.0.0.1:{port}", proc
    finally:
        stop(proc)
        log.close()


def stop(proc):
    """Stop a server the test started (its whole process group): SIGTERM, then SIGKILL after 20 s."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def multipart_parts(fields):
    """{name: str | Path | [..]} as multipart/form-data pieces: (parts, content_type).

    A part is bytes, or a Path whose contents go there (read by the caller,
    so a large file can be streamed).
    """
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in fields.items():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, Path):
                head = (f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{item.name}"\r\n'
                        "Content-Type: application/octet-stream\r\n\r\n")
                parts += [head.encode(), item, b"\r\n"]
            else:
                head = f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
                parts.append(head.encode() + str(item).encode() + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return parts, f"multipart/form-data; boundary={boundary}"


def multipart(fields):
    """Encode {name: str | Path | [..]} as multipart/form-data; returns (body, content_type)."""
    parts, content_type = multipart_parts(fields)
    return b"".join(part.read_bytes() if isinstance(part, Path) else part for part in parts), content_type


def raw_request(address, path, fields, token=None, rcvbuf=None):
    """Send a POST on a raw socket and return it, unread (for disconnect tests)."""
    body, ctype = multipart(fields)
    host, port = address.split(":")
    sock = socket.socket()
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(60)
    sock.connect((host, int(port)))
    headers = [f"POST {path} HTTP/1.1", f"Host: {address}", f"Content-Type: {ctype}",
               f"Content-Length: {len(body)}", "Connection: close"]
    if token:
        headers.append(f"Authorization: Token {token}")
    sock.sendall(("\r\n".join(headers) + "\r\n\r\n").encode() + body)
    return sock


def read_head(sock):
    """Read the status line and headers; returns (status, headers, first body bytes)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    if b"\r\n\r\n" not in data:
        raise ConnectionError("the server closed the connection without an answer")
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    return status, headers, rest


def read_response(sock):
    """The whole answer on a `Connection: close` socket: (status, headers, body)."""
    status, headers, body = read_head(sock)
    while True:
        chunk = sock.recv(1 << 16)
        if not chunk:
            break
        body += chunk
    return status, headers, body


def request(address, path, fields, token=None):
    """A complete request: (status, headers, body)."""
    with raw_request(address, path, fields, token) as sock:
        return read_response(sock)


@contextlib.contextmanager
def render_worker(extra_env=None, args=()):
    """A real `manage.py render_worker` (this host's jobs) beside a test's gunicorn; stopped (SIGTERM, then
    SIGKILL after 20 s) when the block ends. Yields the process."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "PROMETHEUS_MULTIPROC_DIR": server_metrics_dir(),
           **(extra_env or {})}
    log = open(Path(os.environ["VIDEOAPI_TEST_DIR"]) / f"worker-{uuid.uuid4().hex[:8]}.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "manage.py", "render_worker", "--interval", "0.05", *args],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                            preexec_fn=stop_with_the_tests)
    proc.log_path = Path(log.name)
    try:
        yield proc
    finally:
        stop(proc)
        log.close()


@contextlib.contextmanager
def canary():
    """A loopback HTTP server that records every request it gets."""
    hits = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"\x47" * 188 * 10)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", hits
    finally:
        server.shutdown()
        server.server_close()
