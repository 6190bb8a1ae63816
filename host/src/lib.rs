//! The wasmtime host for the gateway-auth component.
//!
//! It loads the component once ([`Runtime`]), runs instances of it ([`Plugin`], one
//! `Store` each; a [`PluginPool`] for several threads) and supplies their imports: outbound TCP under an [`EgressPolicy`]
//! (`transport`), a [`TokenStore`] (`store`: in memory or SQLite), and the WASI clocks
//! (real, or a [`VirtualClock`] for tests). The plugin's exports are offered as typed
//! Rust methods on [`Plugin`]; no generated type leaks out of this crate.
//!
//! Security notes: the plugin can reach only what the egress policy allows, checked
//! again after name resolution; it never follows redirects; secrets are [`Secret`]s
//! whose `Debug` is redacted; the SQLite store holds tokens, so its file is created
//! readable by its owner only.
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

mod bindings;
mod clock;
mod egress;
mod error;
pub mod oauth;
mod pool;
mod runtime;
mod secret;
mod state;
mod store;
mod tls;
mod transport;

pub use clock::{Clock, VirtualClock};
pub use egress::{EgressPolicy, PolicyError};
pub use error::Error;
pub use oauth::{Client, ClientAuth, Grant, OAuthError, SessionGrant, Token};
pub use pool::{PluginPool, PooledPlugin};
pub use runtime::{BUNDLED_COMPONENT, Plugin, PluginOptions, Runtime};
pub use secret::Secret;
pub use store::{MemoryStore, SqliteStore, StoreError, TokenStore};
pub use tls::{CacheSettings, CacheStats, Profile, TlsError, TrustSpec};
