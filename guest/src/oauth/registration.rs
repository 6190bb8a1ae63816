//! Dynamic client registration (RFC 7591), once per issuer and set of redirect URIs for
//! every replica sharing the store.
//!
//! The registration is kept in the store under a key made from the issuer and the
//! sorted redirect URIs. The first instance to find no registration takes a lease on
//! that key (as a session's renewal does), registers, and stores the result in place of
//! the lease; the others wait for it, re-reading the store without sending anything.
//! A holder that dies leaves a lease that lapses, and the next caller registers. The
//! request, the answer's reading and the record are pure functions; [`register`] is
//! the one that does I/O.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use gateway_auth_api::{
    ClientSecret, OAuthError, Registration, RegistrationRequest, RegistrationSource,
};

use super::call;
use super::classify::{self, Fields};
use super::config::check_https_url;
use super::discovery::Discovery;
use super::retry::{Deadline, Replay};
use crate::http::{Method, Request};
use crate::platform::Platform;

/// The first pause while another instance registers; it doubles up to
/// [`POLL_MAX_MS`].
const POLL_MS: u64 = 10;
/// The longest pause between looks at the store while another instance registers.
const POLL_MAX_MS: u64 = 200;

/// What the store holds under a registration's key.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Record {
    /// The instance registering now, and when its claim lapses (Unix milliseconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    lease: Option<(String, u64)>,
    /// The registration, once made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    registration: Option<Stored>,
}

/// A registration as stored: its secret in clear, since every replica needs it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Stored {
    client_id: String,
    #[serde(default)]
    client_secret: Option<String>,
    #[serde(default)]
    client_secret_expires_at: Option<u64>,
    token_endpoint_auth_method: String,
}

impl Stored {
    fn into_registration(self, source: RegistrationSource) -> Registration {
        Registration {
            client_id: self.client_id,
            client_secret: self.client_secret.map(ClientSecret::new),
            client_secret_expires_at: self.client_secret_expires_at,
            token_endpoint_auth_method: self.token_endpoint_auth_method,
            source,
        }
    }
}

/// The store key of the registration for `issuer` with these redirect URIs (in any
/// order).
pub fn store_key(issuer: &str, redirect_uris: &[String]) -> String {
    let mut uris: Vec<&str> = redirect_uris.iter().map(String::as_str).collect();
    uris.sort_unstable();
    uris.dedup();
    let material = json!([issuer, uris]).to_string();
    format!(
        "registration:{}",
        crate::digest::sha256_hex(material.as_bytes())
    )
}

/// The token endpoint authentication method asked for (RFC 7591 §2).
fn auth_method(request: &RegistrationRequest) -> &str {
    request
        .token_endpoint_auth_method
        .as_deref()
        .unwrap_or("none")
}

/// The client metadata to register (RFC 7591 §2).
pub fn metadata(request: &RegistrationRequest) -> Value {
    let grant_types: Vec<&str> = match request.grant_types.is_empty() {
        true => vec!["authorization_code", "refresh_token"],
        false => request.grant_types.iter().map(String::as_str).collect(),
    };
    let mut body = json!({
        "redirect_uris": request.redirect_uris,
        "token_endpoint_auth_method": auth_method(request),
        "grant_types": grant_types,
        "response_types": if grant_types.contains(&"authorization_code") { vec!["code"] } else { vec![] },
    });
    if let Some(name) = &request.client_name {
        body["client_name"] = json!(name);
    }
    if !request.scopes.is_empty() {
        body["scope"] = json!(request.scopes.join(" "));
    }
    body
}

/// Checks a request before anything is sent.
fn check(request: &RegistrationRequest) -> Result<(), OAuthError> {
    super::discovery::check_issuer(&request.issuer)?;
    if request.redirect_uris.is_empty() && grants_code(request) {
        return Err(OAuthError::Config(
            "registration: the authorization-code grant needs at least one redirect URI".into(),
        ));
    }
    match auth_method(request) {
        "none" | "client_secret_basic" | "client_secret_post" => Ok(()),
        other => Err(OAuthError::Config(format!(
            "registration: token_endpoint_auth_method {other:?} is not one this plugin can use \
             (none, client_secret_basic, client_secret_post)"
        ))),
    }
}

fn grants_code(request: &RegistrationRequest) -> bool {
    request.grant_types.is_empty()
        || request
            .grant_types
            .iter()
            .any(|g| g == "authorization_code")
}

