//! The `transport` import: outbound TCP under the egress policy.
//!
//! The name is checked before it is resolved, and every resolved address before it is
//! dialled; a refusal is `net-error::denied` with no packet sent. Streams get
//! TCP_NODELAY (the plugin writes whole TLS flights; Nagle would hold them back ~40 ms
//! against a delayed ACK). Name resolution and all connect attempts share one deadline,
//! so a name with several unreachable addresses ends in a clean timeout. Every read and
//! write then carries its own timeout (what is left of the plugin's call deadline), and
//! a write of many bytes ends within its timeout as a whole, however slowly the peer
//! takes them.

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use gateway_auth_api::NetError;

use crate::egress::EgressPolicy;

/// The most bytes one `read` returns, whatever the plugin asks for.
const MAX_READ: u32 = 64 * 1024;

/// What one instance's connections have moved since it started: for operators, and for
/// checking that a hostile peer was cut off early.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TransportStats {
    /// Connections opened.
    pub connections: u64,
    /// Bytes the plugin wrote.
    pub bytes_sent: u64,
    /// Bytes the plugin read.
    pub bytes_received: u64,
}

/// Turns a host name into socket addresses. The default, [`SystemResolver`], asks the
/// operating system; a gateway with its own service discovery or DNS cache supplies
/// its own. Whatever it returns is still checked against the egress policy, and it is
/// given only the part of the call's deadline that is left.
pub trait Resolver: Send + Sync {
    /// The addresses of `host` (a name, never an IP literal) for `port`.
    fn resolve(&self, host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>>;
}

/// The operating system's resolver (`getaddrinfo`).
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemResolver;

impl Resolver for SystemResolver {
    fn resolve(&self, host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>> {
        Ok((host, port).to_socket_addrs()?.collect())
    }
}

/// An open stream, held in the store's resource table.
pub struct Connection {
    stream: TcpStream,
}

impl Connection {
    /// Opens a stream to `host`:`port` under `egress`. Resolution and every connect
    /// attempt share `timeout_ms`.
    pub fn open(
        egress: &EgressPolicy,
        resolver: &Arc<dyn Resolver>,
        host: &str,
        port: u16,
        timeout_ms: u32,
    ) -> Result<Self, NetError> {
        let timeout = Duration::from_millis(u64::from(timeout_ms.max(1)));
        let stream = open(
            egress,
            resolver,
            host,
            port,
            timeout,
            &mut TcpStream::connect_timeout,
        )?;
        tracing::debug!(%host, port, "connected");
        Ok(Self { stream })
    }

    /// The socket, for an upstream stream that moves the bytes itself.
    pub(crate) fn into_tcp(self) -> TcpStream {
        self.stream
    }

    /// Writes all of `bytes` within `timeout_ms`: each send is given only the time left,
    /// so a peer that takes a byte at a time cannot stretch the write.
    pub fn write(&mut self, bytes: &[u8], timeout_ms: u32) -> Result<(), NetError> {
        let deadline = Instant::now() + Duration::from_millis(u64::from(timeout_ms));
        write_all_by(&mut self.stream, bytes, deadline).map_err(|e| match e.kind() {
            ErrorKind::WriteZero => NetError::Closed,
            _ => net_error(e),
        })
    }

