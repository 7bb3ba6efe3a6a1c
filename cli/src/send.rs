//! `apns send`: one notification to a few tokens, or millions from a file.
//! It parses (clap), plans (every check that needs no network, into a
//! [`Plan`]), then runs the plan: a dry run, curl commands, or the send.

use std::time::Duration;

use apns_provider::metrics::{AppMetrics, MetricsServer};
use apns_provider::wire::SpecDefaults;
use apns_provider::{Client, Endpoint, RetryPolicy};

use super::args::{SendArgs, TokensArgs};
use super::bulk;
use super::checking;
use super::credentials::Credentials;
use super::failure::Failure;
use super::files;
use super::input::{count_lines, spawn_reader, Lines};
use super::report::{Progress, Reporter};
use super::resume::Resume;

pub async fn run(args: SendArgs) -> Result<u8, Failure> {
    let mut plan = Plan::new(&args)?;
    if args.checking.dry_run {
        let lines = plan.lines(&args.tokens);
        return checking::dry_run(lines, &plan.defaults, args.output.output).await;
    }
    if args.checking.curl {
        let lines = plan.lines(&args.tokens);
        return checking::curl(lines, &plan, &args).await;
    }
    deliver(plan, &args).await
}

/// What a send will do, every check that needs no network done: the
/// credentials, where they go, the defaults of every notification, the
/// tokens file opened.
pub struct Plan {
    pub credentials: Credentials,
    /// The profile the credentials came from, if any.
    pub profile: Option<String>,
    pub environment: apns_provider::Environment,
    pub endpoint: Endpoint,
    pub defaults: SpecDefaults,
    pub input: Option<files::Input>,
    /// The certificate's expiry warning, said once already.
    pub said: Option<String>,
}

impl Plan {
    /// Checks the flags against each other, the credentials and the
    /// payload, and says the warnings of the flags once.
    pub fn new(args: &SendArgs) -> Result<Plan, Failure> {
        let tokens = &args.tokens;
        let reads_stdin =
            |p: &Option<std::path::PathBuf>| p.as_ref().is_some_and(|p| p.as_os_str() == "-");
        if tokens.reads_stdin() && reads_stdin(&args.payload.whole.payload_file) {
            return Err(Failure::usage(
                "--tokens-file - and --payload-file - cannot both read stdin",
            ));
        }
        check_resume(args)?;
        let resolved = args.target.resolve()?;
        let payload = args.payload.build(tokens.tokens_file.is_some())?;
        let environment = args.target.environment_for(&resolved)?;
        let endpoint = args.target.server.endpoint_or(environment)?;
        // Precedence: --topic (or APNS_TOPIC), the profile's topic, the
        // certificate's only topic.
        let mut fallback_topic = resolved.topic.clone();
        let said = match &resolved.credentials {
            Credentials::Certificate(cert) => {
                check_certificate(cert.info(), args, &mut fallback_topic)?
            }
            Credentials::Token(_) => None,
        };
        let defaults = args.headers.defaults(fallback_topic, payload)?;
        if defaults.default_topic().is_none() && tokens.tokens_file.is_none() {
            return Err(Failure::usage(
                "--topic is required: the app's bundle id (plus the push type's suffix), or set APNS_TOPIC",
            ));
        }
        lint_flags(&defaults, &tokens.device_tokens)?;
        if let Some(w) = args
            .headers
            .reused_id_warning(tokens.many(), "notification of this run")
        {
            eprintln!("{w}");
        }
        let input = tokens
            .tokens_file
            .as_deref()
            .map(files::open_input)
            .transpose()?;
        Ok(Plan {
            profile: resolved.profile,
            credentials: resolved.credentials,
            environment,
            endpoint,
            defaults,
            input,
            said,
        })
    }

