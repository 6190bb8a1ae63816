//! The MCP test servers themselves (support/mcp_servers.rs), before any client has done
//! anything: the protected resource's challenge and metadata, the authorization
//! server's metadata, a published client metadata document, and the command channel,
//! over HTTPS trusting the servers' CA.

use std::sync::Arc;

use gateway_auth_tests::McpServers;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// A GET trusting `ca_pem` alone: the status, the `WWW-Authenticate` field and the body.
async fn get(ca_pem: &str, url: &str) -> (StatusCode, Option<String>, Vec<u8>) {
    let url = url::Url::parse(url).unwrap();
    let host = url.host_str().unwrap().to_string();
    let port = url.port().unwrap();
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap())
        .unwrap();
    let config = ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = TcpStream::connect((host.as_str(), port)).await.unwrap();
    let tls = TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from(host.clone()).unwrap(), tcp)
        .await
        .unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(connection);
    let request = Request::get(url.path())
        .header("host", format!("{host}:{port}"))
        .body(Empty::<Bytes>::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_string());
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, challenge, body.to_vec())
}

#[tokio::test]
async fn the_resource_challenges_with_its_metadata_url_and_serves_that_metadata() {
    let servers = McpServers::start().unwrap();
    assert_eq!(
        servers.resource_metadata(),
        format!(
            "{}/.well-known/oauth-protected-resource/mcp",
            servers.resource_origin()
        )
    );

    let (status, challenge, _) = get(servers.ca_pem(), servers.resource()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        challenge.unwrap(),
        format!(
            r#"Bearer resource_metadata="{}", scope="mcp:read""#,
            servers.resource_metadata()
        )
    );

    let (status, _, body) = get(servers.ca_pem(), servers.resource_metadata()).await;
    assert_eq!(status, StatusCode::OK);
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

#[tokio::test]
async fn the_authorization_server_offers_s256_registration_and_par_and_par_can_be_required() {
    let servers = McpServers::start().unwrap();
    let url = format!(
        "{}/.well-known/oauth-authorization-server",
        servers.issuer()
    );
    let metadata = |body: Vec<u8>| serde_json::from_slice::<Value>(&body).unwrap();

    let (status, _, body) = get(servers.ca_pem(), &url).await;
    assert_eq!(status, StatusCode::OK);
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
    let (_, _, body) = get(servers.ca_pem(), &url).await;
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

#[tokio::test]
async fn a_published_client_metadata_document_is_served_with_its_url_as_client_id() {
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
    let (status, _, body) = get(servers.ca_pem(), &client_id).await;
    assert_eq!(status, StatusCode::OK);
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
