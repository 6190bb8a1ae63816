//! [`OAuth`]: the flows and keyed sessions, orchestrating the pure modules over a
//! [`Platform`]. Every token request goes through [`call::token_request`]; every change
//! of a session goes through [`Session::commit`](super::replica::Session::commit),
//! which keeps the store (and so other replicas) in step.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gateway_auth_api::{
    AccessToken, Authorization, AuthorizationCode, Client, CodeExchange, DeviceAuthorization,
    DpopBinding, Grant, OAuthError, PhaseCount, PkceCodeVerifier, RefreshToken, Registration,
    RegistrationRequest, ResourceAuthorization, SESSION_PHASES, SessionGrant, SessionState, Token,
    TrustSpec,
};

use super::call::{self, Dpop, Failed};
use super::challenge::{self, BearerHints, ErrorCode, TokenScheme};
use super::classify::{self, TokenResponse};
use super::config;
use super::device::{self, PollOutcome};
use super::discovery::{self, Discovery, Endpoint};
use super::dpop::{self, DpopKey};
use super::jwt;
use super::pkce;
use super::redact;
use super::registration;
use super::replica::{self, OnConflict, Session, Sessions};
use super::request::{self, Params};
use super::retry::{self, Deadline, Replay};
use super::session::{
    self, AUTHORIZATION_TTL, Event, GrantKind, HeldToken, PendingAuthorization, PendingDevice,
    PendingVerifier, SessionRecord, Step, StoredDpopKey, View,
};
use crate::platform::Platform;

/// OAuth flows and keyed sessions.
///
/// A session lives in the memory of the instance that opened it (with the client's
/// configuration and secrets, which are never stored) and in the host's store (its
/// tokens and state, see `session::SessionRecord`), so another instance that opens the same
/// key with the same client continues it.
#[derive(Debug, Default)]
pub struct OAuth {
    sessions: Sessions,
    discovery: Discovery,
    /// This instance's lease holder id, made on first use.
    holder: Option<String>,
}

/// The most a call runs past its deadline: every transport operation is given only the
/// time left and nothing is sent after it, so what remains is the store writes that
/// record the outcome. The end-to-end tests hold every call to it.
pub const CALL_OVERRUN_MS: u64 = 500;
/// How long a lease outlives the call deadline of its holder: a holder that died is
/// taken over this long after its call would have ended. Longer than
/// [`CALL_OVERRUN_MS`], so no lease lapses while its holder's call can still send or
/// store anything.
pub const LEASE_MARGIN_MS: u64 = 2_000;
// The inequality the replica design rests on, checked where it is built.
const _: () = assert!(LEASE_MARGIN_MS > CALL_OVERRUN_MS);
/// Steps one `access-token` call executes at most, waits aside: a guard, never reached
/// by the decisions themselves.
const MAX_STEPS: usize = 16;
/// The first pause while another instance holds the lease; it doubles up to
/// [`LEASE_POLL_MAX_MS`].
const LEASE_POLL_MS: u64 = 10;
/// The longest pause between looks at the store while another instance renews.
const LEASE_POLL_MAX_MS: u64 = 200;

impl OAuth {
    /// No sessions, nothing discovered.
    pub fn new() -> Self {
        Self::default()
    }

    /// This instance's lease holder id: random, so that no two instances share one.
    fn holder(&mut self, p: &mut dyn Platform) -> String {
        self.holder
            .get_or_insert_with(|| format!("{:016x}", p.random_u64()))
            .clone()
    }

    /// Requests one token with `grant`; keeps no state. The refresh token, if any, is
    /// returned.
    pub fn request_token(
        &mut self,
        p: &mut dyn Platform,
        client: &Client,
        grant: Grant,
    ) -> Result<Token, OAuthError> {
        config::validate(client)?;
        let params = request::grant_params(client, &grant)?;
        let deadline = Deadline::start(p.now_ms(), client.timeout());
        let endpoint = self
            .discovery
            .endpoint(p, client, Endpoint::Token, deadline)?;
        // Whether a lost answer may be followed by the same request: every grant says
        // (a new one does not compile until it does).
        let replay = match grant {
            Grant::AuthorizationCode(_) | Grant::RefreshToken(_) | Grant::DeviceCode(_) => {
                Replay::OnlyIfUnprocessed
            }
            Grant::ClientCredentials
            | Grant::Password(_)
            | Grant::TokenExchange(_)
            | Grant::JwtBearer(_) => Replay::Safe,
        };
        let response = send_token_request(
            p,
            &mut self.discovery,
            client,
            None,
            &endpoint,
            &params,
            replay,
            deadline,
        )?;
        let mut token =
            HeldToken::from_response(&response, p.now_secs(), &client.scopes).to_token();
        token.refresh_token = response.refresh_token;
        Ok(token)
    }

