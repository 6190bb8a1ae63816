//! Prometheus metrics of a plugin and a pool after a known sequence of calls against
//! the development server and an upstream on 127.0.0.1: exact counts, text a
//! Prometheus parser accepts, and no session key or secret in it.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Duration;

use gateway_auth_devserver::{DevServer, defaults};
use gateway_auth_host::{
    ClientAuth, Clock, EgressPolicy, Grant, PasswordCredentials, PluginOptions, PluginPool,
    SessionGrant, TrustSpec, Upstreams, VirtualClock,
};
use gateway_auth_tests::{TestCa, TokenServer, dev_basic_client, dev_client, runtime};
use prometheus_parse::{Scrape, Value};

/// The session key the test opens: it must never show in the metrics.
const SESSION_KEY: &str = "tenant-42/session-key-7f3a";

/// Parses `text` with the `prometheus-parse` crate: every line must be understood.
fn parse(text: &str) -> Scrape {
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let scrape = Scrape::parse(lines).expect("the text is Prometheus exposition");
    // The parser skips a line whose value it cannot read, so every line is counted:
    // it folds a histogram's `_bucket` lines into one sample per label set and keeps
    // `_sum` and `_count` as samples of their own.
    let lines = text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'));
    let (buckets, single): (Vec<&str>, Vec<&str>) = lines.partition(|l| l.contains("_bucket{"));
    let histograms = buckets.iter().filter(|l| l.contains("le=\"+Inf\"")).count();
    assert_eq!(
        scrape.samples.len(),
        single.len() + histograms,
        "every sample parsed:\n{text}"
    );
    let help = text.lines().filter(|l| l.starts_with("# HELP ")).count();
    assert_eq!(scrape.docs.len(), help, "every family documented:\n{text}");
    scrape
}

/// The value of the counter or gauge `name` with exactly `labels`.
fn value(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    let wanted: BTreeMap<&str, &str> = labels.iter().copied().collect();
    let found: Vec<f64> = scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .filter(|s| {
            let have: BTreeMap<&str, &str> = s
                .labels
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            have == wanted
        })
        .map(|s| match &s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
            other => panic!("{name} is not a single value: {other:?}"),
        })
        .collect();
    assert_eq!(found.len(), 1, "one sample {name} {labels:?}: {found:?}");
    found[0]
}

