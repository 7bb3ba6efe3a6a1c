//! What `send` and `broadcast` do instead of sending: `--dry-run` shows
//! what would be sent (request line, headers, payload, lints) and `--curl`
//! the equivalent curl command, both without connecting.

use apns_provider::wire::SpecDefaults;
use apns_provider::{Endpoint, Notification};
use serde_json::json;

use super::args::{Output, SendArgs};
use super::credentials::Credentials;
use super::failure::{exit, Failure};
use super::input::require_topic;
use super::input::Lines;
use super::plan::Plan;

/// `--dry-run`: validates every line and prints what would be sent: the
/// request line and headers, as `broadcast --dry-run` shows them, and the
/// payload.
pub async fn dry_run(
    mut lines: Lines,
    defaults: &SpecDefaults,
    output: Output,
) -> Result<u8, Failure> {
    let (mut valid, mut invalid) = (0u64, 0u64);
    while let Some(line) = lines.recv().await {
        let line = line.map_err(Failure::usage)?.parse(defaults);
        let at = line
            .number
            .map(|n| format!("line {n}: "))
            .unwrap_or_default();
        match line.notification.and_then(require_topic) {
            Ok(n) => {
                valid += 1;
                let lints: Vec<String> = n.lints().iter().map(|l| l.to_string()).collect();
                match output {
                    Output::Json => {
                        let headers: serde_json::Map<String, serde_json::Value> = n
                            .headers()
                            .map(|(name, value)| (name.to_string(), json!(value)))
                            .collect();
                        println!(
                            "{}",
                            json!({
                                "line": line.number,
                                "device_token": n.device_token().as_str(),
                                "valid": true,
                                "topic": n.topic().map(|t| t.as_str()),
                                "push_type": n.push_type().as_str(),
                                "path": n.path(),
                                "headers": headers,
                                "payload_bytes": n.payload().len(),
                                "payload": String::from_utf8_lossy(n.payload()),
                                "lints": lints,
                            })
                        )
                    }
                    Output::Human => {
                        println!(
                            "{at}{}  ok  {} to {} ({} bytes): {}",
                            n.device_token(),
                            n.push_type(),
                            n.topic().map(|t| t.as_str()).unwrap_or("-"),
                            n.payload().len(),
                            String::from_utf8_lossy(n.payload())
                        );
                        println!("{at}  POST {}", n.path());
                        for (name, value) in n.headers() {
                            println!("{at}  {name}: {value}");
                        }
                        for lint in lints {
                            println!("{at}  warning: {lint}");
                        }
                    }
                }
            }
            Err(e) => {
                invalid += 1;
                match output {
                    Output::Json => println!(
                        "{}",
                        json!({"line": line.number, "device_token": line.token, "valid": false, "error": e})
                    ),
                    Output::Human => println!("{at}{}  invalid: {e}", line.token),
                }
            }
        }
    }
    eprintln!("apns: dry run: {valid} valid, {invalid} invalid; nothing was sent");
    Ok(if invalid > 0 { exit::USAGE } else { exit::OK })
}

/// `--curl`: the equivalent curl command for each line.
pub async fn curl(mut lines: Lines, plan: &Plan, args: &SendArgs) -> Result<u8, Failure> {
    let auth = auth(args, &plan.credentials, plan.profile.as_deref());
    let ca_file = args.target.server.ca_file.as_deref();
    let mut invalid = 0u64;
    while let Some(line) = lines.recv().await {
        let line = line.map_err(Failure::usage)?.parse(&plan.defaults);
        match line.notification.and_then(require_topic) {
            Ok(n) => println!("{}", curl_command(&n, &auth, &plan.endpoint, ca_file)),
            Err(e) => {
                invalid += 1;
                let at = line
                    .number
                    .map(|n| format!("line {n}: "))
                    .unwrap_or_default();
                eprintln!("apns: {at}invalid: {e}");
            }
        }
    }
    Ok(if invalid > 0 { exit::USAGE } else { exit::OK })
}

/// The credentials part of a curl command: a bearer header (the token as
/// `$(apns token ...)` unless `--reveal`), or `--cert` for certificates.
pub fn credentials_part(
    credentials: &Credentials,
    reveal: bool,
    profile: Option<&str>,
    target: &super::args::TargetArgs,
) -> String {
    let key = &target.key;
    match credentials {
        Credentials::Token(signer) => {
            let token = if reveal {
                signer.sign_jwt(apns_provider::clock::now_unix_seconds())
            } else if let (Some(name), None) = (profile, &key.file.key_file) {
                // A stored key is named by its profile; flags would override it.
                format!("$(apns token --key {})", shell_quote(name))
            } else {
                let file = key
                    .file
                    .key_file
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default();
                format!(
                    "$(apns token --key-file {} --key-id {} --team-id {})",
                    shell_quote(&file),
                    signer.key_id(),
                    signer.team_id()
                )
            };
            format!(" -H \"authorization: bearer {token}\"")
        }
        // curl takes a PEM certificate; a .p12 needs `apns cert convert` first.
        Credentials::Certificate(_) => {
            let mut s = String::new();
            for (flag, path) in [
                ("--cert", &target.cert.cert),
                ("--key", &target.cert.cert_key),
            ] {
                if let Some(path) = path {
                    s += &format!(" {flag} {}", shell_quote(&path.display().to_string()));
                }
            }
            s
        }
    }
}

fn auth(args: &SendArgs, credentials: &Credentials, profile: Option<&str>) -> String {
    credentials_part(credentials, args.checking.reveal, profile, &args.target)
}

fn curl_command(
    n: &Notification,
    auth: &str,
    endpoint: &Endpoint,
    ca_file: Option<&std::path::Path>,
) -> String {
    let mut cmd = String::from("curl --http2");
    if let Some(ca) = ca_file {
        cmd.push_str(&format!(
            " --cacert {}",
            shell_quote(&ca.display().to_string())
        ));
    }
    cmd.push_str(auth);
    for (name, value) in n.headers() {
        cmd.push_str(&format!(" -H {}", shell_quote(&format!("{name}: {value}"))));
    }
    cmd.push_str(&format!(
        " -d {} {endpoint}{}",
        shell_quote(&String::from_utf8_lossy(n.payload())),
        n.path()
    ));
    cmd
}

/// A word for POSIX shells: as is when it is plainly safe, else in single
/// quotes.
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=@+,".contains(&b))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}
