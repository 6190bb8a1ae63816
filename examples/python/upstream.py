"""Upstream TLS through the plugin over asyncio streams: the gateway's own connections
use the plugin's cached configurations, as the Rust host's `UpstreamStream` does.

The plugin's `tls-session` is sans-IO: this module owns the socket (an asyncio stream
opened under the egress allow-list) and moves ciphertext, one `advance` per I/O event.
An `Upstream` remembers its profile id and prepares its spec again when the cache has
dropped it (`unknown-profile`).

Usage::

    upstream = Upstream(plugin, trust_spec(ca_pem))
    stream = await upstream.connect("api.internal", 443, alpn=["http/1.1"])
    await stream.write(b"GET / HTTP/1.1\\r\\nhost: api.internal\\r\\n\\r\\n")
    data = await stream.read()
    await stream.close()
"""

import asyncio

from wasmtime.component import Variant

from gateway_auth_host import describe, open_socket

READ_CHUNK = 64 * 1024  # ciphertext taken from the socket per step


class UpstreamError(Exception):
    """The egress policy, the network or TLS refused; the text names the WIT error."""


class Upstream:
    """One upstream's trust material on a plugin instance."""

    def __init__(self, plugin, spec, connect_timeout=10.0):
        self.plugin = plugin
        self.spec = spec
        self.profile_id = None
        self.connect_timeout = connect_timeout

    def _session(self, server_name, alpn):
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

    async def connect(self, host, port, alpn=()):
        """An `UpstreamStream` to `host`:`port` with its handshake done."""
        sock = await asyncio.to_thread(open_socket, self.plugin.transport.egress, host, port,
                                       self.connect_timeout)
        if isinstance(sock, Variant):
            raise UpstreamError(f"transport: {describe(sock)}")
        sock.settimeout(None)
        sock.setblocking(False)
        reader, writer = await asyncio.open_connection(sock=sock, limit=READ_CHUNK)
        try:
            stream = UpstreamStream(self.plugin, self._session(host, alpn), reader, writer)
            await stream._handshake()
        except BaseException:
            writer.close()
            raise
        return stream


class UpstreamStream:
    """A TLS stream with async `read`, `write` and `close`."""

    def __init__(self, plugin, session, reader, writer):
        self.plugin = plugin
        self.session = session
        self.reader = reader
        self.writer = writer
        self.received = bytearray()
        self.state = "handshaking"

    def _advance(self, incoming, plaintext):
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

    async def _send(self, ciphertext):
        if ciphertext:
            self.writer.write(ciphertext)
            await self.writer.drain()

    async def _handshake(self):
        await self._send(self._advance(b"", b""))
        while self.state == "handshaking":
            incoming = await self.reader.read(READ_CHUNK)
            if not incoming:
                raise UpstreamError("transport: the server closed the connection during the handshake")
            await self._send(self._advance(incoming, b""))

    def info(self):
        """ALPN protocol, TLS version, cipher suite and resumption, as a WIT record."""
        return self.plugin.call("tls-cache", "[method]tls-session.info", self.session)

    async def read(self, n=READ_CHUNK):
        """Up to `n` bytes of plaintext; b"" once the server has closed cleanly."""
        while not self.received:
            if self.state in ("peer-closed", "closed"):
                return b""
            incoming = await self.reader.read(READ_CHUNK)
            if not incoming:
                raise UpstreamError("transport: the upstream closed the connection without close_notify")
            await self._send(self._advance(incoming, b""))
        data = bytes(self.received[:n])
        del self.received[:n]
        return data

    async def write(self, data):
        """Sends `data` (all of it) as TLS records."""
        await self._send(self._advance(b"", bytes(data)))

    async def close(self):
        """Sends close_notify, frees the session and closes the socket."""
        if self.session is not None:
            closing = self.plugin.call("tls-cache", "[method]tls-session.close", self.session)
            self._free()
            try:
                await self._send(closing)
            except OSError:
                pass
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except OSError:
            pass

    def _free(self):
        if self.session is not None:
            self.session.drop(self.plugin.store)
            self.session = None
            self.state = "closed"


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