/// One GET over an upstream stream, read to the end.
fn get(stream: &mut (impl Read + Write)) {
    stream
        .write_all(b"GET /token HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: 0\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
}

#[test]
fn a_scrape_after_a_known_sequence_shows_its_exact_counts_and_no_secret() {
    let server = DevServer::start(Default::default()).unwrap();
    let upstream_ca = TestCa::new("metrics-upstream");
    let upstream_server = TokenServer::start(&upstream_ca, None);
    // A virtual clock: the renewal is a step of it, and every request takes no time.
    let clock = VirtualClock::new();
    let plugin = runtime()
        .plugin(PluginOptions {
            egress: Arc::new(EgressPolicy::parse(["127.0.0.1"]).unwrap()),
            clock: Clock::Virtual(clock.clone()),
            ..PluginOptions::default()
        })
        .unwrap();
    let upstreams = Upstreams::new(plugin);
    let dev_spec = TrustSpec::ca(server.ca_pem());
    let upstream_spec = TrustSpec::ca(upstream_ca.pem.clone());

    let mut tokens = Vec::new();
    let (dev_profile, upstream_profile) = {
        let mut plugin = upstreams.plugin();
        // 3 prepares of 2 specs: 2 misses, 1 hit.
        let dev_profile = plugin.prepare(&dev_spec).unwrap();
        let upstream_profile = plugin.prepare(&upstream_spec).unwrap();
        assert!(plugin.prepare(&dev_spec).unwrap().cached);

        // A client-credentials request that succeeds, and one the server refuses.
        let client = dev_basic_client(&server);
        let token = plugin
            .request_token(&client, Grant::ClientCredentials)
            .unwrap();
        tokens.push(token.access_token.secret().to_string());
        let wrong = dev_client(
            &server,
            defaults::BASIC_CLIENT_ID,
            ClientAuth::ClientSecretBasic("not-the-secret".into()),
        );
        plugin
            .request_token(&wrong, Grant::ClientCredentials)
            .unwrap_err();

        // A password session: the second access-token call, 30 s before the token
        // expires (within the refresh skew), renews it with the refresh token.
        let grant = SessionGrant::Password(PasswordCredentials {
            username: defaults::USERNAME.into(),
            password: defaults::PASSWORD.into(),
        });
        plugin.open_session(SESSION_KEY, &client, &grant).unwrap();
        for _ in 0..2 {
            let token = plugin.access_token(SESSION_KEY).unwrap();
            tokens.push(token.access_token.secret().to_string());
            clock.advance(Duration::from_secs(defaults::TOKEN_LIFETIME_SECS - 30));
        }
        (dev_profile, upstream_profile)
    };

    // Two upstream connections: a full handshake, then a resumed one.
    let upstream = upstreams.upstream(upstream_spec);
    for _ in 0..2 {
        let mut stream = upstream
            .connect("127.0.0.1", upstream_server.port(), &[])
            .unwrap();
        get(&mut stream);
    }

    let text = upstreams.plugin().metrics_text().unwrap();
    let scrape = parse(&text);

    // prepare: 2 misses, 1 hit; every token request prepared the dev CA again (4
    // hits); the upstream prepared its spec once on first use (1) and each of its
    // connections is a hit too (2).
    let gets = "gateway_auth_tls_cache_gets_total";
    assert_eq!(value(&scrape, gets, &[("result", "miss")]), 2.0, "{text}");
    assert_eq!(value(&scrape, gets, &[("result", "hit")]), 8.0, "{text}");
    let evictions = "gateway_auth_tls_cache_evictions_total";
    assert_eq!(value(&scrape, evictions, &[("cause", "capacity")]), 0.0);
    assert_eq!(value(&scrape, evictions, &[("cause", "expired")]), 0.0);
    assert_eq!(value(&scrape, "gateway_auth_tls_cache_size", &[]), 2.0);
    assert_eq!(
        value(&scrape, "gateway_auth_tls_cache_capacity", &[]),
        256.0
    );

    let handshakes = "gateway_auth_tls_upstream_handshakes_total";
    assert_eq!(
        value(&scrape, handshakes, &[("kind", "full")]),
        1.0,
        "{text}"
    );
    assert_eq!(value(&scrape, handshakes, &[("kind", "resumed")]), 1.0);

    let requests = "gateway_auth_oauth_token_requests_total";
    let count =
        |grant, outcome| value(&scrape, requests, &[("grant", grant), ("outcome", outcome)]);
    assert_eq!(count("client_credentials", "ok"), 1.0, "{text}");
    assert_eq!(count("client_credentials", "protocol"), 1.0);
    assert_eq!(count("password", "ok"), 1.0);
    assert_eq!(count("refresh_token", "ok"), 1.0);
    let request_samples = scrape.samples.iter().filter(|s| s.metric == requests);
    assert_eq!(request_samples.count(), 4, "no other outcome:\n{text}");

    // The histogram: as many observations per grant as requests, cumulative buckets.
    let histogram = "gateway_auth_oauth_token_request_duration_seconds";
    let mut by_grant = BTreeMap::new();
    for sample in scrape.samples.iter().filter(|s| s.metric == histogram) {
        let Value::Histogram(buckets) = &sample.value else {
            panic!("{histogram} is not a histogram: {:?}", sample.value);
        };
        let grant = sample.labels.get("grant").unwrap().to_string();
        let last = buckets.last().unwrap();
        assert!(last.less_than.is_infinite(), "{text}");
        // The virtual clock stood still: every request is in the first bucket.
        assert_eq!(buckets[0].less_than, 0.005, "{text}");
        assert!(buckets.iter().all(|b| b.count == last.count), "{text}");
        by_grant.insert(grant, last.count);
    }
    let expected: BTreeMap<String, f64> = [
        ("client_credentials", 2.0),
        ("password", 1.0),
        ("refresh_token", 1.0),
    ]
    .into_iter()
    .map(|(g, n)| (g.to_string(), n))
    .collect();
    assert_eq!(by_grant, expected, "{text}");
    let counted = |grant: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("{histogram}_count{{grant=\"{grant}\"}} ")))
            .map(|l| l.rsplit(' ').next().unwrap().to_string())
    };
    assert_eq!(
        counted("client_credentials").as_deref(),
        Some("2"),
        "{text}"
    );

    let sessions = "gateway_auth_oauth_sessions";
    assert_eq!(
        value(&scrape, sessions, &[("phase", "valid")]),
        1.0,
        "{text}"
    );
    for phase in [
        "empty",
        "authorizing",
        "backoff",
        "authorization_required",
        "failed",
    ] {
        assert_eq!(
            value(&scrape, sessions, &[("phase", phase)]),
            0.0,
            "{phase}"
        );
    }

    let expiry = "gateway_auth_tls_profile_expiry_timestamp_seconds";
    for profile in [&dev_profile, &upstream_profile] {
        let at = value(&scrape, expiry, &[("profile", &profile.id)]);
        assert_eq!(Some(at as u64), profile.not_after, "{text}");
    }

    // What must never be there: the session key, the secrets, the tokens.
    let mut never = vec![
        SESSION_KEY.to_string(),
        defaults::BASIC_CLIENT_SECRET.to_string(),
        "not-the-secret".to_string(),
        defaults::PASSWORD.to_string(),
        defaults::USERNAME.to_string(),
    ];
    never.extend(tokens);
    for secret in never {
        assert!(!text.contains(&secret), "{secret:?} appears in:\n{text}");
    }
}

#[test]
fn a_pool_scrape_adds_up_its_instances_and_one_in_use_keeps_its_last_figures() {
    let server = DevServer::start(Default::default()).unwrap();
    let options = PluginOptions {
        egress: Arc::new(EgressPolicy::parse(["127.0.0.1"]).unwrap()),
        ..PluginOptions::default()
    };
    let pool = PluginPool::new(runtime(), options, 2).unwrap();
    let client = dev_basic_client(&server);
    let ok = |text: &str| {
        let scrape = parse(text);
        let labels = [("grant", "client_credentials"), ("outcome", "ok")];
        value(&scrape, "gateway_auth_oauth_token_requests_total", &labels)
    };
    {
        // Both instances at once, so each sends one request.
        let (mut a, mut b) = (pool.get().unwrap(), pool.get().unwrap());
        a.request_token(&client, Grant::ClientCredentials).unwrap();
        b.request_token(&client, Grant::ClientCredentials).unwrap();
    }
    let text = pool.metrics_text().unwrap();
    assert_eq!(ok(&text), 2.0, "{text}");
    let capacity = value(&parse(&text), "gateway_auth_tls_cache_capacity", &[]);
    assert_eq!(capacity, 512.0, "two caches of 256:\n{text}");

    // An instance in use during a scrape counts with what it showed last time.
    let mut busy = pool.get().unwrap();
    busy.request_token(&client, Grant::ClientCredentials)
        .unwrap();
    assert_eq!(ok(&pool.metrics_text().unwrap()), 2.0);
    drop(busy);
    assert_eq!(ok(&pool.metrics_text().unwrap()), 3.0);
}
