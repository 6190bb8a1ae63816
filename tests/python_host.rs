//! The Python host (`examples/python/gateway_auth_host.py`, over wasmtime-py) loads the
//! very component the Rust host embeds, supplies `transport` and `store` itself, and
//! obtains a token from the development server through the WIT interface; its
//! transport keeps to the timeout the plugin passes to every read and write. Its
//! asyncio upstream stream (`upstream.py`, driven by `upstream_checks.py`) moves large
//! writes, ends silent handshakes by the connect deadline and frees the plugin's
//! session on every failed or cancelled connect.
//!
//! These tests need `python3` with the `wasmtime` package; without them they fail (they
//! never skip), saying how to install it.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use rustls::{ServerConnection, StreamOwned};
use sha2::{Digest, Sha256};

use gateway_auth_devserver::{DevServer, defaults};
use gateway_auth_tests::{TestCa, TokenServer};

/// The environment variable the example reads the client secret from.
const SECRET_VAR: &str = "GATEWAY_AUTH_CLIENT_SECRET";

/// What one run of the example printed.
struct Run {
    success: bool,
    stdout: String,
    stderr: String,
}

impl Run {
    fn everything(&self) -> String {
        format!("--- stdout\n{}--- stderr\n{}", self.stdout, self.stderr)
    }
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate sits in the workspace")
        .to_path_buf()
}

/// Panics with the install command unless `python3` can import wasmtime's component API.
fn require_wasmtime_py() {
    let probe = Command::new("python3")
        .args([
            "-c",
            "from wasmtime.component import Linker, ResourceHost, ResourceType",
        ])
        .output();
    let why = match probe {
        Ok(out) if out.status.success() => return,
        Ok(out) => String::from_utf8_lossy(&out.stderr).trim().to_string(),
        Err(e) => format!("python3 could not be started: {e}"),
    };
    panic!(
        "the Python host needs python3 with the wasmtime package; \
         run `pip install -r examples/python/requirements.txt` ({why})"
    );
}

/// Runs the example against `server` with the bundled component, the server's CA, its
/// `client_secret_basic` client and one egress rule.
fn run_python_host(server: &DevServer, allow: &str) -> Run {
    run_python_host_with(server, allow, &[])
}

/// [`run_python_host`] with `extra` arguments.
fn run_python_host_with(server: &DevServer, allow: &str, extra: &[&str]) -> Run {
    require_wasmtime_py();
    let dir = tempfile::tempdir().unwrap();
    let wasm = dir.path().join("gateway_auth.wasm");
    std::fs::write(&wasm, gateway_auth_host::BUNDLED_COMPONENT).unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, server.ca_pem()).unwrap();

    let output = Command::new("python3")
        .arg(workspace().join("examples/python/gateway_auth_host.py"))
        .arg(&wasm)
        .arg("--ca")
        .arg(&ca)
        .args(["--token-endpoint", &server.token_endpoint()])
        .args(["--client-id", defaults::BASIC_CLIENT_ID])
        .args(["--allow", allow])
        .args(extra)
        .env(SECRET_VAR, defaults::BASIC_CLIENT_SECRET)
        .output()
        .expect("python3 starts");
    let run = Run {
        success: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    assert!(
        !run.everything().contains(defaults::BASIC_CLIENT_SECRET),
        "the client secret was printed:\n{}",
        run.everything()
    );
    run
}

/// The number after `length ` on the `token:` line.
fn token_length(stdout: &str) -> Option<usize> {
    let line = stdout.lines().find(|l| l.starts_with("token: "))?;
    line.rsplit_once("length ")?.1.trim().parse().ok()
}

