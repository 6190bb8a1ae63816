//! A scripted [`Platform`] for tests: canned responses, recorded requests, an
//! in-memory store with compare-and-swap, a virtual clock that sleeping advances, and
//! deterministic randomness.

use std::cell::Cell;
use std::collections::{BTreeMap, VecDeque};

use gateway_auth_api::NetError;

use crate::http::{HttpError, Request, Response};
use crate::platform::Platform;
use gateway_auth_api::TrustSpec;

/// The fake clock's start: 2023-11-14T22:13:20Z.
pub const START_MS: u64 = 1_700_000_000_000;

/// A hook run before each compare-and-swap, with the store: plays another replica.
pub type StoreHook = Box<dyn FnMut(&mut BTreeMap<String, Vec<u8>>)>;

pub struct FakePlatform {
    now_ms: u64,
    /// Time each send takes; a send whose timeout is shorter times out.
    pub latency_ms: u64,
    responses: VecDeque<Result<Response, HttpError>>,
    /// Every request sent.
    pub requests: Vec<Request>,
    /// The timeout of every send.
    pub timeouts: Vec<u32>,
    /// Every sleep, in milliseconds.
    pub sleeps: Vec<u64>,
    /// The store.
    pub store: BTreeMap<String, Vec<u8>>,
    /// Whether store calls fail.
    pub store_down: bool,
    /// How many times the store was read.
    pub store_reads: usize,
    /// Run once, before the next compare-and-swap.
    pub before_cas: Option<StoreHook>,
    /// Run once, at the next sleep: another instance finishing meanwhile.
    pub on_sleep: Option<StoreHook>,
    /// The store goes down after this many more successful compare-and-swaps.
    pub fail_store_after_cas: Option<usize>,
    /// A store that is down comes back at the next sleep: a short outage.
    pub store_recovers_at_sleep: bool,
    /// How far the clock moves at each reading: time passing while the code runs.
    pub tick_ms: u64,
    ticked_ms: Cell<u64>,
    random: u64,
}

impl FakePlatform {
    pub fn new() -> Self {
        Self {
            now_ms: START_MS,
            latency_ms: 0,
            responses: VecDeque::new(),
            requests: Vec::new(),
            timeouts: Vec::new(),
            sleeps: Vec::new(),
            store: BTreeMap::new(),
            store_down: false,
            store_reads: 0,
            before_cas: None,
            on_sleep: None,
            fail_store_after_cas: None,
            store_recovers_at_sleep: false,
            tick_ms: 0,
            ticked_ms: Cell::new(0),
            random: 0x9e37_79b9_7f4a_7c15,
        }
    }

    /// Scripts the next response.
    pub fn push(&mut self, response: Response) {
        self.responses.push_back(Ok(response));
    }

    /// Scripts the next failure.
    pub fn push_err(&mut self, err: HttpError) {
        self.responses.push_back(Err(err));
    }

    /// Whether every scripted answer was used.
    #[allow(dead_code)]
    pub fn script_done(&self) -> bool {
        self.responses.is_empty()
    }

    pub fn advance(&mut self, seconds: u64) {
        self.now_ms += seconds * 1000;
    }

    pub fn advance_ms(&mut self, ms: u64) {
        self.now_ms += ms;
    }

    pub fn now(&self) -> u64 {
        (self.now_ms + self.ticked_ms.get()) / 1000
    }

    /// The form body of request `i`.
    pub fn form(&self, i: usize) -> Vec<(String, String)> {
        form_urlencoded::parse(&self.requests[i].body)
            .into_owned()
            .collect()
    }

    /// The first value of `name` in request `i`'s form.
    pub fn param(&self, i: usize, name: &str) -> Option<String> {
        self.form(i)
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
    }
}

impl Platform for FakePlatform {
    fn round_trip(
        &mut self,
        _trust: &TrustSpec,
        request: &Request,
        timeout_ms: u32,
    ) -> Result<Response, HttpError> {
        self.requests.push(request.clone());
        self.timeouts.push(timeout_ms);
        if self.latency_ms > u64::from(timeout_ms) {
            self.now_ms += u64::from(timeout_ms);
            return Err(HttpError::Transport(NetError::Timeout));
        }
        self.now_ms += self.latency_ms;
        match self.responses.pop_front() {
            Some(answer) => answer,
            None => panic!("unexpected request: {request:?}"),
        }
    }

    fn store_get(&mut self, key: &str) -> Result<Option<Vec<u8>>, String> {
        self.store_reads += 1;
        if self.store_down {
            return Err("store down".into());
        }
        Ok(self.store.get(key).cloned())
    }

    fn store_compare_and_swap(
        &mut self,
        key: &str,
        expected: Option<&[u8]>,
        value: Option<&[u8]>,
    ) -> Result<bool, String> {
        if self.store_down {
            return Err("store down".into());
        }
        if let Some(mut hook) = self.before_cas.take() {
            hook(&mut self.store);
        }
        if self.store.get(key).map(Vec::as_slice) != expected {
            return Ok(false);
        }
        match value {
            Some(v) => self.store.insert(key.to_string(), v.to_vec()),
            None => self.store.remove(key),
        };
        if let Some(left) = &mut self.fail_store_after_cas {
            *left = left.saturating_sub(1);
            self.store_down |= *left == 0;
        }
        Ok(true)
    }

    fn now_ms(&self) -> u64 {
        let ticked = self.ticked_ms.get();
        self.ticked_ms.set(ticked + self.tick_ms);
        self.now_ms + ticked
    }

    fn sleep_ms(&mut self, ms: u64) {
        self.sleeps.push(ms);
        self.now_ms += ms;
        if self.store_recovers_at_sleep {
            self.store_down = false;
            self.fail_store_after_cas = None;
        }
        if let Some(mut hook) = self.on_sleep.take() {
            hook(&mut self.store);
        }
    }

    fn fill_random(&mut self, buf: &mut [u8]) {
        // xorshift64*: deterministic, and different on every call.
        for byte in buf {
            self.random ^= self.random >> 12;
            self.random ^= self.random << 25;
            self.random ^= self.random >> 27;
            *byte = (self.random.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8;
        }
    }
}

/// A JSON response.
pub fn json(status: u16, body: &str) -> Response {
    Response {
        status,
        headers: vec![("content-type".into(), "application/json".into())],
        body: body.as_bytes().to_vec(),
    }
}

/// A token response body.
pub fn token_json(access_token: &str, expires_in: u64) -> String {
    format!(
        r#"{{"access_token":"{access_token}","token_type":"Bearer","expires_in":{expires_in}}}"#
    )
}

/// A token response body with a refresh token.
pub fn token_json_with_refresh(access_token: &str, expires_in: u64, refresh_token: &str) -> String {
    format!(
        r#"{{"access_token":"{access_token}","token_type":"Bearer","expires_in":{expires_in},"refresh_token":"{refresh_token}"}}"#
    )
}

/// An RFC 6749 §5.2 error body.
pub fn error_json(error: &str) -> String {
    format!(r#"{{"error":"{error}"}}"#)
}

/// Adds headers to canned responses.
pub trait ResponseExt {
    fn with_header(self, name: &str, value: &str) -> Self;
}

impl ResponseExt for Response {
    fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }
}
