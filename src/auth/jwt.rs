//! The JWT structure comes from `jsonwebtoken`; the ES256 cryptography is
//! ours: `p256` signs, `ring` verifies.
//!
//! `jsonwebtoken` is built without a backend feature (its `rust_crypto`
//! backend pulls the `rsa` crate, its `aws_lc_rs` backend a second C crypto
//! library). It reaches cryptography through a process-wide
//! [`CryptoProvider`], which this module supplies: [`Es256Signer`] (`p256`,
//! raw `r||s`) and [`Es256Verifier`] (`ring`, JOSE form only).
//!
//! The provider is process-global, and the host application may have
//! installed its own (or enabled a backend feature, which installs one). So:
//! - ours is installed lazily, on the first token signed or verified, and
//!   only when no provider is installed; an existing one is never replaced
//!   and never called;
//! - when ours is the process default, tokens go through `jsonwebtoken`'s
//!   `encode` and `decode`;
//! - otherwise the same signer and verifier are called directly, on the
//!   same header and claims types, so the bytes are the same either way (a
//!   test checks it in a process where another provider is installed).
//!
//! Nothing here panics for want of a provider. A host that uses
//! `jsonwebtoken` 12 itself with a provider of its own should install it at
//! startup, before its first token: after ours is installed,
//! `CryptoProvider::install_default` returns `Err`, and ours handles ES256
//! only (other algorithms get `UnsupportedAlgorithm`, never a panic).

use std::sync::atomic::{AtomicBool, Ordering};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::crypto::{CryptoProvider, JwtSigner, JwtVerifier, KeyUtils};
use jsonwebtoken::errors::{Error as JwtError, ErrorKind};
use jsonwebtoken::jwk::{EllipticCurve, ThumbprintHash};
use jsonwebtoken::signature::{self, Signer, Verifier};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, EncodingKey, Header, Validation};
use serde::Serialize;

use super::SigningKey;

/// ES256 with `p256` (RFC 6979 deterministic nonces), signature as raw
/// 64-byte `r||s`.
pub(crate) struct Es256Signer(SigningKey);

impl Es256Signer {
    pub(crate) fn new(key: SigningKey) -> Self {
        Es256Signer(key)
    }
}

impl Signer<Vec<u8>> for Es256Signer {
    fn try_sign(&self, msg: &[u8]) -> Result<Vec<u8>, signature::Error> {
        Ok(self.0.sign(msg).to_vec())
    }
}

impl JwtSigner for Es256Signer {
    fn algorithm(&self) -> Algorithm {
        Algorithm::ES256
    }
}

/// ES256 verification with `ring`, a different implementation from the
/// signer's. Takes the JOSE form only (64-byte `r||s`); the mock's lenient
/// parse turns a DER signature into that form first.
pub(crate) struct Es256Verifier {
    /// The uncompressed SEC1 point (`04 || x || y`).
    public_key: Vec<u8>,
}

impl Es256Verifier {
    pub(crate) fn new(public_key_sec1: &[u8]) -> Self {
        Es256Verifier {
            public_key: public_key_sec1.to_vec(),
        }
    }
}

impl Verifier<Vec<u8>> for Es256Verifier {
    fn verify(&self, msg: &[u8], signature: &Vec<u8>) -> Result<(), signature::Error> {
        ring::signature::UnparsedPublicKey::new(
            &ring::signature::ECDSA_P256_SHA256_FIXED,
            &self.public_key,
        )
        .verify(msg, signature)
        .map_err(|_| signature::Error::new())
    }
}

impl JwtVerifier for Es256Verifier {
    fn algorithm(&self) -> Algorithm {
        Algorithm::ES256
    }
}

fn unsupported() -> JwtError {
    ErrorKind::UnsupportedAlgorithm.into()
}

/// Same key conventions as `jsonwebtoken`'s own backends: an EC
/// [`EncodingKey`] holds PKCS#8 DER, an EC [`DecodingKey`] the SEC1 point.
fn new_signer(algorithm: &Algorithm, key: &EncodingKey) -> Result<Box<dyn JwtSigner>, JwtError> {
    if *algorithm != Algorithm::ES256 {
        return Err(unsupported());
    }
    if key.family() != AlgorithmFamily::Ec {
        return Err(ErrorKind::InvalidKeyFormat.into());
    }
    let key = SigningKey::from_pkcs8_der(key.as_bytes()).ok_or(ErrorKind::InvalidEcdsaKey)?;
    Ok(Box::new(Es256Signer::new(key)))
}

