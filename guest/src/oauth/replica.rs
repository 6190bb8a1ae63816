//! A session as this instance holds it, kept in step with the host's store and so with
//! every other instance (or gateway replica) that shares the store.
//!
//! The flows in [`engine`](super::engine) find a session through [`Sessions::get`],
//! adopt what others stored with [`Session::reload`] and record every change with
//! [`Session::commit`], which writes by compare-and-swap. Store failures are not
//! fatal: the session goes on in memory, and the next write tries the store again; a
//! change not yet stored is not replaced by an older stored record.
//!
//! Renewals (and code redemptions, device polls) are single-owner: the instance first
//! takes the record's lease with [`Session::try_lease`], a compare-and-swap that fails
//! while another holder's lease is live, and gives it back in its last write
//! ([`Session::finish`]). Without the store there is no lease, and so no renewal.
//!
//! A renewal's result (a rotated refresh token above all) must reach the store before
//! the lease lapses, or another instance renews from the record with the spent token:
//! a holder's write that the store refuses is tried again within the lease, the lease
//! is not given back while the result is unsaved, and [`Session::save`] stores it
//! before anything else at the instance's next call.

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use gateway_auth_api::{Client, OAuthError, SessionGrant, Token};

use super::engine::{CALL_OVERRUN_MS, LEASE_MARGIN_MS};
use super::retry::Deadline;
use super::session::{self, Event, GrantKind, HeldToken, Lease, SessionRecord};
use crate::platform::Platform;

/// Compare-and-swap rounds before a write gives up and keeps the change in memory only.
const CAS_ATTEMPTS: usize = 4;
/// The first pause before a lease holder writes again to a store that failed; it
/// doubles per try.
const STORE_RETRY_MS: u64 = 50;
/// How long before its lease lapses a holder stops trying to store its result: the
/// write must land while no other instance can take the lease, and within the call's
/// overrun (the lease lapses its margin after the deadline).
const STORE_RETRY_MARGIN_MS: u64 = LEASE_MARGIN_MS - CALL_OVERRUN_MS;

/// What a write does when another instance wrote first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnConflict {
    /// Apply this change again on top of the store's record, so neither side's change
    /// is lost.
    Reapply,
    /// This change is a renewal: if the store already holds a token fresh now, another
    /// instance renewed, and its record (with its rotated refresh token) is adopted as
    /// is; otherwise as [`OnConflict::Reapply`].
    AdoptFreshToken,
}

/// The sessions open in this instance, by key, and the clients they share.
#[derive(Debug, Default)]
pub struct Sessions {
    open: HashMap<String, Session>,
    clients: SharedClients,
}

/// One copy of each distinct client configuration, shared by the sessions opened with
/// it: ten thousand sessions of one client hold its CA bundle and endpoints once.
/// Looked up by the client id and token endpoint, then compared whole.
#[derive(Debug, Default)]
struct SharedClients(HashMap<(String, Option<String>), Vec<Weak<Client>>>);

impl SharedClients {
    fn share(&mut self, client: Client) -> Arc<Client> {
        let bucket = self
            .0
            .entry((client.client_id.clone(), client.token_endpoint.clone()))
            .or_default();
        bucket.retain(|held| held.strong_count() > 0);
        if let Some(held) = bucket
            .iter()
            .filter_map(Weak::upgrade)
            .find(|held| **held == client)
        {
            return held;
        }
        let shared = Arc::new(client);
        bucket.push(Arc::downgrade(&shared));
        shared
    }
}

impl Sessions {
    /// The session under `key`, or the error that tells the caller to open it.
    pub fn get(&mut self, key: &str) -> Result<&mut Session, OAuthError> {
        self.open.get_mut(key).ok_or_else(|| {
            OAuthError::Config(format!(
                "no session {key:?} is open in this instance: call open_session first"
            ))
        })
    }

    /// The session under `key`, if one is open here.
    pub fn find(&mut self, key: &str) -> Option<&mut Session> {
        self.open.get_mut(key)
    }

    /// Opens `session`, replacing any under the same key.
    pub fn insert(&mut self, session: Session) {
        self.open.insert(session.key.clone(), session);
    }

