//! Renewals under faults, through the real component and host against servers on
//! 127.0.0.1:
//!
//! - a rotated refresh token whose store write is refused is written again within the
//!   renewal's lease, or first thing at the holder's next call, so the other instance
//!   never renews with the spent token (no refresh token reaches the server twice);
//! - secrets a server echoes escaped or encoded (JSON in a JSON string, percent-encoded,
//!   HTML entities, arrays, `Bearer%20`), or a held token echoed bare, never reach an
//!   error, and the server's error code still does;
//! - a session's status counts refusals (a wrong secret) apart from transient failures
//!   (a server that is down).

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use gateway_auth_devserver::{DevServer, Misbehaviour, Options, defaults};
use gateway_auth_host::{
    Client, ClientAuth, Clock, EgressPolicy, Error, Grant, MemoryStore, OAuthError,
    PasswordCredentials, Plugin, PluginOptions, SessionGrant, SessionPhase, TokenStore, TrustSpec,
    VirtualClock,
};
use gateway_auth_tests::{TestCa, TokenServer, dev_basic_client, runtime};

#[path = "support/faulty_store.rs"]
mod faulty_store;
use faulty_store::{Fault, FaultyStore};

fn plugin_with(store: Arc<dyn TokenStore>, clock: Clock) -> Plugin {
    runtime()
        .plugin(PluginOptions {
            egress: Arc::new(EgressPolicy::parse(["127.0.0.1"]).unwrap()),
            store,
            clock,
            ..PluginOptions::default()
        })
        .unwrap()
}

fn password_grant(password: &str) -> SessionGrant {
    SessionGrant::Password(PasswordCredentials {
        username: defaults::USERNAME.into(),
        password: password.into(),
    })
}

// ---- a rotated refresh token whose store write fails ----

/// The session key both instances share.
const KEY: &str = "shared";
/// Access tokens live 6 s and are renewed 1 s before they expire (no jitter). The
/// renewal's lease lapses 3 s after it began (the 1 s deadline and 2 s of margin):
/// well before the holder's next renewal, so a renewal after the lapse is the other
/// instance's, from whatever the store holds.
const LIFETIME: u64 = 6;
/// The clients' deadline.
const TIMEOUT: Duration = Duration::from_millis(1_000);
/// How long a lease outlives its holder's call deadline (`LEASE_MARGIN_MS`).
const LEASE_MARGIN: Duration = Duration::from_secs(2);
/// How late past its deadline a call may return (`CALL_OVERRUN_MS`).
const OVERRUN: Duration = Duration::from_millis(500);

/// Two plugin instances sharing a password session through one store that fails on
/// demand, against a dev server with reuse detection; what they did so far.
struct Replicas {
    server: DevServer,
    memory: Arc<MemoryStore>,
    store: Arc<FaultyStore>,
    instances: [Plugin; 2],
    /// Calls that failed, described.
    errors: Vec<String>,
    /// The refresh tokens the store held, in order, each once.
    stored: Vec<String>,
}

impl Replicas {
    fn start() -> Self {
        let server = DevServer::start(Options {
            token_lifetime: LIFETIME,
            ..Options::default()
        })
        .unwrap();
        server.set_reuse_detection(true);
        let memory = Arc::new(MemoryStore::new());
        let store = Arc::new(FaultyStore::new(memory.clone()));
        let mut client = dev_basic_client(&server);
        client.timeout_ms = Some(TIMEOUT.as_millis() as u32);
        client.refresh_skew_seconds = Some(1);
        client.refresh_jitter_seconds = Some(0);
        let mut instances = [(); 2].map(|()| plugin_with(store.clone(), Clock::Real));
        for instance in &mut instances {
            instance
                .open_session(KEY, &client, &password_grant(defaults::PASSWORD))
                .unwrap();
        }
        Self {
            server,
            memory,
            store,
            instances,
            errors: Vec::new(),
            stored: Vec::new(),
        }
    }

    /// The stored record's text (it is JSON; the tests read two fields of it).
    fn record(&self) -> String {
        let bytes = self.memory.get(KEY).unwrap().expect("a stored record");
        String::from_utf8(bytes).unwrap()
    }

