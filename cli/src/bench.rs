//! `gateway-auth bench`: what the plugin costs next to what a gateway would use
//! instead, each pair measured in alternating rounds of one run (see
//! [`crate::bench_compare`]). A table, or with `--json` one JSON object.
//!
//! Peers: the seed's Python (`ssl.create_default_context()` +
//! `load_verify_locations(cadata=…)` for a miss; SHA-256 of the PEM and a dict for a
//! hit), run by `python3` from `PATH` in a process of its own that times itself; and
//! native Rust in this process (building the same `rustls::ClientConfig`; an LRU map
//! lookup by the same key; a map of sessions' tokens).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use gateway_auth_devserver::{DevServer, defaults};
use gateway_auth_host::{CacheSettings, Grant, PluginOptions, Runtime, SessionGrant, TrustSpec};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use serde_json::{Map, Value, json};

pub use crate::bench_compare::human;
use crate::bench_compare::{interleave, interleave_batches, line, table_to_stderr, time_batch};
use crate::commands::load_runtime;
use crate::demo;
use crate::hit_rates::{self, Replay};
use crate::progress::Progress;

/// How many interleaved rounds each comparison runs.
pub const DEFAULT_ROUNDS: usize = 8;

/// Runs every measurement; prints a table, or one JSON object when `json`.
pub fn run(rounds: usize, json: bool, scale: &crate::bench_scale::Scale) -> Result<()> {
    anyhow::ensure!(rounds > 0, "--rounds must be positive");
    let runtime = load_runtime()?;
    table_to_stderr(json);
    line("benchmark (one run, this machine; ratios from interleaved rounds)");
    let mut fields = Map::new();
    fields.insert("rounds".into(), json!(rounds));
    tls_cache(&runtime, rounds, &mut fields)?;
    fields.insert("hit_rates".into(), hit_rate_table());
    tokens(&runtime, rounds, &mut fields)?;
    let upstream = crate::bench_upstream::run(&runtime, rounds)?;
    fields.extend(upstream);
    line("start-up, memory and scale");
    fields.extend(crate::bench_scale::run(&runtime, scale)?);
    if json {
        println!("{}", serde_json::to_string_pretty(&Value::Object(fields))?);
    }
    Ok(())
}

