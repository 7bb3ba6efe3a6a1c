//! `apns token`: one fresh provider token (JWT) for curl, or a token
//! decoded and checked.

use super::args::{Output, TokenArgs};
use super::credentials::load_signer;
use super::failure::{exit, Failure};

/// Prints a fresh token, or (`--decode`) what a token says and whether it
/// would be accepted.
pub fn run(args: TokenArgs) -> Result<u8, Failure> {
    let now = unix_now();
    // Decoding a token given to it needs no key: the key, when given,
    // checks the signature, kid and iss too.
    let has_key = args.key.profile.is_some() || args.key.file.key_file.is_some();
    let signer = match (args.decode, args.jwt.is_some(), has_key) {
        (true, true, false) => None,
        _ => Some(load_signer(&args.key)?),
    };
    if !args.decode {
        let signer = signer.as_ref().ok_or_else(|| Failure::usage("no key"))?;
        println!("{}", signer.sign_jwt(now));
        return Ok(exit::OK);
    }
    let jwt = match (args.jwt.as_deref(), &signer) {
        (Some("-"), _) => {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
                .map_err(|e| Failure::usage(format!("cannot read the token from stdin: {e}")))?;
            text.trim().to_string()
        }
        (Some(t), _) => t.trim().to_string(),
        (None, Some(signer)) => signer.sign_jwt(now),
        (None, None) => return Err(Failure::usage("no token to decode")),
    };
    let claims = apns_provider::auth::decode_unverified(&jwt)?;
    // In i128, then clamped: an absurd iat must not overflow the arithmetic.
    let age =
        (now as i128 - claims.iat as i128).clamp(i64::MIN as i128 / 2, i64::MAX as i128 / 2) as i64;
    // Checked against the key when there is one; else not checked at all.
    let signature = signer
        .as_ref()
        .map(|s| apns_provider::auth::verify_token(&jwt, &s.key().public_key()).is_ok());
    let mut problems = Vec::new();
    if claims.alg != "ES256" {
        problems.push(format!("alg is {:?}; APNs needs ES256", claims.alg));
    }
    if let Some(signer) = &signer {
        if claims.kid != signer.key_id().as_str() {
            problems.push(format!(
                "kid {} is not this key's id {}",
                claims.kid,
                signer.key_id()
            ));
        }
        if claims.iss != signer.team_id().as_str() {
            problems.push(format!(
                "iss {} is not the team id {}",
                claims.iss,
                signer.team_id()
            ));
        }
    }
    if signature == Some(false) {
        problems.push("the signature does not verify with this key (wrong .p8, or a tampered token): APNs answers InvalidProviderToken".into());
    }
    if age >= 3600 {
        problems.push(format!(
            "issued {age} s ago: older than an hour, APNs answers ExpiredProviderToken"
        ));
    } else if age < -60 {
        problems.push(format!(
            "issued {} s in the future: this machine's clock (or the signer's) is wrong",
            -age
        ));
    }
    match args.output.output {
        Output::Json => println!(
            "{}",
            serde_json::json!({
                "header": {"alg": claims.alg, "kid": claims.kid},
                "claims": {"iss": claims.iss, "iat": claims.iat},
                "age_seconds": age,
                "signature_valid": signature,
                "problems": problems,
            })
        ),
        Output::Human => {
            println!(
                "header     {{\"alg\":\"{}\",\"kid\":\"{}\"}}",
                claims.alg, claims.kid
            );
            println!(
                "claims     {{\"iss\":\"{}\",\"iat\":{}}}",
                claims.iss, claims.iat
            );
            println!(
                "issued     {} ({age} s ago; APNs accepts it for {} s more)",
                apns_provider::clock::format_utc_millis(claims.iat.saturating_mul(1000)),
                (3600 - age).max(0)
            );
            println!(
                "signature  {}",
                match signature {
                    Some(true) => "valid for this key",
                    Some(false) => "INVALID for this key",
                    None => "not checked (give the key with --key or --key-file to check it)",
                }
            );
            for p in &problems {
                println!("problem    {p}");
            }
        }
    }
    Ok(if problems.is_empty() {
        exit::OK
    } else {
        exit::USAGE
    })
}

fn unix_now() -> u64 {
    apns_provider::clock::now_unix_seconds()
}
