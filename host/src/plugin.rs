//! One plugin instance: the exports as typed methods, under a deadline, with recovery.
//!
//! Each [`Plugin`] is one instance with its own `Store` (one per gateway worker):
//! memory-limited, and interrupted when a call runs past its deadline. A call that
//! traps replaces the instance with a fresh one, which gets the cache settings and the
//! open sessions back from the [desired state](crate::desired), so the host keeps
//! serving. A call replaces the instance at most once: an item whose replay traps the
//! replacement too (a stored record larger than the instance's memory, say) is reported
//! and left out of later replays, and the next call starts from a fresh instance.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use gateway_auth_api::{
    AccessToken, Authorization, AuthorizationCode, CacheSettings, CacheStats, Client,
    DeviceAuthorization, Grant, OAuthError, PluginMetrics, Profile, Registration,
    RegistrationRequest, ResourceAuthorization, SessionGrant, SessionState, TlsInfo, TlsOutput,
    Token, TrustSpec,
};
use wasmtime::{Store, Trap};

use crate::desired::{Following, SharedDesired};
use crate::error::Error;
use crate::metrics::{Totals, metrics_text};
use crate::runtime::{PluginOptions, Runtime, ticks};
use crate::state::HostState;
use crate::transport::TransportStats;
use crate::wit::Exports;

/// One plugin instance. Not shareable across threads at once: give each worker its own,
/// or use a [`PluginPool`](crate::PluginPool).
pub struct Plugin {
    /// Counts instance replacements: a TLS session of an earlier instance is gone.
    generation: u64,
    runtime: Runtime,
    options: Arc<PluginOptions>,
    store: Store<HostState>,
    exports: Exports,
    /// Its registration with the desired state it follows (kept across replacement).
    following: Following,
    /// Set while a replacement is being brought up to the desired state: a trap then
    /// must not replace it again (that would recurse).
    restoring: bool,
    /// The instance trapped while being restored and cannot be entered again: the next
    /// call replaces it first.
    broken: bool,
    /// Revisions of desired items whose replay trapped a replacement: not replayed
    /// again into this plugin's instances (opening the session again makes a new one).
    unreplayable: BTreeSet<u64>,
    /// What the instances counted, kept across replacement.
    metrics: Totals,
}

impl Runtime {
    /// A new plugin instance.
    pub fn plugin(&self, options: PluginOptions) -> Result<Plugin, Error> {
        self.plugin_following(options, SharedDesired::default())
    }

    /// A new plugin instance that follows `desired` (shared by a pool's instances).
    pub(crate) fn plugin_following(
        &self,
        options: PluginOptions,
        desired: SharedDesired,
    ) -> Result<Plugin, Error> {
        let options = Arc::new(options);
        let (store, exports) = self.instantiate(&options)?;
        Ok(Plugin {
            generation: 0,
            runtime: self.clone(),
            options,
            store,
            exports,
            following: desired.follow(),
            restoring: false,
            broken: false,
            unreplayable: BTreeSet::new(),
            metrics: Totals::default(),
        })
    }
}

/// Makes more instances like one plugin: its runtime and options, following its desired
/// state (as a pool's instances do).
#[derive(Clone)]
pub(crate) struct Sibling {
    runtime: Runtime,
    options: Arc<PluginOptions>,
    desired: SharedDesired,
}

impl Sibling {
    /// A new instance.
    pub(crate) fn instance(&self) -> Result<Plugin, Error> {
        self.runtime
            .plugin_following((*self.options).clone(), self.desired.clone())
    }
}

/// A TLS session inside one instance; move its bytes with [`Plugin::tls_advance`] and
/// free it with [`Plugin::tls_close`] or [`Plugin::tls_drop`].
#[derive(Debug)]
pub struct TlsSession {
    resource: wasmtime::component::ResourceAny,
    generation: u64,
}

/// A call's own answer, or the plugin's refusal as an [`Error`].
type Answer<T> = Result<T, Error>;

