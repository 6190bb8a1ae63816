//! A fixed set of plugin instances for a multi-threaded gateway.
//!
//! A [`Plugin`] serves one thread at a time. A [`PluginPool`] holds several, hands one
//! out per call, and keeps them alike: cache settings and sessions are declared once on
//! the pool and applied to each instance when it is next handed out. Sessions' tokens
//! live in the shared store, so an instance opening a session another one already uses
//! sends no request. Each instance keeps its own TLS cache.

use std::collections::BTreeMap;
use std::ops::{Deref, DerefMut};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

use crate::error::Error;
use crate::oauth::{Client, SessionGrant};
use crate::runtime::{Plugin, PluginOptions, Runtime};
use crate::tls::CacheSettings;

/// What every instance of a pool should have, each item stamped with the revision that
/// last changed it.
#[derive(Default)]
struct Desired {
    revision: u64,
    cache: Option<(u64, CacheSettings)>,
    sessions: BTreeMap<String, (u64, Client, SessionGrant)>,
}

/// An instance with what it has applied so far.
struct Member {
    plugin: Plugin,
    cache: u64,
    sessions: BTreeMap<String, u64>,
}

/// Several [`Plugin`]s over one [`Runtime`], shared by reference across threads.
pub struct PluginPool {
    size: usize,
    idle: Mutex<Vec<Member>>,
    returned: Condvar,
    desired: Mutex<Desired>,
}

/// An instance handed out by [`PluginPool::get`]; it goes back when dropped.
///
/// Open and close sessions and configure the cache through the pool, not through this
/// handle, so that every instance learns of them.
pub struct PooledPlugin<'a> {
    pool: &'a PluginPool,
    member: Option<Member>,
}

impl PluginPool {
    /// `size` instances (at least one) with the same options.
    pub fn new(runtime: &Runtime, options: PluginOptions, size: usize) -> Result<Self, Error> {
        let size = size.max(1);
        let idle = (0..size)
            .map(|_| {
                Ok(Member {
                    plugin: runtime.plugin(options.clone())?,
                    cache: 0,
                    sessions: BTreeMap::new(),
                })
            })
            .collect::<Result<_, Error>>()?;
        Ok(Self {
            size,
            idle: Mutex::new(idle),
            returned: Condvar::new(),
            desired: Mutex::new(Desired::default()),
        })
    }

    /// An instance, waiting for one to be returned if all are in use, brought up to
    /// date with the pool's cache settings and sessions.
    pub fn get(&self) -> Result<PooledPlugin<'_>, Error> {
        let mut idle = lock(&self.idle);
        let mut member = loop {
            match idle.pop() {
                Some(member) => break member,
                None => {
                    idle = self
                        .returned
                        .wait(idle)
                        .unwrap_or_else(PoisonError::into_inner)
                }
            }
        };
        drop(idle);
        let synced = self.sync(&mut member);
        let handle = PooledPlugin {
            pool: self,
            member: Some(member),
        };
        synced.map(|()| handle)
    }

    /// Sets every instance's cache capacity and TTL.
    pub fn configure(&self, settings: CacheSettings) -> Result<(), Error> {
        {
            let mut desired = lock(&self.desired);
            desired.revision += 1;
            desired.cache = Some((desired.revision, settings));
        }
        self.get().map(drop)
    }

    /// Opens session `key` on every instance (each as it is next handed out). The first
    /// opening is done now, so a bad client or grant is reported here.
    pub fn open_session(
        &self,
        key: &str,
        client: &Client,
        grant: &SessionGrant,
    ) -> Result<(), Error> {
        let mut plugin = self.get()?;
        plugin.open_session(key, client, grant)?;
        let mut desired = lock(&self.desired);
        desired.revision += 1;
        let revision = desired.revision;
        desired
            .sessions
            .insert(key.to_string(), (revision, client.clone(), grant.clone()));
        if let Some(member) = plugin.member.as_mut() {
            member.sessions.insert(key.to_string(), revision);
        }
        Ok(())
    }

    /// Closes session `key` on every instance and deletes it from the store. Waits until
    /// no instance is in use, so none can serve the session after this returns (do not
    /// call it while holding a [`PooledPlugin`] of this pool).
    pub fn close_session(&self, key: &str) -> Result<(), Error> {
        lock(&self.desired).sessions.remove(key);
        let mut idle = lock(&self.idle);
        while idle.len() < self.size {
            idle = self
                .returned
                .wait(idle)
                .unwrap_or_else(PoisonError::into_inner);
        }
        let mut result = Ok(());
        let mut closed = false;
        for member in idle.iter_mut() {
            if member.sessions.remove(key).is_some() {
                result = result.and(member.plugin.close_session(key));
                closed = true;
            }
        }
        if !closed {
            // No instance holds it: the store may still (another replica's doing).
            result = idle[0].plugin.close_session(key);
        }
        drop(idle);
        self.returned.notify_all();
        result
    }

    /// Applies what changed since `member` last served. The plan is made under the
    /// lock; the plugin calls run outside it, so other threads are not held up.
    fn sync(&self, member: &mut Member) -> Result<(), Error> {
        let (cache, open) = {
            let desired = lock(&self.desired);
            let cache = desired
                .cache
                .filter(|(revision, _)| *revision != member.cache);
            let open: Vec<_> = desired
                .sessions
                .iter()
                .filter(|(key, (revision, ..))| member.sessions.get(*key) != Some(revision))
                .map(|(key, (revision, client, grant))| {
                    (key.clone(), *revision, client.clone(), grant.clone())
                })
                .collect();
            (cache, open)
        };
        if let Some((revision, settings)) = cache {
            member.plugin.configure(settings)?;
            member.cache = revision;
        }
        for (key, revision, client, grant) in open {
            member.plugin.open_session(&key, &client, &grant)?;
            member.sessions.insert(key, revision);
        }
        Ok(())
    }
}

impl Deref for PooledPlugin<'_> {
    type Target = Plugin;

    fn deref(&self) -> &Plugin {
        &self.member.as_ref().expect("present until dropped").plugin
    }
}

impl DerefMut for PooledPlugin<'_> {
    fn deref_mut(&mut self) -> &mut Plugin {
        &mut self.member.as_mut().expect("present until dropped").plugin
    }
}

impl Drop for PooledPlugin<'_> {
    fn drop(&mut self) {
        if let Some(member) = self.member.take() {
            lock(&self.pool.idle).push(member);
            self.pool.returned.notify_one();
        }
    }
}

/// Locks, carrying on after a panic elsewhere: the data stays consistent because every
/// change under these locks is a single assignment or insertion.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
