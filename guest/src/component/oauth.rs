//! The `oauth` export over [`crate::oauth::OAuth`]: WIT types in, crate types through
//! the flows, WIT types out.

use std::cell::RefCell;

use super::{Component, Host};
use crate::bindings::exports::gateway::auth::oauth as wit;
use crate::oauth::{self as o, OAuth};
use crate::secret::PrivateKeyPem;

thread_local! {
    /// The sessions of this instance (their tokens also live in the host's store).
    static OAUTH: RefCell<OAuth> = RefCell::new(OAuth::new());
}

fn with<R>(f: impl FnOnce(&mut OAuth, &mut Host) -> R) -> R {
    OAUTH.with_borrow_mut(|oauth| f(oauth, &mut Host))
}

impl wit::Guest for Component {
    fn request_token(
        client: wit::Client,
        grant: wit::Grant,
    ) -> Result<wit::Token, wit::OauthError> {
        let (client, grant) = (o::Client::from(client), o::Grant::from(grant));
        with(|oauth, host| oauth.request_token(host, &client, grant))
            .map(wit::Token::from)
            .map_err(wit::OauthError::from)
    }

    fn open_session(
        key: String,
        client: wit::Client,
        grant: wit::SessionGrant,
    ) -> Result<(), wit::OauthError> {
        let (client, grant) = (o::Client::from(client), o::SessionGrant::from(grant));
        with(|oauth, host| oauth.open_session(host, &key, client, grant))
            .map_err(wit::OauthError::from)
    }

    fn access_token(key: String) -> Result<wit::Token, wit::OauthError> {
        with(|oauth, host| oauth.access_token(host, &key))
            .map(wit::Token::from)
            .map_err(wit::OauthError::from)
    }

    fn begin_authorization(key: String) -> Result<wit::Authorization, wit::OauthError> {
        with(|oauth, host| oauth.begin_authorization(host, &key))
            .map(|a| wit::Authorization {
                url: a.url,
                state: a.state,
                expires_at: a.expires_at,
            })
            .map_err(wit::OauthError::from)
    }

    fn complete_authorization(
        key: String,
        state: String,
        code: String,
    ) -> Result<wit::Token, wit::OauthError> {
        let code = o::AuthorizationCode::new(code);
        with(|oauth, host| oauth.complete_authorization(host, &key, &state, code))
            .map(wit::Token::from)
            .map_err(wit::OauthError::from)
    }

    fn begin_device_authorization(
        key: String,
    ) -> Result<wit::DeviceAuthorization, wit::OauthError> {
        with(|oauth, host| oauth.begin_device_authorization(host, &key))
            .map(|d| wit::DeviceAuthorization {
                user_code: d.user_code,
                verification_uri: d.verification_uri,
                verification_uri_complete: d.verification_uri_complete,
                expires_at: d.expires_at,
                interval_seconds: d.interval_seconds,
            })
            .map_err(wit::OauthError::from)
    }

    fn poll_device_authorization(key: String) -> Result<Option<wit::Token>, wit::OauthError> {
        with(|oauth, host| oauth.poll_device_authorization(host, &key))
            .map(|t| t.map(wit::Token::from))
            .map_err(wit::OauthError::from)
    }

    fn session_status(key: String) -> Option<wit::SessionState> {
        with(|oauth, host| oauth.session_status(host, &key)).map(|s| wit::SessionState {
            phase: match s.phase {
                o::SessionPhase::Empty => wit::SessionPhase::Empty,
                o::SessionPhase::Valid => wit::SessionPhase::Valid,
                o::SessionPhase::Authorizing => wit::SessionPhase::Authorizing,
                o::SessionPhase::Backoff => wit::SessionPhase::Backoff,
                o::SessionPhase::AuthorizationRequired => wit::SessionPhase::AuthorizationRequired,
            },
            expires_at: s.expires_at,
            has_refresh_token: s.has_refresh_token,
            retry_at: s.retry_at,
            failures: s.failures,
            scopes: s.scopes,
        })
    }

    fn revoke(key: String) -> Result<(), wit::OauthError> {
        with(|oauth, host| oauth.revoke(host, &key)).map_err(wit::OauthError::from)
    }

    fn close_session(key: String) {
        with(|oauth, host| oauth.close_session(host, &key));
    }
}

