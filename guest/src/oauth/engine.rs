//! [`OAuth`]: the flows and keyed sessions, orchestrating the pure modules over a
//! [`Platform`]. Every token request goes through [`call::exchange`]; every change of a
//! session goes through [`commit`], which writes the store by compare-and-swap.

use std::collections::HashMap;

use super::call::{self, now_secs, random_u64};
use super::classify::{self, TokenResponse};
use super::device::{self, PollOutcome};
use super::discovery::{Discovery, Endpoint};
use super::error::OAuthError;
use super::pkce;
use super::request;
use super::retry::{self, Deadline, Replay};
use super::session::{
    self, AUTHORIZATION_TTL, Event, GrantKind, HeldToken, PendingAuthorization, PendingDevice,
    PendingVerifier, SessionRecord,
};
use super::types::{
    Authorization, AuthorizationCode, Client, CodeExchange, DeviceAuthorization, Grant,
    PkceCodeVerifier, SessionGrant, SessionStatus, Token,
};
use crate::platform::Platform;

/// Compare-and-swap rounds before a write gives up and keeps the change in memory only.
const CAS_ATTEMPTS: usize = 3;

/// OAuth flows and keyed sessions.
///
/// A session lives in the memory of the instance that opened it (with the client's
/// configuration and secrets, which are never stored) and in the host's store (its
/// tokens and state, see [`SessionRecord`]), so another instance that opens the same
/// key with the same client continues it.
///
/// Store failures are not fatal: the session goes on in memory, and the next write
/// tries the store again.
#[derive(Debug, Default)]
pub struct OAuth {
    sessions: HashMap<String, Session>,
    discovery: Discovery,
}

struct Session {
    client: Client,
    grant: SessionGrant,
    fingerprint: String,
    record: SessionRecord,
    /// The bytes last read from or written to the store under the key: the expected
    /// value of the next compare-and-swap.
    stored: Option<Vec<u8>>,
}

impl core::fmt::Debug for Session {
    /// The stored bytes hold tokens in clear JSON: only their length is shown.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Session")
            .field("client", &self.client)
            .field("grant", &self.grant)
            .field("fingerprint", &self.fingerprint)
            .field("record", &self.record)
            .field("stored_len", &self.stored.as_ref().map(Vec::len))
            .finish()
    }
}

impl Session {
    fn kind(&self) -> GrantKind {
        self.record.grant
    }

    fn fresh(&self, now: u64) -> Option<Token> {
        self.record
            .fresh_token(now, self.client.refresh_skew())
            .map(HeldToken::to_token)
    }

    fn alive(&self, now: u64) -> Option<Token> {
        self.record.alive_token(now).map(HeldToken::to_token)
    }

    fn require(&self, key: &str, kind: GrantKind, call: &str) -> Result<(), OAuthError> {
        if self.kind() == kind {
            Ok(())
        } else {
            Err(OAuthError::Config(format!(
                "session {key:?} was opened with the {} grant; {call} needs {}",
                self.kind().name(),
                kind.name()
            )))
        }
    }

    fn deadline(&self, p: &dyn Platform) -> Deadline {
        Deadline::start(p.now_ms(), self.client.timeout())
    }
}

fn no_session(key: &str) -> OAuthError {
    OAuthError::Config(format!(
        "no session {key:?} is open in this instance: call open_session first"
    ))
}

impl OAuth {
    /// No sessions, nothing discovered.
    pub fn new() -> Self {
        Self::default()
    }

    /// Requests one token with `grant`; keeps no state. The refresh token, if any, is
    /// returned.
    pub fn request_token(
        &mut self,
        p: &mut dyn Platform,
        client: &Client,
        grant: Grant,
    ) -> Result<Token, OAuthError> {
        client.validate()?;
        let params = request::grant_params(client, &grant)?;
        let deadline = Deadline::start(p.now_ms(), client.timeout());
        let endpoint = self
            .discovery
            .endpoint(p, client, Endpoint::Token, deadline)?;
        let replay = match grant {
            Grant::AuthorizationCode(_) | Grant::RefreshToken(_) | Grant::DeviceCode(_) => {
                Replay::OnlyIfUnprocessed
            }
            _ => Replay::Safe,
        };
        let response = call::exchange(p, client, &endpoint, &params, replay, deadline)?;
        let mut token = HeldToken::from_response(&response, now_secs(p), &client.scopes).to_token();
        token.refresh_token = response.refresh_token;
        Ok(token)
    }

