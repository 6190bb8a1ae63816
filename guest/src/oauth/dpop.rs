//! DPoP (RFC 9449): a session's proof-of-possession key, the proofs made with it, and
//! whether a server's answer asks for a retry with its nonce.
//!
//! A session's own key is ES256 (P-256), made with ring's randomness (`SystemRandom`,
//! which reads `wasi:random` in the component: ring's `SecureRandom` is sealed, see
//! `jwt`) and kept as PKCS#8 with the session; a client may instead fix one key, ES256
//! or RS256. What the caller controls is everything else: the key's bytes (so a stored
//! key gives the same public key and thumbprint), `iat` and `jti`.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use sha2::{Digest, Sha256};

use super::challenge::{self, ErrorCode, TokenScheme};
use super::classify;
use super::jwt::{self, Signer};
use crate::http::Response;
use gateway_auth_api::{AccessToken, OAuthError, SigningKey};

/// The signing algorithm of a session's own key (RFC 7518 §3.4).
pub const ALGORITHM: &str = "ES256";

/// The JWS `typ` of a proof (RFC 9449 §4.2).
pub const PROOF_TYPE: &str = "dpop+jwt";

/// A DPoP key: a session's own ECDSA P-256 key pair, or the client's fixed key.
///
/// `Debug` shows the algorithm and the thumbprint, never private material.
pub struct DpopKey {
    pkcs8: Vec<u8>,
    signer: Signer,
}

impl core::fmt::Debug for DpopKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("DpopKey")
            .field("alg", &self.algorithm())
            .field("jkt", &self.thumbprint())
            .finish()
    }
}

impl DpopKey {
    /// A new P-256 key from `rng` (in practice ring's `SystemRandom`).
    pub fn generate(rng: &dyn SecureRandom) -> Result<Self, OAuthError> {
        let document = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, rng)
            .map_err(|_| OAuthError::Config("generating the DPoP key failed".into()))?;
        Self::from_pkcs8(document.as_ref())
    }

    /// The P-256 key stored as [`DpopKey::pkcs8`] earlier. The error names the problem,
    /// never the bytes (ring's rejections are fixed texts).
    pub fn from_pkcs8(der: &[u8]) -> Result<Self, OAuthError> {
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der, &SystemRandom::new())
                .map_err(|e| {
                OAuthError::Config(format!(
                    "the DPoP key is not a PKCS#8 P-256 key with its public key: {e}"
                ))
            })?;
        Ok(Self {
            pkcs8: der.to_vec(),
            signer: Signer::Ecdsa(pair),
        })
    }

    /// A client's fixed key, ES256 or RS256 as it says.
    pub fn from_signing_key(key: &SigningKey) -> Result<Self, OAuthError> {
        Ok(Self {
            pkcs8: Vec::new(),
            signer: jwt::signer(key)?,
        })
    }

    /// The key as PKCS#8 DER: the private key itself, so read it only to store it.
    /// Empty for a client's fixed key, which is never stored.
    pub fn pkcs8(&self) -> &[u8] {
        &self.pkcs8
    }

    /// The JWS `alg` of its proofs.
    pub fn algorithm(&self) -> &'static str {
        match self.signer {
            Signer::Ecdsa(_) => ALGORITHM,
            Signer::Rsa(_) => "RS256",
        }
    }

    /// The public key's JWK members (RFC 7518 §6.2.1, §6.3.1), base64url: for P-256
    /// ring gives the uncompressed point, `0x04 || x || y` (SEC 1 §2.3.3), 32 bytes
    /// each.
    fn members(&self) -> Vec<(&'static str, String)> {
        match &self.signer {
            Signer::Ecdsa(pair) => {
                let point = pair.public_key().as_ref();
                vec![
                    ("kty", "EC".into()),
                    ("crv", "P-256".into()),
                    ("x", URL_SAFE_NO_PAD.encode(&point[1..33])),
                    ("y", URL_SAFE_NO_PAD.encode(&point[33..65])),
                ]
            }
            Signer::Rsa(pair) => {
                // Big-endian, without leading zeros, as JWK wants (RFC 7518 §6.3.1).
                let public: ring::rsa::PublicKeyComponents<Vec<u8>> = pair.public().into();
                vec![
                    ("kty", "RSA".into()),
                    ("n", URL_SAFE_NO_PAD.encode(public.n)),
                    ("e", URL_SAFE_NO_PAD.encode(public.e)),
                ]
            }
        }
    }

    /// The public key as a JWK, as proofs carry it.
    pub fn public_jwk(&self) -> serde_json::Value {
        self.members()
            .into_iter()
            .map(|(name, value)| (name.to_string(), serde_json::Value::from(value)))
            .collect::<serde_json::Map<_, _>>()
            .into()
    }

    /// The JWK thumbprint (RFC 7638) of the public key: the `jkt` an authorization
    /// server binds tokens to (RFC 9449 §6.1).
    pub fn thumbprint(&self) -> String {
        let members = self.members();
        let borrowed: Vec<(&str, &str)> = members.iter().map(|(n, v)| (*n, v.as_str())).collect();
        jwk_thumbprint(&borrowed)
    }
}

