//! One HTTP/1.1 round trip (a request and its response) over TLS: the only place the flows' bytes meet
//! a connection.
//!
//! rustls (sans-IO) encrypts, ureq-proto (sans-IO) frames, and the [`Connector`] moves
//! bytes. The request head and body are encrypted as one write, so they leave in one
//! TCP segment instead of stalling on Nagle and delayed ACK. Redirects are returned, not
//! followed; the response is parsed as it arrives, within the bounds of
//! [`ResponseParser`]. The whole round trip is bounded by `timeout_ms`: every transport
//! operation is given only the time left, and nothing is written once it has run out.
//!
//! Bytes that follow the peer's close_notify are unauthenticated (anyone on the path
//! can inject them) and are dropped: rustls takes nothing after close_notify, so a loop
//! feeding it must stop there rather than wait for the input to shrink.

use std::io::{ErrorKind, Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::ClientConnection;
use rustls::client::ClientConfig;
use rustls_pki_types::ServerName;
use ureq_proto::client::{Call, SendRequestResult};

use super::response::ResponseParser;
use super::wire::{Method, Request, Response};
use super::{HttpError, NetError};

/// How much ciphertext one transport read asks for: one full TLS record.
const READ_CHUNK: u32 = 16 * 1024 + 256;

/// An open byte stream.
pub trait Stream {
    /// Writes all of `bytes` within `timeout_ms`.
    fn write_all(&mut self, bytes: &[u8], timeout_ms: u32) -> Result<(), NetError>;
    /// Reads at most `max` bytes, waiting at most `timeout_ms`; an empty result means
    /// the peer closed.
    fn read(&mut self, max: u32, timeout_ms: u32) -> Result<Vec<u8>, NetError>;
}

/// Opens byte streams: the host's `transport` in the component, TCP in tests.
pub trait Connector {
    /// The stream type.
    type Stream: Stream;
    /// Opens a stream to `host`:`port`; `timeout_ms` bounds resolution and the
    /// connection attempts.
    fn connect(&mut self, host: &str, port: u16, timeout_ms: u32)
    -> Result<Self::Stream, NetError>;
}

/// Sends `request` over TLS configured by `config` and returns the whole response.
pub fn round_trip<C: Connector>(
    connector: &mut C,
    config: Arc<ClientConfig>,
    request: &Request,
    timeout_ms: u32,
) -> Result<Response, HttpError> {
    let deadline = Instant::now() + Duration::from_millis(u64::from(timeout_ms));
    let not_sent = |e: HttpError| HttpError::NotSent(Box::new(e));
    let target = request.target().map_err(not_sent)?;
    let bytes = encode(request).map_err(not_sent)?;
    let server_name = ServerName::try_from(target.host.clone())
        .map_err(|e| not_sent(HttpError::InvalidUrl(format!("{}: {e}", target.host))))?;
    let tls = ClientConnection::new(config, server_name)
        .map_err(|e| not_sent(HttpError::Tls(e.to_string())))?;
    let stream = connector
        .connect(&target.host, target.port, timeout_ms)
        .map_err(|e| not_sent(HttpError::Transport(e)))?;
    let mut conn = TlsStream {
        stream,
        tls,
        plain: Vec::new(),
        deadline,
        peer_closed: false,
        request_left: false,
    };
    // Held by rustls until the handshake ends, then sent with the client's Finished.
    conn.tls
        .writer()
        .write_all(&bytes)
        .map_err(|e| not_sent(HttpError::Tls(e.to_string())))?;
    let answer = conn.flush().and_then(|()| receive(&mut conn));
    match answer {
        Err(e) if !conn.request_left => Err(not_sent(e)),
        other => other,
    }
}

/// The request's bytes, head and body together.
fn encode(request: &Request) -> Result<Vec<u8>, HttpError> {
    let malformed = |e: ureq_proto::Error| HttpError::InvalidUrl(e.to_string());
    let mut builder = ureq_proto::http::Request::builder()
        .method(match request.method {
            Method::Get => "GET",
            Method::Post => "POST",
        })
        .uri(&request.url)
        // One exchange per connection: TLS resumption, not keep-alive, makes the next
        // connection cheap, and no idle socket outlives the call.
        .header("connection", "close")
        .header(
            "user-agent",
            concat!("gateway-auth/", env!("CARGO_PKG_VERSION")),
        );
    for (name, value) in &request.headers {
        builder = builder.header(name, value);
    }
    if request.method == Method::Post {
        builder = builder.header("content-length", request.body.len().to_string());
    }
    let http_request = builder
        .body(())
        .map_err(|e| HttpError::InvalidUrl(format!("request: {e}")))?;
    let mut call = Call::new(http_request).map_err(malformed)?.proceed();

    let mut out = vec![0u8; 16 * 1024 + request.body.len()];
    let mut used = 0;
    while !call.can_proceed() {
        used += call.write(&mut out[used..]).map_err(malformed)?;
    }
    match call.proceed().map_err(malformed)? {
        Some(SendRequestResult::RecvResponse(_)) => {}
        Some(SendRequestResult::SendBody(mut body)) => {
            let mut input = &request.body[..];
            while !input.is_empty() {
                let (taken, written) = body.write(input, &mut out[used..]).map_err(malformed)?;
                input = &input[taken..];
                used += written;
            }
            let (_, written) = body.write(&[], &mut out[used..]).map_err(malformed)?;
            used += written;
            body.proceed()
                .ok_or_else(|| HttpError::InvalidUrl("request body incomplete".into()))?;
        }
        _ => return Err(HttpError::InvalidUrl("unexpected request state".into())),
    }
    out.truncate(used);
    Ok(out)
}

/// Feeds the decrypted bytes to the response parser as they arrive: nothing is kept
/// beyond what the parser bounds.
fn receive<S: Stream>(conn: &mut TlsStream<S>) -> Result<Response, HttpError> {
    let mut parser = ResponseParser::new();
    loop {
        if !conn.plain.is_empty() {
            let complete = parser.feed(&conn.plain)?;
            conn.plain.clear();
            if let Some(response) = complete {
                return Ok(response);
            }
        }
        if conn.fill()? == 0 {
            return parser.close();
        }
    }
}

/// A TLS session over a [`Stream`], with decrypted bytes not yet consumed in `plain`.
struct TlsStream<S> {
    stream: S,
    tls: ClientConnection,
    plain: Vec<u8>,
    deadline: Instant,
    /// The peer sent close_notify: nothing more will be read.
    peer_closed: bool,
    /// A write was begun after the handshake, so the request may have left.
    request_left: bool,
}

impl<S: Stream> TlsStream<S> {
    /// The milliseconds left before the deadline, or the timeout once there are none.
    fn left(&self) -> Result<u32, HttpError> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        match u32::try_from(left.as_millis()) {
            Ok(0) => Err(HttpError::Transport(NetError::Timeout)),
            Ok(ms) => Ok(ms),
            Err(_) => Ok(u32::MAX),
        }
    }

    /// Sends every pending TLS record in one transport write, within the time left.
    fn flush(&mut self) -> Result<(), HttpError> {
        let mut out = Vec::new();
        while self.tls.wants_write() {
            self.tls
                .write_tls(&mut out)
                .map_err(|e| HttpError::Tls(e.to_string()))?;
        }
        if !out.is_empty() {
            let left = self.left()?;
            self.request_left |= !self.tls.is_handshaking();
            self.stream
                .write_all(&out, left)
                .map_err(HttpError::Transport)?;
        }
        Ok(())
    }

    /// Appends newly decrypted bytes to `plain`; returns how many, 0 at end of stream
    /// (the socket closed, or the peer sent close_notify).
    fn fill(&mut self) -> Result<usize, HttpError> {
        let before = self.plain.len();
        loop {
            self.drain_plaintext()?;
            if self.plain.len() > before {
                return Ok(self.plain.len() - before);
            }
            if self.peer_closed {
                return Ok(0);
            }
            self.flush()?;
            let left = self.left()?;
            let data = self
                .stream
                .read(READ_CHUNK, left)
                .map_err(HttpError::Transport)?;
            if data.is_empty() {
                return Ok(0);
            }
            let mut input = &data[..];
            while !input.is_empty() {
                let taken = self
                    .tls
                    .read_tls(&mut input)
                    .map_err(|e| HttpError::Tls(e.to_string()))?;
                let processed = self.tls.process_new_packets();
                if let Err(err) = processed {
                    // Send the alert that explains the failure before giving up.
                    let _ = self.flush();
                    return Err(HttpError::Tls(err.to_string()));
                }
                self.drain_plaintext()?;
                if taken == 0 {
                    // close_notify arrived: what follows it is dropped.
                    break;
                }
            }
        }
    }

    fn drain_plaintext(&mut self) -> Result<(), HttpError> {
        let mut buf = [0u8; 4096];
        loop {
            match self.tls.reader().read(&mut buf) {
                Ok(0) => {
                    self.peer_closed = true;
                    return Ok(());
                }
                Ok(n) => self.plain.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                // The peer closed without close_notify: the body framing decides
                // whether anything is missing.
                Err(e) if e.kind() == ErrorKind::UnexpectedEof => return Ok(()),
                Err(e) => return Err(HttpError::Tls(e.to_string())),
            }
        }
    }
}

#[cfg(test)]
mod tests;
