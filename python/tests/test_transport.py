"""The ``transport`` import keeps every read and whole write to the timeout the plugin
passes (what is left of its call's deadline), over real sockets on 127.0.0.1."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any, Iterator, Tuple

import pytest

from gateway_auth._transport import Transport
from gateway_auth.egress import Egress

MARGIN = 0.5  # seconds a call may overrun its timeout on a busy machine
REP = 7


class Handle:
    """Stands in for the ``connection`` borrow wasmtime-py passes: ``to_host().rep``."""

    rep = REP

    def to_host(self, _store: Any) -> "Handle":
        return self


@pytest.fixture
def pair() -> Iterator[Tuple[Transport, socket.socket]]:
    listener = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(listener.getsockname())
    peer, _ = listener.accept()
    listener.close()
    # Small buffers, so a few MiB fill them and a write has to wait for the peer.
    client.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    transport = Transport(Egress(["127.0.0.1"]))
    transport.sockets[REP] = client
    yield transport, peer
    transport.drop(None, REP)
    peer.close()


def timed(call: Any, *args: Any) -> Tuple[Any, float]:
    started = time.monotonic()
    result = call(None, Handle(), *args)
    return result, time.monotonic() - started


def is_timeout(result: Any) -> bool:
    return getattr(result, "tag", None) == "timeout"


def test_a_read_from_a_silent_peer_ends_with_timeout_by_its_timeout(pair: Any) -> None:
    transport, _ = pair
    result, took = timed(transport.read, 1024, 300)
    assert is_timeout(result) and took < 0.3 + MARGIN


def test_a_read_returns_what_arrives_within_its_timeout(pair: Any) -> None:
    transport, peer = pair
    threading.Timer(0.1, peer.sendall, [b"hello"]).start()
    assert timed(transport.read, 1024, 10_000)[0] == b"hello"


def test_a_read_with_no_time_left_takes_only_what_is_there(pair: Any) -> None:
    transport, peer = pair
    peer.sendall(b"x")
    time.sleep(0.1)
    assert timed(transport.read, 1024, 0)[0] == b"x"
    assert is_timeout(timed(transport.read, 1024, 0)[0])


def test_a_read_after_the_peer_closed_is_empty(pair: Any) -> None:
    transport, peer = pair
    peer.close()
    assert timed(transport.read, 1024, 1000)[0] == b""


def test_a_write_the_peer_takes_in_time_arrives_whole(pair: Any) -> None:
    transport, peer = pair
    data = bytes(range(256)) * 4096  # 1 MiB
    received = bytearray()

    def drain() -> None:
        while len(received) < len(data):
            chunk = peer.recv(65536)
            if not chunk:
                return
            received.extend(chunk)

    reader = threading.Thread(target=drain)
    reader.start()
    result, _ = timed(transport.write, data, 10_000)
    reader.join(10)
    assert result is None and bytes(received) == data


def test_a_write_to_a_peer_that_never_reads_ends_with_timeout_by_its_timeout(pair: Any) -> None:
    transport, _ = pair
    result, took = timed(transport.write, bytes(32 << 20), 300)
    assert is_timeout(result) and took < 0.3 + MARGIN


def test_a_peer_that_reads_a_little_at_a_time_cannot_stretch_a_write(pair: Any) -> None:
    transport, peer = pair
    stop = threading.Event()

    def trickle() -> None:
        while not stop.is_set():
            try:
                peer.recv(16 * 1024)
            except OSError:
                return
            time.sleep(0.01)

    reader = threading.Thread(target=trickle)
    reader.start()
    try:
        result, took = timed(transport.write, bytes(64 << 20), 500)
    finally:
        stop.set()
        reader.join(5)
    assert is_timeout(result) and took < 0.5 + MARGIN


def test_a_write_with_no_time_left_is_a_timeout(pair: Any) -> None:
    transport, _ = pair
    assert is_timeout(timed(transport.write, b"late", 0)[0])


def test_a_closed_connection_is_closed(pair: Any) -> None:
    transport, _ = pair
    transport.drop(None, REP)
    assert getattr(timed(transport.read, 10, 10)[0], "tag", None) == "closed"
    assert getattr(timed(transport.write, b"x", 10)[0], "tag", None) == "closed"


def test_connect_refuses_a_destination_outside_the_allow_list_without_resolving() -> None:
    transport = Transport(Egress(["auth.example.com"]))
    result = transport.connect(None, "does-not-resolve.invalid", 443, 1000)
    assert result.tag == "denied" and "allow-list" in result.payload
