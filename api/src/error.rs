//! The one error of every OAuth flow (WIT `oauth-error`).
//!
//! No case ever carries a secret: the component removes secrets from server text
//! before it builds one, and configuration messages name settings, never their values.

use core::fmt;

use crate::net::NetError;

/// An RFC 6749 §5.2 error response (WIT `protocol-error`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProtocolError {
    /// The HTTP status (a 2xx when the server put an `error` in a success body).
    pub status: u16,
    /// The `error` code, e.g. `invalid_grant`.
    pub error: String,
    /// `error_description`, if sent (redacted, at most 256 characters).
    pub description: Option<String>,
    /// `error_uri`, if sent.
    pub uri: Option<String>,
    /// `Retry-After`, in seconds from now, if sent.
    pub retry_after: Option<u64>,
}

/// A non-2xx answer without a standard error body (WIT `http-status-error`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HttpStatusError {
    /// The HTTP status.
    pub status: u16,
    /// At most 256 characters of the body (or, for a redirect, the status and the
    /// location's host), with anything that looks like a secret removed.
    pub snippet: String,
    /// `Retry-After`, in seconds from now, if sent.
    pub retry_after: Option<u64>,
}

/// A session that refuses to call the server for now (WIT `backoff-error`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BackoffError {
    /// When the next request will be sent, Unix seconds.
    pub retry_at: u64,
    /// Consecutive transient failures so far.
    pub failures: u32,
    /// The last failure, described.
    pub last_error: String,
}

/// Why an OAuth operation failed: one classification for every flow.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum OAuthError {
    /// Rejected before any request: missing endpoint, bad URL, unknown session, a grant
    /// that does not fit the call. The text says what to fix.
    Config(String),
    /// The server answered with an RFC 6749 §5.2 error body.
    Protocol(ProtocolError),
    /// A non-2xx answer without a standard body, including redirects, which are never
    /// followed.
    HttpStatus(HttpStatusError),
    /// A 2xx answer that is not a usable token (or device authorization, or metadata).
    /// The text says what is missing.
    InvalidResponse(String),
    /// The TLS handshake or the trust material failed. Never retried.
    Tls(String),
    /// The connection failed.
    Transport(NetError),
    /// A person must authorize again: the refresh token was refused (`invalid_grant`)
    /// or there is nothing to refresh with.
    AuthorizationRequired(String),
    /// The session is backing off after transient failures.
    Backoff(BackoffError),
    /// The shared store could not be used where the call needed it (the renewal lease,
    /// a single code redemption), or the lease holder's result did not arrive within
    /// the call's deadline. The text says which.
    Store(String),
}

impl OAuthError {
    /// The server's `Retry-After`, in seconds, when it sent one.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            Self::Protocol(e) => e.retry_after,
            Self::HttpStatus(e) => e.retry_after,
            _ => None,
        }
    }

    /// The case's name in snake case (`protocol`, `http_status`, `transport`, ...):
    /// the `outcome` label of the token request metrics.
    pub fn case_name(&self) -> &'static str {
        match self {
            Self::Config(_) => "config",
            Self::Protocol(_) => "protocol",
            Self::HttpStatus(_) => "http_status",
            Self::InvalidResponse(_) => "invalid_response",
            Self::Tls(_) => "tls",
            Self::Transport(_) => "transport",
            Self::AuthorizationRequired(_) => "authorization_required",
            Self::Backoff(_) => "backoff",
            Self::Store(_) => "store",
        }
    }

    /// The RFC 6749 §5.2 error code, when the server sent one.
    pub fn protocol_code(&self) -> Option<&str> {
        match self {
            Self::Protocol(e) => Some(e.error.as_str()),
            _ => None,
        }
    }

    /// The same error with `f` applied to every text it carries: the one place that
    /// knows them all, so that redaction cannot miss a case added later.
    pub fn map_texts(self, f: impl Fn(String) -> String) -> Self {
        let f = &f;
        match self {
            Self::Config(m) => Self::Config(f(m)),
            Self::Protocol(e) => Self::Protocol(ProtocolError {
                error: f(e.error),
                description: e.description.map(f),
                uri: e.uri.map(f),
                ..e
            }),
            Self::HttpStatus(e) => Self::HttpStatus(HttpStatusError {
                snippet: f(e.snippet),
                ..e
            }),
            Self::InvalidResponse(m) => Self::InvalidResponse(f(m)),
            Self::Tls(m) => Self::Tls(f(m)),
            Self::Transport(net) => Self::Transport(net.map_text(f)),
            Self::AuthorizationRequired(m) => Self::AuthorizationRequired(f(m)),
            Self::Backoff(e) => Self::Backoff(BackoffError {
                last_error: f(e.last_error),
                ..e
            }),
            Self::Store(m) => Self::Store(f(m)),
        }
    }
}

