//! What one plugin instance's `Store` holds.

use std::sync::Arc;

use wasmtime::StoreLimits;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::egress::EgressPolicy;
use crate::store::TokenStore;

/// The host side of one instance: WASI context, open connections, limits, and the
/// policy and store its imports use.
pub struct HostState {
    pub(crate) wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) limits: StoreLimits,
    pub(crate) egress: Arc<EgressPolicy>,
    pub(crate) store: Arc<dyn TokenStore>,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}
