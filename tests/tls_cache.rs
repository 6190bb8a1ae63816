//! The TLS configuration cache, through the real component and host.

use std::time::Duration;

use gateway_auth_host::{
    CacheSettings, Clock, Error, EvictionPolicy, PluginOptions, TlsError, TrustSpec, VirtualClock,
};
use gateway_auth_tests::{TestCa, loopback_plugin, runtime};

fn settings(capacity: u32) -> CacheSettings {
    CacheSettings {
        capacity,
        ttl_seconds: None,
        ..Default::default()
    }
}

/// A plugin whose cache holds `capacity` entries for `ttl_seconds` of the clock it
/// returns.
fn on_a_virtual_clock(
    capacity: u32,
    ttl_seconds: u64,
) -> (gateway_auth_host::Plugin, VirtualClock) {
    let clock = VirtualClock::new();
    let mut plugin = runtime()
        .plugin(PluginOptions {
            clock: Clock::Virtual(clock.clone()),
            ..PluginOptions::default()
        })
        .unwrap();
    plugin
        .configure(CacheSettings {
            capacity,
            ttl_seconds: Some(ttl_seconds),
            ..Default::default()
        })
        .unwrap();
    (plugin, clock)
}

fn tls_error(result: Result<gateway_auth_host::Profile, Error>) -> TlsError {
    match result {
        Err(Error::Tls(e)) => e,
        other => panic!("expected a TLS error, got {other:?}"),
    }
}

#[test]
fn the_101st_upstream_evicts_only_the_least_recently_used_one() {
    let mut plugin = loopback_plugin();
    plugin.configure(settings(100)).unwrap();
    let specs: Vec<TrustSpec> = (0..101)
        .map(|i| TrustSpec::ca(TestCa::new(&format!("upstream-{i}")).pem))
        .collect();
    for spec in &specs {
        assert!(!plugin.prepare(spec).unwrap().cached);
    }
    for (i, spec) in specs.iter().enumerate().skip(1) {
        assert!(
            plugin.prepare(spec).unwrap().cached,
            "upstream {i} should still be cached"
        );
    }
    let stats = plugin.stats().unwrap();
    assert_eq!(
        (stats.hits, stats.misses, stats.evictions, stats.size),
        (100, 101, 1, 100)
    );
    assert!(
        !plugin.prepare(&specs[0]).unwrap().cached,
        "the first upstream was the one evicted"
    );
}

#[test]
fn with_the_admission_filter_a_round_robin_over_one_more_upstream_than_fits_keeps_hitting() {
    let mut plugin = loopback_plugin();
    let specs: Vec<TrustSpec> = (0..11)
        .map(|i| TrustSpec::ca(TestCa::new(&format!("rr-{i}")).pem))
        .collect();
    let mut hits_under = |policy| {
        plugin.clear().unwrap();
        plugin
            .configure(CacheSettings {
                policy,
                ..settings(10)
            })
            .unwrap();
        let before = plugin.stats().unwrap();
        for _ in 0..10 {
            for spec in &specs {
                plugin.prepare(spec).unwrap();
            }
        }
        let after = plugin.stats().unwrap();
        assert_eq!(after.size, 10, "{policy:?} holds its capacity");
        (after.hits - before.hits, after.evictions - before.evictions)
    };
    let (lru_hits, lru_evictions) = hits_under(EvictionPolicy::Lru);
    assert_eq!(lru_hits, 0, "LRU evicts the entry needed next every time");
    assert_eq!(lru_evictions, 100);
    let (filtered_hits, filtered_evictions) = hits_under(EvictionPolicy::TinyLfu);
    assert!(filtered_hits >= 80, "{filtered_hits} of 110 accesses hit");
    // One entry leaves per miss, under either policy.
    assert_eq!(filtered_evictions, 110 - filtered_hits - 10);
}

