//! Upstream TLS sessions, sans-IO: the host owns the socket and moves ciphertext, one
//! [`UpstreamSession::advance`] per I/O event; nothing here blocks or reads a socket.
//!
//! A session holds its own `Arc` of the cached configuration, so evicting the profile
//! does not end it; the configuration's session store is what lets a reconnection to
//! the same upstream resume.

use std::io::{Read, Write};
use std::sync::Arc;

use rustls::client::ClientConfig;
use rustls::pki_types::ServerName;
use rustls::{ClientConnection, HandshakeKind};

use gateway_auth_api::{TlsError, TlsInfo, TlsOutput, TlsState};

/// The most ciphertext one `advance` takes: a host reads sockets in far smaller pieces,
/// and the plaintext it yields (returned, never kept) is bounded by it.
pub const MAX_INCOMING: usize = 1 << 20;

/// The most plaintext held for sending, while the handshake runs or before the host
/// takes the ciphertext: a host that keeps writing without moving bytes gets an error.
pub const MAX_PENDING: usize = 1 << 20;

/// One client session with an upstream.
pub struct UpstreamSession {
    connection: ClientConnection,
    state: TlsState,
    /// Whether the end of the handshake was counted (see [`crate::metrics`]).
    counted: bool,
}

impl UpstreamSession {
    /// A session for `server_name` (a DNS name or an IP address) with `config`,
    /// offering `alpn` (most preferred first); the ClientHello is in the first
    /// `advance`'s output.
    pub fn connect(
        config: Arc<ClientConfig>,
        server_name: &str,
        alpn: &[String],
    ) -> Result<Self, TlsError> {
        let name = ServerName::try_from(server_name.to_string())
            .map_err(|e| TlsError::BadServerName(format!("{server_name:?}: {e}")))?;
        if let Some(bad) = alpn.iter().find(|p| p.is_empty() || p.len() > 255) {
            return Err(TlsError::Protocol(format!(
                "an ALPN protocol name must be 1 to 255 bytes, not {bad:?}"
            )));
        }
        let alpn = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
        let mut connection = ClientConnection::new_with_alpn(config, name, alpn)
            .map_err(|e| TlsError::Protocol(e.to_string()))?;
        connection.set_buffer_limit(Some(MAX_PENDING));
        Ok(Self {
            connection,
            state: TlsState::Handshaking,
            counted: false,
        })
    }

    /// Takes `incoming` ciphertext and `plaintext` to send; returns the ciphertext to
    /// write, the plaintext that arrived and the state. An error closes the session;
    /// its output (an alert for the peer) is lost, as the host closes the socket.
    pub fn advance(&mut self, incoming: &[u8], plaintext: &[u8]) -> Result<TlsOutput, TlsError> {
        if self.state == TlsState::Closed {
            return Err(TlsError::Closed);
        }
        if incoming.len() > MAX_INCOMING {
            return self.fail(TlsError::TooLarge(MAX_INCOMING as u32));
        }
        let mut received = Vec::new();
        let mut rest = incoming;
        while !rest.is_empty() {
            // rustls takes at most one buffer's worth per call, and nothing at all once
            // close_notify has arrived: what follows it is unauthenticated (anyone on
            // the path can add it) and is dropped.
            let taken = match self.connection.read_tls(&mut rest) {
                Ok(taken) => taken,
                Err(e) => return self.fail(TlsError::Protocol(e.to_string())),
            };
            if let Err(e) = self.connection.process_new_packets() {
                return self.fail(classify(e));
            }
            self.drain(&mut received)?;
            if taken == 0 {
                break;
            }
        }
        if incoming.is_empty()
            && let Err(e) = self.connection.process_new_packets()
        {
            return self.fail(classify(e));
        }
        if !plaintext.is_empty() {
            let taken = self
                .connection
                .writer()
                .write(plaintext)
                .map_err(|e| TlsError::Protocol(e.to_string()))?;
            if taken < plaintext.len() {
                return self.fail(TlsError::TooLarge(MAX_PENDING as u32));
            }
        }
        let mut outgoing = Vec::new();
        while self.connection.wants_write() {
            self.connection
                .write_tls(&mut outgoing)
                .map_err(|e| TlsError::Protocol(e.to_string()))?;
        }
        if self.state == TlsState::Handshaking && !self.connection.is_handshaking() {
            self.state = TlsState::Open;
        }
        // Counted once, when rustls first says how the handshake went (the session may
        // have moved on past `Open` in the same call).
        if !self.counted && !self.connection.is_handshaking() {
            self.counted = true;
            let resumed = self.connection.handshake_kind() == Some(HandshakeKind::Resumed);
            crate::metrics::handshake(resumed);
        }
        Ok(TlsOutput {
            outgoing,
            plaintext: received,
            state: self.state,
        })
    }

    /// Moves the plaintext rustls decrypted into `received`, noting close_notify.
    fn drain(&mut self, received: &mut Vec<u8>) -> Result<(), TlsError> {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match self.connection.reader().read(&mut chunk) {
                Ok(0) => {
                    self.state = TlsState::PeerClosed;
                    return Ok(());
                }
                Ok(n) => received.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => {
                    // EOF without close_notify is only known when the socket ends; the
                    // host decides what that means.
                    return self.fail(TlsError::Protocol(e.to_string()));
                }
            }
        }
    }

    /// Ciphertext of close_notify, to write before closing the socket; the session is
    /// closed afterwards.
    pub fn close(&mut self) -> Vec<u8> {
        if self.state == TlsState::Closed {
            return Vec::new();
        }
        self.state = TlsState::Closed;
        self.connection.send_close_notify();
        let mut outgoing = Vec::new();
        while self.connection.wants_write() {
            if self.connection.write_tls(&mut outgoing).is_err() {
                break;
            }
        }
        outgoing
    }

    /// What the handshake negotiated so far.
    pub fn info(&self) -> TlsInfo {
        let c = &self.connection;
        TlsInfo {
            alpn: c
                .alpn_protocol()
                .map(|p| String::from_utf8_lossy(p).into_owned()),
            version: c.protocol_version().map(|v| format!("{v:?}")),
            cipher_suite: c
                .negotiated_cipher_suite()
                .map(|s| format!("{:?}", s.suite())),
            resumed: c.handshake_kind() == Some(HandshakeKind::Resumed),
        }
    }

    /// Where the session is (the host learns it from each output).
    #[cfg(test)]
    pub fn state(&self) -> TlsState {
        self.state
    }

    fn fail<T>(&mut self, error: TlsError) -> Result<T, TlsError> {
        self.state = TlsState::Closed;
        Err(error)
    }
}

/// The `tls-error` for what rustls refused.
fn classify(error: rustls::Error) -> TlsError {
    match error {
        rustls::Error::InvalidCertificate(why) => TlsError::PeerCertificate(describe(&why)),
        rustls::Error::AlertReceived(alert) => TlsError::PeerAlert(format!("{alert:?}")),
        other => TlsError::Protocol(other.to_string()),
    }
}

/// A certificate refusal in words a gateway operator reads.
fn describe(error: &rustls::CertificateError) -> String {
    use rustls::CertificateError as E;
    match error {
        E::UnknownIssuer => "not issued by a trusted CA of this profile (unknown issuer)".into(),
        E::NotValidForName | E::NotValidForNameContext { .. } => {
            format!("not valid for the server name ({error:?})")
        }
        E::Expired | E::ExpiredContext { .. } => format!("expired ({error:?})"),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests;
