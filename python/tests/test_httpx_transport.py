"""httpx through the plugin's TLS sessions (gateway_auth.httpx transports) against
Python ``ssl`` upstreams on 127.0.0.1, each with a CA of its own: the seed's 101
gateways."""

from __future__ import annotations

import asyncio
import hashlib
import os
import pathlib
import sys
import threading
import time
from typing import Iterator, List

import httpx
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "bench"))

from servers import HOST, Fleet, Upstream, body_of  # noqa: E402
from conftest import Sessions  # noqa: E402

from gateway_auth import AsyncPlugin, Plugin, PluginTrapped, Settings, TlsError, TrustSpec  # noqa: E402
from gateway_auth.errors import EgressDenied, PeerAlertError, PeerCertificateError  # noqa: E402
from gateway_auth.httpx import AsyncPluginTransport, PluginTransport  # noqa: E402

NEW_CONNECTION_EACH_TIME = httpx.Limits(max_keepalive_connections=0)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    with Fleet(101, tmp_path_factory.mktemp("fleet")) as f:
        yield f


@pytest.fixture
def upstream(tmp_path: pathlib.Path) -> Iterator[Upstream]:
    with Upstream("single", tmp_path) as u:
        yield u


def trust_of(*upstreams: Upstream) -> dict[str, TrustSpec]:
    return {u.origin: TrustSpec(u.ca_pem) for u in upstreams}


def resumed(response: httpx.Response) -> bool:
    return bool(response.extensions["network_stream"].get_extra_info("tls_info").resumed)


async def test_async_client_reaches_101_upstreams_with_their_own_cas_evicting_one_and_resuming(
        fleet: Fleet) -> None:
    async with AsyncPlugin(allow=[HOST], cache=Settings(capacity=100)) as plugin:
        transport = AsyncPluginTransport(plugin, trust_of(*fleet), limits=NEW_CONNECTION_EACH_TIME)
        async with httpx.AsyncClient(transport=transport) as client:
            for u in fleet:
                r = await client.get(u.url())
                assert r.text == f"hello from {u.name}"
                assert not resumed(r)
            first = plugin.stats()
            assert (first.misses, first.evictions, first.size) == (101, 1, 100)

            # Rounds over the 100 most recent: every profile is cached, nothing is
            # evicted, and every reconnection resumes its TLS session.
            recent = fleet.upstreams[1:]
            for _ in range(2):
                answers = await asyncio.gather(*(client.get(u.url()) for u in recent))
                assert [r.text for r in answers] == [f"hello from {u.name}" for u in recent]
                assert all(resumed(r) for r in answers)
            stats = plugin.stats()
            assert (stats.misses, stats.evictions, stats.size) == (101, 1, 100)
            assert stats.hits - first.hits == 200  # one cache hit per connection

            # The evicted one still works: its spec is prepared again.
            r = await client.get(fleet[0].url())
            assert r.text == "hello from upstream-000"
            assert (plugin.stats().misses, plugin.stats().evictions) == (102, 2)


def test_sync_client_reaches_101_upstreams_with_their_own_cas_evicting_one_and_resuming(
        fleet: Fleet) -> None:
    with Plugin(allow=[HOST], cache=Settings(capacity=100)) as plugin:
        transport = PluginTransport(plugin, trust_of(*fleet), limits=NEW_CONNECTION_EACH_TIME)
        with httpx.Client(transport=transport) as client:
            for u in fleet:
                assert client.get(u.url()).text == f"hello from {u.name}"
            first = plugin.stats()
            assert (first.misses, first.evictions) == (101, 1)
            for _ in range(2):
                for u in fleet.upstreams[1:]:
                    r = client.get(u.url())
                    assert r.text == f"hello from {u.name}" and resumed(r)
            stats = plugin.stats()
            assert (stats.misses, stats.evictions, stats.size) == (101, 1, 100)
            assert stats.hits - first.hits == 200


def test_keep_alive_carries_several_requests_on_one_connection(upstream: Upstream) -> None:
    with Plugin(allow=[HOST]) as plugin:
        sessions = Sessions(plugin)
        with httpx.Client(transport=PluginTransport(plugin, trust_of(upstream))) as client:
            for _ in range(5):
                assert client.get(upstream.url()).status_code == 200
        assert upstream.requests == 5
        assert upstream.handshakes == 1
        assert len(sessions.made) == 1 and sessions.live == 0  # closing the client freed it


async def test_async_keep_alive_carries_several_requests_on_one_connection(upstream: Upstream) -> None:
    async with AsyncPlugin(allow=[HOST]) as plugin:
        sessions = Sessions(plugin)
        async with httpx.AsyncClient(transport=AsyncPluginTransport(plugin, trust_of(upstream))) as client:
            for _ in range(5):
                assert (await client.get(upstream.url())).status_code == 200
        assert (upstream.requests, upstream.handshakes) == (5, 1)
        assert len(sessions.made) == 1 and sessions.live == 0


