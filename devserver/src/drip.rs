//! Dripped answers: after `/token` has processed a request (a refresh rotated, a code
//! redeemed), its answer leaves one byte per write, each in its own TLS record, a set
//! interval apart. A client whose deadline is shorter than the drip loses an answer the
//! server acted on, the case that must never lead to a refresh token being sent twice.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

use crate::state::State;

/// Takes the drip switch for one answer to a `grant_type` request, counting down how
/// many remain; the interval when this answer is to be dripped.
pub(crate) fn take(st: &mut State, grant_type: Option<&str>) -> Option<Duration> {
    let drip = st.drip.as_mut()?;
    if drip
        .grant_type
        .as_deref()
        .is_some_and(|wanted| Some(wanted) != grant_type)
    {
        return None;
    }
    let interval = drip.interval;
    if let Some(n) = &mut drip.times {
        *n = n.saturating_sub(1);
        if *n == 0 {
            st.drip = None;
        }
    }
    st.dripped_answers += 1;
    Some(interval)
}

/// The switch of one connection: the handler turns it on for the answer it returns.
#[derive(Clone, Default)]
pub(crate) struct Switch(Arc<AtomicU64>);

impl Switch {
    /// Drips every byte written from now on, `interval` apart.
    pub(crate) fn turn_on(&self, interval: Duration) {
        let ms = u64::try_from(interval.as_millis()).unwrap_or(u64::MAX);
        // 0 means off, so the shortest drip is 1 ms.
        self.0.store(ms.max(1), Ordering::SeqCst);
    }

    fn interval(&self) -> Option<Duration> {
        let ms = self.0.load(Ordering::SeqCst);
        (ms > 0).then(|| Duration::from_millis(ms))
    }
}

/// Where a dripped write is.
enum Phase {
    /// Waiting out the interval before the next byte.
    Wait,
    /// Writing one byte.
    Write,
    /// That byte was taken: pushing it out before saying so.
    Flush(usize),
}

/// A connection's stream (the TLS stream) whose writes its [`Switch`] can slow down.
pub(crate) struct DripIo<T> {
    inner: T,
    switch: Switch,
    phase: Phase,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl<T> DripIo<T> {
    pub(crate) fn new(inner: T, switch: Switch) -> Self {
        Self {
            inner,
            switch,
            phase: Phase::Write,
            sleep: None,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for DripIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for DripIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let Some(interval) = this.switch.interval().filter(|_| !buf.is_empty()) else {
            return Pin::new(&mut this.inner).poll_write(cx, buf);
        };
        loop {
            match this.phase {
                Phase::Wait => {
                    if let Some(sleep) = &mut this.sleep {
                        ready!(sleep.as_mut().poll(cx));
                    }
                    this.sleep = None;
                    this.phase = Phase::Write;
                }
                Phase::Write => {
                    let n = ready!(Pin::new(&mut this.inner).poll_write(cx, &buf[..1]))?;
                    if n == 0 {
                        return Poll::Ready(Ok(0));
                    }
                    this.phase = Phase::Flush(n);
                }
                Phase::Flush(n) => {
                    // Flushed one by one, each byte is a TLS record and a TCP segment
                    // of its own.
                    ready!(Pin::new(&mut this.inner).poll_flush(cx))?;
                    this.sleep = Some(Box::pin(tokio::time::sleep(interval)));
                    this.phase = Phase::Wait;
                    return Poll::Ready(Ok(n));
                }
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// An answer as a dripped one goes out: the connection closes after it, so no later
/// request on it is slowed down too.
pub(crate) fn closing(reply: crate::wire::Reply) -> crate::wire::Reply {
    reply.header("connection", "close")
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn a_switched_on_stream_writes_one_byte_per_interval() {
        let (near, mut far) = tokio::io::duplex(1024);
        let switch = Switch::default();
        let mut io = DripIo::new(near, switch.clone());
        io.write_all(b"ab").await.unwrap();
        switch.turn_on(Duration::from_millis(100));
        let started = tokio::time::Instant::now();
        io.write_all(b"cdef").await.unwrap();
        // Three waits between four bytes (the clock is paused: exact).
        assert_eq!(started.elapsed(), Duration::from_millis(300));
        drop(io);
        let mut got = Vec::new();
        far.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"abcdef");
    }
}
