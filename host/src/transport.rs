//! The `transport` import: outbound TCP under the egress policy.
//!
//! The name is checked before it is resolved, and every resolved address before it is
//! dialled; a refusal is `net-error::denied` with no packet sent. Streams get
//! TCP_NODELAY (the plugin writes whole TLS flights; Nagle would hold them back ~40 ms
//! against a delayed ACK) and the call's deadline on every read and write.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

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

/// An open stream, held in the store's resource table.
pub struct Connection {
    stream: TcpStream,
}

impl Connection {
    /// Opens a stream to `host`:`port` under `egress`; `timeout_ms` bounds the attempt
    /// and every later read and write.
    pub fn open(
        egress: &EgressPolicy,
        host: &str,
        port: u16,
        timeout_ms: u32,
    ) -> Result<Self, NetError> {
        let timeout = Duration::from_millis(u64::from(timeout_ms.max(1)));
        let stream = open(egress, host, port, timeout)?;
        tracing::debug!(%host, port, "connected");
        Ok(Self { stream })
    }

    /// Writes all of `bytes`.
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), NetError> {
        self.stream.write_all(bytes).map_err(net_error)
    }

    /// Reads at most `max` bytes (and at most 64 KiB); empty when the peer closed.
    pub fn read(&mut self, max: u32) -> Result<Vec<u8>, NetError> {
        let mut buf = vec![0u8; max.clamp(1, MAX_READ) as usize];
        let n = self.stream.read(&mut buf).map_err(net_error)?;
        buf.truncate(n);
        Ok(buf)
    }
}

/// Checks, resolves, checks again, and connects to the first allowed address.
fn open(
    egress: &EgressPolicy,
    host: &str,
    port: u16,
    timeout: Duration,
) -> Result<TcpStream, NetError> {
    egress.check_name(host, port).map_err(NetError::Denied)?;
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> = (bare, port)
        .to_socket_addrs()
        .map_err(|e| NetError::Resolve(format!("{host}: {e}")))?
        .collect();
    let mut refusal = None;
    let mut last_error = None;
    for addr in addrs {
        if let Err(why) = egress.check_address(addr.ip(), port) {
            refusal = Some(format!("{host}: {why}"));
            continue;
        }
        match TcpStream::connect_timeout(&addr, timeout) {
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

fn net_error(e: std::io::Error) -> NetError {
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

    fn nothing_arrived(listener: &TcpListener) -> bool {
        matches!(listener.accept(), Err(e) if e.kind() == ErrorKind::WouldBlock)
    }

    #[test]
    fn a_refused_address_is_denied_before_any_packet() {
        let (listener, port) = listener();
        let policy = EgressPolicy::parse(["auth.example.com"]).unwrap();
        let result = open(&policy, "127.0.0.1", port, Duration::from_secs(1));
        assert!(matches!(result, Err(NetError::Denied(_))), "{result:?}");
        assert!(nothing_arrived(&listener));
    }

    #[test]
    fn an_allowed_name_that_resolves_to_loopback_is_denied() {
        let (listener, port) = listener();
        let policy = EgressPolicy::parse(["localhost"]).unwrap();
        let result = open(&policy, "localhost", port, Duration::from_secs(1));
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
        let stream = open(&policy, "127.0.0.1", port, Duration::from_secs(1)).unwrap();
        assert!(stream.nodelay().unwrap());
    }

    #[test]
    fn a_closed_port_is_a_connect_error() {
        let (listener, port) = listener();
        drop(listener);
        let policy = EgressPolicy::parse(["127.0.0.1"]).unwrap();
        let result = open(&policy, "127.0.0.1", port, Duration::from_secs(1));
        assert!(matches!(result, Err(NetError::Connect(_))), "{result:?}");
    }
}
