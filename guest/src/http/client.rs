//! One HTTP/1.1 round trip (a request and its response) over TLS: the only place the
//! flows' bytes meet a connection.
//!
//! rustls (sans-IO) encrypts, ureq-proto (sans-IO) frames, and the [`Connector`] moves
//! bytes. The request head and body are encrypted as one write, so they leave in one
//! TCP segment instead of stalling on Nagle and delayed ACK. Redirects are returned, not
//! followed; the response is parsed as it arrives, within the bounds of
//! [`ResponseParser`]. The whole round trip is bounded by `timeout_ms`: every transport
//! operation is given only the time left, and nothing is written once it has run out.
//!
//! Connections are kept alive between round trips ([`IdleConnections`]). Only a request
//! that may be replayed ([`Request::replay_safe`]) goes over a kept one: a server may
//! close an idle connection just as a request leaves, and then the request is sent
//! again on a new connection, which is harmless only for such a request. It is sent
//! again only when the server ended the connection before any byte of an answer, so
//! a closed idle connection costs no failed request.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::ClientConnection;
use rustls::client::ClientConfig;
use rustls_pki_types::ServerName;
use ureq_proto::client::{Call, SendRequestResult};

use super::connection::TlsConnection;
use super::idle::{Endpoint, IdleConnections};
use super::response::{KeepAlive, ResponseParser};
use super::wire::{Method, Request, Response};
use super::{HttpError, NetError};

/// An open byte stream.
pub trait Stream {
    /// Writes all of `bytes` within `timeout_ms`.
    fn write_all(&mut self, bytes: &[u8], timeout_ms: u32) -> Result<(), NetError>;
    /// Reads at most `max` bytes, waiting at most `timeout_ms`; an empty result means
    /// the peer closed. With `timeout_ms` 0 it takes only what has already arrived
    /// (`timeout` when nothing has).
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

/// Sends `request` over TLS configured by `config` and returns the whole response,
/// over a connection kept in `idle` when the request may be replayed, and keeping the
/// connection there afterwards when the answer allows.
pub fn round_trip<C: Connector>(
    connector: &mut C,
    idle: &mut IdleConnections<C::Stream>,
    config: Arc<ClientConfig>,
    request: &Request,
    timeout_ms: u32,
) -> Result<Response, HttpError> {
    let now = Instant::now();
    let deadline = now + Duration::from_millis(u64::from(timeout_ms));
    let not_sent = |e: HttpError| HttpError::NotSent(Box::new(e));
    let target = request.target().map_err(not_sent)?;
    let bytes = encode(request).map_err(not_sent)?;
    let endpoint = Endpoint {
        host: target.host,
        port: target.port,
        config,
    };
    idle.sweep(now);
    // Whether an attempt on a kept-alive connection may have reached the server.
    let mut reached = false;
    while let Some(mut conn) = request.replay_safe.then(|| idle.take(&endpoint)).flatten() {
        if !conn.still_open() {
            continue;
        }
        conn.begin(deadline);
        match exchange(&mut conn, &bytes) {
            Ok((response, keep_alive)) => {
                idle.keep(endpoint, conn, response.status, keep_alive, Instant::now());
                return Ok(response);
            }
            // The server closed it first: it never took the request.
            Err(e) if conn.closed_before_answering(&e) => reached |= conn.request_left,
            Err(e) => return Err(e),
        }
    }
    let server_name = ServerName::try_from(endpoint.host.clone())
        .map_err(|e| not_sent(HttpError::InvalidUrl(format!("{}: {e}", endpoint.host))))?;
    let tls = ClientConnection::new(endpoint.config.clone(), server_name)
        .map_err(|e| not_sent(HttpError::Tls(e.to_string())))?;
    let not_sent = |e: HttpError| if reached { e } else { not_sent(e) };
    let left = u32::try_from(
        deadline
            .saturating_duration_since(Instant::now())
            .as_millis(),
    )
    .unwrap_or(u32::MAX);
    if left == 0 {
        return Err(not_sent(HttpError::Transport(NetError::Timeout)));
    }
    let stream = connector
        .connect(&endpoint.host, endpoint.port, left)
        .map_err(|e| not_sent(HttpError::Transport(e)))?;
    let mut conn = TlsConnection::new(stream, tls, deadline);
    match exchange(&mut conn, &bytes) {
        Ok((response, keep_alive)) => {
            idle.keep(endpoint, conn, response.status, keep_alive, Instant::now());
            Ok(response)
        }
        Err(e) if !conn.request_left => Err(not_sent(e)),
        Err(e) => Err(e),
    }
}

/// Sends the request's `bytes` on `conn` (after the handshake, if it is new) and reads
/// the response, with what it says about reusing the connection.
fn exchange<S: Stream>(
    conn: &mut TlsConnection<S>,
    bytes: &[u8],
) -> Result<(Response, Option<KeepAlive>), HttpError> {
    // Held by rustls until the handshake ends, then sent with the client's Finished.
    conn.tls
        .writer()
        .write_all(bytes)
        .map_err(|e| HttpError::Tls(e.to_string()))?;
    conn.flush()?;
    receive(conn)
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
fn receive<S: Stream>(
    conn: &mut TlsConnection<S>,
) -> Result<(Response, Option<KeepAlive>), HttpError> {
    let mut parser = ResponseParser::new();
    loop {
        if !conn.plain.is_empty() {
            let complete = parser.feed(&conn.plain)?;
            conn.plain.clear();
            if let Some(response) = complete {
                return Ok((response, parser.keep_alive()));
            }
        }
        if conn.fill()? == 0 {
            return parser.close().map(|response| (response, None));
        }
    }
}

#[cfg(test)]
mod tests;
