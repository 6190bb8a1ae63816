//! The Python package (`python/`, import `gateway_auth`) loads the very component the
//! Rust host embeds: `examples/python/request_token.py`, a short program over the
//! package, prepares a cached profile and obtains a token from the development server,
//! renders the same metrics text as the Rust host, is held to its egress policy and
//! ends a dripped answer by its deadline. (The package's own suite, `python/tests`,
//! covers the rest: `./run test` runs it.)
//!
//! These tests need `python3` with the package installed (`pip install ./python`, which
//! `./run test` does into target/python); without it they fail (they never skip),
//! saying how to install it.

use std::path::{Path, PathBuf};
use std::process::Command;

use gateway_auth_devserver::{DevServer, defaults};

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

/// Panics with the install command unless `python3` can import the package.
fn require_package() {
    let probe = Command::new("python3")
        .args(["-c", "import gateway_auth"])
        .output();
    let why = match probe {
        Ok(out) if out.status.success() => return,
        Ok(out) => String::from_utf8_lossy(&out.stderr).trim().to_string(),
        Err(e) => format!("python3 could not be started: {e}"),
    };
    panic!(
        "these tests need python3 with the gateway_auth package; \
         run `pip install ./python` ({why})"
    );
}

/// Runs the example against `server` with the server's CA, its `client_secret_basic`
/// client and one egress rule.
fn run_python_host(server: &DevServer, allow: &str) -> Run {
    run_python_host_with(server, allow, &[])
}

/// [`run_python_host`] with `extra` arguments.
fn run_python_host_with(server: &DevServer, allow: &str, extra: &[&str]) -> Run {
    require_package();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, server.ca_pem()).unwrap();

    let output = Command::new("python3")
        .arg(workspace().join("examples/python/request_token.py"))
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
        run.stderr.contains("TransportError: transport: denied:"),
        "the failure is not the denied net-error:\n{all}"
    );
    assert_eq!(token_length(&run.stdout), None, "{all}");
    assert_eq!(server.token_requests(), 0, "{all}");
    assert!(server.requests().is_empty(), "{all}");
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
        .find(|l| l.starts_with("token: TransportTimeout: transport: timeout"))
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
