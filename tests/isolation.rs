//! A misbehaving call never takes the host down, and egress is the host's decision.

use std::time::Duration;

use gateway_auth_host::{Error, PluginOptions, TrustSpec};
use gateway_auth_tests::{TestCa, loopback_plugin, runtime};
use rcgen::{CertificateParams, DnType, KeyPair};

#[test]
fn a_call_past_its_deadline_is_interrupted_and_the_next_call_is_served() {
    let mut plugin = loopback_plugin();
    let small = TrustSpec::ca(TestCa::new("small").pem);
    plugin.prepare(&small).unwrap();

    // About 1 MiB of distinct certificates: some 30 ms of parsing, three 10 ms epoch
    // ticks. A busy machine could in principle let one call slip through before a
    // tick, so up to three variants (each a new set, so never a cache hit) are tried.
    let key = KeyPair::generate().unwrap();
    let mut certs = Vec::new();
    let mut size = 0;
    for i in 0.. {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, format!("bulk-{i}"));
        let pem = params.self_signed(&key).unwrap().pem();
        if size + pem.len() > 1 << 20 {
            break;
        }
        size += pem.len();
        certs.push(pem);
    }
    plugin.set_call_timeout(Duration::from_millis(1)).unwrap();
    let interrupted = (0..3).any(|skip| {
        let bundle: String = certs
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != skip)
            .map(|(_, c)| c.as_str())
            .collect();
        match plugin.prepare(&TrustSpec::ca(bundle)) {
            Err(Error::DeadlineExceeded(_)) => true,
            Ok(_) => false,
            Err(other) => panic!("expected the deadline to interrupt the call, got {other}"),
        }
    });
    assert!(
        interrupted,
        "a 1 ms deadline never interrupted a 30 ms call"
    );

    plugin.set_call_timeout(Duration::from_secs(60)).unwrap();
    let profile = plugin.prepare(&small).unwrap();
    assert!(
        !profile.cached,
        "the replacement instance starts with an empty cache"
    );
    assert!(plugin.prepare(&small).unwrap().cached);
}

#[test]
fn a_trap_replaces_the_instance_and_keeps_the_cache_settings() {
    let mut plugin = runtime()
        .plugin(PluginOptions {
            memory_limit: 8 << 20,
            ..PluginOptions::default()
        })
        .unwrap();
    plugin
        .configure(gateway_auth_host::CacheSettings {
            capacity: 7,
            ttl_seconds: None,
            ..Default::default()
        })
        .unwrap();
    // Lowering 16 MiB of arguments into an 8 MiB memory cannot succeed.
    let result = plugin.prepare(&TrustSpec::ca("x".repeat(16 << 20)));
    assert!(matches!(result, Err(Error::Trapped(_))), "{result:?}");
    let stats = plugin.stats().unwrap();
    assert_eq!(stats.capacity, 7);
    assert!(
        plugin
            .prepare(&TrustSpec::ca(TestCa::new("after").pem))
            .is_ok()
    );
}