/// RFC 7638 §3: base64url of the SHA-256 of the required members as JSON, in
/// lexicographic order of their names, without whitespace.
fn jwk_thumbprint(members: &[(&str, &str)]) -> String {
    let mut members = members.to_vec();
    members.sort_by_key(|(name, _)| *name);
    let body: Vec<String> = members
        .iter()
        .map(|(name, value)| format!("{}:{}", json_string(name), json_string(value)))
        .collect();
    let json = format!("{{{}}}", body.join(","));
    URL_SAFE_NO_PAD.encode(Sha256::digest(json.as_bytes()))
}

fn json_string(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

/// A DPoP proof (RFC 9449 §4.2) for a `method` request to `url`: a compact JWS with
/// header `typ`, `alg` and the public `jwk`, and claims `jti`, `htm`, `htu` (the URL
/// without query and fragment), `iat`, plus `nonce` when the server gave one and `ath`
/// (the access token's SHA-256) when the request carries an access token, as requests
/// to a resource do (§7.1).
///
/// Resource URLs may be plain `http` (a gateway's upstream on a private network); the
/// proof is no secret, being bound to the request and short-lived.
pub fn proof(
    key: &DpopKey,
    method: &str,
    url: &str,
    nonce: Option<&str>,
    access_token: Option<&AccessToken>,
    iat_secs: u64,
    jti: &str,
) -> Result<String, OAuthError> {
    if method.is_empty() || !method.bytes().all(is_tchar) {
        return Err(OAuthError::Config(format!(
            "DPoP proof: {method:?} is no HTTP method"
        )));
    }
    if jti.is_empty() {
        return Err(OAuthError::Config("DPoP proof: the jti is empty".into()));
    }
    let mut claims = serde_json::json!({
        "jti": jti,
        "htm": method,
        "htu": htu(url)?,
        "iat": iat_secs,
    });
    if let Some(nonce) = nonce {
        if !is_nonce(nonce) {
            return Err(OAuthError::Config(
                "DPoP proof: the nonce is not 1*NQCHAR (RFC 9449 §8.1)".into(),
            ));
        }
        claims["nonce"] = nonce.into();
    }
    if let Some(token) = access_token {
        claims["ath"] = URL_SAFE_NO_PAD
            .encode(Sha256::digest(token.secret().as_bytes()))
            .into();
    }
    let header = serde_json::json!({
        "typ": PROOF_TYPE,
        "alg": key.algorithm(),
        "jwk": key.public_jwk(),
    });
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = key
        .signer
        .sign(signing_input.as_bytes())
        .map_err(|_| OAuthError::Config("signing the DPoP proof failed".into()))?;
    Ok(format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(&signature)
    ))
}

/// The `htu` of a request to `url`: the URL without query and fragment (RFC 9449
/// §4.2), normalized as servers compare it (§4.3: lowercase scheme and host, no
/// default port).
fn htu(url: &str) -> Result<String, OAuthError> {
    // Neither the URL nor its parts go into errors: a query may carry anything.
    let mut parsed =
        url::Url::parse(url).map_err(|e| OAuthError::Config(format!("DPoP proof url: {e}")))?;
    if !matches!(parsed.scheme(), "https" | "http") || parsed.host().is_none() {
        return Err(OAuthError::Config(
            "DPoP proof url: must be an absolute http or https URL".into(),
        ));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(OAuthError::Config(
            "DPoP proof url: credentials in a URL are not allowed".into(),
        ));
    }
    parsed.set_query(None);
    parsed.set_fragment(None);
    Ok(parsed.into())
}

