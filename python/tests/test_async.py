"""The asyncio API: OAuth calls run off the event loop, sans-IO TLS sessions on it, and
nothing blocks the loop for more than 10 ms while a token request is slow."""

from __future__ import annotations

import asyncio
import time
from typing import Callable, List, TypeVar

import pytest

import gateway_auth as ga
from conftest import (PASSWORD, PUBLIC_CLIENT_ID, USERNAME, CertAuthority, DevServer,
                      HttpsProcess)


class LagProbe:
    """A task that sleeps 1 ms at a time and records how late it wakes each time: how
    long something held the event loop."""

    def __init__(self) -> None:
        self.lags: List[float] = []
        self._task: "asyncio.Task[None] | None" = None

    @property
    def worst(self) -> float:
        return max(self.lags, default=0.0)

    def percentile(self, q: float) -> float:
        ordered = sorted(self.lags)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0

    async def _run(self) -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(0.001)
            self.lags.append(time.perf_counter() - before - 0.001)

    def __enter__(self) -> "LagProbe":
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *_exc: object) -> None:
        assert self._task is not None
        self._task.cancel()


R = TypeVar("R")


class Held(List[float]):
    """How long each plugin call held the loop (wall time), and the most processor
    time any one took."""

    cpu = 0.0


def timed(held: Held, call: Callable[..., R], *args: object) -> R:
    """``call(*args)``, noting in ``held`` how long it held the loop."""
    started, cpu = time.perf_counter(), time.thread_time()
    try:
        return call(*args)
    finally:
        held.append(time.perf_counter() - started)
        held.cpu = max(held.cpu, time.thread_time() - cpu)


async def get_over_tls(plugin: ga.AsyncPlugin, spec: ga.TrustSpec, port: int,
                       held: Held) -> bytes:
    """One GET through a loop-side TLS session over asyncio streams; every plugin
    call's duration goes to ``held``."""
    profile = timed(held, plugin.prepare, spec)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    answer = bytearray()
    with timed(held, plugin.connect, profile.id, "127.0.0.1", ["http/1.1"]) as session:
        out = timed(held, session.advance, b"", b"GET / HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n")
        writer.write(out.outgoing)
        while out.state not in (ga.TlsState.PEER_CLOSED, ga.TlsState.CLOSED):
            incoming = await reader.read(65536)
            if not incoming:
                break
            out = timed(held, session.advance, incoming)
            answer += out.plaintext
            writer.write(out.outgoing)
            await writer.drain()
    writer.close()
    return bytes(answer)


async def test_a_slow_token_request_never_blocks_the_event_loop(
        start_dev_server: Callable[..., DevServer]) -> None:
    server = start_dev_server("--token-delay-ms", "1500")
    ca = CertAuthority("loop-upstream")
    upstream = HttpsProcess(ca, b"fast upstream")
    async with ga.AsyncPlugin(allow=["127.0.0.1"]) as plugin:
        await plugin.open_session("gw", server.client(), ga.ClientCredentials())
        spec = ga.TrustSpec(ca.pem)
        held = Held()
        await get_over_tls(plugin, spec, upstream.port, held)  # warm: the first handshake
        held.clear()
        held.cpu = 0.0
        with LagProbe() as probe:
            started = time.monotonic()
            token_task = asyncio.ensure_future(timed(held, plugin.access_token, "gw"))
            answers: List[bytes] = []
            while not token_task.done():
                answers.append(await get_over_tls(plugin, spec, upstream.port, held))
            token = await token_task
            took = time.monotonic() - started
        calls = sorted(held)
        print(f"\nduring a {took:.2f} s token request: {len(answers)} upstream GETs on the "
              f"loop, {len(calls)} plugin calls on it: at most {calls[-1] * 1000:.2f} ms "
              f"each ({held.cpu * 1000:.2f} ms of processor time); loop lag: 99th percentile "
              f"{probe.percentile(0.99) * 1000:.2f} ms, worst {probe.worst * 1000:.2f} ms "
              f"over {len(probe.lags)} wakeups")
        assert token.access_token
        assert took >= 1.5, "the token request was slow"
        assert len(answers) >= 5 and all(a.endswith(b"fast upstream") for a in answers), \
            "upstream traffic went on during the slow token request"
        assert len(probe.lags) > 100
        # No plugin call on the loop computes for 10 ms, and nearly all end within 10 ms
        # of wall time. The machine's scheduling (other processes on a shared host) can
        # delay a call or a wakeup now and then; a call of the plugin's making that
        # waited on the busy OAuth instance would hold the loop for the whole 1.5 s.
        assert held.cpu < 0.010, f"a plugin call computed {held.cpu * 1000:.1f} ms on the loop"
        assert calls[int(0.99 * len(calls))] < 0.010
        assert calls[-1] < 0.5, f"a plugin call held the loop {calls[-1] * 1000:.1f} ms"
        assert probe.percentile(0.99) < 0.010
        assert probe.worst < 0.5, f"the loop was held for {probe.worst * 1000:.1f} ms"
    upstream.close()


