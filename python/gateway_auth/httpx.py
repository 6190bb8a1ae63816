"""httpx integration: upstream HTTPS through the plugin's TLS sessions, and OAuth
tokens from the plugin's sessions.

**Transports.** :class:`PluginTransport` (for ``httpx.Client``) and
:class:`AsyncPluginTransport` (for ``httpx.AsyncClient``) are httpcore connection
pools whose network backend opens sockets under the plugin's egress policy and speaks
TLS through the plugin's sans-IO sessions instead of Python's ``ssl``. Each upstream
is trusted according to its own :class:`~gateway_auth.TrustSpec`, prepared once in the
plugin's cache (least recently used eviction, one entry at a time) and resumed on
reconnection. httpcore supplies keep-alive, pooling and HTTP/1.1 framing::

    trust = {"https://billing.internal:8443": TrustSpec(billing_ca),
             "crm.internal": TrustSpec(crm_ca, client_cert, client_key)}
    async with httpx.AsyncClient(transport=AsyncPluginTransport(plugin, trust)) as client:
        r = await client.get("https://billing.internal:8443/invoices")

``trust`` is a mapping or a callable ``(host, port) -> TrustSpec | None``. Mapping keys
are tried most specific first: ``https://host:port``, ``host:port``, ``host``. An
origin with no spec (and no ``default``) fails with ``httpx.ConnectError`` before any
connection is made.

Errors: a certificate the spec does not trust (or any TLS failure) raises the
package's :class:`~gateway_auth.errors.TlsError` subclass unchanged (the server sees
no request); an egress refusal, a refused connection or a reset raises
``httpx.ConnectError`` / ``httpx.ReadError`` / ``httpx.WriteError`` (timeouts the
matching ``httpx`` timeout), with the package's error as ``__cause__``.

A server that closes a connection without close_notify while a body delimited by
the close is still arriving fails the request with ``httpx.ReadError`` (the body may be
truncated; as in rustls); bodies with a length or chunked are unaffected, and an idle
pooled connection the server closed is simply not reused.

``response.extensions["network_stream"].get_extra_info("tls_info")`` is the
connection's :class:`~gateway_auth.TlsInfo` (ALPN, version, cipher suite, resumed).
The sync transport may be shared by threads (the plugin and the pool are thread-safe).

**Auth.** :class:`PluginAuth` adds ``Authorization: <token_type> <access_token>``
from a plugin session (sync and async flows); on a 401 whose ``WWW-Authenticate``
says ``error="invalid_token"`` it renews the token once and retries once.
"""

from __future__ import annotations

import asyncio
import re
import select
import socket
import ssl
import time
import typing
from typing import Any, Callable, Iterable, Mapping, Optional, Union

import httpcore
import httpx

from .errors import GatewayAuthError, NetworkError, NetworkTimeout
from .streams import (
    AsyncTlsStream,
    Profiles,
    TlsStream,
    _maybe_await,
    _within,
    open_socket,
    open_socket_async,
)
from .types import Token, TrustSpec

__all__ = [
    "AsyncPluginNetworkBackend",
    "AsyncPluginTransport",
    "PluginAuth",
    "PluginNetworkBackend",
    "PluginTransport",
    "TrustMap",
    "token_rejected",
]

TrustMap = Union[Mapping[str, TrustSpec], Callable[[str, int], Optional[TrustSpec]]]
"""Which trust spec an upstream gets: a mapping (keys ``https://host:port``,
``host:port`` or ``host``) or a callable of ``(host, port)``."""

_NO_TIMEOUT = 24 * 3600.0
"""The connect deadline used when httpx sets none (``timeout=None``)."""

_ALPN = ("http/1.1",)
"""What the transports offer: HTTP/1.1 only (no HTTP/2 yet)."""


def _connect_deadline(timeout: Optional[float]) -> float:
    return _NO_TIMEOUT if timeout is None else timeout


