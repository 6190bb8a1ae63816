//! The gateway's own upstream connections through the plugin's cached configurations:
//! blocking and tokio streams over real sockets, hyper over HTTP/1.1 and HTTP/2, the
//! egress policy, eviction, instance replacement, and a thousand open sessions.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use gateway_auth_host::{
    CacheSettings, EgressPolicy, Error, Grant, NetError, PluginOptions, TlsError, TrustSpec,
    Upstreams,
};
use gateway_auth_tests::{TestCa, TokenServer, runtime, token_server_client};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};

/// Upstreams over one instance that may reach 127.0.0.1 only.
fn upstreams() -> Upstreams {
    Upstreams::new(
        runtime()
            .plugin(PluginOptions {
                egress: Arc::new(EgressPolicy::parse(["127.0.0.1"]).unwrap()),
                ..PluginOptions::default()
            })
            .unwrap(),
    )
}

/// One request over a blocking stream; the response body.
fn get(stream: &mut impl ReadWrite) -> String {
    stream
        .write_all(b"GET /token HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: 0\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.to_string()
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

#[test]
fn a_blocking_stream_carries_https_over_a_cached_profile_and_reconnections_resume() {
    let ca = TestCa::new("upstream-a");
    let server = TokenServer::start(&ca, None);
    let upstreams = upstreams();
    let upstream = upstreams.upstream(TrustSpec::ca(ca.pem.clone()));

    let mut first = upstream.connect("127.0.0.1", server.port(), &[]).unwrap();
    assert!(get(&mut first).contains("tok-1"));
    let info = first.info().unwrap();
    assert!(!info.resumed);
    assert_eq!(info.version.as_deref(), Some("TLSv1_3"));
    drop(first);

    let mut second = upstream.connect("127.0.0.1", server.port(), &[]).unwrap();
    assert!(second.info().unwrap().resumed, "the reconnection resumed");
    assert!(get(&mut second).contains("tok-2"));
    assert_eq!(server.seen.resumed.load(Ordering::SeqCst), 1);

    let stats = upstreams.plugin().stats().unwrap();
    assert_eq!(stats.misses, 1, "one configuration built");
    assert_eq!(stats.hits, 2, "each connection used the cached one");
}

#[test]
fn mutual_tls_presents_the_upstreams_client_certificate() {
    let ca = TestCa::new("upstream-mtls");
    let clients = TestCa::new("upstream-mtls-clients");
    let server = TokenServer::start(&ca, Some(&clients));
    let (cert, key) = clients.issue("gateway.example");
    let upstreams = upstreams();

    let with_identity = upstreams.upstream(TrustSpec::ca(ca.pem.clone()).with_identity(cert, key));
    let mut stream = with_identity
        .connect("127.0.0.1", server.port(), &[])
        .unwrap();
    assert!(get(&mut stream).contains("tok-1"));
    assert_eq!(server.seen.client_certificates.lock().unwrap().len(), 1);

    // Without the certificate the server's alert ends the session, named.
    let without = upstreams.upstream(TrustSpec::ca(ca.pem.clone()));
    let refused = without
        .connect("127.0.0.1", server.port(), &[])
        .and_then(|mut s| {
            s.write_all(b"GET / HTTP/1.1\r\n\r\n").map_err(io_error)?;
            let mut sink = Vec::new();
            s.read_to_end(&mut sink).map_err(io_error)?;
            Ok(sink)
        });
    assert!(
        matches!(&refused, Err(Error::Tls(TlsError::PeerAlert(a))) if a.contains("CertificateRequired")),
        "{refused:?}"
    );
}

/// The plugin error inside an `io::Error` from a stream.
fn io_error(e: std::io::Error) -> Error {
    match e.into_inner().map(|inner| inner.downcast::<Error>()) {
        Some(Ok(error)) => *error,
        other => panic!("not a plugin error: {other:?}"),
    }
}

#[test]
fn a_server_of_another_ca_is_refused_by_name_before_any_request_byte() {
    let ca = TestCa::new("upstream-right");
    let stranger = TestCa::new("upstream-stranger");
    let server = TokenServer::start(&stranger, None);
    let upstreams = upstreams();
    let upstream = upstreams.upstream(TrustSpec::ca(ca.pem.clone()));
    let error = upstream
        .connect("127.0.0.1", server.port(), &[])
        .err()
        .unwrap();
    assert!(
        matches!(&error, Error::Tls(TlsError::PeerCertificate(why)) if why.contains("unknown issuer")),
        "{error}"
    );
    assert_eq!(server.seen.handshakes.load(Ordering::SeqCst), 0);
}

#[test]
fn an_address_the_egress_policy_refuses_fails_before_any_packet_is_sent() {
    let ca = TestCa::new("upstream-egress");
    let server = TokenServer::start(&ca, None);
    let upstreams = Upstreams::new(
        runtime()
            .plugin(PluginOptions {
                egress: Arc::new(EgressPolicy::parse(["upstream.example.com:443"]).unwrap()),
                ..PluginOptions::default()
            })
            .unwrap(),
    );
    let upstream = upstreams.upstream(TrustSpec::ca(ca.pem.clone()));
    let error = upstream
        .connect("127.0.0.1", server.port(), &[])
        .err()
        .unwrap();
    assert!(matches!(error, Error::Net(NetError::Denied(_))), "{error}");
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert_eq!(
        server.seen.accepted.load(Ordering::SeqCst),
        0,
        "no connection reached it"
    );
}

#[test]
fn an_evicted_profile_is_prepared_again_by_itself_and_open_streams_keep_working() {
    let (a, b) = (TestCa::new("evict-a"), TestCa::new("evict-b"));
    let (server_a, server_b) = (TokenServer::start(&a, None), TokenServer::start(&b, None));
    let upstreams = upstreams();
    upstreams
        .plugin()
        .configure(CacheSettings {
            capacity: 1,
            ttl_seconds: None,
            ..Default::default()
        })
        .unwrap();
    let (up_a, up_b) = (
        upstreams.upstream(TrustSpec::ca(a.pem.clone())),
        upstreams.upstream(TrustSpec::ca(b.pem.clone())),
    );
    let mut open_a = up_a.connect("127.0.0.1", server_a.port(), &[]).unwrap();
    let mut on_b = up_b.connect("127.0.0.1", server_b.port(), &[]).unwrap();
    assert!(get(&mut on_b).contains("tok-1"));
    // a's profile was evicted for b's; its open stream keeps its configuration.
    assert!(get(&mut open_a).contains("tok-1"));
    let mut again_a = up_a.connect("127.0.0.1", server_a.port(), &[]).unwrap();
    assert!(get(&mut again_a).contains("tok-2"));
    let stats = upstreams.plugin().stats().unwrap();
    assert_eq!((stats.misses, stats.evictions), (3, 2), "{stats:?}");
}

#[test]
fn a_stream_of_a_replaced_instance_fails_clearly_and_a_new_stream_works() {
    let ca = TestCa::new("upstream-trap");
    let server = TokenServer::start(&ca, None);
    let upstreams = Upstreams::new(
        runtime()
            .plugin(PluginOptions {
                egress: Arc::new(EgressPolicy::parse(["127.0.0.1"]).unwrap()),
                memory_limit: 8 << 20,
                ..PluginOptions::default()
            })
            .unwrap(),
    );
    let upstream = upstreams.upstream(TrustSpec::ca(ca.pem.clone()));
    let mut stream = upstream.connect("127.0.0.1", server.port(), &[]).unwrap();
    // 16 MiB of argument into an 8 MiB memory: a trap, and a fresh instance.
    let trapped = upstreams
        .plugin()
        .prepare(&TrustSpec::ca("x".repeat(16 << 20)));
    assert!(matches!(trapped, Err(Error::Trapped(_))), "{trapped:?}");

    let error = stream.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap_err();
    assert!(matches!(io_error(error), Error::InstanceReplaced));
    let mut fresh = upstream.connect("127.0.0.1", server.port(), &[]).unwrap();
    assert!(get(&mut fresh).contains("tok-"));
}

#[test]
fn one_instance_holds_a_thousand_open_upstream_sessions() {
    const SESSIONS: usize = 1_000;
    let ca = TestCa::new("upstream-many");
    let server = TokenServer::start(&ca, None);
    let upstreams = upstreams();
    let upstream = upstreams.upstream(TrustSpec::ca(ca.pem.clone()));
    let mut warm = upstream.connect("127.0.0.1", server.port(), &[]).unwrap();
    get(&mut warm);
    let before = upstreams.plugin().memory_bytes();

    let mut open = Vec::with_capacity(SESSIONS);
    for _ in 0..SESSIONS {
        let mut stream = upstream.connect("127.0.0.1", server.port(), &[]).unwrap();
        assert!(get(&mut stream).contains("tok-"));
        open.push(stream);
    }
    let after = upstreams.plugin().memory_bytes();
    for stream in &open {
        assert!(stream.info().unwrap().resumed);
    }
    assert_eq!(
        server.seen.handshakes.load(Ordering::SeqCst),
        SESSIONS as u64 + 1
    );
    println!(
        "{SESSIONS} open sessions: linear memory {} KiB -> {} KiB, {:.1} KiB per session",
        before >> 10,
        after >> 10,
        (after - before) as f64 / 1024.0 / SESSIONS as f64
    );
    drop(open);
    // Freed sessions leave room: the memory does not grow for another thousand.
    for _ in 0..SESSIONS {
        let mut stream = upstream.connect("127.0.0.1", server.port(), &[]).unwrap();
        get(&mut stream);
    }
    assert_eq!(upstreams.plugin().memory_bytes(), after);
}

/// An HTTPS server on 127.0.0.1 (certificate by `ca`) that answers each request with
/// the SHA-256 of its body, in hex.
fn body_hash_server(ca: &TestCa) -> u16 {
    let config = gateway_auth_tests::zoo::server_config(ca);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        for socket in listener.incoming().flatten() {
            let config = config.clone();
            thread::spawn(move || answer_with_body_hash(socket, config));
        }
    });
    port
}