/// How long a renewal lease outlives its holder's call deadline (the component's
/// `LEASE_MARGIN_MS`). A call the host interrupts before its client's deadline plus
/// this margin could lose a rotated refresh token while its lease still stands.
const LEASE_MARGIN: Duration = Duration::from_secs(2);

/// Refuses `client` when its deadline plus [`LEASE_MARGIN`] is not below
/// `call_timeout`, naming both and what to change.
fn fits_call_timeout(client: &Client, call_timeout: Duration) -> Answer<()> {
    let client_ms = u128::from(client.timeout());
    let margin_ms = LEASE_MARGIN.as_millis();
    let call_ms = call_timeout.as_millis();
    if client_ms + margin_ms < call_ms {
        return Ok(());
    }
    let lower = if call_ms > margin_ms {
        format!(
            "lower the client's timeout_ms below {} ms or ",
            call_ms - margin_ms
        )
    } else {
        String::new()
    };
    Err(Error::OAuth(OAuthError::Config(format!(
        "the client's timeout_ms ({client_ms} ms) plus the {margin_ms} ms lease margin must be \
         below the plugin's call timeout ({call_ms} ms): {lower}raise \
         PluginOptions::call_timeout above {} ms",
        client_ms + margin_ms
    ))))
}

impl Plugin {
    /// The options this plugin runs with.
    pub fn options(&self) -> &PluginOptions {
        &self.options
    }

    /// Changes the deadline for later calls. Refused, with the deadline left as it was,
    /// when a session open in the desired state this plugin follows (its own, or its
    /// pool's) has a client whose deadline plus the lease margin is not below
    /// `timeout` (see [`Plugin::open_session`]): close that session first, or lower
    /// its client's `timeout_ms`.
    pub fn set_call_timeout(&mut self, timeout: Duration) -> Answer<()> {
        if let Some(client) = self.following.lock().slowest_client() {
            fits_call_timeout(client, timeout)?;
        }
        Arc::make_mut(&mut self.options).call_timeout = timeout;
        Ok(())
    }

    // ---- tls-cache ----

    /// Sets the cache's capacity and TTL (kept across instance replacement).
    pub fn configure(&mut self, settings: CacheSettings) -> Answer<()> {
        self.call(|e, s| e.configure(s, settings))?;
        self.following.lock().set_cache(settings);
        Ok(())
    }

    /// The configuration for `spec`, from the cache or built.
    pub fn prepare(&mut self, spec: &TrustSpec) -> Answer<Profile> {
        self.call(|e, s| e.prepare(s, spec))?.map_err(Error::from)
    }

    /// The profile prepared under `id`, from the cache (a hit, as `prepare` of its spec
    /// would be), without sending the material again. `TlsError::UnknownProfile` (as
    /// [`Error::Tls`]) once it was evicted or expired: prepare the spec again.
    pub fn lookup(&mut self, id: &str) -> Answer<Profile> {
        self.call(|e, s| e.lookup(s, id))?.map_err(Error::from)
    }

    /// Drops the entry with this profile id; whether there was one.
    pub fn invalidate(&mut self, id: &str) -> Answer<bool> {
        self.call(|e, s| e.invalidate(s, id))
    }

    /// Drops every entry, as a certificate reload should.
    pub fn clear(&mut self) -> Answer<()> {
        self.call(|e, s| e.clear(s))
    }

    /// The cache's counters.
    pub fn stats(&mut self) -> Answer<CacheStats> {
        self.call(|e, s| e.stats(s))
    }

    /// What the plugin counted: cache figures, upstream handshakes, token requests,
    /// sessions by phase, profiles' expiry. Counters never go down: those of an
    /// instance a trap replaced are carried over as they were last read here.
    pub fn metrics(&mut self) -> Answer<PluginMetrics> {
        let fresh = self.call(|e, s| e.metrics(s))?;
        Ok(self.metrics.observe(fresh))
    }

