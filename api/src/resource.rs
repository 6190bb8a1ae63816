//! Authorizing for a protected resource the way MCP clients do: what discovery from the
//! resource finds (RFC 9728, RFC 8414), and dynamic client registration (RFC 7591).

use crate::secret::ClientSecret;
use crate::tls::TrustSpec;

/// What a protected resource's challenge and metadata say about authorizing for it:
/// enough to make the [`Client`](crate::Client) of a session.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResourceAuthorization {
    /// The resource identifier from its metadata: the `resource` parameter (RFC 8707)
    /// of every request, as the client's `resources`.
    pub resource: String,
    /// The authorization server chosen: the first `https` issuer the resource lists.
    pub issuer: String,
    /// The scopes to ask for: the challenge's `scope`, else the resource's
    /// `scopes_supported`, else none.
    pub scopes: Vec<String>,
    /// `authorization_endpoint` of the server's metadata.
    pub authorization_endpoint: Option<String>,
    /// `token_endpoint`.
    pub token_endpoint: Option<String>,
    /// `registration_endpoint` (RFC 7591), when the server takes registrations.
    pub registration_endpoint: Option<String>,
    /// `pushed_authorization_request_endpoint` (RFC 9126).
    pub pushed_authorization_request_endpoint: Option<String>,
    /// `require_pushed_authorization_requests` (RFC 9126 §5).
    pub pushed_authorization_required: bool,
    /// `client_id_metadata_document_supported`: an https URL may serve as `client_id`.
    pub client_id_metadata_document_supported: bool,
    /// `dpop_signing_alg_values_supported` of the server (RFC 9449 §5.1).
    pub dpop_algorithms: Vec<String>,
    /// `dpop_bound_access_tokens_required` of the resource (RFC 9728 §2).
    pub dpop_required: bool,
    /// The challenge's `error` (`invalid_token`, `insufficient_scope`, ...), if any.
    pub error: Option<String>,
}

/// A dynamic client registration to make (RFC 7591 §2), or to reuse when one was
/// made already for the same issuer and redirect URIs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RegistrationRequest {
    /// The authorization server's issuer: with the redirect URIs, what the
    /// registration is kept under in the store, so every replica uses one.
    pub issuer: String,
    /// `registration_endpoint`; discovered from `issuer` when absent.
    pub registration_endpoint: Option<String>,
    /// `redirect_uris`.
    pub redirect_uris: Vec<String>,
    /// `grant_types` (empty: `authorization_code` and `refresh_token`).
    pub grant_types: Vec<String>,
    /// `token_endpoint_auth_method`: `none` (the default, a public client),
    /// `client_secret_basic` or `client_secret_post`.
    pub token_endpoint_auth_method: Option<String>,
    /// `client_name`.
    pub client_name: Option<String>,
    /// `scope` to register for.
    pub scopes: Vec<String>,
    /// A client ID metadata document URL (https) to present as `client_id` instead of
    /// registering, when the server says it takes one
    /// (`client_id_metadata_document_supported`).
    pub client_id_metadata_document: Option<String>,
    /// The TLS trust of the authorization server.
    pub trust: TrustSpec,
    /// The deadline of the call, retries and waiting for another replica's
    /// registration included, in milliseconds (default 10000).
    pub timeout_ms: Option<u32>,
}

/// Where a [`Registration`] came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegistrationSource {
    /// This call registered the client.
    Registered,
    /// An earlier registration (of this or another replica), from the store.
    Stored,
    /// The client ID metadata document URL, which needs no registration.
    MetadataDocument,
}

/// A client identity at an authorization server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registration {
    /// The `client_id` to use.
    pub client_id: String,
    /// `client_secret`, for a confidential registration.
    pub client_secret: Option<ClientSecret>,
    /// When the secret expires, Unix seconds (`client_secret_expires_at`; `None`:
    /// never).
    pub client_secret_expires_at: Option<u64>,
    /// The authentication method the server registered.
    pub token_endpoint_auth_method: String,
    /// Where it came from.
    pub source: RegistrationSource,
}
