//! Removing anything that looks like a secret from text a server sent, before it goes
//! into an error.
//!
//! Error bodies sometimes echo the request (a misconfigured proxy, a debug page), so a
//! snippet could carry the very secret that was sent, and not always as it was sent:
//! inside a JSON string inside JSON, percent-encoded, HTML-escaped, in an array. So
//! the text is read through its decoded views: as it is, then with one layer of
//! escapes undone (`\"`, `\u0022`, `%22`, `&quot;`, `&#34;`, `&#x22;`), then another,
//! until none is left. Every byte of a view knows the span of the text it stands for,
//! so what is found in any view is masked in the text itself, whole. One mechanism
//! thus covers every encoding and every depth of nesting, and mixtures of them.
//!
//! Two things are found. By shape ([`redact`]): the value of a secret-bearing key
//! (`"password": "…"`, `code=…&`, `"access_token": ["…"]`) and Bearer or Basic
//! credentials, in JSON, form and query strings, header-like text, and truncated or
//! broken mixtures of them alike. By value: every secret already known,
//! which catches a bare echo too: the secrets the request carried ([`secrets_of`])
//! and any the caller adds (the tokens a session held). [`finish`] does both to an
//! error, then cuts the server's texts to their bound.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use gateway_auth_api::{BackoffError, HttpStatusError, OAuthError, ProtocolError};

use crate::http::Request;

/// The longest snippet kept, in characters (the WIT `http-status-error` promise).
pub const SNIPPET_CHARS: usize = 256;

/// How much of a server's text is scanned at all, in bytes; the snippet is cut from
/// its start.
const SCAN_BYTES: usize = 8 * 1024;

/// What replaces a secret.
const MASK: &str = "[redacted]";

/// The most layers of escaping undone. Each layer is a linear pass; real texts have
/// one or two, and eight covers JSON in JSON in JSON inside a URL.
const MAX_LAYERS: usize = 8;

/// The most passes [`settle`] makes after the first.
const MAX_SETTLE_PASSES: usize = 64;

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

/// `err` as the caller sees it: the one redaction entry point.
///
/// Every text of `err` loses every occurrence of each of `secrets`, as it is or
/// escaped or encoded in any of the ways the module reads; the texts that come from a server (protocol error fields, snippet,
/// invalid-response message, authorization-required reason, last backoff error) also
/// lose whatever looks like a credential ([`redact`]), and those a server wrote are
/// then cut to [`SNIPPET_CHARS`]. Masking runs on the whole text first, so a secret
/// straddling the cut leaves no fragment behind.
///
/// `secrets` may be any list of known secret values, in any order, with duplicates
/// and short ones (those under 4 bytes are ignored): the request's own
/// ([`secrets_of`]) plus whatever else the caller knows, such as the tokens a session
/// held. Finishing is idempotent: finishing a finished error, with the same secrets or
/// a subset of them, changes nothing, so layers may each finish what they return.
pub fn finish(err: OAuthError, secrets: &[String]) -> OAuthError {
    let known = known_forms(secrets);
    let server = |text: &str| settle(text, |t| cut(&conceal(t, &known, true)));
    let shaped = |text: &str| settle(text, |t| conceal(t, &known, true));
    match err {
        OAuthError::Protocol(e) => OAuthError::Protocol(ProtocolError {
            error: server(&e.error),
            description: e.description.as_deref().map(server),
            uri: e.uri.as_deref().map(server),
            ..e
        }),
        OAuthError::HttpStatus(e) => OAuthError::HttpStatus(HttpStatusError {
            snippet: server(&e.snippet),
            ..e
        }),
        OAuthError::InvalidResponse(m) => OAuthError::InvalidResponse(server(&m)),
        OAuthError::AuthorizationRequired(m) => OAuthError::AuthorizationRequired(shaped(&m)),
        OAuthError::Backoff(e) => OAuthError::Backoff(BackoffError {
            last_error: shaped(&e.last_error),
            ..e
        }),
        // Texts this plugin wrote (configuration, TLS, transport, store): nothing in
        // them is shaped by a server, but a secret may have been quoted in them.
        other => other.map_texts(|text| settle(&text, |t| conceal(t, &known, false))),
    }
}

