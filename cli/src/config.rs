//! Gateways described in a TOML file (`gateway-auth token --config`, `gateway-auth
//! check`).
//!
//! A file is a list of `[[gateway]]` tables; each becomes one [`Client`] and one
//! [`SessionGrant`], with its egress allow-list and token store. The field names are
//! the `Client` fields' (`client_id`, `token_endpoint`, `scopes`, `timeout_ms`,
//! `refresh_skew_seconds`, ...), plus `ca`, `client_certificate`, `client_key`,
//! `allow`, `store` and the `auth` and `grant` tables. Secrets are never written in the
//! file: each comes from an environment variable (`secret_env`, `password_env`, ...) or
//! a file (`secret_file`, ...). Relative paths (and a relative `sqlite:` store) are
//! relative to the file's directory.
//!
//! Every error is one line naming the file, the gateway and the field, and never a
//! secret's value.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use gateway_auth_host::{
    Assertion, Client, ClientAuth, EgressPolicy, JwtAlgorithm, PasswordCredentials, PluginOptions,
    SessionGrant, SigningKey, TokenExchange, TrustSpec, open_store,
};
use serde::Deserialize;

/// The store of a gateway that names none: sessions last for one command.
pub const DEFAULT_STORE: &str = "memory:";

/// One gateway's table, as written in the file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gateway {
    /// What `token --config FILE NAME` calls it; unique in the file. Also the session
    /// key in the store.
    pub name: String,
    /// The client identifier.
    pub client_id: String,
    /// How the client authenticates.
    pub auth: AuthConfig,
    /// How the token is obtained (default: client credentials).
    #[serde(default)]
    pub grant: GrantConfig,
    /// The issuer URL, for discovery of the endpoints not given.
    pub issuer: Option<String>,
    /// The token endpoint (https); discovered from `issuer` when absent.
    pub token_endpoint: Option<String>,
    /// The authorization endpoint.
    pub authorization_endpoint: Option<String>,
    /// The device authorization endpoint (RFC 8628).
    pub device_authorization_endpoint: Option<String>,
    /// The revocation endpoint (RFC 7009).
    pub revocation_endpoint: Option<String>,
    /// Scopes requested.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// The `audience` parameter.
    pub audience: Option<String>,
    /// Resource indicators (RFC 8707).
    #[serde(default)]
    pub resources: Vec<String>,
    /// CA bundle (PEM) trusted for every endpoint.
    pub ca: Option<PathBuf>,
    /// Whether the public web roots are trusted too (default: only when `ca` is absent).
    pub web_roots: Option<bool>,
    /// Client certificate chain (PEM), for mutual TLS.
    pub client_certificate: Option<PathBuf>,
    /// The private key (PEM) of `client_certificate`.
    pub client_key: Option<PathBuf>,
    /// Egress rules, e.g. `auth.example.com:443`; they must cover every endpoint.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Where sessions are kept: `memory:` (the default), `sqlite:PATH` or
    /// `redis://HOST:PORT/DB`.
    pub store: Option<String>,
    /// The deadline of one call, retries included, in milliseconds.
    pub timeout_ms: Option<u32>,
    /// How long before expiry a held token is renewed, in seconds.
    pub refresh_skew_seconds: Option<u32>,
    /// How much earlier than the skew a renewal may be drawn, in seconds (default half
    /// the skew; 0 renews at exactly expiry minus skew).
    pub refresh_jitter_seconds: Option<u32>,
    /// The longest hold-off after a failure retrying cannot fix, in seconds.
    pub failure_hold_off_seconds: Option<u32>,
}

/// The `auth` table: a client authentication method and where its secret is.
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case", deny_unknown_fields)]
pub enum AuthConfig {
    /// A public client.
    None {},
    /// HTTP Basic with a secret from `secret_env` or `secret_file`.
    ClientSecretBasic {
        /// The environment variable holding the secret.
        secret_env: Option<String>,
        /// The file holding the secret (a trailing newline is ignored).
        secret_file: Option<PathBuf>,
    },
    /// The secret in the request body, from `secret_env` or `secret_file`.
    ClientSecretPost {
        /// The environment variable holding the secret.
        secret_env: Option<String>,
        /// The file holding the secret (a trailing newline is ignored).
        secret_file: Option<PathBuf>,
    },
    /// A JWT assertion signed with a private key (RFC 7523 §2.2).
    PrivateKeyJwt {
        /// The PKCS#8 PEM key file.
        private_key: PathBuf,
        /// `RS256` or `ES256`.
        algorithm: Algorithm,
        /// The `kid` header, if the server needs one.
        key_id: Option<String>,
    },
    /// The client certificate (`client_certificate`, `client_key`; RFC 8705).
    TlsClientAuth {},
}

