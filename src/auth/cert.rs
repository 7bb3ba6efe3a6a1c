//! Certificate authentication (the older way): TLS client certificates
//! from a `.p12` or PEM, and what Apple put in them (bundle id, topics,
//! environment, expiry).

use std::fmt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use rustls_pki_types::pem::{SectionKind, SliceIter};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::Serialize;
use zeroize::Zeroizing;

use crate::error::{CredentialProblem, Error, Result};
use crate::notification::PushType;

/// OID of Apple's topics extension in push certificates.
pub const TOPICS_OID: &str = "1.2.840.113635.100.6.3.6";
/// OID marking a certificate valid for the development (sandbox) environment.
pub const DEVELOPMENT_OID: &str = "1.2.840.113635.100.6.3.1";
/// OID marking a certificate valid for the production environment.
pub const PRODUCTION_OID: &str = "1.2.840.113635.100.6.3.2";
const UID_OID: &str = "0.9.2342.19200300.100.1.1";

/// Which APNs environment a certificate is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum CertEnvironment {
    /// Sandbox only ("Apple Development IOS Push Services").
    Development,
    /// Production only.
    Production,
    /// Both ("Apple Push Services").
    Universal,
    /// Not an Apple push certificate, or not recognizable.
    Unknown,
}

impl CertEnvironment {
    /// Whether the certificate may be used with `env`.
    pub fn allows(self, env: crate::transport::Environment) -> bool {
        match self {
            CertEnvironment::Universal | CertEnvironment::Unknown => true,
            CertEnvironment::Development => env == crate::transport::Environment::Sandbox,
            CertEnvironment::Production => env == crate::transport::Environment::Production,
        }
    }
}

/// What a push certificate says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct CertificateInfo {
    /// The full subject.
    pub subject: String,
    /// The subject's common name.
    pub common_name: Option<String>,
    /// The subject's UID: the app's bundle id.
    pub bundle_id: Option<String>,
    /// Topics from Apple's topics extension (bundle id, `.voip`,
    /// `.complication`...); empty for older certificates, which allow only
    /// the bundle id.
    pub topics: Vec<String>,
    /// The environment the certificate is for.
    pub environment: CertEnvironment,
    /// The issuer.
    pub issuer: String,
    /// Validity start (UNIX seconds).
    pub not_before: i64,
    /// Validity end (UNIX seconds).
    pub not_after: i64,
}

