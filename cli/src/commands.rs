//! The subcommands.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Subcommand;
use gateway_auth_devserver::DevServer;
use gateway_auth_host::{PluginOptions, Runtime};

use crate::config::{AuthConfig, ConfigFile, Gateway, GrantConfig};
use crate::{bench, demo, gateways, serve_metrics, trust};

/// What to do.
#[derive(Subcommand)]
pub enum Command {
    /// Run every OAuth flow against the bundled development authorization server.
    Demo {
        /// Where sessions are kept: `memory:`, `sqlite:PATH` or `redis://HOST:PORT/DB`
        /// (default: a SQLite file in a temporary directory).
        #[arg(long)]
        store: Option<String>,
    },
    /// Run the development authorization server until interrupted.
    DevServer {
        /// Write its CA certificate (PEM) here.
        #[arg(long)]
        ca_out: Option<PathBuf>,
        /// Revoke a refresh token's whole lineage when a rotated-away one is used again
        /// (RFC 9700 §4.14.2), answering `invalid_grant`.
        #[arg(long)]
        reuse_detection: bool,
        /// Hold every token answer back this long, in milliseconds.
        #[arg(long, default_value_t = 0)]
        token_delay_ms: u64,
        /// Send every token answer one byte per write, this many milliseconds apart,
        /// after processing the request (0: off).
        #[arg(long, default_value_t = 0)]
        token_drip_ms: u64,
        /// The `expires_in` of access tokens, in seconds.
        #[arg(long)]
        token_lifetime: Option<u64>,
        /// Write the bundled clients' key material here (created if missing), one PEM
        /// file each: `mtls-client.crt` and `mtls-client.key` (tls_client_auth),
        /// `jwt-rs256-client.key` and `jwt-es256-client.key` (private_key_jwt),
        /// `jwt-bearer-issuer.key` (signs jwt-bearer assertions).
        #[arg(long)]
        material_out: Option<PathBuf>,
        /// Read control commands from standard input, one per line, each answered with
        /// one line on standard output: `approve USER_CODE`, `deny USER_CODE`,
        /// `assertion SUBJECT` (a signed jwt-bearer assertion), `token-requests`,
        /// `reuse-detections`, `most-presentations` (of any one refresh token),
        /// `device-interval SECONDS` (for device authorizations started from now on),
        /// `token-lifetime SECONDS`.
        #[arg(long)]
        control: bool,
    },
    /// Measure the plugin next to what a gateway would use instead (Python, native
    /// Rust), each pair in interleaved rounds of one run.
    Bench {
        /// Interleaved rounds per comparison (ours and the peer alternating).
        #[arg(long, default_value_t = crate::bench::DEFAULT_ROUNDS)]
        rounds: usize,
        /// Print one JSON object (the table goes to standard error).
        #[arg(long)]
        json: bool,
        /// Cached profiles, sessions and TLS sessions the memory figures are taken at.
        #[arg(long, default_value_t = 10_000)]
        scale: usize,
        /// The largest cache the hit and miss costs are measured at (from 100).
        #[arg(long, default_value_t = 100_000)]
        largest_cache: usize,
    },
    /// Validate trust material and print its profile.
    Prepare {
        /// CA bundle, PEM.
        #[arg(long)]
        ca: Option<PathBuf>,
        /// Client certificate chain, PEM.
        #[arg(long, requires = "client_key")]
        client_cert: Option<PathBuf>,
        /// Client private key, PEM.
        #[arg(long, requires = "client_cert")]
        client_key: Option<PathBuf>,
        /// Trust the public web roots too.
        #[arg(long)]
        web_roots: bool,
    },
    /// Request one token and print it: a gateway of a config file (`--config FILE
    /// NAME`), or a client-credentials client given by flags.
    Token {
        /// The config file describing the gateway.
        #[arg(long, requires = "name", conflicts_with_all = ["token_endpoint", "client_id", "ca", "scopes", "allow"])]
        config: Option<PathBuf>,
        /// The gateway's name in the config file.
        #[arg(requires = "config")]
        name: Option<String>,
        /// Print a JSON object (access token, type, expiry, scopes) instead of the
        /// access token alone.
        #[arg(long)]
        json: bool,
        /// The token endpoint (https).
        #[arg(long, required_unless_present = "config")]
        token_endpoint: Option<String>,
        /// The client id.
        #[arg(long, required_unless_present = "config")]
        client_id: Option<String>,
        /// The environment variable holding the client secret (sent with HTTP Basic).
        #[arg(long, default_value = "GATEWAY_AUTH_CLIENT_SECRET")]
        client_secret_env: String,
        /// CA bundle for the token endpoint, PEM; without it the web roots are trusted.
        #[arg(long)]
        ca: Option<PathBuf>,
        /// A scope to request (repeatable).
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// An egress rule (repeatable), e.g. `auth.example.com:443` or `127.0.0.1`.
        #[arg(long = "allow", required_unless_present = "config")]
        allow: Vec<String>,
    },
    /// Check every gateway of a config file without sending anything: files and
    /// secrets readable, trust material valid and unexpired (prepared by the plugin),
    /// endpoints https and allowed by the egress rules, store URL valid.
    Check {
        /// The config file.
        #[arg(long)]
        config: PathBuf,
    },
    /// Drive a plugin against the bundled development server and serve its Prometheus
    /// metrics on http://127.0.0.1:PORT/metrics (every scrape runs one more round of
    /// calls first).
    ServeMetrics {
        /// The port on 127.0.0.1 (0: any free one, printed).
        #[arg(long, default_value_t = 9464)]
        port: u16,
        /// Stop after this many scrapes, answered requests for /metrics (default:
        /// serve until interrupted).
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        scrapes: Option<u64>,
    },
    /// Trust material.
    Tls {
        #[command(subcommand)]
        command: TlsCommand,
    },
}

