//! `gateway-auth demo`: every grant and client-authentication method against the bundled
//! development authorization server, over real HTTPS on 127.0.0.1, with the TLS cache
//! and a token store (a SQLite file unless `--store` names another); then the seed
//! report's upstream traffic through the plugin's TLS sessions. Tokens are never
//! printed: only their length.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use gateway_auth_devserver::fleet::Fleet;
use gateway_auth_devserver::{DevServer, Misbehaviour, defaults};
use gateway_auth_host::{
    Client, ClientAuth, EgressPolicy, Error, Grant, MemoryStore, Plugin, PluginOptions, Runtime,
    SessionGrant, Token, TokenStore, TrustSpec, Upstreams, open_store,
};
use gateway_auth_host::{JwtAlgorithm, PasswordCredentials, SigningKey, TokenExchange};

use crate::bench::human;
use crate::commands::load_runtime;

/// Runs the demo and prints a line per flow, with sessions in the store `store` names
/// (see [`open_store`]; default a SQLite file in a temporary directory).
pub fn run(store: Option<&str>) -> Result<()> {
    let server = DevServer::start(Default::default()).context("starting the development server")?;
    println!("development authorization server at {}", server.issuer());
    let runtime = load_runtime()?;
    let dir = std::env::temp_dir().join(format!("gateway-auth-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let store_url = match store {
        Some(url) => url.to_string(),
        None => format!("sqlite:{}", dir.join("tokens.db").display()),
    };
    let store = open_store(&store_url).with_context(|| format!("opening the store {store_url}"))?;
    println!("sessions kept in {store_url}");
    if cfg!(debug_assertions) {
        // `./run demo` starts quickly from a debug build; its timings are not the
        // product's (a cached token takes tens of times longer than in release).
        println!(
            "timings below are from a debug build of the host; `cargo run --release -p gateway-auth -- demo` or `gateway-auth bench` measure the real ones"
        );
    }
    let mut plugin = plugin(&runtime, store.clone())?;
    let demo = Demo { server: &server };

    let mut failures = 0;
    let mut step = |name: &str, result: Result<String>| match result {
        Ok(detail) => println!("  ok    {name:<52} {detail}"),
        Err(e) => {
            failures += 1;
            println!("  FAIL  {name:<52} {e:#}");
        }
    };

    println!("grants and client authentication:");
    step(
        "discovery + client_credentials (client_secret_basic)",
        demo.discovered(&mut plugin),
    );
    step(
        "client_credentials (client_secret_post)",
        demo.request(
            &mut plugin,
            demo.client(
                defaults::POST_CLIENT_ID,
                ClientAuth::ClientSecretPost(defaults::POST_CLIENT_SECRET.into()),
            ),
            Grant::ClientCredentials,
        ),
    );
    step(
        "client_credentials (private_key_jwt, RS256)",
        demo.request(
            &mut plugin,
            demo.jwt_client(
                defaults::JWT_RS256_CLIENT_ID,
                JwtAlgorithm::Rs256,
                server.client_rs256_key_pem(),
            ),
            Grant::ClientCredentials,
        ),
    );
    step(
        "client_credentials (private_key_jwt, ES256)",
        demo.request(
            &mut plugin,
            demo.jwt_client(
                defaults::JWT_ES256_CLIENT_ID,
                JwtAlgorithm::Es256,
                server.client_es256_key_pem(),
            ),
            Grant::ClientCredentials,
        ),
    );
    step(
        "client_credentials (tls_client_auth, mutual TLS)",
        demo.request(&mut plugin, demo.mtls_client(), Grant::ClientCredentials),
    );
    step(
        "password",
        demo.request(
            &mut plugin,
            demo.basic_client(),
            Grant::Password(PasswordCredentials {
                username: defaults::USERNAME.into(),
                password: defaults::PASSWORD.into(),
            }),
        ),
    );
    step(
        "jwt-bearer (RFC 7523)",
        demo.request(
            &mut plugin,
            demo.basic_client(),
            Grant::JwtBearer(Into::into(
                server.sign_jwt_bearer_assertion(defaults::USERNAME),
            )),
        ),
    );
    step(
        "token exchange (RFC 8693)",
        demo.token_exchange(&mut plugin),
    );
    step(
        "authorization code + PKCE (public client) session",
        demo.code_flow(&mut plugin),
    );
    step("refresh_token with rotation", demo.refresh(&mut plugin));
    step(
        "device authorization (RFC 8628) session",
        demo.device_flow(&mut plugin),
    );

    println!("sessions:");
    step(
        "cached access token (no request)",
        demo.cached_token(&mut plugin),
    );
    step(
        "second instance over the same store",
        demo.second_instance(&runtime, store),
    );
    step("revocation (RFC 7009)", demo.revoke(&mut plugin));

    println!("one error classification for every flow:");
    for (name, misbehaviour) in [
        (
            "503 + Retry-After",
            Misbehaviour::ServiceUnavailable { retry_after: 120 },
        ),
        ("401 invalid_client", Misbehaviour::InvalidClient),
        ("HTML error page", Misbehaviour::HtmlError),
        ("redirect (never followed)", Misbehaviour::Redirect),
        ("200 with an error body", Misbehaviour::ErrorIn200),
    ] {
        server.set_misbehaviour(Some(misbehaviour), None);
        let result = plugin.request_token(&demo.basic_client(), Grant::ClientCredentials);
        server.set_misbehaviour(None, None);
        step(name, expect_error(result));
    }

    let stats = plugin.stats()?;
    println!(
        "tls cache: {} hits, {} misses, {} evictions, {} entries (capacity {})",
        stats.hits, stats.misses, stats.evictions, stats.size, stats.capacity
    );

    println!("upstream traffic (the seed report's scenario, through the plugin's TLS sessions):");
    if let Err(e) = upstream_traffic(&runtime) {
        failures += 1;
        println!("  FAIL  upstream traffic: {e:#}");
    }
    let _ = std::fs::remove_dir_all(&dir);
    if failures > 0 {
        return Err(anyhow!("{failures} step(s) failed"));
    }
    println!("all flows passed");
    Ok(())
}

/// The seed scenario on a fresh instance: 101 upstreams, cache capacity 100.
fn upstream_traffic(runtime: &Runtime) -> Result<()> {
    const ROUNDS: usize = 5;
    const REQUESTS: usize = 3;
    let fleet = Fleet::start(101, 10).context("starting 101 upstream servers")?;
    println!(
        "  101 HTTPS upstreams on 127.0.0.1, each with its own CA ({} demand a client certificate)",
        fleet
            .upstreams()
            .iter()
            .filter(|u| u.client_identity.is_some())
            .count()
    );
    let upstreams = Upstreams::new(plugin(runtime, Arc::new(MemoryStore::new()))?);
    let started = std::time::Instant::now();
    let figures = crate::upstream_traffic::run(&upstreams, &fleet, ROUNDS, REQUESTS)?;
    let elapsed = started.elapsed();
    let stats = figures.stats;
    println!(
        "  each prepared and connected once, then {ROUNDS} rounds over the 100 most recent, {REQUESTS} keep-alive requests per connection"
    );
    println!(
        "  {} connections ({} resumed TLS sessions), {} requests in {:.2} s",
        figures.connections,
        figures.resumed,
        figures.requests,
        elapsed.as_secs_f64()
    );
    println!(
        "  cache (capacity {}): {} hits, {} misses (configurations built), {} eviction",
        figures.capacity, stats.hits, stats.misses, stats.evictions
    );
    println!(
        "  the same trace replayed against the original's full-wipe policy: {} configurations built ({} more)",
        figures.full_wipe_builds,
        figures.full_wipe_builds.saturating_sub(stats.misses)
    );
    Ok(())
}

/// A plugin that may reach 127.0.0.1, with its sessions in `store`.
pub fn plugin(runtime: &Runtime, store: Arc<dyn TokenStore>) -> Result<Plugin> {
    Ok(runtime.plugin(PluginOptions {
        egress: Arc::new(EgressPolicy::parse(["127.0.0.1"])?),
        store,
        ..PluginOptions::default()
    })?)
}

fn describe(token: &Token, took: Duration) -> String {
    format!(
        "{} token, {} chars{} ({})",
        token.token_type,
        token.access_token.secret().len(),
        if token.refresh_token.is_some() {
            ", with refresh token"
        } else {
            ""
        },
        human(took)
    )
}

fn expect_error(result: Result<Token, Error>) -> Result<String> {
    match result {
        Ok(_) => Err(anyhow!("a token came back from a misbehaving server")),
        Err(Error::OAuth(e)) => Ok(e.to_string()),
        Err(e) => Err(e.into()),
    }
}

/// The development server's `client_secret_basic` client.
pub fn basic_client(server: &DevServer) -> Client {
    Demo { server }.basic_client()
}

struct Demo<'a> {
    server: &'a DevServer,
}

