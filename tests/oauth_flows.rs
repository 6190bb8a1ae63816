//! Every grant and every client-authentication method obtains a token from the
//! development authorization server, which verifies what it received.

use std::time::Duration;

use gateway_auth_devserver::{DevServer, defaults};
use gateway_auth_host::{Client, ClientAuth, Error, Grant, OAuthError, SessionGrant, TrustSpec};
use gateway_auth_host::{
    JwtAlgorithm, PasswordCredentials, SessionPhase, SigningKey, TokenExchange,
};
use gateway_auth_tests::{code_and_state, dev_basic_client, dev_client, loopback_plugin};

fn client(server: &DevServer, id: &str, auth: ClientAuth) -> Client {
    let mut client = dev_client(server, id, auth);
    client.scopes = vec!["read".into(), "write".into()];
    client
}

fn basic(server: &DevServer) -> Client {
    let mut client = dev_basic_client(server);
    client.scopes = vec!["read".into(), "write".into()];
    client
}

fn password() -> Grant {
    Grant::Password(PasswordCredentials {
        username: defaults::USERNAME.into(),
        password: defaults::PASSWORD.into(),
    })
}

/// The client authentication method the server saw on its last request.
fn last_auth(server: &DevServer) -> Option<String> {
    server.requests().last().and_then(|r| r.client_auth.clone())
}

#[test]
fn client_secret_basic_encodes_a_secret_with_colon_percent_and_space() {
    let server = DevServer::start(Default::default()).unwrap();
    let mut plugin = loopback_plugin();
    let token = plugin
        .request_token(&basic(&server), Grant::ClientCredentials)
        .unwrap();
    assert_eq!(token.token_type, "Bearer");
    assert_eq!(token.scopes, ["read", "write"]);
    assert!(token.expires_at.is_some());
    assert_eq!(last_auth(&server).as_deref(), Some("client_secret_basic"));
}

#[test]
fn client_secret_post_sends_the_secret_in_the_body() {
    let server = DevServer::start(Default::default()).unwrap();
    let mut plugin = loopback_plugin();
    let c = client(
        &server,
        defaults::POST_CLIENT_ID,
        ClientAuth::ClientSecretPost(defaults::POST_CLIENT_SECRET.into()),
    );
    plugin.request_token(&c, Grant::ClientCredentials).unwrap();
    assert_eq!(last_auth(&server).as_deref(), Some("client_secret_post"));
}

#[test]
fn a_wrong_secret_is_invalid_client() {
    let server = DevServer::start(Default::default()).unwrap();
    let mut plugin = loopback_plugin();
    let c = client(
        &server,
        defaults::BASIC_CLIENT_ID,
        ClientAuth::ClientSecretBasic("wrong".into()),
    );
    let result = plugin.request_token(&c, Grant::ClientCredentials);
    assert!(
        matches!(&result, Err(Error::OAuth(OAuthError::Protocol(p))) if p.status == 401 && p.error == "invalid_client"),
        "{result:?}"
    );
}

#[test]
fn private_key_jwt_signs_assertions_with_rs256_and_es256() {
    let server = DevServer::start(Default::default()).unwrap();
    let mut plugin = loopback_plugin();
    for (id, algorithm, key) in [
        (
            defaults::JWT_RS256_CLIENT_ID,
            JwtAlgorithm::Rs256,
            server.client_rs256_key_pem(),
        ),
        (
            defaults::JWT_ES256_CLIENT_ID,
            JwtAlgorithm::Es256,
            server.client_es256_key_pem(),
        ),
    ] {
        let auth = ClientAuth::PrivateKeyJwt(SigningKey {
            algorithm,
            private_key_pem: Into::into(key),
            key_id: Some("k1".into()),
        });
        let c = client(&server, id, auth);
        plugin.request_token(&c, Grant::ClientCredentials).unwrap();
        assert_eq!(
            last_auth(&server).as_deref(),
            Some("private_key_jwt"),
            "{id}"
        );
        // A second request needs a fresh jti: the server refuses replays.
        plugin.request_token(&c, Grant::ClientCredentials).unwrap();

        // The server takes only the issuer or the token endpoint as audience, at every
        // endpoint: revocation works with and without a configured issuer.
        for issuer in [None, Some(server.issuer())] {
            let mut c = c.clone();
            c.issuer = issuer;
            plugin
                .open_session("jwt", &c, &SessionGrant::ClientCredentials)
                .unwrap();
            let token = plugin.access_token("jwt").unwrap();
            plugin.revoke("jwt").unwrap();
            assert!(server.is_revoked(token.access_token.secret()), "{id}");
        }
    }
}

