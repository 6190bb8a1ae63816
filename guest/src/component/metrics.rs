//! The `metrics` export: the cache's figures and held profiles, the counters of
//! [`crate::metrics`] and the sessions' phases, as one generated record.

use gateway_auth_api::{DurationHistogram, PhaseCount, ProfileExpiry, TokenRequestCount};

use super::{CACHE, Component, IntoWit, now_ms, oauth};
use crate::bindings::exports::gateway::auth::metrics as wit;
use crate::metrics;

impl wit::Guest for Component {
    fn snapshot() -> wit::PluginMetrics {
        let (cache, profiles) = CACHE.with_borrow(|cache| (cache.stats(), cache.profiles()));
        let sessions = oauth::with(|oauth, _| oauth.session_phases(now_ms() / 1000));
        let counters = metrics::counters();
        let (handshakes_full, handshakes_resumed) = counters.handshakes();
        wit::PluginMetrics {
            cache: cache.into_wit(),
            handshakes_full,
            handshakes_resumed,
            token_requests: counters
                .token_requests()
                .into_iter()
                .map(IntoWit::into_wit)
                .collect(),
            token_request_durations: counters
                .token_request_durations()
                .into_iter()
                .map(IntoWit::into_wit)
                .collect(),
            sessions: sessions.into_iter().map(IntoWit::into_wit).collect(),
            profiles: profiles.into_iter().map(IntoWit::into_wit).collect(),
        }
    }
}

impl IntoWit<wit::TokenRequestCount> for TokenRequestCount {
    fn into_wit(self) -> wit::TokenRequestCount {
        wit::TokenRequestCount {
            grant: self.grant,
            outcome: self.outcome,
            count: self.count,
        }
    }
}

impl IntoWit<wit::DurationHistogram> for DurationHistogram {
    fn into_wit(self) -> wit::DurationHistogram {
        wit::DurationHistogram {
            grant: self.grant,
            bounds_ms: self.bounds_ms,
            cumulative: self.cumulative,
            sum_ms: self.sum_ms,
            count: self.count,
        }
    }
}

impl IntoWit<wit::PhaseCount> for PhaseCount {
    fn into_wit(self) -> wit::PhaseCount {
        wit::PhaseCount {
            phase: self.phase.into_wit(),
            sessions: self.sessions,
        }
    }
}

impl IntoWit<wit::ProfileExpiry> for ProfileExpiry {
    fn into_wit(self) -> wit::ProfileExpiry {
        wit::ProfileExpiry {
            id: self.id,
            not_after: self.not_after,
        }
    }
}