    /// The sessions open here, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &Session> {
        self.open.values()
    }

    /// Forgets the session under `key` here, returning it.
    pub fn remove(&mut self, key: &str) -> Option<Session> {
        self.open.remove(key)
    }

    /// The copy of `client` the open sessions share, or a new one.
    pub fn share(&mut self, client: Client) -> Arc<Client> {
        self.clients.share(client)
    }
}

/// One session: the client's configuration and secrets (never stored), and the record
/// the store shares.
pub struct Session {
    /// The store key.
    pub key: String,
    /// The client, with its secrets (shared with the other sessions of the same
    /// configuration).
    pub client: Arc<Client>,
    /// The grant it was opened with.
    pub grant: SessionGrant,
    /// See [`session::client_fingerprint`].
    pub fingerprint: String,
    /// The state, as last read or written.
    pub record: SessionRecord,
    /// The bytes last read from or written to the store under the key: the expected
    /// value of the next compare-and-swap.
    stored: Option<Vec<u8>>,
    /// Whether `record` holds a change the store has not taken yet.
    unsaved: bool,
    /// The holder id this session took the lease as, until it gives it back.
    holding: Option<String>,
}

impl core::fmt::Debug for Session {
    /// The stored bytes hold tokens in clear JSON: only their length is shown.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Session")
            .field("key", &self.key)
            .field("client", &self.client)
            .field("grant", &self.grant)
            .field("fingerprint", &self.fingerprint)
            .field("record", &self.record)
            .field("stored_len", &self.stored.as_ref().map(Vec::len))
            .field("unsaved", &self.unsaved)
            .field("holding", &self.holding)
            .finish()
    }
}

impl Session {
    /// A session over `record`, which the store holds as `stored`.
    pub fn new(
        key: &str,
        client: Arc<Client>,
        grant: SessionGrant,
        fingerprint: String,
        record: SessionRecord,
        stored: Option<Vec<u8>>,
    ) -> Self {
        Self {
            key: key.to_string(),
            client,
            grant,
            fingerprint,
            record,
            stored,
            unsaved: false,
            holding: None,
        }
    }

    /// The kind of the session's grant.
    pub fn kind(&self) -> GrantKind {
        self.record.grant
    }

    /// The held token if it is not yet due for renewal at `now`.
    pub fn fresh(&self, now: u64) -> Option<Token> {
        self.record
            .fresh_token(now, self.client.refresh_skew())
            .map(HeldToken::to_token)
    }

    /// The held token if it has not expired at `now`.
    pub fn alive(&self, now: u64) -> Option<Token> {
        self.record.alive_token(now).map(HeldToken::to_token)
    }

    /// Refuses `call` unless the session was opened with a `kind` grant.
    pub fn require(&self, kind: GrantKind, call: &str) -> Result<(), OAuthError> {
        if self.kind() == kind {
            Ok(())
        } else {
            Err(OAuthError::Config(format!(
                "session {:?} was opened with the {} grant; {call} needs {}",
                self.key,
                self.kind().name(),
                kind.name()
            )))
        }
    }

    /// The deadline of a call starting now.
    pub fn deadline(&self, p: &dyn Platform) -> Deadline {
        Deadline::start(p.now_ms(), self.client.timeout())
    }

    /// Adopts the store's record if another instance changed it since this one last
    /// looked (and it belongs to the same client configuration).
    pub fn reload(&mut self, p: &mut dyn Platform) {
        if let Ok(current) = p.store_get(&self.key) {
            self.adopt(current);
        }
    }

    /// Takes in what the store holds now. A change this instance could not store yet
    /// (a rotated refresh token, say) is kept unless the stored record's token outlasts
    /// its own (another instance renewed since): the next write stores it.
    fn adopt(&mut self, current: Option<Vec<u8>>) {
        if current == self.stored {
            return;
        }
        match self.ours(current.as_deref()) {
            Some(theirs) if self.unsaved && !outlasts(&theirs, &self.record) => {}
            Some(theirs) => {
                self.record = theirs;
                self.unsaved = false;
            }
            None => {}
        }
        self.stored = current;
    }

