//! Endpoint discovery: RFC 8414 authorization server metadata, then OpenID Connect
//! Discovery 1.0 as the fallback. Only endpoints the client does not name are looked
//! up, and a document is used only if its `issuer` is exactly the configured one
//! (RFC 8414 §3.3), which keeps one server from passing off another's endpoints.
//!
//! Documents are cached in memory for the life of the instance, per issuer and TLS
//! trust (a document fetched under one trust is not reused under another). Failures are
//! not cached.

use std::collections::HashMap;

use super::call;
use super::classify::Fields;
use super::retry::Deadline;
use gateway_auth_api::Client;
use gateway_auth_api::OAuthError;

use super::config::check_https_url;
use crate::platform::Platform;
use gateway_auth_api::TrustSpec;

/// The endpoints a flow may need.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// `token_endpoint`.
    Token,
    /// `authorization_endpoint`.
    Authorization,
    /// `device_authorization_endpoint` (RFC 8628 §4).
    DeviceAuthorization,
    /// `revocation_endpoint` (RFC 8414 §2).
    Revocation,
}

impl Endpoint {
    /// The metadata (and client setting) name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Token => "token_endpoint",
            Self::Authorization => "authorization_endpoint",
            Self::DeviceAuthorization => "device_authorization_endpoint",
            Self::Revocation => "revocation_endpoint",
        }
    }

    fn configured(self, client: &Client) -> Option<&str> {
        match self {
            Self::Token => client.token_endpoint.as_deref(),
            Self::Authorization => client.authorization_endpoint.as_deref(),
            Self::DeviceAuthorization => client.device_authorization_endpoint.as_deref(),
            Self::Revocation => client.revocation_endpoint.as_deref(),
        }
    }

    fn discovered(self, metadata: &Metadata) -> Option<&str> {
        match self {
            Self::Token => metadata.token_endpoint.as_deref(),
            Self::Authorization => metadata.authorization_endpoint.as_deref(),
            Self::DeviceAuthorization => metadata.device_authorization_endpoint.as_deref(),
            Self::Revocation => metadata.revocation_endpoint.as_deref(),
        }
    }
}

/// The parts of a metadata document the flows use.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Metadata {
    /// The issuer, equal to the configured one.
    pub issuer: String,
    /// `token_endpoint`.
    pub token_endpoint: Option<String>,
    /// `authorization_endpoint`.
    pub authorization_endpoint: Option<String>,
    /// `device_authorization_endpoint`.
    pub device_authorization_endpoint: Option<String>,
    /// `revocation_endpoint`.
    pub revocation_endpoint: Option<String>,
    /// `authorization_response_iss_parameter_supported` (RFC 9207 §3): the redirect
    /// carries `iss`.
    pub iss_in_authorization_response: bool,
}

/// Checks an issuer identifier: an `https` URL without query or fragment (RFC 8414 §2).
pub fn check_issuer(issuer: &str) -> Result<(), OAuthError> {
    check_https_url("issuer", issuer)?;
    let url = url::Url::parse(issuer).map_err(|e| OAuthError::Config(format!("issuer: {e}")))?;
    if url.query().is_some() || url.fragment().is_some() {
        return Err(OAuthError::Config(
            "issuer: must have no query or fragment (RFC 8414 §2)".into(),
        ));
    }
    Ok(())
}

/// Checks the `iss` of an authorization response against the client's issuer (RFC 9207
/// §2.4: simple string comparison). `required` when the issuer's metadata says its
/// responses carry `iss`, so that a missing one is refused too.
pub fn check_response_issuer(
    client_issuer: Option<&str>,
    iss: Option<&str>,
    required: bool,
) -> Result<(), OAuthError> {
    match (client_issuer, iss) {
        (Some(expected), Some(iss)) if iss == expected => Ok(()),
        (Some(expected), Some(iss)) => Err(OAuthError::Config(format!(
            "the redirect's iss {iss:?} is not the client's issuer {expected:?}: the response comes from another authorization server (mix-up, RFC 9207)"
        ))),
        (None, Some(iss)) => Err(OAuthError::Config(format!(
            "the redirect carries iss {iss:?} but the client has no issuer to check it against: set the client's issuer (RFC 9207)"
        ))),
        (Some(expected), None) if required => Err(OAuthError::Config(format!(
            "the redirect carries no iss, although {expected} says its responses do (authorization_response_iss_parameter_supported): it may come from another authorization server (RFC 9207)"
        ))),
        (_, None) => Ok(()),
    }
}