#[test]
fn the_python_host_prepares_a_cached_profile_and_obtains_a_token() {
    let server = DevServer::start(Default::default()).unwrap();
    let run = run_python_host(&server, "127.0.0.1");
    let all = run.everything();

    assert!(run.success, "the Python host failed:\n{all}");
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(
        lines[0].starts_with("prepare: profile ") && lines[0].ends_with("cached=False"),
        "{all}"
    );
    assert!(
        lines[1].starts_with("prepare again: profile ") && lines[1].ends_with("cached=True"),
        "the second prepare was not answered from the cache:\n{all}"
    );
    assert!(lines[0].contains("with 1 trust anchor(s)"), "{all}");
    assert!(
        token_length(&run.stdout).is_some_and(|n| n > 0),
        "no token was obtained:\n{all}"
    );
    assert!(run.stdout.contains("token: type Bearer"), "{all}");
    assert!(run.stdout.contains("stats: hits="), "{all}");

    assert_eq!(server.token_requests(), 1, "{all}");
    let last = server.requests().pop().expect("the server saw the request");
    assert_eq!(last.client_auth.as_deref(), Some("client_secret_basic"));
    assert_eq!(last.grant_type.as_deref(), Some("client_credentials"));
}

/// A line of metrics text with the value left out when it is a duration (which the
/// two hosts measure apart): every name, label and count must be the same.
fn comparable(line: &str) -> String {
    let histogram = "gateway_auth_oauth_token_request_duration_seconds";
    match line.rsplit_once(' ') {
        Some((series, _))
            if series.starts_with(&format!("{histogram}_bucket"))
                || series.starts_with(&format!("{histogram}_sum")) =>
        {
            series.to_string()
        }
        _ => line.to_string(),
    }
}