    /// Opens (or replaces) the session `key`. Nothing is requested. If the store holds a
    /// record under `key` made by the same client configuration (see
    /// [`session::client_fingerprint`]), its tokens are kept; otherwise the session
    /// starts empty (and the old record is overwritten at the first change).
    pub fn open_session(
        &mut self,
        p: &mut dyn Platform,
        key: &str,
        client: Client,
        grant: SessionGrant,
    ) -> Result<(), OAuthError> {
        client.validate()?;
        match &grant {
            SessionGrant::RefreshToken(token) if token.secret().is_empty() => {
                return Err(OAuthError::Config("the refresh token is empty".into()));
            }
            // Check what re-acquiring will send, so a bad grant fails now.
            SessionGrant::Password(_)
            | SessionGrant::TokenExchange(_)
            | SessionGrant::JwtBearer(_) => {
                request::grant_params(&client, &acquisition_grant(&grant)?)?;
            }
            _ => {}
        }
        let kind = GrantKind::of(&grant);
        let fingerprint = session::client_fingerprint(&client, &grant);
        let stored = p.store_get(key).ok().flatten();
        let from_store = stored
            .as_deref()
            .and_then(SessionRecord::from_bytes)
            .filter(|r| r.client_fingerprint == fingerprint);
        let from_memory = self
            .sessions
            .remove(key)
            .filter(|s| s.fingerprint == fingerprint)
            .map(|s| s.record);
        let record = from_store
            .or(from_memory)
            .unwrap_or_else(|| SessionRecord::new(fingerprint.as_str(), kind));
        let mut session = Session {
            client,
            grant,
            fingerprint,
            record,
            stored,
        };
        if let SessionGrant::RefreshToken(token) = &session.grant
            && session.record.refresh_token.is_none()
        {
            let seeded = Event::Seeded(token.clone());
            commit(p, key, &mut session, &[seeded], false);
        }
        self.sessions.insert(key.to_string(), session);
        Ok(())
    }

    /// The session's access token: the held one while it is valid beyond the refresh
    /// skew, else refreshed (or re-acquired, for grants that need no person).
    ///
    /// Renewal ahead of expiry is best effort: if it fails while the held token has not
    /// expired, the held token is returned. While the session backs off after a
    /// transient failure, nothing is sent and [`OAuthError::Backoff`] is returned (or
    /// the held token, while it lives).
    pub fn access_token(&mut self, p: &mut dyn Platform, key: &str) -> Result<Token, OAuthError> {
        let now = now_secs(p);
        let Self {
            sessions,
            discovery,
        } = self;
        let s = sessions.get_mut(key).ok_or_else(|| no_session(key))?;
        if let Some(token) = s.fresh(now) {
            return Ok(token);
        }
        // Backing off answers at once, without touching the network or the store: a
        // gateway may call this on every request.
        if let Some(backoff) = s.record.backoff(now) {
            return s.alive(now).ok_or(OAuthError::Backoff(backoff));
        }
        // Another replica may have renewed already, or be backing off.
        reload(p, key, s);
        if let Some(token) = s.fresh(now) {
            return Ok(token);
        }
        if let Some(backoff) = s.record.backoff(now) {
            return s.alive(now).ok_or(OAuthError::Backoff(backoff));
        }
        let deadline = s.deadline(p);
        match renew(p, discovery, key, s, deadline) {
            Ok(token) => Ok(token),
            Err(err) => {
                if retry::is_transient(&err) {
                    let failure = Event::TransientFailure {
                        error: err.to_string(),
                        retry_after: err.retry_after(),
                        random: random_u64(p),
                    };
                    commit(p, key, s, &[failure], true);
                }
                s.alive(now_secs(p)).ok_or(err)
            }
        }
    }

    /// Starts an authorization-code flow with PKCE (RFC 6749 §4.1.1, RFC 7636 §4.3):
    /// returns the URL to send the user to. A new call replaces a pending one.
    pub fn begin_authorization(
        &mut self,
        p: &mut dyn Platform,
        key: &str,
    ) -> Result<Authorization, OAuthError> {
        let Self {
            sessions,
            discovery,
        } = self;
        let s = sessions.get_mut(key).ok_or_else(|| no_session(key))?;
        s.require(key, GrantKind::AuthorizationCode, "begin_authorization")?;
        let deadline = s.deadline(p);
        let endpoint = discovery.endpoint(p, &s.client, Endpoint::Authorization, deadline)?;
        let state = pkce::random_token(p);
        let verifier = pkce::new_verifier(p);
        let url = authorization_url(
            &endpoint,
            &s.client,
            &state,
            &pkce::challenge_s256(&verifier),
        )?;
        let now = now_secs(p);
        let expires_at = now + AUTHORIZATION_TTL;
        let pending = PendingAuthorization {
            state: state.clone(),
            verifier: PendingVerifier::new(verifier.secret()),
            expires_at,
        };
        reload(p, key, s);
        commit(p, key, s, &[Event::AuthorizationBegun(pending)], false);
        Ok(Authorization {
            url,
            state,
            expires_at,
        })
    }