    /// Takes the lease for `holder` until `until_ms`, adopting the store's record first:
    /// `Ok(None)` when taken (or already held by `holder`), `Ok(Some(lease))` when
    /// another holder's lease is live, `Err` when the store cannot be read or written.
    pub fn try_lease(
        &mut self,
        p: &mut dyn Platform,
        holder: &str,
        until_ms: u64,
    ) -> Result<Option<Lease>, String> {
        for attempt in 0..CAS_ATTEMPTS {
            // The first try swaps over what this instance last read (callers have just
            // reloaded): a stale view only fails the swap. A lease seen held by another
            // is looked at afresh, as it may have been given back.
            if attempt > 0 || self.record.leased_to_another(holder, p.now_ms()).is_some() {
                let current = p.store_get(&self.key)?;
                self.adopt(current);
            }
            let now_ms = p.now_ms();
            if let Some(other) = self.record.leased_to_another(holder, now_ms) {
                return Ok(Some(other.clone()));
            }
            let lease = Lease {
                holder: holder.to_string(),
                until_ms,
            };
            let record = session::next(
                self.record.clone(),
                &Event::LeaseTaken(lease),
                now_ms / 1000,
            );
            let bytes = record.to_bytes();
            if p.store_compare_and_swap(&self.key, self.stored.as_deref(), Some(&bytes))? {
                self.record = record;
                self.stored = Some(bytes);
                self.unsaved = false;
                self.holding = Some(holder.to_string());
                return Ok(None);
            }
        }
        Err("the stored record kept changing under the lease".into())
    }

    /// Whether this session holds the lease it took.
    pub fn holding(&self) -> bool {
        self.holding.is_some()
    }

    /// Whether `record` holds a change the store has not taken.
    pub fn unsaved(&self) -> bool {
        self.unsaved
    }

    /// [`Session::commit`] of `events` and, if this session holds the lease, its
    /// release, in one write. A lease whose write the store did not take is kept: the
    /// release goes with the next write that lands.
    pub fn finish(&mut self, p: &mut dyn Platform, events: &[Event], on_conflict: OnConflict) {
        let mut events = events.to_vec();
        if let Some(holder) = &self.holding {
            events.push(Event::LeaseReleased {
                holder: holder.clone(),
            });
        }
        if !events.is_empty() {
            self.commit(p, &events, on_conflict);
        }
        if !self.unsaved {
            self.holding = None;
        }
    }

    /// Stores the change the store has not taken yet (giving back the lease with it),
    /// unless another instance stored a token that outlasts it meanwhile, which is then
    /// adopted. Returns whether the store holds this instance's view now.
    pub fn save(&mut self, p: &mut dyn Platform) -> bool {
        if !self.unsaved {
            return true;
        }
        if let Some(holder) = &self.holding {
            let release = Event::LeaseReleased {
                holder: holder.clone(),
            };
            self.record = session::next(self.record.clone(), &release, p.now_secs());
        }
        for _ in 0..CAS_ATTEMPTS {
            let bytes = self.record.to_bytes();
            match p.store_compare_and_swap(&self.key, self.stored.as_deref(), Some(&bytes)) {
                Ok(true) => {
                    self.stored = Some(bytes);
                    self.unsaved = false;
                    self.holding = None;
                    return true;
                }
                Ok(false) => match p.store_get(&self.key) {
                    // Keeps this record unless the store's token outlasts it.
                    Ok(current) => {
                        self.adopt(current);
                        if !self.unsaved {
                            self.holding = None;
                            return true;
                        }
                    }
                    Err(_) => return false,
                },
                Err(_) => return false,
            }
        }
        false
    }