    /// The refresh token the stored record holds.
    fn stored_refresh_token(&self) -> Option<String> {
        let record = self.record();
        let (_, rest) = record.split_once(r#""refresh_token":""#)?;
        rest.split_once('"').map(|(token, _)| token.to_string())
    }

    /// Whether the stored record names a lease holder.
    fn lease_stored(&self) -> bool {
        self.record().contains(r#""lease":{"#)
    }

    /// One `access_token` call through instance `which`: when it began, how long it
    /// took, and whether the store refused anything meanwhile.
    fn call(&mut self, which: usize) -> (Instant, Duration, bool) {
        let refused = self.store.refused();
        let began = Instant::now();
        let result = self.instances[which].access_token(KEY);
        let took = began.elapsed();
        if let Err(e) = result {
            self.errors.push(format!("instance {which}: {e}"));
        }
        if let Some(token) = self.stored_refresh_token()
            && self.stored.last() != Some(&token)
        {
            self.stored.push(token);
        }
        (began, took, self.store.refused() > refused)
    }

    /// Calls both instances in turn, 50 ms apart, until a call meets the store's fault:
    /// which instance made it, when its lease lapses, and how long it took.
    fn until_the_fault(&mut self) -> (usize, Instant, Duration) {
        let bound = Instant::now() + Duration::from_secs(LIFETIME * 2);
        let mut which = 0;
        while Instant::now() < bound {
            let (began, took, faulted) = self.call(which);
            if faulted {
                return (which, began + TIMEOUT + LEASE_MARGIN, took);
            }
            which = 1 - which;
            thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "no renewal met the store's fault within {bound:?}; errors: {:?}",
            self.errors
        );
    }

    /// Calls both instances in turn, 50 ms apart, until `renewals` more refresh tokens
    /// were stored and `lapse` has passed.
    fn alternate(&mut self, renewals: usize, lapse: Instant) {
        let target = self.stored.len() + renewals;
        let bound = Instant::now() + Duration::from_secs(LIFETIME * (renewals as u64 + 2));
        let mut which = 0;
        while (self.stored.len() < target || Instant::now() < lapse) && Instant::now() < bound {
            self.call(which);
            which = 1 - which;
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// How many `/token` requests of `grant_type` the server saw.
    fn grants(&self, grant_type: &str) -> usize {
        self.server
            .requests()
            .iter()
            .filter(|r| r.path == "/token" && r.grant_type.as_deref() == Some(grant_type))
            .count()
    }

    /// What a user of the session must see after the fault: every call served, no
    /// refresh token sent twice, no reuse detected, no new login, `renewals` refreshes
    /// at least, and the store left with the newest refresh token.
    fn assert_never_spent_twice(&mut self, renewals: usize) {
        let refreshes = self.grants("refresh_token");
        println!(
            "{} refreshes, {} refresh tokens stored, most presentations of one {}, reuse detections {}, store refusals {}",
            refreshes,
            self.stored.len(),
            self.server.most_presentations_of_a_refresh_token(),
            self.server.reuse_detections(),
            self.store.refused(),
        );
        assert_eq!(self.errors, Vec::<String>::new(), "every call was served");
        assert_eq!(
            self.server.most_presentations_of_a_refresh_token(),
            1,
            "no refresh token reached the server twice"
        );
        assert_eq!(self.server.reuse_detections(), 0);
        assert_eq!(self.grants("password"), 1, "never logged in again");
        assert!(refreshes >= renewals, "{refreshes} refreshes");
        // The store ends with the newest refresh token: never presented, and the one
        // the server still takes (it refuses a token it rotated away, and detects its
        // reuse).
        let newest = self
            .stored_refresh_token()
            .expect("a refresh token is stored");
        assert_eq!(self.server.refresh_token_presentations(&newest), 0);
        let client = dev_basic_client(&self.server);
        let refreshed =
            self.instances[0].request_token(&client, Grant::RefreshToken(newest.into()));
        assert!(refreshed.is_ok(), "{refreshed:?}");
        assert_eq!(self.server.reuse_detections(), 0);
    }
}

#[test]
fn a_rotated_refresh_token_the_store_refuses_briefly_is_stored_within_the_renewal_and_never_sent_twice()
 {
    let mut r = Replicas::start();
    r.call(0);
    let acquired = r
        .stored_refresh_token()
        .expect("the password grant's refresh token");
    // The next compare-and-swap takes the first renewal's lease; the two after it (the
    // write of the rotated refresh token, and its first retry) fail.
    r.store.fail_after(1, Fault::Swaps(2));
    let (holder, lapse, _) = r.until_the_fault();
    assert_eq!(r.store.refused(), 2, "both refusals met the holder's call");
    let rotated = r.stored_refresh_token().unwrap();
    assert_ne!(
        rotated, acquired,
        "the rotation was stored by instance {holder}'s call"
    );
    assert!(!r.lease_stored(), "and the lease given back with it");
    assert_eq!(r.server.refresh_token_presentations(&acquired), 1);

    // Past three more renewals, and the first renewal's lease lapse.
    r.alternate(3, lapse);
    r.assert_never_spent_twice(4);
}

#[test]
fn a_rotated_refresh_token_the_store_refused_for_the_whole_call_is_stored_at_the_holders_next_call()
{
    let mut r = Replicas::start();
    r.call(0);
    let acquired = r
        .stored_refresh_token()
        .expect("the password grant's refresh token");
    // The first renewal takes its lease, then the store goes down for the rest of
    // the holder's call.
    r.store.fail_after(1, Fault::Down);
    let (holder, lapse, took) = r.until_the_fault();
    assert_eq!(
        r.errors,
        Vec::<String>::new(),
        "the holder was served its new token"
    );
    assert!(
        took <= TIMEOUT + OVERRUN,
        "the holder's call returned by its deadline: {took:?}"
    );
    r.store.recover();
    // The store still holds the spent refresh token under the holder's lease.
    assert_eq!(r.stored_refresh_token().as_ref(), Some(&acquired));
    assert!(r.lease_stored());

    // The holder's next call stores its rotation before anything else; the other
    // instance then finds it.
    r.call(holder);
    let rotated = r.stored_refresh_token().unwrap();
    assert_ne!(rotated, acquired, "instance {holder} stored its rotation");
    assert!(!r.lease_stored(), "and gave the lease back");
    assert_eq!(r.server.refresh_token_presentations(&rotated), 0);
    r.call(1 - holder);
    assert_eq!(r.stored_refresh_token(), Some(rotated));

    r.alternate(3, lapse);
    r.assert_never_spent_twice(4);
}

// ---- escaped and encoded secrets ----

/// The first 8-character piece of `secret` that `text` shows, if any.
fn fragment_of<'a>(secret: &'a str, text: &str) -> Option<&'a str> {
    (0..=secret.len().saturating_sub(8))
        .map(|i| &secret[i..(i + 8).min(secret.len())])
        .find(|piece| text.contains(piece))
}

/// `len` letters and digits drawn from `seed`: a value that occurs nowhere else.
fn made_up(seed: u64, len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ALPHABET[(x % ALPHABET.len() as u64) as usize] as char
        })
        .collect()
}

