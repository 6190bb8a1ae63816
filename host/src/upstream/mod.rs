//! The gateway's own upstream connections over the plugin's cached TLS configurations.
//!
//! The plugin's TLS sessions are sans-IO; this module owns the sockets. [`Upstreams`]
//! shares one instance (so one cache) among any number of streams: each TLS step
//! locks it briefly, and no lock is held across socket I/O. An [`Upstream`] is one
//! upstream's trust material; its streams are opened under the instance's egress
//! policy (checked before any packet is sent), with TCP_NODELAY, and its spec is
//! prepared again by itself when the cache has dropped the profile.
//!
//! [`UpstreamStream`] is a blocking `Read + Write` stream; with the `tokio` feature,
//! [`AsyncUpstreamStream`] is a tokio `AsyncRead + AsyncWrite` one, for hyper and
//! friends.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use gateway_auth_api::{NetError, TlsError, TlsInfo, TlsOutput, TlsState, TrustSpec};

use crate::error::Error;
use crate::plugin::{Plugin, TlsSession};
use crate::transport::{Connection, net_error};

#[cfg(feature = "tokio")]
mod tokio_stream;
#[cfg(feature = "tokio")]
pub use tokio_stream::AsyncUpstreamStream;

/// How long opening a TCP connection (resolution included) may take unless set with
/// [`Upstream::with_connect_timeout`].
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How much ciphertext one socket read takes: one TLS record and then some.
const READ_CHUNK: usize = 32 * 1024;

/// One plugin instance shared by upstream streams.
#[derive(Clone)]
pub struct Upstreams {
    plugin: Arc<Mutex<Plugin>>,
}

impl Upstreams {
    /// Shares `plugin` among the streams opened from here.
    pub fn new(plugin: Plugin) -> Self {
        Self {
            plugin: Arc::new(Mutex::new(plugin)),
        }
    }

    /// The instance, locked: for its statistics, `configure`, `prepare` and the rest.
    /// Streams wait while it is held.
    pub fn plugin(&self) -> MutexGuard<'_, Plugin> {
        lock(&self.plugin)
    }

    /// An upstream whose servers are trusted by `spec`. Cheap; keep one per upstream,
    /// as it remembers the profile id.
    pub fn upstream(&self, spec: TrustSpec) -> Upstream {
        Upstream {
            plugin: self.plugin.clone(),
            spec: Arc::new(spec),
            profile: Arc::new(Mutex::new(None)),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
        }
    }
}

/// One upstream's trust material, ready to open streams.
#[derive(Clone)]
pub struct Upstream {
    plugin: Arc<Mutex<Plugin>>,
    spec: Arc<TrustSpec>,
    /// The profile id of `spec`, once prepared.
    profile: Arc<Mutex<Option<String>>>,
    connect_timeout: Duration,
}

impl Upstream {
    /// The same upstream with another connect timeout.
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Opens a TLS stream to `host`:`port` (`host` is also the server name checked
    /// against the certificate), offering `alpn`, and completes the handshake. The
    /// egress policy refuses before any packet is sent; a refused certificate is an
    /// [`Error::Tls`] before any application byte is sent.
    pub fn connect(&self, host: &str, port: u16, alpn: &[&str]) -> Result<UpstreamStream, Error> {
        let tcp = self.open_tcp(host, port)?;
        let session = self.session(host, alpn)?;
        let mut stream = UpstreamStream {
            io: Io::new(self.plugin.clone(), session),
            tcp,
        };
        stream.handshake()?;
        Ok(stream)
    }

    /// The TCP connection, under the instance's egress policy and resolver.
    fn open_tcp(&self, host: &str, port: u16) -> Result<TcpStream, Error> {
        let (egress, resolver) = {
            let plugin = lock(&self.plugin);
            let options = plugin.options();
            (options.egress.clone(), options.resolver.clone())
        };
        let timeout_ms = self.connect_timeout.as_millis().clamp(1, u32::MAX as u128) as u32;
        let connection =
            Connection::open(&egress, &resolver, host, port, timeout_ms).map_err(Error::Net)?;
        let tcp = connection.into_tcp();
        // The connect deadline bounded the dial; a stream's reads wait as long as its
        // protocol needs (the caller may set timeouts on `tcp()`).
        tcp.set_read_timeout(None).map_err(io_failure)?;
        tcp.set_write_timeout(None).map_err(io_failure)?;
        Ok(tcp)
    }

    /// A TLS session in the instance: with the remembered profile, or after preparing
    /// the spec (first use, or the cache dropped the profile meanwhile).
    fn session(&self, server_name: &str, alpn: &[&str]) -> Result<TlsSession, Error> {
        let alpn: Vec<String> = alpn.iter().map(|p| p.to_string()).collect();
        let mut plugin = lock(&self.plugin);
        let known = lock(&self.profile).clone();
        if let Some(id) = known {
            match plugin.tls_connect(&id, server_name, &alpn) {
                Err(Error::Tls(TlsError::UnknownProfile)) => {}
                other => return other,
            }
        }
        let id = plugin.prepare(&self.spec)?.id;
        *lock(&self.profile) = Some(id.clone());
        plugin.tls_connect(&id, server_name, &alpn)
    }
}

/// The plugin side of a stream: its session and the plaintext not yet read.
struct Io {
    plugin: Arc<Mutex<Plugin>>,
    session: Option<TlsSession>,
    received: Vec<u8>,
    read_at: usize,
    state: TlsState,
}

impl Io {
    fn new(plugin: Arc<Mutex<Plugin>>, session: TlsSession) -> Self {
        Self {
            plugin,
            session: Some(session),
            received: Vec::new(),
            read_at: 0,
            state: TlsState::Handshaking,
        }
    }