/// TLS cache misses and hits through the component, against the Python original and
/// native Rust.
fn tls_cache(runtime: &Runtime, rounds: usize, fields: &mut Map<String, Value>) -> Result<()> {
    const BATCH: usize = 20;
    let mut progress = Progress::new();
    progress.show("generating CA certificates…");
    // A never-seen CA for every miss of ours: warm-up, then two comparisons.
    let cas = make_cas(BATCH.min(10) * 2 + 2 * rounds * BATCH);
    let mut plugin = runtime.plugin(PluginOptions::default())?;
    plugin.configure(CacheSettings {
        capacity: cas.len() as u32 + 1,
        ..Default::default()
    })?;
    let mut python = PythonPeer::start(&cas[0])?;
    let mut fresh = cas.iter();

    progress.show("measuring TLS cache misses…");
    let mut prepare_fresh = || -> Result<()> {
        let ca = fresh.next().context("out of fresh CAs")?;
        let profile = plugin.prepare(&TrustSpec::ca(ca.as_str()))?;
        anyhow::ensure!(!profile.cached, "a first prepare must be a miss");
        Ok(())
    };
    let miss_python = interleave_batches(
        (
            "tls-cache prepare, miss (build configuration)",
            "python ssl.create_default_context + load_verify_locations",
        ),
        rounds,
        |warm| time_batch(if warm { BATCH.min(10) } else { BATCH }, &mut prepare_fresh),
        |warm| python.run("miss", if warm { 10 } else { BATCH }),
    )?;
    let native_ca = cas[0].clone();
    let miss_native = interleave(
        (
            "tls-cache prepare, miss (build configuration)",
            "native rustls ClientConfig from the same PEM",
        ),
        rounds,
        BATCH,
        &mut prepare_fresh,
        || native_config(&native_ca).map(drop),
    )?;
    progress.clear();
    let say = |c: &crate::bench_compare::Comparison, label: &str, speedup: bool, goal: &str| {
        c.print(label, speedup, Some(goal));
    };
    say(&miss_python, "Python / plugin (miss)", true, ">= 100x");
    say(&miss_native, "plugin / native (miss)", false, "<= 2x");
    fields.insert("tls_miss_speedup_vs_python".into(), miss_python.json(true));
    fields.insert("tls_miss_vs_native".into(), miss_native.json(false));
    fields.insert(
        "tls_miss".into(),
        json!({
            "plugin": miss_native.ours.json(),
            "python": miss_python.peer.json(),
            "native": miss_native.peer.json(),
        }),
    );

    progress.show("measuring TLS cache hits…");
    let spec = TrustSpec::ca(cas[0].as_str());
    let profile = plugin.prepare(&spec)?;
    let mut hit = || -> Result<()> {
        let profile = plugin.prepare(&spec)?;
        anyhow::ensure!(profile.cached, "a repeated prepare must be a hit");
        Ok(())
    };
    const HITS: usize = 2000;
    let hit_python = interleave_batches(
        ("tls-cache prepare, hit", "python sha256(pem) + dict lookup"),
        rounds,
        |warm| time_batch(if warm { 100 } else { HITS }, &mut hit),
        |warm| python.run("hit", if warm { 100 } else { HITS }),
    )?;
    let mut native = lru::LruCache::<[u8; 32], Arc<rustls::ClientConfig>>::new(
        std::num::NonZeroUsize::new(cas.len()).context("no CAs")?,
    );
    let key = digest_of(&profile.id)?;
    native.put(key, native_config(&cas[0])?);
    let hit_native = interleave(
        (
            "tls-cache prepare, hit",
            "native LRU lookup by the same key",
        ),
        rounds,
        HITS,
        &mut hit,
        || {
            std::hint::black_box(native.get(std::hint::black_box(&key)))
                .context("the native entry is cached")
                .map(drop)
        },
    )?;
    // The same hit by the profile id the gateway kept: no material crosses.
    let mut by_id = || -> Result<()> {
        let found = plugin.lookup(&profile.id)?;
        anyhow::ensure!(found.cached, "a lookup is a hit");
        Ok(())
    };
    let by_id_python = interleave_batches(
        (
            "tls-cache lookup by id, hit",
            "python sha256(pem) + dict lookup",
        ),
        rounds,
        |warm| time_batch(if warm { 100 } else { HITS }, &mut by_id),
        |warm| python.run("hit", if warm { 100 } else { HITS }),
    )?;
    let by_id_native = interleave(
        (
            "tls-cache lookup by id, hit",
            "native LRU lookup by the same key",
        ),
        rounds,
        HITS,
        &mut by_id,
        || {
            std::hint::black_box(native.get(std::hint::black_box(&key)))
                .context("the native entry is cached")
                .map(drop)
        },
    )?;
    progress.clear();
    say(&hit_python, "plugin / Python (hit)", false, "<= 1.0x");
    say(&hit_native, "plugin / native (hit)", false, "<= 10x");
    say(
        &by_id_python,
        "plugin by id / Python (hit)",
        false,
        "<= 1.0x",
    );
    say(
        &by_id_native,
        "plugin by id / native (hit)",
        false,
        "<= 10x",
    );
    fields.insert("tls_hit_vs_python".into(), hit_python.json(false));
    fields.insert("tls_hit_vs_native".into(), hit_native.json(false));
    fields.insert("tls_hit_by_id_vs_python".into(), by_id_python.json(false));
    fields.insert("tls_hit_by_id_vs_native".into(), by_id_native.json(false));
    fields.insert(
        "tls_hit".into(),
        json!({
            "plugin": hit_native.ours.json(),
            "plugin_by_id": by_id_native.ours.json(),
            "python": hit_python.peer.json(),
            "native": hit_native.peer.json(),
        }),
    );
    Ok(())
}

