//! The `/token` endpoint's grants: who may use which, and what each checks before a
//! token is minted.

use std::time::Instant;

use serde_json::json;

use crate::clients::{self, Seen};
use crate::jwt::{self, Expect, Parsed};
use crate::state::{Refresh, Shared, State, unix_now};
use crate::wire::{Form, OAuthError, TokenResponse};
use crate::{authorize, defaults, device};

pub(crate) const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
pub(crate) const DEVICE_CODE: &str = "urn:ietf:params:oauth:grant-type:device_code";
pub(crate) const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
const REFRESH_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:refresh_token";

/// Every grant this server implements, for the metadata.
pub(crate) const GRANT_TYPES: [&str; 7] = [
    "client_credentials",
    "password",
    "authorization_code",
    "refresh_token",
    TOKEN_EXCHANGE,
    DEVICE_CODE,
    JWT_BEARER,
];

/// Handles one token request after the client's credentials were sorted out.
pub(crate) fn token(
    shared: &Shared,
    seen: &Seen,
    peer_cert_sha256: Option<[u8; 32]>,
    form: &Form,
) -> Result<TokenResponse, OAuthError> {
    let grant_type = form.require("grant_type")?;
    let mut st = shared.lock();
    let client_id = clients::authenticate(shared, &mut st, seen, peer_cert_sha256)?;
    // A public client proves nothing by itself, so it gets only the grants where a
    // person or a signed assertion vouches for the request.
    let public_ok = [
        "authorization_code",
        "refresh_token",
        DEVICE_CODE,
        JWT_BEARER,
    ];
    if st.is_public(&client_id) && !public_ok.contains(&grant_type) {
        return Err(OAuthError::unauthorized_client(format!(
            "a public client may not use the {grant_type} grant"
        )));
    }
    let requested = form.get("scope").map(str::to_owned);
    let (subject, scope, refresh) = match grant_type {
        "client_credentials" => (client_id.clone(), requested, Refresh::None),
        "password" => {
            let (user, password) = (form.require("username")?, form.require("password")?);
            if !st.users.iter().any(|(u, p)| u == user && p == password) {
                return Err(OAuthError::invalid_grant("wrong username or password"));
            }
            (user.to_owned(), requested, Refresh::New)
        }
        "authorization_code" => {
            let (subject, scope) = authorize::redeem(&mut st, &client_id, form)?;
            (subject, scope, Refresh::New)
        }
        "refresh_token" => refresh(&mut st, &client_id, form)?,
        TOKEN_EXCHANGE => exchange(&st, form)?,
        DEVICE_CODE => {
            let code = form.require("device_code")?;
            let (subject, scope) = device::redeem(&mut st, &client_id, code, Instant::now())?;
            (subject, scope, Refresh::New)
        }
        JWT_BEARER => (
            bearer_assertion(shared, &mut st, form.require("assertion")?)?,
            requested,
            Refresh::None,
        ),
        other => {
            return Err(OAuthError::new(
                400,
                "unsupported_grant_type",
                format!("unknown grant {other}"),
            ));
        }
    };
    let mut response = st.issue(&client_id, &subject, scope.as_deref(), refresh);
    if grant_type == TOKEN_EXCHANGE {
        response.issued_token_type = Some(ACCESS_TOKEN_TYPE);
    }
    if scope.is_some_and(|s| s.split(' ').any(|s| s == "openid")) && subject != client_id {
        let now = unix_now();
        let claims = json!({"iss": shared.issuer, "sub": subject, "aud": client_id,
            "iat": now, "exp": now + st.token_lifetime});
        response.id_token = Some(shared.keys.id_token.sign(&claims));
    }
    Ok(response)
}

