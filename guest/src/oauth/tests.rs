//! Flow tests of [`OAuth`] over the fake platform: what a gateway would notice.

use super::engine::{CALL_OVERRUN_MS, LEASE_MARGIN_MS, lease_until};
use super::retry::{self, Deadline};
use super::session::{DEFAULT_LIFETIME, SessionRecord};
use super::testing::START_MS;
use super::testing::{
    FakePlatform, ResponseExt, error_json, json, token_json, token_json_with_refresh,
};
use super::*;
use crate::http::{HttpError, Method};
use gateway_auth_api::*;
use sha2::Digest as _;
use std::collections::BTreeMap;

const TOKEN_URL: &str = "https://as.example/token";
const KEY: &str = "gw-1";

fn client(auth: ClientAuth) -> Client {
    let mut client = Client::new("gw", auth, TrustSpec::default());
    client.token_endpoint = Some(TOKEN_URL.into());
    client.authorization_endpoint = Some("https://as.example/authorize?tenant=t1".into());
    client.device_authorization_endpoint = Some("https://as.example/device".into());
    client.revocation_endpoint = Some("https://as.example/revoke".into());
    client.redirect_uri = Some("https://gw.example/callback".into());
    client.scopes = vec!["read".into(), "write".into()];
    client
}

fn basic() -> Client {
    client(ClientAuth::ClientSecretBasic(ClientSecret::new(
        "CLIENT-SECRET",
    )))
}

fn header<'a>(request: &'a crate::http::Request, name: &str) -> Option<&'a str> {
    request
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

// ---- one-off requests ----