/// Hit rates of every policy on every trace: `{trace: {policy: rate}}`; printed.
fn hit_rate_table() -> Value {
    let mut progress = Progress::new();
    progress.show("replaying cache traces…");
    let mut table = Map::new();
    let mut lines = vec![format!(
        "cache hit rates on traces{:>24}{}",
        "",
        Replay::ALL
            .iter()
            .map(|p| format!("{:>11}", p.name()))
            .collect::<String>()
    )];
    for trace in hit_rates::traces() {
        let mut row = Map::new();
        let mut line = format!("  {:<46}", trace.name);
        for policy in Replay::ALL {
            let rate = hit_rates::hit_rate(&trace.keys, trace.capacity, policy);
            row.insert(
                policy.name().into(),
                json!((rate * 10_000.0).round() / 10_000.0),
            );
            line.push_str(&format!("{:>10.1}%", rate * 100.0));
        }
        lines.push(line);
        table.insert(trace.name, Value::Object(row));
    }
    progress.clear();
    lines.iter().for_each(|l| line(l));
    Value::Object(table)
}

/// Token requests (client credentials, `client_secret_post`) against the development
/// server: the plugin next to oauth2-rs with reqwest and Authlib with httpx, each on a
/// kept-alive connection and on a new one (the server then answers every request with
/// `Connection: close`, so every side reconnects, the plugin and reqwest with resumed
/// TLS); and a cached session token against a native map lookup of the same session.
fn tokens(runtime: &Runtime, rounds: usize, fields: &mut Map<String, Value>) -> Result<()> {
    const BATCH: usize = 20;
    let mut progress = Progress::new();
    progress.show("measuring token requests…");
    let server = DevServer::start(Default::default())?;
    let mut plugin = demo::plugin(runtime, Arc::new(gateway_auth_host::MemoryStore::new()))?;
    let mut client = gateway_auth_host::Client::new(
        defaults::POST_CLIENT_ID,
        gateway_auth_host::ClientAuth::ClientSecretPost(defaults::POST_CLIENT_SECRET.into()),
        TrustSpec::ca(server.ca_pem()),
    );
    client.token_endpoint = Some(server.token_endpoint());
    let mut ours = || -> Result<()> {
        plugin.request_token(&client, Grant::ClientCredentials)?;
        Ok(())
    };
    let oauth2_rs = Oauth2Rs::new(&server)?;
    let mut python = PythonTokenPeer::start(&server)?;
    let mut compared = Map::new();
    for (peer, keep_alive) in [
        ("oauth2_rs", true),
        ("oauth2_rs", false),
        ("authlib", true),
        ("authlib", false),
    ] {
        let connection = if keep_alive {
            "kept_alive"
        } else {
            "new_connection"
        };
        server.set_keep_alive(keep_alive);
        let ours_label = if keep_alive {
            "token request, plugin (kept alive)"
        } else {
            "token request, plugin (new connection, resumed TLS)"
        };
        let label = format!(
            "{} + {}, {}",
            if peer == "oauth2_rs" {
                "oauth2-rs"
            } else {
                "Authlib"
            },
            if peer == "oauth2_rs" {
                "reqwest"
            } else {
                "httpx"
            },
            connection.replace('_', " ")
        );
        let comparison = if peer == "oauth2_rs" {
            interleave((ours_label, &label), rounds, BATCH, &mut ours, || {
                oauth2_rs.request(keep_alive)
            })?
        } else {
            let op = if keep_alive { "kept" } else { "new" };
            interleave_batches(
                (ours_label, &label),
                rounds,
                |warm| time_batch(if warm { 5 } else { BATCH }, &mut ours),
                |warm| python.run(op, if warm { 5 } else { BATCH }),
            )?
        };
        comparison.print(&format!("plugin / {label}"), false, None);
        compared.insert(format!("{peer}_{connection}"), comparison.json(false));
        if peer == "oauth2_rs" && keep_alive {
            fields.insert("exchange_vs_oauth2_rs".into(), comparison.json(false));
            fields.insert("token_request".into(), comparison.ours.json());
        }
        if peer == "authlib" && keep_alive {
            fields.insert("exchange_speedup_vs_httpx".into(), comparison.json(true));
        }
    }
    server.set_keep_alive(true);
    fields.insert("token_request_vs".into(), Value::Object(compared));
    progress.clear();

    progress.show("measuring cached tokens…");
    let client = demo::basic_client(&server);
    plugin.open_session("bench", &client, &SessionGrant::ClientCredentials)?;
    let token = plugin.access_token("bench")?;
    let sessions: HashMap<String, gateway_auth_host::Token> =
        [("bench".to_string(), token)].into_iter().collect();
    let hot = interleave(
        (
            "session access token, cached",
            "native map lookup of the token",
        ),
        rounds,
        2000,
        || plugin.access_token("bench").map(drop).map_err(Into::into),
        || {
            std::hint::black_box(sessions.get(std::hint::black_box("bench")).cloned())
                .context("cached")
                .map(drop)
        },
    )?;
    progress.clear();
    hot.print("plugin / native (cached token)", false, Some("<= 20x"));
    fields.insert("token_hot_vs_native".into(), hot.json(false));
    Ok(())
}

