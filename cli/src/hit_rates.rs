//! Hit rates of the TLS cache's eviction policies on access traces, side by side with
//! the seed's full wipe and Belady's offline optimum.
//!
//! LRU and the TinyLFU admission filter are the plugin's own code
//! (`gateway_auth_guest::policy`), run natively on keys instead of built
//! configurations: a hit or a miss depends only on the sequence of keys.

use std::collections::{BTreeSet, HashMap, HashSet};

use gateway_auth_guest::policy::Entries;
use gateway_auth_host::EvictionPolicy;

/// A cache policy to replay a trace against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Replay {
    /// The seed's: when full, clear everything, then insert.
    FullWipe,
    /// One of the plugin's policies.
    Plugin(EvictionPolicy),
    /// Belady's: evict the entry used again furthest in the future (needs the whole
    /// trace; no online policy does better).
    Optimal,
}

impl Replay {
    /// Every policy, in the order the table shows them.
    pub const ALL: [Replay; 4] = [
        Replay::FullWipe,
        Replay::Plugin(EvictionPolicy::Lru),
        Replay::Plugin(EvictionPolicy::TinyLfu),
        Replay::Optimal,
    ];

    /// The name in the table and the JSON.
    pub fn name(self) -> &'static str {
        match self {
            Replay::FullWipe => "full_wipe",
            Replay::Plugin(EvictionPolicy::Lru) => "lru",
            Replay::Plugin(EvictionPolicy::TinyLfu) => "tiny_lfu",
            Replay::Optimal => "optimal",
        }
    }
}

/// The share of accesses in `trace` that hit a cache of `capacity` under `policy`.
pub fn hit_rate(trace: &[u32], capacity: usize, policy: Replay) -> f64 {
    if trace.is_empty() {
        return 0.0;
    }
    let hits = match policy {
        Replay::FullWipe => trace.len() as u64 - full_wipe_misses(trace, capacity),
        Replay::Plugin(policy) => {
            let mut entries = Entries::new(capacity, policy);
            let mut hits = 0u64;
            for key in trace {
                if entries.get(key).is_some() {
                    hits += 1;
                } else {
                    entries.insert(*key, ());
                }
            }
            hits
        }
        Replay::Optimal => optimal_hits(trace, capacity),
    };
    hits as f64 / trace.len() as f64
}

/// How many misses (builds) a cache of `capacity` that clears itself when full has
/// on `trace`.
pub fn full_wipe_misses<K: std::hash::Hash + Eq + Copy>(trace: &[K], capacity: usize) -> u64 {
    let mut held = HashSet::new();
    let mut misses = 0;
    for key in trace {
        if held.contains(key) {
            continue;
        }
        if held.len() >= capacity.max(1) {
            held.clear();
        }
        held.insert(*key);
        misses += 1;
    }
    misses
}

fn optimal_hits(trace: &[u32], capacity: usize) -> u64 {
    // next[i]: where trace[i]'s key is used again (usize::MAX: never).
    let mut next = vec![usize::MAX; trace.len()];
    let mut seen: HashMap<u32, usize> = HashMap::new();
    for (i, key) in trace.iter().enumerate().rev() {
        if let Some(&later) = seen.get(key) {
            next[i] = later;
        }
        seen.insert(*key, i);
    }
    // Held keys by their next use, furthest last.
    let mut by_next: BTreeSet<(usize, u32)> = BTreeSet::new();
    let mut held: HashMap<u32, usize> = HashMap::new();
    let mut hits = 0;
    for (i, key) in trace.iter().enumerate() {
        if let Some(at) = held.remove(key) {
            by_next.remove(&(at, *key));
            hits += 1;
        } else if held.len() >= capacity.max(1)
            && let Some((at, victim)) = by_next.pop_last()
        {
            held.remove(&victim);
            debug_assert!(at >= i);
        }
        held.insert(*key, next[i]);
        by_next.insert((next[i], *key));
    }
    hits
}

/// A named trace with the capacity it is replayed at.
pub struct Trace {
    /// `round_robin_101_c100` and so on.
    pub name: String,
    /// The cache's capacity.
    pub capacity: usize,
    /// The keys accessed, in order.
    pub keys: Vec<u32>,
}