fn answer_with_body_hash(socket: TcpStream, config: Arc<rustls::ServerConfig>) {
    let _ = socket.set_read_timeout(Some(Duration::from_secs(10)));
    let connection = rustls::ServerConnection::new(config).unwrap();
    let mut tls = rustls::StreamOwned::new(connection, socket);
    let mut reader = BufReader::new(&mut tls);
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        if line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap();
        }
    }
    let mut body = vec![0u8; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    drop(reader);
    let digest = hex_sha256(&body);
    let reply = format!(
        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{digest}",
        digest.len()
    );
    let _ = tls.write_all(reply.as_bytes());
    tls.conn.send_close_notify();
    let _ = tls.flush();
}

fn hex_sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `len` bytes that are not all alike, so a lost or repeated piece changes the hash.
fn patterned(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

#[test]
fn a_two_mib_write_all_on_a_blocking_stream_arrives_whole() {
    let ca = TestCa::new("upstream-large-write");
    let port = body_hash_server(&ca);
    let upstreams = upstreams();
    let upstream = upstreams.upstream(TrustSpec::ca(ca.pem.clone()));
    let body = patterned(2 << 20);
    let mut stream = upstream.connect("127.0.0.1", port, &[]).unwrap();
    let head = format!(
        "POST /upload HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(&body).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, digest) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(digest, hex_sha256(&body));
}

/// An HTTPS server on 127.0.0.1 that completes the handshake, reads one request head
/// and then sends one TLS record of a 16 KiB answer a byte every 100 ms, so no
/// plaintext ever arrives: until the client goes, or 10 s.
fn record_drip_server(ca: &TestCa) -> u16 {
    let config = gateway_auth_tests::zoo::server_config(ca);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        let Ok((socket, _)) = listener.accept() else {
            return;
        };
        let _ = socket.set_nodelay(true);
        let _ = socket.set_read_timeout(Some(Duration::from_secs(10)));
        let connection = rustls::ServerConnection::new(config).unwrap();
        let mut tls = rustls::StreamOwned::new(connection, socket);
        let mut head = Vec::new();
        let mut byte = [0u8];
        while !head.ends_with(b"\r\n\r\n") {
            if tls.read(&mut byte).unwrap_or(0) == 0 {
                return;
            }
            head.push(byte[0]);
        }
        let _ = tls.flush();
        tls.conn.writer().write_all(&[b'x'; 16 * 1024]).unwrap();
        let mut ciphertext = Vec::new();
        while tls.conn.wants_write() {
            tls.conn.write_tls(&mut ciphertext).unwrap();
        }
        for byte in ciphertext.iter().take(100) {
            if tls.sock.write_all(&[*byte]).is_err() {
                return;
            }
            thread::sleep(Duration::from_millis(100));
        }
    });
    port
}

