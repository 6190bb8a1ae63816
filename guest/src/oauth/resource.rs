//! Finding the authorization server from the resource, as MCP clients do (MCP
//! `basic/authorization`, revision 2025-11-25): protected-resource metadata (RFC 9728),
//! where it is and what it must say, then where the chosen authorization server's own
//! metadata is looked for, and the PKCE check the specification asks for.
//!
//! All of it is pure: URLs in, URLs out; parsed documents in, checked values out. The
//! documents themselves arrive through `call::get_document`, so they pass the one
//! classification (status, redirects, error bodies) before they get here.

use serde_json::Value;

use super::classify::Fields;
use super::config::check_https_url;
use super::discovery::{check_issuer, metadata_urls};
use gateway_auth_api::OAuthError;

/// The well-known path of protected-resource metadata (RFC 9728 §3).
pub const WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";

/// Where the metadata of the resource at `resource_url` may be, in the order to try:
/// the well-known path inserted between host and path (RFC 9728 §3.1), then the root
/// of the host, as the MCP specification says. A resource at the root has only the
/// one. Only `https` resources without a fragment are accepted.
pub fn resource_metadata_urls(resource_url: &str) -> Result<Vec<String>, OAuthError> {
    check_https_url("resource", resource_url)?;
    let url =
        url::Url::parse(resource_url).map_err(|e| OAuthError::Config(format!("resource: {e}")))?;
    if url.fragment().is_some() {
        return Err(OAuthError::Config(
            "resource: must have no fragment (RFC 9728 §1.2)".into(),
        ));
    }
    let origin = url.origin().ascii_serialization();
    // RFC 9728 §3.1: a terminating slash goes before the insertion; a query stays.
    let path = url.path().trim_end_matches('/');
    let query = url.query().map(|q| format!("?{q}")).unwrap_or_default();
    let inserted = format!("{origin}{WELL_KNOWN}{path}{query}");
    let root = format!("{origin}{WELL_KNOWN}");
    Ok(if inserted == root {
        vec![root]
    } else {
        vec![inserted, root]
    })
}

/// The parts of protected-resource metadata (RFC 9728 §2) a client uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceMetadata {
    /// `resource`: identical to the resource the document was fetched for.
    pub resource: String,
    /// `authorization_servers`: issuer identifiers, in the document's order (empty when
    /// absent). Use [`ResourceMetadata::authorization_server`] to choose one.
    pub authorization_servers: Vec<String>,
    /// `scopes_supported`.
    pub scopes_supported: Option<Vec<String>>,
    /// `bearer_methods_supported` (`header`, `body`, `query`); an empty list means
    /// none (RFC 9728 §2), absence means unspecified.
    pub bearer_methods_supported: Option<Vec<String>>,
    /// `dpop_signing_alg_values_supported`.
    pub dpop_signing_alg_values_supported: Option<Vec<String>>,
    /// `dpop_bound_access_tokens_required` (false when absent).
    pub dpop_bound_access_tokens_required: bool,
}

impl ResourceMetadata {
    /// The authorization server to use: the first listed `https` issuer.
    ///
    /// RFC 9728 leaves the choice to the client. The first is the resource's preference
    /// as far as the document expresses one, and a fixed rule makes every replica and
    /// every restart choose the same server, so that a session's registration and
    /// tokens stay with one issuer. Entries that are no `https` issuer identifier are
    /// passed over rather than failing the document, since another listed server may
    /// serve; the plugin never talks to any other kind.
    pub fn authorization_server(&self) -> Result<&str, OAuthError> {
        self.authorization_servers
            .iter()
            .find(|issuer| check_issuer(issuer).is_ok())
            .map(String::as_str)
            .ok_or_else(|| {
                OAuthError::InvalidResponse(if self.authorization_servers.is_empty() {
                    format!(
                        "the protected-resource metadata of {} lists no authorization_servers",
                        self.resource
                    )
                } else {
                    format!(
                        "the protected-resource metadata of {} lists no https authorization server (only {:?})",
                        self.resource, self.authorization_servers
                    )
                })
            })
    }
}

