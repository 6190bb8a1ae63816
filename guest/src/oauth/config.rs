//! Checks of a client's configuration that need no request, so that a bad one fails
//! as [`OAuthError::Config`] before any secret is sent.

use gateway_auth_api::{
    Client, ClientAuth, Grant, OAuthError, RESERVED_AUTHORIZATION_PARAMS, SessionGrant,
};

use super::request;

use crate::http::Request;

/// Checks everything about `client` that can be checked without a request.
pub fn validate(client: &Client) -> Result<(), OAuthError> {
    if client.client_id.trim().is_empty() {
        return Err(OAuthError::Config("client_id is empty".into()));
    }
    if client.token_endpoint.is_none() && client.issuer.is_none() {
        return Err(OAuthError::Config(
            "neither token_endpoint nor issuer is set: give one of them".into(),
        ));
    }
    let endpoints = [
        ("token_endpoint", &client.token_endpoint),
        ("authorization_endpoint", &client.authorization_endpoint),
        (
            "device_authorization_endpoint",
            &client.device_authorization_endpoint,
        ),
        ("revocation_endpoint", &client.revocation_endpoint),
    ];
    for (name, url) in endpoints {
        if let Some(url) = url {
            check_https_url(name, url)?;
        }
    }
    if let Some(issuer) = &client.issuer {
        super::discovery::check_issuer(issuer)?;
    }
    for (name, _) in &client.authorization_params {
        if name.is_empty() {
            return Err(OAuthError::Config(
                "authorization_params: a parameter has an empty name".into(),
            ));
        }
        if RESERVED_AUTHORIZATION_PARAMS.contains(&name.as_str()) {
            return Err(OAuthError::Config(format!(
                "authorization_params: {name} is set by the plugin and cannot be overridden"
            )));
        }
    }
    if client.timeout_ms == Some(0) {
        return Err(OAuthError::Config("timeout_ms must be positive".into()));
    }
    match &client.auth {
        ClientAuth::None => Ok(()),
        ClientAuth::ClientSecretBasic(s) | ClientAuth::ClientSecretPost(s) => {
            if s.secret().is_empty() {
                Err(OAuthError::Config(format!(
                    "{} needs a non-empty client secret",
                    client.auth.method_name()
                )))
            } else {
                Ok(())
            }
        }
        ClientAuth::PrivateKeyJwt(key) => super::jwt::check_key(key),
        ClientAuth::TlsClientAuth => {
            if client.trust.client_certificate.is_none() || client.trust.client_key.is_none() {
                Err(OAuthError::Config(
                    "tls_client_auth needs trust.client_certificate and trust.client_key".into(),
                ))
            } else {
                Ok(())
            }
        }
    }
}

/// Checks a session's grant against its client: what re-acquiring will send, so a bad
/// grant fails at `open_session` rather than at the first renewal.
pub fn validate_session_grant(client: &Client, grant: &SessionGrant) -> Result<(), OAuthError> {
    let sent = match grant {
        SessionGrant::RefreshToken(token) if token.secret().is_empty() => {
            return Err(OAuthError::Config("the refresh token is empty".into()));
        }
        SessionGrant::Password(credentials) => Grant::Password(credentials.clone()),
        SessionGrant::TokenExchange(exchange) => Grant::TokenExchange(exchange.clone()),
        SessionGrant::JwtBearer(assertion) => Grant::JwtBearer(assertion.clone()),
        SessionGrant::SignedJwtBearer(signer) => {
            if signer.issuer.trim().is_empty() || signer.subject.trim().is_empty() {
                return Err(OAuthError::Config(
                    "the assertion signer needs an issuer and a subject".into(),
                ));
            }
            if signer.lifetime() == 0 {
                return Err(OAuthError::Config(
                    "the assertion signer's lifetime_seconds must be positive".into(),
                ));
            }
            return super::jwt::check_key(&signer.signing_key);
        }
        _ => return Ok(()),
    };
    request::grant_params(client, &sent).map(|_| ())
}

/// Checks that `url` is an absolute `https` URL without credentials; `name` says which
/// setting it is.
pub fn check_https_url(name: &str, url: &str) -> Result<(), OAuthError> {
    // The HTTP layer's own parser, so that what passes here is what it will accept.
    Request::get(url)
        .target()
        .map(|_| ())
        .map_err(|e| OAuthError::Config(format!("{name}: {e}")))
}
