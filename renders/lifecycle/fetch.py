"""Sources by URL: a file fetched into a render's workspace (docs/API.md, "Sources by URL").

    check_url(url, field=...)                          # the form alone, no DNS: before a job's 202
    fetch(url, directory, field=..., max_bytes=...)    # -> the new file's path
    Fetcher(directory, max_bytes=...).get(url, field)  # each distinct URL fetched once per render

The rules of callbacks (`webhooks.targets`): http(s) only, no credentials,
a host resolving only to public addresses (unless VIDEOAPI_FETCH_ALLOW_PRIVATE),
and the connection made to the checked address itself (`webhooks.pinned`).
At most MAX_REDIRECTS redirects, each hop checked the same way; the body
streamed to the file under `max_bytes` (413) and the whole fetch under
VIDEOAPI_FETCH_TIMEOUT. Every refusal names the field, and a partly
written file is deleted.
"""

import errno
import http.client
import itertools
import os
import re
import socket
import ssl
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urljoin, urlsplit

import urllib3
from django.conf import settings

from renders.errors import InsufficientStorage, PayloadTooLarge, ServiceError, invalid
from renders.lifecycle.workspace import free_bytes
from renders.webhooks.pinned import Deadline, send
from renders.webhooks.targets import SourceRefused, parse

MAX_REDIRECTS = 3
REDIRECTS = {301, 302, 303, 307, 308}
CHUNK = 256 * 1024
HEADERS = {"User-Agent": "videoapi-fetch/1", "Accept": "*/*", "Accept-Encoding": "identity"}
# a file keeps its URL's extension when it is one of these (a hint for probing; never trusted)
MEDIA_SUFFIXES = {".mp4", ".mov", ".m4v", ".mkv", ".webm", ".avi", ".ts", ".jpg", ".jpeg", ".png", ".gif", ".webp",
                  ".mp3", ".m4a", ".aac", ".wav", ".ogg", ".oga", ".opus", ".flac"}
CREDENTIALS = re.compile(r"//[^/?#@]*@")
SHOWN = 200  # characters of a redirect's location a refusal shows


def check_url(url: str, *, field: str) -> str:
    """`url` if its form may be fetched (scheme, credentials, length, host syntax); no DNS. Else 400 naming `field`."""
    try:
        parse(url, SourceRefused)
    except SourceRefused as exc:
        raise invalid(field, exc.messages[0]) from None
    return url


def fetch(url: str, directory: Path, *, field: str, max_bytes: int) -> Path:
    """Fetch `url` into a new file of `directory`; its path, or the refusal naming `field` (400, 413, 507)."""
    check_url(url, field=field)
    timeout = settings.VIDEOAPI_FETCH_TIMEOUT
    deadline = Deadline(timeout)
    try:
        with deadline:
            connection, response, final = follow(url, field, deadline)
            try:
                return store(response, Path(directory), suffix_of(final) or suffix_of(url), field, max_bytes,
                             deadline)
            finally:
                connection.close()
    except ServiceError:
        raise
    except Exception as exc:  # noqa: BLE001  (whatever ended the fetch is the client's 400, not our 500)
        if deadline.expired or isinstance(exc, (TimeoutError, socket.timeout)):
            raise invalid(field, f"the fetch took longer than {timeout:g} s") from None
        raise invalid(field, f"could not fetch it: {reason(exc)}") from None


class Fetcher:
    """One render's sources: each distinct URL fetched once into `directory` (url -> path)."""

    def __init__(self, directory: Path, *, max_bytes: int):
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.fetched: dict[str, Path] = {}

    def get(self, url: str, field: str) -> Path:
        if url not in self.fetched:
            self.fetched[url] = fetch(url, self.directory, field=field, max_bytes=self.max_bytes)
        return self.fetched[url]


def follow(url: str, field: str, deadline: Deadline):
    """(connection, response, url) of the first answer that is not a redirect, every hop checked; 400 otherwise."""
    current = url
    for hop in range(MAX_REDIRECTS + 1):
        try:
            target = parse(current, SourceRefused)
            addresses = target.addresses(deadline.remaining(), allow_private=settings.VIDEOAPI_FETCH_ALLOW_PRIVATE,
                                         refused=SourceRefused)
        except SourceRefused as exc:
            said = exc.messages[0] if not hop else f"redirected to {shown(current)}: {exc.messages[0]}"
            raise invalid(field, said) from None
        connection, response = send(target, addresses, "GET", deadline, headers=HEADERS)
        location = response.headers.get("Location")
        if response.status in REDIRECTS and location:
            connection.close()
            if hop == MAX_REDIRECTS:
                raise invalid(field, f"more than {MAX_REDIRECTS} redirects")
            current = urljoin(current, location.strip())
            continue
        if not 200 <= response.status < 300:
            connection.close()
            raise invalid(field, f"the source answered {response.status}{phrase(response.status)}")
        return connection, response, current
    raise AssertionError("unreachable")  # pragma: no cover  (the last hop returns or raises)


