//! The contract of the gateway-auth plugin (`wit/`, package `gateway:auth`) as plain
//! Rust types, used by the component and by every Rust host.
//!
//! Each WIT record, variant and enum has exactly one definition here; the component's
//! `component/` glue and the host's `wit` module are the only places that convert them
//! to and from generated bindings. Every error's message is written once, in its
//! `Display`, with advice on what to do.
//!
//! What this crate does not do: no bindings, no I/O, no protocol logic. It builds for
//! `wasm32-wasip2` and natively.
//!
//! Security notes: every secret (client secret, password, token, code, verifier,
//! assertion, private key) is a newtype whose `Debug` prints `Name([redacted])` and
//! which has no `Display`; reaching the value takes an explicit `.secret()`. Codes and
//! verifiers are not `Clone` and are taken by value where they are spent.
#![deny(unsafe_code)]
#![warn(missing_docs)]

mod client;
mod error;
mod grant;
mod metrics;
mod net;
mod resource;
pub mod secret;
mod session;
mod tls;
mod token;

pub use client::{
    Client, ClientAuth, DEFAULT_FAILURE_HOLD_OFF_SECONDS, DEFAULT_REFRESH_SKEW_SECONDS,
    DEFAULT_TIMEOUT_MS, DpopBinding, FIRST_FAILURE_HOLD_OFF_SECONDS, JwtAlgorithm,
    RESERVED_AUTHORIZATION_PARAMS, SigningKey,
};
pub use error::{BackoffError, HttpStatusError, OAuthError, ProtocolError};
pub use grant::{
    AssertionSigner, CodeExchange, DEFAULT_ASSERTION_LIFETIME_SECONDS, Grant, PasswordCredentials,
    SessionGrant, TokenExchange,
};
pub use metrics::{
    DurationHistogram, PhaseCount, PluginMetrics, ProfileExpiry, SESSION_PHASES,
    TOKEN_REQUEST_BUCKETS_MS, TokenRequestCount, grant_label,
};
pub use net::NetError;
pub use resource::{Registration, RegistrationRequest, RegistrationSource, ResourceAuthorization};
pub use secret::{
    AccessToken, ActorToken, Assertion, AuthorizationCode, ClientSecret, DeviceCode, IdToken,
    Password, PkceCodeVerifier, PrivateKeyPem, RefreshToken, SubjectToken,
};
pub use session::{SessionLease, SessionPhase, SessionState};
pub use tls::{
    CacheSettings, CacheStats, DEFAULT_CACHE_CAPACITY, EvictionPolicy, Profile, TlsError, TlsInfo,
    TlsOutput, TlsState, TrustSpec,
};
pub use token::{Authorization, DeviceAuthorization, Token};
