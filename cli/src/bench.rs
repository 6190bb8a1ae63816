//! `gateway-auth bench`, all of it: what a cache hit, a cache miss, a token request and
//! a cached token cost here, next to what a Python gateway pays for an SSL context on
//! the same machine.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use gateway_auth_devserver::DevServer;
use gateway_auth_host::{
    CacheSettings, Grant, Plugin, PluginOptions, Runtime, SessionGrant, TrustSpec,
};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};

use crate::commands::load_runtime;
use crate::demo;
use crate::progress::Progress;

/// Runs every measurement and prints the figures.
pub fn run(upstreams: usize, hits: usize) -> Result<()> {
    anyhow::ensure!(
        upstreams > 0 && hits > 0,
        "--upstreams and --hits must be positive"
    );
    let runtime = load_runtime()?;
    println!("benchmark (one run, this machine; compare ratios, not absolute figures)");
    let mut progress = Progress::new();
    progress.show("measuring TLS cache misses and hits…");
    let (miss, hit) = tls_cache(&runtime, upstreams, hits)?;
    progress.clear();
    miss.print();
    hit.print();
    progress.show("measuring Python's SSL context…");
    let python = python_ssl_context(&make_cas(1)[0], 50)?;
    progress.clear();
    match &python {
        Some(py) => {
            py.print();
            println!(
                "  a cache miss costs {:.1}x less than a Python SSL context; a hit {:.0}x less",
                py.median.as_secs_f64() / miss.median.as_secs_f64(),
                py.median.as_secs_f64() / hit.median.as_secs_f64()
            );
        }
        None => println!("  (python3 not found: no Python comparison)"),
    }
    progress.show("measuring token requests and cached tokens…");
    let tokens = tokens(&runtime)?;
    progress.clear();
    tokens.iter().for_each(Figures::print);
    crate::bench_upstream::run(&runtime)
}

/// Token-path latencies: a token request over resumed TLS, and a cached session token.
fn tokens(runtime: &Runtime) -> Result<Vec<Figures>> {
    let server = DevServer::start(Default::default())?;
    let dir = std::env::temp_dir().join(format!("gateway-auth-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let store = gateway_auth_host::SqliteStore::open(dir.join("tokens.db"))?;
    let mut plugin = demo::plugin(runtime, std::sync::Arc::new(store))?;
    let client = demo::basic_client(&server);
    let mut requests = Vec::new();
    for _ in 0..50 {
        let start = Instant::now();
        plugin.request_token(&client, Grant::ClientCredentials)?;
        requests.push(start.elapsed());
    }
    plugin.open_session("bench", &client, &SessionGrant::ClientCredentials)?;
    plugin.access_token("bench")?;
    let mut cached = Vec::new();
    for _ in 0..2000 {
        let start = Instant::now();
        plugin.access_token("bench")?;
        cached.push(start.elapsed());
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(vec![
        Figures::of("token request over TLS (resumed), 127.0.0.1", requests),
        Figures::of("session access token, cached", cached),
    ])
}

/// Latency figures of one measured operation.
pub struct Figures {
    pub name: &'static str,
    pub samples: usize,
    pub median: Duration,
    pub p99: Duration,
}

impl Figures {
    pub fn of(name: &'static str, mut samples: Vec<Duration>) -> Self {
        samples.sort_unstable();
        let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
        Self {
            name,
            samples: samples.len(),
            median: at(0.5),
            p99: at(0.99),
        }
    }

    pub fn print(&self) {
        println!(
            "  {:<44} median {:>10}   p99 {:>10}   ({} samples)",
            self.name,
            human(self.median),
            human(self.p99),
            self.samples
        );
    }
}

/// Formats a duration in µs below a millisecond, in ms above.
pub fn human(d: Duration) -> String {
    if d < Duration::from_millis(1) {
        format!("{:.1} µs", d.as_secs_f64() * 1e6)
    } else {
        format!("{:.2} ms", d.as_secs_f64() * 1e3)
    }
}

fn time<T>(f: impl FnOnce() -> T) -> (Duration, T) {
    let start = Instant::now();
    let value = f();
    (start.elapsed(), value)
}

/// Distinct self-signed CA certificates, PEM.
pub fn make_cas(count: usize) -> Vec<String> {
    (0..count)
        .map(|i| {
            let mut params = CertificateParams::new(Vec::<String>::new()).expect("no names");
            params
                .distinguished_name
                .push(DnType::CommonName, format!("bench CA {i}"));
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            let key = KeyPair::generate().expect("key generation");
            params.self_signed(&key).expect("self-signing").pem()
        })
        .collect()
}

/// Measures the TLS cache through the real component.
pub fn tls_cache(runtime: &Runtime, upstreams: usize, hits: usize) -> Result<(Figures, Figures)> {
    let mut plugin: Plugin = runtime.plugin(PluginOptions::default())?;
    plugin.configure(CacheSettings {
        capacity: upstreams as u32 + 1,
        ttl_seconds: None,
        ..Default::default()
    })?;
    let cas = make_cas(upstreams);
    let mut misses = Vec::with_capacity(upstreams);
    for ca in &cas {
        let (took, profile) = time(|| plugin.prepare(&TrustSpec::ca(ca.as_str())));
        anyhow::ensure!(!profile?.cached, "a first prepare must be a miss");
        misses.push(took);
    }
    let spec = TrustSpec::ca(cas[0].as_str());
    let mut hit_times = Vec::with_capacity(hits);
    for _ in 0..hits {
        let (took, profile) = time(|| plugin.prepare(&spec));
        anyhow::ensure!(profile?.cached, "a repeated prepare must be a hit");
        hit_times.push(took);
    }
    Ok((
        Figures::of("tls-cache prepare, miss (build configuration)", misses),
        Figures::of("tls-cache prepare, hit", hit_times),
    ))
}

/// Python's `ssl.create_default_context()` + `load_verify_locations()` on one CA, the
/// cost the seed report measured; `None` when python3 is not installed.
pub fn python_ssl_context(ca_pem: &str, runs: usize) -> Result<Option<Figures>> {
    let dir = std::env::temp_dir().join(format!("gateway-auth-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, ca_pem)?;
    let script = format!(
        "import ssl, time\nfor _ in range({runs}):\n    t = time.perf_counter()\n    c = ssl.create_default_context()\n    c.load_verify_locations({:?})\n    print(time.perf_counter() - t)\n",
        ca_file.display().to_string()
    );
    let output = match Command::new("python3").arg("-c").arg(script).output() {
        Ok(output) if output.status.success() => output,
        _ => return Ok(None),
    };
    let _ = std::fs::remove_dir_all(&dir);
    let samples = String::from_utf8(output.stdout)
        .context("python output")?
        .lines()
        .filter_map(|l| l.trim().parse::<f64>().ok())
        .map(Duration::from_secs_f64)
        .collect::<Vec<_>>();
    Ok((!samples.is_empty()).then(|| {
        Figures::of(
            "python ssl.create_default_context + load_verify_locations",
            samples,
        )
    }))
}
