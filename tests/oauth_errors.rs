//! One error classification for every flow: each misbehaviour of the authorization
//! server yields the same documented result whichever flow met it, and no error text
//! carries a secret the flow used.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gateway_auth_devserver::{DevServer, Misbehaviour, defaults};
use gateway_auth_host::{Client, ClientAuth, Error, Grant, OAuthError, Plugin, Token};
use gateway_auth_host::{CodeExchange, NetError, PasswordCredentials, TokenExchange};
use gateway_auth_host::{EgressPolicy, PluginOptions, PluginPool, SessionGrant, TrustSpec};
use gateway_auth_tests::{
    TestCa, TokenServer, code_and_state, dev_basic_client as basic, dev_client as client,
    loopback_plugin, runtime, token_server_client,
};
use sha2::{Digest, Sha256};

/// A flow ready to send: its client, its grant, and the secrets it carries.
struct Prepared {
    client: Client,
    grant: Grant,
    secrets: Vec<String>,
}

fn password() -> Grant {
    Grant::Password(PasswordCredentials {
        username: defaults::USERNAME.into(),
        password: defaults::PASSWORD.into(),
    })
}

const FLOWS: [&str; 5] = [
    "client_credentials",
    "password",
    "refresh_token",
    "authorization_code",
    "token_exchange",
];

/// Obtains what `flow` needs from a well-behaved server (a refresh token, a code).
fn prepare(flow: &str, server: &DevServer, plugin: &mut Plugin) -> Prepared {
    let mut secrets = vec![
        defaults::BASIC_CLIENT_SECRET.to_string(),
        defaults::PASSWORD.to_string(),
    ];
    let (client, grant) = match flow {
        "client_credentials" => (basic(server), Grant::ClientCredentials),
        "password" => (basic(server), password()),
        "refresh_token" => {
            let refresh = plugin
                .request_token(&basic(server), password())
                .unwrap()
                .refresh_token
                .unwrap();
            secrets.push(refresh.secret().into());
            (basic(server), Grant::RefreshToken(refresh))
        }
        "authorization_code" => {
            let verifier = format!("verifier-{}-{}", flow, "x".repeat(40));
            let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
            let url = format!(
                "{}?response_type=code&client_id={}&redirect_uri={}&state=st&code_challenge={challenge}&code_challenge_method=S256",
                server.authorization_endpoint(),
                defaults::PUBLIC_CLIENT_ID,
                defaults::REDIRECT_URI
            );
            let redirect = server.authorize(&url).unwrap();
            let (code, _) = code_and_state(&redirect);
            secrets.extend([code.clone(), verifier.clone()]);
            let grant = Grant::AuthorizationCode(CodeExchange {
                code: Into::into(code),
                code_verifier: Some(Into::into(verifier)),
            });
            (
                client(server, defaults::PUBLIC_CLIENT_ID, ClientAuth::None),
                grant,
            )
        }
        "token_exchange" => {
            let subject = server.issue_access_token(defaults::PUBLIC_CLIENT_ID, "read");
            secrets.push(subject.clone());
            let grant = Grant::TokenExchange(TokenExchange {
                subject_token: Into::into(subject),
                subject_token_type: "urn:ietf:params:oauth:token-type:access_token".into(),
                actor_token: None,
                actor_token_type: None,
                requested_token_type: None,
            });
            (basic(server), grant)
        }
        other => unreachable!("{other}"),
    };
    Prepared {
        client,
        grant,
        secrets,
    }
}

/// The outcome, reduced to what must be the same for every flow.
fn outcome(result: &Result<Token, Error>) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    match result {
        Ok(token) => {
            let lifetime = token.expires_at.map(|at| at.saturating_sub(now));
            let plausible = lifetime.is_some_and(|l| (3500..=3600).contains(&l));
            format!(
                "token {} expires-in-3600={plausible}",
                token.token_type.to_ascii_lowercase()
            )
        }
        Err(Error::OAuth(OAuthError::Protocol(p))) => format!("protocol {} {}", p.status, p.error),
        Err(Error::OAuth(OAuthError::HttpStatus(h))) => {
            format!("http-status {} retry-after={:?}", h.status, h.retry_after)
        }
        Err(Error::OAuth(OAuthError::InvalidResponse(_))) => "invalid-response".into(),
        Err(Error::OAuth(OAuthError::Transport(NetError::Timeout))) => "transport timeout".into(),
        Err(Error::OAuth(OAuthError::Transport(NetError::Reset(_) | NetError::Closed))) => {
            "transport closed".into()
        }
        Err(other) => format!("unexpected {other:?}"),
    }
}

