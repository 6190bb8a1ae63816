//! MCP-style authorization through the real component and host, against oidc-provider
//! (registration, resource indicators, DPoP with nonces, PAR) and a protected resource
//! that checks each token's audience and DPoP proof: from the resource's 401 to a
//! token it accepts, then refresh and step-up.

use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use gateway_auth_host::{
    Client, ClientAuth, DpopBinding, EgressPolicy, MemoryStore, Plugin, PluginOptions,
    RegistrationRequest, RegistrationSource, ResourceAuthorization, SessionGrant, Token, TrustSpec,
};
use gateway_auth_tests::{Answer, McpServers, https_get, runtime};

const REDIRECT_URI: &str = "https://gateway.example/callback";
const KEY: &str = "alice@mcp";

/// A GET of the test servers.
fn get(ca_pem: &str, url: &str, headers: &[(&str, &str)]) -> Answer {
    https_get(ca_pem, url, headers)
}

fn plugin(store: Arc<MemoryStore>) -> Plugin {
    runtime()
        .plugin(PluginOptions {
            egress: Arc::new(EgressPolicy::parse(["127.0.0.1"]).unwrap()),
            store,
            ..PluginOptions::default()
        })
        .unwrap()
}

/// A public client of what discovery `found`, asking for `scopes`, redirected to
/// [`REDIRECT_URI`].
fn session_client(
    found: &ResourceAuthorization,
    client_id: String,
    trust: TrustSpec,
    scopes: Vec<String>,
) -> Client {
    let mut client = Client::new(client_id, ClientAuth::None, trust);
    client.issuer = Some(found.issuer.clone());
    client.resources = vec![found.resource.clone()];
    client.scopes = scopes;
    client.redirect_uri = Some(REDIRECT_URI.into());
    client
}

/// The user logs in and consents at `url`; the session completes the authorization
/// with what the redirect brought.
fn authorize(plugin: &mut Plugin, servers: &McpServers, url: &str) -> Token {
    let redirect = servers.authorize(url).unwrap();
    plugin
        .complete_authorization(
            KEY,
            &redirect.state,
            redirect.code.as_str().into(),
            Some(&redirect.iss),
        )
        .unwrap()
}

fn registration(servers: &McpServers, issuer: &str) -> RegistrationRequest {
    RegistrationRequest {
        issuer: issuer.into(),
        redirect_uris: vec![REDIRECT_URI.into()],
        client_name: Some("gateway".into()),
        trust: TrustSpec::ca(servers.ca_pem()),
        ..RegistrationRequest::default()
    }
}

/// The resource's answer to `token` with a proof from the session, answering its nonce
/// request once.
fn call_with_proof(plugin: &mut Plugin, servers: &McpServers, url: &str, token: &str) -> Answer {
    let authorization = format!("DPoP {token}");
    let proof = plugin.dpop_proof(KEY, "GET", url, None).unwrap();
    let answer = get(
        servers.ca_pem(),
        url,
        &[("authorization", &authorization), ("dpop", &proof)],
    );
    if answer.status != 401 {
        return answer;
    }
    let nonce = answer.header("dpop-nonce").expect("a nonce to use");
    let proof = plugin.dpop_proof(KEY, "GET", url, Some(nonce)).unwrap();
    get(
        servers.ca_pem(),
        url,
        &[("authorization", &authorization), ("dpop", &proof)],
    )
}