fn retry_hint(f: &mut fmt::Formatter<'_>, retry_after: Option<u64>) -> fmt::Result {
    match retry_after {
        Some(seconds) => write!(f, "; the server asks to retry after {seconds} s"),
        None => Ok(()),
    }
}

impl fmt::Display for OAuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Config(why) => write!(f, "oauth configuration error: {why}"),
            Self::Protocol(e) => {
                write!(
                    f,
                    "the authorization server refused the request (http {}): {}",
                    e.status, e.error
                )?;
                if let Some(description) = &e.description {
                    write!(f, ": {description}")?;
                }
                if let Some(uri) = &e.uri {
                    write!(f, " (see {uri})")?;
                }
                retry_hint(f, e.retry_after)
            }
            Self::HttpStatus(e) => {
                write!(
                    f,
                    "the authorization server answered http {} without an oauth error body",
                    e.status
                )?;
                retry_hint(f, e.retry_after)?;
                if !e.snippet.is_empty() {
                    write!(f, ": {}", e.snippet)?;
                }
                Ok(())
            }
            Self::InvalidResponse(why) => write!(
                f,
                "the authorization server sent an unusable response: {why}; check the endpoint url"
            ),
            Self::Tls(why) => write!(
                f,
                "tls with the authorization server failed: {why}; check the client's trust material"
            ),
            Self::Transport(e) => write!(
                f,
                "could not reach the authorization server: {e}; retry later"
            ),
            Self::AuthorizationRequired(why) => write!(
                f,
                "a person must authorize again: {why}; start begin_authorization or begin_device_authorization"
            ),
            Self::Backoff(e) => write!(
                f,
                "backing off after {} consecutive failures: no request before {} (unix seconds); last error: {}",
                e.failures, e.retry_at, e.last_error
            ),
            Self::Store(why) => write!(f, "token store: {why}; retry when the store is reachable"),
        }
    }
}

impl std::error::Error for OAuthError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_lowercase_and_says_what_to_do() {
        let e = OAuthError::Protocol(ProtocolError {
            status: 400,
            error: "invalid_client".into(),
            description: Some("unknown client".into()),
            uri: None,
            retry_after: Some(3),
        });
        assert_eq!(
            e.to_string(),
            "the authorization server refused the request (http 400): invalid_client: unknown client; the server asks to retry after 3 s"
        );
        let e = OAuthError::Backoff(BackoffError {
            retry_at: 10,
            failures: 2,
            last_error: "x".into(),
        });
        assert!(
            e.to_string()
                .starts_with("backing off after 2 consecutive failures")
        );
        let e = OAuthError::Transport(NetError::Timeout);
        assert!(e.to_string().ends_with("retry later"));
    }

    #[test]
    fn map_texts_reaches_every_text_of_every_case() {
        let shout = |t: String| t.to_uppercase();
        let e = OAuthError::Protocol(ProtocolError {
            status: 400,
            error: "e".into(),
            description: Some("d".into()),
            uri: Some("u".into()),
            retry_after: None,
        })
        .map_texts(shout);
        assert_eq!(
            e,
            OAuthError::Protocol(ProtocolError {
                status: 400,
                error: "E".into(),
                description: Some("D".into()),
                uri: Some("U".into()),
                retry_after: None,
            })
        );
        assert_eq!(
            OAuthError::Transport(NetError::Reset("r".into())).map_texts(shout),
            OAuthError::Transport(NetError::Reset("R".into()))
        );
        assert_eq!(
            OAuthError::Transport(NetError::Timeout).map_texts(shout),
            OAuthError::Transport(NetError::Timeout)
        );
    }
}