    /// Completes the authorization-code flow with the `state` and `code` of the
    /// redirect (RFC 6749 §4.1.3).
    ///
    /// A wrong state is a [`OAuthError::Config`] error and leaves the pending flow
    /// usable (a forged redirect must not cancel the user's real one); the right state
    /// consumes it before the code is redeemed, even if redeeming then fails. An expired
    /// flow is [`OAuthError::AuthorizationRequired`].
    pub fn complete_authorization(
        &mut self,
        p: &mut dyn Platform,
        key: &str,
        state: &str,
        code: AuthorizationCode,
    ) -> Result<Token, OAuthError> {
        let Self {
            sessions,
            discovery,
        } = self;
        let s = sessions.get_mut(key).ok_or_else(|| no_session(key))?;
        s.require(key, GrantKind::AuthorizationCode, "complete_authorization")?;
        // The redirect may reach another replica than the one that began the flow.
        reload(p, key, s);
        let now = now_secs(p);
        let Some(pending) = &s.record.pending_authorization else {
            return Err(OAuthError::Config(format!(
                "no authorization is pending for session {key:?}: call begin_authorization first"
            )));
        };
        if !pkce::constant_time_eq(&pending.state, state) {
            return Err(OAuthError::Config(
                "the state does not match the pending authorization: this redirect does not answer it".into(),
            ));
        }
        let expired = now >= pending.expires_at;
        let verifier = PkceCodeVerifier::new(pending.verifier.secret());
        commit(p, key, s, &[Event::AuthorizationConsumed], false);
        if expired {
            return Err(OAuthError::AuthorizationRequired(
                "the pending authorization expired (after 5 minutes)".into(),
            ));
        }
        let deadline = s.deadline(p);
        let endpoint = discovery.endpoint(p, &s.client, Endpoint::Token, deadline)?;
        let grant = Grant::AuthorizationCode(CodeExchange {
            code,
            code_verifier: Some(verifier),
        });
        let params = request::grant_params(&s.client, &grant)?;
        let response = call::exchange(
            p,
            &s.client,
            &endpoint,
            &params,
            Replay::OnlyIfUnprocessed,
            deadline,
        )?;
        issue(p, key, s, &[], response)
    }

    /// Starts a device authorization (RFC 8628 §3.1). A new call replaces a pending one.
    pub fn begin_device_authorization(
        &mut self,
        p: &mut dyn Platform,
        key: &str,
    ) -> Result<DeviceAuthorization, OAuthError> {
        let Self {
            sessions,
            discovery,
        } = self;
        let s = sessions.get_mut(key).ok_or_else(|| no_session(key))?;
        s.require(key, GrantKind::DeviceCode, "begin_device_authorization")?;
        let deadline = s.deadline(p);
        let endpoint = discovery.endpoint(p, &s.client, Endpoint::DeviceAuthorization, deadline)?;
        let params = request::device_authorization_params(&s.client);
        let response = call::post_form(
            p,
            &s.client,
            &endpoint,
            &params,
            Replay::Safe,
            deadline,
            classify::classify_device_authorization,
        )?;
        let now = now_secs(p);
        let expires_at = now.saturating_add(response.expires_in);
        let pending = PendingDevice {
            device_code: response.device_code,
            expires_at,
            interval: response.interval,
            next_poll_at: now.saturating_add(response.interval),
        };
        reload(p, key, s);
        commit(p, key, s, &[Event::DeviceBegun(pending)], false);
        Ok(DeviceAuthorization {
            user_code: response.user_code,
            verification_uri: response.verification_uri,
            verification_uri_complete: response.verification_uri_complete,
            expires_at,
            interval_seconds: u32::try_from(response.interval).unwrap_or(u32::MAX),
        })
    }

