//! Shared fixtures for the end-to-end tests: one compiled component per test binary,
//! certificates made on the fly, a small HTTPS token server on 127.0.0.1, a real
//! `redis-server`, and the MCP servers (oidc-provider and a protected resource).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::Duration;

use gateway_auth_devserver::{DevServer, defaults};
use gateway_auth_host::{
    Client, ClientAuth, EgressPolicy, Plugin, PluginOptions, Runtime, StoreError, TokenStore,
    TrustSpec,
};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{HandshakeKind, RootCertStore, ServerConfig, ServerConnection};

#[path = "support/redis_server.rs"]
pub mod redis_server;
pub use redis_server::RedisServer;

#[path = "support/mcp_servers.rs"]
pub mod mcp_servers;
pub use mcp_servers::{McpServers, Redirect};
#[path = "support/https_client.rs"]
pub mod https_client;
pub use https_client::{Answer, https_get};

#[path = "support/zoo.rs"]
pub mod zoo;

/// The runtime every test in a binary shares: the component is compiled once.
pub fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| Runtime::bundled().expect("the bundled component loads"))
}

/// A plugin allowed to reach 127.0.0.1 only.
pub fn loopback_plugin() -> Plugin {
    runtime()
        .plugin(PluginOptions {
            egress: Arc::new(EgressPolicy::parse(["127.0.0.1"]).unwrap()),
            ..PluginOptions::default()
        })
        .unwrap()
}

/// A client of the development server: every endpoint set, its CA trusted, and a 2 s
/// deadline so that failing calls fail fast.
pub fn dev_client(server: &DevServer, id: &str, auth: ClientAuth) -> Client {
    let mut client = Client::new(id, auth, TrustSpec::ca(server.ca_pem()));
    client.token_endpoint = Some(server.token_endpoint());
    client.authorization_endpoint = Some(server.authorization_endpoint());
    client.device_authorization_endpoint = Some(server.device_authorization_endpoint());
    client.revocation_endpoint = Some(server.revocation_endpoint());
    client.redirect_uri = Some(defaults::REDIRECT_URI.into());
    client.timeout_ms = Some(2_000);
    client
}

/// The development server's `client_secret_basic` client.
pub fn dev_basic_client(server: &DevServer) -> Client {
    dev_client(
        server,
        defaults::BASIC_CLIENT_ID,
        ClientAuth::ClientSecretBasic(defaults::BASIC_CLIENT_SECRET.into()),
    )
}

/// The `code` and `state` of an authorization redirect.
pub fn code_and_state(redirect: &str) -> (String, String) {
    let query = redirect.split_once('?').map_or("", |(_, q)| q);
    let get = |name: &str| {
        query
            .split('&')
            .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("no {name} in {redirect}"))
            .to_string()
    };
    (get("code"), get("state"))
}

/// A certificate authority for tests.
pub struct TestCa {
    /// Its certificate, PEM.
    pub pem: String,
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl TestCa {
    /// A new self-signed CA.
    pub fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Self {
            pem: issuer.pem(),
            issuer,
        }
    }

