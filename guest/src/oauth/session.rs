//! The session state machine, pure: a persisted [`SessionRecord`], the [`Event`]s that
//! change it, and [`next`], which applies one at a given time. The phase is derived
//! from the record (see [`SessionRecord::phase`]), so it can never disagree with it.
//!
//! The record is what the store holds (serde JSON, with a format `version` and a
//! `revision` bumped on every change). It holds tokens but never the client's
//! configuration or its secrets: those stay in the memory of the instance that opened
//! the session. A `client_fingerprint` ties a record to the configuration that made it,
//! so reopening with the same configuration continues and a different one starts fresh.
//!
//! Tokens without `expires_in` (RFC 6749 §5.1 makes it only RECOMMENDED) are reported
//! with no `expires_at` but are renewed after [`DEFAULT_LIFETIME`] when that needs no
//! person (a refresh token is held or the grant can be repeated); otherwise they are
//! used until revoked or the session is closed, since nothing better can replace them.

use serde::{Deserialize, Serialize};

use super::classify::TokenResponse;
use super::retry;
use gateway_auth_api::secret_type;
use gateway_auth_api::{
    AccessToken, Client, ClientAuth, DeviceCode, IdToken, RefreshToken, SessionGrant, SessionLease,
    SessionPhase, SessionState, Token,
};
use gateway_auth_api::{BackoffError, OAuthError};

/// The record format this code writes; it reads this one and version 1 (flat failure
/// and pending fields). A record of another version is ignored (and replaced on the
/// next write).
pub const RECORD_VERSION: u32 = 2;

/// How long a pending authorization (state and PKCE verifier) may be completed, in
/// seconds.
pub const AUTHORIZATION_TTL: u64 = 300;

/// The lifetime assumed for renewal of a token that came without `expires_in`, in
/// seconds.
pub const DEFAULT_LIFETIME: u64 = 3_600;

secret_type!(
    /// A PKCE verifier at rest in a pending authorization; it becomes a
    /// [`PkceCodeVerifier`](gateway_auth_api::PkceCodeVerifier) when the code is redeemed.
    PendingVerifier
);

/// The kind of a session's grant, without its secrets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantKind {
    /// Client credentials.
    ClientCredentials,
    /// Resource owner password.
    Password,
    /// Authorization code with PKCE.
    AuthorizationCode,
    /// Device authorization.
    DeviceCode,
    /// Token exchange.
    TokenExchange,
    /// JWT bearer.
    JwtBearer,
    /// A refresh token given at open.
    RefreshToken,
}

impl GrantKind {
    /// The kind of `grant`.
    pub fn of(grant: &SessionGrant) -> Self {
        match grant {
            SessionGrant::ClientCredentials => Self::ClientCredentials,
            SessionGrant::Password(_) => Self::Password,
            SessionGrant::AuthorizationCode => Self::AuthorizationCode,
            SessionGrant::DeviceCode => Self::DeviceCode,
            SessionGrant::TokenExchange(_) => Self::TokenExchange,
            SessionGrant::JwtBearer(_) | SessionGrant::SignedJwtBearer(_) => Self::JwtBearer,
            SessionGrant::RefreshToken(_) => Self::RefreshToken,
        }
    }

    /// The grant's name as the RFCs spell it.
    pub fn name(self) -> &'static str {
        match self {
            Self::ClientCredentials => "client_credentials",
            Self::Password => "password",
            Self::AuthorizationCode => "authorization_code",
            Self::DeviceCode => "device_code",
            Self::TokenExchange => "token_exchange",
            Self::JwtBearer => "jwt_bearer",
            Self::RefreshToken => "refresh_token",
        }
    }

    /// Whether a token can be obtained again without a person.
    pub fn unattended(self) -> bool {
        match self {
            Self::ClientCredentials | Self::Password | Self::TokenExchange | Self::JwtBearer => {
                true
            }
            Self::AuthorizationCode | Self::DeviceCode | Self::RefreshToken => false,
        }
    }
}

/// The access token a session holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldToken {
    /// The token.
    pub access_token: AccessToken,
    /// Its type.
    pub token_type: String,
    /// When it was issued (received), Unix seconds.
    pub issued_at: u64,
    /// When it expires, if the server said.
    pub expires_at: Option<u64>,
    /// The scopes granted.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// The OpenID Connect ID token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token: Option<IdToken>,
    /// RFC 8693 `issued_token_type`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued_token_type: Option<String>,
    /// How many seconds before its usual renewal point this token is renewed: drawn
    /// once when it is issued (see `Client::refresh_jitter`), and stored, so every
    /// replica renews it at the same point and a herd issued together spreads out.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub renew_early: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl HeldToken {
    /// The token of `response`, received at `now`; `default_scopes` apply when the
    /// server listed none (RFC 6749 §5.1: then they are as requested).
    pub fn from_response(response: &TokenResponse, now: u64, default_scopes: &[String]) -> Self {
        Self {
            access_token: response.access_token.clone(),
            token_type: response.token_type.clone(),
            issued_at: now,
            expires_at: response.expires_in.map(|s| now.saturating_add(s)),
            scopes: response
                .scopes
                .clone()
                .unwrap_or_else(|| default_scopes.to_vec()),
            id_token: response.id_token.clone(),
            issued_token_type: response.issued_token_type.clone(),
            renew_early: 0,
        }
    }

    /// The same token, renewed up to `jitter` seconds before its usual point, by
    /// `random`; never in the first half of its remaining life, so a short-lived
    /// token is not due on arrival.
    /// A token without expiry is renewed (when it can be) up to `jitter` before
    /// [`DEFAULT_LIFETIME`] likewise.
    pub fn jittered(mut self, jitter: u64, random: u64, skew: u64) -> Self {
        let usual = self.renew_at(skew, true);
        let room = usual.saturating_sub(self.issued_at) / 2;
        let most = jitter.min(room);
        self.renew_early = random % most.saturating_add(1);
        self
    }

    /// Whether the server still accepts it at `now`, as far as is known.
    pub fn alive(&self, now: u64) -> bool {
        self.expires_at.is_none_or(|at| now < at)
    }

    /// When to renew it: `skew` seconds before expiry, or half its lifetime before if it
    /// lives less than two skews (so a 60-second token is not "due" on arrival). A token
    /// without expiry is due after [`DEFAULT_LIFETIME`] if `renewable`, else never.
    pub fn renew_at(&self, skew: u64, renewable: bool) -> u64 {
        match self.expires_at {
            Some(at) => {
                let lifetime = at.saturating_sub(self.issued_at);
                let skew = if lifetime < skew.saturating_mul(2) {
                    lifetime / 2
                } else {
                    skew
                };
                (at - skew).saturating_sub(self.renew_early)
            }
            None if renewable => self
                .issued_at
                .saturating_add(DEFAULT_LIFETIME)
                .saturating_sub(self.renew_early),
            None => u64::MAX,
        }
    }

    /// The public form; sessions never hand out their refresh token.
    pub fn to_token(&self) -> Token {
        Token {
            access_token: self.access_token.clone(),
            token_type: self.token_type.clone(),
            expires_at: self.expires_at,
            scopes: self.scopes.clone(),
            refresh_token: None,
            id_token: self.id_token.clone(),
            issued_token_type: self.issued_token_type.clone(),
        }
    }
}

