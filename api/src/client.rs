//! The OAuth client: who it is, how it authenticates, where its server is.

use crate::secret::{ClientSecret, PrivateKeyPem};
use crate::tls::TrustSpec;

/// The default deadline of one call, retries included, in milliseconds.
pub const DEFAULT_TIMEOUT_MS: u32 = 10_000;

/// The default refresh skew, in seconds.
pub const DEFAULT_REFRESH_SKEW_SECONDS: u32 = 60;

/// The default longest hold-off after a failure retrying cannot fix, in seconds.
pub const DEFAULT_FAILURE_HOLD_OFF_SECONDS: u32 = 3600;

/// The first hold-off after a failure retrying cannot fix, in seconds (or the
/// configured longest, if shorter).
pub const FIRST_FAILURE_HOLD_OFF_SECONDS: u32 = 30;

/// The algorithm of a client's JWT signing key (WIT `jwt-algorithm`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JwtAlgorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    Rs256,
    /// ECDSA on P-256 with SHA-256.
    Es256,
}

impl JwtAlgorithm {
    /// The JWS `alg` name (RFC 7518 §3.1).
    pub fn name(self) -> &'static str {
        match self {
            Self::Rs256 => "RS256",
            Self::Es256 => "ES256",
        }
    }
}

/// A private key the client signs JWT assertions with (RFC 7523; WIT `signing-key`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SigningKey {
    /// The key's algorithm.
    pub algorithm: JwtAlgorithm,
    /// The key as PKCS#8 PEM.
    pub private_key_pem: PrivateKeyPem,
    /// The `kid` header to send, if the server needs one to pick the key.
    pub key_id: Option<String>,
}

/// How the client authenticates at the token endpoint (WIT `client-auth`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum ClientAuth {
    /// A public client: `client_id` goes in the body, no secret.
    #[default]
    None,
    /// HTTP Basic with the id and this secret, each form-urlencoded (RFC 6749 §2.3.1).
    ClientSecretBasic(ClientSecret),
    /// The id and this secret in the request body.
    ClientSecretPost(ClientSecret),
    /// A signed JWT assertion (RFC 7523 §2.2).
    PrivateKeyJwt(SigningKey),
    /// The client certificate of `trust` (RFC 8705 §2); `client_id` in the body.
    TlsClientAuth,
}

impl ClientAuth {
    /// The method's name as registered for `token_endpoint_auth_method` (RFC 7591 §2,
    /// RFC 8705 §2.1.1).
    pub fn method_name(&self) -> &'static str {
        match self {
            Self::None => "none",
            Self::ClientSecretBasic(_) => "client_secret_basic",
            Self::ClientSecretPost(_) => "client_secret_post",
            Self::PrivateKeyJwt(_) => "private_key_jwt",
            Self::TlsClientAuth => "tls_client_auth",
        }
    }
}