    /// Polls once (RFC 8628 §3.4): `Ok(None)` while the user has not finished.
    ///
    /// A poll sooner than the interval after the previous one sends nothing and answers
    /// `Ok(None)`: a request would only earn a `slow_down` that lengthens every later
    /// wait. `expired_token` ends the flow as [`OAuthError::AuthorizationRequired`];
    /// `access_denied` ends it as the server's [`OAuthError::Protocol`] error.
    pub fn poll_device_authorization(
        &mut self,
        p: &mut dyn Platform,
        key: &str,
    ) -> Result<Option<Token>, OAuthError> {
        let Self {
            sessions,
            discovery,
        } = self;
        let s = sessions.get_mut(key).ok_or_else(|| no_session(key))?;
        s.require(key, GrantKind::DeviceCode, "poll_device_authorization")?;
        reload(p, key, s);
        let now = now_secs(p);
        let Some(pending) = s.record.pending_device.clone() else {
            return Err(OAuthError::Config(format!(
                "no device authorization is pending for session {key:?}: call begin_device_authorization first"
            )));
        };
        if now >= pending.expires_at {
            return Err(end_device(
                p,
                key,
                s,
                "the device code expired before the user finished",
            ));
        }
        if now < pending.next_poll_at {
            return Ok(None);
        }
        let deadline = s.deadline(p);
        let endpoint = discovery.endpoint(p, &s.client, Endpoint::Token, deadline)?;
        let params = request::grant_params(&s.client, &Grant::DeviceCode(pending.device_code))?;
        let result = call::exchange(
            p,
            &s.client,
            &endpoint,
            &params,
            Replay::OnlyIfUnprocessed,
            deadline,
        );
        match device::poll_step(result, pending.interval) {
            PollOutcome::Token(response) => {
                issue(p, key, s, &[Event::DeviceEnded { reason: None }], response).map(Some)
            }
            PollOutcome::Pending => {
                commit(
                    p,
                    key,
                    s,
                    &[Event::DeviceWait {
                        interval: pending.interval,
                    }],
                    false,
                );
                Ok(None)
            }
            PollOutcome::SlowDown { interval } => {
                commit(p, key, s, &[Event::DeviceWait { interval }], false);
                Ok(None)
            }
            PollOutcome::Expired => Err(end_device(
                p,
                key,
                s,
                "the device code expired before the user finished",
            )),
            PollOutcome::Denied(e) => {
                let ended = Event::DeviceEnded {
                    reason: Some("the user denied the authorization".into()),
                };
                commit(p, key, s, &[ended], false);
                Err(OAuthError::Protocol(e))
            }
            PollOutcome::Failed(err) => {
                commit(
                    p,
                    key,
                    s,
                    &[Event::DeviceWait {
                        interval: pending.interval,
                    }],
                    false,
                );
                Err(err)
            }
        }
    }

    /// The session's state, without secrets; `None` when neither this instance nor the
    /// store knows `key`.
    pub fn session_status(&mut self, p: &mut dyn Platform, key: &str) -> Option<SessionStatus> {
        let now = now_secs(p);
        if let Some(s) = self.sessions.get_mut(key) {
            reload(p, key, s);
            return Some(s.record.status(now));
        }
        let bytes = p.store_get(key).ok().flatten()?;
        SessionRecord::from_bytes(&bytes).map(|r| r.status(now))
    }

    /// Revokes the session's tokens (RFC 7009): the refresh token first, since revoking
    /// it may revoke its access tokens too (§2.1), then the access token. Then forgets
    /// them here and in the store; the session stays open, empty.
    ///
    /// If the refresh token's revocation fails, nothing changes. An access token the
    /// server cannot revoke (`unsupported_token_type`, §2.2.1) is simply forgotten: it
    /// expires on its own.
    pub fn revoke(&mut self, p: &mut dyn Platform, key: &str) -> Result<(), OAuthError> {
        let Self {
            sessions,
            discovery,
        } = self;
        let s = sessions.get_mut(key).ok_or_else(|| no_session(key))?;
        reload(p, key, s);
        let refresh = s.record.refresh_token.clone();
        let access = s.record.token.as_ref().map(|t| t.access_token.clone());
        if refresh.is_some() || access.is_some() {
            let deadline = s.deadline(p);
            let endpoint = discovery.endpoint(p, &s.client, Endpoint::Revocation, deadline)?;
            let revoke_one = |p: &mut dyn Platform, token: &str, hint: &'static str| {
                let params = request::revocation_params(token, hint);
                call::post_form(
                    p,
                    &s.client,
                    &endpoint,
                    &params,
                    Replay::Safe,
                    deadline,
                    classify::classify_revocation,
                )
            };
            if let Some(refresh) = &refresh {
                revoke_one(p, refresh.secret(), "refresh_token")?;
            }
            if let Some(access) = &access {
                match revoke_one(p, access.secret(), "access_token") {
                    Ok(()) => {}
                    Err(err) if err.protocol_code() == Some("unsupported_token_type") => {}
                    Err(err) => {
                        if refresh.is_some() {
                            commit(p, key, s, &[Event::RefreshTokenRevoked], false);
                        }
                        return Err(err);
                    }
                }
            }
        }
        s.record = SessionRecord::new(s.fingerprint.as_str(), s.kind());
        s.stored = None;
        delete_stored(p, key);
        Ok(())
    }

    /// Forgets the session, here and in the store.
    pub fn close_session(&mut self, p: &mut dyn Platform, key: &str) {
        self.sessions.remove(key);
        delete_stored(p, key);
    }
}