class _Trust:
    """Finds an origin's spec in a :data:`TrustMap`."""

    def __init__(self, trust: TrustMap, default: Optional[TrustSpec]) -> None:
        self._trust = trust
        self._default = default

    def spec(self, host: str, port: int) -> TrustSpec:
        found: Optional[TrustSpec]
        if callable(self._trust):
            found = self._trust(host, port)
        else:
            name = f"[{host}]" if ":" in host else host
            keys = [f"https://{name}:{port}", f"{name}:{port}", host, name]
            if port == 443:
                keys.insert(1, f"https://{name}")
            found = next((self._trust[k] for k in keys if k in self._trust), None)
        if found is None:
            found = self._default
        if found is None:
            raise httpcore.ConnectError(f"no trust spec for the upstream {host}:{port}")
        return found


class _AlpnView:
    """What httpcore asks of ``get_extra_info("ssl_object")``: the ALPN choice."""

    def __init__(self, stream: Union[TlsStream, AsyncTlsStream]) -> None:
        self._stream = stream

    def selected_alpn_protocol(self) -> Optional[str]:
        return self._stream.info().alpn

    def version(self) -> Optional[str]:
        return self._stream.info().version


def _network_failure(e: NetworkError, during: str) -> Exception:
    """The httpcore exception for a package network error ``during`` a step."""
    timeouts = {"connect": httpcore.ConnectTimeout, "read": httpcore.ReadTimeout,
                "write": httpcore.WriteTimeout}
    errors = {"connect": httpcore.ConnectError, "read": httpcore.ReadError,
              "write": httpcore.WriteError}
    kind = timeouts[during] if isinstance(e, NetworkTimeout) else errors[during]
    return kind(str(e))


def _socket_readable(sock: socket.socket) -> bool:
    """Whether ``sock`` has data or was closed by its peer (so an idle pooled
    connection that is readable is not reused)."""
    try:
        return bool(select.select([sock], [], [], 0)[0])
    except (OSError, ValueError):
        return True


def _extra(stream: Any, sock: socket.socket, info: str) -> Any:
    if info == "socket":
        return sock
    if info == "client_addr":
        return sock.getsockname()
    if info == "server_addr":
        return sock.getpeername()
    if info == "is_readable":
        return stream.readable() if stream is not None else True
    if stream is not None:
        if info == "ssl_object":
            return _AlpnView(stream)
        if info == "tls_info":
            return stream.info()
        if info == "tls_stream":
            return stream
    return None


# ---- blocking ----


class _SyncTls(httpcore.NetworkStream):
    """An httpcore stream over a :class:`TlsStream`."""

    def __init__(self, stream: TlsStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: Optional[float] = None) -> bytes:
        try:
            return self._stream.read(max_bytes, timeout)
        except NetworkError as e:
            raise _network_failure(e, "read") from e

    def write(self, buffer: bytes, timeout: Optional[float] = None) -> None:
        try:
            self._stream.write(buffer, timeout)
        except NetworkError as e:
            raise _network_failure(e, "write") from e

    def close(self) -> None:
        self._stream.close()

    def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: Optional[str] = None,
                  timeout: Optional[float] = None) -> httpcore.NetworkStream:
        raise httpcore.UnsupportedProtocol("TLS inside TLS (an HTTPS proxy) is not supported")

    def get_extra_info(self, info: str) -> Any:
        return _extra(self._stream, self._stream.socket, info)