/// An authorization-code flow waiting for its redirect.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingAuthorization {
    /// The state the redirect must carry back (RFC 6749 §10.12).
    pub state: String,
    /// The PKCE verifier of the challenge that was sent.
    pub verifier: PendingVerifier,
    /// When it can no longer be completed, Unix seconds.
    pub expires_at: u64,
    /// Whether the issuer's metadata says the redirect carries `iss` (RFC 9207 §3),
    /// so that a redirect without one is refused.
    #[serde(default)]
    pub iss_required: bool,
}

/// A device authorization waiting for the user (RFC 8628).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingDevice {
    /// The device code to poll with.
    pub device_code: DeviceCode,
    /// When it expires, Unix seconds.
    pub expires_at: u64,
    /// The polling interval, in seconds (grown by `slow_down`).
    pub interval: u64,
    /// The earliest time of the next poll, Unix seconds.
    pub next_poll_at: u64,
}

/// The one flow a session can be waiting on for a person.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "flow", rename_all = "snake_case")]
pub enum Pending {
    /// An authorization-code flow waiting for its redirect.
    Authorization(PendingAuthorization),
    /// A device authorization waiting for the user.
    Device(PendingDevice),
}

impl Pending {
    /// When it can no longer be completed, Unix seconds.
    fn expires_at(&self) -> u64 {
        match self {
            Self::Authorization(a) => a.expires_at,
            Self::Device(d) => d.expires_at,
        }
    }
}

/// The one failure state a session can be in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Failure {
    /// Transient failures: nothing is sent before `until`; `failures` counts them, so
    /// the next backoff grows.
    Backoff {
        /// Consecutive transient failures.
        failures: u32,
        /// No request before this time, Unix seconds.
        until: u64,
        /// The last one, described (without secrets).
        last_error: String,
    },
    /// A failure retrying cannot fix, answered without a request until `until`.
    Refused {
        /// The error, as the caller saw it (secrets removed).
        error: OAuthError,
        /// Consecutive such failures, so the next hold-off grows.
        refusals: u32,
        /// No request before this time, Unix seconds.
        until: u64,
    },
    /// Nothing renews the token without a person, for this reason.
    AuthorizationRequired {
        /// Why, for the caller.
        reason: String,
    },
}

/// What the store holds for one session. Optional parts are grouped so that a record
/// cannot hold two pending flows or two failure states at once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SessionRecord {
    /// The format version, [`RECORD_VERSION`].
    pub version: u32,
    /// Bumped on every change.
    pub revision: u64,
    /// See [`client_fingerprint`].
    pub client_fingerprint: String,
    /// The session's grant.
    pub grant: GrantKind,
    /// The access token.
    pub token: Option<HeldToken>,
    /// The newest refresh token.
    pub refresh_token: Option<RefreshToken>,
    /// The flow waiting for a person, if one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending: Option<Pending>,
    /// The failure state, if the last renewal failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
    /// The instance renewing the session, if one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease: Option<Lease>,
    /// The session's own DPoP key (base64url PKCS#8), when its client binds tokens to
    /// one per session: kept with the tokens it binds, so every replica signs alike.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dpop_key: Option<StoredDpopKey>,
}

gateway_auth_api::secret_type!(
    /// A session's DPoP private key as stored: base64url of its PKCS#8 DER.
    StoredDpopKey
);

/// A stored record as read: this version's fields, and version 1's flat ones, which
/// are folded into the groups so that an upgrade keeps every session's tokens.
#[derive(Deserialize)]
struct StoredRecord {
    version: u32,
    revision: u64,
    client_fingerprint: String,
    grant: GrantKind,
    #[serde(default)]
    token: Option<HeldToken>,
    #[serde(default)]
    refresh_token: Option<RefreshToken>,
    #[serde(default)]
    pending: Option<Pending>,
    #[serde(default)]
    failure: Option<Failure>,
    #[serde(default)]
    lease: Option<Lease>,
    #[serde(default)]
    dpop_key: Option<StoredDpopKey>,
    // Version 1.
    #[serde(default)]
    failures: u32,
    #[serde(default)]
    backoff_until: Option<u64>,
    #[serde(default)]
    last_error: Option<String>,
    #[serde(default)]
    authorization_required: Option<String>,
    #[serde(default)]
    held_error: Option<OAuthError>,
    #[serde(default)]
    permanent_failures: u32,
    #[serde(default)]
    failed_until: Option<u64>,
    #[serde(default)]
    pending_authorization: Option<PendingAuthorization>,
    #[serde(default)]
    pending_device: Option<PendingDevice>,
}

impl StoredRecord {
    /// The record, or `None` for a version this code does not know.
    fn into_record(self) -> Option<SessionRecord> {
        let (pending, failure) = match self.version {
            RECORD_VERSION => (self.pending, self.failure),
            1 => {
                let pending = match (self.pending_authorization, self.pending_device) {
                    (Some(a), _) => Some(Pending::Authorization(a)),
                    (None, Some(d)) => Some(Pending::Device(d)),
                    (None, None) => None,
                };
                let failure = match (self.held_error, self.failed_until) {
                    (Some(error), Some(until)) => Some(Failure::Refused {
                        error,
                        refusals: self.permanent_failures.max(1),
                        until,
                    }),
                    _ => match (self.authorization_required, self.backoff_until) {
                        (Some(reason), _) => Some(Failure::AuthorizationRequired { reason }),
                        (None, Some(until)) => Some(Failure::Backoff {
                            failures: self.failures.max(1),
                            until,
                            last_error: self.last_error.unwrap_or_default(),
                        }),
                        (None, None) => None,
                    },
                };
                (pending, failure)
            }
            _ => return None,
        };
        Some(SessionRecord {
            version: RECORD_VERSION,
            revision: self.revision,
            client_fingerprint: self.client_fingerprint,
            grant: self.grant,
            token: self.token,
            refresh_token: self.refresh_token,
            pending,
            failure,
            lease: self.lease,
            dpop_key: self.dpop_key,
        })
    }
}

