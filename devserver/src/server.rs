//! The TLS accept loop, HTTP/1.1 over hyper, and the routing of each request to its
//! endpoint.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONNECTION, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio_rustls::TlsAcceptor;

use crate::clients::{self, Seen};
use crate::device;
use crate::drip;
use crate::state::Shared;
use crate::wire::{Form, OAuthError, Reply};
use crate::{ClientAuth, Misbehaviour, Recorded, authorize, grants, misbehave};

/// Larger request bodies are refused; no OAuth request comes close.
const MAX_BODY: usize = 64 * 1024;

/// Accepts connections until `stop` fires (or its sender is dropped).
pub(crate) async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    shared: Arc<Shared>,
    mut stop: oneshot::Receiver<()>,
) {
    let acceptor = TlsAcceptor::from(tls);
    loop {
        let tcp = tokio::select! {
            _ = &mut stop => return,
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    tracing::debug!("accept failed: {e}");
                    continue;
                }
            },
        };
        // Without it, Nagle's algorithm holds back each small response until the client's
        // delayed ACK: 40 ms per request.
        let _ = tcp.set_nodelay(true);
        shared.lock().connections += 1;
        let (acceptor, shared) = (acceptor.clone(), shared.clone());
        tokio::spawn(async move {
            let tls = match acceptor.accept(tcp).await {
                Ok(tls) => tls,
                Err(e) => return tracing::debug!("TLS handshake failed: {e}"),
            };
            let peer = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| chain.first());
            let peer: Option<[u8; 32]> = peer.map(|cert| Sha256::digest(cert).into());
            let switch = drip::Switch::default();
            let io = drip::DripIo::new(tls, switch.clone());
            let activity = Arc::new(Activity::default());
            let (serving, watched) = (shared.clone(), activity.clone());
            let service = hyper::service::service_fn(move |req| {
                let answer = handle(serving.clone(), peer, switch.clone(), req);
                let activity = watched.clone();
                let closing = !serving.lock().keep_alive;
                async move {
                    activity.begin();
                    let mut answer = answer.await;
                    activity.end();
                    if let (Ok(response), true) = (&mut answer, closing) {
                        response
                            .headers_mut()
                            .insert(CONNECTION, HeaderValue::from_static("close"));
                    }
                    answer
                }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(io), service);
            tokio::pin!(connection);
            loop {
                let idle_close = shared.lock().idle_close;
                let check = idle_close.map_or(Duration::from_secs(1), |limit| {
                    (limit / 4).clamp(Duration::from_millis(1), Duration::from_millis(50))
                });
                tokio::select! {
                    ended = connection.as_mut() => {
                        if let Err(e) = ended {
                            tracing::debug!("connection ended: {e}");
                        }
                        return;
                    }
                    () = tokio::time::sleep(check) => {
                        if idle_close.is_some_and(|limit| activity.idle_for(limit)) {
                            // Closes at once when no request is under way, with
                            // close_notify.
                            connection.as_mut().graceful_shutdown();
                        }
                    }
                }
            }
        });
    }
}

/// Whether a connection is serving a request, and since when it has been idle.
struct Activity {
    state: std::sync::Mutex<(usize, std::time::Instant)>,
}

impl Default for Activity {
    fn default() -> Self {
        Self {
            state: std::sync::Mutex::new((0, std::time::Instant::now())),
        }
    }
}

impl Activity {
    fn begin(&self) {
        self.state.lock().unwrap().0 += 1;
    }

    fn end(&self) {
        let mut state = self.state.lock().unwrap();
        *state = (state.0 - 1, std::time::Instant::now());
    }

    /// Whether no request is under way and none has been for `limit`.
    fn idle_for(&self, limit: Duration) -> bool {
        let (in_flight, since) = *self.state.lock().unwrap();
        in_flight == 0 && since.elapsed() >= limit
    }
}

/// What the service returns to have hyper close the connection without an answer.
#[derive(Debug)]
struct DropConnection;