#[test]
fn the_python_host_renders_the_same_metrics_text_as_the_rust_host() {
    let server = DevServer::start(Default::default()).unwrap();
    let run = run_python_host_with(&server, "127.0.0.1", &["--metrics"]);
    let all = run.everything();
    assert!(run.success, "the Python host failed:\n{all}");
    let python: Vec<String> = run
        .stdout
        .lines()
        .skip_while(|l| !l.starts_with("stats: "))
        .skip(1)
        .map(comparable)
        .collect();

    // The same calls through the Rust host: two prepares, one token request.
    let mut plugin = gateway_auth_tests::loopback_plugin();
    let spec = gateway_auth_host::TrustSpec::ca(server.ca_pem());
    plugin.prepare(&spec).unwrap();
    plugin.prepare(&spec).unwrap();
    let client = gateway_auth_tests::dev_basic_client(&server);
    plugin
        .request_token(&client, gateway_auth_host::Grant::ClientCredentials)
        .unwrap();
    let text = plugin.metrics_text().unwrap();
    let rust: Vec<String> = text.lines().map(comparable).collect();

    assert_eq!(python, rust, "{all}\n--- the Rust host's text\n{text}");
    assert!(
        rust.contains(&r#"gateway_auth_oauth_token_requests_total{grant="client_credentials",outcome="ok"} 1"#.to_string()),
        "{text}"
    );
}

#[test]
fn the_python_host_denies_a_destination_outside_the_allow_list() {
    let server = DevServer::start(Default::default()).unwrap();
    let run = run_python_host(&server, "auth.example.com");
    let all = run.everything();

    assert!(!run.success, "the Python host should have failed:\n{all}");
    assert!(
        run.stderr.contains("transport(denied("),
        "the failure is not the denied net-error:\n{all}"
    );
    assert_eq!(token_length(&run.stdout), None, "{all}");
    assert_eq!(server.token_requests(), 0, "{all}");
    assert!(server.requests().is_empty(), "{all}");
}

#[test]
fn the_python_hosts_egress_check_gives_the_rust_hosts_verdict_on_every_special_address() {
    let out = Command::new("python3")
        .arg(workspace().join("examples/python/test_egress.py"))
        .output()
        .expect("python3 starts");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `examples/python/upstream.py` for `url` with `ca` trusted and 127.0.0.1 allowed.
fn run_python_upstream(url: &str, ca_pem: &str) -> Run {
    require_wasmtime_py();
    let dir = tempfile::tempdir().unwrap();
    let (wasm, ca) = component_and_ca(dir.path(), ca_pem);
    let output = Command::new("python3")
        .arg(workspace().join("examples/python/upstream.py"))
        .arg(&wasm)
        .arg(url)
        .arg("--ca")
        .arg(&ca)
        .args(["--allow", "127.0.0.1"])
        .output()
        .expect("python3 starts");
    Run {
        success: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

#[test]
fn the_python_hosts_asyncio_stream_gets_an_https_response_through_the_unchanged_component() {
    let ca = TestCa::new("python-upstream");
    let server = TokenServer::start(&ca, None);
    let run = run_python_upstream(&server.url, &ca.pem);
    let all = run.everything();
    assert!(run.success, "{all}");
    assert!(run.stdout.contains("status: HTTP/1.1 200 OK"), "{all}");
    assert!(run.stdout.contains("tls: TLSv1_3"), "{all}");
    assert!(run.stdout.contains(r#"{"access_token":"tok-1""#), "{all}");
    assert_eq!(server.seen.handshakes.load(Ordering::SeqCst), 1);

    // A large body arrives intact (the host converts byte lists in bulk).
    let body: Vec<u8> = (0..3 << 20).map(|i: u32| (i * 7 % 251) as u8).collect();
    let digest = hex(&Sha256::digest(&body));
    let large = TokenServer::start_with(
        &ca,
        None,
        Arc::new(move |out: &mut dyn Write, _| {
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            let _ = out.write_all(head.as_bytes());
            let _ = out.write_all(&body);
        }),
    );
    let run = run_python_upstream(&large.url, &ca.pem);
    let all = run.everything();
    assert!(run.success, "{all}");
    assert!(
        run.stdout.contains(&format!("body: {} bytes", 3 << 20)) && run.stdout.contains(&digest),
        "{all}"
    );
    println!(
        "{}",
        run.stdout
            .lines()
            .find(|l| l.starts_with("body:"))
            .unwrap_or_default()
    );

    // Another CA's server is refused by name, before any request byte.
    let stranger = TestCa::new("python-stranger");
    let run = run_python_upstream(&server.url, &stranger.pem);
    let all = run.everything();
    assert!(!run.success, "{all}");
    assert!(run.stderr.contains("tls: peer-certificate("), "{all}");
    assert_eq!(server.seen.handshakes.load(Ordering::SeqCst), 1, "{all}");
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs `examples/python/<script>` with `args`, killing it if it is still running after
/// `limit` (so a Python side that hangs fails its test instead of stalling the suite).
fn run_python_script(script: &str, args: &[&OsStr], limit: Duration) -> Run {
    require_wasmtime_py();
    let dir = tempfile::tempdir().unwrap();
    let (out_path, err_path) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let mut child = Command::new("python3")
        .arg(workspace().join("examples/python").join(script))
        .args(args)
        .stdout(File::create(&out_path).unwrap())
        .stderr(File::create(&err_path).unwrap())
        .spawn()
        .expect("python3 starts");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
    if status.is_none() {
        stderr.push_str(&format!("\n(killed: still running after {limit:?})\n"));
    }
    Run {
        success: status.is_some_and(|s| s.success()),
        stdout: std::fs::read_to_string(&out_path).unwrap_or_default(),
        stderr,
    }
}

/// The value of the first `key: value` line of `stdout`.
fn field<'a>(stdout: &'a str, key: &str) -> Option<&'a str> {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(": "))
}

/// The bundled component and `ca_pem` written to `dir`, as paths.
fn component_and_ca(dir: &Path, ca_pem: &str) -> (PathBuf, PathBuf) {
    let wasm = dir.join("gateway_auth.wasm");
    std::fs::write(&wasm, gateway_auth_host::BUNDLED_COMPONENT).unwrap();
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, ca_pem).unwrap();
    (wasm, ca)
}

#[test]
fn the_python_transport_keeps_every_read_and_whole_write_within_its_timeout() {
    let run = run_python_script("test_transport.py", &[], Duration::from_secs(120));
    assert!(run.success, "{}", run.everything());
}

#[test]
fn a_dripped_token_answer_ends_the_python_hosts_request_by_its_deadline() {
    // 50 ms a byte: the answer would take over 10 s; the request has 1.5 s.
    let server = DevServer::start(gateway_auth_devserver::Options {
        token_drip_ms: 50,
        ..Default::default()
    })
    .unwrap();
    let run = run_python_host_with(&server, "127.0.0.1", &["--timeout-ms", "1500"]);
    let all = run.everything();
    assert!(!run.success, "{all}");
    assert!(
        server.dripped_answers() >= 1,
        "the answer was not dripped:\n{all}"
    );
    let line = run
        .stderr
        .lines()
        .find(|l| l.starts_with("token: oauth error: transport(timeout)"))
        .unwrap_or_else(|| panic!("the failure is not the transport timeout:\n{all}"));
    let took: f64 = line
        .rsplit_once("(after ")
        .and_then(|(_, rest)| rest.strip_suffix(" s)"))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no duration on {line:?}"));
    println!("dripped answer: request ended after {took:.3} s (deadline 1.5 s)");
    assert!(
        took < 1.5 + 0.5,
        "the request ran past its deadline:\n{all}"
    );
}

/// An HTTPS server on 127.0.0.1 that takes one request and answers with the length and
/// SHA-256 of its body, which it also keeps for the test.
struct UploadServer {
    port: u16,
    received: Arc<Mutex<Option<(usize, String)>>>,
}

impl UploadServer {
    fn start(ca: &TestCa) -> Self {
        let config = gateway_auth_tests::zoo::server_config(ca);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let received = Arc::new(Mutex::new(None));
        let keep = received.clone();
        thread::spawn(move || {
            let Ok((socket, _)) = listener.accept() else {
                return;
            };
            let _ = socket.set_read_timeout(Some(Duration::from_secs(30)));
            let mut tls = StreamOwned::new(ServerConnection::new(config).unwrap(), socket);
            let Some(body) = read_request_body(&mut tls) else {
                return;
            };
            let answer = format!("{} {}", body.len(), hex(&Sha256::digest(&body)));
            *keep.lock().unwrap() = Some((body.len(), hex(&Sha256::digest(&body))));
            let _ = write!(
                tls,
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                answer.len()
            );
            tls.conn.send_close_notify();
            let _ = tls.flush();
        });
        Self { port, received }
    }
}

/// The body of one HTTP/1.1 request with a `content-length`, or `None` if the stream
/// ends first.
fn read_request_body(stream: &mut impl Read) -> Option<Vec<u8>> {
    let mut request = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let head_end = loop {
        if let Some(i) = request.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return None,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    };
    let head = String::from_utf8_lossy(&request[..head_end]).to_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))?
        .trim()
        .parse()
        .ok()?;
    while request.len() < head_end + length {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return None,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    Some(request[head_end..].to_vec())
}

#[test]
fn a_2_mib_upload_through_the_python_stream_reaches_the_server_whole() {
    const SIZE: usize = 2 << 20;
    let ca = TestCa::new("python-upload");
    let server = UploadServer::start(&ca);
    let dir = tempfile::tempdir().unwrap();
    let (wasm, ca_path) = component_and_ca(dir.path(), &ca.pem);
    let run = run_python_script(
        "upstream_checks.py",
        &[
            "upload".as_ref(),
            wasm.as_os_str(),
            "--ca".as_ref(),
            ca_path.as_os_str(),
            "--port".as_ref(),
            server.port.to_string().as_ref(),
            "--size".as_ref(),
            SIZE.to_string().as_ref(),
        ],
        Duration::from_secs(120),
    );
    let all = run.everything();
    assert!(run.success, "{all}");
    // Byte i of the upload is i % 251 (upstream_checks.py).
    let sent: Vec<u8> = (0..SIZE).map(|i| (i % 251) as u8).collect();
    let expected = (SIZE, hex(&Sha256::digest(&sent)));
    assert_eq!(
        server.received.lock().unwrap().as_ref(),
        Some(&expected),
        "{all}"
    );
    assert_eq!(
        field(&run.stdout, "answer"),
        Some(format!("{} {}", expected.0, expected.1).as_str()),
        "{all}"
    );
}

/// A TCP server on 127.0.0.1 that accepts every connection and never says a word; it
/// lets each go once the client hangs up.
fn silent_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        for socket in listener.incoming() {
            let Ok(mut socket) = socket else { continue };
            thread::spawn(move || {
                let _ = socket.set_read_timeout(Some(Duration::from_secs(60)));
                let mut sink = [0u8; 4096];
                while matches!(socket.read(&mut sink), Ok(n) if n > 0) {}
            });
        }
    });
    port
}