/// The grant that obtains a token again without a person.
fn acquisition_grant(grant: &SessionGrant) -> Result<Grant, OAuthError> {
    Ok(match grant {
        SessionGrant::ClientCredentials => Grant::ClientCredentials,
        SessionGrant::Password(credentials) => Grant::Password(credentials.clone()),
        SessionGrant::TokenExchange(exchange) => Grant::TokenExchange(exchange.clone()),
        SessionGrant::JwtBearer(assertion) => Grant::JwtBearer(assertion.clone()),
        other => {
            return Err(OAuthError::AuthorizationRequired(format!(
                "the {} grant cannot obtain a token without a person",
                GrantKind::of(other).name()
            )));
        }
    })
}

/// Refreshes, or re-acquires, the session's token.
fn renew(
    p: &mut dyn Platform,
    discovery: &mut Discovery,
    key: &str,
    s: &mut Session,
    deadline: Deadline,
) -> Result<Token, OAuthError> {
    if !s.record.renewable() {
        let reason =
            if s.record.pending_authorization.is_some() || s.record.pending_device.is_some() {
                "no token yet: the pending authorization has not been completed"
            } else {
                "no refresh token is held"
            };
        if s.record.authorization_required.is_none() {
            let needed = Event::AuthorizationNeeded {
                reason: reason.into(),
            };
            commit(p, key, s, &[needed], false);
        }
        return Err(OAuthError::AuthorizationRequired(
            s.record
                .authorization_required
                .clone()
                .unwrap_or_else(|| reason.into()),
        ));
    }
    let endpoint = discovery.endpoint(p, &s.client, Endpoint::Token, deadline)?;
    // Twice at most: if the refresh token is refused because another replica rotated
    // it, the store's newer one gets its turn.
    for _ in 0..2 {
        let Some(refresh) = s.record.refresh_token.clone() else {
            break;
        };
        let params = request::refresh_params(&s.client, &refresh);
        // A rotated refresh token must not be replayed after a lost answer: see `retry`.
        match call::exchange(
            p,
            &s.client,
            &endpoint,
            &params,
            Replay::OnlyIfUnprocessed,
            deadline,
        ) {
            Ok(response) => return issue(p, key, s, &[], response),
            Err(OAuthError::Protocol(e)) if e.error == "invalid_grant" => {
                let reason = match &e.description {
                    Some(d) => format!("the refresh token was refused (invalid_grant: {d})"),
                    None => "the refresh token was refused (invalid_grant)".to_string(),
                };
                let rejected = Event::RefreshRejected {
                    rejected: refresh,
                    reason: reason.clone(),
                };
                commit(p, key, s, &[rejected], true);
                // Another replica may have renewed: its fresh token is adopted.
                if let Some(token) = s.fresh(now_secs(p)) {
                    return Ok(token);
                }
                if s.record.refresh_token.is_some() {
                    continue;
                }
                if !s.kind().unattended() {
                    return Err(OAuthError::AuthorizationRequired(reason));
                }
                break;
            }
            Err(err) => return Err(err),
        }
    }
    if !s.kind().unattended() {
        return Err(OAuthError::AuthorizationRequired(
            "the refresh token was refused".into(),
        ));
    }
    let params = request::grant_params(&s.client, &acquisition_grant(&s.grant)?)?;
    let response = call::exchange(p, &s.client, &endpoint, &params, Replay::Safe, deadline)?;
    issue(p, key, s, &[], response)
}

