//! Connections made with cached configurations: custom CAs, a refused server, mutual
//! TLS, resumption, and the egress policy, through the real component and host.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use gateway_auth_host::NetError;
use gateway_auth_host::{
    Client, ClientAuth, EgressPolicy, Error, Grant, OAuthError, PluginOptions, TrustSpec,
};
use gateway_auth_tests::{TestCa, TokenServer, loopback_plugin, runtime, token_server_client};
use rustls_pki_types::pem::PemObject;

#[test]
fn a_token_endpoint_with_a_custom_ca_is_reached_through_the_cached_configuration() {
    let ca = TestCa::new("upstream-ca");
    let server = TokenServer::start(&ca, None);
    let mut plugin = loopback_plugin();
    let client = token_server_client(&server, TrustSpec::ca(&ca.pem));

    let token = plugin
        .request_token(&client, Grant::ClientCredentials)
        .unwrap();
    assert!(token.access_token.secret().starts_with("tok-"));
    let token = plugin
        .request_token(&client, Grant::ClientCredentials)
        .unwrap();
    assert!(token.access_token.secret().starts_with("tok-"));

    let stats = plugin.stats().unwrap();
    assert_eq!(
        (stats.misses, stats.hits, stats.size),
        (1, 1, 1),
        "built once, reused once"
    );
    assert_eq!(server.seen.handshakes.load(Ordering::SeqCst), 2);
    assert_eq!(
        server.seen.resumed.load(Ordering::SeqCst),
        1,
        "the second connection resumed the first one's TLS session"
    );
}

#[test]
fn a_server_signed_by_another_ca_is_refused_with_a_tls_error() {
    let (ours, theirs) = (TestCa::new("ours"), TestCa::new("theirs"));
    let server = TokenServer::start(&theirs, None);
    let mut plugin = loopback_plugin();
    let result = plugin.request_token(
        &token_server_client(&server, TrustSpec::ca(&ours.pem)),
        Grant::ClientCredentials,
    );
    match result {
        Err(Error::OAuth(OAuthError::Tls(message))) => {
            assert!(message.contains("UnknownIssuer"), "{message}")
        }
        other => panic!("expected a TLS error, got {other:?}"),
    }
    assert_eq!(server.seen.handshakes.load(Ordering::SeqCst), 0);
}

#[test]
fn mutual_tls_presents_the_client_certificate_the_server_demands() {
    let (server_ca, client_ca) = (TestCa::new("server-ca"), TestCa::new("client-ca"));
    let server = TokenServer::start(&server_ca, Some(&client_ca));
    let (cert, key) = client_ca.issue("gateway-client");
    let mut plugin = loopback_plugin();

    let with_identity = token_server_client(
        &server,
        TrustSpec::ca(&server_ca.pem).with_identity(&cert, &key),
    );
    plugin
        .request_token(&with_identity, Grant::ClientCredentials)
        .unwrap();
    let presented = server.seen.client_certificates.lock().unwrap().clone();
    assert_eq!(presented.len(), 1);
    let expected = rustls_pki_types::CertificateDer::from_pem_slice(cert.as_bytes()).unwrap();
    assert_eq!(presented[0], expected.to_vec());

    let without = token_server_client(&server, TrustSpec::ca(&server_ca.pem));
    let result = plugin.request_token(&without, Grant::ClientCredentials);
    assert!(
        matches!(&result, Err(Error::OAuth(OAuthError::Tls(m))) if m.contains("CertificateRequired")),
        "{result:?}"
    );
}

#[test]
fn a_destination_outside_the_egress_policy_is_denied_before_any_packet() {
    let ca = TestCa::new("egress");
    let server = TokenServer::start(&ca, None);
    let mut plugin = runtime()
        .plugin(PluginOptions {
            egress: Arc::new(EgressPolicy::parse(["auth.example.com:443"]).unwrap()),
            ..PluginOptions::default()
        })
        .unwrap();
    let result = plugin.request_token(
        &token_server_client(&server, TrustSpec::ca(&ca.pem)),
        Grant::ClientCredentials,
    );
    assert!(
        matches!(
            &result,
            Err(Error::OAuth(OAuthError::Transport(NetError::Denied(_))))
        ),
        "{result:?}"
    );
    assert_eq!(
        server.seen.accepted.load(Ordering::SeqCst),
        0,
        "no connection was attempted"
    );
}

