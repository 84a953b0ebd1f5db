"""Who sent a request: the client's address, through trusted proxies.

gunicorn gives the peer's address (nginx's, behind the proxy). When that
peer is one of FORWARDED_ALLOW_IPS, the client is the rightmost address of
X-Forwarded-For that is not itself a trusted proxy: nginx appends the peer
it saw, so anything a client wrote into the header stays to the left of it
and is never believed.
"""

import ipaddress
from functools import lru_cache

from django.conf import settings


@lru_cache(maxsize=8)
def _networks(spec: tuple) -> tuple:
    if "*" in spec:
        return (ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0"))
    return tuple(ipaddress.ip_network(item, strict=False) for item in spec)


def _address(text: str):
    text = text.strip()
    if text.startswith("[") and "]" in text:  # [v6]:port
        text = text[1:text.index("]")]
    elif text.count(":") == 1:  # v4:port
        text = text.split(":")[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def is_trusted_proxy(address) -> bool:
    networks = _networks(tuple(settings.FORWARDED_ALLOW_IPS))
    return any(address.version == net.version and address in net for net in networks)


def client_address(request) -> str | None:
    peer = _address(request.META.get("REMOTE_ADDR") or "")
    if peer is None:
        return None
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    if not forwarded or not is_trusted_proxy(peer):
        return str(peer)
    client = peer
    for hop in reversed(forwarded.split(",")):
        address = _address(hop)
        if address is None:  # a malformed hop: believe nothing further left
            break
        client = address
        if not is_trusted_proxy(address):
            break
    return str(client)
