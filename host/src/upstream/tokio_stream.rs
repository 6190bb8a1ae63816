//! The tokio flavour of an upstream stream: `AsyncRead + AsyncWrite`, so hyper (through
//! `hyper_util::rt::TokioIo`) and other async HTTP clients run over it.
//!
//! TLS steps are synchronous calls into the plugin that hold its lock briefly; only
//! the socket is asynchronous. Ciphertext the socket cannot take yet waits in
//! `pending` and is flushed before more plaintext is accepted, so a slow upstream
//! pushes back on the writer instead of growing a buffer.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use gateway_auth_api::{NetError, TlsInfo, TlsState};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::{Io, READ_CHUNK, Upstream, io_failure, to_io};
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
    /// [`Upstream::connect`] on tokio: the egress check, resolution and dial run on
    /// tokio's blocking pool, the handshake on the socket.
    pub async fn connect_async(
        &self,
        host: &str,
        port: u16,
        alpn: &[&str],
    ) -> Result<AsyncUpstreamStream, Error> {
        let this = self.clone();
        let (host_owned, alpn_owned): (String, Vec<String>) = (
            host.to_string(),
            alpn.iter().map(|p| p.to_string()).collect(),
        );
        let (tcp, session) = tokio::task::spawn_blocking(move || {
            let tcp = this.open_tcp(&host_owned, port)?;
            let alpn: Vec<&str> = alpn_owned.iter().map(String::as_str).collect();
            let session = this.session(&host_owned, &alpn)?;
            Ok::<_, Error>((tcp, session))
        })
        .await
        .map_err(|e| Error::Host(format!("connect task: {e}")))??;
        tcp.set_nonblocking(true).map_err(io_failure)?;
        let tcp = TcpStream::from_std(tcp).map_err(io_failure)?;
        let mut stream = AsyncUpstreamStream {
            io: Io::new(self.plugin.clone(), session),
            tcp,
            pending: Vec::new(),
            written: 0,
            chunk: vec![0u8; READ_CHUNK].into_boxed_slice(),
        };
        stream.handshake().await?;
        Ok(stream)
    }
}

impl AsyncUpstreamStream {
    async fn handshake(&mut self) -> Result<(), Error> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let hello = self.io.advance(&[], &[])?;
        self.tcp.write_all(&hello).await.map_err(io_failure)?;
        while self.io.state == TlsState::Handshaking {
            let n = self.tcp.read(&mut self.chunk).await.map_err(io_failure)?;
            if n == 0 {
                return Err(Error::Net(NetError::Reset(
                    "the server closed the connection during the TLS handshake".into(),
                )));
            }
            let outgoing = self.io.advance(&self.chunk[..n], &[])?;
            self.tcp.write_all(&outgoing).await.map_err(io_failure)?;
        }
        Ok(())
    }

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
        let outgoing = this.io.advance(&[], buf).map_err(to_io)?;
        this.queue(outgoing);
        // Started now; finished by the next write or flush.
        if let Poll::Ready(Err(e)) = this.poll_pending(cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(buf.len()))
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
