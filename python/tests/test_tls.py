"""The TLS cache and sans-IO TLS sessions against Python TLS servers on 127.0.0.1."""

from __future__ import annotations

import socket

import pytest

import gateway_auth as ga
from conftest import CertAuthority, TlsServer, drive, http_ok


@pytest.fixture(scope="module")
def ca() -> CertAuthority:
    return CertAuthority("upstream")


@pytest.fixture
def server(ca: CertAuthority):  # type: ignore[no-untyped-def]
    s = TlsServer(ca, http_ok(b"hello from upstream"))
    yield s
    s.close()


def get(plugin: ga.Plugin, spec: ga.TrustSpec, port: int) -> tuple[bytes, ga.TlsInfo]:
    """One GET through a plugin TLS session: the answer and what was negotiated."""
    profile = plugin.prepare(spec)
    with plugin.connect(profile.id, "127.0.0.1", ["http/1.1"]) as session, \
            plugin.open_socket("127.0.0.1", port, 5.0) as sock:
        answer = drive(session, sock, b"GET / HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n")
        return answer, session.info()


def test_a_get_through_a_tls_session_reaches_the_upstream(plugin: ga.Plugin, ca: CertAuthority,
                                                          server: TlsServer) -> None:
    answer, info = get(plugin, ga.TrustSpec(ca.pem), server.port)
    assert answer.startswith(b"HTTP/1.1 200 OK")
    assert answer.endswith(b"hello from upstream")
    assert info.version == "TLSv1_3" and info.alpn == "http/1.1" and not info.resumed
    assert server.requests[0].startswith(b"GET / HTTP/1.1")


def test_a_second_connection_with_the_same_profile_resumes(plugin: ga.Plugin, ca: CertAuthority,
                                                          server: TlsServer) -> None:
    spec = ga.TrustSpec(ca.pem)
    first = get(plugin, spec, server.port)[1]
    second = get(plugin, spec, server.port)[1]
    assert (first.resumed, second.resumed) == (False, True)
    metrics = plugin.metrics()
    assert (metrics.handshakes_full, metrics.handshakes_resumed) == (1, 1)


def test_a_server_of_another_ca_is_refused_by_name_before_any_request(
        plugin: ga.Plugin, server: TlsServer) -> None:
    stranger = CertAuthority("stranger")
    with pytest.raises(ga.PeerCertificateError):
        get(plugin, ga.TrustSpec(stranger.pem), server.port)
    assert server.requests == []


def test_a_wrong_ca_for_the_token_endpoint_is_an_oauth_tls_error(plugin: ga.Plugin,
                                                                 dev_server) -> None:  # type: ignore[no-untyped-def]
    client = dev_server.client(trust=ga.TrustSpec(CertAuthority("not the issuer's").pem))
    with pytest.raises(ga.OAuthTlsError):
        plugin.request_token(client, ga.ClientCredentials())
    assert dev_server.count("token-requests") == 0


def test_mutual_tls_presents_the_client_certificate(plugin: ga.Plugin, ca: CertAuthority) -> None:
    client_ca = CertAuthority("clients")
    server = TlsServer(ca, http_ok(b"mtls ok"), client_ca=client_ca)
    try:
        cert, key = client_ca.issue("gateway", client=True)
        spec = ga.TrustSpec(ca.pem, cert, key)
        assert plugin.prepare(spec).mutual_tls
        answer, _ = get(plugin, spec, server.port)
        assert answer.endswith(b"mtls ok")
        # Without the certificate the server ends the handshake with an alert.
        with pytest.raises((ga.PeerAlertError, ga.TlsProtocolError)):
            get(plugin, ga.TrustSpec(ca.pem), server.port)
    finally:
        server.close()


def test_bad_trust_material_is_refused_with_its_own_exception(plugin: ga.Plugin,
                                                              ca: CertAuthority) -> None:
    cert, key = ca.issue("gateway", client=True)
    _, other_key = ca.issue("other", client=True)
    cases = [
        (ga.TrustSpec(""), ga.NoCertificatesError),
        (ga.TrustSpec("not pem at all"), ga.MalformedPemError),
        (ga.TrustSpec(ca.pem, client_certificate=cert), ga.CertificateWithoutKeyError),
        (ga.TrustSpec(ca.pem, client_key=key), ga.KeyWithoutCertificateError),
        (ga.TrustSpec(ca.pem, cert, other_key), ga.KeyMismatchError),
        (ga.TrustSpec("x" * (4 << 20)), ga.TooLargeError),
    ]
    for spec, error in cases:
        with pytest.raises(error):
            plugin.prepare(spec)
    assert plugin.stats().rejected == len(cases)
    assert plugin.stats().size == 0


def test_the_same_ca_in_other_pem_text_is_one_cache_entry(plugin: ga.Plugin, ca: CertAuthority) -> None:
    first = plugin.prepare(ga.TrustSpec(ca.pem))
    rewrapped = ga.TrustSpec("\n\n" + ca.pem.replace("\n", "\r\n"))
    second = plugin.prepare(rewrapped)
    assert (first.id, first.cached, second.cached) == (second.id, False, True)
    assert first.anchors == 1 and not first.mutual_tls
    assert first.not_after_datetime is not None


def test_a_prepared_profile_is_found_by_its_id_until_it_is_evicted(plugin: ga.Plugin) -> None:
    plugin.configure(ga.Settings(capacity=1))
    first, second = CertAuthority("by-id-1"), CertAuthority("by-id-2")
    built = plugin.prepare(ga.TrustSpec(first.pem))
    found = plugin.lookup(built.id)
    assert (found.id, found.cached, found.anchors) == (built.id, True, built.anchors)
    assert plugin.stats().hits == 1
    plugin.prepare(ga.TrustSpec(second.pem))
    with pytest.raises(ga.UnknownProfileError):
        plugin.lookup(built.id)


