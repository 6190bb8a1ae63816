//! The typed API over the plugin's `tls-cache` export.

use std::fmt;
use std::time::Duration;

use crate::bindings::tls_cache as wit;
use crate::error::Error;
use crate::runtime::Plugin;

/// The trust material for one upstream.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct TrustSpec {
    /// PEM CA certificates (may be empty when `web_roots` is set).
    pub ca_bundle: String,
    /// PEM client certificate chain, for mutual TLS.
    pub client_certificate: Option<String>,
    /// PEM private key of the client certificate.
    pub client_key: Option<String>,
    /// Whether the public web roots are trusted too.
    pub web_roots: bool,
}

impl fmt::Debug for TrustSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrustSpec")
            .field("ca_bundle_bytes", &self.ca_bundle.len())
            .field("client_certificate", &self.client_certificate.is_some())
            .field(
                "client_key",
                &self.client_key.as_ref().map(|_| "[redacted]"),
            )
            .field("web_roots", &self.web_roots)
            .finish()
    }
}

impl TrustSpec {
    /// Trusts exactly the CAs in `pem`.
    pub fn ca(pem: impl Into<String>) -> Self {
        Self {
            ca_bundle: pem.into(),
            ..Self::default()
        }
    }

    /// Adds a client certificate chain and key, for mutual TLS.
    pub fn with_identity(
        mut self,
        certificate_pem: impl Into<String>,
        key_pem: impl Into<String>,
    ) -> Self {
        self.client_certificate = Some(certificate_pem.into());
        self.client_key = Some(key_pem.into());
        self
    }
}

/// A prepared configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Profile {
    /// Hex SHA-256 of the canonical material.
    pub id: String,
    /// Trust anchors held.
    pub anchors: u32,
    /// Whether a client certificate is presented.
    pub mutual_tls: bool,
    /// Earliest certificate expiry, Unix seconds.
    pub not_after: Option<u64>,
    /// Whether this came from the cache.
    pub cached: bool,
}

/// Why trust material was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TlsError {
    /// No certificate in the bundle, and web roots not trusted.
    #[error("the CA bundle holds no certificate and web roots are not trusted")]
    NoCertificates,
    /// Not PEM, or a broken PEM section.
    #[error("malformed PEM: {0}")]
    MalformedPem(String),
    /// Not an X.509 certificate.
    #[error("bad certificate: {0}")]
    BadCertificate(String),
    /// A client certificate without its key.
    #[error("a client certificate was given without its private key")]
    CertificateWithoutKey,
    /// A client key without its certificate.
    #[error("a client private key was given without its certificate")]
    KeyWithoutCertificate,
    /// An unusable key.
    #[error("unusable client key: {0}")]
    BadKey(String),
    /// The key is not the certificate's.
    #[error("the client key does not match the client certificate")]
    KeyMismatch,
    /// Input over the limit (bytes).
    #[error("input larger than {0} bytes")]
    TooLarge(u32),
}

/// Cache bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheSettings {
    /// The most entries kept.
    pub capacity: u32,
    /// How long an entry stays usable after it is built.
    pub ttl: Option<Duration>,
}

/// Cache counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Answers from the cache.
    pub hits: u64,
    /// Configurations built.
    pub misses: u64,
    /// Entries dropped to make room.
    pub evictions: u64,
    /// Entries found expired and rebuilt.
    pub expirations: u64,
    /// Inputs refused.
    pub rejected: u64,
    /// Entries held.
    pub size: u32,
    /// The bound.
    pub capacity: u32,
}

impl Plugin {
    /// Sets the cache's capacity and TTL (kept across instance replacement).
    pub fn configure(&mut self, settings: CacheSettings) -> Result<(), Error> {
        let wit_settings = wit::Settings {
            capacity: settings.capacity,
            ttl_seconds: settings.ttl.map(|t| t.as_secs()),
        };
        self.call(|b, s| b.gateway_auth_tls_cache().call_configure(s, wit_settings))?;
        self.cache_settings = Some(settings);
        Ok(())
    }

    /// The configuration for `spec`, from the cache or built.
    pub fn prepare(&mut self, spec: &TrustSpec) -> Result<Profile, Error> {
        let spec = wit::TrustSpec::from(spec);
        let result = self.call(|b, s| b.gateway_auth_tls_cache().call_prepare(s, &spec))?;
        result.map(Profile::from).map_err(|e| Error::Tls(e.into()))
    }

    /// Drops the entry with this profile id; whether there was one.
    pub fn invalidate(&mut self, id: &str) -> Result<bool, Error> {
        self.call(|b, s| b.gateway_auth_tls_cache().call_invalidate(s, id))
    }

    /// Drops every entry, as a certificate reload should.
    pub fn clear(&mut self) -> Result<(), Error> {
        self.call(|b, s| b.gateway_auth_tls_cache().call_clear(s))
    }

    /// The cache's counters.
    pub fn stats(&mut self) -> Result<CacheStats, Error> {
        let s = self.call(|b, s| b.gateway_auth_tls_cache().call_stats(s))?;
        Ok(CacheStats {
            hits: s.hits,
            misses: s.misses,
            evictions: s.evictions,
            expirations: s.expirations,
            rejected: s.rejected,
            size: s.size,
            capacity: s.capacity,
        })
    }
}

impl From<&TrustSpec> for wit::TrustSpec {
    fn from(spec: &TrustSpec) -> Self {
        Self {
            ca_bundle: spec.ca_bundle.clone(),
            client_certificate: spec.client_certificate.clone(),
            client_key: spec.client_key.clone(),
            web_roots: spec.web_roots,
        }
    }
}

impl From<wit::Profile> for Profile {
    fn from(p: wit::Profile) -> Self {
        Self {
            id: p.id,
            anchors: p.anchors,
            mutual_tls: p.mutual_tls,
            not_after: p.not_after,
            cached: p.cached,
        }
    }
}

impl From<wit::TlsError> for TlsError {
    fn from(e: wit::TlsError) -> Self {
        match e {
            wit::TlsError::NoCertificates => Self::NoCertificates,
            wit::TlsError::MalformedPem(m) => Self::MalformedPem(m),
            wit::TlsError::BadCertificate(m) => Self::BadCertificate(m),
            wit::TlsError::CertificateWithoutKey => Self::CertificateWithoutKey,
            wit::TlsError::KeyWithoutCertificate => Self::KeyWithoutCertificate,
            wit::TlsError::BadKey(m) => Self::BadKey(m),
            wit::TlsError::KeyMismatch => Self::KeyMismatch,
            wit::TlsError::TooLarge(n) => Self::TooLarge(n),
        }
    }
}
