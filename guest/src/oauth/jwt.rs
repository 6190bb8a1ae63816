//! JWT assertions (RFC 7523), signed with ring: client assertions for `private_key_jwt`
//! (§2.2) and authorization grants for JWT-bearer sessions (§2.1).
//!
//! ring signs with its own `SystemRandom` (ECDSA nonces, RSA blinding): its
//! `SecureRandom` trait is sealed, so the platform's randomness cannot stand in. On
//! wasm32-wasip2 that reads `wasi:random`. The claims themselves (`jti`, `iat`) come from
//! the caller, so tests see deterministic assertions up to the signature bytes.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, RSA_PKCS1_SHA256, RsaKeyPair,
};
use rustls_pki_types::PrivatePkcs8KeyDer;
use rustls_pki_types::pem::PemObject;

use gateway_auth_api::OAuthError;
use gateway_auth_api::{Assertion, AssertionSigner, JwtAlgorithm, SigningKey};

/// How long an assertion is valid: short, since it is made for one request.
pub const ASSERTION_LIFETIME: u64 = 300;

/// A parsed signing key.
pub(super) enum Signer {
    /// RS256.
    Rsa(RsaKeyPair),
    /// ES256.
    Ecdsa(EcdsaKeyPair),
}

impl Signer {
    /// The JWS signature of `input` (RFC 7518 §3.3, §3.4): RSA signatures as is, ECDSA
    /// as the fixed-size R || S.
    pub(super) fn sign(&self, input: &[u8]) -> Result<Vec<u8>, ring::error::Unspecified> {
        let rng = SystemRandom::new();
        match self {
            Self::Rsa(pair) => {
                let mut signature = vec![0; pair.public().modulus_len()];
                pair.sign(&RSA_PKCS1_SHA256, &rng, input, &mut signature)?;
                Ok(signature)
            }
            Self::Ecdsa(pair) => Ok(pair.sign(&rng, input)?.as_ref().to_vec()),
        }
    }
}

/// Checks that `key` parses, so a bad key is a configuration error before any request.
pub fn check_key(key: &SigningKey) -> Result<(), OAuthError> {
    signer(key).map(|_| ())
}

/// Error texts name the problem, never key material (ring's `KeyRejected` is a fixed
/// description).
pub(super) fn signer(key: &SigningKey) -> Result<Signer, OAuthError> {
    let der = PrivatePkcs8KeyDer::from_pem_slice(key.private_key_pem.secret().as_bytes()).map_err(|_| {
        OAuthError::Config(
            "the JWT signing key is not PKCS#8 PEM (BEGIN PRIVATE KEY); convert it with `openssl pkcs8 -topk8 -nocrypt`"
                .into(),
        )
    })?;
    let rejected = |e: ring::error::KeyRejected| {
        OAuthError::Config(format!(
            "the JWT signing key is not a usable {} key: {e}",
            key.algorithm.name()
        ))
    };
    match key.algorithm {
        JwtAlgorithm::Rs256 => RsaKeyPair::from_pkcs8(der.secret_pkcs8_der())
            .map(Signer::Rsa)
            .map_err(rejected),
        JwtAlgorithm::Es256 => EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            der.secret_pkcs8_der(),
            &SystemRandom::new(),
        )
        .map(Signer::Ecdsa)
        .map_err(rejected),
    }
}

/// A signed client assertion: `iss` = `sub` = the client id, `aud` = `audience`, a
/// unique `jti`, `iat` = `now` and `exp` five minutes later (RFC 7523 §3).
pub fn client_assertion(
    key: &SigningKey,
    client_id: &str,
    audience: &str,
    now: u64,
    jti: &str,
) -> Result<Assertion, OAuthError> {
    let claims = serde_json::json!({
        "iss": client_id,
        "sub": client_id,
        "aud": audience,
        "jti": jti,
        "iat": now,
        "exp": now + ASSERTION_LIFETIME,
    });
    sign(key, &claims)
}

