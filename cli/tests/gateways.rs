//! Gateways in a config file: `gateway-auth token --config FILE NAME` and
//! `gateway-auth check --config FILE`, run as a user runs them, against the development
//! server on 127.0.0.1.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use gateway_auth::config::ConfigFile;
use gateway_auth_devserver::{DevServer, defaults};

mod common;
use common::{errors, stdout};

/// The committed example and the port its endpoints name.
const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/gateways.toml");
const EXAMPLE_ADDRESS: &str = "127.0.0.1:8443";

/// Every secret the tests hand the command; none may appear in what it prints.
const SECRETS: [&str; 3] = [
    defaults::BASIC_CLIENT_SECRET,
    defaults::POST_CLIENT_SECRET,
    defaults::PASSWORD,
];

fn gateway_auth(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gateway-auth"))
        .args(args)
        .current_dir(dir)
        .env("ORDERS_CLIENT_SECRET", defaults::BASIC_CLIENT_SECRET)
        .env("BILLING_CLIENT_SECRET", defaults::POST_CLIENT_SECRET)
        .env("BILLING_PASSWORD", defaults::PASSWORD)
        // A panic would show its backtrace: the tests look for one.
        .env("RUST_BACKTRACE", "1")
        .output()
        .expect("the binary runs")
}

fn assert_no_secret(output: &Output) {
    let shown = format!(
        "{}{}",
        stdout(output),
        String::from_utf8_lossy(&output.stderr)
    );
    for secret in SECRETS {
        assert!(!shown.contains(secret), "a secret was printed: {shown}");
    }
}

/// A directory holding the development server's CA as `dev-ca.pem`.
fn workdir(server: &DevServer) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("dev-ca.pem"), server.ca_pem()).unwrap();
    dir
}

/// The committed example, pointed at `server`.
fn example_for(server: &DevServer) -> String {
    let text = std::fs::read_to_string(EXAMPLE).unwrap();
    assert!(
        text.contains(EXAMPLE_ADDRESS),
        "the example names no {EXAMPLE_ADDRESS}"
    );
    text.replace(EXAMPLE_ADDRESS, &format!("127.0.0.1:{}", server.port()))
}

#[test]
fn the_committed_example_config_parses() {
    let file = ConfigFile::load(Path::new(EXAMPLE)).unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<_> = file.gateways.iter().map(|g| g.name.as_str()).collect();
    assert_eq!(names, ["orders", "billing"]);
}

