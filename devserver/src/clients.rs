//! Client registrations and client authentication (RFC 6749 §2.3, RFC 7523 §2.2,
//! RFC 8705 §2): what a request presented, and whether it proves the registered client.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::jwt::{self, Expect, Parsed};
use crate::state::{Shared, State, unix_now};
use crate::wire::{Form, OAuthError};

/// The `client_assertion_type` of RFC 7523 §2.2.
pub(crate) const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// A client the server knows.
#[derive(Clone, Debug)]
pub struct ClientRegistration {
    /// The client identifier.
    pub client_id: String,
    /// The one way this client must authenticate; any other is refused.
    pub auth: ClientAuth,
    /// Redirect URIs allowed in authorization requests (exact match).
    pub redirect_uris: Vec<String>,
}

/// How a registered client authenticates. The key material of the JWT and mTLS
/// variants is what the server generated at start (see the `DevServer` accessors).
#[derive(Clone, PartialEq, Eq)]
pub enum ClientAuth {
    /// `client_secret_basic` with this secret.
    SecretBasic(String),
    /// `client_secret_post` with this secret.
    SecretPost(String),
    /// `none`: a public client.
    None,
    /// `private_key_jwt` with the generated RS256 key (`client_rs256_key_pem`).
    PrivateKeyJwtRs256,
    /// `private_key_jwt` with the generated ES256 key (`client_es256_key_pem`).
    PrivateKeyJwtEs256,
    /// `tls_client_auth` with the generated client certificate (`mtls_client_cert_pem`).
    TlsClientAuth,
}

impl ClientAuth {
    /// The method's name as RFC 8414 metadata and `Recorded::client_auth` spell it.
    pub fn method(&self) -> &'static str {
        match self {
            ClientAuth::SecretBasic(_) => "client_secret_basic",
            ClientAuth::SecretPost(_) => "client_secret_post",
            ClientAuth::None => "none",
            ClientAuth::PrivateKeyJwtRs256 | ClientAuth::PrivateKeyJwtEs256 => "private_key_jwt",
            ClientAuth::TlsClientAuth => "tls_client_auth",
        }
    }
}

/// Only the method: a derived `Debug` would print the secret.
impl fmt::Debug for ClientAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.method())
    }
}

/// What a request presented to authenticate, before anything is checked.
pub(crate) struct Seen {
    pub method: &'static str,
    pub client_id: Option<String>,
    credential: Result<Credential, OAuthError>,
}

enum Credential {
    Secret(String),
    Assertion(String),
    Nothing,
}

/// Sorts out which method the request used. Never fails, so that even a garbled
/// request is recorded with the method it attempted; the problem surfaces in
/// `authenticate`. A bare `client_id` is `tls_client_auth` when `mtls_client(id)` says
/// a certificate came with it and the client is registered so, else `none`: a public
/// client whose TLS trust happens to carry a certificate stays public.
pub(crate) fn seen(
    authorization: Option<&str>,
    form: &Form,
    mtls_client: impl Fn(&str) -> bool,
) -> Seen {
    let body_id = form.get("client_id").map(str::to_owned);
    let assertion = form.get("client_assertion");
    let body_secret = form.get("client_secret");
    let used = [
        authorization.is_some(),
        assertion.is_some(),
        body_secret.is_some(),
    ];
    let mut seen = Seen {
        method: "none",
        client_id: body_id,
        credential: Ok(Credential::Nothing),
    };
    if used.iter().filter(|u| **u).count() > 1 {
        seen.credential = Err(OAuthError::invalid_request(
            "more than one client authentication method",
        ));
    } else if let Some(header) = authorization {
        seen.method = "client_secret_basic";
        seen.credential = match decode_basic(header) {
            Ok((id, _)) if seen.client_id.as_ref().is_some_and(|b| *b != id) => Err(
                OAuthError::invalid_request("client_id differs from the Basic credentials"),
            ),
            Ok((id, secret)) => {
                seen.client_id = Some(id);
                Ok(Credential::Secret(secret))
            }
            Err(why) => Err(OAuthError::invalid_client(why)),
        };
    } else if let Some(assertion) = assertion {
        seen.method = "private_key_jwt";
        if seen.client_id.is_none() {
            // client_id is optional here (RFC 7523 §3): the assertion's sub names the client.
            seen.client_id = Parsed::parse(assertion)
                .ok()
                .and_then(|p| p.claim("sub").map(Into::into));
        }
        seen.credential = match form.get("client_assertion_type") {
            Some(ASSERTION_TYPE) => Ok(Credential::Assertion(assertion.to_owned())),
            _ => Err(OAuthError::invalid_client(
                "client_assertion_type must be jwt-bearer",
            )),
        };
    } else if let Some(secret) = body_secret {
        seen.method = "client_secret_post";
        seen.credential = Ok(Credential::Secret(secret.to_owned()));
    } else if seen.client_id.as_deref().is_some_and(mtls_client) {
        seen.method = "tls_client_auth";
    }
    seen
}

/// Decodes `Authorization: Basic` per RFC 6749 §2.3.1: base64 of
/// `urlencode(id) ":" urlencode(secret)`.
pub(crate) fn decode_basic(header: &str) -> Result<(String, String), String> {
    let (scheme, encoded) = header.split_once(' ').ok_or("Authorization is not Basic")?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err("Authorization is not Basic".into());
    }
    let raw = STANDARD
        .decode(encoded.trim())
        .map_err(|_| "Basic credentials are not base64")?;
    let text = String::from_utf8(raw).map_err(|_| "Basic credentials are not UTF-8")?;
    let (id, secret) = text
        .split_once(':')
        .ok_or("Basic credentials have no ':'")?;
    Ok((
        form_decode_strict(id, "client id")?,
        form_decode_strict(secret, "client secret")?,
    ))
}

