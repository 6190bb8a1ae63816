//! Certificates made on the fly for the TLS unit tests.

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, date_time_ymd,
};

/// A CA: its PEM, its `notAfter` in Unix seconds, and the issuer that signs with it.
pub struct TestCa {
    pub pem: String,
    pub not_after: u64,
    pub issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A self-signed CA named `name`, expiring in a year derived from the name so that
/// different CAs have different expiries.
pub fn ca(name: &str) -> TestCa {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let year = 2040 + name.bytes().map(i32::from).sum::<i32>() % 50;
    params.not_after = date_time_ymd(year, 1, 1);
    let not_after = params.not_after.unix_timestamp() as u64;
    let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
    TestCa {
        pem: issuer.pem(),
        not_after,
        issuer,
    }
}

/// A client certificate issued by `ca` and its PKCS#8 key, both PEM.
pub fn client_identity(ca: &TestCa, name: &str) -> (String, String) {
    let san = if name.parse::<std::net::IpAddr>().is_ok() {
        name.to_string()
    } else {
        format!("{name}.client.test")
    };
    let mut params = CertificateParams::new(vec![san]).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca.issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

/// A server certificate for `host` (a name or an IP address) issued by `ca`, and its key.
pub fn server_identity(ca: &TestCa, host: &str) -> (String, String) {
    client_identity(ca, host)
}
