//! Round trips against a real TLS server on 127.0.0.1.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ServerConfig, ServerConnection, StreamOwned};

use super::*;
use crate::http::{Limit, MAX_RESPONSE_BODY};
use crate::tls::testing::{TestCa, ca, server_identity};
use gateway_auth_api::{CacheSettings, TrustSpec};

use crate::tls::TlsCache;

mod kept_alive;

/// Plain TCP, recording the size of every write.
struct Tcp {
    socket: TcpStream,
    writes: Arc<std::sync::Mutex<Vec<usize>>>,
    /// Whether a read of timeout 0 looks at what has arrived, as the Rust host's
    /// does; without, it answers `timeout` at once, as a host that cannot look.
    peeks: bool,
}

/// The transport's error for a socket failure.
fn net(e: std::io::Error) -> NetError {
    match e.kind() {
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => NetError::Timeout,
        std::io::ErrorKind::ConnectionReset => NetError::Reset(e.to_string()),
        _ => NetError::Other(e.to_string()),
    }
}

impl Stream for Tcp {
    fn write_all(&mut self, bytes: &[u8], timeout_ms: u32) -> Result<(), NetError> {
        self.writes.lock().unwrap().push(bytes.len());
        let timeout = Duration::from_millis(timeout_ms.into());
        self.socket.set_write_timeout(Some(timeout)).unwrap();
        self.socket.write_all(bytes).map_err(net)
    }
    fn read(&mut self, max: u32, timeout_ms: u32) -> Result<Vec<u8>, NetError> {
        let mut buf = vec![0u8; max as usize];
        let n = if timeout_ms == 0 {
            if !self.peeks {
                return Err(NetError::Timeout);
            }
            self.socket.set_nonblocking(true).unwrap();
            let read = self.socket.read(&mut buf);
            self.socket.set_nonblocking(false).unwrap();
            read
        } else {
            let timeout = Duration::from_millis(timeout_ms.into());
            self.socket.set_read_timeout(Some(timeout)).unwrap();
            self.socket.read(&mut buf)
        };
        buf.truncate(n.map_err(net)?);
        Ok(buf)
    }
}

struct TcpConnector {
    writes: Arc<std::sync::Mutex<Vec<usize>>>,
    peeks: bool,
}

impl Default for TcpConnector {
    fn default() -> Self {
        Self {
            writes: Arc::default(),
            peeks: true,
        }
    }
}

/// One round trip with no connection kept from before.
fn round_trip<C: Connector>(
    connector: &mut C,
    config: Arc<ClientConfig>,
    request: &Request,
    timeout_ms: u32,
) -> Result<Response, HttpError> {
    super::round_trip(
        connector,
        &mut IdleConnections::default(),
        config,
        request,
        timeout_ms,
    )
}

impl Connector for TcpConnector {
    type Stream = Tcp;
    fn connect(&mut self, host: &str, port: u16, _timeout_ms: u32) -> Result<Tcp, NetError> {
        let socket =
            TcpStream::connect((host, port)).map_err(|e| NetError::Connect(e.to_string()))?;
        socket.set_nodelay(true).unwrap();
        Ok(Tcp {
            socket,
            writes: self.writes.clone(),
            peeks: self.peeks,
        })
    }
}

/// Serves one connection: reads the request (up to the end of its body), hands it to
/// `answer`, writes what it returns, closes. Returns the URL and the received request.
fn serve_once(
    ca: &TestCa,
    answer: impl FnOnce(&[u8]) -> Vec<u8> + Send + 'static,
) -> (String, thread::JoinHandle<Vec<u8>>) {
    serve_with(ca, |tls, request| {
        let reply = answer(request);
        let _ = tls.write_all(&reply);
        tls.conn.send_close_notify();
        let _ = tls.flush();
    })
}

/// Serves one connection: reads the request, then lets `reply` answer however it likes
/// over the TLS stream (its socket included). Returns the URL and the request.
fn serve_with(
    ca: &TestCa,
    reply: impl FnOnce(&mut StreamOwned<ServerConnection, TcpStream>, &[u8]) + Send + 'static,
) -> (String, thread::JoinHandle<Vec<u8>>) {
    let config = server_config(ca);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "https://127.0.0.1:{}/token",
        listener.local_addr().unwrap().port()
    );
    let handle = thread::spawn(move || {
        let (socket, _) = listener.accept().unwrap();
        socket.set_nodelay(true).unwrap();
        let conn = ServerConnection::new(config).unwrap();
        let mut tls = StreamOwned::new(conn, socket);
        let mut request = Vec::new();
        let mut buf = [0u8; 4096];
        while !request_complete(&request) {
            match tls.read(&mut buf) {
                Ok(0) | Err(_) => return request,
                Ok(n) => request.extend_from_slice(&buf[..n]),
            }
        }
        reply(&mut tls, &request);
        request
    });
    (url, handle)
}

