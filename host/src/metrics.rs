//! Prometheus text exposition (format 0.0.4) of what a plugin or a pool counts.
//!
//! The figures come from the component's `metrics` export ([`PluginMetrics`]); this
//! module keeps them across instance replacement and sums a pool's instances, then
//! renders them. Metric names:
//!
//! | name | type | labels |
//! | --- | --- | --- |
//! | `gateway_auth_tls_cache_gets_total` | counter | `result`: `hit`, `miss` |
//! | `gateway_auth_tls_cache_evictions_total` | counter | `cause`: `capacity`, `expired` |
//! | `gateway_auth_tls_cache_rejected_total` | counter | |
//! | `gateway_auth_tls_cache_size` | gauge | |
//! | `gateway_auth_tls_cache_capacity` | gauge | |
//! | `gateway_auth_tls_profile_expiry_timestamp_seconds` | gauge | `profile` (its id) |
//! | `gateway_auth_tls_upstream_handshakes_total` | counter | `kind`: `full`, `resumed` |
//! | `gateway_auth_oauth_token_requests_total` | counter | `grant`, `outcome` |
//! | `gateway_auth_oauth_token_request_duration_seconds` | histogram | `grant` |
//! | `gateway_auth_oauth_sessions` | gauge | `phase` |
//!
//! No label carries a session key or a secret: grants, outcomes, causes and phases are
//! fixed names, and a profile is named by its id (a digest).
//!
//! Counters never go down for one [`Plugin`](crate::Plugin): when a trap replaces its
//! instance, the counts last read from the old instance are carried over (counts made
//! after that last read are lost with the instance). A pool sums its instances: those
//! handed out at the time of a scrape count with their figures of the previous scrape.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use gateway_auth_api::{
    DurationHistogram, PluginMetrics, ProfileExpiry, SESSION_PHASES, SessionPhase,
    TokenRequestCount,
};

/// A plugin's figures across the replacement of its instance.
#[derive(Debug)]
pub(crate) struct Totals {
    /// Tells a pool's instances apart (see [`PluginPool`](crate::PluginPool)).
    id: u64,
    /// The counters of the instances replaced so far, as last read.
    carried: PluginMetrics,
    /// The current instance's figures, as last read.
    last: PluginMetrics,
}

impl Default for Totals {
    fn default() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        Self {
            id: NEXT.fetch_add(1, Ordering::Relaxed),
            carried: PluginMetrics::default(),
            last: PluginMetrics::default(),
        }
    }
}

impl Totals {
    /// A process-wide id of the plugin these totals belong to.
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// The plugin's totals, with `fresh` the current instance's figures just read.
    pub(crate) fn observe(&mut self, fresh: PluginMetrics) -> PluginMetrics {
        let mut total = fresh.clone();
        self.last = fresh;
        add_counters(&mut total, &self.carried);
        total
    }

    /// The instance was replaced: its counters as last read are carried over.
    pub(crate) fn replaced(&mut self) {
        let last = std::mem::take(&mut self.last);
        add_counters(&mut self.carried, &last);
    }
}

/// Adds the counters of `other` to `total`, leaving `total`'s gauges (cache size and
/// capacity, sessions, profiles) as they are.
fn add_counters(total: &mut PluginMetrics, other: &PluginMetrics) {
    let (c, o) = (&mut total.cache, &other.cache);
    c.hits += o.hits;
    c.misses += o.misses;
    c.evictions += o.evictions;
    c.expirations += o.expirations;
    c.rejected += o.rejected;
    total.handshakes_full += other.handshakes_full;
    total.handshakes_resumed += other.handshakes_resumed;

    let mut requests: BTreeMap<(String, String), u64> = BTreeMap::new();
    for r in total.token_requests.iter().chain(&other.token_requests) {
        *requests
            .entry((r.grant.clone(), r.outcome.clone()))
            .or_default() += r.count;
    }
    total.token_requests = requests
        .into_iter()
        .map(|((grant, outcome), count)| TokenRequestCount {
            grant,
            outcome,
            count,
        })
        .collect();

    let mut durations: BTreeMap<String, DurationHistogram> = BTreeMap::new();
    for d in total
        .token_request_durations
        .iter()
        .chain(&other.token_request_durations)
    {
        match durations.get_mut(&d.grant) {
            Some(sum) if sum.bounds_ms == d.bounds_ms => {
                for (bucket, n) in sum.cumulative.iter_mut().zip(&d.cumulative) {
                    *bucket += n;
                }
                sum.sum_ms += d.sum_ms;
                sum.count += d.count;
            }
            // Instances of one component share their bounds; a histogram with others
            // cannot be added up, and the first one read is kept.
            Some(_) => {}
            None => {
                durations.insert(d.grant.clone(), d.clone());
            }
        }
    }
    total.token_request_durations = durations.into_values().collect();
}

