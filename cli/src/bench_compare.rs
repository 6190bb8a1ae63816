//! Side-by-side measurement: ours and a peer in alternating rounds of one run, so a
//! ratio compares the two under the same machine state (CPU frequency, other load),
//! with its spread across rounds to show how far it can be trusted.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::{Value, json};

/// Whether table lines go to standard error (under `--json`, stdout is the JSON alone).
static TABLE_TO_STDERR: AtomicBool = AtomicBool::new(false);

/// Sends the table to standard error from now on (`true`) or to standard output.
pub fn table_to_stderr(yes: bool) {
    TABLE_TO_STDERR.store(yes, Ordering::Relaxed);
}

/// Prints one line of the table.
pub fn line(text: &str) {
    if TABLE_TO_STDERR.load(Ordering::Relaxed) {
        eprintln!("{text}");
    } else {
        println!("{text}");
    }
}

/// Latency figures of one measured operation.
pub struct Figures {
    /// What was measured.
    pub name: String,
    /// How many samples.
    pub samples: usize,
    /// The median sample.
    pub median: Duration,
    /// The 99th percentile.
    pub p99: Duration,
}

impl Figures {
    /// The figures of `samples` (at least one).
    pub fn of(name: impl Into<String>, mut samples: Vec<Duration>) -> Self {
        samples.sort_unstable();
        let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
        Self {
            name: name.into(),
            samples: samples.len(),
            median: at(0.5),
            p99: at(0.99),
        }
    }

    /// One table line.
    pub fn print(&self) {
        line(&format!(
            "  {:<52} median {:>10}   p99 {:>10}   ({} samples)",
            self.name,
            human(self.median),
            human(self.p99),
            self.samples
        ));
    }

    /// `{"median_us": …, "p99_us": …, "samples": …}`.
    pub fn json(&self) -> Value {
        json!({
            "median_us": micros(self.median),
            "p99_us": micros(self.p99),
            "samples": self.samples,
        })
    }
}

/// Ours against a peer: both figures and `ours / peer` per round.
pub struct Comparison {
    /// Our side over every round.
    pub ours: Figures,
    /// The peer over every round.
    pub peer: Figures,
    /// The per-round ratios of the medians, `ours / peer`.
    pub ratios: Vec<f64>,
}

impl Comparison {
    /// The median of the per-round ratios.
    pub fn ratio(&self) -> f64 {
        median(&self.ratios)
    }

    /// `peer / ours` (how many times faster ours is), median over rounds.
    pub fn speedup(&self) -> f64 {
        median(&self.ratios.iter().map(|r| 1.0 / r).collect::<Vec<_>>())
    }

    /// `{"value": …, "min": …, "max": …, "rounds": …}` of `ours / peer`, or of its
    /// inverse when `speedup`.
    pub fn json(&self, speedup: bool) -> Value {
        let values: Vec<f64> = if speedup {
            self.ratios.iter().map(|r| 1.0 / r).collect()
        } else {
            self.ratios.clone()
        };
        let (min, max) = values.iter().fold((f64::INFINITY, 0.0f64), |(lo, hi), v| {
            (lo.min(*v), hi.max(*v))
        });
        json!({
            "value": round3(median(&values)),
            "min": round3(min),
            "max": round3(max),
            "rounds": values.len(),
        })
    }

    /// Both table lines and the ratio line, with its goal.
    pub fn print(&self, label: &str, speedup: bool, goal: Option<&str>) {
        self.ours.print();
        self.peer.print();
        let (value, spread) = if speedup {
            let inverse: Vec<f64> = self.ratios.iter().map(|r| 1.0 / r).collect();
            (self.speedup(), spread_of(&inverse))
        } else {
            (self.ratio(), spread_of(&self.ratios))
        };
        line(&format!(
            "  {label}: {value:.2}x (rounds {:.2}-{:.2}){}",
            spread.0,
            spread.1,
            goal.map(|g| format!(", goal {g}")).unwrap_or_default()
        ));
    }
}