    /// A leaf certificate for `name` (a DNS name or an IP address) and its PKCS#8 key.
    pub fn issue(&self, name: &str) -> (String, String) {
        let mut params = CertificateParams::new(vec![name.to_string()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

/// What a [`TokenServer`] saw.
#[derive(Default)]
pub struct Seen {
    /// TCP connections accepted.
    pub accepted: AtomicU64,
    /// TLS connections that completed a handshake.
    pub handshakes: AtomicU64,
    /// Of those, resumed ones.
    pub resumed: AtomicU64,
    /// The DER of the client certificates presented, in order.
    pub client_certificates: Mutex<Vec<Vec<u8>>>,
}

/// How a [`TokenServer`] answers one request: it writes to the TLS stream, given the
/// number of the handshake (from 1).
pub type Responder = Arc<dyn Fn(&mut dyn Write, u64) + Send + Sync>;

/// An HTTPS server on 127.0.0.1 that answers every request with a bearer token, or as
/// its [`Responder`] says.
pub struct TokenServer {
    /// `https://127.0.0.1:PORT/token`.
    pub url: String,
    /// What it saw.
    pub seen: Arc<Seen>,
    running: Arc<AtomicBool>,
    port: u16,
}

impl TokenServer {
    /// Serves with a certificate issued by `ca`; when `client_ca` is given, the
    /// handshake demands a client certificate issued by it.
    pub fn start(ca: &TestCa, client_ca: Option<&TestCa>) -> Self {
        Self::start_with(ca, client_ca, Arc::new(token_reply))
    }

    /// Serves like [`TokenServer::start`], answering each request with `respond`.
    pub fn start_with(ca: &TestCa, client_ca: Option<&TestCa>, respond: Responder) -> Self {
        let (cert, key) = ca.issue("127.0.0.1");
        let builder = match client_ca {
            None => ServerConfig::builder().with_no_client_auth(),
            Some(client_ca) => {
                let mut roots = RootCertStore::empty();
                roots.add(der(&client_ca.pem)).unwrap();
                ServerConfig::builder().with_client_cert_verifier(
                    WebPkiClientVerifier::builder(Arc::new(roots))
                        .build()
                        .unwrap(),
                )
            }
        };
        let config = Arc::new(
            builder
                .with_single_cert(
                    vec![der(&cert)],
                    PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
                )
                .unwrap(),
        );
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Seen::default());
        let running = Arc::new(AtomicBool::new(true));
        let (seen2, running2) = (seen.clone(), running.clone());
        thread::spawn(move || {
            for socket in listener.incoming() {
                if !running2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(socket) = socket else { continue };
                seen2.accepted.fetch_add(1, Ordering::SeqCst);
                let (config, seen, respond) = (config.clone(), seen2.clone(), respond.clone());
                thread::spawn(move || serve(socket, config, &seen, &*respond));
            }
        });
        Self {
            url: format!("https://127.0.0.1:{port}/token"),
            seen,
            running,
            port,
        }
    }
}

impl TokenServer {
    /// Its port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.running.store(false, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn der(pem: &str) -> CertificateDer<'static> {
    CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()
}

fn serve(
    socket: TcpStream,
    config: Arc<ServerConfig>,
    seen: &Seen,
    respond: &(dyn Fn(&mut dyn Write, u64) + Send + Sync),
) {
    let _ = socket.set_nodelay(true);
    let _ = socket.set_read_timeout(Some(Duration::from_secs(10)));
    let mut tls = rustls::StreamOwned::new(ServerConnection::new(config).unwrap(), socket);
    let mut request = Vec::new();
    let mut buf = [0u8; 4096];
    while !complete(&request) {
        match tls.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    seen.handshakes.fetch_add(1, Ordering::SeqCst);
    if tls.conn.handshake_kind() == Some(HandshakeKind::Resumed) {
        seen.resumed.fetch_add(1, Ordering::SeqCst);
    }
    if let Some(chain) = tls.conn.peer_certificates() {
        seen.client_certificates
            .lock()
            .unwrap()
            .push(chain[0].to_vec());
    }
    respond(&mut tls, seen.handshakes.load(Ordering::SeqCst));
    tls.conn.send_close_notify();
    let _ = tls.flush();
}

/// The default answer: bearer token `tok-N` for the Nth handshake.
fn token_reply(out: &mut dyn Write, n: u64) {
    let body = format!(r#"{{"access_token":"tok-{n}","token_type":"Bearer","expires_in":3600}}"#);
    let reply = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = out.write_all(reply.as_bytes());
}

/// A responder that writes `head`, then `filler` bytes without end (until the client
/// hangs up, or 256 MiB).
pub fn endless(head: &'static str, filler: u8) -> Responder {
    Arc::new(move |out, _| {
        if out.write_all(head.as_bytes()).is_err() {
            return;
        }
        let piece = [filler; 16 * 1024];
        for _ in 0..(256 << 20) / piece.len() {
            if out.write_all(&piece).and_then(|()| out.flush()).is_err() {
                return;
            }
        }
    })
}

/// A `client_secret_post` client of a [`TokenServer`], trusting `trust`.
pub fn token_server_client(server: &TokenServer, trust: TrustSpec) -> Client {
    let mut client = Client::new(
        "gateway",
        ClientAuth::ClientSecretPost("s3cret".into()),
        trust,
    );
    client.token_endpoint = Some(server.url.clone());
    client
}

fn complete(request: &[u8]) -> bool {
    let text = String::from_utf8_lossy(request);
    let Some(end) = text.find("\r\n\r\n") else {
        return false;
    };
    let length = text[..end]
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    request.len() >= end + 4 + length
}

/// A store that counts what it is asked, over another.
pub struct CountingStore {
    inner: Arc<dyn TokenStore>,
    gets: AtomicU64,
    swaps: AtomicU64,
}

impl CountingStore {
    /// Counts the calls to `inner`.
    pub fn new(inner: Arc<dyn TokenStore>) -> Self {
        Self {
            inner,
            gets: AtomicU64::new(0),
            swaps: AtomicU64::new(0),
        }
    }

    /// Calls so far, of both kinds.
    pub fn operations(&self) -> u64 {
        self.gets() + self.swaps()
    }

    /// `get` calls so far.
    pub fn gets(&self) -> u64 {
        self.gets.load(Ordering::SeqCst)
    }

    /// `compare_and_swap` calls so far.
    pub fn swaps(&self) -> u64 {
        self.swaps.load(Ordering::SeqCst)
    }
}

impl TokenStore for CountingStore {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.gets.fetch_add(1, Ordering::SeqCst);
        self.inner.get(key)
    }

    fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        value: Option<&[u8]>,
    ) -> Result<bool, StoreError> {
        self.swaps.fetch_add(1, Ordering::SeqCst);
        self.inner.compare_and_swap(key, expected, value)
    }
}

/// The replica workload: `sessions` password sessions (users `user-0`, `user-1`, ...)
/// of the development server's basic client, renewed 1 s before expiry.
pub fn replica_client(server: &DevServer) -> Client {
    replica_client_at(&server.token_endpoint(), &server.ca_pem())
}

/// [`replica_client`] from what another process is told of the server. Every replica
/// must build the very same client: a different one would reset the shared sessions.
pub fn replica_client_at(token_endpoint: &str, ca_pem: &str) -> Client {
    let mut client = Client::new(
        defaults::BASIC_CLIENT_ID,
        ClientAuth::ClientSecretBasic(defaults::BASIC_CLIENT_SECRET.into()),
        TrustSpec::ca(ca_pem),
    );
    client.token_endpoint = Some(token_endpoint.to_string());
    client.refresh_skew_seconds = Some(1);
    client.timeout_ms = Some(5_000);
    client
}

/// The development server's users for [`replica_workload`].
pub fn replica_users(sessions: usize) -> Vec<(String, String)> {
    (0..sessions)
        .map(|i| (format!("user-{i}"), format!("password-{i}")))
        .collect()
}

/// The session grant of session `i` of [`replica_workload`].
pub fn replica_grant(i: usize) -> gateway_auth_host::SessionGrant {
    let (username, password) = replica_users(i + 1).pop().expect("one user");
    gateway_auth_host::SessionGrant::Password(gateway_auth_host::PasswordCredentials {
        username,
        password: password.into(),
    })
}

/// What [`replica_workload`] did.
#[derive(Debug, Default)]
pub struct WorkloadReport {
    /// `access-token` calls made.
    pub calls: u64,
    /// Calls that failed, with the first few errors.
    pub failures: u64,
    /// The first errors seen.
    pub errors: Vec<String>,
}

/// `threads` threads calling `access-token` on sessions `s0..s{sessions}` in turn, for
/// `run`, each through `get` (an instance from a pool, say).
pub fn replica_workload<P: std::ops::DerefMut<Target = Plugin>>(
    get: &(dyn Fn() -> P + Sync),
    sessions: usize,
    threads: usize,
    run: Duration,
) -> WorkloadReport {
    let deadline = std::time::Instant::now() + run;
    let report = Mutex::new(WorkloadReport::default());
    thread::scope(|scope| {
        for t in 0..threads {
            let report = &report;
            scope.spawn(move || {
                let mut n = t;
                while std::time::Instant::now() < deadline {
                    let key = format!("s{}", n % sessions);
                    n += 1;
                    let result = get().access_token(&key);
                    let mut report = report.lock().unwrap();
                    report.calls += 1;
                    if let Err(e) = result {
                        report.failures += 1;
                        if report.errors.len() < 5 {
                            report.errors.push(format!("{key}: {e}"));
                        }
                    }
                    drop(report);
                    thread::sleep(Duration::from_millis(5));
                }
            });
        }
    });
    report.into_inner().unwrap()
}
