//! A session's state as `session-status` reports it.

use core::fmt;

/// Where a session is in its life (WIT `session-phase`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionPhase {
    /// Open, with no token yet.
    #[default]
    Empty,
    /// A token is held and usable (or a refresh token that can renew it).
    Valid,
    /// A person's authorization (code or device) is pending.
    Authorizing,
    /// Transient failures: no request is sent until `retry_at`.
    Backoff,
    /// Only a new authorization by a person can continue the session.
    AuthorizationRequired,
    /// A failure that retrying cannot fix: the same error is answered, without a
    /// request, until `retry_at` (or until the session is reopened).
    Failed,
}

impl fmt::Display for SessionPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Empty => "empty",
            Self::Valid => "valid",
            Self::Authorizing => "authorizing",
            Self::Backoff => "backoff",
            Self::AuthorizationRequired => "authorization-required",
            Self::Failed => "failed",
        })
    }
}

/// A session's state, without secrets (WIT `session-state`, named apart from the
/// `session-status` function there, which WIT requires).
///
/// More fields may come, so the struct cannot be written as a literal outside this
/// crate: start from `SessionState::default()`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionState {
    /// The phase.
    pub phase: SessionPhase,
    /// When the held access token expires, Unix seconds.
    pub expires_at: Option<u64>,
    /// Whether a refresh token is held.
    pub has_refresh_token: bool,
    /// When the next request may be sent, in `Backoff` and `Failed`, Unix seconds.
    pub retry_at: Option<u64>,
    /// Consecutive transient failures (timeouts, 5xx, 429: what `Backoff` waits out);
    /// 0 after a success or any other failure.
    pub failures: u32,
    /// Consecutive failures retrying cannot fix (a refused client, an unusable
    /// answer: what `Failed` holds); 0 after a success or any other failure.
    pub refusals: u32,
    /// The scopes granted to the held token.
    pub scopes: Vec<String>,
    /// The live renewal lease, when an instance is renewing the session.
    pub lease: Option<SessionLease>,
}

/// An instance's claim to renew a session (WIT `session-lease`): until it expires, only
/// the holder sends a refresh, a re-acquisition, a code redemption or a device poll.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionLease {
    /// The holder: a random id per plugin instance.
    pub holder: String,
    /// When the lease lapses unless the holder releases it first, Unix seconds.
    pub expires_at: u64,
}