/// oauth2-rs over reqwest's blocking client, trusting the development server's CA:
/// one client keeps its connection alive, the other opens a new one every time.
struct Oauth2Rs {
    client: oauth2::Client<
        oauth2::basic::BasicErrorResponse,
        oauth2::basic::BasicTokenResponse,
        oauth2::basic::BasicTokenIntrospectionResponse,
        oauth2::StandardRevocableToken,
        oauth2::basic::BasicRevocationErrorResponse,
        oauth2::EndpointNotSet,
        oauth2::EndpointNotSet,
        oauth2::EndpointNotSet,
        oauth2::EndpointNotSet,
        oauth2::EndpointSet,
    >,
    kept_alive: oauth2::reqwest::blocking::Client,
    new_each_time: oauth2::reqwest::blocking::Client,
}

impl Oauth2Rs {
    fn new(server: &DevServer) -> Result<Self> {
        let client =
            oauth2::basic::BasicClient::new(oauth2::ClientId::new(defaults::POST_CLIENT_ID.into()))
                .set_client_secret(oauth2::ClientSecret::new(
                    defaults::POST_CLIENT_SECRET.into(),
                ))
                .set_auth_type(oauth2::AuthType::RequestBody)
                .set_token_uri(oauth2::TokenUrl::new(server.token_endpoint())?);
        let http = |idle: usize| -> Result<oauth2::reqwest::blocking::Client> {
            Ok(oauth2::reqwest::blocking::ClientBuilder::new()
                .redirect(oauth2::reqwest::redirect::Policy::none())
                .add_root_certificate(oauth2::reqwest::Certificate::from_pem(
                    server.ca_pem().as_bytes(),
                )?)
                .pool_max_idle_per_host(idle)
                .build()?)
        };
        Ok(Self {
            client,
            kept_alive: http(1)?,
            new_each_time: http(0)?,
        })
    }

    fn request(&self, keep_alive: bool) -> Result<()> {
        let http = if keep_alive {
            &self.kept_alive
        } else {
            &self.new_each_time
        };
        self.client
            .exchange_client_credentials()
            .request(http)
            .map_err(|e| anyhow::anyhow!("oauth2-rs: {e}"))?;
        Ok(())
    }
}

/// Authlib over httpx in a Python process of its own: `kept N` on one client (its
/// connection kept alive), `new N` on a new client each time.
struct PythonTokenPeer(PythonProcess);

const PYTHON_TOKEN_PEER: &str = r#"
import sys, time
from authlib.integrations.httpx_client import OAuth2Client
endpoint, ca, client_id, secret = sys.argv[1:5]
def make():
    return OAuth2Client(client_id, secret, token_endpoint_auth_method="client_secret_post", verify=ca)
kept = make()
def run(client):
    client.fetch_token(endpoint, grant_type="client_credentials")
for line in sys.stdin:
    op, count = line.split()
    took = []
    for _ in range(int(count)):
        start = time.perf_counter()
        if op == "kept":
            run(kept)
        else:
            with make() as client:
                run(client)
        took.append(time.perf_counter() - start)
    print(" ".join(map(repr, took)), flush=True)
