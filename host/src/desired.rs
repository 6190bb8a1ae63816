//! What plugin instances should have beyond what the store holds: the cache settings
//! and the open sessions, and, for each instance following the record, what it has
//! applied and which sessions closed elsewhere it must still forget. One record serves
//! a lone [`Plugin`](crate::Plugin) (replayed into a replacement instance after a trap)
//! and every instance of a [`PluginPool`](crate::PluginPool) (each brought up to date
//! when it is handed out).
//!
//! A close is kept only as a forget owed by each instance that holds the session, not
//! as an entry per key ever closed: the record grows with the sessions the instances
//! hold, never with the closes made over its life.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use gateway_auth_api::{CacheSettings, Client, SessionGrant};

/// The desired state, shared by the instances that follow it.
#[derive(Clone, Default)]
pub(crate) struct SharedDesired(Arc<Mutex<Desired>>);

impl SharedDesired {
    /// The record, locked. Every change under the lock is a few insertions and removals
    /// that leave it consistent between them, so a panic elsewhere leaves it usable
    /// and the lock is taken anyway.
    fn lock(&self) -> MutexGuard<'_, Desired> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers one more instance following the record. It holds nothing yet, so no
    /// earlier close concerns it.
    pub fn follow(&self) -> Following {
        let mut desired = self.lock();
        let id = desired.next_follower;
        desired.next_follower += 1;
        desired.followers.insert(id, Applied::default());
        Following {
            desired: self.clone(),
            id,
        }
    }
}

/// The desired state, each item stamped with the revision that last changed it.
#[derive(Default)]
pub(crate) struct Desired {
    revision: u64,
    cache: Option<(u64, CacheSettings)>,
    sessions: BTreeMap<String, (u64, Client, SessionGrant)>,
    /// The open sessions' keys by the revision of their open, so that a follower finds
    /// the opens since it last synced without looking at every session.
    by_revision: BTreeMap<u64, String>,
    /// What each following instance has applied, by its id.
    followers: BTreeMap<u64, Applied>,
    next_follower: u64,
}

/// What one instance has applied.
#[derive(Default)]
struct Applied {
    /// Every open up to this revision was applied (or is never to be).
    synced: u64,
    cache: u64,
    /// The sessions it holds, with the revision of the open it applied.
    sessions: BTreeMap<String, u64>,
    /// Sessions it may still hold in memory although they were closed through another
    /// instance since (or while) it opened them.
    forget: BTreeSet<String>,
}

/// What an instance still has to do to match a [`Desired`].
pub(crate) struct Plan {
    /// Sessions closed since the instance opened them, to forget first.
    pub forget: Vec<String>,
    /// New cache settings, if they changed.
    pub cache: Option<(u64, CacheSettings)>,
    /// Sessions to open (again), with their revision.
    pub open: Vec<(String, u64, Client, SessionGrant)>,
    /// The record's revision the plan was made at: see [`Mine::synced`].
    pub revision: u64,
}

/// One instance's registration with a [`SharedDesired`]; it deregisters when dropped,
/// taking the forgets it was owed with it.
pub(crate) struct Following {
    desired: SharedDesired,
    id: u64,
}

impl Drop for Following {
    fn drop(&mut self) {
        self.desired.lock().followers.remove(&self.id);
    }
}

impl Following {
    /// The record followed, to register more instances with.
    pub fn desired(&self) -> &SharedDesired {
        &self.desired
    }

    /// The record, locked, as this instance sees it.
    pub fn lock(&self) -> Mine<'_> {
        Mine {
            desired: self.desired.lock(),
            id: self.id,
        }
    }
}

/// The record locked by one of its followers: changes are made on its behalf.
pub(crate) struct Mine<'a> {
    desired: MutexGuard<'a, Desired>,
    id: u64,
}

