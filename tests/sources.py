"""A real HTTP server on loopback for sources by URL: it serves a directory and counts the requests it got."""

import contextlib
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer


class Counting(SimpleHTTPRequestHandler):
    hits: list

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.hits.append(self.path)
        super().do_GET()


@contextlib.contextmanager
def serving(root):
    """Serve `root` on 127.0.0.1; yields the server, with `.url`, `.root` and `.hits` (the paths asked for)."""
    handler = type("Handler", (Counting,), {"hits": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), lambda *a: handler(*a, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True, name="sources")
    thread.start()
    server.root, server.hits = root, handler.hits
    server.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
