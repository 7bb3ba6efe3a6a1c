//! Provider token verification, used by the mock server and by
//! `apns token --decode`.
//!
//! Deliberately a different implementation from the signer's: parsing is
//! written here from scratch and signatures are checked with `ring`, not
//! `p256`, so a bug in the signer cannot hide behind the same bug here.
//! Lenient like APNs by default (padded or standard base64 segments, DER
//! signatures, a `Bearer` scheme); strict on request.

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_FIXED};

/// A token whose signature has been checked.
#[derive(Debug, Clone)]
pub(crate) struct VerifiedClaims {
    pub kid: String,
    pub iss: String,
    pub iat: i64,
}

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

/// Parses a JWT and returns its claims and what to verify.
pub(crate) fn parse(token: &str, strict: bool) -> Result<(VerifiedClaims, Vec<u8>), TokenError> {
    let mut parts = token.split('.');
    let (Some(h), Some(c), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed("not three segments"));
    };
    let header: serde_json::Value = serde_json::from_slice(&decode_segment(h, strict)?)
        .map_err(|_| TokenError::Malformed("header is not JSON"))?;
    let claims: serde_json::Value = serde_json::from_slice(&decode_segment(c, strict)?)
        .map_err(|_| TokenError::Malformed("claims are not JSON"))?;
    if header.get("alg").and_then(|v| v.as_str()) != Some("ES256") {
        return Err(TokenError::Malformed("alg is not ES256"));
    }
    let kid = header
        .get("kid")
        .and_then(|v| v.as_str())
        .ok_or(TokenError::Malformed("no kid"))?
        .to_string();
    let iss = claims
        .get("iss")
        .and_then(|v| v.as_str())
        .ok_or(TokenError::Malformed("no iss"))?
        .to_string();
    let iat = claims
        .get("iat")
        .and_then(|v| v.as_i64())
        .ok_or(TokenError::Malformed("no numeric iat"))?;
    if strict {
        let extra_header = header.as_object().is_some_and(|o| o.len() != 2);
        let extra_claims = claims.as_object().is_some_and(|o| o.len() != 2);
        if extra_header || extra_claims {
            return Err(TokenError::Malformed("fields beyond alg, kid, iss, iat"));
        }
    }
    let signature = decode_segment(s, strict)?;
    if strict && signature.len() != 64 {
        return Err(TokenError::Malformed("signature is not raw r||s"));
    }
    Ok((VerifiedClaims { kid, iss, iat }, signature))
}

/// Verifies `token` with the SEC1 public key `public_key`.
pub(crate) fn verify_signature(
    token: &str,
    signature: &[u8],
    public_key: &[u8],
) -> Result<(), TokenError> {
    let signing_input = token
        .rsplit_once('.')
        .map(|(input, _)| input)
        .ok_or(TokenError::Malformed("not three segments"))?;
    let alg = if signature.len() == 64 {
        &ECDSA_P256_SHA256_FIXED
    } else {
        &ECDSA_P256_SHA256_ASN1
    };
    UnparsedPublicKey::new(alg, public_key)
        .verify(signing_input.as_bytes(), signature)
        .map_err(|_| TokenError::BadSignature)
}

/// Verifies a provider token's signature with `key` (independently of the
/// signer: `ring` checks it) and returns its claims.
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
pub fn verify_token(jwt: &str, key: &super::PublicKey) -> crate::Result<super::TokenClaims> {
    let jwt = jwt.trim();
    let invalid = |why: &str| crate::Error::invalid("token", why.to_string());
    let (claims, signature) = parse(jwt, false).map_err(|e| match e {
        TokenError::Malformed(why) => invalid(why),
        TokenError::BadSignature => invalid("bad signature"),
    })?;
    verify_signature(jwt, &signature, &key.to_sec1_bytes())
        .map_err(|_| invalid("the signature does not match this key"))?;
    Ok(super::TokenClaims {
        alg: "ES256".into(),
        kid: claims.kid,
        iss: claims.iss,
        iat: u64::try_from(claims.iat).map_err(|_| invalid("negative iat"))?,
    })
}
