//! The typed API over the plugin's `oauth` export.
//!
//! These types mirror the WIT records one to one; secrets are [`Secret`]s, so printing a
//! client, a grant or a token with `{:?}` shows no credential.

use std::fmt;

use crate::bindings::{oauth as wit, types};
use crate::error::Error;
use crate::runtime::Plugin;
use crate::secret::Secret;
use crate::tls::TrustSpec;

/// The algorithm of a JWT signing key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JwtAlgorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    Rs256,
    /// ECDSA P-256 with SHA-256.
    Es256,
}

/// A key the client signs assertions with (RFC 7523).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SigningKey {
    /// Its algorithm.
    pub algorithm: JwtAlgorithm,
    /// PKCS#8 PEM.
    pub private_key_pem: Secret,
    /// The `kid` header, if the server needs one.
    pub key_id: Option<String>,
}

/// How the client authenticates at the token endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientAuth {
    /// A public client.
    None,
    /// HTTP Basic (RFC 6749 §2.3.1).
    ClientSecretBasic(Secret),
    /// Secret in the body.
    ClientSecretPost(Secret),
    /// A signed JWT (RFC 7523 §2.2).
    PrivateKeyJwt(SigningKey),
    /// The TLS client certificate of `trust` (RFC 8705).
    TlsClientAuth,
}

/// One OAuth client at one authorization server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Client {
    /// The client identifier.
    pub client_id: String,
    /// How it authenticates.
    pub auth: ClientAuth,
    /// The issuer, for endpoint discovery.
    pub issuer: Option<String>,
    /// The token endpoint; discovered from `issuer` when absent.
    pub token_endpoint: Option<String>,
    /// The authorization endpoint.
    pub authorization_endpoint: Option<String>,
    /// The device authorization endpoint.
    pub device_authorization_endpoint: Option<String>,
    /// The revocation endpoint.
    pub revocation_endpoint: Option<String>,
    /// The redirect URI for the code flow.
    pub redirect_uri: Option<String>,
    /// Scopes requested.
    pub scopes: Vec<String>,
    /// The `audience` parameter.
    pub audience: Option<String>,
    /// RFC 8707 resource indicators.
    pub resources: Vec<String>,
    /// TLS trust for every endpoint.
    pub trust: TrustSpec,
    /// Deadline for one call, retries included (default 10 s).
    pub timeout_ms: Option<u32>,
    /// Refresh this long before expiry (default 60 s).
    pub refresh_skew_seconds: Option<u32>,
}

impl Client {
    /// A client with this id and authentication, trusting `trust`, everything else unset.
    pub fn new(client_id: impl Into<String>, auth: ClientAuth, trust: TrustSpec) -> Self {
        Self {
            client_id: client_id.into(),
            auth,
            issuer: None,
            token_endpoint: None,
            authorization_endpoint: None,
            device_authorization_endpoint: None,
            revocation_endpoint: None,
            redirect_uri: None,
            scopes: Vec::new(),
            audience: None,
            resources: Vec::new(),
            trust,
            timeout_ms: None,
            refresh_skew_seconds: None,
        }
    }
}

/// Resource owner credentials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PasswordCredentials {
    /// The user name.
    pub username: String,
    /// The password.
    pub password: Secret,
}

/// An authorization code to redeem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CodeExchange {
    /// The code.
    pub code: Secret,
    /// The PKCE verifier.
    pub code_verifier: Option<Secret>,
}

/// An RFC 8693 token exchange.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenExchange {
    /// The subject token.
    pub subject_token: Secret,
    /// Its type URI.
    pub subject_token_type: String,
    /// The actor token.
    pub actor_token: Option<Secret>,
    /// Its type URI.
    pub actor_token_type: Option<String>,
    /// The token type wanted.
    pub requested_token_type: Option<String>,
}

/// A grant for [`Plugin::request_token`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Grant {
    /// Client credentials.
    ClientCredentials,
    /// Resource owner password.
    Password(PasswordCredentials),
    /// Authorization code (with PKCE).
    AuthorizationCode(CodeExchange),
    /// Refresh.
    RefreshToken(Secret),
    /// Token exchange.
    TokenExchange(TokenExchange),
    /// JWT bearer assertion.
    JwtBearer(Secret),
    /// Device code.
    DeviceCode(Secret),
}

