//! `apns serve`: the library's HTTP gateway with the command line's
//! credentials, profiles and signals.

use std::io::Write;
use std::time::Duration;

use apns_provider::gateway::{tls_config_from_pem_files, ApiTokens, App, Enqueue, Gateway, Limits};
use apns_provider::wire::SpecDefaults;
use apns_provider::worker::Producer;

use super::args::{CertArgs, KeyArgs, ServeArgs};
use super::credentials::{resolve, Credentials, Resolved};
use super::failure::{exit, Failure};

/// The name of the app the credential flags define, without `--key`.
const DEFAULT_APP: &str = "default";

pub async fn run(args: ServeArgs) -> Result<u8, Failure> {
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(tls_config_from_pem_files(cert, key)?),
        _ => None,
    };
    if tls.is_none() && !args.socket.listen.ip().is_loopback() && !args.insecure_http {
        return Err(Failure::usage(format!(
            "refusing plain HTTP on {}: API tokens would cross the network in clear text; give --tls-cert and --tls-key, listen on 127.0.0.1, or pass --insecure-http (behind a TLS-terminating proxy)",
            args.socket.listen
        )));
    }
    let tokens = api_tokens(&args)?;
    let limits = limits(&args)?;
    // A bad --proxy stops the gateway before it serves.
    args.target.proxy.choice()?;
    // The default app: the credential flags (or --key's profile).
    let mut builder = Gateway::builder().default_app(None);
    let mut names = Vec::new();
    let flags_given = args.target.has_credentials();
    if flags_given {
        let resolved = args.target.resolve()?;
        let name = resolved
            .profile
            .clone()
            .unwrap_or_else(|| DEFAULT_APP.to_string());
        let app = app(&args, resolved, args.topic.topic.clone())?;
        builder = builder
            .app(name.clone(), app)
            .default_app(Some(name.clone()));
        names.push(name);
    }
    for profile in &args.apps {
        if names.contains(profile) {
            continue;
        }
        let resolved = resolve(&KeyArgs::named(profile), &CertArgs::default())
            .map_err(|f| Failure::usage(format!("--app {profile}: {}", f.message)))?;
        let app = app(&args, resolved, None)
            .map_err(|f| Failure::usage(format!("--app {profile}: {}", f.message)))?;
        builder = builder.app(profile.clone(), app);
        names.push(profile.clone());
    }
    if names.is_empty() {
        return Err(Failure::usage(
            "no credentials: give --key NAME, --key-file AuthKey_<KEYID>.p8 --team-id TEAM, or --cert PATH for the default app, and/or --app PROFILE for more apps",
        ));
    }
    if !flags_given && names.len() == 1 {
        builder = builder.default_app(Some(names[0].clone()));
    }
    if let Some(tls) = tls.clone() {
        builder = builder.tls(tls);
    }
    if let Some(url) = &args.redis {
        builder =
            builder.dispatch(enqueue(url, &args.stream, flags_given, &args.target.key).await?);
    }
    let gateway = builder
        .api_tokens(tokens)
        .limits(limits)
        .metrics_public(args.metrics_public)
        .shutdown_grace(Duration::from_secs_f64(
            args.shutdown_grace.clamp(0.0, 3600.0),
        ))
        .build()?;

    let listener = tokio::net::TcpListener::bind(args.socket.listen)
        .await
        .map_err(|e| Failure::usage(format!("cannot listen on {}: {e}", args.socket.listen)))?;
    let local = listener
        .local_addr()
        .map_err(|e| Failure::usage(format!("cannot listen on {}: {e}", args.socket.listen)))?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    for app in gateway.apps() {
        let via = app
            .client()
            .proxy()
            .map(|p| format!(" via {p}"))
            .unwrap_or_default();
        tracing::info!(app = app.name(), endpoint = %app.client().endpoint(), "serving{via}");
    }
    // The signal handlers are in place before the ready line: a SIGTERM
    // sent as soon as it appears must stop us cleanly, not kill us.
    let stop = stop_signal();
    // The ready line, for scripts and tests.
    println!(
        "{}",
        serde_json::json!({"listen": format!("{scheme}://{local}"), "apps": names})
    );
    let _ = std::io::stdout().flush();
    eprintln!(
        "apns: serving on {scheme}://{local} (apps: {})",
        names.join(", ")
    );

    gateway.serve(listener, stop).await;
    eprintln!("apns: stopped");
    Ok(exit::OK)
}

