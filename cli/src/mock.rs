//! `apns mock`.

use std::path::PathBuf;
use std::time::Duration;

use apns_provider::mock::{Fault, MockServer, TrustedKey};
use apns_provider::{Environment, PublicKey, Reason};

use super::args::{MockArgs, TokenUpdates};
use super::failure::{exit, Failure};

pub async fn run(args: MockArgs) -> Result<u8, Failure> {
    let environment: Environment = args.environment;
    let mut builder = MockServer::builder()
        .listen(args.socket.listen)
        .max_streams(args.streams.max_streams)
        .environment(environment)
        .strict_tokens(args.strict_tokens)
        .token_updates_per_key(args.token_updates == TokenUpdates::PerKey);
    let mut scopes = key_topics(&args.key_topics)?;
    for spec in &args.trust_key {
        let mut key = parse_trust_key(spec)?;
        if let Some(topics) = scopes.remove(key.key_id().as_str()) {
            key = key.topics(topics);
        }
        builder = builder.trust_key(key);
    }
    if let Some(kid) = scopes.keys().next() {
        return Err(Failure::usage(format!(
            "--key-topics {kid}=...: no --trust-key has key id {kid}"
        )));
    }
    if args.trust_key.is_empty() && !args.accept_all && args.client_ca.is_none() {
        eprintln!("apns mock: warning: no --trust-key given; every provider token will be rejected with InvalidProviderToken");
    }
    let now_ms = apns_provider::clock::now_unix_seconds().saturating_mul(1000);
    for token in &args.unregistered {
        apns_provider::DeviceToken::new(token)?;
        builder = builder.unregistered(token, now_ms);
    }
    for name in &args.server_name {
        builder = builder.server_name(name);
    }
    for fault in faults(&args)? {
        builder = builder.fault(fault);
    }
    builder = builder
        .accept_all(args.accept_all)
        .max_channels(args.max_channels)
        .keep(args.keep)
        // Checked by their flags' parsers: above 0, at most a day.
        .handshake_timeout(Duration::from_secs_f64(args.handshake_timeout))
        .idle_timeout(Duration::from_secs_f64(args.socket.idle_timeout));
    if let Some(ca) = &args.client_ca {
        let pem = std::fs::read(ca).map_err(|e| {
            Failure::usage(format!("cannot read --client-ca {}: {e}", ca.display()))
        })?;
        builder = builder
            .client_ca_pem(&pem)
            .bad_environment_as_goaway(args.bad_env_goaway);
    }
    let mock = builder.start().await?;
    // Without --ca-out, the CA goes into a new private directory: a fixed
    // name in /tmp could be a symlink planted by another user.
    let (ca_file, private_dir) = match &args.ca_out {
        Some(path) => (path.clone(), None),
        None => {
            let dir = super::demo::TempDir::new()?;
            (dir.path().join("mock-ca.pem"), Some(dir))
        }
    };
    mock.write_ca_file(&ca_file)?;
    let ca_display = std::fs::canonicalize(&ca_file).unwrap_or_else(|_| PathBuf::from(&ca_file));
    // Handlers first, then the ready line: a SIGTERM sent as soon as it
    // appears stops the mock cleanly instead of killing it.
    let stop = wait_for_signal();
    println!(
        "{}",
        serde_json::json!({
            "endpoint": mock.endpoint().to_string(),
            "ca_file": ca_display.display().to_string(),
        })
    );
    stop.await;
    let stats = mock.stats();
    eprintln!(
        "apns mock: stopping after {} request(s) on {} connection(s): {} accepted, {} rejected",
        stats.requests,
        stats.connections,
        stats.requests - stats.rejected,
        stats.rejected
    );
    drop(private_dir); // removes the generated CA file
    Ok(exit::OK)
}

fn faults(args: &MockArgs) -> Result<Vec<Fault>, Failure> {
    let mut faults = Vec::new();
    if let Some(requests) = args.goaway_after {
        faults.push(Fault::GoAwayAfter {
            requests,
            reason: args.goaway_reason.clone(),
        });
    }
    if let Some(count) = args.refuse_streams {
        faults.push(Fault::RefuseStreams { count });
    }
    if let Some(requests) = args.drop_after {
        faults.push(Fault::DropConnectionAfter { requests });
    }
    for (on, fault) in [
        (args.black_hole, Fault::BlackHole),
        (args.ignore_pings, Fault::IgnorePings),
        (args.stall_tls, Fault::StallTlsHandshake),
        (args.limit_drop_on_reject, Fault::LimitDropsAfterRejection),
        (args.expire_tokens, Fault::ExpireAllTokens),
    ] {
        if on {
            faults.push(fault);
        }
    }
    for spec in &args.storm {
        faults.push(parse_storm(spec)?);
    }
    if let Some((min, max)) = args.distance.latency {
        faults.push(Fault::LatencyBetween { min, max });
    }
    if let Some(secs) = args.outage {
        faults.push(Fault::Outage {
            duration: Duration::from_secs_f64(secs),
        });
    }
    Ok(faults)
}