    /// Opens (or replaces) the session `key`. Nothing is requested. If the store holds a
    /// record under `key` made by the same client configuration (see
    /// `session::client_fingerprint`), its tokens are kept; otherwise the session
    /// starts empty (and the old record is overwritten at the first change).
    pub fn open_session(
        &mut self,
        p: &mut dyn Platform,
        key: &str,
        client: Client,
        grant: SessionGrant,
    ) -> Result<(), OAuthError> {
        config::validate(&client)?;
        config::validate_session_grant(&client, &grant)?;
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
        let client = self.sessions.share(client);
        let mut session = Session::new(key, client, grant, fingerprint, record, stored);
        // The configuration may have been corrected: a held failure ends here.
        if matches!(
            session.record.failure,
            Some(session::Failure::Refused { .. })
        ) {
            session.commit(p, &[Event::Reopened], OnConflict::Reapply);
        }
        // A key of its own, stored before anything is signed with it; a replica that
        // stored one first wins, and this one signs with that.
        if session.client.dpop == Some(DpopBinding::PerSession) && session.record.dpop_key.is_none()
        {
            let key = DpopKey::generate(&ring::rand::SystemRandom::new())?;
            let stored = StoredDpopKey::new(URL_SAFE_NO_PAD.encode(key.pkcs8()));
            session.commit(p, &[Event::DpopKeyMade(stored)], OnConflict::Reapply);
        }
        if let SessionGrant::RefreshToken(token) = &session.grant
            && session.record.refresh_token.is_none()
        {
            let seeded = Event::Seeded(token.clone());
            session.commit(p, &[seeded], OnConflict::Reapply);
        }
        self.sessions.insert(session);
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
        let holder = self.holder(p);
        let Self {
            sessions,
            discovery,
            ..
        } = self;
        let s = sessions.get(key)?;
        let deadline = s.deadline(p);
        let mut save_tried = false;
        let mut reloaded = false;
        let mut store_error: Option<String> = None;
        let mut pause = LEASE_POLL_MS;
        let mut steps = 0;
        loop {
            let view = View {
                now_ms: p.now_ms(),
                holder: &holder,
                skew: s.client.refresh_skew(),
                unsaved: s.unsaved() && !save_tried,
                store_error: store_error.as_deref(),
            };
            let step = session::decide(&s.record, &view);
            steps += 1;
            if steps > MAX_STEPS {
                s.finish(p, &[], OnConflict::Reapply);
                return Err(OAuthError::Store(format!(
                    "session {key:?} kept changing in the store; nothing was sent"
                )));
            }
            match step {
                Step::Serve => {
                    // A lease taken for nothing (another instance renewed first).
                    if s.holding() {
                        s.finish(p, &[], OnConflict::Reapply);
                    }
                    // It may have expired since the decision (a second ended, or the
                    // lease's release waited on the store): then decide again.
                    if let Some(token) = s.alive(p.now_secs()) {
                        return Ok(token);
                    }
                }
                Step::Fail(err) => {
                    if s.holding() {
                        s.finish(p, &[], OnConflict::Reapply);
                    }
                    return Err(err);
                }
                Step::Save => {
                    save_tried = true;
                    s.save(p);
                }
                // Holding a failure, backing off or a fresh token answer at once, without
                // the store: a gateway may call this on every request. Anything else
                // looks at the store first: another replica may have renewed already,
                // or be holding or backing off.
                _ if !reloaded => {
                    reloaded = true;
                    s.reload(p);
                }
                Step::Wait => {
                    let left = deadline.remaining(p.now_ms());
                    if left == 0 {
                        let other = s.record.lease.as_ref().map_or("", |l| l.holder.as_str());
                        return Err(OAuthError::Store(format!(
                            "instance {other} is renewing session {key:?} and had not stored its result within this call's deadline"
                        )));
                    }
                    steps -= 1;
                    p.sleep_ms(pause.min(left));
                    pause = (pause * 2).min(LEASE_POLL_MAX_MS);
                    s.reload(p);
                }
                Step::TakeLease => {
                    if deadline.remaining(p.now_ms()) == 0 {
                        return Err(OAuthError::Transport(gateway_auth_api::NetError::Timeout));
                    }
                    if let Err(e) = s.try_lease(p, &holder, lease_until(deadline)) {
                        store_error = Some(e);
                    }
                }
                Step::NeedPerson(reason) => {
                    if s.record.authorization_required().is_none() {
                        let needed = Event::AuthorizationNeeded {
                            reason: reason.clone(),
                        };
                        s.finish(p, &[needed], OnConflict::Reapply);
                    } else if s.holding() {
                        s.finish(p, &[], OnConflict::Reapply);
                    }
                    return Err(OAuthError::AuthorizationRequired(reason));
                }
                Step::Refresh(refresh) => {
                    let sent = refresh.clone();
                    // A rotated refresh token must not be replayed after a lost
                    // answer: see `retry`.
                    let result = to_token_endpoint(
                        p,
                        discovery,
                        &s.client,
                        Some(&s.record),
                        deadline,
                        Replay::OnlyIfUnprocessed,
                        |_, _| Ok(request::refresh_params(&s.client, &refresh)),
                    );
                    let failed = match result {
                        Ok(response) => return issue(p, s, &[], response),
                        Err(failed) => failed,
                    };
                    // What the server said may echo tokens the session holds.
                    let err = hide_held(failed.error, s);
                    match err {
                        OAuthError::Protocol(e) if e.error == "invalid_grant" => {
                            let reason = match &e.description {
                                Some(d) => {
                                    format!("the refresh token was refused (invalid_grant: {d})")
                                }
                                None => "the refresh token was refused (invalid_grant)".into(),
                            };
                            let rejected = Event::RefreshRejected {
                                rejected: sent,
                                reason: reason.clone(),
                            };
                            // Another replica may have renewed: its fresh token is
                            // adopted; else the next step acquires anew or needs a person.
                            s.commit(p, &[rejected], OnConflict::AdoptFreshToken);
                            if !s.kind().unattended() && !s.record.renewable() {
                                s.finish(p, &[], OnConflict::Reapply);
                                return Err(OAuthError::AuthorizationRequired(reason));
                            }
                        }
                        err => {
                            let spent = failed.reached && retry::may_have_spent(&err);
                            let events = failure_events(p, s, &err, spent.then_some(sent));
                            s.finish(p, &events, OnConflict::AdoptFreshToken);
                            return s.alive(p.now_secs()).ok_or(err);
                        }
                    }
                }
                Step::Acquire => {
                    let result = to_token_endpoint(
                        p,
                        discovery,
                        &s.client,
                        Some(&s.record),
                        deadline,
                        Replay::Safe,
                        |p, endpoint| {
                            let grant = acquisition_grant(p, &s.client, endpoint, &s.grant)?;
                            request::grant_params(&s.client, &grant)
                        },
                    );
                    match result {
                        Ok(response) => return issue(p, s, &[], response),
                        Err(failed) => {
                            let err = hide_held(failed.error, s);
                            let events = failure_events(p, s, &err, None);
                            s.finish(p, &events, OnConflict::AdoptFreshToken);
                            return s.alive(p.now_secs()).ok_or(err);
                        }
                    }
                }
            }
        }
    }