#[test]
fn a_read_ends_within_its_timeout_while_a_record_arrives_a_byte_at_a_time() {
    let ca = TestCa::new("upstream-record-drip");
    let port = record_drip_server(&ca);
    let upstreams = upstreams();
    let upstream = upstreams.upstream(TrustSpec::ca(ca.pem.clone()));
    let mut stream = upstream.connect("127.0.0.1", port, &[]).unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n")
        .unwrap();
    let timeout = Duration::from_millis(500);
    stream.tcp().set_read_timeout(Some(timeout)).unwrap();

    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let started = Instant::now();
        let mut buf = [0u8; 1024];
        let result = stream.read(&mut buf).map_err(|e| e.kind());
        let _ = tx.send((
            result,
            started.elapsed(),
            stream.tcp().read_timeout().unwrap(),
        ));
    });
    let (result, took, left_at) = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the read ended");
    assert_eq!(result, Err(std::io::ErrorKind::TimedOut));
    assert!(
        took <= timeout + Duration::from_millis(300),
        "one read took {took:?} with a {timeout:?} read timeout"
    );
    assert_eq!(left_at, Some(timeout), "the caller's timeout stands");
}

/// A TCP listener that completes the TCP handshake (the kernel does) and then never
/// reads or writes a byte.
fn silent_server() -> (TcpListener, u16) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    (listener, port)
}

