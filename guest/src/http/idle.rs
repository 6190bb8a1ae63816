//! Kept-alive connections to authorization servers, idle between round trips.
//!
//! A connection is kept after a complete 2xx answer that leaves it clean (see
//! [`super::ResponseParser::keep_alive`]); any error, any other status, a
//! `Connection: close` or a response read to the close retires it. It is kept for the
//! same host, port and TLS configuration only: the configuration's identity stands for
//! the trust and client certificate it was made with, so a connection made under one
//! is never used under another.
//!
//! Bounded: at most [`PER_ENDPOINT`] per endpoint and [`MAX_IDLE`] in all (the longest
//! idle is closed first), each closed once idle for the limit, or for the server's own
//! `Keep-Alive: timeout` less [`SERVER_IDLE_MARGIN`], whichever is shorter. A
//! component has no timers: expired connections are closed at the next round trip.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::client::ClientConfig;

use super::KeepAlive;
use super::client::Stream;
use super::connection::TlsConnection;

/// How long a connection is kept idle when the server does not say.
pub const IDLE_LIMIT: Duration = Duration::from_secs(20);
/// Idle connections kept per endpoint. A request that must not be replayed opens a
/// new connection even when one is idle, so several can come to be idle at once.
pub const PER_ENDPOINT: usize = 2;
/// Idle connections kept in all.
pub const MAX_IDLE: usize = 16;
/// How much sooner than the server's announced idle limit a connection is retired: the
/// server counts from its last write, and a request must not cross its close.
pub const SERVER_IDLE_MARGIN: Duration = Duration::from_secs(1);

/// Where a connection leads: host, port and the TLS configuration it was made with.
pub(super) struct Endpoint {
    pub(super) host: String,
    pub(super) port: u16,
    pub(super) config: Arc<ClientConfig>,
}

impl Endpoint {
    fn same(&self, other: &Endpoint) -> bool {
        self.port == other.port
            && self.host == other.host
            && Arc::ptr_eq(&self.config, &other.config)
    }
}

struct Idle<S> {
    endpoint: Endpoint,
    conn: TlsConnection<S>,
    since: Instant,
    until: Instant,
}

/// The idle connections of one instance.
pub struct IdleConnections<S> {
    idle: Vec<Idle<S>>,
    limit: Duration,
}

impl<S> Default for IdleConnections<S> {
    fn default() -> Self {
        Self::with_idle_limit(IDLE_LIMIT)
    }
}

impl<S> IdleConnections<S> {
    /// Keeps connections idle for at most `limit`.
    pub fn with_idle_limit(limit: Duration) -> Self {
        Self {
            idle: Vec::new(),
            limit,
        }
    }

    /// How many connections are idle now (expired ones included until the next round
    /// trip closes them).
    pub fn len(&self) -> usize {
        self.idle.len()
    }

    /// Whether no connection is idle.
    pub fn is_empty(&self) -> bool {
        self.idle.is_empty()
    }
}

impl<S: Stream> IdleConnections<S> {
    /// Closes the connections idle past their limit.
    pub(super) fn sweep(&mut self, now: Instant) {
        self.idle.retain(|idle| idle.until > now);
    }

    /// The most recently used idle connection to `endpoint`, taken out.
    pub(super) fn take(&mut self, endpoint: &Endpoint) -> Option<TlsConnection<S>> {
        let newest = self
            .idle
            .iter()
            .enumerate()
            .filter(|(_, idle)| idle.endpoint.same(endpoint))
            .max_by_key(|(_, idle)| idle.since)
            .map(|(at, _)| at)?;
        Some(self.idle.swap_remove(newest).conn)
    }

    /// Keeps `conn` after an answer with `status`, when the answer allows it.
    pub(super) fn keep(
        &mut self,
        endpoint: Endpoint,
        conn: TlsConnection<S>,
        status: u16,
        keep_alive: Option<KeepAlive>,
        now: Instant,
    ) {
        let Some(keep_alive) = keep_alive else {
            return;
        };
        if !(200..300).contains(&status) || !conn.clean() {
            return;
        }
        let limit = keep_alive
            .server_idle
            .map_or(self.limit, |server| {
                server.saturating_sub(SERVER_IDLE_MARGIN)
            })
            .min(self.limit);
        if limit.is_zero() {
            return;
        }
        let same = self
            .idle
            .iter()
            .filter(|idle| idle.endpoint.same(&endpoint))
            .count();
        if same >= PER_ENDPOINT {
            self.close_oldest(|idle| idle.endpoint.same(&endpoint));
        } else if self.idle.len() >= MAX_IDLE {
            self.close_oldest(|_| true);
        }
        self.idle.push(Idle {
            endpoint,
            conn,
            since: now,
            until: now + limit,
        });
    }

    fn close_oldest(&mut self, among: impl Fn(&Idle<S>) -> bool) {
        let oldest = self
            .idle
            .iter()
            .enumerate()
            .filter(|(_, idle)| among(idle))
            .min_by_key(|(_, idle)| idle.since)
            .map(|(at, _)| at);
        if let Some(at) = oldest {
            self.idle.swap_remove(at);
        }
    }
}