fn new_verifier(
    algorithm: &Algorithm,
    key: &DecodingKey,
) -> Result<Box<dyn JwtVerifier>, JwtError> {
    if *algorithm != Algorithm::ES256 {
        return Err(unsupported());
    }
    if key.family() != AlgorithmFamily::Ec {
        return Err(ErrorKind::InvalidKeyFormat.into());
    }
    Ok(Box::new(Es256Verifier::new(key.try_get_as_bytes()?)))
}

/// What `jsonwebtoken` needs for JWKs, where this provider can answer
/// (P-256 keys, digests); errors otherwise, never the panics of
/// `KeyUtils::new_unimplemented`.
const KEY_UTILS: KeyUtils = KeyUtils {
    rsa_pub_components_from_private_key: |_| Err(unsupported()),
    rsa_pub_components_from_public_key: |_| Err(unsupported()),
    ec_pub_components_from_private_key: |der, alg| {
        if alg != Algorithm::ES256 {
            return Err(unsupported());
        }
        let key = SigningKey::from_pkcs8_der(der).ok_or(ErrorKind::InvalidEcdsaKey)?;
        let point = key.public_key().to_sec1_bytes();
        let (x, y) = point[1..].split_at(32);
        Ok((EllipticCurve::P256, x.to_vec(), y.to_vec()))
    },
    ed_pub_components_from_private_key: |_, _| Err(unsupported()),
    compute_digest: |data, hash| {
        let alg = match hash {
            ThumbprintHash::SHA256 => &ring::digest::SHA256,
            ThumbprintHash::SHA384 => &ring::digest::SHA384,
            ThumbprintHash::SHA512 => &ring::digest::SHA512,
            _ => return Err(unsupported()),
        };
        Ok(ring::digest::digest(alg, data).as_ref().to_vec())
    },
};

/// This crate's `jsonwebtoken` provider: ES256 only.
static PROVIDER: CryptoProvider = CryptoProvider {
    signer_factory: new_signer,
    verifier_factory: new_verifier,
    key_utils: KEY_UTILS,
};

/// True when `jsonwebtoken`'s process-wide provider is ours, installing ours
/// first if none is installed. Never replaces, and never panics.
pub(crate) fn provider_is_ours() -> bool {
    let current = CryptoProvider::try_get_default().or_else(|| {
        // Another thread may install one between the check and here: then
        // that one stays, and is not ours.
        Some(match PROVIDER.install_default() {
            Ok(()) => &PROVIDER,
            Err(existing) => existing,
        })
    });
    let ours = current.is_some_and(|p| std::ptr::eq(p, &PROVIDER));
    if !ours {
        static LOGGED: AtomicBool = AtomicBool::new(false);
        if !LOGGED.swap(true, Ordering::Relaxed) {
            tracing::debug!(
                "jsonwebtoken's process-wide CryptoProvider belongs to the application; \
                 provider tokens are signed (p256) and verified (ring) by this crate directly"
            );
        }
    }
    ours
}

/// The header Apple specifies: exactly `{"alg":"ES256","kid":"..."}`.
/// `Header::new` adds `"typ":"JWT"`, which Apple does not list: removed.
pub(crate) fn apns_header(kid: &str) -> Header {
    let mut header = Header::new(Algorithm::ES256);
    header.typ = None;
    header.kid = Some(kid.to_string());
    header
}

/// The claims Apple specifies, in this order: `{"iss":"...","iat":N}`.
#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    iat: u64,
}

/// Mints `{"alg":"ES256","kid":kid}.{"iss":iss,"iat":iat}` signed by `key`.
pub(crate) fn sign(key: &SigningKey, kid: &str, iss: &str, iat: u64) -> String {
    let header = apns_header(kid);
    let claims = Claims { iss, iat };
    if provider_is_ours() {
        if let Some(jwt) = encode_with_jsonwebtoken(key, &header, &claims) {
            return jwt;
        }
    }
    encode_directly(key, &header, &claims)
}

/// Through `jsonwebtoken::encode`, which reaches [`Es256Signer`] through
/// the installed provider.
fn encode_with_jsonwebtoken(key: &SigningKey, header: &Header, claims: &Claims) -> Option<String> {
    // Both zeroize their copy of the key on drop.
    let der = key.to_pkcs8_der()?;
    let encoding_key = EncodingKey::from_ec_der(der.as_bytes());
    jsonwebtoken::encode(header, claims, &encoding_key).ok()
}

