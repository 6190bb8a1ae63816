//! The TLS client-configuration cache.
//!
//! [`material`] turns PEM text into validated, canonical DER; [`cache`] keeps the built
//! `rustls::ClientConfig`s, bounded by one of the eviction [`policy`]s, with
//! hit/miss/eviction counts; [`session`] runs upstream TLS sessions on them, sans-IO.

pub mod cache;
mod config;
pub mod material;
pub mod policy;
mod seen;
pub mod session;
#[cfg(test)]
pub(crate) mod testing;

pub use cache::{Prepared, TlsCache};
pub use session::UpstreamSession;
