//! Removing anything that looks like a secret from text a server sent, before it goes
//! into an error.
//!
//! Error bodies sometimes echo the request (a misconfigured proxy, a debug page), so a
//! snippet could carry the very secret that was sent. This scanner works on raw text and
//! so covers JSON (`"password": "…"`), form and query strings (`code=…&`), header-like
//! text (`Authorization: Bearer …`) and truncated or broken mixtures of them alike.
//! What it cannot recognise by shape (a bare echoed value), [`scrub`] removes by value:
//! every error is scrubbed of the secrets its request carried ([`secrets_of`]).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use gateway_auth_api::{HttpStatusError, OAuthError, ProtocolError};

use crate::http::Request;

/// The longest snippet kept, in characters (the WIT `http-status-error` promise).
pub const SNIPPET_CHARS: usize = 256;

/// How much of a body is scanned at all; the snippet is cut from its start.
const SCAN_BYTES: usize = 8 * 1024;

/// What replaces a secret.
const MASK: &str = "[redacted]";

/// Keys whose values are credentials (RFC 6749, RFC 7523, RFC 7636, RFC 8628, RFC 8693,
/// RFC 7009 `token`). Matched case-insensitively as whole words, so `token_type` or
/// `code_challenge` are left alone.
const SECRET_KEYS: &[&str] = &[
    "access_token",
    "refresh_token",
    "id_token",
    "client_secret",
    "password",
    "code",
    "assertion",
    "client_assertion",
    "subject_token",
    "actor_token",
    "device_code",
    "code_verifier",
    "token",
];

/// HTTP authentication schemes whose credentials follow them (RFC 9110 §11.4).
const SCHEMES: &[&str] = &["bearer", "basic"];

/// Secrets shorter than this are not scrubbed by value: replacing every "ab" in a
/// message would destroy it, and a credential that short protects nothing.
const MIN_SCRUB_LEN: usize = 4;

/// Whether a form parameter of this name carries a credential.
pub fn is_secret_key(name: &str) -> bool {
    SECRET_KEYS.iter().any(|k| k.eq_ignore_ascii_case(name))
}

/// `err` as the caller sees it: every occurrence of `secrets` removed from its texts
/// (see [`scrub`]), then the texts a server wrote cut to [`SNIPPET_CHARS`]. Scrubbing
/// runs on the whole text first, so a secret straddling the cut cannot leave a
/// fragment behind.
pub fn finish(err: OAuthError, secrets: &[String]) -> OAuthError {
    let err = if secrets.is_empty() {
        err
    } else {
        err.map_texts(|text| scrub(&text, secrets))
    };
    match err {
        OAuthError::Protocol(e) => OAuthError::Protocol(ProtocolError {
            error: cut(&e.error),
            description: e.description.as_deref().map(cut),
            uri: e.uri.as_deref().map(cut),
            ..e
        }),
        OAuthError::HttpStatus(e) => OAuthError::HttpStatus(HttpStatusError {
            snippet: cut(&e.snippet),
            ..e
        }),
        OAuthError::InvalidResponse(m) => OAuthError::InvalidResponse(cut(&m)),
        other => other,
    }
}

/// The secret values `request` carries: form values of secret keys, the credentials
/// of its `Authorization` header and, for Basic, the decoded secret. A server
/// may echo them in any shape, so errors are scrubbed of them by value ([`scrub`]).
pub fn secrets_of(request: &Request) -> Vec<String> {
    let mut secrets: Vec<String> = form_urlencoded::parse(&request.body)
        .filter(|(name, _)| is_secret_key(name))
        .map(|(_, value)| value.into_owned())
        .collect();
    for (name, value) in &request.headers {
        if !name.eq_ignore_ascii_case("authorization") {
            continue;
        }
        let Some((scheme, credentials)) = value.split_once(' ') else {
            continue;
        };
        secrets.push(credentials.trim().to_string());
        if scheme.eq_ignore_ascii_case("basic") {
            let decoded = STANDARD
                .decode(credentials.trim())
                .ok()
                .and_then(|d| String::from_utf8(d).ok());
            // The id is no secret (and scrubbing it would blur "unknown client" errors).
            if let Some((_id, secret)) = decoded.as_deref().and_then(|d| d.split_once(':')) {
                secrets.push(secret.to_string());
                let plain: String = form_urlencoded::parse(format!("x={secret}").as_bytes())
                    .map(|(_, v)| v.into_owned())
                    .collect();
                secrets.push(plain);
            }
        }
    }
    secrets.retain(|s| s.len() >= MIN_SCRUB_LEN);
    // Longest first, so that a secret containing another is replaced whole.
    secrets.sort_by_key(|s| core::cmp::Reverse(s.len()));
    secrets.dedup();
    secrets
}

