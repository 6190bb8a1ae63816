//! The glue between the WIT world and the contract's types (`gateway-auth-api`): the
//! only module of the host where generated bindings appear.
//!
//! It supplies the imports (`transport`, `store`) over [`HostState`] and offers the
//! exports as [`Exports`], whose methods take and return `api` types, so the rest of
//! the crate never sees a generated type.

use gateway_auth_api::secret::ClientSecret;
use gateway_auth_api::{
    Authorization, AuthorizationCode, BackoffError, CacheSettings, CacheStats, Client, ClientAuth,
    DeviceAuthorization, DpopBinding, DurationHistogram, EvictionPolicy, Grant, HttpStatusError,
    JwtAlgorithm, NetError, OAuthError, PasswordCredentials, PhaseCount, PluginMetrics, Profile,
    ProfileExpiry, ProtocolError, Registration, RegistrationRequest, RegistrationSource,
    ResourceAuthorization, SessionGrant, SessionLease, SessionPhase, SessionState, SigningKey,
    TlsError, TlsInfo, TlsOutput, TlsState, Token, TokenExchange, TokenRequestCount, TrustSpec,
};
use wasmtime::Store;
use wasmtime::component::{Component, HasSelf, InstancePre, Linker, Resource, ResourceAny};

use crate::state::HostState;
use crate::transport::Connection;

mod generated {
    wasmtime::component::bindgen!({
        world: "plugin",
        path: "../wit",
        with: {
            "gateway:auth/transport.connection": crate::transport::Connection,
        },
    });
}

use generated::exports::gateway::auth::{
    metrics as wit_metrics, oauth as wit_oauth, tls_cache as wit_tls,
};
use generated::gateway::auth::{store as wit_store, transport as wit_transport, types};

/// Adds the plugin's own imports (`transport`, `store`) to `linker`.
pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    generated::Plugin::add_to_linker::<_, HasSelf<_>>(linker, |state| state)
}

/// The component, linked and ready to instantiate.
pub(crate) struct ExportsPre(generated::PluginPre<HostState>);

impl ExportsPre {
    /// Pre-links `component` with `linker`.
    pub(crate) fn new(linker: &Linker<HostState>, component: &Component) -> wasmtime::Result<Self> {
        let pre: InstancePre<HostState> = linker.instantiate_pre(component)?;
        Ok(Self(generated::PluginPre::new(pre)?))
    }

    /// A new instance in `store`.
    pub(crate) fn instantiate(&self, store: &mut Store<HostState>) -> wasmtime::Result<Exports> {
        self.0.instantiate(store).map(Exports)
    }
}

/// One instance's exports, in `api` types. Each method returns the trap (if any) as the
/// outer error and the plugin's own answer inside.
pub(crate) struct Exports(generated::Plugin);

type Call<T> = wasmtime::Result<T>;

impl Exports {
    fn tls(&self) -> &wit_tls::Guest {
        self.0.gateway_auth_tls_cache()
    }

    fn oauth(&self) -> &wit_oauth::Guest {
        self.0.gateway_auth_oauth()
    }

    pub(crate) fn metrics(&self, s: &mut Store<HostState>) -> Call<PluginMetrics> {
        Ok(plugin_metrics(
            self.0.gateway_auth_metrics().call_snapshot(s)?,
        ))
    }

    pub(crate) fn configure(&self, s: &mut Store<HostState>, settings: CacheSettings) -> Call<()> {
        let settings = wit_tls::Settings {
            capacity: settings.capacity,
            ttl_seconds: settings.ttl_seconds,
            policy: match settings.policy {
                EvictionPolicy::Lru => wit_tls::EvictionPolicy::Lru,
                EvictionPolicy::TinyLfu => wit_tls::EvictionPolicy::TinyLfu,
            },
        };
        self.tls().call_configure(s, settings)
    }

    pub(crate) fn prepare(
        &self,
        s: &mut Store<HostState>,
        spec: &TrustSpec,
    ) -> Call<Result<Profile, TlsError>> {
        let answer = self.tls().call_prepare(s, &trust_spec(spec))?;
        Ok(answer.map(profile).map_err(tls_error))
    }

