//! Glue between the WIT world and the contract's types (`gateway-auth-api`): the
//! component's exports, and the [`Platform`] the flows run on, built from the imports.
//! The only guest module that touches generated bindings.

mod metrics;
mod oauth;
mod tls_cache;

use std::cell::RefCell;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gateway_auth_api::{NetError, TrustSpec};

use crate::bindings::gateway::auth::{store, transport, types};
use crate::http::client::{self, Connector, Stream};
use crate::http::{HttpError, IdleConnections, Request, Response};
use crate::platform::Platform;
use crate::tls::TlsCache;

/// The exported interfaces' implementation.
pub(crate) struct Component;

thread_local! {
    /// The TLS cache, shared by `tls-cache` and every connection the flows make.
    static CACHE: RefCell<TlsCache> = RefCell::new(TlsCache::default());
    /// Connections to authorization servers kept alive between the flows' round trips.
    static IDLE: RefCell<IdleConnections<transport::Connection>> =
        RefCell::new(IdleConnections::default());
}

/// Wall-clock milliseconds since the Unix epoch, from `wasi:clocks/wall-clock` (which a
/// test host may drive).
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The [`Platform`] over the host's imports.
struct Host;

impl Platform for Host {
    fn round_trip(
        &mut self,
        trust: &TrustSpec,
        request: &Request,
        timeout_ms: u32,
    ) -> Result<Response, HttpError> {
        let prepared = CACHE
            .with_borrow_mut(|cache| cache.prepare(trust, now_ms()))
            .map_err(|e| {
                HttpError::NotSent(Box::new(HttpError::Tls(format!(
                    "trust material rejected: {e}"
                ))))
            })?;
        IDLE.with_borrow_mut(|idle| {
            client::round_trip(
                &mut HostConnector,
                idle,
                prepared.config,
                request,
                timeout_ms,
            )
        })
    }

    fn store_get(&mut self, key: &str) -> Result<Option<Vec<u8>>, String> {
        store::get(key).map(|stored| stored.value)
    }

    fn store_compare_and_swap(
        &mut self,
        key: &str,
        expected: Option<&[u8]>,
        value: Option<&[u8]>,
    ) -> Result<bool, String> {
        store::compare_and_swap(key, expected, value)
    }

    fn now_ms(&self) -> u64 {
        now_ms()
    }

    fn sleep_ms(&mut self, ms: u64) {
        std::thread::sleep(Duration::from_millis(ms));
    }

    fn fill_random(&mut self, buf: &mut [u8]) {
        use ring::rand::SecureRandom;
        // wasi:random never fails; a host that cannot supply randomness traps instead.
        ring::rand::SystemRandom::new()
            .fill(buf)
            .expect("wasi:random supplies random bytes");
    }
}

/// Opens streams through the host's `transport` import.
struct HostConnector;

impl Connector for HostConnector {
    type Stream = transport::Connection;

    fn connect(
        &mut self,
        host: &str,
        port: u16,
        timeout_ms: u32,
    ) -> Result<Self::Stream, NetError> {
        transport::connect(host, port, timeout_ms).map_err(NetError::from_wit)
    }
}

impl Stream for transport::Connection {
    fn write_all(&mut self, bytes: &[u8], timeout_ms: u32) -> Result<(), NetError> {
        transport::Connection::write(self, bytes, timeout_ms).map_err(NetError::from_wit)
    }

    fn read(&mut self, max: u32, timeout_ms: u32) -> Result<Vec<u8>, NetError> {
        transport::Connection::read(self, max, timeout_ms).map_err(NetError::from_wit)
    }
}

/// Conversions from generated types to the contract's (`api`) types.
pub(crate) trait FromWit<T> {
    /// The `api` value of a generated one.
    fn from_wit(value: T) -> Self;
}

/// Conversions from the contract's (`api`) types to generated types.
pub(crate) trait IntoWit<T> {
    /// The generated value of an `api` one.
    fn into_wit(self) -> T;
}

impl FromWit<types::NetError> for NetError {
    fn from_wit(err: types::NetError) -> Self {
        match err {
            types::NetError::Denied(why) => Self::Denied(why),
            types::NetError::Resolve(why) => Self::Resolve(why),
            types::NetError::Connect(why) => Self::Connect(why),
            types::NetError::Timeout => Self::Timeout,
            types::NetError::Reset(why) => Self::Reset(why),
            types::NetError::Closed => Self::Closed,
            types::NetError::Other(why) => Self::Other(why),
        }
    }
}

impl IntoWit<types::NetError> for NetError {
    fn into_wit(self) -> types::NetError {
        match self {
            Self::Denied(why) => types::NetError::Denied(why),
            Self::Resolve(why) => types::NetError::Resolve(why),
            Self::Connect(why) => types::NetError::Connect(why),
            Self::Timeout => types::NetError::Timeout,
            Self::Reset(why) => types::NetError::Reset(why),
            Self::Closed => types::NetError::Closed,
            Self::Other(why) => types::NetError::Other(why),
        }
    }
}
