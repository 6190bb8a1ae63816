//! PEM trust material decoded into canonical DER, and the profile id computed from it.
//!
//! Decoding is cheap and done on every `prepare`, so that a cache hit costs a base64
//! decode and one SHA-256; parsing the certificates and the key is left to the build on
//! a miss (`tls::config`).

use rustls_pki_types::pem::{self, PemObject, SectionKind};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};

use gateway_auth_api::{TlsError, TrustSpec};

/// The largest PEM input accepted, per field, in bytes. A CA bundle of every public
/// root is about 250 KiB; anything past 1 MiB is a mistake or an attack.
pub const MAX_INPUT_BYTES: usize = 1024 * 1024;

/// Trust material in canonical form: what a profile id is computed from.
pub struct Material {
    /// The bundle's certificates, sorted by their DER and without duplicates, so that
    /// bundle order and repeated members do not make a new entry.
    pub anchors: Vec<CertificateDer<'static>>,
    /// The client chain (leaf first: order matters here) and its key.
    pub identity: Option<Identity>,
    /// Whether the public web roots are trusted too.
    pub web_roots: bool,
}

/// A client certificate chain and its private key, for mutual TLS.
pub struct Identity {
    /// Leaf first, then its issuers.
    pub chain: Vec<CertificateDer<'static>>,
    /// The private key of the leaf.
    pub key: PrivateKeyDer<'static>,
}

impl Material {
    /// Decodes `spec`, checking sizes and that a certificate and a key come together.
    /// Certificates and keys are parsed later, by the build on a cache miss.
    pub fn decode(spec: &TrustSpec) -> Result<Self, TlsError> {
        let key_text = spec.client_key.as_ref().map(|k| k.secret());
        for text in [
            Some(spec.ca_bundle.as_str()),
            spec.client_certificate.as_deref(),
            key_text,
        ]
        .into_iter()
        .flatten()
        {
            if text.len() > MAX_INPUT_BYTES {
                return Err(TlsError::TooLarge(MAX_INPUT_BYTES as u32));
            }
        }
        let identity = match (spec.client_certificate.as_deref(), key_text) {
            (None, None) => None,
            (Some(_), None) => return Err(TlsError::CertificateWithoutKey),
            (None, Some(_)) => return Err(TlsError::KeyWithoutCertificate),
            (Some(chain), Some(key)) => Some(Identity {
                chain: certificates(chain, "client certificate")?,
                key: private_key(key)?,
            }),
        };
        if let Some(identity) = &identity
            && identity.chain.is_empty()
        {
            return Err(TlsError::BadCertificate(
                "client certificate: no CERTIFICATE section found".into(),
            ));
        }

        let mut anchors = if spec.ca_bundle.trim().is_empty() {
            Vec::new()
        } else {
            certificates(&spec.ca_bundle, "CA bundle")?
        };
        anchors.sort_unstable_by(|a, b| a.as_ref().cmp(b.as_ref()));
        anchors.dedup_by(|a, b| a.as_ref() == b.as_ref());
        if anchors.is_empty() && !spec.web_roots {
            return Err(TlsError::NoCertificates);
        }
        Ok(Self {
            anchors,
            identity,
            web_roots: spec.web_roots,
        })
    }

    /// SHA-256 over a versioned, length-prefixed encoding of everything that changes
    /// the configuration: two specs with the same id build the same configuration.
    pub fn id(&self) -> [u8; 32] {
        fn put(hash: &mut Sha256, bytes: &[u8]) {
            hash.update((bytes.len() as u64).to_be_bytes());
            hash.update(bytes);
        }
        let mut hash = Sha256::new();
        hash.update(b"gateway-auth tls profile v1");
        hash.update([u8::from(self.web_roots)]);
        hash.update((self.anchors.len() as u64).to_be_bytes());
        for anchor in &self.anchors {
            put(&mut hash, anchor.as_ref());
        }
        match &self.identity {
            None => hash.update([0]),
            Some(identity) => {
                hash.update([1]);
                hash.update((identity.chain.len() as u64).to_be_bytes());
                for cert in &identity.chain {
                    put(&mut hash, cert.as_ref());
                }
                put(&mut hash, identity.key.secret_der());
            }
        }
        hash.finalize().into()
    }
}

/// Every CERTIFICATE section of `text`; other sections and text between sections (as in
/// commented CA bundle files) are skipped.
fn certificates(text: &str, what: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    Ok(sections(text, what)?
        .into_iter()
        .filter(|(kind, _)| *kind == SectionKind::Certificate)
        .map(|(_, der)| CertificateDer::from(der))
        .collect())
}

/// The one private key in `text`: PKCS#8, PKCS#1 (RSA) or SEC1 (EC).
fn private_key(text: &str) -> Result<PrivateKeyDer<'static>, TlsError> {
    if text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") {
        return Err(TlsError::BadKey(
            "encrypted private keys are not supported; decrypt it first".into(),
        ));
    }
    let mut keys = sections(text, "client key")?
        .into_iter()
        .filter_map(|(kind, der)| match kind {
            SectionKind::PrivateKey => Some(PrivateKeyDer::Pkcs8(der.into())),
            SectionKind::RsaPrivateKey => Some(PrivateKeyDer::Pkcs1(der.into())),
            SectionKind::EcPrivateKey => Some(PrivateKeyDer::Sec1(der.into())),
            _ => None,
        });
    let key = keys
        .next()
        .ok_or_else(|| TlsError::BadKey("no PRIVATE KEY section found".into()))?;
    if keys.next().is_some() {
        return Err(TlsError::BadKey("more than one private key given".into()));
    }
    Ok(key)
}

