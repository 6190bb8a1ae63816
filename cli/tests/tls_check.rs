//! `gateway-auth tls check` on good, expired and mismatched material, made with rcgen.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};

mod common;
use common::{errors, stdout};

fn tls_check(args: &[&Path]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_gateway-auth"));
    command.args(["tls", "check", "--ca"]).arg(args[0]);
    if let [_, cert, key] = args {
        command.arg("--cert").arg(cert).arg("--key").arg(key);
    }
    command
        .env("RUST_BACKTRACE", "1")
        .output()
        .expect("the binary runs")
}

fn days_from_now(days: i64) -> SystemTime {
    let offset = Duration::from_secs(days.unsigned_abs() * 86_400);
    if days >= 0 {
        SystemTime::now() + offset
    } else {
        SystemTime::now() - offset
    }
}

struct Material {
    dir: tempfile::TempDir,
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Material {
    /// A CA valid until `days` from now, written as `ca.pem`.
    fn new(ca_days: i64) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "test CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.not_before = days_from_now(-30).into();
        params.not_after = days_from_now(ca_days).into();
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), issuer.pem()).unwrap();
        Self { dir, issuer }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A client certificate valid until `days` from now and its key, written as
    /// `NAME.pem` and `NAME.key`.
    fn client(&self, name: &str, days: i64) -> (PathBuf, PathBuf) {
        let mut params = CertificateParams::new(vec![format!("{name}.client.test")]).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.not_before = days_from_now(-30).into();
        params.not_after = days_from_now(days).into();
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let (cert_path, key_path) = (
            self.path(&format!("{name}.pem")),
            self.path(&format!("{name}.key")),
        );
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        (cert_path, key_path)
    }
}

#[test]
fn tls_check_prints_the_profile_with_the_earliest_expiry_and_how_far_it_is() {
    let material = Material::new(3650);
    let (cert, key) = material.client("gw", 365);
    let output = tls_check(&[&material.path("ca.pem"), &cert, &key]);
    let shown = stdout(&output);
    assert!(output.status.success(), "{shown}{:?}", errors(&output));
    assert!(shown.contains("anchors:     1"), "{shown}");
    assert!(shown.contains("mutual TLS:  true"), "{shown}");
    // The client certificate expires first: in 364 or 365 days, as a UTC date.
    let line = shown.lines().find(|l| l.starts_with("not after:")).unwrap();
    assert!(
        line.contains(" UTC (in 364 days)") || line.contains(" UTC (in 365 days)"),
        "{line}"
    );
    let id = shown.lines().next().unwrap();
    assert_eq!(
        id.trim_start_matches("profile id:").trim().len(),
        64,
        "{id}"
    );

    let output = tls_check(&[&material.path("ca.pem")]);
    assert!(output.status.success(), "{:?}", errors(&output));
    assert!(stdout(&output).contains("mutual TLS:  false"));
    assert!(
        stdout(&output).contains("(in 3649 days)") || stdout(&output).contains("(in 3650 days)")
    );
}

#[test]
fn tls_check_refuses_an_expired_client_certificate_in_one_line() {
    let material = Material::new(3650);
    let (cert, key) = material.client("old", -2);
    let output = tls_check(&[&material.path("ca.pem"), &cert, &key]);
    assert!(!output.status.success());
    let errors = errors(&output);
    assert_eq!(errors.len(), 1, "{errors:?}");
    let error = &errors[0];
    assert!(
        error.starts_with("error: ")
            && error.contains("old.pem")
            && error.contains("the client certificate chain holds a certificate that expired on")
            && error.contains("days ago)"),
        "{error}"
    );
    assert!(stdout(&output).is_empty(), "{}", stdout(&output));
}

#[test]
fn tls_check_refuses_an_expired_ca_bundle() {
    let material = Material::new(-1);
    let output = tls_check(&[&material.path("ca.pem")]);
    assert!(!output.status.success());
    let errors = errors(&output);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("the CA bundle holds a certificate that expired on"),
        "{errors:?}"
    );
}

#[test]
fn tls_check_refuses_a_key_that_is_not_the_certificates() {
    let material = Material::new(3650);
    let (cert, _) = material.client("gw", 365);
    let (_, other_key) = material.client("other", 365);
    let output = tls_check(&[&material.path("ca.pem"), &cert, &other_key]);
    assert!(!output.status.success());
    let errors = errors(&output);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("the client key does not match the client certificate")
            && errors[0].contains("gw.pem")
            && errors[0].contains("other.key"),
        "{errors:?}"
    );
    assert!(!String::from_utf8_lossy(&output.stderr).contains("panicked"));
}
