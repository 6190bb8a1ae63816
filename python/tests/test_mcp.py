"""Authorizing for a protected resource the way MCP clients do, against oidc-provider and
an MCP-like resource (``js/test/support/mcp_servers.js``, run by Node): the resource's
401 challenge, discovery from it, dynamic registration, an authorization-code session
with the resource indicator, pushed authorization requests, and a 403
``insufficient_scope`` step up, with bearer tokens (the servers offer DPoP but do not
require it) and with a DPoP-bound session."""

from __future__ import annotations

import dataclasses
import http.client
import json
import shutil
import ssl
import subprocess
import threading
import urllib.parse
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest

import gateway_auth as ga
from conftest import LOOPBACK, REPO

JS = REPO / "js"


class McpServers:
    """``node test/support/mcp_servers.js``: the authorization server and the resource,
    told what to do one command line at a time."""

    def __init__(self) -> None:
        node = shutil.which("node")
        if node is None:
            pytest.fail("node is not installed: the MCP servers are a Node program")
        if not (JS / "node_modules" / "oidc-provider").is_dir():
            pytest.fail(f"{JS / 'node_modules'} lacks oidc-provider: run `npm ci` in js/")
        self.process = subprocess.Popen(
            [node, "test/support/mcp_servers.js"], cwd=JS, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert self.process.stdout is not None
        first = self.process.stdout.readline()
        if not first:
            self.stop()
            pytest.fail("the MCP servers did not start (run them by hand to see why)")
        described: Dict[str, Any] = json.loads(first)
        self.issuer: str = described["issuer"]
        self.resource: str = described["resource"]
        self.resource_origin: str = described["resourceOrigin"]
        self.ca_pem: str = described["caPem"]
        self._lock = threading.Lock()

    @property
    def trust(self) -> ga.TrustSpec:
        """Trust in the servers' CA."""
        return ga.TrustSpec(self.ca_pem)

    def command(self, line: str) -> Dict[str, Any]:
        """One command's answer."""
        with self._lock:
            assert self.process.stdin is not None and self.process.stdout is not None
            self.process.stdin.write(line + "\n")
            self.process.stdin.flush()
            answer: Dict[str, Any] = json.loads(self.process.stdout.readline())
            return answer

    def registrations(self) -> int:
        """How many clients registered dynamically so far."""
        return int(self.command("registrations")["registrations"])

    def authorize(self, url: str) -> Dict[str, Any]:
        """Alice logs in and consents at ``url``: the redirect's ``code``, ``state`` and
        ``iss``, or its ``error``."""
        return self.command(f"authorize {url}")

    def get(self, url: str, authorization: Optional[str] = None) -> Tuple[int, List[str], Any]:
        """One GET trusting the servers' CA: the status, the ``WWW-Authenticate`` field
        lines as sent, and the parsed body."""
        status, challenges, _, body = self.fetch(url, authorization)
        return status, challenges, body

    def fetch(self, url: str, authorization: Optional[str] = None,
              proof: Optional[str] = None) -> Tuple[int, List[str], Optional[str], Any]:
        """:meth:`get` with a DPoP proof, if given; the answer's ``DPoP-Nonce`` too."""
        parts = urllib.parse.urlsplit(url)
        context = ssl.create_default_context(cadata=self.ca_pem)
        # The test CA has no authority key identifier, which Python 3.13's strict
        # default refuses; the plugin (rustls) does not need one.
        context.verify_flags &= ~getattr(ssl, "VERIFY_X509_STRICT", 0)
        conn = http.client.HTTPSConnection(parts.hostname or "", parts.port, context=context,
                                           timeout=10)
        try:
            headers = {} if authorization is None else {"authorization": authorization}
            if proof is not None:
                headers["dpop"] = proof
            conn.request("GET", parts.path, headers=headers)
            answer = conn.getresponse()
            return (answer.status, answer.headers.get_all("www-authenticate") or [],
                    answer.headers.get("dpop-nonce"), json.loads(answer.read()))
        finally:
            conn.close()

    def stop(self) -> None:
        """Stops the servers (the process this fixture started)."""
        if self.process.poll() is None:
            try:
                self.command("quit")
                self.process.wait(10)
            except (OSError, ValueError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()


@pytest.fixture(scope="module")
def servers() -> Iterator[McpServers]:
    """The MCP servers, shared by this module's tests (each registers its own clients)."""
    started = McpServers()
    yield started
    started.stop()


def discover(plugin: ga.Plugin, servers: McpServers) -> ga.ResourceAuthorization:
    """The resource's 401 challenge, discovered from."""
    status, challenge, _ = servers.get(servers.resource)
    assert status == 401
    assert len(challenge) == 1 and challenge[0].startswith('Bearer resource_metadata="')
    return plugin.discover_resource(servers.resource, challenge, servers.trust)


def session_client(found: ga.ResourceAuthorization, registration: ga.Registration,
                   redirect_uri: str, trust: ga.TrustSpec) -> ga.Client:
    """The client of a session for what discovery found, as ``registration``."""
    auth: ga.ClientAuth = (ga.NoClientAuth() if registration.client_secret is None
                           else ga.ClientSecretBasic(registration.client_secret))
    return ga.Client(registration.client_id, auth, trust=trust, issuer=found.issuer,
                     redirect_uri=redirect_uri, scopes=found.scopes,
                     resources=(found.resource,))


def assert_pushed(authorization: ga.Authorization) -> None:
    """The authorization request went to the pushed-request endpoint (RFC 9126): the
    URL carries its request_uri, not the parameters."""
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(authorization.url).query))
    assert query.get("request_uri", "").startswith("urn:ietf:params:oauth:request_uri:")
    assert "code_challenge" not in query


