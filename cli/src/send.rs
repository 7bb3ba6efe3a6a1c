//! `apns send`: one notification to a few tokens, or millions from a file.

use std::io::Read;
use std::time::Duration;

use apns_provider::payload::{Alert, InterruptionLevel, Sound};
use apns_provider::{
    ApnsId, Client, Endpoint, Environment, Expiration, Notification, Payload, Priority, PushType,
    RetryPolicy,
};
use serde_json::json;

use super::args::{Output, PayloadArgs, SendArgs};
use super::bulk::{self, require_topic, token_of};
use super::files;
use super::input::{count_lines, spawn_reader, Defaults, Lines};
use super::report::{Progress, Reporter};
use super::resume::Resume;
use super::{exit, pick_environment, resolve, Credentials, Failure};

pub async fn run(args: SendArgs) -> Result<u8, Failure> {
    let resolved = resolve(&args.key, &args.cert)?;
    let reads_stdin =
        |p: &Option<std::path::PathBuf>| p.as_ref().is_some_and(|p| p.as_os_str() == "-");
    if reads_stdin(&args.tokens_file) && reads_stdin(&args.payload.payload_file) {
        return Err(Failure::usage(
            "--tokens-file - and --payload-file - cannot both read stdin",
        ));
    }
    let payload = build_payload(&args.payload, args.tokens_file.is_some())?;
    let push_type: PushType = args.push_type.parse()?;
    let environment: Environment = pick_environment(args.environment.as_deref(), &resolved)?;
    let endpoint = args.server.endpoint_or(environment)?;
    super::seconds("--timeout", args.timeout)?;
    if args.concurrency == 0 || !(1..=super::MAX_CONNECTIONS).contains(&args.connections) {
        return Err(Failure::usage(format!(
            "--concurrency must be at least 1, and --connections between 1 and {}",
            super::MAX_CONNECTIONS
        )));
    }
    // Precedence: --topic (or APNS_TOPIC), the profile's topic, the
    // certificate's only topic.
    let mut topic = args.topic.clone().or(resolved.topic.clone());
    let profile = resolved.profile.clone();
    let credentials = resolved.credentials;
    // Said once, here, for every path (dry run and curl included).
    let mut said = None;
    if let Credentials::Certificate(cert) = &credentials {
        let info = cert.info();
        if let Some(w) = info.expiry_warning(
            std::time::SystemTime::now(),
            Duration::from_secs(30 * 86_400),
        ) {
            eprintln!("apns: warning: {w}");
            said = Some(w);
        }
        if topic.is_none() {
            topic = info.default_topic();
        }
        if topic.is_none() && args.tokens_file.is_none() {
            return Err(Failure::usage(format!(
                "--topic is required: the certificate allows {}",
                info.allowed_topics().join(", ")
            )));
        }
    }
    let defaults = Defaults::new(
        topic,
        push_type,
        args.priority
            .as_deref()
            .map(str::parse::<Priority>)
            .transpose()?,
        args.expiration
            .as_deref()
            .map(str::parse::<Expiration>)
            .transpose()?,
        args.collapse_id.clone(),
        args.apns_id.as_deref().map(ApnsId::parse).transpose()?,
        payload,
    )?;
    if defaults.topic().is_none() && args.tokens_file.is_none() {
        return Err(Failure::usage(
            "--topic is required: the app's bundle id (plus the push type's suffix), or set APNS_TOPIC",
        ));
    }
    // Lints of the flags apply to every plain-token line: say them once.
    if let Some(template) = defaults.template() {
        for lint in template.lints() {
            eprintln!("apns: warning: {lint}");
        }
    }
    // Tokens on the command line are checked before anything else happens,
    // and linted (a tokens file is not: one warning per line would drown
    // the results).
    for t in &args.device_tokens {
        let token = apns_provider::DeviceToken::new(t)
            .map_err(|e| Failure::usage(format!("{e} (token {t:?})")))?;
        if let Some(template) = defaults.template() {
            for lint in template.with_device_token(token).lints() {
                if lint.code == "device-token-short" {
                    eprintln!("apns: warning: {lint}");
                }
            }
        }
    }
    if args.apns_id.is_some() && (args.device_tokens.len() > 1 || args.tokens_file.is_some()) {
        eprintln!("apns: warning: --apns-id is reused for every notification of this run; APNs and your logs will see one id for all of them");
    }
    if args.resume {
        if args.results.is_none() || args.tokens_file.is_none() {
            return Err(Failure::usage(
                "--resume needs --tokens-file and --results: the same tokens file and the results file of the run to resume",
            ));
        }
        if !args.device_tokens.is_empty() {
            return Err(Failure::usage(
                "--resume works on a tokens file alone: device tokens on the command line have no line numbers to resume from",
            ));
        }
    }
    let input = args
        .tokens_file
        .as_deref()
        .map(files::open_input)
        .transpose()?;

    if args.dry_run || args.curl {
        let lines = spawn_reader(args.device_tokens.clone(), input.map(|i| i.source));
        if args.dry_run {
            return dry_run(lines, &defaults, args.output).await;
        }
        return curl(
            lines,
            &defaults,
            &args,
            &credentials,
            profile.as_deref(),
            &endpoint,
        )
        .await;
    }

    // Outputs are checked against the input (and each other) before
    // anything is read or truncated.
    let mut outputs = files::open_outputs(
        input.as_ref(),
        &[
            ("--results", args.results.as_deref()),
            ("--unregistered-out", args.unregistered_out.as_deref()),
        ],
        args.resume,
    )?
    .into_iter();
    let (mut results, unregistered_out) = (outputs.next().flatten(), outputs.next().flatten());
    let resume = match (&mut results, args.resume) {
        (Some(out), true) => Some(Resume::load(&mut out.file, &out.name, args.resend_unknown)?),
        _ => None,
    };

    let proxy = super::proxy_choice(&args.proxy)?;
    let mut builder = super::with_proxy(Client::builder().endpoint(endpoint), proxy);
    builder = match credentials {
        Credentials::Token(signer) => builder.token_signer(signer),
        Credentials::Certificate(cert) => builder.certificate(cert),
    };
    if let Some(spec) = &args.resolve {
        let (host, port, addr) = parse_resolve(spec)?;
        builder = builder.resolve(&host, port, addr);
    }
    let mut builder = builder
        .pool_size(args.connections)
        .request_timeout(Duration::from_secs_f64(args.timeout))
        .retry_policy(RetryPolicy::default().with_resend_unknown(args.resend_unknown));
    builder = args.server.trusted(builder);
    let client = builder.build()?;
    for w in client.warnings() {
        if said.as_ref() != Some(w) {
            eprintln!("apns: warning: {w}");
        }
    }
    let mut reporter = Reporter::new(results, args.output, unregistered_out);
    reporter.certificate = client.certificate().is_some();
    let bulk = args.tokens_file.is_some() || args.device_tokens.len() > 1;
    reporter.summary_enabled = bulk;
    if !args.no_progress && bulk {
        let total = match &args.tokens_file {
            Some(path) => count_lines(path),
            None => Some(args.device_tokens.len() as u64),
        };
        reporter.progress = Progress::on_terminal(total);
    }
    // Metrics while sending, for long runs.
    let mut metrics_server = None;
    let mut metrics = None;
    if let Some(addr) = args.metrics_listen {
        let registry = apns_provider::metrics::Metrics::new();
        metrics = Some(registry.watch(profile.as_deref().unwrap_or("default"), &client));
        let server = registry.listen(addr).await.map_err(|e| {
            Failure::usage(format!("--metrics-listen {addr}: cannot listen there: {e}"))
        })?;
        eprintln!("apns: metrics at http://{}/metrics", server.local_addr());
        metrics_server = Some(server);
    }
    let mut lines = spawn_reader(args.device_tokens.clone(), input.map(|i| i.source));
    // No payload flag and a first line without its own: one error before
    // anything is sent, not one invalid result per line.
    if args.tokens_file.is_some() && defaults.template().is_none() {
        lines = check_first_line(lines, &defaults).await?;
    }
    let options = bulk::Options {
        concurrency: args.concurrency,
        timeout: args.timeout,
        resume,
        metrics,
    };
    let result = bulk::send_all(client, lines, defaults, options, reporter).await;
    if let Some(server) = metrics_server {
        server.stop().await;
    }
    result
}