/// `text` with every occurrence of each of `secrets` replaced by `[redacted]`.
pub fn scrub(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_string();
    for secret in secrets {
        if out.contains(secret.as_str()) {
            out = out.replace(secret.as_str(), MASK);
        }
    }
    out
}

/// A redacted, single-line snippet of the start of `body`, not yet cut ([`finish`]
/// cuts it once secrets are scrubbed by value).
pub fn snippet(body: &[u8]) -> String {
    let head = &body[..body.len().min(SCAN_BYTES)];
    one_line(&String::from_utf8_lossy(head))
}

/// `text` redacted and on one line.
pub fn one_line(text: &str) -> String {
    redact(text)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_string()
}

/// At most [`SNIPPET_CHARS`] characters of `text`.
pub fn cut(text: &str) -> String {
    text.chars()
        .take(SNIPPET_CHARS)
        .collect::<String>()
        .trim()
        .to_string()
}

/// `text` with the value of every secret key and every Bearer or Basic credential
/// replaced by `[redacted]`.
pub fn redact(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        if let Some((start, end)) = secret_at(bytes, i) {
            // Both ends sit next to ASCII bytes, so they are char boundaries.
            out.push_str(&text[copied..start]);
            out.push_str(MASK);
            copied = end;
            i = end.max(i + 1);
        } else {
            i += 1;
        }
    }
    out.push_str(&text[copied..]);
    out
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

fn starts_with_ignore_case(bytes: &[u8], at: usize, word: &str) -> bool {
    let w = word.as_bytes();
    bytes.len() - at >= w.len() && bytes[at..at + w.len()].eq_ignore_ascii_case(w)
}

fn skip_blanks(bytes: &[u8], mut j: usize) -> usize {
    while j < bytes.len() && (bytes[j] == b' ' || bytes[j] == b'\t') {
        j += 1;
    }
    j
}

/// The byte range of a secret value whose key (or scheme) starts at `i`, if one does.
fn secret_at(bytes: &[u8], i: usize) -> Option<(usize, usize)> {
    if i > 0 && is_word(bytes[i - 1]) {
        return None;
    }
    for key in SECRET_KEYS {
        if !starts_with_ignore_case(bytes, i, key) {
            continue;
        }
        let mut j = i + key.len();
        if j < bytes.len() && is_word(bytes[j]) {
            continue;
        }
        // The closing quote of a JSON (or single-quoted) key.
        if j < bytes.len() && (bytes[j] == b'"' || bytes[j] == b'\'') {
            j += 1;
        }
        j = skip_blanks(bytes, j);
        if j >= bytes.len() || (bytes[j] != b'=' && bytes[j] != b':') {
            continue;
        }
        return Some(value_span(bytes, skip_blanks(bytes, j + 1)));
    }
    for scheme in SCHEMES {
        if !starts_with_ignore_case(bytes, i, scheme) {
            continue;
        }
        let start = i + scheme.len();
        if start >= bytes.len() || bytes[start] != b' ' {
            continue;
        }
        let start = skip_blanks(bytes, start);
        // token68 (RFC 9110 §11.2).
        let mut end = start;
        while end < bytes.len() && (is_word(bytes[end]) || b"._~+/=".contains(&bytes[end])) {
            end += 1;
        }
        if end > start {
            return Some((start, end));
        }
    }
    None
}

