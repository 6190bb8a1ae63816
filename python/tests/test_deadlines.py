"""The Rust host's guarantees: every call ends by its deadline, and a trap (a call past
the plugin's call timeout, memory exhausted) is recovered: the instance is replaced,
cache settings and open sessions are replayed, and the next call works."""

from __future__ import annotations

import threading
import time
from typing import Optional

import pytest

import gateway_auth as ga
from conftest import CertAuthority, DevServer, SilentServer


def test_a_hung_token_endpoint_ends_the_request_with_a_timeout_by_its_deadline(
        plugin: ga.Plugin, silent_server: SilentServer, dev_server: DevServer) -> None:
    client = dev_server.client(token_endpoint=f"https://127.0.0.1:{silent_server.port}/token",
                               timeout_ms=1000)
    started = time.monotonic()
    with pytest.raises(ga.TransportTimeout) as caught:
        plugin.request_token(client, ga.ClientCredentials())
    took = time.monotonic() - started
    assert isinstance(caught.value, TimeoutError)
    assert caught.value.net.kind is ga.NetErrorKind.TIMEOUT
    assert silent_server.accepted, "the request reached the server"
    assert took < 1.0 + 0.5, f"the request ran {took:.2f} s past a 1 s deadline"


def test_a_dripped_token_answer_ends_the_request_by_its_deadline(
        plugin: ga.Plugin, start_dev_server) -> None:  # type: ignore[no-untyped-def]
    server: DevServer = start_dev_server("--token-drip-ms", "50")
    started = time.monotonic()
    with pytest.raises(ga.TransportTimeout):
        plugin.request_token(server.client(timeout_ms=1500), ga.ClientCredentials())
    assert time.monotonic() - started < 1.5 + 0.5


class StallingStore(ga.MemoryStore):
    """A memory store whose next read, once armed, hangs for ``stall`` seconds (a
    store server that stopped answering)."""

    def __init__(self) -> None:
        super().__init__()
        self.stall: Optional[float] = None

    def get(self, key: str) -> Optional[bytes]:
        stall, self.stall = self.stall, None
        if stall:
            time.sleep(stall)
        return super().get(key)


def test_a_call_past_the_call_timeout_is_recovered_with_the_session_intact(
        dev_server: DevServer) -> None:
    store = StallingStore()
    plugin = ga.Plugin(allow=["127.0.0.1"], store=store, call_timeout=3.5,
                       cache=ga.Settings(capacity=7))
    try:
        plugin.open_session("gw", dev_server.client(timeout_ms=1000), ga.ClientCredentials())
        token = plugin.access_token("gw")
        upstream = CertAuthority("upstream")
        profile = plugin.prepare(ga.TrustSpec(upstream.pem))
        session = plugin.connect(profile.id, "127.0.0.1")
        assert dev_server.count("token-requests") == 1
        plugin.metrics()  # counters are carried over as they were last read

        store.stall = 4.0
        started = time.monotonic()
        with pytest.raises(ga.CallTimeout) as caught:
            plugin.open_session("other", dev_server.client(timeout_ms=1000),
                                ga.ClientCredentials())
        assert isinstance(caught.value, ga.PluginTrapped)
        # The store's 4 s stall cannot be interrupted; the call traps as it returns.
        assert time.monotonic() - started < 4.0 + 2.0
        assert plugin.generation == 1

        # The next call works, on a fresh instance with the session replayed from the
        # store: the same token, no new request.
        assert plugin.access_token("gw").access_token == token.access_token
        assert dev_server.count("token-requests") == 1
        assert plugin.session_status("other") is None, "the failed open was not replayed"
        assert plugin.stats().capacity == 7, "the cache settings were replayed"
        assert plugin.stats().size == 0, "the fresh instance's cache starts empty"
        with pytest.raises(ga.InstanceReplaced):
            session.advance()
        session.free()
        # Counters never go down across the replacement (as last read before it).
        requests = {(r.grant, r.outcome): r.count for r in plugin.metrics().token_requests}
        assert requests[("client_credentials", "ok")] == 1
    finally:
        plugin.close()