/// With `--redis`: a dispatcher adding each batch to the stream. Jobs of
/// the app the credential flags define without a profile name no app, so
/// that workers send them with their own credentials.
async fn enqueue(
    url: &str,
    stream: &str,
    flags_given: bool,
    key: &KeyArgs,
) -> Result<std::sync::Arc<Enqueue>, Failure> {
    let url = if url.is_empty() {
        std::env::var("APNS_REDIS_URL").map_err(|_| {
            Failure::usage(
                "--redis without a URL reads APNS_REDIS_URL, which is not set (export APNS_REDIS_URL=redis://[:PASSWORD@]HOST[:PORT][/DB], or give --redis URL)",
            )
        })?
    } else {
        url.to_string()
    };
    let producer = Producer::connect(&url, stream).await.map_err(|e| {
        let mut f = Failure::from(e);
        f.message = format!("--redis: {}", f.message);
        f
    })?;
    eprintln!(
        "apns: enqueueing to {} on Redis {} (apns worker sends)",
        producer.stream(),
        producer.addr()
    );
    let anonymous = (flags_given && key.profile.is_none()).then_some(DEFAULT_APP);
    Ok(std::sync::Arc::new(Enqueue::new(producer).job_app(
        move |app| (Some(app.name()) != anonymous).then(|| app.name().to_string()),
    )))
}

/// SIGTERM or Ctrl-C. The handlers are registered when this is called, not
/// when the future is first polled, so no signal slips between the two.
fn stop_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let handlers = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        );
        async move {
            let (Ok(mut term), Ok(mut int)) = handlers else {
                let _ = tokio::signal::ctrl_c().await;
                return;
            };
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            eprintln!("apns: stopping: no new requests; finishing those in progress");
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

fn api_tokens(args: &ServeArgs) -> Result<ApiTokens, Failure> {
    match &args.api_token_file {
        Some(path) => Ok(ApiTokens::from_file(path)?),
        None => match std::env::var("APNS_API_TOKEN") {
            Ok(token) if !token.trim().is_empty() => ApiTokens::from_tokens([token.as_str()])
                .map_err(|e| Failure::usage(format!("APNS_API_TOKEN: {e}"))),
            _ => Err(Failure::usage(
                "no API token: give --api-token-file PATH (one token per line, chmod 600) or set APNS_API_TOKEN; there is no anonymous mode",
            )),
        },
    }
}

fn limits(args: &ServeArgs) -> Result<Limits, Failure> {
    let mut limits = Limits::default();
    limits.max_body_bytes = args.max_body;
    if args.max_items == 0 || args.max_concurrent_requests == 0 || args.max_connections == 0 {
        return Err(Failure::usage(
            "--max-items, --max-concurrent-requests and --max-connections must be at least 1",
        ));
    }
    limits.max_items = args.max_items;
    limits.max_concurrent_requests = args.max_concurrent_requests;
    limits.max_connections = args.max_connections;
    let timeout = args.target.timeout_or(DEFAULT_TIMEOUT).as_secs_f64();
    if args.request_timeout <= timeout {
        eprintln!("apns: warning: --request-timeout ({}s) is not above --timeout ({timeout}s): a request may end (504) before its notifications resolve", args.request_timeout);
    }
    limits.request_timeout = Duration::from_secs_f64(args.request_timeout);
    limits.idle_timeout = Duration::from_secs_f64(args.socket.idle_timeout);
    Ok(limits)
}

/// `--timeout`'s default for the gateway's sends, in seconds.
const DEFAULT_TIMEOUT: f64 = 30.0;

/// An app: a client for `resolved`, with its topic as the default.
fn app(args: &ServeArgs, resolved: Resolved, topic_flag: Option<String>) -> Result<App, Failure> {
    let target = &args.target;
    let environment = target.environment_for(&resolved)?;
    let mut topic = topic_flag.or(resolved.topic.clone());
    if let Credentials::Certificate(cert) = &resolved.credentials {
        topic = topic.or_else(|| cert.info().default_topic());
    }
    let client = target
        .client_builder(
            resolved.credentials,
            environment,
            target.timeout_or(DEFAULT_TIMEOUT),
        )?
        .pool_size(args.pool.connections)
        .build()?;
    for w in client.warnings() {
        eprintln!("apns: warning: {w}");
    }
    let mut defaults = SpecDefaults::builder();
    if let Some(t) = topic {
        defaults = defaults.topic(t);
    }
    Ok(App::new(client).with_defaults(defaults.build()?))
}
