//! Sessions against real rustls servers, bytes moved in memory.

use std::io::{Read, Write};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, ServerConnection};

use gateway_auth_api::{TlsError, TlsState, TrustSpec};

use super::{MAX_INCOMING, MAX_PENDING, UpstreamSession};
use crate::tls::TlsCache;
use crate::tls::testing::{self, TestCa};

/// A server for `host` under `ca`, optionally demanding a client certificate from
/// `clients`, offering `alpn`.
fn server_config(
    ca: &TestCa,
    host: &str,
    clients: Option<&TestCa>,
    alpn: &[&str],
) -> Arc<ServerConfig> {
    let (cert, key) = testing::server_identity(ca, host);
    let chain = vec![CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()];
    let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
    let builder = ServerConfig::builder();
    let mut config = match clients {
        None => builder.with_no_client_auth(),
        Some(clients) => {
            let mut roots = RootCertStore::empty();
            roots
                .add(CertificateDer::from_pem_slice(clients.pem.as_bytes()).unwrap())
                .unwrap();
            let verifier = WebPkiClientVerifier::builder(Arc::new(roots))
                .build()
                .unwrap();
            builder.with_client_cert_verifier(verifier)
        }
    }
    .with_single_cert(chain, key)
    .unwrap();
    config.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    Arc::new(config)
}

/// A client session for `name` from the cache's configuration for `spec`.
fn client(cache: &mut TlsCache, spec: &TrustSpec, name: &str, alpn: &[&str]) -> UpstreamSession {
    let id = cache.prepare(spec, 0).unwrap().profile.id;
    let config = cache.config_for(&id, 0).unwrap();
    let alpn: Vec<String> = alpn.iter().map(|p| p.to_string()).collect();
    UpstreamSession::connect(config, name, &alpn).unwrap()
}

/// Moves bytes both ways until neither side has anything to say; the client's
/// plaintext out is `send` (given on the first step), what it received is returned.
fn pump(
    client: &mut UpstreamSession,
    server: &mut ServerConnection,
    send: &[u8],
) -> Result<Vec<u8>, TlsError> {
    let mut received = Vec::new();
    let mut to_client = Vec::new();
    let mut send = send;
    for _ in 0..20 {
        let out = client.advance(&to_client, send)?;
        send = &[];
        received.extend(out.plaintext);
        to_client.clear();
        let mut incoming = &out.outgoing[..];
        while !incoming.is_empty() {
            server.read_tls(&mut incoming).unwrap();
            if server.process_new_packets().is_err() {
                // The server's alert goes back to the client.
                break;
            }
        }
        while server.wants_write() {
            server.write_tls(&mut to_client).unwrap();
        }
        if to_client.is_empty() && out.outgoing.is_empty() {
            break;
        }
    }
    Ok(received)
}

/// What the server read as plaintext so far.
fn server_read(server: &mut ServerConnection) -> Vec<u8> {
    let mut got = Vec::new();
    let _ = server.reader().read_to_end(&mut got);
    got
}

struct Upstream {
    ca: TestCa,
    spec: TrustSpec,
}

fn upstream(name: &str) -> Upstream {
    let ca = testing::ca(name);
    let spec = TrustSpec::ca(ca.pem.clone());
    Upstream { ca, spec }
}

#[test]
fn a_full_handshake_carries_a_request_and_its_response() {
    let up = upstream("full");
    let mut cache = TlsCache::default();
    let mut session = client(&mut cache, &up.spec, "api.client.test", &[]);
    let mut server = ServerConnection::new(server_config(&up.ca, "api", None, &[])).unwrap();

    // Plaintext given before the handshake ends is held, then sent.
    let received = pump(&mut session, &mut server, b"GET / HTTP/1.1\r\n\r\n").unwrap();
    assert!(received.is_empty());
    assert_eq!(session.state(), TlsState::Open);
    assert_eq!(server_read(&mut server), b"GET / HTTP/1.1\r\n\r\n");

    server
        .writer()
        .write_all(b"HTTP/1.1 200 OK\r\n\r\n")
        .unwrap();
    let mut to_client = Vec::new();
    server.write_tls(&mut to_client).unwrap();
    let out = session.advance(&to_client, &[]).unwrap();
    assert_eq!(out.plaintext, b"HTTP/1.1 200 OK\r\n\r\n");
    let info = session.info();
    assert_eq!(info.version.as_deref(), Some("TLSv1_3"));
    // The client's preference (ChaCha20 first: no AES instructions in WebAssembly) is
    // honoured by a rustls server.
    assert_eq!(
        info.cipher_suite.as_deref(),
        Some("TLS13_CHACHA20_POLY1305_SHA256")
    );
    assert!(!info.resumed);
}