/// `rounds` rounds of `batch` operations of ours and of the peer, alternating which
/// goes first; each closure runs one operation. One warm-up batch of each first.
pub fn interleave(
    name: (&str, &str),
    rounds: usize,
    batch: usize,
    mut ours: impl FnMut() -> Result<()>,
    mut peer: impl FnMut() -> Result<()>,
) -> Result<Comparison> {
    interleave_batches(
        name,
        rounds,
        |first| time_batch(if first { batch.min(10) } else { batch }, &mut ours),
        |first| time_batch(if first { batch.min(10) } else { batch }, &mut peer),
    )
}

/// [`interleave`] over closures that each run a whole batch and return its samples
/// (for a peer in another process, which times itself); the flag marks the warm-up.
pub fn interleave_batches(
    name: (&str, &str),
    rounds: usize,
    mut ours: impl FnMut(bool) -> Result<Vec<Duration>>,
    mut peer: impl FnMut(bool) -> Result<Vec<Duration>>,
) -> Result<Comparison> {
    ours(true)?;
    peer(true)?;
    let (mut all_ours, mut all_peer, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds.max(1) {
        let (a, b) = if round % 2 == 0 {
            let a = ours(false)?;
            (a, peer(false)?)
        } else {
            let b = peer(false)?;
            (ours(false)?, b)
        };
        anyhow::ensure!(!a.is_empty() && !b.is_empty(), "a round took no samples");
        let (ma, mb) = (median_duration(&a), median_duration(&b));
        ratios.push(ma.as_secs_f64() / mb.as_secs_f64().max(1e-12));
        all_ours.extend(a);
        all_peer.extend(b);
    }
    Ok(Comparison {
        ours: Figures::of(name.0, all_ours),
        peer: Figures::of(name.1, all_peer),
        ratios,
    })
}

/// Times `count` runs of `op`, one sample each.
pub fn time_batch(count: usize, op: &mut impl FnMut() -> Result<()>) -> Result<Vec<Duration>> {
    let mut samples = Vec::with_capacity(count);
    for _ in 0..count {
        let start = Instant::now();
        op()?;
        samples.push(start.elapsed());
    }
    Ok(samples)
}

fn median_duration(samples: &[Duration]) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    sorted[sorted.len() / 2]
}

fn median(values: &[f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

fn spread_of(values: &[f64]) -> (f64, f64) {
    values.iter().fold((f64::INFINITY, 0.0f64), |(lo, hi), v| {
        (lo.min(*v), hi.max(*v))
    })
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

fn micros(d: Duration) -> f64 {
    round3(d.as_secs_f64() * 1e6)
}

/// Formats a duration in µs below a millisecond, in ms above.
pub fn human(d: Duration) -> String {
    if d < Duration::from_millis(1) {
        format!("{:.2} µs", d.as_secs_f64() * 1e6)
    } else {
        format!("{:.2} ms", d.as_secs_f64() * 1e3)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ratio_is_the_median_of_the_rounds_and_its_spread_their_range() {
        let mut round = 0u64;
        let comparison = interleave_batches(
            ("ours", "peer"),
            5,
            |_| Ok(vec![Duration::from_micros(10)]),
            |warm_up| {
                if !warm_up {
                    round += 1;
                }
                Ok(vec![Duration::from_micros(5 * round)])
            },
        )
        .unwrap();
        // Ratios 10/5, 10/10, 10/15, 10/20, 10/25.
        assert_eq!(comparison.ratios.len(), 5);
        assert!((comparison.ratio() - 10.0 / 15.0).abs() < 1e-9);
        let value = comparison.json(false);
        assert_eq!(value["max"], 2.0);
        assert_eq!(value["min"], 0.4);
        assert!((comparison.speedup() - 1.5).abs() < 1e-9);
    }
}