    pub(crate) fn lookup(
        &self,
        s: &mut Store<HostState>,
        id: &str,
    ) -> Call<Result<Profile, TlsError>> {
        let answer = self.tls().call_lookup_profile(s, id)?;
        Ok(answer.map(profile).map_err(tls_error))
    }

    pub(crate) fn invalidate(&self, s: &mut Store<HostState>, id: &str) -> Call<bool> {
        self.tls().call_invalidate(s, id)
    }

    pub(crate) fn clear(&self, s: &mut Store<HostState>) -> Call<()> {
        self.tls().call_clear(s)
    }

    pub(crate) fn stats(&self, s: &mut Store<HostState>) -> Call<CacheStats> {
        Ok(cache_stats(self.tls().call_stats(s)?))
    }

    pub(crate) fn connect(
        &self,
        s: &mut Store<HostState>,
        profile_id: &str,
        server_name: &str,
        alpn: &[String],
    ) -> Call<Result<ResourceAny, TlsError>> {
        let answer = self.tls().call_connect(s, profile_id, server_name, alpn)?;
        Ok(answer.map_err(tls_error))
    }

    pub(crate) fn advance(
        &self,
        s: &mut Store<HostState>,
        session: ResourceAny,
        incoming: &[u8],
        plaintext: &[u8],
    ) -> Call<Result<TlsOutput, TlsError>> {
        let answer = self
            .tls()
            .tls_session()
            .call_advance(s, session, incoming, plaintext)?;
        Ok(answer.map(tls_output).map_err(tls_error))
    }

    pub(crate) fn close_session_tls(
        &self,
        s: &mut Store<HostState>,
        session: ResourceAny,
    ) -> Call<Vec<u8>> {
        self.tls().tls_session().call_close(s, session)
    }

    pub(crate) fn tls_info(&self, s: &mut Store<HostState>, session: ResourceAny) -> Call<TlsInfo> {
        let i = self.tls().tls_session().call_info(s, session)?;
        Ok(TlsInfo {
            alpn: i.alpn,
            version: i.version,
            cipher_suite: i.cipher_suite,
            resumed: i.resumed,
        })
    }

    pub(crate) fn request_token(
        &self,
        s: &mut Store<HostState>,
        client: &Client,
        grant: Grant,
    ) -> Call<Result<Token, OAuthError>> {
        let answer = self
            .oauth()
            .call_request_token(s, &client_of(client), &grant_of(grant))?;
        Ok(answer.map(token).map_err(oauth_error))
    }

    pub(crate) fn open_session(
        &self,
        s: &mut Store<HostState>,
        key: &str,
        client: &Client,
        grant: &SessionGrant,
    ) -> Call<Result<(), OAuthError>> {
        let answer =
            self.oauth()
                .call_open_session(s, key, &client_of(client), &session_grant_of(grant))?;
        Ok(answer.map_err(oauth_error))
    }

    pub(crate) fn access_token(
        &self,
        s: &mut Store<HostState>,
        key: &str,
    ) -> Call<Result<Token, OAuthError>> {
        let answer = self.oauth().call_access_token(s, key)?;
        Ok(answer.map(token).map_err(oauth_error))
    }

    pub(crate) fn renew_token(
        &self,
        s: &mut Store<HostState>,
        key: &str,
        rejected: &str,
    ) -> Call<Result<Token, OAuthError>> {
        let answer = self.oauth().call_renew_token(s, key, rejected)?;
        Ok(answer.map(token).map_err(oauth_error))
    }

    pub(crate) fn discover_resource(
        &self,
        s: &mut Store<HostState>,
        resource_url: &str,
        www_authenticate: &[String],
        trust: &TrustSpec,
    ) -> Call<Result<ResourceAuthorization, OAuthError>> {
        let answer = self.oauth().call_discover_resource(
            s,
            resource_url,
            www_authenticate,
            &trust_spec(trust),
        )?;
        Ok(answer
            .map(|r| ResourceAuthorization {
                resource: r.resource,
                issuer: r.issuer,
                scopes: r.scopes,
                authorization_endpoint: r.authorization_endpoint,
                token_endpoint: r.token_endpoint,
                registration_endpoint: r.registration_endpoint,
                pushed_authorization_request_endpoint: r.pushed_authorization_request_endpoint,
                pushed_authorization_required: r.pushed_authorization_required,
                client_id_metadata_document_supported: r.client_id_metadata_document_supported,
                dpop_algorithms: r.dpop_algorithms,
                dpop_required: r.dpop_required,
                error: r.error,
            })
            .map_err(oauth_error))
    }