/// `step` applied to `text` until it changes nothing more: what [`finish`] returns is
/// then a fixed point, so finishing again changes nothing. (A cut can leave a value's
/// quote unclosed, which the next pass masks to the end.) Every further pass that
/// changes the text masks more of it, so this ends within a few passes; the bound is
/// a guard.
fn settle(text: &str, step: impl Fn(&str) -> String) -> String {
    let mut text = step(text);
    for _ in 0..MAX_SETTLE_PASSES {
        let next = step(&text);
        if next == text {
            break;
        }
        text = next;
    }
    text
}

/// The secret values `request` carries: form values of secret keys, the credentials
/// of its `Authorization` header and, for Basic, the decoded secret. A server
/// may echo them in any shape, so errors are scrubbed of them by value ([`finish`]).
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
    secrets.sort_by_key(|s| core::cmp::Reverse(s.len()));
    secrets.dedup();
    secrets
}

/// A redacted, single-line snippet of the start of `body`, not yet cut ([`finish`]
/// cuts it once secrets are scrubbed by value).
pub fn snippet(body: &[u8]) -> String {
    let head = &body[..body.len().min(SCAN_BYTES)];
    one_line(&String::from_utf8_lossy(head))
}

/// The start of `text`, on one line and redacted.
pub fn one_line(text: &str) -> String {
    let mut end = text.len().min(SCAN_BYTES);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    // Lines are joined before redacting, so that a value on the line after its key
    // is recognised too.
    let joined: String = text[..end]
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    redact(&joined).trim().to_string()
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
/// replaced by `[redacted]`, in any of the encodings and escapes the module describes.
pub fn redact(text: &str) -> String {
    conceal(text, &[], true)
}

/// Every decoded view of `text`, as bytes, from the text as it is to the last layer:
/// what the fuzz target looks for secrets in.
#[cfg(feature = "fuzzing")]
pub(crate) fn views(text: &[u8]) -> Vec<Vec<u8>> {
    let mut views = Vec::new();
    each_view(text, |view| {
        views.push(view.iter().map(|u| u.byte).collect())
    });
    views
}

/// One byte of a decoded view of a text, and the span of the text it stands for.
#[derive(Clone, Copy)]
struct Unit {
    byte: u8,
    start: usize,
    end: usize,
}

impl Unit {
    /// How many bytes of the text this byte took: 1 as it is, 2 for `\"`, 3 for `%22`,
    /// more for deeper escapes. A value ends only at a delimiter escaped no deeper
    /// than what opened it, so `%26` inside a raw form value, or `\"` inside a raw
    /// JSON string, is part of the value.
    fn weight(self) -> usize {
        self.end - self.start
    }
}

/// Each known secret as it is and as every layer of decoding leaves it, so that it is
/// recognised in a view however it was encoded (decoding both sides alike).
fn known_forms(secrets: &[String]) -> Vec<Vec<u8>> {
    let mut forms = Vec::new();
    for secret in secrets.iter().filter(|s| s.len() >= MIN_SCRUB_LEN) {
        each_view(secret.as_bytes(), |view| {
            let bytes: Vec<u8> = view.iter().map(|u| u.byte).collect();
            if bytes.len() >= MIN_SCRUB_LEN {
                forms.push(bytes);
            }
        });
    }
    forms.sort_unstable();
    forms.dedup();
    forms
}

/// `text` with every value of a secret shape (if `shapes`) and every occurrence of a
/// known secret form masked, in any view.
fn conceal(text: &str, known: &[Vec<u8>], shapes: bool) -> String {
    let bytes = text.as_bytes();
    let mut spans = Vec::new();
    each_view(bytes, |view| {
        let view_bytes: Vec<u8> = view.iter().map(|u| u.byte).collect();
        if shapes {
            shape_spans(view, &view_bytes, &mut spans);
        }
        for form in known {
            find_all(&view_bytes, form, |i| {
                spans.push((view[i].start, view[i + form.len() - 1].end));
            });
        }
    });
    if spans.is_empty() {
        return text.to_string();
    }
    // A mask already there absorbs whatever overlaps it, so that masking a masked
    // text again changes nothing.
    find_all(bytes, MASK.as_bytes(), |i| spans.push((i, i + MASK.len())));
    mask(text, spans)
}

/// `text` with each of `spans` (byte ranges, possibly overlapping) replaced by one
/// mask; ranges are widened to whole characters.
fn mask(text: &str, mut spans: Vec<(usize, usize)>) -> String {
    for (start, end) in &mut spans {
        while !text.is_char_boundary(*start) {
            *start -= 1;
        }
        while !text.is_char_boundary(*end) {
            *end += 1;
        }
    }
    spans.sort_unstable();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut spans = spans.into_iter().peekable();
    while let Some((start, mut end)) = spans.next() {
        while let Some(&(next_start, next_end)) = spans.peek() {
            if next_start >= end {
                break;
            }
            end = end.max(next_end);
            spans.next();
        }
        out.push_str(&text[copied..start]);
        out.push_str(MASK);
        copied = end;
    }
    out.push_str(&text[copied..]);
    out
}

/// Calls `f` with every position where `needle` starts in `haystack`.
fn find_all(haystack: &[u8], needle: &[u8], mut f: impl FnMut(usize)) {
    let Some(&first) = needle.first() else {
        return;
    };
    if haystack.len() < needle.len() {
        return;
    }
    for i in 0..=haystack.len() - needle.len() {
        if haystack[i] == first && haystack[i..i + needle.len()] == *needle {
            f(i);
        }
    }
}

/// Calls `f` with `text` as it is, then with each further layer of escapes undone,
/// until a layer undoes nothing (or [`MAX_LAYERS`] are undone).
fn each_view(text: &[u8], mut f: impl FnMut(&[Unit])) {
    let mut view: Vec<Unit> = text
        .iter()
        .enumerate()
        .map(|(i, &byte)| Unit {
            byte,
            start: i,
            end: i + 1,
        })
        .collect();
    for _ in 0..MAX_LAYERS {
        f(&view);
        match decode_layer(&view) {
            Some(next) => view = next,
            None => return,
        }
    }
    f(&view);
}

/// `view` with one layer of escapes undone, or `None` if it has none.
fn decode_layer(view: &[Unit]) -> Option<Vec<Unit>> {
    let mut out = Vec::with_capacity(view.len());
    let mut changed = false;
    let mut i = 0;
    while i < view.len() {
        match escape_at(view, i) {
            Some((used, decoded)) => {
                let (start, end) = (view[i].start, view[i + used - 1].end);
                let mut buf = [0; 4];
                let bytes: &[u8] = match decoded {
                    Decoded::Byte(b) => {
                        buf[0] = b;
                        &buf[..1]
                    }
                    Decoded::Char(c) => c.encode_utf8(&mut buf).as_bytes(),
                };
                out.extend(bytes.iter().map(|&byte| Unit { byte, start, end }));
                changed = true;
                i += used;
            }
            None => {
                out.push(view[i]);
                i += 1;
            }
        }
    }
    changed.then_some(out)
}

/// What an escape stands for: a byte (percent-encoding) or a character.
enum Decoded {
    Byte(u8),
    Char(char),
}

/// The escape starting at `i`, if one does: how many units it takes and what it
/// stands for.
fn escape_at(view: &[Unit], i: usize) -> Option<(usize, Decoded)> {
    let at = |k: usize| view.get(k).map(|u| u.byte);
    match view[i].byte {
        // Percent-encoding (RFC 3986 §2.1), either case.
        b'%' => {
            let byte = hex_value(at(i + 1)?)? * 16 + hex_value(at(i + 2)?)?;
            Some((3, Decoded::Byte(byte)))
        }
        // A JSON (or C-like) escape. A run of backslashes is one escape, whatever the
        // depth of nesting that doubled it.
        b'\\' => {
            let mut j = i;
            while at(j) == Some(b'\\') {
                j += 1;
            }
            let escaped = at(j)?;
            if escaped == b'u'
                && let Some(unit) = hex4(view, j + 1)
            {
                return Some(utf16_escape(view, i, j + 5, unit));
            }
            let decoded = match escaped {
                // Line breaks and the like separate words, as they did before escaping.
                b'n' | b'r' | b't' | b'b' | b'f' => b' ',
                other => other,
            };
            Some((j + 1 - i, Decoded::Byte(decoded)))
        }
        b'&' => html_entity(view, i),
        _ => None,
    }
}

/// A `\uXXXX` escape of UTF-16 code unit `unit` that started at `i` and ends before
/// `next`, joined with the low surrogate that follows a high one.
fn utf16_escape(view: &[Unit], i: usize, next: usize, unit: u32) -> (usize, Decoded) {
    if (0xD800..0xDC00).contains(&unit) {
        let mut j = next;
        while view.get(j).is_some_and(|u| u.byte == b'\\') {
            j += 1;
        }
        if j > next
            && view.get(j).is_some_and(|u| u.byte == b'u')
            && let Some(low) = hex4(view, j + 1).filter(|l| (0xDC00..0xE000).contains(l))
        {
            let c = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00);
            return (j + 5 - i, Decoded::Char(char_or_replacement(c)));
        }
    }
    (next - i, Decoded::Char(char_or_replacement(unit)))
}