#[test]
fn from_a_401_to_a_dpop_bound_token_the_resource_accepts_then_refresh_and_step_up() {
    let servers = McpServers::start().unwrap();
    let trust = TrustSpec::ca(servers.ca_pem());
    let mut plugin = plugin(Arc::new(MemoryStore::new()));

    // The resource says where its metadata is.
    let refused = get(servers.ca_pem(), servers.resource(), &[]);
    assert_eq!(refused.status, 401, "{refused:?}");
    let found = plugin
        .discover_resource(servers.resource(), &refused.challenges(), &trust)
        .unwrap();
    assert_eq!(found.resource, servers.resource());
    assert_eq!(found.issuer, servers.issuer());
    assert_eq!(found.scopes, ["mcp:read"]);
    assert!(found.registration_endpoint.is_some());
    assert!(found.pushed_authorization_request_endpoint.is_some());
    assert!(found.dpop_algorithms.iter().any(|a| a == "ES256"));

    let registered = plugin
        .register_client(&registration(&servers, &found.issuer))
        .unwrap();
    assert_eq!(registered.source, RegistrationSource::Registered);
    let again = plugin
        .register_client(&registration(&servers, &found.issuer))
        .unwrap();
    assert_eq!(
        (again.client_id.as_str(), again.source),
        (registered.client_id.as_str(), RegistrationSource::Stored)
    );
    assert_eq!(servers.registrations(), 1);

    // Short-lived user tokens, so the session refreshes within the test.
    servers.set_access_token_ttl(Duration::from_secs(4));
    let mut scopes = found.scopes.clone();
    scopes.push("offline_access".into());
    let mut client = session_client(&found, registered.client_id.clone(), trust, scopes);
    client.dpop = Some(DpopBinding::PerSession);
    client.refresh_skew_seconds = Some(2);
    client.refresh_jitter_seconds = Some(0);
    plugin
        .open_session(KEY, &client, &SessionGrant::AuthorizationCode)
        .unwrap();
    let authorization = plugin.begin_authorization(KEY).unwrap();
    assert!(
        authorization.url.contains("request_uri="),
        "pushed: {}",
        authorization.url
    );
    assert!(!authorization.url.contains("code_challenge="));
    let token = authorize(&mut plugin, &servers, &authorization.url);
    assert_eq!(token.token_type, "DPoP");

    let answer = call_with_proof(
        &mut plugin,
        &servers,
        servers.resource(),
        token.access_token.secret(),
    );
    assert_eq!(answer.status, 200, "{answer:?}");
    let body = answer.json();
    assert_eq!(body["aud"], servers.resource());
    assert_eq!(body["dpop"], true);
    // A bearer presentation of the bound token is refused.
    let bearer = format!("Bearer {}", token.access_token.secret());
    let stolen = get(
        servers.ca_pem(),
        servers.resource(),
        &[("authorization", &bearer)],
    );
    assert_eq!(stolen.status, 401, "{stolen:?}");

    // Past the refresh point the session refreshes, with a proof of the same key.
    thread::sleep(Duration::from_millis(2_500));
    let renewed = plugin.access_token(KEY).unwrap();
    assert_ne!(renewed.access_token.secret(), token.access_token.secret());
    let answer = call_with_proof(
        &mut plugin,
        &servers,
        servers.resource(),
        renewed.access_token.secret(),
    );
    assert_eq!(answer.status, 200, "{answer:?}");

    // Step-up: the admin path wants a wider scope.
    let admin = format!("{}/admin", servers.resource());
    let narrow = call_with_proof(&mut plugin, &servers, &admin, renewed.access_token.secret());
    assert_eq!(narrow.status, 403, "{narrow:?}");
    let step_up = plugin.begin_step_up(KEY, &narrow.challenges()).unwrap();
    let wider = authorize(&mut plugin, &servers, &step_up.url);
    assert!(
        wider.scopes.iter().any(|s| s == "mcp:write"),
        "{:?}",
        wider.scopes
    );
    let answer = call_with_proof(&mut plugin, &servers, &admin, wider.access_token.secret());
    assert_eq!(answer.status, 200, "{answer:?}");
}

