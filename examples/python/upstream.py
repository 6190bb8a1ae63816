"""Upstream TLS through the plugin over asyncio streams: the gateway's own connections
use the plugin's cached configurations, as the Rust host's `UpstreamStream` does.

The plugin's `tls-session` is sans-IO: this module owns the socket (an asyncio stream
opened under the egress allow-list) and moves ciphertext, one `advance` per I/O event.
An `Upstream` remembers its profile id and prepares its spec again when the cache has
dropped it (`unknown-profile`).

Usage::

    upstream = Upstream(plugin, trust_spec(ca_pem), connect_timeout=10.0)
    async with await upstream.connect("api.internal", 443, alpn=["http/1.1"]) as stream:
        await stream.write(b"GET / HTTP/1.1\\r\\nhost: api.internal\\r\\n\\r\\n")
        data = await stream.read()

`connect_timeout` bounds resolution, dial and TLS handshake together. A session lives
in the plugin instance's memory until it is dropped: `close` (or leaving `async with`)
drops it, and so does every failed or cancelled `connect`.
"""

import asyncio
import contextlib
import socket

from wasmtime.component import Variant

from gateway_auth_host import describe, net_error, open_socket

READ_CHUNK = 64 * 1024  # ciphertext taken from the socket per step
# Plaintext handed to one `advance`: a session holds at most 1 MiB for sending and
# closes with `too-large` past it, so a large write goes in pieces well under that.
WRITE_CHUNK = 256 * 1024


class UpstreamError(Exception):
    """The egress policy, the network or TLS refused; the text names the WIT error."""


class UpstreamTimeout(UpstreamError, TimeoutError):
    """The connect (resolution, dial and handshake together) ran past its deadline."""


class Upstream:
    """One upstream's trust material on a plugin instance."""

    def __init__(self, plugin, spec, connect_timeout: float = 10.0):
        self.plugin = plugin
        self.spec = spec
        self.profile_id = None
        self.connect_timeout = connect_timeout

    def _session(self, server_name: str, alpn):
        """A `tls-session` in the plugin, preparing the spec first if need be."""
        for _ in range(2):
            if self.profile_id is not None:
                session = self.plugin.call("tls-cache", "connect", self.profile_id, server_name, list(alpn))
                if not isinstance(session, Variant):
                    return session
                if session.tag != "unknown-profile":
                    raise UpstreamError(f"tls: {describe(session)}")
            profile = self.plugin.call("tls-cache", "prepare", self.spec)
            if isinstance(profile, Variant):
                raise UpstreamError(f"tls: {describe(profile)}")
            self.profile_id = profile.id
        raise UpstreamError("tls: the profile was dropped again at once")

    async def connect(self, host: str, port: int, alpn=()) -> "UpstreamStream":
        """An `UpstreamStream` to `host`:`port` with its handshake done.

        Resolution, dial and handshake share one deadline, `connect_timeout` from now:
        past it this raises `UpstreamTimeout`. On any failure or cancellation the
        socket is closed and the plugin's session dropped.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.connect_timeout
        sock = await _open_socket(self.plugin.transport.egress, host, port, self.connect_timeout)
        if isinstance(sock, Variant):
            if sock.tag == "timeout":
                raise UpstreamTimeout(f"transport: {describe(sock)}")
            raise UpstreamError(f"transport: {describe(sock)}")
        stream, writer = None, None
        try:
            sock.settimeout(None)
            sock.setblocking(False)
            reader, writer = await asyncio.open_connection(sock=sock, limit=READ_CHUNK)
            stream = UpstreamStream(self.plugin, self._session(host, alpn), reader, writer)
            try:
                await asyncio.wait_for(stream._handshake(), max(deadline - loop.time(), 0))
            except asyncio.TimeoutError:
                raise UpstreamTimeout(
                    f"transport: timeout (the TLS handshake with {host}:{port} did not end "
                    f"within the {self.connect_timeout:g} s connect deadline)") from None
        except BaseException:
            # The failure (or cancellation) in hand is the one to report, not a second
            # one from tidying up after it.
            with contextlib.suppress(Exception):
                if stream is not None:
                    stream._free()
            if writer is not None:
                writer.close()  # the transport owns the socket now
            else:
                sock.close()
            raise
        return stream


async def _open_socket(egress, host: str, port: int, timeout: float):
    """`open_socket` on a worker thread; if the caller gives up first (cancellation),
    the socket the thread still opens is closed rather than left behind."""
    future = asyncio.get_running_loop().run_in_executor(None, open_socket, egress, host, port, timeout)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        future.add_done_callback(_close_unclaimed)
        raise


def _close_unclaimed(future: "asyncio.Future") -> None:
    """Closes the socket of an `open_socket` whose caller has gone."""
    if not future.cancelled() and future.exception() is None:
        opened = future.result()
        if isinstance(opened, socket.socket):
            opened.close()


class UpstreamStream:
    """A TLS stream with async `read`, `write` and `close` (also `async with`)."""

    def __init__(self, plugin, session, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.plugin = plugin
        self.session = session
        self.reader = reader
        self.writer = writer
        self.received = bytearray()
        self.state = "handshaking"

    async def __aenter__(self) -> "UpstreamStream":
        return self

    async def __aexit__(self, *_exc) -> None:
        await self.close()

    def _advance(self, incoming: bytes, plaintext: bytes) -> bytes:
        if self.session is None:
            raise UpstreamError("tls: closed")
        out = self.plugin.call("tls-cache", "[method]tls-session.advance", self.session,
                               incoming, plaintext)
        if isinstance(out, Variant):
            self._free()
            raise UpstreamError(f"tls: {describe(out)}")
        self.received += getattr(out, "plaintext")
        self.state = getattr(out, "state")  # a WIT enum is its case name
        return getattr(out, "outgoing")

    async def _send(self, ciphertext: bytes) -> None:
        if ciphertext:
            try:
                self.writer.write(ciphertext)
                await self.writer.drain()
            except OSError as e:
                raise UpstreamError(f"transport: {describe(net_error(e))}") from e

    async def _receive(self) -> bytes:
        """The next ciphertext from the socket; b"" when the peer has closed it."""
        try:
            return await self.reader.read(READ_CHUNK)
        except OSError as e:
            raise UpstreamError(f"transport: {describe(net_error(e))}") from e

    async def _handshake(self) -> None:
        await self._send(self._advance(b"", b""))
        while self.state == "handshaking":
            incoming = await self._receive()
            if not incoming:
                raise UpstreamError("transport: the server closed the connection during the handshake")
            await self._send(self._advance(incoming, b""))

    def info(self):
        """ALPN protocol, TLS version, cipher suite and resumption, as a WIT record."""
        return self.plugin.call("tls-cache", "[method]tls-session.info", self.session)

    async def read(self, n: int = READ_CHUNK) -> bytes:
        """Up to `n` bytes of plaintext; b"" once the server has closed cleanly."""
        while not self.received:
            if self.state in ("peer-closed", "closed"):
                return b""
            incoming = await self._receive()
            if not incoming:
                raise UpstreamError("transport: the upstream closed the connection without close_notify")
            await self._send(self._advance(incoming, b""))
        data = bytes(self.received[:n])
        del self.received[:n]
        return data

    async def write(self, data: bytes) -> None:
        """Sends `data` (all of it, however large) as TLS records."""
        view = memoryview(data)
        for start in range(0, len(view), WRITE_CHUNK):
            await self._send(self._advance(b"", bytes(view[start:start + WRITE_CHUNK])))

    async def close(self) -> None:
        """Sends close_notify, frees the session and closes the socket (also when
        cancelled part way)."""
        try:
            if self.session is not None:
                try:
                    closing = self.plugin.call("tls-cache", "[method]tls-session.close", self.session)
                finally:
                    self._free()
                with contextlib.suppress(UpstreamError):
                    await self._send(closing)
        finally:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()

    def _free(self) -> None:
        """Drops the plugin's session (its memory in the instance) once."""
        session, self.session = self.session, None
        self.state = "closed"
        if session is not None:
            session.drop(self.plugin.store)