/// An HTML character reference (`&amp;`, `&#61;`, `&#x3D;`) starting at `i`.
fn html_entity(view: &[Unit], i: usize) -> Option<(usize, Decoded)> {
    let at = |k: usize| view.get(k).map(|u| u.byte);
    if at(i + 1)? == b'#' {
        let hex = matches!(at(i + 2)?, b'x' | b'X');
        let mut j = i + 2 + usize::from(hex);
        let digits_start = j;
        let mut value: u32 = 0;
        while let Some(d) = at(j).and_then(|b| if hex { hex_value(b) } else { dec_value(b) }) {
            // Longer references are not characters; stop before the value overflows.
            if j - digits_start >= 7 {
                return None;
            }
            value = value * if hex { 16 } else { 10 } + u32::from(d);
            j += 1;
        }
        if j == digits_start {
            return None;
        }
        // The semicolon is optional for numeric references (HTML §13.2.5.80).
        if at(j) == Some(b';') {
            j += 1;
        }
        return Some((j - i, Decoded::Char(char_or_replacement(value))));
    }
    const NAMED: &[(&str, char)] = &[
        ("amp", '&'),
        ("quot", '"'),
        ("apos", '\''),
        ("lt", '<'),
        ("gt", '>'),
        ("nbsp", ' '),
        ("colon", ':'),
        ("equals", '='),
        ("sol", '/'),
        ("comma", ','),
    ];
    NAMED.iter().find_map(|(name, c)| {
        let end = i + 1 + name.len();
        let matches = view.len() > end
            && view[end].byte == b';'
            && view[i + 1..end]
                .iter()
                .zip(name.bytes())
                .all(|(u, b)| u.byte.eq_ignore_ascii_case(&b));
        matches.then_some((end + 1 - i, Decoded::Char(*c)))
    })
}

