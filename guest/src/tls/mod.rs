//! The TLS client-configuration cache.
//!
//! [`material`] turns PEM text into validated, canonical DER; [`cache`] keeps the built
//! `rustls::ClientConfig`s in least-recently-used order with hit/miss/eviction counts.

pub mod cache;
mod config;
pub mod material;
#[cfg(test)]
pub(crate) mod testing;

pub use cache::{Prepared, TlsCache};
