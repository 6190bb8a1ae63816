//! What an instance counts for monitoring (WIT `metrics`): the cache's figures, upstream
//! TLS handshakes, token requests by grant and outcome with their durations, sessions
//! by phase and the expiry of every cached profile.
//!
//! Nothing here is a secret or a session key: grants and outcomes are fixed names,
//! profiles are named by their id (a digest of public trust material and options).

use crate::session::SessionPhase;
use crate::tls::CacheStats;

/// The upper bounds, in milliseconds, of the token request duration histogram's
/// buckets (Prometheus' `le`, with `+Inf` after the last): from a resumed round trip
/// on a local network to the default call deadline.
pub const TOKEN_REQUEST_BUCKETS_MS: [u64; 11] =
    [5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000];

/// One instance's figures since it started (WIT `plugin-metrics`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PluginMetrics {
    /// The TLS cache's counters, size and capacity.
    pub cache: CacheStats,
    /// Upstream TLS sessions (`tls-session`) whose handshake was a full one.
    pub handshakes_full: u64,
    /// Upstream TLS sessions whose handshake resumed an earlier session.
    pub handshakes_resumed: u64,
    /// Token requests sent, one entry per grant and outcome that occurred.
    pub token_requests: Vec<TokenRequestCount>,
    /// How long token requests took, one histogram per grant that was sent.
    pub token_request_durations: Vec<DurationHistogram>,
    /// Open sessions by phase, as this instance last saw them; every phase is listed.
    pub sessions: Vec<PhaseCount>,
    /// Every cached profile with an expiry.
    pub profiles: Vec<ProfileExpiry>,
}

/// How many token requests of one grant had one outcome (WIT `token-request-count`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRequestCount {
    /// The grant sent, by the short name of its `grant_type` (see [`grant_label`]).
    pub grant: String,
    /// `ok`, or the [`OAuthError`](crate::OAuthError) case the answer was classified
    /// as (see [`OAuthError::case_name`](crate::OAuthError::case_name)).
    pub outcome: String,
    /// How many.
    pub count: u64,
}

/// The durations of one grant's token requests (WIT `duration-histogram`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DurationHistogram {
    /// The grant, as in [`TokenRequestCount::grant`].
    pub grant: String,
    /// The bucket bounds, in milliseconds ([`TOKEN_REQUEST_BUCKETS_MS`]).
    pub bounds_ms: Vec<u64>,
    /// Requests that took at most each bound: cumulative, one per bound.
    pub cumulative: Vec<u64>,
    /// The durations added up, in milliseconds.
    pub sum_ms: u64,
    /// All requests (the `+Inf` bucket).
    pub count: u64,
}

/// How many open sessions are in one phase (WIT `phase-count`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PhaseCount {
    /// The phase.
    pub phase: SessionPhase,
    /// How many sessions.
    pub sessions: u32,
}

/// When one cached profile's material expires (WIT `profile-expiry`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProfileExpiry {
    /// The profile id, as `prepare` returned it.
    pub id: String,
    /// The earliest `notAfter` of its certificates, Unix seconds.
    pub not_after: u64,
}

/// The metrics label of a token request's `grant_type` value: its short name
/// (`client_credentials`, `token_exchange`, `jwt_bearer`, `device_code`, ...), or
/// `other` for a value this crate does not know.
pub fn grant_label(grant_type: &str) -> &'static str {
    match grant_type {
        "client_credentials" => "client_credentials",
        "password" => "password",
        "authorization_code" => "authorization_code",
        "refresh_token" => "refresh_token",
        "urn:ietf:params:oauth:grant-type:token-exchange" => "token_exchange",
        "urn:ietf:params:oauth:grant-type:jwt-bearer" => "jwt_bearer",
        "urn:ietf:params:oauth:grant-type:device_code" => "device_code",
        _ => "other",
    }
}

/// Every session phase, in the order metrics list them.
pub const SESSION_PHASES: [SessionPhase; 6] = [
    SessionPhase::Empty,
    SessionPhase::Valid,
    SessionPhase::Authorizing,
    SessionPhase::Backoff,
    SessionPhase::AuthorizationRequired,
    SessionPhase::Failed,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_grant_type_the_flows_send_has_a_short_label() {
        for (sent, label) in [
            ("client_credentials", "client_credentials"),
            ("password", "password"),
            ("authorization_code", "authorization_code"),
            ("refresh_token", "refresh_token"),
            (
                "urn:ietf:params:oauth:grant-type:token-exchange",
                "token_exchange",
            ),
            ("urn:ietf:params:oauth:grant-type:jwt-bearer", "jwt_bearer"),
            (
                "urn:ietf:params:oauth:grant-type:device_code",
                "device_code",
            ),
            ("urn:example:custom", "other"),
        ] {
            assert_eq!(grant_label(sent), label);
        }
    }
}