/// `gateway-auth tls ...`.
#[derive(Subcommand)]
pub enum TlsCommand {
    /// Validate a CA bundle (and a client certificate and key) as the plugin prepares
    /// them, print the profile, and fail on expired or mismatched material.
    Check {
        /// CA bundle, PEM.
        #[arg(long)]
        ca: PathBuf,
        /// Client certificate chain, PEM.
        #[arg(long, requires = "key")]
        cert: Option<PathBuf>,
        /// Client private key, PEM.
        #[arg(long, requires = "cert")]
        key: Option<PathBuf>,
    },
}

/// Runs one subcommand.
pub fn run(command: Command) -> Result<()> {
    match command {
        Command::Demo { store } => demo::run(store.as_deref()),
        Command::DevServer {
            ca_out,
            reuse_detection,
            token_delay_ms,
            token_drip_ms,
            token_lifetime,
            material_out,
            control,
        } => dev_server(DevServerArgs {
            ca_out,
            reuse_detection,
            token_delay_ms,
            token_drip_ms,
            token_lifetime,
            material_out,
            control,
        }),
        Command::Bench {
            rounds,
            json,
            scale,
            largest_cache,
        } => {
            anyhow::ensure!(
                scale > 0 && largest_cache >= 100,
                "--scale must be positive and --largest-cache at least 100"
            );
            bench::run(
                rounds,
                json,
                &crate::bench_scale::Scale {
                    count: scale,
                    largest_cache,
                },
            )
        }
        Command::ServeMetrics { port, scrapes } => serve_metrics::run(port, scrapes),
        Command::Prepare {
            ca,
            client_cert,
            client_key,
            web_roots,
        } => prepare(ca, client_cert, client_key, web_roots),
        Command::Token {
            config: Some(path),
            name,
            json,
            ..
        } => {
            let file = ConfigFile::load(&path)?;
            gateways::token(&file, name.as_deref().unwrap_or_default(), json)
        }
        Command::Token {
            config: None,
            json,
            token_endpoint,
            client_id,
            client_secret_env,
            ca,
            scopes,
            allow,
            ..
        } => token(
            token_endpoint.unwrap_or_default(),
            client_id.unwrap_or_default(),
            client_secret_env,
            ca,
            scopes,
            allow,
            json,
        ),
        Command::Check { config } => gateways::check(&config),
        Command::Tls {
            command: TlsCommand::Check { ca, cert, key },
        } => {
            let mut plugin = load_runtime()?.plugin(PluginOptions::default())?;
            trust::check(&mut plugin, &ca, cert.as_deref(), key.as_deref())
        }
    }
}

/// Loads the bundled component, saying how long it took (compilation is cached on disk
/// after the first start).
pub fn load_runtime() -> Result<Runtime> {
    let start = Instant::now();
    let runtime = match std::env::var_os(COMPONENT_VAR) {
        // A component built elsewhere (another build of the guest, say).
        Some(path) => Runtime::from_file(&path)
            .with_context(|| format!("loading the component {COMPONENT_VAR} names"))?,
        None => Runtime::bundled()?,
    };
    eprintln!("component loaded in {}", bench::human(start.elapsed()));
    Ok(runtime)
}

/// The environment variable naming a component file to load instead of the bundled one.
pub const COMPONENT_VAR: &str = "GATEWAY_AUTH_COMPONENT";

/// The `dev-server` subcommand's options.
struct DevServerArgs {
    ca_out: Option<PathBuf>,
    reuse_detection: bool,
    token_delay_ms: u64,
    token_drip_ms: u64,
    token_lifetime: Option<u64>,
    material_out: Option<PathBuf>,
    control: bool,
}