    pub(crate) fn register_client(
        &self,
        s: &mut Store<HostState>,
        request: &RegistrationRequest,
    ) -> Call<Result<Registration, OAuthError>> {
        let request = wit_oauth::RegistrationRequest {
            issuer: request.issuer.clone(),
            registration_endpoint: request.registration_endpoint.clone(),
            redirect_uris: request.redirect_uris.clone(),
            grant_types: request.grant_types.clone(),
            token_endpoint_auth_method: request.token_endpoint_auth_method.clone(),
            client_name: request.client_name.clone(),
            scopes: request.scopes.clone(),
            client_id_metadata_document: request.client_id_metadata_document.clone(),
            trust: trust_spec(&request.trust),
            timeout_ms: request.timeout_ms,
        };
        let answer = self.oauth().call_register_client(s, &request)?;
        Ok(answer
            .map(|r| Registration {
                client_id: r.client_id,
                client_secret: r.client_secret.map(ClientSecret::new),
                client_secret_expires_at: r.client_secret_expires_at,
                token_endpoint_auth_method: r.token_endpoint_auth_method,
                source: match r.source {
                    wit_oauth::RegistrationSource::Registered => RegistrationSource::Registered,
                    wit_oauth::RegistrationSource::Stored => RegistrationSource::Stored,
                    wit_oauth::RegistrationSource::MetadataDocument => {
                        RegistrationSource::MetadataDocument
                    }
                },
            })
            .map_err(oauth_error))
    }

    pub(crate) fn dpop_proof(
        &self,
        s: &mut Store<HostState>,
        key: &str,
        method: &str,
        url: &str,
        nonce: Option<&str>,
    ) -> Call<Result<String, OAuthError>> {
        let answer = self.oauth().call_dpop_proof(s, key, method, url, nonce)?;
        Ok(answer.map_err(oauth_error))
    }

    pub(crate) fn begin_step_up(
        &self,
        s: &mut Store<HostState>,
        key: &str,
        www_authenticate: &[String],
    ) -> Call<Result<Authorization, OAuthError>> {
        let answer = self.oauth().call_begin_step_up(s, key, www_authenticate)?;
        Ok(answer.map(authorization).map_err(oauth_error))
    }

    pub(crate) fn begin_authorization(
        &self,
        s: &mut Store<HostState>,
        key: &str,
    ) -> Call<Result<Authorization, OAuthError>> {
        let answer = self.oauth().call_begin_authorization(s, key)?;
        Ok(answer.map(authorization).map_err(oauth_error))
    }

    pub(crate) fn complete_authorization(
        &self,
        s: &mut Store<HostState>,
        key: &str,
        state: &str,
        code: AuthorizationCode,
        iss: Option<&str>,
    ) -> Call<Result<Token, OAuthError>> {
        let answer = self
            .oauth()
            .call_complete_authorization(s, key, state, code.secret(), iss)?;
        Ok(answer.map(token).map_err(oauth_error))
    }

    pub(crate) fn begin_device_authorization(
        &self,
        s: &mut Store<HostState>,
        key: &str,
    ) -> Call<Result<DeviceAuthorization, OAuthError>> {
        let answer = self.oauth().call_begin_device_authorization(s, key)?;
        Ok(answer
            .map(|d| DeviceAuthorization {
                user_code: d.user_code,
                verification_uri: d.verification_uri,
                verification_uri_complete: d.verification_uri_complete,
                expires_at: d.expires_at,
                interval_seconds: d.interval_seconds,
            })
            .map_err(oauth_error))
    }

