"""Upstream TLS streams over the plugin's sans-IO sessions: a blocking one over a
``socket`` (:class:`TlsStream`) and an asyncio one (:class:`AsyncTlsStream`).

The plugin's ``tls-session`` never touches the network: these streams own the socket,
move ciphertext, and call :meth:`TlsSession.advance` once per I/O event. The socket is
opened under the plugin's egress policy (the same rules as its own token requests),
with TCP_NODELAY; name resolution, the TCP connect and the TLS handshake share one
deadline.

Usage::

    with connect(plugin, "api.internal", 443, spec) as stream:
        stream.write(b"GET / HTTP/1.1\\r\\nhost: api.internal\\r\\n\\r\\n")
        head = stream.read()

    async with await open_stream(async_plugin, "api.internal", 443, spec) as stream:
        await stream.write(request)
        data = await stream.read()

What a user notices:

- **The plugin's session is freed on every path**: ``close`` (or leaving ``with``),
  a failed handshake, a connect past its deadline, a cancelled task. A session that is
  only forgotten would stay in the instance's memory.
- **close_notify**: ``close`` sends it. Once the server has sent its own, no more
  plaintext arrives (as in rustls): ``read`` returns ``b""``. A server that closes the
  TCP connection *without* close_notify ends the stream with :class:`UnexpectedEof`
  (the data may have been truncated), unless the stream was opened with
  ``ragged_eof=True``.
- **Coalesced writes** (``coalesce=True``): small writes are held (up to
  :data:`COALESCE_LIMIT` bytes) and sent with the next ``read``, ``flush`` or
  ``close``, so an HTTP request head and its body travel in one TLS record and one TCP
  segment instead of two (two small segments meet Nagle and delayed ACK at the server
  and stall ~40 ms on some stacks).
- A profile evicted from the plugin's cache is prepared again from its spec, by
  :class:`Profiles`, without the caller noticing.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import inspect
import select
import socket
import threading
import time
import typing
from typing import Any, Awaitable, Iterable, Iterator, Optional, Sequence, TypeVar, Union

from . import _transport
from .errors import GatewayAuthError, NetworkError, NetworkTimeout, TlsClosedError, UnknownProfileError, network_error
from .types import NetError, NetErrorKind, TlsInfo, TlsState, TrustSpec

__all__ = [
    "COALESCE_LIMIT",
    "READ_CHUNK",
    "AsyncTlsStream",
    "Profiles",
    "TlsStream",
    "UnexpectedEof",
    "connect",
    "open_socket",
    "open_stream",
]

READ_CHUNK = 64 * 1024
"""Ciphertext taken from the socket per step, and the default ``read`` size."""

WRITE_CHUNK = 256 * 1024
"""Plaintext handed to one ``advance`` by a blocking stream (a session takes at most
1 MiB per call)."""

LOOP_CHUNK = 32 * 1024
"""Ciphertext read, and plaintext handed to one ``advance``, per step of an asyncio
stream: each step runs on the event loop (~3 ms for 32 KiB with wasmtime-py 50), and
the stream yields to the loop between steps, so a bulk transfer never holds the loop
for long."""

COALESCE_LIMIT = 64 * 1024
"""The most plaintext a coalescing stream holds back before sending it."""

CLOSE_TIMEOUT = 1.0
"""How long ``close`` waits for the socket to take the close_notify alert."""

T = TypeVar("T")


class UnexpectedEof(NetworkError):
    """The server closed the TCP connection without close_notify: what arrived so far
    may be a truncated answer."""

    def __init__(self, message: str) -> None:
        super().__init__(NetError(NetErrorKind.CLOSED, message))


def _state(value: Any) -> TlsState:
    """A session state as :class:`TlsState` (tolerates the WIT case name)."""
    return value if isinstance(value, TlsState) else TlsState(str(value))


async def _maybe_await(value: Union[T, Awaitable[T]]) -> T:
    """``value``, awaited if it is awaitable (a ``Plugin`` answers at once, an
    ``AsyncPlugin``'s OAuth methods are coroutines)."""
    if inspect.isawaitable(value):
        return await value
    return value


def _socket_opener(plugin: Any) -> Any:
    """The ``open_socket`` of ``plugin`` (a ``Plugin``, or an ``AsyncPlugin`` through
    its loop-side instance ``tls``): the egress policy of its own connections,
    applied to upstreams too."""
    for owner in (plugin, getattr(plugin, "tls", None)):
        opener = getattr(owner, "open_socket", None)
        if opener is not None and not inspect.iscoroutinefunction(opener):
            return opener
    raise TypeError(f"{type(plugin).__name__} has no open_socket (egress policy)")


class Profiles:
    """The profile id of each trust spec prepared through it, so a connection costs
    one ``connect`` call on the plugin. A spec whose profile the plugin's cache has
    dropped (evicted, expired, cleared) is prepared again on the spot.

    It remembers at most ``limit`` specs, least recently used first out; the plugin's
    own cache is what bounds the configurations.
    """

    def __init__(self, limit: int = 4096) -> None:
        self._ids: "collections.OrderedDict[TrustSpec, str]" = collections.OrderedDict()
        self._limit = limit
        self._lock = threading.Lock()

    def _known(self, spec: TrustSpec) -> Optional[str]:
        with self._lock:
            profile_id = self._ids.get(spec)
            if profile_id is not None:
                self._ids.move_to_end(spec)
            return profile_id

    def _remember(self, spec: TrustSpec, profile_id: str) -> None:
        with self._lock:
            self._ids[spec] = profile_id
            self._ids.move_to_end(spec)
            while len(self._ids) > self._limit:
                self._ids.popitem(last=False)

    def session(self, plugin: Any, spec: TrustSpec, server_name: str, alpn: Sequence[str]) -> Any:
        """A new TLS session (``TlsSession``) of ``plugin`` for ``server_name``."""
        profile_id = self._known(spec)
        if profile_id is not None:
            try:
                return plugin.connect(profile_id, server_name, list(alpn))
            except UnknownProfileError:
                pass
        profile_id = plugin.prepare(spec).id
        self._remember(spec, profile_id)
        return plugin.connect(profile_id, server_name, list(alpn))

    async def asession(self, plugin: Any, spec: TrustSpec, server_name: str,
                       alpn: Sequence[str]) -> Any:
        """:meth:`session` for an ``AsyncPlugin`` (or a ``Plugin`` on a loop)."""
        profile_id = self._known(spec)
        if profile_id is not None:
            try:
                return await _maybe_await(plugin.connect(profile_id, server_name, list(alpn)))
            except UnknownProfileError:
                pass
        profile = await _maybe_await(plugin.prepare(spec))
        self._remember(spec, profile.id)
        return await _maybe_await(plugin.connect(profile.id, server_name, list(alpn)))


_default_profiles = Profiles()


def open_socket(plugin: Any, host: str, port: int, timeout: float) -> socket.socket:
    """A TCP socket to ``host``:``port`` under ``plugin``'s egress policy, with
    TCP_NODELAY, blocking; resolution and connection attempts end by ``timeout``.

    Raises :class:`~gateway_auth.errors.EgressDenied`,
    :class:`~gateway_auth.errors.NetworkTimeout` or
    :class:`~gateway_auth.errors.NetworkError`.
    """
    return typing.cast(socket.socket, _socket_opener(plugin)(host, port, timeout))


def _socket_failure(e: OSError) -> NetworkError:
    return network_error(_transport.socket_error(e))


def _timeout(what: str) -> NetworkTimeout:
    return NetworkTimeout(NetError(NetErrorKind.TIMEOUT, what))


def _left(deadline: Optional[float]) -> Optional[float]:
    """Seconds left until ``deadline`` (``time.monotonic``); ``None``: no deadline."""
    if deadline is None:
        return None
    return deadline - time.monotonic()


def _deadline(timeout: Optional[float]) -> Optional[float]:
    return None if timeout is None else time.monotonic() + timeout


class _Tls:
    """What both streams share: the session, the plaintext received and not yet read,
    the plaintext held for coalescing."""

    def __init__(self, session: Any, *, coalesce: bool, ragged_eof: bool) -> None:
        self._session: Any = session
        self._received = bytearray()
        self._pending = bytearray()
        self._coalesce = coalesce
        self._ragged_eof = ragged_eof
        self.state = TlsState.HANDSHAKING
        self._info: Optional[TlsInfo] = None

    def _advance(self, incoming: bytes, plaintext: bytes) -> bytes:
        session = self._session
        if session is None:
            raise TlsClosedError("the stream is closed")
        try:
            out = session.advance(incoming, plaintext)
        except BaseException:
            self._free()  # an error closes the session: nothing more can move
            raise
        if out.plaintext:
            self._received += out.plaintext
        self.state = _state(out.state)
        return bytes(out.outgoing)

    def _take(self, n: int) -> bytes:
        if len(self._received) <= n:
            data = bytes(self._received)
            self._received.clear()
        else:
            data = bytes(self._received[:n])
            del self._received[:n]
        return data

    def _hold(self, data: bytes) -> bool:
        """Holds ``data`` for coalescing if it fits; returns whether it did."""
        if self._coalesce and len(self._pending) + len(data) <= COALESCE_LIMIT:
            self._pending += data
            return True
        return False

    def _pieces(self, data: bytes, size: int) -> Iterator[bytes]:
        """The held plaintext and then ``data``, in pieces of at most ``size`` bytes
        for one ``advance`` each; what was held leads the first piece (so a request
        head and its body share a record) without copying the rest of ``data``."""
        view = memoryview(data)
        if self._pending:
            take = max(size - len(self._pending), 0)
            first = bytes(self._pending) + bytes(view[:take])
            self._pending.clear()
            view = view[take:]
            yield first
        for start in range(0, len(view), size):
            yield bytes(view[start:start + size])

    def _eof(self) -> bytes:
        """What reading a socket the server closed gives."""
        if self._ragged_eof:
            self.state = TlsState.PEER_CLOSED
            return b""
        raise UnexpectedEof("the upstream closed the connection without close_notify")

    def info(self) -> TlsInfo:
        """ALPN protocol, TLS version, cipher suite and whether the handshake resumed
        an earlier session of the same profile: read once when the handshake ends,
        so it stays available after ``close``."""
        if self._info is None:
            if self._session is None:
                raise TlsClosedError("the stream is closed")
            self._info = self._session.info()
        return self._info

    def _handshaken(self) -> None:
        """Reads what the handshake negotiated (nothing changes it later)."""
        if self._session is not None:
            self._info = self._session.info()

    @property
    def alpn(self) -> Optional[str]:
        """The ALPN protocol the server chose, if any."""
        return self.info().alpn

    def _gone(self) -> bool:
        """Whether the session can move nothing more: freed, or its plugin instance was
        replaced after a trap (a pool then drops the connection instead of reusing it)."""
        return self._session is None or bool(getattr(self._session, "freed", False))

    def _free(self) -> None:
        """Frees the plugin's session (its memory in the instance), once."""
        session, self._session = self._session, None
        if session is not None:
            self.state = TlsState.CLOSED
            session.free()


class TlsStream(_Tls):
    """A blocking TLS stream over a socket; ``with`` closes it.

    Made by :func:`connect`, or by :meth:`start` over a socket already connected.
    Timeouts are per call, in seconds (``None``: wait as long as it takes).
    """

    def __init__(self, sock: socket.socket, session: Any, *, coalesce: bool = False,
                 ragged_eof: bool = False) -> None:
        """Wraps ``sock`` and the plugin's ``session``; :meth:`start` runs the handshake."""
        super().__init__(session, coalesce=coalesce, ragged_eof=ragged_eof)
        self.socket = sock

    @classmethod
    def start(cls, sock: socket.socket, session: Any, *, timeout: Optional[float] = None,
              coalesce: bool = False, ragged_eof: bool = False) -> "TlsStream":
        """Runs the handshake of ``session`` over ``sock`` within ``timeout``. On any
        failure the session is freed and the socket closed."""
        stream = cls(sock, session, coalesce=coalesce, ragged_eof=ragged_eof)
        try:
            stream._handshake(_deadline(timeout))
        except BaseException:
            stream.close(notify=False)
            raise
        return stream

    def __enter__(self) -> "TlsStream":
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _send(self, data: Union[bytes, memoryview], deadline: Optional[float]) -> None:
        if not data:
            return
        try:
            if deadline is None:
                self.socket.settimeout(None)
                self.socket.sendall(data)
            else:
                _transport.send_all(self.socket, bytes(data), deadline)
        except OSError as e:
            raise _socket_failure(e) from e

    def _recv(self, deadline: Optional[float]) -> bytes:
        left = _left(deadline)
        if left is not None and left <= 0:
            raise _timeout("no data arrived in time")
        try:
            self.socket.settimeout(left)
            return self.socket.recv(READ_CHUNK)
        except OSError as e:
            raise _socket_failure(e) from e

    def _handshake(self, deadline: Optional[float]) -> None:
        self._send(self._advance(b"", b""), deadline)
        while self.state is TlsState.HANDSHAKING:
            incoming = self._recv(deadline)
            if not incoming:
                self._free()
                raise NetworkError(NetError(
                    NetErrorKind.CLOSED, "the server closed the connection during the TLS handshake"))
            self._send(self._advance(incoming, b""), deadline)
        self._handshaken()

    def read(self, max_bytes: int = READ_CHUNK, timeout: Optional[float] = None) -> bytes:
        """Up to ``max_bytes`` of plaintext; ``b""`` once the server has sent
        close_notify. Sends held writes first."""
        deadline = _deadline(timeout)
        if self._pending:
            self.flush(timeout)
        while not self._received:
            if self.state in (TlsState.PEER_CLOSED, TlsState.CLOSED):
                return b""
            incoming = self._recv(deadline)
            if not incoming:
                return self._eof()
            self._send(self._advance(incoming, b""), deadline)
        return self._take(max_bytes)

    def write(self, data: bytes, timeout: Optional[float] = None) -> None:
        """Sends ``data`` (all of it, however large) as TLS records; a coalescing
        stream may hold a small write until the next read, flush or close."""
        if self._hold(data):
            return
        self._write(data, _deadline(timeout))

    def _write(self, data: bytes, deadline: Optional[float]) -> None:
        for piece in self._pieces(data, WRITE_CHUNK):
            self._send(self._advance(b"", piece), deadline)

    def flush(self, timeout: Optional[float] = None) -> None:
        """Sends held writes now."""
        if self._pending:
            self._write(b"", _deadline(timeout))

    def readable(self) -> bool:
        """Whether a ``read`` would return at once: plaintext is buffered, the socket
        has data or was closed by the server, or the session is gone (its plugin
        instance was replaced after a trap). An idle keep-alive connection that is
        readable is not reused by an httpcore pool."""
        if self._received or self.state is not TlsState.OPEN or self._gone():
            return True
        try:
            return bool(select.select([self.socket], [], [], 0)[0])
        except (OSError, ValueError):
            return True

    def close(self, *, notify: bool = True) -> None:
        """Sends held writes and close_notify (best effort, briefly), frees the
        plugin's session and closes the socket. Safe to call more than once."""
        try:
            session = self._session
            if session is not None and notify:
                with contextlib.suppress(Exception):
                    if self._pending and self.state is not TlsState.HANDSHAKING:
                        self.flush(CLOSE_TIMEOUT)
                closing = b""
                if self._session is not None and not self._gone():
                    with contextlib.suppress(GatewayAuthError):  # nothing to say after all
                        closing = bytes(self._session.close())
                self._free()
                with contextlib.suppress(Exception):
                    self._send(closing, _deadline(CLOSE_TIMEOUT))
        finally:
            self._free()
            self.socket.close()


def connect(plugin: Any, host: str, port: int, trust: TrustSpec, *,
            server_name: Optional[str] = None, alpn: Iterable[str] = ("http/1.1",),
            timeout: float = 10.0, coalesce: bool = False, ragged_eof: bool = False,
            profiles: Optional[Profiles] = None) -> TlsStream:
    """A :class:`TlsStream` to ``host``:``port`` with its handshake done, trusting what
    ``trust`` says (prepared through the plugin's cache).

    ``server_name`` (default ``host``) is the name the certificate must carry and the
    SNI sent. Resolution, dial and handshake share one deadline, ``timeout`` seconds
    from now: past it this raises :class:`~gateway_auth.errors.NetworkTimeout`. A
    refused certificate raises the matching :class:`~gateway_auth.errors.TlsError`.
    On any failure the socket is closed and the plugin's session freed.
    """
    deadline = time.monotonic() + timeout
    sock = open_socket(plugin, host, port, timeout)
    try:
        session = (profiles or _default_profiles).session(plugin, trust, server_name or host, tuple(alpn))
    except BaseException:
        sock.close()
        raise
    return TlsStream.start(sock, session, timeout=max(deadline - time.monotonic(), 0.0),
                           coalesce=coalesce, ragged_eof=ragged_eof)


class AsyncTlsStream(_Tls):
    """An asyncio TLS stream over a non-blocking socket; ``async with`` closes it.

    Made by :func:`open_stream`, or by :meth:`start` over a connected socket. The
    plugin's session runs on the event loop (it is sans-IO: each step is a short
    computation). Timeouts are per call, in seconds (``None``: no limit).
    """

    def __init__(self, sock: socket.socket, session: Any, *, coalesce: bool = False,
                 ragged_eof: bool = False) -> None:
        """Wraps ``sock`` (made non-blocking) and the plugin's ``session``."""
        super().__init__(session, coalesce=coalesce, ragged_eof=ragged_eof)
        sock.setblocking(False)
        self.socket = sock
        self._loop = asyncio.get_running_loop()

    @classmethod
    async def start(cls, sock: socket.socket, session: Any, *, timeout: Optional[float] = None,
                    coalesce: bool = False, ragged_eof: bool = False) -> "AsyncTlsStream":
        """Runs the handshake of ``session`` over ``sock`` within ``timeout``. On any
        failure or cancellation the session is freed and the socket closed."""
        try:
            stream = cls(sock, session, coalesce=coalesce, ragged_eof=ragged_eof)
        except BaseException:
            session.free()
            sock.close()
            raise
        try:
            await _within(stream._handshake(), timeout, "the TLS handshake did not end in time")
        except BaseException:
            stream._abort()
            raise
        return stream

    async def __aenter__(self) -> "AsyncTlsStream":
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    async def _send(self, data: Union[bytes, memoryview]) -> None:
        if data:
            try:
                await self._loop.sock_sendall(self.socket, data)
            except OSError as e:
                raise _socket_failure(e) from e

    async def _recv(self) -> bytes:
        try:
            return await self._loop.sock_recv(self.socket, LOOP_CHUNK)
        except OSError as e:
            raise _socket_failure(e) from e

    async def _handshake(self) -> None:
        await self._send(self._advance(b"", b""))
        while self.state is TlsState.HANDSHAKING:
            incoming = await self._recv()
            if not incoming:
                self._free()
                raise NetworkError(NetError(
                    NetErrorKind.CLOSED, "the server closed the connection during the TLS handshake"))
            await self._send(self._advance(incoming, b""))
        self._handshaken()

    async def read(self, max_bytes: int = READ_CHUNK, timeout: Optional[float] = None) -> bytes:
        """Up to ``max_bytes`` of plaintext; ``b""`` once the server has sent
        close_notify. Sends held writes first."""
        if not self._received and self.state is TlsState.OPEN:
            await _within(self._fill(), timeout, "no data arrived in time")
        elif self._pending:
            await _within(self.flush(), timeout, "the write did not finish in time")
        return self._take(max_bytes)

    async def _fill(self) -> None:
        if self._pending:
            await self.flush()
        while not self._received:
            if self.state in (TlsState.PEER_CLOSED, TlsState.CLOSED):
                return
            incoming = await self._recv()
            if not incoming:
                self._eof()
                return
            await self._send(self._advance(incoming, b""))
            await asyncio.sleep(0)  # data that is always ready never suspends sock_recv

    async def write(self, data: bytes, timeout: Optional[float] = None) -> None:
        """Sends ``data`` (all of it, however large) as TLS records; a coalescing
        stream may hold a small write until the next read, flush or close."""
        if self._hold(data):
            return
        await _within(self._write(data), timeout, "the write did not finish in time")

    async def _write(self, data: bytes) -> None:
        for piece in self._pieces(data, LOOP_CHUNK):
            await self._send(self._advance(b"", piece))
            await asyncio.sleep(0)  # a socket that takes everything never suspends us

    async def flush(self, timeout: Optional[float] = None) -> None:
        """Sends held writes now."""
        if self._pending:
            await _within(self._write(b""), timeout, "the write did not finish in time")

    def readable(self) -> bool:
        """Whether a ``read`` would return at once (see :meth:`TlsStream.readable`)."""
        if self._received or self.state is not TlsState.OPEN or self._gone():
            return True
        try:
            return bool(select.select([self.socket], [], [], 0)[0])
        except (OSError, ValueError):
            return True

    async def aclose(self) -> None:
        """Sends held writes and close_notify (best effort, briefly), frees the
        plugin's session and closes the socket, also when cancelled part way."""
        try:
            if self._session is not None:
                data = b""
                if self._pending and self.state is TlsState.OPEN and not self._gone():
                    with contextlib.suppress(Exception):
                        data = self._advance(b"", b"".join(self._pieces(b"", COALESCE_LIMIT)))
                if self._session is not None and not self._gone():
                    with contextlib.suppress(GatewayAuthError):  # nothing to say after all
                        data += bytes(self._session.close())
                self._free()
                with contextlib.suppress(Exception):
                    await _within(self._send(data), CLOSE_TIMEOUT, "close_notify was not taken in time")
        finally:
            self._abort()

    def _abort(self) -> None:
        """Frees the session and closes the socket without a word to the server."""
        self._free()
        self.socket.close()


async def _within(awaitable: Awaitable[T], timeout: Optional[float], what: str) -> T:
    """``awaitable`` within ``timeout`` seconds, else :class:`NetworkTimeout`.

    On Python 3.11+ this is ``asyncio.timeout`` (no task per call, and a cancellation
    that arrives as the awaitable finishes is never lost, as it can be with 3.11's
    ``wait_for``)."""
    if timeout is None:
        return await awaitable
    try:
        if _timeout_scope is not None:
            async with _timeout_scope(max(timeout, 0.0)):
                return await awaitable
        return await asyncio.wait_for(awaitable, max(timeout, 0.0))
    except asyncio.TimeoutError:
        raise _timeout(what) from None


_timeout_scope: Any = getattr(asyncio, "timeout", None)


async def open_socket_async(plugin: Any, host: str, port: int, timeout: float) -> socket.socket:
    """:func:`open_socket` on a worker thread (resolution and connect block). If the
    caller gives up first (cancellation), the socket the thread still opens is closed
    rather than left behind."""
    future = asyncio.get_running_loop().run_in_executor(None, open_socket, plugin, host, port, timeout)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        future.add_done_callback(_close_unclaimed)
        raise


def _close_unclaimed(future: "asyncio.Future[socket.socket]") -> None:
    if not future.cancelled() and future.exception() is None:
        future.result().close()


async def open_stream(plugin: Any, host: str, port: int, trust: TrustSpec, *,
                      server_name: Optional[str] = None, alpn: Iterable[str] = ("http/1.1",),
                      timeout: float = 10.0, coalesce: bool = False, ragged_eof: bool = False,
                      profiles: Optional[Profiles] = None) -> AsyncTlsStream:
    """An :class:`AsyncTlsStream` to ``host``:``port`` with its handshake done: the
    asyncio form of :func:`connect`, with the same deadline. Resolution and the TCP
    connect run on a worker thread; the handshake on the loop. On any failure or
    cancellation the socket is closed and the plugin's session freed."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    sock = await open_socket_async(plugin, host, port, timeout)
    try:
        session = await (profiles or _default_profiles).asession(
            plugin, trust, server_name or host, tuple(alpn))
    except BaseException:
        sock.close()
        raise
    return await AsyncTlsStream.start(sock, session, timeout=max(deadline - loop.time(), 0.0),
                                      coalesce=coalesce, ragged_eof=ragged_eof)
