//! The transport's failures (WIT `net-error`).

use core::fmt;

/// Why an outbound byte stream could not be opened or used.
///
/// Every case except `Denied` may be transient; whether a retry is safe depends on the
/// operation that failed, not on the case alone.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum NetError {
    /// The host's egress policy refused the destination; no packet was sent. The text
    /// names the rule, never a secret.
    Denied(String),
    /// The host name did not resolve.
    Resolve(String),
    /// The TCP connection could not be established (refused, unreachable).
    Connect(String),
    /// The operation did not finish within its deadline.
    Timeout,
    /// The peer reset or aborted the connection.
    Reset(String),
    /// The connection was already closed by this side.
    Closed,
    /// Any other input/output failure, described.
    Other(String),
}

impl NetError {
    /// The same error with `f` applied to its text, if it has one.
    pub fn map_text(self, f: impl FnOnce(String) -> String) -> Self {
        match self {
            Self::Denied(m) => Self::Denied(f(m)),
            Self::Resolve(m) => Self::Resolve(f(m)),
            Self::Connect(m) => Self::Connect(f(m)),
            Self::Reset(m) => Self::Reset(f(m)),
            Self::Other(m) => Self::Other(f(m)),
            Self::Timeout => Self::Timeout,
            Self::Closed => Self::Closed,
        }
    }
}

impl fmt::Display for NetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
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

impl std::error::Error for NetError {}
