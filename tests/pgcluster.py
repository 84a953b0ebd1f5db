"""A throwaway PostgreSQL cluster for the test run (Debian's `postgresql` package).

    python -m tests.pgcluster -- python -m pytest ...
    python -m tests.pgcluster --createdb -- python bench/admin.py   # with an empty database "videoapi"

initdb's a cluster in a private temp dir, starts it on a free loopback port
(and a socket dir inside that temp dir), runs the command with DATABASE_URL
pointing at it, then stops the cluster and deletes the dir, whatever the
command did. Tests that must stop and restart the database mid-run find the
cluster through VIDEOAPI_TEST_PG (`Cluster.from_env()`).

PostgreSQL refuses to run as root: as root, the cluster runs as the
`postgres` system user (made by the Debian package), else `nobody`.
"""

import contextlib
import glob
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

START_TIMEOUT = 60


def find_bindir() -> str | None:
    """The newest PostgreSQL server's bin dir, or None."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                        key=lambda p: int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0)
    if candidates:
        return str(Path(candidates[-1]).parent)
    found = shutil.which("initdb")
    return str(Path(found).resolve().parent) if found else None


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    def __init__(self, bindir, base, port, password, user):
        self.bindir, self.base, self.port, self.password, self.user = bindir, Path(base), port, password, user

    # -- where it is ----------------------------------------------------------

    @property
    def data(self):
        return self.base / "data"

    @property
    def url(self):
        return f"postgres://videoapi:{self.password}@127.0.0.1:{self.port}/videoapi"

    def to_env(self):
        return json.dumps({"bindir": self.bindir, "base": str(self.base), "port": self.port,
                           "password": self.password, "user": self.user})

    @classmethod
    def from_env(cls):
        raw = os.environ.get("VIDEOAPI_TEST_PG")
        return cls(**json.loads(raw)) if raw else None

    # -- running it -----------------------------------------------------------

    def _run(self, *args, check=True, timeout=START_TIMEOUT + 30):
        kwargs = {}
        if os.geteuid() == 0:
            kwargs = {"user": self.user, "group": pwd.getpwnam(self.user).pw_gid, "extra_groups": []}
        return subprocess.run([os.path.join(self.bindir, args[0]), *args[1:]], check=check, timeout=timeout,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=self.base, **kwargs)

    @classmethod
    def create(cls, bindir):
        user = None
        if os.geteuid() == 0:
            user = next((name for name in ("postgres", "nobody") if _user_exists(name)), None)
            if user is None:
                raise RuntimeError("running as root and neither a 'postgres' nor a 'nobody' user exists")
        base = Path(tempfile.mkdtemp(prefix="videoapi-pg-"))
        cluster = cls(bindir, base, _free_port(), secrets.token_hex(16), user)
        (base / "sock").mkdir()
        pwfile = base / "pwfile"
        pwfile.write_text(cluster.password + "\n")
        if user:
            entry = pwd.getpwnam(user)
            for path in (base, base / "sock", pwfile):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        os.chmod(base, 0o700)
        result = cluster._run("initdb", "-D", str(cluster.data), "-U", "videoapi", f"--pwfile={pwfile}",
                              "--auth=scram-sha-256", "-E", "UTF8", "--locale=C", "--no-sync", check=False)
        pwfile.unlink()
        if result.returncode:
            shutil.rmtree(base, ignore_errors=True)
            raise RuntimeError(f"initdb failed:\n{result.stdout[-2000:]}")
        return cluster

    def start(self):
        options = (f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories={self.base / 'sock'} "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        result = self._run("pg_ctl", "-D", str(self.data), "-l", str(self.base / "server.log"), "-o", options,
                           "-w", "-t", str(START_TIMEOUT), "start", check=False)
        if result.returncode:
            raise RuntimeError(f"PostgreSQL did not start:\n{result.stdout[-1000:]}\n{self.log_tail()}")

    def stop(self, mode="fast"):
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", str(START_TIMEOUT), "stop", check=False)

    def log_tail(self):
        with contextlib.suppress(OSError):
            return (self.base / "server.log").read_text()[-2000:]
        return ""

    def remove(self):
        with contextlib.suppress(Exception):
            self.stop("immediate")
        shutil.rmtree(self.base, ignore_errors=True)


def _user_exists(name):
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


@contextlib.contextmanager
def running_cluster():
    bindir = find_bindir()
    if bindir is None:
        raise FileNotFoundError("PostgreSQL's server programs (initdb, pg_ctl) are not installed")
    cluster = Cluster.create(bindir)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.remove()


def main(argv):
    createdb = "--createdb" in argv[: argv.index("--")] if "--" in argv else False
    if "--" in argv:
        argv = argv[argv.index("--") + 1:]
    if not argv:
        print("usage: python -m tests.pgcluster -- COMMAND...", file=sys.stderr)
        return 2
    try:
        context = running_cluster()
        cluster = context.__enter__()
    except (FileNotFoundError, RuntimeError) as exc:
        print(f"PostgreSQL pass SKIPPED: {exc}", file=sys.stderr)
        return 0
    child = None

    def forward(signum, _frame):
        if child and child.poll() is None:
            child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    try:
        print(f"PostgreSQL pass: throwaway cluster on 127.0.0.1:{cluster.port} in {cluster.base}", flush=True)
        if createdb:  # for commands that use the database itself (the tests make their own)
            import psycopg

            with psycopg.connect(cluster.url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as connection:
                connection.execute("CREATE DATABASE videoapi")
        env = {**os.environ, "DATABASE_URL": cluster.url, "VIDEOAPI_TEST_PG": cluster.to_env()}
        child = subprocess.Popen(argv, env=env)
        return child.wait()
    finally:
        context.__exit__(None, None, None)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