/// A JWT signing algorithm, as JWS names it.
#[derive(Clone, Copy, Debug, Deserialize)]
pub enum Algorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    #[serde(rename = "RS256")]
    Rs256,
    /// ECDSA on P-256 with SHA-256.
    #[serde(rename = "ES256")]
    Es256,
}

/// The `grant` table: how the session obtains its token.
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum GrantConfig {
    /// Client credentials (RFC 6749 §4.4).
    ClientCredentials {},
    /// Resource owner password (RFC 6749 §4.3).
    Password {
        /// The user name.
        username: String,
        /// The environment variable holding the password.
        password_env: Option<String>,
        /// The file holding the password.
        password_file: Option<PathBuf>,
    },
    /// Start from a refresh token (RFC 6749 §6). With a rotating server, keep the
    /// session in a persistent `store`: the rotated token lives there, not in the
    /// variable or file.
    RefreshToken {
        /// The environment variable holding the refresh token.
        refresh_token_env: Option<String>,
        /// The file holding the refresh token.
        refresh_token_file: Option<PathBuf>,
    },
    /// JWT bearer with a fixed assertion (RFC 7523 §2.1).
    JwtBearer {
        /// The environment variable holding the assertion.
        assertion_env: Option<String>,
        /// The file holding the assertion.
        assertion_file: Option<PathBuf>,
    },
    /// Token exchange (RFC 8693).
    TokenExchange {
        /// The environment variable holding the subject token.
        subject_token_env: Option<String>,
        /// The file holding the subject token.
        subject_token_file: Option<PathBuf>,
        /// Its type URI.
        subject_token_type: String,
        /// The environment variable holding the actor token, if any.
        actor_token_env: Option<String>,
        /// The file holding the actor token, if any.
        actor_token_file: Option<PathBuf>,
        /// Its type URI; required with an actor token.
        actor_token_type: Option<String>,
        /// The token type wanted back.
        requested_token_type: Option<String>,
    },
}

impl Default for GrantConfig {
    fn default() -> Self {
        Self::ClientCredentials {}
    }
}

/// Where gateways were described: a file, or the `token` command's flags.
#[derive(Clone, Debug)]
pub enum Origin {
    /// A config file; relative paths are relative to its directory.
    File(PathBuf),
    /// Command-line flags; paths are as given.
    Flags,
}

/// A failure about one gateway (or the whole file), on one line: the file, the
/// gateway, the field and what is wrong. It never holds a secret's value.
#[derive(Clone, Debug)]
pub struct GatewayError {
    origin: Origin,
    gateway: Option<String>,
    field: Option<String>,
    message: String,
}

impl GatewayError {
    /// An error about `field` of `gateway` (either may be unknown).
    pub fn new(
        origin: &Origin,
        gateway: Option<&str>,
        field: Option<&str>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            origin: origin.clone(),
            gateway: gateway.map(Into::into),
            field: field.map(Into::into),
            message: one_line(&message.into()),
        }
    }

    /// The message without the file and gateway: what a table row shows.
    pub fn detail(&self) -> String {
        match &self.field {
            Some(field) => format!("{}: {}", self.field_label(field), self.message),
            None => self.message.clone(),
        }
    }

    /// The field as the user wrote it: a key in a file, a flag on the command line.
    fn field_label<'a>(&self, field: &'a str) -> &'a str {
        match self.origin {
            Origin::File(_) => field,
            Origin::Flags => match field {
                "auth.secret_env" => "--client-secret-env",
                "token_endpoint" => "--token-endpoint",
                "client_id" => "--client-id",
                "ca" => "--ca",
                "allow" => "--allow",
                "scopes" => "--scope",
                other => other,
            },
        }
    }
}

impl fmt::Display for GatewayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Origin::File(path) = &self.origin {
            write!(f, "{}: ", path.display())?;
        }
        if let Some(gateway) = &self.gateway {
            write!(f, "gateway {gateway:?}: ")?;
        }
        f.write_str(&self.detail())
    }
}

impl std::error::Error for GatewayError {}