    /// Reads at most `max` bytes (and at most 64 KiB), waiting at most `timeout_ms`;
    /// empty when the peer closed. With `timeout_ms` 0 it takes only what has already
    /// arrived, `timeout` when nothing has: the plugin looks at an idle kept-alive
    /// connection this way before reusing it.
    pub fn read(&mut self, max: u32, timeout_ms: u32) -> Result<Vec<u8>, NetError> {
        let mut buf = vec![0u8; max.clamp(1, MAX_READ) as usize];
        let read = if timeout_ms == 0 {
            self.stream.set_nonblocking(true).map_err(net_error)?;
            let read = self.stream.read(&mut buf);
            self.stream.set_nonblocking(false).map_err(net_error)?;
            read
        } else {
            let timeout = Duration::from_millis(u64::from(timeout_ms));
            self.stream
                .set_read_timeout(Some(timeout))
                .map_err(net_error)?;
            self.stream.read(&mut buf)
        };
        let n = read.map_err(net_error)?;
        buf.truncate(n);
        Ok(buf)
    }
}

/// Writes all of `bytes` to `stream` by `deadline`: each send is given only the time
/// left as the socket's write timeout (which restarts with every send), so a peer that
/// takes a byte at a time cannot stretch the write. Past the deadline,
/// `ErrorKind::TimedOut`; a peer that takes nothing, `WriteZero`. The socket's write
/// timeout is left at the last value set.
pub(crate) fn write_all_by(
    stream: &mut TcpStream,
    bytes: &[u8],
    deadline: Instant,
) -> std::io::Result<()> {
    let mut rest = bytes;
    while !rest.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ErrorKind::TimedOut.into());
        }
        stream.set_write_timeout(Some(left))?;
        match stream.write(rest) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(n) => rest = &rest[n..],
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            // A send timeout is EAGAIN: the deadline may have a sliver left, looked at
            // above.
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// How one connection attempt is made: `TcpStream::connect_timeout`, or a stand-in in
/// tests.
type Dial<'a> = dyn FnMut(&SocketAddr, Duration) -> std::io::Result<TcpStream> + 'a;

/// Checks, resolves, checks again, and connects to the first allowed address that
/// answers, all within `timeout`.
fn open(
    egress: &EgressPolicy,
    resolver: &Arc<dyn Resolver>,
    host: &str,
    port: u16,
    timeout: Duration,
    dial: &mut Dial<'_>,
) -> Result<TcpStream, NetError> {
    let deadline = Instant::now() + timeout;
    egress.check_name(host, port).map_err(NetError::Denied)?;
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let addrs = match bare.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => resolve(resolver, bare, port, deadline)?,
    };
    let mut refusal = None;
    let mut last_error = None;
    for addr in addrs {
        if let Err(why) = egress.check_address(addr.ip(), port) {
            refusal = Some(format!("{host}: {why}"));
            continue;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(NetError::Timeout);
        }
        match dial(&addr, left) {
            Ok(stream) => {
                let configure = |s: &TcpStream| -> std::io::Result<()> {
                    s.set_nodelay(true)?;
                    s.set_read_timeout(Some(timeout))?;
                    s.set_write_timeout(Some(timeout))
                };
                configure(&stream).map_err(net_error)?;
                return Ok(stream);
            }
            Err(e) => last_error = Some(e),
        }
    }
    match (last_error, refusal) {
        (Some(e), _) if e.kind() == ErrorKind::TimedOut => Err(NetError::Timeout),
        (Some(e), _) => Err(NetError::Connect(format!("{host}:{port}: {e}"))),
        (None, Some(why)) => Err(NetError::Denied(why)),
        (None, None) => Err(NetError::Resolve(format!("{host}: no addresses"))),
    }
}

/// `resolver`'s answer for `host`, if it comes before `deadline`. The lookup runs on a
/// thread of its own, since `getaddrinfo` cannot be given a timeout; one that outlives
/// the deadline finishes unobserved.
fn resolve(
    resolver: &Arc<dyn Resolver>,
    host: &str,
    port: u16,
    deadline: Instant,
) -> Result<Vec<SocketAddr>, NetError> {
    let (tx, rx) = mpsc::sync_channel(1);
    let (resolver, name) = (resolver.clone(), host.to_string());
    thread::Builder::new()
        .name("gateway-auth-resolve".into())
        .spawn(move || {
            let _ = tx.send(resolver.resolve(&name, port));
        })
        .map_err(|e| NetError::Resolve(format!("{host}: {e}")))?;
    match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        Ok(Ok(addrs)) => Ok(addrs),
        Ok(Err(e)) => Err(NetError::Resolve(format!("{host}: {e}"))),
        Err(mpsc::RecvTimeoutError::Timeout) => Err(NetError::Timeout),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            Err(NetError::Resolve(format!("{host}: the resolver failed")))
        }
    }
}