def test_a_wrong_ca_fails_with_the_packages_tls_error_and_the_server_answers_no_request(
        upstream: Upstream, tmp_path: pathlib.Path) -> None:
    with Upstream("impostor-ca", tmp_path) as other, Plugin(allow=[HOST]) as plugin:
        sessions = Sessions(plugin)
        trust = {upstream.origin: TrustSpec(other.ca_pem)}
        with httpx.Client(transport=PluginTransport(plugin, trust)) as client:
            with pytest.raises(PeerCertificateError) as caught:
                client.get(upstream.url())
        assert isinstance(caught.value, TlsError)
        assert sessions.live == 0
    time.sleep(0.2)  # the server's thread notices the refused handshake
    assert upstream.requests == 0 and upstream.handshakes == 0


async def test_async_client_with_a_wrong_ca_fails_with_the_packages_tls_error(
        upstream: Upstream, tmp_path: pathlib.Path) -> None:
    with Upstream("impostor-ca", tmp_path) as other:
        async with AsyncPlugin(allow=[HOST]) as plugin:
            trust = {upstream.origin: TrustSpec(other.ca_pem)}
            async with httpx.AsyncClient(transport=AsyncPluginTransport(plugin, trust)) as client:
                with pytest.raises(PeerCertificateError):
                    await client.get(upstream.url())
    assert upstream.requests == 0


def test_a_mutual_tls_upstream_sees_the_client_certificate_of_the_trust_spec(tmp_path: pathlib.Path) -> None:
    with Upstream("mtls", tmp_path, mutual_tls=True) as upstream, Plugin(allow=[HOST]) as plugin:
        assert upstream.client is not None
        spec = TrustSpec(upstream.ca_pem, upstream.client.cert, upstream.client.key)
        with httpx.Client(transport=PluginTransport(plugin, {upstream.origin: spec})) as client:
            assert client.get(upstream.url("/whoami")).text == "mtls client"
        # Without the client certificate the server refuses the handshake.
        with httpx.Client(transport=PluginTransport(plugin, trust_of(upstream))) as client:
            with pytest.raises(PeerAlertError):
                client.get(upstream.url("/whoami"))
        assert upstream.requests == 1


async def test_a_3_mib_body_arrives_intact_both_ways(upstream: Upstream) -> None:
    payload = os.urandom(3 << 20)
    async with AsyncPlugin(allow=[HOST]) as plugin:
        async with httpx.AsyncClient(transport=AsyncPluginTransport(plugin, trust_of(upstream))) as client:
            r = await client.post(upstream.url("/sha256"), content=payload)
            assert r.text == f"{len(payload)} {hashlib.sha256(payload).hexdigest()}"
            r = await client.get(upstream.url(f"/bytes/{3 << 20}"))
            assert hashlib.sha256(r.content).digest() == hashlib.sha256(body_of(3 << 20)).digest()
    with Plugin(allow=[HOST]) as plugin:
        with httpx.Client(transport=PluginTransport(plugin, trust_of(upstream))) as client:
            r = client.post(upstream.url("/sha256"), content=payload)
            assert r.text == f"{len(payload)} {hashlib.sha256(payload).hexdigest()}"


async def test_cancelled_requests_free_their_sessions(upstream: Upstream) -> None:
    async with AsyncPlugin(allow=[HOST]) as plugin:
        sessions = Sessions(plugin)
        transport = AsyncPluginTransport(plugin, trust_of(upstream), limits=NEW_CONNECTION_EACH_TIME)
        async with httpx.AsyncClient(transport=transport) as client:
            # Cancelled in the middle of a large body: the connection is dropped.
            async def slow_reader() -> None:
                async with client.stream("GET", upstream.url(f"/bytes/{16 << 20}")) as r:
                    async for _ in r.aiter_bytes():
                        await asyncio.sleep(0.01)

            tasks = [asyncio.create_task(slow_reader()) for _ in range(10)]
            waited = time.monotonic()
            while len(sessions.made) < 10 and time.monotonic() - waited < 10:
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.1)
            for task in tasks:
                task.cancel()
            results = await asyncio.gather(*tasks, return_exceptions=True)
            assert all(isinstance(r, asyncio.CancelledError) for r in results), results
            assert len(sessions.made) == 10 and sessions.live == 0
            # The client and the instance carry on.
            assert (await client.get(upstream.url())).text == "hello from single"
        assert sessions.live == 0


def test_the_egress_policy_applies_to_upstream_connections(upstream: Upstream) -> None:
    with Plugin(allow=["api.example"]) as plugin:
        with httpx.Client(transport=PluginTransport(plugin, trust_of(upstream))) as client:
            with pytest.raises(httpx.ConnectError) as caught:
                client.get(upstream.url())
    assert isinstance(caught.value.__cause__, EgressDenied)
    assert upstream.handshakes == 0 and upstream.failures == 0