    /// One TLS step; keeps the plaintext, returns the ciphertext to write.
    fn advance(&mut self, incoming: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, Error> {
        let session = self.session.as_ref().ok_or(Error::Tls(TlsError::Closed))?;
        let output: TlsOutput = lock(&self.plugin).tls_advance(session, incoming, plaintext)?;
        if self.read_at == self.received.len() {
            self.received.clear();
            self.read_at = 0;
        }
        self.received.extend_from_slice(&output.plaintext);
        self.state = output.state;
        Ok(output.outgoing)
    }

    /// Copies buffered plaintext into `buf`; 0 when none is buffered.
    fn take(&mut self, buf: &mut [u8]) -> usize {
        let available = &self.received[self.read_at..];
        let n = available.len().min(buf.len());
        buf[..n].copy_from_slice(&available[..n]);
        self.read_at += n;
        n
    }

    fn buffered(&self) -> bool {
        self.read_at < self.received.len()
    }

    /// Whether no more plaintext can arrive.
    fn ended(&self) -> bool {
        matches!(self.state, TlsState::PeerClosed | TlsState::Closed)
    }

    fn info(&self) -> Result<TlsInfo, Error> {
        let session = self.session.as_ref().ok_or(Error::Tls(TlsError::Closed))?;
        lock(&self.plugin).tls_info(session)
    }

    /// The close_notify to write; the session is freed.
    fn close(&mut self) -> Vec<u8> {
        let Some(session) = self.session.take() else {
            return Vec::new();
        };
        self.state = TlsState::Closed;
        lock(&self.plugin).tls_close(session).unwrap_or_default()
    }
}

impl Drop for Io {
    fn drop(&mut self) {
        if let Some(session) = self.session.take() {
            lock(&self.plugin).tls_drop(session);
        }
    }
}

/// A blocking TLS stream to an upstream, through the plugin's session.
pub struct UpstreamStream {
    io: Io,
    tcp: TcpStream,
}

impl UpstreamStream {
    fn handshake(&mut self) -> Result<(), Error> {
        let hello = self.io.advance(&[], &[])?;
        self.tcp.write_all(&hello).map_err(io_failure)?;
        let mut chunk = vec![0u8; READ_CHUNK];
        while self.io.state == TlsState::Handshaking {
            let n = self.tcp.read(&mut chunk).map_err(io_failure)?;
            if n == 0 {
                return Err(Error::Net(NetError::Reset(
                    "the server closed the connection during the TLS handshake".into(),
                )));
            }
            let outgoing = self.io.advance(&chunk[..n], &[])?;
            self.tcp.write_all(&outgoing).map_err(io_failure)?;
        }
        Ok(())
    }

    /// What the handshake negotiated: ALPN protocol, version, cipher suite, resumption.
    pub fn info(&self) -> Result<TlsInfo, Error> {
        self.io.info()
    }

    /// The socket, for timeouts and addresses. Reading or writing it directly breaks
    /// the TLS stream.
    pub fn tcp(&self) -> &TcpStream {
        &self.tcp
    }

    /// Sends close_notify and shuts the socket's write side.
    pub fn close(&mut self) -> io::Result<()> {
        let closing = self.io.close();
        self.tcp.write_all(&closing)?;
        self.tcp.shutdown(std::net::Shutdown::Write)
    }
}

impl Read for UpstreamStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let mut chunk = vec![0u8; READ_CHUNK];
        loop {
            if self.io.buffered() {
                return Ok(self.io.take(buf));
            }
            if self.io.ended() {
                return Ok(0);
            }
            let n = self.tcp.read(&mut chunk)?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the upstream closed the connection without close_notify",
                ));
            }
            let outgoing = self.io.advance(&chunk[..n], &[]).map_err(to_io)?;
            self.tcp.write_all(&outgoing)?;
        }
    }
}

impl Write for UpstreamStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let outgoing = self.io.advance(&[], buf).map_err(to_io)?;
        self.tcp.write_all(&outgoing)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.tcp.flush()
    }
}

impl Drop for UpstreamStream {
    fn drop(&mut self) {
        if self.io.session.is_some() {
            let _ = self.close();
        }
    }
}

/// Locks `mutex`, even if a thread panicked while holding it: the plugin recovers
/// from traps itself, and a stream must not panic because another one did.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A socket failure, classified as the `transport` import classifies them.
fn io_failure(e: io::Error) -> Error {
    Error::Net(net_error(e))
}

/// A plugin failure as the `io::Error` a `Read`/`Write` caller sees; the kind says
/// what kind of failure it was, the inner error which.
fn to_io(e: Error) -> io::Error {
    let kind = match &e {
        Error::Tls(TlsError::Closed) => io::ErrorKind::NotConnected,
        Error::Tls(_) => io::ErrorKind::InvalidData,
        Error::Net(NetError::Denied(_)) => io::ErrorKind::PermissionDenied,
        _ => io::ErrorKind::Other,
    };
    io::Error::new(kind, e)
}