/// Form-url-decodes one half of the Basic credentials, refusing what an encoder never
/// emits (a raw ':' or space, a '%' without two hex digits). Guessing would accept a
/// client that skipped the encoding, which is exactly the bug this server must expose.
/// The message never quotes the input: it is a secret.
fn form_decode_strict(s: &str, what: &str) -> Result<String, String> {
    let bad =
        || format!("the {what} in Basic credentials is not form-urlencoded (RFC 6749 §2.3.1)");
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if bytes
                .get(i + 1..i + 3)
                .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) =>
            {
                i += 3
            }
            b if b.is_ascii_alphanumeric() || b"-._~!*'()+".contains(&b) => i += 1,
            _ => return Err(bad()),
        }
    }
    percent_encoding::percent_decode(s.replace('+', " ").as_bytes())
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| bad())
}

/// Authenticates the client the request names, returning its id. Every failure is a
/// 401 `invalid_client`, as RFC 6749 §5.2 asks, except malformed requests.
pub(crate) fn authenticate(
    shared: &Shared,
    st: &mut State,
    seen: &Seen,
    peer_cert_sha256: Option<[u8; 32]>,
) -> Result<String, OAuthError> {
    let credential = seen.credential.as_ref().map_err(Clone::clone)?;
    let id = seen
        .client_id
        .as_deref()
        .ok_or_else(|| OAuthError::invalid_client("no client_id"))?;
    let auth = st
        .client(id)
        .ok_or_else(|| OAuthError::invalid_client("unknown client"))?
        .auth
        .clone();
    if auth.method() != seen.method {
        let registered = auth.method();
        return Err(OAuthError::invalid_client(format!(
            "client {id} is registered for {registered}, the request used {}",
            seen.method
        )));
    }
    match (&auth, credential) {
        (ClientAuth::SecretBasic(want) | ClientAuth::SecretPost(want), Credential::Secret(got))
            if want == got => {}
        (ClientAuth::SecretBasic(_) | ClientAuth::SecretPost(_), _) => {
            return Err(OAuthError::invalid_client("wrong client secret"));
        }
        (ClientAuth::TlsClientAuth, _)
            if peer_cert_sha256 != Some(shared.keys.mtls_cert_sha256) =>
        {
            return Err(OAuthError::invalid_client(
                "the TLS client certificate is not the registered one",
            ));
        }
        (
            ClientAuth::PrivateKeyJwtRs256 | ClientAuth::PrivateKeyJwtEs256,
            Credential::Assertion(a),
        ) => {
            let key = match auth {
                ClientAuth::PrivateKeyJwtRs256 => crate::certs::rsa_client_key().public(),
                _ => shared.keys.client_es256.public(),
            };
            let bad = |why: String| OAuthError::invalid_client(format!("client assertion: {why}"));
            let parsed = Parsed::parse(a).map_err(bad)?;
            parsed.verify(&key).map_err(bad)?;
            let expect = Expect {
                issuer: id,
                subject: Some(id),
                audiences: &shared.audiences(),
                now: unix_now(),
                iat_and_jti: true,
            };
            jwt::check_claims(&parsed.claims, &expect).map_err(bad)?;
            let jti = parsed.claim("jti").unwrap_or_default().to_owned();
            if !st.seen_jtis.insert(jti) {
                return Err(bad("jti was used before (replay)".into()));
            }
        }
        _ => {}
    }
    Ok(id.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(raw: &str) -> String {
        format!("Basic {}", STANDARD.encode(raw))
    }

    #[test]
    fn basic_halves_are_form_decoded() {
        let got = decode_basic(&basic("my+client:s3c%3Ar%25t+pa%20ss")).unwrap();
        assert_eq!(got, ("my client".to_owned(), "s3c:r%t pa ss".to_owned()));
        assert!(decode_basic(&format!("basic {}", STANDARD.encode("a:b"))).is_ok());
    }

    #[test]
    fn unencoded_basic_credentials_are_refused() {
        for raw in [
            "id:s3c:r%t pa ss",
            "id:with space",
            "id:bad%zz",
            "id:trailing%4",
            "id:%",
        ] {
            let err = decode_basic(&basic(raw)).unwrap_err();
            assert!(err.contains("not form-urlencoded"), "{raw}: {err}");
            assert!(
                !err.contains("pa ss"),
                "the message must not quote the secret"
            );
        }
        assert!(decode_basic("Bearer abc").is_err());
        assert!(decode_basic("Basic !!!").is_err());
        assert!(decode_basic(&basic("no-colon")).is_err());
    }

    #[test]
    fn the_method_used_is_recognised() {
        let form = |s: &str| Form::parse(s.as_bytes()).unwrap();
        let no = |_: &str| false;
        let s = seen(None, &form("client_id=a&client_secret=b"), no);
        assert_eq!(
            (s.method, s.client_id.as_deref()),
            ("client_secret_post", Some("a"))
        );
        assert_eq!(seen(None, &form("client_id=a"), no).method, "none");
        assert_eq!(
            seen(None, &form("client_id=a"), |id| id == "a").method,
            "tls_client_auth"
        );
        let both = seen(Some(&basic("a:b")), &form("client_secret=b"), no);
        assert!(both.credential.is_err());
        let mismatch = seen(Some(&basic("a:b")), &form("client_id=c"), no);
        assert!(mismatch.credential.is_err());
        let jwt = seen(None, &form("client_assertion=x.y.z"), no);
        assert_eq!(jwt.method, "private_key_jwt");
        assert!(jwt.credential.is_err(), "client_assertion_type is required");
    }
}
