//! `gateway-auth token` and `gateway-auth check`: gateways of a config file (or the
//! token command's flags) run through the plugin.

use std::path::Path;

use anyhow::{Result, bail};
use gateway_auth_host::{Error, OAuthError, Plugin, PluginOptions, TlsError, Token, TrustSpec};

use crate::commands::load_runtime;
use crate::config::{ConfigFile, Gateway, GatewayError};
use crate::progress::Progress;
use crate::trust;

/// Obtains the token of `name` through a session keyed by the gateway's name in its
/// store (so a persistent store serves a live token without a request), and prints
/// it: the access token alone, or with `json` an object of its fields but the refresh
/// and ID tokens.
pub fn token(file: &ConfigFile, name: &str, json: bool) -> Result<()> {
    let gateway = file.gateway(name)?;
    let resolved = file.resolve(gateway)?;
    let options = resolved
        .plugin_options()
        .map_err(|e| file.error(gateway, Some("store"), e.to_string()))?;
    let mut plugin = load_runtime()?.plugin(options)?;
    // Prepared first, so that unusable trust material is blamed on its own field
    // rather than on the endpoint whose handshake it would break.
    plugin
        .prepare(&resolved.client.trust)
        .map_err(|e| trust_error(file, gateway, &resolved.client.trust, &e.into()))?;
    let token = plugin
        .open_session(&gateway.name, &resolved.client, &resolved.grant)
        .and_then(|()| plugin.access_token(&gateway.name))
        .map_err(|e| request_error(file, gateway, e))?;
    if json {
        println!("{}", token_json(&gateway.name, &token, trust::unix_now()));
    } else {
        println!("{}", token.access_token.secret());
    }
    Ok(())
}

/// A failed token request, attributed to the field most likely at fault.
fn request_error(file: &ConfigFile, gateway: &Gateway, error: Error) -> GatewayError {
    let endpoint = if gateway.token_endpoint.is_some() {
        "token_endpoint"
    } else {
        "issuer"
    };
    let field = match &error {
        Error::OAuth(e) => match e {
            OAuthError::Protocol(p) => match p.error.as_str() {
                "invalid_client" | "unauthorized_client" => Some("auth"),
                "invalid_grant" | "unsupported_grant_type" => Some("grant"),
                "invalid_scope" => Some("scopes"),
                "invalid_target" => Some("resources"),
                _ => None,
            },
            OAuthError::AuthorizationRequired(_) => Some("grant"),
            OAuthError::Store(_) => Some("store"),
            OAuthError::Config(message) => config_field(message),
            _ => Some(endpoint),
        },
        Error::Tls(_) => Some("ca"),
        Error::Net(_) | Error::DeadlineExceeded(_) => Some(endpoint),
        _ => None,
    };
    file.error(gateway, field, error.to_string())
}

/// The field a configuration error the plugin found (before any request) is about,
/// when its text names one.
fn config_field(message: &str) -> Option<&'static str> {
    [
        ("JWT signing key", "auth.private_key"),
        ("timeout_ms", "timeout_ms"),
        ("client_id", "client_id"),
        ("issuer", "issuer"),
        ("tls_client_auth", "client_certificate"),
        ("refresh token", "grant"),
        ("actor", "grant"),
        ("subject", "grant"),
    ]
    .into_iter()
    .find(|(named, _)| message.contains(named))
    .map(|(_, field)| field)
}

/// Trust material the plugin refused (or `prepare_unexpired` found expired), blamed on
/// the file it came from: the CA bundle, the client certificate or its key.
fn trust_error(
    file: &ConfigFile,
    gateway: &Gateway,
    trust: &TrustSpec,
    error: &anyhow::Error,
) -> GatewayError {
    let text = format!("{error:#}");
    let field = match error.downcast_ref::<Error>() {
        Some(Error::Tls(e)) => match e {
            TlsError::BadKey(_) | TlsError::KeyMismatch | TlsError::CertificateWithoutKey => {
                "client_key"
            }
            TlsError::KeyWithoutCertificate => "client_certificate",
            TlsError::MalformedPem(m) | TlsError::BadCertificate(m)
                if m.starts_with("client key") =>
            {
                "client_key"
            }
            TlsError::MalformedPem(m) | TlsError::BadCertificate(m)
                if m.starts_with("client certificate") =>
            {
                "client_certificate"
            }
            _ => "ca",
        },
        _ if text.contains("client certificate") && trust.client_certificate.is_some() => {
            "client_certificate"
        }
        _ => "ca",
    };
    file.error(gateway, Some(field), text)
}