impl From<wit::Client> for o::Client {
    fn from(c: wit::Client) -> Self {
        Self {
            client_id: c.client_id,
            auth: match c.auth {
                wit::ClientAuth::None => o::ClientAuth::None,
                wit::ClientAuth::ClientSecretBasic(s) => {
                    o::ClientAuth::ClientSecretBasic(o::ClientSecret::new(s))
                }
                wit::ClientAuth::ClientSecretPost(s) => {
                    o::ClientAuth::ClientSecretPost(o::ClientSecret::new(s))
                }
                wit::ClientAuth::PrivateKeyJwt(k) => o::ClientAuth::PrivateKeyJwt(o::SigningKey {
                    algorithm: match k.algorithm {
                        wit::JwtAlgorithm::Rs256 => o::JwtAlgorithm::Rs256,
                        wit::JwtAlgorithm::Es256 => o::JwtAlgorithm::Es256,
                    },
                    private_key_pem: PrivateKeyPem::new(k.private_key_pem),
                    key_id: k.key_id,
                }),
                wit::ClientAuth::TlsClientAuth => o::ClientAuth::TlsClientAuth,
            },
            issuer: c.issuer,
            token_endpoint: c.token_endpoint,
            authorization_endpoint: c.authorization_endpoint,
            device_authorization_endpoint: c.device_authorization_endpoint,
            revocation_endpoint: c.revocation_endpoint,
            redirect_uri: c.redirect_uri,
            scopes: c.scopes,
            audience: c.audience,
            resources: c.resources,
            trust: c.trust.into(),
            timeout_ms: c.timeout_ms,
            refresh_skew_seconds: c.refresh_skew_seconds,
        }
    }
}

impl From<wit::PasswordCredentials> for o::PasswordCredentials {
    fn from(p: wit::PasswordCredentials) -> Self {
        Self {
            username: p.username,
            password: o::Password::new(p.password),
        }
    }
}

impl From<wit::TokenExchange> for o::TokenExchange {
    fn from(t: wit::TokenExchange) -> Self {
        Self {
            subject_token: o::SubjectToken::new(t.subject_token),
            subject_token_type: t.subject_token_type,
            actor_token: t.actor_token.map(o::ActorToken::new),
            actor_token_type: t.actor_token_type,
            requested_token_type: t.requested_token_type,
        }
    }
}

impl From<wit::Grant> for o::Grant {
    fn from(g: wit::Grant) -> Self {
        match g {
            wit::Grant::ClientCredentials => Self::ClientCredentials,
            wit::Grant::Password(p) => Self::Password(p.into()),
            wit::Grant::AuthorizationCode(c) => Self::AuthorizationCode(o::CodeExchange {
                code: o::AuthorizationCode::new(c.code),
                code_verifier: c.code_verifier.map(o::PkceCodeVerifier::new),
            }),
            wit::Grant::RefreshToken(t) => Self::RefreshToken(o::RefreshToken::new(t)),
            wit::Grant::TokenExchange(t) => Self::TokenExchange(t.into()),
            wit::Grant::JwtBearer(a) => Self::JwtBearer(o::Assertion::new(a)),
            wit::Grant::DeviceCode(d) => Self::DeviceCode(o::DeviceCode::new(d)),
        }
    }
}

impl From<wit::SessionGrant> for o::SessionGrant {
    fn from(g: wit::SessionGrant) -> Self {
        match g {
            wit::SessionGrant::ClientCredentials => Self::ClientCredentials,
            wit::SessionGrant::Password(p) => Self::Password(p.into()),
            wit::SessionGrant::AuthorizationCode => Self::AuthorizationCode,
            wit::SessionGrant::DeviceCode => Self::DeviceCode,
            wit::SessionGrant::TokenExchange(t) => Self::TokenExchange(t.into()),
            wit::SessionGrant::JwtBearer(a) => Self::JwtBearer(o::Assertion::new(a)),
            wit::SessionGrant::RefreshToken(t) => Self::RefreshToken(o::RefreshToken::new(t)),
        }
    }
}

impl From<o::Token> for wit::Token {
    fn from(t: o::Token) -> Self {
        Self {
            access_token: t.access_token.secret().to_string(),
            token_type: t.token_type,
            expires_at: t.expires_at,
            scopes: t.scopes,
            refresh_token: t.refresh_token.map(|r| r.secret().to_string()),
            id_token: t.id_token.map(|i| i.secret().to_string()),
            issued_token_type: t.issued_token_type,
        }
    }
}

impl From<o::OAuthError> for wit::OauthError {
    fn from(e: o::OAuthError) -> Self {
        match e {
            o::OAuthError::Config(m) => Self::Config(m),
            o::OAuthError::Protocol(p) => Self::Protocol(wit::ProtocolError {
                status: p.status,
                error: p.error,
                description: p.description,
                uri: p.uri,
                retry_after: p.retry_after,
            }),
            o::OAuthError::HttpStatus(h) => Self::HttpStatus(wit::HttpStatusError {
                status: h.status,
                snippet: h.snippet,
                retry_after: h.retry_after,
            }),
            o::OAuthError::InvalidResponse(m) => Self::InvalidResponse(m),
            o::OAuthError::Tls(m) => Self::Tls(m),
            o::OAuthError::Transport(n) => Self::Transport(n.into()),
            o::OAuthError::AuthorizationRequired(m) => Self::AuthorizationRequired(m),
            o::OAuthError::Backoff(b) => Self::Backoff(wit::BackoffError {
                retry_at: b.retry_at,
                failures: b.failures,
                last_error: b.last_error,
            }),
        }
    }
}