    /// A token other than `rejected` (an access token of the session an upstream
    /// refused): while the session holds it, it is dropped, here and in the store, and
    /// the session renews as [`OAuth::access_token`] does; a token another caller or
    /// replica obtained meanwhile is returned as it is.
    pub fn renew_token(
        &mut self,
        p: &mut dyn Platform,
        key: &str,
        rejected: &str,
    ) -> Result<Token, OAuthError> {
        let s = self.sessions.get(key)?;
        // Another replica may hold a newer token already.
        s.reload(p);
        let held = s.record.token.as_ref();
        if held.is_some_and(|t| t.access_token.secret() == rejected) {
            let event = Event::TokenRejected(AccessToken::new(rejected));
            s.commit(p, &[event], OnConflict::Reapply);
        }
        self.access_token(p, key)
    }

    /// A DPoP proof for the gateway's `method` request to `url` with the access token
    /// session `key` holds (RFC 9449 §7: `ath` over it), and the resource server's
    /// `nonce` when it asked for one (§9).
    pub fn dpop_proof(
        &mut self,
        p: &mut dyn Platform,
        key: &str,
        method: &str,
        url: &str,
        nonce: Option<&str>,
    ) -> Result<String, OAuthError> {
        let s = self.sessions.get(key)?;
        // Another replica may have renewed the token the gateway was given.
        s.reload(p);
        let signer = dpop_key(&s.client, Some(&s.record))?.ok_or_else(|| {
            OAuthError::Config(format!(
                "the client of session {key:?} binds no DPoP key: set its dpop"
            ))
        })?;
        let token = s
            .record
            .token
            .as_ref()
            .map(|t| &t.access_token)
            .ok_or_else(|| {
                OAuthError::Config(format!(
                    "session {key:?} holds no access token yet: call access_token first"
                ))
            })?;
        let jti = pkce::random_token(p);
        dpop::proof(&signer, method, url, nonce, Some(token), p.now_secs(), &jti)
    }

