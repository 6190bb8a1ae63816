//! Everything the server remembers, behind one mutex: registrations, switches, issued
//! tokens, pending codes and device grants, and the request log. The lock is never held
//! across an `.await`, so a plain `std` mutex serves both the async handlers and the
//! synchronous public API.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::{SecureRandom, SystemRandom};

use crate::authorize::PendingCode;
use crate::certs::Keys;
use crate::device::DeviceGrant;
use crate::wire::{OAuthError, TokenResponse};
use crate::{ClientAuth, ClientRegistration, Drip, Misbehaviour, Options, Recorded};

/// What the server threads and the `DevServer` handle share.
pub(crate) struct Shared {
    pub issuer: String,
    pub keys: Keys,
    state: Mutex<State>,
}

impl Shared {
    pub(crate) fn new(issuer: String, keys: Keys, options: Options) -> Shared {
        let state = State {
            clients: options.clients,
            users: options.users,
            token_lifetime: options.token_lifetime,
            device_interval: options.device_interval,
            rotate_refresh_tokens: true,
            reuse_detection: false,
            reuse_detections: 0,
            refreshes: HashMap::new(),
            token_delay: Duration::ZERO,
            drip: (options.token_drip_ms > 0)
                .then(|| Drip::every(Duration::from_millis(options.token_drip_ms))),
            dripped_answers: 0,
            dripped_refresh_tokens: Vec::new(),
            refresh_presented: HashMap::new(),
            rfc8414_metadata: true,
            idle_close: None,
            keep_alive: true,
            connections: 0,
            misbehaviour: None,
            tokens: HashMap::new(),
            codes: HashMap::new(),
            devices: HashMap::new(),
            seen_jtis: HashSet::new(),
            requests: Vec::new(),
            token_requests: 0,
        };
        Shared {
            issuer,
            keys,
            state: Mutex::new(state),
        }
    }

    /// A panic in one handler must not take the rest of a test run down with it.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn endpoint(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }

    /// The `aud` values accepted in client assertions: the issuer and the token
    /// endpoint URL (RFC 7523 §3).
    pub(crate) fn audiences(&self) -> Vec<String> {
        // As strict as RFC 7523 §3 lets a server be: the issuer or the token endpoint,
        // never the URL of another endpoint.
        let paths = ["", "/token"];
        paths.iter().map(|p| self.endpoint(p)).collect()
    }
}

pub(crate) struct State {
    pub clients: Vec<ClientRegistration>,
    pub users: Vec<(String, String)>,
    pub token_lifetime: u64,
    pub device_interval: u64,
    pub rotate_refresh_tokens: bool,
    /// RFC 9700 §4.14.2: a rotated-away refresh token presented again revokes every
    /// token of its lineage.
    pub reuse_detection: bool,
    /// How many times that happened.
    pub reuse_detections: u64,
    /// Successful refreshes, by lineage.
    pub refreshes: HashMap<String, u64>,
    /// How long every `/token` answer is held back.
    pub token_delay: Duration,
    /// Which `/token` answers are dripped, and how slowly.
    pub drip: Option<Drip>,
    /// How many answers were dripped.
    pub dripped_answers: u64,
    /// The refresh tokens presented in requests whose answers were dripped, in order.
    pub dripped_refresh_tokens: Vec<String>,
    /// How many times each refresh token was presented, answered or not.
    pub refresh_presented: HashMap<String, u64>,
    pub rfc8414_metadata: bool,
    /// Kept-alive connections idle this long are closed (with close_notify).
    pub idle_close: Option<Duration>,
    /// Whether answers leave the connection open for the next request.
    pub keep_alive: bool,
    /// TLS connections accepted.
    pub connections: u64,
    /// The switch and how many more `/token` requests it applies to (`None`: all).
    pub misbehaviour: Option<(Misbehaviour, Option<u32>)>,
    pub tokens: HashMap<String, TokenRecord>,
    pub codes: HashMap<String, PendingCode>,
    /// Keyed by device code.
    pub devices: HashMap<String, DeviceGrant>,
    pub seen_jtis: HashSet<String>,
    pub requests: Vec<Recorded>,
    pub token_requests: u64,
}

/// An issued access or refresh token.
pub(crate) struct TokenRecord {
    pub refresh: bool,
    pub client_id: String,
    pub subject: String,
    pub scope: Option<String>,
    pub expires_at: Option<u64>,
    /// For access tokens: the refresh token they came with, so revoking that one
    /// revokes them too (RFC 7009 §2.1).
    pub family: Option<String>,
    pub revoked: bool,
    /// A refresh token replaced by rotation: refused from then on.
    pub rotated: bool,
    /// For refresh tokens: the first refresh token of the grant, shared by every one
    /// rotation made from it.
    pub lineage: Option<String>,
}

