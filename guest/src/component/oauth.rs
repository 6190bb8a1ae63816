//! The `oauth` export over [`crate::oauth::OAuth`]: generated types in, `api` types
//! through the flows, generated types out.

use std::cell::RefCell;

use gateway_auth_api::{
    Assertion, AssertionSigner, Authorization, AuthorizationCode, BackoffError, Client, ClientAuth,
    ClientSecret, CodeExchange, DeviceAuthorization, DeviceCode, DpopBinding, Grant,
    HttpStatusError, JwtAlgorithm, OAuthError, Password, PasswordCredentials, PkceCodeVerifier,
    PrivateKeyPem, ProtocolError, RefreshToken, Registration, RegistrationRequest,
    RegistrationSource, ResourceAuthorization, SessionGrant, SessionPhase, SessionState,
    SigningKey, SubjectToken, Token, TokenExchange, TrustSpec,
};

use super::{Component, FromWit, Host, IntoWit};
use crate::bindings::exports::gateway::auth::oauth as wit;
use crate::oauth::OAuth;

thread_local! {
    /// The sessions of this instance (their tokens also live in the host's store).
    static OAUTH: RefCell<OAuth> = RefCell::new(OAuth::new());
}

pub(super) fn with<R>(f: impl FnOnce(&mut OAuth, &mut Host) -> R) -> R {
    OAUTH.with_borrow_mut(|oauth| f(oauth, &mut Host))
}

impl wit::Guest for Component {
    fn request_token(
        client: wit::Client,
        grant: wit::Grant,
    ) -> Result<wit::Token, wit::OauthError> {
        let (client, grant) = (Client::from_wit(client), Grant::from_wit(grant));
        with(|oauth, host| oauth.request_token(host, &client, grant))
            .map(IntoWit::into_wit)
            .map_err(IntoWit::into_wit)
    }

    fn open_session(
        key: String,
        client: wit::Client,
        grant: wit::SessionGrant,
    ) -> Result<(), wit::OauthError> {
        let (client, grant) = (Client::from_wit(client), SessionGrant::from_wit(grant));
        with(|oauth, host| oauth.open_session(host, &key, client, grant)).map_err(IntoWit::into_wit)
    }

    fn access_token(key: String) -> Result<wit::Token, wit::OauthError> {
        with(|oauth, host| oauth.access_token(host, &key))
            .map(IntoWit::into_wit)
            .map_err(IntoWit::into_wit)
    }

    fn renew_token(key: String, rejected: String) -> Result<wit::Token, wit::OauthError> {
        with(|oauth, host| oauth.renew_token(host, &key, &rejected))
            .map(IntoWit::into_wit)
            .map_err(IntoWit::into_wit)
    }

    fn discover_resource(
        resource_url: String,
        www_authenticate: Vec<String>,
        trust: wit::TrustSpec,
    ) -> Result<wit::ResourceAuthorization, wit::OauthError> {
        let trust = TrustSpec::from_wit(trust);
        with(|oauth, host| oauth.discover_resource(host, &resource_url, &www_authenticate, &trust))
            .map(IntoWit::into_wit)
            .map_err(IntoWit::into_wit)
    }

    fn register_client(
        request: wit::RegistrationRequest,
    ) -> Result<wit::Registration, wit::OauthError> {
        let request = RegistrationRequest::from_wit(request);
        with(|oauth, host| oauth.register_client(host, &request))
            .map(IntoWit::into_wit)
            .map_err(IntoWit::into_wit)
    }

    fn dpop_proof(
        key: String,
        method: String,
        url: String,
        nonce: Option<String>,
    ) -> Result<String, wit::OauthError> {
        with(|oauth, host| oauth.dpop_proof(host, &key, &method, &url, nonce.as_deref()))
            .map_err(IntoWit::into_wit)
    }

    fn begin_step_up(
        key: String,
        www_authenticate: Vec<String>,
    ) -> Result<wit::Authorization, wit::OauthError> {
        with(|oauth, host| oauth.begin_step_up(host, &key, &www_authenticate))
            .map(IntoWit::into_wit)
            .map_err(IntoWit::into_wit)
    }

