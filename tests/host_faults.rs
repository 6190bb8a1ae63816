//! Faults inside the host library: trap recovery that must stay bounded.

use std::sync::Arc;

use gateway_auth_host::{
    EgressPolicy, Error, MemoryStore, PluginOptions, SessionGrant, TokenStore, TrustSpec,
};
use gateway_auth_tests::{TestCa, TokenServer, runtime, token_server_client};

#[test]
fn a_session_too_large_to_restore_after_a_trap_is_named_and_the_plugin_keeps_serving() {
    let ca = TestCa::new("trap-restore");
    let server = TokenServer::start(&ca, None);
    let store = Arc::new(MemoryStore::new());
    let mut plugin = runtime()
        .plugin(PluginOptions {
            egress: Arc::new(EgressPolicy::parse(["127.0.0.1"]).unwrap()),
            store: store.clone(),
            memory_limit: 8 << 20,
            ..PluginOptions::default()
        })
        .unwrap();
    let client = token_server_client(&server, TrustSpec::ca(ca.pem.clone()));
    for key in ["fine", "huge"] {
        plugin
            .open_session(key, &client, &SessionGrant::ClientCredentials)
            .unwrap();
    }
    // Another replica left a record under "huge" larger than this instance's memory:
    // every instance that reopens the session traps.
    let current = store.get("huge").unwrap();
    let oversized = vec![b'x'; 16 << 20];
    assert!(
        store
            .compare_and_swap("huge", current.as_deref(), Some(&oversized))
            .unwrap()
    );

    // 16 MiB of argument into an 8 MiB memory: a trap, then the replacement traps too.
    let trapped = plugin.prepare(&TrustSpec::ca("x".repeat(16 << 20)));
    match &trapped {
        Err(Error::Trapped(why)) => assert!(
            why.contains("reopening session \"huge\" trapped the replacement instance too"),
            "{why}"
        ),
        other => panic!("{other:?}"),
    }
    // The next calls run on a fresh instance, with every other session restored.
    assert_eq!(
        plugin
            .prepare(&TrustSpec::ca(ca.pem.clone()))
            .unwrap()
            .anchors,
        1
    );
    assert!(plugin.access_token("fine").is_ok());
}