impl CertificateInfo {
    /// Reads the fields of the first certificate in a PEM text, and says how
    /// many certificates the chain holds. No key is needed: this inspects,
    /// it cannot send (for that, [`ClientCertificate::from_pem`]).
    ///
    /// ```no_run
    /// # use apns_provider::CertificateInfo;
    /// let (info, chain) = CertificateInfo::from_pem(&std::fs::read("push-cert.pem")?)?;
    /// println!("{} ({chain} in the chain): {:?}", info.subject, info.allowed_topics());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_pem(pem: &[u8]) -> Result<(Self, usize)> {
        let (chain, _key) = scan_pem(pem)?;
        let first = chain.first().ok_or_else(|| {
            Error::malformed("no certificate found; expected -----BEGIN CERTIFICATE-----")
        })?;
        Ok((Self::from_der(first)?, chain.len()))
    }

    /// Reads the fields from a DER certificate.
    pub fn from_der(der: &[u8]) -> Result<Self> {
        use x509_parser::prelude::*;
        let (_, cert) = X509Certificate::from_der(der)
            .map_err(|e| Error::malformed(format!("not an X.509 certificate: {e}")))?;
        let subject = cert.subject();
        let attr = |oid: &str| {
            subject
                .iter_attributes()
                .find(|a| a.attr_type().to_id_string() == oid)
                .and_then(|a| a.as_str().ok())
                .map(str::to_string)
        };
        let common_name = attr("2.5.4.3");
        let bundle_id = attr(UID_OID);
        let mut topics = Vec::new();
        let (mut dev, mut prod) = (false, false);
        for ext in cert.extensions() {
            match ext.oid.to_id_string().as_str() {
                TOPICS_OID => topics = parse_topics(ext.value),
                DEVELOPMENT_OID => dev = true,
                PRODUCTION_OID => prod = true,
                _ => {}
            }
        }
        let environment = match (dev, prod) {
            (true, true) => CertEnvironment::Universal,
            (true, false) => CertEnvironment::Development,
            (false, true) => CertEnvironment::Production,
            (false, false) => match common_name.as_deref() {
                Some(cn) if cn.starts_with("Apple Development IOS Push Services") => {
                    CertEnvironment::Development
                }
                Some(cn) if cn.starts_with("Apple Production IOS Push Services") => {
                    CertEnvironment::Production
                }
                Some(cn) if cn.starts_with("Apple Push Services") => CertEnvironment::Universal,
                _ => CertEnvironment::Unknown,
            },
        };
        Ok(CertificateInfo {
            subject: subject.to_string(),
            common_name,
            bundle_id,
            topics,
            environment,
            issuer: cert.issuer().to_string(),
            not_before: cert.validity().not_before.timestamp(),
            not_after: cert.validity().not_after.timestamp(),
        })
    }

    /// Every topic the certificate allows: its topics extension, else its
    /// bundle id.
    pub fn allowed_topics(&self) -> Vec<String> {
        if !self.topics.is_empty() {
            return self.topics.clone();
        }
        self.bundle_id.iter().cloned().collect()
    }

    /// Whether `topic` is one the certificate allows. A certificate that
    /// names no topic at all (no topics extension, no bundle id in its
    /// subject UID) allows none: APNs ties a certificate to its topics
    /// (`docs/apns-facts.md`, "Certificates").
    pub fn allows_topic(&self, topic: &str) -> bool {
        self.allowed_topics().iter().any(|t| t == topic)
    }

    /// What the certificate allows, for messages: "allows a, b", or why
    /// it allows nothing.
    pub(crate) fn allowed_words(&self) -> String {
        match self.allowed_topics().as_slice() {
            [] => "names no topic (no topics extension, no bundle id in its subject UID), so APNs refuses every push sent with it; is it an APNs push certificate?".into(),
            topics => format!("allows {}", topics.join(", ")),
        }
    }

    /// Whether the certificate can be used for `topic` (without one: for
    /// its only topic), with an error that says what it allows.
    pub(crate) fn check_topic(&self, topic: Option<&str>) -> Result<()> {
        match topic {
            Some(topic) if self.allows_topic(topic) => Ok(()),
            None if self.default_topic().is_some() => Ok(()),
            Some(topic) => Err(Error::invalid(
                "topic",
                format!(
                    "{topic} is not allowed by the certificate, which {}",
                    self.allowed_words()
                ),
            )),
            None if self.allowed_topics().is_empty() => Err(Error::invalid(
                "topic",
                format!("the certificate {}", self.allowed_words()),
            )),
            None => Err(Error::invalid(
                "topic",
                format!(
                    "required: the certificate allows several topics ({})",
                    self.allowed_topics().join(", ")
                ),
            )),
        }
    }

    /// The topic to use when none is given: the only topic the certificate
    /// allows (its topics extension's, else its bundle id), or `None` when it
    /// allows several.
    pub fn default_topic(&self) -> Option<String> {
        match self.allowed_topics().as_slice() {
            [one] => Some(one.clone()),
            _ => None,
        }
    }

    /// Whole days until expiry at `now` (negative once expired).
    pub fn days_left(&self, now: SystemTime) -> i64 {
        let now = crate::clock::unix_seconds(now) as i64;
        (self.not_after - now).div_euclid(86_400)
    }

    /// Whether the certificate is outside its validity period at `now`.
    pub fn is_expired(&self, now: SystemTime) -> bool {
        let now = crate::clock::unix_seconds(now) as i64;
        now > self.not_after
    }

    /// Whether this certificate can send a push of `push_type` to `topic`
    /// (without a topic: to its only topic). Location and Live Activity
    /// pushes need token authentication; the topic must be one the
    /// certificate allows.
    ///
    /// ```no_run
    /// # use apns_provider::{ClientCertificate, PushType};
    /// # let cert = ClientCertificate::from_file("push.p12", None, Some(""))?;
    /// cert.info().check_push(PushType::Alert, Some("com.example.app"))?;
    /// assert!(cert.info().check_push(PushType::Liveactivity, None).is_err());
    /// # Ok::<(), apns_provider::Error>(())
    /// ```
    pub fn check_push(&self, push_type: PushType, topic: Option<&str>) -> Result<()> {
        if push_type.requires_token_auth() {
            return Err(Error::invalid(
                "push_type",
                format!(
                    "{push_type} pushes need token authentication (a .p8 key); certificates cannot send them"
                ),
            ));
        }
        self.check_topic(topic)
    }

    /// Whether the certificate can be used at `now` against `env` (when the
    /// endpoint is one of Apple's): not expired, not yet valid, or for the
    /// other environment are errors; expiring within 30 days is a warning.
    pub fn check_usable(
        &self,
        now: SystemTime,
        env: Option<crate::transport::Environment>,
    ) -> Result<Option<String>> {
        let date = crate::clock::format_utc_seconds;
        if self.is_expired(now) {
            return Err(Error::credentials(CredentialProblem::CertificateExpired, format!(
                "the push certificate for {} expired on {}: renew it in the Apple Developer account, or move to token authentication",
                self.bundle_id.as_deref().unwrap_or(&self.subject),
                date(self.not_after)
            )));
        }
        let now_secs = crate::clock::unix_seconds(now) as i64;
        if now_secs < self.not_before {
            return Err(Error::credentials(
                CredentialProblem::CertificateNotYetValid,
                format!(
                    "the push certificate is not valid before {}: check this machine's clock",
                    date(self.not_before)
                ),
            ));
        }
        if let Some(env) = env {
            if !self.environment.allows(env) {
                return Err(Error::credentials(CredentialProblem::WrongEnvironment, format!(
                    "a {:?} certificate cannot be used with the {env} environment (APNs would answer BadCertificateEnvironment)",
                    self.environment
                )));
            }
        }
        Ok(self.expiry_warning(now, Duration::from_secs(30 * 86_400)))
    }

    /// A warning when the certificate expires within `within` of `now`.
    pub fn expiry_warning(&self, now: SystemTime, within: Duration) -> Option<String> {
        let left = self.days_left(now);
        let secs_left = self.not_after - crate::clock::unix_seconds(now) as i64;
        (secs_left >= 0 && secs_left < within.as_secs() as i64).then(|| {
            format!(
                "the push certificate for {} expires on {} ({left} days left): renew it, or move to token authentication (.p8 keys do not expire)",
                self.bundle_id.as_deref().unwrap_or(&self.subject),
                crate::clock::format_utc_seconds(self.not_after)
            )
        })
    }
}

