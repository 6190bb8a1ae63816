//! Replicas in separate processes sharing one store (a SQLite file, a Redis server), one
//! of them killed while it renews, and Redis stopped under running instances.

use std::io::{BufReader, Read};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use gateway_auth_devserver::{DevServer, Options};
use gateway_auth_host::{
    EgressPolicy, Error, OAuthError, Plugin, PluginOptions, SessionPhase, open_store,
};
use gateway_auth_tests::{RedisServer, replica_client, replica_grant, replica_users, runtime};

/// A replica process (`replica-worker`) on `store`, told about `server`.
struct Worker {
    child: Child,
    stdout: BufReader<ChildStdout>,
}

impl Worker {
    fn spawn(store: &str, server: &DevServer, ca: &Path, args: &[(&str, String)]) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_replica-worker"));
        command
            .arg(format!("store={store}"))
            .arg(format!("token-endpoint={}", server.token_endpoint()))
            .arg(format!("ca={}", ca.display()))
            .args(args.iter().map(|(name, value)| format!("{name}={value}")))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("replica-worker starts");
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Self { child, stdout }
    }

    /// Waits for the worker's figures: (calls, failures, sessions not valid).
    fn finish(mut self) -> (u64, u64, u64) {
        let mut out = String::new();
        self.stdout.read_to_string(&mut out).unwrap();
        let mut err = String::new();
        self.child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "replica failed ({status}): {out}\n{err}");
        let figure = |name: &str| -> u64 {
            out.split_whitespace()
                .find_map(|w| w.strip_prefix(&format!("{name}=")))
                .unwrap_or_else(|| panic!("no {name} in {out:?}"))
                .parse()
                .unwrap()
        };
        let figures = (figure("calls"), figure("failures"), figure("not-valid"));
        assert_eq!(figures.1, 0, "failed calls: {err}");
        figures
    }
}

fn ca_file(server: &DevServer, dir: &Path) -> std::path::PathBuf {
    let path = dir.join("ca.pem");
    std::fs::write(&path, server.ca_pem()).unwrap();
    path
}