/// The figures of a pool from those of its instances: counters, cache sizes and
/// capacities added up (each instance has its own cache), profiles listed once, and
/// sessions counted once, as the instance that holds the most of them sees them
/// (every instance of a pool opens the same sessions).
pub(crate) fn sum(parts: &[PluginMetrics]) -> PluginMetrics {
    let mut total = PluginMetrics::default();
    let mut profiles: BTreeMap<&str, u64> = BTreeMap::new();
    for part in parts {
        add_counters(&mut total, part);
        total.cache.size += part.cache.size;
        total.cache.capacity += part.cache.capacity;
        for p in &part.profiles {
            let at = profiles.entry(&p.id).or_insert(p.not_after);
            *at = (*at).min(p.not_after);
        }
    }
    total.profiles = profiles
        .into_iter()
        .map(|(id, not_after)| ProfileExpiry {
            id: id.to_string(),
            not_after,
        })
        .collect();
    let held = |m: &PluginMetrics| {
        m.sessions
            .iter()
            .map(|c| u64::from(c.sessions))
            .sum::<u64>()
    };
    total.sessions = parts
        .iter()
        .max_by_key(|m| held(m))
        .map(|m| m.sessions.clone())
        .unwrap_or_default();
    total
}

/// `metrics` as Prometheus text exposition (format 0.0.4): `# HELP` and `# TYPE` for
/// every family, histograms with cumulative `_bucket{le=...}` up to `+Inf`, `_sum` and
/// `_count`. Every session phase is listed, with 0 when no session is in it.
pub fn metrics_text(metrics: &PluginMetrics) -> String {
    let mut out = Exposition(String::new());
    let c = &metrics.cache;
    out.family(
        "gateway_auth_tls_cache_gets_total",
        "counter",
        "TLS cache lookups by prepare and connect, by result (a miss built a configuration).",
    );
    out.sample(
        "gateway_auth_tls_cache_gets_total",
        &[("result", "hit")],
        c.hits,
    );
    out.sample(
        "gateway_auth_tls_cache_gets_total",
        &[("result", "miss")],
        c.misses,
    );
    out.family(
        "gateway_auth_tls_cache_evictions_total",
        "counter",
        "TLS cache entries dropped, by cause: capacity (least recently used) or expired (TTL).",
    );
    let evictions = "gateway_auth_tls_cache_evictions_total";
    out.sample(evictions, &[("cause", "capacity")], c.evictions);
    out.sample(evictions, &[("cause", "expired")], c.expirations);
    out.family(
        "gateway_auth_tls_cache_rejected_total",
        "counter",
        "Trust material refused by prepare (nothing was cached).",
    );
    out.sample("gateway_auth_tls_cache_rejected_total", &[], c.rejected);
    out.family(
        "gateway_auth_tls_cache_size",
        "gauge",
        "TLS configurations held in the cache.",
    );
    out.sample("gateway_auth_tls_cache_size", &[], c.size);
    out.family(
        "gateway_auth_tls_cache_capacity",
        "gauge",
        "The most TLS configurations the cache holds.",
    );
    out.sample("gateway_auth_tls_cache_capacity", &[], c.capacity);
    let expiry = "gateway_auth_tls_profile_expiry_timestamp_seconds";
    out.family(
        expiry,
        "gauge",
        "The earliest notAfter among a cached profile's certificates, in Unix seconds.",
    );
    for p in &metrics.profiles {
        out.sample(expiry, &[("profile", &p.id)], p.not_after);
    }
    let handshakes = "gateway_auth_tls_upstream_handshakes_total";
    out.family(
        handshakes,
        "counter",
        "Upstream TLS handshakes finished, by kind: full, or resumed from an earlier session.",
    );
    out.sample(handshakes, &[("kind", "full")], metrics.handshakes_full);
    out.sample(
        handshakes,
        &[("kind", "resumed")],
        metrics.handshakes_resumed,
    );
    let requests = "gateway_auth_oauth_token_requests_total";
    out.family(
        requests,
        "counter",
        "Token requests sent, retries included, by grant and outcome (ok or the oauth-error case).",
    );
    for r in &metrics.token_requests {
        let labels = [("grant", r.grant.as_str()), ("outcome", r.outcome.as_str())];
        out.sample(requests, &labels, r.count);
    }
    let durations = "gateway_auth_oauth_token_request_duration_seconds";
    out.family(
        durations,
        "histogram",
        "How long token requests took, from sending to the classified answer, by grant.",
    );
    for d in &metrics.token_request_durations {
        let bucket = format!("{durations}_bucket");
        for (bound, n) in d.bounds_ms.iter().zip(&d.cumulative) {
            let le = seconds(*bound);
            out.sample(&bucket, &[("grant", &d.grant), ("le", &le)], n);
        }
        out.sample(&bucket, &[("grant", &d.grant), ("le", "+Inf")], d.count);
        let sum = seconds(d.sum_ms);
        out.sample(&format!("{durations}_sum"), &[("grant", &d.grant)], sum);
        out.sample(
            &format!("{durations}_count"),
            &[("grant", &d.grant)],
            d.count,
        );
    }
    let sessions = "gateway_auth_oauth_sessions";
    out.family(sessions, "gauge", "Open sessions by phase.");
    for phase in SESSION_PHASES {
        let count = metrics
            .sessions
            .iter()
            .find(|c| c.phase == phase)
            .map_or(0, |c| c.sessions);
        out.sample(sessions, &[("phase", phase_label(phase))], count);
    }
    out.0
}