/// An instance's claim to renew the session (or redeem its code or device code): while
/// it is live, no other instance sends such a request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// The holder's id, random per plugin instance.
    pub holder: String,
    /// When it lapses, Unix milliseconds: a holder that died is taken over then.
    pub until_ms: u64,
}

impl Lease {
    /// Whether it holds at `now_ms`.
    pub fn live(&self, now_ms: u64) -> bool {
        now_ms < self.until_ms
    }
}

impl SessionRecord {
    /// An empty record.
    pub fn new(client_fingerprint: impl Into<String>, grant: GrantKind) -> Self {
        Self {
            version: RECORD_VERSION,
            revision: 0,
            client_fingerprint: client_fingerprint.into(),
            grant,
            token: None,
            refresh_token: None,
            pending: None,
            failure: None,
            lease: None,
            dpop_key: None,
        }
    }

    /// The stored form.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Serializing plain structs with string keys cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Parses a stored record (this version's, or version 1's); `None` for anything
    /// unreadable or of another version, which is then treated as no record at all.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        serde_json::from_slice::<StoredRecord>(bytes)
            .ok()
            .and_then(StoredRecord::into_record)
    }

    /// Whether a held token can be renewed without a person.
    pub fn renewable(&self) -> bool {
        self.refresh_token.is_some() || self.grant.unattended()
    }

    /// The held token if it is not yet due for renewal at `now`.
    pub fn fresh_token(&self, now: u64, skew: u64) -> Option<&HeldToken> {
        self.token
            .as_ref()
            .filter(|t| now < t.renew_at(skew, self.renewable()))
    }

    /// The held token if it has not expired at `now`.
    pub fn alive_token(&self, now: u64) -> Option<&HeldToken> {
        self.token.as_ref().filter(|t| t.alive(now))
    }

    /// The backoff in force at `now`, if any.
    pub fn backoff(&self, now: u64) -> Option<BackoffError> {
        match &self.failure {
            Some(Failure::Backoff {
                failures,
                until,
                last_error,
            }) if now < *until => Some(BackoffError {
                retry_at: *until,
                failures: *failures,
                last_error: last_error.clone(),
            }),
            _ => None,
        }
    }

    /// The failure retrying cannot fix, while its hold-off lasts at `now`.
    pub fn held_error(&self, now: u64) -> Option<&OAuthError> {
        match &self.failure {
            Some(Failure::Refused { error, until, .. }) if now < *until => Some(error),
            _ => None,
        }
    }

    /// Consecutive failures retrying cannot fix, in force or lapsed.
    pub fn refusals(&self) -> u32 {
        match &self.failure {
            Some(Failure::Refused { refusals, .. }) => *refusals,
            _ => 0,
        }
    }

    /// Why a person must authorize again, when one must.
    pub fn authorization_required(&self) -> Option<&str> {
        match &self.failure {
            Some(Failure::AuthorizationRequired { reason }) => Some(reason),
            _ => None,
        }
    }

    /// The pending authorization-code flow, if one is.
    pub fn pending_authorization(&self) -> Option<&PendingAuthorization> {
        match &self.pending {
            Some(Pending::Authorization(a)) => Some(a),
            _ => None,
        }
    }

    /// The pending device flow, if one is.
    pub fn pending_device(&self) -> Option<&PendingDevice> {
        match &self.pending {
            Some(Pending::Device(d)) => Some(d),
            _ => None,
        }
    }

    /// The lease another holder than `holder` has at `now_ms`, if any.
    pub fn leased_to_another(&self, holder: &str, now_ms: u64) -> Option<&Lease> {
        self.lease
            .as_ref()
            .filter(|l| l.live(now_ms) && l.holder != holder)
    }

    /// Whether `holder` has the live lease at `now_ms`.
    pub fn leased_to(&self, holder: &str, now_ms: u64) -> bool {
        self.lease
            .as_ref()
            .is_some_and(|l| l.live(now_ms) && l.holder == holder)
    }

    /// The phase at `now`.
    pub fn phase(&self, now: u64) -> SessionPhase {
        if self.held_error(now).is_some() {
            SessionPhase::Failed
        } else if self.backoff(now).is_some() {
            SessionPhase::Backoff
        } else if self.pending.as_ref().is_some_and(|p| now < p.expires_at()) {
            SessionPhase::Authorizing
        } else if self.alive_token(now).is_some() || self.refresh_token.is_some() {
            SessionPhase::Valid
        } else if self.authorization_required().is_some()
            || (!self.grant.unattended() && self.token.is_some())
        {
            SessionPhase::AuthorizationRequired
        } else {
            SessionPhase::Empty
        }
    }

    /// The status at `now`, without secrets.
    pub fn status(&self, now: u64) -> SessionState {
        let mut status = SessionState::default();
        status.lease = self
            .lease
            .as_ref()
            .filter(|l| l.live(now.saturating_mul(1000)))
            .map(|l| SessionLease {
                holder: l.holder.clone(),
                expires_at: l.until_ms.div_ceil(1000),
            });
        status.phase = self.phase(now);
        status.expires_at = self.token.as_ref().and_then(|t| t.expires_at);
        status.has_refresh_token = self.refresh_token.is_some();
        match &self.failure {
            Some(Failure::Backoff {
                failures, until, ..
            }) => {
                status.failures = *failures;
                status.retry_at = Some(*until).filter(|until| now < *until);
            }
            Some(Failure::Refused {
                refusals, until, ..
            }) => {
                status.refusals = *refusals;
                status.retry_at = Some(*until).filter(|until| now < *until);
            }
            Some(Failure::AuthorizationRequired { .. }) | None => {}
        }
        status.scopes = self
            .token
            .as_ref()
            .map(|t| t.scopes.clone())
            .unwrap_or_default();
        status
    }
}