    /// The lines to send: the tokens of the command line, or the file's.
    fn lines(&mut self, tokens: &TokensArgs) -> Lines {
        spawn_reader(
            tokens.device_tokens.clone(),
            self.input.take().map(|i| i.source),
        )
    }
}

/// With a certificate: its expiry warning, said here once for every path
/// (dry run and curl included) and returned; its only topic as the
/// fallback; and what it cannot send refused now, before any connection
/// (exit 2), not once per notification: a push type that needs a token,
/// then a topic it does not allow.
fn check_certificate(
    info: &apns_provider::CertificateInfo,
    args: &SendArgs,
    fallback_topic: &mut Option<String>,
) -> Result<Option<String>, Failure> {
    let said = info.expiry_warning(
        std::time::SystemTime::now(),
        Duration::from_secs(30 * 86_400),
    );
    if let Some(w) = &said {
        eprintln!("apns: warning: {w}");
    }
    let push_type = args.headers.push_type;
    if push_type.requires_token_auth() {
        info.check_push(push_type, None)?;
    }
    let topic = args.headers.topic.topic.clone().or(fallback_topic.clone());
    if fallback_topic.is_none() {
        *fallback_topic = info.default_topic();
    }
    if topic.is_none() && fallback_topic.is_none() && args.tokens.tokens_file.is_none() {
        return Err(Failure::usage(format!(
            "--topic is required: the certificate allows {}",
            info.allowed_topics().join(", ")
        )));
    }
    if let Some(topic) = &topic {
        info.check_push(push_type, Some(topic))?;
    }
    Ok(said)
}

/// `--resume` needs the tokens file and the results of the run it resumes.
fn check_resume(args: &SendArgs) -> Result<(), Failure> {
    if !args.resume {
        return Ok(());
    }
    if args.results.is_none() || args.tokens.tokens_file.is_none() {
        return Err(Failure::usage(
            "--resume needs --tokens-file and --results: the same tokens file and the results file of the run to resume",
        ));
    }
    if !args.tokens.device_tokens.is_empty() {
        return Err(Failure::usage(
            "--resume works on a tokens file alone: device tokens on the command line have no line numbers to resume from",
        ));
    }
    Ok(())
}

/// Lints of the flags apply to every plain-token line: said once. Tokens
/// on the command line are checked before anything else happens, and
/// linted (a tokens file is not: one warning per line would drown the
/// results).
fn lint_flags(defaults: &SpecDefaults, device_tokens: &[String]) -> Result<(), Failure> {
    let Some(template) = defaults.template() else {
        for t in device_tokens {
            apns_provider::DeviceToken::new(t)
                .map_err(|e| Failure::usage(format!("{e} (token {t:?})")))?;
        }
        return Ok(());
    };
    for lint in template.lints() {
        eprintln!("apns: warning: {lint}");
    }
    for t in device_tokens {
        let token = apns_provider::DeviceToken::new(t)
            .map_err(|e| Failure::usage(format!("{e} (token {t:?})")))?;
        for lint in template.with_device_token(token).lints() {
            if lint.code == "device-token-short" {
                eprintln!("apns: warning: {lint}");
            }
        }
    }
    Ok(())
}

