//! Pure builders of the form parameters each request carries, before client
//! authentication ([`client_auth`](super::client_auth)) is added.

use std::borrow::Cow;

use gateway_auth_api::OAuthError;
use gateway_auth_api::{Client, Grant, RefreshToken, TokenExchange};

/// RFC 8693 §2.1.
pub const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// RFC 7523 §2.1.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// RFC 8628 §3.4.
pub const DEVICE_CODE: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// Form parameters of one request. `Debug` shows the names only: the values carry
/// credentials.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Params(Vec<(Cow<'static, str>, String)>);

impl core::fmt::Debug for Params {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(name, _)| name))
            .finish()
    }
}

impl Params {
    /// Adds a parameter (parameters may repeat, e.g. `resource`, RFC 8707 §2).
    pub fn push(&mut self, name: &'static str, value: impl Into<String>) {
        self.0.push((Cow::Borrowed(name), value.into()));
    }

    /// Adds a parameter whose name the client chose (an extra authorization
    /// parameter).
    pub fn push_named(&mut self, name: &str, value: impl Into<String>) {
        self.0.push((Cow::Owned(name.to_string()), value.into()));
    }

    /// Adds a parameter if there is a value.
    pub fn push_opt(&mut self, name: &'static str, value: Option<&str>) {
        if let Some(value) = value {
            self.push(name, value);
        }
    }

    /// The first value of `name`: the grant a token request is counted as (and what a
    /// builder produced, for the tests).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Adds a parameter unless one of that name is there already: `client_id`, which
    /// a pushed authorization request carries as an authorization parameter and client
    /// authentication adds too (RFC 9126 §2.1 wants it once).
    pub fn push_once(&mut self, name: &'static str, value: impl Into<String>) {
        if self.get(name).is_none() {
            self.push(name, value);
        }
    }

    /// The pairs, as [`Request::form`](crate::http::Request::form) takes them.
    pub fn pairs(&self) -> Vec<(&str, &str)> {
        self.0
            .iter()
            .map(|(n, v)| (n.as_ref(), v.as_str()))
            .collect()
    }

    /// `scope` (space-separated, RFC 6749 §3.3) when the client asks for any.
    fn scope(&mut self, client: &Client) {
        if !client.scopes.is_empty() {
            self.push("scope", client.scopes.join(" "));
        }
    }

    /// `resource`, once per indicator (RFC 8707 §2).
    fn resources(&mut self, client: &Client) {
        for resource in &client.resources {
            self.push("resource", resource.as_str());
        }
    }

    /// What the client asks for: scope, audience and resources.
    fn wants(&mut self, client: &Client) {
        self.scope(client);
        self.push_opt("audience", client.audience.as_deref());
        self.resources(client);
    }
}

/// The token request parameters of `grant` (client authentication not included).
pub fn grant_params(client: &Client, grant: &Grant) -> Result<Params, OAuthError> {
    let mut params = Params::default();
    match grant {
        Grant::ClientCredentials => {
            // RFC 6749 §4.4.2.
            params.push("grant_type", "client_credentials");
            params.wants(client);
        }
        Grant::Password(credentials) => {
            // RFC 6749 §4.3.2.
            params.push("grant_type", "password");
            params.push("username", credentials.username.as_str());
            params.push("password", credentials.password.secret());
            params.wants(client);
        }
        Grant::AuthorizationCode(exchange) => {
            // RFC 6749 §4.1.3: no scope (it was fixed at authorization); redirect_uri
            // because the authorization request carried it; RFC 7636 §4.5 verifier;
            // RFC 8707 §2.2 resources.
            params.push("grant_type", "authorization_code");
            params.push("code", exchange.code.secret());
            params.push_opt("redirect_uri", client.redirect_uri.as_deref());
            params.push_opt(
                "code_verifier",
                exchange.code_verifier.as_ref().map(|v| v.secret()),
            );
            params.resources(client);
        }
        Grant::RefreshToken(token) => return Ok(refresh_params(client, token)),
        Grant::TokenExchange(exchange) => token_exchange(&mut params, client, exchange)?,
        Grant::JwtBearer(assertion) => {
            // RFC 7523 §2.1.
            params.push("grant_type", JWT_BEARER);
            params.push("assertion", assertion.secret());
            params.wants(client);
        }
        Grant::DeviceCode(code) => {
            // RFC 8628 §3.4.
            params.push("grant_type", DEVICE_CODE);
            params.push("device_code", code.secret());
        }
    }
    Ok(params)
}

