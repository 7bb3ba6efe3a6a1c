//! Loading Apple `.p8` signing keys and their public halves.

use std::fmt;
use std::path::Path;

use p256::ecdsa;
use p256::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePublicKey, LineEnding};
use rustls_pki_types::pem::{SectionKind, SliceIter};
use zeroize::Zeroizing;

use crate::error::{CredentialProblem, Error, Result};

/// An ES256 (P-256) private key: the content of an Apple `AuthKey_<KEYID>.p8`.
///
/// Accepts PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`, what Apple issues) and
/// SEC1 PEM (`-----BEGIN EC PRIVATE KEY-----`, what `openssl ecparam` writes).
/// The secret scalar is zeroized on drop and never printed:
///
/// ```
/// # use apns_provider::SigningKey;
/// # let pem = apns_provider::auth::generate_p8_pem();
/// let key = SigningKey::from_pem(pem.as_bytes())?;
/// assert_eq!(format!("{key:?}"), "SigningKey([redacted])");
/// # Ok::<(), apns_provider::Error>(())
/// ```
#[derive(Clone)]
pub struct SigningKey {
    inner: ecdsa::SigningKey,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey([redacted])")
    }
}

impl SigningKey {
    /// Reads a key from a `.p8` (or SEC1 PEM) file. Like OpenSSH, refuses a
    /// file that its group or others may read (checked on the opened file).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        Ok(load_key_file(path)?.0)
    }

    /// Parses a key from PEM text.
    pub fn from_pem(pem: &[u8]) -> Result<Self> {
        let (kind, der) = first_pem_section(pem)?;
        let secret = match kind {
            SectionKind::PrivateKey => {
                check_pkcs8_algorithm(&der)?;
                p256::SecretKey::from_pkcs8_der(&der)
                    .map_err(|e| Error::malformed(format!("malformed PKCS#8 P-256 private key: {e}")))?
            }
            SectionKind::EcPrivateKey => p256::SecretKey::from_sec1_der(&der).map_err(|_| {
                Error::malformed("the EC PRIVATE KEY is not a P-256 (prime256v1) key; APNs tokens need ES256")
            })?,
            other => {
                return Err(Error::malformed(format!(
                    "found {}, expected a P-256 private key (-----BEGIN PRIVATE KEY----- as in Apple's AuthKey_<KEYID>.p8)",
                    describe_section(other)
                )))
            }
        };
        Ok(SigningKey {
            inner: ecdsa::SigningKey::from(secret),
        })
    }

    /// Wraps an existing `p256` signing key.
    pub fn from_p256(key: ecdsa::SigningKey) -> Self {
        SigningKey { inner: key }
    }

    /// The public half, which a verifier (or the mock server) needs.
    pub fn public_key(&self) -> PublicKey {
        PublicKey {
            inner: *self.inner.verifying_key(),
        }
    }

    /// A key from unencrypted PKCS#8 DER (the `jsonwebtoken` key convention).
    pub(crate) fn from_pkcs8_der(der: &[u8]) -> Option<Self> {
        ecdsa::SigningKey::from_pkcs8_der(der)
            .ok()
            .map(Self::from_p256)
    }

    /// The key as PKCS#8 DER, zeroized on drop.
    pub(crate) fn to_pkcs8_der(&self) -> Option<p256::pkcs8::SecretDocument> {
        use p256::pkcs8::EncodePrivateKey;
        self.inner.to_pkcs8_der().ok()
    }

    pub(crate) fn sign(&self, message: &[u8]) -> [u8; 64] {
        use p256::ecdsa::signature::Signer;
        let sig: ecdsa::Signature = self.inner.sign(message);
        sig.to_bytes().into()
    }
}

/// Loads a `.p8` file: the key, and its PEM text (zeroized on drop) for
/// storing it elsewhere. The file is read once; a file that its group or
/// others may access is refused (checked on the opened file, as OpenSSH
/// does), once it is known to hold a private key.
pub fn load_key_file(path: impl AsRef<Path>) -> Result<(SigningKey, Zeroizing<String>)> {
    let path = path.as_ref();
    let (bytes, mode) = read_key_file(path)?;
    let key = SigningKey::from_pem(&bytes).map_err(|e| match e {
        Error::Credentials { problem, message } => Error::Credentials {
            problem,
            message: format!("{}: {message}", path.display()),
        },
        other => other,
    })?;
    // After parsing, so a public file given by mistake gets the more useful
    // message above.
    check_private_mode(path, mode)?;
    let pem = Zeroizing::new(String::from_utf8_lossy(&bytes).into_owned());
    Ok((key, pem))
}

/// Reads a private key file, refusing it when its group or others have any
/// access. The mode is read from the opened file (`fstat`), not the path, so
/// the file checked is the file read. (Keys of profiles, and the gateway's
/// TLS key.)
#[cfg(any(feature = "keystore", feature = "gateway"))]
pub(crate) fn read_private_file(path: &Path) -> Result<Zeroizing<Vec<u8>>> {
    let (bytes, mode) = read_key_file(path)?;
    check_private_mode(path, mode)?;
    Ok(bytes)
}

