//! Apple-like push certificates made at test time, in every form users
//! have them: `.p12` from openssl (modern, `-legacy`, empty password), PEM as
//! `openssl pkcs12 -clcerts -nodes` writes it (with `Bag Attributes`), and
//! separate certificate and key files (PKCS#8, PKCS#1, SEC1).

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DnType, IsCa, KeyPair, KeyUsagePurpose,
};

pub const PASSWORD: &str = "s3cret pass";

/// Which environment the certificate is for.
#[derive(Clone, Copy)]
pub enum Env {
    Development,
    Production,
    Universal,
}

/// The test "Apple WWDR" CA that signs push certificates.
pub struct Ca {
    pub pem_path: PathBuf,
    cert: rcgen::Certificate,
    key: KeyPair,
}

pub fn ca(dir: &Path) -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(
        DnType::CommonName,
        "Test Apple Worldwide Developer Relations CA",
    );
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let cert = params.self_signed(&key).unwrap();
    let pem_path = dir.join("wwdr-ca.pem");
    std::fs::write(&pem_path, cert.pem()).unwrap();
    Ca {
        pem_path,
        cert,
        key,
    }
}

/// Files of one push certificate.
pub struct PushCert {
    pub cert_pem: PathBuf,
    pub key_pkcs8: PathBuf,
    /// PKCS#1 (RSA) or SEC1 (EC) form of the key.
    pub key_traditional: PathBuf,
    pub p12_modern: PathBuf,
    pub p12_legacy: PathBuf,
    pub p12_empty: PathBuf,
    /// `openssl pkcs12 -in cert.p12 -out cert.pem -clcerts -nodes`.
    pub combined_pem: PathBuf,
}

pub struct Spec<'a> {
    pub name: &'a str,
    /// The subject UID; empty for none.
    pub bundle: &'a str,
    /// Topics in Apple's extension; empty for an old-style certificate
    /// (bundle id only).
    pub topics: &'a [&'a str],
    pub env: Env,
    /// Validity in days from now.
    pub not_before_days: i64,
    pub not_after_days: i64,
    pub rsa: bool,
}

impl Default for Spec<'_> {
    fn default() -> Self {
        Spec {
            name: "push",
            bundle: "com.example.app",
            topics: &[
                "com.example.app",
                "com.example.app.voip",
                "com.example.app.complication",
            ],
            env: Env::Universal,
            not_before_days: -1,
            not_after_days: 365,
            rsa: true,
        }
    }
}

/// Runs openssl, failing the test with its stderr if it fails.
pub fn openssl(args: &[&str]) {
    let out = super::program(super::Prerequisite::Openssl)
        .args(args)
        .output()
        .expect("openssl is installed");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Apple's topics extension: SEQUENCE { UTF8String topic, SEQUENCE { UTF8String kind } ... }.
fn topics_extension(topics: &[&str]) -> Vec<u8> {
    fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        let len = content.len();
        if len < 0x80 {
            out.push(len as u8);
        } else if len < 0x100 {
            out.extend_from_slice(&[0x81, len as u8]);
        } else {
            out.extend_from_slice(&[0x82, (len >> 8) as u8, len as u8]);
        }
        out.extend_from_slice(content);
        out
    }
    let mut body = Vec::new();
    for t in topics {
        let kind = if t.ends_with(".voip") {
            "voip"
        } else if t.ends_with(".complication") {
            "complication"
        } else {
            "app"
        };
        body.extend(tlv(0x0c, t.as_bytes()));
        body.extend(tlv(0x30, &tlv(0x0c, kind.as_bytes())));
    }
    tlv(0x30, &body)
}