    /// How to authorize for the protected resource at `resource_url`, from the
    /// `WWW-Authenticate` field lines of its answer and its metadata (RFC 9728).
    pub fn discover_resource(
        &mut self,
        p: &mut dyn Platform,
        resource_url: &str,
        www_authenticate: &[String],
        trust: &TrustSpec,
    ) -> Result<ResourceAuthorization, OAuthError> {
        let deadline = Deadline::start(p.now_ms(), gateway_auth_api::DEFAULT_TIMEOUT_MS);
        self.discovery
            .resource(p, resource_url, www_authenticate, trust, deadline)
    }

    /// A dynamic client registration (RFC 7591), one per issuer and redirect URIs for
    /// every replica sharing the store.
    pub fn register_client(
        &mut self,
        p: &mut dyn Platform,
        request: &RegistrationRequest,
    ) -> Result<Registration, OAuthError> {
        let holder = self.holder(p);
        registration::register(p, &mut self.discovery, &holder, request)
    }

    /// Starts a new authorization of session `key` for the union of its scopes and the
    /// ones a resource's `insufficient_scope` challenge names (RFC 6750 §3.1); the
    /// session serves its current token until the authorization completes.
    pub fn begin_step_up(
        &mut self,
        p: &mut dyn Platform,
        key: &str,
        www_authenticate: &[String],
    ) -> Result<Authorization, OAuthError> {
        let lines: Vec<&str> = www_authenticate.iter().map(String::as_str).collect();
        let hints = BearerHints::from_challenges(&challenge::parse(&lines)?, TokenScheme::Bearer);
        let wanted = match hints {
            Some(BearerHints {
                error: Some(ErrorCode::InsufficientScope),
                scope,
                ..
            }) => scope,
            _ => {
                return Err(OAuthError::Config(
                    "step-up needs a challenge with error=\"insufficient_scope\" (RFC 6750 §3.1)"
                        .into(),
                ));
            }
        };
        let s = self.sessions.get(key)?;
        s.require(GrantKind::AuthorizationCode, "begin_step_up")?;
        let mut scopes = s.client.scopes.clone();
        for scope in wanted {
            if !scopes.contains(&scope) {
                scopes.push(scope);
            }
        }
        if scopes != s.client.scopes {
            let mut client = (*s.client).clone();
            client.scopes = scopes;
            s.client = Arc::new(client);
        }
        self.begin_authorization(p, key)
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
            ..
        } = self;
        let s = sessions.get(key)?;
        s.require(GrantKind::AuthorizationCode, "begin_authorization")?;
        let deadline = s.deadline(p);
        let endpoint = discovery.endpoint(p, &s.client, Endpoint::Authorization, deadline)?;
        let state = pkce::random_token(p);
        let verifier = pkce::new_verifier(p);
        let challenge = pkce::challenge_s256(&verifier);
        // RFC 9126 §5: pushed whenever the server offers it; refused when it requires
        // it and names no endpoint. A server without metadata takes the plain request.
        let pushed = match discovery.client_metadata(p, &s.client, deadline) {
            Ok(Some(m)) => match (
                &m.pushed_authorization_request_endpoint,
                m.require_pushed_authorization_requests,
            ) {
                (Some(par), _) => Some(par.clone()),
                (None, true) => {
                    return Err(OAuthError::InvalidResponse(format!(
                        "{} requires pushed authorization requests but names no pushed_authorization_request_endpoint",
                        m.issuer
                    )));
                }
                (None, false) => None,
            },
            Ok(None) | Err(_) => None,
        };
        let url = match pushed {
            Some(par) => {
                let params = request::authorization_params(&s.client, &state, &challenge);
                // RFC 9449 §10.1: the proof binds the code to the key.
                let mut dpop =
                    dpop_key(&s.client, Some(&s.record))?.map(|key| discovery.dpop(key, &par));
                let request_uri = call::post_form(
                    p,
                    &s.client,
                    &par,
                    &params,
                    Replay::Safe,
                    deadline,
                    classify::classify_pushed_request,
                    dpop.as_mut(),
                );
                if let Some(dpop) = &dpop {
                    discovery.learn_nonce(&par, dpop);
                }
                let request_uri = request_uri?;
                request::with_query(
                    &endpoint,
                    &[
                        ("client_id", s.client.client_id.as_str()),
                        ("request_uri", request_uri.as_str()),
                    ],
                )?
            }
            None => {
                let url = request::authorization_url(&endpoint, &s.client, &state, &challenge)?;
                // RFC 9449 §10: the code is bound to the key by its thumbprint.
                match dpop_key(&s.client, Some(&s.record))? {
                    Some(key) => request::with_query(&url, &[("dpop_jkt", &key.thumbprint())])?,
                    None => url,
                }
            }
        };
        let iss_required = discovery.iss_in_authorization_response(p, &s.client, deadline);
        let now = p.now_secs();
        let expires_at = now + AUTHORIZATION_TTL;
        let pending = PendingAuthorization {
            state: state.clone(),
            verifier: PendingVerifier::new(verifier.secret()),
            expires_at,
            iss_required,
        };
        s.reload(p);
        s.commit(
            p,
            &[Event::AuthorizationBegun(pending)],
            OnConflict::Reapply,
        );
        Ok(Authorization {
            url,
            state,
            expires_at,
        })
    }

    /// Completes the authorization-code flow with the `state`, `code` and `iss` of
    /// the redirect (RFC 6749 §4.1.3, RFC 9207).
    ///
    /// A wrong state, or an `iss` that is not the client's issuer (or is missing when
    /// the issuer says it sends one), is a [`OAuthError::Config`] error and leaves the
    /// pending flow usable (a forged redirect must not cancel the user's real one); the
    /// right state consumes it before the code is redeemed, even if redeeming then
    /// fails. An expired flow is [`OAuthError::AuthorizationRequired`].
    pub fn complete_authorization(
        &mut self,
        p: &mut dyn Platform,
        key: &str,
        state: &str,
        code: AuthorizationCode,
        iss: Option<&str>,
    ) -> Result<Token, OAuthError> {
        let holder = self.holder(p);
        let Self {
            sessions,
            discovery,
            ..
        } = self;
        let s = sessions.get(key)?;
        s.require(GrantKind::AuthorizationCode, "complete_authorization")?;
        // Exactly one instance redeems a code: the one holding the lease, on the record
        // it read when taking it (the redirect may reach another replica than the one
        // that began the flow, or two at once).
        let deadline = s.deadline(p);
        wait_for_lease(p, s, &holder, deadline)?;
        let now = p.now_secs();
        let checked = match s.record.pending_authorization() {
            // Completed already (perhaps by another instance, which holds the token
            // now), or never begun.
            None => Err(OAuthError::Config(format!(
                "no authorization is pending for session {key:?}: it was completed already, or call begin_authorization first"
            ))),
            Some(pending) if !pkce::constant_time_eq(&pending.state, state) => {
                Err(OAuthError::Config(
                    "the state does not match the pending authorization: this redirect does not answer it".into(),
                ))
            }
            Some(pending) => {
                match discovery::check_response_issuer(
                    s.client.issuer.as_deref(),
                    iss,
                    pending.iss_required,
                ) {
                    Err(e) => Err(e),
                    Ok(()) => Ok((
                        now >= pending.expires_at,
                        PkceCodeVerifier::new(pending.verifier.secret()),
                    )),
                }
            }
        };
        let (expired, verifier) = match checked {
            Ok(ok) => ok,
            Err(err) => {
                s.finish(p, &[], OnConflict::Reapply);
                return Err(err);
            }
        };
        s.commit(p, &[Event::AuthorizationConsumed], OnConflict::Reapply);
        if expired {
            s.finish(p, &[], OnConflict::Reapply);
            return Err(OAuthError::AuthorizationRequired(
                "the pending authorization expired (after 5 minutes)".into(),
            ));
        }
        let grant = Grant::AuthorizationCode(CodeExchange {
            code,
            code_verifier: Some(verifier),
        });
        let response = to_token_endpoint(
            p,
            discovery,
            &s.client,
            Some(&s.record),
            deadline,
            Replay::OnlyIfUnprocessed,
            |_, _| request::grant_params(&s.client, &grant),
        );
        match response {
            Ok(response) => issue(p, s, &[], response),
            Err(err) => {
                s.finish(p, &[], OnConflict::Reapply);
                Err(err.into())
            }
        }
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
            ..
        } = self;
        let s = sessions.get(key)?;
        s.require(GrantKind::DeviceCode, "begin_device_authorization")?;
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
            None,
        )?;
        let now = p.now_secs();
        let expires_at = now.saturating_add(response.expires_in);
        let pending = PendingDevice {
            device_code: response.device_code,
            expires_at,
            interval: response.interval,
            next_poll_at: now.saturating_add(response.interval),
        };
        s.reload(p);
        s.commit(p, &[Event::DeviceBegun(pending)], OnConflict::Reapply);
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
        let holder = self.holder(p);
        let Self {
            sessions,
            discovery,
            ..
        } = self;
        let s = sessions.get(key)?;
        s.require(GrantKind::DeviceCode, "poll_device_authorization")?;
        s.reload(p);
        let now = p.now_secs();
        let Some(pending) = s.record.pending_device().cloned() else {
            return Err(OAuthError::Config(format!(
                "no device authorization is pending for session {key:?}: call begin_device_authorization first"
            )));
        };
        if now >= pending.expires_at {
            return Err(end_device(
                p,
                s,
                "the device code expired before the user finished",
            ));
        }
        if now < pending.next_poll_at {
            return Ok(None);
        }
        // One instance polls (and so redeems) at a time; another holder is polling now.
        let deadline = s.deadline(p);
        match s.try_lease(p, &holder, lease_until(deadline)) {
            Ok(None) => {}
            Ok(Some(_)) => return Ok(None),
            Err(e) => {
                return Err(OAuthError::Store(format!(
                    "the lease of session {key:?} could not be taken, so the device code was not polled: {e}"
                )));
            }
        }
        // Taking the lease read the store: the flow may have ended meanwhile.
        let Some(pending) = s.record.pending_device().cloned() else {
            s.finish(p, &[], OnConflict::Reapply);
            return Ok(s.fresh(p.now_secs()));
        };
        let result = discovery
            .endpoint(p, &s.client, Endpoint::Token, deadline)
            .and_then(|endpoint| {
                let params =
                    request::grant_params(&s.client, &Grant::DeviceCode(pending.device_code))?;
                Ok(send_token_request(
                    p,
                    discovery,
                    &s.client,
                    Some(&s.record),
                    &endpoint,
                    &params,
                    Replay::OnlyIfUnprocessed,
                    deadline,
                )
                .map_err(OAuthError::from))
            });
        let result = match result {
            Ok(result) => result,
            Err(err) => {
                s.finish(p, &[], OnConflict::Reapply);
                return Err(err);
            }
        };
        let wait = |interval| Event::DeviceWait { interval };
        match device::poll_step(result, pending.interval) {
            PollOutcome::Token(response) => {
                issue(p, s, &[Event::DeviceEnded { reason: None }], response).map(Some)
            }
            PollOutcome::Pending => {
                s.finish(p, &[wait(pending.interval)], OnConflict::Reapply);
                Ok(None)
            }
            PollOutcome::SlowDown { interval } => {
                s.finish(p, &[wait(interval)], OnConflict::Reapply);
                Ok(None)
            }
            PollOutcome::Expired => Err(end_device(
                p,
                s,
                "the device code expired before the user finished",
            )),
            PollOutcome::Denied(e) => {
                let ended = Event::DeviceEnded {
                    reason: Some("the user denied the authorization".into()),
                };
                s.finish(p, &[ended], OnConflict::Reapply);
                Err(OAuthError::Protocol(e))
            }
            PollOutcome::Failed(err) => {
                s.finish(p, &[wait(pending.interval)], OnConflict::Reapply);
                Err(err)
            }
        }
    }

    /// The session's state, without secrets; `None` when neither this instance nor the
    /// store knows `key`.
    pub fn session_status(&mut self, p: &mut dyn Platform, key: &str) -> Option<SessionState> {
        let now = p.now_secs();
        if let Some(s) = self.sessions.find(key) {
            s.reload(p);
            return Some(s.record.status(now));
        }
        let bytes = p.store_get(key).ok().flatten()?;
        SessionRecord::from_bytes(&bytes).map(|r| r.status(now))
    }

    /// How many open sessions are in each phase (every phase listed), as this instance
    /// last saw them: no store is read, so a scrape costs no store operation.
    pub fn session_phases(&self, now: u64) -> Vec<PhaseCount> {
        let mut counts = SESSION_PHASES.map(|phase| PhaseCount { phase, sessions: 0 });
        for s in self.sessions.iter() {
            let phase = s.record.phase(now);
            if let Some(count) = counts.iter_mut().find(|c| c.phase == phase) {
                count.sessions += 1;
            }
        }
        counts.to_vec()
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
            ..
        } = self;
        let s = sessions.get(key)?;
        s.reload(p);
        let refresh = s.record.refresh_token.clone();
        let access = s.record.token.as_ref().map(|t| t.access_token.clone());
        if refresh.is_some() || access.is_some() {
            let deadline = s.deadline(p);
            let endpoint = discovery.endpoint(p, &s.client, Endpoint::Revocation, deadline)?;
            let key = dpop_key(&s.client, Some(&s.record))?;
            let mut dpop = key.map(|key| discovery.dpop(key, &endpoint));
            let mut revoke_one = |p: &mut dyn Platform, token: &str, hint: &'static str| {
                let params = request::revocation_params(token, hint);
                call::post_form(
                    p,
                    &s.client,
                    &endpoint,
                    &params,
                    Replay::Safe,
                    deadline,
                    classify::classify_revocation,
                    dpop.as_mut(),
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
                            s.commit(p, &[Event::RefreshTokenRevoked], OnConflict::Reapply);
                        }
                        return Err(err);
                    }
                }
            }
        }
        s.reset(p);
        Ok(())
    }

    /// Forgets the session, here and in the store.
    pub fn close_session(&mut self, p: &mut dyn Platform, key: &str) {
        self.sessions.remove(key);
        replica::delete_stored(p, key);
    }

    /// Forgets the session in this instance only: its stored record stays, for other
    /// instances and for a later [`OAuth::open_session`] here to continue from.
    pub fn forget_session(&mut self, key: &str) {
        self.sessions.remove(key);
    }
}