#[test]
fn every_misbehaviour_is_classified_the_same_for_every_flow() {
    let table = [
        (
            Misbehaviour::FormEncoded,
            "token bearer expires-in-3600=true",
        ),
        (
            Misbehaviour::ExpiresInString,
            "token bearer expires-in-3600=true",
        ),
        (Misbehaviour::Status201, "token bearer expires-in-3600=true"),
        (Misbehaviour::ErrorIn200, "protocol 200 invalid_request"),
        (Misbehaviour::InvalidGrant, "protocol 400 invalid_grant"),
        (Misbehaviour::InvalidClient, "protocol 401 invalid_client"),
        (
            Misbehaviour::TooManyRequests { retry_after: 3600 },
            "http-status 429 retry-after=Some(3600)",
        ),
        (
            Misbehaviour::ServiceUnavailable { retry_after: 3600 },
            "http-status 503 retry-after=Some(3600)",
        ),
        (Misbehaviour::HtmlError, "http-status 500 retry-after=None"),
        (Misbehaviour::Redirect, "http-status 302 retry-after=None"),
        (Misbehaviour::Oversize, "invalid-response"),
        (Misbehaviour::Slow { millis: 4_000 }, "transport timeout"),
        (Misbehaviour::DropConnection, "transport closed"),
    ];
    let server = DevServer::start(Default::default()).unwrap();
    let mut plugin = loopback_plugin();
    let mut error_texts = Vec::new();
    let mut all_secrets = Vec::new();
    for (misbehaviour, expected) in table {
        for flow in FLOWS {
            let prepared = prepare(flow, &server, &mut plugin);
            server.set_misbehaviour(Some(misbehaviour.clone()), None);
            let result = plugin.request_token(&prepared.client, prepared.grant);
            server.set_misbehaviour(None, None);
            assert_eq!(outcome(&result), expected, "{flow} under {misbehaviour:?}");
            if let Err(e) = &result {
                error_texts.push(format!("{e} {e:?}"));
            }
            all_secrets.extend(prepared.secrets);
        }
    }
    all_secrets.push("leaked-value".into());
    for text in &error_texts {
        for secret in &all_secrets {
            assert!(
                !text.contains(secret.as_str()),
                "an error shows a secret: {text}"
            );
        }
    }
}

#[test]
fn a_slow_server_is_cut_off_at_the_client_deadline() {
    let server = DevServer::start(Default::default()).unwrap();
    let mut plugin = loopback_plugin();
    server.set_misbehaviour(Some(Misbehaviour::Slow { millis: 5_000 }), None);
    let mut c = basic(&server);
    c.timeout_ms = Some(500);
    let start = std::time::Instant::now();
    let result = plugin.request_token(&c, Grant::ClientCredentials);
    let took = start.elapsed();
    assert_eq!(outcome(&result), "transport timeout");
    // The server would answer after 5 s; the call must give up near its 0.5 s deadline.
    assert!(took < Duration::from_millis(3_000), "took {took:?}");
}

#[test]
fn a_client_deadline_the_plugin_would_cut_short_is_refused_before_anything_is_sent() {
    let ca = TestCa::new("call-timeout");
    let server = TokenServer::start(&ca, None);
    let options = PluginOptions {
        egress: Arc::new(EgressPolicy::parse(["127.0.0.1"]).unwrap()),
        call_timeout: Duration::from_secs(3),
        ..PluginOptions::default()
    };
    let mut plugin = runtime().plugin(options.clone()).unwrap();
    let pool = PluginPool::new(runtime(), options, 2).unwrap();
    let mut slow = token_server_client(&server, TrustSpec::ca(ca.pem.clone()));
    slow.timeout_ms = Some(5_000);
    let grant = SessionGrant::ClientCredentials;

    let refusals = [
        plugin.request_token(&slow, Grant::ClientCredentials).err(),
        plugin.open_session("slow", &slow, &grant).err(),
        pool.open_session("slow", &slow, &grant).err(),
    ];
    for refusal in &refusals {
        assert!(
            matches!(refusal, Some(Error::OAuth(OAuthError::Config(m)))
                if m.contains("5000 ms") && m.contains("3000 ms") && m.contains("call_timeout")),
            "{refusal:?}"
        );
    }
    assert_eq!(plugin.session_status("slow").unwrap(), None);
    assert_eq!(
        server.seen.accepted.load(Ordering::SeqCst),
        0,
        "nothing sent"
    );

    let mut quick = slow.clone();
    quick.timeout_ms = Some(500);
    plugin
        .request_token(&quick, Grant::ClientCredentials)
        .unwrap();
    plugin.open_session("quick", &quick, &grant).unwrap();
    plugin.access_token("quick").unwrap();
    pool.open_session("quick", &quick, &grant).unwrap();
    assert!(server.seen.accepted.load(Ordering::SeqCst) > 0);

    // Lowering the deadline under the open session's is refused, and it stands.
    let lowered = plugin.set_call_timeout(Duration::from_secs(2));
    assert!(
        matches!(&lowered, Err(Error::OAuth(OAuthError::Config(m))) if m.contains("500 ms")),
        "{lowered:?}"
    );
    assert_eq!(plugin.options().call_timeout, Duration::from_secs(3));
}