pub(crate) fn net_error(e: std::io::Error) -> NetError {
    match e.kind() {
        ErrorKind::TimedOut | ErrorKind::WouldBlock => NetError::Timeout,
        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe => {
            NetError::Reset(e.to_string())
        }
        ErrorKind::NotConnected => NetError::Closed,
        _ => NetError::Other(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;

    use super::*;

    fn listener() -> (TcpListener, u16) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        (listener, port)
    }

    fn system() -> Arc<dyn Resolver> {
        Arc::new(SystemResolver)
    }

    fn dial(policy: &EgressPolicy, host: &str, port: u16) -> Result<TcpStream, NetError> {
        let timeout = Duration::from_secs(1);
        open(
            policy,
            &system(),
            host,
            port,
            timeout,
            &mut TcpStream::connect_timeout,
        )
    }

    /// Answers after `delay` with `addrs`.
    struct Slow {
        delay: Duration,
        addrs: Vec<SocketAddr>,
    }

    impl Resolver for Slow {
        fn resolve(&self, _: &str, _: u16) -> std::io::Result<Vec<SocketAddr>> {
            thread::sleep(self.delay);
            Ok(self.addrs.clone())
        }
    }

    #[test]
    fn a_resolver_slower_than_the_deadline_is_a_timeout() {
        let resolver: Arc<dyn Resolver> = Arc::new(Slow {
            delay: Duration::from_secs(5),
            addrs: Vec::new(),
        });
        let policy = EgressPolicy::parse(["slow.example"]).unwrap();
        let mut dial = |_: &SocketAddr, _: Duration| -> std::io::Result<TcpStream> {
            panic!("nothing is dialled")
        };
        let result = open(
            &policy,
            &resolver,
            "slow.example",
            443,
            Duration::from_millis(50),
            &mut dial,
        );
        assert_eq!(result.unwrap_err(), NetError::Timeout);
    }

    #[test]
    fn connect_attempts_to_several_addresses_share_one_deadline() {
        let addrs: Vec<SocketAddr> = (1..=5)
            .map(|i| SocketAddr::from(([93, 184, 216, i], 443)))
            .collect();
        let resolver: Arc<dyn Resolver> = Arc::new(Slow {
            delay: Duration::ZERO,
            addrs,
        });
        let policy = EgressPolicy::parse(["*"]).unwrap();
        let budget = Duration::from_millis(300);
        let mut given = Vec::new();
        // Every address is a black hole: each attempt takes all the time it is given.
        let mut dial = |_: &SocketAddr, timeout: Duration| -> std::io::Result<TcpStream> {
            given.push(timeout);
            thread::sleep(timeout);
            Err(ErrorKind::TimedOut.into())
        };
        let result = open(&policy, &resolver, "multi.example", 443, budget, &mut dial);
        assert_eq!(result.unwrap_err(), NetError::Timeout);
        let total: Duration = given.iter().sum();
        assert!(total <= budget, "attempts were given {given:?}");
    }

    fn nothing_arrived(listener: &TcpListener) -> bool {
        matches!(listener.accept(), Err(e) if e.kind() == ErrorKind::WouldBlock)
    }

    #[test]
    fn a_refused_address_is_denied_before_any_packet() {
        let (listener, port) = listener();
        let policy = EgressPolicy::parse(["auth.example.com"]).unwrap();
        let result = dial(&policy, "127.0.0.1", port);
        assert!(matches!(result, Err(NetError::Denied(_))), "{result:?}");
        assert!(nothing_arrived(&listener));
    }

    #[test]
    fn an_allowed_name_that_resolves_to_loopback_is_denied() {
        let (listener, port) = listener();
        let policy = EgressPolicy::parse(["localhost"]).unwrap();
        let result = dial(&policy, "localhost", port);
        assert!(
            matches!(&result, Err(NetError::Denied(why)) if why.contains("private, loopback")),
            "{result:?}"
        );
        assert!(nothing_arrived(&listener));
    }

    #[test]
    fn an_allowed_address_connects_with_nodelay() {
        let (_listener, port) = listener();
        let policy = EgressPolicy::parse(["127.0.0.1"]).unwrap();
        let stream = dial(&policy, "127.0.0.1", port).unwrap();
        assert!(stream.nodelay().unwrap());
    }

    #[test]
    fn a_read_of_timeout_zero_takes_what_has_arrived_without_waiting() {
        let (listener, port) = listener();
        let policy = EgressPolicy::parse(["127.0.0.1"]).unwrap();
        let mut conn = Connection {
            stream: dial(&policy, "127.0.0.1", port).unwrap(),
        };
        let started = Instant::now();
        assert_eq!(conn.read(64, 0), Err(NetError::Timeout), "nothing yet");
        assert!(started.elapsed() < Duration::from_millis(100));
        listener.set_nonblocking(false).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        server.write_all(b"ticket").unwrap();
        let until = Instant::now() + Duration::from_secs(2);
        let mut got = Vec::new();
        while got.is_empty() && Instant::now() < until {
            got = conn.read(64, 0).unwrap_or_default();
        }
        assert_eq!(got, b"ticket");
        drop(server);
        // A peer's close is seen the same way; a later read still waits as asked.
        let mut closed = conn.read(64, 0);
        while closed == Err(NetError::Timeout) && Instant::now() < until {
            closed = conn.read(64, 0);
        }
        assert_eq!(closed, Ok(Vec::new()));
        assert_eq!(conn.read(64, 50), Ok(Vec::new()));
    }

    #[test]
    fn a_closed_port_is_a_connect_error() {
        let (listener, port) = listener();
        drop(listener);
        let policy = EgressPolicy::parse(["127.0.0.1"]).unwrap();
        let result = dial(&policy, "127.0.0.1", port);
        assert!(matches!(result, Err(NetError::Connect(_))), "{result:?}");
    }
}