    pub(crate) fn poll_device_authorization(
        &self,
        s: &mut Store<HostState>,
        key: &str,
    ) -> Call<Result<Option<Token>, OAuthError>> {
        let answer = self.oauth().call_poll_device_authorization(s, key)?;
        Ok(answer.map(|t| t.map(token)).map_err(oauth_error))
    }

    pub(crate) fn session_status(
        &self,
        s: &mut Store<HostState>,
        key: &str,
    ) -> Call<Option<SessionState>> {
        Ok(self.oauth().call_session_status(s, key)?.map(session_state))
    }

    pub(crate) fn revoke(
        &self,
        s: &mut Store<HostState>,
        key: &str,
    ) -> Call<Result<(), OAuthError>> {
        Ok(self.oauth().call_revoke(s, key)?.map_err(oauth_error))
    }

    pub(crate) fn close_session(&self, s: &mut Store<HostState>, key: &str) -> Call<()> {
        self.oauth().call_close_session(s, key)
    }

    pub(crate) fn forget_session(&self, s: &mut Store<HostState>, key: &str) -> Call<()> {
        self.oauth().call_forget_session(s, key)
    }
}

// ---- imports ----

impl types::Host for HostState {}

impl wit_transport::Host for HostState {
    fn connect(
        &mut self,
        host: String,
        port: u16,
        timeout_ms: u32,
    ) -> Result<Resource<Connection>, types::NetError> {
        let connection = Connection::open(&self.egress, &self.resolver, &host, port, timeout_ms)
            .map_err(net_error_to_wit)?;
        self.traffic.connections += 1;
        self.table
            .push(connection)
            .map_err(|e| types::NetError::Other(e.to_string()))
    }
}

impl wit_transport::HostConnection for HostState {
    fn write(
        &mut self,
        conn: Resource<Connection>,
        bytes: Vec<u8>,
        timeout_ms: u32,
    ) -> Result<(), types::NetError> {
        let conn = self
            .table
            .get_mut(&conn)
            .map_err(|_| types::NetError::Closed)?;
        conn.write(&bytes, timeout_ms).map_err(net_error_to_wit)?;
        self.traffic.bytes_sent += bytes.len() as u64;
        Ok(())
    }

    fn read(
        &mut self,
        conn: Resource<Connection>,
        max: u32,
        timeout_ms: u32,
    ) -> Result<Vec<u8>, types::NetError> {
        let conn = self
            .table
            .get_mut(&conn)
            .map_err(|_| types::NetError::Closed)?;
        let bytes = conn.read(max, timeout_ms).map_err(net_error_to_wit)?;
        self.traffic.bytes_received += bytes.len() as u64;
        Ok(bytes)
    }

    fn drop(&mut self, conn: Resource<Connection>) -> wasmtime::Result<()> {
        self.table.delete(conn)?;
        Ok(())
    }
}

impl wit_store::Host for HostState {
    fn get(&mut self, key: String) -> Result<wit_store::Stored, String> {
        match self.store.get(&key) {
            Ok(value) => Ok(wit_store::Stored { value }),
            Err(e) => Err(e.to_string()),
        }
    }

    fn compare_and_swap(
        &mut self,
        key: String,
        expected: Option<Vec<u8>>,
        value: Option<Vec<u8>>,
    ) -> Result<bool, String> {
        self.store
            .compare_and_swap(&key, expected.as_deref(), value.as_deref())
            .map_err(|e| e.to_string())
    }
}

// ---- conversions: api to generated ----

fn authorization(a: wit_oauth::Authorization) -> Authorization {
    Authorization {
        url: a.url,
        state: a.state,
        expires_at: a.expires_at,
    }
}

fn trust_spec(spec: &TrustSpec) -> wit_tls::TrustSpec {
    wit_tls::TrustSpec {
        ca_bundle: spec.ca_bundle.clone(),
        client_certificate: spec.client_certificate.clone(),
        client_key: spec.client_key.as_ref().map(|k| k.secret().to_string()),
        web_roots: spec.web_roots,
    }
}

