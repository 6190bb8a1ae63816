//! `gateway-auth bench`, start-up, memory and scale: a ready instance from the
//! precompiled component, the first token; linear-memory bytes per cached TLS profile,
//! per session and per TLS session; hit and miss cost as the cache grows; cached
//! tokens of many sessions from several threads, one instance against a pool.

use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Result;
use gateway_auth_devserver::DevServer;
use gateway_auth_host::{
    CacheSettings, Grant, MemoryStore, Plugin, PluginOptions, PluginPool, Runtime, SessionGrant,
    TrustSpec,
};
use serde_json::{Map, Value, json};

use crate::bench::make_cas;
use crate::bench_compare::{Figures, line};
use crate::demo;
use crate::progress::Progress;

/// How many profiles, sessions and TLS sessions the memory figures are taken at.
pub struct Scale {
    /// Cached TLS profiles, sessions and open TLS sessions for the memory figures.
    pub count: usize,
    /// The largest cache the hit and miss costs are measured at.
    pub largest_cache: usize,
}

/// Runs the measurements, prints them and returns their JSON fields.
pub fn run(runtime: &Runtime, scale: &Scale) -> Result<Map<String, Value>> {
    let mut fields = Map::new();
    let mut progress = Progress::new();
    // Enough room for the largest figures: memory per entry is what is measured.
    let roomy = || PluginOptions {
        memory_limit: 2 << 30,
        ..PluginOptions::default()
    };

    progress.show("measuring instantiation…");
    let mut starts = Vec::new();
    for _ in 0..30 {
        let start = Instant::now();
        drop(runtime.plugin(PluginOptions::default())?);
        starts.push(start.elapsed());
    }
    let instantiate = Figures::of("a ready instance from the precompiled component", starts);
    let server = DevServer::start(Default::default())?;
    let client = demo::basic_client(&server);
    let mut firsts = Vec::new();
    for _ in 0..10 {
        let start = Instant::now();
        let mut plugin = demo::plugin(runtime, Arc::new(MemoryStore::new()))?;
        plugin.request_token(&client, Grant::ClientCredentials)?;
        firsts.push(start.elapsed());
    }
    let first_token = Figures::of("a new instance's first token (full handshake)", firsts);
    progress.clear();
    instantiate.print();
    first_token.print();
    fields.insert("instantiate_ms".into(), json!(ms(instantiate.median)));
    fields.insert("first_token_ms".into(), json!(ms(first_token.median)));

    progress.show(&format!(
        "generating {} CA certificates…",
        scale.largest_cache
    ));
    let cas = make_cas(scale.largest_cache.max(scale.count));
    let specs: Vec<TrustSpec> = cas.iter().map(|ca| TrustSpec::ca(ca.as_str())).collect();

    progress.show(&format!("preparing {} profiles…", scale.count));
    let mut plugin = runtime.plugin(roomy())?;
    plugin.configure(CacheSettings {
        capacity: specs.len() as u32,
        ..Default::default()
    })?;
    let before = plugin.memory_bytes();
    for spec in &specs[..scale.count] {
        plugin.prepare(spec)?;
    }
    let per_profile = (plugin.memory_bytes() - before) / scale.count;

    progress.show(&format!("opening {} TLS sessions…", scale.count));
    let id = plugin.prepare(&specs[0])?.id;
    let before = plugin.memory_bytes();
    let mut sessions = Vec::with_capacity(scale.count);
    for _ in 0..scale.count {
        let session = plugin.tls_connect(&id, "upstream.example", &[])?;
        // The client hello: the session as it waits for the server.
        plugin.tls_advance(&session, &[], &[])?;
        sessions.push(session);
    }
    let per_tls_session = (plugin.memory_bytes() - before) / scale.count;
    for session in sessions {
        plugin.tls_drop(session);
    }

    progress.show("measuring hit and miss cost by cache size…");
    let mut by_size = Map::new();
    let mut hit_at = Vec::new();
    for size in [100, 10_000, 100_000, scale.largest_cache] {
        if size > scale.largest_cache || by_size.contains_key(&size.to_string()) {
            continue;
        }
        let (hit, miss) = cost_at(runtime, &specs, size, roomy())?;
        by_size.insert(
            size.to_string(),
            json!({ "hit_us": micros(hit), "miss_us": micros(miss) }),
        );
        hit_at.push(hit);
    }

    progress.show(&format!("opening {} sessions…", scale.count));
    let mut plugin = demo::plugin(runtime, Arc::new(MemoryStore::new()))?;
    let before = plugin.memory_bytes();
    for i in 0..scale.count {
        let key = format!("session-{i}");
        plugin.open_session(&key, &client, &SessionGrant::ClientCredentials)?;
        plugin.access_token(&key)?;
    }
    let per_session = (plugin.memory_bytes() - before) / scale.count;
    progress.clear();

    line(&format!(
        "  linear memory at {}: {per_profile} B per cached TLS profile (goal <= 8192), {per_session} B per session with its token (goal <= 2048), {per_tls_session} B per TLS session awaiting the server",
        scale.count
    ));
    fields.insert("bytes_per_tls_profile".into(), json!(per_profile));
    fields.insert("bytes_per_session".into(), json!(per_session));
    fields.insert("bytes_per_tls_session".into(), json!(per_tls_session));
    for (size, figures) in &by_size {
        line(&format!(
            "  cache of {size:>7} entries: hit {} µs, miss {} µs",
            figures["hit_us"], figures["miss_us"]
        ));
    }
    if let (Some(first), Some(last)) = (hit_at.first(), hit_at.last()) {
        let growth = last.as_secs_f64() / first.as_secs_f64();
        line(&format!(
            "  hit cost from the smallest to the largest cache: {growth:.2}x (goal <= 1.5x)"
        ));
        fields.insert(
            format!("hit_cost_growth_100_to_{}", short(scale.largest_cache)),
            json!((growth * 1000.0).round() / 1000.0),
        );
    }
    fields.insert("cost_by_cache_size".into(), Value::Object(by_size));

    let (single, pooled) = concurrency(runtime, &server, scale.count)?;
    let speedup = pooled / single;
    line(&format!(
        "  cached tokens of {} sessions, 4 threads: one instance {single:.0}/s, pool of 2 {pooled:.0}/s: {speedup:.2}x (goal >= 1.7x)",
        scale.count
    ));
    fields.insert(
        "pool_speedup".into(),
        json!((speedup * 1000.0).round() / 1000.0),
    );
    fields.insert(
        "cached_tokens_per_s".into(),
        json!({ "one_instance": single.round(), "pool": pooled.round() }),
    );
    Ok(fields)
}