/// Checks a protected-resource metadata document and reads it. Its `resource` must be
/// identical to `expected_resource` (RFC 9728 §3.3): the resource identifier the
/// well-known URL was made from, or, for a document named by a `WWW-Authenticate`
/// challenge, the URL of the request that was challenged. Otherwise one resource could
/// pass off another's authorization servers.
pub fn parse_resource_metadata(
    fields: &Fields,
    expected_resource: &str,
) -> Result<ResourceMetadata, OAuthError> {
    let resource = match fields.get("resource") {
        Some(Value::String(resource)) => resource,
        None | Some(Value::Null) => {
            return Err(OAuthError::InvalidResponse(
                "the protected-resource metadata has no resource (RFC 9728 §2)".into(),
            ));
        }
        Some(_) => return Err(wrong_type("resource", "a string")),
    };
    if resource != expected_resource {
        return Err(OAuthError::InvalidResponse(format!(
            "the protected-resource metadata names resource {resource:?}, not {expected_resource:?} (RFC 9728 §3.3)"
        )));
    }
    let dpop_bound_access_tokens_required = match fields.get("dpop_bound_access_tokens_required") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(required)) => *required,
        Some(_) => return Err(wrong_type("dpop_bound_access_tokens_required", "a boolean")),
    };
    Ok(ResourceMetadata {
        resource: resource.clone(),
        authorization_servers: string_list(fields, "authorization_servers")?.unwrap_or_default(),
        scopes_supported: string_list(fields, "scopes_supported")?,
        bearer_methods_supported: string_list(fields, "bearer_methods_supported")?,
        dpop_signing_alg_values_supported: string_list(
            fields,
            "dpop_signing_alg_values_supported",
        )?,
        dpop_bound_access_tokens_required,
    })
}

/// Where the metadata of the authorization server `issuer` may be, in the order the
/// MCP specification gives: for an issuer with a path, RFC 8414 with the path inserted,
/// OpenID Connect with the path inserted, OpenID Connect with the path appended
/// (Discovery 1.0 §4); for one without, RFC 8414 then OpenID Connect at the root.
pub fn authorization_server_metadata_urls(issuer: &str) -> Result<Vec<String>, OAuthError> {
    // The RFC 8414 and the appended OpenID Connect forms are discovery's own.
    let [rfc8414, oidc_appended] = metadata_urls(issuer)?;
    let url = url::Url::parse(issuer).map_err(|e| OAuthError::Config(format!("issuer: {e}")))?;
    let path = url.path().trim_end_matches('/');
    let origin = url.origin().ascii_serialization();
    let oidc_inserted = format!("{origin}/.well-known/openid-configuration{path}");
    let mut urls = vec![rfc8414, oidc_inserted];
    if !urls.contains(&oidc_appended) {
        urls.push(oidc_appended);
    }
    Ok(urls)
}

/// Refuses an authorization server whose metadata does not list PKCE's `S256`
/// (`code_challenge_methods_supported`, RFC 8414 §2): MCP clients must refuse to
/// proceed when it is absent, since nothing then says the server checks the challenge.
pub fn require_s256(code_challenge_methods_supported: Option<&[String]>) -> Result<(), OAuthError> {
    match code_challenge_methods_supported {
        Some(methods) if methods.iter().any(|m| m == "S256") => Ok(()),
        Some(methods) => Err(OAuthError::InvalidResponse(format!(
            "the authorization server's code_challenge_methods_supported is {methods:?}, without S256: PKCE with S256 is required (MCP authorization)"
        ))),
        None => Err(OAuthError::InvalidResponse(
            "the authorization server's metadata has no code_challenge_methods_supported: PKCE with S256 is required (MCP authorization)".into(),
        )),
    }
}

fn wrong_type(name: &str, expected: &str) -> OAuthError {
    OAuthError::InvalidResponse(format!(
        "the protected-resource metadata's {name} is not {expected}"
    ))
}