/// Fails when the first line needs a payload the flags do not give; else
/// hands back the lines, the first one included.
async fn check_first_line(mut lines: Lines, defaults: &Defaults) -> Result<Lines, Failure> {
    let Some(first) = lines.recv().await else {
        return Ok(lines);
    };
    if let Ok(line) = &first {
        if defaults.lacks_payload(line) {
            let at = line
                .number
                .map(|n| format!(" (line {n} has none)"))
                .unwrap_or_default();
            return Err(Failure::usage(format!(
                "no payload: give one with --alert, the alert flags, --payload or --payload-file, or a \"payload\" in each JSON line{at}"
            )));
        }
    }
    lines.push_front(first);
    Ok(lines)
}

/// `--dry-run`: validates every line and prints what would be sent.
async fn dry_run(mut lines: Lines, defaults: &Defaults, output: Output) -> Result<u8, Failure> {
    let (mut valid, mut invalid) = (0u64, 0u64);
    while let Some(line) = lines.recv().await {
        let line = line.map_err(Failure::usage)?;
        let at = line
            .number
            .map(|n| format!("line {n}: "))
            .unwrap_or_default();
        match defaults.parse(&line).and_then(require_topic) {
            Ok(n) => {
                valid += 1;
                let lints: Vec<String> = n.lints().iter().map(|l| l.to_string()).collect();
                match output {
                    Output::Json => println!(
                        "{}",
                        json!({
                            "line": line.number,
                            "device_token": n.device_token().as_str(),
                            "valid": true,
                            "topic": n.topic().map(|t| t.as_str()),
                            "push_type": n.push_type().as_str(),
                            "payload_bytes": n.payload().len(),
                            "payload": String::from_utf8_lossy(n.payload()),
                            "lints": lints,
                        })
                    ),
                    Output::Human => {
                        println!(
                            "{at}{}  ok  {} to {} ({} bytes): {}",
                            n.device_token(),
                            n.push_type(),
                            n.topic().map(|t| t.as_str()).unwrap_or("-"),
                            n.payload().len(),
                            String::from_utf8_lossy(n.payload())
                        );
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
                        json!({"line": line.number, "device_token": token_of(&line), "valid": false, "error": e})
                    ),
                    Output::Human => println!("{at}{}  invalid: {e}", token_of(&line)),
                }
            }
        }
    }
    eprintln!("apns: dry run: {valid} valid, {invalid} invalid; nothing was sent");
    Ok(if invalid > 0 { exit::USAGE } else { exit::OK })
}