    /// Applies `events` to the session and writes the result by compare-and-swap; see
    /// [`OnConflict`] for what happens when another instance wrote first. While this
    /// session holds the lease, a store failure is tried again, pausing, until shortly
    /// before the lease lapses.
    pub fn commit(&mut self, p: &mut dyn Platform, events: &[Event], on_conflict: OnConflict) {
        let now = p.now_secs();
        let apply = |base: SessionRecord| {
            events
                .iter()
                .fold(base, |record, event| session::next(record, event, now))
        };
        // A lease given back is given back whatever else happened meanwhile.
        let releases: Vec<Event> = events
            .iter()
            .filter(|e| matches!(e, Event::LeaseReleased { .. }))
            .cloned()
            .collect();
        let mut record = apply(self.record.clone());
        self.unsaved = true;
        let lease_end = match (&self.holding, &self.record.lease) {
            (Some(holder), Some(lease)) if &lease.holder == holder => lease.until_ms,
            _ => 0,
        };
        let mut pause = STORE_RETRY_MS;
        let mut attempts = 0;
        while attempts < CAS_ATTEMPTS {
            attempts += 1;
            let bytes = record.to_bytes();
            let written = p.store_compare_and_swap(&self.key, self.stored.as_deref(), Some(&bytes));
            let current = match written {
                Ok(true) => {
                    self.stored = Some(bytes);
                    self.unsaved = false;
                    break;
                }
                Ok(false) => p.store_get(&self.key),
                Err(e) => Err(e),
            };
            let current = match current {
                Ok(current) => current,
                // The lease keeps others off until it lapses: try again while it does.
                Err(_) if p.now_ms() + pause + STORE_RETRY_MARGIN_MS < lease_end => {
                    p.sleep_ms(pause);
                    pause *= 2;
                    attempts -= 1;
                    continue;
                }
                Err(_) => break,
            };
            let theirs = self.ours(current.as_deref());
            self.stored = current;
            match theirs {
                Some(theirs)
                    if on_conflict == OnConflict::AdoptFreshToken
                        && theirs
                            .fresh_token(now, self.client.refresh_skew())
                            .is_some() =>
                {
                    if releases.is_empty() {
                        self.record = theirs;
                        self.unsaved = false;
                        return;
                    }
                    record = releases
                        .iter()
                        .fold(theirs, |r, event| session::next(r, event, now));
                }
                Some(theirs) => record = apply(theirs),
                // Gone, or another configuration's: this session's record replaces it.
                None => {}
            }
        }
        self.record = record;
    }

    /// Starts over with an empty record, here and in the store.
    pub fn reset(&mut self, p: &mut dyn Platform) {
        self.record = SessionRecord::new(self.fingerprint.as_str(), self.kind());
        self.stored = None;
        self.unsaved = false;
        self.holding = None;
        delete_stored(p, &self.key);
    }

    /// The record in `bytes`, if it is readable and this client configuration's.
    fn ours(&self, bytes: Option<&[u8]>) -> Option<SessionRecord> {
        bytes
            .and_then(SessionRecord::from_bytes)
            .filter(|r| r.client_fingerprint == self.fingerprint)
    }
}

/// Whether `theirs` holds a token that expires after `ours`'s (or `ours` has none).
fn outlasts(theirs: &SessionRecord, ours: &SessionRecord) -> bool {
    let expiry = |r: &SessionRecord| r.token.as_ref().map(|t| t.expires_at.unwrap_or(u64::MAX));
    match (expiry(theirs), expiry(ours)) {
        (Some(t), Some(o)) => t > o,
        (Some(_), None) => true,
        (None, _) => false,
    }
}

/// Deletes the store's record under `key`, whatever its content.
pub fn delete_stored(p: &mut dyn Platform, key: &str) {
    for _ in 0..CAS_ATTEMPTS {
        let Ok(Some(current)) = p.store_get(key) else {
            return;
        };
        match p.store_compare_and_swap(key, Some(&current), None) {
            Ok(false) => continue,
            Ok(true) | Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gateway_auth_api::{ClientAuth, ClientSecret, TrustSpec};

    fn client(secret: &str) -> Client {
        let mut client = Client::new(
            "gw",
            ClientAuth::ClientSecretBasic(ClientSecret::new(secret)),
            TrustSpec::ca("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
        );
        client.token_endpoint = Some("https://as.example/token".into());
        client
    }

    #[test]
    fn sessions_of_one_client_configuration_share_one_copy_of_it_and_others_do_not() {
        let mut sessions = Sessions::default();
        let first = sessions.share(client("s1"));
        let second = sessions.share(client("s1"));
        assert!(Arc::ptr_eq(&first, &second));
        let rotated = sessions.share(client("s2"));
        assert!(
            !Arc::ptr_eq(&first, &rotated),
            "another secret is another client"
        );
        assert_eq!(rotated.auth, client("s2").auth);
        // Once no session holds it, a new copy is made and the old one is gone.
        drop((first, second));
        let again = sessions.share(client("s1"));
        assert_eq!(Arc::strong_count(&again), 1);
        assert_eq!(*again, client("s1"));
    }
}