/// Parses Apple's topics extension: a SEQUENCE of UTF8String topics, each
/// followed by a SEQUENCE naming its kind (`app`, `voip`, ...).
fn parse_topics(der: &[u8]) -> Vec<String> {
    let Some((0x30, body, _)) = der_element(der) else {
        return Vec::new();
    };
    let mut topics = Vec::new();
    let mut rest = body;
    while let Some((tag, content, next)) = der_element(rest) {
        if tag == 0x0c {
            if let Ok(s) = std::str::from_utf8(content) {
                topics.push(s.to_string());
            }
        }
        rest = next;
    }
    topics
}

/// One DER element: (tag, content, rest).
fn der_element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | *b as usize);
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// A TLS client certificate and its private key, loaded from a `.p12` or
/// PEM, checked to match. `Debug` never shows the key.
#[derive(Clone)]
pub struct ClientCertificate {
    chain: Vec<CertificateDer<'static>>,
    key: std::sync::Arc<Zeroizing<PrivateKeyDer<'static>>>,
    info: CertificateInfo,
}

impl fmt::Debug for ClientCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCertificate")
            .field("subject", &self.info.subject)
            .field("key", &"[redacted]")
            .finish()
    }
}

impl ClientCertificate {
    /// Loads a certificate from `path`: a `.p12`/`.pfx` (with `password`,
    /// often empty), or PEM holding the certificate and, unless `key_path`
    /// is given, its key.
    pub fn from_file(
        path: impl AsRef<Path>,
        key_path: Option<&Path>,
        password: Option<&str>,
    ) -> Result<Self> {
        let path = path.as_ref();
        let data =
            Zeroizing::new(std::fs::read(path).map_err(|e| {
                Error::io(format!("cannot read certificate {}", path.display()), e)
            })?);
        let named = |e: Error| match e {
            Error::Credentials { problem, message } => Error::Credentials {
                problem,
                message: format!("{}: {message}", path.display()),
            },
            other => other,
        };
        if looks_like_pem(&data) {
            let key = match key_path {
                Some(k) => Some(Zeroizing::new(std::fs::read(k).map_err(|e| {
                    Error::io(format!("cannot read certificate key {}", k.display()), e)
                })?)),
                None => None,
            };
            Self::from_pem(&data, key.as_deref().map(|k| k.as_slice())).map_err(named)
        } else {
            if key_path.is_some() {
                return Err(Error::credentials(
                    CredentialProblem::SeparateKeyForPkcs12,
                    "a .p12 carries its own key: a separate key file is not used with it",
                ));
            }
            Self::from_pkcs12(&data, password.unwrap_or("")).map_err(named)
        }
    }

