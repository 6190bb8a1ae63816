//! Client authentication at the token, device-authorization and revocation endpoints
//! (RFC 6749 §2.3, RFC 7523 §2.2, RFC 8705 §2).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::jwt;
use super::request::Params;
use gateway_auth_api::OAuthError;
use gateway_auth_api::{Client, ClientAuth};

/// RFC 7523 §2.2.
pub const JWT_CLIENT_ASSERTION: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Adds the client's authentication to a request for `endpoint`: parameters go into
/// `params`, and an `Authorization` header, if the method uses one, is returned.
///
/// `now` and `jti` feed a `private_key_jwt` assertion; a fresh `jti` per attempt keeps
/// a retried request from being refused as a replay (RFC 7523 §3, item 7).
pub fn authenticate(
    client: &Client,
    endpoint: &str,
    params: &mut Params,
    now: u64,
    jti: &str,
) -> Result<Option<(&'static str, String)>, OAuthError> {
    match &client.auth {
        ClientAuth::ClientSecretBasic(secret) => {
            // RFC 6749 §2.3.1: both are form-urlencoded before they are joined with ':'
            // and base64-encoded, so a ':' or '%' in either survives.
            let credentials = format!(
                "{}:{}",
                form_encode(&client.client_id),
                form_encode(secret.secret())
            );
            Ok(Some((
                "authorization",
                format!("Basic {}", STANDARD.encode(credentials)),
            )))
        }
        ClientAuth::ClientSecretPost(secret) => {
            params.push_once("client_id", client.client_id.as_str());
            params.push("client_secret", secret.secret());
            Ok(None)
        }
        // RFC 6749 §4.1.3, §3.2.1: a public client identifies itself in the body. With
        // tls_client_auth the certificate authenticates in the handshake (RFC 8705 §2)
        // and client_id names the client it claims to be.
        ClientAuth::None | ClientAuth::TlsClientAuth => {
            params.push_once("client_id", client.client_id.as_str());
            Ok(None)
        }
        ClientAuth::PrivateKeyJwt(key) => {
            // RFC 7523 §3: the audience identifies the authorization server. The issuer
            // identifier does so unambiguously (and an assertion aimed at it cannot be
            // replayed at another server's endpoint); without one, the token endpoint
            // URL, whatever endpoint the assertion is sent to.
            let audience = client
                .issuer
                .as_deref()
                .or(client.token_endpoint.as_deref())
                .unwrap_or(endpoint);
            let assertion = jwt::client_assertion(key, &client.client_id, audience, now, jti)?;
            params.push_once("client_id", client.client_id.as_str());
            params.push("client_assertion_type", JWT_CLIENT_ASSERTION);
            params.push("client_assertion", assertion.secret());
            Ok(None)
        }
    }
}

/// `application/x-www-form-urlencoded` encoding of one value (space as `+`).
fn form_encode(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use gateway_auth_api::PrivateKeyPem;
    use gateway_auth_api::{ClientSecret, JwtAlgorithm, SigningKey, TrustSpec};

    fn run(auth: ClientAuth) -> (Params, Option<(&'static str, String)>) {
        let client = Client::new("my client:1", auth, TrustSpec::default());
        let mut params = Params::default();
        params.push("grant_type", "client_credentials");
        let header = authenticate(
            &client,
            "https://as.example/token",
            &mut params,
            1_000,
            "jti-1",
        )
        .unwrap();
        (params, header)
    }

    #[test]
    fn basic_form_encodes_id_and_secret_before_base64() {
        let (params, header) = run(ClientAuth::ClientSecretBasic(ClientSecret::new(
            "s:e%c r+t",
        )));
        let (name, value) = header.unwrap();
        assert_eq!(name, "authorization");
        let encoded = value.strip_prefix("Basic ").unwrap();
        let decoded = String::from_utf8(STANDARD.decode(encoded).unwrap()).unwrap();
        assert_eq!(decoded, "my+client%3A1:s%3Ae%25c+r%2Bt");
        // The id is not repeated in the body.
        assert_eq!(params.get("client_id"), None);
    }

    #[test]
    fn post_puts_id_and_secret_in_the_body() {
        let (params, header) = run(ClientAuth::ClientSecretPost(ClientSecret::new("sec")));
        assert!(header.is_none());
        assert_eq!(
            (params.get("client_id"), params.get("client_secret")),
            (Some("my client:1"), Some("sec"))
        );
    }

    #[test]
    fn public_and_tls_clients_send_only_their_id() {
        for auth in [ClientAuth::None, ClientAuth::TlsClientAuth] {
            let (params, header) = run(auth);
            assert!(header.is_none());
            assert_eq!(
                params.pairs(),
                vec![
                    ("grant_type", "client_credentials"),
                    ("client_id", "my client:1")
                ]
            );
        }
    }

    #[test]
    fn private_key_jwt_adds_an_assertion() {
        let key = SigningKey {
            algorithm: JwtAlgorithm::Es256,
            private_key_pem: PrivateKeyPem::new(jwt::tests::es256_pem()),
            key_id: None,
        };
        let (params, header) = run(ClientAuth::PrivateKeyJwt(key));
        assert!(header.is_none());
        assert_eq!(
            params.get("client_assertion_type"),
            Some(JWT_CLIENT_ASSERTION)
        );
        assert_eq!(
            params.get("client_assertion").map(|a| a.split('.').count()),
            Some(3)
        );
    }

    #[test]
    fn the_assertion_audience_is_the_issuer_else_the_token_endpoint_at_every_endpoint() {
        let key = SigningKey {
            algorithm: JwtAlgorithm::Es256,
            private_key_pem: PrivateKeyPem::new(jwt::tests::es256_pem()),
            key_id: None,
        };
        let audience = |issuer: Option<&str>, endpoint: &str| {
            let mut client = Client::new(
                "c",
                ClientAuth::PrivateKeyJwt(key.clone()),
                TrustSpec::default(),
            );
            client.issuer = issuer.map(Into::into);
            client.token_endpoint = Some("https://as.example/oauth/token".into());
            let mut params = Params::default();
            authenticate(&client, endpoint, &mut params, 1_000, "j").unwrap();
            let assertion = params.get("client_assertion").unwrap();
            let claims = assertion.split('.').nth(1).unwrap();
            let claims: serde_json::Value = serde_json::from_slice(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(claims)
                    .unwrap(),
            )
            .unwrap();
            claims["aud"].as_str().unwrap().to_string()
        };
        for endpoint in [
            "https://as.example/oauth/token",
            "https://as.example/oauth/revoke",
        ] {
            assert_eq!(
                audience(Some("https://as.example"), endpoint),
                "https://as.example"
            );
            assert_eq!(audience(None, endpoint), "https://as.example/oauth/token");
        }
    }
}