impl Mine<'_> {
    fn mine(&self) -> Option<&Applied> {
        self.desired.followers.get(&self.id)
    }

    fn applied(&mut self) -> &mut Applied {
        // Registered until its `Following` is dropped, which cannot happen while this
        // borrows it; the default only keeps a mistake from panicking.
        self.desired.followers.entry(self.id).or_default()
    }

    /// Records new cache settings, applied by this instance.
    pub fn set_cache(&mut self, settings: CacheSettings) {
        self.desired.revision += 1;
        let revision = self.desired.revision;
        self.desired.cache = Some((revision, settings));
        self.applied().cache = revision;
    }

    /// Notes that this instance applied the cache settings of `revision`.
    pub fn cache_applied(&mut self, revision: u64) {
        self.applied().cache = revision;
    }

    /// Records a session opened through this instance. It is the session now, even if
    /// a close through another instance raced it.
    pub fn open(&mut self, key: &str, client: &Client, grant: &SessionGrant) {
        self.desired.revision += 1;
        let revision = self.desired.revision;
        let replaced = self
            .desired
            .sessions
            .insert(key.to_string(), (revision, client.clone(), grant.clone()));
        if let Some((old, ..)) = replaced {
            self.desired.by_revision.remove(&old);
        }
        self.desired.by_revision.insert(revision, key.to_string());
        let applied = self.applied();
        applied.sessions.insert(key.to_string(), revision);
        applied.forget.remove(key);
    }

    /// Notes that this instance opened session `key` as of `revision` (from a
    /// [`Plan`]). If the session was closed or opened again meanwhile, what the open
    /// read may be the old session's: it is to be forgotten (then opened again, if
    /// it is open).
    pub fn opened(&mut self, key: &str, revision: u64) {
        let current = self.desired.sessions.get(key).map(|(r, ..)| *r) == Some(revision);
        let applied = self.applied();
        if current {
            applied.sessions.insert(key.to_string(), revision);
        } else {
            applied.sessions.remove(key);
            applied.forget.insert(key.to_string());
        }
    }

    /// Records a session closed through this instance: every other instance that holds
    /// it owes a forget.
    pub fn close(&mut self, key: &str) {
        self.desired.revision += 1;
        if let Some((revision, ..)) = self.desired.sessions.remove(key) {
            self.desired.by_revision.remove(&revision);
        }
        let me = self.id;
        for (id, applied) in &mut self.desired.followers {
            let held = applied.sessions.remove(key).is_some();
            if *id == me {
                applied.forget.remove(key);
            } else if held {
                applied.forget.insert(key.to_string());
            }
        }
    }

    /// The client with the longest deadline among the open sessions'.
    pub fn slowest_client(&self) -> Option<&Client> {
        self.desired
            .sessions
            .values()
            .map(|(_, client, _)| client)
            .max_by_key(|client| client.timeout())
    }

    /// Whether this instance must forget session `key` before using it again.
    pub fn must_forget(&self, key: &str) -> bool {
        self.mine()
            .is_some_and(|applied| applied.forget.contains(key))
    }

    /// Session `key` as the record has it open, if this instance has not applied that
    /// open (from a [`Plan`] for that key alone).
    pub fn unapplied(&self, key: &str) -> Option<(u64, Client, SessionGrant)> {
        let (revision, client, grant) = self.desired.sessions.get(key)?;
        let applied = self.mine().and_then(|applied| applied.sessions.get(key));
        (applied != Some(revision)).then(|| (*revision, client.clone(), grant.clone()))
    }

    /// Notes that this instance forgot session `key`.
    pub fn forgotten(&mut self, key: &str) {
        let applied = self.applied();
        applied.forget.remove(key);
        applied.sessions.remove(key);
    }

    /// The sessions this instance must forget.
    pub fn to_forget(&self) -> Vec<String> {
        self.mine()
            .map(|applied| applied.forget.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Notes that this instance was replaced by a fresh one, which holds nothing.
    pub fn restart(&mut self) {
        *self.applied() = Applied::default();
    }

    /// What this instance still has to do: the opens since it last synced (see
    /// [`Mine::synced`]) that it has not applied, so an instance in sync plans in
    /// time independent of how many sessions are open.
    pub fn plan(&mut self) -> Plan {
        let Desired {
            revision,
            cache,
            sessions,
            by_revision,
            followers,
            ..
        } = &mut *self.desired;
        let applied = followers.entry(self.id).or_default();
        let cache = cache.filter(|(revision, _)| *revision != applied.cache);
        let open = by_revision
            .range(applied.synced + 1..)
            .filter_map(|(_, key)| {
                let (revision, client, grant) = sessions.get(key)?;
                (applied.sessions.get(key) != Some(revision))
                    .then(|| (key.clone(), *revision, client.clone(), grant.clone()))
            })
            .collect();
        Plan {
            forget: applied.forget.iter().cloned().collect(),
            cache,
            open,
            revision: *revision,
        }
    }

    /// Notes that this instance carried out every item of the plan made at `revision`
    /// (or gave up on it for good): later plans start after it.
    pub fn synced(&mut self, revision: u64) {
        let applied = self.applied();
        applied.synced = applied.synced.max(revision);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gateway_auth_api::{ClientAuth, TrustSpec};

    fn client() -> Client {
        Client::new("gw", ClientAuth::None, TrustSpec::default())
    }

    /// Entries the record keeps: open sessions, and per follower the sessions it holds
    /// and the forgets it is owed.
    fn entries(shared: &SharedDesired) -> usize {
        let desired = shared.lock();
        desired.sessions.len()
            + desired
                .followers
                .values()
                .map(|a| a.sessions.len() + a.forget.len())
                .sum::<usize>()
    }

    /// What `Plugin::sync` does when every call succeeds.
    fn sync(follower: &Following) -> Plan {
        let plan = follower.lock().plan();
        for key in &plan.forget {
            follower.lock().forgotten(key);
        }
        if let Some((revision, _)) = plan.cache {
            follower.lock().cache_applied(revision);
        }
        for (key, revision, ..) in &plan.open {
            follower.lock().opened(key, *revision);
        }
        follower.lock().synced(plan.revision);
        plan
    }

    fn open(follower: &Following, key: &str) {
        follower
            .lock()
            .open(key, &client(), &SessionGrant::ClientCredentials);
    }

    #[test]
    fn an_instance_in_sync_plans_only_what_changed_and_keeps_a_failed_reopen_planned() {
        let shared = SharedDesired::default();
        let (a, b) = (shared.follow(), shared.follow());
        for i in 0..1_000 {
            open(&a, &format!("user-{i}"));
        }
        assert_eq!(sync(&b).open.len(), 1_000);
        assert!(sync(&b).open.is_empty());
        open(&a, "late");
        // b's reopen of "late" fails: nothing is marked, so it stays planned.
        let plan = b.lock().plan();
        let keys: Vec<&str> = plan.open.iter().map(|(k, ..)| k.as_str()).collect();
        assert_eq!(keys, ["late"]);
        assert_eq!(b.lock().plan().open.len(), 1, "still owed");
        assert_eq!(sync(&b).open.len(), 1);
        assert!(sync(&b).open.is_empty());
        // Opened again through a (a new revision): b reopens it.
        open(&a, "user-7");
        let again: Vec<String> = sync(&b).open.into_iter().map(|(k, ..)| k).collect();
        assert_eq!(again, ["user-7"]);
        // A fresh instance, or one restarted after a trap, replays everything.
        b.lock().restart();
        assert_eq!(sync(&b).open.len(), 1_001);
        assert_eq!(sync(&shared.follow()).open.len(), 1_001);
    }

    #[test]
    fn closing_ten_thousand_sessions_after_every_instance_synced_keeps_the_record_bounded() {
        let shared = SharedDesired::default();
        let (a, b) = (shared.follow(), shared.follow());
        for i in 0..10_000 {
            let key = format!("user-{i}");
            open(&a, &key);
            assert_eq!(sync(&b).open.len(), 1, "b opens {key}");
            a.lock().close(&key);
            assert_eq!(
                sync(&b).forget,
                std::slice::from_ref(&key),
                "b forgets {key}"
            );
        }
        assert_eq!(entries(&shared), 0);
    }

    #[test]
    fn an_instance_holding_none_of_the_closed_sessions_keeps_nothing_alive() {
        // The upstream streams' instance, or a pooled one never handed out again.
        let shared = SharedDesired::default();
        let (a, _idle) = (shared.follow(), shared.follow());
        for i in 0..10_000 {
            let key = format!("user-{i}");
            open(&a, &key);
            a.lock().close(&key);
        }
        assert_eq!(entries(&shared), 0);
    }

    #[test]
    fn a_lagging_instance_still_forgets_a_session_closed_while_it_lagged() {
        let shared = SharedDesired::default();
        let (a, lagging) = (shared.follow(), shared.follow());
        open(&a, "gw");
        sync(&lagging);
        a.lock().close("gw");
        for i in 0..10_000 {
            let key = format!("user-{i}");
            open(&a, &key);
            a.lock().close(&key);
        }
        assert_eq!(entries(&shared), 1, "only the lagging instance's forget");
        assert!(lagging.lock().must_forget("gw"));
        assert_eq!(sync(&lagging).forget, ["gw"]);
        assert_eq!(entries(&shared), 0);
    }

    #[test]
    fn a_session_closed_and_opened_again_is_forgotten_before_it_is_reopened() {
        let shared = SharedDesired::default();
        let (a, b) = (shared.follow(), shared.follow());
        open(&a, "gw");
        sync(&b);
        a.lock().close("gw");
        open(&a, "gw");
        let plan = sync(&b);
        assert_eq!(plan.forget, ["gw"], "the old session's memory goes first");
        assert_eq!(plan.open.len(), 1, "then the new one is opened");
        assert!(sync(&b).forget.is_empty() && sync(&b).open.is_empty());
    }

    #[test]
    fn a_session_closed_while_an_instance_was_opening_it_is_forgotten_there() {
        let shared = SharedDesired::default();
        let (a, b) = (shared.follow(), shared.follow());
        open(&a, "gw");
        let plan = b.lock().plan();
        // The close lands between b's plan and the end of its open.
        a.lock().close("gw");
        for (key, revision, ..) in &plan.open {
            b.lock().opened(key, *revision);
        }
        assert_eq!(sync(&b).forget, ["gw"]);
    }

    #[test]
    fn a_dropped_instance_leaves_nothing_behind() {
        let shared = SharedDesired::default();
        let (a, b) = (shared.follow(), shared.follow());
        open(&a, "gw");
        sync(&b);
        a.lock().close("gw");
        assert_eq!(entries(&shared), 1);
        drop(b);
        assert_eq!(entries(&shared), 0);
        assert_eq!(shared.lock().followers.len(), 1);
    }

    #[test]
    fn a_replaced_instance_is_still_told_of_later_closes() {
        let shared = SharedDesired::default();
        let (a, b) = (shared.follow(), shared.follow());
        open(&a, "gw");
        sync(&b);
        b.lock().restart();
        assert_eq!(sync(&b).open.len(), 1, "the replacement reopens gw");
        a.lock().close("gw");
        assert_eq!(sync(&b).forget, ["gw"]);
    }
}