    /// [`Plugin::metrics`] as Prometheus text exposition (see [`metrics_text`]).
    pub fn metrics_text(&mut self) -> Answer<String> {
        self.metrics().map(|m| metrics_text(&m))
    }

    /// Which plugin these are, process-wide: a pool keeps its instances' last figures
    /// by it.
    pub(crate) fn metrics_id(&self) -> u64 {
        self.metrics.id()
    }

    /// What this instance's connections have moved since it started (a replaced
    /// instance starts from zero).
    pub fn transport_stats(&self) -> TransportStats {
        self.store.data().traffic
    }

    // ---- oauth ----

    /// Requests one token, keeping no state. A client whose deadline (`timeout_ms`)
    /// plus the 2 s lease margin is not below the plugin's call timeout is refused as
    /// `OAuthError::Config`, with nothing sent.
    pub fn request_token(&mut self, client: &Client, grant: Grant) -> Answer<Token> {
        fits_call_timeout(client, self.options.call_timeout)?;
        self.call(|e, s| e.request_token(s, client, grant))?
            .map_err(Error::from)
    }

    /// Opens (or replaces) session `key`; tokens already stored for the same client are
    /// kept. The session is reopened in a replacement instance after a trap.
    ///
    /// A client whose deadline (`timeout_ms`) plus the 2 s lease margin is not below
    /// the plugin's call timeout is refused as `OAuthError::Config`, before anything is
    /// sent: the plugin would interrupt such a call mid-renewal, losing a rotated
    /// refresh token while its lease still stands.
    pub fn open_session(&mut self, key: &str, client: &Client, grant: &SessionGrant) -> Answer<()> {
        fits_call_timeout(client, self.options.call_timeout)?;
        // The open would otherwise continue from a closed session's memory.
        self.forget_if_closed(key)?;
        self.call(|e, s| e.open_session(s, key, client, grant))??;
        self.following.lock().open(key, client, grant);
        Ok(())
    }

    /// The session's access token, refreshed or re-acquired when due.
    pub fn access_token(&mut self, key: &str) -> Answer<Token> {
        self.catch_up(key)?;
        self.call(|e, s| e.access_token(s, key))?
            .map_err(Error::from)
    }

    /// A token other than `rejected`, an access token of the session that an upstream
    /// refused although it looked valid (a 401 with `invalid_token`): while the session
    /// holds it, it is dropped (in the store too) and the session renews under the
    /// lease; a token another caller or replica obtained meanwhile is returned.
    pub fn renew_token(&mut self, key: &str, rejected: &AccessToken) -> Answer<Token> {
        self.catch_up(key)?;
        self.call(|e, s| e.renew_token(s, key, rejected.secret()))?
            .map_err(Error::from)
    }

    /// How to authorize for the protected resource at `resource_url` (RFC 9728), from
    /// the `WWW-Authenticate` field lines of its 401 or 403 (none: its well-known
    /// metadata) and then its authorization server's metadata, which must offer PKCE
    /// `S256`. `trust` is the TLS trust of both servers.
    pub fn discover_resource(
        &mut self,
        resource_url: &str,
        www_authenticate: &[String],
        trust: &TrustSpec,
    ) -> Answer<ResourceAuthorization> {
        self.call(|e, s| e.discover_resource(s, resource_url, www_authenticate, trust))?
            .map_err(Error::from)
    }

    /// Registers a client dynamically (RFC 7591), once per issuer and redirect URIs for
    /// every replica sharing the store (see the WIT `register-client`).
    pub fn register_client(&mut self, request: &RegistrationRequest) -> Answer<Registration> {
        self.call(|e, s| e.register_client(s, request))?
            .map_err(Error::from)
    }