/// RFC 6749 §6. No scope: omitting it asks for the scope originally granted, where
/// naming the configured scopes could fail with `invalid_scope` if fewer were granted.
pub fn refresh_params(client: &Client, token: &RefreshToken) -> Params {
    let mut params = Params::default();
    params.push("grant_type", "refresh_token");
    params.push("refresh_token", token.secret());
    params.resources(client);
    params
}

/// RFC 8693 §2.1.
fn token_exchange(
    params: &mut Params,
    client: &Client,
    exchange: &TokenExchange,
) -> Result<(), OAuthError> {
    match (&exchange.actor_token, &exchange.actor_token_type) {
        (Some(_), None) => {
            return Err(OAuthError::Config(
                "token exchange: actor_token_type is required with actor_token (RFC 8693 §2.1)"
                    .into(),
            ));
        }
        (None, Some(_)) => {
            return Err(OAuthError::Config(
                "token exchange: actor_token_type must not be sent without actor_token \
                 (RFC 8693 §2.1)"
                    .into(),
            ));
        }
        _ => {}
    }
    if exchange.subject_token_type.trim().is_empty() {
        return Err(OAuthError::Config(
            "token exchange: subject_token_type is empty".into(),
        ));
    }
    params.push("grant_type", TOKEN_EXCHANGE);
    params.push("subject_token", exchange.subject_token.secret());
    params.push("subject_token_type", exchange.subject_token_type.as_str());
    params.push_opt(
        "actor_token",
        exchange.actor_token.as_ref().map(|t| t.secret()),
    );
    params.push_opt("actor_token_type", exchange.actor_token_type.as_deref());
    params.push_opt(
        "requested_token_type",
        exchange.requested_token_type.as_deref(),
    );
    params.wants(client);
    Ok(())
}

/// The device authorization request (RFC 8628 §3.1).
pub fn device_authorization_params(client: &Client) -> Params {
    let mut params = Params::default();
    params.wants(client);
    params
}

/// The revocation request (RFC 7009 §2.1).
pub fn revocation_params(token: &str, hint: &'static str) -> Params {
    let mut params = Params::default();
    params.push("token", token);
    params.push("token_type_hint", hint);
    params
}

/// The authorization request's parameters (RFC 6749 §4.1.1, RFC 7636 §4.3, RFC 8707
/// §2), then the client's extra parameters: the query of the authorization URL, or the
/// body of a pushed authorization request (RFC 9126 §2.1).
pub fn authorization_params(client: &Client, state: &str, challenge: &str) -> Params {
    let mut params = Params::default();
    params.push("response_type", "code");
    params.push("client_id", client.client_id.as_str());
    params.push_opt("redirect_uri", client.redirect_uri.as_deref());
    params.scope(client);
    params.push("state", state);
    params.push("code_challenge", challenge);
    params.push("code_challenge_method", "S256");
    params.push_opt("audience", client.audience.as_deref());
    params.resources(client);
    // `config::validate` refused any that would override the ones above.
    for (name, value) in &client.authorization_params {
        params.push_named(name, value.as_str());
    }
    params
}

/// `endpoint` with `pairs` appended to its query, so a query it already has is kept.
pub fn with_query(endpoint: &str, pairs: &[(&str, &str)]) -> Result<String, OAuthError> {
    let mut url = url::Url::parse(endpoint)
        .map_err(|e| OAuthError::Config(format!("authorization_endpoint: {e}")))?;
    url.query_pairs_mut().extend_pairs(pairs);
    Ok(url.into())
}

