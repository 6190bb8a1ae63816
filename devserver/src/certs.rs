//! Key material made at start: a CA, the server certificate it signs, the mTLS client's
//! certificate, the signing keys, and the rustls configuration built from them.

use std::sync::{Arc, OnceLock};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::{Digest, Sha256};

use crate::jwt::SigningKey;

/// Everything cryptographic one server owns.
pub(crate) struct Keys {
    pub ca_pem: String,
    pub tls: Arc<rustls::ServerConfig>,
    pub mtls_cert_pem: String,
    pub mtls_key_pem: String,
    /// SHA-256 of the mTLS client certificate's DER: what `tls_client_auth` compares.
    pub mtls_cert_sha256: [u8; 32],
    pub client_es256: SigningKey,
    pub jwt_bearer_issuer: SigningKey,
    /// Signs the ID tokens of `openid` requests.
    pub id_token: SigningKey,
}

impl Keys {
    pub(crate) fn generate() -> anyhow::Result<Keys> {
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "gateway-auth devserver CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_key = KeyPair::generate()?;
        let ca_cert = ca_params.self_signed(&ca_key)?;
        let ca = Issuer::new(ca_params, ca_key);

        let leaf = |sans: Vec<String>, cn: &str, usage| -> anyhow::Result<_> {
            let mut params = CertificateParams::new(sans)?;
            params.distinguished_name.push(DnType::CommonName, cn);
            params.extended_key_usages = vec![usage];
            let key = KeyPair::generate()?;
            let cert = params.signed_by(&key, &ca)?;
            Ok((cert, key))
        };
        let sans = vec!["127.0.0.1".to_owned(), "localhost".to_owned()];
        let (server_cert, server_key) =
            leaf(sans, "127.0.0.1", ExtendedKeyUsagePurpose::ServerAuth)?;
        let (mtls_cert, mtls_key) = leaf(
            vec![],
            crate::defaults::MTLS_CLIENT_ID,
            ExtendedKeyUsagePurpose::ClientAuth,
        )?;

        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca_cert.der().clone())?;
        // Ask every client for a certificate but let those without one in: only the
        // tls_client_auth client needs it, everyone else must still connect.
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .allow_unauthenticated()
                .build()?;
        let server_key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der()));
        let mut tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_client_cert_verifier(verifier)
            .with_single_cert(
                vec![CertificateDer::from(server_cert.der().to_vec())],
                server_key,
            )?;
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];

        Ok(Keys {
            ca_pem: ca_cert.pem(),
            tls: Arc::new(tls),
            mtls_cert_pem: mtls_cert.pem(),
            mtls_key_pem: mtls_key.serialize_pem(),
            mtls_cert_sha256: Sha256::digest(mtls_cert.der()).into(),
            client_es256: SigningKey::generate_es256()?,
            jwt_bearer_issuer: SigningKey::generate_es256()?,
            id_token: SigningKey::generate_es256()?,
        })
    }
}

/// The RS256 client key: fixed and shipped with the server, because ring cannot make
/// RSA keys and this server is for development only (its client keys are handed to the
/// clients anyway). Parsed once per process.
pub(crate) fn rsa_client_key() -> &'static SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(|| SigningKey::fixed_rs256().expect("the bundled RS256 key parses"))
}
