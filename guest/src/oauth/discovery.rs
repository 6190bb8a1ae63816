//! Endpoint discovery: RFC 8414 authorization server metadata, then OpenID Connect
//! Discovery 1.0 as the fallback (in the order MCP gives, [`resource`]). Only endpoints
//! the client does not name are looked up, and a document is used only if its `issuer`
//! is exactly the configured one (RFC 8414 §3.3), which keeps one server from passing
//! off another's endpoints. Discovery from a protected resource (RFC 9728) starts one
//! step earlier, at the resource's own metadata.
//!
//! Documents are cached in memory for [`DOCUMENT_TTL_MS`], per URL or issuer and TLS
//! trust (a document fetched under one trust is not reused under another), at most
//! [`MAX_DOCUMENTS`] of each kind. Failures are not cached.

use std::collections::HashMap;

use super::call::{self, Dpop};
use super::challenge::{self, BearerHints, TokenScheme};
use super::classify::Fields;
use super::dpop::DpopKey;
use super::resource::{self, ResourceMetadata};
use super::retry::Deadline;
use gateway_auth_api::OAuthError;
use gateway_auth_api::{Client, ResourceAuthorization};

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
    /// `registration_endpoint` (RFC 7591 §3).
    pub registration_endpoint: Option<String>,
    /// `pushed_authorization_request_endpoint` (RFC 9126 §5).
    pub pushed_authorization_request_endpoint: Option<String>,
    /// `require_pushed_authorization_requests` (RFC 9126 §5).
    pub require_pushed_authorization_requests: bool,
    /// `code_challenge_methods_supported`, when listed.
    pub code_challenge_methods_supported: Option<Vec<String>>,
    /// `dpop_signing_alg_values_supported` (RFC 9449 §5.1).
    pub dpop_signing_alg_values_supported: Vec<String>,
    /// `client_id_metadata_document_supported` (OAuth Client ID Metadata Document).
    pub client_id_metadata_document_supported: bool,
}

/// How long a fetched document is used before it is fetched again, in milliseconds.
pub const DOCUMENT_TTL_MS: u64 = 15 * 60 * 1000;
/// The most documents of each kind (server, resource) cached at once.
pub const MAX_DOCUMENTS: usize = 256;

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
    let flag = |name: &str| fields.get(name).and_then(|v| v.as_bool()).unwrap_or(false);
    let strings = |name: &str| -> Option<Vec<String>> {
        let items = fields.get(name)?.as_array()?;
        Some(
            items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
        )
    };
    Ok(Metadata {
        issuer: issuer.to_string(),
        token_endpoint: endpoint("token_endpoint")?,
        authorization_endpoint: endpoint("authorization_endpoint")?,
        device_authorization_endpoint: endpoint("device_authorization_endpoint")?,
        revocation_endpoint: endpoint("revocation_endpoint")?,
        iss_in_authorization_response: flag("authorization_response_iss_parameter_supported"),
        registration_endpoint: endpoint("registration_endpoint")?,
        pushed_authorization_request_endpoint: endpoint("pushed_authorization_request_endpoint")?,
        require_pushed_authorization_requests: flag("require_pushed_authorization_requests"),
        code_challenge_methods_supported: strings("code_challenge_methods_supported"),
        dpop_signing_alg_values_supported: strings("dpop_signing_alg_values_supported")
            .unwrap_or_default(),
        client_id_metadata_document_supported: flag("client_id_metadata_document_supported"),
    })
}

/// A document and when it was fetched.
#[derive(Debug)]
struct Cached<T> {
    value: T,
    fetched_ms: u64,
}

/// Documents under their keys, each used for [`DOCUMENT_TTL_MS`].
#[derive(Debug)]
struct Documents<T>(HashMap<String, Cached<T>>);

impl<T> Default for Documents<T> {
    fn default() -> Self {
        Self(HashMap::new())
    }
}

impl<T> Documents<T> {
    /// The document under `key`, fetched by `fetch` when absent or stale.
    fn get_or_fetch(
        &mut self,
        key: String,
        now_ms: u64,
        fetch: impl FnOnce() -> Result<T, OAuthError>,
    ) -> Result<&T, OAuthError> {
        let fresh = |c: &Cached<T>| now_ms.saturating_sub(c.fetched_ms) < DOCUMENT_TTL_MS;
        if !self.0.get(&key).is_some_and(fresh) {
            let value = fetch()?;
            self.0.retain(|_, c| fresh(c));
            if self.0.len() >= MAX_DOCUMENTS {
                // Every one is fresh: the oldest goes.
                let oldest = self
                    .0
                    .iter()
                    .min_by_key(|(_, c)| c.fetched_ms)
                    .map(|(k, _)| k.clone());
                if let Some(oldest) = oldest {
                    self.0.remove(&oldest);
                }
            }
            self.0.insert(
                key.clone(),
                Cached {
                    value,
                    fetched_ms: now_ms,
                },
            );
        }
        self.0
            .get(&key)
            .map(|c| &c.value)
            .ok_or_else(|| OAuthError::Config("the document cache lost an entry".into()))
    }
}