/// Reads the server's answer (RFC 7591 §3.2.1): `client_id` is required; a
/// `client_secret_expires_at` of 0 means the secret does not expire.
pub fn parse_answer(fields: &Fields, asked_method: &str) -> Result<Registration, OAuthError> {
    let text = |name: &str| fields.get(name).and_then(Value::as_str).map(str::to_string);
    let client_id = text("client_id")
        .filter(|id| !id.is_empty())
        .ok_or_else(|| {
            OAuthError::InvalidResponse(
                "the registration answer has no client_id (RFC 7591 §3.2.1)".into(),
            )
        })?;
    let expires = fields
        .get("client_secret_expires_at")
        .and_then(Value::as_u64)
        .filter(|at| *at != 0);
    Ok(Registration {
        client_id,
        client_secret: text("client_secret").map(ClientSecret::new),
        client_secret_expires_at: expires,
        token_endpoint_auth_method: text("token_endpoint_auth_method")
            .unwrap_or_else(|| asked_method.to_string()),
        source: RegistrationSource::Registered,
    })
}

/// The registration for `request`: the client ID metadata document URL when the server
/// takes one, else the one in the store, else a new one made under the store's lease.
pub fn register(
    p: &mut dyn Platform,
    discovery: &mut Discovery,
    holder: &str,
    request: &RegistrationRequest,
) -> Result<Registration, OAuthError> {
    check(request)?;
    let timeout = request
        .timeout_ms
        .unwrap_or(gateway_auth_api::DEFAULT_TIMEOUT_MS);
    let deadline = Deadline::start(p.now_ms(), timeout);
    if let Some(document) = &request.client_id_metadata_document {
        check_https_url("client_id_metadata_document", document)?;
        let server = discovery.metadata(p, &request.trust, &request.issuer, deadline)?;
        if server.client_id_metadata_document_supported {
            return Ok(Registration {
                client_id: document.clone(),
                client_secret: None,
                client_secret_expires_at: None,
                token_endpoint_auth_method: "none".into(),
                source: RegistrationSource::MetadataDocument,
            });
        }
    }
    let endpoint = match &request.registration_endpoint {
        Some(endpoint) => endpoint.clone(),
        None => discovery
            .metadata(p, &request.trust, &request.issuer, deadline)?
            .registration_endpoint
            .clone()
            .ok_or_else(|| {
                OAuthError::Config(format!(
                    "{} publishes no registration_endpoint: it takes no dynamic registrations; register the client by hand",
                    request.issuer
                ))
            })?,
    };
    check_https_url("registration_endpoint", &endpoint)?;
    let key = store_key(&request.issuer, &request.redirect_uris);
    let store = |e: String| OAuthError::Store(format!("the registration record {key:?}: {e}"));
    let mut pause = POLL_MS;
    loop {
        let current = p.store_get(&key).map_err(store)?;
        let record: Record = match &current {
            Some(bytes) => {
                serde_json::from_slice(bytes).map_err(|e| store(format!("unreadable ({e})")))?
            }
            None => Record::default(),
        };
        if let Some(stored) = record.registration {
            return Ok(stored.into_registration(RegistrationSource::Stored));
        }
        let now = p.now_ms();
        match &record.lease {
            Some((other, until)) if other != holder && *until > now => {
                let left = deadline.remaining(now);
                if left == 0 {
                    return Err(OAuthError::Store(format!(
                        "instance {other} is registering at {} and had not stored its registration within this call's deadline",
                        request.issuer
                    )));
                }
                p.sleep_ms(pause.min(left));
                pause = (pause * 2).min(POLL_MAX_MS);
                continue;
            }
            _ => {}
        }
        let leased = Record {
            lease: Some((holder.to_string(), super::engine::lease_until(deadline))),
            registration: None,
        };
        let leased = serde_json::to_vec(&leased).map_err(|e| store(e.to_string()))?;
        if !p
            .store_compare_and_swap(&key, current.as_deref(), Some(&leased))
            .map_err(store)?
        {
            continue;
        }
        let answer = send(p, request, &endpoint, deadline);
        let done = match &answer {
            Ok(registration) => Some(Record {
                lease: None,
                registration: Some(Stored {
                    client_id: registration.client_id.clone(),
                    client_secret: registration
                        .client_secret
                        .as_ref()
                        .map(|s| s.secret().to_string()),
                    client_secret_expires_at: registration.client_secret_expires_at,
                    token_endpoint_auth_method: registration.token_endpoint_auth_method.clone(),
                }),
            }),
            Err(_) => None,
        };
        // Store the registration (or give the lease back). A store that refuses it
        // leaves the lease to lapse: the next caller then registers again.
        let next = done.map(|r| serde_json::to_vec(&r)).transpose();
        if let Ok(next) = next {
            let _ = p.store_compare_and_swap(&key, Some(&leased), next.as_deref());
        }
        return answer;
    }
}

