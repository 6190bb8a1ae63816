//! The ways `/token` can be told to misbehave, each copied from what real providers
//! and the proxies in front of them do, so the client's one classification of
//! failures can be tested against all of them.

use crate::Misbehaviour;
use crate::state::State;
use crate::wire::{OAuthError, Reply, TokenResponse};

/// Takes the switch for one `/token` request, counting down how many remain.
pub(crate) fn take(st: &mut State) -> Option<Misbehaviour> {
    let (m, times) = st.misbehaviour.as_mut()?;
    let m = m.clone();
    if let Some(n) = times {
        *n = n.saturating_sub(1);
        if *n == 0 {
            st.misbehaviour = None;
        }
    }
    Some(m)
}

/// The answer for misbehaviours that replace the request's processing entirely; `None`
/// for those that process it (`Slow`, the reshaping ones) or drop the connection.
pub(crate) fn canned(m: &Misbehaviour) -> Option<Reply> {
    Some(match m {
        Misbehaviour::ErrorIn200 => Reply::json(
            200,
            &serde_json::json!({"error": "invalid_request", "error_description": "an error with status 200"}),
        ),
        Misbehaviour::InvalidGrant => {
            OAuthError::invalid_grant("the grant was refused (misbehaviour switch)").into()
        }
        Misbehaviour::InvalidClient => {
            OAuthError::invalid_client("the client was refused (misbehaviour switch)").into()
        }
        Misbehaviour::TooManyRequests { retry_after } => {
            Reply::new(429, "text/plain", "rate limited")
                .header("retry-after", retry_after.to_string())
        }
        Misbehaviour::ServiceUnavailable { retry_after } => Reply::new(
            503,
            "text/html",
            "<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>",
        )
        .header("retry-after", retry_after.to_string()),
        // The body carries something shaped like a secret, so a client that quotes error
        // bodies is caught if it does not redact.
        Misbehaviour::HtmlError => Reply::new(
            500,
            "text/html",
            "<html><body><h1>Internal Server Error</h1><p>upstream said: \
             access_token=leaked-value&refresh_token=leaked-refresh</p></body></html>",
        ),
        Misbehaviour::Redirect => Reply::new(302, "text/plain", "moved")
            .header("location", "https://127.0.0.1:1/elsewhere"),
        Misbehaviour::Oversize => {
            let mut body = String::with_capacity((2 << 20) + 64);
            body.push_str(r#"{"access_token":""#);
            body.extend(std::iter::repeat_n('A', 2 << 20));
            body.push_str(r#"","token_type":"Bearer","expires_in":3600}"#);
            Reply::new(200, "application/json", body)
        }
        Misbehaviour::FormEncoded
        | Misbehaviour::ExpiresInString
        | Misbehaviour::Status201
        | Misbehaviour::Slow { .. }
        | Misbehaviour::DropConnection => return None,
    })
}

/// Presents a real token the odd way the misbehaviour asks for.
pub(crate) fn reshape(m: &Misbehaviour, token: &TokenResponse) -> Reply {
    match m {
        Misbehaviour::FormEncoded => {
            let mut body = form_urlencoded::Serializer::new(String::new());
            body.append_pair("access_token", &token.access_token)
                .append_pair("token_type", "bearer")
                .append_pair("expires_in", &token.expires_in.to_string());
            if let Some(scope) = &token.scope {
                body.append_pair("scope", scope);
            }
            Reply::new(200, "application/x-www-form-urlencoded", body.finish())
                .header("cache-control", "no-store")
        }
        Misbehaviour::ExpiresInString => {
            let mut value = serde_json::to_value(token).expect("plain data serializes");
            value["expires_in"] = token.expires_in.to_string().into();
            value["token_type"] = "bearer".into();
            Reply::json(200, &value)
        }
        Misbehaviour::Status201 => Reply::json(201, token),
        _ => Reply::json(200, token),
    }
}
