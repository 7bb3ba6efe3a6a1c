//! Provider token decoding and verification, used by the mock server,
//! [`verify_token`] and [`decode_unverified`] (for tools that show a token).
//!
//! The header and claims are decoded by `jsonwebtoken`; the signature is
//! checked by `ring` (through `jsonwebtoken::decode` when this crate's
//! provider is the process default, directly otherwise), never by `p256`,
//! so a bug in the signer cannot hide behind the same bug here.
//!
//! Lenient like APNs by default: padded or standard base64 segments, DER
//! signatures and a `Bearer` scheme are accepted; strict on request.
//! `jsonwebtoken` reads only unpadded base64url and `r||s`, so a lenient
//! token is normalised first (segments decoded as any base64 and
//! re-encoded, a DER signature turned into `r||s`); its signature is still
//! checked over the segments as sent.

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::signature::Verifier;
use jsonwebtoken::{Algorithm, DecodingKey, Header};
use serde::Deserialize;

use super::jwt::{self, Es256Verifier};
use super::TokenClaims;

/// Why a token was refused (all map to `InvalidProviderToken`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TokenError {
    Malformed(&'static str),
    BadSignature,
}

/// Splits `authorization` into the scheme and token.
#[cfg(feature = "mock")]
pub(crate) fn bearer(value: &str, strict: bool) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    let ok = if strict {
        scheme == "bearer"
    } else {
        scheme.eq_ignore_ascii_case("bearer")
    };
    ok.then_some(token.trim())
}

fn decode_segment(segment: &str, strict: bool) -> Result<Vec<u8>, TokenError> {
    if strict {
        return URL_SAFE_NO_PAD
            .decode(segment)
            .map_err(|_| TokenError::Malformed("segment is not unpadded base64url"));
    }
    URL_SAFE_NO_PAD
        .decode(segment)
        .or_else(|_| URL_SAFE.decode(segment))
        .or_else(|_| STANDARD.decode(segment))
        .or_else(|_| STANDARD_NO_PAD.decode(segment))
        .map_err(|_| TokenError::Malformed("segment is not base64"))
}

/// A token cut in its three segments, the first two normalised for
/// `jsonwebtoken`.
struct Segments<'t> {
    /// `header.claims` as sent: what the signature covers.
    signing_input: &'t str,
    /// `header.claims.` re-encoded as unpadded base64url (the signature
    /// left empty), for `jsonwebtoken`'s unverified decoding.
    normalised: String,
    /// The signature segment as sent.
    signature: &'t str,
}

impl Segments<'_> {
    /// True when the signed segments are already unpadded base64url, so
    /// that `jsonwebtoken::decode` can check the token as it is.
    fn canonical(&self) -> bool {
        self.normalised.strip_suffix('.') == Some(self.signing_input)
    }
}

fn split(token: &str, strict: bool) -> Result<Segments<'_>, TokenError> {
    let mut parts = token.split('.');
    let (Some(h), Some(c), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed("not three segments"));
    };
    let normalised = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(decode_segment(h, strict)?),
        URL_SAFE_NO_PAD.encode(decode_segment(c, strict)?)
    );
    Ok(Segments {
        signing_input: &token[..h.len() + 1 + c.len()],
        normalised,
        signature: s,
    })
}

/// The claims as decoded; other claims are ignored (leniently). `iat` is
/// read as any JSON integer (a negative one for the mock to refuse, up to
/// `u64::MAX` for a signer's round trip).
#[derive(Deserialize)]
struct Claims {
    iss: String,
    iat: i128,
}

/// The claims of a strict token: these two, nothing else.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // Read for its shape only.
struct ExactClaims {
    iss: String,
    iat: i128,
}

/// Decodes the header and claims through `jsonwebtoken` (unverified).
fn decode_structure(segments: &Segments) -> Result<(Header, Claims), TokenError> {
    let header = jsonwebtoken::decode_header(&segments.normalised)
        .map_err(|_| TokenError::Malformed("header is not a JWS header with a known alg"))?;
    let claims = jsonwebtoken::dangerous::insecure_decode_claims::<Claims>(&segments.normalised)
        .map_err(|_| {
            TokenError::Malformed("claims are not JSON with a string iss and an integer iat")
        })?;
    Ok((header, claims))
}

