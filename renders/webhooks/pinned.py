"""HTTP to an address that was checked, under one deadline: what a webhook attempt and a fetch share.

The socket goes to the checked address itself (never a second resolution:
no DNS rebinding); the Host header, the TLS server name and the certificate
check use the URL's host. A `Deadline` watchdog shuts every socket of the
exchange down at a fixed moment, whatever it waits for (connect, TLS, a
peer trickling bytes).
"""

import socket
import threading
import time
from typing import BinaryIO

import urllib3

from renders.webhooks.targets import Target


class Deadline:
    """Ends every socket it watches at a fixed moment, whatever the socket is waiting for."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.expires = time.monotonic() + seconds
        self.expired = False
        self._lock = threading.Lock()
        self._watched = []
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def remaining(self) -> float:
        return max(0.001, self.expires - time.monotonic())

    def watch(self, sock: socket.socket):
        # a duplicate of the descriptor: shutting it down ends the connection under the TLS wrapper too
        with self._lock:
            self._watched.append(sock.dup())
            if self.expired:
                self._end(self._watched[-1])

    def _expire(self):
        with self._lock:
            self.expired = True
            for sock in self._watched:
                self._end(sock)

    @staticmethod
    def _end(sock):
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def __enter__(self):
        self._timer.start()
        return self

    def __exit__(self, *exc):
        self._timer.cancel()
        with self._lock:
            for sock in self._watched:
                sock.close()
            self._watched.clear()


class Watched:
    """A urllib3 connection whose socket a Deadline watches from the moment it is connected."""

    deadline: Deadline

    def _new_conn(self):
        sock = super()._new_conn()
        self.deadline.watch(sock)
        return sock


class WatchedHTTPConnection(Watched, urllib3.connection.HTTPConnection):
    pass


class WatchedHTTPSConnection(Watched, urllib3.connection.HTTPSConnection):
    pass


def connection(target: Target, address: str, deadline: Deadline):
    """A connection (not yet open) to `address`, speaking to the target's host name, watched by `deadline`."""
    if target.scheme == "https":
        # the certificate is checked against the URL's host name, sent as SNI, on a socket to the checked address
        opened = WatchedHTTPSConnection(address, target.port, timeout=deadline.remaining(),
                                        server_hostname=target.host, assert_hostname=target.host,
                                        cert_reqs="CERT_REQUIRED")
    else:
        opened = WatchedHTTPConnection(address, target.port, timeout=deadline.remaining())
    opened.deadline = deadline
    return opened


def send(target: Target, addresses: list[str], method: str, deadline: Deadline, *, headers: dict,
         body: bytes | BinaryIO | None = None):
    """(connection, response) of the request on the first of `addresses` that takes the connection.

    The addresses are tried in order while one refuses the connection or has
    no route (an AAAA record on a host without IPv6), never another; the
    last one's failure is raised. The response's body is not read yet: the
    caller reads it and closes the connection. Redirects are answers like any other. A file `body` is
    streamed (give its Content-Length in `headers`).
    """
    for address in addresses[:-1]:
        try:
            return exchange(target, address, method, deadline, headers, body)
        except urllib3.exceptions.NewConnectionError:
            continue
    return exchange(target, addresses[-1], method, deadline, headers, body)


def exchange(target: Target, address: str, method: str, deadline: Deadline, headers: dict,
             body: bytes | BinaryIO | None):
    opened = connection(target, address, deadline)
    try:
        opened.request(method, target.path, body=body, preload_content=False, decode_content=False,
                       headers={**headers, "Host": target.host_header})
        return opened, opened.getresponse()
    except BaseException:
        opened.close()
        raise
