//! The public types of the OAuth flows. Each mirrors one record, variant or enum of
//! `wit/oauth.wit` field by field; secrets are redacted newtypes.

use super::error::OAuthError;
use crate::http::Request;
use crate::secret::{PrivateKeyPem, secret_type};
use crate::tls::TrustSpec;

secret_type!(
    /// A client secret (RFC 6749 §2.3.1).
    ClientSecret
);
secret_type!(
    /// A resource owner's password (RFC 6749 §4.3).
    Password
);
secret_type!(
    /// An access token (RFC 6749 §1.4).
    AccessToken
);
secret_type!(
    /// A refresh token (RFC 6749 §1.5).
    RefreshToken
);
secret_type!(
    /// An OpenID Connect ID token.
    IdToken
);
secret_type!(
    /// The subject token of a token exchange (RFC 8693 §2.1).
    SubjectToken
);
secret_type!(
    /// The actor token of a token exchange (RFC 8693 §2.1).
    ActorToken
);
secret_type!(
    /// A signed JWT assertion, as a grant (RFC 7523 §2.1) or client authentication
    /// (RFC 7523 §2.2).
    Assertion
);
secret_type!(
    /// The device code of a device authorization (RFC 8628 §3.2).
    DeviceCode
);

secret_type!(
    single_use
    /// An authorization code. Not `Clone`: a code may be redeemed only once
    /// (RFC 6749 §4.1.2), so redeeming takes it by value.
    AuthorizationCode
);
secret_type!(
    single_use
    /// A PKCE code verifier (RFC 7636 §4.1). Not `Clone`: it belongs to exactly one
    /// authorization request.
    PkceCodeVerifier
);

/// The default deadline of one call, retries included, in milliseconds.
pub const DEFAULT_TIMEOUT_MS: u32 = 10_000;

/// The default refresh skew, in seconds.
pub const DEFAULT_REFRESH_SKEW_SECONDS: u32 = 60;

/// The algorithm of a client's JWT signing key.
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

/// A private key the client signs JWT assertions with (RFC 7523).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SigningKey {
    /// The key's algorithm.
    pub algorithm: JwtAlgorithm,
    /// The key as PKCS#8 PEM.
    pub private_key_pem: PrivateKeyPem,
    /// The `kid` header to send, if the server needs one to pick the key.
    pub key_id: Option<String>,
}

/// How the client authenticates at the token endpoint.
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

/// One OAuth client at one authorization server.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
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
    /// The deadline for one call, retries included, in milliseconds (default 10000).
    pub timeout_ms: Option<u32>,
    /// How long before expiry a cached token is refreshed, in seconds (default 60).
    pub refresh_skew_seconds: Option<u32>,
}

impl Client {
    /// A client with this id and authentication and every other field at its default.
    pub fn new(client_id: impl Into<String>, auth: ClientAuth) -> Self {
        Self {
            client_id: client_id.into(),
            auth,
            ..Self::default()
        }
    }

    /// The deadline of one call, in milliseconds.
    pub fn timeout(&self) -> u32 {
        self.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS)
    }

    /// The refresh skew, in seconds.
    pub fn refresh_skew(&self) -> u64 {
        u64::from(
            self.refresh_skew_seconds
                .unwrap_or(DEFAULT_REFRESH_SKEW_SECONDS),
        )
    }

    /// Checks everything that can be checked without a request, so that a bad
    /// configuration fails as [`OAuthError::Config`] before any secret is sent.
    pub fn validate(&self) -> Result<(), OAuthError> {
        if self.client_id.trim().is_empty() {
            return Err(OAuthError::Config("client_id is empty".into()));
        }
        if self.token_endpoint.is_none() && self.issuer.is_none() {
            return Err(OAuthError::Config(
                "neither token_endpoint nor issuer is set: give one of them".into(),
            ));
        }
        let endpoints = [
            ("token_endpoint", &self.token_endpoint),
            ("authorization_endpoint", &self.authorization_endpoint),
            (
                "device_authorization_endpoint",
                &self.device_authorization_endpoint,
            ),
            ("revocation_endpoint", &self.revocation_endpoint),
        ];
        for (name, url) in endpoints {
            if let Some(url) = url {
                check_https_url(name, url)?;
            }
        }
        if let Some(issuer) = &self.issuer {
            super::discovery::check_issuer(issuer)?;
        }
        if self.timeout_ms == Some(0) {
            return Err(OAuthError::Config("timeout_ms must be positive".into()));
        }
        match &self.auth {
            ClientAuth::None => Ok(()),
            ClientAuth::ClientSecretBasic(s) | ClientAuth::ClientSecretPost(s) => {
                if s.secret().is_empty() {
                    Err(OAuthError::Config(format!(
                        "{} needs a non-empty client secret",
                        self.auth.method_name()
                    )))
                } else {
                    Ok(())
                }
            }
            ClientAuth::PrivateKeyJwt(key) => super::jwt::check_key(key),
            ClientAuth::TlsClientAuth => {
                if self.trust.client_certificate.is_none() || self.trust.client_key.is_none() {
                    Err(OAuthError::Config(
                        "tls_client_auth needs trust.client_certificate and trust.client_key"
                            .into(),
                    ))
                } else {
                    Ok(())
                }
            }
        }
    }
}