def test_an_upstream_without_a_trust_spec_is_refused_before_connecting(upstream: Upstream) -> None:
    with Plugin(allow=[HOST]) as plugin:
        with httpx.Client(transport=PluginTransport(plugin, {})) as client:
            with pytest.raises(httpx.ConnectError, match="no trust spec"):
                client.get(upstream.url())
        time.sleep(0.1)
        assert upstream.failures == 0  # not even a TCP connection was made
        # A callable decides per (host, port); a default covers the rest.
        spec = TrustSpec(upstream.ca_pem)
        chooser = PluginTransport(plugin, lambda host, port: spec if port == upstream.port else None)
        with httpx.Client(transport=chooser) as client:
            assert client.get(upstream.url()).status_code == 200
        with httpx.Client(transport=PluginTransport(plugin, {}, default=spec)) as client:
            assert client.get(upstream.url()).status_code == 200
    assert upstream.handshakes == 2


def test_pooled_connections_of_a_replaced_instance_are_not_reused_after_a_trap(upstream: Upstream) -> None:
    with Plugin(allow=[HOST], memory_limit=8 << 20) as plugin:
        with httpx.Client(transport=PluginTransport(plugin, trust_of(upstream))) as client:
            assert client.get(upstream.url()).status_code == 200  # one pooled connection
            profile = plugin.prepare(TrustSpec(upstream.ca_pem))
            held = []
            with pytest.raises(PluginTrapped):
                for _ in range(50_000):  # never freed: each holds memory until the trap
                    held.append(plugin.connect(profile.id, HOST))
                    held[-1].advance()
            assert plugin.generation == 1
            # The pooled connection belonged to the old instance: a new one is made.
            r = client.get(upstream.url())
            assert r.text == "hello from single" and not resumed(r)
        assert upstream.handshakes == 2


async def test_async_pooled_connections_of_a_replaced_instance_are_not_reused_after_a_trap(
        upstream: Upstream) -> None:
    async with AsyncPlugin(allow=[HOST], memory_limit=8 << 20) as plugin:
        async with httpx.AsyncClient(transport=AsyncPluginTransport(plugin, trust_of(upstream))) as client:
            assert (await client.get(upstream.url())).status_code == 200
            profile = plugin.prepare(TrustSpec(upstream.ca_pem))
            held = []
            with pytest.raises(PluginTrapped):
                for _ in range(50_000):
                    held.append(plugin.connect(profile.id, HOST))
                    held[-1].advance()
            r = await client.get(upstream.url())
            assert r.text == "hello from single" and not resumed(r)
        assert upstream.handshakes == 2


def test_one_sync_transport_serves_several_threads_at_once(fleet: Fleet) -> None:
    upstreams = fleet.upstreams[:4]
    failures: List[BaseException] = []
    with Plugin(allow=[HOST]) as plugin:
        sessions = Sessions(plugin)
        with httpx.Client(transport=PluginTransport(plugin, trust_of(*upstreams))) as client:
            def work(n: int) -> None:
                try:
                    for i in range(20):
                        u = upstreams[(n + i) % len(upstreams)]
                        assert client.get(u.url()).text == f"hello from {u.name}"
                except BaseException as e:  # reported below
                    failures.append(e)

            threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
        assert not failures
        assert len(sessions.made) <= 4 * 8 and sessions.live == 0


async def test_a_bulk_transfer_leaves_the_event_loop_free_for_other_tasks(upstream: Upstream) -> None:
    # Every TLS step runs on the loop; the stream yields between steps, so a 3 MiB
    # upload and download never hold it for long (before, a socket that always took
    # or had data kept the loop for the whole transfer: ~0.7 s).
    lags: List[float] = []
    done = asyncio.Event()

    async def probe() -> None:
        while not done.is_set():
            started = time.perf_counter()
            await asyncio.sleep(0.001)
            lags.append(time.perf_counter() - started - 0.001)

    payload = os.urandom(3 << 20)
    async with AsyncPlugin(allow=[HOST]) as plugin:
        async with httpx.AsyncClient(transport=AsyncPluginTransport(plugin, trust_of(upstream))) as client:
            await client.get(upstream.url())
            prober = asyncio.create_task(probe())
            r = await client.post(upstream.url("/sha256"), content=payload)
            assert r.text.startswith(f"{len(payload)} ")
            r = await client.get(upstream.url(f"/bytes/{3 << 20}"))
            assert len(r.content) == 3 << 20
            done.set()
            await prober
    assert len(lags) > 10
    assert max(lags) < 0.06, f"the loop was held {max(lags) * 1000:.0f} ms"


def test_an_upstream_that_closes_without_close_notify_still_gives_complete_answers(
        tmp_path: pathlib.Path) -> None:
    # Python's ssl server closes without the alert; answers with a length are complete
    # before the close, and an idle connection it closed is not reused.
    with Upstream("ragged", tmp_path, close_notify=False) as upstream, Plugin(allow=[HOST]) as plugin:
        with httpx.Client(transport=PluginTransport(plugin, trust_of(upstream))) as client:
            for _ in range(3):
                r = client.get(upstream.url(), headers={"connection": "close"})
                assert r.text == "hello from ragged"
            assert client.get(upstream.url(f"/bytes/{1 << 20}")).content == body_of(1 << 20)
        assert upstream.handshakes == 4
