//! OAuth 2.0 client flows: one-off token requests and keyed token sessions.
//!
//! [`OAuth`] is the entry point. Below it, each concern has one place, and all but
//! `call` and `replica` are sans-IO and tested on bytes:
//!
//! - `config` checks a client before anything is sent.
//! - `request` builds each request's parameters and the authorization URL;
//!   `client_auth` adds client authentication (with `jwt` assertions); `pkce` makes
//!   verifiers and states.
//! - `classify` judges every answer by one rule set (the fix for the founding bug:
//!   flows that each checked errors their own way); `redact` keeps secrets out of it,
//!   and `error` says how HTTP failures count.
//! - `retry` is the one retry and backoff policy; `device` interprets a device poll;
//!   `discovery` finds endpoints (RFC 8414, OpenID Connect).
//! - `session` is the session state machine and its stored record; `replica` keeps a
//!   session in step with the host's store, and so with other instances.
//! - `call` is the one path to a server: build, authenticate, round trip, classify,
//!   retry.
//!
//! Security notes: redirects are never followed (a token endpoint that redirects is an
//! error); only `https` endpoints are accepted; egress is decided by the host; no secret
//! (client secret, password, token, code, verifier, assertion, key) appears in any
//! error or `Debug` output; sessions store tokens in the host's store but never the
//! client's secrets.

mod call;
mod challenge;
mod classify;
mod client_auth;
mod config;
mod device;
mod discovery;
mod dpop;
mod engine;
mod error;
mod jwt;
mod pkce;
mod redact;
mod registration;
mod replica;
mod request;
mod resource;
mod retry;
mod session;

#[cfg(feature = "fuzzing")]
pub(crate) mod fuzzing;
#[cfg(test)]
mod metrics_tests;
#[cfg(test)]
mod testing;
#[cfg(test)]
mod tests;

pub use engine::OAuth;
