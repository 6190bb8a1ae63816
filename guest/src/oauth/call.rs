//! The one path from a flow to an authorization server and back: build the request
//! (with client authentication), make the round trip over the client's TLS trust,
//! classify the answer, and retry by the one policy. Every token, device, revocation
//! and discovery request goes through [`with_retries`]; this is the only module of
//! `oauth` that does I/O with a server.
//!
//! The names say what each step is: a flow asks for a [`token_request`] (or another
//! [`post_form`], or [`get_document`]); [`with_retries`] makes attempts; each attempt
//! is one [`Platform::round_trip`]. Every token request attempt sent is counted here
//! (see [`crate::metrics`]), by grant and classified outcome, with its duration.

use gateway_auth_api::{Client, NetError, OAuthError, TrustSpec, grant_label};

use super::classify::{self, Fields, TokenResponse};
use super::client_auth;
use super::dpop::{self, DpopKey};
use super::pkce;
use super::redact;
use super::request::Params;
use super::retry::{self, Deadline, Decision, Replay};
use crate::http::{HttpError, Request, Response};
use crate::metrics;
use crate::platform::Platform;

/// A classifier: the response and the time (Unix seconds) it arrived.
pub type Classifier<T> = fn(&Response, u64) -> Result<T, OAuthError>;

/// A failed call, with whether any of its attempts may have reached the server: one
/// that failed before its request's first byte left (no endpoint, a refused
/// connection, a handshake that never finished) cannot have been acted on, so a
/// single-use credential it carried is still unspent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failed {
    /// The error, as the caller sees it.
    pub error: OAuthError,
    /// Whether the server may have received a request of this call.
    pub reached: bool,
}

impl Failed {
    /// A failure before anything was sent.
    pub fn unsent(error: OAuthError) -> Self {
        Self {
            error,
            reached: false,
        }
    }
}

impl From<Failed> for OAuthError {
    fn from(failed: Failed) -> Self {
        failed.error
    }
}

/// The DPoP key a call's requests are signed with (RFC 9449 §4), and the nonce the
/// server last gave (§8): sent with every proof, and replaced by the one of each
/// answer that carries a `DPoP-Nonce`.
#[derive(Debug)]
pub struct Dpop {
    /// The key.
    pub key: DpopKey,
    /// The server's latest nonce.
    pub nonce: Option<String>,
}

impl Dpop {
    /// `request` with a `DPoP` proof header for it.
    fn sign(&self, p: &mut dyn Platform, mut request: Request) -> Result<Request, OAuthError> {
        let method = match request.method {
            crate::http::Method::Get => "GET",
            crate::http::Method::Post => "POST",
        };
        let jti = pkce::random_token(p);
        let proof = dpop::proof(
            &self.key,
            method,
            &request.url,
            self.nonce.as_deref(),
            None,
            p.now_secs(),
            &jti,
        )?;
        request.headers.push(("dpop".into(), proof));
        Ok(request)
    }
}

/// Makes round trips with the request `build` makes (anew for every attempt) until one
/// is classified a success, the retry policy stops, or the deadline passes.
pub fn with_retries<T>(
    p: &mut dyn Platform,
    trust: &TrustSpec,
    deadline: Deadline,
    replay: Replay,
    build: &mut dyn FnMut(&mut dyn Platform) -> Result<Request, OAuthError>,
    classify: Classifier<T>,
) -> Result<T, OAuthError> {
    attempts(p, trust, deadline, replay, build, classify, None, None).map_err(OAuthError::from)
}