fn client_of(c: &Client) -> wit_oauth::Client {
    wit_oauth::Client {
        client_id: c.client_id.clone(),
        auth: match &c.auth {
            ClientAuth::None => wit_oauth::ClientAuth::None,
            ClientAuth::ClientSecretBasic(s) => {
                wit_oauth::ClientAuth::ClientSecretBasic(s.secret().into())
            }
            ClientAuth::ClientSecretPost(s) => {
                wit_oauth::ClientAuth::ClientSecretPost(s.secret().into())
            }
            ClientAuth::PrivateKeyJwt(k) => wit_oauth::ClientAuth::PrivateKeyJwt(signing_key_of(k)),
            ClientAuth::TlsClientAuth => wit_oauth::ClientAuth::TlsClientAuth,
        },
        issuer: c.issuer.clone(),
        token_endpoint: c.token_endpoint.clone(),
        authorization_endpoint: c.authorization_endpoint.clone(),
        device_authorization_endpoint: c.device_authorization_endpoint.clone(),
        revocation_endpoint: c.revocation_endpoint.clone(),
        redirect_uri: c.redirect_uri.clone(),
        scopes: c.scopes.clone(),
        audience: c.audience.clone(),
        resources: c.resources.clone(),
        trust: trust_spec(&c.trust),
        timeout_ms: c.timeout_ms,
        refresh_skew_seconds: c.refresh_skew_seconds,
        refresh_jitter_seconds: c.refresh_jitter_seconds,
        failure_hold_off_seconds: c.failure_hold_off_seconds,
        authorization_params: c.authorization_params.clone(),
        dpop: c.dpop.as_ref().map(|binding| match binding {
            DpopBinding::PerSession => wit_oauth::DpopBinding::PerSession,
            DpopBinding::Fixed(key) => wit_oauth::DpopBinding::Fixed(signing_key_of(key)),
        }),
    }
}

fn signing_key_of(k: &SigningKey) -> wit_oauth::SigningKey {
    wit_oauth::SigningKey {
        algorithm: match k.algorithm {
            JwtAlgorithm::Rs256 => wit_oauth::JwtAlgorithm::Rs256,
            JwtAlgorithm::Es256 => wit_oauth::JwtAlgorithm::Es256,
        },
        private_key_pem: k.private_key_pem.secret().into(),
        key_id: k.key_id.clone(),
    }
}

fn password_of(p: &PasswordCredentials) -> wit_oauth::PasswordCredentials {
    wit_oauth::PasswordCredentials {
        username: p.username.clone(),
        password: p.password.secret().into(),
    }
}

fn token_exchange_of(t: &TokenExchange) -> wit_oauth::TokenExchange {
    wit_oauth::TokenExchange {
        subject_token: t.subject_token.secret().into(),
        subject_token_type: t.subject_token_type.clone(),
        actor_token: t.actor_token.as_ref().map(|a| a.secret().into()),
        actor_token_type: t.actor_token_type.clone(),
        requested_token_type: t.requested_token_type.clone(),
    }
}

/// Takes the grant by value: a code in it is spent here.
fn grant_of(g: Grant) -> wit_oauth::Grant {
    match g {
        Grant::ClientCredentials => wit_oauth::Grant::ClientCredentials,
        Grant::Password(p) => wit_oauth::Grant::Password(password_of(&p)),
        Grant::AuthorizationCode(c) => {
            wit_oauth::Grant::AuthorizationCode(wit_oauth::CodeExchange {
                code: c.code.into_secret(),
                code_verifier: c.code_verifier.map(|v| v.into_secret()),
            })
        }
        Grant::RefreshToken(t) => wit_oauth::Grant::RefreshToken(t.into_secret()),
        Grant::TokenExchange(t) => wit_oauth::Grant::TokenExchange(token_exchange_of(&t)),
        Grant::JwtBearer(a) => wit_oauth::Grant::JwtBearer(a.into_secret()),
        Grant::DeviceCode(d) => wit_oauth::Grant::DeviceCode(d.into_secret()),
    }
}