fn hex4(view: &[Unit], at: usize) -> Option<u32> {
    let digits = view.get(at..at + 4)?;
    digits
        .iter()
        .try_fold(0u32, |v, u| Some(v * 16 + u32::from(hex_value(u.byte)?)))
}

fn hex_value(b: u8) -> Option<u8> {
    char::from(b).to_digit(16).map(|d| d as u8)
}

fn dec_value(b: u8) -> Option<u8> {
    char::from(b).to_digit(10).map(|d| d as u8)
}

fn char_or_replacement(c: u32) -> char {
    char::from_u32(c).unwrap_or(char::REPLACEMENT_CHARACTER)
}

/// Pushes the span (in the text) of every secret value that `view` shows by shape.
fn shape_spans(view: &[Unit], bytes: &[u8], spans: &mut Vec<(usize, usize)>) {
    let mut i = 0;
    while i < bytes.len() {
        match secret_at(view, bytes, i) {
            Some((start, end)) => {
                // An empty value is not masked: a mask in front of nothing hides
                // nothing, and only looks as if it did.
                if end > start {
                    spans.push((view[start].start, view[end - 1].end));
                }
                i = end.max(i + 1);
            }
            None => i += 1,
        }
    }
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

fn starts_with_ignore_case(bytes: &[u8], at: usize, word: &str) -> bool {
    let w = word.as_bytes();
    bytes.len() - at >= w.len() && bytes[at..at + w.len()].eq_ignore_ascii_case(w)
}

fn skip_blanks(bytes: &[u8], mut j: usize) -> usize {
    while bytes.get(j).is_some_and(u8::is_ascii_whitespace) {
        j += 1;
    }
    j
}

/// The range (in `bytes`, a view) of a secret value whose key or scheme starts at `i`,
/// if one does.
fn secret_at(view: &[Unit], bytes: &[u8], i: usize) -> Option<(usize, usize)> {
    if i > 0 && is_word(bytes[i - 1]) {
        return None;
    }
    for key in SECRET_KEYS {
        if !starts_with_ignore_case(bytes, i, key) {
            continue;
        }
        let mut j = i + key.len();
        if bytes.get(j).copied().is_some_and(is_word) {
            continue;
        }
        // The closing quote of a JSON (or single-quoted) key.
        if matches!(bytes.get(j), Some(b'"' | b'\'')) {
            j += 1;
        }
        j = skip_blanks(bytes, j);
        if !matches!(bytes.get(j), Some(b'=' | b':')) {
            continue;
        }
        let start = skip_blanks(bytes, j + 1);
        return Some(value_span(view, bytes, start, view[j].weight()));
    }
    for scheme in SCHEMES {
        if !starts_with_ignore_case(bytes, i, scheme) {
            continue;
        }
        // A space, or `+` as form encoding writes one.
        let mut start = i + scheme.len();
        while matches!(bytes.get(start), Some(b' ' | b'\t' | b'+')) {
            start += 1;
        }
        if start == i + scheme.len() {
            continue;
        }
        // token68 (RFC 9110 §11.2).
        let mut end = start;
        while bytes
            .get(end)
            .is_some_and(|&b| is_word(b) || b"._~+/=".contains(&b))
        {
            end += 1;
        }
        if end > start {
            return Some((start, end));
        }
    }
    None
}

/// The value starting at `start` after a separator of weight `separator`: a quoted
/// string's content, a whole array or object, or everything up to the next
/// delimiter escaped no deeper than the separator.
fn value_span(view: &[Unit], bytes: &[u8], start: usize, separator: usize) -> (usize, usize) {
    match bytes.get(start) {
        None => (start, start),
        Some(b'"' | b'\'') => (start + 1, closing_quote(view, bytes, start)),
        Some(b'[' | b'{') => (start, group_end(view, bytes, start)),
        Some(_) => {
            let mut j = start;
            while j < bytes.len() && !(is_delimiter(bytes[j]) && view[j].weight() <= separator) {
                j += 1;
            }
            (start, j)
        }
    }
}

fn is_delimiter(b: u8) -> bool {
    b.is_ascii_whitespace() || b"&,;\"'<>{}[]()\\".contains(&b)
}

/// Where the string opened by the quote at `open` ends: the next same quote escaped
/// no deeper than the opening one (or the end of the text).
fn closing_quote(view: &[Unit], bytes: &[u8], open: usize) -> usize {
    let (quote, weight) = (bytes[open], view[open].weight());
    (open + 1..bytes.len())
        .find(|&j| bytes[j] == quote && view[j].weight() <= weight)
        .unwrap_or(bytes.len())
}

/// Just past the bracket closing the array or object opened at `open` (or the end of
/// the text), skipping strings, so that every element is masked with it.
fn group_end(view: &[Unit], bytes: &[u8], open: usize) -> usize {
    let weight = view[open].weight();
    let mut depth = 0usize;
    let mut j = open;
    while j < bytes.len() {
        if view[j].weight() <= weight {
            match bytes[j] {
                b'"' => j = closing_quote(view, bytes, j),
                b'[' | b'{' => depth += 1,
                b']' | b'}' => {
                    depth -= 1;
                    if depth == 0 {
                        return j + 1;
                    }
                }
                _ => {}
            }
        }
        j += 1;
    }
    bytes.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::Response;

    use crate::oauth::classify;

    const NOW: u64 = 1_700_000_000;

    /// A token no request here carried: only its shape can give it away.
    const TOKEN: &str = "AT-0123456789abcdefghij-KLMNOP";

    /// The error a caller sees for this answer, as displayed and as debugged.
    fn seen(status: u16, content_type: &str, body: &str, known: &[&str]) -> String {
        let response = Response {
            status,
            headers: vec![("content-type".into(), content_type.into())],
            body: body.as_bytes().to_vec(),
        };
        let known: Vec<String> = known.iter().map(|s| s.to_string()).collect();
        let err = classify::classify(&response, NOW).expect_err("an error answer");
        let err = finish(err, &known);
        format!("{err} | {err:?}")
    }

    /// Panics if `text` holds any 8-character window of `secret`.
    fn assert_no_fragment(secret: &str, text: &str) {
        for i in 0..=secret.len() - 8 {
            let fragment = &secret[i..i + 8];
            assert!(
                !text.contains(fragment),
                "{fragment:?} of {secret:?} survived: {text}"
            );
        }
    }

    #[test]
    fn a_token_echoed_as_json_inside_a_json_string_is_masked_at_any_depth() {
        let t = TOKEN;
        for (status, body) in [
            (
                400,
                format!(
                    r#"{{"error":"invalid_request","error_description":"upstream said {{\"access_token\":\"{t}\",\"token_type\":\"Bearer\"}}"}}"#
                ),
            ),
            (
                502,
                format!(r#"{{"message":"upstream said {{\"access_token\":\"{t}\"}}"}}"#),
            ),
            (
                502,
                format!(
                    r#"{{"message":"{{\"body\":\"{{\\\"refresh_token\\\":\\\"{t}\\\"}}\"}}"}}"#
                ),
            ),
            (
                502,
                format!(r#"{{"m":"{{\\\\\\\"id_token\\\\\\\" : \\\\\\\"{t}\\\\\\\"}}"}}"#),
            ),
        ] {
            let shown = seen(status, "application/json", &body, &[]);
            assert_no_fragment(TOKEN, &shown);
            assert!(shown.contains("[redacted]"), "{shown}");
        }
        let shown = seen(
            400,
            "application/json",
            &format!(
                r#"{{"error":"invalid_request","error_description":"upstream said {{\"access_token\":\"{t}\",\"token_type\":\"Bearer\"}}"}}"#
            ),
            &[],
        );
        assert!(
            shown.contains("upstream said") && shown.contains("token_type"),
            "{shown}"
        );
    }

    #[test]
    fn a_url_encoded_token_is_masked_in_any_case_and_depth() {
        let t = TOKEN;
        for body in [
            format!("redirect to https://rp.example/cb#access_token%3D{t}%26token_type%3DBearer"),
            format!("redirect to https://rp.example/cb#access_token%3d{t}%26state%3dx"),
            format!("next=%2Fcb%3Fcode%253D{t}%2526state%253Dx"),
        ] {
            let shown = seen(400, "text/plain", &body, &[]);
            assert_no_fragment(TOKEN, &shown);
            assert!(
                shown.contains("redirect") || shown.contains("next"),
                "{shown}"
            );
        }
    }

    #[test]
    fn a_token_in_url_encoded_json_is_masked() {
        let t = TOKEN;
        for body in [
            format!("payload=%7B%22access_token%22%3A%22{t}%22%7D"),
            format!("payload=%7b%22id_token%22%3a%20%22{t}%22%2c%22x%22%3a1%7d"),
        ] {
            assert_no_fragment(TOKEN, &seen(500, "text/plain", &body, &[]));
        }
    }

    #[test]
    fn a_token_in_a_json_array_is_masked_whole() {
        let t = TOKEN;
        let body = format!(r#"{{"message":"bad","access_token":["{t}","{t}2"],"n":1}}"#);
        let shown = seen(500, "application/json", &body, &[]);
        assert_no_fragment(TOKEN, &shown);
        assert!(
            shown.contains(r#""access_token":[redacted],"n":1"#),
            "{shown}"
        );
        let body = format!(r#"{{"message":"bad","refresh_token":[["{t}"], {{"v":"{t}"}}]}}"#);
        assert_no_fragment(TOKEN, &seen(500, "application/json", &body, &[]));
    }

    #[test]
    fn a_token_behind_html_entities_is_masked() {
        let t = TOKEN;
        for body in [
            format!("<p>access_token&#61;{t}</p>"),
            format!("<p>access_token&#x3D;{t}&amp;state=x</p>"),
            format!("<pre>{{&quot;access_token&quot;:&quot;{t}&quot;}}</pre>"),
            format!(r#"<a href="/cb?state=x&amp;code={t}&amp;iss=y">back</a>"#),
            format!("<p>code&amp;#61;{t}</p>"),
        ] {
            assert_no_fragment(TOKEN, &seen(403, "text/html", &body, &[]));
        }
    }

    #[test]
    fn a_percent_encoded_bearer_credential_is_masked() {
        let t = TOKEN;
        for body in [
            format!("echo: authorization: Bearer%20{t}"),
            format!("echo=Authorization%3A%20Bearer%20{t}%0D%0A"),
            format!("echo=authorization%253A%2520bearer%2520{t}"),
        ] {
            assert_no_fragment(TOKEN, &seen(401, "text/plain", &body, &[]));
        }
    }

    #[test]
    fn a_percent_encoded_secret_in_an_error_description_is_masked() {
        let t = TOKEN;
        let json = format!(
            r#"{{"error":"invalid_grant","error_description":"refresh_token%3D{t} was revoked"}}"#
        );
        let shown = seen(400, "application/json", &json, &[]);
        assert_no_fragment(TOKEN, &shown);
        assert!(shown.contains("was revoked"), "{shown}");
        let form = format!("error=invalid_grant&error_description=refresh_token%253D{t}+revoked");
        let shown = seen(400, "application/x-www-form-urlencoded", &form, &[]);
        assert_no_fragment(TOKEN, &shown);
        assert!(shown.contains("revoked"), "{shown}");
    }

    #[test]
    fn a_token_the_session_held_is_masked_when_echoed_bare_or_encoded() {
        let held = r#"held.+/=token"0123456789&x"#;
        for echoed in [
            held.to_string(),
            "held.%2B%2F%3Dtoken%220123456789%26x".into(),
            "held.%2b%2f%3dtoken%220123456789%26x".into(),
            r#"held.+\/=token\"0123456789&x"#.into(),
            r#"held.+/&#61;token&quot;0123456789&amp;x"#.into(),
        ] {
            for (content_type, body) in [
                ("text/plain", format!("the token {echoed} expired")),
                (
                    "application/json",
                    format!(
                        r#"{{"error":"invalid_token","error_description":"{}"}}"#,
                        echoed.replace('\\', "\\\\").replace('"', "\\\"")
                    ),
                ),
            ] {
                let shown = seen(401, content_type, &body, &[held]);
                assert_no_fragment(held, &shown);
                assert_no_fragment(&echoed, &shown);
                assert!(
                    shown.contains("expired") || shown.contains("invalid_token"),
                    "{shown}"
                );
            }
        }
    }

    #[test]
    fn a_value_is_masked_whole_whatever_it_contains() {
        let out = redact(r#"{"password":"ab\"cd,ef","n":1}"#);
        assert_eq!(out, r#"{"password":"[redacted]","n":1}"#);
        assert_eq!(redact("code=ab%26cd&state=x"), "code=[redacted]&state=x");
        assert_eq!(
            redact("{\"access_token\":\n  \"AT-1234\"}"),
            "{\"access_token\":\n  \"[redacted]\"}"
        );
    }

    #[test]
    fn finishing_an_error_cut_inside_an_encoded_value_twice_changes_nothing() {
        let t = TOKEN;
        for pad in 200..=260 {
            let body = format!(
                "{}%7B%22refresh_token%22%3A%20%22{t}%22%7D tail",
                "p".repeat(pad)
            );
            let err = OAuthError::HttpStatus(HttpStatusError {
                status: 500,
                snippet: body,
                retry_after: None,
            });
            let once = finish(err, &[]);
            assert_eq!(finish(once.clone(), &[]), once, "padded by {pad}");
            assert_no_fragment(TOKEN, &format!("{once:?}"));
        }
    }

    #[test]
    fn finishing_an_error_twice_changes_nothing() {
        let known: Vec<String> = ["dact", "held-token-1234", TOKEN]
            .map(String::from)
            .to_vec();
        let t = TOKEN;
        for text in [
            format!("code=held-token-1234 and dact and [redacted]x{t}"),
            format!(r#"{{"access_token":["{t}"]}}"#),
            format!("{}access_token={t}", "p".repeat(250)),
            format!("{}\"access_token\":\"{t}", "p".repeat(240)),
            "code=[redacted]&x=[redacted]]".into(),
        ] {
            for err in [
                OAuthError::HttpStatus(HttpStatusError {
                    status: 500,
                    snippet: text.clone(),
                    retry_after: None,
                }),
                OAuthError::InvalidResponse(text.clone()),
                OAuthError::Config(text.clone()),
            ] {
                let once = finish(err, &known);
                assert_eq!(finish(once.clone(), &known), once);
                let shown = format!("{once} {once:?}");
                assert_no_fragment(TOKEN, &shown);
                assert!(!shown.contains("held-token-1234"), "{shown}");
            }
        }
    }

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
            conceal(text, &known_forms(&secrets), false),
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