fn numbers(pairs: &[(&'static str, u64)]) -> Vec<(&'static str, String)> {
    pairs.iter().map(|(n, v)| (*n, v.to_string())).collect()
}

fn refresh_requests(server: &DevServer) -> u64 {
    grant_requests(server, "refresh_token")
}

fn grant_requests(server: &DevServer, grant: &str) -> u64 {
    server
        .requests()
        .iter()
        .filter(|r| r.grant_type.as_deref() == Some(grant))
        .count() as u64
}

/// Three processes, three threads each, on 20 sessions whose tokens live 3 s.
fn three_processes_share(store: &str, dir: &Path) {
    const SESSIONS: usize = 20;
    const LIFETIME: u64 = 3;
    let server = DevServer::start(Options {
        users: replica_users(SESSIONS),
        token_lifetime: LIFETIME,
        ..Default::default()
    })
    .unwrap();
    server.set_reuse_detection(true);
    server.set_token_delay(Duration::from_millis(100));
    let ca = ca_file(&server, dir);

    let started = Instant::now();
    let args = numbers(&[
        ("sessions", SESSIONS as u64),
        ("instances", 2),
        ("threads", 3),
        ("seconds", 10),
    ]);
    let workers: Vec<Worker> = (0..3)
        .map(|_| Worker::spawn(store, &server, &ca, &args))
        .collect();
    let figures: Vec<_> = workers.into_iter().map(Worker::finish).collect();
    let elapsed = started.elapsed().as_secs_f64();

    for (calls, _, not_valid) in &figures {
        assert!(*calls > 100, "{figures:?}");
        assert_eq!(*not_valid, 0, "every session ends valid in every process");
    }
    assert_eq!(
        server.reuse_detections(),
        0,
        "a refresh token was spent twice"
    );
    let refreshes = server.refreshes_per_lineage();
    assert_eq!(
        refreshes.len(),
        SESSIONS,
        "one login per session, shared by all"
    );
    assert_eq!(grant_requests(&server, "password"), SESSIONS as u64);
    let most = (elapsed / (LIFETIME - 1) as f64).ceil() as u64;
    assert!(
        refreshes.iter().all(|r| (1..=most).contains(r)),
        "refreshes per session {refreshes:?}, at most {most} expected over {elapsed:.1} s"
    );
    assert_eq!(
        refresh_requests(&server),
        refreshes.iter().sum::<u64>(),
        "every refresh sent was a first use"
    );
    println!(
        "{store}: {} calls in 3 processes over {elapsed:.1} s, refreshes per session {refreshes:?}",
        figures.iter().map(|f| f.0).sum::<u64>()
    );
}

#[test]
fn three_processes_sharing_a_sqlite_file_never_spend_a_refresh_token_twice() {
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite:{}", dir.path().join("tokens.db").display());
    three_processes_share(&store, dir.path());
}

#[test]
fn three_processes_sharing_a_redis_server_never_spend_a_refresh_token_twice() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    three_processes_share(&redis.url(), dir.path());
}

#[test]
fn a_replica_killed_while_its_refresh_is_in_flight_is_taken_over_when_its_lease_lapses() {
    // Tokens live 12 s and are renewed 9 s before expiry (3 s after issue); a lease
    // lasts the 4 s call deadline plus a margin, so the token outlives a dead holder's
    // lease and the others serve it meanwhile.
    let server = DevServer::start(Options {
        users: replica_users(1),
        token_lifetime: 12,
        ..Default::default()
    })
    .unwrap();
    server.set_reuse_detection(true);
    let dir = tempfile::tempdir().unwrap();
    let ca = ca_file(&server, dir.path());
    let store = format!("sqlite:{}", dir.path().join("tokens.db").display());
    let mut client = replica_client(&server);
    client.refresh_skew_seconds = Some(9);
    client.timeout_ms = Some(4_000);
    let plugin = || -> Plugin {
        runtime()
            .plugin(PluginOptions {
                egress: Arc::new(EgressPolicy::parse(["127.0.0.1"]).unwrap()),
                store: open_store(&store).unwrap(),
                ..PluginOptions::default()
            })
            .unwrap()
    };
    let mut observer = plugin();
    observer
        .open_session("s0", &client, &replica_grant(0))
        .unwrap();
    observer.access_token("s0").unwrap();
    let args = numbers(&[
        ("sessions", 1),
        ("instances", 1),
        ("threads", 1),
        ("skew", 9),
        ("timeout-ms", 4_000),
    ]);
    let with_seconds = |seconds: u64| {
        let mut args = args.clone();
        args.push(("seconds", seconds.to_string()));
        args
    };

    // The victim's refresh reaches the server, which holds it for 2 s; the victim is
    // killed meanwhile. Had the server answered it, the refresh token would be spent
    // and the takeover below would be a reuse.
    server.set_token_delay(Duration::from_secs(2));
    let received = server.token_requests();
    let mut victim = Worker::spawn(&store, &server, &ca, &with_seconds(60));
    let waiting = Instant::now();
    while server.token_requests() == received {
        assert!(
            waiting.elapsed() < Duration::from_secs(30),
            "the victim never renewed"
        );
        thread::sleep(Duration::from_millis(5));
    }
    victim.child.kill().unwrap();
    victim.child.wait().unwrap();
    let status = observer.session_status("s0").unwrap().unwrap();
    let lease = status
        .lease
        .expect("the killed replica's lease is in the store");
    assert_eq!(status.phase, SessionPhase::Valid);

    let survivors: Vec<Worker> = (0..2)
        .map(|_| Worker::spawn(&store, &server, &ca, &with_seconds(10)))
        .collect();
    let figures: Vec<_> = survivors.into_iter().map(Worker::finish).collect();

    for (calls, _, not_valid) in &figures {
        assert!(*calls > 100, "{figures:?}");
        assert_eq!(*not_valid, 0, "the session ends valid");
    }
    assert_eq!(
        server.reuse_detections(),
        0,
        "a refresh token was spent twice"
    );
    assert_eq!(
        grant_requests(&server, "password"),
        1,
        "nobody had to log in again"
    );
    let refreshes = server.refreshes_per_lineage();
    assert!(refreshes[0] >= 1, "the survivors renewed: {refreshes:?}");
    assert_eq!(refresh_requests(&server), refreshes[0]);
    let now = unix_now();
    let status = observer.session_status("s0").unwrap().unwrap();
    assert!(
        status
            .lease
            .as_ref()
            .is_none_or(|l| l.holder != lease.holder),
        "the dead holder's lease was taken over: {status:?}"
    );
    assert!(status.expires_at.unwrap() > now);
}

#[test]
fn with_redis_stopped_live_tokens_are_served_renewals_name_the_store_and_resume_after() {
    let mut redis = RedisServer::start();
    let server = DevServer::start(Options {
        users: replica_users(3),
        token_lifetime: 4,
        ..Default::default()
    })
    .unwrap();
    server.set_reuse_detection(true);
    let client = replica_client(&server);
    let store = open_store(&redis.url()).unwrap();
    let mut instances: Vec<Plugin> = (0..2)
        .map(|_| {
            runtime()
                .plugin(PluginOptions {
                    egress: Arc::new(EgressPolicy::parse(["127.0.0.1"]).unwrap()),
                    store: store.clone(),
                    ..PluginOptions::default()
                })
                .unwrap()
        })
        .collect();
    let keys: Vec<String> = (0..3).map(|i| format!("s{i}")).collect();
    let mut first = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        for plugin in &mut instances {
            plugin
                .open_session(key, &client, &replica_grant(i))
                .unwrap();
        }
        let token = instances[0].access_token(key).unwrap();
        assert_eq!(
            instances[1].access_token(key).unwrap().access_token,
            token.access_token,
            "the second instance read the first one's token"
        );
        first.push(token);
    }
    let sent = server.token_requests();

    redis.stop();
    let expiry = first.iter().filter_map(|t| t.expires_at).max().unwrap();
    let mut served = 0;
    let mut store_errors = 0;
    while unix_now() <= expiry + 1 {
        for plugin in &mut instances {
            for (key, token) in keys.iter().zip(&first) {
                match plugin.access_token(key) {
                    Ok(t) => {
                        assert_eq!(t.access_token, token.access_token);
                        assert!(unix_now() <= token.expires_at.unwrap());
                        served += 1;
                    }
                    Err(Error::OAuth(OAuthError::Store(message))) => {
                        assert!(message.contains("redis at"), "{message}");
                        assert!(unix_now() + 1 >= token.expires_at.unwrap(), "{message}");
                        store_errors += 1;
                    }
                    Err(other) => panic!("{key}: {other}"),
                }
            }
        }
        thread::sleep(Duration::from_millis(50));
    }
    assert!(served > 10, "valid tokens were served: {served}");
    assert!(store_errors > 0, "renewals named the store");
    assert_eq!(
        server.token_requests(),
        sent,
        "no request without the lease"
    );

    redis.start_again();
    for plugin in &mut instances {
        for (key, token) in keys.iter().zip(&first) {
            let renewed = plugin.access_token(key).unwrap();
            assert_ne!(renewed.access_token, token.access_token, "{key} renewed");
            assert_eq!(
                plugin.session_status(key).unwrap().unwrap().phase,
                SessionPhase::Valid
            );
        }
    }
    assert_eq!(server.refreshes_per_lineage(), vec![1, 1, 1]);
    assert_eq!(server.reuse_detections(), 0);
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}
