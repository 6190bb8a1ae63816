"""The ``transport`` import: outbound TCP streams under the egress policy.

The plugin speaks TLS itself; the host only moves bytes. Names are checked before
resolution and every resolved address after it; resolution and every connection
attempt share one deadline; every socket gets TCP_NODELAY (the plugin writes whole TLS
flights, which Nagle would hold back ~40 ms); every read and write keeps to the time
the plugin passes (what is left of its call's deadline).
"""

from __future__ import annotations

import concurrent.futures
import ipaddress
import socket
import threading
import time
from typing import Any, Callable, Dict, Iterable, List, Optional, Union

from wasmtime.component import ResourceHost, Variant

from .egress import Egress
from .types import NetError, NetErrorKind, TransportStats

MAX_READ = 64 * 1024
"""The most bytes one ``read`` returns, as in the Rust host."""

# Before Python 3.10, socket.timeout is not a TimeoutError.
_TIMEOUTS = (TimeoutError, socket.timeout)

CONNECTION = 1
"""The host's type id for the ``connection`` resource (any host-chosen integer)."""

_resolver: Optional[concurrent.futures.ThreadPoolExecutor] = None
_resolver_lock = threading.Lock()


def _resolver_pool() -> concurrent.futures.ThreadPoolExecutor:
    """The threads name lookups run on, made on first use (``getaddrinfo`` takes no
    timeout: a lookup past the deadline is abandoned to its thread)."""
    global _resolver
    with _resolver_lock:
        if _resolver is None:
            _resolver = concurrent.futures.ThreadPoolExecutor(
                max_workers=4, thread_name_prefix="gateway-auth-resolve")
        return _resolver


Resolver = Callable[[str, int], Iterable[str]]
"""Turns a host name (never an IP literal) and port into IP addresses, as text."""