#[test]
fn tls_client_auth_uses_the_certificate_of_the_trust_spec() {
    let server = DevServer::start(Default::default()).unwrap();
    let mut plugin = loopback_plugin();
    let mut c = client(&server, defaults::MTLS_CLIENT_ID, ClientAuth::TlsClientAuth);
    c.trust = c
        .trust
        .with_identity(server.mtls_client_cert_pem(), server.mtls_client_key_pem());
    plugin.request_token(&c, Grant::ClientCredentials).unwrap();
    assert_eq!(last_auth(&server).as_deref(), Some("tls_client_auth"));
    assert!(plugin.prepare(&c.trust).unwrap().mutual_tls);

    let mut without = c.clone();
    without.trust = TrustSpec::ca(server.ca_pem());
    let requests = server.token_requests();
    let result = plugin.request_token(&without, Grant::ClientCredentials);
    assert!(
        matches!(&result, Err(Error::OAuth(OAuthError::Config(m))) if m.contains("client_certificate")),
        "{result:?}"
    );
    assert_eq!(
        server.token_requests(),
        requests,
        "refused before any request"
    );
}

#[test]
fn password_then_refresh_rotates_the_refresh_token() {
    let server = DevServer::start(Default::default()).unwrap();
    let mut plugin = loopback_plugin();
    let c = basic(&server);
    let first = plugin.request_token(&c, password()).unwrap();
    let old = first.refresh_token.expect("a refresh token");
    let second = plugin
        .request_token(&c, Grant::RefreshToken(old.clone()))
        .unwrap();
    let new = second.refresh_token.expect("a rotated refresh token");
    assert_ne!(new, old);
    let reused = plugin.request_token(&c, Grant::RefreshToken(old));
    assert!(
        matches!(&reused, Err(Error::OAuth(OAuthError::Protocol(p))) if p.error == "invalid_grant"),
        "{reused:?}"
    );
}

#[test]
fn token_exchange_and_jwt_bearer_grants_obtain_tokens() {
    let server = DevServer::start(Default::default()).unwrap();
    let mut plugin = loopback_plugin();
    let subject = server.issue_access_token(defaults::PUBLIC_CLIENT_ID, "read");
    let exchanged = plugin
        .request_token(
            &basic(&server),
            Grant::TokenExchange(TokenExchange {
                subject_token: Into::into(subject),
                subject_token_type: "urn:ietf:params:oauth:token-type:access_token".into(),
                actor_token: None,
                actor_token_type: None,
                requested_token_type: None,
            }),
        )
        .unwrap();
    assert_eq!(
        exchanged.issued_token_type.as_deref(),
        Some("urn:ietf:params:oauth:token-type:access_token")
    );
    let assertion = Into::into(server.sign_jwt_bearer_assertion(defaults::USERNAME));
    plugin
        .request_token(&basic(&server), Grant::JwtBearer(assertion))
        .unwrap();
}

#[test]
fn an_actor_token_type_without_an_actor_token_is_a_config_error_and_nothing_is_sent() {
    let server = DevServer::start(Default::default()).unwrap();
    let mut plugin = loopback_plugin();
    let subject = server.issue_access_token(defaults::PUBLIC_CLIENT_ID, "read");
    let result = plugin.request_token(
        &basic(&server),
        Grant::TokenExchange(TokenExchange {
            subject_token: Into::into(subject),
            subject_token_type: "urn:ietf:params:oauth:token-type:access_token".into(),
            actor_token: None,
            actor_token_type: Some("urn:ietf:params:oauth:token-type:jwt".into()),
            requested_token_type: None,
        }),
    );
    assert!(
        matches!(&result, Err(Error::OAuth(OAuthError::Config(m))) if m.contains("without actor_token")),
        "{result:?}"
    );
    assert_eq!(server.token_requests(), 0);
}

#[test]
fn authorization_code_with_pkce_completes_once() {
    let server = DevServer::start(Default::default()).unwrap();
    let mut plugin = loopback_plugin();
    let c = client(&server, defaults::PUBLIC_CLIENT_ID, ClientAuth::None);
    plugin
        .open_session("user-1", &c, &SessionGrant::AuthorizationCode)
        .unwrap();
    let authorization = plugin.begin_authorization("user-1").unwrap();
    assert!(
        authorization.url.contains("code_challenge_method=S256"),
        "{}",
        authorization.url
    );
    let status = plugin.session_status("user-1").unwrap().unwrap();
    assert_eq!(status.phase, SessionPhase::Authorizing);

    let redirect = server.authorize(&authorization.url).unwrap();
    let (code, state) = code_and_state(&redirect);
    assert_eq!(state, authorization.state);
    let wrong =
        plugin.complete_authorization("user-1", "not-the-state", Into::into(code.clone()), None);
    assert!(matches!(wrong, Err(Error::OAuth(_))));
    let token = plugin
        .complete_authorization("user-1", &state, Into::into(code.clone()), None)
        .unwrap();
    assert!(
        token.refresh_token.is_none(),
        "sessions keep their refresh token"
    );
    assert_eq!(
        plugin.access_token("user-1").unwrap().access_token,
        token.access_token
    );
    let again = plugin.complete_authorization("user-1", &state, Into::into(code), None);
    assert!(again.is_err(), "the state is single use");
    let status = plugin.session_status("user-1").unwrap().unwrap();
    assert_eq!(
        (status.phase, status.has_refresh_token),
        (SessionPhase::Valid, true)
    );
}