/// The two places metadata may be: RFC 8414 §3.1 inserts the well-known path between
/// the host and the issuer's path; OpenID Connect Discovery §4 appends it.
pub fn metadata_urls(issuer: &str) -> Result<[String; 2], OAuthError> {
    check_issuer(issuer)?;
    let url = url::Url::parse(issuer).map_err(|e| OAuthError::Config(format!("issuer: {e}")))?;
    let path = url.path().trim_end_matches('/');
    let origin = url.origin().ascii_serialization();
    Ok([
        format!("{origin}/.well-known/oauth-authorization-server{path}"),
        format!("{origin}{path}/.well-known/openid-configuration"),
    ])
}

/// The endpoints of a document, if it is the configured issuer's.
pub fn parse_metadata(fields: &Fields, expected_issuer: &str) -> Result<Metadata, OAuthError> {
    let issuer = fields.get("issuer").and_then(|v| v.as_str()).unwrap_or("");
    if issuer != expected_issuer {
        return Err(OAuthError::InvalidResponse(format!(
            "the metadata names issuer {issuer:?}, not the configured {expected_issuer:?} (RFC 8414 §3.3)"
        )));
    }
    let endpoint = |name: &str| -> Result<Option<String>, OAuthError> {
        match fields.get(name).and_then(|v| v.as_str()) {
            Some(url) => {
                check_https_url(name, url)
                    .map_err(|e| OAuthError::InvalidResponse(format!("the metadata's {e}")))?;
                Ok(Some(url.to_string()))
            }
            None => Ok(None),
        }
    };
    Ok(Metadata {
        issuer: issuer.to_string(),
        token_endpoint: endpoint("token_endpoint")?,
        authorization_endpoint: endpoint("authorization_endpoint")?,
        device_authorization_endpoint: endpoint("device_authorization_endpoint")?,
        revocation_endpoint: endpoint("revocation_endpoint")?,
        iss_in_authorization_response: fields
            .get("authorization_response_iss_parameter_supported")
            .and_then(|v| v.as_bool())
            .unwrap_or(false),
    })
}

/// Discovered metadata, cached per issuer and trust.
#[derive(Debug, Default)]
pub struct Discovery {
    cache: HashMap<String, Metadata>,
}

impl Discovery {
    /// The client's `which` endpoint: as configured, else discovered from its issuer.
    pub fn endpoint(
        &mut self,
        p: &mut dyn Platform,
        client: &Client,
        which: Endpoint,
        deadline: Deadline,
    ) -> Result<String, OAuthError> {
        if let Some(url) = which.configured(client) {
            return Ok(url.to_string());
        }
        let name = which.name();
        let Some(issuer) = client.issuer.as_deref() else {
            return Err(OAuthError::Config(format!(
                "no {name} is configured and no issuer to discover it from: set one of them"
            )));
        };
        let metadata = self.metadata(p, &client.trust, issuer, deadline)?;
        which
            .discovered(metadata)
            .map(str::to_string)
            .ok_or_else(|| {
                OAuthError::Config(format!(
                    "{issuer} publishes no {name}: set {name} in the client"
                ))
            })
    }

    /// Whether the client's issuer says its authorization responses carry `iss`
    /// (RFC 9207 §3). False without an issuer, or when its metadata cannot be had: a
    /// client whose endpoints are all configured may talk to a server without any.
    pub fn iss_in_authorization_response(
        &mut self,
        p: &mut dyn Platform,
        client: &Client,
        deadline: Deadline,
    ) -> bool {
        client.issuer.as_deref().is_some_and(|issuer| {
            self.metadata(p, &client.trust, issuer, deadline)
                .is_ok_and(|m| m.iss_in_authorization_response)
        })
    }

