//! The one retry policy of every flow, as pure functions of (failure, attempt, random).
//!
//! Two levels:
//!
//! - **Within a call**: at most [`MAX_ATTEMPTS`], exponential backoff with full jitter,
//!   all inside the call's deadline (`client.timeout_ms`). A `Retry-After` is honoured;
//!   if it reaches past the deadline, the call stops and returns the error with it.
//! - **Across calls** (sessions): every `access_token` call that ends in a transient
//!   failure counts one; the session then refuses to send anything until a backoff
//!   time ([`session_backoff_secs`]), so a gateway calling on every request does not
//!   hammer a struggling server.
//!
//! Transient: 408, 429, 5xx (with or without an RFC 6749 body), transport failures
//! other than `denied`. Never transient: TLS, configuration, other 4xx, redirects and
//! unusable 2xx answers: repeating them changes nothing.
//!
//! Whether a request may be **sent again** depends on what it spends. A request that
//! redeems something single-use (an authorization code, RFC 6749 §4.1.2; a refresh
//! token the server rotates, OAuth 2.0 Security BCP §4.14.2; a device code) is retried
//! only when the server surely did not act on it: the name did not resolve, the
//! connection was refused, or the server said 429 or 503. After a timeout or reset the
//! server may have redeemed it and a replay could be taken for theft (a rotated refresh
//! token's reuse revokes the whole family), so the error is returned instead and the
//! session's backoff takes over. Everything else (client credentials, password, token
//! exchange, JWT bearer, device authorization, revocation, discovery) is retried on any
//! transient failure.

use gateway_auth_api::{NetError, OAuthError};

/// Attempts per call, the first included.
pub const MAX_ATTEMPTS: u32 = 3;
/// The first retry's jitter ceiling, in milliseconds; doubled per retry.
pub const RETRY_BASE_MS: u64 = 250;
/// The largest retry jitter ceiling, in milliseconds.
pub const RETRY_CAP_MS: u64 = 2_000;
/// A session's first backoff ceiling, in milliseconds; doubled per failure.
pub const BACKOFF_BASE_MS: u64 = 2_000;
/// The longest session backoff, in seconds, `Retry-After` included: a server asking
/// for an hour is probed again after five minutes rather than starving the gateway.
pub const BACKOFF_CAP_SECS: u64 = 300;

/// Whether a request may be sent again after it may have reached the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Replay {
    /// Repeating it is harmless.
    Safe,
    /// It redeems something single-use: repeat only when the server surely did not act.
    OnlyIfUnprocessed,
}

/// The end of a call's time budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Deadline {
    end_ms: u64,
}

impl Deadline {
    /// A deadline `timeout_ms` after `now_ms`.
    pub fn start(now_ms: u64, timeout_ms: u32) -> Self {
        Self {
            end_ms: now_ms.saturating_add(u64::from(timeout_ms)),
        }
    }

    /// Milliseconds left at `now_ms`.
    pub fn remaining(self, now_ms: u64) -> u64 {
        self.end_ms.saturating_sub(now_ms)
    }

    /// When it passes, Unix milliseconds.
    pub fn end_ms(self) -> u64 {
        self.end_ms
    }
}

/// Whether trying again later may succeed.
pub fn is_transient(err: &OAuthError) -> bool {
    match err {
        OAuthError::Transport(net) => !matches!(net, NetError::Denied(_)),
        OAuthError::HttpStatus(e) => transient_status(e.status),
        // `temporarily_unavailable` is defined for the authorization endpoint (RFC 6749
        // §4.1.2.1), but some servers send it from the token endpoint too.
        OAuthError::Protocol(e) => {
            transient_status(e.status) || e.error == "temporarily_unavailable"
        }
        _ => false,
    }
}

/// Whether `err` is an answer that sending the same request again cannot change: the
/// server refused the client, the grant or the scope (`invalid_client`,
/// `unauthorized_client`, `invalid_grant` for stored credentials, `invalid_scope`, …),
/// answered with another non-transient status, sent an unusable answer, or failed the
/// TLS handshake. A session holds such a failure for a while instead of sending again.
pub fn is_permanent(err: &OAuthError) -> bool {
    match err {
        OAuthError::Protocol(_) | OAuthError::HttpStatus(_) => !is_transient(err),
        OAuthError::InvalidResponse(_) | OAuthError::Tls(_) => true,
        _ => false,
    }
}

fn transient_status(status: u16) -> bool {
    status == 408 || status == 429 || (500..600).contains(&status)
}

