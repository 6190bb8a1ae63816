//! HTTP/1.1 over TLS over the host's transport.
//!
//! The request and response types here are plain data, so the OAuth code builds and
//! classifies them without a network; [`client`] is the one place that does I/O.
//! Redirects are never followed, bodies are capped, and every call has a deadline.

pub mod client;
mod connection;
mod idle;
mod response;
mod wire;

use gateway_auth_api::NetError;

pub use idle::{IDLE_LIMIT, IdleConnections, MAX_IDLE, PER_ENDPOINT};
pub use response::{KeepAlive, MAX_CHUNK_LINE, MAX_HEAD, MAX_HEADERS, ResponseParser};
pub use wire::{Method, Request, Response};

/// The largest response body read, in bytes; a larger one fails with
/// [`HttpError::TooLarge`] ([`Limit::Body`]).
pub const MAX_RESPONSE_BODY: usize = 1024 * 1024;

/// Why an HTTP round trip produced no response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HttpError {
    /// The URL is not an `https` URL this client can reach.
    InvalidUrl(String),
    /// The trust material was rejected, or the TLS handshake or record layer failed.
    Tls(String),
    /// The transport failed before a complete response arrived.
    Transport(NetError),
    /// A part of the response is larger than its bound.
    TooLarge(Limit),
    /// The peer sent something that is not HTTP/1.1.
    Malformed(String),
    /// The round trip failed (for the reason inside) before any byte of the request
    /// left, so the server cannot have acted on it: a single-use credential in it is
    /// still unspent.
    NotSent(Box<HttpError>),
}

impl HttpError {
    /// Whether the request may have reached the server.
    pub fn may_have_reached(&self) -> bool {
        !matches!(self, Self::NotSent(_))
    }
}

impl core::fmt::Display for HttpError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::InvalidUrl(why) => write!(f, "invalid url: {why}"),
            Self::Tls(why) => write!(f, "tls: {why}"),
            Self::Transport(err) => write!(f, "transport: {err}"),
            Self::TooLarge(limit) => write!(f, "{limit}"),
            Self::Malformed(why) => write!(f, "malformed http response: {why}"),
            Self::NotSent(err) => err.fmt(f),
        }
    }
}

/// The bound a response broke, with its value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    /// The head (status line and fields), in bytes.
    Head(usize),
    /// The number of header fields.
    HeaderCount(usize),
    /// A chunk-size line, in bytes.
    ChunkLine(usize),
    /// The trailer section, in bytes.
    Trailers(usize),
    /// The body, in bytes.
    Body(usize),
}

impl core::fmt::Display for Limit {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Head(n) => write!(f, "response head larger than {n} bytes"),
            Self::HeaderCount(n) => write!(f, "more than {n} response header fields"),
            Self::ChunkLine(n) => write!(f, "chunk-size line longer than {n} bytes"),
            Self::Trailers(n) => write!(f, "response trailers larger than {n} bytes"),
            Self::Body(n) => write!(f, "response body larger than {n} bytes"),
        }
    }
}
