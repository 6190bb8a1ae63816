"""Byte transfers through wasmtime-py stay fast (the bulk ``list<u8>`` conversion,
pinned to wasmtime 50.0.1) and exact."""

from __future__ import annotations

import hashlib
import socket
import ssl
import threading
import time
from typing import Any

import pytest

import gateway_auth as ga
from gateway_auth import _bytes
from conftest import CertAuthority, TlsServer

MIB = 1 << 20


class EchoServer(TlsServer):
    """Reads ``size`` bytes of plaintext and sends them back, then close_notify."""

    def __init__(self, ca: CertAuthority, size: int) -> None:
        self.size = size
        super().__init__(ca, lambda _: b"")

    def _one(self, raw: socket.socket) -> None:
        raw.settimeout(60)
        try:
            with self.context.wrap_socket(raw, server_side=True) as tls:
                got = bytearray()
                while len(got) < self.size:
                    chunk = tls.recv(65536)
                    if not chunk:
                        return
                    got += chunk
                tls.sendall(bytes(got))
                tls.unwrap()
        except (OSError, ssl.SSLError):
            pass


def round_trip(plugin: ga.Plugin, payload: bytes) -> tuple[bytes, float]:
    """Sends ``payload`` through a TLS session to an echo server and reads it back:
    the bytes back and the seconds spent in ``advance`` once the session was open."""
    ca = CertAuthority("echo")
    server = EchoServer(ca, len(payload))
    in_plugin = 0.0
    try:
        profile = plugin.prepare(ga.TrustSpec(ca.pem))
        with plugin.connect(profile.id, "127.0.0.1") as session, \
                plugin.open_socket("127.0.0.1", server.port, 5.0) as sock:
            out = session.advance()
            sock.sendall(out.outgoing)
            while out.state is ga.TlsState.HANDSHAKING:
                out = session.advance(sock.recv(65536))
                sock.sendall(out.outgoing)
            started = time.perf_counter()
            out = session.advance(b"", payload)
            in_plugin += time.perf_counter() - started
            writer = threading.Thread(target=sock.sendall, args=(out.outgoing,))
            writer.start()
            back = bytearray()
            while out.state is ga.TlsState.OPEN:
                incoming = sock.recv(MIB)
                if not incoming:
                    break
                started = time.perf_counter()
                out = session.advance(incoming)
                in_plugin += time.perf_counter() - started
                back += out.plaintext
            writer.join()
    finally:
        server.close()
    return bytes(back), in_plugin


def test_a_mebibyte_round_trip_through_a_tls_session_is_exact(plugin: ga.Plugin) -> None:
    block = hashlib.sha256(b"seed").digest()
    payload = bytes(b ^ (i % 251) for i, b in enumerate(block * (MIB // 32)))
    back, _ = round_trip(plugin, payload)
    assert len(back) == MIB
    assert back == payload


def test_a_mebibyte_round_trip_converts_no_byte_one_at_a_time(
        plugin: ga.Plugin, monkeypatch: pytest.MonkeyPatch) -> None:
    # wasmtime-py's own conversion goes through U8's per-value methods once per byte
    # (about 1 MiB/s); the bulk conversion never does. Counted, not timed.
    from wasmtime.component import _types
    calls = {"to_c": 0, "from_c": 0}
    to_c, from_c = _types.U8.convert_to_c, _types.U8.convert_from_c

    def counting_to_c(self: Any, *args: Any) -> Any:
        calls["to_c"] += 1
        return to_c(self, *args)

    def counting_from_c(self: Any, *args: Any) -> Any:
        calls["from_c"] += 1
        return from_c(self, *args)

    monkeypatch.setattr(_types.U8, "convert_to_c", counting_to_c)
    monkeypatch.setattr(_types.U8, "convert_from_c", counting_from_c)
    payload = bytes(range(256)) * (MIB // 256)
    back, _ = round_trip(plugin, payload)
    assert back == payload
    assert calls == {"to_c": 0, "from_c": 0}, calls
    # The yardstick: the same counters see wasmtime-py's per-byte path.
    originals = _bytes._originals
    monkeypatch.setattr(_types.ListType, "convert_to_c", originals[0])
    monkeypatch.setattr(_types.ListType, "convert_from_c", originals[1])
    small = payload[:4096]
    slow_back, _ = round_trip(plugin, small)
    assert slow_back == small
    assert calls["to_c"] >= len(small) and calls["from_c"] >= len(small), calls


def test_another_wasmtime_version_is_refused_with_the_version_it_was_written_for(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_bytes, "_installed", False)
    monkeypatch.setattr(_bytes, "installed_version", lambda: "51.0.0")
    with pytest.raises(ga.HostError, match=r"written for wasmtime 50\.0\.1.*51\.0\.0 is installed"):
        _bytes.install()


def test_the_installed_wasmtime_is_the_pinned_one() -> None:
    assert _bytes.installed_version() == _bytes.WRITTEN_FOR == "50.0.1"