/// A signed authorization grant (RFC 7523 §2.1, §3) with the signer's issuer, subject
/// and lifetime, `aud` = `audience`, a unique `jti` and `iat` = `now`.
pub fn grant_assertion(
    signer: &AssertionSigner,
    audience: &str,
    now: u64,
    jti: &str,
) -> Result<Assertion, OAuthError> {
    let claims = serde_json::json!({
        "iss": signer.issuer,
        "sub": signer.subject,
        "aud": audience,
        "jti": jti,
        "iat": now,
        "exp": now + signer.lifetime(),
    });
    sign(&signer.signing_key, &claims)
}

/// The `exp` claim of `assertion`, read without verifying it (the plugin only needs to
/// know when not to send it); `None` when it has none or is not a JWS.
pub fn expiry(assertion: &Assertion) -> Option<u64> {
    let payload = assertion.secret().split('.').nth(1)?;
    let claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
    let exp = claims.get("exp")?;
    // A fractional `exp` (NumericDate may have one) rounds down: the assertion is
    // treated as expired a moment early rather than late.
    exp.as_u64()
        .or_else(|| exp.as_f64().filter(|e| *e >= 0.0).map(|e| e as u64))
}

/// A compact JWS of `claims`, signed with `key`.
fn sign(key: &SigningKey, claims: &serde_json::Value) -> Result<Assertion, OAuthError> {
    let mut header = serde_json::json!({ "alg": key.algorithm.name(), "typ": "JWT" });
    if let Some(kid) = &key.key_id {
        header["kid"] = kid.as_str().into();
    }
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = signer(key)?
        .sign(signing_input.as_bytes())
        .map_err(|_| OAuthError::Config("signing the JWT assertion failed".into()))?;
    Ok(Assertion::new(format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(signature)
    )))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;
    use gateway_auth_api::PrivateKeyPem;
    use ring::signature::{self, KeyPair};

    pub(crate) const RS256_PEM: &str = include_str!("testdata/rs256.pem");

    /// A fresh P-256 key as PKCS#8 PEM.
    pub(crate) fn es256_pem() -> String {
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .unwrap();
        let body = STANDARD.encode(pkcs8.as_ref());
        let lines: Vec<&str> = body
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            lines.join("\n")
        )
    }

    fn key(algorithm: JwtAlgorithm, pem: &str) -> SigningKey {
        SigningKey {
            algorithm,
            private_key_pem: PrivateKeyPem::new(pem),
            key_id: Some("k1".into()),
        }
    }

    fn parts(assertion: &Assertion) -> (serde_json::Value, serde_json::Value, Vec<u8>, String) {
        let token = assertion.secret();
        let (input, sig) = token.rsplit_once('.').unwrap();
        let (h, c) = input.split_once('.').unwrap();
        let decode = |s: &str| URL_SAFE_NO_PAD.decode(s).unwrap();
        (
            serde_json::from_slice(&decode(h)).unwrap(),
            serde_json::from_slice(&decode(c)).unwrap(),
            decode(sig),
            input.to_string(),
        )
    }

    fn check_claims(header: &serde_json::Value, claims: &serde_json::Value, alg: &str) {
        assert_eq!(header["alg"], alg);
        assert_eq!(header["typ"], "JWT");
        assert_eq!(header["kid"], "k1");
        assert_eq!(claims["iss"], "client-1");
        assert_eq!(claims["sub"], "client-1");
        assert_eq!(claims["aud"], "https://as.example/token");
        assert_eq!(claims["jti"], "jti-7");
        assert_eq!(claims["iat"], 1_000);
        assert_eq!(claims["exp"], 1_300);
    }

    #[test]
    fn rs256_assertions_verify_with_the_public_key() {
        let key = key(JwtAlgorithm::Rs256, RS256_PEM);
        let assertion =
            client_assertion(&key, "client-1", "https://as.example/token", 1_000, "jti-7").unwrap();
        let (header, claims, sig, input) = parts(&assertion);
        check_claims(&header, &claims, "RS256");
        let der = PrivatePkcs8KeyDer::from_pem_slice(RS256_PEM.as_bytes()).unwrap();
        let pair = RsaKeyPair::from_pkcs8(der.secret_pkcs8_der()).unwrap();
        signature::UnparsedPublicKey::new(
            &signature::RSA_PKCS1_2048_8192_SHA256,
            pair.public().as_ref(),
        )
        .verify(input.as_bytes(), &sig)
        .unwrap();
    }

    #[test]
    fn es256_assertions_verify_with_the_public_key() {
        let pem = es256_pem();
        let key = key(JwtAlgorithm::Es256, &pem);
        let assertion =
            client_assertion(&key, "client-1", "https://as.example/token", 1_000, "jti-7").unwrap();
        let (header, claims, sig, input) = parts(&assertion);
        check_claims(&header, &claims, "ES256");
        assert_eq!(sig.len(), 64);
        let der = PrivatePkcs8KeyDer::from_pem_slice(pem.as_bytes()).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            der.secret_pkcs8_der(),
            &SystemRandom::new(),
        )
        .unwrap();
        signature::UnparsedPublicKey::new(
            &signature::ECDSA_P256_SHA256_FIXED,
            pair.public_key().as_ref(),
        )
        .verify(input.as_bytes(), &sig)
        .unwrap();
    }

    #[test]
    fn bad_keys_are_configuration_errors_without_key_material() {
        let err = check_key(&key(JwtAlgorithm::Es256, RS256_PEM)).unwrap_err();
        assert!(
            matches!(&err, OAuthError::Config(m) if m.contains("ES256")),
            "{err}"
        );
        let pkcs1 =
            "-----BEGIN RSA PRIVATE KEY-----\nMIIBOgIBAAJBAK\n-----END RSA PRIVATE KEY-----\n";
        let err = check_key(&key(JwtAlgorithm::Rs256, pkcs1)).unwrap_err();
        assert!(
            matches!(&err, OAuthError::Config(m) if m.contains("PKCS#8") && !m.contains("MIIB")),
            "{err}"
        );
    }

    #[test]
    fn grant_assertions_carry_the_signers_claims_and_lifetime() {
        let signer = AssertionSigner {
            signing_key: key(JwtAlgorithm::Es256, &es256_pem()),
            issuer: "https://idp.example".into(),
            subject: "svc-42".into(),
            audience: None,
            lifetime_seconds: Some(60),
        };
        let assertion = grant_assertion(&signer, "https://as.example", 1_000, "j1").unwrap();
        let (header, claims, _, _) = parts(&assertion);
        assert_eq!(header["alg"], "ES256");
        assert_eq!(
            claims,
            serde_json::json!({"iss": "https://idp.example", "sub": "svc-42",
                "aud": "https://as.example", "jti": "j1", "iat": 1_000, "exp": 1_060})
        );
        assert_eq!(expiry(&assertion), Some(1_060));
    }

    #[test]
    fn expiry_reads_exp_without_verifying_and_is_none_for_anything_else() {
        let jws =
            |claims: &str| Assertion::new(format!("e30.{}.sig", URL_SAFE_NO_PAD.encode(claims)));
        assert_eq!(expiry(&jws(r#"{"exp":1700000000}"#)), Some(1_700_000_000));
        assert_eq!(expiry(&jws(r#"{"exp":1700000000.9}"#)), Some(1_700_000_000));
        assert_eq!(expiry(&jws(r#"{"sub":"x"}"#)), None);
        assert_eq!(expiry(&jws(r#"{"exp":-5}"#)), None);
        assert_eq!(expiry(&jws("not json")), None);
        assert_eq!(expiry(&Assertion::new("opaque-saml-or-token")), None);
    }
}