fn session_grant_of(g: &SessionGrant) -> wit_oauth::SessionGrant {
    match g {
        SessionGrant::ClientCredentials => wit_oauth::SessionGrant::ClientCredentials,
        SessionGrant::Password(p) => wit_oauth::SessionGrant::Password(password_of(p)),
        SessionGrant::AuthorizationCode => wit_oauth::SessionGrant::AuthorizationCode,
        SessionGrant::DeviceCode => wit_oauth::SessionGrant::DeviceCode,
        SessionGrant::TokenExchange(t) => {
            wit_oauth::SessionGrant::TokenExchange(token_exchange_of(t))
        }
        SessionGrant::JwtBearer(a) => wit_oauth::SessionGrant::JwtBearer(a.secret().into()),
        SessionGrant::SignedJwtBearer(signer) => {
            wit_oauth::SessionGrant::SignedJwtBearer(wit_oauth::AssertionSigner {
                signing_key: signing_key_of(&signer.signing_key),
                issuer: signer.issuer.clone(),
                subject: signer.subject.clone(),
                audience: signer.audience.clone(),
                lifetime_seconds: signer.lifetime_seconds,
            })
        }
        SessionGrant::RefreshToken(t) => wit_oauth::SessionGrant::RefreshToken(t.secret().into()),
    }
}

fn net_error_to_wit(e: NetError) -> types::NetError {
    match e {
        NetError::Denied(m) => types::NetError::Denied(m),
        NetError::Resolve(m) => types::NetError::Resolve(m),
        NetError::Connect(m) => types::NetError::Connect(m),
        NetError::Timeout => types::NetError::Timeout,
        NetError::Reset(m) => types::NetError::Reset(m),
        NetError::Closed => types::NetError::Closed,
        NetError::Other(m) => types::NetError::Other(m),
    }
}

// ---- conversions: generated to api ----

fn profile(p: wit_tls::Profile) -> Profile {
    Profile {
        id: p.id,
        anchors: p.anchors,
        mutual_tls: p.mutual_tls,
        not_after: p.not_after,
        cached: p.cached,
    }
}

fn tls_error(e: wit_tls::TlsError) -> TlsError {
    match e {
        wit_tls::TlsError::NoCertificates => TlsError::NoCertificates,
        wit_tls::TlsError::MalformedPem(m) => TlsError::MalformedPem(m),
        wit_tls::TlsError::BadCertificate(m) => TlsError::BadCertificate(m),
        wit_tls::TlsError::CertificateWithoutKey => TlsError::CertificateWithoutKey,
        wit_tls::TlsError::KeyWithoutCertificate => TlsError::KeyWithoutCertificate,
        wit_tls::TlsError::BadKey(m) => TlsError::BadKey(m),
        wit_tls::TlsError::KeyMismatch => TlsError::KeyMismatch,
        wit_tls::TlsError::TooLarge(n) => TlsError::TooLarge(n),
        wit_tls::TlsError::UnknownProfile => TlsError::UnknownProfile,
        wit_tls::TlsError::BadServerName(m) => TlsError::BadServerName(m),
        wit_tls::TlsError::PeerCertificate(m) => TlsError::PeerCertificate(m),
        wit_tls::TlsError::PeerAlert(m) => TlsError::PeerAlert(m),
        wit_tls::TlsError::Protocol(m) => TlsError::Protocol(m),
        wit_tls::TlsError::Closed => TlsError::Closed,
    }
}

fn tls_output(o: wit_tls::TlsOutput) -> TlsOutput {
    TlsOutput {
        outgoing: o.outgoing,
        plaintext: o.plaintext,
        state: match o.state {
            wit_tls::TlsState::Handshaking => TlsState::Handshaking,
            wit_tls::TlsState::Open => TlsState::Open,
            wit_tls::TlsState::PeerClosed => TlsState::PeerClosed,
            wit_tls::TlsState::Closed => TlsState::Closed,
        },
    }
}

fn token(t: wit_oauth::Token) -> Token {
    Token {
        access_token: t.access_token.into(),
        token_type: t.token_type,
        expires_at: t.expires_at,
        scopes: t.scopes,
        refresh_token: t.refresh_token.map(Into::into),
        id_token: t.id_token.map(Into::into),
        issued_token_type: t.issued_token_type,
    }
}

fn cache_stats(st: wit_tls::CacheStats) -> CacheStats {
    CacheStats {
        hits: st.hits,
        misses: st.misses,
        evictions: st.evictions,
        expirations: st.expirations,
        rejected: st.rejected,
        size: st.size,
        capacity: st.capacity,
    }
}