    /// A DPoP proof (RFC 9449) for the gateway's `method` request to `url` with session
    /// `key`'s access token, signed with the session's key; `nonce` is the resource
    /// server's `DPoP-Nonce` when it asked for one. Send it as the `DPoP` header, with
    /// `Authorization: DPoP <token>`.
    pub fn dpop_proof(
        &mut self,
        key: &str,
        method: &str,
        url: &str,
        nonce: Option<&str>,
    ) -> Answer<String> {
        self.catch_up(key)?;
        self.call(|e, s| e.dpop_proof(s, key, method, url, nonce))?
            .map_err(Error::from)
    }

    /// Starts a new authorization of session `key` for its scopes and those of a
    /// resource's 403 `insufficient_scope` challenge (its `WWW-Authenticate` field
    /// lines); the session serves its current token until the authorization completes.
    pub fn begin_step_up(
        &mut self,
        key: &str,
        www_authenticate: &[String],
    ) -> Answer<Authorization> {
        self.catch_up(key)?;
        self.call(|e, s| e.begin_step_up(s, key, www_authenticate))?
            .map_err(Error::from)
    }

    /// Starts the code flow.
    pub fn begin_authorization(&mut self, key: &str) -> Answer<Authorization> {
        self.catch_up(key)?;
        self.call(|e, s| e.begin_authorization(s, key))?
            .map_err(Error::from)
    }

    /// Completes the code flow with the redirect's `state`, `code` and, when the
    /// server sent one, `iss` (RFC 9207: checked against the client's issuer). The
    /// code is taken by value: it may be redeemed once.
    pub fn complete_authorization(
        &mut self,
        key: &str,
        state: &str,
        code: AuthorizationCode,
        iss: Option<&str>,
    ) -> Answer<Token> {
        self.catch_up(key)?;
        self.call(|e, s| e.complete_authorization(s, key, state, code, iss))?
            .map_err(Error::from)
    }

    /// Starts a device authorization.
    pub fn begin_device_authorization(&mut self, key: &str) -> Answer<DeviceAuthorization> {
        self.catch_up(key)?;
        self.call(|e, s| e.begin_device_authorization(s, key))?
            .map_err(Error::from)
    }

    /// Polls the device authorization once; `None` while the user has not finished.
    pub fn poll_device_authorization(&mut self, key: &str) -> Answer<Option<Token>> {
        self.catch_up(key)?;
        self.call(|e, s| e.poll_device_authorization(s, key))?
            .map_err(Error::from)
    }

    /// The session's state, if there is a session under `key`.
    pub fn session_status(&mut self, key: &str) -> Answer<Option<SessionState>> {
        self.catch_up(key)?;
        self.call(|e, s| e.session_status(s, key))
    }

    /// Revokes the session's tokens and forgets them.
    pub fn revoke(&mut self, key: &str) -> Answer<()> {
        self.catch_up(key)?;
        self.call(|e, s| e.revoke(s, key))?.map_err(Error::from)
    }

    /// Forgets the session here and in the store. Other instances following the same
    /// desired state (a pool's) forget it before they are next used.
    pub fn close_session(&mut self, key: &str) -> Answer<()> {
        // Recorded first, so that a replacement after a trap does not reopen it.
        self.following.lock().close(key);
        self.call(|e, s| e.close_session(s, key))
    }

    /// How large the instance's linear memory has grown, in bytes (it never shrinks).
    pub fn memory_bytes(&self) -> usize {
        self.store.data().limits.memory_bytes
    }

    // ---- upstream TLS sessions (see `crate::upstream` for streams over sockets) ----

    /// A client TLS session for `server_name` with the configuration of profile
    /// `profile_id`, offering `alpn`. `TlsError::UnknownProfile` (as [`Error::Tls`])
    /// when the profile is not cached: prepare its spec again.
    pub fn tls_connect(
        &mut self,
        profile_id: &str,
        server_name: &str,
        alpn: &[String],
    ) -> Answer<TlsSession> {
        let resource = self.call(|e, s| e.connect(s, profile_id, server_name, alpn))??;
        Ok(TlsSession {
            resource,
            generation: self.generation,
        })
    }