/// One OAuth client at one authorization server (WIT `client`).
///
/// Build one with [`Client::new`] and set the fields you need; more fields may come, so
/// the struct cannot be written as a literal outside this crate.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Client {
    /// The client identifier.
    pub client_id: String,
    /// How the client authenticates.
    pub auth: ClientAuth,
    /// The issuer URL; used to discover endpoints that are not given (RFC 8414, then
    /// OpenID Connect discovery).
    pub issuer: Option<String>,
    /// The token endpoint (https). Discovered from `issuer` when absent.
    pub token_endpoint: Option<String>,
    /// The authorization endpoint, for the authorization-code grant.
    pub authorization_endpoint: Option<String>,
    /// The device authorization endpoint (RFC 8628).
    pub device_authorization_endpoint: Option<String>,
    /// The revocation endpoint (RFC 7009).
    pub revocation_endpoint: Option<String>,
    /// Where the authorization server sends the user back with the code.
    pub redirect_uri: Option<String>,
    /// Scopes requested.
    pub scopes: Vec<String>,
    /// The `audience` parameter, for servers that want one.
    pub audience: Option<String>,
    /// Resource indicators (RFC 8707).
    pub resources: Vec<String>,
    /// The TLS trust for every endpoint of this client.
    pub trust: TrustSpec,
    /// The deadline for one call, retries included, in milliseconds (default
    /// [`DEFAULT_TIMEOUT_MS`]).
    pub timeout_ms: Option<u32>,
    /// How long before expiry a cached token is refreshed, in seconds (default
    /// [`DEFAULT_REFRESH_SKEW_SECONDS`]).
    pub refresh_skew_seconds: Option<u32>,
    /// How much earlier than the refresh skew a token may be renewed, in seconds
    /// (default half the skew): each token's renewal point is drawn once, when it is
    /// issued, between `expires_at - skew - jitter` and `expires_at - skew`, so sessions
    /// issued together (a restart, a deploy) do not renew in the same second. 0 turns
    /// it off.
    pub refresh_jitter_seconds: Option<u32>,
    /// The longest hold-off after a failure retrying cannot fix, in seconds (default
    /// [`DEFAULT_FAILURE_HOLD_OFF_SECONDS`]); it starts at
    /// [`FIRST_FAILURE_HOLD_OFF_SECONDS`] and doubles per consecutive failure.
    pub failure_hold_off_seconds: Option<u32>,
    /// Extra parameters for the authorization request (e.g. `prompt=consent`), in this
    /// order. Names the plugin sets itself are refused: see [`RESERVED_AUTHORIZATION_PARAMS`].
    pub authorization_params: Vec<(String, String)>,
    /// Whether tokens are bound to a key (DPoP, RFC 9449), and which.
    pub dpop: Option<DpopBinding>,
}

/// How a client's tokens are bound to a key (DPoP, RFC 9449): every token, refresh,
/// revocation and pushed authorization request carries a proof signed with it, and the
/// server issues `DPoP` tokens that are useless without the key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DpopBinding {
    /// A P-256 key (ES256) per session, made in the plugin and kept in the store with
    /// the session's tokens, so every replica signs with the same one.
    PerSession,
    /// This key for every request of the client (ES256 or RS256, as its algorithm
    /// says); also what one-off token requests use.
    Fixed(SigningKey),
}

/// The authorization-request parameters the plugin sets itself (RFC 6749 §4.1.1,
/// RFC 7636 §4.3, RFC 8707 §2), which [`Client::authorization_params`] may not name:
/// overriding `state` or `code_challenge` would undo the CSRF and PKCE defences, and
/// the others have their own client fields.
pub const RESERVED_AUTHORIZATION_PARAMS: &[&str] = &[
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "code_challenge",
    "code_challenge_method",
    "audience",
    "resource",
];

impl Client {
    /// A client with this id and authentication, trusting `trust`, everything else
    /// unset.
    pub fn new(client_id: impl Into<String>, auth: ClientAuth, trust: TrustSpec) -> Self {
        Self {
            client_id: client_id.into(),
            auth,
            trust,
            ..Self::default()
        }
    }

    /// The deadline of one call, in milliseconds.
    pub fn timeout(&self) -> u32 {
        self.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS)
    }

    /// The hold-off after the `nth` consecutive failure that retrying cannot fix, in
    /// seconds: [`FIRST_FAILURE_HOLD_OFF_SECONDS`] doubled per failure, capped by
    /// `failure_hold_off_seconds`.
    pub fn failure_hold_off(&self, nth: u32) -> u64 {
        let cap = u64::from(
            self.failure_hold_off_seconds
                .unwrap_or(DEFAULT_FAILURE_HOLD_OFF_SECONDS),
        );
        let doubled = u64::from(FIRST_FAILURE_HOLD_OFF_SECONDS)
            .saturating_mul(1 << nth.saturating_sub(1).min(32));
        doubled.min(cap)
    }

    /// The refresh skew, in seconds.
    pub fn refresh_skew(&self) -> u64 {
        u64::from(
            self.refresh_skew_seconds
                .unwrap_or(DEFAULT_REFRESH_SKEW_SECONDS),
        )
    }

    /// The refresh jitter, in seconds: `refresh_jitter_seconds`, else half the skew.
    pub fn refresh_jitter(&self) -> u64 {
        self.refresh_jitter_seconds
            .map_or(self.refresh_skew() / 2, u64::from)
    }
}