def test_the_cache_evicts_the_least_recently_used_entry_one_at_a_time(plugin: ga.Plugin) -> None:
    plugin.configure(ga.Settings(capacity=3))
    cas = [CertAuthority(f"lru-{i}") for i in range(4)]
    ids = [plugin.prepare(ga.TrustSpec(c.pem)).id for c in cas[:3]]
    plugin.prepare(ga.TrustSpec(cas[0].pem))  # the first is now the most recent
    plugin.prepare(ga.TrustSpec(cas[3].pem))  # evicts the second
    stats = plugin.stats()
    assert (stats.size, stats.capacity, stats.evictions) == (3, 3, 1)
    assert plugin.prepare(ga.TrustSpec(cas[0].pem)).cached
    with pytest.raises(ga.UnknownProfileError):
        plugin.connect(ids[1], "127.0.0.1")
    assert plugin.invalidate(ids[2]) and not plugin.invalidate(ids[2])
    plugin.clear()
    assert plugin.stats().size == 0


def test_a_session_survives_the_eviction_of_its_profile(plugin: ga.Plugin, ca: CertAuthority,
                                                        server: TlsServer) -> None:
    profile = plugin.prepare(ga.TrustSpec(ca.pem))
    with plugin.connect(profile.id, "127.0.0.1", ["http/1.1"]) as session:
        plugin.clear()
        with plugin.open_socket("127.0.0.1", server.port, 5.0) as sock:
            answer = drive(session, sock, b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
    assert answer.endswith(b"hello from upstream")


def test_a_freed_session_refuses_further_use(plugin: ga.Plugin, ca: CertAuthority) -> None:
    session = plugin.connect(plugin.prepare(ga.TrustSpec(ca.pem)).id, "127.0.0.1")
    assert session.close()  # close_notify bytes
    assert session.freed
    with pytest.raises(ga.TlsClosedError):
        session.advance(b"", b"")
    session.free()  # idempotent


def test_garbage_from_the_peer_is_a_tls_protocol_error(plugin: ga.Plugin, ca: CertAuthority) -> None:
    session = plugin.connect(plugin.prepare(ga.TrustSpec(ca.pem)).id, "127.0.0.1")
    session.advance()
    with pytest.raises(ga.TlsProtocolError):
        session.advance(b"HTTP/1.1 400 Bad Request\r\n\r\n" * 10)
    with pytest.raises(ga.TlsClosedError):
        session.advance()
    session.free()


def test_a_bad_server_name_is_refused(plugin: ga.Plugin, ca: CertAuthority) -> None:
    with pytest.raises(ga.BadServerNameError):
        plugin.connect(plugin.prepare(ga.TrustSpec(ca.pem)).id, "not a name!")


def test_open_socket_refuses_what_the_egress_policy_does_not_allow() -> None:
    with ga.Plugin(allow=["example.invalid"]) as plugin:
        with pytest.raises(ga.EgressDenied):
            plugin.open_socket("127.0.0.1", 443, 1.0)
    with ga.Plugin(allow=["localhost"]) as plugin:
        # A name that resolves to a loopback address needs a rule naming the address.
        with pytest.raises(ga.EgressDenied, match="special-purpose"):
            plugin.open_socket("localhost", 9, 1.0)
    with ga.Plugin(allow=["127.0.0.1"]) as plugin:
        closed = socket.create_server(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        closed.close()
        with pytest.raises(ga.NetworkError) as caught:
            plugin.open_socket("127.0.0.1", port, 1.0)
        assert caught.value.net.kind is ga.NetErrorKind.CONNECT


def test_a_resolver_is_held_to_the_egress_policy_after_resolution(ca: CertAuthority,
                                                                  server: TlsServer) -> None:
    # A name the gateway's own resolver maps into the private network is refused
    # unless a rule names the address too.
    resolve = lambda host, port: ["127.0.0.1"] if host == "upstream.test" else []  # noqa: E731
    with ga.Plugin(allow=["upstream.test"], resolver=resolve) as plugin:
        with pytest.raises(ga.EgressDenied, match="special-purpose"):
            plugin.open_socket("upstream.test", server.port, 1.0)
    with ga.Plugin(allow=["upstream.test", "127.0.0.1"], resolver=resolve) as plugin:
        plugin.open_socket("upstream.test", server.port, 1.0).close()
        with pytest.raises(ga.NetworkError) as caught:
            plugin.open_socket("other.test", server.port, 1.0)
        assert caught.value.net.kind is ga.NetErrorKind.DENIED  # not in the allow-list


def test_transport_stats_count_what_the_plugins_connections_moved(plugin: ga.Plugin,
                                                                  dev_server) -> None:  # type: ignore[no-untyped-def]
    assert plugin.transport_stats() == ga.TransportStats(0, 0, 0)
    plugin.request_token(dev_server.client(), ga.ClientCredentials())
    stats = plugin.transport_stats()
    assert stats.connections == 1 and stats.bytes_sent > 200 and stats.bytes_received > 200


def test_sessions_dropped_without_being_freed_are_freed_by_the_next_call(ca: CertAuthority) -> None:
    # A 4 MiB instance holds a few hundred sessions; thousands dropped unfreed would
    # exhaust it if nothing freed them.
    with ga.Plugin(allow=["127.0.0.1"], memory_limit=4 << 20) as plugin:
        profile = plugin.prepare(ga.TrustSpec(ca.pem))
        for _ in range(3000):
            plugin.connect(profile.id, "127.0.0.1").advance()
        assert plugin.generation == 0
        kept = plugin.connect(profile.id, "127.0.0.1")
        assert kept.advance().outgoing
        kept.free()
