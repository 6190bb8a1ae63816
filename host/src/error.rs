//! The host library's error type.

use std::time::Duration;

use gateway_auth_api::{NetError, OAuthError, TlsError};

/// Why a plugin call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The plugin refused the trust material, or an upstream TLS session failed.
    #[error("tls: {0}")]
    Tls(TlsError),
    /// An OAuth operation failed.
    #[error("{0}")]
    OAuth(OAuthError),
    /// The call ran past its deadline. The instance was replaced by a fresh one (its TLS
    /// cache starts empty; sessions continue from the store).
    #[error("the plugin call ran past its {0:?} deadline; the instance was replaced")]
    DeadlineExceeded(Duration),
    /// The plugin trapped (a bug, or memory exhausted). The instance was replaced.
    #[error("the plugin trapped and the instance was replaced: {0}")]
    Trapped(String),
    /// An upstream connection could not be opened or used (refused by the egress
    /// policy, unresolvable, unreachable, reset).
    #[error("upstream connection: {0}")]
    Net(NetError),
    /// An upstream TLS session belonged to an instance that has since been replaced
    /// (after a trap or a missed deadline): open a new stream.
    #[error("the plugin instance this TLS session lived in was replaced; open a new stream")]
    InstanceReplaced,
    /// The host could not load or instantiate the component.
    #[error("host: {0}")]
    Host(String),
}

impl From<TlsError> for Error {
    fn from(e: TlsError) -> Self {
        Self::Tls(e)
    }
}

impl From<OAuthError> for Error {
    fn from(e: OAuthError) -> Self {
        Self::OAuth(e)
    }
}

/// A host failure, described.
pub(crate) fn host(e: impl std::fmt::Display) -> Error {
    Error::Host(e.to_string())
}