/// The grant that obtains a token again without a person, sent to `endpoint`: a
/// signed JWT-bearer session mints a fresh assertion, and a fixed assertion is not sent
/// after its `exp` (a server would refuse it, and a replayed one may count against the
/// client).
fn acquisition_grant(
    p: &mut dyn Platform,
    client: &Client,
    endpoint: &str,
    grant: &SessionGrant,
) -> Result<Grant, OAuthError> {
    Ok(match grant {
        SessionGrant::ClientCredentials => Grant::ClientCredentials,
        SessionGrant::Password(credentials) => Grant::Password(credentials.clone()),
        SessionGrant::TokenExchange(exchange) => Grant::TokenExchange(exchange.clone()),
        SessionGrant::JwtBearer(assertion) => {
            if let Some(exp) = jwt::expiry(assertion)
                && p.now_secs() >= exp
            {
                return Err(OAuthError::AuthorizationRequired(format!(
                    "the session's JWT-bearer assertion expired (exp {exp}): open the session with a new one, or with an assertion signer so that one is signed per request"
                )));
            }
            Grant::JwtBearer(assertion.clone())
        }
        SessionGrant::SignedJwtBearer(signer) => {
            // RFC 7523 §3: the audience identifies the authorization server, as for
            // client assertions (see `client_auth`).
            let audience = signer
                .audience
                .as_deref()
                .or(client.issuer.as_deref())
                .unwrap_or(endpoint);
            let jti = pkce::random_token(p);
            Grant::JwtBearer(jwt::grant_assertion(signer, audience, p.now_secs(), &jti)?)
        }
        other @ (SessionGrant::AuthorizationCode
        | SessionGrant::DeviceCode
        | SessionGrant::RefreshToken(_)) => {
            return Err(OAuthError::AuthorizationRequired(format!(
                "the {} grant cannot obtain a token without a person",
                GrantKind::of(other).name()
            )));
        }
    })
}

