//! A development OAuth 2.0 authorization server over real HTTPS, for the end-to-end
//! tests and the CLI demo of gateway-auth.
//!
//! **For development and tests only, never for production.** Its CA and keys live in
//! memory for one run, every "user" consents at once through [`DevServer::authorize`]
//! and [`DevServer::approve_device`], all state is in memory, and it can be switched to
//! misbehave ([`Misbehaviour`]) like the real providers a gateway meets.
//!
//! What it does implement, it implements for real, so that client bugs show: TLS 1.2/1.3
//! with its own CA (optionally mutual), every grant of the WIT contract, and every client
//! authentication method, each verified (a Basic secret that was not form-urlencoded,
//! a replayed assertion `jti`, a wrong client certificate: all refused).
//!
//! The API is synchronous so plain `#[test]` functions can use it: the server runs on a
//! tokio runtime of its own on a background thread and stops when the [`DevServer`] is
//! dropped.

#![warn(missing_docs)]

mod authorize;
mod certs;
mod clients;
mod device;
mod drip;
pub mod fleet;
mod grants;
mod jwt;
mod misbehave;
mod server;
mod state;
mod wire;

use std::sync::Arc;
use std::thread::JoinHandle;

use anyhow::{Context, anyhow, bail};
use tokio::sync::oneshot;

pub use clients::{ClientAuth, ClientRegistration};
use state::{Refresh, Shared, random_token, unix_now};

/// The bundled registrations and credentials of [`Options::default`].
pub mod defaults {
    use crate::{ClientAuth, ClientRegistration};

    /// A `client_secret_basic` client.
    pub const BASIC_CLIENT_ID: &str = "basic-client";
    /// Its secret: ':' '%' and ' ' make it work only if the client form-urlencodes both
    /// halves before base64 (RFC 6749 §2.3.1).
    pub const BASIC_CLIENT_SECRET: &str = "s3c:r%t pa ss";
    /// A `client_secret_post` client.
    pub const POST_CLIENT_ID: &str = "post-client";
    /// Its secret: '&' '=' '+' make it work only if the client encodes the form body.
    pub const POST_CLIENT_SECRET: &str = "p0st&secret=a+b";
    /// A public client (`none`): authorization code with PKCE, device code, refresh.
    pub const PUBLIC_CLIENT_ID: &str = "public-client";
    /// A `private_key_jwt` client with the RS256 key of `DevServer::client_rs256_key_pem`.
    pub const JWT_RS256_CLIENT_ID: &str = "jwt-rs256-client";
    /// A `private_key_jwt` client with the ES256 key of `DevServer::client_es256_key_pem`.
    pub const JWT_ES256_CLIENT_ID: &str = "jwt-es256-client";
    /// A `tls_client_auth` client with the certificate of `DevServer::mtls_client_cert_pem`.
    pub const MTLS_CLIENT_ID: &str = "mtls-client";
    /// The resource owner of the password grant; also the user who consents to
    /// authorization codes and device codes.
    pub const USERNAME: &str = "alice";
    /// Alice's password (with form-encoding traps too).
    pub const PASSWORD: &str = "wonder land&=%";
    /// The redirect URI every bundled client is registered with.
    pub const REDIRECT_URI: &str = "https://gateway.example/callback";
    /// The `iss` that jwt-bearer grant assertions must carry.
    pub const JWT_BEARER_ISSUER: &str = "https://assertions.gateway.example";
    /// The default `expires_in` of access tokens.
    pub const TOKEN_LIFETIME_SECS: u64 = 3600;
    /// The default device polling interval (RFC 8628 §3.2).
    pub const DEVICE_INTERVAL_SECS: u64 = 5;

    /// The bundled clients, one per authentication method.
    pub fn clients() -> Vec<ClientRegistration> {
        let client = |id: &str, auth| ClientRegistration {
            client_id: id.into(),
            auth,
            redirect_uris: vec![REDIRECT_URI.into()],
        };
        vec![
            client(
                BASIC_CLIENT_ID,
                ClientAuth::SecretBasic(BASIC_CLIENT_SECRET.into()),
            ),
            client(
                POST_CLIENT_ID,
                ClientAuth::SecretPost(POST_CLIENT_SECRET.into()),
            ),
            client(PUBLIC_CLIENT_ID, ClientAuth::None),
            client(JWT_RS256_CLIENT_ID, ClientAuth::PrivateKeyJwtRs256),
            client(JWT_ES256_CLIENT_ID, ClientAuth::PrivateKeyJwtEs256),
            client(MTLS_CLIENT_ID, ClientAuth::TlsClientAuth),
        ]
    }
}

