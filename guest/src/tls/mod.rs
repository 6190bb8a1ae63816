//! The TLS client-configuration cache.
//!
//! [`material`] turns PEM text into validated, canonical DER; [`cache`] keeps the built
//! `rustls::ClientConfig`s in least-recently-used order with hit/miss/eviction counts.

pub mod cache;
mod config;
pub mod material;
#[cfg(test)]
pub(crate) mod testing;

pub use cache::{CacheStats, Prepared, Settings, TlsCache};
pub use material::{MAX_INPUT_BYTES, TlsError};

use crate::secret::PrivateKeyPem;

/// The trust material for one upstream; mirrors the WIT `trust-spec`.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TrustSpec {
    /// PEM CA certificates; may be empty when `web_roots` is set.
    pub ca_bundle: String,
    /// PEM client certificate chain, leaf first.
    pub client_certificate: Option<String>,
    /// PEM private key of the client certificate.
    pub client_key: Option<PrivateKeyPem>,
    /// Whether the public web roots are trusted too.
    pub web_roots: bool,
}
