//! Token sessions over time (a virtual clock), across instances (a shared SQLite
//! store), and under failure (backoff).

use std::sync::Arc;
use std::time::Duration;

use gateway_auth_devserver::{DevServer, Misbehaviour, defaults};
use gateway_auth_host::{AssertionSigner, JwtAlgorithm, SigningKey};
use gateway_auth_host::{
    ClientAuth, Clock, EgressPolicy, Error, OAuthError, Plugin, PluginOptions, SessionGrant,
    SqliteStore, TokenStore, VirtualClock,
};
use gateway_auth_host::{PasswordCredentials, SessionPhase};
use gateway_auth_tests::{
    CountingStore, code_and_state, dev_basic_client as basic, dev_client, runtime,
};

fn plugin(clock: &VirtualClock, store: Arc<dyn TokenStore>) -> Plugin {
    runtime()
        .plugin(PluginOptions {
            egress: Arc::new(EgressPolicy::parse(["127.0.0.1"]).unwrap()),
            clock: Clock::Virtual(clock.clone()),
            store,
            ..PluginOptions::default()
        })
        .unwrap()
}

fn password() -> SessionGrant {
    SessionGrant::Password(PasswordCredentials {
        username: defaults::USERNAME.into(),
        password: defaults::PASSWORD.into(),
    })
}

/// How many requests of `grant_type` reached the token endpoint.
fn grants(server: &DevServer, grant_type: &str) -> usize {
    server
        .requests()
        .iter()
        .filter(|r| r.path == "/token" && r.grant_type.as_deref() == Some(grant_type))
        .count()
}

const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

fn memory() -> Arc<dyn TokenStore> {
    Arc::new(gateway_auth_host::MemoryStore::new())
}

#[test]
fn a_token_is_served_from_cache_until_expiry_minus_skew_then_refreshed_once() {
    let server = DevServer::start(Default::default()).unwrap();
    let clock = VirtualClock::new();
    let mut plugin = plugin(&clock, memory());
    plugin
        .open_session("s", &basic(&server), &password())
        .unwrap();

    let first = plugin.access_token("s").unwrap();
    assert_eq!(grants(&server, "password"), 1);
    // 3600 s tokens, 60 s skew and the default 30 s of jitter: cached for at least
    // 3509 s of the virtual clock, renewed by 3541 s.
    clock.advance(Duration::from_secs(3509));
    assert_eq!(
        plugin.access_token("s").unwrap().access_token,
        first.access_token
    );
    assert_eq!(server.token_requests(), 1);

    clock.advance(Duration::from_secs(32));
    let second = plugin.access_token("s").unwrap();
    assert_ne!(second.access_token, first.access_token);
    assert_eq!(
        plugin.access_token("s").unwrap().access_token,
        second.access_token
    );
    assert_eq!(
        (grants(&server, "refresh_token"), server.token_requests()),
        (1, 2),
        "refreshed exactly once"
    );
}

#[test]
fn rotation_keeps_the_newest_refresh_token_and_the_old_one_when_none_comes_back() {
    let server = DevServer::start(Default::default()).unwrap();
    let clock = VirtualClock::new();
    let mut plugin = plugin(&clock, memory());
    plugin
        .open_session("s", &basic(&server), &password())
        .unwrap();
    plugin.access_token("s").unwrap();
    // Each refresh rotates; the server refuses a refresh token it has replaced, so every
    // success proves the session sent the newest one.
    for _ in 0..3 {
        clock.advance(Duration::from_secs(3600));
        plugin.access_token("s").unwrap();
    }
    server.set_rotate_refresh_tokens(false);
    for _ in 0..2 {
        clock.advance(Duration::from_secs(3600));
        plugin.access_token("s").unwrap();
    }
    assert_eq!(grants(&server, "refresh_token"), 5);
    assert_eq!(
        grants(&server, "password"),
        1,
        "never fell back to the password"
    );
}