    fn metadata(
        &mut self,
        p: &mut dyn Platform,
        trust: &TrustSpec,
        issuer: &str,
        deadline: Deadline,
    ) -> Result<&Metadata, OAuthError> {
        let key = cache_key(issuer, trust);
        if !self.cache.contains_key(&key) {
            let metadata = fetch(p, trust, issuer, deadline)?;
            self.cache.insert(key.clone(), metadata);
        }
        self.cache
            .get(&key)
            .ok_or_else(|| OAuthError::Config("metadata cache lost an entry".into()))
    }
}

fn fetch(
    p: &mut dyn Platform,
    trust: &TrustSpec,
    issuer: &str,
    deadline: Deadline,
) -> Result<Metadata, OAuthError> {
    let [rfc8414, oidc] = metadata_urls(issuer)?;
    let first = match call::get_document(p, trust, &rfc8414, deadline) {
        Ok(fields) => return parse_metadata(&fields, issuer),
        // The server is unreachable or untrusted: another path will not help.
        Err(e @ (OAuthError::Tls(_) | OAuthError::Transport(_) | OAuthError::Config(_))) => {
            return Err(e);
        }
        Err(e) => e,
    };
    match call::get_document(p, trust, &oidc, deadline) {
        Ok(fields) => parse_metadata(&fields, issuer),
        // Report the first failure unless it only said "not here".
        Err(second) => Err(match &first {
            OAuthError::HttpStatus(e) if e.status == 404 => second,
            _ => first,
        }),
    }
}