/// How a session gets its first token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionGrant {
    /// Client credentials.
    ClientCredentials,
    /// Resource owner password.
    Password(PasswordCredentials),
    /// Authorization code with PKCE.
    AuthorizationCode,
    /// Device authorization.
    DeviceCode,
    /// Token exchange.
    TokenExchange(TokenExchange),
    /// JWT bearer.
    JwtBearer(Secret),
    /// An existing refresh token.
    RefreshToken(Secret),
}

/// An access token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    /// The token.
    pub access_token: Secret,
    /// Its type (`Bearer` when the server named none).
    pub token_type: String,
    /// Expiry, Unix seconds.
    pub expires_at: Option<u64>,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// The refresh token (from `request_token` only).
    pub refresh_token: Option<Secret>,
    /// An OpenID Connect ID token.
    pub id_token: Option<Secret>,
    /// RFC 8693 `issued_token_type`.
    pub issued_token_type: Option<String>,
}

/// Where to send the user in the code flow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authorization {
    /// The authorization URL.
    pub url: String,
    /// The state the redirect must carry back.
    pub state: String,
    /// When the pending authorization expires.
    pub expires_at: u64,
}

/// What to show the user in the device flow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceAuthorization {
    /// The code to type.
    pub user_code: String,
    /// Where to type it.
    pub verification_uri: String,
    /// A URI carrying the code.
    pub verification_uri_complete: Option<String>,
    /// When the device code expires.
    pub expires_at: u64,
    /// Seconds between polls.
    pub interval_seconds: u32,
}

/// A session's phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionPhase {
    /// No token yet.
    Empty,
    /// A usable token is held.
    Valid,
    /// Waiting for a person.
    Authorizing,
    /// Refusing requests until `retry_at`.
    Backoff,
    /// A person must authorize again.
    AuthorizationRequired,
}

/// A session's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionState {
    /// The phase.
    pub phase: SessionPhase,
    /// When the held token expires.
    pub expires_at: Option<u64>,
    /// Whether a refresh token is held.
    pub has_refresh_token: bool,
    /// When the next request may go out.
    pub retry_at: Option<u64>,
    /// Consecutive transient failures.
    pub failures: u32,
    /// Granted scopes.
    pub scopes: Vec<String>,
}

/// Why a connection failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NetError {
    /// The egress policy refused it.
    #[error("egress denied: {0}")]
    Denied(String),
    /// The name did not resolve.
    #[error("name resolution failed: {0}")]
    Resolve(String),
    /// The connection failed.
    #[error("connection failed: {0}")]
    Connect(String),
    /// The deadline passed.
    #[error("timed out")]
    Timeout,
    /// The peer reset it.
    #[error("connection reset: {0}")]
    Reset(String),
    /// It was closed.
    #[error("connection closed")]
    Closed,
    /// Anything else.
    #[error("i/o error: {0}")]
    Other(String),
}

/// An RFC 6749 §5.2 error answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProtocolError {
    /// HTTP status.
    pub status: u16,
    /// The `error` code.
    pub error: String,
    /// `error_description`.
    pub description: Option<String>,
    /// `error_uri`.
    pub uri: Option<String>,
    /// `Retry-After` seconds.
    pub retry_after: Option<u64>,
}

/// A non-2xx answer without a standard body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpStatusError {
    /// HTTP status.
    pub status: u16,
    /// Up to 256 characters of the body, redacted.
    pub snippet: String,
    /// `Retry-After` seconds.
    pub retry_after: Option<u64>,
}

/// A session backing off.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackoffError {
    /// When the next request goes out.
    pub retry_at: u64,
    /// Consecutive transient failures.
    pub failures: u32,
    /// The last failure.
    pub last_error: String,
}

