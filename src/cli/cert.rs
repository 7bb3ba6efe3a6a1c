//! `apns cert inspect` and `apns cert convert`.

use std::time::{Duration, SystemTime};

use apns_provider::clock::format_utc_seconds;

use super::args::{CertCommand, Output};
use super::{exit, load_certificate, Failure};

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
            match output {
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
                    println!("topics       {}", info.allowed_topics().join(", "));
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
            write_private(&out, cert.to_pem().as_bytes())?;
            eprintln!(
                "apns: wrote {} (certificate chain and unencrypted key, mode 0600)",
                out.display()
            );
            Ok(exit::OK)
        }
    }
}

/// Writes a file readable only by its owner, replacing any old one.
fn write_private(path: &std::path::Path, bytes: &[u8]) -> Result<(), Failure> {
    use std::io::Write;
    let fail = |e: std::io::Error| Failure::usage(format!("cannot write {}: {e}", path.display()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(fail)?;
    // An existing file keeps its mode on open: tighten it.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(fail)?;
    }
    file.write_all(bytes).map_err(fail)
}
