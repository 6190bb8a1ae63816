//! Stores chosen by URL, and the Redis store against a real `redis-server`.

use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use gateway_auth_host::{TokenStore, open_store};
use gateway_auth_tests::RedisServer;
use gateway_auth_tests::redis_server::free_port;

/// Every write rule a session store must keep, checked through `store`.
fn keeps_compare_and_swap(name: &str, store: &dyn TokenStore) {
    assert_eq!(store.get("k").unwrap(), None, "{name}");
    assert!(
        store.compare_and_swap("k", None, Some(b"one")).unwrap(),
        "{name}"
    );
    assert!(
        !store.compare_and_swap("k", None, Some(b"two")).unwrap(),
        "{name}: absent expected"
    );
    assert!(
        !store
            .compare_and_swap("k", Some(b"zzz"), Some(b"two"))
            .unwrap(),
        "{name}: wrong value expected"
    );
    assert_eq!(
        store.get("k").unwrap().as_deref(),
        Some(&b"one"[..]),
        "{name}"
    );
    assert!(
        store
            .compare_and_swap("k", Some(b"one"), Some(b"\0two\xff"))
            .unwrap(),
        "{name}"
    );
    assert_eq!(
        store.get("k").unwrap().as_deref(),
        Some(&b"\0two\xff"[..]),
        "{name}: binary values"
    );
    assert!(
        !store.compare_and_swap("k", Some(b"one"), None).unwrap(),
        "{name}: stale delete"
    );
    assert!(
        store
            .compare_and_swap("k", Some(b"\0two\xff"), None)
            .unwrap(),
        "{name}"
    );
    assert_eq!(store.get("k").unwrap(), None, "{name}");
    // An empty value is a value, not an absence.
    assert!(
        store.compare_and_swap("e", None, Some(b"")).unwrap(),
        "{name}"
    );
    assert!(
        !store.compare_and_swap("e", None, Some(b"x")).unwrap(),
        "{name}: empty is present"
    );
    assert!(
        store.compare_and_swap("e", Some(b""), None).unwrap(),
        "{name}"
    );
}

#[test]
fn every_store_url_opens_a_store_that_swaps_only_over_the_expected_value() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let sqlite = format!("sqlite:{}", dir.path().join("tokens.db").display());
    for url in ["memory:".to_string(), sqlite, redis.url()] {
        let store = open_store(&url).unwrap_or_else(|e| panic!("{url}: {e}"));
        keeps_compare_and_swap(&url, &*store);
    }
}

#[test]
fn store_urls_that_name_no_store_are_refused_with_the_forms_that_work() {
    for url in [
        "",
        "sqlite:",
        "postgres://db/tokens",
        "redis:/nohost",
        "tokens.db",
    ] {
        let error = open_store(url)
            .err()
            .unwrap_or_else(|| panic!("{url:?} opened"));
        let text = error.to_string();
        assert!(text.starts_with("token store:"), "{url:?}: {text}");
        if !url.starts_with("sqlite") && !url.starts_with("rediss") {
            assert!(
                text.contains("memory:, sqlite:PATH or redis://"),
                "{url:?}: {text}"
            );
        }
    }
}

#[test]
fn gateways_starting_together_on_one_new_sqlite_file_all_open_it_and_share_it() {
    const OPENERS: usize = 8;
    let dir = tempfile::tempdir().unwrap();
    // Several rounds: the openers' race over a new file is lost in a window of a few
    // system calls.
    for round in 0..10 {
        let path = dir.path().join(format!("tokens-{round}.db"));
        let url = format!("sqlite:{}", path.display());
        let start = Barrier::new(OPENERS);
        let opened: Vec<_> = thread::scope(|scope| {
            let openers: Vec<_> = (0..OPENERS)
                .map(|i| {
                    let (start, url) = (&start, &url);
                    scope.spawn(move || {
                        start.wait();
                        let store = open_store(url)?;
                        store.compare_and_swap(&format!("k{i}"), None, Some(b"v"))
                    })
                })
                .collect();
            openers.into_iter().map(|o| o.join().unwrap()).collect()
        });
        for (i, result) in opened.iter().enumerate() {
            assert!(
                matches!(result, Ok(true)),
                "round {round}, opener {i}: {result:?}"
            );
        }
        let store = open_store(&url).unwrap();
        for i in 0..OPENERS {
            assert_eq!(
                store.get(&format!("k{i}")).unwrap().as_deref(),
                Some(&b"v"[..])
            );
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "the file holds tokens");
        }
    }
}