/// [`with_retries`], counting every attempt sent as a token request of `grant` when
/// one is given, and signing every request with `dpop` when given: an answer asking
/// for a DPoP nonce (RFC 9449 §8) is followed by the same request with it, once.
#[allow(clippy::too_many_arguments)]
fn attempts<T>(
    p: &mut dyn Platform,
    trust: &TrustSpec,
    deadline: Deadline,
    replay: Replay,
    build: &mut dyn FnMut(&mut dyn Platform) -> Result<Request, OAuthError>,
    classify: Classifier<T>,
    grant: Option<&'static str>,
    mut dpop: Option<&mut Dpop>,
) -> Result<T, Failed> {
    let mut attempt = 1;
    let mut reached = false;
    let mut nonce_retried = false;
    let failed = |error, reached| Failed { error, reached };
    loop {
        let remaining = deadline.remaining(p.now_ms());
        if remaining == 0 {
            return Err(failed(OAuthError::Transport(NetError::Timeout), reached));
        }
        let mut request = build(p).map_err(|e| failed(e, reached))?;
        if let Some(dpop) = dpop.as_deref() {
            request = dpop.sign(p, request).map_err(|e| failed(e, reached))?;
        }
        request.replay_safe = match replay {
            Replay::Safe => true,
            Replay::OnlyIfUnprocessed => false,
        };
        let timeout = u32::try_from(remaining).unwrap_or(u32::MAX);
        let sent_at = p.now_ms();
        let answer = p.round_trip(trust, &request, timeout);
        // A nonce request is answered before anything is spent (RFC 9449 §8): the
        // same request goes again with the nonce, whatever it redeems.
        let mut asked_nonce = false;
        if let (Some(dpop), Ok(response)) = (dpop.as_deref_mut(), &answer) {
            if let Some(nonce) = dpop::nonce_challenge(response) {
                asked_nonce = true;
                dpop.nonce = Some(nonce);
            } else if let Some(nonce) = response.header("dpop-nonce") {
                dpop.nonce = Some(nonce.trim().to_string());
            }
        }
        if asked_nonce && !nonce_retried {
            nonce_retried = true;
            continue;
        }
        reached |= answer
            .as_ref()
            .map_or_else(HttpError::may_have_reached, |_| true);
        let result = answer
            .map_err(OAuthError::from)
            .and_then(|response| classify(&response, p.now_secs()));
        if let Some(grant) = grant {
            let outcome = result.as_ref().map_or_else(OAuthError::case_name, |_| "ok");
            metrics::token_request(grant, outcome, p.now_ms().saturating_sub(sent_at));
        }
        // A server may echo what it was sent in any shape; what was sent is known.
        let err = match result {
            Ok(value) => return Ok(value),
            Err(err) => redact::finish(err, &redact::secrets_of(&request)),
        };
        let remaining = deadline.remaining(p.now_ms());
        match retry::decide(attempt, &err, replay, remaining, p.random_u64()) {
            Decision::Retry { after_ms } => {
                p.sleep_ms(after_ms);
                attempt += 1;
            }
            Decision::Stop => return Err(failed(err, reached)),
        }
    }
}

/// POSTs `params` with the client's authentication to `endpoint`, signed with `dpop`
/// when given.
#[allow(clippy::too_many_arguments)]
pub fn post_form<T>(
    p: &mut dyn Platform,
    client: &Client,
    endpoint: &str,
    params: &Params,
    replay: Replay,
    deadline: Deadline,
    classify: Classifier<T>,
    dpop: Option<&mut Dpop>,
) -> Result<T, OAuthError> {
    send_form(
        p, client, endpoint, params, replay, deadline, classify, None, dpop,
    )
    .map_err(OAuthError::from)
}

/// [`post_form`], counting every attempt as a token request of `grant` when given.
#[allow(clippy::too_many_arguments)]
fn send_form<T>(
    p: &mut dyn Platform,
    client: &Client,
    endpoint: &str,
    params: &Params,
    replay: Replay,
    deadline: Deadline,
    classify: Classifier<T>,
    grant: Option<&'static str>,
    dpop: Option<&mut Dpop>,
) -> Result<T, Failed> {
    let mut build = |p: &mut dyn Platform| {
        let mut params = params.clone();
        let jti = pkce::random_token(p);
        let header = client_auth::authenticate(client, endpoint, &mut params, p.now_secs(), &jti)?;
        let request = Request::form(endpoint, &params.pairs());
        Ok(match header {
            Some((name, value)) => request.with_header(name, value),
            None => request,
        })
    };
    attempts(
        p,
        &client.trust,
        deadline,
        replay,
        &mut build,
        classify,
        grant,
        dpop,
    )
}

