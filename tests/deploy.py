"""The deployment of deploy/, run for real on loopback (tests only).

nginx runs the shipped site file with only ports, certificate paths, the
body limit and the upstream list substituted (each substitution must find
its text, so the file and the tests cannot drift apart); gunicorn
instances stand for render hosts; clients speak TLS from chosen loopback
source addresses (127.0.0.2, 127.0.0.3, ...) so that nginx's allow lists
and the recorded client address can be checked.
"""

import contextlib
import http.client
import os
import shutil
import signal
import socket
import ssl
import subprocess
from pathlib import Path

from .server import multipart, wait_port

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
SHIPPED_BODY_LIMIT = "524288000"


def nginx_binary():
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None)
    return found


def self_signed_cert(directory: Path):
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=localhost"], check=True, capture_output=True, timeout=60)
    return cert, key


def render_site(upstreams, http_port, https_port, cert, key, body_limit, body_timeout="30s", routes=None):
    """The shipped site; `routes`: {VIDEOAPI_HOST_ID: address} for the job results' route map."""
    text = (DEPLOY / "nginx" / "videoapi.conf").read_text()
    servers = "\n    ".join(f"server {address} max_fails=1 fail_timeout=10s;" for address in upstreams)
    route_lines = "\n    ".join(f"{host} {address};" for host, address in (routes or {}).items())
    for old, new in [
        ("server 127.0.0.1:8000 max_fails=1 fail_timeout=10s;", servers),
        ("    render-1 127.0.0.1:8000;\n", f"    {route_lines}\n" if route_lines else ""),
        ("    listen [::]:80;\n", ""),
        ("    listen [::]:443 ssl;\n", ""),
        ("listen 80;", f"listen 127.0.0.1:{http_port};"),
        ("listen 443 ssl;", f"listen 127.0.0.1:{https_port} ssl;"),
        ("/etc/ssl/videoapi/fullchain.pem", str(cert)),
        ("/etc/ssl/videoapi/privkey.pem", str(key)),
        (SHIPPED_BODY_LIMIT, str(body_limit)),
        ("client_body_timeout 30s;", f"client_body_timeout {body_timeout};"),
    ]:
        assert old in text, f"deploy/nginx/videoapi.conf no longer contains {old!r}"
        text = text.replace(old, new)
    return text


class Nginx:
    """nginx with a private prefix: its config, logs, pid and temp dirs all in `workdir`."""

    def __init__(self, workdir: Path, site: str):
        self.workdir = workdir
        self.proxy_temp = workdir / "proxy_temp"
        self.body_temp = workdir / "body_temp"
        (workdir / "site.conf").write_text(site)
        user = "user root root;\n" if os.geteuid() == 0 else ""
        temps = f"    client_body_temp_path {self.body_temp};\n" + "".join(
            f"    {kind}_temp_path {workdir / (kind + '_temp')};\n" for kind in ("proxy", "fastcgi", "uwsgi", "scgi"))
        (workdir / "nginx.conf").write_text(
            f"{user}daemon off;\nworker_processes 1;\npid {workdir / 'nginx.pid'};\n"
            f"error_log {workdir / 'error.log'} info;\nevents {{ worker_connections 256; }}\n"
            # which hosts answered each request: "A" direct, "A : B" when A redirected it (X-Accel-Redirect) to B
            "http {\n    log_format hops '$request_method $request_uri $status upstreams=[$upstream_addr]';\n"
            f"    access_log {workdir / 'access.log'} hops;\n{temps}"
            f"    include {workdir / 'site.conf'};\n}}\n")
        self.proc = None

    def command(self, *extra):
        return [nginx_binary(), "-p", str(self.workdir), "-e", str(self.workdir / "error.log"),
                "-c", str(self.workdir / "nginx.conf"), *extra]

    def check_config(self):
        """`nginx -t` on this configuration (`check_`, not `test_`: pytest collects what starts with test)."""
        return subprocess.run(self.command("-t"), capture_output=True, text=True, timeout=30)

    def start(self, port):
        self.proc = subprocess.Popen(self.command(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        wait_port(port, self.proc, lambda: (self.workdir / "error.log").read_text()[-2000:])

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    def hops(self, path):
        """The upstream addresses that answered each logged request for `path`, in order: [[address, ...], ...]."""
        found = []
        for line in (self.workdir / "access.log").read_text().splitlines():
            _method, uri, _status, upstreams = line.split(" ", 3)
            if uri == path:
                # " : " separates the hops; ", " the servers one hop tried (the last one answered)
                found.append([hop.split(", ")[-1] for hop in upstreams[len("upstreams=["):-1].split(" : ")])
        return found

    def worker_pids(self):
        pids = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            with contextlib.suppress(OSError):
                if int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1]) == self.proc.pid:
                    pids.append(int(pid))
        return pids

    def open_temp_files(self):
        """Files nginx's workers hold open under its temp dirs (spooled bodies, even unlinked ones)."""
        found = []
        for pid in [self.proc.pid, *self.worker_pids()]:
            fd_dir = Path(f"/proc/{pid}/fd")
            for fd in (os.listdir(fd_dir) if fd_dir.exists() else []):
                with contextlib.suppress(OSError):
                    target = os.readlink(fd_dir / fd)
                    if target.startswith((str(self.proxy_temp), str(self.body_temp))):
                        found.append(target)
        return found

    def temp_entries(self):
        return [str(p) for d in (self.proxy_temp, self.body_temp) if d.exists() for p in d.rglob("*") if p.is_file()]


def tls_context():
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the test's own self-signed certificate
    return context


