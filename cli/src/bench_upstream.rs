//! `gateway-auth bench`, upstream half: the plugin's TLS sessions next to the same
//! rustls code run natively in-process, against one rustls server on 127.0.0.1, plus
//! Python's `ssl` (the seed report's stack) for the handshake; and bulk throughput in
//! the plugin per cipher suite (WebAssembly has no AES instructions).
//!
//! The server speaks a tiny protocol over TLS: the client sends a 1 KiB message whose
//! first 8 bytes (big-endian) say how many bytes to send back.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Result;
use gateway_auth_host::{MemoryStore, Runtime, TrustSpec, Upstream, Upstreams};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::crypto::ring as provider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection};

use crate::bench_compare::{Figures, interleave, line};
use crate::demo;
use serde_json::Value;

/// The suite of the side-by-side rows: the plugin's first choice.
const SUITE: &str = "TLS13_CHACHA20_POLY1305_SHA256";

/// The request every exchange sends.
const REQUEST: usize = 1024;

/// A benchmark server: its CA and port.
struct Server {
    ca_pem: String,
    ca_der: CertificateDer<'static>,
    port: u16,
}

/// Starts a server with its own CA: `resumption` off makes every handshake full;
/// `suites` (names) restricts the cipher suites.
fn server(resumption: bool, suites: Option<&[&str]>) -> Result<Server> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(DnType::CommonName, "bench CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate()?;
    let ca = params.self_signed(&ca_key)?;
    let issuer = Issuer::new(params, ca_key);
    let leaf_key = KeyPair::generate()?;
    let leaf =
        CertificateParams::new(vec!["127.0.0.1".to_string()])?.signed_by(&leaf_key, &issuer)?;

    let mut crypto = provider::default_provider();
    if let Some(names) = suites {
        crypto
            .cipher_suites
            .retain(|s| names.contains(&format!("{:?}", s.suite()).as_str()));
        anyhow::ensure!(!crypto.cipher_suites.is_empty(), "no suite named {names:?}");
    }
    let versions: &[&rustls::SupportedProtocolVersion] = match suites {
        Some(names) if names.iter().all(|n| n.starts_with("TLS_ECDHE")) => {
            &[&rustls::version::TLS12]
        }
        _ => rustls::DEFAULT_VERSIONS,
    };
    let mut config = ServerConfig::builder_with_provider(Arc::new(crypto))
        .with_protocol_versions(versions)?
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
        )?;
    if !resumption {
        config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
        config.send_tls13_tickets = 0;
    }
    let config = Arc::new(config);
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    thread::spawn(move || {
        for socket in listener.incoming().flatten() {
            let config = config.clone();
            thread::spawn(move || serve(socket, config));
        }
    });
    Ok(Server {
        ca_pem: ca.pem(),
        ca_der: ca.der().clone(),
        port,
    })
}

fn serve(socket: TcpStream, config: Arc<ServerConfig>) {
    let _ = socket.set_nodelay(true);
    let Ok(connection) = ServerConnection::new(config) else {
        return;
    };
    let mut tls = rustls::StreamOwned::new(connection, socket);
    let mut request = [0u8; REQUEST];
    let reply = vec![0x5a; 1 << 20];
    while tls.read_exact(&mut request).is_ok() {
        let mut left = u64::from_be_bytes(request[..8].try_into().expect("8 bytes")) as usize;
        while left > 0 {
            let n = left.min(reply.len());
            if tls.write_all(&reply[..n]).is_err() {
                return;
            }
            left -= n;
        }
        if tls.flush().is_err() {
            return;
        }
    }
}

/// One exchange: a 1 KiB request asking for `reply` bytes, read back in full.
fn exchange(stream: &mut (impl Read + Write), reply: usize, buf: &mut [u8]) -> Result<()> {
    let mut request = [0u8; REQUEST];
    request[..8].copy_from_slice(&(reply as u64).to_be_bytes());
    stream.write_all(&request)?;
    let mut left = reply;
    while left > 0 {
        let take = left.min(buf.len());
        let n = stream.read(&mut buf[..take])?;
        anyhow::ensure!(n > 0, "the server closed early");
        left -= n;
    }
    Ok(())
}

/// The native client: the same rustls, in-process, with the same CA.
struct Native {
    config: Arc<ClientConfig>,
}