#[test]
fn a_server_that_accepts_and_stays_silent_ends_a_blocking_connect_by_its_deadline() {
    let (_listener, port) = silent_server();
    let ca = TestCa::new("upstream-silent");
    let upstreams = upstreams();
    let deadline = Duration::from_millis(500);
    let upstream = upstreams
        .upstream(TrustSpec::ca(ca.pem.clone()))
        .with_connect_timeout(deadline);
    let (done, result) = mpsc::channel();
    let started = Instant::now();
    thread::spawn(move || {
        let _ = done.send(upstream.connect("127.0.0.1", port, &[]).map(drop));
    });
    let result = result
        .recv_timeout(deadline + Duration::from_secs(5))
        .expect("the connect returned by its deadline");
    assert!(
        matches!(result, Err(Error::Net(NetError::Timeout))),
        "{result:?}"
    );
    assert!(started.elapsed() >= deadline);
}

/// A TCP server that closes every connection as soon as it has accepted it.
fn closing_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || listener.incoming().for_each(drop));
    port
}

#[test]
#[allow(
    clippy::await_holding_lock,
    reason = "held on purpose: each attempt makes its session after it was given up"
)]
fn cancelled_and_failed_tokio_connects_free_their_sessions_and_later_streams_work() {
    const ATTEMPTS: usize = 2_000;
    let ca = TestCa::new("upstream-cancelled");
    let server = TokenServer::start(&ca, None);
    let closing = closing_server();
    let upstreams = upstreams();
    let upstream = upstreams.upstream(TrustSpec::ca(ca.pem.clone()));
    // One blocking thread: the abandoned attempts run one after another, so their
    // sessions are never many at once unless they are kept.
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(1)
        .build()
        .unwrap();
    tokio.block_on(async {
        let warm = upstream
            .connect_async("127.0.0.1", server.port(), &[])
            .await;
        drop(warm.unwrap());
        tokio::task::spawn_blocking(|| ()).await.unwrap();
    });
    let before = upstreams.plugin().memory_bytes();
    tokio.block_on(async {
        for _ in 0..ATTEMPTS {
            // Holding the instance, so that the attempt makes its session only after
            // it was given up; its handshake would fail anyway, as the server hangs up.
            let held = upstreams.plugin();
            let attempt = upstream.connect_async("127.0.0.1", closing, &[]);
            let cancelled = tokio::time::timeout(Duration::from_millis(1), attempt).await;
            assert!(cancelled.is_err(), "given up");
            drop(held);
        }
        // The blocking pool runs tasks in order: this one ends after every attempt.
        tokio::task::spawn_blocking(|| ()).await.unwrap();
    });
    let after = upstreams.plugin().memory_bytes();
    println!(
        "{ATTEMPTS} cancelled and failed connects: linear memory {} KiB -> {} KiB",
        before >> 10,
        after >> 10
    );
    // Kept, each would take about 2.4 KiB; freed, they reuse one another's memory.
    assert!(
        after - before < 1 << 20,
        "{ATTEMPTS} cancelled and failed connects grew the instance from {before} to {after} bytes"
    );
    let mut stream = upstream.connect("127.0.0.1", server.port(), &[]).unwrap();
    assert!(get(&mut stream).contains("tok-"));
}

