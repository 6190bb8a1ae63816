//! Plain-data HTTP requests and responses.

use super::HttpError;

/// The methods the flows use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// `GET`, for discovery documents.
    Get,
    /// `POST`, for every token, device and revocation request.
    Post,
}

/// An HTTP request to send.
///
/// `Debug` omits header values and the body: they carry credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct Request {
    /// The method.
    pub method: Method,
    /// The absolute `https` URL.
    pub url: String,
    /// Extra headers; `Host` and `Content-Length` are added when sent.
    pub headers: Vec<(String, String)>,
    /// The body (empty for `GET`).
    pub body: Vec<u8>,
    /// Sending it twice is harmless, so it may go over a kept-alive connection (and be
    /// sent again on a new one when the server turns out to have closed that one).
    pub replay_safe: bool,
}

impl core::fmt::Debug for Request {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("url", &self.url)
            .field("headers", &names)
            .field("body_len", &self.body.len())
            .field("replay_safe", &self.replay_safe)
            .finish()
    }
}

impl Request {
    /// A `POST` of an `application/x-www-form-urlencoded` body, not replay-safe until
    /// said otherwise.
    pub fn form(url: impl Into<String>, pairs: &[(&str, &str)]) -> Self {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish()
            .into_bytes();
        Self {
            method: Method::Post,
            url: url.into(),
            headers: vec![
                (
                    "content-type".into(),
                    "application/x-www-form-urlencoded".into(),
                ),
                ("accept".into(), "application/json".into()),
            ],
            body,
            replay_safe: false,
        }
    }

    /// A `GET` that asks for JSON (safe to replay, RFC 9110 §9.2.1).
    pub fn get(url: impl Into<String>) -> Self {
        Self {
            method: Method::Get,
            url: url.into(),
            headers: vec![("accept".into(), "application/json".into())],
            body: Vec::new(),
            replay_safe: true,
        }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Where the request goes: host, port and the path with its query.
    pub fn target(&self) -> Result<Target, HttpError> {
        Target::parse(&self.url)
    }
}

/// The destination of a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The host name or IP literal (without brackets), as TLS server name too.
    pub host: String,
    /// The TCP port.
    pub port: u16,
    /// Path and query, at least `/`.
    pub path: String,
}

impl Target {
    /// Parses an absolute `https` URL. Plain `http` is refused: every endpoint carries
    /// credentials.
    pub fn parse(url: &str) -> Result<Self, HttpError> {
        let parsed =
            url::Url::parse(url).map_err(|e| HttpError::InvalidUrl(format!("{url}: {e}")))?;
        if parsed.scheme() != "https" {
            return Err(HttpError::InvalidUrl(format!(
                "{url}: only https URLs are allowed"
            )));
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(HttpError::InvalidUrl(
                "credentials in a URL are not allowed".into(),
            ));
        }
        let host = match parsed.host() {
            Some(url::Host::Domain(d)) => d.to_string(),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            None => return Err(HttpError::InvalidUrl(format!("{url}: no host"))),
        };
        let port = parsed.port_or_known_default().unwrap_or(443);
        let mut path = parsed.path().to_string();
        if let Some(query) = parsed.query() {
            path.push('?');
            path.push_str(query);
        }
        Ok(Self { host, port, path })
    }
}

/// A complete HTTP response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Header names (lowercase) and values, in the order received.
    pub headers: Vec<(String, String)>,
    /// The whole body, decoded from chunked transfer encoding if need be.
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_urls_give_host_port_and_path_with_query() {
        let t = Target::parse("https://auth.example:8443/oauth/token?x=1").unwrap();
        assert_eq!(
            t,
            Target {
                host: "auth.example".into(),
                port: 8443,
                path: "/oauth/token?x=1".into()
            }
        );
        let t = Target::parse("https://[::1]/").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("::1", 443));
    }

    #[test]
    fn plain_http_and_embedded_credentials_are_refused() {
        assert!(matches!(
            Target::parse("http://auth.example/token"),
            Err(HttpError::InvalidUrl(_))
        ));
        assert!(matches!(
            Target::parse("https://user:pw@auth.example/token"),
            Err(HttpError::InvalidUrl(m)) if !m.contains("pw")
        ));
        assert!(Target::parse("not a url").is_err());
    }

    #[test]
    fn form_requests_are_url_encoded_and_debug_hides_the_body() {
        let r = Request::form(
            "https://a.example/t",
            &[("grant_type", "password"), ("password", "p&ss w")],
        );
        assert_eq!(r.body, b"grant_type=password&password=p%26ss+w");
        let shown = format!("{r:?}");
        assert!(!shown.contains("p%26ss"), "{shown}");
        let r = r.with_header("authorization", "Basic c2VjcmV0");
        assert!(!format!("{r:?}").contains("c2VjcmV0"));
    }
}
