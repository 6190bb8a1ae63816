//! PKCE (RFC 7636) and the random values of the authorization-code flow.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use crate::platform::Platform;
use gateway_auth_api::PkceCodeVerifier;

/// Random bytes behind a verifier or a state: 32 bytes, 256 bits, as RFC 7636 §7.1
/// recommends; base64url gives 43 characters, inside the 43–128 of §4.1.
pub const RANDOM_BYTES: usize = 32;

/// A verifier from 32 random bytes (RFC 7636 §4.1).
pub fn verifier_from_bytes(bytes: &[u8; RANDOM_BYTES]) -> PkceCodeVerifier {
    PkceCodeVerifier::new(URL_SAFE_NO_PAD.encode(bytes))
}

/// A fresh verifier.
pub fn new_verifier(p: &mut dyn Platform) -> PkceCodeVerifier {
    let mut bytes = [0; RANDOM_BYTES];
    p.fill_random(&mut bytes);
    verifier_from_bytes(&bytes)
}

/// The S256 challenge: base64url(SHA-256(verifier)) (RFC 7636 §4.2).
pub fn challenge_s256(verifier: &PkceCodeVerifier) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.secret().as_bytes()))
}

/// 32 random bytes as base64url: a `state` (RFC 6749 §10.12) or a `jti`.
pub fn random_token(p: &mut dyn Platform) -> String {
    let mut bytes = [0; RANDOM_BYTES];
    p.fill_random(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Compares without an early exit, so the time taken does not tell an attacker how
/// much of a guessed state was right.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_7636_appendix_b() {
        let bytes = [
            116, 24, 223, 180, 151, 153, 224, 37, 79, 250, 96, 125, 216, 173, 187, 186, 22, 212,
            37, 77, 105, 214, 191, 240, 91, 88, 5, 88, 83, 132, 141, 121,
        ];
        let verifier = verifier_from_bytes(&bytes);
        assert_eq!(
            verifier.secret(),
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
        );
        assert_eq!(
            challenge_s256(&verifier),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn verifiers_use_only_unreserved_characters() {
        let v = verifier_from_bytes(&[0xff; RANDOM_BYTES]);
        assert_eq!(v.secret().len(), 43);
        assert!(
            v.secret()
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
        );
    }

    #[test]
    fn constant_time_eq_compares_whole_strings() {
        assert!(constant_time_eq("abc", "abc"));
        assert!(!constant_time_eq("abc", "abd"));
        assert!(!constant_time_eq("abc", "ab"));
    }
}