/// The authorization request URL: [`authorization_params`] in the endpoint's query.
pub fn authorization_url(
    endpoint: &str,
    client: &Client,
    state: &str,
    challenge: &str,
) -> Result<String, OAuthError> {
    with_query(
        endpoint,
        &authorization_params(client, state, challenge).pairs(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use gateway_auth_api::*;

    fn client() -> Client {
        let mut client = Client::new("c", ClientAuth::None, TrustSpec::default());
        client.scopes = vec!["read".into(), "write".into()];
        client.audience = Some("https://api.example".into());
        client.resources = vec!["https://r1.example".into(), "https://r2.example".into()];
        client.redirect_uri = Some("https://app.example/cb".into());
        client
    }

    fn names(p: &Params) -> Vec<&str> {
        p.pairs().into_iter().map(|(n, _)| n).collect()
    }

    #[test]
    fn client_credentials_carry_scope_audience_and_every_resource() {
        let p = grant_params(&client(), &Grant::ClientCredentials).unwrap();
        assert_eq!(
            p.pairs(),
            vec![
                ("grant_type", "client_credentials"),
                ("scope", "read write"),
                ("audience", "https://api.example"),
                ("resource", "https://r1.example"),
                ("resource", "https://r2.example"),
            ]
        );
        let bare = grant_params(
            &Client::new("c", ClientAuth::None, TrustSpec::default()),
            &Grant::ClientCredentials,
        )
        .unwrap();
        assert_eq!(bare.pairs(), vec![("grant_type", "client_credentials")]);
    }

    #[test]
    fn password_grant() {
        let grant = Grant::Password(PasswordCredentials {
            username: "ann".into(),
            password: Password::new("pw"),
        });
        let p = grant_params(&client(), &grant).unwrap();
        assert_eq!(p.get("grant_type"), Some("password"));
        assert_eq!(
            (p.get("username"), p.get("password")),
            (Some("ann"), Some("pw"))
        );
        assert_eq!(p.get("scope"), Some("read write"));
    }

    #[test]
    fn authorization_code_carries_redirect_and_verifier_but_no_scope() {
        let grant = Grant::AuthorizationCode(CodeExchange {
            code: AuthorizationCode::new("CODE"),
            code_verifier: Some(PkceCodeVerifier::new("VERIFIER")),
        });
        let p = grant_params(&client(), &grant).unwrap();
        assert_eq!(
            names(&p),
            vec![
                "grant_type",
                "code",
                "redirect_uri",
                "code_verifier",
                "resource",
                "resource"
            ]
        );
        assert_eq!(p.get("code_verifier"), Some("VERIFIER"));
        assert_eq!(p.get("redirect_uri"), Some("https://app.example/cb"));
    }

    #[test]
    fn refresh_asks_for_the_original_scope() {
        let p = grant_params(&client(), &Grant::RefreshToken(RefreshToken::new("RT"))).unwrap();
        assert_eq!(
            names(&p),
            vec!["grant_type", "refresh_token", "resource", "resource"]
        );
        assert_eq!(p.get("refresh_token"), Some("RT"));
    }

    #[test]
    fn token_exchange_and_its_actor_rule() {
        let mut exchange = TokenExchange {
            subject_token: SubjectToken::new("SUBJ"),
            subject_token_type: "urn:ietf:params:oauth:token-type:access_token".into(),
            actor_token: Some(ActorToken::new("ACT")),
            actor_token_type: Some("urn:ietf:params:oauth:token-type:jwt".into()),
            requested_token_type: None,
        };
        let p = grant_params(&client(), &Grant::TokenExchange(exchange.clone())).unwrap();
        assert_eq!(p.get("grant_type"), Some(TOKEN_EXCHANGE));
        assert_eq!(
            (p.get("subject_token"), p.get("actor_token")),
            (Some("SUBJ"), Some("ACT"))
        );
        assert_eq!(p.get("audience"), Some("https://api.example"));
        assert_eq!(p.get("requested_token_type"), None);
        exchange.actor_token_type = None;
        let err = grant_params(&client(), &Grant::TokenExchange(exchange.clone())).unwrap_err();
        assert!(
            matches!(err, OAuthError::Config(m) if m.contains("actor_token_type") && !m.contains("ACT\""))
        );
        exchange.actor_token = None;
        exchange.actor_token_type = Some("urn:ietf:params:oauth:token-type:jwt".into());
        let err = grant_params(&client(), &Grant::TokenExchange(exchange)).unwrap_err();
        assert!(
            matches!(&err, OAuthError::Config(m) if m.contains("without actor_token")),
            "{err:?}"
        );
    }

    #[test]
    fn jwt_bearer_and_device_code() {
        let p = grant_params(&client(), &Grant::JwtBearer(Assertion::new("a.b.c"))).unwrap();
        assert_eq!(
            (p.get("grant_type"), p.get("assertion")),
            (Some(JWT_BEARER), Some("a.b.c"))
        );
        let p = grant_params(&client(), &Grant::DeviceCode(DeviceCode::new("DC"))).unwrap();
        assert_eq!(
            p.pairs(),
            vec![("grant_type", DEVICE_CODE), ("device_code", "DC")]
        );
    }

    #[test]
    fn debug_shows_names_only() {
        let p = revocation_params("SECRET-TOKEN", "refresh_token");
        assert_eq!(format!("{p:?}"), r#"["token", "token_type_hint"]"#);
    }
}