/// Something that happened to a session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A failure retrying cannot fix: answered from memory, without a request, for
    /// `hold_off` seconds.
    PermanentFailure {
        /// The error, as the caller saw it (secrets already removed).
        error: OAuthError,
        /// The hold-off, in seconds.
        hold_off: u64,
    },
    /// The session was opened again (perhaps with corrected credentials): a held
    /// failure no longer holds.
    Reopened,
    /// An upstream refused this access token although it looked valid: if the session
    /// still holds it, it is dropped.
    TokenRejected(AccessToken),
    /// The server issued a token. Scopes it did not list are those of the token it
    /// replaces, else `requested_scopes`.
    Issued {
        /// The classified response.
        response: TokenResponse,
        /// The client's scopes.
        requested_scopes: Vec<String>,
        /// The client's refresh skew and jitter, seconds.
        skew: u64,
        /// See [`Event::Issued::skew`].
        jitter: u64,
        /// Randomness that places the renewal point within the jitter.
        random: u64,
    },
    /// The refresh token was refused (`invalid_grant`): it is dropped, unless the record
    /// already holds a newer one (another replica rotated it).
    RefreshRejected {
        /// The token the server refused.
        rejected: RefreshToken,
        /// Why, for the caller.
        reason: String,
    },
    /// A refresh was sent and its answer lost (a timeout or reset after the request
    /// may have reached the server): the server may have spent the refresh token and
    /// rotated it, so it is never sent again (a reuse would revoke the whole token
    /// family). Grants that need no person acquire anew; others need a person.
    RefreshLost {
        /// The token that was sent.
        sent: RefreshToken,
        /// The failure, described.
        error: String,
        /// The server's `Retry-After`.
        retry_after: Option<u64>,
        /// Randomness for the backoff's jitter.
        random: u64,
    },
    /// A call ended in a transient failure.
    TransientFailure {
        /// The failure, described.
        error: String,
        /// The server's `Retry-After`.
        retry_after: Option<u64>,
        /// Randomness for the jitter.
        random: u64,
    },
    /// Nothing can renew the token without a person.
    AuthorizationNeeded {
        /// Why, for the caller.
        reason: String,
    },
    /// An authorization-code flow began (replacing any pending flow).
    AuthorizationBegun(PendingAuthorization),
    /// The pending authorization was used (or expired).
    AuthorizationConsumed,
    /// A device flow began (replacing any pending flow).
    DeviceBegun(PendingDevice),
    /// The device flow goes on; poll again after `interval` seconds.
    DeviceWait {
        /// The (possibly grown) interval.
        interval: u64,
    },
    /// The device flow ended; `reason` says why a person must start again, if one must.
    DeviceEnded {
        /// Why, when it ended without a token.
        reason: Option<String>,
    },
    /// A refresh token given at open, used when the record holds none.
    Seeded(RefreshToken),
    /// A DPoP key made for the session, kept unless the record holds one already
    /// (another replica made its own first).
    DpopKeyMade(StoredDpopKey),
    /// The refresh token was revoked.
    RefreshTokenRevoked,
    /// An instance took the lease.
    LeaseTaken(Lease),
    /// The holder gave the lease back (a lease of another holder stays).
    LeaseReleased {
        /// Who gives it back.
        holder: String,
    },
}

/// `record`'s failure after one more transient failure at `now`.
fn backed_off(
    record: &SessionRecord,
    error: &str,
    retry_after: Option<u64>,
    random: u64,
    now: u64,
) -> Failure {
    let failures = match &record.failure {
        Some(Failure::Backoff { failures, .. }) => failures.saturating_add(1),
        _ => 1,
    };
    let delay = retry::session_backoff_secs(failures, retry_after, random);
    Failure::Backoff {
        failures,
        until: now.saturating_add(delay),
        last_error: error.to_string(),
    }
}

/// The record after `event` at `now`.
pub fn next(mut record: SessionRecord, event: &Event, now: u64) -> SessionRecord {
    record.revision += 1;
    match event {
        Event::Issued {
            response,
            requested_scopes,
            skew,
            jitter,
            random,
        } => {
            let default_scopes = record
                .token
                .as_ref()
                .map(|t| t.scopes.clone())
                .unwrap_or_else(|| requested_scopes.clone());
            let token = HeldToken::from_response(response, now, &default_scopes);
            record.token = Some(token.jittered(*jitter, *random, *skew));
            // Rotation (RFC 6749 §6, §10.4): the newest refresh token wins; a response
            // without one leaves the current one in force.
            if let Some(rotated) = &response.refresh_token {
                record.refresh_token = Some(rotated.clone());
            }
            record.failure = None;
        }
        Event::RefreshRejected { rejected, reason } => {
            if record.refresh_token.as_ref() == Some(rejected) {
                record.refresh_token = None;
                record.failure =
                    (!record.grant.unattended()).then(|| Failure::AuthorizationRequired {
                        reason: reason.clone(),
                    });
            } else if matches!(record.failure, Some(Failure::Backoff { .. })) {
                record.failure = None;
            }
        }
        Event::RefreshLost {
            sent,
            error,
            retry_after,
            random,
        } => {
            if record.refresh_token.as_ref() == Some(sent) {
                record.refresh_token = None;
                if !record.grant.unattended() {
                    record.failure = Some(Failure::AuthorizationRequired {
                        reason: format!(
                            "the answer to a refresh was lost ({error}); the server may have spent the refresh token, so it is not sent again"
                        ),
                    });
                    return record;
                }
            }
            record.failure = Some(backed_off(&record, error, *retry_after, *random, now));
        }
        Event::TransientFailure {
            error,
            retry_after,
            random,
        } => {
            record.failure = Some(backed_off(&record, error, *retry_after, *random, now));
        }
        Event::PermanentFailure { error, hold_off } => {
            record.failure = Some(Failure::Refused {
                error: error.clone(),
                refusals: record.refusals().saturating_add(1),
                until: now.saturating_add(*hold_off),
            });
        }
        Event::Reopened => {
            if matches!(record.failure, Some(Failure::Refused { .. })) {
                record.failure = None;
            }
        }
        Event::TokenRejected(rejected) => {
            if record
                .token
                .as_ref()
                .is_some_and(|held| held.access_token.secret() == rejected.secret())
            {
                record.token = None;
            }
        }
        Event::AuthorizationNeeded { reason } => {
            record.failure = Some(Failure::AuthorizationRequired {
                reason: reason.clone(),
            });
        }
        Event::AuthorizationBegun(pending) => {
            record.pending = Some(Pending::Authorization(pending.clone()));
        }
        Event::AuthorizationConsumed => {
            if matches!(record.pending, Some(Pending::Authorization(_))) {
                record.pending = None;
            }
        }
        Event::DeviceBegun(pending) => record.pending = Some(Pending::Device(pending.clone())),
        Event::DeviceWait { interval } => {
            if let Some(Pending::Device(pending)) = &mut record.pending {
                pending.interval = *interval;
                pending.next_poll_at = now.saturating_add(*interval);
            }
        }
        Event::DeviceEnded { reason } => {
            if matches!(record.pending, Some(Pending::Device(_))) {
                record.pending = None;
            }
            if let Some(reason) = reason {
                record.failure = Some(Failure::AuthorizationRequired {
                    reason: reason.clone(),
                });
            }
        }
        Event::DpopKeyMade(key) => {
            if record.dpop_key.is_none() {
                record.dpop_key = Some(key.clone());
            }
        }
        Event::Seeded(token) => {
            if record.refresh_token.is_none() {
                record.refresh_token = Some(token.clone());
                if record.authorization_required().is_some() {
                    record.failure = None;
                }
            }
        }
        Event::RefreshTokenRevoked => record.refresh_token = None,
        Event::LeaseTaken(lease) => record.lease = Some(lease.clone()),
        Event::LeaseReleased { holder } => {
            if record.lease.as_ref().is_some_and(|l| &l.holder == holder) {
                record.lease = None;
            }
        }
    }
    record
}

