//! The `tls-cache` export over [`crate::tls::TlsCache`].

use std::cell::RefCell;

use gateway_auth_api::{
    CacheSettings, CacheStats, EvictionPolicy, PrivateKeyPem, Profile, TlsError, TlsInfo,
    TlsOutput, TlsState, TrustSpec,
};

use super::{CACHE, Component, FromWit, IntoWit, now_ms};
use crate::bindings::exports::gateway::auth::tls_cache as wit;
use crate::tls::UpstreamSession;

/// The `tls-session` resource: the host calls it from one thread at a time (an
/// instance is single-threaded), so a `RefCell` suffices.
pub(crate) struct Session(RefCell<UpstreamSession>);

impl wit::GuestTlsSession for Session {
    fn advance(
        &self,
        incoming: Vec<u8>,
        plaintext: Vec<u8>,
    ) -> Result<wit::TlsOutput, wit::TlsError> {
        self.0
            .borrow_mut()
            .advance(&incoming, &plaintext)
            .map(TlsOutput::into_wit)
            .map_err(TlsError::into_wit)
    }

    fn close(&self) -> Vec<u8> {
        self.0.borrow_mut().close()
    }

    fn info(&self) -> wit::TlsInfo {
        self.0.borrow().info().into_wit()
    }
}

impl wit::Guest for Component {
    type TlsSession = Session;

    fn connect(
        profile_id: String,
        server_name: String,
        alpn: Vec<String>,
    ) -> Result<wit::TlsSession, wit::TlsError> {
        let config = CACHE
            .with_borrow_mut(|cache| cache.config_for(&profile_id, now_ms()))
            .map_err(TlsError::into_wit)?;
        let session =
            UpstreamSession::connect(config, &server_name, &alpn).map_err(TlsError::into_wit)?;
        Ok(wit::TlsSession::new(Session(RefCell::new(session))))
    }

    fn configure(settings: wit::Settings) {
        let settings = CacheSettings {
            capacity: settings.capacity,
            ttl_seconds: settings.ttl_seconds,
            policy: match settings.policy {
                wit::EvictionPolicy::Lru => EvictionPolicy::Lru,
                wit::EvictionPolicy::TinyLfu => EvictionPolicy::TinyLfu,
            },
        };
        CACHE.with_borrow_mut(|cache| cache.configure(settings));
    }

    fn prepare(spec: wit::TrustSpec) -> Result<wit::Profile, wit::TlsError> {
        let spec = TrustSpec::from_wit(spec);
        CACHE
            .with_borrow_mut(|cache| cache.prepare(&spec, now_ms()))
            .map(|prepared| prepared.profile.into_wit())
            .map_err(TlsError::into_wit)
    }

    fn lookup_profile(id: String) -> Result<wit::Profile, wit::TlsError> {
        CACHE
            .with_borrow_mut(|cache| cache.lookup(&id, now_ms()))
            .map(|prepared| prepared.profile.into_wit())
            .map_err(TlsError::into_wit)
    }

    fn invalidate(id: String) -> bool {
        CACHE.with_borrow_mut(|cache| cache.invalidate(&id))
    }

    fn clear() {
        CACHE.with_borrow_mut(|cache| cache.clear());
    }

    fn stats() -> wit::CacheStats {
        CACHE.with_borrow(|cache| cache.stats()).into_wit()
    }
}

impl FromWit<wit::TrustSpec> for TrustSpec {
    fn from_wit(spec: wit::TrustSpec) -> Self {
        Self {
            ca_bundle: spec.ca_bundle,
            client_certificate: spec.client_certificate,
            client_key: spec.client_key.map(PrivateKeyPem::new),
            web_roots: spec.web_roots,
        }
    }
}

impl IntoWit<wit::Profile> for Profile {
    fn into_wit(self) -> wit::Profile {
        wit::Profile {
            id: self.id,
            anchors: self.anchors,
            mutual_tls: self.mutual_tls,
            not_after: self.not_after,
            cached: self.cached,
        }
    }
}

impl IntoWit<wit::CacheStats> for CacheStats {
    fn into_wit(self) -> wit::CacheStats {
        wit::CacheStats {
            hits: self.hits,
            misses: self.misses,
            evictions: self.evictions,
            expirations: self.expirations,
            rejected: self.rejected,
            size: self.size,
            capacity: self.capacity,
        }
    }
}

impl IntoWit<wit::TlsError> for TlsError {
    fn into_wit(self) -> wit::TlsError {
        match self {
            Self::NoCertificates => wit::TlsError::NoCertificates,
            Self::MalformedPem(why) => wit::TlsError::MalformedPem(why),
            Self::BadCertificate(why) => wit::TlsError::BadCertificate(why),
            Self::CertificateWithoutKey => wit::TlsError::CertificateWithoutKey,
            Self::KeyWithoutCertificate => wit::TlsError::KeyWithoutCertificate,
            Self::BadKey(why) => wit::TlsError::BadKey(why),
            Self::KeyMismatch => wit::TlsError::KeyMismatch,
            Self::TooLarge(limit) => wit::TlsError::TooLarge(limit),
            Self::UnknownProfile => wit::TlsError::UnknownProfile,
            Self::BadServerName(why) => wit::TlsError::BadServerName(why),
            Self::PeerCertificate(why) => wit::TlsError::PeerCertificate(why),
            Self::PeerAlert(alert) => wit::TlsError::PeerAlert(alert),
            Self::Protocol(why) => wit::TlsError::Protocol(why),
            Self::Closed => wit::TlsError::Closed,
            // A case this glue does not know yet still reaches the host, as its message.
            other => wit::TlsError::BadCertificate(other.to_string()),
        }
    }
}

impl IntoWit<wit::TlsOutput> for TlsOutput {
    fn into_wit(self) -> wit::TlsOutput {
        wit::TlsOutput {
            outgoing: self.outgoing,
            plaintext: self.plaintext,
            state: match self.state {
                TlsState::Handshaking => wit::TlsState::Handshaking,
                TlsState::Open => wit::TlsState::Open,
                TlsState::PeerClosed => wit::TlsState::PeerClosed,
                TlsState::Closed => wit::TlsState::Closed,
            },
        }
    }
}

impl IntoWit<wit::TlsInfo> for TlsInfo {
    fn into_wit(self) -> wit::TlsInfo {
        wit::TlsInfo {
            alpn: self.alpn,
            version: self.version,
            cipher_suite: self.cipher_suite,
            resumed: self.resumed,
        }
    }
}
