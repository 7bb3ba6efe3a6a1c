//! `apns send`: one notification to a few tokens, or millions from a file.
//! It parses (clap), plans (every check that needs no network, into a
//! [`Plan`], `plan.rs`), then runs the plan: a dry run, curl commands, or
//! the send.

use std::time::Duration;

use apns_provider::metrics::{AppMetrics, MetricsServer};
use apns_provider::wire::SpecDefaults;
use apns_provider::{Client, RetryPolicy};

use super::args::SendArgs;
use super::bulk;
use super::checking;
use super::credentials::Credentials;
use super::failure::Failure;
use super::files;
use super::input::{count_lines, spawn_reader, Lines};
use super::plan::Plan;
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