/// A JSON string literal of `text`.
fn json_string(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

/// One answer of an [`EchoServer`].
#[derive(Clone)]
struct Answer {
    status: u16,
    content_type: String,
    body: String,
}

/// A token endpoint whose next answers are what the test last set.
struct EchoServer {
    server: TokenServer,
    ca: TestCa,
    answer: Arc<Mutex<Answer>>,
}

impl EchoServer {
    fn start() -> Self {
        let ca = TestCa::new("echo");
        let answer = Arc::new(Mutex::new(Answer {
            status: 500,
            content_type: "text/plain".into(),
            body: "unset".into(),
        }));
        let current = answer.clone();
        let server = TokenServer::start_with(
            &ca,
            None,
            Arc::new(move |out: &mut dyn Write, _| {
                let a = current.lock().unwrap().clone();
                let reply = format!(
                    "HTTP/1.1 {} Echo\r\ncontent-type: {}\r\ncontent-length: {}\r\nretry-after: 3600\r\nconnection: close\r\n\r\n{}",
                    a.status,
                    a.content_type,
                    a.body.len(),
                    a.body
                );
                let _ = out.write_all(reply.as_bytes());
            }),
        );
        Self { server, ca, answer }
    }

    fn answer(&self, status: u16, content_type: &str, body: String) {
        *self.answer.lock().unwrap() = Answer {
            status,
            content_type: content_type.into(),
            body,
        };
    }

    /// A `client_secret_post` client with `secret`.
    fn client(&self, secret: &str) -> Client {
        let mut client = Client::new(
            "gateway",
            ClientAuth::ClientSecretPost(secret.into()),
            TrustSpec::ca(&self.ca.pem),
        );
        client.token_endpoint = Some(self.server.url.clone());
        client.timeout_ms = Some(2_000);
        client
    }
}

/// The shapes of issue 14 in which a server echoes a secret `value` under `key`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shape {
    /// `{"detail":"{\"key\":\"value\"}"}`
    JsonInJsonString,
    /// `key%3Dvalue`
    UrlEncoded,
    /// `%7B%22key%22%3A%22value%22%7D`
    UrlEncodedJson,
    /// `{"key":["value"]}`
    JsonArray,
    /// `key&#61;value`
    HtmlEntity,
    /// `Authorization: Bearer%20value`
    BearerPercent20,
    /// `error_description=rejected+key%3Dvalue` (a form body: the description, once
    /// decoded, is `rejected key=value`)
    PercentInErrorDescription,
}