/// The token's fields as one JSON object, without the refresh and ID tokens (a
/// session keeps those).
fn token_json(gateway: &str, token: &Token, now: u64) -> serde_json::Value {
    serde_json::json!({
        "gateway": gateway,
        "access_token": token.access_token.secret(),
        "token_type": token.token_type,
        "expires_at": token.expires_at,
        "expires_in": token.expires_at.map(|t| t.saturating_sub(now)),
        "scopes": token.scopes,
        "issued_token_type": token.issued_token_type,
    })
}

/// One gateway's line of the check table.
struct Row {
    name: String,
    ok: bool,
    detail: String,
}

/// `gateway-auth check`: every gateway resolved (files, secrets, URLs, egress, store),
/// its trust material prepared and its client and grant validated through the plugin,
/// without sending anything;
/// prints a table and fails if any gateway does.
pub fn check(path: &Path) -> Result<()> {
    let file = ConfigFile::load(path)?;
    let mut plugin = load_runtime()?.plugin(PluginOptions::default())?;
    let mut progress = Progress::new();
    let total = file.gateways.len();
    let now = trust::unix_now();
    let mut rows = Vec::new();
    for (index, gateway) in file.gateways.iter().enumerate() {
        progress.show(&format!("checking {}/{total} {}…", index + 1, gateway.name));
        let row = match check_one(&file, gateway, &mut plugin, now) {
            Ok(detail) => Row {
                name: gateway.name.clone(),
                ok: true,
                detail,
            },
            Err(e) => Row {
                name: gateway.name.clone(),
                ok: false,
                detail: e.detail(),
            },
        };
        rows.push(row);
    }
    progress.clear();
    let width = rows.iter().map(|r| r.name.len()).max().unwrap_or(0).max(7);
    println!("{:<width$}  {:<6}  DETAILS", "GATEWAY", "STATUS");
    for row in &rows {
        let status = if row.ok { "ok" } else { "FAIL" };
        println!("{:<width$}  {status:<6}  {}", row.name, row.detail);
    }
    let failed = rows.iter().filter(|r| !r.ok).count();
    if failed > 0 {
        bail!(
            "{}: {failed} of {total} gateways failed the check",
            path.display()
        );
    }
    Ok(())
}

/// Checks one gateway; the detail shown when it passes.
fn check_one(
    file: &ConfigFile,
    gateway: &Gateway,
    plugin: &mut Plugin,
    now: u64,
) -> Result<String, GatewayError> {
    let resolved = file.resolve(gateway)?;
    let trust = &resolved.client.trust;
    let profile = trust::prepare_unexpired(plugin, trust, now)
        .map_err(|e| trust_error(file, gateway, trust, &e))?;
    // What the plugin checks before a session's first request (the client, its signing
    // key, the grant), in this check's own memory store: nothing is sent.
    plugin
        .open_session(&gateway.name, &resolved.client, &resolved.grant)
        .map_err(|e| request_error(file, gateway, e))?;
    plugin
        .close_session(&gateway.name)
        .map_err(|e| request_error(file, gateway, e))?;
    let anchors = if profile.anchors == 1 {
        "anchor"
    } else {
        "anchors"
    };
    Ok(format!(
        "{} auth, profile {}, {} {anchors}{}, not after {}",
        resolved.client.auth.method_name(),
        &profile.id[..profile.id.len().min(12)],
        profile.anchors,
        if profile.mutual_tls {
            ", mutual TLS"
        } else {
            ""
        },
        trust::expiry(&profile, now)
    ))
}