/// The traces of the benchmark: round-robins over more upstreams than the capacity,
/// Zipf-distributed popularity, a hot set with one-off upstreams mixed in, and the
/// seed scenario of the demo. Deterministic (a fixed seed).
pub fn traces() -> Vec<Trace> {
    let mut traces = Vec::new();
    for upstreams in [101, 200, 1000] {
        traces.push(Trace {
            name: format!("round_robin_{upstreams}_c100"),
            capacity: 100,
            keys: (0..20_000).map(|i| i % upstreams).collect(),
        });
    }
    for (s, label) in [(0.8, "0.8"), (1.2, "1.2")] {
        let zipf = Zipf::new(10_000, s);
        for capacity in [100, 1000] {
            let mut random = XorShift(0x2545_f491_4f6c_dd1d);
            traces.push(Trace {
                name: format!("zipf_{label}_10000_c{capacity}"),
                capacity,
                keys: (0..200_000).map(|_| zipf.sample(random.unit())).collect(),
            });
        }
    }
    let mut random = XorShift(0x9e37_79b9_7f4a_7c15);
    let mut one_off = 1_000_000;
    let hot_with_one_offs = (0..100_000)
        .map(|_| {
            if random.unit() < 0.7 {
                (random.unit() * 90.0) as u32
            } else {
                one_off += 1;
                one_off
            }
        })
        .collect();
    traces.push(Trace {
        name: "hot_90_with_one_offs_c100".into(),
        capacity: 100,
        keys: hot_with_one_offs,
    });
    traces.push(Trace {
        name: "seed_scenario_c100".into(),
        capacity: 100,
        keys: seed_scenario(101, 5),
    });
    traces
}

/// The demo's upstream traffic: every upstream once, then `rounds` rotations over the
/// most recent `upstreams - 1`. Each connection is a `prepare` and a `connect`, two
/// accesses of the same key.
pub fn seed_scenario(upstreams: u32, rounds: u32) -> Vec<u32> {
    let visits = (0..upstreams).chain((0..rounds).flat_map(|_| 1..upstreams));
    visits.flat_map(|u| [u, u]).collect()
}

/// Zipf's law over `n` ranks with exponent `s`, by inverse transform on the CDF.
struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    fn new(n: u32, s: f64) -> Self {
        let mut cdf = Vec::with_capacity(n as usize);
        let mut total = 0.0;
        for rank in 1..=n {
            total += 1.0 / f64::from(rank).powf(s);
            cdf.push(total);
        }
        for p in &mut cdf {
            *p /= total;
        }
        Self { cdf }
    }

    fn sample(&self, u: f64) -> u32 {
        self.cdf.partition_point(|p| *p < u) as u32
    }
}

/// A small deterministic generator: the traces are the same in every run.
struct XorShift(u64);

impl XorShift {
    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_wipe_rebuilds_everything_after_each_overflow() {
        // Capacity 3, upstreams 0..4 once, then rotating over 1..4 twice: 0,1,2 built;
        // 3 wipes and is built; 1 and 2 rebuilt; then all held.
        assert_eq!(full_wipe_misses(&[0, 1, 2, 3, 1, 2, 3, 1, 2, 3], 3), 6);
        assert_eq!(full_wipe_misses(&[0, 0, 0], 1), 1);
        assert_eq!(full_wipe_misses(&[0, 1, 0, 1], 1), 4);
    }

    #[test]
    fn the_optimum_on_a_round_robin_keeps_all_but_one_entry() {
        // 3 keys, capacity 2: after the first round, every other access hits.
        let trace: Vec<u32> = (0..300).map(|i| i % 3).collect();
        let optimal = hit_rate(&trace, 2, Replay::Optimal);
        assert!((optimal - 0.49).abs() < 0.02, "{optimal}");
        assert_eq!(
            hit_rate(&trace, 2, Replay::Plugin(EvictionPolicy::Lru)),
            0.0
        );
    }

    #[test]
    fn no_policy_beats_the_optimum_and_lru_never_loses_to_the_full_wipe() {
        for trace in traces() {
            let rate = |p| hit_rate(&trace.keys, trace.capacity, p);
            let optimal = rate(Replay::Optimal);
            for policy in Replay::ALL {
                assert!(rate(policy) <= optimal + 1e-9, "{} {policy:?}", trace.name);
            }
            let lru = rate(Replay::Plugin(EvictionPolicy::Lru));
            assert!(lru >= rate(Replay::FullWipe) - 1e-9, "{}", trace.name);
        }
    }

    #[test]
    fn the_admission_filter_comes_near_the_optimum_on_round_robins_and_scans() {
        for trace in traces() {
            let rate = |p| hit_rate(&trace.keys, trace.capacity, p);
            let filtered = rate(Replay::Plugin(EvictionPolicy::TinyLfu));
            if trace.name.starts_with("round_robin") || trace.name.starts_with("hot_") {
                let optimal = rate(Replay::Optimal);
                assert!(
                    filtered >= 0.9 * optimal,
                    "{}: {filtered} vs optimal {optimal}",
                    trace.name
                );
            }
            if trace.name.starts_with("zipf") {
                let lru = rate(Replay::Plugin(EvictionPolicy::Lru));
                assert!(
                    filtered >= 0.95 * lru,
                    "{}: {filtered} vs lru {lru}",
                    trace.name
                );
            }
        }
    }
}