#[test]
fn a_reconnection_with_the_same_profile_resumes_and_another_profile_does_not() {
    let up = upstream("resume");
    let other = upstream("resume-other");
    let mut cache = TlsCache::default();
    let server_config = server_config(&up.ca, "api", None, &[]);
    for (round, expect_resumed) in [(0, false), (1, true), (2, true)] {
        let mut session = client(&mut cache, &up.spec, "api.client.test", &[]);
        let mut server = ServerConnection::new(server_config.clone()).unwrap();
        pump(&mut session, &mut server, b"ping").unwrap();
        // TLS 1.3 tickets come after the handshake: one more exchange takes them in.
        pump(&mut session, &mut server, b"").unwrap();
        assert_eq!(session.info().resumed, expect_resumed, "round {round}");
    }
    // The other profile has its own session store: a full handshake (which fails, as
    // its CA did not issue this server's certificate).
    let mut session = client(&mut cache, &other.spec, "api.client.test", &[]);
    let mut server = ServerConnection::new(server_config).unwrap();
    assert!(matches!(
        pump(&mut session, &mut server, b""),
        Err(TlsError::PeerCertificate(_))
    ));
}

#[test]
fn alpn_offers_what_was_asked_and_reports_what_the_server_chose() {
    let up = upstream("alpn");
    let mut cache = TlsCache::default();
    let mut session = client(&mut cache, &up.spec, "api.client.test", &["h2", "http/1.1"]);
    let mut server = ServerConnection::new(server_config(&up.ca, "api", None, &["h2"])).unwrap();
    pump(&mut session, &mut server, b"").unwrap();
    assert_eq!(session.info().alpn.as_deref(), Some("h2"));

    let mut session = client(&mut cache, &up.spec, "api.client.test", &[]);
    let mut server = ServerConnection::new(server_config(&up.ca, "api", None, &[])).unwrap();
    pump(&mut session, &mut server, b"").unwrap();
    assert_eq!(session.info().alpn, None);
}

#[test]
fn mutual_tls_presents_the_profiles_client_certificate() {
    let up = upstream("mtls");
    let clients = testing::ca("mtls-clients");
    let (cert, key) = testing::client_identity(&clients, "gateway");
    let with_identity = up.spec.clone().with_identity(cert, key);
    let server_config = server_config(&up.ca, "api", Some(&clients), &[]);
    let mut cache = TlsCache::default();

    let mut session = client(&mut cache, &with_identity, "api.client.test", &[]);
    let mut server = ServerConnection::new(server_config.clone()).unwrap();
    pump(&mut session, &mut server, b"hello").unwrap();
    assert_eq!(server_read(&mut server), b"hello");
    assert!(server.peer_certificates().is_some_and(|c| c.len() == 1));

    // Without it the server refuses, and says so with an alert.
    let mut session = client(&mut cache, &up.spec, "api.client.test", &[]);
    let mut server = ServerConnection::new(server_config).unwrap();
    let refused = pump(&mut session, &mut server, b"hello").unwrap_err();
    assert!(
        matches!(&refused, TlsError::PeerAlert(a) if a.contains("CertificateRequired")),
        "{refused:?}"
    );
}

#[test]
fn a_server_certificate_from_another_ca_or_for_another_name_is_refused_by_name() {
    let up = upstream("names");
    let stranger = testing::ca("stranger");
    let mut cache = TlsCache::default();

    let mut session = client(&mut cache, &up.spec, "api.client.test", &[]);
    let mut server = ServerConnection::new(server_config(&stranger, "api", None, &[])).unwrap();
    let error = pump(&mut session, &mut server, b"secret request").unwrap_err();
    assert!(
        matches!(&error, TlsError::PeerCertificate(why) if why.contains("unknown issuer")),
        "{error:?}"
    );
    assert!(
        server_read(&mut server).is_empty(),
        "no request byte reached the server"
    );
    assert_eq!(session.state(), TlsState::Closed);
    assert_eq!(session.advance(b"", b"more"), Err(TlsError::Closed));

    let mut session = client(&mut cache, &up.spec, "other.client.test", &[]);
    let mut server = ServerConnection::new(server_config(&up.ca, "api", None, &[])).unwrap();
    let error = pump(&mut session, &mut server, b"").unwrap_err();
    assert!(
        matches!(&error, TlsError::PeerCertificate(why) if why.contains("server name")),
        "{error:?}"
    );
}

