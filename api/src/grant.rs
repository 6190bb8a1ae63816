//! Grants: what a token request, or a session, obtains its token with.

use crate::client::SigningKey;
use crate::secret::{
    ActorToken, Assertion, AuthorizationCode, DeviceCode, Password, PkceCodeVerifier, RefreshToken,
    SubjectToken,
};

/// Credentials of the resource owner password grant (WIT `password-credentials`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PasswordCredentials {
    /// The user name.
    pub username: String,
    /// The password.
    pub password: Password,
}

/// An authorization code to redeem (RFC 6749 §4.1.3; WIT `code-exchange`). Not
/// `Clone`: see [`AuthorizationCode`].
#[derive(Debug, PartialEq, Eq)]
pub struct CodeExchange {
    /// The code the authorization server issued.
    pub code: AuthorizationCode,
    /// The PKCE verifier matching the challenge sent with the authorization request.
    pub code_verifier: Option<PkceCodeVerifier>,
}

/// An RFC 8693 token exchange request (WIT `token-exchange`).
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

/// A grant for a single `request-token` call (WIT `grant`). Not `Clone`: an
/// authorization code in it may be redeemed once.
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

/// The default lifetime of an assertion a session signs, in seconds.
pub const DEFAULT_ASSERTION_LIFETIME_SECONDS: u32 = 300;

/// What a JWT-bearer session signs a fresh assertion with for every token request
/// (RFC 7523 §2.1, §3; WIT `assertion-signer`): each gets a new `jti`, `iat` and
/// `exp`, so a server that refuses replayed assertions accepts it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AssertionSigner {
    /// The key the assertion is signed with.
    pub signing_key: SigningKey,
    /// The `iss` claim: who vouches for the subject.
    pub issuer: String,
    /// The `sub` claim: whom the token is for.
    pub subject: String,
    /// The `aud` claim; by default the client's issuer, else its token endpoint.
    pub audience: Option<String>,
    /// Seconds from `iat` to `exp` (default [`DEFAULT_ASSERTION_LIFETIME_SECONDS`]).
    pub lifetime_seconds: Option<u32>,
}

impl AssertionSigner {
    /// Seconds from `iat` to `exp`.
    pub fn lifetime(&self) -> u64 {
        u64::from(
            self.lifetime_seconds
                .unwrap_or(DEFAULT_ASSERTION_LIFETIME_SECONDS),
        )
    }
}

/// How a session obtains its first token (WIT `session-grant`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionGrant {
    /// Client credentials; re-acquired without a person.
    ClientCredentials,
    /// Resource owner password; re-acquired with the stored credentials.
    Password(PasswordCredentials),
    /// Authorization code with PKCE: `begin-authorization`, then
    /// `complete-authorization`.
    AuthorizationCode,
    /// Device authorization: `begin-device-authorization`, then polling.
    DeviceCode,
    /// Token exchange; re-acquired with the same subject.
    TokenExchange(TokenExchange),
    /// JWT bearer with this fixed assertion; re-sent until its `exp`, after which the
    /// session answers [`OAuthError::AuthorizationRequired`](crate::OAuthError).
    JwtBearer(Assertion),
    /// JWT bearer with an assertion signed afresh for every request.
    SignedJwtBearer(AssertionSigner),
    /// Start from an existing refresh token.
    RefreshToken(RefreshToken),
}
