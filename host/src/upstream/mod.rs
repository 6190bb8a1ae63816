//! The gateway's own upstream connections over the plugin's cached TLS configurations.
//!
//! The plugin's TLS sessions are sans-IO; this module owns the sockets. [`Upstreams`]
//! shares one instance (so one cache) among any number of streams: each TLS step
//! locks it briefly, and no lock is held across socket I/O. Token requests, which wait
//! on their servers inside a plugin call, run on a second instance
//! ([`Upstreams::oauth`]), so they hold no stream up. An [`Upstream`] is one upstream's
//! trust material; its streams are opened under the instance's egress policy (checked
//! before any packet is sent), with TCP_NODELAY, and its spec is prepared again by
//! itself when the cache has dropped the profile. Resolution, dial and TLS handshake
//! share one deadline, the connect timeout.
//!
//! [`UpstreamStream`] is a blocking `Read + Write` stream; with the `tokio` feature,
//! [`AsyncUpstreamStream`] is a tokio `AsyncRead + AsyncWrite` one, for hyper and
//! friends. A session in the instance belongs to one owner (the stream, or the
//! connection being opened) from the moment it is made, and is freed whichever way
//! that owner goes: dropped, failed or cancelled.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use gateway_auth_api::{NetError, TlsError, TlsInfo, TlsOutput, TlsState, TrustSpec};

use crate::error::Error;
use crate::plugin::{Plugin, Sibling, TlsSession};
use crate::transport::{Connection, net_error, write_all_by};

#[cfg(feature = "tokio")]
mod tokio_stream;
#[cfg(feature = "tokio")]
pub use tokio_stream::AsyncUpstreamStream;

/// How long opening a stream (resolution, TCP connection and TLS handshake) may take
/// unless set with [`Upstream::with_connect_timeout`].
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How much ciphertext one socket read takes: one TLS record and then some.
const READ_CHUNK: usize = 32 * 1024;

/// The longest the close_notify write of [`UpstreamStream::close`] (and of a dropped
/// stream) may take: a peer that stopped reading must not hold up a drop.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// The most plaintext one write hands the plugin. A session holds at most 1 MiB waiting
/// to be sent and ends with `too-large` past it, so a larger write is a short write
/// (which `Write` and `AsyncWrite` allow; `write_all` carries on with the rest).
const MAX_WRITE: usize = 256 * 1024;

/// One plugin instance shared by upstream streams, and a second one for token requests.
#[derive(Clone)]
pub struct Upstreams {
    plugin: Arc<Mutex<Plugin>>,
    /// The token requests' instance, made on first use.
    oauth: Arc<OnceLock<Mutex<Plugin>>>,
    sibling: Sibling,
}

impl Upstreams {
    /// Shares `plugin` among the streams opened from here.
    pub fn new(plugin: Plugin) -> Self {
        Self {
            sibling: plugin.sibling(),
            plugin: Arc::new(Mutex::new(plugin)),
            oauth: Arc::new(OnceLock::new()),
        }
    }

    /// The streams' instance, locked: for its statistics, `configure`, `prepare` and
    /// the rest. Streams wait while it is held, so make token requests through
    /// [`Upstreams::oauth`] instead: they wait on their servers.
    pub fn plugin(&self) -> MutexGuard<'_, Plugin> {
        up_to_date(lock(&self.plugin))
    }

    /// The instance for token requests and sessions (`request_token`, `open_session`,
    /// `access_token` and the rest), locked. It is a second instance, made with the
    /// same options on first use, so a token request waiting on a slow server holds no
    /// stream up. Both instances follow one record of cache settings and sessions:
    /// what is set through one is applied to the other when it is next handed out.
    pub fn oauth(&self) -> Result<MutexGuard<'_, Plugin>, Error> {
        let slot = match self.oauth.get() {
            Some(slot) => slot,
            None => {
                let made = self.sibling.instance()?;
                // Two first uses at once: one instance is kept, the other dropped.
                let _ = self.oauth.set(Mutex::new(made));
                self.oauth.get().expect("set just now")
            }
        };
        Ok(up_to_date(lock(slot)))
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