/// Records a newly issued token (after `before`) and returns it, or the fresher one
/// another replica stored meanwhile.
fn issue(
    p: &mut dyn Platform,
    key: &str,
    s: &mut Session,
    before: &[Event],
    response: TokenResponse,
) -> Result<Token, OAuthError> {
    let now = now_secs(p);
    let mut events = before.to_vec();
    events.push(Event::Issued {
        response,
        requested_scopes: s.client.scopes.clone(),
    });
    commit(p, key, s, &events, true);
    s.alive(now)
        .ok_or_else(|| OAuthError::InvalidResponse("the issued token had already expired".into()))
}

fn end_device(p: &mut dyn Platform, key: &str, s: &mut Session, reason: &str) -> OAuthError {
    commit(
        p,
        key,
        s,
        &[Event::DeviceEnded {
            reason: Some(reason.into()),
        }],
        false,
    );
    OAuthError::AuthorizationRequired(reason.into())
}

/// The authorization request URL (RFC 6749 §4.1.1, RFC 7636 §4.3, RFC 8707 §2). Pairs
/// are appended, so a query the endpoint already has is kept.
fn authorization_url(
    endpoint: &str,
    client: &Client,
    state: &str,
    challenge: &str,
) -> Result<String, OAuthError> {
    let mut url = url::Url::parse(endpoint)
        .map_err(|e| OAuthError::Config(format!("authorization_endpoint: {e}")))?;
    {
        let mut query = url.query_pairs_mut();
        query.append_pair("response_type", "code");
        query.append_pair("client_id", &client.client_id);
        if let Some(redirect) = &client.redirect_uri {
            query.append_pair("redirect_uri", redirect);
        }
        if !client.scopes.is_empty() {
            query.append_pair("scope", &client.scopes.join(" "));
        }
        query.append_pair("state", state);
        query.append_pair("code_challenge", challenge);
        query.append_pair("code_challenge_method", "S256");
        if let Some(audience) = &client.audience {
            query.append_pair("audience", audience);
        }
        for resource in &client.resources {
            query.append_pair("resource", resource);
        }
    }
    Ok(url.into())
}

/// Adopts the store's record if another instance changed it since this one last looked
/// (and it belongs to the same client configuration).
fn reload(p: &mut dyn Platform, key: &str, s: &mut Session) {
    let Ok(current) = p.store_get(key) else {
        return;
    };
    if current == s.stored {
        return;
    }
    if let Some(record) = current
        .as_deref()
        .and_then(SessionRecord::from_bytes)
        .filter(|r| r.client_fingerprint == s.fingerprint)
    {
        s.record = record;
    }
    s.stored = current;
}

/// Applies `events` to the session and writes the result by compare-and-swap.
///
/// On a conflict (another replica wrote first) the store's record becomes the base and
/// the events are applied to it again, so neither side's change is lost; but when
/// `renewal` is set and the store already holds a token fresh now, that record is
/// adopted as is: another replica renewed, and its token (with its rotated refresh
/// token) is the one to keep.
fn commit(p: &mut dyn Platform, key: &str, s: &mut Session, events: &[Event], renewal: bool) {
    let now = now_secs(p);
    let apply = |base: SessionRecord| {
        events
            .iter()
            .fold(base, |record, event| session::next(record, event, now))
    };
    let mut record = apply(s.record.clone());
    for _ in 0..CAS_ATTEMPTS {
        let bytes = record.to_bytes();
        match p.store_compare_and_swap(key, s.stored.as_deref(), Some(&bytes)) {
            Ok(true) => {
                s.stored = Some(bytes);
                break;
            }
            Err(_) => break,
            Ok(false) => {
                let Ok(current) = p.store_get(key) else { break };
                let theirs = current
                    .as_deref()
                    .and_then(SessionRecord::from_bytes)
                    .filter(|r| r.client_fingerprint == s.fingerprint);
                s.stored = current;
                match theirs {
                    Some(theirs)
                        if renewal
                            && theirs.fresh_token(now, s.client.refresh_skew()).is_some() =>
                    {
                        s.record = theirs;
                        return;
                    }
                    Some(theirs) => record = apply(theirs),
                    // Gone, or another configuration's: this session's record replaces it.
                    None => {}
                }
            }
        }
    }
    s.record = record;
}

/// Deletes the store's record under `key`, whatever its content.
fn delete_stored(p: &mut dyn Platform, key: &str) {
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