/// A token request to the client's token endpoint (discovered, if it has an issuer)
/// with the parameters `params` makes for that endpoint.
#[allow(clippy::too_many_arguments)]
fn to_token_endpoint(
    p: &mut dyn Platform,
    discovery: &mut Discovery,
    client: &Client,
    record: Option<&SessionRecord>,
    deadline: Deadline,
    replay: Replay,
    params: impl FnOnce(&mut dyn Platform, &str) -> Result<Params, OAuthError>,
) -> Result<TokenResponse, Failed> {
    let endpoint = discovery
        .endpoint(p, client, Endpoint::Token, deadline)
        .map_err(Failed::unsent)?;
    let params = params(p, &endpoint).map_err(Failed::unsent)?;
    send_token_request(
        p, discovery, client, record, &endpoint, &params, replay, deadline,
    )
}

/// A token request to `endpoint`, signed with the DPoP key of `client` (or of the
/// session whose `record` holds it) when the client binds one, with the nonce the
/// server gave last; the nonce it ends with is kept.
#[allow(clippy::too_many_arguments)]
fn send_token_request(
    p: &mut dyn Platform,
    discovery: &mut Discovery,
    client: &Client,
    record: Option<&SessionRecord>,
    endpoint: &str,
    params: &Params,
    replay: Replay,
    deadline: Deadline,
) -> Result<TokenResponse, Failed> {
    let mut dpop: Option<Dpop> = dpop_key(client, record)
        .map_err(Failed::unsent)?
        .map(|key| discovery.dpop(key, endpoint));
    let result = call::token_request(p, client, endpoint, params, replay, deadline, dpop.as_mut());
    if let Some(dpop) = &dpop {
        discovery.learn_nonce(endpoint, dpop);
    }
    result
}

