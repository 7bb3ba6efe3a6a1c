//! `apns broadcast`: one Live Activity notification to a broadcast channel,
//! or (`--dry-run`, `--curl`) what would be sent.

use apns_provider::payload::LiveActivityEvent;
use apns_provider::{Broadcast, Expiration, Payload, Response};
use serde_json::json;

use super::args::{BroadcastArgs, Output};
use super::channel::{channel_client, hint, ChannelClient};
use super::checking::{credentials_part, shell_quote};
use super::credentials::Resolved;
use super::failure::{self, exit, Failure};

pub async fn run(args: BroadcastArgs) -> Result<u8, Failure> {
    let payload = payload(&args)?;
    let (app, resolved) = channel_client(&args.app, None)?;
    let mut builder = Broadcast::builder(&app.bundle_id, &args.channel_id, payload);
    if let Some(p) = args.timing.priority()? {
        builder = builder.priority(p);
    }
    if let Some(e) = args.timing.expiration()? {
        builder = builder.expiration(e);
    }
    if let Some(id) = &args.request_id {
        builder = builder.request_id_str(id);
    }
    let broadcast = builder.build()?;
    let lints = broadcast.lints();
    if !args.checking.dry_run {
        for lint in &lints {
            eprintln!("apns: warning: {lint}");
        }
    }
    if args.checking.dry_run {
        dry_run(&broadcast, &lints, app.output);
        return Ok(exit::OK);
    }
    if args.checking.curl {
        println!("{}", curl_command(&broadcast, &args, &app, &resolved));
        return Ok(exit::OK);
    }
    let result = app.client.broadcast(&broadcast).await;
    let channel = broadcast.channel_id().as_str();
    let code = match &result {
        Ok(r) if r.is_accepted() => exit::OK,
        Ok(_) => exit::REJECTED,
        Err(e) => failure::code(e),
    };
    match app.output {
        Output::Json => println!("{}", json_line(channel, &result)),
        Output::Human => println!("{}", human_line(channel, &result)),
    }
    Ok(code)
}

fn json_line(channel: &str, result: &apns_provider::Result<Response>) -> serde_json::Value {
    match result {
        Ok(r) => json!({
            "channel_id": channel,
            "status": r.status(),
            "request_id": r.apns_request_id(),
            "apns_unique_id": r.apns_unique_id(),
            "reason": r.reason(),
        }),
        Err(e) => json!({
            "channel_id": channel,
            "status": null,
            "request_id": null,
            "apns_unique_id": null,
            "reason": null,
            "error": e.to_string(),
            "may_have_been_delivered": e.may_have_been_delivered(),
        }),
    }
}

fn human_line(channel: &str, result: &apns_provider::Result<Response>) -> String {
    match result {
        Ok(r) => {
            let mut text = format!("{channel}  {}", r.describe());
            if let Some(id) = r.apns_request_id() {
                text.push_str(&format!("  apns-request-id={id}"));
            }
            if let Some(id) = r.apns_unique_id() {
                text.push_str(&format!("  apns-unique-id={id}"));
            }
            if let Some(h) = r.reason().and_then(hint) {
                text.push_str(&format!("  hint: {h}"));
            }
            text
        }
        Err(e) => format!("{channel}  error: {e}"),
    }
}

/// `--dry-run`: what would be sent, and the lints; never connects.
fn dry_run(b: &Broadcast, lints: &[apns_provider::Lint], output: Output) {
    let payload = String::from_utf8_lossy(b.payload());
    let lints: Vec<String> = lints.iter().map(|l| l.to_string()).collect();
    match output {
        Output::Json => {
            let headers: serde_json::Map<String, serde_json::Value> = b
                .headers()
                .map(|(n, v)| (n.to_string(), json!(v)))
                .collect();
            println!(
                "{}",
                json!({
                    "channel_id": b.channel_id(),
                    "valid": true,
                    "bundle_id": b.bundle_id().as_str(),
                    "path": b.path(),
                    "headers": headers,
                    "payload_bytes": b.payload().len(),
                    "payload": payload,
                    "lints": lints,
                })
            );
        }
        Output::Human => {
            println!(
                "{}  ok  broadcast to {} ({} bytes): {payload}",
                b.channel_id(),
                b.bundle_id(),
                b.payload().len()
            );
            println!("  POST {}", b.path());
            for (name, value) in b.headers() {
                println!("  {name}: {value}");
            }
            for lint in lints {
                println!("  warning: {lint}");
            }
        }
    }
    eprintln!("apns: dry run: the broadcast is valid; nothing was sent");
}

/// `--curl`: the equivalent curl command, with the token as `$(apns token
/// ...)` unless `--reveal`, or the certificate as `--cert`.
fn curl_command(
    b: &Broadcast,
    args: &BroadcastArgs,
    app: &ChannelClient,
    resolved: &Resolved,
) -> String {
    let q = shell_quote;
    let mut cmd = String::from("curl --http2");
    let target = &args.app.target;
    if let Some(ca) = &target.server.ca_file {
        cmd += &format!(" --cacert {}", q(&ca.display().to_string()));
    }
    cmd += &credentials_part(
        &resolved.credentials,
        args.checking.reveal,
        resolved.profile.as_deref(),
        target,
    );
    for (name, value) in b.headers() {
        cmd += &format!(" -H {}", q(&format!("{name}: {value}")));
    }
    cmd += &format!(
        " -d {} {}{}",
        q(&String::from_utf8_lossy(b.payload())),
        app.client.endpoint(),
        b.path()
    );
    cmd
}

/// The payload: `--payload`, `--payload-file`, or built from `--event` and
/// its fields (with `aps.timestamp` set to now).
fn payload(args: &BroadcastArgs) -> Result<Payload, Failure> {
    if let Some(payload) = args.whole.read()? {
        return Ok(payload);
    }
    let Some(event) = &args.event else {
        if args.text.is_given() {
            return Err(Failure::usage(
                "--alert, --title and --body are part of a Live Activity update: give --event update (or end) with them",
            ));
        }
        return Err(Failure::usage(
            "no payload: give --event update --content-state JSON, --payload JSON or --payload-file PATH",
        ));
    };
    let event = match event.as_str() {
        "start" => LiveActivityEvent::Start,
        "update" => LiveActivityEvent::Update,
        "end" => LiveActivityEvent::End,
        other => {
            return Err(Failure::usage(format!(
                "--event {other:?}: expected update or end (or start)"
            )))
        }
    };
    let mut b = Payload::builder()
        .event(event)
        .timestamp(apns_provider::clock::now_unix_seconds());
    if let Some(state) = &args.content_state {
        let value: serde_json::Value = serde_json::from_str(state)
            .map_err(|e| Failure::usage(format!("--content-state is not JSON: {e}")))?;
        b = b.content_state(value);
    }
    if let Some(t) = &args.stale_date {
        b = b.stale_date(time("--stale-date", t)?);
    }
    if let Some(t) = &args.dismissal_date {
        b = b.dismissal_date(time("--dismissal-date", t)?);
    }
    if let Some(score) = args.relevance_score {
        b = b.relevance_score(score);
    }
    Ok(args.text.apply(b, None).build())
}

/// UNIX seconds, or `+DURATION` from now.
fn time(flag: &str, text: &str) -> Result<u64, Failure> {
    text.parse::<Expiration>()
        .map(Expiration::as_unix_seconds)
        .map_err(|_| {
            Failure::usage(format!(
                "{flag} {text:?}: expected UNIX seconds such as 1767225600, or a relative time such as +15m"
            ))
        })
}
