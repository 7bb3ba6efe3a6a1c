//! `apns send`.

use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use apns_provider::payload::{Alert, InterruptionLevel, Sound};
use apns_provider::{
    Client, Endpoint, Environment, Error, Expiration, Notification, Payload, Priority, PushType,
    Response,
};
use serde_json::json;

use super::args::{Output, PayloadArgs, SendArgs};
use super::{exit, load_signer, Failure};

/// At most this many notifications in flight from one `apns send`.
const MAX_IN_FLIGHT: usize = 256;

pub async fn run(args: SendArgs) -> Result<u8, Failure> {
    let signer = load_signer(&args.key)?;
    let payload = build_payload(&args.payload)?;
    let push_type: PushType = args.push_type.parse()?;
    let environment: Environment = args.environment.parse()?;
    let endpoint = match &args.endpoint {
        Some(url) => url.parse::<Endpoint>()?,
        None => Endpoint::for_environment(environment),
    };
    if !(args.timeout > 0.0 && args.timeout.is_finite()) {
        return Err(Failure::usage(
            "--timeout must be a positive number of seconds",
        ));
    }

    // Validate every notification before connecting.
    let mut template = Notification::builder(&args.device_tokens[0], payload)
        .topic(&args.topic)
        .push_type(push_type);
    if let Some(p) = &args.priority {
        template = template.priority(p.parse::<Priority>()?);
    }
    if let Some(e) = &args.expiration {
        template = template.expiration(e.parse::<Expiration>()?);
    }
    if let Some(c) = &args.collapse_id {
        template = template.collapse_id(c);
    }
    if let Some(id) = &args.apns_id {
        template = template.apns_id_str(id);
    }
    let template = template.build()?;
    for lint in template.lints() {
        eprintln!("apns: warning: {lint}");
    }
    let mut notifications = Vec::with_capacity(args.device_tokens.len());
    for token in &args.device_tokens {
        let token = apns_provider::DeviceToken::new(token)
            .map_err(|e| Failure::usage(format!("{e} (token {token:?})")))?;
        notifications.push(template.with_device_token(token));
    }

    let mut builder = Client::builder()
        .endpoint(endpoint)
        .token_signer(signer)
        .request_timeout(Duration::from_secs_f64(args.timeout));
    if let Some(ca) = &args.ca_file {
        builder = builder.add_root_certificates_file(ca);
    }
    let client = builder.build()?;

    let limit = Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT));
    let mut handles = Vec::with_capacity(notifications.len());
    for n in notifications {
        let client = client.clone();
        let permit = limit.clone().acquire_owned().await.ok();
        handles.push(tokio::spawn(async move {
            let result = client.send(&n).await;
            drop(permit);
            (n, result)
        }));
    }

    let (mut rejected, mut failed, mut first_error) = (0usize, 0usize, None);
    for handle in handles {
        let (n, result) = handle
            .await
            .map_err(|e| Failure::usage(format!("internal error: {e}")))?;
        let token = n.device_token().as_str();
        match &result {
            Ok(r) if !r.is_accepted() => rejected += 1,
            Ok(_) => {}
            Err(e) => {
                failed += 1;
                first_error.get_or_insert_with(|| e.to_string());
            }
        }
        print_result(args.output, token, &result);
    }
    if failed > 0 {
        if args.output == Output::Human {
            eprintln!(
                "apns: {failed} notification(s) got no answer: {}",
                first_error.unwrap_or_default()
            );
        }
        return Ok(exit::CONNECTION);
    }
    Ok(if rejected > 0 {
        exit::REJECTED
    } else {
        exit::OK
    })
}

fn print_result(output: Output, token: &str, result: &Result<Response, Error>) {
    match output {
        Output::Human => match result {
            Ok(r) => {
                let mut line = format!("{token}  {}", r.describe());
                if let Some(id) = r.apns_id() {
                    line.push_str(&format!("  apns-id={id}"));
                }
                if let Some(id) = r.apns_unique_id() {
                    line.push_str(&format!("  apns-unique-id={id}"));
                }
                if let Some(hint) = r.reason().and_then(reason_hint) {
                    line.push_str(&format!("  hint: {hint}"));
                }
                println!("{line}");
            }
            Err(e) => println!("{token}  error: {e}"),
        },
        Output::Json => {
            let value = match result {
                Ok(r) => json!({
                    "device_token": token,
                    "status": r.status(),
                    "apns_id": r.apns_id(),
                    "apns_unique_id": r.apns_unique_id(),
                    "reason": r.reason().map(|r| r.as_str()),
                    "timestamp": r.timestamp_millis(),
                }),
                Err(e) => json!({
                    "device_token": token,
                    "status": null,
                    "apns_id": null,
                    "reason": null,
                    "timestamp": null,
                    "error": e.to_string(),
                    "may_have_been_delivered": e.may_have_been_delivered(),
                }),
            };
            println!("{value}");
        }
    }
}

