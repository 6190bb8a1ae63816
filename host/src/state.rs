//! What one plugin instance's `Store` holds.

use std::sync::Arc;
use std::time::Instant;

use wasmtime::StoreLimits;
use wasmtime::component::ResourceTable;

use crate::clock::Clock;
use crate::egress::EgressPolicy;
use crate::store::TokenStore;
use crate::transport::{Resolver, TransportStats};

/// The host side of one instance: open connections and other resources, limits, and
/// the policy, store and clocks its imports use.
pub struct HostState {
    pub(crate) table: ResourceTable,
    pub(crate) limits: StoreLimits,
    pub(crate) egress: Arc<EgressPolicy>,
    pub(crate) resolver: Arc<dyn Resolver>,
    pub(crate) store: Arc<dyn TokenStore>,
    /// What its connections have moved.
    pub(crate) traffic: TransportStats,
    /// The wall clock the plugin reads.
    pub(crate) clock: Clock,
    /// The origin of the plugin's monotonic clock.
    pub(crate) started: Instant,
}
