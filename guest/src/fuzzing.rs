//! Entry points for the fuzz targets in `fuzz/` (built with the `fuzzing` feature):
//! each takes arbitrary bytes, runs one parser a hostile peer or a bad configuration
//! can reach, and checks what must hold whatever the input. A panic is a finding.

use gateway_auth_api::{PrivateKeyPem, TrustSpec};

use crate::http::{HttpError, Response, ResponseParser};
use crate::oauth::fuzzing as oauth;
use crate::tls::TlsCache;

/// PEM trust material through the TLS cache: `data` holds the CA bundle, the client
/// certificate and the client key, separated by NUL bytes (a fourth part, if not
/// empty, trusts the web roots). Preparing twice gives the same answer, and the second
/// is a cache hit whenever the first succeeded.
pub fn trust_material(data: &[u8]) {
    let mut parts = data.split(|b| *b == 0);
    let mut text = || {
        parts
            .next()
            .map(|p| String::from_utf8_lossy(p).into_owned())
    };
    let spec = TrustSpec {
        ca_bundle: text().unwrap_or_default(),
        client_certificate: text(),
        client_key: text().map(PrivateKeyPem::new),
        web_roots: text().is_some_and(|t| !t.is_empty()),
    };
    let mut cache = TlsCache::default();
    let first = cache.prepare(&spec, 0).map(|p| p.profile);
    let second = cache.prepare(&spec, 0).map(|p| p.profile);
    match (first, second) {
        (Ok(first), Ok(second)) => {
            assert_eq!(first.id, second.id);
            assert!(!first.cached && second.cached);
        }
        (Err(first), Err(second)) => assert_eq!(first, second),
        (first, second) => panic!("prepared twice: {first:?} then {second:?}"),
    }
}

/// The HTTP response parser: the first byte picks piece sizes (1 to 16 bytes, cycling
/// through the next four bytes), the rest is the wire. Fed in those pieces it must
/// give the same answer as fed whole, and nothing it accepts may exceed its bounds.
pub fn response_parser(data: &[u8]) {
    let Some((&shape, rest)) = data.split_first() else {
        return;
    };
    let sizes: Vec<usize> = rest
        .iter()
        .take(4)
        .map(|b| usize::from(b.wrapping_add(shape) % 16) + 1)
        .collect();
    let wire = rest.get(4..).unwrap_or_default();
    let whole = parse(&[wire]);
    let mut pieces = Vec::new();
    let mut left = wire;
    for size in sizes.iter().cycle() {
        if left.is_empty() {
            break;
        }
        let (piece, rest) = left.split_at((*size).min(left.len()));
        pieces.push(piece);
        left = rest;
    }
    assert_eq!(parse(&pieces), whole, "the answer depends on the split");
    if let Ok(response) = &whole {
        assert!(response.body.len() <= crate::http::MAX_RESPONSE_BODY);
        assert!(response.headers.len() <= crate::http::MAX_HEADERS);
    }
}

fn parse(pieces: &[&[u8]]) -> Result<Response, HttpError> {
    let mut parser = ResponseParser::new();
    for piece in pieces {
        if let Some(response) = parser.feed(piece)? {
            return Ok(response);
        }
    }
    parser.close()
}

/// The classification of a token endpoint answer: the first two bytes are the status,
/// then NUL-separated `name: value` header lines, then (after an empty one) the body,
/// in which byte 0x01 and the byte after it embed a secret in some encoding. See
/// [`oauth::classify`] for what must hold.
pub fn classify(data: &[u8]) {
    let Some((status, rest)) = data.split_at_checked(2) else {
        return;
    };
    let status = u16::from_be_bytes([status[0], status[1]]) % 600;
    let (head, body) = match rest.windows(2).position(|w| w == [0, 0]) {
        Some(end) => (&rest[..end], &rest[end + 2..]),
        None => (rest, &[][..]),
    };
    let headers = head
        .split(|b| *b == 0)
        .filter(|line| !line.is_empty())
        .map(|line| {
            let line = String::from_utf8_lossy(line);
            let (name, value) = line.split_once(':').unwrap_or((&line, ""));
            (name.trim().to_ascii_lowercase(), value.trim().to_string())
        })
        .collect();
    oauth::classify(&Response {
        status,
        headers,
        body: body.to_vec(),
    });
}

/// A stored session record, as another replica (or a corrupted store) may have left
/// it. See [`oauth::session_record`] for what must hold.
pub fn session_record(data: &[u8]) {
    oauth::session_record(data);
}