/// What is known of servers: discovered metadata, cached per issuer (or resource
/// metadata URL) and trust, and the DPoP nonce each origin gave last (RFC 9449 §8).
#[derive(Debug, Default)]
pub struct Discovery {
    servers: Documents<Metadata>,
    resources: Documents<ResourceMetadata>,
    nonces: HashMap<String, String>,
}

/// The origin of `url`, which DPoP nonces are kept per.
fn origin(url: &str) -> String {
    url::Url::parse(url).map_or_else(|_| url.to_string(), |u| u.origin().ascii_serialization())
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

    /// Requests to `endpoint` signed with `key`, with the nonce its server gave last.
    pub fn dpop(&self, key: DpopKey, endpoint: &str) -> Dpop {
        Dpop {
            key,
            nonce: self.nonces.get(&origin(endpoint)).cloned(),
        }
    }

    /// Keeps the nonce `dpop` ended with, for the next request to `endpoint`'s server.
    pub fn learn_nonce(&mut self, endpoint: &str, dpop: &Dpop) {
        if let Some(nonce) = &dpop.nonce {
            let origin = origin(endpoint);
            if self.nonces.len() >= MAX_DOCUMENTS && !self.nonces.contains_key(&origin) {
                self.nonces.clear();
            }
            self.nonces.insert(origin, nonce.clone());
        }
    }

    /// The metadata of the client's issuer, when it has one.
    pub fn client_metadata(
        &mut self,
        p: &mut dyn Platform,
        client: &Client,
        deadline: Deadline,
    ) -> Result<Option<&Metadata>, OAuthError> {
        match client.issuer.as_deref() {
            Some(issuer) => self.metadata(p, &client.trust, issuer, deadline).map(Some),
            None => Ok(None),
        }
    }

    /// The metadata of `issuer`.
    pub fn metadata(
        &mut self,
        p: &mut dyn Platform,
        trust: &TrustSpec,
        issuer: &str,
        deadline: Deadline,
    ) -> Result<&Metadata, OAuthError> {
        let now = p.now_ms();
        self.servers
            .get_or_fetch(cache_key(issuer, trust), now, || {
                fetch(p, trust, issuer, deadline)
            })
    }

    /// How to authorize for the resource at `resource_url`, from its challenge (the
    /// `WWW-Authenticate` field lines of its answer) and metadata (RFC 9728), then its
    /// first authorization server's metadata, which must offer PKCE `S256`.
    pub fn resource(
        &mut self,
        p: &mut dyn Platform,
        resource_url: &str,
        www_authenticate: &[String],
        trust: &TrustSpec,
        deadline: Deadline,
    ) -> Result<ResourceAuthorization, OAuthError> {
        let lines: Vec<&str> = www_authenticate.iter().map(String::as_str).collect();
        let hints = match lines.is_empty() {
            true => None,
            false => BearerHints::from_challenges(&challenge::parse(&lines)?, TokenScheme::Bearer),
        };
        // RFC 9728 §5.1: the challenge names the metadata; else the well-known URLs.
        let urls = match hints.as_ref().and_then(|h| h.resource_metadata.clone()) {
            Some(url) => {
                check_https_url("the challenge's resource_metadata", &url)
                    .map_err(|e| OAuthError::InvalidResponse(e.to_string()))?;
                vec![url]
            }
            None => resource::resource_metadata_urls(resource_url)?,
        };
        let now = p.now_ms();
        let mut last = None;
        let mut found = None;
        for url in urls {
            let fetched = self
                .resources
                .get_or_fetch(cache_key(&url, trust), now, || {
                    let fields = call::get_document(p, trust, &url, deadline)?;
                    resource::parse_resource_metadata(&fields, resource_url)
                })
                .cloned();
            match fetched {
                Ok(metadata) => {
                    found = Some(metadata);
                    break;
                }
                Err(e @ OAuthError::HttpStatus(_)) => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        let Some(metadata) = found else {
            return Err(last.unwrap_or_else(|| {
                OAuthError::InvalidResponse(format!("{resource_url} has no metadata"))
            }));
        };
        let issuer = metadata.authorization_server()?.to_string();
        let server = self.metadata(p, trust, &issuer, deadline)?;
        resource::require_s256(server.code_challenge_methods_supported.as_deref())?;
        let hints = hints.unwrap_or(BearerHints {
            scheme: TokenScheme::Bearer,
            resource_metadata: None,
            scope: Vec::new(),
            error: None,
            error_description: None,
        });
        let scopes = match hints.scope.is_empty() {
            false => hints.scope.clone(),
            true => metadata.scopes_supported.clone().unwrap_or_default(),
        };
        Ok(ResourceAuthorization {
            resource: metadata.resource.clone(),
            issuer,
            scopes,
            authorization_endpoint: server.authorization_endpoint.clone(),
            token_endpoint: server.token_endpoint.clone(),
            registration_endpoint: server.registration_endpoint.clone(),
            pushed_authorization_request_endpoint: server
                .pushed_authorization_request_endpoint
                .clone(),
            pushed_authorization_required: server.require_pushed_authorization_requests,
            client_id_metadata_document_supported: server.client_id_metadata_document_supported,
            dpop_algorithms: server.dpop_signing_alg_values_supported.clone(),
            dpop_required: metadata.dpop_bound_access_tokens_required,
            error: hints.error.as_ref().map(|e| e.as_str().to_string()),
        })
    }
}

/// Tries the issuer's metadata URLs in order; a "not here" answer moves to the next.
fn fetch(
    p: &mut dyn Platform,
    trust: &TrustSpec,
    issuer: &str,
    deadline: Deadline,
) -> Result<Metadata, OAuthError> {
    let mut first = None;
    for url in resource::authorization_server_metadata_urls(issuer)? {
        match call::get_document(p, trust, &url, deadline) {
            Ok(fields) => return parse_metadata(&fields, issuer),
            // The server is unreachable or untrusted: another path will not help.
            Err(e @ (OAuthError::Tls(_) | OAuthError::Transport(_) | OAuthError::Config(_))) => {
                return Err(e);
            }
            // Report the first failure unless it only said "not here".
            Err(e) => match &first {
                None => first = Some(e),
                Some(OAuthError::HttpStatus(f)) if f.status == 404 => first = Some(e),
                Some(_) => {}
            },
        }
    }
    Err(first.unwrap_or_else(|| OAuthError::Config(format!("{issuer}: no metadata URL"))))
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
    fn falls_back_to_openid_configuration_path_inserted_then_appended() {
        let mut p = FakePlatform::new();
        p.push(json(404, "not found"));
        p.push(json(404, "not found"));
        p.push(json(200, &doc("https://as.example/t1")));
        let d = Deadline::start(p.now_ms(), 10_000);
        let token = Discovery::default()
            .endpoint(&mut p, &client(), Endpoint::Token, d)
            .unwrap();
        assert_eq!(token, "https://as.example/t1/token");
        let urls: Vec<&str> = p.requests.iter().map(|r| r.url.as_str()).collect();
        assert_eq!(
            urls,
            [
                "https://as.example/.well-known/oauth-authorization-server/t1",
                "https://as.example/.well-known/openid-configuration/t1",
                "https://as.example/t1/.well-known/openid-configuration",
            ]
        );
    }

    #[test]
    fn documents_are_fetched_again_after_their_ttl() {
        let mut p = FakePlatform::new();
        let issuer = "https://as.example/t1";
        let mut discovery = Discovery::default();
        for _ in 0..2 {
            p.push(json(200, &doc(issuer)));
        }
        let trust = TrustSpec::default();
        let d = |p: &FakePlatform| Deadline::start(p.now_ms(), 10_000);
        let started = p.now_ms();
        let deadline = d(&p);
        discovery
            .metadata(&mut p, &trust, issuer, deadline)
            .unwrap();
        p.advance_ms(DOCUMENT_TTL_MS - 1 - (p.now_ms() - started));
        let deadline = d(&p);
        discovery
            .metadata(&mut p, &trust, issuer, deadline)
            .unwrap();
        assert_eq!(p.requests.len(), 1, "cached within the TTL");
        p.advance_ms(1);
        let deadline = d(&p);
        discovery
            .metadata(&mut p, &trust, issuer, deadline)
            .unwrap();
        assert_eq!(p.requests.len(), 2, "fetched again after it");
    }

    /// A protected resource's metadata naming `https://as.example` as its server.
    fn resource_doc(resource: &str) -> String {
        format!(
            r#"{{"resource":"{resource}","authorization_servers":["https://as.example"],"scopes_supported":["mcp:read","mcp:write"]}}"#
        )
    }

    /// The server's metadata, with these PKCE methods.
    fn server_doc(methods: &str) -> String {
        format!(
            r#"{{"issuer":"https://as.example","authorization_endpoint":"https://as.example/auth","token_endpoint":"https://as.example/token","registration_endpoint":"https://as.example/reg","pushed_authorization_request_endpoint":"https://as.example/par","code_challenge_methods_supported":{methods},"dpop_signing_alg_values_supported":["ES256"]}}"#
        )
    }

    #[test]
    fn a_resource_is_discovered_from_its_challenge_then_its_servers_metadata() {
        let mut p = FakePlatform::new();
        let resource = "https://mcp.example/mcp";
        p.push(json(200, &resource_doc(resource)));
        p.push(json(200, &server_doc(r#"["S256"]"#)));
        let d = Deadline::start(p.now_ms(), 10_000);
        let challenge = vec![
            r#"Bearer resource_metadata="https://mcp.example/.well-known/oauth-protected-resource/mcp", scope="mcp:read""#
                .to_string(),
        ];
        let found = Discovery::default()
            .resource(&mut p, resource, &challenge, &TrustSpec::default(), d)
            .unwrap();
        assert_eq!(
            found,
            ResourceAuthorization {
                resource: resource.into(),
                issuer: "https://as.example".into(),
                scopes: vec!["mcp:read".into()],
                authorization_endpoint: Some("https://as.example/auth".into()),
                token_endpoint: Some("https://as.example/token".into()),
                registration_endpoint: Some("https://as.example/reg".into()),
                pushed_authorization_request_endpoint: Some("https://as.example/par".into()),
                dpop_algorithms: vec!["ES256".into()],
                ..Default::default()
            }
        );
        let urls: Vec<&str> = p.requests.iter().map(|r| r.url.as_str()).collect();
        assert_eq!(
            urls,
            [
                "https://mcp.example/.well-known/oauth-protected-resource/mcp",
                "https://as.example/.well-known/oauth-authorization-server",
            ]
        );
    }

    #[test]
    fn without_a_challenge_the_well_known_urls_are_tried_and_scopes_come_from_the_metadata() {
        let mut p = FakePlatform::new();
        let resource = "https://mcp.example/mcp";
        p.push(json(404, "no"));
        p.push(json(200, &resource_doc(resource)));
        p.push(json(200, &server_doc(r#"["plain","S256"]"#)));
        let d = Deadline::start(p.now_ms(), 10_000);
        let found = Discovery::default()
            .resource(&mut p, resource, &[], &TrustSpec::default(), d)
            .unwrap();
        assert_eq!(found.scopes, ["mcp:read", "mcp:write"]);
        assert_eq!(
            p.requests[1].url,
            "https://mcp.example/.well-known/oauth-protected-resource"
        );
    }

    #[test]
    fn a_server_without_pkce_s256_or_metadata_for_another_resource_is_refused() {
        let resource = "https://mcp.example/mcp";
        // The fake clock starts at the same time in every platform.
        let d = Deadline::start(FakePlatform::new().now_ms(), 10_000);
        for methods in ["null", r#"["plain"]"#] {
            let mut p = FakePlatform::new();
            p.push(json(200, &resource_doc(resource)));
            p.push(json(200, &server_doc(methods)));
            let err = Discovery::default()
                .resource(&mut p, resource, &[], &TrustSpec::default(), d)
                .unwrap_err();
            assert!(
                matches!(&err, OAuthError::InvalidResponse(m) if m.contains("S256")),
                "{methods}: {err}"
            );
        }
        let mut p = FakePlatform::new();
        p.push(json(200, &resource_doc("https://evil.example/mcp")));
        let err = Discovery::default()
            .resource(&mut p, resource, &[], &TrustSpec::default(), d)
            .unwrap_err();
        assert!(
            matches!(&err, OAuthError::InvalidResponse(m) if m.contains("evil.example")),
            "{err}"
        );
        assert_eq!(p.requests.len(), 1, "no server was asked");
        let mut p = FakePlatform::new();
        let err = Discovery::default()
            .resource(
                &mut p,
                resource,
                &[r#"Bearer realm="unterminated"#.to_string()],
                &TrustSpec::default(),
                d,
            )
            .unwrap_err();
        assert!(matches!(err, OAuthError::InvalidResponse(_)), "{err}");
        assert!(p.requests.is_empty());
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
