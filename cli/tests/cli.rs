//! The `gateway-auth` command as a user runs it.

use std::process::{Command, Output};

use gateway_auth_devserver::{DevServer, defaults};

fn gateway_auth(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gateway-auth"))
        .args(args)
        .output()
        .expect("the binary runs")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn the_demo_passes_every_flow_and_prints_no_secret() {
    let output = gateway_auth(&["demo"]);
    let shown = text(&output);
    assert!(output.status.success(), "{shown}");
    assert!(shown.contains("all flows passed"), "{shown}");
    assert!(!shown.contains("FAIL"), "{shown}");
    // Piped, it shows no progress line (a terminal's carriage returns and erasures).
    assert!(
        !shown.contains('\r') && !shown.contains("\x1b["),
        "{shown:?}"
    );
    for secret in [
        defaults::BASIC_CLIENT_SECRET,
        defaults::POST_CLIENT_SECRET,
        defaults::PASSWORD,
        "leaked-value",
    ] {
        assert!(
            !shown.contains(secret),
            "the demo printed a secret: {shown}"
        );
    }
}

#[test]
fn prepare_prints_the_profile_or_says_what_is_wrong() {
    let server = DevServer::start(Default::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, server.ca_pem()).unwrap();
    let output = gateway_auth(&["prepare", "--ca", ca.to_str().unwrap()]);
    assert!(output.status.success(), "{}", text(&output));
    assert!(
        text(&output).contains("anchors:     1"),
        "{}",
        text(&output)
    );

    std::fs::write(&ca, "not a certificate").unwrap();
    let output = gateway_auth(&["prepare", "--ca", ca.to_str().unwrap()]);
    assert!(!output.status.success());
    assert!(
        text(&output).contains("malformed PEM: CA bundle: no PEM section found"),
        "{}",
        text(&output)
    );

    let output = gateway_auth(&[
        "prepare",
        "--ca",
        dir.path().join("missing.pem").to_str().unwrap(),
    ]);
    assert!(!output.status.success());
    assert!(text(&output).contains("missing.pem"), "{}", text(&output));
}

#[test]
fn token_prints_a_client_credentials_token_with_the_secret_from_the_environment() {
    let server = DevServer::start(Default::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, server.ca_pem()).unwrap();
    let endpoint = server.token_endpoint();
    let args = [
        "token",
        "--token-endpoint",
        &endpoint,
        "--client-id",
        defaults::BASIC_CLIENT_ID,
        "--ca",
        ca.to_str().unwrap(),
        "--allow",
        "127.0.0.1",
    ];
    let output = Command::new(env!("CARGO_BIN_EXE_gateway-auth"))
        .args(args)
        .env("GATEWAY_AUTH_CLIENT_SECRET", defaults::BASIC_CLIENT_SECRET)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output));
    assert!(!String::from_utf8_lossy(&output.stdout).trim().is_empty());
    assert_eq!(server.token_requests(), 1);

    let output = Command::new(env!("CARGO_BIN_EXE_gateway-auth"))
        .args(args)
        .env_remove("GATEWAY_AUTH_CLIENT_SECRET")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(
        text(&output).contains("GATEWAY_AUTH_CLIENT_SECRET"),
        "{}",
        text(&output)
    );
}
