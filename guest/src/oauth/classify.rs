//! The one classification of every answer from an authorization server.
//!
//! Every flow (token, device authorization, revocation, discovery) passes its response
//! through [`reject`] first, so redirects, error bodies, status codes and `Retry-After`
//! are judged the same way everywhere; this is the fix for the project's founding bug,
//! where one flow checked `status == 200` and the others did not. The rules, in order:
//!
//! 1. 3xx: never followed; an [`OAuthError::HttpStatus`] naming the location's host.
//! 2. Non-2xx with an RFC 6749 §5.2 body (JSON or form, with a string `error`):
//!    [`OAuthError::Protocol`]; any other non-2xx: [`OAuthError::HttpStatus`] with a
//!    redacted snippet. Both carry `Retry-After` (delta seconds or an HTTP date).
//! 3. Any 2xx is success. Its body is JSON or form-encoded (by content type, else
//!    sniffed); an `error` member in it is still a [`OAuthError::Protocol`] (some servers
//!    answer 200 with an error), and a body that is no usable answer is an
//!    [`OAuthError::InvalidResponse`].

use serde_json::{Map, Value};

use super::redact;
use crate::http::Response;
use gateway_auth_api::{AccessToken, DeviceCode, IdToken, RefreshToken};
use gateway_auth_api::{HttpStatusError, OAuthError, ProtocolError};

/// The fields of a parsed body: JSON members, or form pairs as JSON strings.
pub type Fields = Map<String, Value>;

/// A successful token response (RFC 6749 §5.1), with RFC 8693 and OpenID Connect
/// additions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenResponse {
    /// The access token.
    pub access_token: AccessToken,
    /// `Bearer` (whatever its casing on the wire) or the type as named.
    pub token_type: String,
    /// Lifetime in seconds, if given.
    pub expires_in: Option<u64>,
    /// The granted scopes, if listed; `None` means "as requested" (RFC 6749 §5.1).
    pub scopes: Option<Vec<String>>,
    /// A (possibly rotated) refresh token.
    pub refresh_token: Option<RefreshToken>,
    /// An OpenID Connect ID token.
    pub id_token: Option<IdToken>,
    /// RFC 8693 §2.2.1 `issued_token_type`.
    pub issued_token_type: Option<String>,
}

/// A successful device authorization response (RFC 8628 §3.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceAuthorizationResponse {
    /// The device code to poll with.
    pub device_code: DeviceCode,
    /// The code the user types.
    pub user_code: String,
    /// Where the user types it.
    pub verification_uri: String,
    /// The same with the code filled in, if given.
    pub verification_uri_complete: Option<String>,
    /// Lifetime of the codes, in seconds.
    pub expires_in: u64,
    /// The minimum polling interval, in seconds (5 when not given, RFC 8628 §3.2).
    pub interval: u64,
}

/// The polling interval when the server names none (RFC 8628 §3.2).
pub const DEFAULT_DEVICE_INTERVAL: u64 = 5;

/// Classifies a token endpoint response (RFC 6749 §5.1, §5.2). `now` (Unix seconds)
/// turns an HTTP-date `Retry-After` into seconds.
pub fn classify(response: &Response, now: u64) -> Result<TokenResponse, OAuthError> {
    let fields = success_fields(response, now, "token")?;
    token_response(&fields)
}

/// Classifies a device authorization response (RFC 8628 §3.2, errors per §3.5).
pub fn classify_device_authorization(
    response: &Response,
    now: u64,
) -> Result<DeviceAuthorizationResponse, OAuthError> {
    let fields = success_fields(response, now, "device authorization")?;
    let device_code = required_string(&fields, "device_code")?;
    let user_code = required_string(&fields, "user_code")?;
    // `verification_url` is the name of a draft some servers still send.
    let verification_uri = string(&fields, "verification_uri")
        .or_else(|| string(&fields, "verification_url"))
        .ok_or_else(|| missing("verification_uri"))?;
    let expires_in = seconds(&fields, "expires_in")?.ok_or_else(|| missing("expires_in"))?;
    let interval = seconds(&fields, "interval")?
        .unwrap_or(DEFAULT_DEVICE_INTERVAL)
        .max(1);
    Ok(DeviceAuthorizationResponse {
        device_code: DeviceCode::new(device_code),
        user_code,
        verification_uri,
        verification_uri_complete: string(&fields, "verification_uri_complete")
            .or_else(|| string(&fields, "verification_url_complete")),
        expires_in,
        interval,
    })
}