/// The bytes of a key file and the mode of the opened file (0 where modes
/// do not exist).
fn read_key_file(path: &Path) -> Result<(Zeroizing<Vec<u8>>, u32)> {
    use std::io::Read;
    let fail = |e| Error::io(format!("cannot read key file {}", path.display()), e);
    let mut file = std::fs::File::open(path).map_err(fail)?;
    #[cfg(unix)]
    let mode = {
        use std::os::unix::fs::PermissionsExt;
        file.metadata().map_err(fail)?.permissions().mode()
    };
    #[cfg(not(unix))]
    let mode = 0;
    let mut bytes = Zeroizing::new(Vec::new());
    file.read_to_end(&mut bytes).map_err(fail)?;
    Ok((bytes, mode))
}

fn check_private_mode(path: &Path, mode: u32) -> Result<()> {
    if mode & 0o077 != 0 {
        return Err(Error::credentials(CredentialProblem::KeyFileTooOpen, format!(
            "{} is accessible to other users (mode {:o}): a private key must be readable by its owner only; run `chmod 600 {}`",
            path.display(),
            mode & 0o777,
            path.display()
        )));
    }
    Ok(())
}

/// A P-256 public key, used to verify provider tokens (by the mock server,
/// or to check which key a token was signed with).
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    inner: ecdsa::VerifyingKey,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.fingerprint())
    }
}

impl PublicKey {
    /// Parses a public key from PEM: a `PUBLIC KEY` (SPKI) block, or a private
    /// key (`.p8` or SEC1) whose public half is taken.
    pub fn from_pem(pem: &[u8]) -> Result<Self> {
        let (kind, der) = first_pem_section(pem)?;
        if kind == SectionKind::PublicKey {
            let inner = ecdsa::VerifyingKey::from_public_key_der(&der).map_err(|e| {
                Error::malformed(format!(
                    "the PUBLIC KEY is not a P-256 key ({e}); APNs tokens need ES256"
                ))
            })?;
            return Ok(PublicKey { inner });
        }
        Ok(SigningKey::from_pem(pem)?.public_key())
    }

    /// Reads a public key (or a private key's public half) from a file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = Zeroizing::new(
            std::fs::read(path)
                .map_err(|e| Error::io(format!("cannot read key file {}", path.display()), e))?,
        );
        Self::from_pem(&bytes).map_err(|e| match e {
            Error::Credentials { problem, message } => Error::Credentials {
                problem,
                message: format!("{}: {message}", path.display()),
            },
            other => other,
        })
    }

    /// The uncompressed SEC1 point (`04 || x || y`, 65 bytes).
    pub fn to_sec1_bytes(&self) -> Vec<u8> {
        self.inner.to_encoded_point(false).as_bytes().to_vec()
    }

    /// The key as a `-----BEGIN PUBLIC KEY-----` PEM block.
    pub fn to_pem(&self) -> String {
        self.inner
            .to_public_key_pem(LineEnding::LF)
            .unwrap_or_default()
    }

    /// A short, stable fingerprint: `SHA256:` and the base64 of the SHA-256 of
    /// the DER public key, as `ssh-keygen -l` prints them.
    pub fn fingerprint(&self) -> String {
        use base64::Engine;
        let der = self
            .inner
            .to_public_key_der()
            .map(|d| d.as_bytes().to_vec())
            .unwrap_or_default();
        let digest = ring::digest::digest(&ring::digest::SHA256, &der);
        format!(
            "SHA256:{}",
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(digest.as_ref())
        )
    }
}

/// Creates a new random P-256 key as `.p8` PEM text, as Apple would issue it.
///
/// For demos and tests: real keys come from the Apple Developer account.
pub fn generate_p8_pem() -> String {
    let rng = ring::rand::SystemRandom::new();
    // ring's PKCS#8 includes the public key, as Apple's files do.
    let doc = ring::signature::EcdsaKeyPair::generate_pkcs8(
        &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        &rng,
    )
    .expect("the system random source is available");
    // Moved out of its zeroizing wrapper, not copied: the caller owns it.
    std::mem::take(&mut *pem_encode("PRIVATE KEY", doc.as_ref()))
}