def https(port, method, path, *, source="127.0.0.1", fields=None, headers=None, body=None, timeout=120):
    """One HTTPS request from a chosen loopback source address: (status, headers, body)."""
    headers = dict(headers or {})
    if fields is not None:
        body, headers["Content-Type"] = multipart(fields)
    connection = http.client.HTTPSConnection("127.0.0.1", port, context=tls_context(), timeout=timeout,
                                             source_address=(source, 0))
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def tls_socket(port, source="127.0.0.1", rcvbuf=None):
    sock = socket.socket()
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(30)
    sock.bind((source, 0))
    sock.connect(("127.0.0.1", port))
    return tls_context().wrap_socket(sock)


def named_unix_sockets(pid):
    """Paths of the named Unix sockets process `pid` holds open."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    paths = []
    for line in Path("/proc/net/unix").read_text().splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 8 and fields[6] in inodes:
            paths.append(fields[7])
    return paths


def unit_system_calls(analyze, filters):
    """The system calls a unit's SystemCallFilter= lines allow, groups expanded by systemd-analyze itself."""
    groups = {}

    def expand(name):
        if not name.startswith("@"):
            return {name}
        if name not in groups:
            listing = subprocess.run([analyze, "syscall-filter", "--no-pager", name], capture_output=True, text=True,
                                     timeout=30, check=True).stdout
            members = [line.split()[0] for line in listing.splitlines()[1:]
                       if line.strip() and not line.lstrip().startswith("#")]
            groups[name] = set().union(*map(expand, members)) if members else set()
        return groups[name]

    allowed = set()
    for value in filters:  # an allow list, then `~` lines that take calls out of it (systemd's order of reading)
        deny = value.startswith("~")
        names = set().union(*map(expand, value.lstrip("~").split()))
        allowed = allowed - names if deny else allowed | names
    return allowed


# Installed by `sitecustomize` at the start of a Python started with VIDEOAPI_TEST_SYSCALLS naming a file of
# allowed system calls: NoNewPrivileges, then a seccomp filter answering EPERM to every other call (as a unit
# with SystemCallFilter= and SystemCallErrorNumber=EPERM) and, with VIDEOAPI_TEST_MDWE=1, a second filter refusing
# what MemoryDenyWriteExecute= refuses (systemd's own rules: a mapping both writable and executable, making any
# mapping executable later, executable SysV shared memory). Children (gunicorn's workers, FFmpeg) inherit both.
SECCOMP_SITECUSTOMIZE = '''
import ctypes, ctypes.util, errno, os

ALLOW, EPERM = 0x7FFF0000, 0x00050000 | errno.EPERM  # SCMP_ACT_ALLOW, SCMP_ACT_ERRNO(EPERM)


class _Compare(ctypes.Structure):  # struct scmp_arg_cmp
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("datum_a", ctypes.c_uint64),
                ("datum_b", ctypes.c_uint64)]


def _filter(default, rules):
    lib = ctypes.CDLL(ctypes.util.find_library("seccomp"), use_errno=True)
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint,
                                           ctypes.c_void_p]
    lib.seccomp_load.argtypes = [ctypes.c_void_p]
    ctx = lib.seccomp_init(default)
    for action, name, compare in rules:
        number = lib.seccomp_syscall_resolve_name(name.encode())
        if number < 0:  # not a system call of this architecture
            continue
        if lib.seccomp_rule_add_array(ctx, action, number, 1 if compare else 0,
                                      ctypes.byref(compare) if compare else None) != 0:
            raise OSError("seccomp_rule_add " + name)
    if lib.seccomp_load(ctx) != 0:
        raise OSError("seccomp_load")


def _install(path, deny_write_execute):
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(38, 1, 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS
        raise OSError(ctypes.get_errno(), "PR_SET_NO_NEW_PRIVS")
    if deny_write_execute:  # first: the allow list below does not allow loading another filter
        masked = 7  # SCMP_CMP_MASKED_EQ: (argument & datum_a) == datum_b
        write, execute, shm_exec = 0x2, 0x4, 0o100000
        _filter(ALLOW, [(EPERM, "mmap", _Compare(2, masked, write | execute, write | execute)),
                        (EPERM, "mprotect", _Compare(2, masked, execute, execute)),
                        (EPERM, "pkey_mprotect", _Compare(2, masked, execute, execute)),
                        (EPERM, "shmat", _Compare(2, masked, shm_exec, shm_exec))])
    with open(path) as names:
        _filter(EPERM, [(ALLOW, name, None) for name in names.read().split()])


if os.environ.get("VIDEOAPI_TEST_SYSCALLS"):
    try:
        _install(os.environ["VIDEOAPI_TEST_SYSCALLS"], os.environ.get("VIDEOAPI_TEST_MDWE") == "1")
    except BaseException as exc:  # Python would only print it and run on unfiltered
        os.write(2, ("sitecustomize: no seccomp filter: %r\\n" % (exc,)).encode())
        os._exit(70)
'''


def seccomp_environment(directory: Path, allowed, deny_write_execute=False):
    """Environment entries that start a Python (and all it runs) under the seccomp filters of a unit."""
    (directory / "sitecustomize.py").write_text(SECCOMP_SITECUSTOMIZE)
    (directory / "allowed").write_text("\n".join(sorted(allowed)) + "\n")
    return {"PYTHONPATH": str(directory), "VIDEOAPI_TEST_SYSCALLS": str(directory / "allowed"),
            "VIDEOAPI_TEST_MDWE": "1" if deny_write_execute else "0"}