impl Native {
    fn new(server: &Server) -> Result<Self> {
        let mut roots = RootCertStore::empty();
        roots.add(server.ca_der.clone())?;
        let config = ClientConfig::builder_with_provider(Arc::new(provider::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Self {
            config: Arc::new(config),
        })
    }

    fn connect(&self, port: u16) -> Result<rustls::StreamOwned<ClientConnection, TcpStream>> {
        let tcp = TcpStream::connect(("127.0.0.1", port))?;
        tcp.set_nodelay(true)?;
        let name = ServerName::try_from("127.0.0.1")?.to_owned();
        let mut tls =
            rustls::StreamOwned::new(ClientConnection::new(self.config.clone(), name)?, tcp);
        while tls.conn.is_handshaking() {
            tls.conn.complete_io(&mut tls.sock)?;
        }
        Ok(tls)
    }
}

fn plugin_upstream(runtime: &Runtime, server: &Server) -> Result<Upstream> {
    let upstreams = Upstreams::new(demo::plugin(runtime, Arc::new(MemoryStore::new()))?);
    Ok(upstreams.upstream(TrustSpec::ca(server.ca_pem.clone())))
}

/// Runs the upstream comparisons in `rounds` interleaved rounds, prints them and
/// returns their JSON fields.
pub fn run(runtime: &Runtime, rounds: usize) -> Result<serde_json::Map<String, Value>> {
    line(
        "upstream TLS: the plugin's sessions vs the same rustls natively, one rustls server on 127.0.0.1",
    );
    // Both sides negotiate the plugin's first choice, so only WebAssembly differs.
    line(&format!("  (TLS 1.3, {SUITE} on both sides)"));
    let full = server(false, Some(&[SUITE]))?;
    let resuming = server(true, Some(&[SUITE]))?;
    let (native_full, native_resuming) = (Native::new(&full)?, Native::new(&resuming)?);
    let (plugin_full, plugin_resuming) = (
        plugin_upstream(runtime, &full)?,
        plugin_upstream(runtime, &resuming)?,
    );
    let mut fields = serde_json::Map::new();
    let mut progress = crate::progress::Progress::new();

    progress.show("measuring full handshakes…");
    let handshake = interleave(
        ("full handshake, plugin", "full handshake, native"),
        rounds,
        20,
        || {
            plugin_full
                .connect("127.0.0.1", full.port, &[])
                .map(drop)
                .map_err(Into::into)
        },
        || native_full.connect(full.port).map(drop),
    )?;
    progress.clear();
    handshake.print("plugin / native", false, Some("<= 2.5x"));
    fields.insert("handshake_full_vs_native".into(), handshake.json(false));

    // Each resumed connection makes one tiny exchange, timed with it on both sides: it
    // takes in the server's tickets for the next connection.
    progress.show("measuring resumed handshakes…");
    let resumed = {
        let (mut ours_buf, mut peer_buf) = ([0u8; 64], [0u8; 64]);
        let mut first = true;
        interleave(
            (
                "resumed handshake + 16 B, plugin",
                "resumed handshake + 16 B, native",
            ),
            rounds,
            40,
            || {
                let mut stream = plugin_resuming.connect("127.0.0.1", resuming.port, &[])?;
                // Only the very first connection has no ticket to resume with.
                anyhow::ensure!(stream.info()?.resumed || first, "not resumed");
                first = false;
                exchange(&mut stream, 16, &mut ours_buf)
            },
            || {
                let mut stream = native_resuming.connect(resuming.port)?;
                exchange(&mut stream, 16, &mut peer_buf)
            },
        )?
    };
    progress.clear();
    resumed.print("plugin / native", false, Some("<= 1.5x"));
    fields.insert("handshake_resumed_vs_native".into(), resumed.json(false));

    progress.show("measuring keep-alive requests…");
    let keep_alive = {
        let (mut ours_buf, mut peer_buf) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
        let mut native = native_resuming.connect(resuming.port)?;
        let mut plugin = plugin_resuming.connect("127.0.0.1", resuming.port, &[])?;
        interleave(
            (
                "keep-alive request (1 KiB out, 4 KiB back), plugin",
                "keep-alive request (1 KiB out, 4 KiB back), native",
            ),
            rounds,
            200,
            || exchange(&mut plugin, 4096, &mut ours_buf),
            || exchange(&mut native, 4096, &mut peer_buf),
        )?
    };
    progress.clear();
    keep_alive.print("plugin / native", false, None);
    fields.insert("keep_alive_vs_native".into(), keep_alive.json(false));

    progress.show("measuring bulk downloads…");
    let bulk = {
        let (mut ours_buf, mut peer_buf) = (vec![0u8; 256 * 1024], vec![0u8; 256 * 1024]);
        let mut native = native_resuming.connect(resuming.port)?;
        let mut plugin = plugin_resuming.connect("127.0.0.1", resuming.port, &[])?;
        interleave(
            ("bulk download 4 MiB, plugin", "bulk download 4 MiB, native"),
            rounds,
            3,
            || exchange(&mut plugin, 4 << 20, &mut ours_buf),
            || exchange(&mut native, 4 << 20, &mut peer_buf),
        )?
    };
    progress.clear();
    let mib_per_s = |d: Duration| 4.0 / d.as_secs_f64();
    let share = bulk.json(true);
    line(&format!(
        "  bulk download: plugin {:.0} MiB/s, native {:.0} MiB/s: {} of native (rounds {}-{}), goal >= 0.35",
        mib_per_s(bulk.ours.median),
        mib_per_s(bulk.peer.median),
        share["value"],
        share["min"],
        share["max"],
    ));
    fields.insert("bulk_vs_native".into(), share);
    fields.insert(
        "bulk_mib_per_s".into(),
        serde_json::json!({
            "plugin": mib_per_s(bulk.ours.median).round(),
            "native": mib_per_s(bulk.peer.median).round(),
        }),
    );

    if let Some(python) = python_handshake(&full)? {
        python.print();
        line(&format!(
            "  Python ssl / plugin (full handshake): {:.2}x",
            python.median.as_secs_f64() / handshake.ours.median.as_secs_f64()
        ));
        fields.insert("handshake_full_python".into(), python.json());
    }

    line("bulk download in the plugin per cipher suite (no AES instructions in WebAssembly):");
    let mut suites = serde_json::Map::new();
    for suite in [
        "TLS13_AES_128_GCM_SHA256",
        "TLS13_AES_256_GCM_SHA384",
        "TLS13_CHACHA20_POLY1305_SHA256",
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    ] {
        let only = server(true, Some(&[suite]))?;
        let upstream = plugin_upstream(runtime, &only)?;
        let mut stream = upstream.connect("127.0.0.1", only.port, &[])?;
        let negotiated = stream.info()?.cipher_suite.unwrap_or_default();
        anyhow::ensure!(negotiated == suite, "negotiated {negotiated}, not {suite}");
        let native = {
            let mut stream = Native::new(&only)?.connect(only.port)?;
            throughput(&mut stream, 32 << 20)?
        };
        let plugin = throughput(&mut stream, 8 << 20)?;
        line(&format!(
            "  {suite:<48} plugin {plugin:>5.0} MiB/s, native {native:>5.0} MiB/s"
        ));
        suites.insert(
            suite.into(),
            serde_json::json!({
                "plugin_mib_per_s": plugin.round(),
                "native_mib_per_s": native.round(),
            }),
        );
    }
    fields.insert("bulk_by_cipher_suite".into(), Value::Object(suites));
    Ok(fields)
}

/// MiB/s of a `bytes` download on `stream`.
fn throughput(stream: &mut (impl Read + Write), bytes: usize) -> Result<f64> {
    let mut buf = vec![0u8; 256 * 1024];
    exchange(stream, 1 << 20, &mut buf)?; // warm-up
    let start = Instant::now();
    exchange(stream, bytes, &mut buf)?;
    Ok(bytes as f64 / (1 << 20) as f64 / start.elapsed().as_secs_f64())
}

/// Python's `ssl`: the median connect + handshake with one context, to `server`.
fn python_handshake(server: &Server) -> Result<Option<Figures>> {
    let dir = std::env::temp_dir().join(format!("gateway-auth-bench-py-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, &server.ca_pem)?;
    let script = format!(
        r#"
import socket, ssl, time
ctx = ssl.create_default_context(cafile={ca:?})
for i in range(101):
    start = time.perf_counter()
    with socket.create_connection(("127.0.0.1", {port})) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with ctx.wrap_socket(s, server_hostname="127.0.0.1") as t:
            pass
    if i:
        print(time.perf_counter() - start)
"#,
        ca = ca.display().to_string(),
        port = server.port
    );
    let output = match Command::new("python3").args(["-c", &script]).output() {
        Ok(output) => output,
        Err(_) => return Ok(None),
    };
    let _ = std::fs::remove_dir_all(&dir);
    anyhow::ensure!(
        output.status.success(),
        "python3: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let samples: Vec<Duration> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| l.trim().parse::<f64>().ok())
        .map(Duration::from_secs_f64)
        .collect();
    anyhow::ensure!(!samples.is_empty(), "python3 printed no timings");
    Ok(Some(Figures::of("full handshake, Python ssl", samples)))
}
