//! A fixed set of plugin instances for a multi-threaded gateway.
//!
//! A [`Plugin`] serves one thread at a time. A [`PluginPool`] holds several, hands one
//! out per call, and keeps them alike: all follow one [desired state](crate::desired)
//! (cache settings, open and closed sessions), and each is brought up to date when it
//! is handed out, whether the change was made through the pool or through one of its
//! instances. Sessions' tokens live in the shared store, so an instance opening a
//! session another one already uses sends no request. Each instance keeps its own TLS
//! cache.

use std::collections::BTreeMap;
use std::ops::{Deref, DerefMut};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

use gateway_auth_api::{CacheSettings, Client, PluginMetrics, SessionGrant};

use crate::desired::SharedDesired;
use crate::error::Error;
use crate::metrics;
use crate::plugin::Plugin;
use crate::runtime::{PluginOptions, Runtime};

/// Several [`Plugin`]s over one [`Runtime`], shared by reference across threads.
pub struct PluginPool {
    size: usize,
    idle: Mutex<Vec<Plugin>>,
    /// Signalled for each instance returned: wakes a [`PluginPool::get`].
    returned: Condvar,
    /// Signalled when no instance is in use any more: wakes a
    /// [`PluginPool::close_session`]. (With one condition for both, a return could
    /// wake only a closer that goes back to sleep, leaving a getter asleep beside an
    /// idle instance.)
    all_returned: Condvar,
    /// Each instance's figures as last read, by [`Plugin::metrics_id`]: an instance in
    /// use during a scrape counts with them.
    seen: Mutex<BTreeMap<u64, PluginMetrics>>,
}

/// An instance handed out by [`PluginPool::get`]; it goes back when dropped.
///
/// Cache settings and sessions set through it reach every instance of the pool (each
/// as it is next handed out), as do those set through the pool. A session closed
/// through another instance while this one is held is forgotten here before this one's
/// next call on that session.
pub struct PooledPlugin<'a> {
    pool: &'a PluginPool,
    plugin: Option<Plugin>,
}

impl PluginPool {
    /// `size` instances (at least one) with the same options.
    pub fn new(runtime: &Runtime, options: PluginOptions, size: usize) -> Result<Self, Error> {
        let size = size.max(1);
        let desired = SharedDesired::default();
        let idle = (0..size)
            .map(|_| runtime.plugin_following(options.clone(), desired.clone()))
            .collect::<Result<_, Error>>()?;
        Ok(Self {
            size,
            idle: Mutex::new(idle),
            returned: Condvar::new(),
            all_returned: Condvar::new(),
            seen: Mutex::new(BTreeMap::new()),
        })
    }

    /// An instance, waiting for one to be returned if all are in use, brought up to
    /// date with the pool's cache settings and sessions.
    pub fn get(&self) -> Result<PooledPlugin<'_>, Error> {
        let mut idle = lock(&self.idle);
        let plugin = loop {
            match idle.pop() {
                Some(plugin) => break plugin,
                None => {
                    idle = self
                        .returned
                        .wait(idle)
                        .unwrap_or_else(PoisonError::into_inner)
                }
            }
        };
        drop(idle);
        let mut handle = PooledPlugin {
            pool: self,
            plugin: Some(plugin),
        };
        handle.sync().map(|()| handle)
    }

    /// Sets every instance's cache capacity and TTL.
    pub fn configure(&self, settings: CacheSettings) -> Result<(), Error> {
        self.get()?.configure(settings)
    }

    /// Opens session `key` on every instance (each as it is next handed out). The first
    /// opening is done now, so a bad client or grant is reported here.
    pub fn open_session(
        &self,
        key: &str,
        client: &Client,
        grant: &SessionGrant,
    ) -> Result<(), Error> {
        self.get()?.open_session(key, client, grant)
    }

    /// Closes session `key` on every instance and deletes it from the store. Waits until
    /// no instance is in use, so none can serve the session after this returns (do not
    /// call it while holding a [`PooledPlugin`] of this pool). A close through one
    /// pooled instance reaches the others too, each before it is next handed out.
    pub fn close_session(&self, key: &str) -> Result<(), Error> {
        let mut idle = lock(&self.idle);
        while idle.len() < self.size {
            idle = self
                .all_returned
                .wait(idle)
                .unwrap_or_else(PoisonError::into_inner);
        }
        // One close deletes the record (even if only another replica held the
        // session) and is recorded in the desired state; the others forget it.
        let (first, others) = idle.split_first_mut().expect("at least one instance");
        let mut result = first.close_session(key);
        for plugin in others {
            result = result.and(plugin.sync_closes());
        }
        result
    }
}

impl PluginPool {
    /// What the pool's instances counted (see [`Plugin::metrics`]): counters and cache
    /// sizes added up, profiles listed once, sessions counted once. Idle instances are
    /// read now (a `get` meanwhile waits for it, tens of microseconds); one in use
    /// counts with its figures of the previous scrape, so no total ever goes down. An
    /// instance that cannot be read keeps its previous figures too.
    pub fn metrics(&self) -> Result<PluginMetrics, Error> {
        let mut idle = lock(&self.idle);
        let mut seen = lock(&self.seen);
        for plugin in idle.iter_mut() {
            match plugin.metrics() {
                Ok(figures) => {
                    seen.insert(plugin.metrics_id(), figures);
                }
                Err(e) => tracing::warn!("metrics of a pooled instance not read: {e}"),
            }
        }
        drop(idle);
        let parts: Vec<PluginMetrics> = seen.values().cloned().collect();
        Ok(metrics::sum(&parts))
    }

    /// [`PluginPool::metrics`] as Prometheus text exposition (see
    /// [`metrics_text`](crate::metrics_text)).
    pub fn metrics_text(&self) -> Result<String, Error> {
        self.metrics().map(|m| metrics::metrics_text(&m))
    }
}

impl Deref for PooledPlugin<'_> {
    type Target = Plugin;

    fn deref(&self) -> &Plugin {
        self.plugin.as_ref().expect("present until dropped")
    }
}

impl DerefMut for PooledPlugin<'_> {
    fn deref_mut(&mut self) -> &mut Plugin {
        self.plugin.as_mut().expect("present until dropped")
    }
}

impl Drop for PooledPlugin<'_> {
    fn drop(&mut self) {
        if let Some(plugin) = self.plugin.take() {
            let mut idle = lock(&self.pool.idle);
            idle.push(plugin);
            if idle.len() == self.pool.size {
                self.pool.all_returned.notify_all();
            }
            drop(idle);
            self.pool.returned.notify_one();
        }
    }
}

/// Locks, carrying on after a panic elsewhere: the list stays consistent because every
/// change under the lock is a single push or pop.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