/// Joins a possibly multi-line text into one line.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A parsed config file.
#[derive(Clone, Debug)]
pub struct ConfigFile {
    origin: Origin,
    /// The gateways, in file order.
    pub gateways: Vec<Gateway>,
}

impl ConfigFile {
    /// Reads and parses the file at `path`.
    pub fn load(path: &Path) -> Result<Self, GatewayError> {
        let origin = Origin::File(path.to_path_buf());
        let text = std::fs::read_to_string(path)
            .map_err(|e| GatewayError::new(&origin, None, None, format!("cannot read: {e}")))?;
        Self::parse(path, &text)
    }

    /// Parses `text` as the file at `path` (which names it in errors and anchors its
    /// relative paths).
    pub fn parse(path: &Path, text: &str) -> Result<Self, GatewayError> {
        let origin = Origin::File(path.to_path_buf());
        let fail = |gateway: Option<&str>, field: Option<&str>, message: String| {
            GatewayError::new(&origin, gateway, field, message)
        };
        let table: toml::Table = toml::from_str(text).map_err(|e| {
            let at = e
                .span()
                .map(|span| {
                    let before = &text[..span.start.min(text.len())];
                    let line = before.matches('\n').count() + 1;
                    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
                    format!("line {line}, column {column}: ")
                })
                .unwrap_or_default();
            fail(None, None, format!("{at}{}", e.message()))
        })?;
        let mut gateways = Vec::new();
        for (key, value) in table {
            if key != "gateway" {
                return Err(fail(
                    None,
                    Some(&key),
                    "unknown field, expected `[[gateway]]` tables".into(),
                ));
            }
            let toml::Value::Array(entries) = value else {
                return Err(fail(
                    None,
                    Some("gateway"),
                    "must be an array of tables, written `[[gateway]]`".into(),
                ));
            };
            for (index, entry) in entries.into_iter().enumerate() {
                let label = entry
                    .get("name")
                    .and_then(toml::Value::as_str)
                    .map_or_else(|| format!("#{}", index + 1), str::to_string);
                let gateway: Gateway = serde_path_to_error::deserialize(entry).map_err(|e| {
                    let message = e.inner().message().to_string();
                    let mut path = e.path().to_string();
                    // An unknown key is both the path's last segment and in the
                    // message: name the table it is in, once.
                    if let Some((parent, last)) = path.rsplit_once('.').or(Some(("", &path)))
                        && message.starts_with(&format!("unknown field `{last}`"))
                    {
                        path = parent.to_string();
                    }
                    let field = (!path.is_empty() && path != ".").then_some(path);
                    fail(Some(&label), field.as_deref(), message)
                })?;
                if gateways.iter().any(|g: &Gateway| g.name == gateway.name) {
                    return Err(fail(
                        Some(&label),
                        Some("name"),
                        "another gateway in the file has this name".into(),
                    ));
                }
                gateways.push(gateway);
            }
        }
        if gateways.is_empty() {
            return Err(fail(
                None,
                Some("gateway"),
                "the file describes no gateway".into(),
            ));
        }
        Ok(Self { origin, gateways })
    }

    /// Gateways given on the command line rather than in a file.
    pub fn from_flags(gateway: Gateway) -> Self {
        Self {
            origin: Origin::Flags,
            gateways: vec![gateway],
        }
    }

    /// The gateway called `name`.
    pub fn gateway(&self, name: &str) -> Result<&Gateway, GatewayError> {
        self.gateways
            .iter()
            .find(|g| g.name == name)
            .ok_or_else(|| {
                let names: Vec<_> = self.gateways.iter().map(|g| g.name.as_str()).collect();
                GatewayError::new(
                    &self.origin,
                    Some(name),
                    None,
                    format!("no such gateway in the file (it has: {})", names.join(", ")),
                )
            })
    }

    /// An error about `field` of `gateway`.
    pub fn error(
        &self,
        gateway: &Gateway,
        field: Option<&str>,
        message: impl Into<String>,
    ) -> GatewayError {
        let name = match self.origin {
            Origin::File(_) => Some(gateway.name.as_str()),
            Origin::Flags => None,
        };
        GatewayError::new(&self.origin, name, field, message)
    }

    /// Where a relative path of the file points.
    fn path(&self, path: &Path) -> PathBuf {
        match &self.origin {
            Origin::File(file) if path.is_relative() => file
                .parent()
                .map_or_else(|| path.to_path_buf(), |dir| dir.join(path)),
            _ => path.to_path_buf(),
        }
    }

