//! The `tls-cache` records: trust material, cache settings, profiles, figures, errors.

use core::fmt;

use crate::secret::PrivateKeyPem;

/// The trust material for one upstream (WIT `trust-spec`).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct TrustSpec {
    /// PEM text with one or more CA certificates; may be empty only when `web_roots`
    /// is set.
    pub ca_bundle: String,
    /// PEM text with the client certificate, then its issuers, for mutual TLS.
    pub client_certificate: Option<String>,
    /// PEM text with the private key of `client_certificate`.
    pub client_key: Option<PrivateKeyPem>,
    /// Whether the public web roots are trusted as well as `ca_bundle`.
    pub web_roots: bool,
}

impl TrustSpec {
    /// Trusts exactly the CAs in `pem`.
    pub fn ca(pem: impl Into<String>) -> Self {
        Self {
            ca_bundle: pem.into(),
            ..Self::default()
        }
    }

    /// Trusts the public web roots only.
    pub fn web_roots() -> Self {
        Self {
            web_roots: true,
            ..Self::default()
        }
    }

    /// Adds a client certificate chain and its key, for mutual TLS.
    pub fn with_identity(
        mut self,
        certificate_pem: impl Into<String>,
        key_pem: impl Into<PrivateKeyPem>,
    ) -> Self {
        self.client_certificate = Some(certificate_pem.into());
        self.client_key = Some(key_pem.into());
        self
    }
}

impl fmt::Debug for TrustSpec {
    /// Sizes and presence only: a bundle can be hundreds of kilobytes, and the key is
    /// a secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrustSpec")
            .field("ca_bundle_bytes", &self.ca_bundle.len())
            .field("client_certificate", &self.client_certificate.is_some())
            .field("client_key", &self.client_key)
            .field("web_roots", &self.web_roots)
            .finish()
    }
}

/// The capacity of a cache nobody configured.
pub const DEFAULT_CACHE_CAPACITY: u32 = 256;

/// Cache bounds (WIT `settings`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheSettings {
    /// The most entries kept; at least 1. Lowering it evicts the least recently used
    /// entries down to the new bound.
    pub capacity: u32,
    /// How long an entry stays usable after it was built, in seconds; `None` keeps it
    /// until evicted.
    pub ttl_seconds: Option<u64>,
    /// Which entry a full cache gives up.
    pub policy: EvictionPolicy,
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self {
            capacity: DEFAULT_CACHE_CAPACITY,
            ttl_seconds: None,
            policy: EvictionPolicy::default(),
        }
    }
}

/// Which entry a full cache gives up, one at a time (WIT `eviction-policy`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EvictionPolicy {
    /// The least recently used.
    #[default]
    Lru,
    /// LRU behind a TinyLFU admission filter: the newest entries wait in a small
    /// window, and one leaving it replaces the LRU entry only if it was asked for more
    /// often. Resists scans and round-robins over more upstreams than the capacity.
    TinyLfu,
}

impl EvictionPolicy {
    /// The name used in configuration and metrics: `lru` or `tiny-lfu`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Lru => "lru",
            Self::TinyLfu => "tiny-lfu",
        }
    }
}

/// What a prepared configuration is (WIT `profile`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Profile {
    /// Hex SHA-256 over the canonical DER material and options: the same CA given as
    /// differently wrapped PEM text has the same id.
    pub id: String,
    /// How many trust anchors the configuration holds (bundle plus web roots).
    pub anchors: u32,
    /// Whether a client certificate is presented.
    pub mutual_tls: bool,
    /// The earliest `notAfter` among the bundle's and the client chain's certificates,
    /// Unix seconds; `None` when only web roots are trusted.
    pub not_after: Option<u64>,
    /// Whether this answer came from the cache.
    pub cached: bool,
}

/// The cache's counters (WIT `cache-stats`): since the plugin started, or since
/// `clear` for `size` only.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// `prepare` and `connect` calls answered from the cache.
    pub hits: u64,
    /// `prepare` calls that built a configuration.
    pub misses: u64,
    /// Entries dropped to make room for a new one.
    pub evictions: u64,
    /// Entries found expired and rebuilt.
    pub expirations: u64,
    /// `prepare` calls refused for bad input.
    pub rejected: u64,
    /// Entries held now.
    pub size: u32,
    /// The most entries held.
    pub capacity: u32,
}