#[test]
fn invalid_grant_on_refresh_requires_a_person_again() {
    let server = DevServer::start(Default::default()).unwrap();
    let clock = VirtualClock::new();
    let mut plugin = plugin(&clock, memory());
    let client = dev_client(&server, defaults::PUBLIC_CLIENT_ID, ClientAuth::None);
    plugin
        .open_session("u", &client, &SessionGrant::AuthorizationCode)
        .unwrap();
    let authorization = plugin.begin_authorization("u").unwrap();
    let redirect = server.authorize(&authorization.url).unwrap();
    let (code, _) = code_and_state(&redirect);
    plugin
        .complete_authorization("u", &authorization.state, Into::into(code), None)
        .unwrap();

    server.set_misbehaviour(Some(Misbehaviour::InvalidGrant), Some(1));
    clock.advance(Duration::from_secs(3600));
    let result = plugin.access_token("u");
    assert!(
        matches!(
            result,
            Err(Error::OAuth(OAuthError::AuthorizationRequired(_)))
        ),
        "{result:?}"
    );
    let status = plugin.session_status("u").unwrap().unwrap();
    assert_eq!(
        (status.phase, status.has_refresh_token),
        (SessionPhase::AuthorizationRequired, false)
    );
    let requests = server.token_requests();
    assert!(plugin.access_token("u").is_err());
    assert_eq!(
        server.token_requests(),
        requests,
        "nothing left to refresh with: no request"
    );
}

#[test]
fn a_second_instance_over_the_same_sqlite_store_serves_the_session_without_a_request() {
    let server = DevServer::start(Default::default()).unwrap();
    let clock = VirtualClock::new();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens.db");
    let mut first = plugin(&clock, Arc::new(SqliteStore::open(&path).unwrap()));
    first
        .open_session("gw", &basic(&server), &SessionGrant::ClientCredentials)
        .unwrap();
    let token = first.access_token("gw").unwrap();
    drop(first);

    let mut second = plugin(&clock, Arc::new(SqliteStore::open(&path).unwrap()));
    second
        .open_session("gw", &basic(&server), &SessionGrant::ClientCredentials)
        .unwrap();
    assert_eq!(
        second.access_token("gw").unwrap().access_token,
        token.access_token
    );
    assert_eq!(server.token_requests(), 1);
}

#[test]
fn repeated_503s_put_the_session_in_backoff_without_requests_until_the_named_time() {
    let server = DevServer::start(Default::default()).unwrap();
    let clock = VirtualClock::new();
    let mut plugin = plugin(&clock, memory());
    plugin
        .open_session("b", &basic(&server), &SessionGrant::ClientCredentials)
        .unwrap();
    server.set_misbehaviour(
        Some(Misbehaviour::ServiceUnavailable { retry_after: 30 }),
        None,
    );

    let first = plugin.access_token("b");
    assert!(
        matches!(&first, Err(Error::OAuth(OAuthError::HttpStatus(h))) if h.status == 503),
        "{first:?}"
    );
    let sent = server.token_requests();
    let retry_at = match plugin.access_token("b") {
        Err(Error::OAuth(OAuthError::Backoff(b))) => b.retry_at,
        other => panic!("expected backoff, got {other:?}"),
    };
    assert_eq!(
        server.token_requests(),
        sent,
        "backoff answers without a request"
    );
    let status = plugin.session_status("b").unwrap().unwrap();
    assert_eq!(
        (status.phase, status.retry_at),
        (SessionPhase::Backoff, Some(retry_at))
    );
    let now = clock.now().as_secs();
    assert!(
        retry_at >= now + 29,
        "Retry-After 30 s honoured: {retry_at} vs {now}"
    );

    clock.advance(Duration::from_secs(retry_at - now - 1));
    assert!(matches!(
        plugin.access_token("b"),
        Err(Error::OAuth(OAuthError::Backoff(_)))
    ));
    assert_eq!(server.token_requests(), sent);

    server.set_misbehaviour(None, None);
    clock.advance(Duration::from_secs(2));
    plugin.access_token("b").unwrap();
    assert_eq!(
        plugin.session_status("b").unwrap().unwrap().phase,
        SessionPhase::Valid
    );
}

#[test]
fn a_denied_or_expired_device_authorization_ends_the_flow() {
    let server = DevServer::start(Default::default()).unwrap();
    server.set_device_interval(1);
    let clock = VirtualClock::new();
    let mut plugin = plugin(&clock, memory());
    let client = dev_client(&server, defaults::PUBLIC_CLIENT_ID, ClientAuth::None);

    plugin
        .open_session("denied", &client, &SessionGrant::DeviceCode)
        .unwrap();
    let device = plugin.begin_device_authorization("denied").unwrap();
    assert!(server.deny_device(&device.user_code));
    clock.advance(Duration::from_secs(2));
    let result = plugin.poll_device_authorization("denied");
    assert!(
        matches!(&result, Err(Error::OAuth(OAuthError::Protocol(p))) if p.error == "access_denied"),
        "{result:?}"
    );

    plugin
        .open_session("late", &client, &SessionGrant::DeviceCode)
        .unwrap();
    let device = plugin.begin_device_authorization("late").unwrap();
    let requests = server.requests().len();
    clock.advance(Duration::from_secs(
        device.expires_at - clock.now().as_secs() + 1,
    ));
    let result = plugin.poll_device_authorization("late");
    assert!(
        matches!(
            result,
            Err(Error::OAuth(OAuthError::AuthorizationRequired(_)))
        ),
        "{result:?}"
    );
    assert_eq!(
        server.requests().len(),
        requests,
        "an expired code is not sent"
    );
}