/// Classifies a revocation response (RFC 7009 §2.2): any 2xx is success whatever its
/// body, since the server answers 200 even for tokens it did not know.
pub fn classify_revocation(response: &Response, now: u64) -> Result<(), OAuthError> {
    match reject(response, now) {
        Some(err) => Err(err),
        None => Ok(()),
    }
}

/// Classifies a metadata document (RFC 8414 §3.2): a JSON object.
pub fn classify_document(response: &Response, now: u64) -> Result<Fields, OAuthError> {
    success_fields(response, now, "metadata")
}

/// The `request_uri` of a pushed authorization request's answer (RFC 9126 §2.2).
pub fn classify_pushed_request(response: &Response, now: u64) -> Result<String, OAuthError> {
    let fields = success_fields(response, now, "pushed authorization response")?;
    fields
        .get("request_uri")
        .and_then(|v| v.as_str())
        .filter(|uri| !uri.is_empty())
        .map(str::to_string)
        .ok_or_else(|| {
            OAuthError::InvalidResponse(
                "the pushed authorization response has no request_uri (RFC 9126 §2.2)".into(),
            )
        })
}

/// The error for a response that is not a 2xx, or `None` for a 2xx.
pub fn reject(response: &Response, now: u64) -> Option<OAuthError> {
    let status = response.status;
    if (200..300).contains(&status) {
        return None;
    }
    let retry_after = retry_after(response, now);
    if (300..400).contains(&status) {
        // Redirects are never followed: a token endpoint that redirects would take the
        // credentials elsewhere (and an attacker-chosen URL is an SSRF door). Only the
        // host is named; the location's query might carry anything.
        let target = match response.header("location") {
            Some(location) => match url::Url::parse(location) {
                Ok(url) => match url.host_str() {
                    Some(host) => format!("redirect to {host} not followed"),
                    None => "redirect not followed".into(),
                },
                Err(_) => "redirect to a relative location not followed".into(),
            },
            None => "redirect without a location not followed".into(),
        };
        return Some(OAuthError::HttpStatus(HttpStatusError {
            status,
            snippet: target,
            retry_after,
        }));
    }
    if let Some(fields) = parse_body(response)
        && let Some(err) = protocol_error(&fields, status, retry_after)
    {
        return Some(err);
    }
    Some(OAuthError::HttpStatus(HttpStatusError {
        status,
        snippet: redact::snippet(&response.body),
        retry_after,
    }))
}

/// The parsed body of a 2xx answer, after every shared rule.
fn success_fields(response: &Response, now: u64, what: &str) -> Result<Fields, OAuthError> {
    if let Some(err) = reject(response, now) {
        return Err(err);
    }
    let fields = parse_body(response).ok_or_else(|| {
        OAuthError::InvalidResponse(format!(
            "the {what} response (http {}, content type {}) is neither a JSON object nor form-encoded",
            response.status,
            response.header("content-type").unwrap_or("none"),
        ))
    })?;
    if fields.get("error").is_some_and(|v| !v.is_null()) {
        return Err(
            protocol_error(&fields, response.status, None).unwrap_or_else(|| {
                OAuthError::InvalidResponse(format!(
                    "the {what} response has a non-standard error member"
                ))
            }),
        );
    }
    Ok(fields)
}

/// An RFC 6749 §5.2 error, if `fields` has a string `error`.
fn protocol_error(fields: &Fields, status: u16, retry_after: Option<u64>) -> Option<OAuthError> {
    let error = fields.get("error")?.as_str()?;
    Some(OAuthError::Protocol(ProtocolError {
        status,
        error: redact::one_line(error),
        description: string(fields, "error_description").map(|d| redact::one_line(&d)),
        uri: string(fields, "error_uri").map(|u| redact::one_line(&u)),
        retry_after,
    }))
}