const SHAPES: [Shape; 7] = [
    Shape::JsonInJsonString,
    Shape::UrlEncoded,
    Shape::UrlEncodedJson,
    Shape::JsonArray,
    Shape::HtmlEntity,
    Shape::BearerPercent20,
    Shape::PercentInErrorDescription,
];

impl Shape {
    /// The server's text with the echo, as a body (or a description) holds it.
    fn echo(self, key: &str, value: &str) -> String {
        match self {
            Shape::JsonInJsonString => {
                format!(r#"{{"detail":"{{\"{key}\":\"{value}\"}}"}}"#)
            }
            Shape::UrlEncoded => format!("upstream rejected {key}%3D{value}"),
            Shape::UrlEncodedJson => format!("upstream rejected %7B%22{key}%22%3A%22{value}%22%7D"),
            Shape::JsonArray => format!(r#"{{"{key}":["{value}"]}}"#),
            Shape::HtmlEntity => format!("<p>upstream rejected {key}&#61;{value}</p>"),
            Shape::BearerPercent20 => format!("upstream rejected Authorization: Bearer%20{value}"),
            Shape::PercentInErrorDescription => {
                format!("error_description=rejected+{key}%3D{value}")
            }
        }
    }
}

/// How the server answers with the echo.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// 400 `invalid_request`, the echo in `error_description`.
    Refused,
    /// 503 (with `Retry-After`), the echo as the plain-text body.
    Unavailable,
    /// 200 `invalid_request`, the echo in `error_description`: no token.
    ErrorIn200,
    /// 200 that is neither JSON nor a form, the echo in its body and content type.
    NotAToken,
}

const KINDS: [Kind; 4] = [
    Kind::Refused,
    Kind::Unavailable,
    Kind::ErrorIn200,
    Kind::NotAToken,
];

impl Kind {
    /// Sets `server` to answer with `shape` echoing `value` under `key`.
    fn answer(self, server: &EchoServer, shape: Shape, key: &str, value: &str) {
        let echo = shape.echo(key, value);
        let described = |status| match shape {
            Shape::PercentInErrorDescription => server.answer(
                status,
                "application/x-www-form-urlencoded",
                format!("error=invalid_request&{echo}"),
            ),
            _ => server.answer(
                status,
                "application/json",
                format!(
                    r#"{{"error":"invalid_request","error_description":{}}}"#,
                    json_string(&echo)
                ),
            ),
        };
        match self {
            Kind::Refused => described(400),
            Kind::ErrorIn200 => described(200),
            Kind::Unavailable => server.answer(503, "text/plain", echo),
            Kind::NotAToken => {
                let content_type = format!("text/html; {}", echo.replace(['\r', '\n'], " "));
                server.answer(200, &content_type, format!("<html>{echo}</html>"))
            }
        }
    }

