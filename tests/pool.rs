//! A pool of instances shared by gateway threads.

use std::sync::Arc;
use std::thread;

use gateway_auth_devserver::DevServer;
use gateway_auth_host::{
    CacheSettings, EgressPolicy, Error, MemoryStore, OAuthError, PluginOptions, PluginPool,
    SessionGrant,
};
use gateway_auth_tests::{dev_basic_client, runtime};

fn pool(size: usize) -> PluginPool {
    let options = PluginOptions {
        egress: Arc::new(EgressPolicy::parse(["127.0.0.1"]).unwrap()),
        store: Arc::new(MemoryStore::new()),
        ..PluginOptions::default()
    };
    PluginPool::new(runtime(), options, size).unwrap()
}

#[test]
fn every_instance_gets_the_pool_cache_settings() {
    let pool = pool(3);
    pool.configure(CacheSettings {
        capacity: 7,
        ttl_seconds: None,
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