    /// Reads a file the gateway names in `field`.
    fn read(&self, gateway: &Gateway, field: &str, path: &Path) -> Result<String, GatewayError> {
        let path = self.path(path);
        std::fs::read_to_string(&path).map_err(|e| {
            self.error(
                gateway,
                Some(field),
                format!("cannot read {}: {e}", path.display()),
            )
        })
    }

    /// A secret from the variable `env` or the file `file` (exactly one of the two).
    fn secret(
        &self,
        gateway: &Gateway,
        (env_field, env): (&str, &Option<String>),
        (file_field, file): (&str, &Option<PathBuf>),
    ) -> Result<String, GatewayError> {
        let value = match (env, file) {
            (Some(var), None) => std::env::var(var).map_err(|_| {
                self.error(
                    gateway,
                    Some(env_field),
                    format!("the environment variable {var} is not set"),
                )
            })?,
            (None, Some(path)) => {
                let text = self.read(gateway, file_field, path)?;
                text.trim_end_matches(['\r', '\n']).to_string()
            }
            (Some(_), Some(_)) => {
                return Err(self.error(
                    gateway,
                    Some(env_field),
                    format!("give {env_field} or {file_field}, not both"),
                ));
            }
            (None, None) => {
                return Err(self.error(
                    gateway,
                    Some(env_field),
                    format!("missing: give {env_field} or {file_field}"),
                ));
            }
        };
        if value.is_empty() {
            let field = if env.is_some() { env_field } else { file_field };
            return Err(self.error(gateway, Some(field), "the secret is empty"));
        }
        Ok(value)
    }

    /// An optional secret: none when neither source is given.
    fn optional_secret(
        &self,
        gateway: &Gateway,
        env: (&str, &Option<String>),
        file: (&str, &Option<PathBuf>),
    ) -> Result<Option<String>, GatewayError> {
        if env.1.is_none() && file.1.is_none() {
            return Ok(None);
        }
        self.secret(gateway, env, file).map(Some)
    }

    /// Reads, checks and converts everything `gateway` names: its files and secrets,
    /// its URLs (https only), its egress rules (which must cover every endpoint) and
    /// its store URL. Nothing is sent anywhere.
    pub fn resolve(&self, gateway: &Gateway) -> Result<Resolved, GatewayError> {
        let fail = |field: &str, message: String| self.error(gateway, Some(field), message);
        let endpoints = self.endpoints(gateway)?;
        if gateway.issuer.is_none() && gateway.token_endpoint.is_none() {
            return Err(fail(
                "token_endpoint",
                "missing: give token_endpoint, or issuer to discover it".into(),
            ));
        }
        if gateway.timeout_ms == Some(0) {
            return Err(fail(
                "timeout_ms",
                "must be positive: the deadline of one call, in milliseconds".into(),
            ));
        }
        let egress =
            EgressPolicy::parse(&gateway.allow).map_err(|e| fail("allow", e.to_string()))?;
        for (field, url) in &endpoints {
            let host = url.host_str().unwrap_or_default();
            let port = url.port_or_known_default().unwrap_or(443);
            if egress.check_name(host, port).is_err() {
                return Err(fail(
                    "allow",
                    format!("no rule allows {host}:{port}, the host of {field}"),
                ));
            }
        }

        let trust = self.trust(gateway)?;
        let auth = self.auth(gateway, &trust)?;
        let grant = self.grant(gateway)?;
        let store = self.store(gateway)?;

        let mut client = Client::new(&gateway.client_id, auth, trust);
        client.issuer = gateway.issuer.clone();
        client.token_endpoint = gateway.token_endpoint.clone();
        client.authorization_endpoint = gateway.authorization_endpoint.clone();
        client.device_authorization_endpoint = gateway.device_authorization_endpoint.clone();
        client.revocation_endpoint = gateway.revocation_endpoint.clone();
        client.scopes = gateway.scopes.clone();
        client.audience = gateway.audience.clone();
        client.resources = gateway.resources.clone();
        client.timeout_ms = gateway.timeout_ms;
        client.refresh_skew_seconds = gateway.refresh_skew_seconds;
        client.refresh_jitter_seconds = gateway.refresh_jitter_seconds;
        client.failure_hold_off_seconds = gateway.failure_hold_off_seconds;
        Ok(Resolved {
            client,
            grant,
            egress,
            store,
        })
    }