/// Sends the plan: opens the outputs, builds the client and hands the
/// lines to the bulk loop.
async fn deliver(plan: Plan, args: &SendArgs) -> Result<u8, Failure> {
    let tokens = &args.tokens;
    // Outputs are checked against the input (and each other) before
    // anything is read or truncated.
    let Outputs {
        results,
        unregistered_out,
        resume,
    } = outputs(plan.input.as_ref(), args)?;
    let timeout = args.target.timeout_or(DEFAULT_TIMEOUT);
    let client = client(plan.credentials, plan.environment, plan.said, timeout, args)?;
    let mut reporter = Reporter::new(results, args.output.output, unregistered_out);
    reporter.certificate = client.certificate().is_some();
    reporter.summary_enabled = tokens.many();
    if !tokens.no_progress && tokens.many() {
        reporter.progress = Progress::on_terminal(|| match &tokens.tokens_file {
            Some(path) => count_lines(path),
            None => Some(tokens.device_tokens.len() as u64),
        });
    }
    // Metrics while sending, for long runs.
    let (metrics, metrics_server) = match args.metrics.metrics_listen {
        Some(addr) => {
            let name = plan.profile.as_deref().unwrap_or("default");
            let (app, server) = serve_metrics(addr, name, &client).await?;
            (Some(app), Some(server))
        }
        None => (None, None),
    };
    let defaults = plan.defaults;
    let mut lines = spawn_reader(tokens.device_tokens.clone(), plan.input.map(|i| i.source));
    // No payload flag and a first line without its own: one error before
    // anything is sent, not one invalid result per line.
    if tokens.tokens_file.is_some() && defaults.template().is_none() {
        lines = check_first_line(lines, &defaults).await?;
    }
    let options = bulk::Options {
        concurrency: args.in_flight.concurrency,
        timeout: timeout.as_secs_f64(),
        resume,
        metrics,
    };
    let result = bulk::send_all(client, lines, defaults, options, reporter).await;
    if let Some(server) = metrics_server {
        server.stop().await;
    }
    result
}

/// Where the results go, and what a resumed run's results say is done.
struct Outputs {
    results: Option<files::Output>,
    unregistered_out: Option<files::Output>,
    resume: Option<Resume>,
}

/// `--results` and `--unregistered-out`, opened after checking that
/// neither is the input or the other; with `--resume`, what the results
/// say is done.
fn outputs(input: Option<&files::Input>, args: &SendArgs) -> Result<Outputs, Failure> {
    let mut outputs = files::open_outputs(
        input,
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
    Ok(Outputs {
        results,
        unregistered_out,
        resume,
    })
}

/// The client of the send: the target's builder with `--resolve`,
/// `--connections` and `--resend-unknown`; its warnings said once.
fn client(
    credentials: Credentials,
    environment: apns_provider::Environment,
    said: Option<String>,
    timeout: Duration,
    args: &SendArgs,
) -> Result<Client, Failure> {
    let mut builder = args
        .target
        .client_builder(credentials, environment, timeout)?;
    if let Some(spec) = &args.resolve {
        let (host, port, addr) = parse_resolve(spec)?;
        tracing::info!("connecting to {addr} for {host}:{port} (--resolve)");
        builder = builder.resolve(&host, port, addr);
    }
    let client = builder
        .pool_size(args.pool.connections)
        .retry_policy(RetryPolicy::default().with_resend_unknown(args.resend_unknown))
        .build()?;
    for w in client.warnings() {
        if said.as_ref() != Some(w) {
            eprintln!("apns: warning: {w}");
        }
    }
    Ok(client)
}

/// `--metrics-listen`: the client's metrics, served while sending.
async fn serve_metrics(
    addr: std::net::SocketAddr,
    name: &str,
    client: &Client,
) -> Result<(AppMetrics, MetricsServer), Failure> {
    let registry = apns_provider::metrics::Metrics::new();
    let app = registry.watch(name, client);
    let server = registry.listen(addr).await.map_err(|e| {
        Failure::usage(format!("--metrics-listen {addr}: cannot listen there: {e}"))
    })?;
    eprintln!("apns: metrics at http://{}/metrics", server.local_addr());
    Ok((app, server))
}

/// `--timeout`'s default for a send, in seconds.
const DEFAULT_TIMEOUT: f64 = 30.0;

/// Fails when the first line needs a payload the flags do not give; else
/// hands back the lines, the first one included.
async fn check_first_line(mut lines: Lines, defaults: &SpecDefaults) -> Result<Lines, Failure> {
    let Some(first) = lines.recv().await else {
        return Ok(lines);
    };
    if let Ok(line) = &first {
        if line.lacks_payload(defaults) {
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
