"""A client's storage on loopback for results delivered by PUT: it records every PUT and answers by its path.

    /ok/...        200
    /flaky<n>/...  500 for the first n PUTs to that path, then 200
    /fail/...      500 always
    /busy/...      429 once, then 200
    /deny/...      403 with an S3-style error body (<Code>SignatureDoesNotMatch</Code>)
    /moved/...     307 to the same path under /ok/
    /slow/...      reads the body, then waits HANG_SECONDS before answering
"""

import contextlib
import re
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HANG_SECONDS = 3


@dataclass
class Put:
    path: str  # the request target as sent: path and query, byte for byte
    headers: dict  # lower-case names
    body: bytes


class Destination:
    def __init__(self):
        self.puts: list[Put] = []
        self.on_put = None  # called with each Put (in the server's thread) before it is answered
        self.lock = threading.Lock()
        destination = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_PUT(self):
                length = int(self.headers.get("Content-Length", 0))
                body = b""
                while len(body) < length:
                    chunk = self.rfile.read(min(65536, length - len(body)))
                    if not chunk:
                        break
                    body += chunk
                seen = destination.record(Put(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                if destination.on_put is not None:
                    destination.on_put(destination.puts[-1])
                kind = self.path.split("/")[1]
                flaky = re.fullmatch(r"flaky(\d+)", kind)
                if kind == "slow":
                    time.sleep(HANG_SECONDS)
                    self.answer(200)
                elif kind == "fail" or (flaky and seen <= int(flaky[1])):
                    self.answer(500)
                elif kind == "busy" and seen == 1:
                    self.answer(429)
                elif kind == "deny":
                    self.answer(403, b"<?xml version=\"1.0\"?><Error><Code>SignatureDoesNotMatch</Code>"
                                     b"<Message>no</Message></Error>")
                elif kind == "moved":
                    self.answer(307, location="/ok/" + self.path.split("/", 2)[2])
                else:
                    self.answer(200)

            def answer(self, status, body=b"", location=None):
                self.send_response(status)
                if location:
                    self.send_header("Location", location)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def record(self, put: Put) -> int:
        """Keep the PUT; how many PUTs its path (query aside) has had, this one included."""
        with self.lock:
            self.puts.append(put)
            return sum(1 for p in self.puts if p.path.split("?")[0] == put.path.split("?")[0])

    def to(self, path: str) -> list[Put]:
        """The PUTs to `path` (query aside)."""
        with self.lock:
            return [p for p in self.puts if p.path.split("?")[0] == path]


@contextlib.contextmanager
def receiving():
    """A Destination serving on 127.0.0.1 for the block."""
    destination = Destination()
    thread = threading.Thread(target=destination.server.serve_forever, daemon=True, name="destination")
    thread.start()
    try:
        yield destination
    finally:
        destination.server.shutdown()
        destination.server.server_close()