impl std::fmt::Display for DropConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped on purpose (misbehaviour switch)")
    }
}

impl std::error::Error for DropConnection {}

/// The parts of a request the endpoints look at.
struct RequestParts {
    method: Method,
    path: String,
    query: String,
    authorization: Option<String>,
    form_encoded: bool,
    body: Option<Bytes>,
    peer: Option<[u8; 32]>,
}

async fn handle(
    shared: Arc<Shared>,
    peer: Option<[u8; 32]>,
    switch: drip::Switch,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, DropConnection> {
    let header = |name| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let form_encoded = header(CONTENT_TYPE).is_some_and(|t| {
        t.split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .eq_ignore_ascii_case("application/x-www-form-urlencoded")
    });
    let (method, path) = (req.method().clone(), req.uri().path().to_owned());
    let query = req.uri().query().unwrap_or_default().to_owned();
    let authorization = header(AUTHORIZATION);
    // `None` when the body was too large (or broke off): answered 413 below.
    let body = Limited::new(req.into_body(), MAX_BODY).collect().await;
    let body = body.ok().map(|b| b.to_bytes());
    let request = RequestParts {
        method,
        path,
        query,
        authorization,
        form_encoded,
        body,
        peer,
    };
    let mut record = Recorded {
        method: request.method.to_string(),
        path: request.path.clone(),
        grant_type: None,
        client_auth: None,
        client_id: None,
        status: 0,
    };
    let reply = match request.body {
        Some(_) => route(&shared, &request, &switch, &mut record).await,
        None => Some(Reply::new(413, "text/plain", "request body too large")),
    };
    record.status = reply.as_ref().map_or(0, |r| r.status);
    // The request line only: queries, headers and bodies carry secrets.
    tracing::debug!(method = %record.method, path = %record.path, status = record.status, "devserver");
    shared.lock().requests.push(record);
    let reply = reply.ok_or(DropConnection)?;
    let mut response = Response::builder().status(reply.status);
    for (name, value) in reply.headers {
        response = response.header(name, value);
    }
    Ok(response
        .body(Full::new(reply.body))
        .expect("valid status and headers"))
}

/// The answer, or `None` to drop the connection.
async fn route(
    shared: &Shared,
    req: &RequestParts,
    switch: &drip::Switch,
    record: &mut Recorded,
) -> Option<Reply> {
    let path = req.path.as_str();
    let metadata_enabled = shared.lock().rfc8414_metadata;
    Some(match (&req.method, path) {
        (&Method::GET, "/.well-known/oauth-authorization-server") if metadata_enabled => {
            metadata(shared)
        }
        (&Method::GET, "/.well-known/openid-configuration") => metadata(shared),
        (&Method::GET, "/authorize") => {
            let query: Vec<(String, String)> = form_urlencoded::parse(req.query.as_bytes())
                .into_owned()
                .collect();
            record.client_id = query
                .iter()
                .find(|(n, _)| n == "client_id")
                .map(|(_, v)| v.clone());
            match authorize::consent(&mut shared.lock(), &shared.issuer, &query) {
                Ok(url) => Reply::new(302, "text/plain", "").header("location", url),
                Err(why) => Reply::new(400, "text/plain", why),
            }
        }
        (&Method::GET, "/device") => Reply::new(
            200,
            "text/plain",
            "gateway-auth devserver: a test approves device codes with DevServer::approve_device",
        ),
        (&Method::POST, "/token") => {
            let reply = token_endpoint(shared, req, record).await?;
            // Decided once the request was processed: a dripped refresh has rotated.
            let grant_type = record.grant_type.as_deref();
            let Some(interval) = drip::take(&mut shared.lock(), grant_type) else {
                return Some(reply);
            };
            if let Some(token) = presented_refresh_token(req) {
                shared.lock().dripped_refresh_tokens.push(token);
            }
            switch.turn_on(interval);
            drip::closing(reply)
        }
        (&Method::POST, "/device_authorization" | "/revoke") => {
            let result = form_and_client(shared, req, record).and_then(|(form, seen)| {
                let mut st = shared.lock();
                let client_id = clients::authenticate(shared, &mut st, &seen, req.peer)?;
                if path == "/revoke" {
                    st.revoke(form.require("token")?, &client_id)?;
                    return Ok(Reply::new(200, "text/plain", ""));
                }
                let answer = device::start(&mut st, &shared.issuer, &client_id, form.get("scope"));
                Ok(Reply::json(200, &answer))
            });
            result.unwrap_or_else(Reply::from)
        }
        _ => Reply::new(404, "text/plain", "not found"),
    })
}

async fn token_endpoint(
    shared: &Shared,
    req: &RequestParts,
    record: &mut Recorded,
) -> Option<Reply> {
    let (misbehaviour, delay) = {
        let mut st = shared.lock();
        st.token_requests += 1;
        (misbehave::take(&mut st), st.token_delay)
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let parsed = form_and_client(shared, req, record);
    match &misbehaviour {
        Some(Misbehaviour::DropConnection) => return None,
        Some(Misbehaviour::Slow { millis }) => {
            tokio::time::sleep(Duration::from_millis(*millis)).await
        }
        Some(m) => {
            if let Some(reply) = misbehave::canned(m) {
                return Some(reply);
            }
        }
        None => {}
    }
    let result = parsed.and_then(|(form, seen)| grants::token(shared, &seen, req.peer, &form));
    Some(match (result, misbehaviour) {
        (Ok(token), Some(m)) => misbehave::reshape(&m, &token),
        (Ok(token), None) => Reply::json(200, &token),
        (Err(e), _) => e.into(),
    })
}

/// The refresh token a refresh request presented.
fn presented_refresh_token(req: &RequestParts) -> Option<String> {
    let form = Form::parse(req.body.as_deref()?).ok()?;
    (form.get("grant_type") == Some("refresh_token"))
        .then(|| form.get("refresh_token").map(str::to_owned))?
}

/// Parses the form body and what the client presented, noting both in the record.
fn form_and_client(
    shared: &Shared,
    req: &RequestParts,
    record: &mut Recorded,
) -> Result<(Form, Seen), OAuthError> {
    if !req.form_encoded {
        return Err(OAuthError::invalid_request(
            "the body must be application/x-www-form-urlencoded",
        ));
    }
    let form = Form::parse(req.body.as_deref().unwrap_or_default())?;
    let mtls_client = |id: &str| {
        let registered = shared
            .lock()
            .client(id)
            .map(|c| c.auth == ClientAuth::TlsClientAuth);
        req.peer.is_some() && registered == Some(true)
    };
    let seen = clients::seen(req.authorization.as_deref(), &form, mtls_client);
    record.grant_type = form.get("grant_type").map(Into::into);
    record.client_auth = Some(seen.method.to_owned());
    record.client_id = seen.client_id.clone();
    Ok((form, seen))
}

/// RFC 8414 metadata; the OpenID Connect document is the same plus what OIDC requires.
fn metadata(shared: &Shared) -> Reply {
    let body = json!({
        "issuer": shared.issuer,
        "token_endpoint": shared.endpoint("/token"),
        "authorization_endpoint": shared.endpoint("/authorize"),
        "device_authorization_endpoint": shared.endpoint("/device_authorization"),
        "revocation_endpoint": shared.endpoint("/revoke"),
        "grant_types_supported": grants::GRANT_TYPES,
        "response_types_supported": ["code"],
        "token_endpoint_auth_methods_supported": [
            "client_secret_basic", "client_secret_post", "private_key_jwt", "tls_client_auth", "none"
        ],
        "token_endpoint_auth_signing_alg_values_supported": ["RS256", "ES256"],
        "revocation_endpoint_auth_methods_supported": [
            "client_secret_basic", "client_secret_post", "private_key_jwt", "tls_client_auth", "none"
        ],
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": true,
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
    });
    Reply::json(200, &body)
}
