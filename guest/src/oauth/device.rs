//! One step of device-code polling (RFC 8628 §3.4, §3.5), as a pure function of the
//! classified answer and the current interval.
//!
//! Choices:
//! - `expired_token` ends the flow as [`OAuthError::AuthorizationRequired`]: the user
//!   did not finish in time, and starting again is what helps.
//! - `access_denied` ends the flow as the server's own [`OAuthError::Protocol`] error:
//!   the user said no, which a caller should be able to tell apart from a timeout by
//!   the standard code rather than by a message.

use super::classify::TokenResponse;
use gateway_auth_api::{OAuthError, ProtocolError};

/// Seconds added to the interval on `slow_down` (RFC 8628 §3.5).
pub const SLOW_DOWN_INCREMENT: u64 = 5;

/// What one poll means.
#[derive(Debug, PartialEq, Eq)]
pub enum PollOutcome {
    /// The user approved: here is the token.
    Token(TokenResponse),
    /// Not yet: poll again after the interval.
    Pending,
    /// Not yet, and poll less often: this is the new interval.
    SlowDown {
        /// The new interval, in seconds.
        interval: u64,
    },
    /// The device code expired before the user finished.
    Expired,
    /// The user refused.
    Denied(ProtocolError),
    /// Anything else: the flow stays pending and the error goes to the caller.
    Failed(OAuthError),
}

/// Interprets the answer to one poll made with `interval` seconds between polls.
pub fn poll_step(result: Result<TokenResponse, OAuthError>, interval: u64) -> PollOutcome {
    match result {
        Ok(token) => PollOutcome::Token(token),
        Err(OAuthError::Protocol(e)) => match e.error.as_str() {
            "authorization_pending" => PollOutcome::Pending,
            "slow_down" => PollOutcome::SlowDown {
                interval: interval + SLOW_DOWN_INCREMENT,
            },
            "expired_token" => PollOutcome::Expired,
            "access_denied" => PollOutcome::Denied(e),
            _ => PollOutcome::Failed(OAuthError::Protocol(e)),
        },
        Err(other) => PollOutcome::Failed(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gateway_auth_api::AccessToken;

    fn protocol(error: &str) -> Result<TokenResponse, OAuthError> {
        Err(OAuthError::Protocol(ProtocolError {
            status: 400,
            error: error.into(),
            description: None,
            uri: None,
            retry_after: None,
        }))
    }

    #[test]
    fn each_standard_answer_has_its_outcome() {
        assert_eq!(
            poll_step(protocol("authorization_pending"), 5),
            PollOutcome::Pending
        );
        assert_eq!(
            poll_step(protocol("slow_down"), 5),
            PollOutcome::SlowDown { interval: 10 }
        );
        assert_eq!(
            poll_step(protocol("expired_token"), 5),
            PollOutcome::Expired
        );
        assert!(
            matches!(poll_step(protocol("access_denied"), 5), PollOutcome::Denied(e) if e.error == "access_denied")
        );
        assert!(matches!(
            poll_step(protocol("invalid_client"), 5),
            PollOutcome::Failed(OAuthError::Protocol(_))
        ));
        let token = TokenResponse {
            access_token: AccessToken::new("AT"),
            token_type: "Bearer".into(),
            expires_in: None,
            scopes: None,
            refresh_token: None,
            id_token: None,
            issued_token_type: None,
        };
        assert!(matches!(poll_step(Ok(token), 5), PollOutcome::Token(_)));
    }
}
