//! The OAuth side of `crate::fuzzing`: classification and the stored record, with what
//! must hold for any input.

use gateway_auth_api::OAuthError;

use super::classify;
use super::redact::{self, SNIPPET_CHARS};
use super::session::SessionRecord;
use crate::http::Response;

/// A secret the request carried, as a fuzzed body may echo it.
const SECRET: &str = "Fuzz-Secret-0123456789";

/// A time well inside the range any record's times are compared with.
const NOW: u64 = 1_700_000_000;

/// Every classifier takes `response` without panicking; an error, once finished as
/// callers see it, holds no trace of the request's secret and no server text beyond
/// the snippet bound.
pub fn classify(response: &Response) {
    let errors = [
        classify::classify(response, NOW).err(),
        classify::classify_device_authorization(response, NOW).err(),
        classify::classify_revocation(response, NOW).err(),
        classify::classify_document(response, NOW).err(),
    ];
    for err in errors.into_iter().flatten() {
        let err = redact::finish(err, &[SECRET.to_string()]);
        assert!(
            !err.to_string().contains(SECRET),
            "the secret survived: {err}"
        );
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
