//! What one plugin instance's `Store` holds.

use std::sync::Arc;
use std::time::Instant;

use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, StoreLimits};

use crate::clock::Clock;
use crate::egress::EgressPolicy;
use crate::store::TokenStore;
use crate::transport::{Resolver, TransportStats};

/// The host side of one instance: open connections and other resources, limits, and
/// the policy, store and clocks its imports use.
pub struct HostState {
    pub(crate) table: ResourceTable,
    pub(crate) limits: Limits,
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

/// The instance's limits, noting how large its linear memory has grown (memory per
/// open upstream session is measured with it).
pub(crate) struct Limits {
    pub(crate) bounds: StoreLimits,
    /// The largest linear memory granted, in bytes.
    pub(crate) memory_bytes: usize,
}

impl ResourceLimiter for Limits {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let granted = self.bounds.memory_growing(current, desired, maximum)?;
        if granted {
            self.memory_bytes = self.memory_bytes.max(desired);
        }
        Ok(granted)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.bounds.table_growing(current, desired, maximum)
    }

    fn instances(&self) -> usize {
        self.bounds.instances()
    }

    fn tables(&self) -> usize {
        self.bounds.tables()
    }

    fn memories(&self) -> usize {
        self.bounds.memories()
    }
}