/// Whether the server surely did not act on the request.
pub fn surely_unprocessed(err: &OAuthError) -> bool {
    match err {
        // Every transport failure says whether the request can have left (a new one
        // does not compile until it does).
        OAuthError::Transport(net) => match net {
            NetError::Denied(_) | NetError::Resolve(_) | NetError::Connect(_) => true,
            NetError::Timeout | NetError::Reset(_) | NetError::Closed | NetError::Other(_) => false,
        },
        OAuthError::HttpStatus(e) => e.status == 429 || e.status == 503,
        OAuthError::Protocol(e) => e.status == 429 || e.status == 503,
        _ => false,
    }
}

/// Whether a refresh request that reached the server and failed with `err` may have
/// been acted on, its refresh token spent and rotated: anything but an answer in which
/// the server turned the request down, or said it did not act (429, 503).
pub fn may_have_spent(err: &OAuthError) -> bool {
    match err {
        // An RFC 6749 §5.2 answer: the server refused in words.
        OAuthError::Protocol(_) => false,
        // A 4xx turned the request down; a 5xx (a proxy's 502 or 504 above all) may
        // come after the server acted.
        OAuthError::HttpStatus(e) => !(400..500).contains(&e.status) && e.status != 503,
        OAuthError::Transport(_) | OAuthError::Tls(_) | OAuthError::InvalidResponse(_) => {
            !surely_unprocessed(err)
        }
        OAuthError::Config(_)
        | OAuthError::AuthorizationRequired(_)
        | OAuthError::Backoff(_)
        | OAuthError::Store(_) => false,
        // A case the contract gains later: assume the worst, never a reuse.
        _ => true,
    }
}

/// What to do after a failed attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Wait this long, then send again.
    Retry {
        /// The wait, in milliseconds.
        after_ms: u64,
    },
    /// Return the error.
    Stop,
}

/// The decision after attempt number `attempt` (1-based) failed with `err`, with
/// `remaining_ms` of the deadline left and `random` for the jitter.
pub fn decide(
    attempt: u32,
    err: &OAuthError,
    replay: Replay,
    remaining_ms: u64,
    random: u64,
) -> Decision {
    let allowed = match replay {
        Replay::Safe => is_transient(err),
        Replay::OnlyIfUnprocessed => surely_unprocessed(err),
    };
    if attempt >= MAX_ATTEMPTS || !allowed {
        return Decision::Stop;
    }
    let after_ms = retry_delay_ms(attempt, err.retry_after(), random);
    if after_ms >= remaining_ms {
        return Decision::Stop;
    }
    Decision::Retry { after_ms }
}

/// The wait before retry number `attempt`: the server's `Retry-After` if it sent one,
/// else full jitter over an exponentially growing ceiling (so that many gateways that
/// failed together do not come back together).
pub fn retry_delay_ms(attempt: u32, retry_after: Option<u64>, random: u64) -> u64 {
    if let Some(seconds) = retry_after {
        return seconds.saturating_mul(1000);
    }
    let ceiling = exponential(RETRY_BASE_MS, attempt, RETRY_CAP_MS);
    random % (ceiling + 1)
}

/// How long a session backs off after `failures` consecutive transient failures, in
/// whole seconds (at least 1): half of an exponentially growing ceiling plus jitter over
/// the other half, or the server's `Retry-After` if longer; never more than
/// [`BACKOFF_CAP_SECS`].
pub fn session_backoff_secs(failures: u32, retry_after: Option<u64>, random: u64) -> u64 {
    let ceiling = exponential(BACKOFF_BASE_MS, failures.max(1), BACKOFF_CAP_SECS * 1000);
    let half = ceiling / 2;
    let jittered = half + random % (ceiling - half + 1);
    let seconds = jittered.div_ceil(1000).max(retry_after.unwrap_or(0));
    seconds.clamp(1, BACKOFF_CAP_SECS)
}

/// `base * 2^(n-1)`, capped.
fn exponential(base: u64, n: u32, cap: u64) -> u64 {
    let shift = n.saturating_sub(1).min(32);
    base.saturating_mul(1u64 << shift).min(cap)
}

#[cfg(test)]
mod tests {
    use super::*;
    use gateway_auth_api::{HttpStatusError, ProtocolError};

    fn status(code: u16, retry_after: Option<u64>) -> OAuthError {
        OAuthError::HttpStatus(HttpStatusError {
            status: code,
            snippet: String::new(),
            retry_after,
        })
    }

    fn protocol(code: u16, error: &str) -> OAuthError {
        OAuthError::Protocol(ProtocolError {
            status: code,
            error: error.into(),
            description: None,
            uri: None,
            retry_after: None,
        })
    }