    /// Whether `err` carries what the server said it was, as far as it said.
    fn carried_by(self, err: &Error) -> bool {
        match self {
            Kind::Refused => matches!(err,
                Error::OAuth(OAuthError::Protocol(p)) if p.status == 400 && p.error == "invalid_request"),
            Kind::ErrorIn200 => matches!(err,
                Error::OAuth(OAuthError::Protocol(p)) if p.status == 200 && p.error == "invalid_request"),
            Kind::Unavailable => {
                matches!(err, Error::OAuth(OAuthError::HttpStatus(h)) if h.status == 503)
            }
            Kind::NotAToken => matches!(err, Error::OAuth(OAuthError::InvalidResponse(_))),
        }
    }
}

/// What is wrong with `result` as an answer that echoed `secrets`: a token, a
/// fragment of a secret in its Display or Debug, or (when `kind` is given) a lost
/// error code.
fn leaks(
    result: Result<impl std::fmt::Debug, Error>,
    secrets: &[&str],
    kind: Option<Kind>,
) -> Vec<String> {
    let err = match result {
        Ok(token) => return vec![format!("a token: {token:?}")],
        Err(err) => err,
    };
    let text = format!("{err} / {err:?}");
    let mut found: Vec<String> = secrets
        .iter()
        .filter_map(|secret| fragment_of(secret, &text))
        .map(|piece| format!("shows {piece:?}: {text}"))
        .collect();
    if let Some(kind) = kind {
        if !kind.carried_by(&err) {
            found.push(format!("not the server's {kind:?} answer: {text}"));
        }
        // The echo did reach the error, masked: the check above looked at it.
        if !text.contains("[redacted]") {
            found.push(format!("no echo masked: {text}"));
        }
    }
    found
}

#[test]
fn secrets_echoed_escaped_or_encoded_never_reach_an_error_and_the_error_code_does() {
    let client_secret = made_up(1, 32);
    let password = made_up(2, 32);
    let never_sent = made_up(3, 40);
    let secrets = [
        client_secret.as_str(),
        password.as_str(),
        never_sent.as_str(),
    ];
    let echoed = [
        ("client_secret", client_secret.as_str()),
        ("password", password.as_str()),
        ("access_token", never_sent.as_str()),
    ];
    let server = EchoServer::start();
    let client = server.client(&client_secret);
    let mut plugin = plugin_with(Arc::new(MemoryStore::new()), Clock::Real);
    let mut problems = Vec::new();
    let mut cases = 0;
    for kind in KINDS {
        for shape in SHAPES {
            for (key, value) in echoed {
                cases += 1;
                let case = format!("{kind:?} {shape:?} {key}");
                kind.answer(&server, shape, key, value);
                let grant = Grant::Password(PasswordCredentials {
                    username: defaults::USERNAME.into(),
                    password: password.as_str().into(),
                });
                let requested = plugin.request_token(&client, grant);
                problems.extend(
                    leaks(requested, &secrets, Some(kind))
                        .into_iter()
                        .map(|p| format!("{case}, request_token: {p}")),
                );
                // A session: the failure itself, then the held failure or backoff the
                // next call answers with.
                let session = format!("s{cases}");
                plugin
                    .open_session(&session, &client, &password_grant(&password))
                    .unwrap();
                for (call, code) in [("first", Some(kind)), ("second", None)] {
                    let answered = plugin.access_token(&session);
                    problems.extend(
                        leaks(answered, &secrets, code)
                            .into_iter()
                            .map(|p| format!("{case}, {call} access_token: {p}")),
                    );
                }
            }
        }
    }
    assert_eq!(cases, 84);
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn an_expired_access_token_echoed_bare_in_the_answer_to_its_renewal_stays_out_of_the_error() {
    let client_secret = made_up(10, 32);
    let password = made_up(11, 32);
    let server = EchoServer::start();
    let client = server.client(&client_secret);
    let clock = VirtualClock::new();
    let mut plugin = plugin_with(Arc::new(MemoryStore::new()), Clock::Virtual(clock.clone()));
    let mut problems = Vec::new();
    let mut n = 0;
    // Renewed by the password grant (no refresh token held) or by a refresh.
    for with_refresh_token in [false, true] {
        for kind in [Kind::Refused, Kind::Unavailable] {
            n += 1;
            let held = made_up(100 + n, 40);
            let refresh = made_up(200 + n, 40);
            let refresh_member = if with_refresh_token {
                format!(r#","refresh_token":"{refresh}""#)
            } else {
                String::new()
            };
            server.answer(
                200,
                "application/json",
                format!(
                    r#"{{"access_token":"{held}","token_type":"Bearer","expires_in":60{refresh_member}}}"#
                ),
            );
            let key = format!("held-{n}");
            plugin
                .open_session(&key, &client, &password_grant(&password))
                .unwrap();
            let token = plugin.access_token(&key).unwrap();
            assert_eq!(token.access_token.secret(), held);
            let status = plugin.session_status(&key).unwrap().unwrap();
            assert_eq!(status.has_refresh_token, with_refresh_token);

            clock.advance(Duration::from_secs(120));
            // Bare: no key or scheme shows what they are; only the session knows.
            let echo = match with_refresh_token {
                true => format!("the access token {held} expired; refresh token {refresh}"),
                false => format!("the access token {held} expired"),
            };
            match kind {
                Kind::Refused => server.answer(
                    400,
                    "application/json",
                    format!(
                        r#"{{"error":"invalid_request","error_description":{}}}"#,
                        json_string(&echo)
                    ),
                ),
                _ => server.answer(503, "text/plain", echo),
            }
            let renewed = plugin.access_token(&key);
            let mut secrets = vec![held.as_str(), &client_secret, &password];
            if with_refresh_token {
                secrets.push(&refresh);
            }
            problems.extend(
                leaks(renewed, &secrets, Some(kind))
                    .into_iter()
                    .map(|p| format!("{kind:?}, renewed by refresh {with_refresh_token}: {p}")),
            );
        }
    }
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

// ---- failures and refusals ----

#[test]
fn a_sessions_status_tells_a_refused_client_from_a_server_that_is_down() {
    let server = DevServer::start(Default::default()).unwrap();
    let clock = VirtualClock::new();
    let mut plugin = plugin_with(Arc::new(MemoryStore::new()), Clock::Virtual(clock.clone()));
    let client = dev_basic_client(&server);
    let status = |plugin: &mut Plugin, key: &str| {
        let s = plugin.session_status(key).unwrap().expect("the session");
        (s.phase, s.refusals, s.failures, s.retry_at)
    };
    // Past a session's hold-off or backoff.
    let past = |clock: &VirtualClock, retry_at: Option<u64>| {
        let now = clock.now().as_secs();
        clock.advance(Duration::from_secs(
            retry_at.expect("a retry time") + 1 - now,
        ));
    };

    // A wrong secret.
    server.set_misbehaviour(Some(Misbehaviour::InvalidClient), None);
    plugin
        .open_session("refused", &client, &SessionGrant::ClientCredentials)
        .unwrap();
    let refused = plugin.access_token("refused");
    assert!(
        matches!(&refused, Err(Error::OAuth(OAuthError::Protocol(p))) if p.error == "invalid_client"),
        "{refused:?}"
    );
    let (phase, refusals, failures, _) = status(&mut plugin, "refused");
    assert_eq!(
        (phase, refusals, failures),
        (SessionPhase::Failed, 1, 0),
        "refused: phase, refusals, failures"
    );

    // A server that is down, twice.
    server.set_misbehaviour(
        Some(Misbehaviour::ServiceUnavailable { retry_after: 30 }),
        None,
    );
    plugin
        .open_session("down", &client, &SessionGrant::ClientCredentials)
        .unwrap();
    for consecutive in 1..=2 {
        let down = plugin.access_token("down");
        assert!(
            matches!(&down, Err(Error::OAuth(OAuthError::HttpStatus(h))) if h.status == 503),
            "{down:?}"
        );
        let (phase, refusals, failures, retry_at) = status(&mut plugin, "down");
        assert_eq!(
            (phase, refusals, failures),
            (SessionPhase::Backoff, 0, consecutive),
            "down: phase, refusals, failures"
        );
        past(&clock, retry_at);
    }

    // The server comes back and refuses the client: a refusal, and no failure.
    server.set_misbehaviour(Some(Misbehaviour::InvalidClient), None);
    assert!(plugin.access_token("down").is_err());
    let (phase, refusals, failures, _) = status(&mut plugin, "down");
    assert_eq!(
        (phase, refusals, failures),
        (SessionPhase::Failed, 1, 0),
        "then refused: phase, refusals, failures"
    );
}
