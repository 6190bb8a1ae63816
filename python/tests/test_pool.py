"""PluginPool: calls spread over instances that stay alike (cache settings, sessions
opened and closed through any of them), sharing one store."""

from __future__ import annotations

import threading
import time
from typing import Callable, List

import gateway_auth as ga
from conftest import PASSWORD, USERNAME, CertAuthority, DevServer


def test_a_session_opened_once_is_served_by_every_instance_from_the_store(
        dev_server: DevServer) -> None:
    with ga.PluginPool(3, allow=["127.0.0.1"]) as pool:
        pool.open_session("gw", dev_server.client(), ga.ClientCredentials())
        tokens: List[str] = []
        lock = threading.Lock()

        def work() -> None:
            for _ in range(10):
                token = pool.access_token("gw").access_token
                with lock:
                    tokens.append(token)

        threads = [threading.Thread(target=work) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(tokens) == 60 and len(set(tokens)) == 1
        assert dev_server.count("token-requests") == 1


def test_calls_run_in_parallel_on_separate_instances(
        start_dev_server: Callable[..., DevServer]) -> None:
    server = start_dev_server("--token-delay-ms", "1000")
    with ga.PluginPool(3, allow=["127.0.0.1"]) as pool:
        started = time.monotonic()
        threads = [threading.Thread(target=pool.request_token,
                                    args=(server.client(), ga.ClientCredentials()))
                   for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        took = time.monotonic() - started
    assert server.count("token-requests") == 3
    assert took < 2.5, f"three 1 s requests took {took:.2f} s: they did not overlap"


def test_a_closed_session_is_gone_from_every_instance(dev_server: DevServer) -> None:
    with ga.PluginPool(2, allow=["127.0.0.1"]) as pool:
        pool.open_session("gw", dev_server.client(), ga.Password(USERNAME, PASSWORD))
        with pool.get() as a, pool.get() as b:
            a.access_token("gw")
            b.access_token("gw")
        pool.close_session("gw")
        with pool.get() as a, pool.get() as b:
            assert a.session_status("gw") is None
            assert b.session_status("gw") is None
        assert pool.store.get("gw") is None


def test_cache_settings_reach_every_instance(dev_server: DevServer) -> None:
    with ga.PluginPool(2, allow=["127.0.0.1"], cache=ga.Settings(capacity=4)) as pool:
        with pool.get() as a, pool.get() as b:
            assert a.stats().capacity == b.stats().capacity == 4
        pool.prepare(ga.TrustSpec(CertAuthority("pool").pem))
        metrics = pool.metrics()
        assert metrics.cache.capacity == 8 and metrics.cache.size == 1
        assert "gateway_auth_tls_cache_capacity 8" in pool.metrics_text()


def test_the_plugins_metrics_text_is_prometheus_exposition(plugin: ga.Plugin,
                                                            dev_server: DevServer) -> None:
    spec = dev_server.trust
    plugin.prepare(spec)
    plugin.prepare(spec)
    plugin.request_token(dev_server.client(), ga.ClientCredentials())
    text = plugin.metrics_text()
    lines = text.splitlines()
    assert 'gateway_auth_oauth_token_requests_total{grant="client_credentials",outcome="ok"} 1' in lines
    # One miss: the token endpoint's trust is the spec prepared first.
    assert 'gateway_auth_tls_cache_gets_total{result="miss"} 1' in lines
    assert 'gateway_auth_tls_cache_gets_total{result="hit"} 0' not in lines
    for phase in ("empty", "valid", "authorizing", "backoff", "authorization_required", "failed"):
        assert f'gateway_auth_oauth_sessions{{phase="{phase}"}} 0' in lines
    assert any(l.startswith('gateway_auth_oauth_token_request_duration_seconds_bucket{grant="client_credentials",le="+Inf"} 1')
               for l in lines)
    families = [l.split()[2] for l in lines if l.startswith("# TYPE")]
    assert len(families) == len(set(families)) == sum(l.startswith("# HELP") for l in lines)