/// A provider token's header and claims as parsed: its signature is **not**
/// checked yet (see [`ParsedToken::verify`]).
#[derive(Debug)]
pub(crate) struct ParsedToken<'t> {
    pub kid: String,
    pub iss: String,
    pub iat: i128,
    signing_input: &'t str,
    /// Whether `jsonwebtoken::decode` can check the token as sent.
    canonical: bool,
    /// Raw `r||s`.
    signature: [u8; 64],
}

/// Parses a provider token (ES256, with a `kid`, an `iss` and an integer
/// `iat`), leniently like APNs unless `strict`. Never panics.
pub(crate) fn parse(token: &str, strict: bool) -> Result<ParsedToken<'_>, TokenError> {
    let segments = split(token, strict)?;
    let (header, claims) = decode_structure(&segments)?;
    if header.alg != Algorithm::ES256 {
        return Err(TokenError::Malformed("alg is not ES256"));
    }
    let kid = header.kid.clone().ok_or(TokenError::Malformed("no kid"))?;
    // What `jsonwebtoken::decode` refuses, refused on every path alike.
    if header.crit.is_some() || header.extras.inner().contains_key("b64") {
        return Err(TokenError::Malformed("crit or b64 in the header"));
    }
    if strict {
        let exact_claims =
            jsonwebtoken::dangerous::insecure_decode_claims::<ExactClaims>(&segments.normalised)
                .is_ok();
        if header != jwt::apns_header(&kid) || !exact_claims {
            return Err(TokenError::Malformed("fields beyond alg, kid, iss, iat"));
        }
    }
    let signature = decode_segment(segments.signature, strict)?;
    let signature = match <[u8; 64]>::try_from(signature.as_slice()) {
        Ok(raw) => raw,
        Err(_) if strict => return Err(TokenError::Malformed("signature is not raw r||s")),
        Err(_) => der_to_raw(&signature)
            .ok_or(TokenError::Malformed("signature is neither r||s nor DER"))?,
    };
    Ok(ParsedToken {
        kid,
        iss: claims.iss,
        iat: claims.iat,
        canonical: segments.canonical(),
        signing_input: segments.signing_input,
        signature,
    })
}

impl ParsedToken<'_> {
    /// Checks the signature with the SEC1 public key `public_key` (`ring`).
    pub(crate) fn verify(&self, public_key: &[u8]) -> Result<(), TokenError> {
        if self.canonical && jwt::provider_is_ours() {
            let token = format!(
                "{}.{}",
                self.signing_input,
                URL_SAFE_NO_PAD.encode(self.signature)
            );
            let key = DecodingKey::from_ec_der(public_key);
            return match jsonwebtoken::decode::<serde::de::IgnoredAny>(
                &token,
                &key,
                &jwt::validation(),
            ) {
                Ok(_) => Ok(()),
                Err(e) if matches!(e.kind(), ErrorKind::InvalidSignature) => {
                    Err(TokenError::BadSignature)
                }
                Err(_) => Err(TokenError::Malformed("refused by jsonwebtoken")),
            };
        }
        Es256Verifier::new(public_key)
            .verify(self.signing_input.as_bytes(), &self.signature.to_vec())
            .map_err(|_| TokenError::BadSignature)
    }
}

/// An ECDSA-Sig-Value (`SEQUENCE { r INTEGER, s INTEGER }`, DER) as raw
/// `r||s`; `None` unless it is strict DER with both integers positive and
/// at most 32 bytes. Written here rather than taken from `p256`, so that
/// nothing of the signer's crate takes part in verification.
pub(crate) fn der_to_raw(der: &[u8]) -> Option<[u8; 64]> {
    let (&0x30, rest) = der.split_first()? else {
        return None;
    };
    let (&len, body) = rest.split_first()?;
    // At most 2 * (2 + 33) = 70 bytes: the short length form only.
    if len >= 0x80 || usize::from(len) != body.len() {
        return None;
    }
    let (r, body) = der_unsigned(body)?;
    let (s, body) = der_unsigned(body)?;
    if !body.is_empty() {
        return None;
    }
    let mut raw = [0u8; 64];
    raw[32 - r.len()..32].copy_from_slice(r);
    raw[64 - s.len()..].copy_from_slice(s);
    Some(raw)
}

