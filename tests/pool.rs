//! A pool of instances shared by gateway threads.

use std::sync::{Arc, Barrier, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use gateway_auth_devserver::{DevServer, defaults};
use gateway_auth_host::{
    CacheSettings, ClientAuth, Clock, EgressPolicy, Error, MemoryStore, OAuthError, Plugin,
    PluginOptions, PluginPool, SessionGrant, SessionPhase, TokenStore, VirtualClock,
};
use gateway_auth_tests::{
    CountingStore, code_and_state, dev_basic_client, dev_client, replica_client, replica_grant,
    replica_users, replica_workload, runtime,
};

fn pool(size: usize) -> PluginPool {
    pool_on(Arc::new(MemoryStore::new()), size)
}

fn pool_on(store: Arc<MemoryStore>, size: usize) -> PluginPool {
    let options = PluginOptions {
        egress: Arc::new(EgressPolicy::parse(["127.0.0.1"]).unwrap()),
        store,
        ..PluginOptions::default()
    };
    PluginPool::new(runtime(), options, size).unwrap()
}

#[test]
fn a_thread_waiting_for_an_instance_gets_one_returned_while_a_close_is_waiting_too() {
    let pool = &pool(2);
    let (first, second) = (pool.get().unwrap(), pool.get().unwrap());
    thread::scope(|scope| {
        // The close waits for both instances, and waits first: a return that woke only
        // it would leave the getter asleep beside an idle instance.
        let closer = scope.spawn(|| pool.close_session("nobody"));
        thread::sleep(Duration::from_millis(200));
        let (got, got_one) = mpsc::channel();
        let getter = scope.spawn(move || {
            let plugin = pool.get().unwrap();
            got.send(()).unwrap();
            drop(plugin);
        });
        thread::sleep(Duration::from_millis(200));
        drop(first);
        let woken = got_one.recv_timeout(Duration::from_secs(10));
        drop(second);
        getter.join().unwrap();
        closer.join().unwrap().unwrap();
        assert!(woken.is_ok(), "the getter slept while an instance was idle");
    });
}

/// A pool of two whose instances both hold session `gw`, with a token.
fn two_instances_holding_a_session(server: &DevServer, store: &Arc<MemoryStore>) -> PluginPool {
    let pool = pool_on(store.clone(), 2);
    pool.open_session(
        "gw",
        &dev_basic_client(server),
        &SessionGrant::ClientCredentials,
    )
    .unwrap();
    let (mut a, mut b) = (pool.get().unwrap(), pool.get().unwrap());
    a.access_token("gw").unwrap();
    b.access_token("gw").unwrap();
    drop((a, b));
    pool
}

#[test]
fn a_session_closed_through_one_pooled_instance_is_closed_on_every_instance() {
    let server = DevServer::start(Default::default()).unwrap();
    let store = Arc::new(MemoryStore::new());
    let pool = two_instances_holding_a_session(&server, &store);

    pool.get().unwrap().close_session("gw").unwrap();
    assert_eq!(store.get("gw").unwrap(), None);
    let (mut a, mut b) = (pool.get().unwrap(), pool.get().unwrap());
    for plugin in [&mut a, &mut b] {
        let result = plugin.access_token("gw");
        assert!(
            matches!(result, Err(Error::OAuth(OAuthError::Config(_)))),
            "{result:?}"
        );
        assert_eq!(plugin.session_status("gw").unwrap(), None);
    }
    assert_eq!(store.get("gw").unwrap(), None, "nothing wrote it back");
    assert_eq!(server.token_requests(), 1);
}

#[test]
fn a_session_closed_and_opened_again_through_the_pool_never_serves_its_old_token() {
    let server = DevServer::start(Default::default()).unwrap();
    let store = Arc::new(MemoryStore::new());
    let pool = two_instances_holding_a_session(&server, &store);
    let old = pool.get().unwrap().access_token("gw").unwrap();

    let client = dev_basic_client(&server);
    let mut closing = pool.get().unwrap();
    closing.close_session("gw").unwrap();
    closing
        .open_session("gw", &client, &SessionGrant::ClientCredentials)
        .unwrap();
    drop(closing);
    let (mut a, mut b) = (pool.get().unwrap(), pool.get().unwrap());
    let (ta, tb) = (a.access_token("gw").unwrap(), b.access_token("gw").unwrap());
    assert_ne!(
        ta.access_token, old.access_token,
        "a closed session's token"
    );
    assert_eq!(ta.access_token, tb.access_token, "one new token, shared");
    assert_eq!(server.token_requests(), 2);
}

#[test]
fn a_session_closed_through_one_held_instance_and_reopened_on_another_never_serves_its_old_token() {
    let server = DevServer::start(Default::default()).unwrap();
    let store = Arc::new(MemoryStore::new());
    let pool = two_instances_holding_a_session(&server, &store);
    let old = pool.get().unwrap().access_token("gw").unwrap();

    // Both held by their threads: the close reaches the other one only as a forget it owes.
    let (mut a, mut b) = (pool.get().unwrap(), pool.get().unwrap());
    b.close_session("gw").unwrap();
    a.open_session(
        "gw",
        &dev_basic_client(&server),
        &SessionGrant::ClientCredentials,
    )
    .unwrap();
    let token = a.access_token("gw").unwrap();
    assert_ne!(
        token.access_token, old.access_token,
        "a closed session's token"
    );
    assert_eq!(server.token_requests(), 2);
}

#[test]
fn a_held_instance_stops_serving_a_session_closed_through_another_instance() {
    let server = DevServer::start(Default::default()).unwrap();
    let clock = VirtualClock::new();
    let store = Arc::new(CountingStore::new(Arc::new(MemoryStore::new())));
    let options = PluginOptions {
        egress: Arc::new(EgressPolicy::parse(["127.0.0.1"]).unwrap()),
        store: store.clone(),
        clock: Clock::Virtual(clock.clone()),
        ..PluginOptions::default()
    };
    let pool = PluginPool::new(runtime(), options, 2).unwrap();
    let client = dev_basic_client(&server);
    pool.open_session("gw", &client, &SessionGrant::ClientCredentials)
        .unwrap();
    // A worker thread holds its instance across requests.
    let mut held = pool.get().unwrap();
    held.access_token("gw").unwrap();
    let before = store.operations();
    for _ in 0..10 {
        held.access_token("gw").unwrap();
    }
    assert_eq!(
        store.operations(),
        before,
        "a cached token costs no store operation"
    );

    pool.get().unwrap().close_session("gw").unwrap();
    assert_eq!(store.get("gw").unwrap(), None);
    // Due for renewal: served from memory, it would be renewed and written back.
    clock.advance(Duration::from_secs(7200));
    let result = held.access_token("gw");
    assert!(
        matches!(&result, Err(Error::OAuth(OAuthError::Config(_)))),
        "{result:?}"
    );
    assert_eq!(held.session_status("gw").unwrap(), None);
    assert_eq!(store.get("gw").unwrap(), None, "no record came back");
    assert_eq!(server.token_requests(), 1);

    // Opened again through another instance meanwhile: the held one serves it.
    let mut other = pool.get().unwrap();
    other.close_session("gw").unwrap();
    other
        .open_session("gw", &client, &SessionGrant::ClientCredentials)
        .unwrap();
    held.open_session("gw", &client, &SessionGrant::ClientCredentials)
        .unwrap();
    other.close_session("gw").unwrap();
    other
        .open_session("gw", &client, &SessionGrant::ClientCredentials)
        .unwrap();
    let token = other.access_token("gw").unwrap();
    assert_eq!(
        held.access_token("gw").unwrap().access_token,
        token.access_token
    );
}

#[test]
fn every_instance_gets_the_pool_cache_settings() {
    let pool = pool(3);
    pool.configure(CacheSettings {
        capacity: 7,
        ttl_seconds: None,
        ..Default::default()
    })
    .unwrap();
    let mut held: Vec<_> = (0..3).map(|_| pool.get().unwrap()).collect();
    for plugin in &mut held {
        assert_eq!(plugin.stats().unwrap().capacity, 7);
    }
}

#[test]
fn threads_share_one_session_and_its_single_token_request() {
    let server = DevServer::start(Default::default()).unwrap();
    let pool = pool(2);
    pool.open_session(
        "gw",
        &dev_basic_client(&server),
        &SessionGrant::ClientCredentials,
    )
    .unwrap();
    let first = {
        // Both instances at once: the second serves the first one's token from the store.
        let (mut a, mut b) = (pool.get().unwrap(), pool.get().unwrap());
        let token = a.access_token("gw").unwrap();
        assert_eq!(
            b.access_token("gw").unwrap().access_token,
            token.access_token
        );
        token
    };
    let tokens: Vec<String> = thread::scope(|scope| {
        let workers: Vec<_> = (0..4)
            .map(|_| {
                scope.spawn(|| {
                    (0..20)
                        .map(|_| {
                            let mut plugin = pool.get().unwrap();
                            plugin
                                .access_token("gw")
                                .unwrap()
                                .access_token
                                .secret()
                                .to_string()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    assert_eq!(tokens.len(), 80);
    assert!(tokens.iter().all(|t| t == first.access_token.secret()));
    assert_eq!(
        server.token_requests(),
        1,
        "the other instance took the token from the store"
    );

    pool.close_session("gw").unwrap();
    for _ in 0..2 {
        let result = pool.get().unwrap().access_token("gw");
        assert!(
            matches!(result, Err(Error::OAuth(OAuthError::Config(_)))),
            "{result:?}"
        );
    }
}

#[test]
fn instances_sharing_sessions_never_spend_a_refresh_token_twice() {
    const SESSIONS: usize = 20;
    const LIFETIME: u64 = 3;
    let server = DevServer::start(gateway_auth_devserver::Options {
        users: replica_users(SESSIONS),
        token_lifetime: LIFETIME,
        ..Default::default()
    })
    .unwrap();
    server.set_reuse_detection(true);
    // Slow answers widen the window in which renewals overlap.
    server.set_token_delay(Duration::from_millis(100));
    let store = Arc::new(CountingStore::new(Arc::new(MemoryStore::new())));
    let options = PluginOptions {
        egress: Arc::new(EgressPolicy::parse(["127.0.0.1"]).unwrap()),
        store: store.clone(),
        ..PluginOptions::default()
    };
    let pool = PluginPool::new(runtime(), options, 4).unwrap();
    let client = replica_client(&server);
    for i in 0..SESSIONS {
        pool.open_session(&format!("s{i}"), &client, &replica_grant(i))
            .unwrap();
    }

    let started = Instant::now();
    let report = replica_workload(
        &|| pool.get().unwrap(),
        SESSIONS,
        8,
        Duration::from_secs(10),
    );
    let elapsed = started.elapsed().as_secs_f64();

    assert_eq!(report.failures, 0, "{:?}", report.errors);
    assert_eq!(
        server.reuse_detections(),
        0,
        "a refresh token was spent twice"
    );
    let refreshes = server.refreshes_per_lineage();
    assert_eq!(refreshes.len(), SESSIONS, "one token lineage per session");
    // A token is renewed 1 s before its 3 s lifetime ends: once per 2 s at most, so
    // two renewals in one lifetime would exceed this.
    let most = (elapsed / (LIFETIME - 1) as f64).ceil() as u64;
    assert!(
        refreshes.iter().all(|r| (1..=most).contains(r)),
        "refreshes per session {refreshes:?}, at most {most} expected over {elapsed:.1} s"
    );
    let total: u64 = refreshes.iter().sum();
    let sent = server
        .requests()
        .iter()
        .filter(|r| r.grant_type.as_deref() == Some("refresh_token"))
        .count() as u64;
    assert_eq!(sent, total, "every refresh request sent was a first use");
    let mut plugin = pool.get().unwrap();
    for i in 0..SESSIONS {
        let status = plugin.session_status(&format!("s{i}")).unwrap().unwrap();
        assert_eq!(status.phase, SessionPhase::Valid, "s{i}");
    }
    println!(
        "{} calls over {elapsed:.1} s, {total} refreshes ({:?} per session), {:.2} store operations per call",
        report.calls,
        refreshes,
        store.operations() as f64 / report.calls as f64
    );
}

#[test]
fn two_instances_completing_one_authorization_at_once_redeem_the_code_once() {
    let server = DevServer::start(Default::default()).unwrap();
    // A slow token answer keeps the first redemption in flight while the second arrives.
    server.set_token_delay(Duration::from_millis(300));
    let store = Arc::new(MemoryStore::new());
    let client = dev_client(&server, defaults::PUBLIC_CLIENT_ID, ClientAuth::None);
    let mut instances: Vec<Plugin> = (0..2)
        .map(|_| {
            let mut plugin = runtime()
                .plugin(PluginOptions {
                    egress: Arc::new(EgressPolicy::parse(["127.0.0.1"]).unwrap()),
                    store: store.clone(),
                    ..PluginOptions::default()
                })
                .unwrap();
            plugin
                .open_session("u", &client, &SessionGrant::AuthorizationCode)
                .unwrap();
            plugin
        })
        .collect();
    let authorization = instances[0].begin_authorization("u").unwrap();
    let redirect = server.authorize(&authorization.url).unwrap();
    let (code, state) = code_and_state(&redirect);

    // A browser retry lands on both replicas with the same redirect.
    let start = Barrier::new(2);
    let answers: Vec<_> = thread::scope(|scope| {
        let workers: Vec<_> = instances
            .iter_mut()
            .map(|plugin| {
                let (start, state, code) = (&start, &state, &code);
                scope.spawn(move || {
                    start.wait();
                    plugin.complete_authorization("u", state, code.clone().into(), None)
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });

    let redemptions = server
        .requests()
        .iter()
        .filter(|r| r.grant_type.as_deref() == Some("authorization_code"))
        .count();
    assert_eq!(redemptions, 1, "exactly one redemption reached the server");
    let tokens: Vec<_> = answers.iter().filter_map(|a| a.as_ref().ok()).collect();
    assert!(!tokens.is_empty(), "{answers:?}");
    assert!(
        tokens
            .iter()
            .all(|t| t.access_token == tokens[0].access_token),
        "the loser got the winner's token, if any"
    );
    for answer in &answers {
        if let Err(e) = answer {
            assert!(
                matches!(e, Error::OAuth(OAuthError::Config(m)) if m.contains("completed already")),
                "the loser's error is clear: {e}"
            );
        }
    }
    for plugin in &mut instances {
        let token = plugin.access_token("u").unwrap();
        assert_eq!(token.access_token, tokens[0].access_token);
    }
}
