//! The subcommands.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Subcommand;
use gateway_auth_devserver::DevServer;
use gateway_auth_host::{
    Client, ClientAuth, EgressPolicy, Grant, PluginOptions, Runtime, TrustSpec,
};

use crate::{bench, demo};

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
    },
    /// Measure cache hits, cache misses and cached tokens.
    Bench {
        /// Distinct upstream CAs to prepare (each a cache miss).
        #[arg(long, default_value_t = 200)]
        upstreams: usize,
        /// Repeated prepares of one CA (each a cache hit).
        #[arg(long, default_value_t = 5000)]
        hits: usize,
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
    /// Request one token with the client-credentials grant and print it.
    Token {
        /// The token endpoint (https).
        #[arg(long)]
        token_endpoint: String,
        /// The client id.
        #[arg(long)]
        client_id: String,
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
        #[arg(long = "allow", required = true)]
        allow: Vec<String>,
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
        } => dev_server(
            ca_out,
            reuse_detection,
            token_delay_ms,
            token_drip_ms,
            token_lifetime,
        ),
        Command::Bench { upstreams, hits } => bench::run(upstreams, hits),
        Command::Prepare {
            ca,
            client_cert,
            client_key,
            web_roots,
        } => prepare(ca, client_cert, client_key, web_roots),
        Command::Token {
            token_endpoint,
            client_id,
            client_secret_env,
            ca,
            scopes,
            allow,
        } => token(
            token_endpoint,
            client_id,
            &client_secret_env,
            ca,
            scopes,
            allow,
        ),
    }
}

fn read(path: &PathBuf) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

/// Loads the bundled component, saying how long it took (compilation is cached on disk
/// after the first start).
pub fn load_runtime() -> Result<Runtime> {
    let start = Instant::now();
    let runtime = Runtime::bundled()?;
    eprintln!("component loaded in {}", bench::human(start.elapsed()));
    Ok(runtime)
}

fn dev_server(
    ca_out: Option<PathBuf>,
    reuse_detection: bool,
    token_delay_ms: u64,
    token_drip_ms: u64,
    token_lifetime: Option<u64>,
) -> Result<()> {
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
    println!("  clients and credentials: `defaults` in devserver/src/lib.rs");
    println!("press Ctrl-C to stop");
    loop {
        std::thread::park();
    }
}

fn prepare(
    ca: Option<PathBuf>,
    client_cert: Option<PathBuf>,
    client_key: Option<PathBuf>,
    web_roots: bool,
) -> Result<()> {
    let spec = TrustSpec {
        ca_bundle: ca.as_ref().map(read).transpose()?.unwrap_or_default(),
        client_certificate: client_cert.as_ref().map(read).transpose()?,
        client_key: client_key.as_ref().map(read).transpose()?.map(Into::into),
        web_roots,
    };
    let mut plugin = load_runtime()?.plugin(PluginOptions::default())?;
    let profile = plugin.prepare(&spec)?;
    println!("profile id:  {}", profile.id);
    println!("anchors:     {}", profile.anchors);
    println!("mutual TLS:  {}", profile.mutual_tls);
    match profile.not_after {
        Some(t) => println!("not after:   {t} (unix seconds)"),
        None => println!("not after:   -"),
    }
    Ok(())
}

fn token(
    token_endpoint: String,
    client_id: String,
    secret_env: &str,
    ca: Option<PathBuf>,
    scopes: Vec<String>,
    allow: Vec<String>,
) -> Result<()> {
    let secret = std::env::var(secret_env)
        .with_context(|| format!("the client secret is read from ${secret_env}"))?;
    let trust = match &ca {
        Some(path) => TrustSpec::ca(read(path)?),
        None => TrustSpec {
            web_roots: true,
            ..TrustSpec::default()
        },
    };
    let mut client = Client::new(
        client_id,
        ClientAuth::ClientSecretBasic(Into::into(secret)),
        trust,
    );
    client.token_endpoint = Some(token_endpoint);
    client.scopes = scopes;
    let mut plugin = load_runtime()?.plugin(PluginOptions {
        egress: Arc::new(EgressPolicy::parse(&allow)?),
        ..PluginOptions::default()
    })?;
    let token = plugin.request_token(&client, Grant::ClientCredentials)?;
    println!("{}", token.access_token.secret());
    Ok(())
}
