//! OAuth 2.0 client flows: one-off token requests and keyed token sessions.
//!
//! [`OAuth`] is the entry point. Below it, each concern has one place, and all but
//! `call` are sans-IO and tested on bytes:
//!
//! - [`types`] and [`error`]: the public types, mirroring `wit/oauth.wit`.
//! - [`request`] builds each grant's parameters; [`client_auth`] adds client
//!   authentication (with [`jwt`] assertions); [`pkce`] makes verifiers and states.
//! - [`classify`](mod@classify) judges every answer by one rule set (the fix for the founding bug:
//!   flows that each checked errors their own way); [`redact`] keeps secrets out of it.
//! - [`retry`] is the one retry and backoff policy; [`device`] interprets a device poll;
//!   [`discovery`] finds endpoints (RFC 8414, OpenID Connect).
//! - [`session`] is the session state machine and its stored record.
//! - `call` is the one path to a server: build, authenticate, send, classify, retry.
//!
//! Security notes: redirects are never followed (a token endpoint that redirects is an
//! error); only `https` endpoints are accepted; egress is decided by the host; no secret
//! (client secret, password, token, code, verifier, assertion, key) appears in any
//! error or `Debug` output; sessions store tokens in the host's store but never the
//! client's secrets.

mod call;
pub mod classify;
pub mod client_auth;
pub mod device;
pub mod discovery;
mod engine;
pub mod error;
pub mod jwt;
pub mod pkce;
pub mod redact;
pub mod request;
pub mod retry;
pub mod session;
pub mod types;

#[cfg(test)]
mod testing;
#[cfg(test)]
mod tests;

pub use classify::{TokenResponse, classify};
pub use engine::OAuth;
pub use error::{BackoffError, HttpStatusError, OAuthError, ProtocolError};
pub use types::*;