#[test]
fn switching_the_eviction_policy_keeps_every_cached_profile_usable() {
    let mut plugin = loopback_plugin();
    plugin.configure(settings(5)).unwrap();
    let specs: Vec<TrustSpec> = (0..5)
        .map(|i| TrustSpec::ca(TestCa::new(&format!("switch-{i}")).pem))
        .collect();
    let ids: Vec<String> = specs
        .iter()
        .map(|s| plugin.prepare(s).unwrap().id)
        .collect();
    for policy in [EvictionPolicy::TinyLfu, EvictionPolicy::Lru] {
        plugin
            .configure(CacheSettings {
                policy,
                ..settings(5)
            })
            .unwrap();
        for (spec, id) in specs.iter().zip(&ids) {
            let profile = plugin.prepare(spec).unwrap();
            assert!(profile.cached, "{policy:?}: {id} still cached");
            assert_eq!(&profile.id, id);
        }
        assert_eq!(plugin.stats().unwrap().evictions, 0);
    }
}

#[test]
fn a_touched_entry_survives_and_the_least_recent_is_evicted() {
    let mut plugin = loopback_plugin();
    plugin.configure(settings(3)).unwrap();
    let [a, b, c, d] = ["a", "b", "c", "d"].map(|n| TrustSpec::ca(TestCa::new(n).pem));
    for spec in [&a, &b, &c, &a, &d] {
        plugin.prepare(spec).unwrap();
    }
    assert_eq!(plugin.stats().unwrap().evictions, 1);
    assert!(
        plugin.prepare(&a).unwrap().cached,
        "A was touched and stays"
    );
    assert!(
        !plugin.prepare(&b).unwrap().cached,
        "B was least recently used"
    );
}

#[test]
fn an_entry_past_its_ttl_on_the_virtual_clock_is_rebuilt() {
    let (mut plugin, clock) = on_a_virtual_clock(8, 300);
    let spec = TrustSpec::ca(TestCa::new("ttl").pem);
    plugin.prepare(&spec).unwrap();
    clock.advance(Duration::from_secs(299));
    assert!(plugin.prepare(&spec).unwrap().cached);
    clock.advance(Duration::from_secs(2));
    assert!(!plugin.prepare(&spec).unwrap().cached);
    let stats = plugin.stats().unwrap();
    assert_eq!((stats.hits, stats.misses, stats.expirations), (1, 2, 1));
}

#[test]
fn a_profile_found_by_its_id_is_a_hit_until_it_expires_or_is_evicted() {
    let (mut plugin, clock) = on_a_virtual_clock(1, 300);
    let spec = TrustSpec::ca(TestCa::new("by-id").pem);
    let built = plugin.prepare(&spec).unwrap();
    let found = plugin.lookup(&built.id).unwrap();
    assert_eq!((found.id.as_str(), found.cached), (built.id.as_str(), true));
    assert_eq!(plugin.stats().unwrap().hits, 1);
    clock.advance(Duration::from_secs(301));
    assert_eq!(
        tls_error(plugin.lookup(&built.id)),
        TlsError::UnknownProfile
    );
    let rebuilt = plugin.prepare(&spec).unwrap();
    plugin
        .prepare(&TrustSpec::ca(TestCa::new("by-id, the next").pem))
        .unwrap();
    assert_eq!(
        tls_error(plugin.lookup(&rebuilt.id)),
        TlsError::UnknownProfile,
        "evicted by the next upstream"
    );
    assert_eq!(
        tls_error(plugin.lookup("not an id")),
        TlsError::UnknownProfile
    );
}

#[test]
fn the_same_cas_written_differently_are_one_profile() {
    let mut plugin = loopback_plugin();
    let (a, b) = (TestCa::new("a").pem, TestCa::new("b").pem);
    let first = plugin.prepare(&TrustSpec::ca(format!("{a}{b}"))).unwrap();
    for variant in [
        format!("{a}{b}").replace('\n', "\r\n"),
        format!("\n  {}\n\n{b}\t\n", a.replace('\n', "   \n")),
        format!("{b}{a}"),
    ] {
        let again = plugin.prepare(&TrustSpec::ca(variant)).unwrap();
        assert_eq!(again.id, first.id);
        assert!(again.cached);
    }
    assert_eq!(first.anchors, 2);
    assert_eq!(plugin.stats().unwrap().size, 1);
}