    fn begin_authorization(key: String) -> Result<wit::Authorization, wit::OauthError> {
        with(|oauth, host| oauth.begin_authorization(host, &key))
            .map(IntoWit::into_wit)
            .map_err(IntoWit::into_wit)
    }

    fn complete_authorization(
        key: String,
        state: String,
        code: String,
        iss: Option<String>,
    ) -> Result<wit::Token, wit::OauthError> {
        let code = AuthorizationCode::new(code);
        with(|oauth, host| oauth.complete_authorization(host, &key, &state, code, iss.as_deref()))
            .map(IntoWit::into_wit)
            .map_err(IntoWit::into_wit)
    }

    fn begin_device_authorization(
        key: String,
    ) -> Result<wit::DeviceAuthorization, wit::OauthError> {
        with(|oauth, host| oauth.begin_device_authorization(host, &key))
            .map(IntoWit::into_wit)
            .map_err(IntoWit::into_wit)
    }

    fn poll_device_authorization(key: String) -> Result<Option<wit::Token>, wit::OauthError> {
        with(|oauth, host| oauth.poll_device_authorization(host, &key))
            .map(|t| t.map(IntoWit::into_wit))
            .map_err(IntoWit::into_wit)
    }

    fn session_status(key: String) -> Option<wit::SessionState> {
        with(|oauth, host| oauth.session_status(host, &key)).map(IntoWit::into_wit)
    }

    fn revoke(key: String) -> Result<(), wit::OauthError> {
        with(|oauth, host| oauth.revoke(host, &key)).map_err(IntoWit::into_wit)
    }

    fn close_session(key: String) {
        with(|oauth, host| oauth.close_session(host, &key));
    }

    fn forget_session(key: String) {
        with(|oauth, _| oauth.forget_session(&key));
    }
}

impl FromWit<wit::Client> for Client {
    fn from_wit(c: wit::Client) -> Self {
        let auth = match c.auth {
            wit::ClientAuth::None => ClientAuth::None,
            wit::ClientAuth::ClientSecretBasic(s) => {
                ClientAuth::ClientSecretBasic(ClientSecret::new(s))
            }
            wit::ClientAuth::ClientSecretPost(s) => {
                ClientAuth::ClientSecretPost(ClientSecret::new(s))
            }
            wit::ClientAuth::PrivateKeyJwt(k) => ClientAuth::PrivateKeyJwt(SigningKey::from_wit(k)),
            wit::ClientAuth::TlsClientAuth => ClientAuth::TlsClientAuth,
        };
        let mut client = Client::new(c.client_id, auth, TrustSpec::from_wit(c.trust));
        client.issuer = c.issuer;
        client.token_endpoint = c.token_endpoint;
        client.authorization_endpoint = c.authorization_endpoint;
        client.device_authorization_endpoint = c.device_authorization_endpoint;
        client.revocation_endpoint = c.revocation_endpoint;
        client.redirect_uri = c.redirect_uri;
        client.scopes = c.scopes;
        client.audience = c.audience;
        client.resources = c.resources;
        client.timeout_ms = c.timeout_ms;
        client.refresh_skew_seconds = c.refresh_skew_seconds;
        client.refresh_jitter_seconds = c.refresh_jitter_seconds;
        client.failure_hold_off_seconds = c.failure_hold_off_seconds;
        client.authorization_params = c.authorization_params;
        client.dpop = c.dpop.map(|binding| match binding {
            wit::DpopBinding::PerSession => DpopBinding::PerSession,
            wit::DpopBinding::Fixed(key) => DpopBinding::Fixed(SigningKey::from_wit(key)),
        });
        client
    }
}

impl IntoWit<wit::ResourceAuthorization> for ResourceAuthorization {
    fn into_wit(self) -> wit::ResourceAuthorization {
        wit::ResourceAuthorization {
            resource: self.resource,
            issuer: self.issuer,
            scopes: self.scopes,
            authorization_endpoint: self.authorization_endpoint,
            token_endpoint: self.token_endpoint,
            registration_endpoint: self.registration_endpoint,
            pushed_authorization_request_endpoint: self.pushed_authorization_request_endpoint,
            pushed_authorization_required: self.pushed_authorization_required,
            client_id_metadata_document_supported: self.client_id_metadata_document_supported,
            dpop_algorithms: self.dpop_algorithms,
            dpop_required: self.dpop_required,
            error: self.error,
        }
    }
}

