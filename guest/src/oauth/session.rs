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

/// The record format this code writes and reads; a record of another version is
/// ignored (and replaced on the next write).
pub const RECORD_VERSION: u32 = 1;

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
        matches!(
            self,
            Self::ClientCredentials | Self::Password | Self::TokenExchange | Self::JwtBearer
        )
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
        }
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
                at - skew
            }
            None if renewable => self.issued_at.saturating_add(DEFAULT_LIFETIME),
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

/// What the store holds for one session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
    #[serde(default)]
    pub token: Option<HeldToken>,
    /// The newest refresh token.
    #[serde(default)]
    pub refresh_token: Option<RefreshToken>,
    /// Consecutive transient failures.
    #[serde(default)]
    pub failures: u32,
    /// No request before this time, Unix seconds.
    #[serde(default)]
    pub backoff_until: Option<u64>,
    /// The last transient failure, described (without secrets).
    #[serde(default)]
    pub last_error: Option<String>,
    /// Why a person must authorize again, when one must.
    #[serde(default)]
    pub authorization_required: Option<String>,
    /// The last failure retrying cannot fix, answered without a request until
    /// `failed_until`.
    #[serde(default)]
    pub held_error: Option<OAuthError>,
    /// Consecutive failures retrying cannot fix.
    #[serde(default)]
    pub permanent_failures: u32,
    /// No request before this time after such a failure, Unix seconds.
    #[serde(default)]
    pub failed_until: Option<u64>,
    /// A pending authorization-code flow.
    #[serde(default)]
    pub pending_authorization: Option<PendingAuthorization>,
    /// A pending device flow.
    #[serde(default)]
    pub pending_device: Option<PendingDevice>,
    /// The instance renewing the session, if one is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<Lease>,
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
            failures: 0,
            backoff_until: None,
            last_error: None,
            authorization_required: None,
            held_error: None,
            permanent_failures: 0,
            failed_until: None,
            pending_authorization: None,
            pending_device: None,
            lease: None,
        }
    }

    /// The stored form.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Serializing plain structs with string keys cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Parses a stored record; `None` for anything unreadable or of another version,
    /// which is then treated as no record at all.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        serde_json::from_slice::<Self>(bytes)
            .ok()
            .filter(|r| r.version == RECORD_VERSION)
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
        let until = self.backoff_until.filter(|until| now < *until)?;
        Some(BackoffError {
            retry_at: until,
            failures: self.failures,
            last_error: self.last_error.clone().unwrap_or_default(),
        })
    }

    /// The failure retrying cannot fix, while its hold-off lasts at `now`.
    pub fn held_error(&self, now: u64) -> Option<&OAuthError> {
        self.held_error
            .as_ref()
            .filter(|_| self.failed_until.is_some_and(|until| now < until))
    }

    /// The lease another holder than `holder` has at `now_ms`, if any.
    pub fn leased_to_another(&self, holder: &str, now_ms: u64) -> Option<&Lease> {
        self.lease
            .as_ref()
            .filter(|l| l.live(now_ms) && l.holder != holder)
    }

    /// The phase at `now`.
    pub fn phase(&self, now: u64) -> SessionPhase {
        if self.held_error(now).is_some() {
            SessionPhase::Failed
        } else if self.backoff(now).is_some() {
            SessionPhase::Backoff
        } else if self
            .pending_authorization
            .as_ref()
            .is_some_and(|a| now < a.expires_at)
            || self
                .pending_device
                .as_ref()
                .is_some_and(|d| now < d.expires_at)
        {
            SessionPhase::Authorizing
        } else if self.alive_token(now).is_some() || self.refresh_token.is_some() {
            SessionPhase::Valid
        } else if self.authorization_required.is_some()
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
        if self.held_error(now).is_some() {
            status.retry_at = self.failed_until;
            status.failures = self.permanent_failures;
        } else {
            status.retry_at = self.backoff(now).map(|b| b.retry_at);
            status.failures = self.failures;
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
    /// The server issued a token. Scopes it did not list are those of the token it
    /// replaces, else `requested_scopes`.
    Issued {
        /// The classified response.
        response: TokenResponse,
        /// The client's scopes.
        requested_scopes: Vec<String>,
    },
    /// The refresh token was refused (`invalid_grant`): it is dropped, unless the record
    /// already holds a newer one (another replica rotated it).
    RefreshRejected {
        /// The token the server refused.
        rejected: RefreshToken,
        /// Why, for the caller.
        reason: String,
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
    /// An authorization-code flow began (replacing any pending one).
    AuthorizationBegun(PendingAuthorization),
    /// The pending authorization was used (or expired).
    AuthorizationConsumed,
    /// A device flow began (replacing any pending one).
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

/// `record` without a held failure.
fn cleared_failure(mut record: SessionRecord) -> SessionRecord {
    record.held_error = None;
    record.permanent_failures = 0;
    record.failed_until = None;
    record
}

/// The record after `event` at `now`.
pub fn next(mut record: SessionRecord, event: &Event, now: u64) -> SessionRecord {
    record.revision += 1;
    match event {
        Event::Issued {
            response,
            requested_scopes,
        } => {
            let default_scopes = record
                .token
                .as_ref()
                .map(|t| t.scopes.clone())
                .unwrap_or_else(|| requested_scopes.clone());
            record.token = Some(HeldToken::from_response(response, now, &default_scopes));
            // Rotation (RFC 6749 §6, §10.4): the newest refresh token wins; a response
            // without one leaves the current one in force.
            if let Some(rotated) = &response.refresh_token {
                record.refresh_token = Some(rotated.clone());
            }
            record.failures = 0;
            record.backoff_until = None;
            record.last_error = None;
            record.authorization_required = None;
            record = cleared_failure(record);
        }
        Event::RefreshRejected { rejected, reason } => {
            if record.refresh_token.as_ref() == Some(rejected) {
                record.refresh_token = None;
                if !record.grant.unattended() {
                    record.authorization_required = Some(reason.clone());
                }
            }
            record.failures = 0;
            record.backoff_until = None;
        }
        Event::TransientFailure {
            error,
            retry_after,
            random,
        } => {
            record.failures = record.failures.saturating_add(1);
            let delay = retry::session_backoff_secs(record.failures, *retry_after, *random);
            record.backoff_until = Some(now.saturating_add(delay));
            record.last_error = Some(error.clone());
        }
        Event::PermanentFailure { error, hold_off } => {
            record.permanent_failures = record.permanent_failures.saturating_add(1);
            record.failed_until = Some(now.saturating_add(*hold_off));
            record.held_error = Some(error.clone());
        }
        Event::Reopened => record = cleared_failure(record),
        Event::AuthorizationNeeded { reason } => {
            record.authorization_required = Some(reason.clone())
        }
        Event::AuthorizationBegun(pending) => record.pending_authorization = Some(pending.clone()),
        Event::AuthorizationConsumed => record.pending_authorization = None,
        Event::DeviceBegun(pending) => record.pending_device = Some(pending.clone()),
        Event::DeviceWait { interval } => {
            if let Some(pending) = &mut record.pending_device {
                pending.interval = *interval;
                pending.next_poll_at = now.saturating_add(*interval);
            }
        }
        Event::DeviceEnded { reason } => {
            record.pending_device = None;
            if let Some(reason) = reason {
                record.authorization_required = Some(reason.clone());
            }
        }
        Event::Seeded(token) => {
            if record.refresh_token.is_none() {
                record.refresh_token = Some(token.clone());
                record.authorization_required = None;
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
        other => serde_json::json!({ "method": other.method_name() }),
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
        _ => serde_json::Value::Null,
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
        assert_eq!((r.failures, r.backoff_until), (1, Some(110)));
        assert_eq!(r.phase(109), SessionPhase::Backoff);
        assert_eq!(r.backoff(109).unwrap().last_error, "503");
        assert_eq!(r.phase(110), SessionPhase::Empty);
        let r = next(r, &fail, 110);
        assert_eq!(r.failures, 2);
        let r = next(r, &issued("A", Some(60), None), 200);
        assert_eq!(
            (r.failures, r.backoff_until, r.phase(200)),
            (0, None, SessionPhase::Valid)
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
        assert!(r.pending_authorization.is_none());

        let device = PendingDevice {
            device_code: DeviceCode::new("d"),
            expires_at: 1000,
            interval: 5,
            next_poll_at: 105,
        };
        let r = next(r, &Event::DeviceBegun(device), 100);
        let r = next(r, &Event::DeviceWait { interval: 10 }, 110);
        let d = r.pending_device.as_ref().unwrap();
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
