//! The server over real HTTPS, driven by a small blocking HTTP/1.1 client over rustls
//! that trusts only the server's own CA.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use gateway_auth_devserver::{DevServer, Misbehaviour, Options, defaults};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use serde_json::Value;
use sha2::{Digest, Sha256};

const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
const EXCHANGE_GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

struct Client {
    config: Arc<ClientConfig>,
    port: u16,
}

struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
    /// The status and the RFC 6749 `error` code.
    fn error(&self) -> (u16, String) {
        (
            self.status,
            self.json()["error"].as_str().unwrap_or_default().to_owned(),
        )
    }
}

impl Client {
    fn new(server: &DevServer, with_mtls_cert: bool) -> Client {
        let mut roots = RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(server.ca_pem().as_bytes()).unwrap())
            .unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let config = if with_mtls_cert {
            let cert =
                CertificateDer::from_pem_slice(server.mtls_client_cert_pem().as_bytes()).unwrap();
            let key =
                PrivateKeyDer::from_pem_slice(server.mtls_client_key_pem().as_bytes()).unwrap();
            builder.with_client_auth_cert(vec![cert], key).unwrap()
        } else {
            builder.with_no_client_auth()
        };
        Client {
            config: Arc::new(config),
            port: server.port(),
        }
    }

    fn connect(&self) -> Connection {
        let tcp = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        tcp.set_nodelay(true).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let name = ServerName::try_from("127.0.0.1").unwrap();
        Connection(StreamOwned::new(
            ClientConnection::new(self.config.clone(), name).unwrap(),
            tcp,
        ))
    }

    fn get(&self, path: &str) -> Response {
        self.connect().send("GET", path, &[], "").unwrap()
    }

    fn post(&self, path: &str, auth: Option<&str>, form: &[(&str, &str)]) -> Response {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let mut headers = vec![("Content-Type", "application/x-www-form-urlencoded")];
        headers.extend(auth.map(|a| ("Authorization", a)));
        self.connect().send("POST", path, &headers, &body).unwrap()
    }

    fn token(&self, auth: Option<&str>, form: &[(&str, &str)]) -> Response {
        self.post("/token", auth, form)
    }

    /// client_credentials as the bundled Basic client.
    fn basic_client_credentials(&self) -> Response {
        self.token(Some(&basic_auth()), &[("grant_type", "client_credentials")])
    }
}

/// One keep-alive connection.
struct Connection(StreamOwned<ClientConnection, TcpStream>);

impl Connection {
    fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> io::Result<Response> {
        let mut request = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        request.push_str(body);
        self.0.write_all(request.as_bytes())?;
        let mut buf = Vec::new();
        let mut chunk = [0; 16 * 1024];
        let mut read_more = |buf: &mut Vec<u8>| -> io::Result<()> {
            let n = self.0.read(&mut chunk)?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            buf.extend_from_slice(&chunk[..n]);
            Ok(())
        };
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            read_more(&mut buf)?;
        };
        let head = String::from_utf8(buf[..head_end].to_vec()).unwrap();
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .unwrap()
            .split(' ')
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
            .collect();
        let length: usize = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .map_or(0, |(_, v)| v.parse().unwrap());
        while buf.len() < head_end + length {
            read_more(&mut buf)?;
        }
        let body = String::from_utf8_lossy(&buf[head_end..head_end + length]).into_owned();
        Ok(Response {
            status,
            headers,
            body,
        })
    }
}

fn encode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// RFC 6749 §2.3.1 done right: form-urlencode both halves, then base64.
fn basic(id: &str, secret: &str) -> String {
    format!(
        "Basic {}",
        STANDARD.encode(format!("{}:{}", encode(id), encode(secret)))
    )
}

fn basic_auth() -> String {
    basic(defaults::BASIC_CLIENT_ID, defaults::BASIC_CLIENT_SECRET)
}

fn err(status: u16, code: &str) -> (u16, String) {
    (status, code.to_owned())
}

fn start() -> (DevServer, Client) {
    let server = DevServer::start(Options::default()).unwrap();
    let client = Client::new(&server, false);
    (server, client)
}

