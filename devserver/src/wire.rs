//! What goes over the wire: form bodies in, token and RFC 6749 §5.2 error bodies out.

use bytes::Bytes;
use serde::Serialize;

/// An `application/x-www-form-urlencoded` request body.
pub(crate) struct Form(Vec<(String, String)>);

impl Form {
    /// Parses a body, refusing repeated parameters (RFC 6749 §3.2) except the two that
    /// RFC 8693 and RFC 8707 allow to repeat.
    pub(crate) fn parse(body: &[u8]) -> Result<Form, OAuthError> {
        let pairs: Vec<(String, String)> = form_urlencoded::parse(body).into_owned().collect();
        for (i, (name, _)) in pairs.iter().enumerate() {
            let repeatable = name == "resource" || name == "audience";
            if !repeatable && pairs[..i].iter().any(|(n, _)| n == name) {
                return Err(OAuthError::invalid_request(format!(
                    "parameter {name} is repeated"
                )));
            }
        }
        Ok(Form(pairs))
    }

    /// The value of `name`; an empty value counts as absent (RFC 6749 §3.1).
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, v)| n == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    /// The value of `name`, or `invalid_request` naming it.
    pub(crate) fn require(&self, name: &str) -> Result<&str, OAuthError> {
        self.get(name)
            .ok_or_else(|| OAuthError::invalid_request(format!("missing parameter {name}")))
    }
}

/// An RFC 6749 §5.2 error.
#[derive(Clone, Debug)]
pub(crate) struct OAuthError {
    pub status: u16,
    pub error: &'static str,
    pub description: String,
}

impl OAuthError {
    pub(crate) fn new(status: u16, error: &'static str, description: impl Into<String>) -> Self {
        OAuthError {
            status,
            error,
            description: description.into(),
        }
    }
    pub(crate) fn invalid_request(d: impl Into<String>) -> Self {
        Self::new(400, "invalid_request", d)
    }
    pub(crate) fn invalid_client(d: impl Into<String>) -> Self {
        Self::new(401, "invalid_client", d)
    }
    pub(crate) fn invalid_grant(d: impl Into<String>) -> Self {
        Self::new(400, "invalid_grant", d)
    }
    pub(crate) fn unauthorized_client(d: impl Into<String>) -> Self {
        Self::new(400, "unauthorized_client", d)
    }
}

/// A successful token response (RFC 6749 §5.1, RFC 8693 §2.2.1).
#[derive(Clone, Debug, Serialize)]
pub(crate) struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issued_token_type: Option<&'static str>,
}

/// One HTTP answer, before hyper sees it.
pub(crate) struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Bytes,
}

impl Reply {
    pub(crate) fn new(status: u16, content_type: &str, body: impl Into<Bytes>) -> Self {
        let headers = vec![("content-type", content_type.to_owned())];
        Reply {
            status,
            headers,
            body: body.into(),
        }
    }

    /// JSON with `Cache-Control: no-store`, which RFC 6749 §5.1 requires on anything
    /// carrying tokens; errors get it too so a cache never replays an answer.
    pub(crate) fn json(status: u16, value: &impl Serialize) -> Self {
        let body = serde_json::to_vec(value).expect("plain data serializes");
        Reply::new(status, "application/json", body).header("cache-control", "no-store")
    }

    pub(crate) fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

impl From<OAuthError> for Reply {
    fn from(e: OAuthError) -> Reply {
        let body = serde_json::json!({"error": e.error, "error_description": e.description});
        let reply = Reply::json(e.status, &body);
        if e.status == 401 {
            // RFC 6749 §5.2: a 401 invalid_client names the scheme the client should use.
            reply.header(
                "www-authenticate",
                r#"Basic realm="gateway-auth-devserver""#,
            )
        } else {
            reply
        }
    }
}