/// Whether an issued token comes with a refresh token.
pub(crate) enum Refresh {
    None,
    New,
    /// A new refresh token replacing one of this lineage.
    Rotated(String),
    /// No new refresh token; the access token belongs to this existing one.
    Keep(String),
}

impl State {
    pub(crate) fn client(&self, id: &str) -> Option<&ClientRegistration> {
        self.clients.iter().find(|c| c.client_id == id)
    }

    pub(crate) fn is_public(&self, id: &str) -> bool {
        self.client(id).is_some_and(|c| c.auth == ClientAuth::None)
    }

    /// The default subject for flows where a person consents: the first user.
    pub(crate) fn consenting_user(&self) -> String {
        self.users
            .first()
            .map_or_else(|| crate::defaults::USERNAME.into(), |u| u.0.clone())
    }

    /// Mints an access token (and a refresh token when asked) and remembers both.
    pub(crate) fn issue(
        &mut self,
        client_id: &str,
        subject: &str,
        scope: Option<&str>,
        refresh: Refresh,
    ) -> TokenResponse {
        let record = |refresh, expires_at, family, lineage| TokenRecord {
            refresh,
            client_id: client_id.to_owned(),
            subject: subject.to_owned(),
            scope: scope.map(Into::into),
            expires_at,
            family,
            revoked: false,
            rotated: false,
            lineage,
        };
        let (family, refresh_token) = match refresh {
            Refresh::None => (None, None),
            Refresh::Keep(old) => (Some(old), None),
            Refresh::New | Refresh::Rotated(_) => {
                let token = random_token("rt");
                let lineage = match refresh {
                    Refresh::Rotated(lineage) => lineage,
                    _ => token.clone(),
                };
                let rt = record(true, None, None, Some(lineage));
                self.tokens.insert(token.clone(), rt);
                (Some(token.clone()), Some(token))
            }
        };
        let access_token = random_token("at");
        let expires_at = unix_now() + self.token_lifetime;
        self.tokens.insert(
            access_token.clone(),
            record(false, Some(expires_at), family, None),
        );
        TokenResponse {
            access_token,
            token_type: "Bearer",
            expires_in: self.token_lifetime,
            refresh_token,
            scope: scope.map(Into::into),
            id_token: None,
            issued_token_type: None,
        }
    }

    /// The token if it is of the kind asked for, unexpired, unrevoked and not rotated away.
    pub(crate) fn live(&self, token: &str, refresh: bool) -> Option<&TokenRecord> {
        let now = unix_now();
        self.tokens.get(token).filter(|t| {
            t.refresh == refresh && !t.revoked && !t.rotated && t.expires_at.is_none_or(|e| e > now)
        })
    }

    /// RFC 9700 §4.14.2: revokes every refresh token of `lineage` and every access
    /// token issued with one of them.
    pub(crate) fn revoke_lineage(&mut self, lineage: &str) {
        let members: HashSet<String> = self
            .tokens
            .iter()
            .filter(|(_, t)| t.lineage.as_deref() == Some(lineage))
            .map(|(token, _)| token.clone())
            .collect();
        for t in self.tokens.values_mut() {
            if t.lineage.as_deref() == Some(lineage)
                || t.family.as_ref().is_some_and(|f| members.contains(f))
            {
                t.revoked = true;
            }
        }
    }

    /// RFC 7009 §2.1: unknown tokens are fine; another client's token is not.
    pub(crate) fn revoke(&mut self, token: &str, client_id: &str) -> Result<(), OAuthError> {
        let Some(record) = self.tokens.get_mut(token) else {
            return Ok(());
        };
        if record.client_id != client_id {
            return Err(OAuthError::unauthorized_client(
                "the token was issued to another client",
            ));
        }
        record.revoked = true;
        if record.refresh {
            for t in self
                .tokens
                .values_mut()
                .filter(|t| t.family.as_deref() == Some(token))
            {
                t.revoked = true;
            }
        }
        Ok(())
    }
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

pub(crate) fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0; N];
    SystemRandom::new()
        .fill(&mut bytes)
        .expect("the OS random source works");
    bytes
}

/// An opaque token with a prefix saying what it is, which helps when reading test output.
pub(crate) fn random_token(prefix: &str) -> String {
    format!("{prefix}_{}", URL_SAFE_NO_PAD.encode(random_bytes::<32>()))
}