#[test]
fn discovery_answers_on_both_paths_and_rfc8414_can_be_turned_off() {
    let (server, client) = start();
    let rfc8414 = "/.well-known/oauth-authorization-server";
    for path in [rfc8414, "/.well-known/openid-configuration"] {
        let metadata = client.get(path).json();
        assert_eq!(metadata["issuer"], server.issuer());
        assert_eq!(metadata["token_endpoint"], server.token_endpoint());
        let device = server.device_authorization_endpoint();
        assert_eq!(metadata["device_authorization_endpoint"], device);
        assert_eq!(metadata["code_challenge_methods_supported"][0], "S256");
    }
    server.set_rfc8414_metadata(false);
    assert_eq!(client.get(rfc8414).status, 404);
    assert_eq!(client.get("/.well-known/openid-configuration").status, 200);
}

#[test]
fn client_credentials_with_basic_and_a_secret_full_of_traps() {
    let (server, client) = start();
    let form = [
        ("grant_type", "client_credentials"),
        ("scope", "read write"),
        ("resource", "https://a"),
        ("resource", "https://b"),
    ];
    let response = client.token(Some(&basic_auth()), &form);
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(response.header("cache-control"), Some("no-store"));
    let token = response.json();
    assert_eq!(
        (&token["token_type"], &token["expires_in"]),
        (&"Bearer".into(), &3600.into())
    );
    assert_eq!(token["scope"], "read write");
    assert!(
        token.get("refresh_token").is_none(),
        "none for client_credentials"
    );
    let recorded = server.requests().pop().unwrap();
    assert_eq!(recorded.client_auth.as_deref(), Some("client_secret_basic"));
    assert_eq!(
        recorded.client_id.as_deref(),
        Some(defaults::BASIC_CLIENT_ID)
    );
    assert_eq!(recorded.grant_type.as_deref(), Some("client_credentials"));
    assert_eq!((recorded.status, server.token_requests()), (200, 1));
}

#[test]
fn basic_credentials_that_were_not_form_encoded_are_refused() {
    let (_server, client) = start();
    let raw = format!(
        "{}:{}",
        defaults::BASIC_CLIENT_ID,
        defaults::BASIC_CLIENT_SECRET
    );
    let auth = format!("Basic {}", STANDARD.encode(raw));
    let response = client.token(Some(&auth), &[("grant_type", "client_credentials")]);
    assert_eq!(response.error(), err(401, "invalid_client"));
    assert!(
        response
            .header("www-authenticate")
            .unwrap()
            .starts_with("Basic")
    );
    assert!(
        !response.body.contains("pa ss"),
        "the secret must not be echoed"
    );
    // The right secret by the wrong method is refused too.
    let post = [
        ("grant_type", "client_credentials"),
        ("client_id", defaults::BASIC_CLIENT_ID),
        ("client_secret", defaults::BASIC_CLIENT_SECRET),
    ];
    assert_eq!(
        client.token(None, &post).error(),
        err(401, "invalid_client")
    );
}

#[test]
fn password_grant_with_client_secret_post() {
    let (_server, client) = start();
    let mut form = vec![
        ("grant_type", "password"),
        ("client_id", defaults::POST_CLIENT_ID),
        ("client_secret", defaults::POST_CLIENT_SECRET),
        ("username", defaults::USERNAME),
        ("password", defaults::PASSWORD),
    ];
    let token = client.token(None, &form).json();
    assert!(token["access_token"].is_string() && token["refresh_token"].is_string());
    form[4].1 = "guess";
    assert_eq!(client.token(None, &form).error(), err(400, "invalid_grant"));
}

fn pkce_pair(seed: u8) -> (String, String) {
    let verifier = URL_SAFE_NO_PAD.encode([seed; 40]);
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(&verifier));
    (verifier, challenge)
}

/// The authorization URL of the public client, with `extra` query parameters.
fn authorization_url(server: &DevServer, challenge: &str, extra: &str) -> String {
    let (endpoint, id) = (server.authorization_endpoint(), defaults::PUBLIC_CLIENT_ID);
    format!(
        "{endpoint}?response_type=code&client_id={id}&code_challenge={challenge}\
         &code_challenge_method=S256&state=st4te{extra}"
    )
}

/// The `code` of the redirect the user's consent to `url` produces.
fn consent(server: &DevServer, url: &str) -> String {
    let redirect = url::Url::parse(&server.authorize(url).unwrap()).unwrap();
    let query: std::collections::HashMap<_, _> = redirect.query_pairs().into_owned().collect();
    assert_eq!(query["state"], "st4te");
    query["code"].clone()
}

