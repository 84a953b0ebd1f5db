"""Sources by URL (renders.lifecycle.fetch) against a real HTTP server on loopback.

The server is allowed by VIDEOAPI_FETCH_ALLOW_PRIVATE (the `private_ok`
fixture), as an intranet operator would; the tests of the address rule turn
it off. Every refusal is checked for its envelope (the field named) and
for an empty directory: nothing, not even a partial file, is left behind.
"""

import os
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from renders.errors import InvalidInput, PayloadTooLarge
from renders.lifecycle import fetch as fetching
from renders.lifecycle.fetch import Fetcher, check_url, fetch
from renders.webhooks import targets

DATA = os.urandom(700 * 1024)  # several of the fetcher's chunks
LIMIT = 1024 * 1024
FIELD = "video"
GIVE_UP = 6  # seconds a misbehaving answer goes on at most (the client should leave long before)


class Source:
    """An HTTP server on loopback whose paths say how to answer; it records every request."""

    def __init__(self, address="127.0.0.1", port=0):
        self.requests = []
        source = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                source.requests.append({"path": self.path, "host": self.headers.get("Host"),
                                        "encoding": self.headers.get("Accept-Encoding")})
                parts = urlsplit(self.path)
                kind, _, rest = parts.path.strip("/").partition("/")
                try:
                    getattr(self, f"answer_{kind}")(rest, parse_qs(parts.query))
                except OSError:  # the client left: what several tests want
                    pass

            def head(self, code, **headers):
                self.send_response(code)
                for name, value in {"Connection": "close", **headers}.items():
                    self.send_header(name.replace("_", "-"), value)
                self.end_headers()
                self.close_connection = True

            def answer_file(self, rest, query):
                self.head(200, Content_Length=str(len(DATA)), Content_Type="video/mp4")
                self.wfile.write(DATA)

            def answer_hops(self, rest, query):  # /hops/3/... -> /hops/2/... -> ... -> /file/clip.mp4
                left = int(rest.split("/")[0])
                self.head(302, Location=f"/hops/{left - 1}/" if left > 1 else "/file/clip.mp4",
                          Content_Length="0")

            def answer_to(self, rest, query):
                self.head(302, Location=query["location"][0], Content_Length="0")

            def answer_status(self, rest, query):
                self.head(int(rest), Content_Length="5")
                self.wfile.write(b"nope\n")

            def answer_declared(self, rest, query):  # claims a length over the limit, then trickles
                self.head(200, Content_Length=str(LIMIT + 1))
                self.trickle()

            def answer_endless(self, rest, query):  # no Content-Length: the body ends when the connection does
                self.head(200)
                end = time.monotonic() + GIVE_UP
                while time.monotonic() < end:
                    self.wfile.write(b"x" * 65536)

            def answer_lying(self, rest, query):  # a small Content-Length beside a chunked body without end
                self.head(200, Content_Length="10", Transfer_Encoding="chunked")
                end = time.monotonic() + GIVE_UP
                while time.monotonic() < end:
                    self.wfile.write(b"10000\r\n" + b"x" * 65536 + b"\r\n")

            def answer_short(self, rest, query):  # fewer bytes than its Content-Length, then the connection ends
                self.head(200, Content_Length="1000")
                self.wfile.write(b"x" * 10)

            def answer_trickle(self, rest, query):
                self.head(200, Content_Length="100")
                self.trickle()

            def trickle(self):
                end = time.monotonic() + GIVE_UP
                while time.monotonic() < end:  # a byte every 0.2 s: well inside any socket timeout
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    time.sleep(0.2)

        self.server = ThreadingHTTPServer((address, port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path, host="127.0.0.1"):
        return f"http://{host}:{self.port}{path}"

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def source():
    server = Source()
    yield server
    server.stop()


@pytest.fixture
def private_ok(settings):
    settings.VIDEOAPI_FETCH_ALLOW_PRIVATE = True
    return settings


@pytest.fixture
def directory(tmp_path):
    path = tmp_path / "workspace"
    path.mkdir()
    return path


def refusal(url, directory, kind=InvalidInput, max_bytes=LIMIT) -> str:
    """The message of `fetch`'s refusal of `url` (of `kind`, naming FIELD), having checked nothing is left."""
    with pytest.raises(kind) as caught:
        fetch(url, directory, field=FIELD, max_bytes=max_bytes)
    [message] = caught.value.fields[FIELD]
    assert caught.value.fields == {FIELD: [message]} and str(caught.value.detail) == f"{FIELD}: {message}"
    assert list(directory.iterdir()) == []
    return message


def test_a_file_is_fetched_byte_exact_into_a_new_file(source, private_ok, directory):
    path = fetch(source.url("/file/clip.mp4?v=1"), directory, field=FIELD, max_bytes=LIMIT)
    assert path.parent == directory and path.name == "fetched_1.mp4"
    assert path.read_bytes() == DATA
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    # another fetch never overwrites it; a URL without a plain media extension gives none
    other = fetch(source.url("/file/payload.exe"), directory, field=FIELD, max_bytes=LIMIT)
    assert other.name == "fetched_2" and other.read_bytes() == DATA
    assert [r["host"] for r in source.requests] == [f"127.0.0.1:{source.port}"] * 2
    assert {r["encoding"] for r in source.requests} == {"identity"}  # the bytes as stored: never decompressed


def test_a_fetcher_fetches_each_distinct_url_once(source, private_ok, directory):
    fetcher = Fetcher(directory, max_bytes=LIMIT)
    first = fetcher.get(source.url("/file/a.mp4"), "video")
    assert fetcher.get(source.url("/file/a.mp4"), "music") == first
    second = fetcher.get(source.url("/file/b.mp4"), "video")
    assert second != first and second.read_bytes() == first.read_bytes() == DATA
    assert [r["path"] for r in source.requests] == ["/file/a.mp4", "/file/b.mp4"]
    assert sorted(p.name for p in directory.iterdir()) == ["fetched_1.mp4", "fetched_2.mp4"]


def test_loopback_is_refused_unless_private_addresses_are_allowed(source, settings, directory):
    settings.VIDEOAPI_FETCH_ALLOW_PRIVATE = False
    assert refusal(source.url("/file/a.mp4"), directory) == (
        "127.0.0.1, a loopback address: sources are fetched from public addresses only")
    assert "localhost resolves to 127.0.0.1, a loopback address" in refusal(
        source.url("/file/a.mp4", host="localhost"), directory)
    assert source.requests == []  # refused before any connection
    settings.VIDEOAPI_FETCH_ALLOW_PRIVATE = True
    assert fetch(source.url("/file/a.mp4"), directory, field=FIELD, max_bytes=LIMIT).read_bytes() == DATA


def test_the_webhook_flag_does_not_allow_private_sources(source, settings, directory):
    settings.VIDEOAPI_WEBHOOK_ALLOW_PRIVATE = True
    settings.VIDEOAPI_FETCH_ALLOW_PRIVATE = False
    assert "a loopback address" in refusal(source.url("/file/a.mp4"), directory)


def test_three_redirects_are_followed_and_a_fourth_is_refused(source, private_ok, directory):
    path = fetch(source.url("/hops/3/"), directory, field=FIELD, max_bytes=LIMIT)
    assert path.read_bytes() == DATA and path.name == "fetched_1.mp4"  # the extension of where it ended
    assert [r["path"] for r in source.requests] == ["/hops/3/", "/hops/2/", "/hops/1/", "/file/clip.mp4"]
    path.unlink()
    source.requests.clear()
    assert refusal(source.url("/hops/4/"), directory) == "more than 3 redirects"
    assert [r["path"] for r in source.requests] == ["/hops/4/", "/hops/3/", "/hops/2/", "/hops/1/"]


@pytest.mark.parametrize(("location", "says"), [
    ("http://169.254.169.254/latest/meta-data?token=x",
     ("redirected to http://169.254.169.254/latest/meta-data: 169.254.169.254, a link-local address: "
      "sources are fetched from public addresses only")),
    ("http://intranet.test/x", ("redirected to http://intranet.test/x: intranet.test resolves to 10.0.0.1, "
                                "a private address: sources are fetched from public addresses only")),
])
def test_a_redirect_to_a_private_address_is_refused(source, settings, monkeypatch, directory, location, says):
    """Private addresses are not allowed; the check is patched to count 127.0.0.1 (the test's server) as public,
    so that the first hop passes and only the redirect's target meets the rule."""
    settings.VIDEOAPI_FETCH_ALLOW_PRIVATE = False
    real = targets.why_not_public
    monkeypatch.setattr(targets, "why_not_public", lambda ip: None if str(ip) == "127.0.0.1" else real(ip))
    fake_dns(monkeypatch, {"intranet.test": lambda: ["10.0.0.1"]})
    assert refusal(source.url(f"/to?location={location}"), directory) == says
    assert len(source.requests) == 1


@pytest.mark.parametrize(("location", "says"), [
    ("file:///etc/passwd", "redirected to file:///etc/passwd: must be an http or https URL"),
    ("ftp://127.0.0.1/x", "redirected to ftp://127.0.0.1/x: must be an http or https URL"),
    ("http://user:pw@127.0.0.1/x", "must not contain credentials (user:password@)"),
])
def test_a_redirect_to_another_scheme_or_with_credentials_is_refused(source, private_ok, directory, location,
                                                                      says):
    assert says in refusal(source.url(f"/to?location={location}"), directory)
    assert len(source.requests) == 1


@pytest.mark.parametrize(("url", "says"), [
    ("file:///etc/passwd", "must be an http or https URL"),
    ("ftp://example.com/a.mp4", "must be an http or https URL"),
    ("data:video/mp4;base64,AAAA", "must be an http or https URL"),
    ("gopher://127.0.0.1:70/", "must be an http or https URL"),
    ("http://user:pw@127.0.0.1/a.mp4", "must not contain credentials (user:password@)"),
    ("https://token@example.com/a.mp4", "must not contain credentials (user:password@)"),
    ("http:///a.mp4", "must name a host"),
    ("http://127.0.0.1:0/a.mp4", "the port must be a number from 1 to 65535"),
    ("http://example.com/a b.mp4", "must not contain spaces or control characters"),
    ("http://example.com/" + "a" * 2048, "must be at most 2048 characters"),
    ("", "must be an http or https URL"),
])
def test_other_schemes_credentials_and_malformed_urls_are_refused(private_ok, directory, url, says):
    with pytest.raises(InvalidInput) as caught:
        check_url(url, field=FIELD)
    assert caught.value.fields == {FIELD: [says]}
    assert refusal(url, directory) == says


def test_check_url_takes_a_good_url_without_resolving_it(monkeypatch):
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: pytest.fail("check_url resolved a name"))
    url = "https://media.example.com/a.mp4?sig=1"
    assert check_url(url, field=FIELD) == url


