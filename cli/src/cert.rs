//! `apns cert inspect` and `apns cert convert`.

use std::time::{Duration, SystemTime};

use apns_provider::clock::format_utc_seconds;

use super::args::{CertCommand, Output};
use super::credentials::load_certificate;
use super::failure::{exit, Failure};

pub fn run(command: CertCommand) -> Result<u8, Failure> {
    match command {
        CertCommand::Inspect {
            path,
            cert_key,
            password,
            output,
        } => {
            // Showing a certificate needs no key: a PEM without one is
            // read alone (sending with it would need the key).
            let (owned, chain_length, has_key) =
                match load_certificate(&path, cert_key.as_deref(), &password) {
                    Ok(cert) => (cert.info().clone(), cert.chain().len(), true),
                    Err(failure) => match certificate_alone(&path) {
                        Some((info, n)) if cert_key.is_none() => (info, n, false),
                        _ => return Err(failure),
                    },
                };
            let info = &owned;
            let now = SystemTime::now();
            let days_left = info.days_left(now);
            let expired = info.is_expired(now);
            let warning = info.expiry_warning(now, Duration::from_secs(30 * 86_400));
            let date = format_utc_seconds;
            match output.output {
                Output::Json => println!(
                    "{}",
                    serde_json::json!({
                        "subject": info.subject,
                        "issuer": info.issuer,
                        "bundle_id": info.bundle_id,
                        "topics": info.allowed_topics(),
                        "environment": info.environment,
                        "not_before": date(info.not_before),
                        "not_after": date(info.not_after),
                        "days_left": days_left,
                        "expired": expired,
                        "warning": warning,
                        "chain_length": chain_length,
                        "has_key": has_key,
                    })
                ),
                Output::Human => {
                    println!("subject      {}", info.subject);
                    println!("issuer       {}", info.issuer);
                    println!("bundle id    {}", info.bundle_id.as_deref().unwrap_or("-"));
                    let topics = info.allowed_topics();
                    if topics.is_empty() {
                        println!(
                            "topics       none: APNs refuses every push sent with this certificate"
                        );
                    } else {
                        println!("topics       {}", topics.join(", "));
                    }
                    println!("environment  {:?}", info.environment);
                    println!(
                        "valid        {} to {}",
                        date(info.not_before),
                        date(info.not_after)
                    );
                    if expired {
                        println!("status       EXPIRED {} days ago", -days_left);
                    } else {
                        println!("status       {days_left} days left");
                    }
                    if !has_key {
                        println!("key          none in this file (sending needs it: --cert-key, or a PEM or .p12 with both)");
                    }
                }
            }
            if let Some(w) = &warning {
                eprintln!("apns: warning: {w}");
            }
            if expired {
                eprintln!(
                    "apns: error: the certificate expired on {}: renew it, or move to token authentication",
                    date(info.not_after)
                );
                return Ok(exit::USAGE);
            }
            Ok(exit::OK)
        }
        CertCommand::Convert {
            path,
            out,
            password,
        } => {
            let cert = load_certificate(&path, None, &password)?;
            apns_provider::keystore::write_private(&out, cert.to_pem().as_bytes())?;
            eprintln!(
                "apns: wrote {} (certificate chain and unencrypted key, mode 0600)",
                out.display()
            );
            Ok(exit::OK)
        }
    }
}

/// A PEM file holding certificates and no key: its first certificate, and
/// the chain's length. `None` for anything else (a .p12, a PEM with a key
/// that failed for another reason), whose error then stands.
fn certificate_alone(path: &std::path::Path) -> Option<(apns_provider::CertificateInfo, usize)> {
    let pem = std::fs::read(path).ok()?;
    let text = String::from_utf8_lossy(&pem);
    if !text.contains("-----BEGIN CERTIFICATE-----") || text.contains("PRIVATE KEY-----") {
        return None;
    }
    apns_provider::CertificateInfo::from_pem(&pem).ok()
}