/// RFC 6749 §6, with rotation as configured: a rotated-away token is refused from then on.
fn refresh(
    st: &mut State,
    client_id: &str,
    form: &Form,
) -> Result<(String, Option<String>, Refresh), OAuthError> {
    let old = form.require("refresh_token")?;
    *st.refresh_presented.entry(old.to_owned()).or_default() += 1;
    let reused = st
        .tokens
        .get(old)
        .filter(|t| t.refresh && t.rotated && t.client_id == client_id)
        .and_then(|t| t.lineage.clone());
    if let Some(lineage) = reused.filter(|_| st.reuse_detection) {
        st.reuse_detections += 1;
        st.revoke_lineage(&lineage);
        return Err(OAuthError::invalid_grant(
            "the refresh token was used before: every token of its lineage is revoked (reuse detection)",
        ));
    }
    let record = st
        .live(old, true)
        .filter(|r| r.client_id == client_id)
        .ok_or_else(|| {
            OAuthError::invalid_grant(
                "the refresh token is unknown, revoked, already used, or another client's",
            )
        })?;
    let scope = match form.get("scope") {
        Some(asked) if !within(asked, record.scope.as_deref()) => {
            return Err(OAuthError::new(
                400,
                "invalid_scope",
                "more scope than originally granted",
            ));
        }
        Some(asked) => Some(asked.to_owned()),
        None => record.scope.clone(),
    };
    let subject = record.subject.clone();
    let lineage = record.lineage.clone().unwrap_or_else(|| old.to_owned());
    *st.refreshes.entry(lineage.clone()).or_default() += 1;
    if st.rotate_refresh_tokens {
        st.tokens.get_mut(old).expect("found above").rotated = true;
        Ok((subject, scope, Refresh::Rotated(lineage)))
    } else {
        Ok((subject, scope, Refresh::Keep(old.to_owned())))
    }
}

/// Whether every scope in `asked` was in `granted`.
fn within(asked: &str, granted: Option<&str>) -> bool {
    let granted: Vec<&str> = granted.unwrap_or_default().split(' ').collect();
    asked.split(' ').all(|s| granted.contains(&s))
}

/// RFC 8693: the subject token must be a live token of this server.
fn exchange(st: &State, form: &Form) -> Result<(String, Option<String>, Refresh), OAuthError> {
    let subject_token = form.require("subject_token")?;
    let refresh = match form.require("subject_token_type")? {
        ACCESS_TOKEN_TYPE => false,
        REFRESH_TOKEN_TYPE => true,
        other => {
            return Err(OAuthError::invalid_request(format!(
                "unsupported subject_token_type {other}"
            )));
        }
    };
    if form.get("actor_token").is_some() && form.get("actor_token_type").is_none() {
        return Err(OAuthError::invalid_request(
            "actor_token_type is required with actor_token",
        ));
    }
    if form
        .get("requested_token_type")
        .is_some_and(|t| t != ACCESS_TOKEN_TYPE)
    {
        return Err(OAuthError::invalid_request("only access tokens are issued"));
    }
    let record = st.live(subject_token, refresh).ok_or_else(|| {
        OAuthError::invalid_grant("subject_token is not a live token of this server")
    })?;
    let scope = form
        .get("scope")
        .map(Into::into)
        .or_else(|| record.scope.clone());
    Ok((record.subject.clone(), scope, Refresh::None))
}

/// RFC 7523 §2.1 and §3: signed by the jwt-bearer issuer's key, for this server,
/// unexpired, and (§3, item 7) not replayed: a `jti` seen before is refused.
fn bearer_assertion(
    shared: &Shared,
    st: &mut State,
    assertion: &str,
) -> Result<String, OAuthError> {
    let bad = |why: String| OAuthError::invalid_grant(format!("assertion: {why}"));
    let parsed = Parsed::parse(assertion).map_err(bad)?;
    parsed
        .verify(&shared.keys.jwt_bearer_issuer.public())
        .map_err(bad)?;
    let audiences = [shared.issuer.clone(), shared.endpoint("/token")];
    let expect = Expect {
        issuer: defaults::JWT_BEARER_ISSUER,
        subject: None,
        audiences: &audiences,
        now: unix_now(),
        iat_and_jti: false,
    };
    jwt::check_claims(&parsed.claims, &expect).map_err(bad)?;
    if let Some(jti) = parsed.claim("jti")
        && !st.seen_jtis.insert(jti.to_owned())
    {
        return Err(bad("jti was used before (replay)".into()));
    }
    parsed
        .claim("sub")
        .map(Into::into)
        .ok_or_else(|| bad("sub is missing".into()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn scope_narrowing() {
        assert!(super::within("a", Some("a b")));
        assert!(super::within("b a", Some("a b")));
        assert!(!super::within("c", Some("a b")));
        assert!(!super::within("a", None));
    }
}
