//! The one error type of every OAuth flow; mirrors the WIT `oauth-error`.
//!
//! No variant ever carries a secret: server text is passed through
//! [`redact`](super::redact) first, and configuration messages name settings, never
//! their values.

use crate::http::{HttpError, NetError};

/// An RFC 6749 §5.2 error response.
#[derive(Clone, Debug, PartialEq, Eq)]
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

/// A non-2xx answer without a standard error body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpStatusError {
    /// The HTTP status.
    pub status: u16,
    /// At most 256 characters of the body (or, for a redirect, the status and the
    /// location's host), with anything that looks like a secret removed.
    pub snippet: String,
    /// `Retry-After`, in seconds from now, if sent.
    pub retry_after: Option<u64>,
}

/// A session that refuses to call the server for now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackoffError {
    /// When the next request will be sent, Unix seconds.
    pub retry_at: u64,
    /// Consecutive transient failures so far.
    pub failures: u32,
    /// The last failure, described.
    pub last_error: String,
}

/// Why an OAuth operation failed: one classification for every flow.
#[derive(Clone, Debug, PartialEq, Eq)]
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

    /// The same error with every occurrence of `secrets` removed from its texts
    /// (see [`redact::scrub`](super::redact::scrub)).
    pub fn scrubbed(self, secrets: &[String]) -> Self {
        if secrets.is_empty() {
            return self;
        }
        let clean = |text: String| super::redact::scrub(&text, secrets);
        let clean_opt = |text: Option<String>| text.map(|t| super::redact::scrub(&t, secrets));
        match self {
            Self::Config(m) => Self::Config(clean(m)),
            Self::Protocol(e) => Self::Protocol(ProtocolError {
                error: clean(e.error),
                description: clean_opt(e.description),
                uri: clean_opt(e.uri),
                ..e
            }),
            Self::HttpStatus(e) => Self::HttpStatus(HttpStatusError {
                snippet: clean(e.snippet),
                ..e
            }),
            Self::InvalidResponse(m) => Self::InvalidResponse(clean(m)),
            Self::Tls(m) => Self::Tls(clean(m)),
            Self::Transport(net) => Self::Transport(match net {
                NetError::Denied(m) => NetError::Denied(clean(m)),
                NetError::Resolve(m) => NetError::Resolve(clean(m)),
                NetError::Connect(m) => NetError::Connect(clean(m)),
                NetError::Reset(m) => NetError::Reset(clean(m)),
                NetError::Other(m) => NetError::Other(clean(m)),
                other @ (NetError::Timeout | NetError::Closed) => other,
            }),
            Self::AuthorizationRequired(m) => Self::AuthorizationRequired(clean(m)),
            Self::Backoff(e) => Self::Backoff(BackoffError {
                last_error: clean(e.last_error),
                ..e
            }),
        }
    }

    /// The RFC 6749 §5.2 error code, when the server sent one.
    pub fn protocol_code(&self) -> Option<&str> {
        match self {
            Self::Protocol(e) => Some(e.error.as_str()),
            _ => None,
        }
    }
}

fn retry_hint(f: &mut core::fmt::Formatter<'_>, retry_after: Option<u64>) -> core::fmt::Result {
    match retry_after {
        Some(seconds) => write!(f, "; the server asks to retry after {seconds} s"),
        None => Ok(()),
    }
}

impl core::fmt::Display for OAuthError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
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
        }
    }
}

impl std::error::Error for OAuthError {}

impl From<HttpError> for OAuthError {
    /// Maps the HTTP layer's failures. A malformed response is the peer's fault and not
    /// transient, so it is an [`OAuthError::InvalidResponse`]; an unusable URL is a
    /// configuration error, found before anything is sent.
    fn from(err: HttpError) -> Self {
        match err {
            HttpError::InvalidUrl(why) => Self::Config(format!("invalid endpoint url: {why}")),
            HttpError::Tls(why) => Self::Tls(why),
            HttpError::Transport(net) => Self::Transport(net),
            HttpError::TooLarge(limit) => {
                Self::InvalidResponse(format!("the response body exceeds the {limit}-byte limit"))
            }
            HttpError::Malformed(why) => {
                Self::InvalidResponse(format!("malformed http response: {why}"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_errors_map_to_their_oauth_classes() {
        assert!(matches!(
            OAuthError::from(HttpError::InvalidUrl("x".into())),
            OAuthError::Config(_)
        ));
        assert_eq!(
            OAuthError::from(HttpError::Tls("bad".into())),
            OAuthError::Tls("bad".into())
        );
        assert_eq!(
            OAuthError::from(HttpError::Transport(NetError::Timeout)),
            OAuthError::Transport(NetError::Timeout)
        );
        let too_large = OAuthError::from(HttpError::TooLarge(1024));
        assert!(matches!(&too_large, OAuthError::InvalidResponse(m) if m.contains("1024")));
        assert!(matches!(
            OAuthError::from(HttpError::Malformed("junk".into())),
            OAuthError::InvalidResponse(_)
        ));
    }

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
}