/// Parses `STATUS:K` or `REASON:K`.
fn parse_storm(spec: &str) -> Result<Fault, Failure> {
    let bad = || {
        Failure::usage(format!(
            "--storm {spec:?}: expected STATUS:K (500, 503 or 429) or REASON:K such as ServiceUnavailable:100"
        ))
    };
    let (what, count) = spec.rsplit_once(':').ok_or_else(bad)?;
    let count: u64 = count.parse().map_err(|_| bad())?;
    let reason = match what {
        "500" => Reason::InternalServerError,
        "503" => Reason::ServiceUnavailable,
        "429" => Reason::TooManyRequests,
        name => match name.parse::<Reason>() {
            Ok(Reason::Other(_)) | Err(_) => return Err(bad()),
            Ok(r) => r,
        },
    };
    Ok(Fault::ErrorStorm { reason, count })
}

/// Parses `KID=TEAM:PATH`, or takes a stored key's profile by name.
fn parse_trust_key(spec: &str) -> Result<TrustedKey, Failure> {
    if !spec.contains('=') {
        let path = super::paths::config_path()?;
        let file = apns_provider::keystore::ProfileFile::load(&path)?;
        let profile = file.get(spec)?;
        let pem = apns_provider::keystore::load_key_pem(
            &profile.key_location()?,
            spec,
            apns_provider::keystore::Keychain::system,
        )?;
        let public = apns_provider::SigningKey::from_pem(pem.as_bytes())?.public_key();
        let missing = |what: &str| Failure::usage(format!("profile {spec} has no {what}"));
        let kid = profile.key_id.as_deref().ok_or_else(|| missing("key_id"))?;
        let team = profile
            .team_id
            .as_deref()
            .ok_or_else(|| missing("team_id"))?;
        // The profile's scope is the key's, as Apple would enforce it.
        let mut key = TrustedKey::new(kid, team, public)?;
        if let Some(env) = profile.environment.as_deref().filter(|e| *e != "both") {
            key = key.environment(env.parse()?);
        }
        if let Some(topics) = &profile.topics {
            key = key.topics(topics.iter().cloned());
        }
        return Ok(key);
    }
    let bad = || {
        Failure::usage(format!(
            "--trust-key {spec:?}: expected KID=TEAM:PATH, e.g. ABCDE12345=TEAM123456:AuthKey_ABCDE12345.p8"
        ))
    };
    let (kid, rest) = spec.split_once('=').ok_or_else(bad)?;
    let (team, path) = rest.split_once(':').ok_or_else(bad)?;
    // `@sandbox`/`@production` at the end: only those words, so a path
    // with an `@` of its own still reads as a path.
    let (path, environment) = match path.rsplit_once('@') {
        Some((p, env)) if env.parse::<Environment>().is_ok() => (p, env.parse().ok()),
        _ => (path, None),
    };
    let public = PublicKey::from_file(path)?;
    let key = TrustedKey::new(kid, team, public)?;
    Ok(match environment {
        Some(env) => key.environment(env),
        None => key,
    })
}

/// `--key-topics KID=BUNDLE[,BUNDLE...]`, by key id.
fn key_topics(specs: &[String]) -> Result<std::collections::HashMap<String, Vec<String>>, Failure> {
    let mut scopes = std::collections::HashMap::new();
    for spec in specs {
        let bad = || {
            Failure::usage(format!(
                "--key-topics {spec:?}: expected KID=BUNDLE[,BUNDLE...], e.g. ABCDE12345=com.example.app"
            ))
        };
        let (kid, bundles) = spec.split_once('=').ok_or_else(bad)?;
        let bundles: Vec<String> = bundles
            .split(',')
            .map(str::trim)
            .filter(|b| !b.is_empty())
            .map(String::from)
            .collect();
        if bundles.is_empty() {
            return Err(bad());
        }
        for b in &bundles {
            apns_provider::Topic::new(b)?;
        }
        scopes
            .entry(kid.to_string())
            .or_insert_with(Vec::new)
            .extend(bundles);
    }
    Ok(scopes)
}

/// SIGTERM or Ctrl-C, registered when called (not when first polled).
fn wait_for_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let term = signal(SignalKind::terminate());
        let int = signal(SignalKind::interrupt());
        async move {
            match (term, int) {
                (Ok(mut term), Ok(mut int)) => {
                    tokio::select! {
                        _ = int.recv() => {}
                        _ = term.recv() => {}
                    }
                }
                _ => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