pub fn push_cert(dir: &Path, ca: &Ca, spec: Spec) -> PushCert {
    let p = |suffix: &str| dir.join(format!("{}{suffix}", spec.name));
    let key_pkcs8 = p("-key.pem");
    let key_traditional = p("-key-trad.pem");
    let key_path = key_pkcs8.to_str().unwrap().to_string();
    if spec.rsa {
        openssl(&[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            &key_path,
        ]);
        openssl(&[
            "rsa",
            "-in",
            &key_path,
            "-traditional",
            "-out",
            key_traditional.to_str().unwrap(),
        ]);
    } else {
        std::fs::write(&key_pkcs8, KeyPair::generate().unwrap().serialize_pem()).unwrap();
        openssl(&[
            "ec",
            "-in",
            &key_path,
            "-out",
            key_traditional.to_str().unwrap(),
        ]);
    }
    let key = KeyPair::from_pem(&std::fs::read_to_string(&key_pkcs8).unwrap()).unwrap();

    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    let cn = match spec.env {
        Env::Development => format!("Apple Development IOS Push Services: {}", spec.bundle),
        Env::Production => format!("Apple Production IOS Push Services: {}", spec.bundle),
        Env::Universal => format!("Apple Push Services: {}", spec.bundle),
    };
    // An empty bundle: no UID, a certificate that names no topic.
    if !spec.bundle.is_empty() {
        params.distinguished_name.push(
            DnType::CustomDnType(vec![0, 9, 2342, 19200300, 100, 1, 1]),
            spec.bundle,
        );
    }
    params.distinguished_name.push(DnType::CommonName, cn);
    params
        .distinguished_name
        .push(DnType::OrganizationalUnitName, "TEAM123456");
    params
        .distinguished_name
        .push(DnType::OrganizationName, "Example Inc.");
    params.distinguished_name.push(DnType::CountryName, "US");
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now + time::Duration::days(spec.not_before_days);
    params.not_after = now + time::Duration::days(spec.not_after_days);
    let null = vec![0x05, 0x00];
    let mut exts = Vec::new();
    if matches!(spec.env, Env::Development | Env::Universal) {
        exts.push(CustomExtension::from_oid_content(
            &[1, 2, 840, 113635, 100, 6, 3, 1],
            null.clone(),
        ));
    }
    if matches!(spec.env, Env::Production | Env::Universal) {
        exts.push(CustomExtension::from_oid_content(
            &[1, 2, 840, 113635, 100, 6, 3, 2],
            null,
        ));
    }
    if !spec.topics.is_empty() {
        exts.push(CustomExtension::from_oid_content(
            &[1, 2, 840, 113635, 100, 6, 3, 6],
            topics_extension(spec.topics),
        ));
    }
    params.custom_extensions = exts;
    let cert = params.signed_by(&key, &ca.cert, &ca.key).unwrap();
    let cert_pem = p("-cert.pem");
    std::fs::write(&cert_pem, cert.pem()).unwrap();

    let (cert_s, key_s, ca_s) = (
        cert_pem.to_str().unwrap(),
        key_path.as_str(),
        ca.pem_path.to_str().unwrap(),
    );
    let p12_modern = p("-modern.p12");
    let p12_legacy = p("-legacy.p12");
    let p12_empty = p("-empty.p12");
    let pass = format!("pass:{PASSWORD}");
    let export = |out: &Path, pass: &str, extra: &[&str]| {
        let mut args = vec![
            "pkcs12",
            "-export",
            "-in",
            cert_s,
            "-inkey",
            key_s,
            "-certfile",
            ca_s,
            "-name",
            "Apple Push Services",
            "-passout",
            pass,
            "-out",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        openssl(&args);
    };
    export(&p12_modern, &pass, &[]);
    export(&p12_legacy, &pass, &["-legacy"]);
    export(&p12_empty, "pass:", &[]);
    let combined_pem = p("-combined.pem");
    openssl(&[
        "pkcs12",
        "-in",
        p12_modern.to_str().unwrap(),
        "-out",
        combined_pem.to_str().unwrap(),
        "-clcerts",
        "-nodes",
        "-passin",
        &pass,
    ]);
    PushCert {
        cert_pem,
        key_pkcs8,
        key_traditional,
        p12_modern,
        p12_legacy,
        p12_empty,
        combined_pem,
    }
}
