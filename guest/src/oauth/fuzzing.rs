//! The OAuth side of `crate::fuzzing`: classification and the stored record, with what
//! must hold for any input.

use std::collections::HashSet;

use gateway_auth_api::OAuthError;

use super::classify;
use super::redact::{self, SNIPPET_CHARS};
use super::session::SessionRecord;
use crate::http::Response;

/// Secrets the request carried, as a fuzzed body may echo them: one of plain
/// characters, one of every character that escaping and encoding change.
const SECRETS: [&str; 2] = ["Fuzz-Secret-0123456789", r#"Fz+Sec/re=t"0&1<2>3'45\6789;x"#];

/// A token no request carried: it is only ever embedded in a secret-bearing shape,
/// which must give it away.
const UNKNOWN: &str = "Shape-Token-9876543210";

/// Where a body embeds a secret: this byte, then one that picks what and how.
pub const PLACEHOLDER: u8 = 0x01;

/// The shapes [`UNKNOWN`] is embedded in; blanks around them keep the fuzzed bytes
/// next to them from joining the key or the value.
const SHAPES: [&str; 4] = [
    " access_token=@ ",
    r#" {"refresh_token": "@"} "#,
    r#" "id_token":["@", 1] "#,
    " Authorization: Bearer @ ",
];

/// How an embedded text is written: the encodings and escapes a server may have
/// applied to what it echoes, some applied twice.
const ENCODINGS: [fn(&str) -> String; 12] = [
    |s| s.to_string(),
    |s| s.bytes().map(|b| format!("%{b:02X}")).collect(),
    |s| s.bytes().map(|b| format!("%{b:02x}")).collect(),
    |s| percent_specials(s, "%"),
    |s| percent_specials(&percent_specials(s, "%"), "%"),
    json_escape,
    |s| json_escape(&json_escape(s)),
    |s| {
        s.chars()
            .map(|c| format!("\\u{:04x}", u32::from(c)))
            .collect()
    },
    |s| s.chars().map(|c| format!("&#{};", u32::from(c))).collect(),
    |s| {
        s.chars()
            .map(|c| format!("&#x{:X};", u32::from(c)))
            .collect()
    },
    html_escape,
    |s| percent_specials(&json_escape(s), "%"),
];

fn percent_specials(s: &str, percent: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("{percent}{b:02X}"),
        })
        .collect()
}

fn json_escape(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '"' => "\\\"".to_string(),
            '\\' => "\\\\".to_string(),
            '/' => "\\/".to_string(),
            c => c.to_string(),
        })
        .collect()
}

fn html_escape(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '&' => "&amp;".to_string(),
            '"' => "&quot;".to_string(),
            '\'' => "&#39;".to_string(),
            '<' => "&lt;".to_string(),
            '>' => "&gt;".to_string(),
            c => c.to_string(),
        })
        .collect()
}

/// The text a placeholder's selector `k` embeds: a known secret or the unknown token
/// in a shape (high bits), in an encoding (low bits).
fn embedded(k: u8) -> String {
    let plain = match usize::from(k >> 4) % (SECRETS.len() + SHAPES.len()) {
        i if i < SECRETS.len() => SECRETS[i].to_string(),
        i => SHAPES[i - SECRETS.len()].replace('@', UNKNOWN),
    };
    ENCODINGS[usize::from(k & 0x0f) % ENCODINGS.len()](&plain)
}

/// A time well inside the range any record's times are compared with.
const NOW: u64 = 1_700_000_000;

