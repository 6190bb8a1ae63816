//! Loading the component once and running plugin instances of it.
//!
//! A [`Runtime`] holds the engine and the compiled, pre-linked component; compiled code
//! is cached on disk by wasmtime, so only the first start on a machine pays for
//! compilation. Each [`Plugin`] is one instance with its own `Store` (one per gateway
//! worker): memory-limited, and interrupted when a call runs past its deadline. A call
//! that traps replaces the instance with a fresh one, so the host keeps serving.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Cache, CacheConfig, Config, Engine, Store, StoreLimitsBuilder, Trap};
use wasmtime_wasi::WasiCtx;

use crate::EgressPolicy;
use crate::bindings::{PluginBindings, PluginPre, oauth as wit_oauth};
use crate::clock::Clock;
use crate::error::Error;
use crate::state::HostState;
use crate::store::{MemoryStore, TokenStore};

/// How often the epoch advances: the granularity of call deadlines.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// The component, as built alongside this crate.
pub const BUNDLED_COMPONENT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/gateway_auth.wasm"));

/// The engine and the compiled component. Cheap to clone; share one per process.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<RuntimeInner>,
}

struct RuntimeInner {
    engine: Engine,
    pre: PluginPre<HostState>,
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
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(host)?;
        PluginBindings::add_to_linker::<_, wasmtime::component::HasSelf<_>>(&mut linker, |s| s)
            .map_err(host)?;
        let pre =
            PluginPre::new(linker.instantiate_pre(&component).map_err(host)?).map_err(host)?;

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
            .map_err(|e| Error::Host(e.to_string()))?;
        Ok(Self {
            inner: Arc::new(RuntimeInner {
                engine,
                pre,
                ticking,
            }),
        })
    }

    /// A new plugin instance.
    pub fn plugin(&self, options: PluginOptions) -> Result<Plugin, Error> {
        let options = Arc::new(options);
        let (store, bindings) = self.instantiate(&options)?;
        Ok(Plugin {
            runtime: self.clone(),
            options,
            store,
            bindings,
            cache_settings: None,
            sessions: BTreeMap::new(),
        })
    }

    fn instantiate(
        &self,
        options: &PluginOptions,
    ) -> Result<(Store<HostState>, PluginBindings), Error> {
        let mut wasi = WasiCtx::builder();
        wasi.inherit_stderr();
        if let Clock::Virtual(clock) = &options.clock {
            wasi.wall_clock(clock.clone());
        }
        let state = HostState {
            wasi: wasi.build(),
            table: ResourceTable::new(),
            limits: StoreLimitsBuilder::new()
                .memory_size(options.memory_limit)
                .instances(16)
                .build(),
            egress: options.egress.clone(),
            store: options.store.clone(),
        };
        let mut store = Store::new(&self.inner.engine, state);
        store.limiter(|s| &mut s.limits);
        store.epoch_deadline_trap();
        store.set_epoch_deadline(ticks(options.call_timeout));
        let bindings = self.inner.pre.instantiate(&mut store).map_err(host)?;
        Ok((store, bindings))
    }
}

/// What one plugin instance may do and use.
#[derive(Clone)]
pub struct PluginOptions {
    /// Where it may connect (default: nowhere).
    pub egress: Arc<EgressPolicy>,
    /// Where sessions persist (default: a fresh in-memory store).
    pub store: Arc<dyn TokenStore>,
    /// Its wall clock.
    pub clock: Clock,
    /// Its linear memory bound, in bytes (default 64 MiB).
    pub memory_limit: usize,
    /// The longest one call may take, network waits included (default 60 s). A call
    /// past it traps and the instance is replaced.
    pub call_timeout: Duration,
}

impl Default for PluginOptions {
    fn default() -> Self {
        Self {
            egress: Arc::new(EgressPolicy::deny_all()),
            store: Arc::new(MemoryStore::new()),
            clock: Clock::Real,
            memory_limit: 64 << 20,
            call_timeout: Duration::from_secs(60),
        }
    }
}

/// One plugin instance. Not shareable across threads at once: give each worker its own.
pub struct Plugin {
    runtime: Runtime,
    options: Arc<PluginOptions>,
    pub(crate) store: Store<HostState>,
    pub(crate) bindings: PluginBindings,
    pub(crate) cache_settings: Option<crate::tls::CacheSettings>,
    /// Sessions opened here, replayed into a replacement instance: their tokens are in
    /// the store, so replaying sends no request.
    pub(crate) sessions: BTreeMap<String, (wit_oauth::Client, wit_oauth::SessionGrant)>,
}

impl Plugin {
    /// The options this plugin runs with.
    pub fn options(&self) -> &PluginOptions {
        &self.options
    }

    /// Changes the deadline for later calls.
    pub fn set_call_timeout(&mut self, timeout: Duration) {
        Arc::make_mut(&mut self.options).call_timeout = timeout;
    }

    /// Runs one export call under the deadline; a trap replaces the instance.
    pub(crate) fn call<R>(
        &mut self,
        f: impl FnOnce(&PluginBindings, &mut Store<HostState>) -> wasmtime::Result<R>,
    ) -> Result<R, Error> {
        self.store
            .set_epoch_deadline(ticks(self.options.call_timeout));
        match f(&self.bindings, &mut self.store) {
            Ok(value) => Ok(value),
            Err(err) => {
                let error = match err.downcast_ref::<Trap>() {
                    Some(Trap::Interrupt) => Error::DeadlineExceeded(self.options.call_timeout),
                    _ => Error::Trapped(format!("{err:#}")),
                };
                tracing::warn!("plugin instance replaced: {error}");
                self.replace()?;
                Err(error)
            }
        }
    }

    /// A fresh instance in place of one that trapped, with the cache settings and open
    /// sessions of the old one.
    fn replace(&mut self) -> Result<(), Error> {
        let (store, bindings) = self.runtime.instantiate(&self.options)?;
        self.store = store;
        self.bindings = bindings;
        if let Some(settings) = self.cache_settings {
            self.configure(settings)?;
        }
        for (key, (client, grant)) in self.sessions.clone() {
            let replay = self
                .bindings
                .gateway_auth_oauth()
                .call_open_session(&mut self.store, &key, &client, &grant)
                .map_err(host)?;
            if let Err(e) = replay {
                tracing::warn!(session = %key, "session not restored after replacement: {e:?}");
            }
        }
        Ok(())
    }
}

fn ticks(timeout: Duration) -> u64 {
    (timeout.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64
}

fn host(e: impl std::fmt::Display) -> Error {
    Error::Host(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plugin_can_move_to_a_worker_thread_and_the_runtime_is_shared() {
        fn send<T: Send>() {}
        fn shared<T: Send + Sync>() {}
        send::<Plugin>();
        shared::<Runtime>();
    }

    #[test]
    fn deadlines_round_to_whole_ticks_of_at_least_one() {
        assert_eq!(ticks(Duration::ZERO), 1);
        assert_eq!(ticks(Duration::from_millis(25)), 2);
        assert_eq!(ticks(Duration::from_secs(60)), 6000);
    }
}