async def test_async_sessions_follow_every_flow(dev_server: DevServer) -> None:
    async with ga.AsyncPlugin(allow=["127.0.0.1"], oauth_instances=2) as plugin:
        await plugin.open_session("pw", dev_server.client(), ga.Password(USERNAME, PASSWORD))
        tokens = await asyncio.gather(*(plugin.access_token("pw") for _ in range(10)))
        assert len({t.access_token for t in tokens}) == 1
        status = await plugin.session_status("pw")
        assert status is not None and status.has_refresh_token

        public = dev_server.client(PUBLIC_CLIENT_ID, ga.NoClientAuth())
        await plugin.open_session("user", public, ga.AuthorizationCodeFlow())
        authorization = await plugin.begin_authorization("user")
        code, state = dev_server.authorize(authorization.url)
        token = await plugin.complete_authorization("user", state, code)
        assert (await plugin.access_token("user")).access_token == token.access_token

        one_off = await plugin.request_token(dev_server.client(), ga.ClientCredentials())
        assert one_off.access_token
        renewed = await plugin.renew_token("pw", tokens[0])
        assert renewed.access_token != tokens[0].access_token

        await plugin.close_session("pw")
        assert await plugin.session_status("pw") is None
        text = await plugin.metrics_text()
        assert 'gateway_auth_oauth_token_requests_total{grant="password",outcome="ok"}' in text


async def test_async_errors_are_the_same_exceptions(dev_server: DevServer) -> None:
    async with ga.AsyncPlugin(allow=["127.0.0.1"]) as plugin:
        with pytest.raises(ga.ProtocolError) as caught:
            await plugin.request_token(dev_server.client(auth=ga.ClientSecretBasic("wrong")),
                                       ga.ClientCredentials())
        assert caught.value.error == "invalid_client"
        with pytest.raises(ga.ConfigError):
            await plugin.access_token("never-opened")
        with pytest.raises(ga.MalformedPemError):
            plugin.prepare(ga.TrustSpec("garbage"))


async def test_cache_settings_reach_the_oauth_instances_too(dev_server: DevServer) -> None:
    async with ga.AsyncPlugin(allow=["127.0.0.1"], cache=ga.Settings(capacity=5)) as plugin:
        assert plugin.stats().capacity == 5
        await plugin.request_token(dev_server.client(), ga.ClientCredentials())
        metrics = await asyncio.to_thread(plugin.oauth.metrics)
        # Each OAuth instance has a cache of its own; a pool adds them up.
        assert metrics.cache.capacity == 5 * plugin.oauth.size and metrics.cache.size == 1


async def test_configure_does_not_wait_for_a_busy_oauth_instance(
        start_dev_server: Callable[..., DevServer]) -> None:
    server = start_dev_server("--token-delay-ms", "1000")
    async with ga.AsyncPlugin(allow=["127.0.0.1"], oauth_instances=1) as plugin:
        slow = asyncio.ensure_future(plugin.request_token(server.client(), ga.ClientCredentials()))
        await asyncio.sleep(0.2)  # the only OAuth instance is busy now
        started = time.perf_counter()
        plugin.configure(ga.Settings(capacity=9))
        assert time.perf_counter() - started < 0.05
        assert plugin.stats().capacity == 9
        await slow
        await plugin.session_status("any")  # the instance's next call applies them
        metrics = await asyncio.to_thread(plugin.oauth.metrics)
        assert metrics.cache.capacity == 9


async def test_a_slow_renewal_does_not_hold_back_another_sessions_cached_token(
        start_dev_server: Callable[..., DevServer]) -> None:
    slow_server = start_dev_server("--token-delay-ms", "1500")
    fast_server = start_dev_server()
    async with ga.AsyncPlugin(allow=["127.0.0.1"]) as plugin:
        await plugin.open_session("fast", fast_server.client(), ga.ClientCredentials())
        await plugin.open_session("slow", slow_server.client(), ga.ClientCredentials())
        cached = await plugin.access_token("fast")
        slow = asyncio.ensure_future(plugin.access_token("slow"))
        await asyncio.sleep(0.1)  # the slow request holds an OAuth instance now
        started = time.monotonic()
        for _ in range(20):
            assert (await plugin.access_token("fast")).access_token == cached.access_token
        took = time.monotonic() - started
        assert not slow.done(), "the slow request was still under way"
        assert took < 0.5, f"20 cached tokens took {took:.2f} s behind the slow renewal"
        assert (await slow).access_token
