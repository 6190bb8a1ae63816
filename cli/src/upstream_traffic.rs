//! The seed report's scenario: a gateway's own upstream traffic over more upstreams
//! than the TLS cache holds, each with its own CA (some demanding a client
//! certificate), through the plugin's cached configurations and TLS sessions.
//!
//! Every upstream of a fleet is prepared and connected once; then steady HTTP/1.1
//! traffic rotates over the most recent `capacity` of them, a new connection (with a
//! few keep-alive requests) each time. With a least-recently-used cache one upstream
//! is evicted and nothing is built again; the same trace replayed against the
//! original's policy (wipe everything when full) shows what it would have rebuilt.

use std::io::{Read, Write};

use anyhow::{Context, Result, bail};
use gateway_auth_devserver::fleet::{Fleet, FleetUpstream};
use gateway_auth_host::{
    CacheSettings, CacheStats, TrustSpec, Upstream, UpstreamStream, Upstreams,
};

/// What one run did and what it would have cost under a full wipe.
#[derive(Clone, Debug)]
pub struct Figures {
    /// Upstreams in the fleet.
    pub upstreams: usize,
    /// The cache's capacity (one less than the upstreams).
    pub capacity: u32,
    /// Connections opened, and of those, resumed TLS sessions (as the plugin saw them).
    pub connections: u64,
    /// Connections whose TLS session resumed.
    pub resumed: u64,
    /// HTTP requests answered.
    pub requests: u64,
    /// The cache's counters over the run.
    pub stats: CacheStats,
    /// Configurations a cache that wipes itself when full would have built on the
    /// same trace (replayed, not run).
    pub full_wipe_builds: u64,
}

/// Runs the scenario on `upstreams`' instance against `fleet`: `rounds` rotations over
/// the most recent upstreams, `requests` keep-alive requests per connection.
pub fn run(
    upstreams: &Upstreams,
    fleet: &Fleet,
    rounds: usize,
    requests: usize,
) -> Result<Figures> {
    let servers = fleet.upstreams();
    if servers.len() < 2 {
        bail!("the scenario needs at least two upstreams");
    }
    let capacity = servers.len() as u32 - 1;
    let before = {
        let mut plugin = upstreams.plugin();
        plugin.configure(CacheSettings {
            capacity,
            ttl_seconds: None,
            ..Default::default()
        })?;
        plugin.stats()?
    };
    let targets: Vec<(Upstream, u16)> = servers
        .iter()
        .map(|s| (upstreams.upstream(trust_spec(s)), s.port))
        .collect();

    let mut trace = Vec::new();
    let (mut connections, mut resumed, mut answered) = (0u64, 0u64, 0u64);
    let total = servers.len() + rounds * (servers.len() - 1);
    let mut progress = crate::progress::Progress::new();
    let mut visit = |index: usize, requests: usize| -> Result<()> {
        progress.show(&format!(
            "upstream traffic: connection {}/{total}",
            connections + 1
        ));
        let (upstream, port) = &targets[index];
        let mut stream = upstream
            .connect("127.0.0.1", *port, &["http/1.1"])
            .with_context(|| format!("connecting to upstream {index}"))?;
        connections += 1;
        resumed += u64::from(stream.info()?.resumed);
        for _ in 0..requests {
            let body = exchange(&mut stream).with_context(|| format!("upstream {index}"))?;
            if body != format!("upstream {index}") {
                bail!("upstream {index} answered {body:?}");
            }
            answered += 1;
        }
        stream.close()?;
        trace.push(index);
        Ok(())
    };
    // Every upstream once: the last one pushes the first out of the full cache.
    for index in 0..servers.len() {
        visit(index, 1)?;
    }
    // Steady traffic over the most recent `capacity` upstreams.
    for _ in 0..rounds {
        for index in 1..servers.len() {
            visit(index, requests)?;
        }
    }
    let after = upstreams.plugin().stats()?;
    Ok(Figures {
        upstreams: servers.len(),
        capacity,
        connections,
        resumed,
        requests: answered,
        stats: CacheStats {
            hits: after.hits - before.hits,
            misses: after.misses - before.misses,
            evictions: after.evictions - before.evictions,
            expirations: after.expirations - before.expirations,
            rejected: after.rejected - before.rejected,
            ..after
        },
        full_wipe_builds: crate::hit_rates::full_wipe_misses(&trace, capacity as usize),
    })
}

/// The trust spec of a fleet server: its CA, and the client identity it demands.
pub fn trust_spec(server: &FleetUpstream) -> TrustSpec {
    let spec = TrustSpec::ca(server.ca_pem.clone());
    match &server.client_identity {
        Some((cert, key)) => spec.with_identity(cert.clone(), key.clone()),
        None => spec,
    }
}

/// The most a response head may be.
const MAX_HEAD: usize = 16 * 1024;

/// One keep-alive GET; the body of its answer (which must have a Content-Length).
fn exchange(stream: &mut UpstreamStream) -> Result<String> {
    stream.write_all(b"GET / HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n")?;
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        if got.len() > MAX_HEAD {
            bail!("a response head larger than {MAX_HEAD} bytes");
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            bail!("the connection ended inside a response head");
        }
        got.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&got[..head_end]).into_owned();
    if !head.starts_with("HTTP/1.1 200") {
        bail!("answered {}", head.lines().next().unwrap_or_default());
    }
    let length: usize = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .context("a response without Content-Length")?;
    while got.len() < head_end + length {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            bail!("the connection ended inside a response body");
        }
        got.extend_from_slice(&chunk[..n]);
    }
    Ok(String::from_utf8_lossy(&got[head_end..head_end + length]).into_owned())
}