/// Checks that `url` is an absolute `https` URL without credentials; `name` says which
/// setting it is.
pub(crate) fn check_https_url(name: &str, url: &str) -> Result<(), OAuthError> {
    // The HTTP layer's own parser, so that what passes here is what it will accept.
    Request::get(url)
        .target()
        .map(|_| ())
        .map_err(|e| OAuthError::Config(format!("{name}: {e}")))
}

/// Credentials of the resource owner password grant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PasswordCredentials {
    /// The user name.
    pub username: String,
    /// The password.
    pub password: Password,
}

/// An authorization code to redeem (RFC 6749 §4.1.3). Not `Clone`: see
/// [`AuthorizationCode`].
#[derive(Debug, PartialEq, Eq)]
pub struct CodeExchange {
    /// The code the authorization server issued.
    pub code: AuthorizationCode,
    /// The PKCE verifier matching the challenge sent with the authorization request.
    pub code_verifier: Option<PkceCodeVerifier>,
}

/// An RFC 8693 token exchange request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenExchange {
    /// The token that represents the party on whose behalf the request is made.
    pub subject_token: SubjectToken,
    /// Its type URI, e.g. `urn:ietf:params:oauth:token-type:access_token`.
    pub subject_token_type: String,
    /// The token of the acting party, if any.
    pub actor_token: Option<ActorToken>,
    /// Its type URI; required with `actor_token`.
    pub actor_token_type: Option<String>,
    /// The type of token wanted back, if the client has a preference.
    pub requested_token_type: Option<String>,
}

/// A grant for a single [`OAuth::request_token`](super::OAuth::request_token) call.
#[derive(Debug, PartialEq, Eq)]
pub enum Grant {
    /// RFC 6749 §4.4.
    ClientCredentials,
    /// RFC 6749 §4.3.
    Password(PasswordCredentials),
    /// RFC 6749 §4.1.3, with PKCE (RFC 7636).
    AuthorizationCode(CodeExchange),
    /// RFC 6749 §6, with this refresh token.
    RefreshToken(RefreshToken),
    /// RFC 8693.
    TokenExchange(TokenExchange),
    /// RFC 7523 §2.1, with this signed assertion.
    JwtBearer(Assertion),
    /// RFC 8628 §3.4, with this device code.
    DeviceCode(DeviceCode),
}

/// How a session obtains its first token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionGrant {
    /// Client credentials; re-acquired without a person.
    ClientCredentials,
    /// Resource owner password; re-acquired with the stored credentials.
    Password(PasswordCredentials),
    /// Authorization code with PKCE: `begin_authorization`, then
    /// `complete_authorization`.
    AuthorizationCode,
    /// Device authorization: `begin_device_authorization`, then polling.
    DeviceCode,
    /// Token exchange; re-acquired with the same subject.
    TokenExchange(TokenExchange),
    /// JWT bearer with this assertion.
    JwtBearer(Assertion),
    /// Start from an existing refresh token.
    RefreshToken(RefreshToken),
}

/// An access token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    /// The token itself.
    pub access_token: AccessToken,
    /// The token type as the server named it (`Bearer` when it named none; any casing
    /// of `bearer` is given as `Bearer`, RFC 6749 §5.1).
    pub token_type: String,
    /// When the token expires, in Unix seconds; `None` when the server did not say.
    pub expires_at: Option<u64>,
    /// The scopes granted (the requested ones when the server listed none, RFC 6749
    /// §5.1).
    pub scopes: Vec<String>,
    /// The refresh token, returned by `request_token` only; sessions keep theirs.
    pub refresh_token: Option<RefreshToken>,
    /// The OpenID Connect ID token, if one came with it.
    pub id_token: Option<IdToken>,
    /// RFC 8693 `issued_token_type`, for token exchange.
    pub issued_token_type: Option<String>,
}

/// Where to send the user for the authorization-code grant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authorization {
    /// The authorization URL with state, PKCE challenge (S256) and the client's scopes,
    /// redirect URI, audience and resources.
    pub url: String,
    /// The state value the redirect must carry back; single use.
    pub state: String,
    /// When the pending authorization expires (5 minutes after it began), Unix seconds.
    pub expires_at: u64,
}

/// What to show the user for the device grant (RFC 8628 §3.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceAuthorization {
    /// The code the user types.
    pub user_code: String,
    /// Where the user types it.
    pub verification_uri: String,
    /// A URI that carries the code already, if the server gave one.
    pub verification_uri_complete: Option<String>,
    /// When the device code expires, Unix seconds.
    pub expires_at: u64,
    /// Seconds to wait between polls.
    pub interval_seconds: u32,
}

/// Where a session is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionPhase {
    /// Open, with no token yet.
    Empty,
    /// A token is held and usable (or a refresh token that can renew it).
    Valid,
    /// A person's authorization (code or device) is pending.
    Authorizing,
    /// Transient failures: no request is sent until `retry_at`.
    Backoff,
    /// Only a new authorization by a person can continue the session.
    AuthorizationRequired,
}

/// A session's state, without secrets; the WIT `session-state` record (named apart from
/// the `session-status` function there, which WIT requires).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionStatus {
    /// The phase.
    pub phase: SessionPhase,
    /// When the held access token expires.
    pub expires_at: Option<u64>,
    /// Whether a refresh token is held.
    pub has_refresh_token: bool,
    /// When the next request may be sent, in `Backoff`.
    pub retry_at: Option<u64>,
    /// Consecutive transient failures.
    pub failures: u32,
    /// The scopes granted to the held token.
    pub scopes: Vec<String>,
}

/// The WIT name of [`SessionStatus`].
pub type SessionState = SessionStatus;