/// A token request: the one function every grant of every flow goes through, so the
/// one place token requests are counted. A failure says whether the server may have
/// received the request (and so spent what it carried). Signed with `dpop` when given.
pub fn token_request(
    p: &mut dyn Platform,
    client: &Client,
    endpoint: &str,
    params: &Params,
    replay: Replay,
    deadline: Deadline,
    dpop: Option<&mut Dpop>,
) -> Result<TokenResponse, Failed> {
    let grant = grant_label(params.get("grant_type").unwrap_or_default());
    send_form(
        p,
        client,
        endpoint,
        params,
        replay,
        deadline,
        classify::classify,
        Some(grant),
        dpop,
    )
}

/// GETs a JSON document (discovery metadata); no client authentication.
pub fn get_document(
    p: &mut dyn Platform,
    trust: &TrustSpec,
    url: &str,
    deadline: Deadline,
) -> Result<Fields, OAuthError> {
    let mut build = |_: &mut dyn Platform| Ok(Request::get(url));
    with_retries(
        p,
        trust,
        deadline,
        Replay::Safe,
        &mut build,
        classify::classify_document,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::HttpError;
    use crate::oauth::testing::{FakePlatform, ResponseExt, json, token_json};
    use gateway_auth_api::ClientAuth;

    fn client() -> Client {
        let mut client = Client::new("c", ClientAuth::None, TrustSpec::default());
        client.token_endpoint = Some("https://as.example/token".into());
        client
    }

    fn params() -> Params {
        let mut params = Params::default();
        params.push("grant_type", "client_credentials");
        params
    }

    fn send(
        p: &mut FakePlatform,
        replay: Replay,
        d: Deadline,
    ) -> Result<TokenResponse, OAuthError> {
        token_request(
            p,
            &client(),
            "https://as.example/token",
            &params(),
            replay,
            d,
            None,
        )
        .map_err(OAuthError::from)
    }

    fn deadline(p: &FakePlatform, ms: u32) -> Deadline {
        Deadline::start(p.now_ms(), ms)
    }

    #[test]
    fn transient_failures_are_retried_with_sleeps_recorded_not_taken() {
        let mut p = FakePlatform::new();
        p.push(json(503, "{}"));
        p.push_err(HttpError::Transport(NetError::Reset("rst".into())));
        p.push(json(200, &token_json("AT", 60)));
        let d = deadline(&p, 10_000);
        let t = send(&mut p, Replay::Safe, d).unwrap();
        assert_eq!(t.access_token.secret(), "AT");
        assert_eq!(p.requests.len(), 3);
        assert_eq!(p.sleeps.len(), 2);
        assert!(p.sleeps[0] <= retry::RETRY_BASE_MS && p.sleeps[1] <= 2 * retry::RETRY_BASE_MS);
    }

    #[test]
    fn attempts_are_bounded() {
        let mut p = FakePlatform::new();
        for _ in 0..5 {
            p.push(json(500, "{}"));
        }
        let d = deadline(&p, 10_000);
        let err = send(&mut p, Replay::Safe, d).unwrap_err();
        assert!(matches!(err, OAuthError::HttpStatus(e) if e.status == 500));
        assert_eq!(p.requests.len(), retry::MAX_ATTEMPTS as usize);
    }

    #[test]
    fn a_retry_after_beyond_the_deadline_returns_the_error_at_once() {
        let mut p = FakePlatform::new();
        p.push(json(429, "{}").with_header("retry-after", "30"));
        let d = deadline(&p, 10_000);
        let err = send(&mut p, Replay::Safe, d).unwrap_err();
        assert_eq!(err.retry_after(), Some(30));
        assert_eq!((p.requests.len(), p.sleeps.len()), (1, 0));

        p.push(json(429, "{}").with_header("retry-after", "2"));
        p.push(json(200, &token_json("AT", 60)));
        let d = deadline(&p, 10_000);
        send(&mut p, Replay::Safe, d).unwrap();
        assert_eq!(p.sleeps, vec![2_000]);
    }

    #[test]
    fn the_deadline_bounds_every_send_and_the_whole_call() {
        let mut p = FakePlatform::new();
        p.latency_ms = 4_000;
        p.push(json(500, "{}"));
        p.push(json(500, "{}"));
        let d = deadline(&p, 5_000);
        let err = send(&mut p, Replay::Safe, d).unwrap_err();
        // After 4 s only 1 s is left: a retry may still fit, with the rest as its timeout.
        assert!(matches!(
            err,
            OAuthError::HttpStatus(_) | OAuthError::Transport(NetError::Timeout)
        ));
        assert_eq!(p.timeouts[0], 5_000);
        assert!(p.timeouts.iter().skip(1).all(|t| *t < 1_000));
    }

    #[test]
    fn single_use_requests_are_not_replayed_after_a_lost_response() {
        let mut p = FakePlatform::new();
        p.push_err(HttpError::Transport(NetError::Timeout));
        let d = deadline(&p, 10_000);
        let r = send(&mut p, Replay::OnlyIfUnprocessed, d);
        assert_eq!(r.unwrap_err(), OAuthError::Transport(NetError::Timeout));
        assert_eq!(p.requests.len(), 1);
    }

    #[test]
    fn every_token_request_sent_is_counted_with_its_outcome_and_duration() {
        let mut p = FakePlatform::new();
        p.latency_ms = 30;
        p.push(json(503, "{}"));
        p.push(json(200, &token_json("AT", 60)));
        p.push(json(400, r#"{"error":"invalid_client"}"#));
        let d = deadline(&p, 10_000);
        send(&mut p, Replay::Safe, d).unwrap();
        send(&mut p, Replay::Safe, d).unwrap_err();
        let c = crate::metrics::counters();
        let counted: Vec<(String, String, u64)> = c
            .token_requests()
            .into_iter()
            .map(|r| (r.grant, r.outcome, r.count))
            .collect();
        let cc = || "client_credentials".to_string();
        assert_eq!(
            counted,
            vec![
                (cc(), "http_status".into(), 1),
                (cc(), "ok".into(), 1),
                (cc(), "protocol".into(), 1),
            ]
        );
        let durations = &c.token_request_durations()[0];
        assert_eq!((durations.count, durations.sum_ms), (3, 90));
        // 30 ms: above the 25 ms bound, within the 50 ms one.
        assert_eq!((durations.cumulative[2], durations.cumulative[3]), (0, 3));
    }

    #[test]
    fn other_requests_than_token_requests_are_not_counted_as_token_requests() {
        let mut p = FakePlatform::new();
        p.push(json(200, "{}"));
        let d = deadline(&p, 10_000);
        let mut revoke = Params::default();
        revoke.push("token", "RT");
        post_form(
            &mut p,
            &client(),
            "https://as.example/revoke",
            &revoke,
            Replay::Safe,
            d,
            classify::classify_revocation,
            None,
        )
        .unwrap();
        assert_eq!(p.requests.len(), 1);
        assert!(crate::metrics::counters().token_requests().is_empty());
    }

    #[test]
    fn tls_and_denied_failures_are_never_retried() {
        let mut p = FakePlatform::new();
        p.push_err(HttpError::Tls("unknown issuer".into()));
        p.push_err(HttpError::Transport(NetError::Denied("egress".into())));
        let d = deadline(&p, 10_000);
        let r = send(&mut p, Replay::Safe, d);
        assert!(matches!(r, Err(OAuthError::Tls(_))));
        let r = send(&mut p, Replay::Safe, d);
        assert!(matches!(r, Err(OAuthError::Transport(NetError::Denied(_)))));
        assert_eq!(p.requests.len(), 2);
    }
}