    /// Loads PEM: the certificate chain (leaf first) and an unencrypted key
    /// (PKCS#8, PKCS#1 RSA or SEC1 EC) in `pem`, or in `key_pem`. Text
    /// around the blocks (openssl's `Bag Attributes`) is ignored.
    pub fn from_pem(pem: &[u8], key_pem: Option<&[u8]>) -> Result<Self> {
        let (chain, mut key) = scan_pem(pem)?;
        if let Some(k) = key_pem {
            key = scan_pem(k)?.1;
        }
        let encrypted = pem.windows(21).any(|w| w == b"ENCRYPTED PRIVATE KEY");
        if key.is_none() && encrypted {
            return Err(Error::malformed("the private key is encrypted; export it without a passphrase (openssl pkcs12 ... -nodes) or use the .p12"));
        }
        if chain.is_empty() {
            return Err(Error::malformed("no certificate found; expected -----BEGIN CERTIFICATE----- (export with `openssl pkcs12 -in cert.p12 -out cert.pem -clcerts -nodes`)"));
        }
        let key = key.ok_or_else(|| {
            Error::credentials(CredentialProblem::MissingKey, "no private key found next to the certificate: export both with `openssl pkcs12 ... -nodes`, or give the key's own file")
        })?;
        Self::new(chain, key)
    }

    /// Loads a PKCS#12 (`.p12`/`.pfx`) file, modern (AES-256/PBKDF2) or
    /// legacy (RC2-40/3DES, as older Keychain exports).
    pub fn from_pkcs12(der: &[u8], password: &str) -> Result<Self> {
        use p12_keystore::{KeyStore, Pkcs12ImportPolicy};
        let store =
            KeyStore::from_pkcs12(der, password, Pkcs12ImportPolicy::Relaxed).map_err(|e| {
                use p12_keystore::error::Error as P12;
                match e {
                    P12::MacError(_) | P12::UnpadError => Error::credentials(
                        CredentialProblem::WrongPassword,
                        "wrong password for the .p12",
                    ),
                    P12::DerError(_)
                    | P12::InvalidLength
                    | P12::InvalidData
                    | P12::InvalidVersion => Error::credentials(
                        CredentialProblem::NotPkcs12,
                        format!("not a valid PKCS#12 (.p12/.pfx) file, or a truncated one ({e})"),
                    ),
                    other => Error::malformed(format!("cannot read the .p12: {other}")),
                }
            })?;
        let (_, chain) = store.private_key_chain().ok_or_else(|| {
            Error::malformed("the .p12 holds no private key with its certificate; export both from Keychain Access (the certificate *and* its key)")
        })?;
        let certs: Vec<CertificateDer<'static>> = chain
            .certs()
            .iter()
            .map(|c| CertificateDer::from(c.as_der().to_vec()))
            .collect();
        if certs.is_empty() {
            return Err(Error::malformed("the .p12 holds a key but no certificate"));
        }
        let key = Zeroizing::new(PrivateKeyDer::Pkcs8(chain.key().as_der().to_vec().into()));
        Self::new(certs, key)
    }

