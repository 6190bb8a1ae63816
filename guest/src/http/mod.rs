//! HTTP/1.1 over TLS over the host's transport.
//!
//! The request and response types here are plain data, so the OAuth code builds and
//! classifies them without a network; [`exchange`] is the one place that does I/O.
//! Redirects are never followed, bodies are capped, and every call has a deadline.

pub mod exchange;
mod wire;

pub use wire::{Method, Request, Response};

/// The largest response body read, in bytes; a larger one fails with
/// [`HttpError::TooLarge`].
pub const MAX_RESPONSE_BODY: usize = 1024 * 1024;

/// Why the host's transport failed; mirrors the WIT `net-error`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetError {
    /// The host's egress policy refused the destination.
    Denied(String),
    /// The name did not resolve.
    Resolve(String),
    /// The TCP connection could not be established.
    Connect(String),
    /// The deadline passed.
    Timeout,
    /// The peer reset the connection.
    Reset(String),
    /// The connection was closed.
    Closed,
    /// Any other failure.
    Other(String),
}

impl core::fmt::Display for NetError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Denied(why) => write!(f, "egress denied: {why}"),
            Self::Resolve(why) => write!(f, "name resolution failed: {why}"),
            Self::Connect(why) => write!(f, "connection failed: {why}"),
            Self::Timeout => f.write_str("timed out"),
            Self::Reset(why) => write!(f, "connection reset: {why}"),
            Self::Closed => f.write_str("connection closed"),
            Self::Other(why) => write!(f, "i/o error: {why}"),
        }
    }
}

/// Why an HTTP exchange produced no response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HttpError {
    /// The URL is not an `https` URL this client can reach.
    InvalidUrl(String),
    /// The trust material was rejected, or the TLS handshake or record layer failed.
    Tls(String),
    /// The transport failed before a complete response arrived.
    Transport(NetError),
    /// The response body is larger than the cap, in bytes.
    TooLarge(usize),
    /// The peer sent something that is not HTTP/1.1.
    Malformed(String),
}

impl core::fmt::Display for HttpError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::InvalidUrl(why) => write!(f, "invalid url: {why}"),
            Self::Tls(why) => write!(f, "tls: {why}"),
            Self::Transport(err) => write!(f, "transport: {err}"),
            Self::TooLarge(limit) => write!(f, "response body larger than {limit} bytes"),
            Self::Malformed(why) => write!(f, "malformed http response: {why}"),
        }
    }
}