#[test]
fn ip_addresses_are_server_names_and_nonsense_is_a_clear_error() {
    let up = upstream("ip");
    let mut cache = TlsCache::default();
    let mut session = client(&mut cache, &up.spec, "127.0.0.1", &[]);
    let mut server = ServerConnection::new(server_config(&up.ca, "127.0.0.1", None, &[])).unwrap();
    pump(&mut session, &mut server, b"").unwrap();
    assert_eq!(session.state(), TlsState::Open);

    let id = cache.prepare(&up.spec, 0).unwrap().profile.id;
    let config = cache.config_for(&id, 0).unwrap();
    for bad in ["", "has space.test", "exa mple", "bad..name"] {
        let error = UpstreamSession::connect(config.clone(), bad, &[])
            .err()
            .unwrap();
        assert!(
            matches!(error, TlsError::BadServerName(_)),
            "{bad:?}: {error:?}"
        );
    }
}

/// The records of the server's last `words` and its close_notify.
fn last_words(server: &mut ServerConnection, words: &[u8]) -> Vec<u8> {
    server.writer().write_all(words).unwrap();
    server.send_close_notify();
    let mut records = Vec::new();
    while server.wants_write() {
        server.write_tls(&mut records).unwrap();
    }
    records
}

#[test]
fn close_notify_both_ways_is_reported_and_sent() {
    let up = upstream("close");
    let mut cache = TlsCache::default();
    let mut session = client(&mut cache, &up.spec, "api.client.test", &[]);
    let mut server = ServerConnection::new(server_config(&up.ca, "api", None, &[])).unwrap();
    pump(&mut session, &mut server, b"").unwrap();

    let to_client = last_words(&mut server, b"bye");
    let out = session.advance(&to_client, &[]).unwrap();
    assert_eq!(out.plaintext, b"bye");
    assert_eq!(out.state, TlsState::PeerClosed);

    // This side's close_notify reaches the server as a clean end.
    let closing = session.close();
    let mut incoming = &closing[..];
    server.read_tls(&mut incoming).unwrap();
    server.process_new_packets().unwrap();
    assert_eq!(server.reader().read(&mut [0; 8]).unwrap(), 0, "clean end");
    assert_eq!(session.state(), TlsState::Closed);
    assert!(session.close().is_empty());
}

/// Runs `f` on a thread and waits at most 5 s for it: a spin fails the test instead of
/// hanging it.
fn within_5s<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(std::time::Duration::from_secs(5))
        .expect("advance returned within 5 s")
}

#[test]
fn bytes_after_the_peers_close_notify_are_dropped_at_once() {
    let up = upstream("after-close");
    let mut cache = TlsCache::default();
    let mut session = client(&mut cache, &up.spec, "api.client.test", &[]);
    let mut server = ServerConnection::new(server_config(&up.ca, "api", None, &[])).unwrap();
    pump(&mut session, &mut server, b"").unwrap();
    let mut chunk = last_words(&mut server, b"bye");
    // Unauthenticated bytes in the same read as close_notify: more than rustls buffers.
    chunk.extend(std::iter::repeat_n(0x17, 8 * 1024));
    let (mut session, out) = within_5s(move || {
        let out = session.advance(&chunk, &[]);
        (session, out)
    });
    let out = out.unwrap();
    assert_eq!(
        (out.plaintext.as_slice(), out.state),
        (&b"bye"[..], TlsState::PeerClosed)
    );

    // And any later byte, once the peer has closed.
    let (_, later) = within_5s(move || {
        let later = session.advance(&[0x17], &[]);
        (session, later)
    });
    let later = later.unwrap();
    assert!(later.plaintext.is_empty());
    assert_eq!(later.state, TlsState::PeerClosed);
}