    fn new(
        chain: Vec<CertificateDer<'static>>,
        key: Zeroizing<PrivateKeyDer<'static>>,
    ) -> Result<Self> {
        // Read first: a certificate rustls cannot parse (a version 1 one)
        // is named as such, not blamed on the key.
        let info = CertificateInfo::from_der(&chain[0])?;
        if !is_version_3(&chain[0]) {
            return Err(Error::credentials(
                CredentialProblem::UnsupportedCertificateVersion,
                crate::tls_words::VERSION_1,
            ));
        }
        let provider = crate::crypto::provider();
        rustls::sign::CertifiedKey::from_der(chain.clone(), key.clone_key(), &provider).map_err(
            |e| match e {
                rustls::Error::InconsistentKeys(_) => Error::credentials(
                    CredentialProblem::KeyMismatch,
                    "the private key does not match the certificate: they come from different exports",
                ),
                rustls::Error::InvalidCertificate(c) => Error::malformed(format!(
                    "unusable certificate: {}",
                    crate::tls_words::certificate_error(&c)
                )),
                other => Error::malformed(format!(
                    "unusable certificate key: {}",
                    crate::tls_words::rustls_error(&other)
                )),
            },
        )?;
        Ok(ClientCertificate {
            chain,
            key: std::sync::Arc::new(key),
            info,
        })
    }

    /// What the certificate says.
    pub fn info(&self) -> &CertificateInfo {
        &self.info
    }

    /// The certificate chain, leaf first.
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }

    pub(crate) fn key(&self) -> PrivateKeyDer<'static> {
        self.key.clone_key()
    }

    /// The certificate chain and key as PEM (what `apns cert convert`
    /// writes). Contains the private key: write it with care.
    pub fn to_pem(&self) -> Zeroizing<String> {
        let (label, der): (&str, &[u8]) = match &**self.key {
            PrivateKeyDer::Pkcs1(k) => ("RSA PRIVATE KEY", k.secret_pkcs1_der()),
            PrivateKeyDer::Sec1(k) => ("EC PRIVATE KEY", k.secret_sec1_der()),
            PrivateKeyDer::Pkcs8(k) => ("PRIVATE KEY", k.secret_pkcs8_der()),
            _ => ("PRIVATE KEY", &[]),
        };
        let mut blocks: Vec<Zeroizing<String>> = self
            .chain
            .iter()
            .map(|cert| super::pem_encode("CERTIFICATE", cert))
            .collect();
        blocks.push(super::pem_encode(label, der));
        // Allocated once at its final size: no reallocation leaves a copy.
        let mut out = Zeroizing::new(String::with_capacity(blocks.iter().map(|b| b.len()).sum()));
        for block in &blocks {
            out.push_str(block);
        }
        out
    }
}

type PemContents = (
    Vec<CertificateDer<'static>>,
    Option<Zeroizing<PrivateKeyDer<'static>>>,
);

/// The certificates and the first private key in a PEM text.
fn scan_pem(bytes: &[u8]) -> Result<PemContents> {
    let mut chain = Vec::new();
    let mut key = None;
    for section in SliceIter::<(SectionKind, Vec<u8>)>::new(bytes) {
        let (kind, der) = section.map_err(|e| {
            Error::malformed(format!(
                "damaged PEM: {}",
                super::key::describe_pem_error(&e)
            ))
        })?;
        if kind == SectionKind::Certificate {
            chain.push(CertificateDer::from(der));
            continue;
        }
        // Any other block may be a key: zeroized when dropped (a second
        // key, an unknown block), or moved into the zeroizing key below.
        let mut der = Zeroizing::new(der);
        if key.is_some() {
            continue;
        }
        let take = |der: &mut Zeroizing<Vec<u8>>| std::mem::take(&mut **der);
        key = match kind {
            SectionKind::PrivateKey => Some(PrivateKeyDer::Pkcs8(take(&mut der).into())),
            SectionKind::RsaPrivateKey => Some(PrivateKeyDer::Pkcs1(take(&mut der).into())),
            SectionKind::EcPrivateKey => Some(PrivateKeyDer::Sec1(take(&mut der).into())),
            _ => None,
        }
        .map(Zeroizing::new);
    }
    Ok((chain, key))
}