/// How to start a [`DevServer`].
#[derive(Clone, Debug)]
pub struct Options {
    /// The registered clients.
    pub clients: Vec<ClientRegistration>,
    /// Users of the password grant, as (name, password); the first one is who consents
    /// to authorization and device codes.
    pub users: Vec<(String, String)>,
    /// `expires_in` of access tokens, in seconds (also [`DevServer::set_token_lifetime`]).
    pub token_lifetime: u64,
    /// The device polling interval, in seconds (also [`DevServer::set_device_interval`]).
    pub device_interval: u64,
    /// Drips every `/token` answer one byte per write, this many milliseconds apart
    /// (0, the default: off; also [`DevServer::set_token_drip`]).
    pub token_drip_ms: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            clients: defaults::clients(),
            users: vec![(defaults::USERNAME.into(), defaults::PASSWORD.into())],
            token_lifetime: defaults::TOKEN_LIFETIME_SECS,
            device_interval: defaults::DEVICE_INTERVAL_SECS,
            token_drip_ms: 0,
        }
    }
}

/// A way for `/token` to misbehave, as real providers and their proxies do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Misbehaviour {
    /// 200 with a real token as `application/x-www-form-urlencoded` (GitHub does this
    /// when the request has no `Accept: application/json`).
    FormEncoded,
    /// A real token with `"expires_in":"3600"` (a string) and `token_type` `bearer`.
    ExpiresInString,
    /// 200 with an RFC 6749 error body in it.
    ErrorIn200,
    /// 201 with a real token.
    Status201,
    /// 400 `invalid_grant`.
    InvalidGrant,
    /// 401 `invalid_client` with `WWW-Authenticate`.
    InvalidClient,
    /// 429 with `Retry-After` and a plain-text body.
    TooManyRequests {
        /// The `Retry-After` seconds.
        retry_after: u64,
    },
    /// 503 with `Retry-After` and an HTML body.
    ServiceUnavailable {
        /// The `Retry-After` seconds.
        retry_after: u64,
    },
    /// 500 with an HTML body containing `access_token=leaked-value`, to test redaction.
    HtmlError,
    /// 302 to `https://127.0.0.1:1/elsewhere`.
    Redirect,
    /// Waits, then answers normally.
    Slow {
        /// How long to wait.
        millis: u64,
    },
    /// 200 with a 2 MiB JSON-like body.
    Oversize,
    /// Closes the connection without any response.
    DropConnection,
}

/// Which `/token` answers leave one byte per write (each byte its own TLS record),
/// and how far apart. The request is processed first, so a client that gives up on
/// a dripped answer has lost an answer the server acted on (a refresh token rotated, a
/// code redeemed). The connection closes after a dripped answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Drip {
    /// The wait between two bytes.
    pub interval: std::time::Duration,
    /// Only answers to requests of this `grant_type` (`None`: every request).
    pub grant_type: Option<String>,
    /// How many more answers to drip (`None`: all).
    pub times: Option<u32>,
}

impl Drip {
    /// Every answer, `interval` per byte.
    pub fn every(interval: std::time::Duration) -> Self {
        Drip {
            interval,
            grant_type: None,
            times: None,
        }
    }

    /// The next `times` answers to `grant_type` requests, `interval` per byte.
    pub fn next(grant_type: &str, times: u32, interval: std::time::Duration) -> Self {
        Drip {
            interval,
            grant_type: Some(grant_type.into()),
            times: Some(times),
        }
    }
}

/// One request the server received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recorded {
    /// The HTTP method.
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// `grant_type`, for token requests.
    pub grant_type: Option<String>,
    /// The client authentication method the request used, for the endpoints that
    /// authenticate clients: `client_secret_basic`, `client_secret_post`,
    /// `private_key_jwt`, `tls_client_auth` or `none`.
    pub client_auth: Option<String>,
    /// The client the request named, if any.
    pub client_id: Option<String>,
    /// The response status; 0 when the connection was dropped without one.
    pub status: u16,
}