/// `--curl`: the equivalent curl command for each line.
async fn curl(
    mut lines: Lines,
    defaults: &Defaults,
    args: &SendArgs,
    credentials: &Credentials,
    profile: Option<&str>,
    endpoint: &Endpoint,
) -> Result<u8, Failure> {
    let auth = match credentials {
        Credentials::Token(signer) if args.reveal => {
            let now = apns_provider::clock::now_unix_seconds();
            format!(" -H \"authorization: bearer {}\"", signer.sign_jwt(now))
        }
        // A stored key is named by its profile; flags would override it.
        Credentials::Token(_) if profile.is_some() && args.key.key_file.is_none() => format!(
            " -H \"authorization: bearer $(apns token --key {})\"",
            shell_quote(profile.unwrap_or_default())
        ),
        Credentials::Token(signer) => format!(
            " -H \"authorization: bearer $(apns token --key-file {} --key-id {} --team-id {})\"",
            shell_quote(
                &args
                    .key
                    .key_file
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
            ),
            signer.key_id(),
            signer.team_id()
        ),
        // curl takes a PEM certificate; a .p12 needs `apns cert convert` first.
        Credentials::Certificate(_) => {
            let cert = args
                .cert
                .cert
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            let mut s = format!(" --cert {}", shell_quote(&cert));
            if let Some(k) = &args.cert.cert_key {
                s.push_str(&format!(" --key {}", shell_quote(&k.display().to_string())));
            }
            s
        }
    };
    let mut invalid = 0u64;
    while let Some(line) = lines.recv().await {
        let line = line.map_err(Failure::usage)?;
        match defaults.parse(&line).and_then(require_topic) {
            Ok(n) => println!(
                "{}",
                curl_command(&n, &auth, endpoint, args.server.ca_file.as_deref())
            ),
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
    // The credentials part: a bearer header, or --cert for certificates.
    cmd.push_str(auth);
    let mut header = |name: &str, value: String| {
        cmd.push_str(&format!(" -H {}", shell_quote(&format!("{name}: {value}"))));
    };
    if let Some(t) = n.topic() {
        header("apns-topic", t.to_string());
    }
    header("apns-push-type", n.push_type().to_string());
    if let Some(p) = n.priority() {
        header("apns-priority", p.as_u8().to_string());
    }
    if let Some(e) = n.expiration() {
        header("apns-expiration", e.as_unix_seconds().to_string());
    }
    if let Some(c) = n.collapse_id() {
        header("apns-collapse-id", c.as_str().to_string());
    }
    if let Some(id) = n.apns_id() {
        header("apns-id", id.to_string());
    }
    cmd.push_str(&format!(
        " -d {} {endpoint}/3/device/{}",
        shell_quote(&String::from_utf8_lossy(n.payload())),
        n.device_token()
    ));
    cmd
}

/// Parses `HOST:PORT:ADDR` (ADDR may be `[v6]`).
fn parse_resolve(spec: &str) -> Result<(String, u16, std::net::SocketAddr), Failure> {
    let bad = || {
        Failure::usage(format!(
            "--resolve {spec:?}: expected HOST:PORT:ADDR, e.g. api.development.push.apple.com:443:127.0.0.1:8443"
        ))
    };
    let (host, rest) = spec.split_once(':').ok_or_else(bad)?;
    let (port, addr) = rest.split_once(':').ok_or_else(bad)?;
    let port_number: u16 = port.parse().map_err(|_| bad())?;
    let addr = addr.trim_start_matches('[').replace("]:", ":");
    let addr: std::net::SocketAddr = match addr.parse() {
        Ok(a) => a,
        // ADDR without a port means the same port, as curl does.
        Err(_) => format!("{addr}:{port}").parse().map_err(|_| bad())?,
    };
    Ok((host.to_string(), port_number, addr))
}

/// Single-quotes a value for POSIX shells.
fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=@+,".contains(&b))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The payload from the flags; `None` when none is given and a tokens file
/// may carry per-line payloads.
pub(super) fn build_payload(
    p: &PayloadArgs,
    tokens_file: bool,
) -> Result<Option<Payload>, Failure> {
    if let Some(json) = &p.payload {
        return Ok(Some(Payload::raw(json.clone().into_bytes())?));
    }
    if let Some(path) = &p.payload_file {
        // Far above any payload APNs takes (5120 bytes), so that the size
        // error names the real size, yet bounded (`--payload-file /dev/zero`).
        const MAX_READ: u64 = 1 << 20;
        let mut bytes = Vec::new();
        let (source, read): (Box<dyn Read>, _) = if path.as_os_str() == "-" {
            (
                Box::new(std::io::stdin()),
                "the payload from stdin".to_string(),
            )
        } else {
            let file = std::fs::File::open(path).map_err(|e| {
                Failure::usage(format!("cannot read payload file {}: {e}", path.display()))
            })?;
            (Box::new(file), format!("payload file {}", path.display()))
        };
        source
            .take(MAX_READ + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| Failure::usage(format!("cannot read {read}: {e}")))?;
        if bytes.len() as u64 > MAX_READ {
            return Err(Failure::usage(format!(
                "{read} is over {MAX_READ} bytes: not a payload (APNs takes at most 4096 bytes, 5120 for VoIP)"
            )));
        }
        return Ok(Some(Payload::raw(bytes)?));
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
        if tokens_file {
            return Ok(None);
        }
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
    Ok(Some(b.build()))
}