/// A TLS server configuration for 127.0.0.1, signed by `ca`.
fn server_config(ca: &TestCa) -> Arc<ServerConfig> {
    let (cert, key) = server_identity(ca, "127.0.0.1");
    let config = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()],
            PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
        )
        .unwrap();
    Arc::new(config)
}

/// Encrypts `plaintext` and close_notify into records, returned rather than sent.
fn sealed(tls: &mut StreamOwned<ServerConnection, TcpStream>, plaintext: &[u8]) -> Vec<u8> {
    tls.conn.writer().write_all(plaintext).unwrap();
    tls.conn.send_close_notify();
    let mut records = Vec::new();
    while tls.conn.wants_write() {
        tls.conn.write_tls(&mut records).unwrap();
    }
    records
}

fn request_complete(request: &[u8]) -> bool {
    let text = String::from_utf8_lossy(request);
    let Some(end) = text.find("\r\n\r\n") else {
        return false;
    };
    let length = text[..end]
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .map_or(0, |v| v.trim().parse::<usize>().unwrap());
    request.len() >= end + 4 + length
}

fn config_for(ca: &TestCa) -> Arc<ClientConfig> {
    let spec = TrustSpec {
        ca_bundle: ca.pem.clone(),
        ..TrustSpec::default()
    };
    TlsCache::new(CacheSettings::default())
        .prepare(&spec, 0)
        .unwrap()
        .config
}

#[test]
fn a_post_gets_status_headers_and_body_and_leaves_in_one_write() {
    let ca = ca("exchange");
    let (url, server) = serve_once(&ca, |_| {
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 17\r\n\r\n{\"access_token\":1}".to_vec()
    });
    let mut connector = TcpConnector::default();
    let request = Request::form(url, &[("grant_type", "client_credentials")]);
    let response = round_trip(&mut connector, config_for(&ca), &request, 5_000).unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(response.header("Content-Type"), Some("application/json"));
    assert_eq!(response.body, b"{\"access_token\":1}"[..17]);
    let received = String::from_utf8(server.join().unwrap()).unwrap();
    assert!(
        received.starts_with("POST /token HTTP/1.1\r\n"),
        "{received}"
    );
    assert!(
        received.ends_with("\r\n\r\ngrant_type=client_credentials"),
        "{received}"
    );
    // TLS 1.3: the ClientHello, then the Finished message with the whole request.
    assert_eq!(connector.writes.lock().unwrap().len(), 2);
}

#[test]
fn a_chunked_body_is_reassembled() {
    let ca = ca("chunked");
    let (url, _server) = serve_once(&ca, |_| {
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n".to_vec()
    });
    let response = round_trip(
        &mut TcpConnector::default(),
        config_for(&ca),
        &Request::get(url),
        5_000,
    )
    .unwrap();
    assert_eq!(response.body, b"hello world");
}

#[test]
fn a_redirect_is_returned_not_followed() {
    let ca = ca("redirect");
    let (url, _server) = serve_once(&ca, |_| {
        b"HTTP/1.1 302 Found\r\nlocation: https://169.254.169.254/latest\r\ncontent-length: 0\r\n\r\n".to_vec()
    });
    let response = round_trip(
        &mut TcpConnector::default(),
        config_for(&ca),
        &Request::get(url),
        5_000,
    )
    .unwrap();
    assert_eq!(response.status, 302);
    assert_eq!(
        response.header("location"),
        Some("https://169.254.169.254/latest")
    );
}

#[test]
fn an_oversize_body_is_refused() {
    let ca = ca("oversize");
    let (url, _server) = serve_once(&ca, |_| {
        let mut reply = format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n",
            MAX_RESPONSE_BODY + 10
        )
        .into_bytes();
        reply.extend(std::iter::repeat_n(b'a', MAX_RESPONSE_BODY + 10));
        reply
    });
    let result = round_trip(
        &mut TcpConnector::default(),
        config_for(&ca),
        &Request::get(url),
        5_000,
    );
    assert_eq!(
        result,
        Err(HttpError::TooLarge(Limit::Body(MAX_RESPONSE_BODY)))
    );
}