    /// One I/O step of `session`: ciphertext read from the socket in, plaintext to
    /// send in; ciphertext to write and plaintext that arrived out.
    pub fn tls_advance(
        &mut self,
        session: &TlsSession,
        incoming: &[u8],
        plaintext: &[u8],
    ) -> Answer<TlsOutput> {
        let resource = self.live(session)?;
        Ok(self.call(|e, s| e.advance(s, resource, incoming, plaintext))??)
    }

    /// What `session` negotiated.
    pub fn tls_info(&mut self, session: &TlsSession) -> Answer<TlsInfo> {
        let resource = self.live(session)?;
        self.call(|e, s| e.tls_info(s, resource))
    }

    /// Ends `session`: the close_notify ciphertext to write before closing the socket.
    pub fn tls_close(&mut self, session: TlsSession) -> Answer<Vec<u8>> {
        let resource = self.live(&session)?;
        let closing = self.call(|e, s| e.close_session_tls(s, resource));
        self.tls_drop(session);
        closing
    }

    /// Frees `session` inside the instance (nothing to do if the instance was
    /// replaced since).
    pub fn tls_drop(&mut self, session: TlsSession) {
        if session.generation == self.generation
            && let Err(e) = session.resource.resource_drop(&mut self.store)
        {
            tracing::debug!("dropping a TLS session: {e:#}");
        }
    }

    /// The session's handle, if it belongs to this very instance.
    fn live(&self, session: &TlsSession) -> Answer<wasmtime::component::ResourceAny> {
        if session.generation == self.generation {
            Ok(session.resource)
        } else {
            Err(Error::InstanceReplaced)
        }
    }

    // ---- plumbing ----

    /// What makes more instances like this one.
    pub(crate) fn sibling(&self) -> Sibling {
        Sibling {
            runtime: self.runtime.clone(),
            options: self.options.clone(),
            desired: self.following.desired().clone(),
        }
    }

    /// Applies what changed in the desired state since this instance last looked,
    /// every item even if one fails (the first failure is returned). The plan is made
    /// under the lock; the calls run outside it.
    pub(crate) fn sync(&mut self) -> Answer<()> {
        let plan = self.following.lock().plan();
        let revision = plan.revision;
        for key in plan.forget {
            self.forget(&key)?;
        }
        if let Some((revision, settings)) = plan.cache
            && !self.unreplayable.contains(&revision)
        {
            self.call(|e, s| e.configure(s, settings))
                .map_err(|e| self.replay_failed(revision, "setting the cache", e))?;
            self.following.lock().cache_applied(revision);
        }
        let mut first_failure = Ok(());
        for (key, revision, client, grant) in plan.open {
            if self.unreplayable.contains(&revision) {
                continue;
            }
            // Opened through an instance with a longer call timeout than this one's.
            if let Err(err) = fits_call_timeout(&client, self.options.call_timeout) {
                tracing::warn!(session = %key, "session not reopened: {err}");
                first_failure = first_failure.and(Err(err));
                continue;
            }
            let opened = self
                .call(|e, s| e.open_session(s, &key, &client, &grant))
                .map_err(|e| {
                    self.replay_failed(revision, &format!("reopening session {key:?}"), e)
                })?;
            match opened {
                Ok(()) => self.following.lock().opened(&key, revision),
                Err(err) => {
                    tracing::warn!(session = %key, "session not reopened: {err}");
                    first_failure = first_failure.and(Err(Error::from(err)));
                }
            }
        }
        // A failed reopen is tried again at the next sync; otherwise later syncs start
        // after this plan.
        if first_failure.is_ok() {
            self.following.lock().synced(revision);
        }
        first_failure
    }

    /// Forgets the sessions closed (through another instance) since this one opened
    /// them.
    pub(crate) fn sync_closes(&mut self) -> Answer<()> {
        let forget = self.following.lock().to_forget();
        for key in forget {
            self.forget(&key)?;
        }
        Ok(())
    }