#[test]
fn a_server_that_sends_garbage_gets_a_protocol_error() {
    let up = upstream("garbage");
    let mut cache = TlsCache::default();
    let mut session = client(&mut cache, &up.spec, "api.client.test", &[]);
    session.advance(&[], &[]).unwrap();
    let error = session
        .advance(b"HTTP/1.1 400 Bad Request\r\n\r\n", &[])
        .unwrap_err();
    assert!(matches!(error, TlsError::Protocol(_)), "{error:?}");
    assert_eq!(session.state(), TlsState::Closed);
}

#[test]
fn what_a_session_takes_or_holds_is_bounded() {
    let up = upstream("bounds");
    let mut cache = TlsCache::default();
    let mut session = client(&mut cache, &up.spec, "api.client.test", &[]);
    let error = session
        .advance(&vec![0x17; MAX_INCOMING + 1], &[])
        .unwrap_err();
    assert_eq!(error, TlsError::TooLarge(MAX_INCOMING as u32));

    // Plaintext piling up before the handshake ends (the host never moves bytes).
    let mut session = client(&mut cache, &up.spec, "api.client.test", &[]);
    let chunk = vec![b'x'; 64 * 1024];
    let mut error = None;
    for _ in 0..(MAX_PENDING / chunk.len() + 2) {
        if let Err(e) = session.advance(&[], &chunk) {
            error = Some(e);
            break;
        }
    }
    assert_eq!(error, Some(TlsError::TooLarge(MAX_PENDING as u32)));
}

#[test]
fn a_session_outlives_its_profiles_eviction_and_connect_then_names_the_profile_unknown() {
    let up = upstream("evicted");
    let mut cache = TlsCache::default();
    let id = cache.prepare(&up.spec, 0).unwrap().profile.id;
    let config = cache.config_for(&id, 0).unwrap();
    cache.clear();
    assert_eq!(
        cache.config_for(&id, 0).err(),
        Some(TlsError::UnknownProfile)
    );
    assert_eq!(
        cache.config_for("not-hex", 0).err(),
        Some(TlsError::UnknownProfile)
    );

    let mut session = UpstreamSession::connect(config, "api.client.test", &[]).unwrap();
    let mut server = ServerConnection::new(server_config(&up.ca, "api", None, &[])).unwrap();
    pump(&mut session, &mut server, b"still here").unwrap();
    assert_eq!(server_read(&mut server), b"still here");
}

#[test]
fn connect_counts_a_hit_and_freshens_the_entry_so_it_is_not_the_one_evicted() {
    use gateway_auth_api::CacheSettings;
    let mut cache = TlsCache::new(CacheSettings {
        capacity: 2,
        ttl_seconds: None,
        ..Default::default()
    });
    let (a, b, c) = (upstream("lru-a"), upstream("lru-b"), upstream("lru-c"));
    let id_a = cache.prepare(&a.spec, 0).unwrap().profile.id;
    let id_b = cache.prepare(&b.spec, 0).unwrap().profile.id;
    cache.config_for(&id_a, 0).unwrap();
    cache.prepare(&c.spec, 0).unwrap();
    assert!(
        cache.config_for(&id_a, 0).is_ok(),
        "a was used last: b went"
    );
    assert_eq!(
        cache.config_for(&id_b, 0).err(),
        Some(TlsError::UnknownProfile)
    );
    let stats = cache.stats();
    assert_eq!((stats.hits, stats.misses, stats.evictions), (2, 3, 1));
}

#[test]
fn finished_handshakes_are_counted_full_or_resumed_and_a_refused_one_is_not() {
    let up = upstream("counted");
    let other = upstream("counted-other");
    let mut cache = TlsCache::default();
    let server_config = server_config(&up.ca, "api", None, &[]);
    for _ in 0..3 {
        let mut session = client(&mut cache, &up.spec, "api.client.test", &[]);
        let mut server = ServerConnection::new(server_config.clone()).unwrap();
        pump(&mut session, &mut server, b"ping").unwrap();
        pump(&mut session, &mut server, b"").unwrap();
    }
    let mut session = client(&mut cache, &other.spec, "api.client.test", &[]);
    let mut server = ServerConnection::new(server_config).unwrap();
    assert!(pump(&mut session, &mut server, b"").is_err());
    assert_eq!(crate::metrics::counters().handshakes(), (1, 2));
}
