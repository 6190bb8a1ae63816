"""A Python and a Rust process share one session through one store (Redis, or a SQLite
file): each continues from the other's tokens, and a rotated refresh token is
presented once (the development server detects reuse and would revoke the lineage)."""

from __future__ import annotations

import os
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
