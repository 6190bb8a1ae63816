"""Every grant and every client-authentication method against the development
authorization server, through the package's typed API."""

from __future__ import annotations

import dataclasses
import time

import pytest

import gateway_auth as ga
from conftest import (BASIC_CLIENT_ID, JWT_BEARER_ISSUER, JWT_ES256_CLIENT_ID,
                      JWT_RS256_CLIENT_ID, MTLS_CLIENT_ID, PASSWORD, POST_CLIENT_ID,
                      POST_CLIENT_SECRET, PUBLIC_CLIENT_ID, USERNAME, DevServer)


def authenticated_clients(server: DevServer) -> dict[str, ga.Client]:
    """One client per authentication method the server verifies."""
    mtls = ga.TrustSpec(server.ca_pem, server.read("mtls-client.crt"),
                        server.read("mtls-client.key"))
    return {
        "client_secret_basic": server.client(),
        "client_secret_post": server.client(POST_CLIENT_ID, ga.ClientSecretPost(POST_CLIENT_SECRET)),
        "private_key_jwt RS256": server.client(JWT_RS256_CLIENT_ID, ga.PrivateKeyJwt(
            ga.SigningKey(ga.JwtAlgorithm.RS256, server.read("jwt-rs256-client.key")))),
        "private_key_jwt ES256": server.client(JWT_ES256_CLIENT_ID, ga.PrivateKeyJwt(
            ga.SigningKey(ga.JwtAlgorithm.ES256, server.read("jwt-es256-client.key")))),
        "tls_client_auth": server.client(MTLS_CLIENT_ID, ga.TlsClientAuth(), trust=mtls),
    }


def test_every_client_authentication_method_obtains_a_token(plugin: ga.Plugin,
                                                             dev_server: DevServer) -> None:
    for method, client in authenticated_clients(dev_server).items():
        token = plugin.request_token(client, ga.ClientCredentials())
        assert token.token_type == "Bearer", method
        assert token.access_token, method
        assert token.expires_at is not None and token.expires_at > time.time(), method
    assert dev_server.count("token-requests") == 5


def test_a_client_with_a_fixed_dpop_key_signs_its_token_requests(plugin: ga.Plugin,
                                                                  dev_server: DevServer) -> None:
    # The development server ignores the proof; what is shown is that both bindings
    # reach the plugin, and a per-session one is refused without a session.
    key = ga.SigningKey(ga.JwtAlgorithm.ES256, dev_server.read("jwt-es256-client.key"))
    client = dataclasses.replace(dev_server.client(), dpop=ga.FixedDpopKey(key))
    assert plugin.request_token(client, ga.ClientCredentials()).access_token
    per_session = dataclasses.replace(dev_server.client(), dpop=ga.PerSessionDpopKey())
    with pytest.raises(ga.ConfigError, match="fixed DPoP key"):
        plugin.request_token(per_session, ga.ClientCredentials())


def test_a_wrong_secret_is_a_protocol_error_with_the_servers_code(plugin: ga.Plugin,
                                                                  dev_server: DevServer) -> None:
    client = dev_server.client(auth=ga.ClientSecretBasic("not the secret"))
    with pytest.raises(ga.ProtocolError) as caught:
        plugin.request_token(client, ga.ClientCredentials())
    assert (caught.value.status, caught.value.error) == (401, "invalid_client")
    assert "not the secret" not in str(caught.value)


def test_the_mtls_client_without_its_certificate_is_refused(plugin: ga.Plugin,
                                                            dev_server: DevServer) -> None:
    client = dev_server.client(MTLS_CLIENT_ID, ga.TlsClientAuth())
    with pytest.raises(ga.OAuthError):
        plugin.request_token(client, ga.ClientCredentials())


def test_password_then_refresh_rotates_and_the_old_refresh_token_is_refused(
        plugin: ga.Plugin, dev_server: DevServer) -> None:
    client = dev_server.client()
    first = plugin.request_token(client, ga.Password(USERNAME, PASSWORD))
    assert first.refresh_token
    second = plugin.request_token(client, ga.RefreshToken(first.refresh_token))
    assert second.refresh_token and second.refresh_token != first.refresh_token
    with pytest.raises(ga.ProtocolError) as caught:
        plugin.request_token(client, ga.RefreshToken(first.refresh_token))
    assert caught.value.error == "invalid_grant"


