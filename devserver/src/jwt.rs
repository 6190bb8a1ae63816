//! Compact JWS with RS256 and ES256 over ring: parsing and verifying the assertions
//! clients send (RFC 7523), and signing the ones this server hands out.

use anyhow::anyhow;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, RsaKeyPair, UnparsedPublicKey};
use serde_json::{Map, Value};

/// The two algorithms the WIT `jwt-algorithm` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Alg {
    Rs256,
    Es256,
}

impl Alg {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Alg::Rs256 => "RS256",
            Alg::Es256 => "ES256",
        }
    }
}

/// A public key to verify with: a DER `RSAPublicKey` or an uncompressed P-256 point,
/// which are the forms ring takes.
#[derive(Clone)]
pub(crate) struct PublicKey {
    pub alg: Alg,
    pub bytes: Vec<u8>,
}

/// A private key, kept both as PKCS#8 PEM (to hand to clients) and loaded in ring.
pub(crate) struct SigningKey {
    pub pem: String,
    alg: Alg,
    pair: Pair,
}

enum Pair {
    Ec(EcdsaKeyPair),
    Rsa(RsaKeyPair),
}

impl SigningKey {
    pub(crate) fn generate_es256() -> anyhow::Result<Self> {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        Self::from_pkcs8(Alg::Es256, key.serialized_der(), key.serialize_pem())
    }

    /// The fixed RS256 client key; see `certs::rsa_client_key`.
    pub(crate) fn fixed_rs256() -> anyhow::Result<Self> {
        use rustls_pki_types::PrivatePkcs8KeyDer;
        use rustls_pki_types::pem::PemObject;
        let pem = include_str!("rs256-client-key.pem");
        let der = PrivatePkcs8KeyDer::from_pem_slice(pem.as_bytes())?;
        Self::from_pkcs8(Alg::Rs256, der.secret_pkcs8_der(), pem.to_string())
    }

    fn from_pkcs8(alg: Alg, der: &[u8], pem: String) -> anyhow::Result<Self> {
        let pair = match alg {
            Alg::Es256 => Pair::Ec(
                EcdsaKeyPair::from_pkcs8(
                    &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                    der,
                    &SystemRandom::new(),
                )
                .map_err(|e| anyhow!("ES256 key rejected: {e}"))?,
            ),
            Alg::Rs256 => Pair::Rsa(
                RsaKeyPair::from_pkcs8(der).map_err(|e| anyhow!("RS256 key rejected: {e}"))?,
            ),
        };
        Ok(SigningKey { pem, alg, pair })
    }

    pub(crate) fn public(&self) -> PublicKey {
        use ring::signature::KeyPair;
        let bytes = match &self.pair {
            Pair::Ec(pair) => pair.public_key().as_ref().to_vec(),
            Pair::Rsa(pair) => pair.public().as_ref().to_vec(),
        };
        PublicKey {
            alg: self.alg,
            bytes,
        }
    }

    /// Signs `claims` as a compact JWS.
    pub(crate) fn sign(&self, claims: &Value) -> String {
        let header = serde_json::json!({"alg": self.alg.name(), "typ": "JWT"});
        let input = format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(claims.to_string())
        );
        let rng = SystemRandom::new();
        let signature = match &self.pair {
            Pair::Ec(pair) => pair
                .sign(&rng, input.as_bytes())
                .expect("P-256 signing")
                .as_ref()
                .to_vec(),
            Pair::Rsa(pair) => {
                let mut sig = vec![0; pair.public().modulus_len()];
                pair.sign(
                    &signature::RSA_PKCS1_SHA256,
                    &rng,
                    input.as_bytes(),
                    &mut sig,
                )
                .expect("RSA signing");
                sig
            }
        };
        format!("{input}.{}", B64.encode(signature))
    }
}

/// A compact JWS split into its parts; nothing in it is trusted until `verify` passes.
pub(crate) struct Parsed {
    header: Map<String, Value>,
    pub claims: Map<String, Value>,
    signing_input: String,
    signature: Vec<u8>,
}

impl Parsed {
    pub(crate) fn parse(token: &str) -> Result<Parsed, String> {
        let parts: Vec<&str> = token.split('.').collect();
        let [header, claims, signature] = parts[..] else {
            return Err("not a compact JWS (three dot-separated parts)".into());
        };
        let json = |part: &str, what: &str| -> Result<Map<String, Value>, String> {
            let bytes = B64
                .decode(part)
                .map_err(|_| format!("{what} is not base64url"))?;
            serde_json::from_slice(&bytes).map_err(|_| format!("{what} is not a JSON object"))
        };
        Ok(Parsed {
            header: json(header, "header")?,
            claims: json(claims, "claims")?,
            signing_input: format!("{header}.{claims}"),
            signature: B64
                .decode(signature)
                .map_err(|_| "signature is not base64url")?,
        })
    }