#[test]
fn the_example_config_checks_and_gets_a_token_for_each_gateway() {
    let server = DevServer::start(Default::default()).unwrap();
    let dir = workdir(&server);
    let config = dir.path().join("gateways.toml");
    std::fs::write(&config, example_for(&server)).unwrap();
    let config = config.to_str().unwrap();

    let output = gateway_auth(dir.path(), &["check", "--config", config]);
    assert!(
        output.status.success(),
        "{}{:?}",
        stdout(&output),
        errors(&output)
    );
    let table = stdout(&output);
    let rows: Vec<_> = table.lines().collect();
    assert_eq!(rows.len(), 3, "{table}");
    assert!(
        rows[0].starts_with("GATEWAY") && rows[0].contains("STATUS"),
        "{table}"
    );
    assert!(
        rows[1].starts_with("orders ") && rows[1].contains(" ok "),
        "{table}"
    );
    assert!(
        rows[2].starts_with("billing ") && rows[2].contains(" ok "),
        "{table}"
    );
    // Piped stderr gets no progress line.
    assert!(errors(&output).is_empty(), "{:?}", errors(&output));
    assert_no_secret(&output);
    assert_eq!(server.token_requests(), 0, "check sends nothing");

    let output = gateway_auth(dir.path(), &["token", "--config", config, "orders"]);
    assert!(output.status.success(), "{:?}", errors(&output));
    let token = stdout(&output);
    assert_eq!(token.lines().count(), 1, "{token}");
    assert!(token.trim().len() > 20, "{token}");
    assert_no_secret(&output);

    let output = gateway_auth(
        dir.path(),
        &["token", "--config", config, "billing", "--json"],
    );
    assert!(output.status.success(), "{:?}", errors(&output));
    let json: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(json["gateway"], "billing");
    assert_eq!(json["token_type"], "Bearer");
    assert_eq!(json["scopes"], serde_json::json!(["read", "write"]));
    assert!(json["access_token"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(json["expires_in"].as_u64().is_some_and(|s| s > 3000));
    assert!(json.get("refresh_token").is_none(), "{json}");
    assert_no_secret(&output);

    let grants: Vec<_> = server
        .requests()
        .into_iter()
        .filter_map(|r| r.grant_type.map(|g| (g, r.client_auth, r.status)))
        .collect();
    assert_eq!(
        grants,
        [
            (
                "client_credentials".to_string(),
                Some("client_secret_basic".to_string()),
                200
            ),
            (
                "password".to_string(),
                Some("client_secret_post".to_string()),
                200
            ),
        ]
    );
}

/// One gateway that works against `server`, with `changes` applied: `(from, to)`
/// replacements of its text, then extra lines.
fn gateway(server: &DevServer, changes: &[(&str, &str)], extra: &str) -> String {
    let mut text = format!(
        r#"[[gateway]]
name = "gw"
client_id = "{}"
token_endpoint = "{}"
ca = "dev-ca.pem"
allow = ["127.0.0.1"]
auth = {{ method = "client_secret_basic", secret_env = "ORDERS_CLIENT_SECRET" }}
"#,
        defaults::BASIC_CLIENT_ID,
        server.token_endpoint(),
    );
    for (from, to) in changes {
        assert!(text.contains(from), "{from}");
        text = text.replace(from, to);
    }
    text + extra
}

#[test]
fn each_bad_config_fails_in_one_line_naming_the_file_the_gateway_and_the_field() {
    let server = DevServer::start(Default::default()).unwrap();
    let dir = workdir(&server);
    for (name, pem) in [
        ("not-pem.pem", "not a certificate\n".to_string()),
        ("mtls.pem", server.mtls_client_cert_pem()),
        ("other.key", server.client_rs256_key_pem()),
        (
            "garbled.key",
            "-----BEGIN PRIVATE KEY-----\nZ2FyYmxlZA==\n-----END PRIVATE KEY-----\n".into(),
        ),
    ] {
        std::fs::write(dir.path().join(name), pem).unwrap();
    }
    let client_id = format!("client_id = \"{}\"\n", defaults::BASIC_CLIENT_ID);
    let mtls_id = format!("client_id = \"{}\"\n", defaults::MTLS_CLIENT_ID);
    let jwt_id = format!("client_id = \"{}\"\n", defaults::JWT_RS256_CLIENT_ID);
    let basic = r#"{ method = "client_secret_basic", secret_env = "ORDERS_CLIENT_SECRET" }"#;
    let endpoint = server.token_endpoint();
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "CA file that is not PEM",
            gateway(&server, &[("dev-ca.pem", "not-pem.pem")], ""),
            "gateway \"gw\": ca: tls: malformed PEM: CA bundle: no PEM section found",
        ),
        (
            "client key of another certificate",
            gateway(
                &server,
                &[
                    (&client_id, &mtls_id),
                    (basic, r#"{ method = "tls_client_auth" }"#),
                ],
                "client_certificate = \"mtls.pem\"\nclient_key = \"other.key\"\n",
            ),
            "gateway \"gw\": client_key: tls: the client key does not match the client certificate",
        ),
        (
            "unusable signing key",
            gateway(
                &server,
                &[
                    (&client_id, &jwt_id),
                    (
                        basic,
                        r#"{ method = "private_key_jwt", private_key = "garbled.key", algorithm = "RS256" }"#,
                    ),
                ],
                "",
            ),
            "gateway \"gw\": auth.private_key: oauth configuration error: the JWT signing key is not a usable RS256 key",
        ),
        (
            "zero timeout",
            gateway(&server, &[], "timeout_ms = 0\n"),
            "gateway \"gw\": timeout_ms: must be positive",
        ),
        (
            "missing field",
            gateway(&server, &[(&client_id, "")], ""),
            "gateway \"gw\": missing field `client_id`",
        ),
        (
            "unknown field",
            gateway(&server, &[], "scope = \"read\"\n"),
            "gateway \"gw\": unknown field `scope`, expected one of",
        ),
        (
            "unknown field in a table",
            gateway(&server, &[("secret_env", "secret_environment")], ""),
            "gateway \"gw\": auth: unknown field `secret_environment`",
        ),
        (
            "wrong type",
            gateway(&server, &[], "timeout_ms = \"soon\"\n"),
            "gateway \"gw\": timeout_ms: invalid type: string \"soon\", expected u32",
        ),
        (
            "unreadable CA file",
            gateway(&server, &[("dev-ca.pem", "missing-ca.pem")], ""),
            "gateway \"gw\": ca: cannot read ",
        ),
        (
            "http endpoint",
            gateway(&server, &[("https://", "http://")], ""),
            "gateway \"gw\": token_endpoint: \"http://127.0.0.1:",
        ),
        (
            "endpoint outside the egress rules",
            gateway(&server, &[("\"127.0.0.1\"", "\"auth.example.com\"")], ""),
            "gateway \"gw\": allow: no rule allows 127.0.0.1:",
        ),
        (
            "unset secret variable",
            gateway(
                &server,
                &[("ORDERS_CLIENT_SECRET", "NO_SUCH_SECRET_VARIABLE")],
                "",
            ),
            "gateway \"gw\": auth.secret_env: the environment variable NO_SUCH_SECRET_VARIABLE is not set",
        ),
        (
            "unreachable token URL",
            gateway(&server, &[(&endpoint, "https://127.0.0.1:1/token")], ""),
            "gateway \"gw\": token_endpoint: could not reach the authorization server",
        ),
        (
            "refused client secret",
            gateway(
                &server,
                &[("ORDERS_CLIENT_SECRET", "BILLING_CLIENT_SECRET")],
                "",
            ),
            "gateway \"gw\": auth: the authorization server refused the request (http 401): invalid_client",
        ),
    ];
    for (case, text, expected) in cases {
        let config = dir.path().join("bad.toml");
        std::fs::write(&config, &text).unwrap();
        let output = gateway_auth(
            dir.path(),
            &["token", "--config", config.to_str().unwrap(), "gw"],
        );
        assert!(!output.status.success(), "{case}: succeeded");
        assert_eq!(output.status.code(), Some(1), "{case}");
        assert!(stdout(&output).is_empty(), "{case}: {}", stdout(&output));
        let errors = errors(&output);
        assert_eq!(errors.len(), 1, "{case}: {errors:?}");
        let error = &errors[0];
        let prefix = format!("error: {}: ", config.display());
        assert!(error.starts_with(&prefix), "{case}: {error}");
        assert!(error.contains(expected), "{case}: {error}");
        assert!(
            !error.contains("panicked") && !error.contains("backtrace"),
            "{case}: {error}"
        );
        assert_no_secret(&output);
    }
}

#[test]
fn a_file_that_is_not_toml_fails_with_its_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("broken.toml");
    std::fs::write(&config, "[[gateway]]\nname = \"gw\"\nclient_id = basic\n").unwrap();
    let output = gateway_auth(dir.path(), &["check", "--config", config.to_str().unwrap()]);
    assert!(!output.status.success());
    let errors = errors(&output);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with(&format!("error: {}: line 3, column 13: ", config.display())),
        "{errors:?}"
    );
}