/// The value starting at `start`: a quoted string's content (escapes honoured), or
/// everything up to the next delimiter.
fn value_span(bytes: &[u8], start: usize) -> (usize, usize) {
    if start < bytes.len() && (bytes[start] == b'"' || bytes[start] == b'\'') {
        let quote = bytes[start];
        let mut j = start + 1;
        while j < bytes.len() && bytes[j] != quote {
            if bytes[j] == b'\\' {
                j += 1;
            }
            j += 1;
        }
        return (start + 1, j.min(bytes.len()));
    }
    let mut j = start;
    while j < bytes.len()
        && !bytes[j].is_ascii_whitespace()
        && !b"&,;\"'<>{}[]()".contains(&bytes[j])
    {
        j += 1;
    }
    (start, j)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_form_and_query_values_of_secret_keys_are_redacted() {
        let json =
            r#"{"error":"x","access_token":"AT1","Refresh_Token" : "RT\"2","n":{"password":"P3"}}"#;
        let out = redact(json);
        for secret in ["AT1", "RT\\\"2", "P3"] {
            assert!(!out.contains(secret), "{out}");
        }
        assert!(out.contains(r#""error":"x""#), "{out}");

        let form = "grant_type=password&username=u&password=hunter2&client_secret=s3cr3t";
        assert_eq!(
            redact(form),
            "grant_type=password&username=u&password=[redacted]&client_secret=[redacted]"
        );
        let query = "GET /cb?code=abc123&state=xyz HTTP/1.1";
        assert_eq!(redact(query), "GET /cb?code=[redacted]&state=xyz HTTP/1.1");
        assert_eq!(redact("{\"code\": 123456}"), "{\"code\": [redacted]}");
    }

    #[test]
    fn similar_keys_are_left_alone() {
        let text = "token_type=bearer&code_challenge=abc&error_code=7&expires_in=60";
        assert_eq!(redact(text), text);
    }

    #[test]
    fn bearer_and_basic_credentials_are_redacted() {
        let text = "Authorization: Bearer eyJ.abc-def_~+/= next; authorization: basic dTpw";
        let out = redact(text);
        assert!(!out.contains("eyJ") && !out.contains("dTpw"), "{out}");
        assert!(out.contains("Bearer [redacted] next"), "{out}");
    }

    #[test]
    fn secrets_a_request_carried_are_scrubbed_by_value() {
        let request = Request::form(
            "https://as.example/token",
            &[
                ("grant_type", "authorization_code"),
                ("code", "AUTH-CODE"),
                ("code_verifier", "VERIFIER"),
                ("client_id", "gw"),
            ],
        )
        .with_header("authorization", "Basic bXkraWQ6cyUzQWVjcmV0");
        let secrets = secrets_of(&request);
        for expected in [
            "AUTH-CODE",
            "VERIFIER",
            "bXkraWQ6cyUzQWVjcmV0",
            "s%3Aecret",
            "s:ecret",
        ] {
            assert!(
                secrets.iter().any(|s| s == expected),
                "{expected} missing from {secrets:?}"
            );
        }
        assert!(
            !secrets
                .iter()
                .any(|s| s == "authorization_code" || s == "gw" || s == "my id")
        );
        let text = "code AUTH-CODE for my id with s:ecret was already used";
        assert_eq!(
            scrub(text, &secrets),
            "code [redacted] for my id with [redacted] was already used"
        );
    }

    #[test]
    fn snippets_are_single_line_redacted_and_cut_only_when_finished() {
        let mut body = "x".repeat(250);
        body.push_str("\npassword=");
        body.push_str(&"s".repeat(100));
        let out = snippet(body.as_bytes());
        assert_eq!(cut(&out).chars().count(), SNIPPET_CHARS);
        assert!(!out.contains('\n'));
        assert!(!out.contains("sssss"), "{out}");
        // Non-UTF-8 and multibyte text do not panic.
        let out = snippet("héllo code=ünïcode wörld \u{fffd}".as_bytes());
        assert_eq!(out, "héllo code=[redacted] wörld \u{fffd}");
        assert_eq!(snippet(&[0xff, 0xfe, b'a']), "\u{fffd}\u{fffd}a");
        // An unterminated quoted secret is redacted to the end.
        assert_eq!(redact(r#"{"token":"abc"#), r#"{"token":"[redacted]"#);
        assert_eq!(redact(r#"{"token":"ab\"#), r#"{"token":"[redacted]"#);
    }
}