#[test]
fn a_stream_keeps_moving_data_while_a_token_request_waits_on_a_slow_server() {
    let ca = TestCa::new("upstream-slow-token");
    // The token server holds its answer until released (or 10 s have passed).
    let (entered, token_request_waiting) = mpsc::channel();
    let (release, released) = mpsc::channel::<()>();
    let (entered, released) = (Mutex::new(entered), Mutex::new(released));
    let token_server = TokenServer::start_with(
        &ca,
        None,
        Arc::new(move |out, _| {
            let _ = entered.lock().unwrap().send(());
            let _ = released
                .lock()
                .unwrap()
                .recv_timeout(Duration::from_secs(10));
            let body = r#"{"access_token":"slow","token_type":"Bearer","expires_in":60}"#;
            let reply = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = out.write_all(reply.as_bytes());
        }),
    );
    let upstream_server = TokenServer::start(&ca, None);
    let upstreams = upstreams();
    let mut client = token_server_client(&token_server, TrustSpec::ca(ca.pem.clone()));
    client.timeout_ms = Some(30_000);
    let upstream = upstreams.upstream(TrustSpec::ca(ca.pem.clone()));

    let token_answered = AtomicBool::new(false);
    thread::scope(|scope| {
        let requester = scope.spawn(|| {
            let token = upstreams
                .oauth()
                .unwrap()
                .request_token(&client, Grant::ClientCredentials);
            token_answered.store(true, Ordering::SeqCst);
            token
        });
        token_request_waiting
            .recv_timeout(Duration::from_secs(10))
            .expect("the token request reached its server");
        let mut stream = upstream
            .connect("127.0.0.1", upstream_server.port(), &[])
            .unwrap();
        assert!(get(&mut stream).contains("tok-1"));
        assert!(
            !token_answered.load(Ordering::SeqCst),
            "the stream waited for the token request"
        );
        release.send(()).unwrap();
        let token = requester.join().unwrap().unwrap();
        assert_eq!(token.access_token.secret(), "slow");
    });
}

mod hyper_over_the_plugin {
    use super::*;
    use http_body_util::{BodyExt, Empty, Full};
    use hyper::body::{Bytes, Incoming};
    use hyper::{Request, Response};
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use rustls::server::WebPkiClientVerifier;
    use rustls::{RootCertStore, ServerConfig};