    /// Checks the signature. The header's `alg` must be the key's: trusting the header
    /// instead is the classic `alg: none` / algorithm-confusion hole.
    pub(crate) fn verify(&self, key: &PublicKey) -> Result<(), String> {
        let alg = self.header.get("alg").and_then(Value::as_str).unwrap_or("");
        if alg != key.alg.name() {
            return Err(format!(
                "alg {alg:?} is not the registered key's {}",
                key.alg.name()
            ));
        }
        let algorithm: &'static dyn signature::VerificationAlgorithm = match key.alg {
            Alg::Rs256 => &signature::RSA_PKCS1_2048_8192_SHA256,
            Alg::Es256 => &signature::ECDSA_P256_SHA256_FIXED,
        };
        UnparsedPublicKey::new(algorithm, &key.bytes)
            .verify(self.signing_input.as_bytes(), &self.signature)
            .map_err(|_| "the signature does not verify".into())
    }

    pub(crate) fn claim(&self, name: &str) -> Option<&str> {
        self.claims.get(name).and_then(Value::as_str)
    }
}

/// What an assertion's claims must say (RFC 7523 §3).
pub(crate) struct Expect<'a> {
    pub issuer: &'a str,
    pub subject: Option<&'a str>,
    pub audiences: &'a [String],
    pub now: u64,
    /// Client assertions must carry `iat` and `jti` (the latter for replay detection).
    pub iat_and_jti: bool,
}

pub(crate) fn check_claims(c: &Map<String, Value>, e: &Expect) -> Result<(), String> {
    let text = |name: &str| c.get(name).and_then(Value::as_str);
    let number = |name: &str| c.get(name).and_then(Value::as_f64);
    if text("iss") != Some(e.issuer) {
        return Err(format!("iss must be {}", e.issuer));
    }
    if let Some(subject) = e.subject
        && text("sub") != Some(subject)
    {
        return Err(format!("sub must be {subject}"));
    }
    let audience_ok = |a: &Value| {
        a.as_str()
            .is_some_and(|a| e.audiences.iter().any(|x| x == a))
    };
    let aud_ok = match c.get("aud") {
        Some(Value::Array(list)) => list.iter().any(audience_ok),
        Some(one) => audience_ok(one),
        None => false,
    };
    if !aud_ok {
        return Err(format!(
            "aud must contain one of {}",
            e.audiences.join(", ")
        ));
    }
    match number("exp") {
        Some(exp) if exp > e.now as f64 => {}
        Some(_) => return Err("the assertion has expired (exp)".into()),
        None => return Err("exp is missing".into()),
    }
    if number("nbf").is_some_and(|nbf| nbf > e.now as f64) {
        return Err("the assertion is not valid yet (nbf)".into());
    }
    if e.iat_and_jti && (number("iat").is_none() || text("jti").is_none_or(str::is_empty)) {
        return Err("iat and jti are required".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn expect(audiences: &[String]) -> Expect<'_> {
        Expect {
            issuer: "c",
            subject: Some("c"),
            audiences,
            now: 1000,
            iat_and_jti: true,
        }
    }

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn es256_round_trip_and_tampering() {
        let key = SigningKey::generate_es256().unwrap();
        let token = key.sign(&json!({"iss": "c"}));
        Parsed::parse(&token)
            .unwrap()
            .verify(&key.public())
            .unwrap();

        let mut parts: Vec<&str> = token.split('.').collect();
        let forged = B64.encode(r#"{"iss":"mallory"}"#);
        parts[1] = &forged;
        let err = Parsed::parse(&parts.join("."))
            .unwrap()
            .verify(&key.public());
        assert_eq!(err.unwrap_err(), "the signature does not verify");

        let other = SigningKey::generate_es256().unwrap();
        assert!(
            Parsed::parse(&token)
                .unwrap()
                .verify(&other.public())
                .is_err()
        );
    }

    #[test]
    fn rs256_round_trip_and_algorithm_must_match_the_key() {
        let rsa = SigningKey::fixed_rs256().unwrap();
        let token = rsa.sign(&json!({"iss": "c"}));
        Parsed::parse(&token)
            .unwrap()
            .verify(&rsa.public())
            .unwrap();
        // An RS256 token checked against an ES256 registration is refused by name.
        let ec = SigningKey::generate_es256().unwrap();
        let err = Parsed::parse(&token)
            .unwrap()
            .verify(&ec.public())
            .unwrap_err();
        assert!(err.contains("alg \"RS256\""), "{err}");
    }

    #[test]
    fn malformed_tokens_are_refused() {
        assert!(Parsed::parse("a.b").is_err());
        assert!(Parsed::parse("a.b.c.d").is_err());
        assert!(Parsed::parse("!!.e30.").is_err());
    }

    #[test]
    fn claims_are_checked() {
        let aud = vec!["https://as/token".to_owned(), "https://as".to_owned()];
        let good = json!({"iss": "c", "sub": "c", "aud": ["x", "https://as"], "exp": 2000, "iat": 900, "jti": "1"});
        assert!(check_claims(&claims(good.clone()), &expect(&aud)).is_ok());
        let with = |k: &str, v: Value| {
            let mut c = claims(good.clone());
            c.insert(k.into(), v);
            check_claims(&c, &expect(&aud))
        };
        assert!(with("iss", json!("other")).is_err());
        assert!(with("sub", json!("other")).is_err());
        assert!(with("aud", json!("https://elsewhere")).is_err());
        assert!(with("aud", json!("https://as/token")).is_ok());
        assert!(with("exp", json!(999)).is_err());
        assert!(with("nbf", json!(1100)).is_err());
        assert!(with("jti", json!("")).is_err());
        let mut no_iat = claims(good);
        no_iat.remove("iat");
        assert!(check_claims(&no_iat, &expect(&aud)).is_err());
    }
}
