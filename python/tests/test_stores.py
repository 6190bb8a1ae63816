"""The stores: the same compare-and-swap semantics on every backend, SQLite shared by
processes, Redis with the Rust host's key layout, and store failures reaching the
plugin as its ``store`` error (never a trap)."""

from __future__ import annotations

import multiprocessing
import stat
from pathlib import Path
from typing import Iterator, Optional

import pytest

import gateway_auth as ga
from gateway_auth.stores import DEFAULT_REDIS_PREFIX
from conftest import PASSWORD, USERNAME, DevServer, RedisServer


@pytest.fixture(params=["memory", "sqlite", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ga.Store]:
    if request.param == "memory":
        yield ga.MemoryStore()
    elif request.param == "sqlite":
        yield ga.SqliteStore(tmp_path / "tokens.db")
    else:
        server = RedisServer()
        try:
            yield ga.RedisStore(server.url)
        finally:
            server.stop()


def test_compare_and_swap_writes_only_over_the_expected_value(store: ga.Store) -> None:
    assert store.get("k") is None
    assert store.compare_and_swap("k", None, b"one")
    assert not store.compare_and_swap("k", None, b"two"), "absent was expected"
    assert not store.compare_and_swap("k", b"other", b"two")
    assert store.get("k") == b"one"
    assert store.compare_and_swap("k", b"one", b"\x00two\xff")
    assert store.get("k") == b"\x00two\xff"
    assert not store.compare_and_swap("k", b"one", None)
    assert store.compare_and_swap("k", b"\x00two\xff", None)
    assert store.get("k") is None
    assert store.compare_and_swap("k", None, b""), "an empty value is a value"
    assert store.get("k") == b""
    assert not store.compare_and_swap("k", None, b"x")


def test_open_store_picks_a_backend_by_url(tmp_path: Path) -> None:
    assert isinstance(ga.open_store("memory:"), ga.MemoryStore)
    assert isinstance(ga.open_store(f"sqlite:{tmp_path / 'x.db'}"), ga.SqliteStore)
    redis_store = ga.open_store("redis://127.0.0.1:1/0?prefix=gw:")
    assert isinstance(redis_store, ga.RedisStore) and redis_store.prefix == "gw:"
    with pytest.raises(ga.StoreBackendError):
        ga.open_store("etcd://somewhere")
    with pytest.raises(ga.StoreBackendError):
        ga.open_store("sqlite:")


def test_a_new_sqlite_file_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "tokens.db"
    ga.SqliteStore(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def _increment(path: str, times: int) -> None:
    store = ga.SqliteStore(path)
    for _ in range(times):
        while True:
            current = store.get("counter")
            following = str(int(current or b"0") + 1).encode()
            if store.compare_and_swap("counter", current, following):
                break


def test_processes_sharing_a_sqlite_file_never_lose_an_update(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.db")
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_increment, args=(path, 100)) for _ in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)
        assert w.exitcode == 0
    assert ga.SqliteStore(path).get("counter") == b"400"


def test_sessions_in_redis_use_the_rust_hosts_key_layout(dev_server: DevServer,
                                                         redis_server: RedisServer) -> None:
    import redis
    with ga.Plugin(allow=["127.0.0.1"], store=ga.RedisStore(redis_server.url)) as plugin:
        plugin.open_session("gw", dev_server.client(), ga.ClientCredentials())
        plugin.access_token("gw")
    keys = redis.Redis.from_url(redis_server.url).keys("*")
    assert keys == [f"{DEFAULT_REDIS_PREFIX}gw".encode()]


class FailingStore:
    """A store whose every operation fails once ``failing`` is set."""

    def __init__(self) -> None:
        self.inner = ga.MemoryStore()
        self.failing = False
        self.failures = 0

    def _check(self) -> None:
        if self.failing:
            self.failures += 1
            raise ConnectionError("the store server is unreachable")

    def get(self, key: str) -> Optional[bytes]:
        self._check()
        return self.inner.get(key)

    def compare_and_swap(self, key: str, expected: Optional[bytes], value: Optional[bytes]) -> bool:
        self._check()
        return self.inner.compare_and_swap(key, expected, value)


def refresh_token(plugin: ga.Plugin, server: DevServer) -> str:
    token = plugin.request_token(server.client(), ga.Password(USERNAME, PASSWORD))
    assert token.refresh_token
    return token.refresh_token


def test_a_failing_store_is_the_store_error_not_a_trap(dev_server: DevServer) -> None:
    store = FailingStore()
    with ga.Plugin(allow=["127.0.0.1"], store=store) as plugin:
        grant = ga.RefreshToken(refresh_token(plugin, dev_server))
        sent = dev_server.count("token-requests")
        store.failing = True
        plugin.open_session("gw", dev_server.client(), grant)
        # A refresh token is spent only under the lease, which needs the store.
        with pytest.raises(ga.StoreError) as caught:
            plugin.access_token("gw")
        assert "unreachable" in str(caught.value)
        assert store.failures > 0
        assert plugin.generation == 0, "the instance did not trap"
        assert dev_server.count("token-requests") == sent, "no refresh without the lease"
        store.failing = False
        assert plugin.access_token("gw").access_token
        assert plugin.generation == 0


def test_client_credentials_still_get_a_token_while_the_store_is_down(
        dev_server: DevServer) -> None:
    store = FailingStore()
    store.failing = True
    with ga.Plugin(allow=["127.0.0.1"], store=store) as plugin:
        plugin.open_session("gw", dev_server.client(), ga.ClientCredentials())
        assert plugin.access_token("gw").access_token
        assert plugin.generation == 0


def test_a_held_token_is_served_while_the_store_is_down(dev_server: DevServer) -> None:
    store = FailingStore()
    with ga.Plugin(allow=["127.0.0.1"], store=store) as plugin:
        plugin.open_session("gw", dev_server.client(), ga.ClientCredentials())
        token = plugin.access_token("gw")
        store.failing = True
        assert plugin.access_token("gw").access_token == token.access_token
        assert plugin.generation == 0


def test_an_unreachable_redis_is_the_store_error_naming_the_server(dev_server: DevServer) -> None:
    with ga.Plugin(allow=["127.0.0.1"],
                   store=ga.RedisStore("redis://:s3cret@127.0.0.1:1/0")) as plugin:
        plugin.open_session("gw", dev_server.client(),
                            ga.RefreshToken(refresh_token(plugin, dev_server)))
        with pytest.raises(ga.StoreError) as caught:
            plugin.access_token("gw")
        assert "s3cret" not in str(caught.value)
        assert plugin.generation == 0