@pytest.mark.parametrize(("status", "says"), [(404, "the source answered 404 Not Found"),
                                              (500, "the source answered 500 Internal Server Error"),
                                              (304, "the source answered 304 Not Modified")])
def test_an_error_status_is_named(source, private_ok, directory, status, says):
    assert refusal(source.url(f"/status/{status}"), directory) == says


def test_a_refused_connection_is_named(private_ok, directory):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert refusal(f"http://127.0.0.1:{port}/a.mp4", directory) == "could not fetch it: the connection was refused"


def test_a_name_that_does_not_resolve_is_named(private_ok, directory):
    assert refusal("http://nothing.invalid/a.mp4", directory) == "the host nothing.invalid does not resolve"


def test_tls_failure_is_named(source, private_ok, directory):
    """https:// to a server speaking plain HTTP: the handshake fails."""
    message = refusal(f"https://127.0.0.1:{source.port}/file/a.mp4", directory)
    assert message.startswith("could not fetch it: TLS failed: "), message


def test_a_content_length_over_the_limit_is_refused_before_the_body(source, private_ok, directory):
    started = time.monotonic()
    message = refusal(source.url("/declared"), directory, kind=PayloadTooLarge)
    assert message == f"the source is {LIMIT + 1} bytes: the limit is {LIMIT} bytes"
    assert time.monotonic() - started < 1  # the trickling body was never waited for


