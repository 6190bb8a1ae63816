//! The counters only the component sees: token requests (by grant and outcome, with
//! their durations) and upstream TLS handshakes (full or resumed). Each is counted at
//! the one place it happens (`oauth::call`, `tls::session`) into this instance's
//! [`Counters`]; the `metrics` export reads them with the cache's figures and the
//! sessions' phases.
//!
//! An instance is single-threaded, so the counters are thread-local; natively every
//! test runs on its own thread and so counts on its own.

use std::cell::RefCell;
use std::collections::BTreeMap;

use gateway_auth_api::{DurationHistogram, TOKEN_REQUEST_BUCKETS_MS, TokenRequestCount};

/// One grant's duration histogram, in non-cumulative buckets.
#[derive(Clone, Debug, Default)]
struct Durations {
    /// Requests in each bucket of [`TOKEN_REQUEST_BUCKETS_MS`], then those beyond.
    buckets: [u64; TOKEN_REQUEST_BUCKETS_MS.len() + 1],
    sum_ms: u64,
}

/// What this instance has counted since it started.
#[derive(Clone, Debug, Default)]
pub struct Counters {
    requests: BTreeMap<(&'static str, &'static str), u64>,
    durations: BTreeMap<&'static str, Durations>,
    handshakes_full: u64,
    handshakes_resumed: u64,
}

thread_local! {
    static COUNTERS: RefCell<Counters> = RefCell::new(Counters::default());
}

/// Counts one token request of `grant` sent, whose answer was classified as `outcome`
/// after `elapsed_ms`.
pub fn token_request(grant: &'static str, outcome: &'static str, elapsed_ms: u64) {
    COUNTERS.with_borrow_mut(|c| {
        *c.requests.entry((grant, outcome)).or_default() += 1;
        let d = c.durations.entry(grant).or_default();
        let bucket = TOKEN_REQUEST_BUCKETS_MS
            .iter()
            .position(|bound| elapsed_ms <= *bound)
            .unwrap_or(TOKEN_REQUEST_BUCKETS_MS.len());
        d.buckets[bucket] += 1;
        d.sum_ms = d.sum_ms.saturating_add(elapsed_ms);
    });
}

/// Counts one upstream TLS handshake that ended, `resumed` or full.
pub fn handshake(resumed: bool) {
    COUNTERS.with_borrow_mut(|c| {
        if resumed {
            c.handshakes_resumed += 1;
        } else {
            c.handshakes_full += 1;
        }
    });
}

/// A copy of the counters now.
// Read by the `metrics` export, which only the component build has, and by tests.
#[cfg_attr(not(any(test, target_arch = "wasm32")), allow(dead_code))]
pub fn counters() -> Counters {
    COUNTERS.with_borrow(Counters::clone)
}

#[cfg_attr(not(any(test, target_arch = "wasm32")), allow(dead_code))]
impl Counters {
    /// Full and resumed upstream handshakes.
    pub fn handshakes(&self) -> (u64, u64) {
        (self.handshakes_full, self.handshakes_resumed)
    }

    /// Token requests by grant and outcome, in label order.
    pub fn token_requests(&self) -> Vec<TokenRequestCount> {
        self.requests
            .iter()
            .map(|(&(grant, outcome), &count)| TokenRequestCount {
                grant: grant.into(),
                outcome: outcome.into(),
                count,
            })
            .collect()
    }

    /// One cumulative histogram per grant sent, in label order.
    pub fn token_request_durations(&self) -> Vec<DurationHistogram> {
        self.durations
            .iter()
            .map(|(&grant, d)| {
                let cumulative = d.buckets[..TOKEN_REQUEST_BUCKETS_MS.len()]
                    .iter()
                    .scan(0, |total, n| {
                        *total += n;
                        Some(*total)
                    })
                    .collect();
                DurationHistogram {
                    grant: grant.into(),
                    bounds_ms: TOKEN_REQUEST_BUCKETS_MS.to_vec(),
                    cumulative,
                    sum_ms: d.sum_ms,
                    count: d.buckets.iter().sum(),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_fall_in_cumulative_buckets_with_one_beyond_the_last_bound() {
        for ms in [0, 5, 6, 400, 60_000] {
            token_request("client_credentials", "ok", ms);
        }
        token_request("client_credentials", "protocol", 7);
        let c = counters();
        let d = &c.token_request_durations()[0];
        assert_eq!(
            (d.grant.as_str(), d.count, d.sum_ms),
            ("client_credentials", 6, 60_418)
        );
        // le=5: 0 and 5; le=10: and 6, 7; le=500: and 400; 60 s only in +Inf.
        assert_eq!(d.cumulative[0], 2);
        assert_eq!(d.cumulative[1], 4);
        assert_eq!(d.cumulative[5], 4);
        assert_eq!(d.cumulative[6], 5);
        assert_eq!(*d.cumulative.last().unwrap(), 5);
        let outcomes: Vec<(String, u64)> = c
            .token_requests()
            .into_iter()
            .map(|r| (r.outcome, r.count))
            .collect();
        assert_eq!(outcomes, vec![("ok".into(), 5), ("protocol".into(), 1)]);
    }

    #[test]
    fn handshakes_are_counted_by_kind() {
        handshake(false);
        handshake(true);
        handshake(true);
        assert_eq!(counters().handshakes(), (1, 2));
    }
}
