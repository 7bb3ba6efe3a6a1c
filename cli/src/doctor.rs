//! `apns doctor`: checks a setup step by step, each with a fix.

use std::time::Duration;

use apns_provider::auth::verify_token;
use apns_provider::clock::{format_utc_seconds, now_unix_seconds, unix_seconds};
use apns_provider::doctor::{check_endpoint, Check, CheckStatus, ProbeOptions};
use apns_provider::{Endpoint, Environment, Notification, Payload};

use super::args::{DoctorArgs, Output};
use super::credentials::{Credentials, Resolved};
use super::failure::{exit, Failure};
use super::report::reason_hint;

/// `--timeout`'s default for each check, in seconds.
const DEFAULT_TIMEOUT: f64 = 10.0;

pub async fn run(args: DoctorArgs) -> Result<u8, Failure> {
    let target = &args.target;
    let resolved = target.has_credentials().then(|| target.resolve());
    let environment: Environment = match &resolved {
        Some(Ok(r)) => target.environment_for(r)?,
        _ => target.environment.unwrap_or(Environment::Production),
    };
    let endpoint = target.server.endpoint_or(environment)?;
    let timeout = target.timeout_or(DEFAULT_TIMEOUT);
    let mut checks: Vec<(Category, Check)> = vec![(Category::Local, clock())];
    let profile_topic = match &resolved {
        Some(Ok(r)) => r.topic.clone(),
        _ => None,
    };
    let credentials = match key_check(resolved, endpoint.environment()) {
        Ok(Some((credentials, check))) => {
            checks.push((Category::Local, check));
            Some(credentials)
        }
        Ok(None) => {
            checks.push((
                Category::Local,
                Check::warn(
                    "key",
                    "no key given: credentials not checked",
                    "add --key-file AuthKey_<KEYID>.p8 --team-id TEAM",
                ),
            ));
            None
        }
        Err(check) => {
            checks.push((Category::Local, check));
            None
        }
    };
    // A test send needs a topic: without one it is a usage error, found
    // before any network check.
    let topic = args
        .topic
        .topic
        .clone()
        .or(profile_topic)
        .or_else(|| match &credentials {
            Some(Credentials::Certificate(c)) => c.info().default_topic(),
            _ => None,
        });
    if args.device_token.is_some() && topic.is_none() {
        return Err(Failure::usage(
            "--device-token needs --topic (the app's bundle id, plus the push type's suffix) for the test send",
        ));
    }
    let mut options = ProbeOptions::default();
    options.timeout = timeout;
    if let Some(ca) = &target.server.ca_file {
        let pem = std::fs::read(ca)
            .map_err(|e| Failure::usage(format!("cannot read CA file {}: {e}", ca.display())))?;
        options.extra_roots_pem.push(pem);
    }
    options.proxy = target.proxy.choice()?;
    let mut network = check_endpoint(&endpoint, &options).await;
    // The library's advice, in this command line's terms.
    for check in &mut network {
        let Some(fix) = &mut check.fix else { continue };
        match check.tls_problem {
            // Said whole: the library's "trust its CA" becomes the flag.
            Some(apns_provider::TlsProblem::UntrustedCertificate) => {
                *fix = "for a mock or a TLS-inspecting proxy, pass its CA with --ca-file; otherwise something is intercepting the connection".into();
            }
            Some(apns_provider::TlsProblem::WrongHostName) => fix.push_str("; check --endpoint"),
            _ => {}
        }
    }
    let network_ok = network.iter().all(|c| c.status != CheckStatus::Fail);
    checks.extend(network.into_iter().map(|c| (Category::Network, c)));

    if let Some(device) = &args.device_token {
        let check = match (credentials, topic, network_ok) {
            (_, _, false) => Check::fail(
                "send",
                "skipped: the endpoint is not reachable",
                "fix the checks above first",
            ),
            (None, _, _) => Check::fail(
                "send",
                "skipped: no usable key or certificate",
                "give --key-file and --team-id, or --cert",
            ),
            (_, None, _) => Check::fail(
                "send",
                "skipped: no topic",
                "give --topic (the app's bundle id)",
            ),
            (Some(credentials), Some(topic), true) => {
                test_send(credentials, environment, &args, device, &topic).await
            }
        };
        checks.push((Category::Send, check));
    }

    let hop = options
        .proxy
        .as_ref()
        .filter(|p| p.applies_to(endpoint.host()));
    print(&checks, args.output.output, &endpoint, hop);
    let first_failure = checks.iter().find(|(_, c)| c.status == CheckStatus::Fail);
    Ok(match first_failure {
        None => exit::OK,
        Some((Category::Local, _)) => exit::USAGE,
        Some((Category::Network, _)) => exit::CONNECTION,
        Some((Category::Send, c)) if c.detail.starts_with("rejected") => exit::REJECTED,
        Some((Category::Send, _)) => exit::CONNECTION,
    })
}

#[derive(Clone, Copy)]
enum Category {
    Local,
    Network,
    Send,
}