/// The issuer and a digest of the trust (which holds a private key, so it is hashed
/// rather than kept as text in the key).
fn cache_key(issuer: &str, trust: &TrustSpec) -> String {
    let material = serde_json::json!([
        trust.ca_bundle,
        trust.client_certificate,
        trust.client_key.as_ref().map(|k| k.secret()),
        trust.web_roots,
    ]);
    let hash = crate::digest::sha256_hex(material.to_string().as_bytes());
    format!("{issuer} {hash}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::testing::{FakePlatform, json};
    use gateway_auth_api::ClientAuth;

    #[test]
    fn well_known_urls_insert_or_append_the_issuer_path() {
        assert_eq!(
            metadata_urls("https://as.example").unwrap(),
            [
                "https://as.example/.well-known/oauth-authorization-server",
                "https://as.example/.well-known/openid-configuration"
            ]
        );
        assert_eq!(
            metadata_urls("https://as.example:8443/tenant/1/").unwrap(),
            [
                "https://as.example:8443/.well-known/oauth-authorization-server/tenant/1",
                "https://as.example:8443/tenant/1/.well-known/openid-configuration"
            ]
        );
        assert!(metadata_urls("https://as.example/?x=1").is_err());
        assert!(metadata_urls("http://as.example").is_err());
    }

    fn client() -> Client {
        let mut client = Client::new("c", ClientAuth::None, TrustSpec::default());
        client.issuer = Some("https://as.example/t1".into());
        client.revocation_endpoint = Some("https://as.example/custom-revoke".into());
        client
    }

    fn doc(issuer: &str) -> String {
        format!(
            r#"{{"issuer":"{issuer}","token_endpoint":"https://as.example/t1/token","revocation_endpoint":"https://as.example/t1/revoke"}}"#
        )
    }

    #[test]
    fn discovers_missing_endpoints_once_and_keeps_configured_ones() {
        let mut p = FakePlatform::new();
        p.push(json(200, &doc("https://as.example/t1")));
        let mut discovery = Discovery::default();
        let d = Deadline::start(p.now_ms(), 10_000);
        let token = discovery
            .endpoint(&mut p, &client(), Endpoint::Token, d)
            .unwrap();
        assert_eq!(token, "https://as.example/t1/token");
        assert_eq!(
            p.requests[0].url,
            "https://as.example/.well-known/oauth-authorization-server/t1"
        );
        // Cached, and a configured endpoint wins over the document.
        let again = discovery
            .endpoint(&mut p, &client(), Endpoint::Token, d)
            .unwrap();
        assert_eq!(again, token);
        let revoke = discovery
            .endpoint(&mut p, &client(), Endpoint::Revocation, d)
            .unwrap();
        assert_eq!(revoke, "https://as.example/custom-revoke");
        let err = discovery
            .endpoint(&mut p, &client(), Endpoint::DeviceAuthorization, d)
            .unwrap_err();
        assert!(
            matches!(err, OAuthError::Config(m) if m.contains("device_authorization_endpoint"))
        );
        assert_eq!(p.requests.len(), 1);
    }

    #[test]
    fn falls_back_to_openid_configuration() {
        let mut p = FakePlatform::new();
        p.push(json(404, "not found"));
        p.push(json(200, &doc("https://as.example/t1")));
        let d = Deadline::start(p.now_ms(), 10_000);
        let token = Discovery::default()
            .endpoint(&mut p, &client(), Endpoint::Token, d)
            .unwrap();
        assert_eq!(token, "https://as.example/t1/token");
        assert_eq!(
            p.requests[1].url,
            "https://as.example/t1/.well-known/openid-configuration"
        );
    }

    #[test]
    fn a_document_for_another_issuer_is_refused() {
        let mut p = FakePlatform::new();
        p.push(json(200, &doc("https://evil.example/t1")));
        let d = Deadline::start(p.now_ms(), 10_000);
        let err = Discovery::default()
            .endpoint(&mut p, &client(), Endpoint::Token, d)
            .unwrap_err();
        assert!(matches!(err, OAuthError::InvalidResponse(m) if m.contains("evil.example")));
        let fields: Fields = serde_json::from_str(
            r#"{"issuer":"https://as.example","token_endpoint":"http://as.example/token"}"#,
        )
        .unwrap();
        assert!(matches!(
            parse_metadata(&fields, "https://as.example"),
            Err(OAuthError::InvalidResponse(_))
        ));
    }

    #[test]
    fn without_issuer_or_endpoint_it_is_a_configuration_error() {
        let mut p = FakePlatform::new();
        let client = Client::new("c", ClientAuth::None, TrustSpec::default());
        let d = Deadline::start(p.now_ms(), 10_000);
        let err = Discovery::default()
            .endpoint(&mut p, &client, Endpoint::Token, d)
            .unwrap_err();
        assert!(matches!(err, OAuthError::Config(_)));
        assert!(p.requests.is_empty());
    }

    #[test]
    fn the_redirects_iss_must_be_the_clients_issuer_and_present_when_announced() {
        let ok = |issuer, iss, required| check_response_issuer(issuer, iss, required).is_ok();
        let me = Some("https://as.example");
        assert!(ok(me, Some("https://as.example"), true));
        assert!(ok(me, Some("https://as.example"), false));
        assert!(ok(me, None, false), "a server that does not send iss");
        assert!(!ok(me, None, true), "announced but missing");
        assert!(!ok(me, Some("https://evil.example"), false), "mix-up");
        // Simple string comparison (RFC 9207 §2.4): no normalisation.
        assert!(!ok(me, Some("https://as.example/"), false));
        assert!(!ok(me, Some("https://AS.example"), false));
        assert!(
            !ok(None, Some("https://as.example"), false),
            "nothing to check it against"
        );
        assert!(ok(None, None, false));
        let err = check_response_issuer(me, Some("https://evil.example"), false).unwrap_err();
        assert!(
            matches!(&err, OAuthError::Config(m) if m.contains("https://evil.example") && m.contains("RFC 9207")),
            "{err}"
        );
    }

    #[test]
    fn metadata_announcing_iss_in_responses_is_read() {
        let read = |doc: &str| {
            let fields: Fields = serde_json::from_str(doc).unwrap();
            parse_metadata(&fields, "https://as.example")
                .unwrap()
                .iss_in_authorization_response
        };
        assert!(read(
            r#"{"issuer":"https://as.example","authorization_response_iss_parameter_supported":true}"#
        ));
        assert!(!read(r#"{"issuer":"https://as.example"}"#));
    }
}