/// Whether a DER certificate is X.509 version 3, the only one webpki takes.
fn is_version_3(der: &[u8]) -> bool {
    use x509_parser::prelude::*;
    X509Certificate::from_der(der).is_ok_and(|(_, c)| c.version() == X509Version::V3)
}

fn looks_like_pem(data: &[u8]) -> bool {
    data.windows(11).any(|w| w == b"-----BEGIN ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    const NOW: i64 = 1_700_000_000;
    const DAY: i64 = 86_400;

    fn info(not_after: i64) -> CertificateInfo {
        CertificateInfo {
            subject: "CN=Apple Push Services: com.example.app".into(),
            common_name: None,
            bundle_id: Some("com.example.app".into()),
            topics: Vec::new(),
            environment: CertEnvironment::Universal,
            issuer: String::new(),
            not_before: NOW - 300 * DAY,
            not_after,
        }
    }

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(NOW as u64)
    }

    #[test]
    fn the_expiry_warning_starts_thirty_days_before() {
        let within = Duration::from_secs(30 * DAY as u64);
        let warn = |not_after| info(not_after).expiry_warning(now(), within);
        assert!(
            warn(NOW + 30 * DAY).is_none(),
            "exactly 30 days left: no warning yet"
        );
        assert!(warn(NOW + 31 * DAY).is_none(), "31 days left");
        assert!(warn(NOW + 365 * DAY).is_none(), "a year left");
        let w = warn(NOW + 30 * DAY - 1).expect("a second under 30 days");
        assert!(
            w.contains("29 days left") && w.contains("com.example.app"),
            "{w}"
        );
        assert!(warn(NOW + 10 * DAY).unwrap().contains("10 days left"));
        assert!(warn(NOW).is_some(), "the last second");
        assert!(
            warn(NOW - 1).is_none(),
            "expired is an error, not a warning"
        );
    }

    #[test]
    fn check_usable_refuses_expired_and_early_certificates_with_their_kind() {
        let expired = info(NOW - DAY).check_usable(now(), None).unwrap_err();
        assert_eq!(
            expired.credential_problem(),
            Some(CredentialProblem::CertificateExpired)
        );
        let mut early = info(NOW + 100 * DAY);
        early.not_before = NOW + DAY;
        assert_eq!(
            early
                .check_usable(now(), None)
                .unwrap_err()
                .credential_problem(),
            Some(CredentialProblem::CertificateNotYetValid)
        );
        let mut dev = info(NOW + 100 * DAY);
        dev.environment = CertEnvironment::Development;
        assert_eq!(
            dev.check_usable(now(), Some(crate::transport::Environment::Production))
                .unwrap_err()
                .credential_problem(),
            Some(CredentialProblem::WrongEnvironment)
        );
        assert_eq!(
            info(NOW + 100 * DAY).check_usable(now(), None).unwrap(),
            None
        );
    }

    #[test]
    fn a_certificate_naming_no_topic_allows_none() {
        let none = CertificateInfo {
            bundle_id: None,
            ..info(NOW + 100 * DAY)
        };
        assert!(none.allowed_topics().is_empty());
        assert!(!none.allows_topic("com.example.app"));
        assert!(!none.allows_topic(""));
        for topic in [Some("com.example.app"), None] {
            let e = none.check_push(PushType::Alert, topic).unwrap_err();
            assert!(
                matches!(e, Error::InvalidField { field: "topic", .. }),
                "{e}"
            );
            assert!(e.to_string().contains("names no topic"), "{e}");
        }
        // Its bundle id alone allows that topic, and it is the default.
        let old_style = info(NOW + 100 * DAY);
        assert!(old_style.allows_topic("com.example.app"));
        assert!(!old_style.allows_topic("com.example.other"));
        old_style.check_push(PushType::Alert, None).unwrap();
        let e = old_style
            .check_push(PushType::Alert, Some("com.example.other"))
            .unwrap_err();
        assert!(
            e.to_string().contains("which allows com.example.app"),
            "{e}"
        );
    }
}