/// The DPoP key requests for `client` are signed with: its fixed key, or the session's
/// own, from `record`; `None` when the client binds no key.
fn dpop_key(
    client: &Client,
    record: Option<&SessionRecord>,
) -> Result<Option<DpopKey>, OAuthError> {
    match &client.dpop {
        None => Ok(None),
        Some(DpopBinding::Fixed(key)) => DpopKey::from_signing_key(key).map(Some),
        Some(DpopBinding::PerSession) => {
            let stored = record.and_then(|r| r.dpop_key.as_ref()).ok_or_else(|| {
                OAuthError::Config(
                    "a per-session DPoP key belongs to a session: open one, or give the client a fixed DPoP key for one-off token requests".into(),
                )
            })?;
            let der = URL_SAFE_NO_PAD.decode(stored.secret()).map_err(|_| {
                OAuthError::Store("the session's stored DPoP key is not base64url".into())
            })?;
            DpopKey::from_pkcs8(&der).map(Some)
        }
    }
}

/// When a lease taken for a call with `deadline` lapses: after the call's end plus
/// [`LEASE_MARGIN_MS`], whenever during the call it is taken, so that a lease always
/// outlasts its holder's call.
pub fn lease_until(deadline: Deadline) -> u64 {
    deadline.end_ms().saturating_add(LEASE_MARGIN_MS)
}