/// What an instance knows besides the record when it decides how to get a session's
/// token: see [`decide`].
#[derive(Clone, Copy, Debug)]
pub struct View<'a> {
    /// Now, Unix milliseconds.
    pub now_ms: u64,
    /// This instance's lease holder id.
    pub holder: &'a str,
    /// The client's refresh skew, seconds.
    pub skew: u64,
    /// The record holds a change (a rotated refresh token, say) the store has not
    /// taken yet, and this call has not tried to store it yet.
    pub unsaved: bool,
    /// This call could not reach the store to take the lease (the error).
    pub store_error: Option<&'a str>,
}

/// What to do next to answer `access-token`; the engine executes it and decides again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Serve the held token.
    Serve,
    /// Answer this error without a request.
    Fail(OAuthError),
    /// Store the change the store has not taken before anything else, so that no other
    /// instance renews from an older record (with a spent refresh token).
    Save,
    /// Another instance holds the lease and no live token is held: wait for its result
    /// by re-reading the store.
    Wait,
    /// Take the renewal lease.
    TakeLease,
    /// Refresh with this refresh token (the lease is held).
    Refresh(RefreshToken),
    /// Obtain a token again with the session's grant (the lease is held, or the grant
    /// spends nothing single-use and the store cannot be reached).
    Acquire,
    /// Nothing renews the token without a person, for this reason.
    NeedPerson(String),
}

/// The renewal decision, pure: from the record and what this instance knows, whether to
/// serve the held token, answer a held failure, store an unsaved change, wait for
/// another holder, take the lease, refresh or acquire again.
pub fn decide(record: &SessionRecord, view: &View<'_>) -> Step {
    let now = view.now_ms / 1000;
    let alive = record.alive_token(now).is_some();
    // A live answer without a request wherever one exists: the held token while it is
    // not due, then while it lives.
    let serve_or = |step: Step| if alive { Step::Serve } else { step };
    if view.unsaved {
        return Step::Save;
    }
    if record.fresh_token(now, view.skew).is_some() {
        return Step::Serve;
    }
    if let Some(error) = record.held_error(now) {
        return serve_or(Step::Fail(error.clone()));
    }
    if let Some(backoff) = record.backoff(now) {
        return serve_or(Step::Fail(OAuthError::Backoff(backoff)));
    }
    if !record.renewable() {
        let reason = match (record.authorization_required(), &record.pending) {
            (Some(reason), _) => reason.to_string(),
            (None, Some(_)) => {
                "no token yet: the pending authorization has not been completed".into()
            }
            (None, None) => "no refresh token is held".into(),
        };
        return serve_or(Step::NeedPerson(reason));
    }
    if record.leased_to_another(view.holder, view.now_ms).is_some() {
        return serve_or(Step::Wait);
    }
    if !record.leased_to(view.holder, view.now_ms) {
        return match view.store_error {
            None => Step::TakeLease,
            // Without the store there is no lease: only a grant that spends nothing
            // single-use may go ahead.
            Some(_) if record.refresh_token.is_none() => Step::Acquire,
            Some(error) => serve_or(Step::Fail(OAuthError::Store(format!(
                "the renewal lease could not be taken, so no request was sent: {error}"
            )))),
        };
    }
    match &record.refresh_token {
        Some(token) => Step::Refresh(token.clone()),
        None => Step::Acquire,
    }
}