@pytest.mark.parametrize("path", ["/endless", "/lying"])
def test_a_body_past_the_limit_is_refused_while_it_streams_and_the_partial_file_deleted(source, private_ok,
                                                                                        directory, monkeypatch,
                                                                                        path):
    """No Content-Length (the body ends with the connection), or a small one beside a chunked body: the limit
    holds whatever was declared, and the file written so far is deleted."""
    made = []
    real = fetching.new_file
    monkeypatch.setattr(fetching, "new_file", lambda *args: made.append(real(*args)) or made[-1])
    started = time.monotonic()
    message = refusal(source.url(path), directory, kind=PayloadTooLarge)
    assert message == f"the source is longer: the limit is {LIMIT} bytes"
    assert len(made) == 1 and not made[0][0].exists()  # a file was begun, and is gone
    assert time.monotonic() - started < 3


def test_a_body_shorter_than_its_content_length_is_refused(source, private_ok, directory):
    assert refusal(source.url("/short"), directory) == (
        "could not fetch it: the connection closed before the body was complete")


def test_a_trickling_source_is_cut_at_the_timeout(source, private_ok, directory):
    private_ok.VIDEOAPI_FETCH_TIMEOUT = 1
    started = time.monotonic()
    assert refusal(source.url("/trickle"), directory) == "the fetch took longer than 1 s"
    assert 0.9 < time.monotonic() - started < 2  # a byte every 0.2 s never resets the clock


