//! What the OAuth flows need from the world outside the component.
//!
//! The component implements [`Platform`] over the WIT imports, the TLS cache and the
//! WASI clocks; native tests implement it with fakes, so no flow needs a network or a
//! real clock to be tested.

use gateway_auth_api::TrustSpec;

use crate::http::{HttpError, Request, Response};

/// Effects available to the flows.
pub trait Platform {
    /// Sends `request` over TLS configured from `trust` (through the TLS cache) and
    /// returns the complete response. Never follows redirects. `timeout_ms` bounds the
    /// whole round trip.
    fn round_trip(
        &mut self,
        trust: &TrustSpec,
        request: &Request,
        timeout_ms: u32,
    ) -> Result<Response, HttpError>;

    /// Reads `key` from the durable store.
    fn store_get(&mut self, key: &str) -> Result<Option<Vec<u8>>, String>;

    /// Writes `value` (`None` deletes) under `key` only if the stored value equals
    /// `expected`; returns whether it wrote.
    fn store_compare_and_swap(
        &mut self,
        key: &str,
        expected: Option<&[u8]>,
        value: Option<&[u8]>,
    ) -> Result<bool, String>;

    /// Wall-clock time in milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;

    /// Waits, between retries.
    fn sleep_ms(&mut self, ms: u64);

    /// Fills `buf` with cryptographically secure random bytes.
    fn fill_random(&mut self, buf: &mut [u8]);

    /// Wall-clock time in whole seconds since the Unix epoch.
    fn now_secs(&self) -> u64 {
        self.now_ms() / 1000
    }

    /// 64 random bits, for jitter.
    fn random_u64(&mut self) -> u64 {
        let mut bytes = [0; 8];
        self.fill_random(&mut bytes);
        u64::from_le_bytes(bytes)
    }
}