/// All PEM sections of `text`. Lines are trimmed first, so indentation, trailing blanks
/// and CRLF line ends do not matter. Error texts never quote the input: it may be a key.
fn sections(text: &str, what: &str) -> Result<Vec<(SectionKind, Vec<u8>)>, TlsError> {
    let mut normalized = String::with_capacity(text.len());
    for line in text.lines() {
        normalized.push_str(line.trim());
        normalized.push('\n');
    }
    let found: Vec<(SectionKind, Vec<u8>)> =
        <(SectionKind, Vec<u8>)>::pem_slice_iter(normalized.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|err| {
                TlsError::MalformedPem(format!(
                    "{what}: {}",
                    match err {
                        pem::Error::MissingSectionEnd { .. } =>
                            "a section has no END line (truncated?)",
                        pem::Error::IllegalSectionStart { .. } => "a BEGIN line is malformed",
                        pem::Error::Base64Decode(_) => "a section's base64 does not decode",
                        pem::Error::SectionTooLarge => "a section is too large",
                        _ => "unreadable",
                    }
                ))
            })?;
    if found.is_empty() && !normalized.contains("-----BEGIN ") {
        return Err(TlsError::MalformedPem(format!(
            "{what}: no PEM section found"
        )));
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::testing::{ca, client_identity};
    use gateway_auth_api::PrivateKeyPem;

    fn spec(bundle: &str) -> TrustSpec {
        TrustSpec {
            ca_bundle: bundle.into(),
            ..TrustSpec::default()
        }
    }

    fn id_of(spec: &TrustSpec) -> [u8; 32] {
        Material::decode(spec).unwrap().id()
    }

    #[test]
    fn the_same_ca_written_differently_has_one_id() {
        let (a, b) = (ca("a").pem, ca("b").pem);
        let plain = id_of(&spec(&format!("{a}{b}")));
        let crlf = format!("{a}{b}").replace('\n', "\r\n");
        assert_eq!(id_of(&spec(&crlf)), plain);
        let spaced = format!("\n\n  {}\n\t\n{b}   \n", a.replace('\n', "  \n   "));
        assert_eq!(id_of(&spec(&spaced)), plain);
        assert_eq!(id_of(&spec(&format!("{b}{a}"))), plain);
        assert_eq!(id_of(&spec(&format!("{a}{b}{a}"))), plain);
        let commented = format!("# Issuer: CN=a\n{a}\n# Issuer: CN=b\n{b}");
        assert_eq!(id_of(&spec(&commented)), plain);
    }

    #[test]
    fn options_and_identity_change_the_id() {
        let a = ca("a");
        let base = spec(&a.pem);
        let web = TrustSpec {
            web_roots: true,
            ..base.clone()
        };
        assert_ne!(id_of(&base), id_of(&web));
        let (cert1, key1) = client_identity(&a, "one");
        let (_, key2) = client_identity(&a, "two");
        let with = |cert: &str, key: &str| TrustSpec {
            client_certificate: Some(cert.into()),
            client_key: Some(PrivateKeyPem::new(key)),
            ..base.clone()
        };
        assert_ne!(id_of(&with(&cert1, &key1)), id_of(&base));
        assert_ne!(id_of(&with(&cert1, &key1)), id_of(&with(&cert1, &key2)));
    }

    #[test]
    fn each_bad_input_has_its_own_error() {
        let a = ca("a");
        let (cert, key) = client_identity(&a, "c");
        let decode = |s: TrustSpec| Material::decode(&s).err();
        assert_eq!(decode(spec("")), Some(TlsError::NoCertificates));
        assert!(
            matches!(decode(spec("garbage, not pem")), Some(TlsError::MalformedPem(m)) if m.contains("no PEM section"))
        );
        let truncated = &a.pem[..a.pem.len() - 40];
        assert!(
            matches!(decode(spec(truncated)), Some(TlsError::MalformedPem(m)) if m.contains("no END line"))
        );
        let only_key = key.clone();
        assert_eq!(decode(spec(&only_key)), Some(TlsError::NoCertificates));
        assert_eq!(
            decode(TrustSpec {
                client_certificate: Some(cert.clone()),
                ..spec(&a.pem)
            }),
            Some(TlsError::CertificateWithoutKey)
        );
        assert_eq!(
            decode(TrustSpec {
                client_key: Some(PrivateKeyPem::new(key.clone())),
                ..spec(&a.pem)
            }),
            Some(TlsError::KeyWithoutCertificate)
        );
        assert_eq!(
            decode(spec(&"x".repeat(MAX_INPUT_BYTES + 1))),
            Some(TlsError::TooLarge(MAX_INPUT_BYTES as u32))
        );
        let broken_base64 = a.pem.replacen("MII", "M*I", 1);
        assert!(
            matches!(decode(spec(&broken_base64)), Some(TlsError::MalformedPem(m)) if m.contains("base64"))
        );
    }

    #[test]
    fn key_errors_never_quote_the_key() {
        let a = ca("a");
        let (cert, key) = client_identity(&a, "c");
        let broken = key.replacen("\n", "\n*", 2);
        let err = Material::decode(&TrustSpec {
            client_certificate: Some(cert),
            client_key: Some(PrivateKeyPem::new(broken.clone())),
            ..spec(&a.pem)
        })
        .err()
        .unwrap();
        let body_line = broken.lines().nth(2).unwrap();
        assert!(!format!("{err} {err:?}").contains(body_line));
    }

    #[test]
    fn web_roots_alone_need_no_bundle() {
        let m = Material::decode(&TrustSpec {
            web_roots: true,
            ..TrustSpec::default()
        })
        .unwrap();
        assert!(m.anchors.is_empty());
    }
}