def test_token_exchange_and_jwt_bearer_grants_obtain_tokens(plugin: ga.Plugin,
                                                            dev_server: DevServer) -> None:
    client = dev_server.client()
    subject = plugin.request_token(dev_server.client(POST_CLIENT_ID, ga.ClientSecretPost(
        POST_CLIENT_SECRET)), ga.ClientCredentials()).access_token
    exchanged = plugin.request_token(client, ga.TokenExchange(subject))
    assert exchanged.issued_token_type == "urn:ietf:params:oauth:token-type:access_token"
    assertion = dev_server.command(f"assertion {USERNAME}")
    assert plugin.request_token(client, ga.JwtBearer(assertion)).access_token


def test_sessions_of_every_grant_that_needs_no_person_serve_a_cached_token(
        plugin: ga.Plugin, dev_server: DevServer) -> None:
    client = dev_server.client()
    subject = plugin.request_token(client, ga.ClientCredentials()).access_token
    refresh = plugin.request_token(client, ga.Password(USERNAME, PASSWORD)).refresh_token
    assert refresh
    signer = ga.AssertionSigner(
        ga.SigningKey(ga.JwtAlgorithm.ES256, dev_server.read("jwt-bearer-issuer.key")),
        issuer=JWT_BEARER_ISSUER, subject=USERNAME, audience=dev_server.token_endpoint)
    grants: dict[str, ga.SessionGrant] = {
        "client-credentials": ga.ClientCredentials(),
        "password": ga.Password(USERNAME, PASSWORD),
        "token-exchange": ga.TokenExchange(subject),
        "jwt-bearer": ga.JwtBearer(dev_server.command(f"assertion {USERNAME}")),
        "signed-jwt-bearer": ga.SignedJwtBearer(signer),
        "refresh-token": ga.RefreshToken(refresh),
    }
    before = dev_server.count("token-requests")
    for key, grant in grants.items():
        plugin.open_session(key, client, grant)
        token = plugin.access_token(key)
        assert plugin.access_token(key) == token, key
        status = plugin.session_status(key)
        assert status is not None and status.phase is ga.SessionPhase.VALID, key
    assert dev_server.count("token-requests") == before + len(grants)


def test_authorization_code_with_pkce_completes_once(plugin: ga.Plugin,
                                                    dev_server: DevServer) -> None:
    client = dev_server.client(PUBLIC_CLIENT_ID, ga.NoClientAuth())
    plugin.open_session("user-1", client, ga.AuthorizationCodeFlow())
    authorization = plugin.begin_authorization("user-1")
    assert "code_challenge_method=S256" in authorization.url
    assert authorization.expires_at > time.time()
    status = plugin.session_status("user-1")
    assert status is not None and status.phase is ga.SessionPhase.AUTHORIZING

    code, state = dev_server.authorize(authorization.url)
    assert state == authorization.state
    with pytest.raises(ga.OAuthError):
        plugin.complete_authorization("user-1", "not-the-state", code)
    token = plugin.complete_authorization("user-1", state, code)
    assert token.refresh_token is None, "sessions keep their refresh token"
    assert plugin.access_token("user-1").access_token == token.access_token
    with pytest.raises(ga.OAuthError):
        plugin.complete_authorization("user-1", state, code)
    status = plugin.session_status("user-1")
    assert status is not None
    assert (status.phase, status.has_refresh_token) == (ga.SessionPhase.VALID, True)


def test_an_authorization_code_redeemed_by_request_token_gives_a_token(
        plugin: ga.Plugin, dev_server: DevServer) -> None:
    # The session hands out the URL; the one-off grant redeems a code of another
    # authorization, as a gateway that keeps its own PKCE verifier would.
    import base64
    import hashlib
    import urllib.parse
    verifier = "v" * 64
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
    url = dev_server.issuer + "/authorize?" + urllib.parse.urlencode({
        "response_type": "code", "client_id": PUBLIC_CLIENT_ID,
        "redirect_uri": "https://gateway.example/callback", "state": "s1",
        "code_challenge": challenge.decode(), "code_challenge_method": "S256"})
    code, _ = dev_server.authorize(url)
    client = dev_server.client(PUBLIC_CLIENT_ID, ga.NoClientAuth())
    token = plugin.request_token(client, ga.AuthorizationCode(code, verifier))
    assert token.access_token and token.refresh_token


