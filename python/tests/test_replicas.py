"""A Python and a Rust process share one session through one store (Redis, or a SQLite
file): each continues from the other's tokens, and a rotated refresh token is
presented once (the development server detects reuse and would revoke the lineage)."""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
import subprocess
from pathlib import Path
from typing import Callable

import gateway_auth as ga
from conftest import (BASIC_CLIENT_ID, BASIC_CLIENT_SECRET, PASSWORD, USERNAME, DevServer,
                      RedisServer, binary)


def rust_token(server: DevServer, workdir: Path, store_url: str, refresh_token: str) -> str:
    """The access token ``gateway-auth token --config`` (the Rust host) gets for gateway
    ``shared``, configured as the Python client is."""
    (workdir / "ca.pem").write_text(server.ca_pem)
    config = workdir / "gateways.toml"
    config.write_text(f'''
[[gateway]]
name = "shared"
client_id = "{BASIC_CLIENT_ID}"
token_endpoint = "{server.token_endpoint}"
ca = "ca.pem"
allow = ["127.0.0.1"]
store = "{store_url}"
auth = {{ method = "client_secret_basic", secret_env = "SHARED_CLIENT_SECRET" }}
grant = {{ type = "refresh_token", refresh_token_env = "SHARED_REFRESH_TOKEN" }}
''')
    env = dict(os.environ, SHARED_CLIENT_SECRET=BASIC_CLIENT_SECRET,
               SHARED_REFRESH_TOKEN=refresh_token)
    run = subprocess.run([str(binary("gateway-auth")), "token", "--config", str(config), "shared"],
                         env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert BASIC_CLIENT_SECRET not in run.stdout + run.stderr
    return run.stdout.strip()


def share_one_session(server: DevServer, workdir: Path, store: ga.Store, store_url: str) -> None:
    # Tokens live 2 s and are renewed at half their life: after a 1.1 s pause every
    # access renews.
    assert server.command("token-lifetime 2") == "ok"
    with ga.Plugin(allow=["127.0.0.1"], store=store) as plugin:
        client = ga.Client(BASIC_CLIENT_ID, ga.ClientSecretBasic(BASIC_CLIENT_SECRET),
                           trust=server.trust, token_endpoint=server.token_endpoint)
        initial = plugin.request_token(client, ga.Password(USERNAME, PASSWORD)).refresh_token
        assert initial
        plugin.open_session("shared", client, ga.RefreshToken(initial))
        first = plugin.access_token("shared").access_token  # spends the initial token

        time.sleep(1.1)
        # The Rust process opens the same session with the same (now spent) initial
        # refresh token: it continues from the store's rotated one instead.
        second = rust_token(server, workdir, store_url, initial)
        assert second and second != first

        time.sleep(1.1)
        # Back in Python: this instance's memory holds the token the Rust process
        # rotated away; the lease's compare-and-swap sees the newer record first.
        third = plugin.access_token("shared").access_token
        assert third not in (first, second)
        status = plugin.session_status("shared")
        assert status is not None and status.phase is ga.SessionPhase.VALID
    assert server.count("reuse-detections") == 0
    assert server.count("most-presentations") == 1, "a refresh token was presented twice"
    assert server.count("token-requests") == 4  # the password grant, then 3 refreshes


def test_a_python_and_a_rust_process_share_one_session_in_redis(
        start_dev_server: Callable[..., DevServer], redis_server: RedisServer,
        tmp_path: Path) -> None:
    server = start_dev_server("--reuse-detection")
    share_one_session(server, tmp_path, ga.RedisStore(redis_server.url), redis_server.url)


def test_a_python_and_a_rust_process_share_one_session_in_a_sqlite_file(
        start_dev_server: Callable[..., DevServer], tmp_path: Path) -> None:
    server = start_dev_server("--reuse-detection")
    path = tmp_path / "tokens.db"
    share_one_session(server, tmp_path, ga.SqliteStore(path), f"sqlite:{path}")


def _hammer(store_url: str, token_endpoint: str, ca_pem: str, refresh_token: str,
            seconds: float, results: "multiprocessing.Queue[tuple[int, list[str]]]") -> None:
    """One replica process: a pool of two instances, four threads asking for the
    shared session's token until ``seconds`` pass; reports (calls, errors)."""
    pool = ga.PluginPool(2, allow=["127.0.0.1"], store=ga.open_store(store_url),
                         log_to_stderr=False)
    client = ga.Client(BASIC_CLIENT_ID, ga.ClientSecretBasic(BASIC_CLIENT_SECRET),
                       trust=ga.TrustSpec(ca_pem), token_endpoint=token_endpoint)
    pool.open_session("shared", client, ga.RefreshToken(refresh_token))
    calls = [0]
    errors: "list[str]" = []
    deadline = time.monotonic() + seconds

    def work() -> None:
        while time.monotonic() < deadline:
            try:
                pool.access_token("shared")
            except ga.GatewayAuthError as e:
                errors.append(f"{type(e).__name__}: {e}")
            calls[0] += 1
            time.sleep(0.01)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    results.put((calls[0], errors[:5]))


def test_python_and_rust_replicas_renewing_one_session_at_once_spend_each_refresh_token_once(
        start_dev_server: Callable[..., DevServer], redis_server: RedisServer,
        tmp_path: Path) -> None:
    server = start_dev_server("--reuse-detection")
    assert server.command("token-lifetime 2") == "ok"  # renewed every second
    with ga.Plugin(allow=["127.0.0.1"]) as plugin:
        initial = plugin.request_token(server.client(), ga.Password(USERNAME, PASSWORD))
    assert initial.refresh_token
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    replicas = [context.Process(target=_hammer, args=(
        redis_server.url, server.token_endpoint, server.ca_pem, initial.refresh_token, 6.0,
        results)) for _ in range(2)]
    for r in replicas:
        r.start()
    # Meanwhile the Rust command takes its token from the same session, again and again.
    rust_tokens = []
    deadline = time.monotonic() + 6.0
    while time.monotonic() < deadline:
        rust_tokens.append(rust_token(server, tmp_path, redis_server.url, initial.refresh_token))
    reports = [results.get(timeout=60) for _ in replicas]
    for r in replicas:
        r.join(30)
        assert r.exitcode == 0
    assert all(errors == [] for _, errors in reports), reports
    assert all(calls > 50 for calls, _ in reports), reports
    assert len(rust_tokens) >= 2
    assert server.count("reuse-detections") == 0
    assert server.count("most-presentations") == 1, "a refresh token was presented twice"
    renewals = server.count("token-requests") - 1
    print(f"\n{sum(c for c, _ in reports)} Python calls, {len(rust_tokens)} Rust runs, "
          f"{renewals} renewals, no refresh token presented twice")
    assert 3 <= renewals <= 12, f"{renewals} renewals in 6 s of 2 s tokens"