fn token_response(fields: &Fields) -> Result<TokenResponse, OAuthError> {
    let access_token = match fields.get("access_token") {
        Some(Value::String(t)) if !t.is_empty() => AccessToken::new(t.as_str()),
        Some(Value::String(_)) => {
            return Err(OAuthError::InvalidResponse(
                "the access_token is empty".into(),
            ));
        }
        Some(_) => {
            return Err(OAuthError::InvalidResponse(
                "the access_token is not a string".into(),
            ));
        }
        None => return Err(missing("access_token")),
    };
    // RFC 6749 §5.1: the type is case-insensitive. Many servers omit it; Bearer is what
    // they mean.
    let token_type = match string(fields, "token_type") {
        None => "Bearer".to_string(),
        Some(t) if t.eq_ignore_ascii_case("bearer") => "Bearer".to_string(),
        Some(t) => t,
    };
    let scopes = match fields.get("scope") {
        Some(Value::String(s)) => Some(s.split_whitespace().map(str::to_string).collect()),
        // Not RFC 6749, but some servers send a list.
        Some(Value::Array(items)) => Some(
            items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
        ),
        _ => None,
    };
    Ok(TokenResponse {
        access_token,
        token_type,
        expires_in: seconds(fields, "expires_in")?,
        scopes,
        refresh_token: string(fields, "refresh_token").map(RefreshToken::new),
        id_token: string(fields, "id_token").map(IdToken::new),
        issued_token_type: string(fields, "issued_token_type"),
    })
}

fn missing(name: &str) -> OAuthError {
    OAuthError::InvalidResponse(format!("the response has no {name}"))
}

/// A non-empty string member.
fn string(fields: &Fields, name: &str) -> Option<String> {
    match fields.get(name) {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

fn required_string(fields: &Fields, name: &str) -> Result<String, OAuthError> {
    string(fields, name).ok_or_else(|| missing(name))
}

/// A number of seconds, as a JSON number or a numeric string (form bodies and some
/// JSON servers send strings); fractions are cut.
fn seconds(fields: &Fields, name: &str) -> Result<Option<u64>, OAuthError> {
    let invalid = || OAuthError::InvalidResponse(format!("{name} is not a number of seconds"));
    match fields.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.is_finite() && *f >= 0.0)
                    .map(|f| f as u64)
            })
            .map(Some)
            .ok_or_else(invalid),
        Some(Value::String(s)) => {
            let s = s.trim();
            s.parse::<u64>()
                .ok()
                .or_else(|| {
                    s.parse::<f64>()
                        .ok()
                        .filter(|f| f.is_finite() && *f >= 0.0)
                        .map(|f| f as u64)
                })
                .map(Some)
                .ok_or_else(invalid)
        }
        Some(_) => Err(invalid()),
    }
}

/// `Retry-After` (RFC 9110 §10.2.3) as seconds from `now`: delta seconds, or an HTTP
/// date (a date in the past is 0).
pub fn retry_after(response: &Response, now: u64) -> Option<u64> {
    let value = response.header("retry-after")?.trim();
    if let Ok(delta) = value.parse::<u64>() {
        return Some(delta);
    }
    let date = httpdate::parse_http_date(value).ok()?;
    let at = date.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs();
    Some(at.saturating_sub(now))
}

/// Parses a body as a JSON object or as a form, choosing by content type and, when the
/// type says neither, by what the body looks like.
fn parse_body(response: &Response) -> Option<Fields> {
    let content_type = response
        .header("content-type")
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let json_type = content_type == "application/json" || content_type.ends_with("+json");
    let form_type = content_type == "application/x-www-form-urlencoded";
    let body = &response.body;
    if json_type {
        return parse_json(body);
    }
    if form_type {
        return parse_form(body);
    }
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first == Some(&b'{') {
        parse_json(body)
    } else {
        parse_form(body)
    }
}

fn parse_json(body: &[u8]) -> Option<Fields> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(fields)) => Some(fields),
        _ => None,
    }
}