def test_device_authorization_polls_until_the_user_approves(plugin: ga.Plugin,
                                                           dev_server: DevServer) -> None:
    assert dev_server.command("device-interval 1") == "ok"
    client = dev_server.client(PUBLIC_CLIENT_ID, ga.NoClientAuth())
    plugin.open_session("tv", client, ga.DeviceFlow())
    device = plugin.begin_device_authorization("tv")
    assert device.interval_seconds == 1
    assert device.verification_uri.startswith(dev_server.issuer)
    assert plugin.poll_device_authorization("tv") is None
    assert dev_server.command(f"approve {device.user_code}") == "true"
    time.sleep(1.1)
    token = plugin.poll_device_authorization("tv")
    assert token is not None
    assert plugin.access_token("tv").access_token == token.access_token


def test_a_device_code_redeemed_by_request_token_before_approval_is_pending(
        plugin: ga.Plugin, dev_server: DevServer) -> None:
    # The one-off device-code grant: the server says the user has not finished yet.
    client = dev_server.client(PUBLIC_CLIENT_ID, ga.NoClientAuth())
    with pytest.raises(ga.ProtocolError) as caught:
        plugin.request_token(client, ga.DeviceCode("not-a-device-code"))
    assert caught.value.error in ("invalid_grant", "expired_token", "authorization_pending")


def test_endpoints_are_discovered_from_the_issuer_alone(plugin: ga.Plugin,
                                                       dev_server: DevServer) -> None:
    client = ga.Client(BASIC_CLIENT_ID, ga.ClientSecretBasic("s3c:r%t pa ss"),
                       trust=dev_server.trust, issuer=dev_server.issuer)
    assert plugin.request_token(client, ga.ClientCredentials()).access_token


def test_revoke_ends_the_session(plugin: ga.Plugin, dev_server: DevServer) -> None:
    plugin.open_session("s", dev_server.client(), ga.Password(USERNAME, PASSWORD))
    plugin.access_token("s")
    plugin.revoke("s")
    status = plugin.session_status("s")
    assert status is None or status.phase is not ga.SessionPhase.VALID


def test_a_closed_session_is_unknown(plugin: ga.Plugin, dev_server: DevServer) -> None:
    plugin.open_session("gw", dev_server.client(), ga.ClientCredentials())
    plugin.access_token("gw")
    plugin.close_session("gw")
    assert plugin.session_status("gw") is None
    with pytest.raises(ga.ConfigError):
        plugin.access_token("gw")


def test_a_client_whose_deadline_does_not_fit_the_call_timeout_is_refused_before_sending(
        dev_server: DevServer) -> None:
    with ga.Plugin(allow=["127.0.0.1"], call_timeout=5.0) as plugin:
        client = dev_server.client(timeout_ms=3000)
        with pytest.raises(ga.ConfigError, match="lease margin"):
            plugin.request_token(client, ga.ClientCredentials())
        with pytest.raises(ga.ConfigError, match="lease margin"):
            plugin.open_session("gw", client, ga.ClientCredentials())
        plugin.open_session("gw", dev_server.client(timeout_ms=2900), ga.ClientCredentials())
        with pytest.raises(ga.ConfigError):
            plugin.set_call_timeout(4.0)
        assert plugin.call_timeout == 5.0
    assert dev_server.count("token-requests") == 0


def test_renew_token_replaces_a_token_the_upstream_refused(plugin: ga.Plugin,
                                                          dev_server: DevServer) -> None:
    plugin.open_session("gw", dev_server.client(), ga.ClientCredentials())
    refused = plugin.access_token("gw")
    renewed = plugin.renew_token("gw", refused)
    assert renewed.access_token != refused.access_token
    assert plugin.access_token("gw").access_token == renewed.access_token
    # Renewed already: a second caller holding the refused token gets the new one.
    assert plugin.renew_token("gw", refused).access_token == renewed.access_token


def test_secrets_appear_in_no_repr() -> None:
    client = ga.Client("gw", ga.ClientSecretBasic("hunter2"),
                       trust=ga.TrustSpec("ca", "cert", "private-key"))
    grant = ga.Password("alice", "pa55word")
    token = ga.Token("access-secret", "Bearer", None, (), "refresh-secret", "id-secret")
    registration = ga.Registration("dyn", "registered-secret", None, "client_secret_basic",
                                   ga.RegistrationSource.REGISTERED)
    text = (repr(client) + repr(grant) + repr(token) + repr(ga.RefreshToken("rt-secret"))
            + repr(registration))
    for secret in ("hunter2", "private-key", "pa55word", "access-secret", "refresh-secret",
                   "id-secret", "rt-secret", "registered-secret"):
        assert secret not in text