fn session_phase(phase: wit_oauth::SessionPhase) -> SessionPhase {
    match phase {
        wit_oauth::SessionPhase::Empty => SessionPhase::Empty,
        wit_oauth::SessionPhase::Valid => SessionPhase::Valid,
        wit_oauth::SessionPhase::Authorizing => SessionPhase::Authorizing,
        wit_oauth::SessionPhase::Backoff => SessionPhase::Backoff,
        wit_oauth::SessionPhase::AuthorizationRequired => SessionPhase::AuthorizationRequired,
        wit_oauth::SessionPhase::Failed => SessionPhase::Failed,
    }
}

fn plugin_metrics(m: wit_metrics::PluginMetrics) -> PluginMetrics {
    PluginMetrics {
        cache: cache_stats(m.cache),
        handshakes_full: m.handshakes_full,
        handshakes_resumed: m.handshakes_resumed,
        token_requests: m
            .token_requests
            .into_iter()
            .map(|r| TokenRequestCount {
                grant: r.grant,
                outcome: r.outcome,
                count: r.count,
            })
            .collect(),
        token_request_durations: m
            .token_request_durations
            .into_iter()
            .map(|d| DurationHistogram {
                grant: d.grant,
                bounds_ms: d.bounds_ms,
                cumulative: d.cumulative,
                sum_ms: d.sum_ms,
                count: d.count,
            })
            .collect(),
        sessions: m
            .sessions
            .into_iter()
            .map(|c| PhaseCount {
                phase: session_phase(c.phase),
                sessions: c.sessions,
            })
            .collect(),
        profiles: m
            .profiles
            .into_iter()
            .map(|p| ProfileExpiry {
                id: p.id,
                not_after: p.not_after,
            })
            .collect(),
    }
}

fn session_state(st: wit_oauth::SessionState) -> SessionState {
    let mut state = SessionState::default();
    state.phase = session_phase(st.phase);
    state.expires_at = st.expires_at;
    state.has_refresh_token = st.has_refresh_token;
    state.retry_at = st.retry_at;
    state.failures = st.failures;
    state.refusals = st.refusals;
    state.scopes = st.scopes;
    state.lease = st.lease.map(|l| SessionLease {
        holder: l.holder,
        expires_at: l.expires_at,
    });
    state
}

fn net_error(e: types::NetError) -> NetError {
    match e {
        types::NetError::Denied(m) => NetError::Denied(m),
        types::NetError::Resolve(m) => NetError::Resolve(m),
        types::NetError::Connect(m) => NetError::Connect(m),
        types::NetError::Timeout => NetError::Timeout,
        types::NetError::Reset(m) => NetError::Reset(m),
        types::NetError::Closed => NetError::Closed,
        types::NetError::Other(m) => NetError::Other(m),
    }
}

fn oauth_error(e: wit_oauth::OauthError) -> OAuthError {
    match e {
        wit_oauth::OauthError::Config(m) => OAuthError::Config(m),
        wit_oauth::OauthError::Protocol(p) => OAuthError::Protocol(ProtocolError {
            status: p.status,
            error: p.error,
            description: p.description,
            uri: p.uri,
            retry_after: p.retry_after,
        }),
        wit_oauth::OauthError::HttpStatus(h) => OAuthError::HttpStatus(HttpStatusError {
            status: h.status,
            snippet: h.snippet,
            retry_after: h.retry_after,
        }),
        wit_oauth::OauthError::InvalidResponse(m) => OAuthError::InvalidResponse(m),
        wit_oauth::OauthError::Tls(m) => OAuthError::Tls(m),
        wit_oauth::OauthError::Transport(n) => OAuthError::Transport(net_error(n)),
        wit_oauth::OauthError::AuthorizationRequired(m) => OAuthError::AuthorizationRequired(m),
        wit_oauth::OauthError::Backoff(b) => OAuthError::Backoff(BackoffError {
            retry_at: b.retry_at,
            failures: b.failures,
            last_error: b.last_error,
        }),
        wit_oauth::OauthError::Store(m) => OAuthError::Store(m),
    }
}