def system_resolver(host: str, port: int) -> List[str]:
    """The operating system's resolver (``getaddrinfo``)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def open_socket(egress: Egress, host: str, port: int, timeout: float,
                resolver: Optional[Resolver] = None) -> Union[socket.socket, NetError]:
    """A connected TCP socket to ``host``:``port`` under ``egress``, or the
    :class:`NetError` why not.

    The name is checked first, then every resolved address; resolution (by
    ``resolver``, default the system's, for names only) and every connection attempt
    share one deadline, ``timeout`` seconds from now. The socket has TCP_NODELAY set
    and is in blocking mode with no timeout.
    """
    if not egress.allows(host, port):
        return NetError(NetErrorKind.DENIED, f"{host}:{port} is not in the egress allow-list")
    deadline = time.monotonic() + max(timeout, 0.0)
    name = host.strip("[]")
    try:
        addresses: List[str] = [str(ipaddress.ip_address(name))]
    except ValueError:
        lookup = _resolver_pool().submit(lambda: list(resolver(name, port)) if resolver
                                         else system_resolver(name, port))
        try:
            addresses = lookup.result(timeout=max(timeout, 0.0))
        except concurrent.futures.TimeoutError:
            return NetError(NetErrorKind.TIMEOUT)
        except (OSError, UnicodeError, ValueError) as e:
            return NetError(NetErrorKind.RESOLVE, f"{host}: {e}")
    refusal: Optional[str] = None
    failure: Optional[OSError] = None
    for text in addresses:
        try:
            ip = ipaddress.ip_address(text.split("%")[0])
        except ValueError:
            failure = OSError(f"the resolver returned {text!r}, not an IP address")
            continue
        if not egress.check_address(ip, port):
            refusal = (f"{host}: {ip} is a private, loopback, link-local or other "
                       f"special-purpose address")
            continue
        left = deadline - time.monotonic()
        if left <= 0:
            return NetError(NetErrorKind.TIMEOUT)
        family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.settimeout(left)
            sock.connect((text, port))
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.settimeout(None)
        except OSError as e:
            sock.close()
            failure = e
            continue
        return sock
    if isinstance(failure, _TIMEOUTS):
        return NetError(NetErrorKind.TIMEOUT)
    if failure is not None:
        return NetError(NetErrorKind.CONNECT, f"{host}:{port}: {failure}")
    if refusal is not None:
        return NetError(NetErrorKind.DENIED, refusal)
    return NetError(NetErrorKind.RESOLVE, f"{host}: no addresses")


def send_all(sock: socket.socket, data: bytes, deadline: float) -> None:
    """Sends all of ``data`` by ``deadline`` (``time.monotonic``), else raises
    ``TimeoutError``: each send waits only for the time left, so a peer that takes a
    little at a time cannot stretch the write."""
    view = memoryview(data)
    while view:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the write did not finish in time")
        sock.settimeout(left)
        sent = sock.send(view)
        view = view[sent:]


def socket_error(e: OSError) -> NetError:
    """A socket failure as a :class:`NetError`."""
    if isinstance(e, _TIMEOUTS + (BlockingIOError,)):  # BlockingIOError: no time was left
        return NetError(NetErrorKind.TIMEOUT)
    if isinstance(e, (ConnectionResetError, ConnectionAbortedError, BrokenPipeError)):
        return NetError(NetErrorKind.RESET, str(e))
    return NetError(NetErrorKind.OTHER, str(e))


def wit_net_error(net: NetError) -> Variant:
    """A :class:`NetError` as the ``net-error`` variant."""
    return Variant(net.kind.value, net.message if net.kind not in (
        NetErrorKind.TIMEOUT, NetErrorKind.CLOSED) else None)


class Transport:
    """The ``transport`` import of one instance: its sockets, by resource rep."""

    def __init__(self, egress: Egress, resolver: Optional[Resolver] = None) -> None:
        self.egress = egress
        self.resolver = resolver
        self.sockets: Dict[int, socket.socket] = {}
        self._next_rep = 1
        self.connections = 0
        self.bytes_sent = 0
        self.bytes_received = 0

    def stats(self) -> TransportStats:
        """What this instance's connections have moved."""
        return TransportStats(self.connections, self.bytes_sent, self.bytes_received)

    def connect(self, _store: Any, host: str, port: int, timeout_ms: int) -> Any:
        """``connect``: a ``connection`` resource, or the ``net-error``."""
        try:
            opened = open_socket(self.egress, host, port, max(timeout_ms, 1) / 1000,
                                 self.resolver)
        except Exception as e:  # a host bug must not trap the plugin
            return wit_net_error(NetError(NetErrorKind.OTHER, f"{type(e).__name__}: {e}"))
        if isinstance(opened, NetError):
            return wit_net_error(opened)
        rep, self._next_rep = self._next_rep, self._next_rep + 1
        self.sockets[rep] = opened
        self.connections += 1
        return ResourceHost.own(rep, CONNECTION)

    def write(self, store: Any, conn: Any, data: bytes, timeout_ms: int) -> Any:
        """``[method]connection.write``: all of ``data`` within ``timeout_ms``."""
        sock = self.sockets.get(conn.to_host(store).rep)
        if sock is None:
            return Variant("closed")
        try:
            send_all(sock, data, time.monotonic() + timeout_ms / 1000)
        except OSError as e:
            return wit_net_error(socket_error(e))
        self.bytes_sent += len(data)
        return None

    def read(self, store: Any, conn: Any, max_bytes: int, timeout_ms: int) -> Any:
        """``[method]connection.read``: at most ``max_bytes``, waiting at most
        ``timeout_ms`` for the first; ``b""`` when the peer closed."""
        sock = self.sockets.get(conn.to_host(store).rep)
        if sock is None:
            return Variant("closed")
        try:
            sock.settimeout(timeout_ms / 1000)  # 0: only what is there already
            data = sock.recv(min(max(max_bytes, 1), MAX_READ))
        except OSError as e:
            return wit_net_error(socket_error(e))
        self.bytes_received += len(data)
        return data

    def drop(self, _store: Any, rep: int) -> None:
        """The guest dropped its ``connection``: close the socket."""
        sock = self.sockets.pop(rep, None)
        if sock is not None:
            sock.close()

    def close_all(self) -> None:
        """Closes every socket (the instance is gone)."""
        for sock in self.sockets.values():
            sock.close()
        self.sockets.clear()