/// An array of strings, `None` when absent or null.
fn string_list(fields: &Fields, name: &str) -> Result<Option<Vec<String>>, OAuthError> {
    match fields.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| item.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .map(Some)
            .ok_or_else(|| wrong_type(name, "an array of strings")),
        Some(_) => Err(wrong_type(name, "an array of strings")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MCP: &str = "https://mcp.example.com/public/mcp";

    fn fields(body: &[u8]) -> Fields {
        serde_json::from_slice(body).unwrap()
    }

    fn parse(body: &str) -> Result<ResourceMetadata, OAuthError> {
        parse_resource_metadata(&fields(body.as_bytes()), MCP)
    }

    fn invalid(result: Result<ResourceMetadata, OAuthError>) -> String {
        match result {
            Err(OAuthError::InvalidResponse(m)) => m,
            other => panic!("not an invalid response: {other:?}"),
        }
    }

    #[test]
    fn resource_metadata_is_looked_for_path_inserted_first_then_at_the_root() {
        assert_eq!(
            resource_metadata_urls(MCP).unwrap(),
            [
                "https://mcp.example.com/.well-known/oauth-protected-resource/public/mcp",
                "https://mcp.example.com/.well-known/oauth-protected-resource",
            ]
        );
        // The port stays, a terminating slash goes, a query stays after the path.
        assert_eq!(
            resource_metadata_urls("https://mcp.example.com:8443/t/1/?v=2").unwrap(),
            [
                "https://mcp.example.com:8443/.well-known/oauth-protected-resource/t/1?v=2",
                "https://mcp.example.com:8443/.well-known/oauth-protected-resource",
            ]
        );
    }

    #[test]
    fn a_resource_at_the_root_has_one_metadata_url() {
        for resource in ["https://mcp.example.com", "https://mcp.example.com/"] {
            assert_eq!(
                resource_metadata_urls(resource).unwrap(),
                ["https://mcp.example.com/.well-known/oauth-protected-resource"]
            );
        }
    }

    #[test]
    fn resources_must_be_https_without_a_fragment() {
        for resource in [
            "http://mcp.example.com/mcp",
            "https://mcp.example.com/mcp#part",
            "https://user:pw@mcp.example.com/mcp",
            "/mcp",
        ] {
            let err = resource_metadata_urls(resource).unwrap_err();
            assert!(
                matches!(&err, OAuthError::Config(m) if m.starts_with("resource") && !m.contains("pw")),
                "{resource}: {err}"
            );
        }
    }

    #[test]
    fn a_document_is_read_with_every_field() {
        let metadata = parse(
            r#"{"resource":"https://mcp.example.com/public/mcp",
                "authorization_servers":["https://as.example.com/t1","https://as2.example.com"],
                "scopes_supported":["files:read","files:write"],
                "bearer_methods_supported":["header"],
                "dpop_signing_alg_values_supported":["ES256","RS256"],
                "dpop_bound_access_tokens_required":true,
                "resource_name":"Files"}"#,
        )
        .unwrap();
        let strings = |s: &[&str]| s.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            metadata,
            ResourceMetadata {
                resource: MCP.into(),
                authorization_servers: strings(&[
                    "https://as.example.com/t1",
                    "https://as2.example.com"
                ]),
                scopes_supported: Some(strings(&["files:read", "files:write"])),
                bearer_methods_supported: Some(strings(&["header"])),
                dpop_signing_alg_values_supported: Some(strings(&["ES256", "RS256"])),
                dpop_bound_access_tokens_required: true,
            }
        );
        let minimal = parse(r#"{"resource":"https://mcp.example.com/public/mcp"}"#).unwrap();
        assert!(minimal.authorization_servers.is_empty());
        assert_eq!(minimal.scopes_supported, None);
        assert_eq!(minimal.bearer_methods_supported, None);
        assert!(!minimal.dpop_bound_access_tokens_required);
        // An empty list is kept apart from an absent one.
        let none = parse(
            r#"{"resource":"https://mcp.example.com/public/mcp","bearer_methods_supported":[]}"#,
        )
        .unwrap();
        assert_eq!(none.bearer_methods_supported, Some(vec![]));
    }

    #[test]
    fn a_document_for_another_resource_is_refused_naming_both() {
        for other in [
            "https://evil.example/public/mcp",
            "https://mcp.example.com/public/mcp/",
            "https://MCP.example.com/public/mcp",
            "https://mcp.example.com/public",
        ] {
            let m = invalid(parse(&format!(r#"{{"resource":"{other}"}}"#)));
            assert!(
                m.contains(other) && m.contains(MCP) && m.contains("RFC 9728 §3.3"),
                "{m}"
            );
        }
        let m = invalid(parse(
            r#"{"authorization_servers":["https://as.example.com"]}"#,
        ));
        assert!(m.contains("no resource"), "{m}");
    }

    #[test]
    fn fields_of_the_wrong_type_are_errors_naming_the_field() {
        for (field, value) in [
            ("resource", "42"),
            ("authorization_servers", r#""https://as.example.com""#),
            ("authorization_servers", r#"["https://as.example.com", 7]"#),
            ("scopes_supported", r#"{"a":1}"#),
            ("bearer_methods_supported", "true"),
            ("dpop_signing_alg_values_supported", r#"[["ES256"]]"#),
            ("dpop_bound_access_tokens_required", r#""yes""#),
        ] {
            let mut doc = fields(br#"{"resource":"https://mcp.example.com/public/mcp"}"#);
            doc.insert(field.into(), serde_json::from_str(value).unwrap());
            let m = invalid(parse_resource_metadata(&doc, MCP));
            assert!(
                m.contains(&format!("metadata's {field} is not")),
                "{field}: {m}"
            );
        }
    }

    #[test]
    fn the_first_https_authorization_server_is_chosen() {
        let with = |servers: &str| {
            parse(&format!(
                r#"{{"resource":"{MCP}","authorization_servers":{servers}}}"#
            ))
            .unwrap()
        };
        let metadata = with(r#"["https://as1.example/t","https://as2.example"]"#);
        assert_eq!(
            metadata.authorization_server().unwrap(),
            "https://as1.example/t"
        );
        // Plain http, a query or no URL at all are passed over.
        let metadata =
            with(r#"["http://as0.example","https://as1.example/?x=1","as","https://as2.example"]"#);
        assert_eq!(
            metadata.authorization_server().unwrap(),
            "https://as2.example"
        );
        let m = with(r#"["http://as0.example"]"#)
            .authorization_server()
            .unwrap_err()
            .to_string();
        assert!(
            m.contains("no https authorization server") && m.contains("http://as0.example"),
            "{m}"
        );
        let m = with("[]").authorization_server().unwrap_err().to_string();
        assert!(
            m.contains("lists no authorization_servers") && m.contains(MCP),
            "{m}"
        );
    }

    #[test]
    fn authorization_server_metadata_is_looked_for_in_the_mcp_order() {
        assert_eq!(
            authorization_server_metadata_urls("https://auth.example.com/tenant1").unwrap(),
            [
                "https://auth.example.com/.well-known/oauth-authorization-server/tenant1",
                "https://auth.example.com/.well-known/openid-configuration/tenant1",
                "https://auth.example.com/tenant1/.well-known/openid-configuration",
            ]
        );
        for issuer in ["https://auth.example.com", "https://auth.example.com/"] {
            assert_eq!(
                authorization_server_metadata_urls(issuer).unwrap(),
                [
                    "https://auth.example.com/.well-known/oauth-authorization-server",
                    "https://auth.example.com/.well-known/openid-configuration",
                ]
            );
        }
        assert_eq!(
            authorization_server_metadata_urls("https://auth.example.com:8443/a/b/").unwrap()[1],
            "https://auth.example.com:8443/.well-known/openid-configuration/a/b"
        );
        for issuer in ["http://auth.example.com", "https://auth.example.com/?t=1"] {
            assert!(matches!(
                authorization_server_metadata_urls(issuer),
                Err(OAuthError::Config(_))
            ));
        }
    }

    #[test]
    fn an_authorization_server_without_pkce_s256_is_refused() {
        let methods = |m: &[&str]| m.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(require_s256(Some(&methods(&["plain", "S256"]))).is_ok());
        for listed in [methods(&["plain"]), methods(&[]), methods(&["s256"])] {
            let err = require_s256(Some(&listed)).unwrap_err();
            assert!(
                matches!(&err, OAuthError::InvalidResponse(m) if m.contains("without S256")),
                "{listed:?}: {err}"
            );
        }
        let err = require_s256(None).unwrap_err();
        assert!(
            matches!(&err, OAuthError::InvalidResponse(m) if m.contains("no code_challenge_methods_supported")),
            "{err}"
        );
    }
}