class _SyncTcp(httpcore.NetworkStream):
    """A plain TCP stream, until ``start_tls`` hands it to the plugin."""

    def __init__(self, backend: "PluginNetworkBackend", sock: socket.socket, host: str,
                 port: int) -> None:
        self._backend = backend
        self._sock = sock
        self._host = host
        self._port = port

    def read(self, max_bytes: int, timeout: Optional[float] = None) -> bytes:
        self._sock.settimeout(timeout)
        try:
            return self._sock.recv(max_bytes)
        except socket.timeout as e:
            raise httpcore.ReadTimeout(str(e)) from e
        except OSError as e:
            raise httpcore.ReadError(str(e)) from e

    def write(self, buffer: bytes, timeout: Optional[float] = None) -> None:
        self._sock.settimeout(timeout)
        try:
            self._sock.sendall(buffer)
        except socket.timeout as e:
            raise httpcore.WriteTimeout(str(e)) from e
        except OSError as e:
            raise httpcore.WriteError(str(e)) from e

    def close(self) -> None:
        self._sock.close()

    def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: Optional[str] = None,
                  timeout: Optional[float] = None) -> httpcore.NetworkStream:
        backend = self._backend
        try:
            spec = backend._trust.spec(self._host, self._port)
            session = backend._profiles.session(backend._plugin, spec,
                                                server_hostname or self._host, backend._alpn)
        except BaseException:
            self._sock.close()
            raise
        try:
            stream = TlsStream.start(self._sock, session, timeout=_connect_deadline(timeout),
                                     coalesce=True)
        except NetworkError as e:
            raise _network_failure(e, "connect") from e
        return _SyncTls(stream)

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":
            return _socket_readable(self._sock)
        return _extra(None, self._sock, info)


class PluginNetworkBackend(httpcore.NetworkBackend):
    """An httpcore network backend whose connections are opened under the plugin's
    egress policy and whose TLS is the plugin's (blocking form, for a ``Plugin``)."""

    def __init__(self, plugin: Any, trust: TrustMap, *, default: Optional[TrustSpec] = None,
                 profiles: Optional[Profiles] = None) -> None:
        """``plugin`` is a ``gateway_auth.Plugin``; ``trust`` says which spec each
        upstream gets (``default`` for the rest, if given). ALPN offers http/1.1."""
        self._plugin = plugin
        self._trust = _Trust(trust, default)
        self._alpn = _ALPN
        self._profiles = profiles or Profiles()

    def connect_tcp(self, host: str, port: int, timeout: Optional[float] = None,
                    local_address: Optional[str] = None,
                    socket_options: Optional[Iterable[Any]] = None) -> httpcore.NetworkStream:
        try:
            sock = open_socket(self._plugin, host, port, _connect_deadline(timeout))
        except NetworkError as e:
            raise _network_failure(e, "connect") from e
        for option in socket_options or ():
            sock.setsockopt(*option)
        return _SyncTcp(self, sock, host, port)

    def connect_unix_socket(self, path: str, timeout: Optional[float] = None,
                            socket_options: Optional[Iterable[Any]] = None) -> httpcore.NetworkStream:
        raise httpcore.UnsupportedProtocol("Unix sockets bypass the egress policy: not supported")

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


# ---- asyncio ----


class _AsyncTls(httpcore.AsyncNetworkStream):
    """An httpcore stream over an :class:`AsyncTlsStream`."""

    def __init__(self, stream: AsyncTlsStream) -> None:
        self._stream = stream

    async def read(self, max_bytes: int, timeout: Optional[float] = None) -> bytes:
        try:
            return await self._stream.read(max_bytes, timeout)
        except NetworkError as e:
            raise _network_failure(e, "read") from e

    async def write(self, buffer: bytes, timeout: Optional[float] = None) -> None:
        try:
            await self._stream.write(buffer, timeout)
        except NetworkError as e:
            raise _network_failure(e, "write") from e

    async def aclose(self) -> None:
        await self._stream.aclose()

    async def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: Optional[str] = None,
                        timeout: Optional[float] = None) -> httpcore.AsyncNetworkStream:
        raise httpcore.UnsupportedProtocol("TLS inside TLS (an HTTPS proxy) is not supported")

    def get_extra_info(self, info: str) -> Any:
        return _extra(self._stream, self._stream.socket, info)