/// A positive, minimally encoded DER INTEGER of at most 32 bytes (without
/// its sign byte), and what follows it.
fn der_unsigned(input: &[u8]) -> Option<(&[u8], &[u8])> {
    let (&0x02, rest) = input.split_first()? else {
        return None;
    };
    let (&len, rest) = rest.split_first()?;
    let len = usize::from(len);
    if len == 0 || len > 33 || rest.len() < len {
        return None;
    }
    let (int, rest) = rest.split_at(len);
    let value = match int {
        // Negative.
        [first, ..] if first & 0x80 != 0 => return None,
        // A leading zero is allowed only before a byte with its top bit set.
        [0, next, ..] if next & 0x80 != 0 => &int[1..],
        [0, ..] => return None,
        _ => int,
    };
    (value.len() <= 32).then_some((value, rest))
}

/// Decodes a provider token's header and claims without checking its
/// signature, through `jsonwebtoken`, to debug `InvalidProviderToken`.
/// Accepts what APNs accepts (padded or standard base64 segments); `alg`
/// may be any JWS algorithm, so that a wrong one can be reported.
pub fn decode_unverified(jwt: &str) -> crate::Result<TokenClaims> {
    let bad = |why: &str| crate::Error::invalid("token", why.to_string());
    let segments = split(jwt.trim(), false).map_err(|e| match e {
        TokenError::Malformed("not three segments") => {
            bad("not a JWT: expected three dot-separated parts")
        }
        _ => bad("a part is not base64url"),
    })?;
    let (header, claims) = decode_structure(&segments).map_err(|e| match e {
        TokenError::Malformed(why) => bad(why),
        TokenError::BadSignature => bad("bad signature"),
    })?;
    Ok(TokenClaims {
        alg: format!("{:?}", header.alg),
        kid: header.kid.ok_or_else(|| bad("no kid in the header"))?,
        iss: claims.iss,
        iat: u64::try_from(claims.iat).map_err(|_| bad("iat is negative or over 64 bits"))?,
    })
}