#[test]
fn two_instances_registering_at_once_for_one_issuer_make_one_registration() {
    let servers = Arc::new(McpServers::start().unwrap());
    let store = Arc::new(MemoryStore::new());
    let start = Arc::new(Barrier::new(2));
    let registering: Vec<_> = (0..2)
        .map(|_| {
            let (servers, store, start) = (servers.clone(), store.clone(), start.clone());
            thread::spawn(move || {
                let mut plugin = plugin(store);
                let request = registration(&servers, servers.issuer());
                start.wait();
                plugin.register_client(&request).unwrap()
            })
        })
        .collect();
    let results: Vec<_> = registering.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(results[0].client_id, results[1].client_id);
    let mut sources: Vec<_> = results.iter().map(|r| r.source).collect();
    sources.sort_by_key(|s| format!("{s:?}"));
    assert_eq!(
        sources,
        [RegistrationSource::Registered, RegistrationSource::Stored]
    );
    assert_eq!(servers.registrations(), 1);
}

#[test]
fn a_server_that_requires_pushed_requests_gets_them_and_resources_reach_every_request() {
    let servers = McpServers::start().unwrap();
    servers.require_par(true);
    let trust = TrustSpec::ca(servers.ca_pem());
    let mut plugin = plugin(Arc::new(MemoryStore::new()));
    let found = plugin
        .discover_resource(servers.resource(), &[], &trust)
        .unwrap();
    assert!(found.pushed_authorization_required);
    let registered = plugin
        .register_client(&registration(&servers, &found.issuer))
        .unwrap();
    let client = session_client(&found, registered.client_id, trust, vec!["mcp:read".into()]);
    plugin
        .open_session(KEY, &client, &SessionGrant::AuthorizationCode)
        .unwrap();
    let authorization = plugin.begin_authorization(KEY).unwrap();
    let token = authorize(&mut plugin, &servers, &authorization.url);
    // A bearer token for the resource: its audience is the resource indicator.
    assert_eq!(token.token_type, "Bearer");
    let bearer = format!("Bearer {}", token.access_token.secret());
    let answer = get(
        servers.ca_pem(),
        servers.resource(),
        &[("authorization", &bearer)],
    );
    assert_eq!(answer.status, 200, "{answer:?}");
}

#[test]
fn a_client_id_metadata_document_is_the_client_where_the_server_takes_one() {
    let servers = McpServers::start().unwrap();
    let trust = TrustSpec::ca(servers.ca_pem());
    let mut plugin = plugin(Arc::new(MemoryStore::new()));
    let found = plugin
        .discover_resource(servers.resource(), &[], &trust)
        .unwrap();
    assert!(found.client_id_metadata_document_supported);
    let document = servers
        .publish_client_document(
            "gateway.json",
            &serde_json::json!({
                "client_name": "gateway",
                "redirect_uris": [REDIRECT_URI],
                "grant_types": ["authorization_code", "refresh_token"],
                "response_types": ["code"],
                "token_endpoint_auth_method": "none",
            }),
        )
        .unwrap();
    let registration = plugin
        .register_client(&RegistrationRequest {
            client_id_metadata_document: Some(document.clone()),
            ..registration(&servers, &found.issuer)
        })
        .unwrap();
    assert_eq!(
        (registration.client_id.as_str(), registration.source),
        (document.as_str(), RegistrationSource::MetadataDocument)
    );
    assert_eq!(servers.registrations(), 0, "nothing was registered");

    let client = session_client(
        &found,
        registration.client_id,
        trust,
        vec!["mcp:read".into()],
    );
    plugin
        .open_session(KEY, &client, &SessionGrant::AuthorizationCode)
        .unwrap();
    let authorization = plugin.begin_authorization(KEY).unwrap();
    let token = authorize(&mut plugin, &servers, &authorization.url);
    let bearer = format!("Bearer {}", token.access_token.secret());
    let answer = get(
        servers.ca_pem(),
        servers.resource(),
        &[("authorization", &bearer)],
    );
    assert_eq!(answer.status, 200, "{answer:?}");
    assert!(servers.client_requests("/clients/gateway.json") >= 1);
}