def test_the_timeout_covers_the_redirects_too(source, private_ok, directory):
    private_ok.VIDEOAPI_FETCH_TIMEOUT = 1
    started = time.monotonic()
    assert refusal(source.url("/to?location=/trickle"), directory) == "the fetch took longer than 1 s"
    assert time.monotonic() - started < 2


def fake_dns(monkeypatch, answers):
    """getaddrinfo answering `answers[name]()` (a list of addresses) for made-up names; the names asked."""
    real = socket.getaddrinfo
    asked = []

    def getaddrinfo(host, port, *args, **kwargs):
        if host not in answers:
            return real(host, port, *args, **kwargs)
        asked.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in answers[host]()]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return asked


def test_the_connection_goes_to_the_checked_address(source, settings, monkeypatch, directory):
    """DNS rebinding: the name answers 127.0.0.1 once (checked, allowed: the check is patched to count it public)
    and 127.0.0.2 (where another server listens) to any later lookup; only the checked address is reached."""
    settings.VIDEOAPI_FETCH_ALLOW_PRIVATE = False
    real = targets.why_not_public
    monkeypatch.setattr(targets, "why_not_public", lambda ip: None if str(ip) == "127.0.0.1" else real(ip))
    other = Source("127.0.0.2", source.port)
    try:
        answers = iter([["127.0.0.1"]] + [["127.0.0.2"]] * 10)
        asked = fake_dns(monkeypatch, {"media.test": lambda: next(answers)})
        path = fetch(f"http://media.test:{source.port}/file/a.mp4", directory, field=FIELD, max_bytes=LIMIT)
        assert path.read_bytes() == DATA and asked == ["media.test"]
        assert [(r["path"], r["host"]) for r in source.requests] == [("/file/a.mp4", f"media.test:{source.port}")]
        assert other.requests == []
        path.unlink()
        # a second lookup would have answered 127.0.0.2, which is refused
        assert "media.test resolves to 127.0.0.2, a loopback address" in refusal(
            f"http://media.test:{source.port}/file/a.mp4", directory)
        assert other.requests == []
    finally:
        other.stop()
