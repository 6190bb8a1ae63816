//! What plugin instances should have beyond what the store holds: the cache settings,
//! the open sessions and the closed ones. One record serves a lone [`Plugin`](crate::Plugin) (replayed
//! into a replacement instance after a trap) and every instance of a
//! [`PluginPool`](crate::PluginPool) (each brought up to date when it is handed out).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use gateway_auth_api::{CacheSettings, Client, SessionGrant};

/// The desired state, shared by the instances that follow it.
#[derive(Clone, Default)]
pub(crate) struct SharedDesired(Arc<Mutex<Desired>>);

impl SharedDesired {
    /// The record, locked. Every change under the lock is a single assignment or
    /// insertion, so a panic elsewhere leaves it consistent and the lock is taken anyway.
    pub fn lock(&self) -> MutexGuard<'_, Desired> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The desired state, each item stamped with the revision that last changed it.
#[derive(Default)]
pub(crate) struct Desired {
    revision: u64,
    cache: Option<(u64, CacheSettings)>,
    sessions: BTreeMap<String, (u64, Client, SessionGrant)>,
    /// The revision of each session's latest close: an instance that opened it earlier
    /// still holds it and must forget it, whichever instance the close went through.
    closed: BTreeMap<String, u64>,
}

/// The revisions an instance has applied.
#[derive(Clone, Default)]
pub(crate) struct Applied {
    cache: u64,
    sessions: BTreeMap<String, u64>,
}

/// What an instance still has to do to match a [`Desired`].
pub(crate) struct Plan {
    /// Sessions closed since the instance opened them, to forget.
    pub forget: Vec<String>,
    /// New cache settings, if they changed.
    pub cache: Option<(u64, CacheSettings)>,
    /// Sessions to open (again), with their revision.
    pub open: Vec<(String, u64, Client, SessionGrant)>,
}

impl Desired {
    /// Records new cache settings.
    pub fn set_cache(&mut self, settings: CacheSettings) -> u64 {
        self.revision += 1;
        self.cache = Some((self.revision, settings));
        self.revision
    }

    /// Records an opened session.
    pub fn open(&mut self, key: &str, client: &Client, grant: &SessionGrant) -> u64 {
        self.revision += 1;
        self.sessions.insert(
            key.to_string(),
            (self.revision, client.clone(), grant.clone()),
        );
        self.revision
    }

    /// Records a closed session.
    pub fn close(&mut self, key: &str) {
        self.revision += 1;
        self.sessions.remove(key);
        self.closed.insert(key.to_string(), self.revision);
    }

    /// The sessions closed since an instance that has applied `applied` opened them.
    pub fn to_forget(&self, applied: &Applied) -> Vec<String> {
        applied
            .sessions
            .iter()
            .filter(|(key, opened)| self.closed.get(*key).is_some_and(|closed| closed > opened))
            .map(|(key, _)| key.clone())
            .collect()
    }

    /// What an instance that has applied `applied` still has to do.
    pub fn plan(&self, applied: &Applied) -> Plan {
        let cache = self
            .cache
            .filter(|(revision, _)| *revision != applied.cache);
        let open = self
            .sessions
            .iter()
            .filter(|(key, (revision, ..))| applied.sessions.get(*key) != Some(revision))
            .map(|(key, (revision, client, grant))| {
                (key.clone(), *revision, client.clone(), grant.clone())
            })
            .collect();
        Plan {
            forget: self.to_forget(applied),
            cache,
            open,
        }
    }
}

impl Applied {
    /// Notes applied cache settings.
    pub fn cache(&mut self, revision: u64) {
        self.cache = revision;
    }

    /// Notes an opened session.
    pub fn opened(&mut self, key: &str, revision: u64) {
        self.sessions.insert(key.to_string(), revision);
    }

    /// Notes a closed session.
    pub fn closed(&mut self, key: &str) {
        self.sessions.remove(key);
    }
}