class _AsyncTcp(httpcore.AsyncNetworkStream):
    """A plain TCP stream on the loop, until ``start_tls`` hands it to the plugin."""

    def __init__(self, backend: "AsyncPluginNetworkBackend", sock: socket.socket, host: str,
                 port: int) -> None:
        self._backend = backend
        sock.setblocking(False)
        self._sock = sock
        self._host = host
        self._port = port

    async def read(self, max_bytes: int, timeout: Optional[float] = None) -> bytes:
        loop = asyncio.get_running_loop()
        try:
            return await _within(loop.sock_recv(self._sock, max_bytes), timeout, "no data arrived in time")
        except NetworkTimeout as e:
            raise httpcore.ReadTimeout(str(e)) from e
        except OSError as e:
            raise httpcore.ReadError(str(e)) from e

    async def write(self, buffer: bytes, timeout: Optional[float] = None) -> None:
        loop = asyncio.get_running_loop()
        try:
            await _within(loop.sock_sendall(self._sock, buffer), timeout, "the write did not finish in time")
        except NetworkTimeout as e:
            raise httpcore.WriteTimeout(str(e)) from e
        except OSError as e:
            raise httpcore.WriteError(str(e)) from e

    async def aclose(self) -> None:
        self._sock.close()

    async def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: Optional[str] = None,
                        timeout: Optional[float] = None) -> httpcore.AsyncNetworkStream:
        backend = self._backend
        try:
            spec = backend._trust.spec(self._host, self._port)
            session = await backend._profiles.asession(
                backend._plugin, spec, server_hostname or self._host, backend._alpn)
        except BaseException:
            self._sock.close()
            raise
        try:
            stream = await AsyncTlsStream.start(self._sock, session,
                                                timeout=_connect_deadline(timeout), coalesce=True)
        except NetworkError as e:
            raise _network_failure(e, "connect") from e
        return _AsyncTls(stream)

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":
            return _socket_readable(self._sock)
        return _extra(None, self._sock, info)


class AsyncPluginNetworkBackend(httpcore.AsyncNetworkBackend):
    """The asyncio form of :class:`PluginNetworkBackend`, for an ``AsyncPlugin``:
    resolution and the TCP connect run on a worker thread, TLS on the loop."""

    def __init__(self, plugin: Any, trust: TrustMap, *, default: Optional[TrustSpec] = None,
                 profiles: Optional[Profiles] = None) -> None:
        """See :class:`PluginNetworkBackend`; ``plugin`` is an ``AsyncPlugin``."""
        self._plugin = plugin
        self._trust = _Trust(trust, default)
        self._alpn = _ALPN
        self._profiles = profiles or Profiles()

    async def connect_tcp(self, host: str, port: int, timeout: Optional[float] = None,
                          local_address: Optional[str] = None,
                          socket_options: Optional[Iterable[Any]] = None) -> httpcore.AsyncNetworkStream:
        try:
            sock = await open_socket_async(self._plugin, host, port, _connect_deadline(timeout))
        except NetworkError as e:
            raise _network_failure(e, "connect") from e
        for option in socket_options or ():
            sock.setsockopt(*option)
        return _AsyncTcp(self, sock, host, port)

    async def connect_unix_socket(self, path: str, timeout: Optional[float] = None,
                                  socket_options: Optional[Iterable[Any]] = None) -> httpcore.AsyncNetworkStream:
        raise httpcore.UnsupportedProtocol("Unix sockets bypass the egress policy: not supported")

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


# ---- transports ----


def _alpn_context() -> ssl.SSLContext:
    """The ``ssl_context`` httpcore insists on passing to ``start_tls`` (it only sets
    ALPN on it; the plugin does the TLS). Made once per transport, loading nothing:
    otherwise httpcore would build a default context, CA store and all, per connection."""
    return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)


_EXCEPTIONS: "list[tuple[type[Exception], type[httpx.HTTPError]]]" = [
    (httpcore.ConnectTimeout, httpx.ConnectTimeout),
    (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout),
    (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.TimeoutException, httpx.TimeoutException),
    (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError),
    (httpcore.NetworkError, httpx.NetworkError),
    (httpcore.ProxyError, httpx.ProxyError),
    (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.ProtocolError, httpx.ProtocolError),
]