/// What `jsonwebtoken::encode` does (JSON of the same types, base64url
/// without padding), with [`Es256Signer`] called directly: for processes
/// whose provider is another.
fn encode_directly(key: &SigningKey, header: &Header, claims: &Claims) -> String {
    let part = |json: serde_json::Result<Vec<u8>>| {
        URL_SAFE_NO_PAD.encode(json.expect("a JWS header and two plain claims always serialize"))
    };
    let mut jwt = part(serde_json::to_vec(header));
    jwt.push('.');
    jwt.push_str(&part(serde_json::to_vec(claims)));
    let signature = Es256Signer::new(key.clone()).sign(jwt.as_bytes());
    jwt.push('.');
    jwt.push_str(&URL_SAFE_NO_PAD.encode(signature));
    jwt
}

/// What `jsonwebtoken::decode` checks for a provider token: ES256 and the
/// signature. No registered claim is required (Apple's tokens carry only
/// `iss` and `iat`; their age is checked by the caller).
pub(crate) fn validation() -> Validation {
    let mut validation = Validation::new(Algorithm::ES256);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::generate_p8_pem;

    fn key() -> SigningKey {
        SigningKey::from_pem(generate_p8_pem().as_bytes()).unwrap()
    }

    #[test]
    fn both_paths_mint_the_same_bytes() {
        let key = key();
        let header = apns_header("ABCDE12345");
        let claims = Claims {
            iss: "TEAM123456",
            iat: 1_700_000_000,
        };
        assert!(
            provider_is_ours(),
            "nothing else installs one in unit tests"
        );
        let via = encode_with_jsonwebtoken(&key, &header, &claims).unwrap();
        let direct = encode_directly(&key, &header, &claims);
        // RFC 6979 signatures are deterministic: the whole token is equal.
        assert_eq!(via, direct);
        let (head, _) = via.split_once('.').unwrap();
        assert_eq!(
            URL_SAFE_NO_PAD.decode(head).unwrap(),
            br#"{"alg":"ES256","kid":"ABCDE12345"}"#
        );
    }

    #[test]
    fn the_provider_refuses_other_algorithms_without_panicking() {
        let der = key().to_pkcs8_der().unwrap();
        let ek = EncodingKey::from_ec_der(der.as_bytes());
        for alg in [
            Algorithm::ES384,
            Algorithm::HS256,
            Algorithm::RS256,
            Algorithm::EdDSA,
        ] {
            assert!(new_signer(&alg, &ek).is_err());
            assert!(new_verifier(&alg, &DecodingKey::from_ec_der(&[4; 65])).is_err());
        }
        assert!(new_signer(&Algorithm::ES256, &EncodingKey::from_ec_der(b"junk")).is_err());
        assert!(new_signer(&Algorithm::ES256, &EncodingKey::from_secret(b"k").unwrap()).is_err());
        assert!((KEY_UTILS.rsa_pub_components_from_public_key)(b"").is_err());
        assert!(
            (KEY_UTILS.ed_pub_components_from_private_key)(b"", &EllipticCurve::Ed25519).is_err()
        );
        let (curve, x, y) =
            (KEY_UTILS.ec_pub_components_from_private_key)(der.as_bytes(), Algorithm::ES256)
                .unwrap();
        assert_eq!((curve, x.len(), y.len()), (EllipticCurve::P256, 32, 32));
        assert_eq!(
            (KEY_UTILS.compute_digest)(b"", ThumbprintHash::SHA256)
                .unwrap()
                .len(),
            32
        );
    }

    #[test]
    fn jsonwebtoken_decode_reaches_the_ring_verifier() {
        let key = key();
        let jwt = sign(&key, "ABCDE12345", "TEAM123456", 1_700_000_000);
        let public = DecodingKey::from_ec_der(&key.public_key().to_sec1_bytes());
        let data = jsonwebtoken::decode::<serde_json::Value>(&jwt, &public, &validation()).unwrap();
        assert_eq!(data.claims["iat"], 1_700_000_000);
        let other = DecodingKey::from_ec_der(
            &super::super::SigningKey::from_pem(generate_p8_pem().as_bytes())
                .unwrap()
                .public_key()
                .to_sec1_bytes(),
        );
        let err =
            jsonwebtoken::decode::<serde_json::Value>(&jwt, &other, &validation()).unwrap_err();
        assert_eq!(*err.kind(), ErrorKind::InvalidSignature);
    }
}
