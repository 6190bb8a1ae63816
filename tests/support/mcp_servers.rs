//! The servers of the MCP authorization tests, `js/test/support/mcp_servers.js` run by
//! Node.js: oidc-provider as the authorization server (dynamic registration, resource
//! indicators with JWT access tokens for the resource, DPoP with nonces, pushed
//! authorization requests, PKCE S256, rotated refresh tokens, revocation, client ID
//! metadata documents), an MCP-like protected resource at `/mcp` that checks each
//! token's signature, audience and expiry and, for DPoP-bound tokens, the proof and its
//! nonce, and a client's web origin serving the metadata documents a test publishes.
//! All three listen on 127.0.0.1 over HTTPS with one test CA; the child is stopped when
//! dropped.
//!
//! The child speaks one line of JSON per command on its stdin and stdout; what it logs
//! on stderr is kept (the last lines) for the errors this module reports.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::Value;

/// How long the servers may take to start, or to answer one command (an `authorize`
/// makes several requests).
const PATIENCE: Duration = Duration::from_secs(30);
/// The lines of the child's stderr kept for error messages.
const STDERR_LINES: usize = 20;

/// The authorization server, the resource and the client origin, run by one Node.js
/// child.
pub struct McpServers {
    child: Child,
    channel: Mutex<Channel>,
    stderr: Arc<Mutex<VecDeque<String>>>,
    issuer: String,
    resource: String,
    resource_origin: String,
    resource_metadata: String,
    client_origin: String,
    registration_endpoint: String,
    ca_pem: String,
}

struct Channel {
    stdin: ChildStdin,
    lines: Receiver<String>,
}

/// Where the authorization server sent the user agent back to the client: the
/// authorization response (RFC 6749 §4.1.2, with `iss` of RFC 9207).
#[derive(Clone, PartialEq, Eq)]
pub struct Redirect {
    /// The authorization code.
    pub code: String,
    /// The client's `state`, returned.
    pub state: String,
    /// The issuer that answered.
    pub iss: String,
}

impl std::fmt::Debug for Redirect {
    // An authorization code is a credential until redeemed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redirect")
            .field("code", &"[redacted]")
            .field("state", &self.state)
            .field("iss", &self.iss)
            .finish()
    }
}

impl McpServers {
    /// Starts the three servers on free ports of 127.0.0.1.
    ///
    /// # Errors
    /// When `node` or the JavaScript dependencies (`js/node_modules`) are missing, or
    /// the servers do not start within 30 s.
    pub fn start() -> anyhow::Result<Self> {
        let js = workspace().join("js");
        let script = js.join("test/support/mcp_servers.js");
        if !js.join("node_modules/oidc-provider").is_dir() {
            bail!(
                "{} is missing oidc-provider: run `cd js && npm ci` (./run test does)",
                js.join("node_modules").display()
            );
        }
        let mut child = match Command::new("node")
            .arg(&script)
            .current_dir(&js)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
        {
            Ok(child) => child,
            Err(e) if e.kind() == ErrorKind::NotFound => bail!(
                "node is not installed: the MCP servers run on Node.js 20 or later \
                 (Debian package nodejs; then `cd js && npm ci`)"
            ),
            Err(e) => return Err(e).context(format!("cannot run node {}", script.display())),
        };
        let stdin = child.stdin.take().expect("stdin is piped");
        let lines = forward_lines(child.stdout.take().expect("stdout is piped"));
        let stderr = keep_tail(child.stderr.take().expect("stderr is piped"));
        let mut servers = Self {
            child,
            channel: Mutex::new(Channel { stdin, lines }),
            stderr,
            issuer: String::new(),
            resource: String::new(),
            resource_origin: String::new(),
            resource_metadata: String::new(),
            client_origin: String::new(),
            registration_endpoint: String::new(),
            ca_pem: String::new(),
        };
        let started = servers.answer(&servers.channel.lock().unwrap(), "starting")?;
        let field = |name: &str| -> anyhow::Result<String> {
            started[name]
                .as_str()
                .map(str::to_string)
                .with_context(|| format!("the servers' first line has no {name}: {started}"))
        };
        servers.issuer = field("issuer")?;
        servers.resource = field("resource")?;
        servers.resource_origin = field("resourceOrigin")?;
        servers.resource_metadata = field("resourceMetadata")?;
        servers.client_origin = field("clientOrigin")?;
        servers.registration_endpoint = field("registrationEndpoint")?;
        servers.ca_pem = field("caPem")?;
        Ok(servers)
    }

