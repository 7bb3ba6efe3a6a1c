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
            let cert = load_certificate(&path, cert_key.as_deref(), &password)?;
            let info = cert.info();
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
                        "chain_length": cert.chain().len(),
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
