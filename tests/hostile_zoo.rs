//! The hostile server zoo: servers that drip, fall silent, send bytes after close_notify
//! or chunk sizes built to overflow, against the three ways a gateway talks through the
//! plugin (a token request, a session's access token, an upstream stream). Each ends
//! in a named error (or the right answer) by its deadline plus 500 ms, and the same
//! instance then serves a normal request. Then the sans-IO session fed close_notify and
//! what follows it, and two instances sharing a session whose refresh answer is lost.
//!
//! `cargo test -p gateway-auth-tests --test hostile_zoo -- --nocapture` prints the
//! longest call of each behaviour.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use gateway_auth_devserver::{DevServer, Drip, Options, defaults};
use gateway_auth_host::{
    Client, ClientAuth, EgressPolicy, Error, Grant, MemoryStore, NetError, OAuthError,
    PasswordCredentials, Plugin, PluginOptions, SessionGrant, TlsError, TlsState, Token,
    TokenStore, TrustSpec, Upstream, Upstreams,
};
use gateway_auth_tests::zoo::{GARBAGE_BYTES, Hostile, HostileServer, garbage, server_config};
use gateway_auth_tests::{TestCa, TokenServer, dev_basic_client, runtime};
use rustls::ServerConnection;

/// The clients' deadline (`client.timeout_ms`, and the upstream reads' budget).
const DEADLINE: Duration = Duration::from_millis(1_500);
/// How late past its deadline a call may return.
const SLACK: Duration = Duration::from_millis(500);
/// The plugin's own bound on one call, well past the deadline: a call that only ends
/// here shows a client that did not keep its deadline.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// One scenario at a time: the bounds measure the client, not two cores shared by
/// ten servers.
fn one_at_a_time() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A plugin that may reach 127.0.0.1, its calls bounded by [`CALL_TIMEOUT`].
fn plugin_with(store: Arc<dyn TokenStore>) -> Plugin {
    runtime()
        .plugin(PluginOptions {
            egress: Arc::new(EgressPolicy::parse(["127.0.0.1"]).unwrap()),
            store,
            call_timeout: CALL_TIMEOUT,
            ..PluginOptions::default()
        })
        .unwrap()
}

fn plugin() -> Plugin {
    plugin_with(Arc::new(MemoryStore::new()))
}

/// A `client_secret_post` client of `url` trusting `ca`, with the short deadline.
fn client(ca: &TestCa, url: String) -> Client {
    let mut client = Client::new(
        "gateway",
        ClientAuth::ClientSecretPost("s3cret".into()),
        TrustSpec::ca(&ca.pem),
    );
    client.token_endpoint = Some(url);
    client.timeout_ms = Some(DEADLINE.as_millis() as u32);
    client
}