/// What an operator should do about the commonest rejections.
fn reason_hint(reason: &apns_provider::Reason) -> Option<&'static str> {
    use apns_provider::Reason::*;
    Some(match reason {
        InvalidProviderToken => {
            "check --key-id and --team-id (often swapped) and that the key is not revoked"
        }
        ExpiredProviderToken => {
            "this machine's clock may be wrong; tokens must be issued within the last hour"
        }
        BadDeviceToken => {
            "a token for the other environment? try --env sandbox or --env production"
        }
        DeviceTokenNotForTopic => "the token belongs to another app or topic suffix; check --topic",
        TopicDisallowed => "the key is not allowed to push to this topic",
        Unregistered | ExpiredToken => {
            "the app was removed or the token expired: stop sending to it"
        }
        BadEnvironmentKeyIdInToken => "the key is limited to the other environment; check --env",
        _ => return None,
    })
}

fn build_payload(p: &PayloadArgs) -> Result<Payload, Failure> {
    if let Some(json) = &p.payload {
        return Ok(Payload::raw(json.clone().into_bytes())?);
    }
    if let Some(path) = &p.payload_file {
        let mut bytes = Vec::new();
        if path.as_os_str() == "-" {
            std::io::stdin()
                .read_to_end(&mut bytes)
                .map_err(|e| Failure::usage(format!("cannot read the payload from stdin: {e}")))?;
        } else {
            bytes = std::fs::read(path).map_err(|e| {
                Failure::usage(format!("cannot read payload file {}: {e}", path.display()))
            })?;
        }
        return Ok(Payload::raw(bytes)?);
    }
    let has_fields = p.alert.is_some()
        || p.title.is_some()
        || p.subtitle.is_some()
        || p.body.is_some()
        || p.badge.is_some()
        || p.sound.is_some()
        || p.content_available
        || !p.custom.is_empty();
    if !has_fields {
        return Err(Failure::usage(
            "no payload: give --alert TEXT, alert fields (--title/--body/--badge/--sound...), --content-available, --payload JSON or --payload-file PATH",
        ));
    }
    let mut b = Payload::builder();
    if let Some(text) = &p.alert {
        b = b.alert_text(text);
    } else if p.title.is_some() || p.subtitle.is_some() || p.body.is_some() {
        let mut alert = Alert::new();
        if let Some(t) = &p.title {
            alert = alert.title(t);
        }
        if let Some(s) = &p.subtitle {
            alert = alert.subtitle(s);
        }
        if let Some(body) = &p.body {
            alert = alert.body(body);
        }
        b = b.alert(alert);
    }
    if let Some(n) = p.badge {
        b = b.badge(n);
    }
    if let Some(s) = &p.sound {
        b = b.sound(Sound::named(s));
    }
    if let Some(c) = &p.category {
        b = b.category(c);
    }
    if let Some(t) = &p.thread_id {
        b = b.thread_id(t);
    }
    if p.content_available {
        b = b.content_available();
    }
    if p.mutable_content {
        b = b.mutable_content();
    }
    if let Some(level) = &p.interruption_level {
        let level = match level.as_str() {
            "passive" => InterruptionLevel::Passive,
            "active" => InterruptionLevel::Active,
            "time-sensitive" => InterruptionLevel::TimeSensitive,
            "critical" => InterruptionLevel::Critical,
            other => {
                return Err(Failure::usage(format!(
                    "--interruption-level {other:?}: expected passive, active, time-sensitive or critical"
                )))
            }
        };
        b = b.interruption_level(level);
    }
    for kv in &p.custom {
        let (key, value) = kv
            .split_once('=')
            .ok_or_else(|| Failure::usage(format!("--custom {kv:?}: expected KEY=JSON")))?;
        // A bare word is taken as a string, so `--custom ref=abc` works.
        let value: serde_json::Value = serde_json::from_str(value)
            .unwrap_or_else(|_| serde_json::Value::String(value.to_string()));
        b = b.custom(key, value);
    }
    Ok(b.build())
}