def store(response, directory: Path, suffix: str, field: str, max_bytes: int, deadline: Deadline) -> Path:
    """Stream the answer's body into a new file of `directory` (never whole in memory); deleted on any failure."""
    declared = declared_length(response)
    if declared is not None and declared > max_bytes:
        raise too_large(field, max_bytes, f"the source is {declared} bytes")
    if declared is not None and declared > free_bytes(directory):
        raise InsufficientStorage(f"the temp disk cannot hold the {declared} bytes of {field}; try again later")
    path, fd = new_file(directory, suffix)
    try:
        with os.fdopen(fd, "wb") as handle:
            written = 0
            for chunk in response.stream(CHUNK, decode_content=False):
                written += len(chunk)
                if written > max_bytes:
                    raise too_large(field, max_bytes, "the source is longer")
                write(handle, chunk)
        if deadline.expired:  # the watchdog ended the body early: what arrived is not the file
            raise TimeoutError
        return path
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def write(handle, chunk: bytes):
    try:
        handle.write(chunk)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise InsufficientStorage("the temp disk is full; try again later") from exc
        raise


def new_file(directory: Path, suffix: str) -> tuple[Path, int]:
    """A file made for this fetch alone (`fetched_<n><suffix>`, a number no other fetched file has) and its open
    descriptor."""
    taken = {name.partition(".")[0] for name in os.listdir(directory) if name.startswith("fetched_")}
    for number in itertools.count(1):
        path = directory / f"fetched_{number}{suffix}"
        if f"fetched_{number}" in taken:
            continue
        try:
            return path, os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except FileExistsError:
            continue
    raise AssertionError("unreachable")  # pragma: no cover


def too_large(field: str, max_bytes: int, what: str) -> PayloadTooLarge:
    message = f"{what}: the limit is {max_bytes} bytes"
    return PayloadTooLarge(f"{field}: {message}", fields={field: [message]})


def declared_length(response) -> int | None:
    if response.headers.get("Transfer-Encoding"):  # chunked: any Content-Length beside it means nothing
        return None
    try:
        return int(response.headers.get("Content-Length", ""))
    except ValueError:
        return None


def suffix_of(url: str) -> str:
    """The URL path's extension when it is a plain media one (".mp4"), else ""."""
    suffix = PurePosixPath(unquote(urlsplit(url).path)).suffix.lower()
    return suffix if suffix in MEDIA_SUFFIXES else ""


def shown(url: str) -> str:
    """A URL as a refusal shows it: no credentials, query or fragment (they may carry a secret), at most SHOWN
    characters."""
    text = CREDENTIALS.sub("//", url.split("#", 1)[0].split("?", 1)[0], count=1)
    return text if len(text) <= SHOWN else f"{text[:SHOWN]}…"


def phrase(status: int) -> str:
    try:
        return f" {http.HTTPStatus(status).phrase}"
    except ValueError:
        return ""


def reason(exc: BaseException) -> str:
    """What ended a fetch, for its client: refused, reset, TLS, a broken answer."""
    seen = []
    while exc is not None and len(seen) < 10:
        seen.append(exc)
        exc = exc.__cause__ or exc.__context__
    for found in seen:
        if isinstance(found, ssl.SSLCertVerificationError):
            return f"TLS failed: {found.verify_message or found}"
        if isinstance(found, ssl.SSLError):
            return f"TLS failed: {found.reason or found}"
        if isinstance(found, ConnectionRefusedError):
            return "the connection was refused"
        if isinstance(found, ConnectionResetError):
            return "the connection was reset"
        if isinstance(found, urllib3.exceptions.IncompleteRead | urllib3.exceptions.ProtocolError):
            return "the connection closed before the body was complete"
        if isinstance(found, http.client.HTTPException):
            return "the answer is not HTTP"
        if isinstance(found, OSError) and found.strerror:
            return found.strerror[:100]
    return type(seen[0]).__name__ if seen else "unknown error"