    /// The authorization server's issuer, `https://127.0.0.1:PORT`.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The protected resource, `https://127.0.0.1:PORT/mcp` (on another port than the
    /// issuer).
    pub fn resource(&self) -> &str {
        &self.resource
    }

    /// The resource server's origin, `https://127.0.0.1:PORT`.
    pub fn resource_origin(&self) -> &str {
        &self.resource_origin
    }

    /// The resource's metadata URL (RFC 9728 §3.1, path-inserted), as its challenge
    /// gives it in `resource_metadata`.
    pub fn resource_metadata(&self) -> &str {
        &self.resource_metadata
    }

    /// The origin serving client ID metadata documents, `https://127.0.0.1:PORT`.
    pub fn client_origin(&self) -> &str {
        &self.client_origin
    }

    /// The authorization server's registration endpoint (RFC 7591, open).
    pub fn registration_endpoint(&self) -> &str {
        &self.registration_endpoint
    }

    /// The CA both servers' certificates come from, PEM.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Follows an authorization URL (front channel, or `request_uri` of a pushed
    /// request) through Alice's login and consent to what it asks, and returns the
    /// authorization response.
    ///
    /// # Errors
    /// When the server refuses (the error code and description are in the message), or
    /// the servers stopped answering.
    pub fn authorize(&self, url: &str) -> anyhow::Result<Redirect> {
        if url.chars().any(char::is_whitespace) {
            bail!("an authorization URL has no whitespace: {url:?}");
        }
        let answer = self.command(&format!("authorize {url}"))?;
        if let Some(error) = answer["error"].as_str() {
            bail!(
                "authorization refused: {error}: {}",
                answer["error_description"].as_str().unwrap_or("")
            );
        }
        let field = |name: &str| {
            answer[name]
                .as_str()
                .map(str::to_string)
                .with_context(|| format!("the authorization response has no {name}"))
        };
        Ok(Redirect {
            code: field("code")?,
            state: field("state")?,
            iss: field("iss")?,
        })
    }

    /// How many clients registered dynamically so far.
    ///
    /// # Panics
    /// When the servers stopped answering.
    pub fn registrations(&self) -> u64 {
        let answer = self.command_or_panic("registrations");
        answer["registrations"].as_u64().expect("a count")
    }

    /// How many requests the authorization server got at `path` so far (`/token`,
    /// `/reg`, `/request`, `/token/revocation`, `/.well-known/openid-configuration`;
    /// interactions count as `/interaction/:uid`).
    ///
    /// # Panics
    /// When the servers stopped answering.
    pub fn requests(&self, path: &str) -> u64 {
        self.command_or_panic("requests")["provider"][path]
            .as_u64()
            .unwrap_or(0)
    }

    /// How many requests the resource server got at `path` so far (`/mcp`,
    /// `/mcp/admin`, `/.well-known/oauth-protected-resource/mcp`).
    ///
    /// # Panics
    /// When the servers stopped answering.
    pub fn resource_requests(&self, path: &str) -> u64 {
        self.command_or_panic("requests")["resource"][path]
            .as_u64()
            .unwrap_or(0)
    }

    /// How many requests the client origin got at `path` so far
    /// (`/clients/NAME`: the authorization server fetching a metadata document).
    ///
    /// # Panics
    /// When the servers stopped answering.
    pub fn client_requests(&self, path: &str) -> u64 {
        self.command_or_panic("requests")["client"][path]
            .as_u64()
            .unwrap_or(0)
    }

    /// Serves `metadata` (a JSON object: `redirect_uris`, `token_endpoint_auth_method`
    /// `none` or `private_key_jwt`, ...) as the client ID metadata document
    /// `/clients/NAME` of the client origin, with that URL as its `client_id`, and
    /// returns the URL. oidc-provider keeps a document it fetched for at least 30 s.
    ///
    /// # Errors
    /// When `name` is not a path segment of letters, digits, `.`, `_` and `-`, or
    /// `metadata` is no object.
    pub fn publish_client_document(&self, name: &str, metadata: &Value) -> anyhow::Result<String> {
        let answer = self.command(&format!("client-document {name} {metadata}"))?;
        answer["clientId"]
            .as_str()
            .map(str::to_string)
            .context("the servers returned no clientId")
    }