    /// Brings session `key` up to date in this instance before a call uses it: closed
    /// through another instance since this one opened it, it is forgotten here (a held
    /// instance would serve the closed session's token from memory, and a renewal
    /// would write its deleted record back), then opened again if it was opened again
    /// since. When nothing is owed (a cached token's path) this costs one look at the
    /// desired state and no store operation.
    fn catch_up(&mut self, key: &str) -> Answer<()> {
        if !self.forget_if_closed(key)? {
            return Ok(());
        }
        let Some((revision, client, grant)) = self.following.lock().unapplied(key) else {
            return Ok(());
        };
        fits_call_timeout(&client, self.options.call_timeout)?;
        self.call(|e, s| e.open_session(s, key, &client, &grant))??;
        self.following.lock().opened(key, revision);
        Ok(())
    }

    /// Forgets session `key` here if it was closed through another instance since this
    /// one opened it; whether it did.
    fn forget_if_closed(&mut self, key: &str) -> Answer<bool> {
        let owed = self.following.lock().must_forget(key);
        if owed {
            self.forget(key)?;
        }
        Ok(owed)
    }

    /// Forgets session `key` in this instance only. The close that was made deleted its
    /// record already, and the record may since belong to the session opened again, so
    /// the store is left alone.
    fn forget(&mut self, key: &str) -> Answer<()> {
        self.call(|e, s| e.forget_session(s, key))?;
        self.following.lock().forgotten(key);
        Ok(())
    }

    /// `error`, from replaying the desired item of `revision` (`what`): when it trapped
    /// a replacement that was being restored, the item is left out of later replays
    /// and the error says so.
    fn replay_failed(&mut self, revision: u64, what: &str, error: Error) -> Error {
        if !(self.restoring && self.broken) {
            return error;
        }
        self.unreplayable.insert(revision);
        Error::Trapped(format!(
            "{what} trapped the replacement instance too ({error}); it is left out until it is set again"
        ))
    }

    /// Runs one export call under the deadline; a trap replaces the instance, at most
    /// once per call.
    fn call<R>(
        &mut self,
        f: impl FnOnce(&Exports, &mut Store<HostState>) -> wasmtime::Result<R>,
    ) -> Answer<R> {
        if self.broken && !self.restoring {
            self.replace()?;
        }
        self.store
            .set_epoch_deadline(ticks(self.options.call_timeout));
        match f(&self.exports, &mut self.store) {
            Ok(value) => Ok(value),
            Err(err) => {
                let error = match err.downcast_ref::<Trap>() {
                    Some(Trap::Interrupt) => Error::DeadlineExceeded(self.options.call_timeout),
                    _ => Error::Trapped(format!("{err:#}")),
                };
                if self.restoring {
                    // The replacement being restored trapped: `replace` reports it.
                    self.broken = true;
                    return Err(error);
                }
                tracing::warn!("plugin instance replaced: {error}");
                match self.replace() {
                    Ok(()) => Err(error),
                    Err(again) => Err(Error::Trapped(format!("{error}; then {again}"))),
                }
            }
        }
    }

    /// A fresh instance in place of one that trapped, brought up to the desired state.
    /// Sessions' tokens are in the store, so reopening them sends no request. An error
    /// when the replacement trapped too (it is replaced again by the next call).
    fn replace(&mut self) -> Answer<()> {
        let (store, exports) = self.runtime.instantiate(&self.options)?;
        self.store = store;
        self.exports = exports;
        self.generation += 1;
        self.metrics.replaced();
        self.following.lock().restart();
        self.broken = false;
        self.restoring = true;
        let restored = self.sync();
        self.restoring = false;
        match restored {
            Err(e) if self.broken => {
                tracing::warn!("replacement instance trapped while being restored: {e}");
                Err(e)
            }
            Err(e) => {
                tracing::warn!("replacement instance not fully restored: {e}");
                Ok(())
            }
            Ok(()) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plugin_can_move_to_a_worker_thread() {
        fn send<T: Send>() {}
        send::<Plugin>();
    }
}
