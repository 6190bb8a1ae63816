//! Validating decoded material and building the `rustls::ClientConfig` from it: the
//! expensive half of a `prepare`, done only on a cache miss.

use std::sync::Arc;

use rustls::client::ClientConfig;
use rustls::client::ResolvesClientCert;
use rustls::client::Resumption;
use rustls::crypto::ring as provider;
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, SignatureScheme};
use rustls_pki_types::CertificateDer;
use x509_cert::der::{Decode, Encode};

use gateway_auth_api::TlsError;

use super::material::Material;

/// A built configuration and what the profile reports about it.
pub struct Built {
    /// The configuration every connection with this material uses; its session store
    /// gives TLS resumption across connections.
    pub config: Arc<ClientConfig>,
    /// Trust anchors: the bundle's plus the web roots, if trusted.
    pub anchors: u32,
    /// The earliest `notAfter` of the bundle and the client chain, in Unix seconds.
    pub not_after: Option<u64>,
}

/// The one client certificate and key of a configuration, offered whenever the server
/// asks.
#[derive(Debug)]
struct ClientIdentity(Arc<CertifiedKey>);

impl ResolvesClientCert for ClientIdentity {
    fn resolve(&self, _: &[&[u8]], schemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        // Offer it only if the server accepts a scheme the key can sign with.
        self.0.key.choose_scheme(schemes).map(|_| self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// Session tickets kept per configuration: eight per server name (rustls keeps up to
/// eight TLS 1.3 tickets for one name), for four names.
const RESUMPTION_TICKETS: usize = 32;

/// The one provider every configuration shares: it holds no state of its own.
fn shared_provider() -> Arc<rustls::crypto::CryptoProvider> {
    thread_local! {
        static PROVIDER: Arc<rustls::crypto::CryptoProvider> = Arc::new(guest_provider());
    }
    PROVIDER.with(Arc::clone)
}

/// ring's provider with ChaCha20-Poly1305 preferred, in TLS 1.3 and 1.2 alike.
///
/// WebAssembly has no AES instructions: measured in the plugin with `gateway-auth
/// bench`, ChaCha20-Poly1305 decrypts 300-316 MiB/s against 56-71 MiB/s for AES-GCM
/// (natively, with AES-NI, AES-GCM is the faster). Servers that honour the client's
/// order then pick ChaCha20; the others are unaffected.
pub fn guest_provider() -> rustls::crypto::CryptoProvider {
    let mut crypto = provider::default_provider();
    // A stable sort: the AES suites keep their order behind.
    crypto.cipher_suites.sort_by_key(|suite| {
        suite.suite() != rustls::CipherSuite::TLS13_CHACHA20_POLY1305_SHA256
            && suite.suite() != rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
            && suite.suite() != rustls::CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
    });
    crypto
}

/// Parses every certificate and the key, checks that the key belongs to the leaf, and
/// builds the configuration (ring provider, TLS 1.2 and 1.3).
pub fn build(material: &Material) -> Result<Built, TlsError> {
    let mut not_after: Option<u64> = None;
    // Parses one certificate and notes its expiry.
    let mut parse = |cert: &CertificateDer<'_>, what: &str, index: usize| {
        let parsed = x509_cert::Certificate::from_der(cert.as_ref()).map_err(|e| {
            TlsError::BadCertificate(format!("{what} certificate {}: {e}", index + 1))
        })?;
        let expiry = parsed
            .tbs_certificate
            .validity
            .not_after
            .to_unix_duration()
            .as_secs();
        not_after = Some(not_after.map_or(expiry, |t| t.min(expiry)));
        Ok::<_, TlsError>(parsed)
    };

    let mut roots = RootCertStore::empty();
    for (index, anchor) in material.anchors.iter().enumerate() {
        parse(anchor, "CA bundle", index)?;
        roots.add(anchor.clone()).map_err(|e| {
            TlsError::BadCertificate(format!("CA bundle certificate {}: {e}", index + 1))
        })?;
    }
    if material.web_roots {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    let anchors = roots.len() as u32;

    let provider = shared_provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::BadCertificate(format!("tls configuration: {e}")))?
        .with_root_certificates(roots);

    let config = match &material.identity {
        None => builder.with_no_client_auth(),
        Some(identity) => {
            let mut leaf = None;
            for (index, cert) in identity.chain.iter().enumerate() {
                let parsed = parse(cert, "client", index)?;
                leaf.get_or_insert(parsed);
            }
            let leaf =
                leaf.ok_or_else(|| TlsError::BadCertificate("no client certificate".into()))?;
            let key = provider
                .key_provider
                .load_private_key(identity.key.clone_key())
                .map_err(|_| TlsError::BadKey("not an RSA, ECDSA or Ed25519 private key".into()))?;
            // The key is matched to the leaf by the public key the certificate carries,
            // parsed as X.509 of any version: webpki (which rustls uses for this check)
            // reads only v3, and v1 client certificates are common in home-grown PKIs.
            let leaf_key = leaf
                .tbs_certificate
                .subject_public_key_info
                .to_der()
                .map_err(|e| TlsError::BadCertificate(format!("client certificate 1: {e}")))?;
            if key
                .public_key()
                .is_some_and(|ours| ours.as_ref() != leaf_key.as_slice())
            {
                return Err(TlsError::KeyMismatch);
            }
            let certified = Arc::new(CertifiedKey::new(identity.chain.clone(), key));
            builder.with_client_cert_resolver(Arc::new(ClientIdentity(certified)))
        }
    };
    let mut config = config;
    // rustls keeps tickets for 32 servers per configuration by default, allocated up
    // front: most of a profile's memory. A profile is one upstream's trust, used for a
    // few names at most.
    config.resumption = Resumption::in_memory_sessions(RESUMPTION_TICKETS);
    Ok(Built {
        config: Arc::new(config),
        anchors,
        not_after,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::testing::{ca, client_identity};
    use gateway_auth_api::PrivateKeyPem;
    use gateway_auth_api::TrustSpec;

    fn build_spec(spec: TrustSpec) -> Result<Built, TlsError> {
        build(&Material::decode(&spec)?)
    }

    #[test]
    fn a_bundle_reports_its_anchors_and_earliest_expiry() {
        let (a, b) = (ca("a"), ca("b"));
        let built = build_spec(TrustSpec {
            ca_bundle: format!("{}{}", a.pem, b.pem),
            ..TrustSpec::default()
        })
        .unwrap();
        assert_eq!(built.anchors, 2);
        assert_eq!(built.not_after, Some(a.not_after.min(b.not_after)));
    }

    #[test]
    fn web_roots_add_the_public_anchors() {
        let built = build_spec(TrustSpec {
            web_roots: true,
            ..TrustSpec::default()
        })
        .unwrap();
        assert_eq!(built.anchors as usize, webpki_roots::TLS_SERVER_ROOTS.len());
        assert_eq!(built.not_after, None);
    }

    #[test]
    fn a_key_of_another_certificate_is_a_mismatch() {
        let a = ca("a");
        let (cert, _) = client_identity(&a, "one");
        let (_, other_key) = client_identity(&a, "two");
        let result = build_spec(TrustSpec {
            ca_bundle: a.pem.clone(),
            client_certificate: Some(cert),
            client_key: Some(PrivateKeyPem::new(other_key)),
            web_roots: false,
        });
        assert_eq!(result.err(), Some(TlsError::KeyMismatch));
    }

    #[test]
    fn a_version_1_client_certificate_is_matched_to_its_key() {
        let spec = |key: String| TrustSpec {
            ca_bundle: include_str!("fixtures/v1-ca.pem").into(),
            client_certificate: Some(include_str!("fixtures/v1-client.pem").into()),
            client_key: Some(PrivateKeyPem::new(key)),
            web_roots: false,
        };
        let built = build_spec(spec(include_str!("fixtures/v1-client.key").into())).unwrap();
        assert!(built.config.client_auth_cert_resolver.has_certs());
        let (_, other_key) = client_identity(&ca("other"), "two");
        assert_eq!(
            build_spec(spec(other_key)).err(),
            Some(TlsError::KeyMismatch)
        );
    }

    #[test]
    fn a_matching_identity_builds_a_mutual_tls_configuration() {
        let a = ca("a");
        let (cert, key) = client_identity(&a, "one");
        let built = build_spec(TrustSpec {
            ca_bundle: a.pem.clone(),
            client_certificate: Some(cert),
            client_key: Some(PrivateKeyPem::new(key)),
            web_roots: false,
        })
        .unwrap();
        assert!(built.config.client_auth_cert_resolver.has_certs());
    }

    #[test]
    fn a_certificate_section_that_is_not_x509_is_a_bad_certificate() {
        let fake = "-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n";
        let result = build_spec(TrustSpec {
            ca_bundle: fake.into(),
            ..TrustSpec::default()
        });
        assert!(
            matches!(result.err(), Some(TlsError::BadCertificate(m)) if m.contains("CA bundle certificate 1"))
        );
    }

    #[test]
    fn garbage_in_a_key_section_is_a_bad_key() {
        let a = ca("a");
        let (cert, _) = client_identity(&a, "one");
        let result = build_spec(TrustSpec {
            ca_bundle: a.pem.clone(),
            client_certificate: Some(cert),
            client_key: Some(PrivateKeyPem::new(
                "-----BEGIN PRIVATE KEY-----\naGVsbG8gd29ybGQ=\n-----END PRIVATE KEY-----\n",
            )),
            web_roots: false,
        });
        assert!(matches!(result.err(), Some(TlsError::BadKey(_))));
    }

    #[test]
    fn chacha20_comes_first_in_tls13_and_in_tls12() {
        let suites: Vec<rustls::CipherSuite> = super::guest_provider()
            .cipher_suites
            .iter()
            .map(|s| s.suite())
            .collect();
        let first = |tls13: bool| {
            suites
                .iter()
                .find(|s| format!("{s:?}").starts_with("TLS13_") == tls13)
                .copied()
        };
        assert_eq!(
            first(true),
            Some(rustls::CipherSuite::TLS13_CHACHA20_POLY1305_SHA256)
        );
        assert_eq!(
            first(false),
            Some(rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256)
        );
        // Nothing dropped: AES-GCM still there for servers that want it.
        assert_eq!(
            suites.len(),
            rustls::crypto::ring::default_provider().cipher_suites.len()
        );
    }
}