/// Why trust material was rejected (WIT `tls-error`). Nothing is cached when it is.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlsError {
    /// The bundle holds no certificate, and web roots are not trusted either.
    NoCertificates,
    /// The text is not PEM, or a PEM section is truncated or its base64 is broken; the
    /// text says which input and where.
    MalformedPem(String),
    /// A certificate is not a parsable X.509 certificate; the text says which.
    BadCertificate(String),
    /// A client certificate was given without its key.
    CertificateWithoutKey,
    /// A client key was given without its certificate.
    KeyWithoutCertificate,
    /// The client key is not a usable private key; the text says why.
    BadKey(String),
    /// The client key does not belong to the client certificate.
    KeyMismatch,
    /// An input is larger than the limit, in bytes, carried here.
    TooLarge(u32),
    /// `connect` named a profile id the cache does not hold (never prepared, evicted or
    /// expired): prepare the spec again.
    UnknownProfile,
    /// The server name is neither a DNS name nor an IP address; the text says why.
    BadServerName(String),
    /// The server's certificate was refused (unknown issuer, wrong name, expired...);
    /// the text says why.
    PeerCertificate(String),
    /// The peer ended the session with a fatal alert, named in the text (a server that
    /// refuses the client certificate does this).
    PeerAlert(String),
    /// The peer sent bytes that are not TLS, or broke the protocol; the text says how.
    Protocol(String),
    /// The session is closed (by `close`, or after an error): nothing more moves.
    Closed,
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoCertificates => {
                f.write_str("the CA bundle holds no certificate and web roots are not trusted")
            }
            Self::MalformedPem(why) => write!(f, "malformed PEM: {why}"),
            Self::BadCertificate(why) => write!(f, "bad certificate: {why}"),
            Self::CertificateWithoutKey => {
                f.write_str("a client certificate was given without its private key")
            }
            Self::KeyWithoutCertificate => {
                f.write_str("a client private key was given without its certificate")
            }
            Self::BadKey(why) => write!(f, "unusable client key: {why}"),
            Self::KeyMismatch => {
                f.write_str("the client key does not match the client certificate")
            }
            Self::TooLarge(limit) => write!(f, "input larger than {limit} bytes"),
            Self::UnknownProfile => {
                f.write_str("no cached configuration has this profile id: prepare it again")
            }
            Self::BadServerName(why) => write!(f, "bad server name: {why}"),
            Self::PeerCertificate(why) => write!(f, "server certificate refused: {why}"),
            Self::PeerAlert(alert) => write!(f, "the peer sent a fatal alert: {alert}"),
            Self::Protocol(why) => write!(f, "TLS protocol error: {why}"),
            Self::Closed => f.write_str("the TLS session is closed"),
        }
    }
}

impl std::error::Error for TlsError {}

/// Where an upstream TLS session is (WIT `tls-state`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsState {
    /// The handshake is under way; plaintext given now is sent when it ends.
    Handshaking,
    /// Application data moves both ways.
    Open,
    /// The peer sent close_notify: no more data will arrive; this side may still send.
    PeerClosed,
    /// This side closed the session, or it failed: nothing more moves.
    Closed,
}

/// What one `advance` produced (WIT `tls-output`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsOutput {
    /// Ciphertext for the host to write to the socket.
    pub outgoing: Vec<u8>,
    /// Application data that arrived.
    pub plaintext: Vec<u8>,
    /// Where the session is now.
    pub state: TlsState,
}

/// What a session negotiated (WIT `tls-info`); `None` until the handshake says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsInfo {
    /// The ALPN protocol the server chose.
    pub alpn: Option<String>,
    /// The TLS version, as `TLSv1_3`.
    pub version: Option<String>,
    /// The cipher suite, as `TLS13_CHACHA20_POLY1305_SHA256`.
    pub cipher_suite: Option<String>,
    /// Whether the handshake resumed an earlier session of the same profile.
    pub resumed: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_of_a_trust_spec_shows_no_key_and_no_bundle_text() {
        let spec = TrustSpec::ca("-----BEGIN CERTIFICATE-----abc")
            .with_identity("cert", "-----BEGIN PRIVATE KEY-----secret");
        let shown = format!("{spec:?}");
        assert!(
            !shown.contains("secret") && !shown.contains("BEGIN"),
            "{shown}"
        );
        assert!(shown.contains("PrivateKeyPem([redacted])"), "{shown}");
    }
}