/// POSTs the client metadata (RFC 7591 §3.1) and reads the answer. Not replayed after
/// it may have reached the server: a second registration would be a second client.
fn send(
    p: &mut dyn Platform,
    request: &RegistrationRequest,
    endpoint: &str,
    deadline: Deadline,
) -> Result<Registration, OAuthError> {
    let body = metadata(request).to_string().into_bytes();
    let mut build = |_: &mut dyn Platform| {
        Ok(Request {
            method: Method::Post,
            url: endpoint.to_string(),
            headers: vec![
                ("content-type".into(), "application/json".into()),
                ("accept".into(), "application/json".into()),
            ],
            body: body.clone(),
            replay_safe: false,
        })
    };
    let fields = call::with_retries(
        p,
        &request.trust,
        deadline,
        Replay::OnlyIfUnprocessed,
        &mut build,
        classify::classify_document,
    )?;
    parse_answer(&fields, auth_method(request))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> RegistrationRequest {
        RegistrationRequest {
            issuer: "https://as.example".into(),
            redirect_uris: vec!["https://gw.example/cb".into()],
            client_name: Some("gateway".into()),
            scopes: vec!["mcp:read".into()],
            ..Default::default()
        }
    }

    use crate::oauth::testing::{FakePlatform, json};

    fn registering() -> RegistrationRequest {
        RegistrationRequest {
            registration_endpoint: Some("https://as.example/reg".into()),
            ..request()
        }
    }

    const ANSWER: &str = r#"{"client_id":"dyn-1","token_endpoint_auth_method":"none"}"#;

    #[test]
    fn the_first_caller_registers_and_every_later_one_reads_the_store() {
        let mut p = FakePlatform::new();
        p.push(json(201, ANSWER));
        let first = register(
            &mut p,
            &mut Discovery::default(),
            "instance-a",
            &registering(),
        )
        .unwrap();
        assert_eq!(
            (first.client_id.as_str(), first.source),
            ("dyn-1", RegistrationSource::Registered)
        );
        assert_eq!(p.requests.len(), 1);
        assert_eq!(p.requests[0].url, "https://as.example/reg");
        let sent: Value = serde_json::from_slice(&p.requests[0].body).unwrap();
        assert_eq!(sent, metadata(&registering()));
        // Another instance (another holder), same issuer and redirect URIs.
        let second = register(
            &mut p,
            &mut Discovery::default(),
            "instance-b",
            &registering(),
        )
        .unwrap();
        assert_eq!(
            (second.client_id.as_str(), second.source),
            ("dyn-1", RegistrationSource::Stored)
        );
        assert_eq!(p.requests.len(), 1, "nothing more was sent");
    }

    #[test]
    fn a_live_lease_of_another_instance_is_waited_for_and_a_lapsed_one_taken_over() {
        let key = store_key("https://as.example", &registering().redirect_uris);
        let mut p = FakePlatform::new();
        let until = p.now_ms() + 60_000;
        let leased = serde_json::to_vec(&Record {
            lease: Some(("instance-a".into(), until)),
            registration: None,
        })
        .unwrap();
        p.store.insert(key.clone(), leased);
        let short = RegistrationRequest {
            timeout_ms: Some(500),
            ..registering()
        };
        let err = register(&mut p, &mut Discovery::default(), "instance-b", &short).unwrap_err();
        assert!(
            matches!(&err, OAuthError::Store(m) if m.contains("instance-a")),
            "{err}"
        );
        assert!(
            p.requests.is_empty(),
            "nothing was sent under another's lease"
        );
        p.advance_ms(60_000);
        p.push(json(201, ANSWER));
        let taken = register(&mut p, &mut Discovery::default(), "instance-b", &short).unwrap();
        assert_eq!(taken.source, RegistrationSource::Registered);
        let stored: Record = serde_json::from_slice(&p.store[&key]).unwrap();
        assert_eq!(stored.lease, None);
        assert_eq!(stored.registration.unwrap().client_id, "dyn-1");
    }

    #[test]
    fn a_refused_registration_is_the_servers_error_and_gives_the_lease_back() {
        let mut p = FakePlatform::new();
        p.push(json(
            400,
            r#"{"error":"invalid_redirect_uri","error_description":"not https"}"#,
        ));
        let err = register(
            &mut p,
            &mut Discovery::default(),
            "instance-a",
            &registering(),
        )
        .unwrap_err();
        assert!(
            matches!(&err, OAuthError::Protocol(e) if e.error == "invalid_redirect_uri"),
            "{err}"
        );
        let key = store_key("https://as.example", &registering().redirect_uris);
        assert!(!p.store.contains_key(&key), "the lease was given back");
    }

    #[test]
    fn a_metadata_document_url_is_the_client_id_where_the_server_takes_one() {
        let with_document = RegistrationRequest {
            client_id_metadata_document: Some("https://gw.example/client.json".into()),
            ..request()
        };
        let mut p = FakePlatform::new();
        p.push(json(
            200,
            r#"{"issuer":"https://as.example","client_id_metadata_document_supported":true,"registration_endpoint":"https://as.example/reg"}"#,
        ));
        let reg = register(&mut p, &mut Discovery::default(), "a", &with_document).unwrap();
        assert_eq!(
            (reg.client_id.as_str(), reg.source),
            (
                "https://gw.example/client.json",
                RegistrationSource::MetadataDocument
            )
        );
        assert_eq!(p.requests.len(), 1, "only the metadata was read");
        // A server that does not say so gets a registration.
        let mut p = FakePlatform::new();
        p.push(json(
            200,
            r#"{"issuer":"https://as.example","registration_endpoint":"https://as.example/reg"}"#,
        ));
        p.push(json(201, ANSWER));
        let reg = register(&mut p, &mut Discovery::default(), "a", &with_document).unwrap();
        assert_eq!(reg.source, RegistrationSource::Registered);
        assert_eq!(p.requests[1].url, "https://as.example/reg");
    }

    #[test]
    fn one_key_per_issuer_and_set_of_redirect_uris_in_any_order() {
        let uris = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let a = store_key(
            "https://as.example",
            &uris(&["https://a/cb", "https://b/cb"]),
        );
        assert_eq!(
            a,
            store_key(
                "https://as.example",
                &uris(&["https://b/cb", "https://a/cb"])
            )
        );
        assert_ne!(a, store_key("https://as.example", &uris(&["https://a/cb"])));
        assert_ne!(
            a,
            store_key(
                "https://other.example",
                &uris(&["https://a/cb", "https://b/cb"])
            )
        );
        assert!(a.starts_with("registration:"));
    }

    #[test]
    fn the_metadata_names_redirects_grants_method_name_and_scope() {
        assert_eq!(
            metadata(&request()),
            json!({
                "redirect_uris": ["https://gw.example/cb"],
                "token_endpoint_auth_method": "none",
                "grant_types": ["authorization_code", "refresh_token"],
                "response_types": ["code"],
                "client_name": "gateway",
                "scope": "mcp:read",
            })
        );
        let machine = RegistrationRequest {
            grant_types: vec!["client_credentials".into()],
            redirect_uris: vec![],
            token_endpoint_auth_method: Some("client_secret_basic".into()),
            ..request()
        };
        let body = metadata(&machine);
        assert_eq!(body["response_types"], json!([]));
        assert!(check(&machine).is_ok());
    }

    #[test]
    fn requests_the_plugin_could_not_use_are_refused_before_sending() {
        let no_redirect = RegistrationRequest {
            redirect_uris: vec![],
            ..request()
        };
        assert!(matches!(check(&no_redirect), Err(OAuthError::Config(_))));
        let jwt = RegistrationRequest {
            token_endpoint_auth_method: Some("private_key_jwt".into()),
            ..request()
        };
        assert!(matches!(check(&jwt), Err(OAuthError::Config(m)) if m.contains("private_key_jwt")));
        let http = RegistrationRequest {
            issuer: "http://as.example".into(),
            ..request()
        };
        assert!(check(&http).is_err());
    }

    #[test]
    fn an_answer_needs_a_client_id_and_a_zero_expiry_means_never() {
        let fields = |body: &str| -> Fields { serde_json::from_str(body).unwrap() };
        let reg = parse_answer(
            &fields(r#"{"client_id":"c1","client_secret":"s3cret","client_secret_expires_at":0}"#),
            "client_secret_basic",
        )
        .unwrap();
        assert_eq!(reg.client_id, "c1");
        assert_eq!(
            reg.client_secret.as_ref().map(|s| s.secret()),
            Some("s3cret")
        );
        assert_eq!(reg.client_secret_expires_at, None);
        assert_eq!(reg.token_endpoint_auth_method, "client_secret_basic");
        assert!(!format!("{reg:?}").contains("s3cret"));
        assert!(matches!(
            parse_answer(&fields(r#"{"client_secret":"x"}"#), "none"),
            Err(OAuthError::InvalidResponse(m)) if m.contains("client_id")
        ));
    }
}