def test_discovery_from_the_resources_401_challenge_finds_its_issuer_scopes_and_endpoints(
        plugin: ga.Plugin, servers: McpServers) -> None:
    found = discover(plugin, servers)
    assert found.resource == servers.resource
    assert found.issuer == servers.issuer
    assert found.scopes == ("mcp:read",), "the challenge's scope, not all the resource has"
    assert found.registration_endpoint == f"{servers.issuer}/reg"
    assert found.pushed_authorization_request_endpoint == f"{servers.issuer}/request"
    assert not found.pushed_authorization_required
    assert not found.dpop_required
    assert found.error is None, "a request without credentials gets no error code"
    # One challenge line may be given as a string.
    _, challenge, _ = servers.get(servers.resource)
    assert plugin.discover_resource(servers.resource, challenge[0], servers.trust) == found


def test_a_public_client_registered_once_for_two_gateways_sharing_a_store_authorizes_through_a_pushed_request_and_calls_the_resource(  # noqa: E501
        _warm: None, servers: McpServers) -> None:
    store = ga.MemoryStore()
    with ga.Plugin(allow=LOOPBACK, store=store) as first, \
            ga.Plugin(allow=LOOPBACK, store=store) as second:
        found = discover(first, servers)
        redirect_uri = "https://gateway.example/public/callback"
        request = ga.RegistrationRequest(found.issuer, (redirect_uri,), servers.trust,
                                         client_name="gateway (public)")
        before = servers.registrations()
        registered = first.register_client(request)
        assert registered.source is ga.RegistrationSource.REGISTERED
        assert registered.token_endpoint_auth_method == "none"
        assert registered.client_secret is None
        reused = second.register_client(request)
        assert reused.source is ga.RegistrationSource.STORED
        assert reused.client_id == registered.client_id
        assert servers.registrations() - before == 1, "one registration at the server"

        first.open_session("mcp-public", session_client(found, registered, redirect_uri,
                                                        servers.trust),
                           ga.AuthorizationCodeFlow())
        authorization = first.begin_authorization("mcp-public")
        assert_pushed(authorization)
        redirect = servers.authorize(authorization.url)
        assert "error" not in redirect, redirect
        token = first.complete_authorization("mcp-public", redirect["state"], redirect["code"],
                                             redirect["iss"])
        assert token.scopes == ("mcp:read",)
        status, _, body = servers.get(servers.resource, token.authorization_header)
        assert status == 200
        assert body["aud"] == servers.resource, "the token is for the resource (RFC 8707)"
        assert body["dpop"] is False


