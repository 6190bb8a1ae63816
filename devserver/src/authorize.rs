//! The authorization-code grant with PKCE (RFC 6749 §4.1, RFC 7636): validating the
//! authorization request, issuing the code, and redeeming it at `/token`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use crate::state::{State, random_token, unix_now};
use crate::wire::{Form, OAuthError};

/// How long a code may wait to be redeemed.
const CODE_LIFETIME_SECS: u64 = 300;

/// An issued code and what it is bound to.
pub(crate) struct PendingCode {
    client_id: String,
    /// `None` when the request named none; the token request must then name none too.
    redirect_uri: Option<String>,
    challenge: String,
    scope: Option<String>,
    subject: String,
    expires_at: u64,
}

/// Validates an authorization request as the user's consent would, issues a code, and
/// returns the redirect URL carrying it and `issuer` as `iss` (RFC 9207). Every refusal
/// says what was wrong.
pub(crate) fn consent(
    st: &mut State,
    issuer: &str,
    query: &[(String, String)],
) -> Result<String, String> {
    let get = |name: &str| {
        query
            .iter()
            .find(|(n, v)| n == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    };
    let need =
        |name: &str| get(name).ok_or_else(|| format!("the authorization request has no {name}"));
    if need("response_type")? != "code" {
        return Err("response_type must be code".into());
    }
    let client_id = need("client_id")?;
    let client = st
        .client(client_id)
        .ok_or_else(|| format!("unknown client {client_id}"))?;
    let redirect_uri = match (get("redirect_uri"), client.redirect_uris.as_slice()) {
        (Some(uri), registered) if registered.iter().any(|r| r == uri) => uri,
        (Some(uri), _) => {
            return Err(format!(
                "redirect_uri {uri} is not registered for {client_id}"
            ));
        }
        // RFC 6749 §3.1.2.3: it may be left out when exactly one is registered.
        (None, [only]) => only.as_str(),
        (None, _) => return Err("redirect_uri is required".into()),
    };
    let challenge = need("code_challenge")?;
    if get("code_challenge_method") != Some("S256") {
        return Err("code_challenge_method must be S256".into());
    }
    if challenge.len() != 43 || URL_SAFE_NO_PAD.decode(challenge).is_err() {
        return Err("code_challenge must be BASE64URL(SHA256(verifier)): 43 characters".into());
    }
    let state = need("state")?;
    let mut url = url::Url::parse(redirect_uri).map_err(|e| format!("redirect_uri: {e}"))?;
    let code = random_token("code");
    url.query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", state)
        .append_pair("iss", issuer);
    let pending = PendingCode {
        client_id: client_id.to_owned(),
        redirect_uri: get("redirect_uri").map(Into::into),
        challenge: challenge.to_owned(),
        scope: get("scope").map(Into::into),
        subject: st.consenting_user(),
        expires_at: unix_now() + CODE_LIFETIME_SECS,
    };
    st.codes.insert(code, pending);
    Ok(url.into())
}

/// RFC 7636 §4.6: `BASE64URL(SHA256(ASCII(code_verifier))) == code_challenge`, with the
/// verifier's own form (§4.1: 43 to 128 unreserved characters) checked first.
pub(crate) fn pkce_matches(verifier: &str, challenge: &str) -> bool {
    let well_formed = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
    well_formed && URL_SAFE_NO_PAD.encode(Sha256::digest(verifier)) == challenge
}

/// Redeems a code for `client_id`, returning the subject and scope to issue for. The
/// code is spent whatever the outcome, so a leaked code cannot be tried twice.
pub(crate) fn redeem(
    st: &mut State,
    client_id: &str,
    form: &Form,
) -> Result<(String, Option<String>), OAuthError> {
    let code = form.require("code")?;
    let pending = st
        .codes
        .remove(code)
        .ok_or_else(|| OAuthError::invalid_grant("the code is unknown or was already used"))?;
    let refuse = |why: &str| Err(OAuthError::invalid_grant(why));
    if pending.expires_at <= unix_now() {
        return refuse("the code has expired");
    }
    if pending.client_id != client_id {
        return refuse("the code was issued to another client");
    }
    if pending.redirect_uri.as_deref() != form.get("redirect_uri") {
        return refuse("redirect_uri differs from the authorization request");
    }
    let verifier = form.require("code_verifier")?;
    if !pkce_matches(verifier, &pending.challenge) {
        return refuse("code_verifier does not match the code_challenge");
    }
    Ok((pending.subject, pending.scope))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_s256_matches_rfc_7636_appendix_b() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(pkce_matches(verifier, challenge));
        assert!(!pkce_matches(&verifier.replace('d', "e"), challenge));
        assert!(
            !pkce_matches(challenge, challenge),
            "the challenge is not its own verifier"
        );
        assert!(!pkce_matches("short", challenge));
    }

    #[test]
    fn authorization_requests_are_validated() {
        use crate::{Options, defaults};
        let shared = crate::state::Shared::new(String::new(), keys(), Options::default());
        let mut st = shared.lock();
        let q = |extra: &[(&str, &str)]| {
            let mut q: Vec<(String, String)> = [
                ("response_type", "code"),
                ("client_id", defaults::PUBLIC_CLIENT_ID),
                ("redirect_uri", defaults::REDIRECT_URI),
                (
                    "code_challenge",
                    "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
                ),
                ("code_challenge_method", "S256"),
                ("state", "xyz"),
            ]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
            for (k, v) in extra {
                q.retain(|(n, _)| n != k);
                q.push((k.to_string(), v.to_string()));
            }
            q
        };
        let url = consent(&mut st, "https://as.example", &q(&[])).unwrap();
        assert!(url.ends_with("&iss=https%3A%2F%2Fas.example"), "{url}");
        assert!(
            url.starts_with("https://gateway.example/callback?code=code_"),
            "{url}"
        );
        assert!(url.contains("&state=xyz&"), "{url}");
        for (k, v, why) in [
            ("response_type", "token", "response_type"),
            ("client_id", "nobody", "unknown client"),
            ("redirect_uri", "https://evil.example/", "not registered"),
            ("code_challenge_method", "plain", "S256"),
            ("code_challenge", "", "no code_challenge"),
            ("state", "", "no state"),
        ] {
            let err = consent(&mut st, "https://as.example", &q(&[(k, v)])).unwrap_err();
            assert!(err.contains(why), "{k}={v}: {err}");
        }
    }

    fn keys() -> crate::certs::Keys {
        crate::certs::Keys::generate().unwrap()
    }
}