/// A phase as a label value, in snake case like every other label value here.
fn phase_label(phase: SessionPhase) -> &'static str {
    match phase {
        SessionPhase::Empty => "empty",
        SessionPhase::Valid => "valid",
        SessionPhase::Authorizing => "authorizing",
        SessionPhase::Backoff => "backoff",
        SessionPhase::AuthorizationRequired => "authorization_required",
        SessionPhase::Failed => "failed",
        _ => "other",
    }
}

/// Milliseconds as seconds, in the shortest exact decimal (`0.005`, `2.5`, `10`).
fn seconds(ms: u64) -> String {
    let (whole, fraction) = (ms / 1000, ms % 1000);
    if fraction == 0 {
        whole.to_string()
    } else {
        format!("{whole}.{fraction:03}")
            .trim_end_matches('0')
            .to_string()
    }
}

/// The text being written.
struct Exposition(String);

impl Exposition {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.0.push_str(name);
        if !labels.is_empty() {
            let labels: Vec<String> = labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", escape_label(v)))
                .collect();
            let _ = write!(self.0, "{{{}}}", labels.join(","));
        }
        let _ = writeln!(self.0, " {value}");
    }
}

/// A label value escaped as the format requires: backslash, double quote, line feed.
fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use gateway_auth_api::{CacheStats, PhaseCount};

    fn one_request(outcome: &str, count: u64) -> PluginMetrics {
        PluginMetrics {
            cache: CacheStats {
                hits: 2,
                size: 1,
                capacity: 8,
                ..CacheStats::default()
            },
            token_requests: vec![TokenRequestCount {
                grant: "client_credentials".into(),
                outcome: outcome.into(),
                count,
            }],
            sessions: vec![PhaseCount {
                phase: SessionPhase::Valid,
                sessions: 1,
            }],
            ..PluginMetrics::default()
        }
    }

    #[test]
    fn a_replaced_instance_carries_its_counts_so_totals_never_go_down() {
        let mut totals = Totals::default();
        assert_eq!(
            totals.observe(one_request("ok", 3)).token_requests[0].count,
            3
        );
        totals.replaced();
        let after = totals.observe(one_request("ok", 1));
        assert_eq!(after.token_requests[0].count, 4);
        assert_eq!(after.cache.hits, 4);
        // Gauges are the current instance's only.
        assert_eq!((after.cache.size, after.cache.capacity), (1, 8));
    }

    #[test]
    fn a_pool_adds_counters_and_caches_and_counts_its_sessions_once() {
        let total = sum(&[
            one_request("ok", 2),
            one_request("protocol", 1),
            one_request("ok", 1),
        ]);
        let counts: Vec<(&str, u64)> = total
            .token_requests
            .iter()
            .map(|r| (r.outcome.as_str(), r.count))
            .collect();
        assert_eq!(counts, vec![("ok", 3), ("protocol", 1)]);
        assert_eq!((total.cache.hits, total.cache.capacity), (6, 24));
        assert_eq!(total.sessions[0].sessions, 1);
    }

    #[test]
    fn label_values_and_help_are_escaped_and_seconds_are_exact() {
        let mut m = PluginMetrics::default();
        m.profiles.push(ProfileExpiry {
            id: "a\"b\\c\nd".into(),
            not_after: 7,
        });
        let text = metrics_text(&m);
        assert!(text.contains(r#"{profile="a\"b\\c\nd"} 7"#), "{text}");
        assert_eq!(
            [5, 10, 2_500, 10_000, 1_234].map(seconds),
            ["0.005", "0.01", "2.5", "10", "1.234"].map(String::from)
        );
    }
}