/// Takes the session's lease for `holder` (code redemption), waiting while another
/// instance holds it, re-reading the store without a request, until it is given back
/// or lapses, or the deadline passes.
fn wait_for_lease(
    p: &mut dyn Platform,
    s: &mut Session,
    holder: &str,
    deadline: Deadline,
) -> Result<(), OAuthError> {
    let mut pause = LEASE_POLL_MS;
    loop {
        match s.try_lease(p, holder, lease_until(deadline)) {
            Ok(None) => return Ok(()),
            Ok(Some(other)) => {
                let left = deadline.remaining(p.now_ms());
                if left == 0 {
                    return Err(OAuthError::Store(format!(
                        "instance {} is redeeming for session {:?} and had not stored its result within this call's deadline",
                        other.holder, s.key
                    )));
                }
                p.sleep_ms(pause.min(left));
                pause = (pause * 2).min(LEASE_POLL_MAX_MS);
            }
            Err(e) => {
                return Err(OAuthError::Store(format!(
                    "the lease of session {:?} could not be taken, so nothing was sent: {e}",
                    s.key
                )));
            }
        }
    }
}

/// `err` without the tokens the session holds or held: a server may echo the expired
/// access token in the answer to its renewal, which the request never carried.
fn hide_held(err: OAuthError, s: &Session) -> OAuthError {
    let mut held: Vec<String> = Vec::new();
    if let Some(token) = &s.record.token {
        held.push(token.access_token.secret().to_string());
        if let Some(id) = &token.id_token {
            held.push(id.secret().to_string());
        }
    }
    if let Some(refresh) = &s.record.refresh_token {
        held.push(refresh.secret().to_string());
    }
    redact::finish(err, &held)
}

/// The events that record a failed renewal: a refresh the server may have acted on
/// (`spent`) retires its refresh token (and backs off); otherwise a transient failure
/// backs off; a failure retrying cannot fix is held for the client's hold-off.
fn failure_events(
    p: &mut dyn Platform,
    s: &Session,
    err: &OAuthError,
    spent: Option<RefreshToken>,
) -> Vec<Event> {
    let (error, retry_after, random) = (err.to_string(), err.retry_after(), p.random_u64());
    let mut events = Vec::new();
    if let Some(sent) = spent {
        events.push(Event::RefreshLost {
            sent,
            error,
            retry_after,
            random,
        });
    } else if retry::is_transient(err) {
        events.push(Event::TransientFailure {
            error,
            retry_after,
            random,
        });
    }
    if retry::is_permanent(err) {
        events.push(Event::PermanentFailure {
            error: err.clone(),
            hold_off: s
                .client
                .failure_hold_off(s.record.refusals().saturating_add(1)),
        });
    }
    events
}

/// Records a newly issued token (after `before`), giving back the lease if this
/// instance holds it, and returns the token, or the fresher one another replica
/// stored meanwhile.
fn issue(
    p: &mut dyn Platform,
    s: &mut Session,
    before: &[Event],
    response: TokenResponse,
) -> Result<Token, OAuthError> {
    let now = p.now_secs();
    let mut events = before.to_vec();
    events.push(Event::Issued {
        response,
        requested_scopes: s.client.scopes.clone(),
        skew: s.client.refresh_skew(),
        jitter: s.client.refresh_jitter(),
        random: p.random_u64(),
    });
    s.finish(p, &events, OnConflict::AdoptFreshToken);
    s.alive(now)
        .ok_or_else(|| OAuthError::InvalidResponse("the issued token had already expired".into()))
}

fn end_device(p: &mut dyn Platform, s: &mut Session, reason: &str) -> OAuthError {
    s.finish(
        p,
        &[Event::DeviceEnded {
            reason: Some(reason.into()),
        }],
        OnConflict::Reapply,
    );
    OAuthError::AuthorizationRequired(reason.into())
}
