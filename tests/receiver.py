
"""A webhook receiver on loopback (plain or TLS) that records every delivery and can misbehave on purpose."""

import base64
import hashlib
import hmac
import socket
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HANG_SECONDS = 6  # how long the hanging receiver trickles its answer before giving up


class Receiver:
    def __init__(self, address="127.0.0.1", port=0, tls=None):
        self.requests = []
        self.server_names = []  # what TLS clients asked for (SNI)
        self.secrets = {}  # path -> the secret its deliveries must be signed with
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                headers = {k.lower(): v for k, v in self.headers.items()}
                receiver.record(self.path, headers, body)
                kind = self.path.split("/")[1]
                if kind == "hang":  # the status line one byte at a time: each byte well inside any socket timeout
                    end = time.monotonic() + HANG_SECONDS
                    try:
                        for byte in b"HTTP/1.1 200 OK\r\n" * 100:
                            if time.monotonic() > end:
                                break
                            self.wfile.write(bytes([byte]))
                            self.wfile.flush()
                            time.sleep(0.2)
                    except OSError:
                        pass
                    self.close_connection = True
                    return
                if kind == "endless":  # an answer without end (until the client leaves, or HANG_SECONDS)
                    self.send_response(200)
                    self.send_header("Connection", "close")
                    self.end_headers()
                    end = time.monotonic() + HANG_SECONDS
                    try:
                        while time.monotonic() < end:
                            self.wfile.write(b"x" * 65536)
                    except OSError:
                        pass
                    self.close_connection = True
                    return
                if kind == "flaky":  # 500 twice, then 200
                    seen = len(receiver.on(self.path))
                    code = 500 if seen <= 2 else 200
                elif kind == "status":
                    code = int(self.path.split("/")[2])
                elif kind == "redirect":
                    code = 302
                else:
                    code = 200
                self.send_response(code)
                if code == 302:
                    self.send_header("Location", f"http://127.0.0.1:{receiver.port}/target{self.path}")
                answer = b"ok"
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                try:
                    self.wfile.write(answer)
                except OSError:
                    pass

        server_class = type("Server", (ThreadingHTTPServer,), {"address_family": socket.AF_INET6}) \
            if ":" in address else ThreadingHTTPServer
        self.server = server_class((address, port), Handler)
        self.server.daemon_threads = True
        if tls is not None:
            tls.sni_callback = lambda sock, name, context: self.server_names.append(name)
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
            self.server.handle_error = lambda request, address: None  # a refused handshake is the point
        self.port = self.server.server_address[1]
        self.host = address
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def record(self, path, headers, body):
        secret = self.secrets.get(path)
        signed = secret is not None and all(h in headers for h in ("webhook-id", "webhook-timestamp",
                                                                   "webhook-signature"))
        valid = signed and expected_signature(secret, headers["webhook-id"], headers["webhook-timestamp"],
                                              body) in headers["webhook-signature"].split()
        fresh = signed and abs(time.time() - int(headers["webhook-timestamp"])) < 300
        with self.lock:
            self.requests.append({"path": path, "headers": headers, "body": body, "at": time.monotonic(),
                                  "valid": bool(valid and fresh)})

    def on(self, path):
        with self.lock:
            return [r for r in self.requests if r["path"] == path]

    def url(self, kind, secret, host=None, scheme="http"):
        """A fresh path of `kind` whose deliveries must be signed with `secret`."""
        path = f"/{kind}/{uuid.uuid4().hex[:12]}"
        self.secrets[path] = secret
        host = host or (f"[{self.host}]" if ":" in self.host else self.host)
        return f"{scheme}://{host}:{self.port}{path}", path

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def expected_signature(secret: str, webhook_id: str, timestamp: str, body: bytes) -> str:
    """Standard Webhooks, computed here: base64 HMAC-SHA256 of "<id>.<timestamp>.<body>" with the decoded secret."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{webhook_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()