/// If `response` asks for the request again with a server-supplied nonce, that nonce:
/// a 400 whose error body says `use_dpop_nonce` (an authorization server, RFC 9449
/// §8), or a 401 whose `DPoP` challenge does (a resource server, §9); the nonce is the
/// `DPoP-Nonce` header. `None` for any other answer, and for one that asks without a
/// (valid) nonce, since a retry could only fail the same way: it stands as answered.
pub fn nonce_challenge(response: &Response) -> Option<String> {
    let asks = match response.status {
        // `now` only dates a Retry-After, which does not matter here.
        400 => classify::reject(response, 0)
            .as_ref()
            .and_then(OAuthError::protocol_code)
            .is_some_and(|code| ErrorCode::parse(code) == ErrorCode::UseDpopNonce),
        401 => {
            let values: Vec<&str> = response
                .headers
                .iter()
                .filter(|(name, _)| name.eq_ignore_ascii_case("www-authenticate"))
                .map(|(_, value)| value.as_str())
                .collect();
            challenge::parse(&values).is_ok_and(|challenges| {
                challenges.iter().any(|c| {
                    c.is(TokenScheme::Dpop.name())
                        && c.param("error").map(ErrorCode::parse) == Some(ErrorCode::UseDpopNonce)
                })
            })
        }
        _ => false,
    };
    if !asks {
        return None;
    }
    let nonce = response.header("dpop-nonce")?.trim();
    is_nonce(nonce).then(|| nonce.to_string())
}

/// RFC 9449 §8.1: `nonce = 1*NQCHAR` (visible ASCII but `"` and `\`).
fn is_nonce(nonce: &str) -> bool {
    !nonce.is_empty()
        && nonce
            .bytes()
            .all(|b| (b'!'..=b'~').contains(&b) && b != b'"' && b != b'\\')
}

