//! One TLS connection to a server over a host [`Stream`]: flushing records, reading
//! and decrypting within a deadline, and telling whether an idle connection can carry
//! another request.
//!
//! Bytes that follow the peer's close_notify are unauthenticated (anyone on the path
//! can inject them) and are dropped: rustls takes nothing after close_notify, so a loop
//! feeding it must stop there rather than wait for the input to shrink.

use std::io::{ErrorKind, Read};
use std::time::Instant;

use rustls::ClientConnection;

use super::client::Stream;
use super::{HttpError, NetError};

/// How much ciphertext one transport read asks for: one full TLS record.
const READ_CHUNK: u32 = 16 * 1024 + 256;

/// A TLS session over a [`Stream`], with decrypted bytes not yet consumed in `plain`.
pub(super) struct TlsConnection<S> {
    stream: S,
    pub(super) tls: ClientConnection,
    pub(super) plain: Vec<u8>,
    deadline: Instant,
    /// The peer sent close_notify: nothing more will be read.
    peer_closed: bool,
    /// A write was begun after the handshake, so the request may have left.
    pub(super) request_left: bool,
    /// Plaintext arrived since the current request began.
    answered: bool,
}

impl<S: Stream> TlsConnection<S> {
    /// A connection whose handshake is still to come, its first request due by
    /// `deadline`.
    pub(super) fn new(stream: S, tls: ClientConnection, deadline: Instant) -> Self {
        Self {
            stream,
            tls,
            plain: Vec::new(),
            deadline,
            peer_closed: false,
            request_left: false,
            answered: false,
        }
    }

    /// Starts the next request on a kept-alive connection, due by `deadline`.
    pub(super) fn begin(&mut self, deadline: Instant) {
        self.deadline = deadline;
        self.request_left = false;
        self.answered = false;
    }

    /// Whether the exchange left the connection fit for another: the peer has not
    /// closed, and nothing beyond the response was decrypted.
    pub(super) fn clean(&self) -> bool {
        !self.peer_closed && self.plain.is_empty() && !self.tls.is_handshaking()
    }

    /// Whether `err`, met on a kept-alive connection, shows that the server had closed
    /// the connection before taking the request: it ended (close_notify, FIN or
    /// reset) before a single byte of an answer. A timeout is not such a sign: the
    /// server may be working on the request.
    pub(super) fn closed_before_answering(&self, err: &HttpError) -> bool {
        !self.answered
            && matches!(
                err,
                HttpError::Transport(NetError::Reset(_) | NetError::Closed)
            )
    }

    /// Whether an idle connection can carry another request, looked at without waiting
    /// (a read of timeout 0). Only TLS's own records (session tickets) may have come
    /// while it was idle; a close, an alert or stray plaintext retires it. A host that
    /// cannot look without waiting answers `timeout`, as if nothing had come; the
    /// request's own failure then shows a close ([`Self::closed_before_answering`]).
    pub(super) fn still_open(&mut self) -> bool {
        let data = match self.stream.read(READ_CHUNK, 0) {
            Err(NetError::Timeout) => return true,
            Ok(data) if !data.is_empty() => data,
            Ok(_) | Err(_) => return false,
        };
        let mut input = &data[..];
        while !input.is_empty() {
            match self.tls.read_tls(&mut input) {
                Ok(0) | Err(_) => return false,
                Ok(_) => {}
            }
            if self.tls.process_new_packets().is_err() {
                return false;
            }
        }
        self.drain_plaintext().is_ok() && self.clean()
    }

    /// The milliseconds left before the deadline, or the timeout once there are none.
    fn left(&self) -> Result<u32, HttpError> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        match u32::try_from(left.as_millis()) {
            Ok(0) => Err(HttpError::Transport(NetError::Timeout)),
            Ok(ms) => Ok(ms),
            Err(_) => Ok(u32::MAX),
        }
    }

    /// Sends every pending TLS record in one transport write, within the time left.
    pub(super) fn flush(&mut self) -> Result<(), HttpError> {
        let mut out = Vec::new();
        while self.tls.wants_write() {
            self.tls
                .write_tls(&mut out)
                .map_err(|e| HttpError::Tls(e.to_string()))?;
        }
        if !out.is_empty() {
            let left = self.left()?;
            self.request_left |= !self.tls.is_handshaking();
            self.stream
                .write_all(&out, left)
                .map_err(HttpError::Transport)?;
        }
        Ok(())
    }

    /// Appends newly decrypted bytes to `plain`; returns how many, 0 at end of stream
    /// (the socket closed, or the peer sent close_notify).
    pub(super) fn fill(&mut self) -> Result<usize, HttpError> {
        let before = self.plain.len();
        loop {
            self.drain_plaintext()?;
            if self.plain.len() > before {
                return Ok(self.plain.len() - before);
            }
            if self.peer_closed {
                return Ok(0);
            }
            self.flush()?;
            let left = self.left()?;
            let data = self
                .stream
                .read(READ_CHUNK, left)
                .map_err(HttpError::Transport)?;
            if data.is_empty() {
                return Ok(0);
            }
            let mut input = &data[..];
            while !input.is_empty() {
                let taken = self
                    .tls
                    .read_tls(&mut input)
                    .map_err(|e| HttpError::Tls(e.to_string()))?;
                let processed = self.tls.process_new_packets();
                if let Err(err) = processed {
                    // Send the alert that explains the failure before giving up.
                    let _ = self.flush();
                    return Err(HttpError::Tls(err.to_string()));
                }
                self.drain_plaintext()?;
                if taken == 0 {
                    // close_notify arrived: what follows it is dropped.
                    break;
                }
            }
        }
    }

    fn drain_plaintext(&mut self) -> Result<(), HttpError> {
        let mut buf = [0u8; 4096];
        loop {
            match self.tls.reader().read(&mut buf) {
                Ok(0) => {
                    self.peer_closed = true;
                    return Ok(());
                }
                Ok(n) => {
                    self.answered = true;
                    self.plain.extend_from_slice(&buf[..n]);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                // The peer closed without close_notify: the body framing decides
                // whether anything is missing.
                Err(e) if e.kind() == ErrorKind::UnexpectedEof => return Ok(()),
                Err(e) => return Err(HttpError::Tls(e.to_string())),
            }
        }
    }
}