/// Why an OAuth operation failed: one classification for every flow.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OAuthError {
    /// Rejected before any request.
    #[error("oauth configuration: {0}")]
    Config(String),
    /// An RFC 6749 §5.2 error.
    #[error(
        "authorization server error {}: {}{}{}",
        .0.status,
        .0.error,
        .0.description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default(),
        retry_note(.0.retry_after)
    )]
    Protocol(ProtocolError),
    /// A non-2xx answer without a standard body.
    #[error(
        "authorization server answered HTTP {}{}: {}",
        .0.status,
        retry_note(.0.retry_after),
        .0.snippet
    )]
    HttpStatus(HttpStatusError),
    /// A 2xx answer that is no usable token.
    #[error("invalid token response: {0}")]
    InvalidResponse(String),
    /// TLS failed.
    #[error("tls: {0}")]
    Tls(String),
    /// The connection failed.
    #[error("transport: {0}")]
    Transport(NetError),
    /// A person must authorize again.
    #[error("authorization required: {0}")]
    AuthorizationRequired(String),
    /// The session is backing off.
    #[error("backing off after {} failures until {}: {}", .0.failures, .0.retry_at, .0.last_error)]
    Backoff(BackoffError),
}

impl Plugin {
    /// Requests one token, keeping no state.
    pub fn request_token(&mut self, client: &Client, grant: &Grant) -> Result<Token, Error> {
        let (client, grant) = (wit::Client::from(client), wit::Grant::from(grant));
        let result = self.call(|b, s| {
            b.gateway_auth_oauth()
                .call_request_token(s, &client, &grant)
        })?;
        result.map(Token::from).map_err(oauth_error)
    }

    /// Opens (or replaces) session `key`; tokens already stored for the same client are
    /// kept.
    pub fn open_session(
        &mut self,
        key: &str,
        client: &Client,
        grant: &SessionGrant,
    ) -> Result<(), Error> {
        let (client, grant) = (wit::Client::from(client), wit::SessionGrant::from(grant));
        let result = self.call(|b, s| {
            b.gateway_auth_oauth()
                .call_open_session(s, key, &client, &grant)
        })?;
        result.map_err(oauth_error)?;
        self.sessions.insert(key.to_string(), (client, grant));
        Ok(())
    }

    /// The session's access token, refreshed or re-acquired when due.
    pub fn access_token(&mut self, key: &str) -> Result<Token, Error> {
        let result = self.call(|b, s| b.gateway_auth_oauth().call_access_token(s, key))?;
        result.map(Token::from).map_err(oauth_error)
    }

    /// Starts the code flow.
    pub fn begin_authorization(&mut self, key: &str) -> Result<Authorization, Error> {
        let result = self.call(|b, s| b.gateway_auth_oauth().call_begin_authorization(s, key))?;
        result
            .map(|a| Authorization {
                url: a.url,
                state: a.state,
                expires_at: a.expires_at,
            })
            .map_err(oauth_error)
    }

    /// Completes the code flow with the redirect's `state` and `code`.
    pub fn complete_authorization(
        &mut self,
        key: &str,
        state: &str,
        code: &Secret,
    ) -> Result<Token, Error> {
        let result = self.call(|b, s| {
            b.gateway_auth_oauth()
                .call_complete_authorization(s, key, state, code.expose())
        })?;
        result.map(Token::from).map_err(oauth_error)
    }

    /// Starts a device authorization.
    pub fn begin_device_authorization(&mut self, key: &str) -> Result<DeviceAuthorization, Error> {
        let result = self.call(|b, s| {
            b.gateway_auth_oauth()
                .call_begin_device_authorization(s, key)
        })?;
        result
            .map(|d| DeviceAuthorization {
                user_code: d.user_code,
                verification_uri: d.verification_uri,
                verification_uri_complete: d.verification_uri_complete,
                expires_at: d.expires_at,
                interval_seconds: d.interval_seconds,
            })
            .map_err(oauth_error)
    }

    /// Polls the device authorization once; `None` while the user has not finished.
    pub fn poll_device_authorization(&mut self, key: &str) -> Result<Option<Token>, Error> {
        let result = self.call(|b, s| {
            b.gateway_auth_oauth()
                .call_poll_device_authorization(s, key)
        })?;
        result.map(|t| t.map(Token::from)).map_err(oauth_error)
    }

