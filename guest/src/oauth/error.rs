//! How the HTTP layer's failures count in the one OAuth classification.

use gateway_auth_api::OAuthError;

use crate::http::HttpError;

impl From<HttpError> for OAuthError {
    /// Maps the HTTP layer's failures. A malformed response is the peer's fault and not
    /// transient, so it is an [`OAuthError::InvalidResponse`]; an unusable URL is a
    /// configuration error, found before anything is sent.
    fn from(err: HttpError) -> Self {
        match err {
            HttpError::InvalidUrl(why) => Self::Config(format!("invalid endpoint url: {why}")),
            HttpError::Tls(why) => Self::Tls(why),
            HttpError::Transport(net) => Self::Transport(net),
            HttpError::TooLarge(limit) => Self::InvalidResponse(limit.to_string()),
            HttpError::Malformed(why) => {
                Self::InvalidResponse(format!("malformed http response: {why}"))
            }
            HttpError::NotSent(err) => Self::from(*err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::Limit;
    use gateway_auth_api::NetError;

    #[test]
    fn http_errors_map_to_their_oauth_classes() {
        assert!(matches!(
            OAuthError::from(HttpError::InvalidUrl("x".into())),
            OAuthError::Config(_)
        ));
        assert_eq!(
            OAuthError::from(HttpError::Tls("bad".into())),
            OAuthError::Tls("bad".into())
        );
        assert_eq!(
            OAuthError::from(HttpError::Transport(NetError::Timeout)),
            OAuthError::Transport(NetError::Timeout)
        );
        let too_large = OAuthError::from(HttpError::TooLarge(Limit::Head(1024)));
        assert!(
            matches!(&too_large, OAuthError::InvalidResponse(m) if m == "response head larger than 1024 bytes")
        );
        assert!(matches!(
            OAuthError::from(HttpError::Malformed("junk".into())),
            OAuthError::InvalidResponse(_)
        ));
    }
}