    #[test]
    fn transient_failures_are_429_5xx_and_transport_but_not_denied() {
        for err in [
            status(429, None),
            status(500, None),
            status(503, None),
            status(408, None),
            protocol(503, "server_error"),
            protocol(400, "temporarily_unavailable"),
            OAuthError::Transport(NetError::Timeout),
            OAuthError::Transport(NetError::Connect("refused".into())),
        ] {
            assert!(is_transient(&err), "{err:?}");
        }
        for err in [
            status(400, None),
            status(302, None),
            protocol(400, "invalid_grant"),
            protocol(401, "invalid_client"),
            OAuthError::Transport(NetError::Denied("policy".into())),
            OAuthError::Tls("bad cert".into()),
            OAuthError::Config("x".into()),
            OAuthError::InvalidResponse("x".into()),
        ] {
            assert!(!is_transient(&err), "{err:?}");
        }
    }

    #[test]
    fn safe_requests_retry_transient_failures_with_growing_jitter() {
        let err = status(500, None);
        assert_eq!(
            decide(1, &err, Replay::Safe, 10_000, 100),
            Decision::Retry { after_ms: 100 }
        );
        // Full jitter: the random value is reduced below the ceiling (250 ms, then 500).
        assert_eq!(
            decide(1, &err, Replay::Safe, 10_000, 1_000),
            Decision::Retry {
                after_ms: 1_000 % 251
            }
        );
        assert_eq!(
            decide(2, &err, Replay::Safe, 10_000, 1_000),
            Decision::Retry {
                after_ms: 1_000 % 501
            }
        );
        assert_eq!(
            decide(MAX_ATTEMPTS, &err, Replay::Safe, 10_000, 0),
            Decision::Stop
        );
        assert_eq!(
            decide(1, &status(400, None), Replay::Safe, 10_000, 0),
            Decision::Stop
        );
        assert_eq!(
            retry_delay_ms(30, None, u64::MAX),
            u64::MAX % (RETRY_CAP_MS + 1)
        );
    }

    #[test]
    fn retry_after_is_honoured_unless_it_passes_the_deadline() {
        let err = status(503, Some(2));
        assert_eq!(
            decide(1, &err, Replay::Safe, 10_000, 7),
            Decision::Retry { after_ms: 2_000 }
        );
        assert_eq!(decide(1, &err, Replay::Safe, 1_500, 7), Decision::Stop);
        // A jittered wait that does not fit stops too.
        assert_eq!(
            decide(1, &status(500, None), Replay::Safe, 50, 100),
            Decision::Stop
        );
    }

    #[test]
    fn single_use_requests_retry_only_what_the_server_did_not_process() {
        let replay = Replay::OnlyIfUnprocessed;
        for err in [
            status(503, None),
            status(429, None),
            OAuthError::Transport(NetError::Resolve("nx".into())),
            OAuthError::Transport(NetError::Connect("refused".into())),
        ] {
            assert!(
                matches!(decide(1, &err, replay, 10_000, 1), Decision::Retry { .. }),
                "{err:?}"
            );
        }
        for err in [
            status(500, None),
            status(502, None),
            OAuthError::Transport(NetError::Timeout),
            OAuthError::Transport(NetError::Reset("rst".into())),
        ] {
            assert_eq!(
                decide(1, &err, replay, 10_000, 1),
                Decision::Stop,
                "{err:?}"
            );
        }
    }

    #[test]
    fn session_backoff_grows_is_jittered_and_capped() {
        // Ceiling 2 s, 4 s, 8 s...: between half of it and all of it.
        assert_eq!(session_backoff_secs(1, None, 0), 1);
        assert_eq!(session_backoff_secs(1, None, 1_000), 2);
        assert_eq!(session_backoff_secs(2, None, 0), 2);
        assert_eq!(session_backoff_secs(3, None, 4_000), 8);
        for failures in 1..40 {
            for random in [0, 1, 12_345, u64::MAX] {
                let s = session_backoff_secs(failures, None, random);
                assert!(
                    (1..=BACKOFF_CAP_SECS).contains(&s),
                    "{failures} {random} {s}"
                );
            }
        }
        assert_eq!(session_backoff_secs(20, None, 0), BACKOFF_CAP_SECS / 2);
        // Retry-After wins when longer, within the cap.
        assert_eq!(session_backoff_secs(1, Some(30), 0), 30);
        assert_eq!(session_backoff_secs(1, Some(3_600), 0), BACKOFF_CAP_SECS);
    }
}