    /// Whether authorization requests must be pushed (RFC 9126 §5) from now on: the
    /// server's metadata says `require_pushed_authorization_requests` and it refuses
    /// any other with `invalid_request`.
    ///
    /// # Panics
    /// When the servers stopped answering.
    pub fn require_par(&self, required: bool) {
        self.command_or_panic(if required {
            "require-par on"
        } else {
            "require-par off"
        });
    }

    /// The lifetime of the access tokens issued from now on (300 s at the start).
    ///
    /// # Panics
    /// When the servers stopped answering.
    pub fn set_access_token_ttl(&self, ttl: Duration) {
        self.command_or_panic(&format!("access-token-ttl {}", ttl.as_secs().max(1)));
    }

    fn command_or_panic(&self, line: &str) -> Value {
        self.command(line)
            .unwrap_or_else(|e| panic!("the MCP servers did not answer {line:?}: {e:#}"))
    }

    /// Sends one command and returns its answer; an answer that is only `{error}`
    /// (a command the servers did not take) is an error, but for `authorize`, whose
    /// refusals are answers.
    fn command(&self, line: &str) -> anyhow::Result<Value> {
        let name = line.split(' ').next().unwrap_or(line);
        // One lock for the line and its answer: commands from several threads do not
        // take each other's answers.
        let mut channel = self.channel.lock().unwrap();
        writeln!(channel.stdin, "{line}")
            .and_then(|()| channel.stdin.flush())
            .with_context(|| format!("the MCP servers exited: {}", self.stderr_tail()))?;
        let answer = self.answer(&channel, &format!("command `{name}`"))?;
        if name != "authorize" && answer.get("error").is_some() {
            bail!("the MCP servers refused {name}: {answer}");
        }
        Ok(answer)
    }

    /// The next line of JSON the child writes.
    fn answer(&self, channel: &Channel, what: &str) -> anyhow::Result<Value> {
        let line = match channel.lines.recv_timeout(PATIENCE) {
            Ok(line) => line,
            Err(RecvTimeoutError::Timeout) => bail!(
                "the MCP servers said nothing for {PATIENCE:?} ({what}): {}",
                self.stderr_tail()
            ),
            Err(RecvTimeoutError::Disconnected) => {
                bail!("the MCP servers exited ({what}): {}", self.stderr_tail())
            }
        };
        serde_json::from_str(&line)
            .with_context(|| format!("the MCP servers wrote no JSON ({what}): {line:?}"))
    }

    fn stderr_tail(&self) -> String {
        // Give the child a moment to write why it stopped.
        thread::sleep(Duration::from_millis(100));
        let lines = self.stderr.lock().unwrap();
        if lines.is_empty() {
            "(nothing on stderr)".into()
        } else {
            lines.iter().cloned().collect::<Vec<_>>().join(" | ")
        }
    }
}

impl Drop for McpServers {
    fn drop(&mut self) {
        if let Ok(channel) = self.channel.get_mut() {
            let _ = writeln!(channel.stdin, "quit").and_then(|()| channel.stdin.flush());
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate sits in the workspace")
        .to_path_buf()
}

/// The lines `out` produces, from a thread, ending when it closes.
fn forward_lines(out: impl Read + Send + 'static) -> Receiver<String> {
    let (send, receive) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if send.send(line).is_err() {
                break;
            }
        }
    });
    receive
}

/// The last lines `err` produces, kept from a thread.
fn keep_tail(err: impl Read + Send + 'static) -> Arc<Mutex<VecDeque<String>>> {
    let tail = Arc::new(Mutex::new(VecDeque::new()));
    let kept = tail.clone();
    thread::spawn(move || {
        for line in BufReader::new(err).lines() {
            let Ok(line) = line else { break };
            let mut kept = kept.lock().unwrap();
            if kept.len() == STDERR_LINES {
                kept.pop_front();
            }
            kept.push_back(line);
        }
    });
    tail
}