def _httpx_error(e: Exception) -> Optional[httpx.HTTPError]:
    """The httpx exception for an httpcore one (most specific first), else ``None``."""
    for core, mapped in _EXCEPTIONS:
        if isinstance(e, core):
            return mapped(str(e))
    return None


def _cause(e: BaseException) -> BaseException:
    """The package's own error behind an httpcore exception, if there is one (the
    pool re-raises ``from None``, so it is found as the context)."""
    behind = e.__cause__ or e.__context__
    return behind if isinstance(behind, GatewayAuthError) else e


def _check_trust(trust: _Trust, request: httpx.Request) -> None:
    """Refuses an https request whose origin has no trust spec before any connection."""
    if request.url.scheme == "https":
        trust.spec(request.url.host, request.url.port or 443)


def _core_request(request: httpx.Request) -> httpcore.Request:
    return httpcore.Request(
        method=request.method,
        url=httpcore.URL(scheme=request.url.raw_scheme, host=request.url.raw_host,
                         port=request.url.port, target=request.url.raw_path),
        headers=request.headers.raw,
        content=request.stream,
        extensions=request.extensions,
    )


class _SyncBody(httpx.SyncByteStream):
    def __init__(self, stream: Iterable[bytes]) -> None:
        self._stream = stream

    def __iter__(self) -> typing.Iterator[bytes]:
        try:
            yield from self._stream
        except Exception as e:
            mapped = _httpx_error(e)
            if mapped is None:
                raise
            raise mapped from _cause(e)

    def close(self) -> None:
        close = getattr(self._stream, "close", None)
        if close is not None:
            close()


class _AsyncBody(httpx.AsyncByteStream):
    def __init__(self, stream: typing.AsyncIterable[bytes]) -> None:
        self._stream = stream

    async def __aiter__(self) -> typing.AsyncIterator[bytes]:
        try:
            async for part in self._stream:
                yield part
        except Exception as e:
            mapped = _httpx_error(e)
            if mapped is None:
                raise
            raise mapped from _cause(e)

    async def aclose(self) -> None:
        aclose = getattr(self._stream, "aclose", None)
        if aclose is not None:
            await aclose()


class PluginTransport(httpx.BaseTransport):
    """An ``httpx.Client`` transport whose HTTPS goes through the plugin's TLS
    sessions, each upstream with its own trust spec (see the module docs).

    ``limits`` bounds the pool as for ``httpx.HTTPTransport``; ``retries`` retries
    failed connects (not requests).
    """

    def __init__(self, plugin: Any, trust: TrustMap, *, default: Optional[TrustSpec] = None,
                 limits: httpx.Limits = httpx.Limits(max_connections=100, max_keepalive_connections=20,
                                                     keepalive_expiry=5.0),
                 retries: int = 0, profiles: Optional[Profiles] = None) -> None:
        """``plugin`` is a ``gateway_auth.Plugin`` (not a ``PluginPool``: a TLS session
        lives in one instance; a pool still suits :class:`PluginAuth`)."""
        self.backend = PluginNetworkBackend(plugin, trust, default=default, profiles=profiles)
        self._pool = httpcore.ConnectionPool(
            ssl_context=_alpn_context(),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http1=True, http2=False, retries=retries,
            network_backend=self.backend)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Sends ``request`` on a pooled connection (httpx calls this)."""
        try:
            _check_trust(self.backend._trust, request)
            response = self._pool.handle_request(_core_request(request))
        except Exception as e:
            mapped = _httpx_error(e)
            if mapped is None:
                raise
            raise mapped from _cause(e)
        return httpx.Response(status_code=response.status, headers=response.headers,
                              stream=_SyncBody(typing.cast(Iterable[bytes], response.stream)),
                              extensions=response.extensions)

    def close(self) -> None:
        """Closes every pooled connection (close_notify, session freed)."""
        self._pool.close()


class AsyncPluginTransport(httpx.AsyncBaseTransport):
    """An ``httpx.AsyncClient`` transport whose HTTPS goes through the plugin's TLS
    sessions (see :class:`PluginTransport`); ``plugin`` is an ``AsyncPlugin``."""

    def __init__(self, plugin: Any, trust: TrustMap, *, default: Optional[TrustSpec] = None,
                 limits: httpx.Limits = httpx.Limits(max_connections=100, max_keepalive_connections=20,
                                                     keepalive_expiry=5.0),
                 retries: int = 0, profiles: Optional[Profiles] = None) -> None:
        self.backend = AsyncPluginNetworkBackend(plugin, trust, default=default, profiles=profiles)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=_alpn_context(),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http1=True, http2=False, retries=retries,
            network_backend=self.backend)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Sends ``request`` on a pooled connection (httpx calls this)."""
        try:
            _check_trust(self.backend._trust, request)
            response = await self._pool.handle_async_request(_core_request(request))
        except Exception as e:
            mapped = _httpx_error(e)
            if mapped is None:
                raise
            raise mapped from _cause(e)
        return httpx.Response(status_code=response.status, headers=response.headers,
                              stream=_AsyncBody(typing.cast(typing.AsyncIterable[bytes], response.stream)),
                              extensions=response.extensions)

    async def aclose(self) -> None:
        """Closes every pooled connection (close_notify, session freed)."""
        await self._pool.aclose()


