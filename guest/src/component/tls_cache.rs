//! The `tls-cache` export over [`crate::tls::TlsCache`].

use super::{CACHE, Component, now_ms};
use crate::bindings::exports::gateway::auth::tls_cache as wit;
use crate::secret::PrivateKeyPem;
use crate::tls::{CacheStats, Prepared, Settings, TlsError, TrustSpec};

impl wit::Guest for Component {
    fn configure(settings: wit::Settings) {
        CACHE.with_borrow_mut(|cache| {
            cache.configure(Settings {
                capacity: settings.capacity,
                ttl_seconds: settings.ttl_seconds,
            })
        });
    }

    fn prepare(spec: wit::TrustSpec) -> Result<wit::Profile, wit::TlsError> {
        let spec = TrustSpec::from(spec);
        CACHE
            .with_borrow_mut(|cache| cache.prepare(&spec, now_ms()))
            .map(profile)
            .map_err(wit::TlsError::from)
    }

    fn invalidate(id: String) -> bool {
        CACHE.with_borrow_mut(|cache| cache.invalidate(&id))
    }

    fn clear() {
        CACHE.with_borrow_mut(|cache| cache.clear());
    }

    fn stats() -> wit::CacheStats {
        let CacheStats {
            hits,
            misses,
            evictions,
            expirations,
            rejected,
            size,
            capacity,
        } = CACHE.with_borrow(|cache| cache.stats());
        wit::CacheStats {
            hits,
            misses,
            evictions,
            expirations,
            rejected,
            size,
            capacity,
        }
    }
}

fn profile(prepared: Prepared) -> wit::Profile {
    wit::Profile {
        id: prepared.id,
        anchors: prepared.anchors,
        mutual_tls: prepared.mutual_tls,
        not_after: prepared.not_after,
        cached: prepared.cached,
    }
}

impl From<wit::TrustSpec> for TrustSpec {
    fn from(spec: wit::TrustSpec) -> Self {
        Self {
            ca_bundle: spec.ca_bundle,
            client_certificate: spec.client_certificate,
            client_key: spec.client_key.map(PrivateKeyPem::new),
            web_roots: spec.web_roots,
        }
    }
}

impl From<TlsError> for wit::TlsError {
    fn from(err: TlsError) -> Self {
        match err {
            TlsError::NoCertificates => Self::NoCertificates,
            TlsError::MalformedPem(why) => Self::MalformedPem(why),
            TlsError::BadCertificate(why) => Self::BadCertificate(why),
            TlsError::CertificateWithoutKey => Self::CertificateWithoutKey,
            TlsError::KeyWithoutCertificate => Self::KeyWithoutCertificate,
            TlsError::BadKey(why) => Self::BadKey(why),
            TlsError::KeyMismatch => Self::KeyMismatch,
            TlsError::TooLarge(limit) => Self::TooLarge(limit),
        }
    }
}
