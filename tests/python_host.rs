//! The Python host (`examples/python/gateway_auth_host.py`, over wasmtime-py) loads the
//! very component the Rust host embeds, supplies `transport` and `store` itself, and
//! obtains a token from the development server through the WIT interface; its
//! transport keeps to the timeout the plugin passes to every read and write.
//!
//! These tests need `python3` with the `wasmtime` package; without them they fail (they
//! never skip), saying how to install it.

use std::ffi::OsStr;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread;
use std::time::{Duration, Instant};

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
    let wasm = dir.path().join("gateway_auth.wasm");
    std::fs::write(&wasm, gateway_auth_host::BUNDLED_COMPONENT).unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, ca_pem).unwrap();
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