#[test]
fn reopening_a_session_with_another_refresh_token_does_not_serve_the_previous_subjects_token() {
    let server = DevServer::start(Default::default()).unwrap();
    let clock = VirtualClock::new();
    let store: Arc<dyn TokenStore> = memory();
    let (mut first, mut second) = (plugin(&clock, store.clone()), plugin(&clock, store));
    let c = basic(&server);
    let refresh_token = |plugin: &mut Plugin| {
        let grant = gateway_auth_host::Grant::Password(PasswordCredentials {
            username: defaults::USERNAME.into(),
            password: defaults::PASSWORD.into(),
        });
        plugin
            .request_token(&c, grant)
            .unwrap()
            .refresh_token
            .unwrap()
    };
    let (alice, bob) = (refresh_token(&mut first), refresh_token(&mut first));

    first
        .open_session("k", &c, &SessionGrant::RefreshToken(alice))
        .unwrap();
    let alices = first.access_token("k").unwrap();
    assert_eq!(grants(&server, "refresh_token"), 1);

    first
        .open_session("k", &c, &SessionGrant::RefreshToken(bob.clone()))
        .unwrap();
    let bobs = first.access_token("k").unwrap();
    assert_eq!(
        grants(&server, "refresh_token"),
        2,
        "bob's token is refreshed"
    );
    assert_ne!(bobs.access_token, alices.access_token);

    // A second instance opening with bob's token shares bob's session, not alice's.
    second
        .open_session("k", &c, &SessionGrant::RefreshToken(bob))
        .unwrap();
    assert_eq!(
        second.access_token("k").unwrap().access_token,
        bobs.access_token
    );
    assert_eq!(grants(&server, "refresh_token"), 2);
}

#[test]
fn a_permanently_failing_server_gets_one_login_attempt_not_one_per_call() {
    let server = DevServer::start(Default::default()).unwrap();
    let clock = VirtualClock::new();
    let mut plugin = plugin(&clock, memory());
    for (key, misbehaviour, grant, error) in [
        (
            "cc",
            Misbehaviour::InvalidClient,
            SessionGrant::ClientCredentials,
            "invalid_client",
        ),
        (
            "pw",
            Misbehaviour::InvalidGrant,
            password(),
            "invalid_grant",
        ),
    ] {
        server.set_misbehaviour(Some(misbehaviour), None);
        let before = server.token_requests();
        plugin.open_session(key, &basic(&server), &grant).unwrap();
        for _ in 0..100 {
            let result = plugin.access_token(key);
            assert!(
                matches!(&result, Err(Error::OAuth(OAuthError::Protocol(p))) if p.error == error),
                "{result:?}"
            );
        }
        assert!(
            server.token_requests() - before <= 2,
            "{} requests",
            server.token_requests() - before
        );
        let status = plugin.session_status(key).unwrap().unwrap();
        assert_eq!(status.phase, SessionPhase::Failed);

        // Fixed at the server and the session reopened: served at once.
        server.set_misbehaviour(None, None);
        plugin.open_session(key, &basic(&server), &grant).unwrap();
        plugin.access_token(key).unwrap();
        assert_eq!(
            plugin.session_status(key).unwrap().unwrap().phase,
            SessionPhase::Valid
        );
    }
}

