"""Every ``oauth-error`` case reaches Python as its own exception with its fields,
from real answers of token endpoints on 127.0.0.1."""

from __future__ import annotations

import socket
from typing import Iterator

import pytest

import gateway_auth as ga
from conftest import CertAuthority, DevServer, TlsServer


@pytest.fixture(scope="module")
def ca() -> CertAuthority:
    return CertAuthority("token-endpoints")


def answering(ca: CertAuthority, status: str, content_type: str, body: bytes,
              extra: str = "") -> TlsServer:
    head = (f"HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: "
            f"{len(body)}\r\nconnection: close\r\n{extra}\r\n").encode()
    return TlsServer(ca, lambda _request: head + body)


def client_of(server: TlsServer, ca: CertAuthority) -> ga.Client:
    return ga.Client("gw", ga.ClientSecretBasic("secret-value"), trust=ga.TrustSpec(ca.pem),
                     token_endpoint=f"https://127.0.0.1:{server.port}/token", timeout_ms=3000)


@pytest.fixture
def servers() -> Iterator[list[TlsServer]]:
    started: list[TlsServer] = []
    yield started
    for s in started:
        s.close()


def test_a_503_without_an_error_body_is_an_http_status_error_with_retry_after(
        plugin: ga.Plugin, ca: CertAuthority, servers: list[TlsServer]) -> None:
    server = answering(ca, "503 Service Unavailable", "text/plain", b"down for maintenance",
                       "retry-after: 7\r\n")
    servers.append(server)
    with pytest.raises(ga.HttpStatusError) as caught:
        plugin.request_token(client_of(server, ca), ga.ClientCredentials())
    assert caught.value.status == 503
    assert caught.value.retry_after == 7
    assert "maintenance" in caught.value.snippet


def test_an_rfc6749_error_body_is_a_protocol_error_with_its_fields(
        plugin: ga.Plugin, ca: CertAuthority, servers: list[TlsServer]) -> None:
    body = (b'{"error":"invalid_scope","error_description":"no such scope",'
            b'"error_uri":"https://auth.example/errors/scope"}')
    server = answering(ca, "400 Bad Request", "application/json", body)
    servers.append(server)
    with pytest.raises(ga.ProtocolError) as caught:
        plugin.request_token(client_of(server, ca), ga.ClientCredentials())
    e = caught.value
    assert (e.status, e.error, e.description, e.uri) == (
        400, "invalid_scope", "no such scope", "https://auth.example/errors/scope")


def test_a_200_without_an_access_token_is_an_invalid_response(
        plugin: ga.Plugin, ca: CertAuthority, servers: list[TlsServer]) -> None:
    server = answering(ca, "200 OK", "application/json", b'{"token_type":"Bearer"}')
    servers.append(server)
    with pytest.raises(ga.InvalidResponseError, match="access_token"):
        plugin.request_token(client_of(server, ca), ga.ClientCredentials())


def test_a_redirect_is_not_followed(plugin: ga.Plugin, ca: CertAuthority,
                                    servers: list[TlsServer]) -> None:
    server = answering(ca, "302 Found", "text/plain", b"", "location: https://elsewhere/\r\n")
    servers.append(server)
    with pytest.raises(ga.HttpStatusError) as caught:
        plugin.request_token(client_of(server, ca), ga.ClientCredentials())
    assert caught.value.status == 302


def test_a_refused_connection_is_a_transport_error_then_the_session_backs_off(
        dev_server: DevServer) -> None:
    closed = socket.create_server(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    with ga.Plugin(allow=["127.0.0.1"]) as plugin:
        client = dev_server.client(token_endpoint=f"https://127.0.0.1:{port}/token",
                                   timeout_ms=2000)
        with pytest.raises(ga.TransportError) as caught:
            plugin.request_token(client, ga.ClientCredentials())
        assert caught.value.net.kind is ga.NetErrorKind.CONNECT
        plugin.open_session("gw", client, ga.ClientCredentials())
        with pytest.raises(ga.TransportError):
            plugin.access_token("gw")
        with pytest.raises(ga.BackoffError) as backoff:
            plugin.access_token("gw")
        assert backoff.value.failures >= 1 and backoff.value.retry_at > 0
        status = plugin.session_status("gw")
        assert status is not None and status.phase is ga.SessionPhase.BACKOFF
        assert status.retry_at == backoff.value.retry_at


def test_a_refused_refresh_token_needs_a_person_again(plugin: ga.Plugin,
                                                     dev_server: DevServer) -> None:
    plugin.open_session("gw", dev_server.client(), ga.RefreshToken("not-a-refresh-token"))
    with pytest.raises(ga.AuthorizationRequiredError):
        plugin.access_token("gw")
    status = plugin.session_status("gw")
    assert status is not None and status.phase is ga.SessionPhase.AUTHORIZATION_REQUIRED


class EchoingServer(TlsServer):
    """Answers 500 with the whole request (head and form body) as its body."""

    def _one(self, raw: socket.socket) -> None:
        raw.settimeout(10)
        try:
            with self.context.wrap_socket(raw, server_side=True) as tls:
                request = b""
                while b"\r\n\r\n" not in request:
                    request += tls.recv(65536)
                head, _, body = request.partition(b"\r\n\r\n")
                length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length:"))
                while len(body) < length:
                    body += tls.recv(65536)
                self.requests.append(head + b"\r\n\r\n" + body)
                echoed = head + b"\r\n\r\n" + body
                tls.sendall(b"HTTP/1.1 500 Internal Server Error\r\ncontent-type: text/plain\r\n"
                            b"content-length: %d\r\nconnection: close\r\n\r\n" % len(echoed)
                            + echoed)
        except (OSError, StopIteration):
            pass


def test_no_error_text_carries_the_secrets_a_server_echoes(plugin: ga.Plugin,
                                                           ca: CertAuthority) -> None:
    server = EchoingServer(ca, lambda _: b"")
    try:
        client = ga.Client("gw", ga.ClientSecretPost("secret-value"), trust=ga.TrustSpec(ca.pem),
                           token_endpoint=f"https://127.0.0.1:{server.port}/token",
                           timeout_ms=3000)
        with pytest.raises(ga.HttpStatusError) as caught:
            plugin.request_token(client, ga.Password("alice", "pass-word-value"))
    finally:
        server.close()
    assert b"secret-value" in server.requests[0] and b"pass-word-value" in server.requests[0]
    text = str(caught.value) + repr(vars(caught.value))
    assert caught.value.status == 500
    assert "secret-value" not in text and "pass-word-value" not in text
