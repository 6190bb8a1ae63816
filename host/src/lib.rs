//! The wasmtime host library for the gateway-auth component.
//!
//! It loads the component once ([`Runtime`]), runs instances of it ([`Plugin`], one
//! `Store` each; a [`PluginPool`] for several threads) and supplies their imports:
//! outbound TCP under an [`EgressPolicy`] (`transport`), a [`TokenStore`] (`store`: in
//! memory or SQLite), and the little of WASI the component uses: clocks (real, or a
//! [`VirtualClock`] for tests), randomness and stderr. The
//! plugin's exports are typed methods on [`Plugin`] that take and return the contract's
//! types from `gateway-auth-api`, re-exported here; no generated type leaks out.
//!
//! What it does not do: run a development server, parse command lines or generate
//! certificates (the `gateway-auth` command and `gateway-auth-devserver` do), so a
//! gateway that embeds it compiles wasmtime, SQLite, the Redis client and little else.
//!
//! What an embedder needs: the host toolchain and a C compiler for the host (SQLite is
//! compiled in). The component is shipped inside this crate, prebuilt
//! ([`BUNDLED_COMPONENT`], loaded by [`Runtime::bundled`]), so neither the
//! `wasm32-wasip2` target nor a C compiler for WebAssembly is needed;
//! [`Runtime::from_file`] and [`Runtime::from_bytes`] load a component built elsewhere.
//!
//! Security notes: the plugin can reach only what the egress policy allows, checked
//! again after name resolution; it never follows redirects; secrets are newtypes whose
//! `Debug` is redacted, and codes are spent by value; the SQLite store holds tokens, so
//! its file is created readable by its owner only.
//!
//! ```no_run
//! use std::sync::Arc;
//! use gateway_auth_host::{EgressPolicy, PluginOptions, Runtime, TrustSpec};
//!
//! let runtime = Runtime::bundled()?;
//! let mut plugin = runtime.plugin(PluginOptions {
//!     egress: Arc::new(EgressPolicy::parse(["auth.example.com:443"])?),
//!     ..PluginOptions::default()
//! })?;
//! let profile = plugin.prepare(&TrustSpec::ca(std::fs::read_to_string("ca.pem")?))?;
//! println!("profile {} ({} anchors)", profile.id, profile.anchors);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![warn(missing_docs)]

mod clock;
mod desired;
mod egress;
mod error;
mod metrics;
mod plugin;
mod pool;
mod runtime;
mod state;
mod store;
mod transport;
mod upstream;
mod wasi;
mod wit;

pub use clock::{Clock, VirtualClock};
pub use egress::{EgressPolicy, PolicyError};
pub use error::Error;
pub use gateway_auth_api::*;
pub use metrics::metrics_text;
pub use plugin::{Plugin, TlsSession};
pub use pool::{PluginPool, PooledPlugin};
pub use runtime::{BUNDLED_COMPONENT, PluginOptions, Runtime};
pub use store::{MemoryStore, RedisStore, SqliteStore, StoreError, TokenStore, open_store};
pub use transport::{Resolver, SystemResolver, TransportStats};
#[cfg(feature = "tokio")]
pub use upstream::AsyncUpstreamStream;
pub use upstream::{DEFAULT_CONNECT_TIMEOUT, Upstream, UpstreamStream, Upstreams};