/// `plugin`, brought up to the desired state it shares with its sibling. A session
/// that cannot be reopened is logged (by `sync`) and answers for itself when used.
fn up_to_date(mut plugin: MutexGuard<'_, Plugin>) -> MutexGuard<'_, Plugin> {
    if let Err(e) = plugin.sync() {
        tracing::warn!("upstream instance not fully up to date: {e}");
    }
    plugin
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
    /// The same upstream with another connect timeout (resolution, TCP connection and
    /// TLS handshake together).
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Opens a TLS stream to `host`:`port` (`host` is also the server name checked
    /// against the certificate), offering `alpn`, and completes the handshake, all
    /// within the connect timeout (past it, [`NetError::Timeout`] as [`Error::Net`]).
    /// The egress policy refuses before any packet is sent; a refused certificate is an
    /// [`Error::Tls`] before any application byte is sent.
    pub fn connect(&self, host: &str, port: u16, alpn: &[&str]) -> Result<UpstreamStream, Error> {
        let (io, tcp) = self.open(host, port, alpn)?;
        Ok(UpstreamStream { io, tcp })
    }

    /// A connection with its TLS handshake done, under one deadline; the socket is
    /// blocking, with no timeouts left on it.
    fn open(&self, host: &str, port: u16, alpn: &[&str]) -> Result<(Io, TcpStream), Error> {
        let deadline = Instant::now() + self.connect_timeout;
        let mut tcp = self.open_tcp(host, port, deadline)?;
        // Owned from here on, so that every way out frees the session in the instance.
        let mut io = Io::new(self.plugin.clone(), self.session(host, alpn)?);
        handshake(&mut io, &mut tcp, deadline)?;
        // A stream's reads wait as long as its protocol needs (the caller may set
        // timeouts on `tcp()`).
        tcp.set_read_timeout(None).map_err(io_failure)?;
        tcp.set_write_timeout(None).map_err(io_failure)?;
        Ok((io, tcp))
    }

    /// The TCP connection, under the instance's egress policy and resolver, by
    /// `deadline`.
    fn open_tcp(&self, host: &str, port: u16, deadline: Instant) -> Result<TcpStream, Error> {
        let (egress, resolver) = {
            let plugin = lock(&self.plugin);
            let options = plugin.options();
            (options.egress.clone(), options.resolver.clone())
        };
        let left = time_left(deadline)?;
        let timeout_ms = left.as_millis().clamp(1, u32::MAX as u128) as u32;
        let connection =
            Connection::open(&egress, &resolver, host, port, timeout_ms).map_err(Error::Net)?;
        Ok(connection.into_tcp())
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

/// Runs the TLS handshake of `io` over `tcp` (blocking), every socket wait bounded by
/// what is left until `deadline`.
fn handshake(io: &mut Io, tcp: &mut TcpStream, deadline: Instant) -> Result<(), Error> {
    let hello = io.advance(&[], &[])?;
    write_by(tcp, &hello, deadline)?;
    let mut chunk = vec![0u8; READ_CHUNK];
    while io.state == TlsState::Handshaking {
        tcp.set_read_timeout(Some(time_left(deadline)?))
            .map_err(io_failure)?;
        let n = match tcp.read(&mut chunk) {
            Ok(0) => {
                return Err(Error::Net(NetError::Reset(
                    "the server closed the connection during the TLS handshake".into(),
                )));
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_failure(e)),
        };
        let outgoing = io.advance(&chunk[..n], &[])?;
        write_by(tcp, &outgoing, deadline)?;
    }
    Ok(())
}

/// Writes all of `bytes`, waiting at most until `deadline`.
fn write_by(tcp: &mut TcpStream, bytes: &[u8], deadline: Instant) -> Result<(), Error> {
    if bytes.is_empty() {
        return Ok(());
    }
    write_all_by(tcp, bytes, deadline).map_err(io_failure)
}

/// What is left until `deadline`; a timeout when nothing is.
fn time_left(deadline: Instant) -> Result<Duration, Error> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(Error::Net(NetError::Timeout));
    }
    Ok(left)
}

/// A blocking TLS stream to an upstream, through the plugin's session.
///
/// Timeouts set on [`UpstreamStream::tcp`] bound each call as a whole: one `read`
/// returns within the socket's read timeout however the ciphertext trickles in (a
/// record completed a byte at a time), and one `write` within its write timeout however
/// slowly the peer takes it. Past it, the call fails with `io::ErrorKind::TimedOut`
/// (not the `WouldBlock` a bare socket reports). Without timeouts (the default) they
/// wait as long as the peer takes. Closing, and dropping an open stream, sends
/// close_notify within at most 1 s.
pub struct UpstreamStream {
    io: Io,
    tcp: TcpStream,
}

impl UpstreamStream {
    /// What the handshake negotiated: ALPN protocol, version, cipher suite, resumption.
    pub fn info(&self) -> Result<TlsInfo, Error> {
        self.io.info()
    }

    /// The socket, for timeouts and addresses. Reading or writing it directly breaks
    /// the TLS stream.
    pub fn tcp(&self) -> &TcpStream {
        &self.tcp
    }

    /// Sends close_notify (within the write timeout, and at most 1 s) and shuts the
    /// socket's write side.
    pub fn close(&mut self) -> io::Result<()> {
        let closing = self.io.close();
        let bound = match self.tcp.write_timeout()? {
            Some(timeout) => timeout.min(CLOSE_TIMEOUT),
            None => CLOSE_TIMEOUT,
        };
        if !closing.is_empty() {
            write_all_by(&mut self.tcp, &closing, Instant::now() + bound)?;
        }
        self.tcp.shutdown(std::net::Shutdown::Write)
    }

    /// Writes all of `bytes` within the socket's write timeout as a whole, if it has
    /// one; the timeout is set back as it was.
    fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        let Some(timeout) = self.tcp.write_timeout()? else {
            return self.tcp.write_all(bytes);
        };
        let written = write_all_by(&mut self.tcp, bytes, Instant::now() + timeout);
        self.tcp.set_write_timeout(Some(timeout))?;
        written
    }

    /// Reads ciphertext until plaintext (or the end) arrives, within `timeout` if the
    /// socket has one: each socket read after the first is given only what is left of
    /// it (the socket's own timeout restarts with every read), and `shortened` notes
    /// that the socket's timeout was changed for it.
    fn fill(&mut self, timeout: Option<Duration>, shortened: &mut bool) -> io::Result<()> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut chunk = vec![0u8; READ_CHUNK];
        let mut first = true;
        while !self.io.buffered() && !self.io.ended() {
            if let Some(deadline) = deadline
                && !first
            {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "no plaintext from the upstream within the read timeout",
                    ));
                }
                *shortened = true;
                self.tcp.set_read_timeout(Some(left))?;
            }
            first = false;
            let n = match self.tcp.read(&mut chunk) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the upstream closed the connection without close_notify",
                    ));
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // The socket's timeout fired: the deadline is looked at above.
                Err(e)
                    if deadline.is_some()
                        && matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                        ) =>
                {
                    continue;
                }
                Err(e) => return Err(e),
            };
            let outgoing = self.io.advance(&chunk[..n], &[]).map_err(to_io)?;
            self.send(&outgoing)?;
        }
        Ok(())
    }
}

impl Read for UpstreamStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if !self.io.buffered() && !self.io.ended() {
            let timeout = self.tcp.read_timeout()?;
            let mut shortened = false;
            let filled = self.fill(timeout, &mut shortened);
            // The caller's timeout stands for the next read.
            if shortened {
                self.tcp.set_read_timeout(timeout)?;
            }
            filled?;
        }
        if self.io.buffered() {
            return Ok(self.io.take(buf));
        }
        Ok(0)
    }
}

impl Write for UpstreamStream {
    /// Writes at most 256 KiB of `buf` (the session's bound on what it holds).
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min(MAX_WRITE);
        let outgoing = self.io.advance(&[], &buf[..n]).map_err(to_io)?;
        self.send(&outgoing)?;
        Ok(n)
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
