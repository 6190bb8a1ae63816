//! The gateway-auth component: a TLS client-configuration cache and OAuth 2.0 client
//! flows, for API gateways that load it as a WebAssembly plugin.
//!
//! What it does: caches `rustls` client configurations by their trust material (least
//! recently used eviction, one entry at a time), speaks HTTPS itself over byte streams
//! the host supplies, and runs OAuth token flows as keyed sessions persisted through the
//! host's store.
//!
//! What it does not do: open sockets, resolve names or decide which destinations are
//! allowed (the host's egress policy does), follow redirects (a token endpoint that
//! redirects is an error, never an open door for SSRF), or print secrets (client
//! secrets, passwords, tokens, codes and keys are redacted newtypes).
//!
//! The modules below `tls`, `http` and `oauth` never touch the generated bindings, so
//! `cargo test -p gateway-auth-guest` runs them natively.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod digest;
pub mod http;
pub mod oauth;
pub mod platform;
pub mod secret;
pub mod tls;

#[cfg(target_arch = "wasm32")]
mod bindings;
#[cfg(target_arch = "wasm32")]
mod component;