impl FromWit<wit::RegistrationRequest> for RegistrationRequest {
    fn from_wit(r: wit::RegistrationRequest) -> Self {
        Self {
            issuer: r.issuer,
            registration_endpoint: r.registration_endpoint,
            redirect_uris: r.redirect_uris,
            grant_types: r.grant_types,
            token_endpoint_auth_method: r.token_endpoint_auth_method,
            client_name: r.client_name,
            scopes: r.scopes,
            client_id_metadata_document: r.client_id_metadata_document,
            trust: TrustSpec::from_wit(r.trust),
            timeout_ms: r.timeout_ms,
        }
    }
}

impl IntoWit<wit::Registration> for Registration {
    fn into_wit(self) -> wit::Registration {
        wit::Registration {
            client_id: self.client_id,
            client_secret: self.client_secret.map(ClientSecret::into_secret),
            client_secret_expires_at: self.client_secret_expires_at,
            token_endpoint_auth_method: self.token_endpoint_auth_method,
            source: match self.source {
                RegistrationSource::Registered => wit::RegistrationSource::Registered,
                RegistrationSource::Stored => wit::RegistrationSource::Stored,
                RegistrationSource::MetadataDocument => wit::RegistrationSource::MetadataDocument,
            },
        }
    }
}

impl FromWit<wit::SigningKey> for SigningKey {
    fn from_wit(k: wit::SigningKey) -> Self {
        Self {
            algorithm: match k.algorithm {
                wit::JwtAlgorithm::Rs256 => JwtAlgorithm::Rs256,
                wit::JwtAlgorithm::Es256 => JwtAlgorithm::Es256,
            },
            private_key_pem: PrivateKeyPem::new(k.private_key_pem),
            key_id: k.key_id,
        }
    }
}

impl FromWit<wit::PasswordCredentials> for PasswordCredentials {
    fn from_wit(p: wit::PasswordCredentials) -> Self {
        Self {
            username: p.username,
            password: Password::new(p.password),
        }
    }
}

impl FromWit<wit::TokenExchange> for TokenExchange {
    fn from_wit(t: wit::TokenExchange) -> Self {
        Self {
            subject_token: SubjectToken::new(t.subject_token),
            subject_token_type: t.subject_token_type,
            actor_token: t.actor_token.map(Into::into),
            actor_token_type: t.actor_token_type,
            requested_token_type: t.requested_token_type,
        }
    }
}

impl FromWit<wit::Grant> for Grant {
    fn from_wit(g: wit::Grant) -> Self {
        match g {
            wit::Grant::ClientCredentials => Self::ClientCredentials,
            wit::Grant::Password(p) => Self::Password(PasswordCredentials::from_wit(p)),
            wit::Grant::AuthorizationCode(c) => Self::AuthorizationCode(CodeExchange {
                code: AuthorizationCode::new(c.code),
                code_verifier: c.code_verifier.map(PkceCodeVerifier::new),
            }),
            wit::Grant::RefreshToken(t) => Self::RefreshToken(RefreshToken::new(t)),
            wit::Grant::TokenExchange(t) => Self::TokenExchange(TokenExchange::from_wit(t)),
            wit::Grant::JwtBearer(a) => Self::JwtBearer(Assertion::new(a)),
            wit::Grant::DeviceCode(d) => Self::DeviceCode(DeviceCode::new(d)),
        }
    }
}

impl FromWit<wit::SessionGrant> for SessionGrant {
    fn from_wit(g: wit::SessionGrant) -> Self {
        match g {
            wit::SessionGrant::ClientCredentials => Self::ClientCredentials,
            wit::SessionGrant::Password(p) => Self::Password(PasswordCredentials::from_wit(p)),
            wit::SessionGrant::AuthorizationCode => Self::AuthorizationCode,
            wit::SessionGrant::DeviceCode => Self::DeviceCode,
            wit::SessionGrant::TokenExchange(t) => Self::TokenExchange(TokenExchange::from_wit(t)),
            wit::SessionGrant::JwtBearer(a) => Self::JwtBearer(Assertion::new(a)),
            wit::SessionGrant::SignedJwtBearer(s) => Self::SignedJwtBearer(AssertionSigner {
                signing_key: SigningKey::from_wit(s.signing_key),
                issuer: s.issuer,
                subject: s.subject,
                audience: s.audience,
                lifetime_seconds: s.lifetime_seconds,
            }),
            wit::SessionGrant::RefreshToken(t) => Self::RefreshToken(RefreshToken::new(t)),
        }
    }
}