#[test]
fn a_server_signed_by_another_ca_is_a_tls_error() {
    let (ours, theirs) = (ca("ours"), ca("theirs"));
    let (url, _server) = serve_once(&theirs, |_| b"HTTP/1.1 200 OK\r\n\r\n".to_vec());
    let result = round_trip(
        &mut TcpConnector::default(),
        config_for(&ours),
        &Request::get(url),
        5_000,
    );
    // Refused in the handshake: the request never left.
    assert!(
        matches!(&result, Err(HttpError::NotSent(e)) if matches!(&**e, HttpError::Tls(m) if m.contains("UnknownIssuer"))),
        "{result:?}"
    );
}

#[test]
fn a_server_that_hangs_up_without_answering_is_a_transport_error() {
    let ca = ca("hangup");
    let (url, _server) = serve_once(&ca, |_| Vec::new());
    let result = round_trip(
        &mut TcpConnector::default(),
        config_for(&ca),
        &Request::get(url),
        5_000,
    );
    assert!(
        matches!(result, Err(HttpError::Transport(NetError::Reset(_)))),
        "{result:?}"
    );
}

#[test]
fn bytes_after_close_notify_in_the_same_write_are_dropped_not_spun_on() {
    let ca = ca("after-close-notify");
    for body_framing in ["content-length: 2\r\n", ""] {
        let (url, _server) = serve_with(&ca, move |tls, _| {
            let answer = format!("HTTP/1.1 200 OK\r\n{body_framing}\r\n{{}}");
            let mut flight = sealed(tls, answer.as_bytes());
            // Unauthenticated bytes anyone on the path could add.
            flight.extend(std::iter::repeat_n(0x17, 8 * 1024));
            let _ = tls.sock.write_all(&flight);
            thread::sleep(Duration::from_secs(3));
        });
        let started = Instant::now();
        let response = round_trip(
            &mut TcpConnector::default(),
            config_for(&ca),
            &Request::get(url),
            2_000,
        )
        .unwrap();
        assert_eq!(response.body, b"{}", "{body_framing:?}");
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{body_framing:?}"
        );
    }
}

#[test]
fn a_server_dripping_its_answer_is_cut_off_at_the_deadline() {
    let ca = ca("drip");
    let (url, _server) = serve_with(&ca, |tls, _| {
        // One byte per record, each in time for a read given the whole timeout.
        for byte in b"HTTP/1.1 200 OK\r\n".iter().cycle().take(20) {
            if tls.write_all(&[*byte]).and_then(|()| tls.flush()).is_err() {
                return;
            }
            thread::sleep(Duration::from_millis(600));
        }
    });
    let started = Instant::now();
    let result = round_trip(
        &mut TcpConnector::default(),
        config_for(&ca),
        &Request::get(url),
        800,
    );
    assert_eq!(result, Err(HttpError::Transport(NetError::Timeout)));
    let took = started.elapsed();
    assert!(took < Duration::from_millis(800 + 300), "took {took:?}");
}

#[test]
fn a_server_silent_in_the_handshake_times_out_with_the_request_unsent() {
    let ca = ca("silent-handshake");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "https://127.0.0.1:{}/token",
        listener.local_addr().unwrap().port()
    );
    let _server = thread::spawn(move || {
        let (socket, _) = listener.accept().unwrap();
        thread::sleep(Duration::from_secs(2));
        drop(socket);
    });
    let result = round_trip(
        &mut TcpConnector::default(),
        config_for(&ca),
        &Request::form(url, &[("grant_type", "refresh_token")]),
        500,
    );
    assert_eq!(
        result,
        Err(HttpError::NotSent(Box::new(HttpError::Transport(
            NetError::Timeout
        ))))
    );
    assert!(!result.unwrap_err().may_have_reached());
}

#[test]
fn a_timeout_after_the_request_left_may_have_reached_the_server() {
    let ca = ca("silent-after-request");
    let (url, _server) = serve_with(&ca, |_, _| thread::sleep(Duration::from_secs(2)));
    let result = round_trip(
        &mut TcpConnector::default(),
        config_for(&ca),
        &Request::form(url, &[("grant_type", "refresh_token")]),
        500,
    );
    assert_eq!(result, Err(HttpError::Transport(NetError::Timeout)));
    assert!(result.unwrap_err().may_have_reached());
}