#[test]
fn request_token_sends_the_grant_with_client_auth_and_returns_the_refresh_token() {
    let mut p = FakePlatform::new();
    p.push(json(200, &token_json_with_refresh("AT", 3600, "RT")));
    let token = OAuth::new()
        .request_token(&mut p, &basic(), Grant::ClientCredentials)
        .unwrap();
    assert_eq!(token.access_token.secret(), "AT");
    assert_eq!(token.expires_at, Some(p.now() + 3600));
    assert_eq!(token.scopes, vec!["read".to_string(), "write".to_string()]);
    assert_eq!(token.refresh_token.unwrap().secret(), "RT");
    let request = &p.requests[0];
    assert_eq!(
        (request.method, request.url.as_str()),
        (Method::Post, TOKEN_URL)
    );
    assert!(
        header(request, "authorization")
            .unwrap()
            .starts_with("Basic ")
    );
    assert_eq!(
        header(request, "content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(
        p.param(0, "grant_type").as_deref(),
        Some("client_credentials")
    );
    assert_eq!(p.param(0, "scope").as_deref(), Some("read write"));
}

#[test]
fn each_grant_reaches_the_token_endpoint_with_its_parameters() {
    let grants: Vec<(Grant, &str, &str, &str)> = vec![
        (
            Grant::Password(PasswordCredentials {
                username: "ann".into(),
                password: Password::new("PW"),
            }),
            "password",
            "password",
            "PW",
        ),
        (
            Grant::AuthorizationCode(CodeExchange {
                code: AuthorizationCode::new("CODE"),
                code_verifier: Some(PkceCodeVerifier::new("VERIFIER")),
            }),
            "authorization_code",
            "code_verifier",
            "VERIFIER",
        ),
        (
            Grant::RefreshToken(RefreshToken::new("RT")),
            "refresh_token",
            "refresh_token",
            "RT",
        ),
        (
            Grant::TokenExchange(TokenExchange {
                subject_token: SubjectToken::new("SUBJ"),
                subject_token_type: "urn:ietf:params:oauth:token-type:access_token".into(),
                actor_token: None,
                actor_token_type: None,
                requested_token_type: None,
            }),
            request::TOKEN_EXCHANGE,
            "subject_token",
            "SUBJ",
        ),
        (
            Grant::JwtBearer(Assertion::new("A.B.C")),
            request::JWT_BEARER,
            "assertion",
            "A.B.C",
        ),
        (
            Grant::DeviceCode(DeviceCode::new("DC")),
            request::DEVICE_CODE,
            "device_code",
            "DC",
        ),
    ];
    let mut oauth = OAuth::new();
    for (i, (grant, grant_type, name, value)) in grants.into_iter().enumerate() {
        let mut p = FakePlatform::new();
        p.push(json(200, &token_json("AT", 60)));
        let client = client(ClientAuth::ClientSecretPost(ClientSecret::new("CS")));
        oauth.request_token(&mut p, &client, grant).unwrap();
        assert_eq!(
            p.param(0, "grant_type").as_deref(),
            Some(grant_type),
            "grant {i}"
        );
        assert_eq!(p.param(0, name).as_deref(), Some(value), "grant {i}");
        assert_eq!(p.param(0, "client_secret").as_deref(), Some("CS"));
    }
}

#[test]
fn only_requests_that_spend_nothing_single_use_may_go_over_a_kept_alive_connection() {
    let grants = [
        (Grant::ClientCredentials, true),
        (
            Grant::Password(PasswordCredentials {
                username: "ann".into(),
                password: Password::new("PW"),
            }),
            true,
        ),
        (Grant::JwtBearer(Assertion::new("A.B.C")), true),
        (
            Grant::AuthorizationCode(CodeExchange {
                code: AuthorizationCode::new("CODE"),
                code_verifier: None,
            }),
            false,
        ),
        (Grant::RefreshToken(RefreshToken::new("RT")), false),
        (Grant::DeviceCode(DeviceCode::new("DC")), false),
    ];
    let mut oauth = OAuth::new();
    for (grant, replay_safe) in grants {
        let mut p = FakePlatform::new();
        p.push(json(200, &token_json("AT", 60)));
        oauth.request_token(&mut p, &basic(), grant).unwrap();
        let grant_type = p.param(0, "grant_type");
        assert_eq!(p.requests[0].replay_safe, replay_safe, "{grant_type:?}");
    }
}

#[test]
fn each_client_auth_method_reaches_the_wire() {
    let signing = SigningKey {
        algorithm: JwtAlgorithm::Rs256,
        private_key_pem: PrivateKeyPem::new(jwt::tests::RS256_PEM),
        key_id: None,
    };
    let mut tls = client(ClientAuth::TlsClientAuth);
    tls.trust.client_certificate = Some("-----BEGIN CERTIFICATE-----".into());
    tls.trust.client_key = Some(PrivateKeyPem::new("-----BEGIN PRIVATE KEY-----"));
    let cases = [
        (client(ClientAuth::None), None, Some("gw"), None),
        (
            client(ClientAuth::ClientSecretPost(ClientSecret::new("CS"))),
            None,
            Some("gw"),
            None,
        ),
        (basic(), Some("Basic "), None, None),
        (
            client(ClientAuth::PrivateKeyJwt(signing)),
            None,
            Some("gw"),
            Some(client_auth::JWT_CLIENT_ASSERTION),
        ),
        (tls, None, Some("gw"), None),
    ];
    for (client, auth_header, client_id, assertion_type) in cases {
        let mut p = FakePlatform::new();
        p.push(json(200, &token_json("AT", 60)));
        OAuth::new()
            .request_token(&mut p, &client, Grant::ClientCredentials)
            .unwrap();
        let request = &p.requests[0];
        match auth_header {
            Some(prefix) => assert!(
                header(request, "authorization")
                    .unwrap()
                    .starts_with(prefix)
            ),
            None => assert!(header(request, "authorization").is_none()),
        }
        assert_eq!(p.param(0, "client_id").as_deref(), client_id);
        assert_eq!(
            p.param(0, "client_assertion_type").as_deref(),
            assertion_type
        );
    }
}

#[test]
fn configuration_errors_are_reported_before_any_request() {
    let mut p = FakePlatform::new();
    let mut oauth = OAuth::new();
    let bad = [
        {
            let mut client = basic();
            client.token_endpoint = Some("http://as.example/token".into());
            client
        },
        {
            let mut client = basic();
            client.token_endpoint = None;
            client.issuer = None;
            client
        },
        {
            let mut client = basic();
            client.client_id = String::new();
            client
        },
        client(ClientAuth::TlsClientAuth),
        client(ClientAuth::ClientSecretBasic(ClientSecret::new(""))),
    ];
    for client in bad {
        let err = oauth
            .request_token(&mut p, &client, Grant::ClientCredentials)
            .unwrap_err();
        assert!(matches!(err, OAuthError::Config(_)), "{err:?}");
        let err = oauth
            .open_session(&mut p, KEY, client, SessionGrant::ClientCredentials)
            .unwrap_err();
        assert!(matches!(err, OAuthError::Config(_)), "{err:?}");
    }
    assert!(p.requests.is_empty());
    let err = oauth.access_token(&mut p, "never-opened").unwrap_err();
    assert!(matches!(err, OAuthError::Config(m) if m.contains("open_session")));
}

#[test]
fn endpoints_are_discovered_from_the_issuer() {
    let mut p = FakePlatform::new();
    p.push(json(
        200,
        r#"{"issuer":"https://as.example","token_endpoint":"https://as.example/oauth2/token"}"#,
    ));
    p.push(json(200, &token_json("AT1", 60)));
    p.push(json(200, &token_json("AT2", 60)));
    let client = {
        let mut client = Client::new("gw", ClientAuth::None, TrustSpec::default());
        client.issuer = Some("https://as.example".into());
        client
    };
    let mut oauth = OAuth::new();
    oauth
        .request_token(&mut p, &client, Grant::ClientCredentials)
        .unwrap();
    oauth
        .request_token(&mut p, &client, Grant::ClientCredentials)
        .unwrap();
    let urls: Vec<&str> = p.requests.iter().map(|r| r.url.as_str()).collect();
    assert_eq!(
        urls,
        [
            "https://as.example/.well-known/oauth-authorization-server",
            "https://as.example/oauth2/token",
            "https://as.example/oauth2/token"
        ]
    );
}

// ---- sessions: caching, renewal, rotation ----

fn password_grant() -> SessionGrant {
    SessionGrant::Password(PasswordCredentials {
        username: "ann".into(),
        password: Password::new("PW"),
    })
}

fn open(p: &mut FakePlatform, oauth: &mut OAuth, client: Client, grant: SessionGrant) {
    oauth.open_session(p, KEY, client, grant).unwrap();
}

#[test]
fn a_token_is_cached_until_expiry_minus_skew_then_refreshed_once() {
    let mut p = FakePlatform::new();
    let mut oauth = OAuth::new();
    let mut client = basic();
    client.refresh_jitter_seconds = Some(0);
    open(&mut p, &mut oauth, client, SessionGrant::ClientCredentials);
    assert!(p.requests.is_empty(), "open_session requests nothing");
    p.push(json(200, &token_json_with_refresh("AT1", 3600, "RT1")));
    assert_eq!(
        oauth
            .access_token(&mut p, KEY)
            .unwrap()
            .access_token
            .secret(),
        "AT1"
    );
    p.advance(3539);
    assert_eq!(
        oauth
            .access_token(&mut p, KEY)
            .unwrap()
            .access_token
            .secret(),
        "AT1"
    );
    assert_eq!(p.requests.len(), 1);
    p.advance(1);
    p.push(json(200, &token_json("AT2", 3600)));
    for _ in 0..3 {
        let token = oauth.access_token(&mut p, KEY).unwrap();
        assert_eq!(token.access_token.secret(), "AT2");
        assert_eq!(
            token.refresh_token, None,
            "sessions keep their refresh token"
        );
    }
    assert_eq!(p.requests.len(), 2);
    assert_eq!(p.param(1, "grant_type").as_deref(), Some("refresh_token"));
    assert_eq!(p.param(1, "refresh_token").as_deref(), Some("RT1"));
}

#[test]
fn rotation_keeps_the_newest_refresh_token() {
    let mut p = FakePlatform::new();
    let mut oauth = OAuth::new();
    open(
        &mut p,
        &mut oauth,
        basic(),
        SessionGrant::RefreshToken(RefreshToken::new("RT0")),
    );
    p.push(json(200, &token_json_with_refresh("AT1", 60, "RT1")));
    oauth.access_token(&mut p, KEY).unwrap();
    p.advance(60);
    p.push(json(200, &token_json("AT2", 60)));
    oauth.access_token(&mut p, KEY).unwrap();
    p.advance(60);
    p.push(json(200, &token_json_with_refresh("AT3", 60, "RT3")));
    oauth.access_token(&mut p, KEY).unwrap();
    let sent: Vec<String> = (0..3)
        .map(|i| p.param(i, "refresh_token").unwrap())
        .collect();
    assert_eq!(sent, ["RT0", "RT1", "RT1"]);
    let stored = SessionRecord::from_bytes(&p.store[KEY]).unwrap();
    assert_eq!(stored.refresh_token.unwrap().secret(), "RT3");
}

#[test]
fn invalid_grant_on_refresh_requires_a_person_and_drops_the_refresh_token() {
    let mut p = FakePlatform::new();
    let mut oauth = OAuth::new();
    open(
        &mut p,
        &mut oauth,
        basic(),
        SessionGrant::RefreshToken(RefreshToken::new("RT0")),
    );
    p.push(json(400, &error_json("invalid_grant")));
    let err = oauth.access_token(&mut p, KEY).unwrap_err();
    assert!(
        matches!(&err, OAuthError::AuthorizationRequired(m) if m.contains("invalid_grant")),
        "{err:?}"
    );
    let status = oauth.session_status(&mut p, KEY).unwrap();
    assert_eq!(
        (status.phase, status.has_refresh_token),
        (SessionPhase::AuthorizationRequired, false)
    );
    // Nothing left to send.
    assert!(matches!(
        oauth.access_token(&mut p, KEY),
        Err(OAuthError::AuthorizationRequired(_))
    ));
    assert_eq!(p.requests.len(), 1);
}

#[test]
fn invalid_grant_on_refresh_reacquires_for_grants_without_a_person() {
    let mut p = FakePlatform::new();
    let mut oauth = OAuth::new();
    open(&mut p, &mut oauth, basic(), SessionGrant::ClientCredentials);
    p.push(json(200, &token_json_with_refresh("AT1", 60, "RT1")));
    oauth.access_token(&mut p, KEY).unwrap();
    p.advance(60);
    p.push(json(400, &error_json("invalid_grant")));
    p.push(json(200, &token_json("AT2", 60)));
    assert_eq!(
        oauth
            .access_token(&mut p, KEY)
            .unwrap()
            .access_token
            .secret(),
        "AT2"
    );
    assert_eq!(
        p.param(2, "grant_type").as_deref(),
        Some("client_credentials")
    );
    assert!(!oauth.session_status(&mut p, KEY).unwrap().has_refresh_token);
}

fn signer() -> AssertionSigner {
    AssertionSigner {
        signing_key: SigningKey {
            algorithm: JwtAlgorithm::Rs256,
            private_key_pem: PrivateKeyPem::new(super::jwt::tests::RS256_PEM),
            key_id: None,
        },
        issuer: "https://idp.example".into(),
        subject: "svc-1".into(),
        audience: None,
        lifetime_seconds: Some(120),
    }
}

fn claims_of(assertion: &str) -> serde_json::Value {
    use base64::Engine as _;
    let payload = assertion.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[test]
fn a_signed_jwt_bearer_session_sends_a_fresh_assertion_with_every_request() {
    let mut p = FakePlatform::new();
    let mut oauth = OAuth::new();
    open(
        &mut p,
        &mut oauth,
        basic(),
        SessionGrant::SignedJwtBearer(signer()),
    );
    for n in 0..3 {
        p.push(json(200, &token_json(&format!("AT{n}"), 60)));
        oauth.access_token(&mut p, KEY).unwrap();
        p.advance(60);
    }
    let claims: Vec<_> = (0..3)
        .map(|i| claims_of(&p.param(i, "assertion").unwrap()))
        .collect();
    for (i, c) in claims.iter().enumerate() {
        assert_eq!(
            p.param(i, "grant_type").as_deref(),
            Some(request::JWT_BEARER)
        );
        let iat = p.now() - 180 + 60 * i as u64;
        assert_eq!(
            (&c["iss"], &c["sub"], &c["aud"], &c["iat"], &c["exp"]),
            (
                &"https://idp.example".into(),
                &"svc-1".into(),
                // No issuer on the client: its token endpoint.
                &TOKEN_URL.into(),
                &iat.into(),
                &(iat + 120).into()
            )
        );
    }
    assert!(claims[0]["jti"] != claims[1]["jti"] && claims[1]["jti"] != claims[2]["jti"]);
}

#[test]
fn a_fixed_jwt_bearer_assertion_is_never_sent_after_its_exp() {
    use base64::Engine as _;
    let mut p = FakePlatform::new();
    let mut oauth = OAuth::new();
    let exp = p.now() + 90;
    let claims = format!(r#"{{"iss":"idp","sub":"u","exp":{exp}}}"#);
    let assertion = format!(
        "e30.{}.c2ln",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(claims)
    );
    open(
        &mut p,
        &mut oauth,
        basic(),
        SessionGrant::JwtBearer(Assertion::new(assertion)),
    );
    p.push(json(200, &token_json("AT1", 60)));
    oauth.access_token(&mut p, KEY).unwrap();
    p.advance(60);
    p.push(json(200, &token_json("AT2", 60)));
    oauth.access_token(&mut p, KEY).unwrap();
    assert_eq!(p.requests.len(), 2, "re-sent while it lives");
    p.advance(60);
    for _ in 0..3 {
        let err = oauth.access_token(&mut p, KEY).unwrap_err();
        assert!(
            matches!(&err, OAuthError::AuthorizationRequired(m) if m.contains("expired")),
            "{err}"
        );
    }
    assert_eq!(p.requests.len(), 2, "never sent after exp");
}

#[test]
fn a_bad_assertion_signer_is_refused_at_open() {
    let mut p = FakePlatform::new();
    let mut oauth = OAuth::new();
    let mut bad_key = signer();
    bad_key.signing_key.algorithm = JwtAlgorithm::Es256;
    let mut no_subject = signer();
    no_subject.subject = " ".into();
    let mut no_lifetime = signer();
    no_lifetime.lifetime_seconds = Some(0);
    for bad in [bad_key, no_subject, no_lifetime] {
        let err = oauth
            .open_session(&mut p, KEY, basic(), SessionGrant::SignedJwtBearer(bad))
            .unwrap_err();
        assert!(matches!(err, OAuthError::Config(_)), "{err}");
    }
}

#[test]
fn a_failed_refresh_ahead_of_expiry_still_serves_the_live_token() {
    let mut p = FakePlatform::new();
    let mut oauth = OAuth::new();
    open(&mut p, &mut oauth, basic(), SessionGrant::ClientCredentials);
    p.push(json(200, &token_json("AT1", 3600)));
    oauth.access_token(&mut p, KEY).unwrap();
    p.advance(3590);
    p.push_err(HttpError::Transport(NetError::Denied("egress".into())));
    assert_eq!(
        oauth
            .access_token(&mut p, KEY)
            .unwrap()
            .access_token
            .secret(),
        "AT1"
    );
}

#[test]
fn backoff_answers_without_a_request_until_retry_at() {
    let mut p = FakePlatform::new();
    let mut oauth = OAuth::new();
    open(&mut p, &mut oauth, basic(), SessionGrant::ClientCredentials);
    // Three attempts within the call, each answered 503 with Retry-After: 1.
    for _ in 0..3 {
        p.push(json(503, "{}").with_header("retry-after", "1"));
    }
    let err = oauth.access_token(&mut p, KEY).unwrap_err();
    assert!(
        matches!(&err, OAuthError::HttpStatus(e) if e.status == 503),
        "{err:?}"
    );
    assert_eq!(
        (p.requests.len(), p.sleeps.clone()),
        (3, vec![1_000, 1_000])
    );
    let status = oauth.session_status(&mut p, KEY).unwrap();
    assert_eq!((status.phase, status.failures), (SessionPhase::Backoff, 1));
    let retry_at = status.retry_at.unwrap();
    let reads = p.store_reads;
    let err = oauth.access_token(&mut p, KEY).unwrap_err();
    assert_eq!(
        p.store_reads, reads,
        "backing off touches neither network nor store"
    );
    match err {
        OAuthError::Backoff(b) => {
            assert_eq!((b.retry_at, b.failures), (retry_at, 1));
            assert!(b.last_error.contains("503"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(p.requests.len(), 3, "no request while backing off");
    p.advance(retry_at - p.now());
    p.push(json(200, &token_json("AT", 60)));
    assert_eq!(
        oauth
            .access_token(&mut p, KEY)
            .unwrap()
            .access_token
            .secret(),
        "AT"
    );
    assert_eq!(oauth.session_status(&mut p, KEY).unwrap().failures, 0);
}

#[test]
fn consecutive_failures_grow_the_backoff() {
    let mut p = FakePlatform::new();
    let mut oauth = OAuth::new();
    let client = {
        let mut client = basic();
        client.timeout_ms = Some(100);
        client
    };
    open(&mut p, &mut oauth, client, SessionGrant::ClientCredentials);
    let mut waits = Vec::new();
    for _ in 0..6 {
        // Retry-After longer than the deadline: one request per call.
        p.push(json(429, "{}").with_header("retry-after", "1"));
        oauth.access_token(&mut p, KEY).unwrap_err();
        let retry_at = oauth.session_status(&mut p, KEY).unwrap().retry_at.unwrap();
        waits.push(retry_at - p.now());
        p.advance(retry_at - p.now());
    }
    assert_eq!(p.requests.len(), 6);
    assert!(waits[5] > waits[0], "{waits:?}");
    assert!(
        waits.iter().all(|w| *w <= retry::BACKOFF_CAP_SECS),
        "{waits:?}"
    );
}

#[test]
fn a_failure_retrying_cannot_fix_is_held_without_requests_for_a_growing_capped_time() {
    let mut p = FakePlatform::new();
    let mut oauth = OAuth::new();
    let mut client = basic();
    client.failure_hold_off_seconds = Some(45);
    open(
        &mut p,
        &mut oauth,
        client.clone(),
        SessionGrant::ClientCredentials,
    );
    p.push(json(401, &error_json("invalid_client")));
    for _ in 0..100 {
        let result = oauth.access_token(&mut p, KEY);
        assert!(
            matches!(&result, Err(OAuthError::Protocol(e)) if e.error == "invalid_client"),
            "{result:?}"
        );
    }
    assert_eq!(p.requests.len(), 1, "one login attempt, not a hundred");
    let status = oauth.session_status(&mut p, KEY).unwrap();
    assert_eq!(status.phase, SessionPhase::Failed);
    // Counted as a refusal, not as a transient failure: a dashboard tells a wrong
    // secret from a struggling server.
    assert_eq!(
        (status.failures, status.refusals, status.retry_at),
        (0, 1, Some(p.now() + 30))
    );

    // When the hold-off ends, one new attempt; failing again doubles it, to the cap.
    p.advance(30);
    p.push_err(HttpError::Tls("unknown issuer".into()));
    assert!(matches!(
        oauth.access_token(&mut p, KEY),
        Err(OAuthError::Tls(_))
    ));
    assert!(matches!(
        oauth.access_token(&mut p, KEY),
        Err(OAuthError::Tls(_))
    ));
    assert_eq!(p.requests.len(), 2);
    let status = oauth.session_status(&mut p, KEY).unwrap();
    assert_eq!(
        (status.failures, status.refusals, status.retry_at),
        (0, 2, Some(p.now() + 45))
    );

    // Reopening (say, with a corrected secret) allows a new attempt at once; success
    // clears the failure.
    open(&mut p, &mut oauth, client, SessionGrant::ClientCredentials);
    p.push(json(200, &token_json("AT1", 3600)));
    assert_eq!(
        oauth
            .access_token(&mut p, KEY)
            .unwrap()
            .access_token
            .secret(),
        "AT1"
    );
    let status = oauth.session_status(&mut p, KEY).unwrap();
    assert_eq!(
        (status.phase, status.failures, status.refusals),
        (SessionPhase::Valid, 0, 0)
    );
}

#[test]
fn transient_failures_and_refusals_are_counted_apart() {
    let mut p = FakePlatform::new();
    let mut oauth = OAuth::new();
    open(&mut p, &mut oauth, basic(), SessionGrant::ClientCredentials);
    for _ in 0..retry::MAX_ATTEMPTS {
        p.push(json(503, "{}"));
    }
    assert!(oauth.access_token(&mut p, KEY).is_err());
    let status = oauth.session_status(&mut p, KEY).unwrap();
    assert_eq!(
        (status.phase, status.failures, status.refusals),
        (SessionPhase::Backoff, 1, 0)
    );
    p.advance(600);
    p.push(json(401, &error_json("invalid_client")));
    assert!(oauth.access_token(&mut p, KEY).is_err());
    let status = oauth.session_status(&mut p, KEY).unwrap();
    assert_eq!(
        (status.phase, status.failures, status.refusals),
        (SessionPhase::Failed, 0, 1)
    );
}

// ---- sessions across instances ----

#[test]
fn a_second_instance_over_the_same_store_continues_without_a_request() {
    let mut p = FakePlatform::new();
    let mut first = OAuth::new();
    open(&mut p, &mut first, basic(), SessionGrant::ClientCredentials);
    p.push(json(200, &token_json_with_refresh("AT1", 3600, "RT1")));
    first.access_token(&mut p, KEY).unwrap();

    let mut second = OAuth::new();
    // Before open_session, the status is readable from the store but no token is served.
    assert_eq!(
        second.session_status(&mut p, KEY).unwrap().phase,
        SessionPhase::Valid
    );
    assert!(matches!(
        second.access_token(&mut p, KEY),
        Err(OAuthError::Config(_))
    ));
    open(
        &mut p,
        &mut second,
        basic(),
        SessionGrant::ClientCredentials,
    );
    assert_eq!(
        second
            .access_token(&mut p, KEY)
            .unwrap()
            .access_token
            .secret(),
        "AT1"
    );
    assert_eq!(p.requests.len(), 1);

    // A rotated client secret is the same client; other scopes are not.
    let mut third = OAuth::new();
    let rotated = client(ClientAuth::ClientSecretBasic(ClientSecret::new(
        "NEW-SECRET",
    )));
    open(&mut p, &mut third, rotated, SessionGrant::ClientCredentials);
    assert_eq!(
        third
            .access_token(&mut p, KEY)
            .unwrap()
            .access_token
            .secret(),
        "AT1"
    );
    let mut fourth = OAuth::new();
    let rescoped = {
        let mut client = basic();
        client.scopes = vec!["admin".into()];
        client
    };
    open(
        &mut p,
        &mut fourth,
        rescoped,
        SessionGrant::ClientCredentials,
    );
    p.push(json(200, &token_json("AT-ADMIN", 3600)));
    assert_eq!(
        fourth
            .access_token(&mut p, KEY)
            .unwrap()
            .access_token
            .secret(),
        "AT-ADMIN"
    );
    assert_eq!(
        p.param(1, "grant_type").as_deref(),
        Some("client_credentials")
    );
}

#[test]
fn a_renewal_by_another_replica_is_adopted_instead_of_refreshing_again() {
    let mut p = FakePlatform::new();
    let (mut a, mut b) = (OAuth::new(), OAuth::new());
    open(&mut p, &mut a, basic(), SessionGrant::ClientCredentials);
    p.push(json(200, &token_json_with_refresh("AT1", 600, "RT1")));
    a.access_token(&mut p, KEY).unwrap();
    open(&mut p, &mut b, basic(), SessionGrant::ClientCredentials);
    p.advance(600);
    p.push(json(200, &token_json_with_refresh("AT2", 600, "RT2")));
    assert_eq!(
        a.access_token(&mut p, KEY).unwrap().access_token.secret(),
        "AT2"
    );
    // B's token is due too, but the store already has A's renewal.
    assert_eq!(
        b.access_token(&mut p, KEY).unwrap().access_token.secret(),
        "AT2"
    );
    assert_eq!(p.requests.len(), 2);
}

#[test]
fn a_store_conflict_adopts_the_other_replicas_fresh_token() {
    let mut p = FakePlatform::new();
    let mut oauth = OAuth::new();
    open(&mut p, &mut oauth, basic(), SessionGrant::ClientCredentials);
    p.push(json(200, &token_json_with_refresh("AT1", 600, "RT1")));
    oauth.access_token(&mut p, KEY).unwrap();
    p.advance(600);
    // Between our refresh and our write, another replica stores its own renewal.
    let mut theirs = SessionRecord::from_bytes(&p.store[KEY]).unwrap();
    theirs.revision += 10;
    let token = theirs.token.as_mut().unwrap();
    token.access_token = AccessToken::new("AT-THEIRS");
    token.issued_at = p.now();
    token.expires_at = Some(p.now() + 600);
    theirs.refresh_token = Some(RefreshToken::new("RT-THEIRS"));
    let bytes = theirs.to_bytes();
    p.before_cas = Some(Box::new(move |store| {
        store.insert(KEY.to_string(), bytes.clone());
    }));
    p.push(json(
        200,
        &token_json_with_refresh("AT-OURS", 600, "RT-OURS"),
    ));
    assert_eq!(
        oauth
            .access_token(&mut p, KEY)
            .unwrap()
            .access_token
            .secret(),
        "AT-THEIRS"
    );
    let stored = SessionRecord::from_bytes(&p.store[KEY]).unwrap();
    assert_eq!(stored.refresh_token.unwrap().secret(), "RT-THEIRS");
}

#[test]
fn a_refresh_token_another_replica_rotated_is_taken_up_before_refreshing() {
    let mut p = FakePlatform::new();
    let mut oauth = OAuth::new();
    open(&mut p, &mut oauth, basic(), SessionGrant::AuthorizationCode);
    // Hand the session a refresh token, as a completed authorization would.
    let auth = oauth.begin_authorization(&mut p, KEY).unwrap();
    p.push(json(200, &token_json_with_refresh("AT0", 60, "RT0")));
    oauth
        .complete_authorization(&mut p, KEY, &auth.state, AuthorizationCode::new("C"), None)
        .unwrap();
    p.advance(60);
    // Just before this instance takes the lease, another replica rotates RT0 into RT1
    // (and its token has expired too, so a renewal is still due).
    let mut theirs = SessionRecord::from_bytes(&p.store[KEY]).unwrap();
    theirs.revision += 5;
    theirs.refresh_token = Some(RefreshToken::new("RT1"));
    let bytes = theirs.to_bytes();
    p.before_cas = Some(Box::new(move |store| {
        store.insert(KEY.to_string(), bytes.clone());
    }));
    p.push(json(200, &token_json_with_refresh("AT2", 60, "RT2")));
    let token = oauth.access_token(&mut p, KEY).unwrap();
    assert_eq!(token.access_token.secret(), "AT2");
    assert_eq!(p.requests.len(), 2);
    assert_eq!(
        p.param(1, "refresh_token").as_deref(),
        Some("RT1"),
        "the spent RT0 is never sent"
    );
    let stored = SessionRecord::from_bytes(&p.store[KEY]).unwrap();
    assert_eq!(stored.refresh_token.unwrap().secret(), "RT2");
    assert_eq!(stored.lease, None, "the lease was given back");
}

#[test]
fn another_instances_live_lease_is_waited_for_without_a_request() {
    let mut p = FakePlatform::new();
    let mut oauth = OAuth::new();
    open(&mut p, &mut oauth, basic(), password_grant());
    p.push(json(200, &token_json_with_refresh("AT1", 120, "RT1")));
    oauth.access_token(&mut p, KEY).unwrap();
    p.advance(90);
    // Another instance is renewing: inside the skew, the live token is served.
    let mut theirs = SessionRecord::from_bytes(&p.store[KEY]).unwrap();
    theirs.lease = Some(super::session::Lease {
        holder: "other".into(),
        until_ms: p.now() * 1000 + 60_000,
    });
    p.store.insert(KEY.into(), theirs.to_bytes());
    assert_eq!(
        oauth
            .access_token(&mut p, KEY)
            .unwrap()
            .access_token
            .secret(),
        "AT1"
    );
    let status = oauth.session_status(&mut p, KEY).unwrap();
    assert_eq!(status.lease.unwrap().holder, "other");
    // Expired: its result is waited for. It arrives (the store changes) while this
    // instance sleeps.
    p.advance(31);
    let mut renewed = theirs.clone();
    renewed.revision += 1;
    renewed.lease = None;
    renewed.refresh_token = Some(RefreshToken::new("RT2"));
    let mut token = renewed.token.clone().unwrap();
    token.access_token = AccessToken::new("AT2");
    token.expires_at = Some(p.now() + 120);
    renewed.token = Some(token);
    p.on_sleep = Some(Box::new(move |store| {
        store.insert(KEY.to_string(), renewed.to_bytes());
    }));
    assert_eq!(
        oauth
            .access_token(&mut p, KEY)
            .unwrap()
            .access_token
            .secret(),
        "AT2"
    );
    assert_eq!(p.requests.len(), 1, "no request of its own");
}

#[test]
fn a_token_expiring_while_a_call_looks_at_it_is_waited_for_not_reported_unusable() {
    // The clock moves a millisecond at each reading; the call starts 1 to 40 ms before
    // the held token expires, while another instance holds the lease. Whichever
    // reading the expiry falls between, the call serves a live token: the held one, or
    // the other instance's once it is stored.
    for early_ms in 1..=40 {
        let mut p = FakePlatform::new();
        let mut oauth = OAuth::new();
        open(&mut p, &mut oauth, basic(), password_grant());
        p.push(json(200, &token_json_with_refresh("AT1", 120, "RT1")));
        oauth.access_token(&mut p, KEY).unwrap();
        let mut theirs = SessionRecord::from_bytes(&p.store[KEY]).unwrap();
        let expires_ms = theirs.token.as_ref().unwrap().expires_at.unwrap() * 1000;
        theirs.lease = Some(super::session::Lease {
            holder: "other".into(),
            until_ms: expires_ms + 60_000,
        });
        p.store.insert(KEY.into(), theirs.to_bytes());
        let mut renewed = theirs.clone();
        renewed.revision += 1;
        renewed.lease = None;
        let mut token = renewed.token.clone().unwrap();
        token.access_token = AccessToken::new("AT2");
        token.expires_at = Some(expires_ms / 1000 + 120);
        renewed.token = Some(token);
        p.on_sleep = Some(Box::new(move |store| {
            store.insert(KEY.to_string(), renewed.to_bytes());
        }));
        p.advance_ms(expires_ms - early_ms - START_MS);
        p.tick_ms = 1;
        let token = oauth
            .access_token(&mut p, KEY)
            .unwrap_or_else(|e| panic!("{early_ms} ms before expiry: {e}"));
        assert!(
            ["AT1", "AT2"].contains(&token.access_token.secret()),
            "{early_ms} ms before expiry"
        );
        assert_eq!(p.requests.len(), 1, "no request of its own");
    }
}

#[test]
fn a_lease_whose_holder_died_is_taken_over_when_it_lapses() {
    let mut p = FakePlatform::new();
    let mut oauth = OAuth::new();
    open(&mut p, &mut oauth, basic(), password_grant());
    p.push(json(200, &token_json_with_refresh("AT1", 60, "RT1")));
    oauth.access_token(&mut p, KEY).unwrap();
    p.advance(60);
    let mut theirs = SessionRecord::from_bytes(&p.store[KEY]).unwrap();
    theirs.lease = Some(super::session::Lease {
        holder: "dead".into(),
        until_ms: p.now() * 1000 + 5_000,
    });
    p.store.insert(KEY.into(), theirs.to_bytes());
    // Within the 10 s call deadline the lease lapses: this instance takes over.
    p.push(json(200, &token_json_with_refresh("AT2", 60, "RT2")));
    assert_eq!(
        oauth
            .access_token(&mut p, KEY)
            .unwrap()
            .access_token
            .secret(),
        "AT2"
    );
    assert_eq!(p.param(1, "refresh_token").as_deref(), Some("RT1"));
    assert!(p.sleeps.iter().sum::<u64>() >= 5_000);
    // A lease that outlives the call deadline ends the call with a store error.
    p.advance(60);
    let mut theirs = SessionRecord::from_bytes(&p.store[KEY]).unwrap();
    theirs.lease = Some(super::session::Lease {
        holder: "slow".into(),
        until_ms: p.now() * 1000 + 60_000,
    });
    p.store.insert(KEY.into(), theirs.to_bytes());
    let err = oauth.access_token(&mut p, KEY).unwrap_err();
    assert!(
        matches!(&err, OAuthError::Store(m) if m.contains("slow")),
        "{err}"
    );
    assert_eq!(p.requests.len(), 2);
}

#[test]
fn without_the_store_live_tokens_are_served_and_no_refresh_is_sent() {
    let mut p = FakePlatform::new();
    let mut oauth = OAuth::new();
    open(&mut p, &mut oauth, basic(), password_grant());
    p.push(json(200, &token_json_with_refresh("AT1", 120, "RT1")));
    oauth.access_token(&mut p, KEY).unwrap();
    p.store_down = true;
    p.advance(90);
    assert_eq!(
        oauth
            .access_token(&mut p, KEY)
            .unwrap()
            .access_token
            .secret(),
        "AT1"
    );
    p.advance(30);
    let err = oauth.access_token(&mut p, KEY).unwrap_err();
    assert!(
        matches!(&err, OAuthError::Store(m) if m.contains("no request")),
        "{err}"
    );
    assert_eq!(p.requests.len(), 1, "no refresh without the lease");
    p.store_down = false;
    p.push(json(200, &token_json_with_refresh("AT2", 120, "RT2")));
    assert_eq!(
        oauth
            .access_token(&mut p, KEY)
            .unwrap()
            .access_token
            .secret(),
        "AT2"
    );
    assert_eq!(p.param(1, "refresh_token").as_deref(), Some("RT1"));

    // A grant that spends nothing single-use goes ahead without the store.
    p.store_down = true;
    oauth
        .open_session(&mut p, "cc", basic(), SessionGrant::ClientCredentials)
        .unwrap();
    p.push(json(200, &token_json("AT-CC", 600)));
    assert_eq!(
        oauth
            .access_token(&mut p, "cc")
            .unwrap()
            .access_token
            .secret(),
        "AT-CC"
    );
}

#[test]
fn a_rotated_refresh_token_the_store_did_not_take_is_not_replaced_by_the_spent_one() {
    let mut p = FakePlatform::new();
    let mut oauth = OAuth::new();
    open(&mut p, &mut oauth, basic(), password_grant());
    p.push(json(200, &token_json_with_refresh("AT1", 60, "RT1")));
    oauth.access_token(&mut p, KEY).unwrap();
    p.advance(60);
    // The store takes the lease, then fails before the rotated token is written.
    p.fail_store_after_cas = Some(1);
    p.push(json(200, &token_json_with_refresh("AT2", 60, "RT2")));
    oauth.access_token(&mut p, KEY).unwrap();
    p.store_down = false;
    p.fail_store_after_cas = None;
    // The store still holds RT1 (spent) and this instance's lease: the next renewal
    // sends RT2.
    p.advance(60);
    p.push(json(200, &token_json_with_refresh("AT3", 60, "RT3")));
    assert_eq!(
        oauth
            .access_token(&mut p, KEY)
            .unwrap()
            .access_token
            .secret(),
        "AT3"
    );
    assert_eq!(p.param(2, "refresh_token").as_deref(), Some("RT2"));
    let stored = SessionRecord::from_bytes(&p.store[KEY]).unwrap();
    assert_eq!(stored.refresh_token.unwrap().secret(), "RT3");
}

#[test]
fn tokens_without_expiry_are_renewed_after_the_default_lifetime() {
    let mut p = FakePlatform::new();
    let mut oauth = OAuth::new();
    let mut client = basic();
    client.refresh_jitter_seconds = Some(0);
    open(&mut p, &mut oauth, client, SessionGrant::ClientCredentials);
    p.push(json(200, r#"{"access_token":"AT1"}"#));
    let token = oauth.access_token(&mut p, KEY).unwrap();
    assert_eq!(
        (token.expires_at, token.token_type.as_str()),
        (None, "Bearer")
    );
    p.advance(DEFAULT_LIFETIME - 1);
    oauth.access_token(&mut p, KEY).unwrap();
    p.advance(1);
    p.push(json(200, r#"{"access_token":"AT2"}"#));
    assert_eq!(
        oauth
            .access_token(&mut p, KEY)
            .unwrap()
            .access_token
            .secret(),
        "AT2"
    );
}

// ---- authorization code with PKCE ----

fn auth_code_session(p: &mut FakePlatform, oauth: &mut OAuth) {
    open(p, oauth, basic(), SessionGrant::AuthorizationCode);
}

fn query(url: &str) -> Vec<(String, String)> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

fn query_param(url: &str, name: &str) -> Option<String> {
    query(url)
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v)
}

#[test]
fn the_authorization_url_carries_state_pkce_and_the_clients_request() {
    let mut p = FakePlatform::new();
    let mut oauth = OAuth::new();
    let client = {
        let mut client = basic();
        client.audience = Some("https://api.example".into());
        client.resources = vec!["https://r1.example".into(), "https://r2.example".into()];
        client
    };
    open(&mut p, &mut oauth, client, SessionGrant::AuthorizationCode);
    assert!(matches!(
        oauth.access_token(&mut p, KEY),
        Err(OAuthError::AuthorizationRequired(_))
    ));
    let auth = oauth.begin_authorization(&mut p, KEY).unwrap();
    assert!(
        auth.url
            .starts_with("https://as.example/authorize?tenant=t1&response_type=code&")
    );
    let q = query(&auth.url);
    let names: Vec<&str> = q.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "tenant",
            "response_type",
            "client_id",
            "redirect_uri",
            "scope",
            "state",
            "code_challenge",
            "code_challenge_method",
            "audience",
            "resource",
            "resource"
        ]
    );
    assert_eq!(
        query_param(&auth.url, "state").as_deref(),
        Some(auth.state.as_str())
    );
    assert_eq!(auth.state.len(), 43);
    assert_eq!(
        query_param(&auth.url, "code_challenge_method").as_deref(),
        Some("S256")
    );
    assert_eq!(
        query_param(&auth.url, "scope").as_deref(),
        Some("read write")
    );
    assert_eq!(auth.expires_at, p.now() + 300);
    assert_eq!(
        oauth.session_status(&mut p, KEY).unwrap().phase,
        SessionPhase::Authorizing
    );
    assert!(p.requests.is_empty());
}

#[test]
fn completing_redeems_the_code_with_the_verifier_of_the_challenge() {
    let mut p = FakePlatform::new();
    let mut oauth = OAuth::new();
    auth_code_session(&mut p, &mut oauth);
    let auth = oauth.begin_authorization(&mut p, KEY).unwrap();
    p.push(json(200, &token_json_with_refresh("AT", 3600, "RT")));
    let token = oauth
        .complete_authorization(
            &mut p,
            KEY,
            &auth.state,
            AuthorizationCode::new("CODE"),
            None,
        )
        .unwrap();
    assert_eq!(
        (token.access_token.secret(), token.refresh_token),
        ("AT", None)
    );
    let verifier = p.param(0, "code_verifier").unwrap();
    let challenge = pkce::challenge_s256(&PkceCodeVerifier::new(verifier.as_str()));
    assert_eq!(query_param(&auth.url, "code_challenge"), Some(challenge));
    assert_eq!(p.param(0, "code").as_deref(), Some("CODE"));
    assert_eq!(
        p.param(0, "redirect_uri").as_deref(),
        Some("https://gw.example/callback")
    );
    let status = oauth.session_status(&mut p, KEY).unwrap();
    assert_eq!(
        (status.phase, status.has_refresh_token),
        (SessionPhase::Valid, true)
    );
    assert_eq!(
        oauth
            .access_token(&mut p, KEY)
            .unwrap()
            .access_token
            .secret(),
        "AT"
    );
}

#[test]
fn extra_authorization_parameters_follow_the_plugins_own_and_cannot_override_them() {
    let mut p = FakePlatform::new();
    let mut oauth = OAuth::new();
    let mut client = basic();
    client.authorization_params = vec![
        ("prompt".into(), "consent".into()),
        ("access_type".into(), "offline".into()),
    ];
    open(
        &mut p,
        &mut oauth,
        client.clone(),
        SessionGrant::AuthorizationCode,
    );
    let auth = oauth.begin_authorization(&mut p, KEY).unwrap();
    let q = query(&auth.url);
    assert_eq!(
        q[q.len() - 2..],
        [
            ("prompt".to_string(), "consent".to_string()),
            ("access_type".to_string(), "offline".to_string())
        ]
    );
    for name in RESERVED_AUTHORIZATION_PARAMS.iter().chain(&[""]) {
        let mut bad = client.clone();
        bad.authorization_params = vec![(name.to_string(), "x".into())];
        let err = oauth
            .open_session(&mut p, "other", bad, SessionGrant::AuthorizationCode)
            .unwrap_err();
        assert!(
            matches!(&err, OAuthError::Config(m) if m.starts_with("authorization_params")),
            "{name}: {err}"
        );
    }
    assert!(p.requests.is_empty());
}

/// A session of a client that names its issuer, whose metadata says (or not) that its
/// redirects carry `iss`; the authorization has begun.
fn issuer_session(p: &mut FakePlatform, oauth: &mut OAuth, announced: bool) -> Authorization {
    let mut client = basic();
    client.issuer = Some("https://as.example".into());
    open(p, oauth, client, SessionGrant::AuthorizationCode);
    p.push(json(
        200,
        &format!(
            r#"{{"issuer":"https://as.example","authorization_response_iss_parameter_supported":{announced}}}"#
        ),
    ));
    let auth = oauth.begin_authorization(p, KEY).unwrap();
    assert_eq!(p.requests.len(), 1, "the metadata was read");
    auth
}

#[test]
fn a_redirect_from_another_issuer_is_refused_without_consuming_the_authorization() {
    let mut p = FakePlatform::new();
    let mut oauth = OAuth::new();
    let auth = issuer_session(&mut p, &mut oauth, false);
    let code = || AuthorizationCode::new("CODE");
    let err = oauth
        .complete_authorization(
            &mut p,
            KEY,
            &auth.state,
            code(),
            Some("https://evil.example"),
        )
        .unwrap_err();
    assert!(
        matches!(&err, OAuthError::Config(m) if m.contains("mix-up")),
        "{err}"
    );
    assert_eq!(p.requests.len(), 1, "no code was redeemed");
    // The server does not announce iss: a redirect without one is taken.
    p.push(json(200, &token_json("AT", 3600)));
    oauth
        .complete_authorization(&mut p, KEY, &auth.state, code(), None)
        .unwrap();
}

#[test]
fn a_redirect_without_the_iss_its_server_announces_is_refused() {
    let mut p = FakePlatform::new();
    let mut oauth = OAuth::new();
    let auth = issuer_session(&mut p, &mut oauth, true);
    let code = || AuthorizationCode::new("CODE");
    let err = oauth
        .complete_authorization(&mut p, KEY, &auth.state, code(), None)
        .unwrap_err();
    assert!(
        matches!(&err, OAuthError::Config(m) if m.contains("no iss")),
        "{err}"
    );
    assert_eq!(p.requests.len(), 1);
    p.push(json(200, &token_json("AT", 3600)));
    oauth
        .complete_authorization(&mut p, KEY, &auth.state, code(), Some("https://as.example"))
        .unwrap();
    assert_eq!(p.param(1, "code").as_deref(), Some("CODE"));
}

#[test]
fn a_code_another_instance_is_redeeming_is_not_redeemed_again() {
    let mut p = FakePlatform::new();
    let mut oauth = OAuth::new();
    auth_code_session(&mut p, &mut oauth);
    let auth = oauth.begin_authorization(&mut p, KEY).unwrap();
    // The same redirect reached another instance first: it holds the lease and is
    // redeeming the code; it finishes while this one waits.
    let mut theirs = SessionRecord::from_bytes(&p.store[KEY]).unwrap();
    theirs.lease = Some(super::session::Lease {
        holder: "other".into(),
        until_ms: p.now() * 1000 + 60_000,
    });
    p.store.insert(KEY.into(), theirs.to_bytes());
    let mut done = theirs.clone();
    done.lease = None;
    done.pending = None;
    p.on_sleep = Some(Box::new(move |store| {
        store.insert(KEY.to_string(), done.to_bytes());
    }));
    let err = oauth
        .complete_authorization(
            &mut p,
            KEY,
            &auth.state,
            AuthorizationCode::new("CODE"),
            None,
        )
        .unwrap_err();
    assert!(
        matches!(&err, OAuthError::Config(m) if m.contains("completed already")),
        "{err}"
    );
    assert!(
        p.requests.is_empty(),
        "the code was not redeemed a second time"
    );
    assert!(!p.sleeps.is_empty(), "it waited for the holder");
}

#[test]
fn a_wrong_state_does_not_consume_the_pending_authorization() {
    let mut p = FakePlatform::new();
    let mut oauth = OAuth::new();
    auth_code_session(&mut p, &mut oauth);
    let auth = oauth.begin_authorization(&mut p, KEY).unwrap();
    let err = oauth
        .complete_authorization(&mut p, KEY, "forged", AuthorizationCode::new("EVIL"), None)
        .unwrap_err();
    assert!(matches!(err, OAuthError::Config(m) if m.contains("state")));
    assert!(p.requests.is_empty());
    p.push(json(200, &token_json("AT", 3600)));
    oauth
        .complete_authorization(
            &mut p,
            KEY,
            &auth.state,
            AuthorizationCode::new("CODE"),
            None,
        )
        .unwrap();
}

#[test]
fn the_state_is_single_use_even_when_the_exchange_fails() {
    let mut p = FakePlatform::new();
    let mut oauth = OAuth::new();
    auth_code_session(&mut p, &mut oauth);
    let auth = oauth.begin_authorization(&mut p, KEY).unwrap();
    p.push(json(400, &error_json("invalid_grant")));
    let err = oauth
        .complete_authorization(
            &mut p,
            KEY,
            &auth.state,
            AuthorizationCode::new("CODE"),
            None,
        )
        .unwrap_err();
    assert!(matches!(err, OAuthError::Protocol(e) if e.error == "invalid_grant"));
    let err = oauth
        .complete_authorization(
            &mut p,
            KEY,
            &auth.state,
            AuthorizationCode::new("CODE"),
            None,
        )
        .unwrap_err();
    assert!(matches!(err, OAuthError::Config(m) if m.contains("begin_authorization")));
    assert_eq!(p.requests.len(), 1);
}

#[test]
fn a_pending_authorization_expires_after_five_minutes() {
    let mut p = FakePlatform::new();
    let mut oauth = OAuth::new();
    auth_code_session(&mut p, &mut oauth);
    let auth = oauth.begin_authorization(&mut p, KEY).unwrap();
    p.advance(300);
    let err = oauth
        .complete_authorization(
            &mut p,
            KEY,
            &auth.state,
            AuthorizationCode::new("CODE"),
            None,
        )
        .unwrap_err();
    assert!(matches!(err, OAuthError::AuthorizationRequired(m) if m.contains("expired")));
    assert!(p.requests.is_empty());
}

#[test]
fn the_redirect_may_complete_on_another_replica() {
    let mut p = FakePlatform::new();
    let (mut a, mut b) = (OAuth::new(), OAuth::new());
    auth_code_session(&mut p, &mut a);
    auth_code_session(&mut p, &mut b);
    let auth = a.begin_authorization(&mut p, KEY).unwrap();
    p.push(json(200, &token_json_with_refresh("AT", 3600, "RT")));
    b.complete_authorization(
        &mut p,
        KEY,
        &auth.state,
        AuthorizationCode::new("CODE"),
        None,
    )
    .unwrap();
    assert_eq!(
        a.access_token(&mut p, KEY).unwrap().access_token.secret(),
        "AT"
    );
    assert_eq!(p.requests.len(), 1);
}

#[test]
fn flows_refuse_sessions_of_another_grant() {
    let mut p = FakePlatform::new();
    let mut oauth = OAuth::new();
    open(&mut p, &mut oauth, basic(), SessionGrant::ClientCredentials);
    assert!(matches!(
        oauth.begin_authorization(&mut p, KEY),
        Err(OAuthError::Config(_))
    ));
    assert!(matches!(
        oauth.begin_device_authorization(&mut p, KEY),
        Err(OAuthError::Config(_))
    ));
    assert!(matches!(
        oauth.poll_device_authorization(&mut p, KEY),
        Err(OAuthError::Config(_))
    ));
    assert!(p.requests.is_empty());
}

// ---- device authorization ----

fn device_session(p: &mut FakePlatform, oauth: &mut OAuth) -> DeviceAuthorization {
    open(p, oauth, basic(), SessionGrant::DeviceCode);
    p.push(json(
        200,
        r#"{"device_code":"DEVICE-CODE","user_code":"WDJB-MJHT","verification_uri":"https://as.example/device","verification_uri_complete":"https://as.example/device?user_code=WDJB-MJHT","expires_in":600,"interval":5}"#,
    ));
    oauth.begin_device_authorization(p, KEY).unwrap()
}

#[test]
fn device_polling_waits_slows_down_and_completes() {
    let mut p = FakePlatform::new();
    let mut oauth = OAuth::new();
    let device = device_session(&mut p, &mut oauth);
    assert_eq!(
        (device.user_code.as_str(), device.interval_seconds),
        ("WDJB-MJHT", 5)
    );
    assert_eq!(device.expires_at, p.now() + 600);
    assert_eq!(p.param(0, "scope").as_deref(), Some("read write"));
    assert_eq!(
        oauth.session_status(&mut p, KEY).unwrap().phase,
        SessionPhase::Authorizing
    );

    // Too soon: nothing is sent.
    assert_eq!(oauth.poll_device_authorization(&mut p, KEY).unwrap(), None);
    assert_eq!(p.requests.len(), 1);

    p.advance(5);
    p.push(json(400, &error_json("authorization_pending")));
    assert_eq!(oauth.poll_device_authorization(&mut p, KEY).unwrap(), None);
    assert_eq!(
        p.param(1, "grant_type").as_deref(),
        Some(request::DEVICE_CODE)
    );
    assert_eq!(p.param(1, "device_code").as_deref(), Some("DEVICE-CODE"));

    p.advance(5);
    p.push(json(400, &error_json("slow_down")));
    assert_eq!(oauth.poll_device_authorization(&mut p, KEY).unwrap(), None);
    // The interval is now 10 s.
    p.advance(5);
    assert_eq!(oauth.poll_device_authorization(&mut p, KEY).unwrap(), None);
    assert_eq!(p.requests.len(), 3);
    p.advance(5);
    p.push(json(200, &token_json_with_refresh("AT", 3600, "RT")));
    let token = oauth
        .poll_device_authorization(&mut p, KEY)
        .unwrap()
        .unwrap();
    assert_eq!(token.access_token.secret(), "AT");
    let status = oauth.session_status(&mut p, KEY).unwrap();
    assert_eq!(
        (status.phase, status.has_refresh_token),
        (SessionPhase::Valid, true)
    );
    assert!(matches!(
        oauth.poll_device_authorization(&mut p, KEY),
        Err(OAuthError::Config(_))
    ));
}

#[test]
fn an_expired_device_code_requires_a_person_and_a_denial_is_the_servers_error() {
    let mut p = FakePlatform::new();
    let mut oauth = OAuth::new();
    device_session(&mut p, &mut oauth);
    p.advance(600);
    let err = oauth.poll_device_authorization(&mut p, KEY).unwrap_err();
    assert!(matches!(err, OAuthError::AuthorizationRequired(m) if m.contains("expired")));
    assert_eq!(p.requests.len(), 1, "an expired code is not polled");

    device_session(&mut p, &mut oauth);
    p.advance(5);
    p.push(json(400, &error_json("expired_token")));
    assert!(matches!(
        oauth.poll_device_authorization(&mut p, KEY),
        Err(OAuthError::AuthorizationRequired(_))
    ));

    device_session(&mut p, &mut oauth);
    p.advance(5);
    p.push(json(400, &error_json("access_denied")));
    let err = oauth.poll_device_authorization(&mut p, KEY).unwrap_err();
    assert!(matches!(err, OAuthError::Protocol(e) if e.error == "access_denied"));
    assert_eq!(
        oauth.session_status(&mut p, KEY).unwrap().phase,
        SessionPhase::AuthorizationRequired
    );
}

// ---- revocation and closing ----

#[test]
fn revoke_revokes_refresh_then_access_token_and_forgets_them() {
    let mut p = FakePlatform::new();
    let mut oauth = OAuth::new();
    open(&mut p, &mut oauth, basic(), SessionGrant::ClientCredentials);
    p.push(json(200, &token_json_with_refresh("AT", 3600, "RT")));
    oauth.access_token(&mut p, KEY).unwrap();
    p.push(json(200, ""));
    p.push(json(400, &error_json("unsupported_token_type")));
    oauth.revoke(&mut p, KEY).unwrap();
    assert_eq!(p.requests[1].url, "https://as.example/revoke");
    assert!(header(&p.requests[1], "authorization").is_some());
    assert_eq!(
        (
            p.param(1, "token").as_deref(),
            p.param(1, "token_type_hint").as_deref()
        ),
        (Some("RT"), Some("refresh_token"))
    );
    assert_eq!(
        (
            p.param(2, "token").as_deref(),
            p.param(2, "token_type_hint").as_deref()
        ),
        (Some("AT"), Some("access_token"))
    );
    assert!(!p.store.contains_key(KEY));
    let status = oauth.session_status(&mut p, KEY).unwrap();
    assert_eq!(
        (status.phase, status.has_refresh_token, status.expires_at),
        (SessionPhase::Empty, false, None)
    );
}

#[test]
fn a_failed_revocation_keeps_the_session() {
    let mut p = FakePlatform::new();
    let mut oauth = OAuth::new();
    open(&mut p, &mut oauth, basic(), SessionGrant::ClientCredentials);
    p.push(json(200, &token_json_with_refresh("AT", 3600, "RT")));
    oauth.access_token(&mut p, KEY).unwrap();
    p.push(json(401, &error_json("invalid_client")));
    assert!(matches!(
        oauth.revoke(&mut p, KEY),
        Err(OAuthError::Protocol(_))
    ));
    assert!(oauth.session_status(&mut p, KEY).unwrap().has_refresh_token);
    assert!(p.store.contains_key(KEY));

    let no_endpoint = {
        let mut client = basic();
        client.revocation_endpoint = None;
        client
    };
    open(
        &mut p,
        &mut oauth,
        no_endpoint,
        SessionGrant::ClientCredentials,
    );
    assert!(
        matches!(oauth.revoke(&mut p, KEY), Err(OAuthError::Config(m)) if m.contains("revocation_endpoint"))
    );
}

#[test]
fn close_session_forgets_here_and_in_the_store() {
    let mut p = FakePlatform::new();
    let mut oauth = OAuth::new();
    open(&mut p, &mut oauth, basic(), SessionGrant::ClientCredentials);
    p.push(json(200, &token_json("AT", 3600)));
    oauth.access_token(&mut p, KEY).unwrap();
    assert!(p.store.contains_key(KEY));
    oauth.close_session(&mut p, KEY);
    assert!(!p.store.contains_key(KEY));
    assert_eq!(oauth.session_status(&mut p, KEY), None);
    assert!(matches!(
        oauth.access_token(&mut p, KEY),
        Err(OAuthError::Config(_))
    ));
}

#[test]
fn a_forgotten_session_keeps_its_stored_token_for_a_later_open() {
    let mut p = FakePlatform::new();
    let mut oauth = OAuth::new();
    open(&mut p, &mut oauth, basic(), SessionGrant::ClientCredentials);
    p.push(json(200, &token_json("AT", 3600)));
    oauth.access_token(&mut p, KEY).unwrap();
    let stored = p.store.get(KEY).cloned();

    oauth.forget_session(KEY);
    assert!(
        matches!(oauth.access_token(&mut p, KEY), Err(OAuthError::Config(_))),
        "forgotten here"
    );
    assert_eq!(
        p.store.get(KEY).cloned(),
        stored,
        "the record is left alone"
    );
    open(&mut p, &mut oauth, basic(), SessionGrant::ClientCredentials);
    assert_eq!(
        oauth
            .access_token(&mut p, KEY)
            .unwrap()
            .access_token
            .secret(),
        "AT"
    );
    assert_eq!(p.requests.len(), 1, "the reopened session sent no request");
}

// ---- secrets ----

const SECRETS: &[&str] = &[
    "CLIENT-SECRET",
    "USER-PASSWORD",
    "ACCESS-TOKEN-1",
    "REFRESH-TOKEN-1",
    "AUTH-CODE",
    "SUBJECT-TOKEN",
    "DEVICE-CODE",
    "BEGIN PRIVATE KEY",
];

fn assert_no_secret(what: &str, text: &str) {
    for secret in SECRETS {
        assert!(!text.contains(secret), "{what} shows {secret}: {text}");
    }
    // Nor the base64 of the Basic credentials.
    assert!(!text.contains("Z3c6Q0xJRU5ULVNFQ1JFVA"), "{what}: {text}");
}

#[test]
fn no_secret_appears_in_any_error_or_debug_output() {
    let mut errors: Vec<OAuthError> = Vec::new();
    let mut p = FakePlatform::new();
    let mut oauth = OAuth::new();
    let password = SessionGrant::Password(PasswordCredentials {
        username: "ann".into(),
        password: Password::new("USER-PASSWORD"),
    });
    // Servers that echo what they were sent, in every shape.
    let echoes = [
        json(
            500,
            r#"{"client_secret":"CLIENT-SECRET","password":"USER-PASSWORD","refresh_token":"REFRESH-TOKEN-1"}"#,
        ),
        json(
            502,
            "grant_type=password&password=USER-PASSWORD&client_secret=CLIENT-SECRET&code=AUTH-CODE",
        ),
        json(
            400,
            r#"{"error":"invalid_request","error_description":"bad password=USER-PASSWORD"}"#,
        ),
        json(
            403,
            "Authorization: Basic Z3c6Q0xJRU5ULVNFQ1JFVA== rejected; access_token=ACCESS-TOKEN-1",
        ),
        json(302, "").with_header(
            "location",
            "https://evil.example/x?client_secret=CLIENT-SECRET",
        ),
        json(200, r#"{"refresh_token":"REFRESH-TOKEN-1"}"#),
    ];
    let client = {
        let mut client = basic();
        client.timeout_ms = Some(50);
        client
    };
    for echo in echoes {
        open(&mut p, &mut oauth, client.clone(), password.clone());
        // A Retry-After past the deadline: one request per call.
        p.push(echo.with_header("retry-after", "60"));
        let err = oauth.access_token(&mut p, KEY).unwrap_err();
        // And the backoff that follows a transient failure.
        if retry::is_transient(&err) {
            let backoff = oauth.access_token(&mut p, KEY).unwrap_err();
            assert!(matches!(backoff, OAuthError::Backoff(_)));
            errors.push(backoff);
        }
        errors.push(err);
        p.advance(600);
        oauth.close_session(&mut p, KEY);
    }
    // A refused refresh token, a refused code, a token exchange, a device code.
    open(
        &mut p,
        &mut oauth,
        basic(),
        SessionGrant::RefreshToken(RefreshToken::new("REFRESH-TOKEN-1")),
    );
    p.push(json(
        400,
        r#"{"error":"invalid_grant","error_description":"refresh_token=REFRESH-TOKEN-1 revoked"}"#,
    ));
    errors.push(oauth.access_token(&mut p, KEY).unwrap_err());
    let exchange = Grant::TokenExchange(TokenExchange {
        subject_token: SubjectToken::new("SUBJECT-TOKEN"),
        subject_token_type: "urn:ietf:params:oauth:token-type:access_token".into(),
        actor_token: Some(ActorToken::new("SUBJECT-TOKEN")),
        actor_token_type: None,
        requested_token_type: None,
    });
    errors.push(oauth.request_token(&mut p, &basic(), exchange).unwrap_err());
    p.push(json(
        400,
        r#"{"error":"invalid_grant","error_description":"code AUTH-CODE used"}"#,
    ));
    let code = Grant::AuthorizationCode(CodeExchange {
        code: AuthorizationCode::new("AUTH-CODE"),
        code_verifier: None,
    });
    errors.push(oauth.request_token(&mut p, &basic(), code).unwrap_err());
    p.push_err(HttpError::Transport(NetError::Reset("reset".into())));
    errors.push(
        oauth
            .request_token(
                &mut p,
                &basic(),
                Grant::DeviceCode(DeviceCode::new("DEVICE-CODE")),
            )
            .unwrap_err(),
    );
    let bad_key = SigningKey {
        algorithm: JwtAlgorithm::Es256,
        private_key_pem: PrivateKeyPem::new(
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----",
        ),
        key_id: None,
    };
    errors.push(
        oauth
            .request_token(
                &mut p,
                &client_with(ClientAuth::PrivateKeyJwt(bad_key.clone())),
                Grant::ClientCredentials,
            )
            .unwrap_err(),
    );

    assert!(errors.len() >= 12, "{}", errors.len());
    for err in &errors {
        assert_no_secret("Display", &err.to_string());
        assert_no_secret("Debug", &format!("{err:?}"));
    }
    // Debug of everything that holds secrets.
    let token = Token {
        access_token: AccessToken::new("ACCESS-TOKEN-1"),
        token_type: "Bearer".into(),
        expires_at: None,
        scopes: vec![],
        refresh_token: Some(RefreshToken::new("REFRESH-TOKEN-1")),
        id_token: None,
        issued_token_type: None,
    };
    assert_no_secret("token", &format!("{token:?}"));
    assert_no_secret("client", &format!("{:?}", basic()));
    assert_no_secret("grant", &format!("{password:?}"));
    assert_no_secret("key", &format!("{bad_key:?}"));
    let code = CodeExchange {
        code: AuthorizationCode::new("AUTH-CODE"),
        code_verifier: None,
    };
    assert_no_secret("code", &format!("{code:?}"));
    assert_no_secret("oauth", &format!("{oauth:?}"));
    for request in &p.requests {
        assert_no_secret("request", &format!("{request:?}"));
    }
}

fn client_with(auth: ClientAuth) -> Client {
    client(auth)
}

// ---- renewals that fail half-way ----

/// How many requests carried `refresh` as their refresh token.
fn sent_refresh(p: &FakePlatform, refresh: &str) -> usize {
    (0..p.requests.len())
        .filter(|i| p.param(*i, "refresh_token").as_deref() == Some(refresh))
        .count()
}

#[test]
fn a_lease_outlasts_the_longest_call_by_construction() {
    for timeout_ms in [1, 5_000, 30_000, u32::MAX] {
        let start = START_MS;
        let deadline = Deadline::start(start, timeout_ms);
        let lease = lease_until(deadline);
        // A call ends by its deadline plus CALL_OVERRUN_MS; the lease lasts longer.
        assert!(lease > start + u64::from(timeout_ms) + CALL_OVERRUN_MS);
        assert!(lease - (start + u64::from(timeout_ms)) >= LEASE_MARGIN_MS);
    }
}

#[test]
fn a_refresh_whose_answer_was_lost_never_sends_its_refresh_token_again() {
    let mut p = FakePlatform::new();
    let mut first = OAuth::new();
    open(&mut p, &mut first, basic(), password_grant());
    p.push(json(200, &token_json_with_refresh("AT1", 60, "RT1")));
    first.access_token(&mut p, KEY).unwrap();
    p.advance(60);
    // The server took the refresh (and rotated RT1) but its answer never arrived.
    p.push_err(HttpError::Transport(NetError::Timeout));
    let err = first.access_token(&mut p, KEY).unwrap_err();
    assert_eq!(err, OAuthError::Transport(NetError::Timeout));
    assert_eq!(sent_refresh(&p, "RT1"), 1);

    // Neither this instance nor another one sends RT1 again: the password grant
    // obtains a new token once the backoff has passed.
    let mut second = OAuth::new();
    open(&mut p, &mut second, basic(), password_grant());
    p.advance(600);
    p.push(json(200, &token_json_with_refresh("AT2", 60, "RT2")));
    let token = second.access_token(&mut p, KEY).unwrap();
    assert_eq!(token.access_token.secret(), "AT2");
    assert_eq!(p.param(2, "grant_type").as_deref(), Some("password"));
    assert_eq!(
        first
            .access_token(&mut p, KEY)
            .unwrap()
            .access_token
            .secret(),
        "AT2"
    );
    assert_eq!(sent_refresh(&p, "RT1"), 1, "RT1 reached the server once");
}

#[test]
fn a_session_needing_a_person_whose_refresh_answer_was_lost_asks_for_one() {
    let mut p = FakePlatform::new();
    let mut oauth = OAuth::new();
    let grant = SessionGrant::RefreshToken(RefreshToken::new("RT0"));
    open(&mut p, &mut oauth, basic(), grant);
    p.push_err(HttpError::Transport(NetError::Reset("cut".into())));
    assert!(oauth.access_token(&mut p, KEY).is_err());
    p.advance(600);
    let err = oauth.access_token(&mut p, KEY).unwrap_err();
    assert!(
        matches!(&err, OAuthError::AuthorizationRequired(m) if m.contains("not sent again")),
        "{err}"
    );
    assert_eq!(sent_refresh(&p, "RT0"), 1);
    let status = oauth.session_status(&mut p, KEY).unwrap();
    assert_eq!(status.phase, SessionPhase::AuthorizationRequired);
}

#[test]
fn a_refresh_refused_before_it_was_sent_keeps_its_refresh_token() {
    let mut p = FakePlatform::new();
    let mut oauth = OAuth::new();
    open(&mut p, &mut oauth, basic(), password_grant());
    p.push(json(200, &token_json_with_refresh("AT1", 60, "RT1")));
    oauth.access_token(&mut p, KEY).unwrap();
    p.advance(60);
    // Connection refused: the server never saw it, so RT1 is still good.
    for _ in 0..retry::MAX_ATTEMPTS {
        p.push_err(HttpError::Transport(NetError::Connect("refused".into())));
    }
    assert!(oauth.access_token(&mut p, KEY).is_err());
    p.advance(600);
    p.push(json(200, &token_json_with_refresh("AT2", 60, "RT2")));
    oauth.access_token(&mut p, KEY).unwrap();
    assert_eq!(
        p.param(p.requests.len() - 1, "refresh_token").as_deref(),
        Some("RT1")
    );
}

/// A password session on instance `first` holding AT1/RT1, due for renewal.
fn due_session(p: &mut FakePlatform) -> OAuth {
    let mut first = OAuth::new();
    open(p, &mut first, basic(), password_grant());
    p.push(json(200, &token_json_with_refresh("AT1", 60, "RT1")));
    first.access_token(p, KEY).unwrap();
    p.advance(60);
    first
}

#[test]
fn a_rotation_the_store_refused_once_is_stored_within_the_lease() {
    let mut p = FakePlatform::new();
    let mut first = due_session(&mut p);
    // The lease is taken; then the store fails the write of the rotated token, briefly.
    p.fail_store_after_cas = Some(1);
    p.store_recovers_at_sleep = true;
    p.push(json(200, &token_json_with_refresh("AT2", 60, "RT2")));
    assert_eq!(
        first
            .access_token(&mut p, KEY)
            .unwrap()
            .access_token
            .secret(),
        "AT2"
    );
    let stored = SessionRecord::from_bytes(&p.store[KEY]).unwrap();
    assert_eq!(stored.refresh_token.as_ref().unwrap().secret(), "RT2");
    assert_eq!(stored.lease, None, "given back with the result");

    // Another instance, once the token is due, refreshes with RT2, never RT1 again.
    p.store_recovers_at_sleep = false;
    p.advance(60);
    let mut second = OAuth::new();
    open(&mut p, &mut second, basic(), password_grant());
    p.push(json(200, &token_json_with_refresh("AT3", 60, "RT3")));
    second.access_token(&mut p, KEY).unwrap();
    assert_eq!(sent_refresh(&p, "RT1"), 1);
    assert_eq!(sent_refresh(&p, "RT2"), 1);
}

#[test]
fn a_rotation_unsaved_when_its_call_ended_is_stored_first_at_the_next_call() {
    let mut p = FakePlatform::new();
    let mut first = due_session(&mut p);
    // The store takes the lease, then stays down for the rest of the call.
    p.fail_store_after_cas = Some(1);
    p.push(json(200, &token_json_with_refresh("AT2", 60, "RT2")));
    assert_eq!(
        first
            .access_token(&mut p, KEY)
            .unwrap()
            .access_token
            .secret(),
        "AT2"
    );
    let stored = SessionRecord::from_bytes(&p.store[KEY]).unwrap();
    assert_eq!(stored.refresh_token.as_ref().unwrap().secret(), "RT1");
    assert!(
        stored.lease.is_some(),
        "the lease is not given up while unsaved"
    );

    // The store is back: the next call, though its token is fresh, stores RT2 first.
    p.store_down = false;
    p.fail_store_after_cas = None;
    p.advance(1);
    assert_eq!(
        first
            .access_token(&mut p, KEY)
            .unwrap()
            .access_token
            .secret(),
        "AT2"
    );
    let stored = SessionRecord::from_bytes(&p.store[KEY]).unwrap();
    assert_eq!(stored.refresh_token.as_ref().unwrap().secret(), "RT2");
    assert_eq!(stored.lease, None);

    p.advance(60);
    let mut second = OAuth::new();
    open(&mut p, &mut second, basic(), password_grant());
    p.push(json(200, &token_json_with_refresh("AT3", 60, "RT3")));
    second.access_token(&mut p, KEY).unwrap();
    assert_eq!((sent_refresh(&p, "RT1"), sent_refresh(&p, "RT2")), (1, 1));
}

#[test]
fn an_expired_token_the_server_echoes_in_its_refusal_is_not_in_the_error() {
    let mut p = FakePlatform::new();
    let mut oauth = OAuth::new();
    open(&mut p, &mut oauth, basic(), password_grant());
    p.push(json(
        200,
        &token_json_with_refresh("EXPIRED-ACCESS-TOKEN-1", 60, "RT1"),
    ));
    oauth.access_token(&mut p, KEY).unwrap();
    p.advance(60);
    p.push(json(
        400,
        r#"{"error":"invalid_request","error_description":"bad EXPIRED-ACCESS-TOKEN-1"}"#,
    ));
    let err = oauth.access_token(&mut p, KEY).unwrap_err();
    assert!(
        !format!("{err} {err:?}").contains("EXPIRED-ACCESS"),
        "{err}"
    );
}

// ---- renewals spread in time ----

/// Issues `n` client-credentials sessions of one-hour tokens in the same second, then
/// calls every session once a second through the renewal window: the renewals in each
/// second, and how many times each session renewed.
fn herd(n: usize, jitter: Option<u32>) -> (BTreeMap<u64, usize>, Vec<usize>) {
    let mut p = FakePlatform::new();
    let mut oauth = OAuth::new();
    let mut client = basic();
    client.refresh_jitter_seconds = jitter;
    let keys: Vec<String> = (0..n).map(|i| format!("gw-{i}")).collect();
    for key in &keys {
        oauth
            .open_session(&mut p, key, client.clone(), SessionGrant::ClientCredentials)
            .unwrap();
        p.push(json(200, &token_json("AT", 3600)));
        oauth.access_token(&mut p, key).unwrap();
    }
    let issued = p.now();
    for _ in 0..n {
        p.push(json(200, &token_json("AT2", 3600)));
    }
    let mut per_second = BTreeMap::new();
    let mut renewals = vec![0; n];
    p.advance(3600 - 60 - 45);
    for _ in 0..50 {
        for (i, key) in keys.iter().enumerate() {
            let before = p.requests.len();
            oauth.access_token(&mut p, key).unwrap();
            let sent = p.requests.len() - before;
            renewals[i] += sent;
            *per_second.entry(p.now() - issued).or_insert(0) += sent;
        }
        p.advance(1);
    }
    per_second.retain(|_, count| *count > 0);
    (per_second, renewals)
}

#[test]
fn sessions_issued_together_renew_spread_over_the_jitter_once_each() {
    let n = 10_000;
    let (spread, renewals) = herd(n, None);
    let (herded, _) = herd(n, Some(0));
    let peak = |m: &BTreeMap<u64, usize>| m.values().copied().max().unwrap_or(0);
    println!(
        "{n} sessions issued in one second: peak {} renewals/s over {} seconds with the default jitter (30 s), {} renewals/s over {} second(s) without",
        peak(&spread),
        spread.len(),
        peak(&herded),
        herded.len()
    );
    assert!(
        renewals.iter().all(|r| *r == 1),
        "every session renews once"
    );
    assert_eq!(herded.values().sum::<usize>(), n);
    assert_eq!((peak(&herded), herded.len()), (n, 1));
    // 30 s of jitter: 31 distinct seconds, none with more than twice the mean.
    assert!(spread.len() >= 30, "{spread:?}");
    assert!(peak(&spread) <= 2 * n / 31, "{spread:?}");
    // Within [expiry - skew - jitter, expiry - skew].
    let (first, last) = (spread.keys().next().unwrap(), spread.keys().last().unwrap());
    assert!(
        *first >= 3600 - 60 - 30 && *last <= 3600 - 60,
        "{first}..{last}"
    );
}

#[test]
fn a_short_lived_token_is_never_due_in_the_first_half_of_its_life() {
    let mut p = FakePlatform::new();
    let mut oauth = OAuth::new();
    let mut client = basic();
    client.refresh_jitter_seconds = Some(600);
    open(&mut p, &mut oauth, client, SessionGrant::ClientCredentials);
    p.push(json(200, &token_json("AT1", 60)));
    oauth.access_token(&mut p, KEY).unwrap();
    // Usual point: half its life (30 s); jitter at most half of that again.
    p.advance(14);
    oauth.access_token(&mut p, KEY).unwrap();
    assert_eq!(p.requests.len(), 1);
}

#[test]
fn a_refresh_that_timed_out_before_its_request_left_keeps_its_refresh_token() {
    let mut p = FakePlatform::new();
    let mut oauth = OAuth::new();
    let grant = SessionGrant::RefreshToken(RefreshToken::new("RT0"));
    open(&mut p, &mut oauth, basic(), grant);
    // A handshake that never finished: the server cannot have seen RT0.
    let unsent = HttpError::NotSent(Box::new(HttpError::Transport(NetError::Timeout)));
    p.push_err(unsent);
    assert!(oauth.access_token(&mut p, KEY).is_err());
    p.advance(600);
    p.push(json(200, &token_json_with_refresh("AT1", 60, "RT1")));
    oauth.access_token(&mut p, KEY).unwrap();
    assert_eq!(
        sent_refresh(&p, "RT0"),
        2,
        "sent again: it was never delivered"
    );
}

#[test]
fn an_unusable_answer_to_a_refresh_retires_its_refresh_token() {
    let mut p = FakePlatform::new();
    let mut first = due_session(&mut p);
    // The server took the refresh (and may have rotated RT1) but its answer is no token.
    p.push(json(200, r#"{"unexpected":true}"#));
    assert!(matches!(
        first.access_token(&mut p, KEY),
        Err(OAuthError::InvalidResponse(_))
    ));
    p.advance(7_200);
    p.push(json(200, &token_json_with_refresh("AT2", 60, "RT2")));
    first.access_token(&mut p, KEY).unwrap();
    assert_eq!(
        p.param(p.requests.len() - 1, "grant_type").as_deref(),
        Some("password")
    );
    assert_eq!(sent_refresh(&p, "RT1"), 1);
}

#[test]
fn a_refused_refresh_does_not_echo_held_tokens_in_its_reason() {
    let mut p = FakePlatform::new();
    let mut oauth = OAuth::new();
    let grant = SessionGrant::RefreshToken(RefreshToken::new("RT0"));
    open(&mut p, &mut oauth, basic(), grant);
    p.push(json(
        200,
        &token_json_with_refresh("HELD-ACCESS-TOKEN-9", 60, "RT1"),
    ));
    oauth.access_token(&mut p, KEY).unwrap();
    p.advance(60);
    p.push(json(
        400,
        r#"{"error":"invalid_grant","error_description":"HELD-ACCESS-TOKEN-9 is revoked"}"#,
    ));
    let err = oauth.access_token(&mut p, KEY).unwrap_err();
    assert!(matches!(err, OAuthError::AuthorizationRequired(_)), "{err}");
    let again = oauth.access_token(&mut p, KEY).unwrap_err();
    for text in [format!("{err} {err:?}"), format!("{again} {again:?}")] {
        assert!(!text.contains("HELD-ACCESS"), "{text}");
    }
}

#[test]
fn sessions_whose_tokens_carry_no_expiry_renew_spread_too() {
    let mut p = FakePlatform::new();
    let mut oauth = OAuth::new();
    let n = 200;
    for i in 0..n {
        let key = format!("gw-{i}");
        oauth
            .open_session(&mut p, &key, basic(), SessionGrant::ClientCredentials)
            .unwrap();
        p.push(json(200, r#"{"access_token":"AT","token_type":"Bearer"}"#));
        oauth.access_token(&mut p, &key).unwrap();
    }
    for _ in 0..n {
        p.push(json(200, r#"{"access_token":"AT2","token_type":"Bearer"}"#));
    }
    // Renewed after the default lifetime, at most the 30 s of jitter early.
    p.advance(DEFAULT_LIFETIME - 31);
    let mut seconds = std::collections::BTreeSet::new();
    for _ in 0..32 {
        for i in 0..n {
            let before = p.requests.len();
            oauth.access_token(&mut p, &format!("gw-{i}")).unwrap();
            if p.requests.len() > before {
                seconds.insert(p.now());
            }
        }
        p.advance(1);
    }
    assert_eq!(p.requests.len(), 2 * n, "each renewed once");
    assert!(
        seconds.len() >= 20,
        "renewed in {} distinct seconds",
        seconds.len()
    );
}

#[test]
fn a_token_an_upstream_rejected_is_dropped_everywhere_and_renewed_once_under_the_lease() {
    let mut p = FakePlatform::new();
    let mut oauth = OAuth::new();
    open(&mut p, &mut oauth, basic(), password_grant());
    p.push(json(200, &token_json_with_refresh("AT1", 3600, "RT1")));
    oauth.access_token(&mut p, KEY).unwrap();
    p.push(json(200, &token_json_with_refresh("AT2", 3600, "RT2")));
    let renewed = oauth.renew_token(&mut p, KEY, "AT1").unwrap();
    assert_eq!(renewed.access_token.secret(), "AT2");
    assert_eq!(p.requests.len(), 2);
    assert_eq!(p.param(1, "refresh_token").as_deref(), Some("RT1"));
    let stored = SessionRecord::from_bytes(&p.store[KEY]).unwrap();
    assert_eq!(stored.token.unwrap().access_token.secret(), "AT2");
    assert_eq!(stored.lease, None, "the lease was given back");
    // Asked again with the old token (a second caller that saw the same 401): the new
    // one, without a request.
    let again = oauth.renew_token(&mut p, KEY, "AT1").unwrap();
    assert_eq!(again.access_token.secret(), "AT2");
    assert_eq!(p.requests.len(), 2);
}

#[test]
fn a_rejected_token_another_replica_already_replaced_is_not_renewed_again() {
    let mut p = FakePlatform::new();
    let mut oauth = OAuth::new();
    open(&mut p, &mut oauth, basic(), password_grant());
    p.push(json(200, &token_json_with_refresh("AT1", 3600, "RT1")));
    oauth.access_token(&mut p, KEY).unwrap();
    let mut theirs = SessionRecord::from_bytes(&p.store[KEY]).unwrap();
    theirs.revision += 1;
    let mut token = theirs.token.clone().unwrap();
    token.access_token = AccessToken::new("AT-THEIRS");
    theirs.token = Some(token);
    theirs.refresh_token = Some(RefreshToken::new("RT-THEIRS"));
    p.store.insert(KEY.into(), theirs.to_bytes());
    let token = oauth.renew_token(&mut p, KEY, "AT1").unwrap();
    assert_eq!(token.access_token.secret(), "AT-THEIRS");
    assert_eq!(p.requests.len(), 1, "nothing sent");
}

#[test]
fn a_rejected_token_of_a_session_without_a_refresh_token_needs_a_person_and_a_grant_without_one_acquires()
 {
    let mut p = FakePlatform::new();
    let mut oauth = OAuth::new();
    open(&mut p, &mut oauth, basic(), SessionGrant::AuthorizationCode);
    let auth = oauth.begin_authorization(&mut p, KEY).unwrap();
    p.push(json(200, &token_json("AT0", 3600)));
    oauth
        .complete_authorization(&mut p, KEY, &auth.state, AuthorizationCode::new("C"), None)
        .unwrap();
    let err = oauth.renew_token(&mut p, KEY, "AT0").unwrap_err();
    assert!(matches!(err, OAuthError::AuthorizationRequired(_)), "{err}");
    assert_eq!(p.requests.len(), 1);

    let mut p = FakePlatform::new();
    let mut oauth = OAuth::new();
    open(&mut p, &mut oauth, basic(), SessionGrant::ClientCredentials);
    p.push(json(200, &token_json("CC1", 3600)));
    oauth.access_token(&mut p, KEY).unwrap();
    p.push(json(200, &token_json("CC2", 3600)));
    let token = oauth.renew_token(&mut p, KEY, "CC1").unwrap();
    assert_eq!(token.access_token.secret(), "CC2");
    assert_eq!(
        p.param(1, "grant_type").as_deref(),
        Some("client_credentials")
    );
}

// ---- pushed authorization requests and step-up ----

/// A code-flow session of a client that names its issuer, whose metadata is `metadata`
/// (read at the first `begin_authorization`).
fn pushing_session(p: &mut FakePlatform, oauth: &mut OAuth, metadata: &str) {
    let mut client = basic();
    client.issuer = Some("https://as.example".into());
    client.resources = vec!["https://mcp.example/mcp".into()];
    open(p, oauth, client, SessionGrant::AuthorizationCode);
    p.push(json(200, metadata));
}

#[test]
fn an_authorization_is_pushed_when_the_server_offers_it_and_its_url_carries_only_the_reference() {
    let mut p = FakePlatform::new();
    let mut oauth = OAuth::new();
    pushing_session(
        &mut p,
        &mut oauth,
        r#"{"issuer":"https://as.example","pushed_authorization_request_endpoint":"https://as.example/par"}"#,
    );
    p.push(json(
        201,
        r#"{"request_uri":"urn:ietf:params:oauth:request_uri:abc","expires_in":60}"#,
    ));
    let auth = oauth.begin_authorization(&mut p, KEY).unwrap();
    let pushed = &p.requests[1];
    assert_eq!(pushed.url, "https://as.example/par");
    assert!(header(pushed, "authorization").is_some_and(|h| h.starts_with("Basic ")));
    for (name, value) in [
        ("response_type", "code"),
        ("client_id", "gw"),
        ("state", auth.state.as_str()),
        ("code_challenge_method", "S256"),
        ("redirect_uri", "https://gw.example/callback"),
        ("resource", "https://mcp.example/mcp"),
        ("scope", "read write"),
    ] {
        assert_eq!(p.param(1, name).as_deref(), Some(value), "{name}");
    }
    let url = url::Url::parse(&auth.url).unwrap();
    let query: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    assert_eq!(
        query,
        [
            ("tenant".to_string(), "t1".to_string()),
            ("client_id".into(), "gw".into()),
            (
                "request_uri".into(),
                "urn:ietf:params:oauth:request_uri:abc".into()
            ),
        ]
    );
}

#[test]
fn a_pushed_request_names_the_client_once_whatever_its_authentication() {
    for auth in [
        ClientAuth::None,
        ClientAuth::ClientSecretPost(ClientSecret::new("CS")),
        ClientAuth::ClientSecretBasic(ClientSecret::new("CS")),
    ] {
        let mut p = FakePlatform::new();
        let mut oauth = OAuth::new();
        let mut client = client(auth);
        client.issuer = Some("https://as.example".into());
        open(&mut p, &mut oauth, client, SessionGrant::AuthorizationCode);
        p.push(json(
            200,
            r#"{"issuer":"https://as.example","pushed_authorization_request_endpoint":"https://as.example/par"}"#,
        ));
        p.push(json(201, r#"{"request_uri":"urn:x","expires_in":60}"#));
        oauth.begin_authorization(&mut p, KEY).unwrap();
        let named = p
            .form(1)
            .into_iter()
            .filter(|(n, _)| n == "client_id")
            .count();
        assert_eq!(named, 1);
    }
}

#[test]
fn a_server_that_requires_pushed_requests_without_an_endpoint_is_refused() {
    let mut p = FakePlatform::new();
    let mut oauth = OAuth::new();
    pushing_session(
        &mut p,
        &mut oauth,
        r#"{"issuer":"https://as.example","require_pushed_authorization_requests":true}"#,
    );
    let err = oauth.begin_authorization(&mut p, KEY).unwrap_err();
    assert!(
        matches!(&err, OAuthError::InvalidResponse(m) if m.contains("pushed_authorization_request_endpoint")),
        "{err}"
    );
    assert_eq!(
        p.requests.len(),
        1,
        "nothing but the metadata was asked for"
    );
}

#[test]
fn a_pushed_request_the_server_refuses_is_classified_like_every_answer() {
    let mut p = FakePlatform::new();
    let mut oauth = OAuth::new();
    pushing_session(
        &mut p,
        &mut oauth,
        r#"{"issuer":"https://as.example","pushed_authorization_request_endpoint":"https://as.example/par"}"#,
    );
    p.push(json(
        400,
        r#"{"error":"invalid_request","error_description":"resource not allowed"}"#,
    ));
    let err = oauth.begin_authorization(&mut p, KEY).unwrap_err();
    assert!(
        matches!(&err, OAuthError::Protocol(e) if e.error == "invalid_request" && e.status == 400),
        "{err}"
    );
}

#[test]
fn step_up_asks_for_the_union_of_scopes_and_keeps_serving_the_token_meanwhile() {
    let mut p = FakePlatform::new();
    let mut oauth = OAuth::new();
    open(&mut p, &mut oauth, basic(), SessionGrant::AuthorizationCode);
    let auth = oauth.begin_authorization(&mut p, KEY).unwrap();
    p.push(json(200, &token_json_with_refresh("AT-READ", 3600, "RT")));
    oauth
        .complete_authorization(&mut p, KEY, &auth.state, AuthorizationCode::new("C"), None)
        .unwrap();
    let challenge = vec![
        r#"Bearer error="insufficient_scope", scope="write admin", resource_metadata="https://mcp.example/.well-known/oauth-protected-resource""#
            .to_string(),
    ];
    let step_up = oauth.begin_step_up(&mut p, KEY, &challenge).unwrap();
    let url = url::Url::parse(&step_up.url).unwrap();
    let scope = url
        .query_pairs()
        .find(|(n, _)| n == "scope")
        .map(|(_, v)| v.into_owned());
    assert_eq!(scope.as_deref(), Some("read write admin"));
    assert_ne!(step_up.state, auth.state);
    let sent = p.requests.len();
    assert_eq!(
        oauth
            .access_token(&mut p, KEY)
            .unwrap()
            .access_token
            .secret(),
        "AT-READ",
        "the held token serves until the new authorization completes"
    );
    assert_eq!(p.requests.len(), sent);
    p.push(json(200, &token_json_with_refresh("AT-ADMIN", 3600, "RT2")));
    let token = oauth
        .complete_authorization(
            &mut p,
            KEY,
            &step_up.state,
            AuthorizationCode::new("C2"),
            None,
        )
        .unwrap();
    assert_eq!(token.access_token.secret(), "AT-ADMIN");
    assert_eq!(
        oauth
            .access_token(&mut p, KEY)
            .unwrap()
            .access_token
            .secret(),
        "AT-ADMIN"
    );
}

#[test]
fn step_up_needs_an_insufficient_scope_challenge() {
    let mut p = FakePlatform::new();
    let mut oauth = OAuth::new();
    open(&mut p, &mut oauth, basic(), SessionGrant::AuthorizationCode);
    for challenge in [
        r#"Bearer error="invalid_token""#,
        r#"Basic realm="x""#,
        r#"Bearer error="insufficient_scope", scope="a"#,
    ] {
        let err = oauth
            .begin_step_up(&mut p, KEY, &[challenge.to_string()])
            .unwrap_err();
        assert!(
            matches!(&err, OAuthError::Config(_) | OAuthError::InvalidResponse(_)),
            "{challenge}: {err}"
        );
    }
    assert!(p.requests.is_empty());
}

// ---- DPoP-bound tokens ----

/// The header and claims of the DPoP proof `request` carries, after checking its
/// signature with the key in its own header.
fn dpop_of(request: &crate::http::Request) -> (serde_json::Value, serde_json::Value) {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let proof = header(request, "dpop").expect("a DPoP header");
    let parts: Vec<&str> = proof.split('.').collect();
    let decode = |part: &str| -> serde_json::Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    };
    let (head, claims) = (decode(parts[0]), decode(parts[1]));
    let signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    let signed = format!("{}.{}", parts[0], parts[1]);
    let jwk = &head["jwk"];
    let b64 = |name: &str| URL_SAFE_NO_PAD.decode(jwk[name].as_str().unwrap()).unwrap();
    let verified = match head["alg"].as_str() {
        Some("ES256") => {
            let mut point = vec![4];
            point.extend(b64("x"));
            point.extend(b64("y"));
            ring::signature::UnparsedPublicKey::new(
                &ring::signature::ECDSA_P256_SHA256_FIXED,
                point,
            )
            .verify(signed.as_bytes(), &signature)
        }
        Some("RS256") => ring::signature::RsaPublicKeyComponents {
            n: b64("n"),
            e: b64("e"),
        }
        .verify(
            &ring::signature::RSA_PKCS1_2048_8192_SHA256,
            signed.as_bytes(),
            &signature,
        ),
        other => panic!("alg {other:?}"),
    };
    assert!(verified.is_ok(), "the proof verifies with its own key");
    assert_eq!(head["typ"], "dpop+jwt");
    (head, claims)
}

fn fixed_dpop(algorithm: JwtAlgorithm, pem: &str) -> Client {
    let mut client = basic();
    client.dpop = Some(DpopBinding::Fixed(SigningKey {
        algorithm,
        private_key_pem: PrivateKeyPem::new(pem),
        key_id: None,
    }));
    client
}

fn use_dpop_nonce(nonce: &str) -> crate::http::Response {
    let mut answer = json(
        400,
        r#"{"error":"use_dpop_nonce","error_description":"nonce"}"#,
    );
    answer.headers.push(("dpop-nonce".into(), nonce.into()));
    answer
}

#[test]
fn token_requests_carry_a_proof_and_a_nonce_request_is_answered_once_then_remembered() {
    let mut p = FakePlatform::new();
    let mut oauth = OAuth::new();
    let client = fixed_dpop(JwtAlgorithm::Es256, &super::jwt::tests::es256_pem());
    p.push(use_dpop_nonce("n-1"));
    p.push(json(
        200,
        r#"{"access_token":"AT","token_type":"DPoP","expires_in":60}"#,
    ));
    let token = oauth
        .request_token(&mut p, &client, Grant::ClientCredentials)
        .unwrap();
    assert_eq!(token.token_type, "DPoP");
    assert_eq!(p.requests.len(), 2, "the nonce round, then the request");
    let (first_head, first) = dpop_of(&p.requests[0]);
    let (_, second) = dpop_of(&p.requests[1]);
    assert_eq!(first["htm"], "POST");
    assert_eq!(first["htu"], TOKEN_URL);
    assert!(first.get("nonce").is_none() && first.get("ath").is_none());
    assert_eq!(second["nonce"], "n-1");
    assert_ne!(first["jti"], second["jti"], "every proof is new");
    // The next request starts with the nonce it was given.
    p.push(json(
        200,
        r#"{"access_token":"AT2","token_type":"DPoP","expires_in":60}"#,
    ));
    oauth
        .request_token(&mut p, &client, Grant::ClientCredentials)
        .unwrap();
    assert_eq!(p.requests.len(), 3);
    let (third_head, third) = dpop_of(&p.requests[2]);
    assert_eq!(third["nonce"], "n-1");
    assert_eq!(first_head["jwk"], third_head["jwk"], "one fixed key");
}

#[test]
fn a_server_that_keeps_asking_for_a_nonce_is_answered_with_its_error() {
    let mut p = FakePlatform::new();
    let mut oauth = OAuth::new();
    let client = fixed_dpop(JwtAlgorithm::Es256, &super::jwt::tests::es256_pem());
    p.push(use_dpop_nonce("n-1"));
    p.push(use_dpop_nonce("n-2"));
    let err = oauth
        .request_token(&mut p, &client, Grant::ClientCredentials)
        .unwrap_err();
    assert!(
        matches!(&err, OAuthError::Protocol(e) if e.error == "use_dpop_nonce"),
        "{err}"
    );
    assert_eq!(p.requests.len(), 2, "one nonce round, not a loop");
}

#[test]
fn an_rs256_key_signs_proofs_where_a_client_asks_for_it() {
    let mut p = FakePlatform::new();
    let mut oauth = OAuth::new();
    let client = fixed_dpop(JwtAlgorithm::Rs256, super::jwt::tests::RS256_PEM);
    p.push(json(
        200,
        r#"{"access_token":"AT","token_type":"DPoP","expires_in":60}"#,
    ));
    oauth
        .request_token(&mut p, &client, Grant::ClientCredentials)
        .unwrap();
    let (head, _) = dpop_of(&p.requests[0]);
    assert_eq!(head["alg"], "RS256");
    assert_eq!(head["jwk"]["kty"], "RSA");
    assert!(head["jwk"].get("d").is_none(), "no private member");
}

#[test]
fn a_per_session_key_is_stored_once_shared_by_replicas_and_signs_refreshes_and_resource_proofs() {
    let mut p = FakePlatform::new();
    let mut client = basic();
    client.dpop = Some(DpopBinding::PerSession);
    let (mut first, mut second) = (OAuth::new(), OAuth::new());
    open(
        &mut p,
        &mut first,
        client.clone(),
        SessionGrant::AuthorizationCode,
    );
    let stored = SessionRecord::from_bytes(&p.store[KEY]).unwrap();
    let key = stored.dpop_key.clone().expect("a key, stored at open");
    assert!(!format!("{stored:?}").contains(key.secret()));
    open(&mut p, &mut second, client, SessionGrant::AuthorizationCode);
    let again = SessionRecord::from_bytes(&p.store[KEY]).unwrap();
    assert_eq!(
        again.dpop_key.as_ref().map(|k| k.secret()),
        Some(key.secret())
    );

    // The authorization binds the code to the key's thumbprint (RFC 9449 §10).
    let auth = first.begin_authorization(&mut p, KEY).unwrap();
    let url = url::Url::parse(&auth.url).unwrap();
    assert!(url.query_pairs().any(|(n, _)| n == "dpop_jkt"));
    p.push(json(
        200,
        r#"{"access_token":"AT","token_type":"DPoP","expires_in":60,"refresh_token":"RT"}"#,
    ));
    first
        .complete_authorization(&mut p, KEY, &auth.state, AuthorizationCode::new("C"), None)
        .unwrap();
    let (redeemed, _) = dpop_of(&p.requests[0]);

    // The other replica refreshes with the same key.
    p.advance(60);
    p.push(json(
        200,
        r#"{"access_token":"AT2","token_type":"DPoP","expires_in":60}"#,
    ));
    second.access_token(&mut p, KEY).unwrap();
    let (refreshed, claims) = dpop_of(&p.requests[1]);
    assert_eq!(p.param(1, "grant_type").as_deref(), Some("refresh_token"));
    assert_eq!(redeemed["jwk"], refreshed["jwk"]);
    assert!(claims.get("ath").is_none());

    // A proof for the gateway's own request: ath over the token held, the nonce given.
    let proof = first
        .dpop_proof(
            &mut p,
            KEY,
            "GET",
            "https://mcp.example/mcp?x=1",
            Some("rs-nonce"),
        )
        .unwrap();
    let mut carrier = crate::http::Request::get("https://mcp.example/mcp");
    carrier.headers.push(("dpop".into(), proof));
    let (head, claims) = dpop_of(&carrier);
    assert_eq!(head["jwk"], redeemed["jwk"]);
    use base64::Engine as _;
    let ath = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(b"AT2"));
    assert_eq!(claims["ath"], ath.as_str(), "over the renewed token");
    assert_eq!(claims["htu"], "https://mcp.example/mcp");
    assert_eq!(claims["htm"], "GET");
    assert_eq!(claims["nonce"], "rs-nonce");
}

#[test]
fn proofs_need_a_bound_client_and_a_held_token() {
    let mut p = FakePlatform::new();
    let mut oauth = OAuth::new();
    open(&mut p, &mut oauth, basic(), SessionGrant::AuthorizationCode);
    let err = oauth
        .dpop_proof(&mut p, KEY, "GET", "https://r.example/", None)
        .unwrap_err();
    assert!(
        matches!(&err, OAuthError::Config(m) if m.contains("binds no DPoP key")),
        "{err}"
    );
    let mut client = basic();
    client.dpop = Some(DpopBinding::PerSession);
    open(
        &mut p,
        &mut oauth,
        client.clone(),
        SessionGrant::AuthorizationCode,
    );
    let err = oauth
        .dpop_proof(&mut p, KEY, "GET", "https://r.example/", None)
        .unwrap_err();
    assert!(
        matches!(&err, OAuthError::Config(m) if m.contains("access_token")),
        "{err}"
    );
    // One-off requests have no session to keep a key in.
    let err = oauth
        .request_token(&mut p, &client, Grant::ClientCredentials)
        .unwrap_err();
    assert!(
        matches!(&err, OAuthError::Config(m) if m.contains("fixed DPoP key")),
        "{err}"
    );
}
