//! The `tls-cache` export over [`crate::tls::TlsCache`].

use gateway_auth_api::{CacheSettings, CacheStats, PrivateKeyPem, Profile, TlsError, TrustSpec};

use super::{CACHE, Component, FromWit, IntoWit, now_ms};
use crate::bindings::exports::gateway::auth::tls_cache as wit;

impl wit::Guest for Component {
    fn configure(settings: wit::Settings) {
        let settings = CacheSettings {
            capacity: settings.capacity,
            ttl_seconds: settings.ttl_seconds,
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
            // A case this glue does not know yet still reaches the host, as its message.
            other => wit::TlsError::BadCertificate(other.to_string()),
        }
    }
}