/// PEM text for `der`. Zeroized on drop, as are the intermediate copies
/// (it may hold a private key): the output is allocated once, at its final
/// size, so no reallocation leaves a copy behind.
pub(crate) fn pem_encode(label: &str, der: &[u8]) -> Zeroizing<String> {
    use base64::Engine;
    let b64 = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(der));
    let lines = b64.len().div_ceil(64);
    let mut out = Zeroizing::new(String::with_capacity(
        2 * (label.len() + 17) + b64.len() + lines,
    ));
    out.push_str("-----BEGIN ");
    out.push_str(label);
    out.push_str("-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END ");
    out.push_str(label);
    out.push_str("-----\n");
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Returns the first PEM section (its DER zeroized on drop: it may be a
/// private key), or an error that says what was found.
fn first_pem_section(pem: &[u8]) -> Result<(SectionKind, Zeroizing<Vec<u8>>)> {
    if contains(pem, b"-----BEGIN ENCRYPTED PRIVATE KEY-----") {
        return Err(Error::malformed("found an encrypted PKCS#8 key, expected an unencrypted .p8; Apple's AuthKey files are not encrypted (decrypt with `openssl pkcs8 -in KEY -out AuthKey.p8`)"));
    }
    if !contains(pem, b"-----BEGIN ") {
        let what = if pem.is_empty() {
            "an empty file".to_string()
        } else if pem.first() == Some(&0x30) {
            "binary DER data".to_string()
        } else {
            "no PEM block".to_string()
        };
        return Err(Error::malformed(format!(
            "found {what}, expected a PEM private key starting with -----BEGIN PRIVATE KEY----- (Apple's AuthKey_<KEYID>.p8)"
        )));
    }
    let mut iter = SliceIter::<(SectionKind, Vec<u8>)>::new(pem);
    match iter.next() {
        Some(Ok((kind, der))) => Ok((kind, Zeroizing::new(der))),
        Some(Err(e)) => Err(Error::malformed(format!(
            "the PEM text is damaged ({}); expected an intact -----BEGIN PRIVATE KEY----- block on lines of its own",
            describe_pem_error(&e)
        ))),
        None => {
            // Only in this error path, and zeroized: the text may hold a key.
            let text = Zeroizing::new(String::from_utf8_lossy(pem).into_owned());
            let label = text
                .lines()
                .find_map(|l| l.strip_prefix("-----BEGIN "))
                // Only the label: a one-line PEM must not leak its body.
                .and_then(|l| l.split("-----").next())
                .map(|l| l.chars().take(40).collect::<String>())
                .unwrap_or_default();
            Err(Error::malformed(format!(
                "found a PEM block labelled {label:?}, expected PRIVATE KEY (an Apple .p8 key)"
            )))
        }
    }
}

/// Says what is wrong with a PEM text without quoting it: the parser's own
/// messages include the offending line, which may be key material.
pub(crate) fn describe_pem_error(e: &rustls_pki_types::pem::Error) -> &'static str {
    use rustls_pki_types::pem::Error as E;
    match e {
        E::MissingSectionEnd { .. } => "a block has no -----END line; is the file truncated?",
        E::IllegalSectionStart { .. } => "a -----BEGIN line is malformed",
        E::Base64Decode(_) => "the base64 body is damaged",
        E::SectionTooLarge => "a block is too large",
        _ => "it cannot be read as PEM",
    }
}

fn describe_section(kind: SectionKind) -> &'static str {
    match kind {
        SectionKind::Certificate => "a certificate (BEGIN CERTIFICATE) rather than a key; certificates go to certificate mode",
        SectionKind::PublicKey => "a public key (BEGIN PUBLIC KEY); signing needs the private key",
        SectionKind::RsaPrivateKey => "an RSA private key (BEGIN RSA PRIVATE KEY)",
        SectionKind::Crl => "a certificate revocation list",
        SectionKind::Csr => "a certificate signing request",
        _ => "an unsupported PEM block",
    }
}

/// Rejects PKCS#8 keys of other algorithms with a message naming them.
fn check_pkcs8_algorithm(der: &[u8]) -> Result<()> {
    use p256::pkcs8::{ObjectIdentifier, PrivateKeyInfo};
    const EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
    let info = PrivateKeyInfo::try_from(der)
        .map_err(|e| Error::malformed(format!("malformed PKCS#8 private key: {e}")))?;
    let alg = info.algorithm.oid.to_string();
    if alg != EC_PUBLIC_KEY {
        let name = match alg.as_str() {
            "1.2.840.113549.1.1.1" => "an RSA key",
            "1.3.101.112" => "an Ed25519 key",
            "1.3.101.110" => "an X25519 key",
            _ => "a key of another algorithm",
        };
        return Err(Error::malformed(format!(
            "found {name} (OID {alg}), expected a P-256 EC key as in Apple's .p8 files"
        )));
    }
    let curve: Option<ObjectIdentifier> = info.algorithm.parameters_oid().ok();
    match curve.map(|c| c.to_string()).as_deref() {
        Some("1.2.840.10045.3.1.7") => Ok(()),
        Some(other) => {
            let name = match other {
                "1.3.132.0.34" => "P-384",
                "1.3.132.0.35" => "P-521",
                "1.3.132.0.10" => "secp256k1",
                _ => "an unknown curve",
            };
            Err(Error::malformed(format!(
                "found an EC key on {name} (OID {other}), expected P-256 (prime256v1) for ES256"
            )))
        }
        None => Err(Error::malformed(
            "the EC key does not name its curve; expected P-256 (prime256v1)",
        )),
    }
}
