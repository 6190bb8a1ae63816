//! The tokio flavour of an upstream stream: `AsyncRead + AsyncWrite`, so hyper (through
//! `hyper_util::rt::TokioIo`) and other async HTTP clients run over it.
//!
//! Opening one (egress check, resolution, dial and TLS handshake, under the connect
//! deadline) runs on tokio's blocking pool, so it needs no timer from the runtime.
//! After that, TLS steps are synchronous calls into the plugin that hold its lock
//! briefly; only the socket is asynchronous. Ciphertext the socket cannot take yet
//! waits in `pending` and is flushed before more plaintext is accepted, so a slow
//! upstream pushes back on the writer instead of growing a buffer.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use gateway_auth_api::TlsInfo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::{Io, MAX_WRITE, READ_CHUNK, Upstream, io_failure, to_io};
use crate::error::Error;

/// A TLS stream to an upstream on tokio, through the plugin's session.
pub struct AsyncUpstreamStream {
    io: Io,
    tcp: TcpStream,
    /// Ciphertext not yet written to the socket, from `written` on.
    pending: Vec<u8>,
    written: usize,
    chunk: Box<[u8]>,
}

impl Upstream {
    /// [`Upstream::connect`] on tokio: the egress check, resolution, dial and TLS
    /// handshake run on tokio's blocking pool, within the connect timeout. Dropping
    /// the future (a timeout around it, say) abandons the attempt; its session is freed
    /// when the blocking part ends, by the connect deadline at the latest.
    pub async fn connect_async(
        &self,
        host: &str,
        port: u16,
        alpn: &[&str],
    ) -> Result<AsyncUpstreamStream, Error> {
        let this = self.clone();
        let (host, alpn): (String, Vec<String>) = (
            host.to_string(),
            alpn.iter().map(|p| p.to_string()).collect(),
        );
        // The result owns the session: a task whose future was dropped drops it too.
        let (io, tcp) = tokio::task::spawn_blocking(move || {
            let alpn: Vec<&str> = alpn.iter().map(String::as_str).collect();
            this.open(&host, port, &alpn)
        })
        .await
        .map_err(|e| Error::Host(format!("connect task: {e}")))??;
        tcp.set_nonblocking(true).map_err(io_failure)?;
        let tcp = TcpStream::from_std(tcp).map_err(io_failure)?;
        Ok(AsyncUpstreamStream {
            io,
            tcp,
            pending: Vec::new(),
            written: 0,
            chunk: vec![0u8; READ_CHUNK].into_boxed_slice(),
        })
    }
}

impl AsyncUpstreamStream {
    /// What the handshake negotiated: ALPN protocol, version, cipher suite, resumption.
    pub fn info(&self) -> Result<TlsInfo, Error> {
        self.io.info()
    }

    /// The socket, for addresses and options. Reading or writing it directly breaks
    /// the TLS stream.
    pub fn tcp(&self) -> &TcpStream {
        &self.tcp
    }

    /// Writes out pending ciphertext; ready when none is left.
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.pending.len() {
            let n = ready!(Pin::new(&mut self.tcp).poll_write(cx, &self.pending[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        self.pending.clear();
        self.written = 0;
        Poll::Ready(Ok(()))
    }

    fn queue(&mut self, ciphertext: Vec<u8>) {
        if self.pending.is_empty() {
            self.pending = ciphertext;
        } else {
            self.pending.extend_from_slice(&ciphertext);
        }
    }
}

impl AsyncRead for AsyncUpstreamStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.io.buffered() {
                let n = this.io.take(buf.initialize_unfilled());
                buf.advance(n);
                return Poll::Ready(Ok(()));
            }
            if this.io.ended() {
                return Poll::Ready(Ok(()));
            }
            // Whatever the last step produced (a key update, say) goes out first; it
            // must not hold up reading, so a socket that is not writable just waits.
            if let Poll::Ready(Err(e)) = this.poll_pending(cx) {
                return Poll::Ready(Err(e));
            }
            let mut incoming = ReadBuf::new(&mut this.chunk);
            ready!(Pin::new(&mut this.tcp).poll_read(cx, &mut incoming))?;
            let n = incoming.filled().len();
            if n == 0 {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the upstream closed the connection without close_notify",
                )));
            }
            let outgoing = this.io.advance(&this.chunk[..n], &[]).map_err(to_io)?;
            this.queue(outgoing);
        }
    }
}

impl AsyncWrite for AsyncUpstreamStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_pending(cx))?;
        // At most 256 KiB at a time (the session's bound on what it holds).
        let n = buf.len().min(MAX_WRITE);
        let outgoing = this.io.advance(&[], &buf[..n]).map_err(to_io)?;
        this.queue(outgoing);
        // Started now; finished by the next write or flush.
        if let Poll::Ready(Err(e)) = this.poll_pending(cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_pending(cx))?;
        Pin::new(&mut this.tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.io.session.is_some() {
            let closing = this.io.close();
            this.queue(closing);
        }
        ready!(this.poll_pending(cx))?;
        Pin::new(&mut this.tcp).poll_shutdown(cx)
    }
}
