//! `gateway-auth serve-metrics`: a plugin driven against the bundled development
//! server, its Prometheus metrics served over HTTP on 127.0.0.1. Every scrape first
//! runs one round of calls (a prepare, a one-off token, a session's access token), so
//! the counters move between scrapes.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use gateway_auth_devserver::{DevServer, defaults};
use gateway_auth_host::{
    Client, ClientAuth, EgressPolicy, Grant, Plugin, PluginOptions, SessionGrant, TrustSpec,
};

use crate::commands::load_runtime;

/// The session the served plugin keeps open.
const SESSION: &str = "serve-metrics";

/// How long one connection may take to send its request head, and to take the answer.
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves the metrics on 127.0.0.1:`port` (0: any free port, printed) until
/// interrupted, or after `scrapes` scrapes (answered `GET /metrics`) when given.
pub fn run(port: u16, scrapes: Option<u64>) -> Result<()> {
    let server = DevServer::start(Default::default()).context("starting the development server")?;
    let mut plugin = load_runtime()?.plugin(PluginOptions {
        egress: Arc::new(EgressPolicy::parse(["127.0.0.1"])?),
        ..PluginOptions::default()
    })?;
    let mut client = Client::new(
        defaults::BASIC_CLIENT_ID,
        ClientAuth::ClientSecretBasic(defaults::BASIC_CLIENT_SECRET.into()),
        TrustSpec::ca(server.ca_pem()),
    );
    client.token_endpoint = Some(server.token_endpoint());
    plugin.open_session(SESSION, &client, &SessionGrant::ClientCredentials)?;

    let listener = TcpListener::bind(("127.0.0.1", port)).context("binding 127.0.0.1")?;
    let address = listener.local_addr()?;
    println!("metrics of a plugin driven against {}", server.issuer());
    println!("serving http://{address}/metrics");
    let mut served = 0;
    for stream in listener.incoming() {
        let stream = match stream {
            Ok(stream) => stream,
            Err(e) => {
                tracing::warn!("accepting a scrape: {e}");
                continue;
            }
        };
        match answer(stream, &mut plugin, &client) {
            Ok(true) => served += 1,
            // A request for another path (a browser's /favicon.ico) is no scrape.
            Ok(false) => {}
            Err(e) => tracing::warn!("answering a scrape: {e:#}"),
        }
        if scrapes.is_some_and(|n| served >= n) {
            break;
        }
    }
    Ok(())
}

/// One round of calls, so that a scrape sees the counters move.
fn drive(plugin: &mut Plugin, client: &Client) -> Result<()> {
    plugin.prepare(&client.trust)?;
    plugin.request_token(client, Grant::ClientCredentials)?;
    plugin.access_token(SESSION)?;
    Ok(())
}

/// Answers one HTTP/1.1 request: `GET /metrics` gets the text (and is a scrape:
/// `true`), anything else 404. A client that sends no complete head within
/// [`IO_TIMEOUT`] is dropped, so it cannot hold up the scrapes behind it.
fn answer(stream: TcpStream, plugin: &mut Plugin, client: &Client) -> Result<bool> {
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    // The rest of the head says nothing this server needs.
    let mut line = String::new();
    while reader.read_line(&mut line)? > 2 {
        line.clear();
    }
    let scrape = request_line.starts_with("GET /metrics ");
    let (status, body) = if scrape {
        if let Err(e) = drive(plugin, client) {
            tracing::warn!("driving the plugin: {e:#}");
        }
        ("200 OK", plugin.metrics_text()?)
    } else {
        (
            "404 Not Found",
            "only /metrics is served here\n".to_string(),
        )
    };
    let mut stream = stream;
    write!(
        stream,
        "HTTP/1.1 {status}\r\ncontent-type: text/plain; version=0.0.4; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()?;
    Ok(scrape)
}