    /// Every URL the gateway gives, parsed, each https with a host.
    fn endpoints(&self, gateway: &Gateway) -> Result<Vec<(&'static str, url::Url)>, GatewayError> {
        let given = [
            ("issuer", &gateway.issuer),
            ("token_endpoint", &gateway.token_endpoint),
            ("authorization_endpoint", &gateway.authorization_endpoint),
            (
                "device_authorization_endpoint",
                &gateway.device_authorization_endpoint,
            ),
            ("revocation_endpoint", &gateway.revocation_endpoint),
        ];
        let mut endpoints = Vec::new();
        for (field, value) in given {
            let Some(text) = value else { continue };
            let url = url::Url::parse(text).map_err(|e| {
                self.error(gateway, Some(field), format!("{text:?} is not a URL: {e}"))
            })?;
            if url.scheme() != "https" {
                return Err(self.error(
                    gateway,
                    Some(field),
                    format!("{text:?} is not https (tokens and secrets travel only over TLS)"),
                ));
            }
            if url.host_str().is_none_or(str::is_empty) {
                return Err(self.error(gateway, Some(field), format!("{text:?} has no host")));
            }
            endpoints.push((field, url));
        }
        Ok(endpoints)
    }

    /// The trust material, read from the files the gateway names.
    fn trust(&self, gateway: &Gateway) -> Result<TrustSpec, GatewayError> {
        let read = |field, path: &Option<PathBuf>| {
            path.as_ref()
                .map(|path| self.read(gateway, field, path))
                .transpose()
        };
        let ca = read("ca", &gateway.ca)?;
        let certificate = read("client_certificate", &gateway.client_certificate)?;
        let key = read("client_key", &gateway.client_key)?;
        match (&certificate, &key) {
            (Some(_), None) => {
                return Err(self.error(
                    gateway,
                    Some("client_key"),
                    "missing: client_certificate needs its client_key",
                ));
            }
            (None, Some(_)) => {
                return Err(self.error(
                    gateway,
                    Some("client_certificate"),
                    "missing: client_key needs its client_certificate",
                ));
            }
            _ => {}
        }
        Ok(TrustSpec {
            web_roots: gateway.web_roots.unwrap_or(ca.is_none()),
            ca_bundle: ca.unwrap_or_default(),
            client_certificate: certificate,
            client_key: key.map(Into::into),
        })
    }

    fn auth(&self, gateway: &Gateway, trust: &TrustSpec) -> Result<ClientAuth, GatewayError> {
        Ok(match &gateway.auth {
            AuthConfig::None {} => ClientAuth::None,
            AuthConfig::ClientSecretBasic {
                secret_env,
                secret_file,
            } => ClientAuth::ClientSecretBasic(
                self.secret(
                    gateway,
                    ("auth.secret_env", secret_env),
                    ("auth.secret_file", secret_file),
                )?
                .into(),
            ),
            AuthConfig::ClientSecretPost {
                secret_env,
                secret_file,
            } => ClientAuth::ClientSecretPost(
                self.secret(
                    gateway,
                    ("auth.secret_env", secret_env),
                    ("auth.secret_file", secret_file),
                )?
                .into(),
            ),
            AuthConfig::PrivateKeyJwt {
                private_key,
                algorithm,
                key_id,
            } => {
                let pem = self.read(gateway, "auth.private_key", private_key)?;
                if !pem.contains("PRIVATE KEY-----") {
                    return Err(self.error(
                        gateway,
                        Some("auth.private_key"),
                        format!(
                            "{} holds no PEM private key",
                            self.path(private_key).display()
                        ),
                    ));
                }
                ClientAuth::PrivateKeyJwt(SigningKey {
                    algorithm: match algorithm {
                        Algorithm::Rs256 => JwtAlgorithm::Rs256,
                        Algorithm::Es256 => JwtAlgorithm::Es256,
                    },
                    private_key_pem: pem.into(),
                    key_id: key_id.clone(),
                })
            }
            AuthConfig::TlsClientAuth {} => {
                if trust.client_certificate.is_none() {
                    return Err(self.error(
                        gateway,
                        Some("client_certificate"),
                        "missing: tls_client_auth needs client_certificate and client_key",
                    ));
                }
                ClientAuth::TlsClientAuth
            }
        })
    }

