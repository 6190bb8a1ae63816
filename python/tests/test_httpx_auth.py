"""gateway_auth.httpx.PluginAuth: tokens from a plugin session on httpx requests,
renewed once when the upstream says ``invalid_token``. Tokens come from the
development authorization server; the upstream is a Python ``ssl`` server."""

from __future__ import annotations

import hashlib
import pathlib
import sys
import threading
from typing import Iterator, List, Optional, Tuple

import httpx
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "bench"))

from servers import HOST, DevServer, Upstream  # noqa: E402

from gateway_auth import (  # noqa: E402
    AsyncPlugin,
    Client,
    ClientCredentials,
    ClientSecretPost,
    Password,
    Plugin,
    PluginPool,
    RefreshToken,
    TrustSpec,
)
from gateway_auth.httpx import AsyncPluginTransport, PluginAuth, PluginTransport  # noqa: E402

KEY = "gateway-7"
EXPIRED = (("www-authenticate", 'Bearer error="invalid_token", error_description="the token expired"'),)


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    with DevServer(tmp_path_factory.mktemp("dev")) as d:
        yield d


@pytest.fixture
def upstream(tmp_path: pathlib.Path) -> Iterator[Upstream]:
    with Upstream("protected", tmp_path) as u:
        yield u


def client_of(dev: DevServer) -> Client:
    return Client(DevServer.POST_CLIENT_ID, ClientSecretPost(DevServer.POST_CLIENT_SECRET),
                  trust=TrustSpec(dev.ca_pem), token_endpoint=dev.token_endpoint)


class Gate:
    """What the upstream's ``/private`` answers: 401 ``invalid_token`` for the first
    ``reject`` requests (or to every request carrying a token in ``revoked``), 200
    otherwise; it records every Authorization header."""

    def __init__(self, reject: int = 0, challenge: Tuple[Tuple[str, str], ...] = EXPIRED) -> None:
        self.reject = reject
        self.challenge = challenge
        self.seen: List[Optional[str]] = []
        self._lock = threading.Lock()

    def __call__(self, header: Optional[str]) -> Tuple[int, Tuple[Tuple[str, str], ...], bytes]:
        with self._lock:
            self.seen.append(header)
            if len(self.seen) <= self.reject:
                return 401, self.challenge, b"no"
        return 200, (), b"welcome"


def test_the_session_token_is_sent_as_the_authorization_header(dev: DevServer, upstream: Upstream) -> None:
    upstream.authorize = gate = Gate()
    with Plugin(allow=[HOST]) as plugin:
        plugin.open_session(KEY, client_of(dev), ClientCredentials())
        transport = PluginTransport(plugin, {upstream.origin: TrustSpec(upstream.ca_pem)})
        with httpx.Client(transport=transport, auth=PluginAuth(plugin, KEY)) as http:
            assert http.get(upstream.url("/private")).text == "welcome"
            assert http.get(upstream.url("/private")).text == "welcome"
        token = plugin.access_token(KEY)
    assert gate.seen == [f"{token.token_type} {token.access_token}"] * 2  # cached, not re-requested


def test_a_401_invalid_token_renews_the_token_once_and_retries_once(dev: DevServer, upstream: Upstream) -> None:
    upstream.authorize = gate = Gate(reject=1)
    with Plugin(allow=[HOST]) as plugin:
        client = client_of(dev)
        plugin.open_session(KEY, client, ClientCredentials())
        auth = PluginAuth(plugin, KEY)
        with httpx.Client(transport=PluginTransport(plugin, {upstream.origin: TrustSpec(upstream.ca_pem)}),
                          auth=auth) as http:
            r = http.post(upstream.url("/private"), content=b"the same body twice")
        renewed = plugin.access_token(KEY)
    assert r.status_code == 200
    assert r.text == f"welcome {hashlib.sha256(b'the same body twice').hexdigest()}"  # the body, resent
    assert len(gate.seen) == 2
    first, second = gate.seen
    assert first != second  # the rejected token was not sent again
    assert second == renewed.authorization_header


