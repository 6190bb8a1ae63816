//! Servers that misbehave the way broken and hostile ones do, through the real
//! component and host: each ends in a clear error with bounded reads, and the instance
//! goes on serving.

use std::io::Write;
use std::sync::Arc;

use gateway_auth_devserver::{DevServer, defaults};
use gateway_auth_host::{Client, SessionGrant, TrustSpec};
use gateway_auth_host::{ClientAuth, Error, Grant, OAuthError};
use gateway_auth_tests::{
    TestCa, TokenServer, code_and_state, dev_client, endless, loopback_plugin, token_server_client,
};

/// A client of `server` (trusting `ca`) with a 20 s deadline, far beyond what a
/// cut-off answer takes.
fn client(ca: &TestCa, server: &TokenServer) -> Client {
    let mut client = token_server_client(server, TrustSpec::ca(&ca.pem));
    client.timeout_ms = Some(20_000);
    client
}

#[test]
fn a_response_that_never_ends_its_head_or_chunk_line_is_cut_off_and_the_instance_serves_on() {
    let ca = TestCa::new("hostile");
    let good = TokenServer::start(&ca, None);
    for (head, filler, error) in [
        (
            "HTTP/1.1 200 OK\r\nX: ",
            b'a',
            "response head larger than 16384 bytes",
        ),
        // Empty lines before the status line are skipped, but they count.
        ("", b'\n', "response head larger than 16384 bytes"),
        (
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n",
            b'f',
            "chunk-size line longer than 1024 bytes",
        ),
        (
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n",
            b'a',
            "response body larger than 1048576 bytes",
        ),
    ] {
        let server = TokenServer::start_with(&ca, None, endless(head, filler));
        let mut plugin = loopback_plugin();
        let result = plugin.request_token(&client(&ca, &server), Grant::ClientCredentials);
        assert!(
            matches!(&result, Err(Error::OAuth(OAuthError::InvalidResponse(m))) if m == error),
            "{head:?}: {result:?}"
        );
        // Cut off at the bound, not read until the 20 s deadline.
        let received = plugin.transport_stats().bytes_received;
        assert!(
            received <= (1 << 20) + (64 << 10),
            "{head:?}: {received} bytes read"
        );

        let token = plugin
            .request_token(&client(&ca, &good), Grant::ClientCredentials)
            .expect("the same instance serves a normal request");
        assert!(token.access_token.secret().starts_with("tok-"));
    }
}

#[test]
fn a_secret_the_server_echoes_leaves_no_fragment_in_the_error_at_any_offset() {
    const SECRET: &str = "s3cr3t-0123456789-abcdefghij-KLMNOPQRSTUV";
    // The Nth answer echoes the secret 200 + N/2 characters in, as plain text (odd N)
    // or inside a JSON error_description (even N): across the 256-character cut.
    let echo = Arc::new(|out: &mut dyn Write, n: u64| {
        let pad = "p".repeat(200 + (n / 2) as usize);
        let (content_type, body) = if n % 2 == 1 {
            ("text/plain", format!("{pad}{SECRET} was refused"))
        } else {
            (
                "application/json",
                format!(r#"{{"error":"invalid_request","error_description":"{pad}{SECRET}"}}"#),
            )
        };
        let _ = write!(
            out,
            "HTTP/1.1 400 Bad Request\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
    });
    let ca = TestCa::new("echo");
    let server = TokenServer::start_with(&ca, None, echo);
    let mut client = client(&ca, &server);
    client.auth = ClientAuth::ClientSecretPost(SECRET.into());
    let mut plugin = loopback_plugin();
    for call in 0..140 {
        let err = plugin
            .request_token(&client, Grant::ClientCredentials)
            .expect_err("every answer is a 400");
        let shown = format!("{err} {err:?}");
        let fragments: Vec<&str> = (0..=SECRET.len() - 8)
            .map(|i| &SECRET[i..i + 8])
            .filter(|f| shown.contains(f))
            .collect();
        assert!(
            fragments.is_empty(),
            "call {call}: {fragments:?} in {shown}"
        );
    }
    assert_eq!(
        plugin.transport_stats().connections,
        140,
        "400s are not retried"
    );
}

/// The `iss` of an authorization redirect.
fn iss_of(redirect: &str) -> String {
    url::Url::parse(redirect)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "iss")
        .map(|(_, v)| v.into_owned())
        .expect("the redirect carries iss")
}

#[test]
fn a_code_from_another_authorization_server_is_refused_before_it_is_redeemed() {
    // RFC 9207 mix-up: the user is sent to the attacker's server with the victim's
    // state, and its code comes back to the gateway's one callback.
    let honest = DevServer::start(Default::default()).unwrap();
    let attacker = DevServer::start(Default::default()).unwrap();
    let mut plugin = loopback_plugin();
    let mut client = dev_client(&honest, defaults::PUBLIC_CLIENT_ID, ClientAuth::None);
    client.issuer = Some(honest.issuer());
    plugin
        .open_session("u", &client, &SessionGrant::AuthorizationCode)
        .unwrap();
    let authorization = plugin.begin_authorization("u").unwrap();

    let lure = authorization
        .url
        .replace(&honest.issuer(), &attacker.issuer());
    let forged = attacker.authorize(&lure).unwrap();
    let (code, state) = code_and_state(&forged);
    assert_eq!(state, authorization.state);
    let result = plugin.complete_authorization("u", &state, code.into(), Some(&iss_of(&forged)));
    assert!(
        matches!(&result, Err(Error::OAuth(OAuthError::Config(m))) if m.contains("mix-up")),
        "{result:?}"
    );
    // The honest server announces iss: a redirect without one is refused too.
    let redirect = honest.authorize(&authorization.url).unwrap();
    let (code, state) = code_and_state(&redirect);
    let result = plugin.complete_authorization("u", &state, code.clone().into(), None);
    assert!(
        matches!(&result, Err(Error::OAuth(OAuthError::Config(m))) if m.contains("no iss")),
        "{result:?}"
    );
    assert_eq!(
        (honest.token_requests(), attacker.token_requests()),
        (0, 0),
        "no code was redeemed anywhere"
    );

    // Neither refusal consumed the user's authorization.
    let token = plugin
        .complete_authorization("u", &state, code.into(), Some(&iss_of(&redirect)))
        .unwrap();
    assert!(!token.access_token.secret().is_empty());
    assert_eq!(honest.token_requests(), 1);
}