/// A form body, only if it looks like one: `k=v` pairs of printable, unspaced ASCII, so
/// that an HTML page or plain text is not taken for a form.
fn parse_form(body: &[u8]) -> Option<Fields> {
    let text = std::str::from_utf8(body).ok()?.trim();
    if text.is_empty()
        || !text.contains('=')
        || !text.bytes().all(|b| b.is_ascii_graphic())
        || text.contains('<')
    {
        return None;
    }
    let mut fields = Fields::new();
    for (key, value) in form_urlencoded::parse(text.as_bytes()) {
        // The first value wins, as a JSON object would have only one.
        fields
            .entry(key.into_owned())
            .or_insert_with(|| Value::String(value.into_owned()));
    }
    Some(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16, content_type: Option<&str>, body: &str) -> Response {
        let mut headers = Vec::new();
        if let Some(ct) = content_type {
            headers.push(("content-type".to_string(), ct.to_string()));
        }
        Response {
            status,
            headers,
            body: body.as_bytes().to_vec(),
        }
    }

    fn json(status: u16, body: &str) -> Response {
        response(status, Some("application/json; charset=utf-8"), body)
    }

    fn with_header(mut r: Response, name: &str, value: &str) -> Response {
        r.headers.push((name.to_string(), value.to_string()));
        r
    }

    const NOW: u64 = 1_700_000_000;

    #[test]
    fn a_json_token_response_is_parsed() {
        let r = json(
            200,
            r#"{"access_token":"AT","token_type":"bearer","expires_in":3600,"scope":"a b","refresh_token":"RT","id_token":"ID"}"#,
        );
        let t = classify(&r, NOW).unwrap();
        assert_eq!(t.access_token.secret(), "AT");
        assert_eq!(t.token_type, "Bearer");
        assert_eq!(t.expires_in, Some(3600));
        assert_eq!(t.scopes, Some(vec!["a".to_string(), "b".to_string()]));
        assert_eq!(t.refresh_token.unwrap().secret(), "RT");
        assert_eq!(t.id_token.unwrap().secret(), "ID");
    }

    #[test]
    fn any_2xx_is_success_and_defaults_apply() {
        let t = classify(&json(201, r#"{"access_token":"AT"}"#), NOW).unwrap();
        assert_eq!(t.token_type, "Bearer");
        assert_eq!(
            (t.expires_in, t.scopes, t.refresh_token),
            (None, None, None)
        );
        let t = classify(
            &json(
                200,
                r#"{"access_token":"AT","token_type":"DPoP","expires_in":"120"}"#,
            ),
            NOW,
        )
        .unwrap();
        assert_eq!((t.token_type.as_str(), t.expires_in), ("DPoP", Some(120)));
        let t = classify(
            &json(200, r#"{"access_token":"AT","expires_in":59.9}"#),
            NOW,
        )
        .unwrap();
        assert_eq!(t.expires_in, Some(59));
    }

    #[test]
    fn form_encoded_bodies_are_parsed_by_content_type_or_sniffing() {
        let body = "access_token=AT&token_type=bearer&expires_in=60&scope=a+b&refresh_token=R%26T";
        for ct in [
            Some("application/x-www-form-urlencoded"),
            Some("text/plain"),
            None,
        ] {
            let t = classify(&response(200, ct, body), NOW).unwrap();
            assert_eq!(t.access_token.secret(), "AT");
            assert_eq!(t.expires_in, Some(60));
            assert_eq!(
                t.scopes.as_deref(),
                Some(&["a".to_string(), "b".to_string()][..])
            );
            assert_eq!(t.refresh_token.unwrap().secret(), "R&T");
        }
        // JSON without a JSON content type is sniffed.
        assert!(
            classify(
                &response(200, Some("text/plain"), " {\"access_token\":\"AT\"}"),
                NOW
            )
            .is_ok()
        );
    }

    #[test]
    fn a_2xx_with_an_error_member_is_a_protocol_error_keeping_the_status() {
        let r = json(
            200,
            r#"{"error":"invalid_grant","error_description":"expired","error_uri":"https://e/x"}"#,
        );
        match classify(&r, NOW) {
            Err(OAuthError::Protocol(e)) => {
                assert_eq!((e.status, e.error.as_str()), (200, "invalid_grant"));
                assert_eq!(e.description.as_deref(), Some("expired"));
                assert_eq!(e.uri.as_deref(), Some("https://e/x"));
            }
            other => panic!("{other:?}"),
        }
        let r = response(
            200,
            Some("application/x-www-form-urlencoded"),
            "error=bad_verification_code",
        );
        assert!(
            matches!(classify(&r, NOW), Err(OAuthError::Protocol(e)) if e.error == "bad_verification_code")
        );
    }

    #[test]
    fn a_2xx_without_a_usable_token_is_an_invalid_response() {
        for body in [
            r#"{"token_type":"bearer"}"#,
            r#"{"access_token":""}"#,
            r#"{"access_token":5}"#,
            "[1]",
        ] {
            assert!(
                matches!(
                    classify(&json(200, body), NOW),
                    Err(OAuthError::InvalidResponse(_))
                ),
                "{body}"
            );
        }
        let r = json(200, r#"{"access_token":"AT","expires_in":"soon"}"#);
        assert!(
            matches!(classify(&r, NOW), Err(OAuthError::InvalidResponse(m)) if m.contains("expires_in"))
        );
        let r = response(200, Some("text/html"), "<html>hello</html>");
        assert!(
            matches!(classify(&r, NOW), Err(OAuthError::InvalidResponse(m)) if m.contains("text/html") && !m.contains("hello"))
        );
    }

    #[test]
    fn redirects_are_never_followed_and_name_only_the_host() {
        let r = with_header(
            response(302, None, ""),
            "location",
            "https://login.example/authorize?code=SECRET",
        );
        match classify(&r, NOW) {
            Err(OAuthError::HttpStatus(e)) => {
                assert_eq!(e.status, 302);
                assert_eq!(e.snippet, "redirect to login.example not followed");
            }
            other => panic!("{other:?}"),
        }
        let r = with_header(
            response(307, None, ""),
            "location",
            "/elsewhere?code=SECRET",
        );
        assert!(
            matches!(classify_revocation(&r, NOW), Err(OAuthError::HttpStatus(e)) if !e.snippet.contains("SECRET"))
        );
    }

    #[test]
    fn non_2xx_with_a_standard_body_is_a_protocol_error() {
        let r = with_header(
            json(400, r#"{"error":"invalid_client"}"#),
            "Retry-After",
            "7",
        );
        assert_eq!(
            classify(&r, NOW),
            Err(OAuthError::Protocol(ProtocolError {
                status: 400,
                error: "invalid_client".into(),
                description: None,
                uri: None,
                retry_after: Some(7),
            }))
        );
        let r = response(
            401,
            Some("application/x-www-form-urlencoded"),
            "error=invalid_client&error_description=no",
        );
        assert!(
            matches!(classify(&r, NOW), Err(OAuthError::Protocol(e)) if e.status == 401 && e.description.as_deref() == Some("no"))
        );
    }

    /// Every 8-character window of `secret` that `text` contains.
    fn fragments<'a>(secret: &'a str, text: &str) -> Vec<&'a str> {
        (0..=secret.len() - 8)
            .map(|i| &secret[i..i + 8])
            .filter(|f| text.contains(f))
            .collect()
    }

    #[test]
    fn an_echoed_secret_leaves_no_fragment_at_any_offset_around_the_cut() {
        let secret = "s3cr3t-0123456789-abcdefghij-KLMNOPQRST";
        let secrets = vec![secret.to_string()];
        for offset in 180..=300 {
            let pad = "p".repeat(offset);
            for r in [
                response(400, Some("text/plain"), &format!("{pad}{secret} trailing")),
                json(
                    400,
                    &format!(
                        r#"{{"error":"invalid_request","error_description":"{pad}{secret}"}}"#
                    ),
                ),
            ] {
                let err = redact::finish(classify(&r, NOW).unwrap_err(), &secrets);
                let shown = format!("{err} {err:?}");
                assert!(
                    fragments(secret, &shown).is_empty(),
                    "offset {offset}: {shown}"
                );
            }
        }
    }

    #[test]
    fn other_non_2xx_is_an_http_status_with_a_redacted_snippet() {
        let body = r#"{"message":"bad","echo":{"client_secret":"S3CR3T","password":"PW"}} Authorization: Basic dXNlcjpwdw=="#;
        let r = json(500, body);
        match classify(&r, NOW) {
            Err(OAuthError::HttpStatus(e)) => {
                assert_eq!((e.status, e.retry_after), (500, None));
                assert!(e.snippet.contains("bad"));
                for secret in ["S3CR3T", "PW\"", "dXNlcjpwdw"] {
                    assert!(!e.snippet.contains(secret), "{}", e.snippet);
                }
            }
            other => panic!("{other:?}"),
        }
        let long = "y".repeat(5000);
        let r = response(502, Some("text/html"), &format!("<html>{long}</html>"));
        let finished = redact::finish(classify(&r, NOW).unwrap_err(), &[]);
        assert!(matches!(finished, OAuthError::HttpStatus(e) if e.snippet.chars().count() == 256));
        // An `error` that is not a string is no RFC 6749 body.
        let r = json(403, r#"{"error":{"message":"forbidden"}}"#);
        assert!(matches!(classify(&r, NOW), Err(OAuthError::HttpStatus(e)) if e.status == 403));
    }

    #[test]
    fn retry_after_is_delta_seconds_or_an_http_date() {
        let r = with_header(response(503, None, ""), "retry-after", "120");
        assert_eq!(retry_after(&r, NOW), Some(120));
        // 1_700_000_000 is Tue, 14 Nov 2023 22:13:20 GMT.
        let r = with_header(
            response(503, None, ""),
            "retry-after",
            "Tue, 14 Nov 2023 22:14:00 GMT",
        );
        assert_eq!(retry_after(&r, NOW), Some(40));
        let r = with_header(
            response(503, None, ""),
            "retry-after",
            "Tue, 14 Nov 2023 22:00:00 GMT",
        );
        assert_eq!(retry_after(&r, NOW), Some(0));
        let r = with_header(response(503, None, ""), "retry-after", "whenever");
        assert_eq!(retry_after(&r, NOW), None);
        let r = with_header(response(429, None, "slow down"), "retry-after", "3");
        assert!(
            matches!(classify(&r, NOW), Err(OAuthError::HttpStatus(e)) if e.retry_after == Some(3) && e.snippet == "slow down")
        );
    }

    #[test]
    fn device_authorization_responses_need_their_fields() {
        let r = json(
            200,
            r#"{"device_code":"DC","user_code":"WDJB-MJHT","verification_uri":"https://e/device","expires_in":1800}"#,
        );
        let d = classify_device_authorization(&r, NOW).unwrap();
        assert_eq!(
            (d.user_code.as_str(), d.expires_in, d.interval),
            ("WDJB-MJHT", 1800, 5)
        );
        assert_eq!(d.device_code.secret(), "DC");
        let r = json(
            200,
            r#"{"device_code":"DC","user_code":"U","verification_url":"https://e/d","expires_in":"60","interval":2}"#,
        );
        let d = classify_device_authorization(&r, NOW).unwrap();
        assert_eq!(
            (d.verification_uri.as_str(), d.interval),
            ("https://e/d", 2)
        );
        let r = json(
            200,
            r#"{"device_code":"DC","user_code":"U","expires_in":60}"#,
        );
        assert!(
            matches!(classify_device_authorization(&r, NOW), Err(OAuthError::InvalidResponse(m)) if m.contains("verification_uri"))
        );
        let r = json(400, r#"{"error":"invalid_client"}"#);
        assert!(matches!(
            classify_device_authorization(&r, NOW),
            Err(OAuthError::Protocol(_))
        ));
    }

    #[test]
    fn revocation_accepts_any_2xx_body() {
        assert_eq!(classify_revocation(&response(200, None, ""), NOW), Ok(()));
        assert_eq!(
            classify_revocation(&response(204, Some("text/html"), "<p>"), NOW),
            Ok(())
        );
        let r = json(400, r#"{"error":"unsupported_token_type"}"#);
        assert!(
            matches!(classify_revocation(&r, NOW), Err(OAuthError::Protocol(e)) if e.error == "unsupported_token_type")
        );
    }
}