#[test]
fn a_wildcard_policy_refuses_ipv6_forms_of_private_addresses() {
    let mut plugin = runtime()
        .plugin(PluginOptions {
            egress: Arc::new(EgressPolicy::parse(["*"]).unwrap()),
            ..PluginOptions::default()
        })
        .unwrap();
    // NAT64, 6to4 and IPv4-mapped forms of 10.0.0.1 and 127.0.0.1.
    for host in [
        "[64:ff9b::a00:1]",
        "[2002:7f00:1::1]",
        "[::ffff:10.0.0.1]",
        "[fec0::1]",
    ] {
        let mut c = Client::new(
            "egress",
            ClientAuth::ClientSecretBasic("s".into()),
            TrustSpec::web_roots(),
        );
        c.token_endpoint = Some(format!("https://{host}/token"));
        let result = plugin.request_token(&c, Grant::ClientCredentials);
        assert!(
            matches!(
                &result,
                Err(Error::OAuth(OAuthError::Transport(NetError::Denied(m)))) if m.contains("special-purpose")
            ),
            "{host}: {result:?}"
        );
    }
}

/// A listener on 127.0.0.1 whose accept queue is full: a connection attempt to it gets
/// no answer, like a black-holed address. Keep it alive while it is used.
struct BlackHole {
    _listener: socket2::Socket,
    _filler: std::net::TcpStream,
    addr: std::net::SocketAddr,
}

impl BlackHole {
    fn new() -> Self {
        use socket2::{Domain, Socket, Type};
        let listener = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        listener
            .bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into())
            .unwrap();
        listener.listen(0).unwrap();
        let addr = listener.local_addr().unwrap().as_socket().unwrap();
        let filler = std::net::TcpStream::connect(addr).unwrap();
        Self {
            _listener: listener,
            _filler: filler,
            addr,
        }
    }
}

/// Resolves every name to the given addresses.
struct Fixed(Vec<std::net::SocketAddr>);

impl gateway_auth_host::Resolver for Fixed {
    fn resolve(&self, _: &str, _: u16) -> std::io::Result<Vec<std::net::SocketAddr>> {
        Ok(self.0.clone())
    }
}

#[test]
fn a_name_with_several_unreachable_addresses_times_out_within_the_client_deadline() {
    let holes: Vec<BlackHole> = (0..4).map(|_| BlackHole::new()).collect();
    let mut plugin = runtime()
        .plugin(PluginOptions {
            egress: Arc::new(EgressPolicy::parse(["blackhole.test", "127.0.0.1"]).unwrap()),
            resolver: Arc::new(Fixed(holes.iter().map(|h| h.addr).collect())),
            // Four attempts of a whole client deadline each would run past this (it
            // must exceed the client's deadline by the 2 s lease margin).
            call_timeout: std::time::Duration::from_millis(3_500),
            ..PluginOptions::default()
        })
        .unwrap();
    let mut c = Client::new(
        "gateway",
        ClientAuth::ClientSecretPost("s3cret".into()),
        TrustSpec::web_roots(),
    );
    c.token_endpoint = Some("https://blackhole.test/token".into());
    c.timeout_ms = Some(1_000);
    let result = plugin.request_token(&c, Grant::ClientCredentials);
    assert!(
        matches!(
            &result,
            Err(Error::OAuth(OAuthError::Transport(NetError::Timeout)))
        ),
        "{result:?}"
    );
}

/// The v1 client certificate fixture (see guest/src/tls/fixtures/README.md).
const V1_FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../guest/src/tls/fixtures");

#[test]
fn an_x509_v1_client_certificate_authenticates_to_an_openssl_server() {
    let ca = TestCa::new("openssl-server-ca");
    let (cert, key) = ca.issue("127.0.0.1");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cert.pem"), cert).unwrap();
    std::fs::write(dir.path().join("key.pem"), key).unwrap();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/support/openssl_token_server.py"
    );
    let mut server = std::process::Command::new("python3")
        .arg(script)
        .arg(dir.path().join("cert.pem"))
        .arg(dir.path().join("key.pem"))
        .arg(format!("{V1_FIXTURES}/v1-ca.pem"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 starts");
    let mut port = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(server.stdout.take().unwrap()),
        &mut port,
    )
    .unwrap();
    let port: u16 = port.trim().parse().expect("the server prints its port");

    let read = |name: &str| std::fs::read_to_string(format!("{V1_FIXTURES}/{name}")).unwrap();
    let mut trust = TrustSpec::ca(&ca.pem);
    trust.client_certificate = Some(read("v1-client.pem"));
    trust.client_key = Some(read("v1-client.key").into());
    let mut client = Client::new("gateway", ClientAuth::TlsClientAuth, trust);
    client.token_endpoint = Some(format!("https://127.0.0.1:{port}/token"));
    let mut plugin = loopback_plugin();
    let token = plugin.request_token(&client, Grant::ClientCredentials);

    // Dropping stdin ends the server.
    drop(server.stdin.take());
    let _ = server.wait();
    let token = token.expect("OpenSSL accepts the v1 client certificate");
    assert_eq!(token.access_token.secret(), "openssl-v1-client");
    assert_eq!(plugin.stats().unwrap().rejected, 0);
}