# ---- auth ----


_INVALID_TOKEN = re.compile(r'(?:^|[\s,])error\s*=\s*"?invalid_token"?', re.IGNORECASE)


def token_rejected(response: httpx.Response) -> bool:
    """Whether ``response`` is a 401 whose ``WWW-Authenticate`` challenge says
    ``error="invalid_token"`` (RFC 6750 §3.1): the token was expired or revoked."""
    if response.status_code != 401:
        return False
    return any(_INVALID_TOKEN.search(v) for v in response.headers.get_list("www-authenticate"))


class PluginAuth(httpx.Auth):
    """``Authorization: <token_type> <access_token>`` from the plugin session ``key``
    (opened with ``plugin.open_session``), renewed once on ``invalid_token``.

    Works with ``httpx.Client`` (``plugin`` a ``Plugin`` or ``PluginPool``) and
    ``httpx.AsyncClient`` (an ``AsyncPlugin``, whose token calls run off the event
    loop). A 401 whose ``WWW-Authenticate`` says ``error="invalid_token"`` (RFC 6750
    §3.1) makes it ask the plugin for a token other than the refused one
    (``renew_token``) and send the request once more, with the same body; a second
    401 is returned as it is, and so is a 401 for any other reason. Token failures
    raise the package's :class:`~gateway_auth.errors.OAuthError` subclasses. The token
    never appears in a log line or an exception from here.
    """

    requires_request_body = True  # the retry sends the same body again

    def __init__(self, plugin: Any, key: str) -> None:
        self._plugin = plugin
        self._key = key

    def sync_auth_flow(self, request: httpx.Request) -> typing.Generator[httpx.Request, httpx.Response, None]:
        """The flow for ``httpx.Client``."""
        token: Token = self._plugin.access_token(self._key)
        request.headers["Authorization"] = token.authorization_header
        response = yield request
        if token_rejected(response):
            token = self._plugin.renew_token(self._key, token)
            request.headers["Authorization"] = token.authorization_header
            yield request

    async def async_auth_flow(self, request: httpx.Request) -> typing.AsyncGenerator[httpx.Request, httpx.Response]:
        """The flow for ``httpx.AsyncClient``."""
        token: Token = await _maybe_await(self._plugin.access_token(self._key))
        request.headers["Authorization"] = token.authorization_header
        response = yield request
        if token_rejected(response):
            token = await _maybe_await(self._plugin.renew_token(self._key, token))
            request.headers["Authorization"] = token.authorization_header
            yield request