#[test]
fn redis_compare_and_swap_is_atomic_under_contention_from_many_clients() {
    let redis = RedisServer::start();
    const THREADS: usize = 8;
    const EACH: usize = 50;
    thread::scope(|scope| {
        for _ in 0..THREADS {
            // One store (one connection) per thread: as many gateways would.
            let store = open_store(&redis.url()).unwrap();
            scope.spawn(move || {
                for _ in 0..EACH {
                    loop {
                        let current = store.get("counter").unwrap();
                        let n: usize = current
                            .as_deref()
                            .map_or(0, |v| std::str::from_utf8(v).unwrap().parse().unwrap());
                        let next = (n + 1).to_string();
                        if store
                            .compare_and_swap("counter", current.as_deref(), Some(next.as_bytes()))
                            .unwrap()
                        {
                            break;
                        }
                    }
                }
            });
        }
    });
    let store = open_store(&redis.url()).unwrap();
    assert_eq!(
        store.get("counter").unwrap().as_deref(),
        Some((THREADS * EACH).to_string().as_bytes()),
        "every increment landed exactly once"
    );
}

#[test]
fn redis_keys_live_under_their_prefix_so_two_prefixes_never_meet() {
    let redis = RedisServer::start();
    let a = open_store(&format!("{}?prefix=gateway-a:", redis.url())).unwrap();
    let b = open_store(&format!("{}?prefix=gateway-b:", redis.url())).unwrap();
    let default = open_store(&redis.url()).unwrap();
    assert!(
        a.compare_and_swap("session", None, Some(b"from a"))
            .unwrap()
    );
    assert_eq!(b.get("session").unwrap(), None);
    assert_eq!(default.get("session").unwrap(), None);
    assert!(
        b.compare_and_swap("session", None, Some(b"from b"))
            .unwrap()
    );
    assert_eq!(a.get("session").unwrap().as_deref(), Some(&b"from a"[..]));
    // What the server holds, seen without the store: the prefixed key.
    let raw = open_store(&format!("{}?prefix=", redis.url())).unwrap();
    assert_eq!(
        raw.get("gateway-a:session").unwrap().as_deref(),
        Some(&b"from a"[..])
    );
    assert_eq!(
        raw.get("gateway-auth:session").unwrap(),
        None,
        "the default prefix is gateway-auth:"
    );
    assert!(
        default
            .compare_and_swap("session", None, Some(b"d"))
            .unwrap()
    );
    assert_eq!(
        raw.get("gateway-auth:session").unwrap().as_deref(),
        Some(&b"d"[..])
    );
}

#[test]
fn an_unreachable_redis_is_a_clear_store_error_not_a_hang() {
    let port = free_port();
    let url = format!("redis://127.0.0.1:{port}/0");
    // Opening needs no server: a gateway may start before its Redis.
    let store = open_store(&url).unwrap();
    let started = Instant::now();
    let error = store.get("session").unwrap_err().to_string();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(error.contains(&format!("redis at {url}")), "{error}");
    let error = store
        .compare_and_swap("session", None, Some(b"v"))
        .unwrap_err();
    assert!(error.to_string().contains("redis at"), "{error}");
}

#[test]
fn a_restarted_redis_is_used_again_by_the_next_call_with_its_data_kept() {
    let mut redis = RedisServer::start();
    let store: Arc<dyn TokenStore> = open_store(&redis.url()).unwrap();
    assert!(
        store
            .compare_and_swap("session", None, Some(b"v1"))
            .unwrap()
    );
    redis.stop();
    assert!(
        store.get("session").is_err(),
        "a stopped server is an error"
    );
    assert!(
        store
            .compare_and_swap("session", Some(b"v1"), Some(b"v2"))
            .is_err()
    );
    redis.start_again();
    assert_eq!(store.get("session").unwrap().as_deref(), Some(&b"v1"[..]));
    assert!(
        store
            .compare_and_swap("session", Some(b"v1"), Some(b"v2"))
            .unwrap()
    );
}
