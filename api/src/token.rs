//! What the flows hand out: tokens, and what to show a person.

use crate::secret::{AccessToken, IdToken, RefreshToken};

/// An access token (WIT `token`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    /// The token itself.
    pub access_token: AccessToken,
    /// The token type as the server named it (`Bearer` when it named none; any casing
    /// of `bearer` is given as `Bearer`, RFC 6749 §5.1).
    pub token_type: String,
    /// When the token expires, Unix seconds; `None` when the server did not say.
    pub expires_at: Option<u64>,
    /// The scopes granted (the requested ones when the server listed none, RFC 6749
    /// §5.1).
    pub scopes: Vec<String>,
    /// The refresh token, returned by `request-token` only; sessions keep theirs.
    pub refresh_token: Option<RefreshToken>,
    /// The OpenID Connect ID token, if one came with it.
    pub id_token: Option<IdToken>,
    /// RFC 8693 `issued_token_type`, for token exchange.
    pub issued_token_type: Option<String>,
}

/// Where to send the user for the authorization-code grant (WIT `authorization`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authorization {
    /// The authorization URL with state, PKCE challenge (S256) and the client's scopes,
    /// redirect URI, audience and resources.
    pub url: String,
    /// The state value the redirect must carry back; single use.
    pub state: String,
    /// When the pending authorization expires (5 minutes after it began), Unix seconds.
    pub expires_at: u64,
}

/// What to show the user for the device grant (RFC 8628 §3.2; WIT
/// `device-authorization`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceAuthorization {
    /// The code the user types.
    pub user_code: String,
    /// Where the user types it.
    pub verification_uri: String,
    /// A URI that carries the code already, if the server gave one.
    pub verification_uri_complete: Option<String>,
    /// When the device code expires, Unix seconds.
    pub expires_at: u64,
    /// Seconds to wait between polls.
    pub interval_seconds: u32,
}
