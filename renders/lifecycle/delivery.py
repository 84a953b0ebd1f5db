"""A job's result PUT to the client's own storage (`output_url`, e.g. an S3/GCS/Azure presigned upload).

    check_destination(url, headers)                    # the form alone, no DNS: 400s before a job's 202
    deliver(path, url, headers, content_type)          # the PUT; the job's `result`, or DeliveryFailed (502)

The address rules of sources by URL (`lifecycle.fetch`): http(s), no
credentials, a host resolving only to public addresses (unless
VIDEOAPI_FETCH_ALLOW_PRIVATE), the connection made to the checked address
(`webhooks.pinned`); no redirect is followed. The URL's query goes out
exactly as given (presigned signatures live there). The file is streamed
from disk with its Content-Length. A 5xx, 408, 429, timeout or connection
failure is retried after each of VIDEOAPI_DELIVERY_RETRY_DELAYS; any other
answer is final. Each attempt is bounded by VIDEOAPI_FETCH_TIMEOUT.
"""

import json
import logging
import re
import socket
import time
from pathlib import Path

from django.conf import settings

from renders.errors import DeliveryFailed, invalid
from renders.lifecycle.fetch import phrase, reason
from renders.webhooks.pinned import Deadline, send
from renders.webhooks.targets import URLRefused, parse

logger = logging.getLogger("renders.jobs")

RETRIED = {408, 429}  # and every 5xx
MAX_HEADERS = 50
MAX_NAME = 100
MAX_VALUE = 4096
TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
VALUE = re.compile(r"[\t\x20-\x7e]*")
# set by the service (framing, the connection, the address) or meaningless on one PUT: never the client's
FORBIDDEN = {"host", "content-length", "transfer-encoding", "connection", "keep-alive", "proxy-connection", "te",
             "trailer", "upgrade", "expect", "proxy-authorization", "proxy-authenticate"}
ERROR_CODE = re.compile(rb"<Code>([A-Za-z0-9_.-]{1,80})</Code>")  # S3, GCS and Azure name their refusal so
UNRESOLVED = ("does not resolve", "did not resolve")  # a refusal that a later attempt may not meet
USER_AGENT = "videoapi-delivery/1"


class DestinationRefused(URLRefused):
    """An output_url this service will not PUT to."""

    code = "output_url"
    public_only = "results are delivered to public addresses only"


class Retry(Exception):
    """An attempt that failed in a way a later one may not (5xx, 408, 429, timeout, connection)."""


def check_destination(url, headers, *, field: str = "output_url",
                      headers_field: str = "output_headers") -> tuple[str, dict]:
    """(url, headers) if their form may be delivered to (no DNS yet); else 400 naming the field.
    `headers` is a dict of str -> str, its JSON text, or None."""
    try:
        parse(url, DestinationRefused)
    except DestinationRefused as exc:
        raise invalid(field, exc.messages[0]) from None
    return url, check_headers(headers, headers_field)


def check_headers(headers, field: str) -> dict:
    if headers is None or headers == "":
        return {}
    if isinstance(headers, str):
        try:
            headers = json.loads(headers)
        except ValueError:
            raise invalid(field, "must be a JSON object of header names to values") from None
    if not isinstance(headers, dict):
        raise invalid(field, "must be a JSON object of header names to values")
    if len(headers) > MAX_HEADERS:
        raise invalid(field, f"at most {MAX_HEADERS} headers")
    seen = set()
    for name, value in headers.items():
        if not isinstance(name, str) or not TOKEN.fullmatch(name) or len(name) > MAX_NAME:
            raise invalid(field, f"{str(name)[:MAX_NAME]!r} is not a header name")
        if name.lower() in FORBIDDEN:
            raise invalid(field, f"{name} is set by the service and may not be given")
        if name.lower() in seen:
            raise invalid(field, f"{name} is given twice")
        seen.add(name.lower())
        if not isinstance(value, str):
            raise invalid(field, f"the value of {name} must be a string")
        if len(value) > MAX_VALUE or not VALUE.fullmatch(value):
            raise invalid(field, f"the value of {name} must be at most {MAX_VALUE} printable ASCII characters")
    return dict(headers)