#[test]
fn a_new_client_certificate_or_key_is_a_new_profile() {
    let mut plugin = loopback_plugin();
    let ca = TestCa::new("mtls");
    let (cert1, key1) = ca.issue("client-one");
    let (cert2, key2) = ca.issue("client-two");
    let plain = plugin.prepare(&TrustSpec::ca(&ca.pem)).unwrap();
    let one = plugin
        .prepare(&TrustSpec::ca(&ca.pem).with_identity(&cert1, &key1))
        .unwrap();
    let two = plugin
        .prepare(&TrustSpec::ca(&ca.pem).with_identity(&cert2, &key2))
        .unwrap();
    assert!(one.mutual_tls && !plain.mutual_tls);
    assert!(plain.id != one.id && one.id != two.id);
}

#[test]
fn each_bad_input_has_its_own_error_and_loses_nothing() {
    let mut plugin = loopback_plugin();
    let ca = TestCa::new("good");
    let good = TrustSpec::ca(&ca.pem);
    let id = plugin.prepare(&good).unwrap().id;
    let (cert, key) = ca.issue("client");
    let (_, other_key) = ca.issue("other");

    assert_eq!(
        tls_error(plugin.prepare(&TrustSpec::ca(""))),
        TlsError::NoCertificates
    );
    assert!(
        matches!(tls_error(plugin.prepare(&TrustSpec::ca("garbage"))), TlsError::MalformedPem(m) if m.contains("no PEM section"))
    );
    assert!(
        matches!(tls_error(plugin.prepare(&TrustSpec::ca(&ca.pem[..ca.pem.len() - 30]))), TlsError::MalformedPem(m) if m.contains("no END line"))
    );
    let not_x509 = "-----BEGIN CERTIFICATE-----\naGVsbG8=\n-----END CERTIFICATE-----\n";
    assert!(matches!(
        tls_error(plugin.prepare(&TrustSpec::ca(not_x509))),
        TlsError::BadCertificate(_)
    ));
    let without_key = TrustSpec {
        client_certificate: Some(cert.clone()),
        ..good.clone()
    };
    assert_eq!(
        tls_error(plugin.prepare(&without_key)),
        TlsError::CertificateWithoutKey
    );
    let without_cert = TrustSpec {
        client_key: Some(key.clone().into()),
        ..good.clone()
    };
    assert_eq!(
        tls_error(plugin.prepare(&without_cert)),
        TlsError::KeyWithoutCertificate
    );
    let mismatched = good.clone().with_identity(&cert, &other_key);
    assert_eq!(
        tls_error(plugin.prepare(&mismatched)),
        TlsError::KeyMismatch
    );
    let oversize = TrustSpec::ca(format!("{}{}", ca.pem, " ".repeat(1 << 20)));
    assert_eq!(
        tls_error(plugin.prepare(&oversize)),
        TlsError::TooLarge(1 << 20)
    );

    let stats = plugin.stats().unwrap();
    assert_eq!(
        (stats.rejected, stats.size, stats.misses),
        (8, 1, 1),
        "nothing bad was cached or counted as built"
    );
    let again = plugin.prepare(&good).unwrap();
    assert!(
        again.cached && again.id == id,
        "the good entry still serves"
    );
}

#[test]
fn invalidate_and_clear_drop_entries() {
    let mut plugin = loopback_plugin();
    let spec = TrustSpec::ca(TestCa::new("reload").pem);
    let id = plugin.prepare(&spec).unwrap().id;
    assert!(plugin.invalidate(&id).unwrap());
    assert!(!plugin.invalidate(&id).unwrap());
    plugin.prepare(&spec).unwrap();
    plugin.clear().unwrap();
    assert_eq!(plugin.stats().unwrap().size, 0);
    assert!(!plugin.prepare(&spec).unwrap().cached);
}

#[test]
fn web_roots_alone_are_a_valid_profile() {
    let mut plugin = loopback_plugin();
    let profile = plugin
        .prepare(&TrustSpec {
            web_roots: true,
            ..TrustSpec::default()
        })
        .unwrap();
    assert!(profile.anchors > 100, "{}", profile.anchors);
}