/// Verifies a provider token's signature with `key` (independently of the
/// signer: `ring` checks it) and returns its claims. Lenient like APNs.
///
/// ```
/// # use apns_provider::{SigningKey, TokenSigner, KeyId, TeamId};
/// # let key = SigningKey::from_pem(apns_provider::auth::generate_p8_pem().as_bytes())?;
/// let public = key.public_key();
/// let jwt = TokenSigner::new(key, KeyId::new("ABCDE12345")?, TeamId::new("TEAM123456")?).sign_jwt(1_700_000_000);
/// let claims = apns_provider::auth::verify_token(&jwt, &public)?;
/// assert_eq!(claims.iat, 1_700_000_000);
/// # Ok::<(), apns_provider::Error>(())
/// ```
pub fn verify_token(jwt: &str, key: &super::PublicKey) -> crate::Result<TokenClaims> {
    let invalid = |why: &str| crate::Error::invalid("token", why.to_string());
    let parsed = parse(jwt.trim(), false).map_err(|e| match e {
        TokenError::Malformed(why) => invalid(why),
        TokenError::BadSignature => invalid("bad signature"),
    })?;
    parsed
        .verify(&key.to_sec1_bytes())
        .map_err(|_| invalid("the signature does not match this key"))?;
    Ok(TokenClaims {
        alg: "ES256".into(),
        iat: u64::try_from(parsed.iat).map_err(|_| invalid("iat is negative or over 64 bits"))?,
        kid: parsed.kid,
        iss: parsed.iss,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{generate_p8_pem, SigningKey};

    #[test]
    fn der_signatures_convert_to_raw() {
        use p256::ecdsa::signature::Signer;
        use p256::pkcs8::DecodePrivateKey;
        let doc = SigningKey::from_pem(generate_p8_pem().as_bytes())
            .unwrap()
            .to_pkcs8_der()
            .unwrap();
        let key = p256::ecdsa::SigningKey::from_pkcs8_der(doc.as_bytes()).unwrap();
        for i in 0..200u32 {
            let sig: p256::ecdsa::Signature = key.sign(&i.to_be_bytes());
            let raw: [u8; 64] = sig.to_bytes().into();
            assert_eq!(der_to_raw(sig.to_der().as_bytes()), Some(raw));
        }
        // Not DER: long form, negative, non-minimal, trailing bytes, empty.
        for bad in [
            &[0x30, 0x81, 0x06, 2, 1, 1, 2, 1, 1][..],
            &[0x30, 0x06, 2, 1, 0x80, 2, 1, 1],
            &[0x30, 0x07, 2, 2, 0, 1, 2, 1, 1],
            &[0x30, 0x06, 2, 1, 1, 2, 1, 1, 0],
            &[0x30, 0x04, 2, 0, 2, 0],
            &[],
        ] {
            assert_eq!(der_to_raw(bad), None, "{bad:?}");
        }
        assert!(der_to_raw(&[0x30, 0x06, 2, 1, 1, 2, 1, 2]).is_some());
    }

    #[test]
    fn lenient_and_canonical_tokens_verify_on_both_paths() {
        let key = SigningKey::from_pem(generate_p8_pem().as_bytes()).unwrap();
        let public = key.public_key().to_sec1_bytes();
        let jwt = jwt::sign(&key, "ABCDE12345", "TEAM123456", 1_700_000_000);
        let parsed = parse(&jwt, true).unwrap();
        assert!(parsed.canonical);
        assert_eq!(parsed.verify(&public), Ok(()));
        // Padding the segments of a signed token breaks its signature.
        let (h, rest) = jwt.split_once('.').unwrap();
        let padded = format!("{h}==.{rest}");
        let parsed = parse(&padded, false).unwrap();
        assert!(!parsed.canonical);
        assert_eq!(parsed.verify(&public), Err(TokenError::BadSignature));
        // A token signed over padded standard base64 (as the a2 crate sends
        // them): checked by ring directly, over the segments as sent.
        let input = format!(
            "{}.{}",
            STANDARD.encode(br#"{"alg":"ES256","kid":"ABCDE12345"}"#),
            STANDARD.encode(br#"{"iss":"TEAM123456","iat":1700000000}"#)
        );
        assert!(input.contains('='));
        let lenient = format!("{input}.{}", STANDARD.encode(key.sign(input.as_bytes())));
        let parsed = parse(&lenient, false).unwrap();
        assert!(!parsed.canonical);
        assert_eq!(
            (parsed.kid.as_str(), parsed.iat),
            ("ABCDE12345", 1_700_000_000)
        );
        assert_eq!(parsed.verify(&public), Ok(()));
        assert!(parse(&lenient, true).is_err());
        let other = SigningKey::from_pem(generate_p8_pem().as_bytes()).unwrap();
        assert_eq!(
            parse(&jwt, false)
                .unwrap()
                .verify(&other.public_key().to_sec1_bytes()),
            Err(TokenError::BadSignature)
        );
    }

    mod props {
        //! Property tests of the mock-side parse (crate-private, so here
        //! rather than in `tests/suite/props.rs`, which covers the public
        //! decoders). `PROPTEST_CASES` raises the number of cases.

        use super::*;
        use proptest::prelude::*;
        use std::sync::OnceLock;

        fn config(cases: u32) -> ProptestConfig {
            let mut config = ProptestConfig::default();
            if std::env::var_os("PROPTEST_CASES").is_none() {
                config.cases = cases;
            }
            config
        }

        fn key() -> &'static (SigningKey, Vec<u8>) {
            static KEY: OnceLock<(SigningKey, Vec<u8>)> = OnceLock::new();
            KEY.get_or_init(|| {
                let key = SigningKey::from_pem(generate_p8_pem().as_bytes()).unwrap();
                let public = key.public_key().to_sec1_bytes();
                (key, public)
            })
        }

        /// Text that gets past the first checks: three segments, each
        /// arbitrary, base64 (padded or not) of arbitrary bytes, or of
        /// JSON with the right names.
        fn segment() -> impl Strategy<Value = String> {
            let json = prop_oneof![
                Just(r#"{"alg":"ES256","kid":"ABCDE12345"}"#.to_string()),
                (any::<String>(), any::<i64>())
                    .prop_map(|(iss, iat)| serde_json::json!({"iss": iss, "iat": iat}).to_string()),
                any::<String>().prop_map(|kid| {
                    serde_json::json!({"alg":"ES256","kid":kid, "crit": []}).to_string()
                }),
                ".*",
            ];
            prop_oneof![
                ".*",
                "[A-Za-z0-9_=+/-]{0,90}",
                proptest::collection::vec(any::<u8>(), 0..80)
                    .prop_map(|b| URL_SAFE_NO_PAD.encode(b)),
                json.clone().prop_map(|j| URL_SAFE_NO_PAD.encode(j)),
                json.prop_map(|j| STANDARD.encode(j)),
            ]
        }

        proptest! {
            #![proptest_config(config(256))]

            #[test]
            fn any_text_parses_or_fails_without_panicking(text in ".*", strict: bool) {
                if let Ok(parsed) = parse(&text, strict) {
                    prop_assert!(parsed.verify(&key().1).is_err());
                }
            }

            #[test]
            fn tokens_of_any_segments_never_panic(h in segment(), c in segment(), s in segment(), strict: bool) {
                let token = format!("{h}.{c}.{s}");
                if let Ok(parsed) = parse(&token, strict) {
                    let _ = parsed.verify(&key().1);
                }
            }
        }

        proptest! {
            #![proptest_config(config(64))]

            #[test]
            fn a_signed_token_parses_to_what_was_signed_and_any_character_change_fails(
                kid in "[A-Z0-9]{10}",
                iss in "[A-Z0-9]{10}",
                iat in 0..=i64::MAX as u64,
                position in any::<prop::sample::Index>(),
                replacement in "[A-Za-z0-9_=+/.-]",
            ) {
                let (key, public) = key();
                let jwt = jwt::sign(key, &kid, &iss, iat);
                for strict in [true, false] {
                    let parsed = parse(&jwt, strict).unwrap();
                    prop_assert_eq!((&parsed.kid, &parsed.iss, parsed.iat), (&kid, &iss, i128::from(iat)));
                    prop_assert_eq!(parsed.verify(public), Ok(()));
                }
                let i = position.index(jwt.len());
                let replacement = replacement.chars().next().unwrap();
                prop_assume!(jwt.as_bytes()[i] != replacement as u8);
                let mut mutated = jwt.clone();
                mutated.replace_range(i..=i, &replacement.to_string());
                let strict_ok = parse(&mutated, true).is_ok_and(|p| p.verify(public).is_ok());
                prop_assert!(!strict_ok, "strict accepted {mutated} (from {jwt})");
                // Leniently, only another spelling of the same signature
                // ('-' as '+', '_' as '/') may pass: it is not signed.
                if parse(&mutated, false).is_ok_and(|p| p.verify(public).is_ok()) {
                    let sig = |t: &str| decode_segment(t.rsplit('.').next().unwrap(), false).unwrap();
                    prop_assert!(i > jwt.rfind('.').unwrap());
                    prop_assert_eq!(sig(&mutated), sig(&jwt));
                }
            }

            #[test]
            fn der_round_trips(message: Vec<u8>) {
                use p256::ecdsa::signature::Signer;
                use p256::pkcs8::DecodePrivateKey;
                let doc = key().0.to_pkcs8_der().unwrap();
                let key = p256::ecdsa::SigningKey::from_pkcs8_der(doc.as_bytes()).unwrap();
                let sig: p256::ecdsa::Signature = key.sign(&message);
                let raw: [u8; 64] = sig.to_bytes().into();
                prop_assert_eq!(der_to_raw(sig.to_der().as_bytes()), Some(raw));
            }

            #[test]
            fn der_of_any_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
                let _ = der_to_raw(&bytes);
            }
        }
    }
}