/// RFC 9110 §5.6.2: methods are tokens.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::jwt::tests::RS256_PEM;
    use base64::engine::general_purpose::STANDARD;
    use ring::signature::{ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};
    use rustls_pki_types::PrivatePkcs8KeyDer;
    use rustls_pki_types::pem::PemObject;
    use serde_json::{Value, json};

    /// The P-256 key of RFC 7515 appendix A.3 as PKCS#8 DER (ring's layout: no
    /// parameters in the inner ECPrivateKey, the public key included).
    const RFC7515_A3_PKCS8: &str = "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgjpsQnnGQmL+YBIffH1136cspYG6+0iY7X1fCE9+E9LKhRANCAAR/zc4ncPbEXUGDy+5v20t7WAczNXvp7xO6z248e9FURcfxRM0bvZt+hyzf7bnuufSzaV1uqQskrYpGIyiFiOWt";
    const RFC7515_A3_X: &str = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU";
    const RFC7515_A3_Y: &str = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0";
    const RFC7515_A3_D: &str = "jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI";

    fn key() -> DpopKey {
        DpopKey::from_pkcs8(&STANDARD.decode(RFC7515_A3_PKCS8).unwrap()).unwrap()
    }

    /// Header, claims, and whether the signature verifies with the header's own key.
    fn open(proof: &str) -> (Value, Value, bool) {
        let (input, signature) = proof.rsplit_once('.').unwrap();
        let (header, claims) = input.split_once('.').unwrap();
        let decode = |s: &str| URL_SAFE_NO_PAD.decode(s).unwrap();
        let header: Value = serde_json::from_slice(&decode(header)).unwrap();
        let claims: Value = serde_json::from_slice(&decode(claims)).unwrap();
        let coordinate = |name: &str| decode(header["jwk"][name].as_str().unwrap());
        let mut point = vec![0x04];
        point.extend(coordinate("x"));
        point.extend(coordinate("y"));
        let verified = UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &point)
            .verify(input.as_bytes(), &decode(signature))
            .is_ok();
        (header, claims, verified)
    }

    #[test]
    fn a_proof_verifies_with_the_key_in_its_header() {
        let proof = proof(
            &key(),
            "POST",
            "https://as.example/token",
            None,
            None,
            1,
            "j",
        )
        .unwrap();
        let (header, _, verified) = open(&proof);
        assert!(verified);
        assert_eq!(
            header,
            json!({"typ": "dpop+jwt", "alg": "ES256",
                "jwk": {"kty": "EC", "crv": "P-256", "x": RFC7515_A3_X, "y": RFC7515_A3_Y}})
        );
        // A proof altered after signing does not verify.
        let (input, signature) = proof.rsplit_once('.').unwrap();
        let other = URL_SAFE_NO_PAD.encode(r#"{"jti":"j","htm":"GET"}"#);
        let (header_part, _) = input.split_once('.').unwrap();
        let (_, _, verified) = open(&format!("{header_part}.{other}.{signature}"));
        assert!(!verified);
    }

    #[test]
    fn a_proof_carries_exactly_its_claims() {
        let proof = proof(
            &key(),
            "POST",
            "https://as.example/token",
            None,
            None,
            1_700_000_000,
            "jti-1",
        )
        .unwrap();
        let (_, claims, _) = open(&proof);
        assert_eq!(
            claims,
            json!({"jti": "jti-1", "htm": "POST", "htu": "https://as.example/token",
                "iat": 1_700_000_000})
        );
    }

    #[test]
    fn nonce_and_access_token_hash_are_claimed_when_given() {
        // The access token and its hash of RFC 9449 §7.1, and its example nonce.
        let token = AccessToken::new("Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU");
        let proof = proof(
            &key(),
            "GET",
            "https://resource.example.org/protectedresource",
            Some("eyJ7S_zG.eyJH0-Z.HX4w-7v"),
            Some(&token),
            1_562_262_618,
            "e1j3V_bKic8-LAEB",
        )
        .unwrap();
        let (_, claims, verified) = open(&proof);
        assert!(verified);
        assert_eq!(claims["nonce"], "eyJ7S_zG.eyJH0-Z.HX4w-7v");
        assert_eq!(claims["ath"], "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo");
        assert_eq!(claims["htm"], "GET");
        assert!(!proof.contains(token.secret()));
    }

    #[test]
    fn htu_is_the_url_without_query_and_fragment() {
        let htu_of = |url: &str| {
            let proof = proof(&key(), "GET", url, None, None, 1, "j").unwrap();
            open(&proof).1["htu"].as_str().unwrap().to_string()
        };
        assert_eq!(
            htu_of("https://rs.example/api/items?id=7&token=x#top"),
            "https://rs.example/api/items"
        );
        assert_eq!(htu_of("https://rs.example/a?"), "https://rs.example/a");
        // Normalized as servers compare it: case of scheme and host, default port.
        assert_eq!(
            htu_of("HTTPS://RS.Example:443/A/b"),
            "https://rs.example/A/b"
        );
        assert_eq!(
            htu_of("https://rs.example:8443"),
            "https://rs.example:8443/"
        );
        assert_eq!(
            htu_of("http://10.0.0.7:8080/mcp"),
            "http://10.0.0.7:8080/mcp"
        );
    }

    #[test]
    fn bad_proof_inputs_are_configuration_errors_without_the_url() {
        let k = key();
        let fails = |method: &str, url: &str, nonce: Option<&str>, jti: &str| match proof(
            &k, method, url, nonce, None, 1, jti,
        ) {
            Err(OAuthError::Config(m)) => assert!(!m.contains("secret"), "{m}"),
            other => panic!("{method} {url}: {other:?}"),
        };
        fails("", "https://rs.example/", None, "j");
        fails("GET POST", "https://rs.example/", None, "j");
        fails("GET", "ftp://rs.example/?secret", None, "j");
        fails("GET", "/relative?secret", None, "j");
        fails("GET", "https://user:secret@rs.example/", None, "j");
        fails("GET", "https://rs.example/", Some("has space"), "j");
        fails("GET", "https://rs.example/", Some("q\"uote"), "j");
        fails("GET", "https://rs.example/", Some(""), "j");
        fails("GET", "https://rs.example/", None, "");
    }

    #[test]
    fn thumbprints_match_the_published_examples() {
        // RFC 7638 §3.1 (RSA), members given out of order.
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        assert_eq!(
            jwk_thumbprint(&[("n", n), ("kty", "RSA"), ("e", "AQAB")]),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
        // RFC 9449 §6.1: the EC key of its examples and the jkt bound to it (members
        // hashed as crv, kty, x, y).
        assert_eq!(
            jwk_thumbprint(&[
                ("kty", "EC"),
                ("x", "l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs"),
                ("y", "9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA"),
                ("crv", "P-256"),
            ]),
            "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"
        );
        // A key's own thumbprint, over its public JWK (computed apart, with Python's
        // hashlib over the canonical JSON).
        assert_eq!(
            key().thumbprint(),
            "oKIywvGUpTVTyxMQ3bwIIeQUudfr_CkLMjCE19ECD-U"
        );
    }

    #[test]
    fn a_key_survives_storage_and_never_shows_its_private_part() {
        let fresh = DpopKey::generate(&SystemRandom::new()).unwrap();
        let stored = fresh.pkcs8().to_vec();
        let again = DpopKey::from_pkcs8(&stored).unwrap();
        assert_eq!(again.thumbprint(), fresh.thumbprint());
        assert_eq!(again.public_jwk(), fresh.public_jwk());
        assert_ne!(fresh.thumbprint(), key().thumbprint());
        let shown = format!("{:?}", key());
        assert_eq!(
            shown,
            r#"DpopKey { alg: "ES256", jkt: "oKIywvGUpTVTyxMQ3bwIIeQUudfr_CkLMjCE19ECD-U" }"#
        );
        assert!(!shown.contains(RFC7515_A3_D) && !shown.contains("MIGH"));
        let err = DpopKey::from_pkcs8(b"\x30\x03\x02\x01\x00").unwrap_err();
        assert!(matches!(err, OAuthError::Config(m) if m.contains("PKCS#8")));
        // An RSA key is no DPoP key.
        let rsa = PrivatePkcs8KeyDer::from_pem_slice(RS256_PEM.as_bytes()).unwrap();
        assert!(DpopKey::from_pkcs8(rsa.secret_pkcs8_der()).is_err());
    }

    fn response(status: u16, headers: &[(&str, &str)], body: &str) -> Response {
        Response {
            status,
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            body: body.as_bytes().to_vec(),
        }
    }

    const JSON: (&str, &str) = ("content-type", "application/json");
    const NONCE: (&str, &str) = ("dpop-nonce", "eyJ7S_zG.eyJH0-Z.HX4w-7v");

    #[test]
    fn an_authorization_server_asks_for_a_nonce_with_a_400() {
        let asks = response(
            400,
            &[JSON, NONCE],
            r#"{"error":"use_dpop_nonce","error_description":"Authorization server requires nonce in DPoP proof"}"#,
        );
        assert_eq!(nonce_challenge(&asks).as_deref(), Some(NONCE.1));
        // The header name is case-insensitive.
        let mut upper = asks.clone();
        upper.headers[1].0 = "DPoP-Nonce".into();
        assert_eq!(nonce_challenge(&upper).as_deref(), Some(NONCE.1));
        // Another error, no nonce to retry with, a bad nonce, another status: no retry.
        let other = response(400, &[JSON, NONCE], r#"{"error":"invalid_dpop_proof"}"#);
        assert_eq!(nonce_challenge(&other), None);
        let without = response(400, &[JSON], r#"{"error":"use_dpop_nonce"}"#);
        assert_eq!(nonce_challenge(&without), None);
        let bad = response(
            400,
            &[JSON, ("dpop-nonce", "a\"b")],
            r#"{"error":"use_dpop_nonce"}"#,
        );
        assert_eq!(nonce_challenge(&bad), None);
        let fine = response(200, &[JSON, NONCE], r#"{"access_token":"t"}"#);
        assert_eq!(nonce_challenge(&fine), None);
        let html = response(400, &[NONCE], "<html>use_dpop_nonce</html>");
        assert_eq!(nonce_challenge(&html), None);
    }

    #[test]
    fn a_resource_server_asks_for_a_nonce_with_a_401_dpop_challenge() {
        let challenge = (
            "www-authenticate",
            r#"DPoP error="use_dpop_nonce", error_description="Resource server requires nonce in DPoP proof""#,
        );
        let asks = response(401, &[challenge, NONCE], "");
        assert_eq!(nonce_challenge(&asks).as_deref(), Some(NONCE.1));
        // Among other challenges, on another field line.
        let both = response(
            401,
            &[
                ("www-authenticate", r#"Bearer realm="api""#),
                (
                    "WWW-Authenticate",
                    r#"dpop algs="ES256", error="use_dpop_nonce""#,
                ),
                NONCE,
            ],
            "",
        );
        assert_eq!(nonce_challenge(&both).as_deref(), Some(NONCE.1));
        // Only a DPoP challenge asks; other errors and malformed fields do not.
        for value in [
            r#"Bearer error="use_dpop_nonce""#,
            r#"DPoP error="invalid_token""#,
            r#"DPoP error="use_dpop_nonce"#,
        ] {
            let r = response(401, &[("www-authenticate", value), NONCE], "");
            assert_eq!(nonce_challenge(&r), None, "{value}");
        }
        assert_eq!(nonce_challenge(&response(401, &[challenge], "")), None);
        assert_eq!(
            nonce_challenge(&response(403, &[challenge, NONCE], "")),
            None
        );
    }
}
