//! Checks of a client's configuration that need no request, so that a bad one fails
//! as [`OAuthError::Config`] before any secret is sent.

use gateway_auth_api::{Client, ClientAuth, OAuthError};

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

/// Checks that `url` is an absolute `https` URL without credentials; `name` says which
/// setting it is.
pub fn check_https_url(name: &str, url: &str) -> Result<(), OAuthError> {
    // The HTTP layer's own parser, so that what passes here is what it will accept.
    Request::get(url)
        .target()
        .map(|_| ())
        .map_err(|e| OAuthError::Config(format!("{name}: {e}")))
}