fn dev_server(args: DevServerArgs) -> Result<()> {
    let DevServerArgs {
        ca_out,
        reuse_detection,
        token_delay_ms,
        token_drip_ms,
        token_lifetime,
        material_out,
        control,
    } = args;
    let server = DevServer::start(gateway_auth_devserver::Options {
        token_drip_ms,
        ..Default::default()
    })?;
    server.set_reuse_detection(reuse_detection);
    server.set_token_delay(std::time::Duration::from_millis(token_delay_ms));
    if let Some(seconds) = token_lifetime {
        server.set_token_lifetime(seconds);
    }
    if let Some(path) = &ca_out {
        std::fs::write(path, server.ca_pem())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(dir) = &material_out {
        write_material(&server, dir)?;
    }
    println!("development authorization server (for development only)");
    println!("  issuer:         {}", server.issuer());
    println!("  token endpoint: {}", server.token_endpoint());
    println!(
        "  reuse detection: {}, token answers delayed {token_delay_ms} ms, dripped {token_drip_ms} ms per byte",
        if reuse_detection { "on" } else { "off" }
    );
    match &ca_out {
        Some(path) => println!("  CA certificate: {}", path.display()),
        None => println!("  CA certificate: pass --ca-out FILE to save it"),
    }
    if let Some(dir) = &material_out {
        println!("  client key material: {}", dir.display());
    }
    println!("  clients and credentials: `defaults` in devserver/src/lib.rs");
    if control {
        println!("  control: one command per line on standard input");
    }
    println!("press Ctrl-C to stop");
    if control {
        use std::io::{BufRead, Write};
        let mut out = std::io::stdout();
        for line in std::io::stdin().lock().lines() {
            let answer = control_command(&server, line?.trim());
            writeln!(out, "{answer}")?;
            out.flush()?;
        }
    }
    loop {
        std::thread::park();
    }
}

/// Writes the bundled clients' key material to `dir`, one PEM file each, readable by
/// the owner only (they are private keys, if development ones).
fn write_material(server: &DevServer, dir: &std::path::Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let files = [
        ("mtls-client.crt", server.mtls_client_cert_pem()),
        ("mtls-client.key", server.mtls_client_key_pem()),
        ("jwt-rs256-client.key", server.client_rs256_key_pem()),
        ("jwt-es256-client.key", server.client_es256_key_pem()),
        ("jwt-bearer-issuer.key", server.jwt_bearer_issuer_key_pem()),
    ];
    for (name, pem) in files {
        let path = dir.join(name);
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        std::io::Write::write_all(
            &mut options
                .open(&path)
                .with_context(|| format!("writing {}", path.display()))?,
            pem.as_bytes(),
        )
        .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// The one-line answer to a `--control` command.
fn control_command(server: &DevServer, line: &str) -> String {
    let (command, argument) = line.split_once(' ').unwrap_or((line, ""));
    let argument = argument.trim();
    match command {
        "approve" => server.approve_device(argument).to_string(),
        "deny" => server.deny_device(argument).to_string(),
        "assertion" if !argument.is_empty() => server.sign_jwt_bearer_assertion(argument),
        "token-requests" => server.token_requests().to_string(),
        "reuse-detections" => server.reuse_detections().to_string(),
        "most-presentations" => server.most_presentations_of_a_refresh_token().to_string(),
        "device-interval" | "token-lifetime" => match argument.parse::<u64>() {
            Ok(seconds) if command == "device-interval" => {
                server.set_device_interval(seconds);
                "ok".into()
            }
            Ok(seconds) => {
                server.set_token_lifetime(seconds);
                "ok".into()
            }
            Err(_) => format!("error: {command} takes a number of seconds, not {argument:?}"),
        },
        _ => format!(
            "error: unknown command {line:?}: approve CODE, deny CODE, assertion SUBJECT, \
             token-requests, reuse-detections, most-presentations, device-interval SECONDS, \
             token-lifetime SECONDS"
        ),
    }
}

fn prepare(
    ca: Option<PathBuf>,
    client_cert: Option<PathBuf>,
    client_key: Option<PathBuf>,
    web_roots: bool,
) -> Result<()> {
    let spec = trust::trust_spec(
        ca.as_deref(),
        client_cert.as_deref(),
        client_key.as_deref(),
        web_roots,
    )?;
    let mut plugin = load_runtime()?.plugin(PluginOptions::default())?;
    let profile = plugin.prepare(&spec)?;
    trust::print_profile(&profile, trust::unix_now());
    Ok(())
}

/// The flag form of `token`: a client-credentials gateway with a Basic secret from
/// `secret_env`, run as a config file's gateway is.
fn token(
    token_endpoint: String,
    client_id: String,
    secret_env: String,
    ca: Option<PathBuf>,
    scopes: Vec<String>,
    allow: Vec<String>,
    json: bool,
) -> Result<()> {
    let gateway = Gateway {
        name: "command-line".into(),
        client_id,
        auth: AuthConfig::ClientSecretBasic {
            secret_env: Some(secret_env),
            secret_file: None,
        },
        grant: GrantConfig::default(),
        issuer: None,
        token_endpoint: Some(token_endpoint),
        authorization_endpoint: None,
        device_authorization_endpoint: None,
        revocation_endpoint: None,
        scopes,
        audience: None,
        resources: Vec::new(),
        ca,
        web_roots: None,
        client_certificate: None,
        client_key: None,
        allow,
        store: None,
        timeout_ms: None,
        refresh_skew_seconds: None,
        refresh_jitter_seconds: None,
        failure_hold_off_seconds: None,
    };
    let name = gateway.name.clone();
    gateways::token(&ConfigFile::from_flags(gateway), &name, json)
}