/// Hex SHA-256 of everything that identifies the client and grant, without secrets:
/// secrets rotate without changing who the client is, and a hash of a password would
/// invite guessing. In: the client id and authentication method, the server (issuer,
/// token endpoint), what the tokens are for (scopes, audience, resources), the grant's
/// kind and its identity (the password grant's user name, token-exchange token types,
/// and digests of the subject token, assertion or initial refresh token). Out, besides
/// secrets: settings that do not change what a token is (timeout, refresh skew, the
/// other endpoints, the redirect URI) and the TLS trust (a CA rotates).
pub fn client_fingerprint(client: &Client, grant: &SessionGrant) -> String {
    let auth = match &client.auth {
        ClientAuth::PrivateKeyJwt(key) => serde_json::json!({
            "method": client.auth.method_name(),
            "alg": key.algorithm.name(),
            "kid": key.key_id,
        }),
        ClientAuth::None
        | ClientAuth::ClientSecretBasic(_)
        | ClientAuth::ClientSecretPost(_)
        | ClientAuth::TlsClientAuth => serde_json::json!({ "method": client.auth.method_name() }),
    };
    let identity = match grant {
        SessionGrant::Password(credentials) => {
            serde_json::json!({ "username": credentials.username })
        }
        // The subject (and the assertion, below) is who the tokens are for: another
        // subject under the same key must not inherit them. Only a digest is kept.
        SessionGrant::TokenExchange(exchange) => serde_json::json!({
            "subject_token": crate::digest::sha256_hex(exchange.subject_token.secret().as_bytes()),
            "subject_token_type": exchange.subject_token_type,
            "actor_token_type": exchange.actor_token_type,
            "requested_token_type": exchange.requested_token_type,
        }),
        SessionGrant::JwtBearer(assertion) => serde_json::json!({
            "assertion": crate::digest::sha256_hex(assertion.secret().as_bytes()),
        }),
        // Who the minted assertions speak for; the key may rotate.
        SessionGrant::SignedJwtBearer(signer) => serde_json::json!({
            "iss": signer.issuer,
            "sub": signer.subject,
            "aud": signer.audience,
        }),
        // The refresh token it was opened with, not the one it holds now: a replica or
        // a restart opening with the same token shares the (rotated) session, another
        // token starts afresh.
        SessionGrant::RefreshToken(token) => serde_json::json!({
            "refresh_token": crate::digest::sha256_hex(token.secret().as_bytes()),
        }),
        // The client alone is who the tokens are for; a person's identity comes with
        // the authorization, not the configuration.
        SessionGrant::ClientCredentials
        | SessionGrant::AuthorizationCode
        | SessionGrant::DeviceCode => serde_json::Value::Null,
    };
    let canonical = serde_json::json!({
        "client_id": client.client_id,
        "auth": auth,
        "issuer": client.issuer,
        "token_endpoint": client.token_endpoint,
        "scopes": client.scopes,
        "audience": client.audience,
        "resources": client.resources,
        "grant": GrantKind::of(grant).name(),
        "grant_identity": identity,
    });
    crate::digest::sha256_hex(canonical.to_string().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use gateway_auth_api::{ClientSecret, Password, PasswordCredentials, TrustSpec};

    fn response(token: &str, expires_in: Option<u64>, refresh: Option<&str>) -> TokenResponse {
        TokenResponse {
            access_token: AccessToken::new(token),
            token_type: "Bearer".into(),
            expires_in,
            scopes: None,
            refresh_token: refresh.map(RefreshToken::new),
            id_token: None,
            issued_token_type: None,
        }
    }

    fn issued(token: &str, expires_in: Option<u64>, refresh: Option<&str>) -> Event {
        Event::Issued {
            response: response(token, expires_in, refresh),
            requested_scopes: vec!["read".into()],
            skew: 60,
            jitter: 0,
            random: 0,
        }
    }

    #[test]
    fn issue_then_rotation_keeps_the_newest_refresh_token() {
        let r = SessionRecord::new("fp", GrantKind::AuthorizationCode);
        assert_eq!(r.phase(100), SessionPhase::Empty);
        let r = next(r, &issued("A1", Some(3600), Some("R1")), 100);
        assert_eq!(r.token.as_ref().unwrap().expires_at, Some(3700));
        assert_eq!(r.token.as_ref().unwrap().scopes, vec!["read".to_string()]);
        let r = next(r, &issued("A2", Some(3600), Some("R2")), 200);
        assert_eq!(r.refresh_token.as_ref().unwrap().secret(), "R2");
        let r = next(r, &issued("A3", Some(3600), None), 300);
        assert_eq!(r.refresh_token.as_ref().unwrap().secret(), "R2");
        assert_eq!(r.token.as_ref().unwrap().access_token.secret(), "A3");
        assert_eq!((r.revision, r.phase(300)), (3, SessionPhase::Valid));
    }

    #[test]
    fn skew_is_shortened_for_short_lived_tokens() {
        let r = next(
            SessionRecord::new("fp", GrantKind::ClientCredentials),
            &issued("A", Some(3600), None),
            0,
        );
        assert!(r.fresh_token(3539, 60).is_some());
        assert!(r.fresh_token(3540, 60).is_none());
        // 60 s token, 60 s skew: renewed after 30 s, not at once.
        let r = next(r, &issued("B", Some(60), None), 0);
        assert!(r.fresh_token(29, 60).is_some());
        assert!(r.fresh_token(30, 60).is_none());
        assert!(r.alive_token(59).is_some() && r.alive_token(60).is_none());
    }

    #[test]
    fn tokens_without_expiry_are_renewed_after_the_default_lifetime_only_when_possible() {
        let r = next(
            SessionRecord::new("fp", GrantKind::ClientCredentials),
            &issued("A", None, None),
            0,
        );
        assert!(r.fresh_token(DEFAULT_LIFETIME - 1, 60).is_some());
        assert!(r.fresh_token(DEFAULT_LIFETIME, 60).is_none());
        let r = next(
            SessionRecord::new("fp", GrantKind::AuthorizationCode),
            &issued("A", None, None),
            0,
        );
        assert!(r.fresh_token(10 * DEFAULT_LIFETIME, 60).is_some());
    }

    #[test]
    fn a_refused_refresh_token_is_dropped_and_a_person_is_needed() {
        let r = next(
            SessionRecord::new("fp", GrantKind::DeviceCode),
            &issued("A", Some(60), Some("R")),
            0,
        );
        let stale = Event::RefreshRejected {
            rejected: RefreshToken::new("OLD"),
            reason: "invalid_grant".into(),
        };
        let r = next(r, &stale, 100);
        assert!(r.refresh_token.is_some(), "a newer refresh token is kept");
        let r = next(
            r,
            &Event::RefreshRejected {
                rejected: RefreshToken::new("R"),
                reason: "invalid_grant".into(),
            },
            100,
        );
        assert!(r.refresh_token.is_none());
        assert_eq!(r.phase(100), SessionPhase::AuthorizationRequired);
        // Unattended grants just acquire again.
        let r = next(
            SessionRecord::new("fp", GrantKind::Password),
            &issued("A", Some(60), Some("R")),
            0,
        );
        let r = next(
            r,
            &Event::RefreshRejected {
                rejected: RefreshToken::new("R"),
                reason: "invalid_grant".into(),
            },
            100,
        );
        assert_eq!(r.phase(100), SessionPhase::Empty);
    }

    #[test]
    fn transient_failures_back_off_and_success_resets() {
        let r = SessionRecord::new("fp", GrantKind::ClientCredentials);
        let fail = Event::TransientFailure {
            error: "503".into(),
            retry_after: Some(10),
            random: 0,
        };
        let r = next(r, &fail, 100);
        assert_eq!(r.status(100).failures, 1);
        assert_eq!(r.backoff(100).unwrap().retry_at, 110);
        assert_eq!(r.phase(109), SessionPhase::Backoff);
        assert_eq!(r.backoff(109).unwrap().last_error, "503");
        assert_eq!(r.phase(110), SessionPhase::Empty);
        let r = next(r, &fail, 110);
        assert_eq!(r.status(110).failures, 2);
        let r = next(r, &issued("A", Some(60), None), 200);
        assert_eq!(
            (r.status(200).failures, &r.failure, r.phase(200)),
            (0, &None, SessionPhase::Valid)
        );
        assert_eq!(r.status(200).retry_at, None);
    }

    #[test]
    fn pending_flows_make_the_phase_authorizing_until_they_expire() {
        let pending = PendingAuthorization {
            state: "s".into(),
            verifier: PendingVerifier::new("v"),
            expires_at: 400,
            iss_required: false,
        };
        let r = next(
            SessionRecord::new("fp", GrantKind::AuthorizationCode),
            &Event::AuthorizationBegun(pending),
            100,
        );
        assert_eq!(r.phase(399), SessionPhase::Authorizing);
        assert_eq!(r.phase(400), SessionPhase::Empty);
        let r = next(r, &Event::AuthorizationConsumed, 150);
        assert!(r.pending_authorization().is_none());

        let device = PendingDevice {
            device_code: DeviceCode::new("d"),
            expires_at: 1000,
            interval: 5,
            next_poll_at: 105,
        };
        let r = next(r, &Event::DeviceBegun(device), 100);
        let r = next(r, &Event::DeviceWait { interval: 10 }, 110);
        let d = r.pending_device().unwrap();
        assert_eq!((d.interval, d.next_poll_at), (10, 120));
        let r = next(
            r,
            &Event::DeviceEnded {
                reason: Some("expired".into()),
            },
            120,
        );
        assert_eq!(r.phase(120), SessionPhase::AuthorizationRequired);
    }

    #[test]
    fn records_round_trip_and_other_versions_are_ignored() {
        let r = next(
            SessionRecord::new("fp", GrantKind::ClientCredentials),
            &issued("A", Some(60), Some("R")),
            5,
        );
        let bytes = r.to_bytes();
        assert_eq!(SessionRecord::from_bytes(&bytes), Some(r.clone()));
        let mut other = r;
        other.version = 99;
        assert_eq!(SessionRecord::from_bytes(&other.to_bytes()), None);
        assert_eq!(SessionRecord::from_bytes(b"garbage"), None);
    }

    #[test]
    fn fingerprints_ignore_secrets_but_not_identity() {
        let client = {
            let mut client = Client::new(
                "c",
                ClientAuth::ClientSecretBasic(ClientSecret::new("one")),
                TrustSpec::default(),
            );
            client.token_endpoint = Some("https://as.example/token".into());
            client
        };
        let grant = |user: &str, pw: &str| {
            SessionGrant::Password(PasswordCredentials {
                username: user.into(),
                password: Password::new(pw),
            })
        };
        let base = client_fingerprint(&client, &grant("ann", "pw1"));
        let rotated = {
            let mut client = client.clone();
            client.auth = ClientAuth::ClientSecretBasic(ClientSecret::new("two"));
            client.timeout_ms = Some(1);
            client
        };
        assert_eq!(base, client_fingerprint(&rotated, &grant("ann", "pw2")));
        assert_ne!(base, client_fingerprint(&client, &grant("bob", "pw1")));
        assert_ne!(
            base,
            client_fingerprint(&client, &SessionGrant::ClientCredentials)
        );
        let scoped = {
            let mut client = client.clone();
            client.scopes = vec!["x".into()];
            client
        };
        assert_ne!(base, client_fingerprint(&scoped, &grant("ann", "pw1")));
        let refresh = |t: &str| SessionGrant::RefreshToken(RefreshToken::new(t));
        assert_eq!(
            client_fingerprint(&client, &refresh("RT-alice")),
            client_fingerprint(&rotated, &refresh("RT-alice"))
        );
        assert_ne!(
            client_fingerprint(&client, &refresh("RT-alice")),
            client_fingerprint(&client, &refresh("RT-bob"))
        );
        let posted = {
            let mut client = client;
            client.auth = ClientAuth::ClientSecretPost(ClientSecret::new("one"));
            client
        };
        assert_ne!(base, client_fingerprint(&posted, &grant("ann", "pw1")));
    }

    #[test]
    fn another_subject_under_the_same_key_does_not_inherit_tokens() {
        use gateway_auth_api::{Assertion, SubjectToken, TokenExchange};
        let client = {
            let mut client = Client::new(
                "c",
                ClientAuth::ClientSecretBasic(ClientSecret::new("one")),
                TrustSpec::default(),
            );
            client.token_endpoint = Some("https://as.example/token".into());
            client
        };
        let exchange = |subject: &str| {
            SessionGrant::TokenExchange(TokenExchange {
                subject_token: SubjectToken::new(subject),
                subject_token_type: "urn:ietf:params:oauth:token-type:access_token".into(),
                actor_token: None,
                actor_token_type: None,
                requested_token_type: None,
            })
        };
        let alice = client_fingerprint(&client, &exchange("alice-token"));
        assert_eq!(alice, client_fingerprint(&client, &exchange("alice-token")));
        assert_ne!(alice, client_fingerprint(&client, &exchange("bob-token")));
        assert!(!alice.contains("alice-token"));
        let bearer = |a: &str| SessionGrant::JwtBearer(Assertion::new(a));
        assert_ne!(
            client_fingerprint(&client, &bearer("assertion-a")),
            client_fingerprint(&client, &bearer("assertion-b"))
        );
    }

    /// A password session's record holding `RT` and a token issued at 0 for 60 s.
    fn holding(now: u64) -> SessionRecord {
        next(
            SessionRecord::new("fp", GrantKind::Password),
            &issued("A", Some(60), Some("RT")),
            now,
        )
    }

    fn view(now_s: u64) -> View<'static> {
        View {
            now_ms: now_s * 1000,
            holder: "me",
            skew: 10,
            unsaved: false,
            store_error: None,
        }
    }

    fn leased(mut r: SessionRecord, holder: &str, until_s: u64) -> SessionRecord {
        r.lease = Some(Lease {
            holder: holder.into(),
            until_ms: until_s * 1000,
        });
        r
    }

    #[test]
    fn decide_serves_a_token_not_yet_due_and_renews_a_due_one_under_the_lease() {
        let r = holding(0);
        assert_eq!(decide(&r, &view(49)), Step::Serve);
        assert_eq!(decide(&r, &view(50)), Step::TakeLease);
        let mine = leased(r, "me", 70);
        assert_eq!(
            decide(&mine, &view(50)),
            Step::Refresh(RefreshToken::new("RT"))
        );
        let mut spent = mine;
        spent.refresh_token = None;
        assert_eq!(decide(&spent, &view(50)), Step::Acquire);
    }

    #[test]
    fn decide_waits_for_another_holder_only_while_its_lease_lives() {
        let theirs = leased(holding(0), "other", 70);
        // The held token still lives: served rather than waited for.
        assert_eq!(decide(&theirs, &view(55)), Step::Serve);
        assert_eq!(decide(&theirs, &view(65)), Step::Wait);
        // The holder died: its lease lapses and is taken over.
        assert_eq!(decide(&theirs, &view(70)), Step::TakeLease);
        // My own lapsed lease is taken again, not used.
        let mine = leased(holding(0), "me", 70);
        assert_eq!(decide(&mine, &view(71)), Step::TakeLease);
        // A holder that comes back after its lease lapsed and another took it waits.
        let taken_over = leased(holding(0), "other", 90);
        assert_eq!(decide(&taken_over, &view(75)), Step::Wait);
    }

    #[test]
    fn decide_stores_an_unsaved_rotation_before_anything_else() {
        let r = holding(0);
        let unsaved = View {
            unsaved: true,
            ..view(1)
        };
        assert_eq!(decide(&r, &unsaved), Step::Save);
        assert_eq!(decide(&leased(r, "other", 90), &unsaved), Step::Save);
    }

    #[test]
    fn decide_answers_held_failures_and_backoff_without_a_request() {
        let refused = next(
            holding(0),
            &Event::PermanentFailure {
                error: OAuthError::Config("x".into()),
                hold_off: 100,
            },
            55,
        );
        assert_eq!(
            decide(&refused, &view(55)),
            Step::Serve,
            "token still alive"
        );
        assert_eq!(
            decide(&refused, &view(60)),
            Step::Fail(OAuthError::Config("x".into()))
        );
        assert_eq!(decide(&refused, &view(155)), Step::TakeLease);
        let backing_off = next(
            holding(0),
            &Event::TransientFailure {
                error: "503".into(),
                retry_after: Some(30),
                random: 0,
            },
            60,
        );
        assert!(matches!(
            decide(&backing_off, &view(61)),
            Step::Fail(OAuthError::Backoff(_))
        ));
        assert_eq!(decide(&backing_off, &view(90)), Step::TakeLease);
    }

    #[test]
    fn decide_without_the_store_goes_ahead_only_when_nothing_single_use_is_spent() {
        let down = View {
            store_error: Some("down"),
            ..view(65)
        };
        assert!(matches!(
            decide(&holding(0), &down),
            Step::Fail(OAuthError::Store(m)) if m.contains("no request was sent")
        ));
        let mut no_refresh = holding(0);
        no_refresh.refresh_token = None;
        assert_eq!(decide(&no_refresh, &down), Step::Acquire);
    }

    #[test]
    fn decide_asks_for_a_person_when_nothing_renews_the_token() {
        let r = next(
            SessionRecord::new("fp", GrantKind::AuthorizationCode),
            &issued("A", Some(60), None),
            0,
        );
        assert_eq!(decide(&r, &view(55)), Step::Serve);
        assert_eq!(
            decide(&r, &view(60)),
            Step::NeedPerson("no refresh token is held".into())
        );
    }

    #[test]
    fn a_lost_refresh_answer_retires_the_refresh_token() {
        let lost = |r: SessionRecord, sent: &str| {
            next(
                r,
                &Event::RefreshLost {
                    sent: RefreshToken::new(sent),
                    error: "timeout".into(),
                    retry_after: None,
                    random: 0,
                },
                60,
            )
        };
        let r = lost(holding(0), "RT");
        assert_eq!(r.refresh_token, None);
        assert_eq!(r.phase(60), SessionPhase::Backoff);
        // Another instance's newer token is kept.
        let r = lost(holding(0), "OLDER");
        assert_eq!(r.refresh_token, Some(RefreshToken::new("RT")));
        let attended = next(
            SessionRecord::new("fp", GrantKind::RefreshToken),
            &issued("A", Some(60), Some("RT")),
            0,
        );
        let r = lost(attended, "RT");
        assert_eq!(r.phase(3_600), SessionPhase::AuthorizationRequired);
    }

    #[test]
    fn a_record_of_the_first_version_keeps_its_tokens_and_state() {
        let v1 = br#"{"version":1,"revision":3,"client_fingerprint":"fp","grant":"password",
            "token":null,"refresh_token":"RT","failures":2,"backoff_until":1700000300,
            "last_error":"503"}"#;
        let r = SessionRecord::from_bytes(v1).unwrap();
        assert_eq!(r.version, RECORD_VERSION);
        assert_eq!(r.refresh_token, Some(RefreshToken::new("RT")));
        let backoff = r.backoff(1_700_000_000).unwrap();
        assert_eq!((backoff.failures, backoff.retry_at), (2, 1_700_000_300));
        let v1 = br#"{"version":1,"revision":1,"client_fingerprint":"fp","grant":"device_code",
            "pending_device":{"device_code":"D","expires_at":10,"interval":5,"next_poll_at":5},
            "held_error":{"Config":"bad"},"permanent_failures":3,"failed_until":50}"#;
        let r = SessionRecord::from_bytes(v1).unwrap();
        assert!(r.pending_device().is_some());
        assert_eq!((r.refusals(), r.phase(1)), (3, SessionPhase::Failed));
    }

    #[test]
    fn the_fuzz_seeds_are_records_this_version_reads() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/seeds/session_record");
        let mut seen = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let record = SessionRecord::from_bytes(&std::fs::read(&path).unwrap());
            assert!(record.is_some(), "{} does not parse", path.display());
            seen += 1;
        }
        assert!(seen >= 5, "{seen} seeds");
    }
}