/// The median hit and miss cost in a cache already holding `size` entries.
fn cost_at(
    runtime: &Runtime,
    specs: &[TrustSpec],
    size: usize,
    options: PluginOptions,
) -> Result<(Duration, Duration)> {
    let mut plugin = runtime.plugin(options)?;
    plugin.configure(CacheSettings {
        capacity: size as u32 + 1,
        ..Default::default()
    })?;
    for spec in &specs[..size - 1] {
        plugin.prepare(spec)?;
    }
    // Misses: each of the last few specs, evicted again before its next turn.
    let fresh = &specs[size - 1..(size + 20).min(specs.len())];
    let mut misses = Vec::new();
    for spec in fresh {
        let start = Instant::now();
        let id = plugin.prepare(spec)?.id;
        misses.push(start.elapsed());
        plugin.invalidate(&id)?;
    }
    // The same working set of (at most) 100 specs at every size: what is measured is the cost of
    // a lookup in a cache holding `size` entries, not of a working set too large for
    // the processor's caches.
    let mut hits = Vec::new();
    for i in 0..2000 {
        let spec = &specs[(i * 37) % (size - 1).min(100)];
        let start = Instant::now();
        plugin.prepare(spec)?;
        hits.push(start.elapsed());
    }
    Ok((
        Figures::of("hit", hits).median,
        Figures::of("miss", misses).median,
    ))
}

/// Cached tokens per second of `sessions` sessions from 4 threads: one instance behind
/// a lock, then a pool of two instances (this machine has two cores).
fn concurrency(runtime: &Runtime, server: &DevServer, sessions: usize) -> Result<(f64, f64)> {
    let client = demo::basic_client(server);
    let store: Arc<dyn gateway_auth_host::TokenStore> = Arc::new(MemoryStore::new());
    let options = PluginOptions {
        egress: Arc::new(gateway_auth_host::EgressPolicy::parse(["127.0.0.1"])?),
        store: store.clone(),
        ..PluginOptions::default()
    };
    let single = Mutex::new(runtime.plugin(options.clone())?);
    for i in 0..sessions {
        let key = format!("s{i}");
        let mut plugin = single.lock().expect("not poisoned");
        plugin.open_session(&key, &client, &SessionGrant::ClientCredentials)?;
        plugin.access_token(&key)?;
    }
    let pool = PluginPool::new(runtime, options, 2)?;
    for i in 0..sessions {
        pool.open_session(&format!("s{i}"), &client, &SessionGrant::ClientCredentials)?;
    }
    let calls = 40_000;
    let rate = |call: &(dyn Fn(usize) -> Result<()> + Sync)| -> Result<f64> {
        let start = Instant::now();
        thread::scope(|scope| {
            let handles: Vec<_> = (0..4)
                .map(|t| {
                    scope.spawn(move || -> Result<()> {
                        for i in 0..calls / 4 {
                            call((i * 4 + t) % sessions)?;
                        }
                        Ok(())
                    })
                })
                .collect();
            handles
                .into_iter()
                .try_for_each(|h| h.join().expect("no panic"))
        })?;
        Ok(calls as f64 / start.elapsed().as_secs_f64())
    };
    let one = |i: usize| -> Result<()> {
        let mut plugin: std::sync::MutexGuard<'_, Plugin> = single.lock().expect("not poisoned");
        plugin.access_token(&format!("s{i}"))?;
        Ok(())
    };
    let many = |i: usize| -> Result<()> {
        pool.get()?.access_token(&format!("s{i}"))?;
        Ok(())
    };
    // Interleaved: single, pool, single, pool; the better of each (the pool's first
    // run also reads every session's token from the store into each instance).
    let (mut single_rate, mut pool_rate) = (0.0f64, 0.0f64);
    for _ in 0..2 {
        single_rate = single_rate.max(rate(&one)?);
        pool_rate = pool_rate.max(rate(&many)?);
    }
    Ok((single_rate, pool_rate))
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

fn micros(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e7).round() / 10.0
}

fn short(n: usize) -> String {
    if n >= 1000 && n.is_multiple_of(1000) {
        format!("{}k", n / 1000)
    } else {
        n.to_string()
    }
}