/// Runs the code flow for the public client and returns the token response.
fn code_flow(server: &DevServer, client: &Client, scope: &str) -> Value {
    let (verifier, challenge) = pkce_pair(7);
    let extra = format!(
        "&redirect_uri={}&scope={}",
        encode(defaults::REDIRECT_URI),
        encode(scope)
    );
    let url = authorization_url(server, &challenge, &extra);
    let code = consent(server, &url);
    // The same URL through GET /authorize answers with the same kind of redirect.
    let via_http = client.get(&url[server.issuer().len()..]);
    assert_eq!(via_http.status, 302);
    assert!(
        via_http
            .header("location")
            .unwrap()
            .starts_with(defaults::REDIRECT_URI)
    );

    let form = [
        ("grant_type", "authorization_code"),
        ("client_id", defaults::PUBLIC_CLIENT_ID),
        ("code", code.as_str()),
        ("redirect_uri", defaults::REDIRECT_URI),
        ("code_verifier", verifier.as_str()),
    ];
    let response = client.token(None, &form);
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(
        client.token(None, &form).error(),
        err(400, "invalid_grant"),
        "single use"
    );
    response.json()
}

#[test]
fn authorization_code_with_pkce_and_a_wrong_verifier() {
    let (server, client) = start();
    let token = code_flow(&server, &client, "openid profile");
    assert_eq!(token["scope"], "openid profile");
    assert_eq!(token["id_token"].as_str().unwrap().split('.').count(), 3);

    let (_, challenge) = pkce_pair(7);
    let url = authorization_url(&server, &challenge, "");
    let code = consent(&server, &url);
    let (wrong, _) = pkce_pair(8);
    let form = [
        ("grant_type", "authorization_code"),
        ("client_id", defaults::PUBLIC_CLIENT_ID),
        ("code", &code),
        ("code_verifier", &wrong),
    ];
    let refused = client.token(None, &form);
    assert_eq!(refused.error(), err(400, "invalid_grant"));
    assert!(refused.body.contains("code_verifier"), "{}", refused.body);

    let error = server.authorize(&url.replace("S256", "plain")).unwrap_err();
    assert!(error.to_string().contains("S256"), "{error}");
}

#[test]
fn refresh_tokens_rotate_and_the_old_one_is_refused() {
    let (server, client) = start();
    let first = code_flow(&server, &client, "read");
    let refresh = |token: &str| {
        let id = defaults::PUBLIC_CLIENT_ID;
        let form = [
            ("grant_type", "refresh_token"),
            ("client_id", id),
            ("refresh_token", token),
        ];
        client.token(None, &form)
    };
    let old = first["refresh_token"].as_str().unwrap();
    let second = refresh(old).json();
    let new = second["refresh_token"].as_str().unwrap();
    assert_ne!(new, old);
    assert_eq!(second["scope"], "read");
    assert_eq!(refresh(old).error(), err(400, "invalid_grant"));

    server.set_rotate_refresh_tokens(false);
    assert!(refresh(new).json().get("refresh_token").is_none());
    assert_eq!(
        refresh(new).status,
        200,
        "without rotation the refresh token stays valid"
    );
}

#[test]
fn device_flow_pending_then_approved_and_too_fast_polls_slow_down() {
    let (server, client) = start();
    server.set_device_interval(1);
    let begin = || {
        let form = [("client_id", defaults::PUBLIC_CLIENT_ID), ("scope", "tv")];
        client.post("/device_authorization", None, &form).json()
    };
    let poll = |device: &Value| {
        let code = device["device_code"].as_str().unwrap();
        let id = defaults::PUBLIC_CLIENT_ID;
        let form = [
            ("grant_type", DEVICE_GRANT),
            ("client_id", id),
            ("device_code", code),
        ];
        client.token(None, &form)
    };
    let hasty = begin();
    assert_eq!(
        (&hasty["interval"], &hasty["expires_in"]),
        (&1.into(), &600.into())
    );
    assert_eq!(poll(&hasty).error(), err(400, "authorization_pending"));
    assert_eq!(
        poll(&hasty).error(),
        err(400, "slow_down"),
        "polled sooner than the interval"
    );

    let patient = begin();
    assert_eq!(poll(&patient).error(), err(400, "authorization_pending"));
    assert!(server.approve_device(&patient["user_code"].as_str().unwrap().to_lowercase()));
    std::thread::sleep(Duration::from_secs(1)); // exactly the interval: no slow_down
    let token = poll(&patient).json();
    assert_eq!(token["scope"], "tv", "{token}");
    assert!(token["refresh_token"].is_string());
    assert_eq!(
        poll(&patient).error(),
        err(400, "invalid_grant"),
        "the device code is spent"
    );

    let denied = begin();
    assert!(server.deny_device(denied["user_code"].as_str().unwrap()));
    assert_eq!(poll(&denied).error(), err(400, "access_denied"));
    assert!(!server.approve_device("ZZZZ-ZZZZ"));
}