async def fetch(plugin, spec, url, connect_timeout=10.0):
    """One HTTP/1.1 GET of `url` through the plugin: (status line, headers, body, info)."""
    from urllib.parse import urlsplit
    parts = urlsplit(url)
    stream = await Upstream(plugin, spec, connect_timeout).connect(
        parts.hostname, parts.port or 443, alpn=["http/1.1"])
    try:
        target = parts.path or "/"
        await stream.write(f"GET {target} HTTP/1.1\r\nhost: {parts.hostname}\r\n"
                           f"connection: close\r\n\r\n".encode())
        response = bytearray()
        length = None  # from Content-Length, once the head is in
        while length is None or len(response) < length:
            data = await stream.read()
            if not data:
                break  # close_notify: the body ends here
            response += data
            if length is None and b"\r\n\r\n" in response:
                head = bytes(response).partition(b"\r\n\r\n")[0].decode("latin-1")
                for line in head.split("\r\n")[1:]:
                    name, _, value = line.partition(":")
                    if name.strip().lower() == "content-length":
                        length = len(head) + 4 + int(value.strip())
        info = stream.info()
    finally:
        await stream.close()
    head, _, body = bytes(response).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    return lines[0], lines[1:], body, info


def main(argv=None):
    import argparse
    import hashlib
    import sys
    import time

    from gateway_auth_host import Plugin, trust_spec

    parser = argparse.ArgumentParser(description="GET an https URL through the plugin's TLS session")
    parser.add_argument("wasm", help="the component, e.g. gateway_auth_guest.wasm")
    parser.add_argument("url", help="https://HOST:PORT/PATH")
    parser.add_argument("--ca", required=True, help="PEM file with the upstream's CA")
    parser.add_argument("--allow", action="append", default=[], metavar="RULE",
                        help="egress rule, `host` or `host:port`; repeatable")
    parser.add_argument("--byte-at-a-time", action="store_true",
                        help="keep wasmtime-py's own byte-list conversion (to measure it)")
    args = parser.parse_args(argv)
    with open(args.ca, encoding="utf-8") as f:
        spec = trust_spec(f.read())
    plugin = Plugin(args.wasm, args.allow, bulk_bytes=not args.byte_at_a_time)
    started = time.perf_counter()
    try:
        status, _, body, info = asyncio.run(fetch(plugin, spec, args.url))
    except UpstreamError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    elapsed = time.perf_counter() - started
    print(f"status: {status}")
    print(f"tls: {getattr(info, 'version')} {getattr(info, 'cipher-suite')} "
          f"alpn={getattr(info, 'alpn')} resumed={getattr(info, 'resumed')}")
    print(f"body: {len(body)} bytes in {elapsed:.3f} s "
          f"({len(body) / elapsed / (1 << 20):.2f} MiB/s), sha256 {hashlib.sha256(body).hexdigest()}: "
          f"{body[:60]!r}")
    return 0


if __name__ == "__main__":
    import sys
    sys.exit(main())