impl IntoWit<wit::Token> for Token {
    fn into_wit(self) -> wit::Token {
        wit::Token {
            access_token: self.access_token.into_secret(),
            token_type: self.token_type,
            expires_at: self.expires_at,
            scopes: self.scopes,
            refresh_token: self.refresh_token.map(RefreshToken::into_secret),
            id_token: self.id_token.map(|i| i.into_secret()),
            issued_token_type: self.issued_token_type,
        }
    }
}

impl IntoWit<wit::Authorization> for Authorization {
    fn into_wit(self) -> wit::Authorization {
        wit::Authorization {
            url: self.url,
            state: self.state,
            expires_at: self.expires_at,
        }
    }
}

impl IntoWit<wit::DeviceAuthorization> for DeviceAuthorization {
    fn into_wit(self) -> wit::DeviceAuthorization {
        wit::DeviceAuthorization {
            user_code: self.user_code,
            verification_uri: self.verification_uri,
            verification_uri_complete: self.verification_uri_complete,
            expires_at: self.expires_at,
            interval_seconds: self.interval_seconds,
        }
    }
}

impl IntoWit<wit::SessionPhase> for SessionPhase {
    fn into_wit(self) -> wit::SessionPhase {
        match self {
            SessionPhase::Empty => wit::SessionPhase::Empty,
            SessionPhase::Valid => wit::SessionPhase::Valid,
            SessionPhase::Authorizing => wit::SessionPhase::Authorizing,
            SessionPhase::Backoff => wit::SessionPhase::Backoff,
            SessionPhase::AuthorizationRequired => wit::SessionPhase::AuthorizationRequired,
            SessionPhase::Failed => wit::SessionPhase::Failed,
            // A phase this glue does not know yet: the nearest the contract has.
            _ => wit::SessionPhase::Backoff,
        }
    }
}

impl IntoWit<wit::SessionState> for SessionState {
    fn into_wit(self) -> wit::SessionState {
        wit::SessionState {
            phase: self.phase.into_wit(),
            expires_at: self.expires_at,
            has_refresh_token: self.has_refresh_token,
            retry_at: self.retry_at,
            failures: self.failures,
            refusals: self.refusals,
            scopes: self.scopes,
            lease: self.lease.map(|l| wit::SessionLease {
                holder: l.holder,
                expires_at: l.expires_at,
            }),
        }
    }
}

impl IntoWit<wit::OauthError> for OAuthError {
    fn into_wit(self) -> wit::OauthError {
        match self {
            Self::Config(m) => wit::OauthError::Config(m),
            Self::Protocol(ProtocolError {
                status,
                error,
                description,
                uri,
                retry_after,
            }) => wit::OauthError::Protocol(wit::ProtocolError {
                status,
                error,
                description,
                uri,
                retry_after,
            }),
            Self::HttpStatus(HttpStatusError {
                status,
                snippet,
                retry_after,
            }) => wit::OauthError::HttpStatus(wit::HttpStatusError {
                status,
                snippet,
                retry_after,
            }),
            Self::InvalidResponse(m) => wit::OauthError::InvalidResponse(m),
            Self::Tls(m) => wit::OauthError::Tls(m),
            Self::Transport(n) => wit::OauthError::Transport(n.into_wit()),
            Self::AuthorizationRequired(m) => wit::OauthError::AuthorizationRequired(m),
            Self::Backoff(BackoffError {
                retry_at,
                failures,
                last_error,
            }) => wit::OauthError::Backoff(wit::BackoffError {
                retry_at,
                failures,
                last_error,
            }),
            Self::Store(m) => wit::OauthError::Store(m),
            // A case this glue does not know yet still reaches the host, as its message.
            other => wit::OauthError::Config(other.to_string()),
        }
    }
}