#[test]
fn tls_client_auth_needs_the_registered_certificate() {
    let server = DevServer::start(Options::default()).unwrap();
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", defaults::MTLS_CLIENT_ID),
    ];
    let with_cert = Client::new(&server, true).token(None, &form);
    assert_eq!(with_cert.status, 200, "{}", with_cert.body);
    let without = Client::new(&server, false).token(None, &form);
    assert_eq!(without.error(), err(401, "invalid_client"));
    // A public client stays public when its connection carries a certificate.
    let public = [("client_id", defaults::PUBLIC_CLIENT_ID)];
    let device = Client::new(&server, true).post("/device_authorization", None, &public);
    assert_eq!(device.status, 200, "{}", device.body);
    let auth: Vec<_> = server
        .requests()
        .into_iter()
        .map(|r| r.client_auth.unwrap())
        .collect();
    assert_eq!(auth, ["tls_client_auth", "none", "none"]);
}

/// A private_key_jwt assertion by the ES256 client, signed here with ring.
fn client_assertion(server: &DevServer, jti: &str) -> String {
    let pem = server.client_es256_key_pem();
    let der = PrivateKeyDer::from_pem_slice(pem.as_bytes()).unwrap();
    let rng = ring::rand::SystemRandom::new();
    let alg = &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING;
    let key = ring::signature::EcdsaKeyPair::from_pkcs8(alg, der.secret_der(), &rng).unwrap();
    let now = std::time::UNIX_EPOCH.elapsed().unwrap().as_secs();
    let (id, aud) = (defaults::JWT_ES256_CLIENT_ID, server.token_endpoint());
    let claims = serde_json::json!({
        "iss": id, "sub": id, "aud": aud, "iat": now, "exp": now + 60, "jti": jti,
    });
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"ES256","typ":"JWT"}"#);
    let input = format!("{header}.{}", URL_SAFE_NO_PAD.encode(claims.to_string()));
    let signature = key.sign(&rng, input.as_bytes()).unwrap();
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

#[test]
fn private_key_jwt_jwt_bearer_token_exchange_and_revocation() {
    let (server, client) = start();
    let assertion = client_assertion(&server, "once");
    let form = [
        ("grant_type", "client_credentials"),
        ("client_assertion_type", ASSERTION_TYPE),
        ("client_assertion", assertion.as_str()),
    ];
    assert_eq!(client.token(None, &form).status, 200);
    let replay = client.token(None, &form);
    assert_eq!(replay.error(), err(401, "invalid_client"));
    assert!(replay.body.contains("jti"), "{}", replay.body);

    let bearer = server.sign_jwt_bearer_assertion("bob");
    let form = [
        ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
        ("assertion", &bearer),
    ];
    assert_eq!(client.token(Some(&basic_auth()), &form).status, 200);

    let subject = server.issue_access_token(defaults::BASIC_CLIENT_ID, "read");
    let exchange = |subject: &str| {
        let form = [
            ("grant_type", EXCHANGE_GRANT),
            ("subject_token", subject),
            ("subject_token_type", ACCESS_TOKEN_TYPE),
            ("audience", "https://downstream"),
        ];
        client.token(Some(&basic_auth()), &form)
    };
    assert_eq!(
        exchange(&subject).json()["issued_token_type"],
        ACCESS_TOKEN_TYPE
    );

    let form = [
        ("token", subject.as_str()),
        ("token_type_hint", "access_token"),
    ];
    assert_eq!(
        client.post("/revoke", Some(&basic_auth()), &form).status,
        200
    );
    assert!(server.is_revoked(&subject));
    assert_eq!(exchange(&subject).error(), err(400, "invalid_grant"));
    let unknown = [("token", "unknown")];
    assert_eq!(
        client.post("/revoke", Some(&basic_auth()), &unknown).status,
        200
    );
}

