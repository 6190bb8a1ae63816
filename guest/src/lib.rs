//! The gateway-auth component: a TLS client-configuration cache and OAuth 2.0 client
//! flows, for API gateways that load it as a WebAssembly plugin.
//!
//! What it does: caches `rustls` client configurations by their trust material (least
//! recently used eviction, optionally behind a TinyLFU admission filter, one entry at a
//! time), speaks HTTPS itself over byte streams
//! the host supplies, and runs OAuth token flows as keyed sessions persisted through the
//! host's store.
//!
//! What it does not do: open sockets, resolve names or decide which destinations are
//! allowed (the host's egress policy does), follow redirects (a token endpoint that
//! redirects is an error, never an open door for SSRF), or print secrets (client
//! secrets, passwords, tokens, codes and keys are redacted newtypes).
//!
//! The contract's types come from `gateway-auth-api`. Only `component/` touches the
//! generated bindings, converting them to and from those types; `tls`, `http` and
//! `oauth` never do, so `cargo test -p gateway-auth-guest` runs them natively.
#![deny(unsafe_code)]
#![warn(missing_docs)]

mod digest;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod http;
mod metrics;
mod oauth;
mod platform;
mod tls;

// Natively, the flows and the cache run over any `Platform` (the tests' fakes); in the
// component, `component/` runs them over the WIT imports.
pub use oauth::OAuth;
pub use platform::Platform;
pub use tls::{Prepared, TlsCache, UpstreamSession, policy};

#[cfg(target_arch = "wasm32")]
mod bindings;
#[cfg(target_arch = "wasm32")]
mod component;