    fn grant(&self, gateway: &Gateway) -> Result<SessionGrant, GatewayError> {
        Ok(match &gateway.grant {
            GrantConfig::ClientCredentials {} => SessionGrant::ClientCredentials,
            GrantConfig::Password {
                username,
                password_env,
                password_file,
            } => SessionGrant::Password(PasswordCredentials {
                username: username.clone(),
                password: self
                    .secret(
                        gateway,
                        ("grant.password_env", password_env),
                        ("grant.password_file", password_file),
                    )?
                    .into(),
            }),
            GrantConfig::RefreshToken {
                refresh_token_env,
                refresh_token_file,
            } => SessionGrant::RefreshToken(
                self.secret(
                    gateway,
                    ("grant.refresh_token_env", refresh_token_env),
                    ("grant.refresh_token_file", refresh_token_file),
                )?
                .into(),
            ),
            GrantConfig::JwtBearer {
                assertion_env,
                assertion_file,
            } => SessionGrant::JwtBearer(Assertion::new(self.secret(
                gateway,
                ("grant.assertion_env", assertion_env),
                ("grant.assertion_file", assertion_file),
            )?)),
            GrantConfig::TokenExchange {
                subject_token_env,
                subject_token_file,
                subject_token_type,
                actor_token_env,
                actor_token_file,
                actor_token_type,
                requested_token_type,
            } => {
                let actor_token = self.optional_secret(
                    gateway,
                    ("grant.actor_token_env", actor_token_env),
                    ("grant.actor_token_file", actor_token_file),
                )?;
                if actor_token.is_some() && actor_token_type.is_none() {
                    return Err(self.error(
                        gateway,
                        Some("grant.actor_token_type"),
                        "missing: an actor token needs its type",
                    ));
                }
                SessionGrant::TokenExchange(TokenExchange {
                    subject_token: self
                        .secret(
                            gateway,
                            ("grant.subject_token_env", subject_token_env),
                            ("grant.subject_token_file", subject_token_file),
                        )?
                        .into(),
                    subject_token_type: subject_token_type.clone(),
                    actor_token: actor_token.map(Into::into),
                    actor_token_type: actor_token_type.clone(),
                    requested_token_type: requested_token_type.clone(),
                })
            }
        })
    }

    /// The store URL, checked without opening it (so a check creates no file), with a
    /// relative SQLite path made relative to the file.
    fn store(&self, gateway: &Gateway) -> Result<String, GatewayError> {
        let url = gateway.store.as_deref().unwrap_or(DEFAULT_STORE);
        let fail = |message: String| self.error(gateway, Some("store"), message);
        if let Some(path) = url.strip_prefix("sqlite:") {
            if path.is_empty() {
                return Err(fail("sqlite: needs a path, e.g. sqlite:tokens.db".into()));
            }
            let path = self.path(Path::new(path));
            let dir = match path.parent() {
                Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
                _ => PathBuf::from("."),
            };
            if !dir.is_dir() {
                return Err(fail(format!(
                    "the directory {} does not exist",
                    dir.display()
                )));
            }
            return Ok(format!("sqlite:{}", path.display()));
        }
        // Opening the other stores touches nothing: a Redis store connects at its
        // first call.
        open_store(url).map_err(|e| fail(e.to_string()))?;
        Ok(url.to_string())
    }
}

/// A gateway made ready for the plugin.
#[derive(Clone, Debug)]
pub struct Resolved {
    /// The OAuth client.
    pub client: Client,
    /// How its session obtains tokens.
    pub grant: SessionGrant,
    /// What the plugin may connect to.
    pub egress: EgressPolicy,
    /// The store URL, relative SQLite paths resolved.
    pub store: String,
}

impl Resolved {
    /// Options for a plugin serving this gateway: its egress, its store opened, and a
    /// call deadline longer than the client's, so the client's own deadline ends a
    /// slow call first.
    pub fn plugin_options(&self) -> Result<PluginOptions, gateway_auth_host::StoreError> {
        let defaults = PluginOptions::default();
        let client_timeout = Duration::from_millis(u64::from(self.client.timeout()));
        Ok(PluginOptions {
            egress: Arc::new(self.egress.clone()),
            store: open_store(&self.store)?,
            call_timeout: defaults
                .call_timeout
                .max(client_timeout + Duration::from_secs(5)),
            ..defaults
        })
    }
}