#[test]
fn device_authorization_polls_until_the_user_approves() {
    let server = DevServer::start(Default::default()).unwrap();
    server.set_device_interval(1);
    let mut plugin = loopback_plugin();
    let c = client(&server, defaults::PUBLIC_CLIENT_ID, ClientAuth::None);
    plugin
        .open_session("tv", &c, &SessionGrant::DeviceCode)
        .unwrap();
    let device = plugin.begin_device_authorization("tv").unwrap();
    assert_eq!(device.interval_seconds, 1);
    assert!(device.verification_uri.starts_with(&server.issuer()));
    assert!(plugin.poll_device_authorization("tv").unwrap().is_none());
    assert!(server.approve_device(&device.user_code));
    std::thread::sleep(Duration::from_millis(1100));
    let token = plugin
        .poll_device_authorization("tv")
        .unwrap()
        .expect("a token after approval");
    assert_eq!(
        plugin.access_token("tv").unwrap().access_token,
        token.access_token
    );
}

#[test]
fn endpoints_are_discovered_from_the_issuer_alone() {
    let server = DevServer::start(Default::default()).unwrap();
    let mut plugin = loopback_plugin();
    let mut c = Client::new(
        defaults::BASIC_CLIENT_ID,
        ClientAuth::ClientSecretBasic(defaults::BASIC_CLIENT_SECRET.into()),
        TrustSpec::ca(server.ca_pem()),
    );
    c.issuer = Some(server.issuer());
    plugin.request_token(&c, Grant::ClientCredentials).unwrap();
    server.set_rfc8414_metadata(false);
    let mut fresh = loopback_plugin();
    fresh.request_token(&c, Grant::ClientCredentials).unwrap();
    assert!(
        server
            .requests()
            .iter()
            .any(|r| r.path == "/.well-known/openid-configuration")
    );
}

#[test]
fn revoke_revokes_the_session_tokens_at_the_server() {
    let server = DevServer::start(Default::default()).unwrap();
    let mut plugin = loopback_plugin();
    let c = basic(&server);
    plugin
        .open_session(
            "s",
            &c,
            &SessionGrant::Password(PasswordCredentials {
                username: defaults::USERNAME.into(),
                password: defaults::PASSWORD.into(),
            }),
        )
        .unwrap();
    let token = plugin.access_token("s").unwrap();
    plugin.revoke("s").unwrap();
    assert!(server.is_revoked(token.access_token.secret()));
    assert!(server.requests().iter().any(|r| r.path == "/revoke"));
}

#[test]
fn extra_authorization_parameters_reach_the_server_and_cannot_override_the_plugins() {
    let server = DevServer::start(Default::default()).unwrap();
    let mut plugin = loopback_plugin();
    let mut c = client(&server, defaults::PUBLIC_CLIENT_ID, ClientAuth::None);
    c.authorization_params = vec![
        ("prompt".into(), "consent".into()),
        ("access_type".into(), "offline".into()),
    ];
    plugin
        .open_session("u", &c, &SessionGrant::AuthorizationCode)
        .unwrap();
    let authorization = plugin.begin_authorization("u").unwrap();
    assert!(
        authorization
            .url
            .ends_with("&prompt=consent&access_type=offline"),
        "{}",
        authorization.url
    );
    let redirect = server.authorize(&authorization.url).unwrap();
    let (code, state) = code_and_state(&redirect);
    plugin
        .complete_authorization("u", &state, code.into(), None)
        .unwrap();

    for name in ["state", "code_challenge", "redirect_uri", "scope"] {
        let mut bad = c.clone();
        bad.authorization_params = vec![(name.into(), "attacker-chosen".into())];
        let result = plugin.open_session("v", &bad, &SessionGrant::AuthorizationCode);
        assert!(
            matches!(&result, Err(Error::OAuth(OAuthError::Config(m))) if m.contains(name)),
            "{name}: {result:?}"
        );
    }
}
