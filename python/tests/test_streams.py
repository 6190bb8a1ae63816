"""Upstream TLS streams (gateway_auth.streams) against Python ``ssl`` servers on
127.0.0.1 with CAs of their own."""

from __future__ import annotations

import asyncio
import hashlib
import os
import pathlib
import socket
import ssl
import sys
import threading
import time
from typing import Any, Iterator

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "bench"))

from servers import HOST, Upstream, body_of, server_context  # noqa: E402
from conftest import Sessions, SilentServer  # noqa: E402

from gateway_auth import AsyncPlugin, Plugin, TlsState, TrustSpec  # noqa: E402
from gateway_auth.errors import EgressDenied, NetworkTimeout, PeerCertificateError  # noqa: E402
from gateway_auth.streams import UnexpectedEof, connect, open_stream  # noqa: E402

MARGIN = 1.0  # seconds a deadline may overrun on a busy machine


@pytest.fixture
def plugin() -> Iterator[Plugin]:
    p = Plugin(allow=[HOST])
    yield p
    p.close()


@pytest.fixture
async def aplugin() -> Any:
    p = AsyncPlugin(allow=[HOST])
    yield p
    await p.aclose()


@pytest.fixture
def upstream(tmp_path: pathlib.Path) -> Iterator[Upstream]:
    with Upstream("streams", tmp_path) as u:
        yield u


def request(path: str, extra: str = "") -> bytes:
    return f"GET {path} HTTP/1.1\r\nhost: {HOST}\r\nconnection: close\r\n{extra}\r\n".encode()


def body(answer: bytes) -> bytes:
    return answer.partition(b"\r\n\r\n")[2]


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_a_blocking_stream_fetches_through_the_plugin_and_ends_at_the_servers_close_notify(
        plugin: Plugin, upstream: Upstream) -> None:
    with connect(plugin, HOST, upstream.port, TrustSpec(upstream.ca_pem)) as stream:
        stream.write(request("/hello"))
        answer = b""
        while data := stream.read():
            answer += data
        assert stream.state is TlsState.PEER_CLOSED
        assert stream.read() == b""  # nothing more after close_notify
        info = stream.info()
    assert answer.startswith(b"HTTP/1.1 200")
    assert body(answer) == b"hello from streams"
    assert info.alpn == "http/1.1" and info.version == "TLSv1_3"


def test_a_server_that_closes_without_close_notify_ends_the_stream_with_unexpected_eof(
        plugin: Plugin, tmp_path: pathlib.Path) -> None:
    with Upstream("ragged", tmp_path, close_notify=False) as upstream:
        spec = TrustSpec(upstream.ca_pem)
        with connect(plugin, HOST, upstream.port, spec) as stream:
            stream.write(request("/hello"))
            answer = b""
            with pytest.raises(UnexpectedEof):
                while data := stream.read():
                    answer += data
        assert body(answer) == b"hello from ragged"
        # Asked for, the same close reads as the end of the stream.
        with connect(plugin, HOST, upstream.port, spec, ragged_eof=True) as stream:
            stream.write(request("/hello"))
            answer = b""
            while data := stream.read():
                answer += data
        assert body(answer) == b"hello from ragged"


def test_a_reconnection_with_the_same_trust_resumes_the_tls_session(
        plugin: Plugin, upstream: Upstream) -> None:
    spec = TrustSpec(upstream.ca_pem)
    resumed = []
    for _ in range(3):
        with connect(plugin, HOST, upstream.port, spec) as stream:
            stream.write(request("/hello"))
            while stream.read():
                pass
            resumed.append(stream.info().resumed)
    assert resumed == [False, True, True]


def test_a_wrong_ca_is_a_tls_error_the_server_answers_nothing_and_the_session_is_freed(
        plugin: Plugin, upstream: Upstream, tmp_path: pathlib.Path) -> None:
    sessions = Sessions(plugin)
    with Upstream("other", tmp_path) as other:
        with pytest.raises(PeerCertificateError):
            connect(plugin, HOST, upstream.port, TrustSpec(other.ca_pem))
    assert upstream.requests == 0
    assert len(sessions.made) == 1 and sessions.live == 0


def test_a_destination_outside_the_egress_policy_is_refused_before_any_connection(
        upstream: Upstream) -> None:
    plugin = Plugin(allow=["upstream.example"])
    try:
        with pytest.raises(EgressDenied):
            connect(plugin, HOST, upstream.port, TrustSpec(upstream.ca_pem))
    finally:
        plugin.close()
    assert upstream.handshakes == 0 and upstream.failures == 0


