//! Loading the component once.
//!
//! A [`Runtime`] holds the engine and the compiled, pre-linked component; compiled code
//! is cached on disk by wasmtime, so only the first start on a machine pays for
//! compilation. [`Runtime::plugin`](crate::Plugin) makes instances of it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Cache, CacheConfig, Config, Engine, Store, StoreLimitsBuilder};

use crate::clock::Clock;
use crate::egress::EgressPolicy;
use crate::error::{Error, host};
use crate::state::{HostState, Limits};
use crate::store::{MemoryStore, TokenStore};
use crate::transport::{Resolver, SystemResolver, TransportStats};
use crate::wasi;
use crate::wit::{self, Exports, ExportsPre};

/// How often the epoch advances: the granularity of call deadlines.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(10);

/// The component this crate ships: built from the guest of the same version by
/// `./run component` and committed, so a crate depending on this one needs neither the
/// `wasm32-wasip2` target nor a C compiler for WebAssembly (`./run test` fails while it
/// is older than the guest's sources).
pub const BUNDLED_COMPONENT: &[u8] = include_bytes!("../component/gateway_auth.wasm");

/// The engine and the compiled component. Cheap to clone; share one per process.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<RuntimeInner>,
}

struct RuntimeInner {
    engine: Engine,
    pre: ExportsPre,
    ticking: Arc<AtomicBool>,
}

impl Drop for RuntimeInner {
    fn drop(&mut self) {
        self.ticking.store(false, Ordering::Relaxed);
    }
}

impl Runtime {
    /// The bundled component.
    pub fn bundled() -> Result<Self, Error> {
        Self::from_bytes(BUNDLED_COMPONENT)
    }

    /// A component file, e.g. one built with `cargo build -p gateway-auth-guest
    /// --target wasm32-wasip2 --release`.
    pub fn from_file(path: impl AsRef<std::path::Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        let bytes =
            std::fs::read(path).map_err(|e| Error::Host(format!("{}: {e}", path.display())))?;
        Self::from_bytes(&bytes)
    }

    /// A component from its bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        let mut config = Config::new();
        config.wasm_component_model(true).epoch_interruption(true);
        match Cache::new(CacheConfig::new()) {
            Ok(cache) => {
                config.cache(Some(cache));
            }
            Err(e) => tracing::warn!("compiled-code cache unavailable, compiling every start: {e}"),
        }
        let engine = Engine::new(&config).map_err(host)?;
        let component = Component::new(&engine, bytes).map_err(host)?;
        let mut linker = Linker::<HostState>::new(&engine);
        wasi::add_to_linker(&mut linker).map_err(host)?;
        wit::add_to_linker(&mut linker).map_err(host)?;
        let pre = ExportsPre::new(&linker, &component).map_err(host)?;

        let ticking = Arc::new(AtomicBool::new(true));
        let (weak_engine, flag) = (engine.weak(), ticking.clone());
        thread::Builder::new()
            .name("gateway-auth-epoch".into())
            .spawn(move || {
                while flag.load(Ordering::Relaxed) {
                    thread::sleep(EPOCH_TICK);
                    match weak_engine.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => break,
                    }
                }
            })
            .map_err(host)?;
        Ok(Self {
            inner: Arc::new(RuntimeInner {
                engine,
                pre,
                ticking,
            }),
        })
    }

    /// A fresh instance with `options`, in a `Store` of its own.
    pub(crate) fn instantiate(
        &self,
        options: &PluginOptions,
    ) -> Result<(Store<HostState>, Exports), Error> {
        let state = HostState {
            table: ResourceTable::new(),
            limits: Limits {
                bounds: StoreLimitsBuilder::new()
                    .memory_size(options.memory_limit)
                    .instances(16)
                    .build(),
                memory_bytes: 0,
            },
            egress: options.egress.clone(),
            resolver: options.resolver.clone(),
            store: options.store.clone(),
            traffic: TransportStats::default(),
            clock: options.clock.clone(),
            started: Instant::now(),
        };
        let mut store = Store::new(&self.inner.engine, state);
        store.limiter(|s| &mut s.limits);
        store.epoch_deadline_trap();
        store.set_epoch_deadline(ticks(options.call_timeout));
        let exports = self.inner.pre.instantiate(&mut store).map_err(host)?;
        Ok((store, exports))
    }
}

/// What one plugin instance may do and use.
#[derive(Clone)]
pub struct PluginOptions {
    /// Where it may connect (default: nowhere).
    pub egress: Arc<EgressPolicy>,
    /// How host names become addresses (default: the operating system's resolver).
    pub resolver: Arc<dyn Resolver>,
    /// Where sessions persist (default: a fresh in-memory store).
    pub store: Arc<dyn TokenStore>,
    /// Its wall clock.
    pub clock: Clock,
    /// Its linear memory bound, in bytes (default 64 MiB).
    pub memory_limit: usize,
    /// The longest one call may take, network waits included (default 60 s). A call
    /// past it traps and the instance is replaced. It must exceed each client's
    /// `timeout_ms` by more than the 2 s lease margin: clients that it does not are
    /// refused (see [`Plugin::open_session`](crate::Plugin::open_session)).
    pub call_timeout: Duration,
}

impl Default for PluginOptions {
    fn default() -> Self {
        Self {
            egress: Arc::new(EgressPolicy::deny_all()),
            resolver: Arc::new(SystemResolver),
            store: Arc::new(MemoryStore::new()),
            clock: Clock::Real,
            memory_limit: 64 << 20,
            call_timeout: Duration::from_secs(60),
        }
    }
}

/// The epoch ticks of `timeout`: at least one.
pub(crate) fn ticks(timeout: Duration) -> u64 {
    (timeout.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_runtime_is_shared_across_threads() {
        fn shared<T: Send + Sync>() {}
        shared::<Runtime>();
    }

    #[test]
    fn deadlines_round_to_whole_ticks_of_at_least_one() {
        assert_eq!(ticks(Duration::ZERO), 1);
        assert_eq!(ticks(Duration::from_millis(25)), 2);
        assert_eq!(ticks(Duration::from_secs(60)), 6000);
    }
}
