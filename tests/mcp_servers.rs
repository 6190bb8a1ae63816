//! The MCP test servers themselves (support/mcp_servers.rs), before any client has done
//! anything: the protected resource's challenge and metadata, the authorization
//! server's metadata, a published client metadata document, and the command channel,
//! over HTTPS trusting the servers' CA.

use gateway_auth_tests::{McpServers, https_get};
use serde_json::{Value, json};

/// A GET trusting the servers' CA alone: the status, the `WWW-Authenticate` field and
/// the body.
fn get(ca_pem: &str, url: &str) -> (u16, Option<String>, Vec<u8>) {
    let answer = https_get(ca_pem, url, &[]);
    let challenge = answer.header("www-authenticate").map(str::to_string);
    (answer.status, challenge, answer.body)
}

#[test]
fn the_resource_challenges_with_its_metadata_url_and_serves_that_metadata() {
    let servers = McpServers::start().unwrap();
    assert_eq!(
        servers.resource_metadata(),
        format!(
            "{}/.well-known/oauth-protected-resource/mcp",
            servers.resource_origin()
        )
    );

    let (status, challenge, _) = get(servers.ca_pem(), servers.resource());
    assert_eq!(status, 401);
    assert_eq!(
        challenge.unwrap(),
        format!(
            r#"Bearer resource_metadata="{}", scope="mcp:read""#,
            servers.resource_metadata()
        )
    );

    let (status, _, body) = get(servers.ca_pem(), servers.resource_metadata());
    assert_eq!(status, 200);
    let metadata: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(metadata["resource"], servers.resource());
    assert_eq!(metadata["authorization_servers"], json!([servers.issuer()]));
    assert_eq!(
        metadata["scopes_supported"],
        json!(["mcp:read", "mcp:write"])
    );
    assert_eq!(metadata["bearer_methods_supported"], json!(["header"]));
    assert_eq!(
        metadata["dpop_signing_alg_values_supported"],
        json!(["ES256", "RS256"])
    );
    assert_eq!(servers.resource_requests("/mcp"), 1);
    assert_eq!(servers.requests("/mcp"), 0, "the issuer is another server");
}

#[test]
fn the_authorization_server_offers_s256_registration_and_par_and_par_can_be_required() {
    let servers = McpServers::start().unwrap();
    let url = format!(
        "{}/.well-known/oauth-authorization-server",
        servers.issuer()
    );
    let metadata = |body: Vec<u8>| serde_json::from_slice::<Value>(&body).unwrap();

    let (status, _, body) = get(servers.ca_pem(), &url);
    assert_eq!(status, 200);
    let optional = metadata(body);
    assert_eq!(optional["issuer"], servers.issuer());
    assert_eq!(
        optional["code_challenge_methods_supported"],
        json!(["S256"])
    );
    assert_eq!(
        optional["registration_endpoint"],
        servers.registration_endpoint()
    );
    assert_eq!(
        optional["pushed_authorization_request_endpoint"],
        format!("{}/request", servers.issuer())
    );
    assert_eq!(
        optional["dpop_signing_alg_values_supported"],
        json!(["ES256", "RS256"])
    );
    assert_eq!(
        optional["require_pushed_authorization_requests"],
        Value::Null
    );
    assert_eq!(optional["client_id_metadata_document_supported"], true);

    servers.require_par(true);
    let (_, _, body) = get(servers.ca_pem(), &url);
    assert_eq!(
        metadata(body)["require_pushed_authorization_requests"],
        true
    );
    assert_eq!(
        servers.requests("/.well-known/oauth-authorization-server"),
        2
    );
    assert_eq!(servers.registrations(), 0);

    let refused = servers
        .authorize(&format!(
            "{}/auth?client_id=nobody&response_type=code",
            servers.issuer()
        ))
        .unwrap_err();
    assert!(
        format!("{refused:#}").contains("invalid_client"),
        "{refused:#}"
    );
}

#[test]
fn a_published_client_metadata_document_is_served_with_its_url_as_client_id() {
    let servers = McpServers::start().unwrap();
    let client_id = servers
        .publish_client_document(
            "gateway.json",
            &json!({"redirect_uris": ["https://gateway.example/callback"], "token_endpoint_auth_method": "none"}),
        )
        .unwrap();
    assert_eq!(
        client_id,
        format!("{}/clients/gateway.json", servers.client_origin())
    );
    let (status, _, body) = get(servers.ca_pem(), &client_id);
    assert_eq!(status, 200);
    let document: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(document["client_id"], client_id.as_str());
    assert_eq!(document["token_endpoint_auth_method"], "none");
    assert_eq!(servers.client_requests("/clients/gateway.json"), 1);
    assert!(
        servers
            .publish_client_document("../up", &json!({}))
            .is_err()
    );
}