#[test]
fn misbehaviour_503_with_retry_after_for_one_request_then_normal() {
    let (server, client) = start();
    let unavailable = Misbehaviour::ServiceUnavailable { retry_after: 7 };
    server.set_misbehaviour(Some(unavailable), Some(1));
    let response = client.basic_client_credentials();
    assert_eq!(
        (response.status, response.header("retry-after")),
        (503, Some("7"))
    );
    assert!(response.body.starts_with("<html>"));
    assert_eq!(client.basic_client_credentials().status, 200);
    assert_eq!(server.token_requests(), 2);
}

#[test]
fn every_misbehaviour_answers_as_documented() {
    let (server, client) = start();
    let ask = |m: Misbehaviour| {
        server.set_misbehaviour(Some(m), Some(1));
        client.basic_client_credentials()
    };
    let form = ask(Misbehaviour::FormEncoded);
    let form_type = "application/x-www-form-urlencoded";
    assert_eq!(form.header("content-type"), Some(form_type));
    assert!(form.body.starts_with("access_token=at_"), "{}", form.body);
    assert!(
        form.body.contains("&token_type=bearer&expires_in=3600"),
        "{}",
        form.body
    );
    let text = ask(Misbehaviour::ExpiresInString).json();
    assert_eq!(
        (&text["expires_in"], &text["token_type"]),
        (&"3600".into(), &"bearer".into())
    );
    assert_eq!(
        ask(Misbehaviour::ErrorIn200).error(),
        err(200, "invalid_request")
    );
    let created = ask(Misbehaviour::Status201);
    assert_eq!(
        (created.status, &created.json()["token_type"]),
        (201, &"Bearer".into())
    );
    assert_eq!(
        ask(Misbehaviour::InvalidGrant).error(),
        err(400, "invalid_grant")
    );
    let invalid_client = ask(Misbehaviour::InvalidClient);
    assert_eq!(invalid_client.error(), err(401, "invalid_client"));
    assert!(invalid_client.header("www-authenticate").is_some());
    let limited = ask(Misbehaviour::TooManyRequests { retry_after: 3 });
    assert_eq!(
        (limited.status, limited.header("retry-after")),
        (429, Some("3"))
    );
    assert_eq!(limited.body, "rate limited");
    let html = ask(Misbehaviour::HtmlError);
    assert!(html.status == 500 && html.body.contains("access_token=leaked-value"));
    let redirect = ask(Misbehaviour::Redirect);
    let elsewhere = Some("https://127.0.0.1:1/elsewhere");
    assert_eq!(
        (redirect.status, redirect.header("location")),
        (302, elsewhere)
    );
    assert!(ask(Misbehaviour::Oversize).body.len() >= 2 << 20);
    let started = std::time::Instant::now();
    assert_eq!(ask(Misbehaviour::Slow { millis: 300 }).status, 200);
    assert!(started.elapsed() >= Duration::from_millis(300));
    // Until cleared:
    server.set_misbehaviour(Some(Misbehaviour::InvalidGrant), None);
    for _ in 0..2 {
        assert_eq!(client.basic_client_credentials().status, 400);
    }
    server.set_misbehaviour(None, None);
    assert_eq!(client.basic_client_credentials().status, 200);
}

#[test]
fn drop_connection_answers_nothing_and_keep_alive_works_afterwards() {
    let (server, client) = start();
    server.set_misbehaviour(Some(Misbehaviour::DropConnection), Some(1));
    let auth = basic_auth();
    let headers = [
        ("Content-Type", "application/x-www-form-urlencoded"),
        ("Authorization", auth.as_str()),
    ];
    let body = "grant_type=client_credentials";
    let mut dropped = client.connect();
    let request = format!(
        "POST /token HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {}\r\n\
         Authorization: {auth}\r\nContent-Length: {}\r\n\r\n{body}",
        headers[0].1,
        body.len()
    );
    dropped.0.write_all(request.as_bytes()).unwrap();
    let mut received = Vec::new();
    // The TLS session ends without close_notify: rustls reports that as an error.
    let _ = dropped.0.read_to_end(&mut received);
    assert!(received.is_empty(), "expected not a single byte back");
    assert_eq!(server.requests().pop().unwrap().status, 0);

    let mut connection = client.connect();
    for _ in 0..3 {
        let response = connection.send("POST", "/token", &headers, body).unwrap();
        assert_eq!(response.status, 200);
    }
}