    /// The session's state, if there is a session under `key`.
    pub fn session_status(&mut self, key: &str) -> Result<Option<SessionState>, Error> {
        let state = self.call(|b, s| b.gateway_auth_oauth().call_session_status(s, key))?;
        Ok(state.map(|st| SessionState {
            phase: match st.phase {
                wit::SessionPhase::Empty => SessionPhase::Empty,
                wit::SessionPhase::Valid => SessionPhase::Valid,
                wit::SessionPhase::Authorizing => SessionPhase::Authorizing,
                wit::SessionPhase::Backoff => SessionPhase::Backoff,
                wit::SessionPhase::AuthorizationRequired => SessionPhase::AuthorizationRequired,
            },
            expires_at: st.expires_at,
            has_refresh_token: st.has_refresh_token,
            retry_at: st.retry_at,
            failures: st.failures,
            scopes: st.scopes,
        }))
    }

    /// Revokes the session's tokens and forgets them.
    pub fn revoke(&mut self, key: &str) -> Result<(), Error> {
        let result = self.call(|b, s| b.gateway_auth_oauth().call_revoke(s, key))?;
        result.map_err(oauth_error)
    }

    /// Forgets the session here and in the store.
    pub fn close_session(&mut self, key: &str) -> Result<(), Error> {
        self.call(|b, s| b.gateway_auth_oauth().call_close_session(s, key))?;
        self.sessions.remove(key);
        Ok(())
    }
}

fn retry_note(retry_after: Option<u64>) -> String {
    retry_after
        .map(|s| format!(", retry after {s} s"))
        .unwrap_or_default()
}

fn oauth_error(e: wit::OauthError) -> Error {
    Error::OAuth(OAuthError::from(e))
}

fn expose(s: &Option<Secret>) -> Option<String> {
    s.as_ref().map(|s| s.expose().to_string())
}

impl From<&Client> for wit::Client {
    fn from(c: &Client) -> Self {
        Self {
            client_id: c.client_id.clone(),
            auth: match &c.auth {
                ClientAuth::None => wit::ClientAuth::None,
                ClientAuth::ClientSecretBasic(s) => {
                    wit::ClientAuth::ClientSecretBasic(s.expose().into())
                }
                ClientAuth::ClientSecretPost(s) => {
                    wit::ClientAuth::ClientSecretPost(s.expose().into())
                }
                ClientAuth::PrivateKeyJwt(k) => wit::ClientAuth::PrivateKeyJwt(wit::SigningKey {
                    algorithm: match k.algorithm {
                        JwtAlgorithm::Rs256 => wit::JwtAlgorithm::Rs256,
                        JwtAlgorithm::Es256 => wit::JwtAlgorithm::Es256,
                    },
                    private_key_pem: k.private_key_pem.expose().into(),
                    key_id: k.key_id.clone(),
                }),
                ClientAuth::TlsClientAuth => wit::ClientAuth::TlsClientAuth,
            },
            issuer: c.issuer.clone(),
            token_endpoint: c.token_endpoint.clone(),
            authorization_endpoint: c.authorization_endpoint.clone(),
            device_authorization_endpoint: c.device_authorization_endpoint.clone(),
            revocation_endpoint: c.revocation_endpoint.clone(),
            redirect_uri: c.redirect_uri.clone(),
            scopes: c.scopes.clone(),
            audience: c.audience.clone(),
            resources: c.resources.clone(),
            trust: (&c.trust).into(),
            timeout_ms: c.timeout_ms,
            refresh_skew_seconds: c.refresh_skew_seconds,
        }
    }
}

impl From<&PasswordCredentials> for wit::PasswordCredentials {
    fn from(p: &PasswordCredentials) -> Self {
        Self {
            username: p.username.clone(),
            password: p.password.expose().into(),
        }
    }
}