    /// An HTTPS server (HTTP/1.1 and HTTP/2 by ALPN) answering which protocol it saw
    /// and whether a client certificate came; counts the requests it answered.
    async fn https_server(ca: &TestCa, clients: Option<&TestCa>) -> (u16, Arc<AtomicU64>) {
        let (cert, key) = ca.issue("127.0.0.1");
        let der = |pem: &str| CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
        let builder = match clients {
            None => ServerConfig::builder().with_no_client_auth(),
            Some(clients) => {
                let mut roots = RootCertStore::empty();
                roots.add(der(&clients.pem)).unwrap();
                ServerConfig::builder().with_client_cert_verifier(
                    WebPkiClientVerifier::builder(Arc::new(roots))
                        .build()
                        .unwrap(),
                )
            }
        };
        let mut config = builder
            .with_single_cert(
                vec![der(&cert)],
                PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
            )
            .unwrap();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let answered = Arc::new(AtomicU64::new(0));
        let counter = answered.clone();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let _ = tcp.set_nodelay(true);
                let (acceptor, counter) = (acceptor.clone(), counter.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let client_cert = tls.get_ref().1.peer_certificates().is_some();
                    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                        counter.fetch_add(1, Ordering::SeqCst);
                        let body = format!("{:?} client-cert={client_cert}", req.version());
                        async move { Ok::<_, hyper::Error>(Response::new(Full::new(Bytes::from(body)))) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        (port, answered)
    }

    /// A GET through hyper over the plugin's stream, with the protocol ALPN chose.
    async fn hyper_get(
        upstream: &gateway_auth_host::Upstream,
        port: u16,
        alpn: &[&str],
    ) -> Result<String, Error> {
        let stream = upstream.connect_async("127.0.0.1", port, alpn).await?;
        let chosen = stream.info()?.alpn;
        let io = TokioIo::new(stream);
        let request = Request::get(format!("https://127.0.0.1:{port}/"))
            .body(Empty::<Bytes>::new())
            .unwrap();
        let response = if chosen.as_deref() == Some("h2") {
            let (mut sender, connection) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                    .await
                    .unwrap();
            tokio::spawn(connection);
            sender.send_request(request).await.unwrap()
        } else {
            let (mut sender, connection) = hyper::client::conn::http1::handshake(io).await.unwrap();
            tokio::spawn(connection);
            sender.send_request(request).await.unwrap()
        };
        assert!(response.status().is_success());
        let body = response.into_body().collect().await.unwrap().to_bytes();
        Ok(String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn hyper_speaks_http1_and_http2_over_the_plugins_stream_with_a_custom_ca() {
        let ca = TestCa::new("hyper-ca");
        let (port, answered) = https_server(&ca, None).await;
        let upstreams = upstreams();
        let upstream = upstreams.upstream(TrustSpec::ca(ca.pem.clone()));
        assert_eq!(
            hyper_get(&upstream, port, &["h2", "http/1.1"])
                .await
                .unwrap(),
            "HTTP/2.0 client-cert=false"
        );
        assert_eq!(
            hyper_get(&upstream, port, &["http/1.1"]).await.unwrap(),
            "HTTP/1.1 client-cert=false"
        );
        assert_eq!(answered.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn hyper_posts_a_three_mib_body_that_arrives_whole() {
        let ca = TestCa::new("hyper-large-body");
        let port = body_hash_server(&ca);
        let upstreams = upstreams();
        let upstream = upstreams.upstream(TrustSpec::ca(ca.pem.clone()));
        let body = patterned(3 << 20);
        let stream = upstream
            .connect_async("127.0.0.1", port, &["http/1.1"])
            .await
            .unwrap();
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(connection);
        let request = Request::post(format!("https://127.0.0.1:{port}/upload"))
            .header("host", "127.0.0.1")
            .body(Full::new(Bytes::from(body.clone())))
            .unwrap();
        let response = sender.send_request(request).await.unwrap();
        assert!(response.status().is_success());
        let digest = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(
            String::from_utf8(digest.to_vec()).unwrap(),
            hex_sha256(&body)
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_server_that_accepts_and_stays_silent_ends_a_tokio_connect_by_its_deadline() {
        let (_listener, port) = silent_server();
        let ca = TestCa::new("hyper-silent");
        let upstreams = upstreams();
        let deadline = Duration::from_millis(500);
        let upstream = upstreams
            .upstream(TrustSpec::ca(ca.pem.clone()))
            .with_connect_timeout(deadline);
        let started = Instant::now();
        let result = tokio::time::timeout(
            deadline + Duration::from_secs(5),
            upstream.connect_async("127.0.0.1", port, &[]),
        )
        .await
        .expect("the connect returned by its deadline");
        assert!(
            matches!(result, Err(Error::Net(NetError::Timeout))),
            "{:?}",
            result.map(drop)
        );
        assert!(started.elapsed() >= deadline);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn hyper_over_mutual_tls_presents_the_client_certificate() {
        let ca = TestCa::new("hyper-mtls-ca");
        let clients = TestCa::new("hyper-mtls-clients");
        let (port, _) = https_server(&ca, Some(&clients)).await;
        let (cert, key) = clients.issue("gateway.example");
        let upstreams = upstreams();
        let upstream = upstreams.upstream(TrustSpec::ca(ca.pem.clone()).with_identity(cert, key));
        for alpn in [&["h2"][..], &["http/1.1"][..]] {
            let body = hyper_get(&upstream, port, alpn).await.unwrap();
            assert!(body.ends_with("client-cert=true"), "{body}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn hyper_never_sends_a_byte_to_a_server_of_the_wrong_ca() {
        let (ca, stranger) = (TestCa::new("hyper-right"), TestCa::new("hyper-stranger"));
        let (port, answered) = https_server(&stranger, None).await;
        let upstreams = upstreams();
        let upstream = upstreams.upstream(TrustSpec::ca(ca.pem.clone()));
        let error = hyper_get(&upstream, port, &["h2", "http/1.1"])
            .await
            .unwrap_err();
        assert!(
            matches!(error, Error::Tls(TlsError::PeerCertificate(_))),
            "{error}"
        );
        assert_eq!(answered.load(Ordering::SeqCst), 0);
    }
}

#[test]
fn the_seed_scenario_serves_every_connection_from_the_cache_with_exactly_one_eviction() {
    const UPSTREAMS: usize = 101;
    const ROUNDS: u64 = 3;
    const REQUESTS: u64 = 3;
    // Every tenth upstream (11 of them) demands a client certificate of its own CA.
    let fleet = gateway_auth_devserver::fleet::Fleet::start(UPSTREAMS, 10).unwrap();
    let upstreams = upstreams();
    let figures =
        gateway_auth::upstream_traffic::run(&upstreams, &fleet, ROUNDS as usize, REQUESTS as usize)
            .unwrap();

    let steady = ROUNDS * (UPSTREAMS as u64 - 1);
    let connections = UPSTREAMS as u64 + steady;
    assert_eq!(figures.capacity, 100);
    assert_eq!(figures.connections, connections);
    assert_eq!(
        figures.stats.misses, UPSTREAMS as u64,
        "each configuration built once"
    );
    assert_eq!(figures.stats.evictions, 1, "exactly one upstream fell out");
    assert_eq!(
        figures.stats.hits, connections,
        "every connection used the cache"
    );
    assert_eq!(figures.stats.size, 100);
    assert_eq!(
        figures.resumed, steady,
        "every reconnection resumed its TLS session"
    );
    assert_eq!(figures.requests, UPSTREAMS as u64 + steady * REQUESTS);
    let (handshakes, resumed, requests) = fleet.counts();
    assert_eq!(
        (handshakes, resumed, requests),
        (connections, steady, figures.requests)
    );
    // The original's policy on the same trace: wiped at the 101st, then rebuilt 99.
    assert_eq!(figures.full_wipe_builds, 200);
}