"#;

impl PythonTokenPeer {
    fn start(server: &DevServer) -> Result<Self> {
        let dir = std::env::temp_dir().join(format!("gateway-auth-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let ca = dir.join("dev-ca.pem");
        std::fs::write(&ca, server.ca_pem())?;
        let process = PythonProcess::start(
            PYTHON_TOKEN_PEER,
            &[
                &server.token_endpoint(),
                &ca.display().to_string(),
                defaults::POST_CLIENT_ID,
                defaults::POST_CLIENT_SECRET,
            ],
            "Authlib and httpx (pip install authlib httpx)",
        )?;
        Ok(Self(process))
    }

    fn run(&mut self, op: &str, count: usize) -> Result<Vec<Duration>> {
        self.0.run(op, count)
    }
}

/// The same `rustls::ClientConfig` the plugin builds for a CA, natively.
fn native_config(ca_pem: &str) -> Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert?)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth(),
    ))
}

fn digest_of(hex_id: &str) -> Result<[u8; 32]> {
    let mut key = [0u8; 32];
    anyhow::ensure!(hex_id.len() == 64, "a profile id is 64 hex digits");
    for (i, byte) in key.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex_id[2 * i..2 * i + 2], 16)?;
    }
    Ok(key)
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

/// A Python peer in a process of its own, run by `python3` from `PATH`: each line
/// `OP N` on its standard input answers with N timings (seconds) on one line.
struct PythonProcess {
    child: Child,
    input: ChildStdin,
    output: BufReader<ChildStdout>,
}

impl PythonProcess {
    fn start(script: &str, args: &[&str], needs: &str) -> Result<Self> {
        let mut child = Command::new("python3")
            .args(["-W", "ignore", "-c", script])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            // Deprecation notices of the peers' packages would land in the table.
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting python3 (a peer; it needs {needs})"))?;
        let input = child.stdin.take().context("python3's stdin")?;
        let output = BufReader::new(child.stdout.take().context("python3's stdout")?);
        Ok(Self {
            child,
            input,
            output,
        })
    }

    fn run(&mut self, op: &str, count: usize) -> Result<Vec<Duration>> {
        writeln!(self.input, "{op} {count}")?;
        self.input.flush()?;
        let mut line = String::new();
        self.output.read_line(&mut line)?;
        let samples = line
            .split_whitespace()
            .map(|s| s.parse::<f64>().map(Duration::from_secs_f64))
            .collect::<Result<Vec<_>, _>>()
            .context("the Python peer's timings")?;
        anyhow::ensure!(
            samples.len() == count,
            "the Python peer stopped (is its package installed?)"
        );
        Ok(samples)
    }
}

impl Drop for PythonProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The seed's Python SSL-context code: `miss N` builds a context, `hit N` finds it by
/// the SHA-256 of the PEM in a dict.
struct PythonPeer(PythonProcess);

const PYTHON_PEER: &str = r#"
import hashlib, ssl, sys, time
pem = sys.stdin.readline().encode().decode("unicode_escape")
cache = {}
def miss():
    context = ssl.create_default_context()
    context.load_verify_locations(cadata=pem)
    return context
def hit():
    return cache[hashlib.sha256(pem.encode()).hexdigest()]
cache[hashlib.sha256(pem.encode()).hexdigest()] = miss()
for line in sys.stdin:
    op, count = line.split()
    run = miss if op == "miss" else hit
    took = []
    for _ in range(int(count)):
        start = time.perf_counter()
        run()
        took.append(time.perf_counter() - start)
    print(" ".join(map(repr, took)), flush=True)
"#;

impl PythonPeer {
    fn start(ca_pem: &str) -> Result<Self> {
        let mut process = PythonProcess::start(PYTHON_PEER, &[], "only the standard library")?;
        writeln!(process.input, "{}", ca_pem.escape_default())?;
        Ok(Self(process))
    }

    fn run(&mut self, op: &str, count: usize) -> Result<Vec<Duration>> {
        self.0.run(op, count)
    }
}
