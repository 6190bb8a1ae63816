//! The drip switch over real HTTPS: a selected `/token` answer leaves one byte per TLS
//! record after the request was processed, so a client that gives up on it has lost an
//! answer the server acted on.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gateway_auth_devserver::{DevServer, Drip, Options, defaults};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use serde_json::Value;

/// A socket that keeps a copy of every byte read from it, to count TLS records.
struct Tee {
    tcp: TcpStream,
    raw: Vec<u8>,
}

impl Read for Tee {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.tcp.read(buf)?;
        self.raw.extend_from_slice(&buf[..n]);
        Ok(n)
    }
}

impl Write for Tee {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.tcp.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.tcp.flush()
    }
}

/// One connection to `server`, with its received ciphertext kept.
fn connect(server: &DevServer) -> StreamOwned<ClientConnection, Tee> {
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(server.ca_pem().as_bytes()).unwrap())
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = TcpStream::connect(("127.0.0.1", server.port())).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let tls = ClientConnection::new(Arc::new(config), name).unwrap();
    StreamOwned::new(
        tls,
        Tee {
            tcp,
            raw: Vec::new(),
        },
    )
}

/// Sends a token request of the bundled `client_secret_post` client.
fn send_token_request(stream: &mut StreamOwned<ClientConnection, Tee>, form: &[(&str, &str)]) {
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("client_id", defaults::POST_CLIENT_ID)
        .append_pair("client_secret", defaults::POST_CLIENT_SECRET)
        .extend_pairs(form)
        .finish();
    let request = format!(
        "POST /token HTTP/1.1\r\nHost: 127.0.0.1\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).unwrap();
}

/// An answer: its bytes, head included, and the TLS records it came in.
struct Answer {
    bytes: Vec<u8>,
    status: u16,
    head: String,
    body: Value,
}

/// Reads one whole answer (it has a content-length).
fn read_answer(stream: &mut StreamOwned<ClientConnection, Tee>) -> Answer {
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 4096];
    let (head_end, length) = loop {
        if let Some(i) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&bytes[..i]).to_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse::<usize>().unwrap());
            break (i + 4, length);
        }
        let n = stream.read(&mut chunk).unwrap();
        assert!(n > 0, "the connection closed in the head");
        bytes.extend_from_slice(&chunk[..n]);
    };
    while bytes.len() < head_end + length {
        let n = stream.read(&mut chunk).unwrap();
        assert!(n > 0, "the connection closed in the body");
        bytes.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8(bytes[..head_end].to_vec()).unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let body = serde_json::from_slice(&bytes[head_end..]).unwrap();
    Answer {
        bytes,
        status,
        head,
        body,
    }
}

/// TLS 1.3 application records that carry exactly one byte: 1 byte, the inner
/// content type and a 16-byte tag.
fn one_byte_records(raw: &[u8]) -> usize {
    let mut at = 0;
    let mut count = 0;
    while at + 5 <= raw.len() {
        let length = usize::from(u16::from_be_bytes([raw[at + 3], raw[at + 4]]));
        if raw[at] == 0x17 && length == 1 + 1 + 16 {
            count += 1;
        }
        at += 5 + length;
    }
    count
}

/// A password grant of the bundled user: its refresh token.
fn password_grant(server: &DevServer) -> String {
    let mut stream = connect(server);
    send_token_request(
        &mut stream,
        &[
            ("grant_type", "password"),
            ("username", defaults::USERNAME),
            ("password", defaults::PASSWORD),
        ],
    );
    let answer = read_answer(&mut stream);
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer.body["refresh_token"].as_str().unwrap().to_owned()
}

fn refresh(stream: &mut StreamOwned<ClientConnection, Tee>, refresh_token: &str) {
    send_token_request(
        stream,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ],
    );
}

#[test]
fn a_dripped_refresh_answer_arrives_one_byte_per_record_and_only_the_selected_one() {
    const INTERVAL: Duration = Duration::from_millis(3);
    let server = DevServer::start(Options::default()).unwrap();
    let first = password_grant(&server);
    server.set_token_drip(Some(Drip::next("refresh_token", 1, INTERVAL)));

    let mut stream = connect(&server);
    let started = Instant::now();
    refresh(&mut stream, &first);
    let answer = read_answer(&mut stream);
    let took = started.elapsed();
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(
        answer.head.to_lowercase().contains("connection: close"),
        "{}",
        answer.head
    );
    assert_eq!(
        one_byte_records(&stream.sock.raw),
        answer.bytes.len(),
        "every byte of the answer, head included, in a record of its own"
    );
    let waits = INTERVAL * (answer.bytes.len() as u32 - 1);
    assert!(took >= waits, "{took:?} for {} bytes", answer.bytes.len());
    assert_eq!(server.dripped_answers(), 1);
    assert_eq!(server.dripped_refresh_tokens(), vec![first.clone()]);
    assert_eq!(server.refresh_token_presentations(&first), 1);

    // The switch was for one answer: the next refresh comes back whole.
    let second = answer.body["refresh_token"].as_str().unwrap().to_owned();
    let mut stream = connect(&server);
    refresh(&mut stream, &second);
    let answer = read_answer(&mut stream);
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(one_byte_records(&stream.sock.raw), 0);
    assert_eq!(server.dripped_answers(), 1);
    assert_eq!(server.most_presentations_of_a_refresh_token(), 1);
}

#[test]
fn a_refresh_whose_dripped_answer_was_abandoned_was_rotated_and_its_replay_is_caught() {
    let server = DevServer::start(Options::default()).unwrap();
    server.set_reuse_detection(true);
    let first = password_grant(&server);
    server.set_token_drip(Some(Drip::next(
        "refresh_token",
        1,
        Duration::from_millis(100),
    )));

    let mut stream = connect(&server);
    refresh(&mut stream, &first);
    let mut byte = [0u8; 1];
    assert_eq!(stream.read(&mut byte).unwrap(), 1);
    assert_eq!(&byte, b"H", "the answer has begun");
    // The client gives up here, as one past its deadline does.
    drop(stream);

    let mut stream = connect(&server);
    refresh(&mut stream, &first);
    let answer = read_answer(&mut stream);
    assert_eq!(
        (answer.status, answer.body["error"].as_str()),
        (400, Some("invalid_grant")),
        "the abandoned refresh had rotated the token: {}",
        answer.body
    );
    assert_eq!(server.reuse_detections(), 1);
    assert_eq!(server.refresh_token_presentations(&first), 2);
    assert_eq!(server.most_presentations_of_a_refresh_token(), 2);
}

#[test]
fn the_option_drips_every_token_answer() {
    let server = DevServer::start(Options {
        token_drip_ms: 1,
        ..Options::default()
    })
    .unwrap();
    let mut stream = connect(&server);
    send_token_request(&mut stream, &[("grant_type", "client_credentials")]);
    let answer = read_answer(&mut stream);
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(one_byte_records(&stream.sock.raw), answer.bytes.len());
    assert_eq!(server.dripped_answers(), 1);

    // Turned off, answers come back whole.
    server.set_token_drip(None);
    let mut stream = connect(&server);
    send_token_request(&mut stream, &[("grant_type", "client_credentials")]);
    assert_eq!(read_answer(&mut stream).status, 200);
    assert_eq!(one_byte_records(&stream.sock.raw), 0);
    assert_eq!(server.dripped_answers(), 1);
}