def deliver(path: Path, url: str, headers: dict, content_type: str, *, filename: str | None = None,
            sleep=time.sleep) -> dict:
    """PUT the file at `path` to `url`; the job's `result` once it answered 2xx, or DeliveryFailed (502) when it
    failed for good. `sleep(seconds)` waits before each retry (the worker's keeps the job's lease)."""
    path = Path(path)
    size = path.stat().st_size
    delays = list(settings.VIDEOAPI_DELIVERY_RETRY_DELAYS)
    attempts = 0
    while True:
        attempts += 1
        try:
            attempt(path, size, url, headers, content_type)
            break
        except Retry as exc:
            if not delays:
                raise DeliveryFailed(f"output_url: {exc} (after {attempts} attempt{'s' * (attempts > 1)})") from None
            logger.info("event=delivery_retry url=%s attempt=%s why=%r", without_query(url), attempts, str(exc))
            sleep(delays.pop(0))
    logger.info("event=delivered url=%s bytes=%s attempts=%s", without_query(url), size, attempts)
    return {"delivered_to": without_query(url), "bytes": size, "content_type": content_type,
            "filename": filename or path.name}


def attempt(path: Path, size: int, url: str, headers: dict, content_type: str):
    """One PUT; returns on a 2xx, raises Retry when a later attempt may succeed, DeliveryFailed when none will."""
    timeout = settings.VIDEOAPI_FETCH_TIMEOUT
    deadline = Deadline(timeout)
    sent = dedupe({"User-Agent": USER_AGENT, "Content-Type": content_type, "Accept-Encoding": "identity",
                   **headers, "Content-Length": str(size)})  # the client's own may replace the first three
    try:
        with deadline:
            target = parse(url, DestinationRefused)
            try:
                addresses = target.addresses(deadline.remaining(), allow_private=settings.VIDEOAPI_FETCH_ALLOW_PRIVATE,
                                             refused=DestinationRefused)
            except DestinationRefused as exc:
                if any(words in exc.messages[0] for words in UNRESOLVED):
                    raise Retry(exc.messages[0]) from None
                raise DeliveryFailed(f"output_url: {exc.messages[0]}") from None
            with path.open("rb") as body:
                connection, response = send(target, addresses, "PUT", deadline, headers=sent, body=body)
            try:
                said = response.read(4096, decode_content=False) if not 200 <= response.status < 300 else b""
            finally:
                connection.close()
    except (DeliveryFailed, Retry):
        raise
    except Exception as exc:  # noqa: BLE001  (whatever ended the attempt: the connection, TLS, the time)
        if deadline.expired or isinstance(exc, (TimeoutError, socket.timeout)):
            raise Retry(f"the PUT took longer than {timeout:g} s") from None
        raise Retry(f"could not PUT the result: {reason(exc)}") from None
    status = response.status
    if 200 <= status < 300:
        return
    found = ERROR_CODE.search(said)
    told = f"the destination answered {status}{phrase(status)}" + (f" ({found[1].decode()})" if found else "")
    if 300 <= status < 400:
        raise DeliveryFailed(f"output_url: {told}; redirects are not followed")
    if status >= 500 or status in RETRIED:
        raise Retry(told)
    raise DeliveryFailed(f"output_url: {told}")


def dedupe(headers: dict) -> dict:
    """One value per header name (case-insensitively), the last given winning."""
    out = {}
    for name, value in headers.items():
        for known in [known for known in out if known.lower() == name.lower()]:
            del out[known]
        out[name] = value
    return out


def without_query(url: str) -> str:
    """The URL as the job's result shows it: no query (a presigned signature) and no fragment."""
    return url.split("#", 1)[0].split("?", 1)[0]