def test_a_silent_server_ends_the_connect_by_its_deadline_with_the_session_freed(
        plugin: Plugin, upstream: Upstream, silent_server: SilentServer) -> None:
    sessions = Sessions(plugin)
    started = time.monotonic()
    with pytest.raises(NetworkTimeout):
        connect(plugin, HOST, silent_server.port, TrustSpec(upstream.ca_pem), timeout=0.5)
    assert time.monotonic() - started < 0.5 + MARGIN
    assert len(sessions.made) == 1 and sessions.live == 0


class OneRead:
    """A TLS server that answers with the length of the first read after the
    handshake: what arrived in one TLS record."""

    def __init__(self, upstream: Upstream, directory: pathlib.Path) -> None:
        self.context = server_context(upstream.authority.issue("one-read"), directory / "one-read")
        self.listener = socket.create_server((HOST, 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with self.context.wrap_socket(conn, server_side=True) as tls:
                first = tls.recv(1 << 16)
                tls.sendall(f"{len(first)}".encode())
                tls.settimeout(1)
                try:
                    tls.unwrap()
                except (ssl.SSLError, OSError):
                    pass


@pytest.mark.parametrize("coalesce", [True, False])
def test_a_request_head_and_body_written_separately_travel_in_one_record_when_coalescing(
        plugin: Plugin, upstream: Upstream, tmp_path: pathlib.Path, coalesce: bool) -> None:
    server = OneRead(upstream, tmp_path)
    head = b"POST /x HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\n\r\n"
    with connect(plugin, HOST, server.port, TrustSpec(upstream.ca_pem), coalesce=coalesce) as stream:
        stream.write(head)
        stream.write(b"hello")
        first = stream.read()
    assert int(first) == (len(head) + 5 if coalesce else len(head))
    server.listener.close()


async def test_an_asyncio_stream_moves_3_mib_each_way_intact(aplugin: AsyncPlugin, upstream: Upstream) -> None:
    spec = TrustSpec(upstream.ca_pem)
    payload = os.urandom(3 << 20)
    async with await open_stream(aplugin, HOST, upstream.port, spec) as stream:
        await stream.write(f"POST /sha256 HTTP/1.1\r\nhost: {HOST}\r\ncontent-length: {len(payload)}\r\n"
                           f"connection: close\r\n\r\n".encode() + payload)
        answer = b""
        while data := await stream.read():
            answer += data
    assert body(answer).decode() == f"{len(payload)} {hashlib.sha256(payload).hexdigest()}"

    size = 3 << 20
    async with await open_stream(aplugin, HOST, upstream.port, spec) as stream:
        await stream.write(request(f"/bytes/{size}"))
        answer = b""
        while data := await stream.read():
            answer += data
        assert stream.info().resumed
    assert hashlib.sha256(body(answer)).digest() == hashlib.sha256(body_of(size)).digest()


async def test_cancelled_asyncio_connects_free_every_session_and_socket(
        aplugin: AsyncPlugin, upstream: Upstream, silent_server: SilentServer) -> None:
    sessions = Sessions(aplugin)
    spec = TrustSpec(upstream.ca_pem)
    before = open_fds()
    tasks = [asyncio.create_task(open_stream(aplugin, HOST, silent_server.port, spec, timeout=30))
             for _ in range(20)]
    waited = time.monotonic()
    while len(sessions.made) < 20 and time.monotonic() - waited < 10:
        await asyncio.sleep(0.01)
    assert len(sessions.made) == 20  # every connect is mid-handshake
    for task in tasks:
        task.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(r, asyncio.CancelledError) for r in results)
    assert sessions.live == 0
    assert open_fds() <= before + len(silent_server.accepted)  # the server's ends stay open
    # The instance is fine afterwards.
    async with await open_stream(aplugin, HOST, upstream.port, spec) as stream:
        await stream.write(request("/hello"))
        answer = b""
        while data := await stream.read():
            answer += data
    assert body(answer) == b"hello from streams"


async def test_an_asyncio_connect_past_its_deadline_is_a_timeout_with_the_session_freed(
        aplugin: AsyncPlugin, upstream: Upstream, silent_server: SilentServer) -> None:
    sessions = Sessions(aplugin)
    started = time.monotonic()
    with pytest.raises(NetworkTimeout):
        await open_stream(aplugin, HOST, silent_server.port, TrustSpec(upstream.ca_pem), timeout=0.3)
    assert time.monotonic() - started < 0.3 + MARGIN
    assert len(sessions.made) == 1 and sessions.live == 0