/// A TCP server on 127.0.0.1 that reads the ClientHello and hangs up.
fn closing_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        for socket in listener.incoming() {
            let Ok(mut socket) = socket else { continue };
            let _ = socket.set_read_timeout(Some(Duration::from_secs(10)));
            let _ = socket.read(&mut [0u8; 4096]);
        }
    });
    port
}

#[test]
fn a_silent_server_ends_the_python_connect_with_a_timeout_by_its_deadline() {
    let ca = TestCa::new("python-silent");
    let port = silent_server();
    let dir = tempfile::tempdir().unwrap();
    let (wasm, ca_path) = component_and_ca(dir.path(), &ca.pem);
    let run = run_python_script(
        "upstream_checks.py",
        &[
            "silent".as_ref(),
            wasm.as_os_str(),
            "--ca".as_ref(),
            ca_path.as_os_str(),
            "--port".as_ref(),
            port.to_string().as_ref(),
            "--timeout".as_ref(),
            "1.0".as_ref(),
        ],
        Duration::from_secs(60),
    );
    let all = run.everything();
    assert!(run.success, "{all}");
    assert!(
        field(&run.stdout, "outcome")
            .is_some_and(|o| o.starts_with("UpstreamTimeout: transport: timeout")),
        "the connect did not end in the named timeout:\n{all}"
    );
    let took: f64 = field(&run.stdout, "elapsed")
        .and_then(|s| s.strip_suffix(" s"))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no elapsed line:\n{all}"));
    println!("silent server: connect ended after {took:.3} s (deadline 1.0 s)");
    assert!(
        took < 1.0 + 0.5,
        "the connect ran past its deadline:\n{all}"
    );
}