def test_a_401_invalid_token_on_a_session_living_on_a_refresh_token_renews_by_refresh(
        dev: DevServer, upstream: Upstream) -> None:
    upstream.authorize = gate = Gate(reject=1)
    with Plugin(allow=[HOST]) as plugin:
        client = client_of(dev)
        first = plugin.request_token(client, Password("alice", "wonder land&=%"))
        assert first.refresh_token
        plugin.open_session(KEY, client, RefreshToken(first.refresh_token))
        held = plugin.access_token(KEY)
        transport = PluginTransport(plugin, {upstream.origin: TrustSpec(upstream.ca_pem)})
        with httpx.Client(transport=transport, auth=PluginAuth(plugin, KEY)) as http:
            r = http.get(upstream.url("/private"))
        renewed = plugin.access_token(KEY)
    assert r.status_code == 200
    assert gate.seen == [held.authorization_header, renewed.authorization_header]
    assert renewed.access_token != held.access_token


def test_a_second_401_is_returned_without_another_renewal(dev: DevServer, upstream: Upstream) -> None:
    upstream.authorize = gate = Gate(reject=10)
    with Plugin(allow=[HOST]) as plugin:
        client = client_of(dev)
        plugin.open_session(KEY, client, ClientCredentials())
        auth = PluginAuth(plugin, KEY)
        with httpx.Client(transport=PluginTransport(plugin, {upstream.origin: TrustSpec(upstream.ca_pem)}),
                          auth=auth) as http:
            r = http.get(upstream.url("/private"))
    assert r.status_code == 401
    assert len(gate.seen) == 2


def test_a_401_for_another_reason_is_not_a_reason_to_renew(dev: DevServer, upstream: Upstream) -> None:
    upstream.authorize = gate = Gate(reject=1, challenge=(("www-authenticate", 'Bearer realm="api"'),))
    with Plugin(allow=[HOST]) as plugin:
        client = client_of(dev)
        plugin.open_session(KEY, client, ClientCredentials())
        auth = PluginAuth(plugin, KEY)
        with httpx.Client(transport=PluginTransport(plugin, {upstream.origin: TrustSpec(upstream.ca_pem)}),
                          auth=auth) as http:
            assert http.get(upstream.url("/private")).status_code == 401
    assert len(gate.seen) == 1


async def test_async_client_renews_once_on_invalid_token(dev: DevServer, upstream: Upstream) -> None:
    upstream.authorize = gate = Gate(reject=1)
    async with AsyncPlugin(allow=[HOST]) as plugin:
        client = client_of(dev)
        await plugin.open_session(KEY, client, ClientCredentials())
        auth = PluginAuth(plugin, KEY)
        transport = AsyncPluginTransport(plugin, {upstream.origin: TrustSpec(upstream.ca_pem)})
        async with httpx.AsyncClient(transport=transport, auth=auth) as http:
            r = await http.get(upstream.url("/private"))
            assert (await http.get(upstream.url("/private"))).status_code == 200
        renewed = await plugin.access_token(KEY)
    assert r.status_code == 200
    assert len(gate.seen) == 3
    assert gate.seen[0] != gate.seen[1] == gate.seen[2] == renewed.authorization_header


def test_a_plugin_pool_supplies_the_tokens_while_a_plugin_carries_the_tls(dev: DevServer, upstream: Upstream) -> None:
    upstream.authorize = gate = Gate(reject=1)
    with PluginPool(2, allow=[HOST]) as pool, Plugin(allow=[HOST]) as tls:
        pool.open_session(KEY, client_of(dev), ClientCredentials())
        transport = PluginTransport(tls, {upstream.origin: TrustSpec(upstream.ca_pem)})
        with httpx.Client(transport=transport, auth=PluginAuth(pool, KEY)) as http:
            assert http.get(upstream.url("/private")).text == "welcome"
        renewed = pool.access_token(KEY)
    assert len(gate.seen) == 2 and gate.seen[1] == renewed.authorization_header