def test_a_dpop_bound_session_signs_with_its_own_key_and_the_resource_takes_its_proofs(
        _warm: None, servers: McpServers) -> None:
    with ga.Plugin(allow=LOOPBACK) as plugin:
        found = discover(plugin, servers)
        redirect_uri = "https://gateway.example/dpop/callback"
        registered = plugin.register_client(
            ga.RegistrationRequest(found.issuer, (redirect_uri,), servers.trust))
        client = dataclasses.replace(
            session_client(found, registered, redirect_uri, servers.trust),
            dpop=ga.PerSessionDpopKey())
        plugin.open_session("mcp-dpop", client, ga.AuthorizationCodeFlow())
        authorization = plugin.begin_authorization("mcp-dpop")
        assert_pushed(authorization)
        redirect = servers.authorize(authorization.url)
        token = plugin.complete_authorization("mcp-dpop", redirect["state"], redirect["code"],
                                              redirect["iss"])
        assert token.token_type == "DPoP"
        bound = f"DPoP {token.access_token}"
        # A bound token presented as a bearer token is refused.
        assert servers.get(servers.resource, f"Bearer {token.access_token}")[0] == 401
        proof = plugin.dpop_proof("mcp-dpop", "GET", servers.resource)
        status, challenge, nonce, _ = servers.fetch(servers.resource, bound, proof)
        assert status == 401 and nonce is not None
        assert any('error="use_dpop_nonce"' in line for line in challenge), challenge
        proof = plugin.dpop_proof("mcp-dpop", "GET", servers.resource, nonce)
        status, _, _, body = servers.fetch(servers.resource, bound, proof)
        assert status == 200, body
        assert body["dpop"] is True and body["aud"] == servers.resource


async def test_a_confidential_client_steps_up_on_a_403_insufficient_scope_and_keeps_its_token_until_the_step_up_completes(  # noqa: E501
        _warm: None, servers: McpServers) -> None:
    async with ga.AsyncPlugin(allow=LOOPBACK) as plugin:
        status, challenge, _ = servers.get(servers.resource)
        assert status == 401
        found = await plugin.discover_resource(servers.resource, challenge, servers.trust)
        redirect_uri = "https://gateway.example/confidential/callback"
        registration = await plugin.register_client(ga.RegistrationRequest(
            found.issuer, (redirect_uri,), servers.trust,
            token_endpoint_auth_method="client_secret_basic"))
        assert registration.token_endpoint_auth_method == "client_secret_basic"
        assert registration.client_secret is not None
        assert registration.client_secret not in repr(registration)

        client = session_client(found, registration, redirect_uri, servers.trust)
        await plugin.open_session("mcp-confidential", client, ga.AuthorizationCodeFlow())
        authorization = await plugin.begin_authorization("mcp-confidential")
        assert_pushed(authorization)
        redirect = servers.authorize(authorization.url)
        token = await plugin.complete_authorization("mcp-confidential", redirect["state"],
                                                    redirect["code"], redirect["iss"])
        assert servers.get(servers.resource, token.authorization_header)[0] == 200
        admin = f"{servers.resource_origin}/mcp/admin"
        status, challenge, _ = servers.get(admin, token.authorization_header)
        assert status == 403

        step_up = await plugin.begin_step_up("mcp-confidential", challenge)
        assert_pushed(step_up)
        held = await plugin.access_token("mcp-confidential")
        assert held.access_token == token.access_token, "served until the step up completes"
        redirect = servers.authorize(step_up.url)
        stronger = await plugin.complete_authorization("mcp-confidential", redirect["state"],
                                                       redirect["code"], redirect["iss"])
        assert sorted(stronger.scopes) == ["mcp:read", "mcp:write"]
        assert servers.get(admin, stronger.authorization_header)[0] == 200


def test_a_step_up_from_a_challenge_other_than_insufficient_scope_is_a_config_error(
        _warm: None, servers: McpServers) -> None:
    with ga.PluginPool(2, allow=LOOPBACK) as pool:
        pool.open_session("mcp-step", ga.Client(
            "unused", trust=servers.trust, issuer=servers.issuer,
            redirect_uri="https://gateway.example/cb"), ga.AuthorizationCodeFlow())
        status, challenge, _ = servers.get(servers.resource, "Bearer not-a-token")
        assert status == 401
        with pytest.raises(ga.ConfigError):
            pool.begin_step_up("mcp-step", challenge)