#[test]
fn check_prints_a_row_per_gateway_and_fails_when_one_does() {
    let server = DevServer::start(Default::default()).unwrap();
    let dir = workdir(&server);
    let good = gateway(&server, &[], "");
    let text = [
        good.clone(),
        good.replace("\"gw\"", "\"expired-path\"")
            .replace("dev-ca.pem", "gone.pem"),
        good.replace("\"gw\"", "\"plain-http\"")
            .replace("https://", "http://"),
        good.replace("\"gw\"", "\"last\""),
    ]
    .join("\n");
    let config = dir.path().join("gateways.toml");
    std::fs::write(&config, text).unwrap();
    let output = gateway_auth(dir.path(), &["check", "--config", config.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    let table = stdout(&output);
    let rows: Vec<_> = table.lines().skip(1).collect();
    assert_eq!(rows.len(), 4, "{table}");
    let status = |row: &str| row.split_whitespace().nth(1).unwrap().to_string();
    assert_eq!(
        rows.iter().map(|r| status(r)).collect::<Vec<_>>(),
        ["ok", "FAIL", "FAIL", "ok"],
        "{table}"
    );
    assert!(
        rows[1].contains("ca: cannot read ") && rows[1].contains("gone.pem"),
        "{table}"
    );
    assert!(
        rows[2].contains("token_endpoint: ") && rows[2].contains("is not https"),
        "{table}"
    );
    assert!(
        rows[0].contains("not after ") && rows[0].contains(" days)"),
        "{table}"
    );
    assert_eq!(
        errors(&output),
        [format!(
            "error: {}: 2 of 4 gateways failed the check",
            config.display()
        )]
    );
    assert_eq!(server.token_requests(), 0);
}

#[test]
fn check_refuses_a_signing_key_the_plugin_cannot_use_without_sending_anything() {
    let server = DevServer::start(Default::default()).unwrap();
    let dir = workdir(&server);
    std::fs::write(
        dir.path().join("garbled.key"),
        "-----BEGIN PRIVATE KEY-----\nZ2FyYmxlZA==\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let jwt = gateway(
        &server,
        &[(
            r#"{ method = "client_secret_basic", secret_env = "ORDERS_CLIENT_SECRET" }"#,
            r#"{ method = "private_key_jwt", private_key = "garbled.key", algorithm = "RS256" }"#,
        )],
        "",
    );
    let config = dir.path().join("gateways.toml");
    std::fs::write(&config, jwt).unwrap();
    let output = gateway_auth(dir.path(), &["check", "--config", config.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    let table = stdout(&output);
    let row = table.lines().nth(1).unwrap_or_default();
    assert!(
        row.starts_with("gw ")
            && row.contains(" FAIL ")
            && row.contains("auth.private_key: oauth configuration error: the JWT signing key"),
        "{table}"
    );
    assert_eq!(server.token_requests(), 0);
}

#[test]
fn a_sqlite_store_next_to_the_file_serves_the_second_token_without_a_request() {
    let server = DevServer::start(Default::default()).unwrap();
    let dir = workdir(&server);
    let config = dir.path().join("gateways.toml");
    std::fs::write(
        &config,
        gateway(&server, &[], "store = \"sqlite:tokens.db\"\n"),
    )
    .unwrap();
    // Run from elsewhere: the store's relative path is the file's.
    let elsewhere = tempfile::tempdir().unwrap();
    let run = || {
        let output = gateway_auth(
            elsewhere.path(),
            &["token", "--config", config.to_str().unwrap(), "gw"],
        );
        assert!(output.status.success(), "{:?}", errors(&output));
        stdout(&output)
    };
    let first = run();
    let second = run();
    assert_eq!(first, second);
    assert_eq!(server.token_requests(), 1);
    assert!(dir.path().join("tokens.db").exists());
}

#[test]
fn token_names_the_gateways_of_the_file_when_asked_for_another() {
    let server = DevServer::start(Default::default()).unwrap();
    let dir = workdir(&server);
    let config: PathBuf = dir.path().join("gateways.toml");
    std::fs::write(&config, gateway(&server, &[], "")).unwrap();
    let output = gateway_auth(
        dir.path(),
        &["token", "--config", config.to_str().unwrap(), "nope"],
    );
    assert!(!output.status.success());
    assert_eq!(
        errors(&output),
        [format!(
            "error: {}: gateway \"nope\": no such gateway in the file (it has: gw)",
            config.display()
        )]
    );
}

#[test]
fn check_shows_its_progress_on_a_terminal_in_one_overwritten_line() {
    let server = DevServer::start(Default::default()).unwrap();
    let dir = workdir(&server);
    let good = gateway(&server, &[], "");
    let text = [good.clone(), good.replace("\"gw\"", "\"second\"")].join("\n");
    let config = dir.path().join("gateways.toml");
    std::fs::write(&config, text).unwrap();
    // `script` (util-linux) runs the command on a pseudo-terminal and copies what it
    // writes, stdout and stderr together, to its own stdout.
    let command = format!(
        "{} check --config {}",
        env!("CARGO_BIN_EXE_gateway-auth"),
        config.display()
    );
    let output = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env("ORDERS_CLIENT_SECRET", defaults::BASIC_CLIENT_SECRET)
        .output()
        .expect("script (util-linux) runs");
    let shown = stdout(&output);
    assert!(output.status.success(), "{shown}");
    assert!(shown.contains("\rchecking 1/2 gw…"), "{shown:?}");
    assert!(shown.contains("\rchecking 2/2 second…"), "{shown:?}");
    // The line is cleared before the table, which starts a line of its own.
    assert!(shown.contains("\r\x1b[KGATEWAY"), "{shown:?}");
}

#[test]
fn private_key_jwt_and_tls_client_auth_gateways_get_tokens_from_key_files() {
    let server = DevServer::start(Default::default()).unwrap();
    let dir = workdir(&server);
    for (name, pem) in [
        ("rs256.key", server.client_rs256_key_pem()),
        ("mtls.pem", server.mtls_client_cert_pem()),
        ("mtls.key", server.mtls_client_key_pem()),
    ] {
        std::fs::write(dir.path().join(name), pem).unwrap();
    }
    let client_id = format!("client_id = \"{}\"", defaults::BASIC_CLIENT_ID);
    let basic = r#"{ method = "client_secret_basic", secret_env = "ORDERS_CLIENT_SECRET" }"#;
    let jwt_id = format!("client_id = \"{}\"", defaults::JWT_RS256_CLIENT_ID);
    let jwt = gateway(
        &server,
        &[
            (&client_id, &jwt_id),
            (
                basic,
                r#"{ method = "private_key_jwt", private_key = "rs256.key", algorithm = "RS256" }"#,
            ),
        ],
        "",
    );
    let mtls_id = format!("client_id = \"{}\"", defaults::MTLS_CLIENT_ID);
    let mtls = gateway(
        &server,
        &[
            (&client_id, &mtls_id),
            (basic, r#"{ method = "tls_client_auth" }"#),
            ("\"gw\"", "\"mtls\""),
        ],
        "client_certificate = \"mtls.pem\"\nclient_key = \"mtls.key\"\n",
    );
    let config = dir.path().join("gateways.toml");
    std::fs::write(&config, format!("{jwt}\n{mtls}")).unwrap();
    let config = config.to_str().unwrap();
    let output = gateway_auth(dir.path(), &["check", "--config", config]);
    assert!(output.status.success(), "{}", stdout(&output));
    assert!(
        stdout(&output).contains("mutual TLS"),
        "{}",
        stdout(&output)
    );
    for name in ["gw", "mtls"] {
        let output = gateway_auth(dir.path(), &["token", "--config", config, name]);
        assert!(output.status.success(), "{name}: {:?}", errors(&output));
    }
    let methods: Vec<_> = server
        .requests()
        .into_iter()
        .filter_map(|r| r.client_auth)
        .collect();
    assert_eq!(methods, ["private_key_jwt", "tls_client_auth"]);
}
