"""Where a webhook may go (and a source be fetched from): http(s) URLs whose host resolves only to public addresses.

A callback URL is checked when a client gives it and again before every
attempt; the attempt then connects only to addresses that check resolved
and passed (`Target.addresses`, `pinned.send`), so a name that answers a
public address to the check and a private one to the connection (DNS
rebinding) never reaches the private network. `VIDEOAPI_WEBHOOK_ALLOW_PRIVATE` lifts the address rule
(an intranet, the tests), never the others. A source URL (`lifecycle.fetch`) follows the same rules
with its own refusal (`SourceRefused`) and its own flag (`VIDEOAPI_FETCH_ALLOW_PRIVATE`).
"""

import ipaddress
import socket
import threading
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError

MAX_URL_LENGTH = 2048
SHARED = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT (RFC 6598)
NAT64 = ipaddress.ip_network("64:ff9b::/96")  # well-known NAT64 prefix: an IPv4 address in the last 32 bits
IPV4_COMPATIBLE = ipaddress.ip_network("::/96")  # deprecated ::a.b.c.d
PUBLIC_ONLY = "callbacks go to public addresses only"
SOURCES_PUBLIC_ONLY = "sources are fetched from public addresses only"

# what an address must not be, in the order a refusal names it
KINDS = (
    ("unspecified", lambda ip: ip.is_unspecified),
    ("loopback", lambda ip: ip.is_loopback),
    ("link-local", lambda ip: ip.is_link_local),
    ("multicast", lambda ip: ip.is_multicast),
    ("shared (100.64.0.0/10)", lambda ip: ip.version == 4 and ip in SHARED),
    ("private", lambda ip: ip.is_private),
    ("reserved", lambda ip: ip.is_reserved),
    ("non-public", lambda ip: not ip.is_global),
)


class URLRefused(ValidationError):
    """A URL this service will not connect to; its message names the rule (DRF reports it under the field)."""

    code = "url"
    public_only = "only public addresses are allowed"  # what a refused address's message ends with

    def __init__(self, message):
        super().__init__(message, code=self.code)


class CallbackRefused(URLRefused):
    """A callback URL this service will not call."""

    code = "callback_url"
    public_only = PUBLIC_ONLY


class SourceRefused(URLRefused):
    """A source URL this service will not fetch."""

    code = "source_url"
    public_only = SOURCES_PUBLIC_ONLY


def embedded_ipv4(ip) -> tuple[str, ipaddress.IPv4Address] | None:
    """The IPv4 address an IPv6 address carries (mapped, 6to4, NAT64, IPv4-compatible), with the form's name."""
    if ip.version != 6:
        return None
    if ip.ipv4_mapped:
        return "IPv4-mapped", ip.ipv4_mapped
    if ip.sixtofour:
        return "6to4", ip.sixtofour
    if ip in NAT64:
        return "NAT64", ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip in IPV4_COMPATIBLE and int(ip) > 1:
        return "IPv4-compatible", ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def article(word: str) -> str:
    return f"{'an' if word[0].lower() in 'aeiou' or word.startswith('IPv') else 'a'} {word}"


def why_not_public(ip) -> str | None:
    """None for a public address; otherwise what it is ("loopback", "private", ...)."""
    inner = embedded_ipv4(ip)
    if inner is not None:
        reason = why_not_public(inner[1])
        if reason:
            return f"{reason} ({article(inner[0])} form of {inner[1]})"
    for kind, test in KINDS:
        if test(ip):
            return kind
    return None


@dataclass(frozen=True)
class Target:
    """A callback URL taken apart: what to connect to and what to say."""

    url: str
    scheme: str
    host: str  # ASCII (IDNA), lowercase, without brackets: DNS name, Host header, TLS server name
    port: int
    path: str  # path and query, never the fragment

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"

    def addresses(self, timeout: float | None = None, *, allow_private: bool | None = None,
                  refused: type[URLRefused] = CallbackRefused) -> list[str]:
        """Resolve the host once and check every address it has; the list, or `refused` naming the first bad one.

        With `timeout`, a resolver slower than that is a refusal too (its
        thread is left to finish on its own): a webhook attempt keeps its deadline.
        `allow_private` defaults to VIDEOAPI_WEBHOOK_ALLOW_PRIVATE.
        """
        addresses = list(dict.fromkeys(info[4][0] for info in self._resolve(timeout, refused)))
        if not addresses:
            raise refused(f"the host {self.host} does not resolve")
        if allow_private is None:
            allow_private = settings.VIDEOAPI_WEBHOOK_ALLOW_PRIVATE
        if not allow_private:
            for address in addresses:
                reason = why_not_public(ipaddress.ip_address(address))
                if reason:
                    named = "" if address == self.host else f"{self.host} resolves to "
                    raise refused(f"{named}{address}, {article(reason)} address: {refused.public_only}")
        return addresses

    def _resolve(self, timeout, refused):
        answer = {}

        def lookup():
            try:
                answer["infos"] = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM,
                                                     proto=socket.IPPROTO_TCP)
            except (OSError, UnicodeError):
                answer["infos"] = []

        if timeout is None:
            lookup()
        else:
            resolver = threading.Thread(target=lookup, daemon=True, name=f"resolve {self.host}")
            resolver.start()
            resolver.join(timeout)
            if "infos" not in answer:
                raise refused(f"the host {self.host} did not resolve within {timeout:.3g} s")
        return answer["infos"]


def parse(url: str, refused: type[URLRefused] = CallbackRefused) -> Target:
    """Take a callback (or source) URL apart, or raise `refused` naming the rule it breaks (no DNS yet)."""
    if not isinstance(url, str) or not url:
        raise refused("must be an http or https URL")
    if len(url) > MAX_URL_LENGTH:
        raise refused(f"must be at most {MAX_URL_LENGTH} characters")
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
        raise refused("must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        parts.hostname  # noqa: B018  (raises for a bracketed host that is not an IPv6 address)
    except ValueError:  # "http://[::1", "http://[notanip]/": not a URL at all
        raise refused("must be an http or https URL") from None
    scheme = parts.scheme.lower()
    if scheme not in {"http", "https"}:
        raise refused("must be an http or https URL")
    if "@" in parts.netloc:
        raise refused("must not contain credentials (user:password@)")
    if not parts.hostname:
        raise refused("must name a host")
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port is None:
        port = 443 if scheme == "https" else 80
    elif not 1 <= port <= 65535:
        raise refused("the port must be a number from 1 to 65535")
    try:
        host = parts.hostname.encode("idna").decode("ascii") if not parts.hostname.isascii() else parts.hostname
    except UnicodeError:
        raise refused("the host is not a valid name") from None
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(url=url, scheme=scheme, host=host.rstrip(".") or host, port=port, path=path)


def validate_callback_url(url: str) -> str:
    """`url` if the service may call it now; otherwise CallbackRefused naming the rule or the address.

    A resolver slower than VIDEOAPI_WEBHOOK_TIMEOUT is a refusal: a request never waits longer on DNS.
    """
    parse(url).addresses(settings.VIDEOAPI_WEBHOOK_TIMEOUT)
    return url