impl From<&TokenExchange> for wit::TokenExchange {
    fn from(t: &TokenExchange) -> Self {
        Self {
            subject_token: t.subject_token.expose().into(),
            subject_token_type: t.subject_token_type.clone(),
            actor_token: expose(&t.actor_token),
            actor_token_type: t.actor_token_type.clone(),
            requested_token_type: t.requested_token_type.clone(),
        }
    }
}

impl From<&Grant> for wit::Grant {
    fn from(g: &Grant) -> Self {
        match g {
            Grant::ClientCredentials => Self::ClientCredentials,
            Grant::Password(p) => Self::Password(p.into()),
            Grant::AuthorizationCode(c) => Self::AuthorizationCode(wit::CodeExchange {
                code: c.code.expose().into(),
                code_verifier: expose(&c.code_verifier),
            }),
            Grant::RefreshToken(t) => Self::RefreshToken(t.expose().into()),
            Grant::TokenExchange(t) => Self::TokenExchange(t.into()),
            Grant::JwtBearer(a) => Self::JwtBearer(a.expose().into()),
            Grant::DeviceCode(d) => Self::DeviceCode(d.expose().into()),
        }
    }
}

impl From<&SessionGrant> for wit::SessionGrant {
    fn from(g: &SessionGrant) -> Self {
        match g {
            SessionGrant::ClientCredentials => Self::ClientCredentials,
            SessionGrant::Password(p) => Self::Password(p.into()),
            SessionGrant::AuthorizationCode => Self::AuthorizationCode,
            SessionGrant::DeviceCode => Self::DeviceCode,
            SessionGrant::TokenExchange(t) => Self::TokenExchange(t.into()),
            SessionGrant::JwtBearer(a) => Self::JwtBearer(a.expose().into()),
            SessionGrant::RefreshToken(t) => Self::RefreshToken(t.expose().into()),
        }
    }
}

impl From<wit::Token> for Token {
    fn from(t: wit::Token) -> Self {
        Self {
            access_token: t.access_token.into(),
            token_type: t.token_type,
            expires_at: t.expires_at,
            scopes: t.scopes,
            refresh_token: t.refresh_token.map(Secret::from),
            id_token: t.id_token.map(Secret::from),
            issued_token_type: t.issued_token_type,
        }
    }
}

impl From<types::NetError> for NetError {
    fn from(e: types::NetError) -> Self {
        match e {
            types::NetError::Denied(m) => Self::Denied(m),
            types::NetError::Resolve(m) => Self::Resolve(m),
            types::NetError::Connect(m) => Self::Connect(m),
            types::NetError::Timeout => Self::Timeout,
            types::NetError::Reset(m) => Self::Reset(m),
            types::NetError::Closed => Self::Closed,
            types::NetError::Other(m) => Self::Other(m),
        }
    }
}

impl From<wit::OauthError> for OAuthError {
    fn from(e: wit::OauthError) -> Self {
        match e {
            wit::OauthError::Config(m) => Self::Config(m),
            wit::OauthError::Protocol(p) => Self::Protocol(ProtocolError {
                status: p.status,
                error: p.error,
                description: p.description,
                uri: p.uri,
                retry_after: p.retry_after,
            }),
            wit::OauthError::HttpStatus(h) => Self::HttpStatus(HttpStatusError {
                status: h.status,
                snippet: h.snippet,
                retry_after: h.retry_after,
            }),
            wit::OauthError::InvalidResponse(m) => Self::InvalidResponse(m),
            wit::OauthError::Tls(m) => Self::Tls(m),
            wit::OauthError::Transport(n) => Self::Transport(n.into()),
            wit::OauthError::AuthorizationRequired(m) => Self::AuthorizationRequired(m),
            wit::OauthError::Backoff(b) => Self::Backoff(BackoffError {
                retry_at: b.retry_at,
                failures: b.failures,
                last_error: b.last_error,
            }),
        }
    }
}

impl fmt::Display for SessionPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Empty => "empty",
            Self::Valid => "valid",
            Self::Authorizing => "authorizing",
            Self::Backoff => "backoff",
            Self::AuthorizationRequired => "authorization-required",
        })
    }
}