/// A running development authorization server; dropping it stops the server.
pub struct DevServer {
    shared: Arc<Shared>,
    port: u16,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl DevServer {
    /// Makes a CA and keys, binds 127.0.0.1 on an ephemeral port and starts serving.
    pub fn start(options: Options) -> anyhow::Result<DevServer> {
        let listener =
            std::net::TcpListener::bind(("127.0.0.1", 0)).context("binding 127.0.0.1")?;
        listener.set_nonblocking(true)?;
        let port = listener.local_addr()?.port();
        let keys = certs::Keys::generate().context("generating certificates and keys")?;
        let tls = keys.tls.clone();
        let shared = Arc::new(Shared::new(
            format!("https://127.0.0.1:{port}"),
            keys,
            options,
        ));
        // One thread suffices for test traffic, and a current-thread runtime is cheap
        // enough to start one server per test.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let listener = {
            let _context = runtime.enter();
            tokio::net::TcpListener::from_std(listener)?
        };
        let (stop, stopped) = oneshot::channel();
        let serving = shared.clone();
        let thread = std::thread::Builder::new()
            .name(format!("devserver-{port}"))
            .spawn(move || runtime.block_on(server::serve(listener, tls, serving, stopped)))?;
        Ok(DevServer {
            shared,
            port,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// `https://127.0.0.1:PORT`, no trailing slash: the `issuer` of the metadata too.
    pub fn issuer(&self) -> String {
        self.shared.issuer.clone()
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The CA certificate (PEM) that signed the server and mTLS client certificates.
    pub fn ca_pem(&self) -> String {
        self.shared.keys.ca_pem.clone()
    }

    /// The token endpoint URL.
    pub fn token_endpoint(&self) -> String {
        self.shared.endpoint("/token")
    }

    /// The authorization endpoint URL.
    pub fn authorization_endpoint(&self) -> String {
        self.shared.endpoint("/authorize")
    }

    /// The device authorization endpoint URL.
    pub fn device_authorization_endpoint(&self) -> String {
        self.shared.endpoint("/device_authorization")
    }

    /// The revocation endpoint URL.
    pub fn revocation_endpoint(&self) -> String {
        self.shared.endpoint("/revoke")
    }

    /// Makes the next `times` requests to `/token` misbehave (`None`: until cleared);
    /// `m: None` (or `times: Some(0)`) clears the switch.
    pub fn set_misbehaviour(&self, m: Option<Misbehaviour>, times: Option<u32>) {
        self.shared.lock().misbehaviour = m.filter(|_| times != Some(0)).map(|m| (m, times));
    }

    /// `expires_in` of access tokens issued from now on (default 3600).
    pub fn set_token_lifetime(&self, seconds: u64) {
        self.shared.lock().token_lifetime = seconds;
    }

    /// With rotation (the default) each refresh returns a new refresh token and the old
    /// one is refused from then on; without, the answer has no refresh token and the
    /// old one stays valid.
    pub fn set_rotate_refresh_tokens(&self, rotate: bool) {
        self.shared.lock().rotate_refresh_tokens = rotate;
    }

    /// Refresh-token reuse detection (RFC 9700 §4.14.2; off by default): a refresh
    /// token rotated away and presented again revokes every token of its lineage and
    /// is answered `invalid_grant`.
    pub fn set_reuse_detection(&self, on: bool) {
        self.shared.lock().reuse_detection = on;
    }

    /// How many reuses were detected (see [`DevServer::set_reuse_detection`]).
    pub fn reuse_detections(&self) -> u64 {
        self.shared.lock().reuse_detections
    }

    /// Successful refreshes of each lineage (a grant's chain of rotated refresh
    /// tokens), in no particular order.
    pub fn refreshes_per_lineage(&self) -> Vec<u64> {
        self.shared.lock().refreshes.values().copied().collect()
    }

    /// Holds every `/token` answer back by `delay` (default none), widening the window
    /// in which concurrent callers overlap.
    pub fn set_token_delay(&self, delay: std::time::Duration) {
        self.shared.lock().token_delay = delay;
    }

    /// Drips the `/token` answers `drip` selects (see [`Drip`]); `None` (or `times`
    /// `Some(0)`) turns dripping off.
    pub fn set_token_drip(&self, drip: Option<Drip>) {
        self.shared.lock().drip = drip.filter(|d| d.times != Some(0));
    }

    /// How many `/token` answers were dripped so far.
    pub fn dripped_answers(&self) -> u64 {
        self.shared.lock().dripped_answers
    }

    /// The refresh tokens of the refresh requests whose answers were dripped, oldest
    /// first.
    pub fn dripped_refresh_tokens(&self) -> Vec<String> {
        self.shared.lock().dripped_refresh_tokens.clone()
    }

    /// How many refresh requests presented `refresh_token`, whatever they were answered
    /// (refused as reused or unknown included).
    pub fn refresh_token_presentations(&self, refresh_token: &str) -> u64 {
        let st = self.shared.lock();
        st.refresh_presented
            .get(refresh_token)
            .copied()
            .unwrap_or(0)
    }

    /// The most times any one refresh token was presented (0 when none was): above 1,
    /// a client sent a refresh token again.
    pub fn most_presentations_of_a_refresh_token(&self) -> u64 {
        let st = self.shared.lock();
        st.refresh_presented.values().copied().max().unwrap_or(0)
    }

    /// Whether `/.well-known/oauth-authorization-server` answers (default true); when
    /// not, only `/.well-known/openid-configuration` does, as with many OIDC providers.
    pub fn set_rfc8414_metadata(&self, enabled: bool) {
        self.shared.lock().rfc8414_metadata = enabled;
    }

    /// The polling interval of device authorizations started from now on; 0 turns the
    /// `slow_down` check off.
    pub fn set_device_interval(&self, seconds: u64) {
        self.shared.lock().device_interval = seconds;
    }

    /// The user approves the device authorization with this user code; false if unknown.
    pub fn approve_device(&self, user_code: &str) -> bool {
        device::decide(
            &mut self.shared.lock(),
            user_code,
            device::Decision::Approved,
        )
    }

    /// The user denies it; false if unknown.
    pub fn deny_device(&self, user_code: &str) -> bool {
        device::decide(&mut self.shared.lock(), user_code, device::Decision::Denied)
    }

    /// The user consents to this authorization URL: validates it as `GET /authorize`
    /// would and returns the redirect URL, `redirect_uri?code=…&state=…`.
    pub fn authorize(&self, authorization_url: &str) -> anyhow::Result<String> {
        let url =
            url::Url::parse(authorization_url).context("the authorization URL does not parse")?;
        if url.origin().ascii_serialization() != self.shared.issuer || url.path() != "/authorize" {
            bail!(
                "{authorization_url} is not {}",
                self.authorization_endpoint()
            );
        }
        let query: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        authorize::consent(&mut self.shared.lock(), &self.shared.issuer, &query)
            .map_err(|why| anyhow!("authorization request refused: {why}"))
    }

    /// Closes a kept-alive connection once it has been idle this long, with
    /// close_notify, as servers with a keep-alive timeout do (`None`, the default:
    /// kept until the client closes it).
    pub fn set_idle_close(&self, after: Option<std::time::Duration>) {
        self.shared.lock().idle_close = after;
    }

    /// Whether answers keep their connection open for the next request (the default);
    /// `false` answers every request with `Connection: close`.
    pub fn set_keep_alive(&self, keep_alive: bool) {
        self.shared.lock().keep_alive = keep_alive;
    }

    /// How many connections the server accepted.
    pub fn connections(&self) -> u64 {
        self.shared.lock().connections
    }

    /// How many requests reached `/token`, misbehaved ones included.
    pub fn token_requests(&self) -> u64 {
        self.shared.lock().token_requests
    }

    /// Every request so far, oldest first.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.lock().requests.clone()
    }

    /// Mints a valid access token for `client_id` (also its subject) without a request,
    /// e.g. as a token-exchange subject. An empty `scope` means none.
    pub fn issue_access_token(&self, client_id: &str, scope: &str) -> String {
        let scope = Some(scope).filter(|s| !s.is_empty());
        self.shared
            .lock()
            .issue(client_id, client_id, scope, Refresh::None)
            .access_token
    }

    /// Whether this token (access or refresh) was revoked.
    pub fn is_revoked(&self, token: &str) -> bool {
        self.shared
            .lock()
            .tokens
            .get(token)
            .is_some_and(|t| t.revoked)
    }

    /// The RS256 private key (PKCS#8 PEM) of [`defaults::JWT_RS256_CLIENT_ID`]. Made on
    /// first use and shared by all servers of the process (RSA key generation is slow).
    pub fn client_rs256_key_pem(&self) -> String {
        certs::rsa_client_key().pem.clone()
    }

    /// The ES256 private key (PKCS#8 PEM) of [`defaults::JWT_ES256_CLIENT_ID`].
    pub fn client_es256_key_pem(&self) -> String {
        self.shared.keys.client_es256.pem.clone()
    }

    /// The certificate (PEM, issued by [`Self::ca_pem`]) of [`defaults::MTLS_CLIENT_ID`].
    pub fn mtls_client_cert_pem(&self) -> String {
        self.shared.keys.mtls_cert_pem.clone()
    }

    /// The private key (PKCS#8 PEM) of that certificate.
    pub fn mtls_client_key_pem(&self) -> String {
        self.shared.keys.mtls_key_pem.clone()
    }

    /// The ES256 private key (PKCS#8 PEM) of [`defaults::JWT_BEARER_ISSUER`].
    pub fn jwt_bearer_issuer_key_pem(&self) -> String {
        self.shared.keys.jwt_bearer_issuer.pem.clone()
    }

    /// An RFC 7523 assertion for the jwt-bearer grant about `subject`, signed ES256 by
    /// the jwt-bearer issuer, for this server's token endpoint, valid for 5 minutes.
    pub fn sign_jwt_bearer_assertion(&self, subject: &str) -> String {
        let now = unix_now();
        let claims = serde_json::json!({
            "iss": defaults::JWT_BEARER_ISSUER, "sub": subject, "aud": self.token_endpoint(),
            "iat": now, "exp": now + 300, "jti": random_token("jti"),
        });
        self.shared.keys.jwt_bearer_issuer.sign(&claims)
    }
}

impl Drop for DevServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        // The runtime, and with it every open connection, ends with the thread.
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