fn clock() -> Check {
    let now = now_unix_seconds();
    let shown = format_utc_seconds(now as i64);
    // Before 2025 or after 2100 is not a real date for this tool: tokens
    // would be rejected as expired or from the future, and TLS would fail.
    if !(1_735_689_600..4_102_444_800).contains(&now) {
        return Check::fail("clock", format!("this machine's clock says {shown}"), "set the clock (e.g. timedatectl set-ntp true); provider tokens carry the time they were issued");
    }
    Check::pass(
        "clock",
        format!("{shown} (UTC); provider tokens are stamped with it"),
    )
}

fn key_check(
    resolved: Option<Result<Resolved, Failure>>,
    environment: Option<Environment>,
) -> Result<Option<(Credentials, Check)>, Check> {
    let resolved = match resolved {
        None => return Ok(None),
        Some(Err(f)) => {
            return Err(Check::fail(
                "key",
                f.message,
                "use the AuthKey_<KEYID>.p8 from Certificates, Identifiers & Profiles > Keys with --team-id, a stored key (--key NAME), or --cert",
            ))
        }
        Some(Ok(r)) => r,
    };
    let now = std::time::SystemTime::now();
    let date = format_utc_seconds;
    match resolved.credentials {
        Credentials::Certificate(cert) => {
            let info = cert.info().clone();
            if info.is_expired(now) {
                return Err(Check::fail("cert", format!("the certificate expired on {}", date(info.not_after)), "renew it in the Apple Developer account, or move to token authentication (.p8)"));
            }
            if let Some(env) = environment {
                if !info.environment.allows(env) {
                    return Err(Check::fail(
                        "cert",
                        format!(
                            "a {:?} certificate cannot be used with {env}",
                            info.environment
                        ),
                        "use --env for the certificate's environment, or the matching certificate",
                    ));
                }
            }
            let detail = format!(
                "{} ({:?}), topics {}, expires {} ({} days)",
                info.bundle_id.as_deref().unwrap_or(&info.subject),
                info.environment,
                info.allowed_topics().join(", "),
                date(info.not_after),
                info.days_left(now)
            );
            let check = match info.expiry_warning(now, Duration::from_secs(30 * 86_400)) {
                Some(w) => Check::warn("cert", detail, w),
                None => Check::pass("cert", detail),
            };
            Ok(Some((Credentials::Certificate(cert), check)))
        }
        Credentials::Token(signer) => {
            let public = signer.key().public_key();
            let unix = unix_seconds(now);
            let jwt = signer.sign_jwt(unix);
            verify_token(&jwt, &public).map_err(|e| {
                Check::fail(
                    "key",
                    format!("a signed token does not verify: {e}"),
                    "the key file may be damaged",
                )
            })?;
            let check = Check::pass(
                "key",
                format!(
                    "key {} for team {} loads (P-256, {}); tokens sign and verify",
                    signer.key_id(),
                    signer.team_id(),
                    public.fingerprint()
                ),
            );
            Ok(Some((Credentials::Token(signer), check)))
        }
    }
}

async fn test_send(
    credentials: Credentials,
    environment: Environment,
    args: &DoctorArgs,
    device: &str,
    topic: &str,
) -> Check {
    let target = &args.target;
    let builder =
        match target.client_builder(credentials, environment, target.timeout_or(DEFAULT_TIMEOUT)) {
            Ok(b) => b,
            Err(f) => return Check::fail("send", f.message, "fix --proxy or --endpoint"),
        };
    let client = match builder.build() {
        Ok(c) => c,
        Err(e) => return Check::fail("send", e.to_string(), "fix the configuration above"),
    };
    let notification =
        match Notification::builder(device, Payload::alert("apns doctor: test notification"))
            .topic(topic)
            .build()
        {
            Ok(n) => n,
            Err(e) => {
                return Check::fail("send", e.to_string(), "check --device-token and --topic")
            }
        };
    match client.send(&notification).await {
        Ok(r) if r.is_accepted() => Check::pass(
            "send",
            format!("accepted; apns-id {}", r.apns_id().unwrap_or("-")),
        ),
        Ok(r) => Check::fail(
            "send",
            format!("rejected: {}", r.describe()),
            r.reason()
                .and_then(reason_hint)
                .unwrap_or("see the reason above"),
        ),
        Err(e) => Check::fail(
            "send",
            e.to_string(),
            "the checks above passed: retry, or look at the server's logs",
        ),
    }
}

fn print(
    checks: &[(Category, Check)],
    output: Output,
    endpoint: &Endpoint,
    proxy: Option<&apns_provider::transport::Proxy>,
) {
    match output {
        Output::Json => {
            let list: Vec<&Check> = checks.iter().map(|(_, c)| c).collect();
            let ok = list.iter().all(|c| c.status != CheckStatus::Fail);
            println!(
                "{}",
                serde_json::json!({"endpoint": endpoint.to_string(), "proxy": proxy.map(|p| p.to_string()), "ok": ok, "checks": list})
            );
        }
        Output::Human => {
            println!("apns doctor: {endpoint}");
            if let Some(p) = proxy {
                println!("      via    {p} (HTTP CONNECT tunnel)");
            }
            for (_, c) in checks {
                let tag = match c.status {
                    CheckStatus::Pass => "PASS",
                    CheckStatus::Warn => "WARN",
                    _ => "FAIL",
                };
                println!("{tag}  {:<6} {}", c.name, c.detail);
                if let Some(fix) = &c.fix {
                    println!("      {:<6} fix: {fix}", "");
                }
            }
        }
    }
}