/// What a token client (a request or a session) must end with.
#[derive(Clone, Copy, Debug)]
enum TokenEnd {
    /// The token of the complete answer.
    Token,
    /// `transport(timeout)`.
    Timeout,
    /// `transport(reset)`: the server closed before answering.
    Reset,
    /// `invalid-response` with this text.
    Invalid(&'static str),
}

fn check_token(result: &Result<Token, Error>, expect: TokenEnd) -> bool {
    match expect {
        TokenEnd::Token => matches!(result, Ok(t) if t.access_token.secret() == "tok-1"),
        TokenEnd::Timeout => matches!(
            result,
            Err(Error::OAuth(OAuthError::Transport(NetError::Timeout)))
        ),
        TokenEnd::Reset => matches!(
            result,
            Err(Error::OAuth(OAuthError::Transport(NetError::Reset(_))))
        ),
        TokenEnd::Invalid(text) => {
            matches!(result, Err(Error::OAuth(OAuthError::InvalidResponse(m))) if m == text)
        }
    }
}

/// How an upstream exchange (connect, one request, read to the end) ended.
#[derive(Debug)]
enum StreamEnd {
    /// The stream ended cleanly after these bytes.
    Eof(Vec<u8>),
    /// A read failed with this kind.
    Failed(io::ErrorKind, String),
    /// The budget ran out between two reads.
    OutOfTime(usize),
    /// More than [`FLOOD`] bytes arrived: the stream carries what it is sent; framing
    /// is the gateway's HTTP layer's business.
    Flood,
}

impl StreamEnd {
    fn describe(&self) -> String {
        match self {
            StreamEnd::Eof(bytes) => format!("a clean end after {} bytes", bytes.len()),
            StreamEnd::Failed(kind, text) => format!("a read failed, {kind:?}: {text}"),
            StreamEnd::OutOfTime(n) => format!("the budget ran out after {n} bytes"),
            StreamEnd::Flood => format!("more than {FLOOD} bytes"),
        }
    }
}

/// What an upstream exchange must end with.
#[derive(Clone, Copy, Debug)]
enum StreamExpect {
    /// A clean end after the complete answer.
    Answer,
    /// A clean end without a byte.
    Empty,
    /// The read timeout of the budget.
    Timeout,
    /// Bytes without end, delivered as they come.
    Flood,
}

/// The most an upstream exchange reads.
const FLOOD: usize = 1 << 20;

fn check_stream(result: &Result<StreamEnd, Error>, expect: StreamExpect) -> bool {
    match (expect, result) {
        (StreamExpect::Answer, Ok(StreamEnd::Eof(bytes))) => {
            String::from_utf8_lossy(bytes).contains(r#""access_token":"tok-"#)
        }
        (StreamExpect::Empty, Ok(StreamEnd::Eof(bytes))) => bytes.is_empty(),
        (StreamExpect::Timeout, Ok(StreamEnd::Failed(kind, _))) => {
            matches!(kind, io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
        }
        (StreamExpect::Timeout, Ok(StreamEnd::OutOfTime(_))) => true,
        (StreamExpect::Timeout, Err(Error::Net(NetError::Timeout))) => true,
        (StreamExpect::Flood, Ok(StreamEnd::Flood)) => true,
        _ => false,
    }
}

/// Connects, sends one request and reads until the end, within `budget`: each read is
/// given the time left as the socket's read timeout, as a gateway with a request
/// deadline does.
fn exchange(upstream: &Upstream, port: u16, budget: Duration) -> Result<StreamEnd, Error> {
    let started = Instant::now();
    let mut stream = upstream.connect("127.0.0.1", port, &[])?;
    stream
        .write_all(b"POST /token HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: 0\r\n\r\n")
        .map_err(|e| Error::Host(format!("writing the request: {e}")))?;
    let mut got = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    while got.len() <= FLOOD {
        let left = budget.saturating_sub(started.elapsed());
        if left < Duration::from_millis(1) {
            return Ok(StreamEnd::OutOfTime(got.len()));
        }
        stream.tcp().set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut buf) {
            Ok(0) => return Ok(StreamEnd::Eof(got)),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => return Ok(StreamEnd::Failed(e.kind(), e.to_string())),
        }
    }
    Ok(StreamEnd::Flood)
}

/// [`exchange`] on another thread, waited for a little longer than its bound: `None`
/// when it is still blocked, so a stream without a deadline fails the test instead of
/// hanging it.
fn exchange_bounded(
    upstream: &Upstream,
    port: u16,
    budget: Duration,
) -> Option<Result<StreamEnd, Error>> {
    let (tx, rx) = mpsc::channel();
    let upstream = upstream.clone();
    thread::spawn(move || {
        let _ = tx.send(exchange(&upstream, port, budget));
    });
    rx.recv_timeout(budget + SLACK * 4).ok()
}

/// The longest call of each behaviour, by client: request, session, upstream.
static TABLE: Mutex<BTreeMap<usize, (String, [Duration; 3])>> = Mutex::new(BTreeMap::new());

fn print_table() {
    let table = TABLE.lock().unwrap_or_else(|p| p.into_inner());
    println!(
        "\nlongest call per behaviour ({} of {}; deadline {} ms):",
        table.len(),
        Hostile::ALL.len(),
        DEADLINE.as_millis()
    );
    println!("| behaviour | request_token | session access_token | upstream stream |");
    println!("| --- | --- | --- | --- |");
    for (name, [a, b, c]) in table.values() {
        println!(
            "| {name} | {} ms | {} ms | {} ms |",
            a.as_millis(),
            b.as_millis(),
            c.as_millis()
        );
    }
}

/// Runs the three clients against a server behaving as `how`, then a normal request
/// of each kind through the same instances; panics with every mismatch at the end.
fn zoo_case(how: Hostile, token: TokenEnd, stream: StreamExpect) {
    let _one = one_at_a_time();
    let ca = TestCa::new("zoo");
    let hostile = HostileServer::start(&ca, how);
    let good = TokenServer::start(&ca, None);
    let bound = DEADLINE + SLACK;
    let mut failures = Vec::new();
    let mut longest = [Duration::ZERO; 3];

    let mut plugin = plugin();
    let started = Instant::now();
    let result = plugin.request_token(&client(&ca, hostile.url()), Grant::ClientCredentials);
    longest[0] = started.elapsed();
    if !check_token(&result, token) {
        failures.push(format!("request_token: expected {token:?}, got {result:?}"));
    }

    let key = "hostile";
    plugin
        .open_session(
            key,
            &client(&ca, hostile.url()),
            &SessionGrant::ClientCredentials,
        )
        .unwrap();
    let started = Instant::now();
    let result = plugin.access_token(key);
    longest[1] = started.elapsed();
    if !check_token(&result, token) {
        failures.push(format!("access_token: expected {token:?}, got {result:?}"));
    }

    let upstreams = Upstreams::new(self::plugin());
    let upstream = upstreams
        .upstream(TrustSpec::ca(ca.pem.clone()))
        .with_connect_timeout(DEADLINE);
    let started = Instant::now();
    let result = exchange_bounded(&upstream, hostile.port(), DEADLINE);
    longest[2] = started.elapsed();
    if let Some(result) = &result
        && !check_stream(result, stream)
    {
        let shown = match &result {
            Ok(end) => end.describe(),
            Err(e) => format!("{e:?}"),
        };
        failures.push(format!("upstream: expected {stream:?}, got {shown}"));
    }
    if result.is_none() {
        failures.push(format!("upstream: still blocked after {:?}", longest[2]));
    }

    for (client, took) in ["request_token", "access_token", "upstream"]
        .iter()
        .zip(longest)
    {
        if took > bound {
            failures.push(format!("{client} took {took:?}, past {bound:?}"));
        }
    }

    // The same instances serve on.
    let served = plugin.request_token(&client(&ca, good.url.clone()), Grant::ClientCredentials);
    if served.is_err() {
        failures.push(format!("then a normal request_token: {served:?}"));
    }
    plugin
        .open_session(
            "good",
            &client(&ca, good.url.clone()),
            &SessionGrant::ClientCredentials,
        )
        .unwrap();
    let served = plugin.access_token("good");
    if served.is_err() {
        failures.push(format!("then a normal session: {served:?}"));
    }
    let good_upstream = upstreams.upstream(TrustSpec::ca(ca.pem.clone()));
    let served = exchange(&good_upstream, good.port(), Duration::from_secs(5));
    if !check_stream(&served, StreamExpect::Answer) {
        let shown = served.as_ref().map(StreamEnd::describe);
        failures.push(format!("then a normal upstream exchange: {shown:?}"));
    }

    let index = Hostile::ALL.iter().position(|h| *h == how).unwrap();
    TABLE
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(index, (how.name(), longest));
    print_table();
    assert!(
        failures.is_empty(),
        "{}:\n  {}",
        how.name(),
        failures.join("\n  ")
    );
}

#[test]
fn a_dripped_answer_ends_each_client_at_its_deadline_and_the_instance_serves_on() {
    zoo_case(Hostile::ALL[0], TokenEnd::Timeout, StreamExpect::Timeout);
}

#[test]
fn a_slow_drip_with_a_byte_just_before_the_deadline_does_not_stretch_the_call() {
    zoo_case(Hostile::ALL[1], TokenEnd::Timeout, StreamExpect::Timeout);
}

#[test]
fn silence_in_the_handshake_ends_each_client_at_its_deadline() {
    zoo_case(
        Hostile::SilenceInHandshake,
        TokenEnd::Timeout,
        StreamExpect::Timeout,
    );
}

#[test]
fn silence_after_the_response_head_ends_each_client_at_its_deadline() {
    zoo_case(
        Hostile::SilenceAfterHead,
        TokenEnd::Timeout,
        StreamExpect::Timeout,
    );
}

#[test]
fn silence_after_the_handshake_ends_each_client_at_its_deadline() {
    zoo_case(
        Hostile::SilenceAfterHandshake,
        TokenEnd::Timeout,
        StreamExpect::Timeout,
    );
}

#[test]
fn an_answer_with_close_notify_and_garbage_in_one_write_is_taken_and_the_garbage_dropped() {
    zoo_case(
        Hostile::CloseNotifyAndGarbage { answer: true },
        TokenEnd::Token,
        StreamExpect::Answer,
    );
}

#[test]
fn close_notify_and_garbage_instead_of_an_answer_is_a_reset_before_answering() {
    zoo_case(
        Hostile::CloseNotifyAndGarbage { answer: false },
        TokenEnd::Reset,
        StreamExpect::Empty,
    );
}

#[test]
fn bytes_sent_after_close_notify_following_an_answer_are_ignored() {
    zoo_case(
        Hostile::CloseNotifyThenMore { answer: true },
        TokenEnd::Token,
        StreamExpect::Answer,
    );
}

#[test]
fn bytes_sent_after_a_bare_close_notify_are_ignored_and_the_close_is_a_reset() {
    zoo_case(
        Hostile::CloseNotifyThenMore { answer: false },
        TokenEnd::Reset,
        StreamExpect::Empty,
    );
}

#[test]
fn an_endless_chunk_size_line_is_cut_off_at_its_bound() {
    zoo_case(
        Hostile::EndlessChunkSizeLine,
        TokenEnd::Invalid("chunk-size line longer than 1024 bytes"),
        StreamExpect::Flood,
    );
}

#[test]
fn a_chunk_size_that_wraps_the_body_length_is_refused_at_once() {
    zoo_case(
        Hostile::WrappedChunkSize,
        TokenEnd::Invalid("response body larger than 1048576 bytes"),
        StreamExpect::Timeout,
    );
}

#[test]
fn a_chunk_of_two_to_the_64_minus_one_bytes_is_refused_at_once() {
    zoo_case(
        Hostile::MaxChunk,
        TokenEnd::Invalid("response body larger than 1048576 bytes"),
        StreamExpect::Timeout,
    );
}

#[test]
fn a_chunk_of_two_to_the_64_minus_one_bytes_with_filler_is_refused_as_too_large() {
    zoo_case(
        Hostile::MaxChunkThenFiller,
        TokenEnd::Invalid("response body larger than 1048576 bytes"),
        StreamExpect::Flood,
    );
}

// ---- the sans-IO session, fed by hand ----

/// How long one `tls_advance` may take here: microseconds normally; a spin is cut
/// only by the plugin's call timeout, far later.
const ADVANCE_BOUND: Duration = Duration::from_secs(2);

/// A plugin session for 127.0.0.1 with its handshake done against an in-memory rustls
/// server (no socket): the plugin, the session and the server.
fn open_in_memory(ca: &TestCa) -> (Plugin, gateway_auth_host::TlsSession, ServerConnection) {
    let mut plugin = plugin();
    let profile = plugin.prepare(&TrustSpec::ca(&ca.pem)).unwrap();
    let session = plugin.tls_connect(&profile.id, "127.0.0.1", &[]).unwrap();
    let mut server = ServerConnection::new(server_config(ca)).unwrap();
    let mut incoming = Vec::new();
    for _ in 0..10 {
        let out = plugin.tls_advance(&session, &incoming, &[]).unwrap();
        incoming.clear();
        let mut from_client = &out.outgoing[..];
        while !from_client.is_empty() {
            server.read_tls(&mut from_client).unwrap();
            server.process_new_packets().unwrap();
        }
        while server.wants_write() {
            server.write_tls(&mut incoming).unwrap();
        }
        if out.state == TlsState::Open && !server.is_handshaking() {
            // The session tickets the server sent stay in `incoming` for the next step.
            let out = plugin.tls_advance(&session, &incoming, &[]).unwrap();
            assert_eq!(out.state, TlsState::Open);
            return (plugin, session, server);
        }
    }
    panic!("the in-memory handshake did not finish in 10 steps");
}

/// Runs one `tls_advance` with `incoming` on another thread and waits for it at most
/// [`ADVANCE_BOUND`]: a spinning call fails the test instead of hanging it.
fn advance_bounded(
    mut plugin: Plugin,
    session: gateway_auth_host::TlsSession,
    incoming: Vec<u8>,
) -> (
    Duration,
    Option<Result<gateway_auth_host::TlsOutput, Error>>,
) {
    let (tx, rx) = mpsc::channel();
    let started = Instant::now();
    thread::spawn(move || {
        let result = plugin.tls_advance(&session, &incoming, &[]);
        let _ = tx.send(result);
    });
    let result = rx.recv_timeout(ADVANCE_BOUND).ok();
    (started.elapsed(), result)
}

#[test]
fn a_chunk_with_close_notify_and_kilobytes_after_it_returns_promptly_with_the_plaintext() {
    let _one = one_at_a_time();
    let ca = TestCa::new("sans-io-garbage");
    let (plugin, session, mut server) = open_in_memory(&ca);
    server.writer().write_all(b"last words").unwrap();
    server.send_close_notify();
    let mut chunk = Vec::new();
    while server.wants_write() {
        server.write_tls(&mut chunk).unwrap();
    }
    chunk.extend(garbage(GARBAGE_BYTES));
    let (took, result) = advance_bounded(plugin, session, chunk);
    println!("tls_advance(close_notify + {GARBAGE_BYTES} bytes) returned after {took:?}");
    let output = result
        .unwrap_or_else(|| panic!("tls_advance did not return within {ADVANCE_BOUND:?}"))
        .expect("bytes after close_notify are dropped, not an error");
    assert_eq!(output.plaintext, b"last words");
    assert_eq!(output.state, TlsState::PeerClosed);
}

#[test]
fn one_byte_after_a_clean_peer_close_returns_promptly() {
    let _one = one_at_a_time();
    let ca = TestCa::new("sans-io-after-close");
    let (mut plugin, session, mut server) = open_in_memory(&ca);
    server.send_close_notify();
    let mut chunk = Vec::new();
    while server.wants_write() {
        server.write_tls(&mut chunk).unwrap();
    }
    let closed = plugin.tls_advance(&session, &chunk, &[]).unwrap();
    assert_eq!(closed.state, TlsState::PeerClosed);

    let (took, result) = advance_bounded(plugin, session, vec![0x17]);
    println!("tls_advance(1 byte after peer-closed) returned after {took:?}");
    let result =
        result.unwrap_or_else(|| panic!("tls_advance did not return within {ADVANCE_BOUND:?}"));
    assert!(
        matches!(
            &result,
            Ok(out) if out.state == TlsState::PeerClosed && out.plaintext.is_empty()
        ) || matches!(&result, Err(Error::Tls(TlsError::Closed))),
        "{result:?}"
    );
}

// ---- two instances, one store, a refresh answer lost past the deadline ----

#[test]
fn a_refresh_whose_answer_drips_past_the_deadline_is_never_sent_again_and_the_session_lives() {
    let _one = one_at_a_time();
    const LIFETIME: u64 = 3;
    let server = DevServer::start(Options {
        token_lifetime: LIFETIME,
        ..Options::default()
    })
    .unwrap();
    server.set_reuse_detection(true);
    let store: Arc<dyn TokenStore> = Arc::new(MemoryStore::new());
    let mut instances = [plugin_with(store.clone()), plugin_with(store)];
    let mut client = dev_basic_client(&server);
    client.timeout_ms = Some(DEADLINE.as_millis() as u32);
    client.refresh_skew_seconds = Some(1);
    let grant = SessionGrant::Password(PasswordCredentials {
        username: defaults::USERNAME.into(),
        password: defaults::PASSWORD.into(),
    });
    for instance in &mut instances {
        instance.open_session("s", &client, &grant).unwrap();
    }
    instances[0].access_token("s").expect("the password grant");
    // The first renewal is a refresh; its answer (a few hundred bytes at 100 ms each)
    // arrives long after the deadline, but the server rotated the token first.
    server.set_token_drip(Some(Drip::next(
        "refresh_token",
        1,
        Duration::from_millis(100),
    )));

    // Past the renewal (2 s in), the lost answer, the lease's lapse (the deadline plus
    // 2 s) and another lifetime.
    let began = Instant::now();
    let until = began + Duration::from_secs(LIFETIME * 4);
    let mut longest = Duration::ZERO;
    // (when, which instance, what) of every failed call.
    let mut errors: Vec<(Duration, usize, Error)> = Vec::new();
    let mut calls = 0;
    while Instant::now() < until && calls < 2_000 {
        let which = calls % 2;
        calls += 1;
        let started = Instant::now();
        let result = instances[which].access_token("s");
        longest = longest.max(started.elapsed());
        if let Err(e) = result {
            errors.push((began.elapsed(), which, e));
        }
        thread::sleep(Duration::from_millis(50));
    }
    let dripped = server.dripped_refresh_tokens();
    let password_grants = server
        .requests()
        .iter()
        .filter(|r| r.path == "/token" && r.grant_type.as_deref() == Some("password"))
        .count();
    let window = match (errors.first(), errors.last()) {
        (Some(first), Some(last)) => format!(
            "failing from {} ms to {} ms",
            first.0.as_millis(),
            last.0.as_millis()
        ),
        _ => "never failing".into(),
    };
    println!(
        "two instances, dripped refresh: {calls} calls over {} ms, longest {} ms, {} failed ({window}); \
         dripped refresh tokens {}, presentations of the dripped one {}, most presentations of any {}, \
         reuse detections {}, password grants {password_grants}; first failures: {:?}",
        began.elapsed().as_millis(),
        longest.as_millis(),
        errors.len(),
        dripped.len(),
        dripped
            .first()
            .map_or(0, |t| server.refresh_token_presentations(t)),
        server.most_presentations_of_a_refresh_token(),
        server.reuse_detections(),
        errors
            .iter()
            .take(3)
            .map(|(at, which, e)| format!("{} ms, instance {which}: {e}", at.as_millis()))
            .collect::<Vec<_>>()
    );

    assert_eq!(dripped.len(), 1, "the renewal's answer was dripped");
    assert_eq!(
        server.refresh_token_presentations(&dripped[0]),
        1,
        "the refresh token of the lost answer was sent once"
    );
    assert_eq!(
        server.most_presentations_of_a_refresh_token(),
        1,
        "no refresh token was sent twice"
    );
    assert_eq!(server.reuse_detections(), 0);
    // Waiting out a lost answer is transient; a refused grant would end the session
    // until a person steps in.
    for (at, which, e) in &errors {
        assert!(
            matches!(
                e,
                Error::OAuth(OAuthError::Transport(_) | OAuthError::Backoff(_))
            ),
            "at {} ms instance {which} failed for good: {e:?}",
            at.as_millis()
        );
    }
    assert!(
        password_grants >= 2,
        "the token was acquired again with the password: {password_grants} password grants"
    );
    for (i, instance) in instances.iter_mut().enumerate() {
        let token = instance.access_token("s");
        assert!(
            token.is_ok(),
            "instance {i} after the lost answer: {token:?}"
        );
    }
    assert!(
        longest <= DEADLINE + SLACK,
        "the longest access_token took {longest:?}"
    );
}