#[test]
fn failed_and_cancelled_python_connects_free_their_sessions_and_a_later_stream_works() {
    // 1,500 connects that fail after their session exists, 1,500 cancelled and 50 past
    // their deadline, on an instance bounded to 4 MiB: left behind, their sessions
    // exhaust it (about 1,200 do).
    let ca = TestCa::new("python-churn");
    let server = TokenServer::start(&ca, None);
    let (silent, closing) = (silent_server(), closing_server());
    let dir = tempfile::tempdir().unwrap();
    let (wasm, ca_path) = component_and_ca(dir.path(), &ca.pem);
    let run = run_python_script(
        "upstream_checks.py",
        &[
            "churn".as_ref(),
            wasm.as_os_str(),
            "--ca".as_ref(),
            ca_path.as_os_str(),
            "--port".as_ref(),
            server.port().to_string().as_ref(),
            "--silent-port".as_ref(),
            silent.to_string().as_ref(),
            "--closing-port".as_ref(),
            closing.to_string().as_ref(),
            "--count".as_ref(),
            "1500".as_ref(),
            "--memory-limit".as_ref(),
            (4u32 << 20).to_string().as_ref(),
        ],
        Duration::from_secs(300),
    );
    let all = run.everything();
    assert!(run.success, "{all}");
    assert_eq!(
        field(&run.stdout, "closed during the handshake"),
        Some("1500"),
        "{all}"
    );
    assert_eq!(
        field(&run.stdout, "cancelled mid-handshake"),
        Some("1500"),
        "{all}"
    );
    assert_eq!(
        field(&run.stdout, "past the connect deadline"),
        Some("50"),
        "{all}"
    );
    assert_eq!(
        field(&run.stdout, "sessions created"),
        Some("3050"),
        "{all}"
    );
    assert_eq!(field(&run.stdout, "sessions live"), Some("0"), "{all}");
    let fds = field(&run.stdout, "file descriptors").unwrap_or_default();
    let (before, after) = fds.split_once(" -> ").unwrap_or_else(|| panic!("{all}"));
    assert_eq!(before, after, "sockets were left open:\n{all}");
    assert_eq!(
        field(&run.stdout, "later stream"),
        Some("HTTP/1.1 200 OK"),
        "{all}"
    );
}