/// Every classifier takes `response` without panicking; an error, once finished as
/// callers see it, holds no trace of a secret and no server text beyond the snippet
/// bound, and finishing it again changes nothing.
///
/// Each [`PLACEHOLDER`] in the body, with the byte after it, is replaced by a secret
/// the request carried or by an unknown token in a secret-bearing shape, wrapped in
/// one of the [`ENCODINGS`]. Neither the secret nor any 8-byte fragment of it may
/// then appear in the error, as it is or decoded; a fragment is only allowed where
/// the fuzzed bytes themselves hold it (they may, having learnt the secret).
pub fn classify(response: &Response) {
    let mut body = Vec::with_capacity(response.body.len());
    let mut fuzzed = Vec::with_capacity(response.body.len());
    let mut bytes = response.body.iter();
    while let Some(&b) = bytes.next() {
        if b == PLACEHOLDER {
            body.extend_from_slice(embedded(bytes.next().copied().unwrap_or(0)).as_bytes());
            // The fuzzed bytes stay apart on either side of what was embedded.
            fuzzed.push(b' ');
        } else {
            body.push(b);
            fuzzed.push(b);
        }
    }
    for (name, value) in &response.headers {
        fuzzed.extend_from_slice(format!(" {name}: {value} ").as_bytes());
    }
    let response = Response {
        status: response.status,
        headers: response.headers.clone(),
        body,
    };
    let fuzzed_windows = std::cell::OnceCell::new();
    let fuzzed_holds = |fragment: &[u8; 8]| {
        fuzzed_windows
            .get_or_init(|| windows(&redact::views(&fuzzed)))
            .contains(fragment)
    };
    let known: Vec<String> = SECRETS.map(String::from).to_vec();
    let errors = [
        classify::classify(&response, NOW).err(),
        classify::classify_device_authorization(&response, NOW).err(),
        classify::classify_revocation(&response, NOW).err(),
        classify::classify_document(&response, NOW).err(),
    ];
    for err in errors.into_iter().flatten() {
        let err = redact::finish(err, &known);
        assert_eq!(
            redact::finish(err.clone(), &known),
            err,
            "finishing twice changed the error"
        );
        let shown: Vec<Vec<u8>> = [err.to_string(), format!("{err:?}")]
            .iter()
            .flat_map(|text| redact::views(text.as_bytes()))
            .collect();
        let shown_windows = windows(&shown);
        for secret in SECRETS {
            let whole = secret.as_bytes();
            assert!(
                !shown
                    .iter()
                    .any(|view| view.windows(whole.len()).any(|w| w == whole)),
                "the secret survived: {err:?}"
            );
        }
        for secret in SECRETS.iter().chain([&UNKNOWN]) {
            for fragment in secret.as_bytes().array_windows::<8>() {
                // The error is short; the fuzzed bytes are looked at only when needed.
                assert!(
                    !shown_windows.contains(fragment) || fuzzed_holds(fragment),
                    "{:?} of {secret:?} survived: {err:?}",
                    String::from_utf8_lossy(fragment)
                );
            }
        }
        let server_texts: Vec<&str> = match &err {
            OAuthError::Protocol(e) => [
                Some(e.error.as_str()),
                e.description.as_deref(),
                e.uri.as_deref(),
            ]
            .into_iter()
            .flatten()
            .collect(),
            OAuthError::HttpStatus(e) => vec![e.snippet.as_str()],
            OAuthError::InvalidResponse(m) => vec![m.as_str()],
            _ => Vec::new(),
        };
        for text in server_texts {
            assert!(text.chars().count() <= SNIPPET_CHARS, "{text:?}");
        }
    }
}

/// Every 8-byte window of `views`, to look fragments up in (comparing them one by one
/// made the target three times slower).
fn windows(views: &[Vec<u8>]) -> HashSet<[u8; 8]> {
    views
        .iter()
        .flat_map(|view| view.array_windows::<8>().copied())
        .collect()
}

/// A record that parses survives a round trip unchanged, and every question asked of
/// it (at times around its own) is answered without panicking.
pub fn session_record(bytes: &[u8]) {
    let Some(record) = SessionRecord::from_bytes(bytes) else {
        return;
    };
    assert_eq!(
        SessionRecord::from_bytes(&record.to_bytes()).as_ref(),
        Some(&record),
        "a stored record reads back as itself"
    );
    for now in [0, NOW, u64::from(u32::MAX), u64::MAX / 2] {
        let _ = record.status(now);
        let _ = record.fresh_token(now, 60);
        let _ = record.fresh_token(now, u64::from(u32::MAX));
        let _ = record.alive_token(now);
        let _ = record.held_error(now);
        let _ = record.backoff(now);
        if let Some(token) = &record.token {
            let _ = token.to_token();
        }
    }
}