def test_memory_exhaustion_traps_and_the_next_call_works(dev_server: DevServer) -> None:
    plugin = ga.Plugin(allow=["127.0.0.1"], memory_limit=4 << 20)
    try:
        plugin.open_session("gw", dev_server.client(), ga.ClientCredentials())
        token = plugin.access_token("gw")
        profile = plugin.prepare(ga.TrustSpec(CertAuthority("mem").pem))
        held = []
        with pytest.raises(ga.PluginTrapped) as caught:
            for _ in range(20_000):  # never freed: each holds memory in the instance
                held.append(plugin.connect(profile.id, "127.0.0.1"))
                held[-1].advance()
        assert not isinstance(caught.value, ga.CallTimeout)
        assert len(held) > 10
        assert plugin.access_token("gw").access_token == token.access_token
        with pytest.raises(ga.InstanceReplaced):
            held[0].advance()
        profile = plugin.prepare(ga.TrustSpec(CertAuthority("mem-again").pem))
        with plugin.connect(profile.id, "127.0.0.1") as fresh:
            assert fresh.advance().outgoing
    finally:
        plugin.close()


def test_calls_from_several_threads_take_turns_on_one_instance(dev_server: DevServer) -> None:
    with ga.Plugin(allow=["127.0.0.1"]) as plugin:
        plugin.open_session("gw", dev_server.client(), ga.ClientCredentials())
        tokens: list[str] = []
        errors: list[BaseException] = []

        def work() -> None:
            try:
                for _ in range(20):
                    tokens.append(plugin.access_token("gw").access_token)
                    plugin.stats()
            except BaseException as e:  # noqa: BLE001 - reported below
                errors.append(e)

        threads = [threading.Thread(target=work) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert len(tokens) == 160 and len(set(tokens)) == 1
        assert dev_server.count("token-requests") == 1


async def test_an_async_call_past_the_call_timeout_is_recovered_with_the_session_intact(
        dev_server: DevServer) -> None:
    store = StallingStore()
    async with ga.AsyncPlugin(allow=["127.0.0.1"], store=store, call_timeout=3.5) as plugin:
        await plugin.open_session("gw", dev_server.client(timeout_ms=1000), ga.ClientCredentials())
        token = await plugin.access_token("gw")
        store.stall = 4.0
        with pytest.raises(ga.CallTimeout):
            await plugin.open_session("other", dev_server.client(timeout_ms=1000),
                                      ga.ClientCredentials())
        assert (await plugin.access_token("gw")).access_token == token.access_token
        assert dev_server.count("token-requests") == 1


def test_an_input_too_large_for_the_instance_is_refused_without_a_trap(plugin: ga.Plugin) -> None:
    # 70 MiB of PEM text would exhaust the instance's 64 MiB and trap it.
    with pytest.raises(ga.InputTooLarge) as caught:
        plugin.prepare(ga.TrustSpec("x" * (70 << 20)))
    assert isinstance(caught.value, ValueError) and caught.value.limit == 16 << 20
    profile = plugin.prepare(ga.TrustSpec(CertAuthority("bounded").pem))
    with plugin.connect(profile.id, "127.0.0.1") as session:
        with pytest.raises(ga.InputTooLarge):
            session.advance(b"", bytes(20 << 20))
        assert session.advance().outgoing, "the session is still usable"
    with pytest.raises(ga.InputTooLarge):
        plugin.open_session("gw", ga.Client("gw", trust=ga.TrustSpec("y" * (17 << 20))),
                            ga.ClientCredentials())
    # Within the host's bound the plugin's own limit answers.
    with pytest.raises(ga.TooLargeError):
        plugin.prepare(ga.TrustSpec("x" * (2 << 20)))
    assert plugin.generation == 0