impl Demo<'_> {
    fn trust(&self) -> TrustSpec {
        TrustSpec::ca(self.server.ca_pem())
    }

    fn client(&self, id: &str, auth: ClientAuth) -> Client {
        let mut client = Client::new(id, auth, self.trust());
        // Names the server, so that the `iss` of an authorization redirect is checked.
        client.issuer = Some(self.server.issuer());
        client.token_endpoint = Some(self.server.token_endpoint());
        client.authorization_endpoint = Some(self.server.authorization_endpoint());
        client.device_authorization_endpoint = Some(self.server.device_authorization_endpoint());
        client.revocation_endpoint = Some(self.server.revocation_endpoint());
        client.redirect_uri = Some(defaults::REDIRECT_URI.into());
        client.scopes = vec!["read".into(), "write".into()];
        client
    }

    fn basic_client(&self) -> Client {
        self.client(
            defaults::BASIC_CLIENT_ID,
            ClientAuth::ClientSecretBasic(defaults::BASIC_CLIENT_SECRET.into()),
        )
    }

    fn jwt_client(&self, id: &str, algorithm: JwtAlgorithm, key: String) -> Client {
        self.client(
            id,
            ClientAuth::PrivateKeyJwt(SigningKey {
                algorithm,
                private_key_pem: Into::into(key),
                key_id: None,
            }),
        )
    }

    fn mtls_client(&self) -> Client {
        let mut client = self.client(defaults::MTLS_CLIENT_ID, ClientAuth::TlsClientAuth);
        client.trust = self.trust().with_identity(
            self.server.mtls_client_cert_pem(),
            self.server.mtls_client_key_pem(),
        );
        client
    }

    fn request(&self, plugin: &mut Plugin, client: Client, grant: Grant) -> Result<String> {
        let start = Instant::now();
        let token = plugin.request_token(&client, grant)?;
        Ok(describe(&token, start.elapsed()))
    }

    fn discovered(&self, plugin: &mut Plugin) -> Result<String> {
        let mut client = Client::new(
            defaults::BASIC_CLIENT_ID,
            ClientAuth::ClientSecretBasic(defaults::BASIC_CLIENT_SECRET.into()),
            self.trust(),
        );
        client.issuer = Some(self.server.issuer());
        self.request(plugin, client, Grant::ClientCredentials)
    }

    fn token_exchange(&self, plugin: &mut Plugin) -> Result<String> {
        let subject = self
            .server
            .issue_access_token(defaults::PUBLIC_CLIENT_ID, "read");
        self.request(
            plugin,
            self.basic_client(),
            Grant::TokenExchange(TokenExchange {
                subject_token: Into::into(subject),
                subject_token_type: "urn:ietf:params:oauth:token-type:access_token".into(),
                actor_token: None,
                actor_token_type: None,
                requested_token_type: None,
            }),
        )
    }

    fn code_flow(&self, plugin: &mut Plugin) -> Result<String> {
        let start = Instant::now();
        let client = self.client(defaults::PUBLIC_CLIENT_ID, ClientAuth::None);
        plugin.open_session("demo-code", &client, &SessionGrant::AuthorizationCode)?;
        let authorization = plugin.begin_authorization("demo-code")?;
        let redirect = self.server.authorize(&authorization.url)?;
        let query: Vec<(String, String)> = url::Url::parse(&redirect)?
            .query_pairs()
            .into_owned()
            .collect();
        let param = |name: &str| {
            query
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .ok_or_else(|| anyhow!("the redirect has no {name}"))
        };
        let token = plugin.complete_authorization(
            "demo-code",
            &param("state")?,
            Into::into(param("code")?),
            // RFC 9207: the server names itself; the plugin checks it is the client's.
            Some(&param("iss")?),
        )?;
        Ok(describe(&token, start.elapsed()))
    }

    fn refresh(&self, plugin: &mut Plugin) -> Result<String> {
        let client = self.basic_client();
        let password = Grant::Password(PasswordCredentials {
            username: defaults::USERNAME.into(),
            password: defaults::PASSWORD.into(),
        });
        let first = plugin.request_token(&client, password)?;
        let old = first
            .refresh_token
            .context("the password grant returns a refresh token")?;
        let start = Instant::now();
        let token = plugin.request_token(&client, Grant::RefreshToken(old.clone()))?;
        let new = token
            .refresh_token
            .clone()
            .context("rotation returns a new refresh token")?;
        anyhow::ensure!(new != old, "the refresh token rotated");
        Ok(describe(&token, start.elapsed()))
    }

    fn device_flow(&self, plugin: &mut Plugin) -> Result<String> {
        let start = Instant::now();
        self.server.set_device_interval(1);
        let client = self.client(defaults::PUBLIC_CLIENT_ID, ClientAuth::None);
        plugin.open_session("demo-device", &client, &SessionGrant::DeviceCode)?;
        let device = plugin.begin_device_authorization("demo-device")?;
        anyhow::ensure!(
            plugin.poll_device_authorization("demo-device")?.is_none(),
            "pending before approval"
        );
        anyhow::ensure!(
            self.server.approve_device(&device.user_code),
            "the server knows the user code"
        );
        for _ in 0..10 {
            std::thread::sleep(Duration::from_secs(u64::from(
                device.interval_seconds.max(1),
            )));
            if let Some(token) = plugin.poll_device_authorization("demo-device")? {
                return Ok(format!(
                    "user code {}, {}",
                    device.user_code,
                    describe(&token, start.elapsed())
                ));
            }
        }
        Err(anyhow!("no token after approval"))
    }

    fn cached_token(&self, plugin: &mut Plugin) -> Result<String> {
        plugin.open_session(
            "demo-cc",
            &self.basic_client(),
            &SessionGrant::ClientCredentials,
        )?;
        plugin.access_token("demo-cc")?;
        let before = self.server.token_requests();
        let start = Instant::now();
        for _ in 0..1000 {
            plugin.access_token("demo-cc")?;
        }
        let each = start.elapsed() / 1000;
        anyhow::ensure!(
            self.server.token_requests() == before,
            "a cached token must not cost a request"
        );
        let build = if cfg!(debug_assertions) {
            " (debug build)"
        } else {
            ""
        };
        Ok(format!("{} per call{build}, no request sent", human(each)))
    }

    fn second_instance(&self, runtime: &Runtime, store: Arc<dyn TokenStore>) -> Result<String> {
        let before = self.server.token_requests();
        let mut other = plugin(runtime, store)?;
        other.open_session(
            "demo-cc",
            &self.basic_client(),
            &SessionGrant::ClientCredentials,
        )?;
        other.access_token("demo-cc")?;
        anyhow::ensure!(
            self.server.token_requests() == before,
            "the stored token must be reused"
        );
        Ok("token served from the store, no request sent".into())
    }

    fn revoke(&self, plugin: &mut Plugin) -> Result<String> {
        let token = plugin.access_token("demo-code")?;
        plugin.revoke("demo-code")?;
        anyhow::ensure!(
            self.server.is_revoked(token.access_token.secret()),
            "the server saw the revocation"
        );
        Ok("access and refresh tokens revoked".into())
    }
}