#[test]
fn a_jwt_bearer_session_signs_a_fresh_assertion_per_request_and_never_sends_an_expired_one() {
    // The server refuses a replayed `jti` (RFC 7523 §3) and issues 60 s tokens.
    let server = DevServer::start(gateway_auth_devserver::Options {
        token_lifetime: 60,
        ..Default::default()
    })
    .unwrap();
    let clock = VirtualClock::new();
    let mut plugin = plugin(&clock, memory());
    let signer = AssertionSigner {
        signing_key: SigningKey {
            algorithm: JwtAlgorithm::Es256,
            private_key_pem: server.jwt_bearer_issuer_key_pem().into(),
            key_id: None,
        },
        issuer: defaults::JWT_BEARER_ISSUER.into(),
        subject: defaults::USERNAME.into(),
        audience: None,
        lifetime_seconds: None,
    };
    plugin
        .open_session(
            "signed",
            &basic(&server),
            &SessionGrant::SignedJwtBearer(signer),
        )
        .unwrap();
    for _ in 0..4 {
        plugin
            .access_token("signed")
            .expect("every renewal is accepted");
        clock.advance(Duration::from_secs(61));
    }
    assert_eq!(grants(&server, JWT_BEARER), 4);

    // A fixed assertion: the server takes it once, refuses it as a replay, and after
    // its `exp` (5 minutes) the plugin no longer sends it. (A new clock: the first
    // one has run ahead of the assertion's.)
    let clock = VirtualClock::new();
    let mut plugin = self::plugin(&clock, memory());
    let fixed = server.sign_jwt_bearer_assertion(defaults::USERNAME);
    plugin
        .open_session(
            "fixed",
            &basic(&server),
            &SessionGrant::JwtBearer(fixed.into()),
        )
        .unwrap();
    plugin.access_token("fixed").unwrap();
    clock.advance(Duration::from_secs(61));
    let replayed = plugin.access_token("fixed");
    assert!(
        matches!(&replayed, Err(Error::OAuth(OAuthError::Protocol(e))) if e.error == "invalid_grant"),
        "{replayed:?}"
    );
    assert_eq!(grants(&server, JWT_BEARER), 6);
    clock.advance(Duration::from_secs(300));
    for _ in 0..5 {
        let expired = plugin.access_token("fixed");
        assert!(
            matches!(&expired, Err(Error::OAuth(OAuthError::AuthorizationRequired(m))) if m.contains("expired")),
            "{expired:?}"
        );
    }
    assert_eq!(grants(&server, JWT_BEARER), 6, "never sent after its exp");
}

#[test]
fn a_cached_token_costs_no_store_operation_and_a_renewal_a_few() {
    let server = DevServer::start(Default::default()).unwrap();
    let clock = VirtualClock::new();
    let store = Arc::new(CountingStore::new(memory()));
    let mut plugin = plugin(&clock, store.clone());
    plugin
        .open_session("s", &basic(&server), &password())
        .unwrap();
    let before = store.operations();
    plugin.access_token("s").unwrap();
    let acquisition = store.operations() - before;

    let before = store.operations();
    for _ in 0..100 {
        plugin.access_token("s").unwrap();
        clock.advance(Duration::from_secs(10));
    }
    let cached = store.operations() - before;
    assert_eq!(cached, 0, "a gateway may ask on every request");

    // Into the refresh skew: one call renews.
    clock.advance(Duration::from_secs(3600));
    let before = (store.gets(), store.swaps());
    plugin.access_token("s").unwrap();
    assert_eq!(grants(&server, "refresh_token"), 1);
    let (gets, swaps) = (store.gets() - before.0, store.swaps() - before.1);
    // Read what other replicas did, take the lease, store the result with the lease
    // given back.
    assert_eq!(
        (gets, swaps),
        (1, 2),
        "reads and compare-and-swaps of one renewal"
    );
    println!(
        "store operations per access-token call: acquisition {acquisition}, cached 0, renewal {gets} get + {swaps} compare-and-swap"
    );
}

#[test]
fn a_token_an_upstream_rejected_is_renewed_once_and_not_served_by_another_instance() {
    let server = DevServer::start(Default::default()).unwrap();
    let clock = VirtualClock::new();
    let store = memory();
    let mut first = plugin(&clock, store.clone());
    let mut second = plugin(&clock, store);
    for p in [&mut first, &mut second] {
        p.open_session("s", &basic(&server), &password()).unwrap();
    }
    let rejected = first.access_token("s").unwrap();
    assert_eq!(
        second.access_token("s").unwrap().access_token,
        rejected.access_token
    );
    let renewed = first.renew_token("s", &rejected.access_token).unwrap();
    assert_ne!(renewed.access_token, rejected.access_token);
    assert_eq!(grants(&server, "refresh_token"), 1);
    // The other instance saw the same 401: it gets the new token, and nothing is sent.
    let theirs = second.renew_token("s", &rejected.access_token).unwrap();
    assert_eq!(theirs.access_token, renewed.access_token);
    assert_eq!(
        second.access_token("s").unwrap().access_token,
        renewed.access_token
    );
    assert_eq!(server.token_requests(), 2);
}
