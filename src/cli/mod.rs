//! The `apns` command line: a thin layer over the library.

mod args;
mod bench;
mod bench_cli;
mod bench_worker;
mod broadcast;
mod bulk;
mod cert;
mod channel;
mod demo;
mod doctor;
mod enqueue;
mod files;
mod input;
mod key;
mod mock;
mod paths;
mod queue_args;
mod report;
mod resume;
mod send;
mod serve;
mod worker;

use std::process::ExitCode;

use apns_provider::auth::check_ids_against_file_name;
use apns_provider::{Error, KeyId, SigningKey, TeamId, TokenSigner};
use clap::Parser;

pub use args::Cli;

/// mimalloc: a bulk send allocates a little per notification, and glibc's
/// malloc spent about a tenth of the CPU there.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use args::{Command, KeyArgs};

/// Exit codes, documented in `apns --help`.
pub mod exit {
    /// Every notification was accepted.
    pub const OK: u8 = 0;
    /// At least one notification was rejected by APNs.
    pub const REJECTED: u8 = 1;
    /// Usage or configuration error.
    pub const USAGE: u8 = 2;
    /// APNs could not be reached, or the connection failed.
    pub const CONNECTION: u8 = 3;
    /// An output (results, prune list, stdout) could not be written (a full
    /// disk, a closed pipe): intake stopped.
    pub const OUTPUT: u8 = 4;
    /// Interrupted by Ctrl-C (128 + SIGINT, as shells report it).
    pub const INTERRUPTED: u8 = 130;
}

/// The most connections `--connections` opens (APNs asks for few, long-lived
/// connections; each carries up to the server's stream limit, 1000 at
/// Apple).
pub const MAX_CONNECTIONS: usize = 64;

/// A failure that ends the command: a message for stderr and an exit code.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        let code = if e.is_connection() {
            exit::CONNECTION
        } else {
            exit::USAGE
        };
        let message = match hint(&e) {
            Some(hint) => format!("{e} ({hint})"),
            None => e.to_string(),
        };
        Failure { code, message }
    }
}

/// What to do about an error, in this command line's terms: the library
/// says what went wrong and never names a flag; the CLI adds how to fix it,
/// from the error's kind.
pub fn hint(e: &Error) -> Option<String> {
    use apns_provider::{CredentialProblem as C, KeystoreProblem as K, TlsProblem as T};
    if e.is_proxy_auth_required() {
        return Some(
            "check the user and password in --proxy, or in HTTPS_PROXY / ALL_PROXY".into(),
        );
    }
    if e.is_proxy() {
        return Some(
            "check --proxy, or HTTPS_PROXY / ALL_PROXY and NO_PROXY; --no-proxy connects directly"
                .into(),
        );
    }
    if let Some(problem) = e.credential_problem() {
        return match problem {
            C::WrongPassword => Some(
                "give the right password with --cert-password-env VAR or --cert-password-file FILE"
                    .into(),
            ),
            C::SeparateKeyForPkcs12 => Some("drop --cert-key".into()),
            C::MissingKey => Some("give the key's file with --cert-key".into()),
            C::WrongEnvironment => Some("check --env".into()),
            _ => None,
        };
    }
    if let Some(problem) = e.keystore_problem() {
        let name = match e {
            Error::Keystore { name: Some(n), .. } => n.as_str(),
            _ => "NAME",
        };
        return match problem {
            K::NoSuchKey => Some(format!(
                "add it with `apns key add {name} --key-file AuthKey_<KEYID>.p8`"
            )),
            K::NoSuchProfile => Some(format!(
                "add it with `apns key add {name} --key-file AuthKey_<KEYID>.p8 --team-id TEAM` (see `apns key list`)"
            )),
            K::ProfileExists => Some(format!(
                "use `apns key rotate {name}` to replace its key, or `apns key remove {name}`"
            )),
            K::NoKeychain | K::KeychainLocked => {
                Some("or store it with `apns key add NAME --store file ...`".into())
            }
            _ => None,
        };
    }
    match e.tls_problem() {
        Some(T::UntrustedCertificate) => {
            Some("for a mock or a TLS-inspecting proxy, pass its CA with --ca-file".into())
        }
        Some(T::WrongHostName) => Some(
            "check --endpoint (a mock's certificate names localhost and 127.0.0.1), or map Apple's name to the mock with --resolve".into(),
        ),
        _ => None,
    }
}

/// The proxy the flags and the environment choose, as curl would: `--proxy`
/// (with the environment's NO_PROXY), else HTTPS_PROXY and the like, unless
/// `--no-proxy`.
pub fn proxy_choice(
    args: &args::ProxyArgs,
) -> Result<Option<apns_provider::transport::Proxy>, Failure> {
    use apns_provider::transport::{NoProxy, Proxy};
    if args.no_proxy {
        return Ok(None);
    }
    match &args.proxy {
        Some(url) => Ok(Some(Proxy::parse(url)?.with_no_proxy(NoProxy::from_env()))),
        None => Ok(Proxy::from_env()?),
    }
}

/// A client builder going through the proxy the flags choose.
pub fn with_proxy(
    builder: apns_provider::ClientBuilder,
    proxy: Option<apns_provider::transport::Proxy>,
) -> apns_provider::ClientBuilder {
    match proxy {
        Some(p) => builder.proxy(p),
        None => builder.no_proxy(),
    }
}

/// A positive number of seconds, at most a day (`--timeout` and the like).
pub fn seconds(flag: &str, secs: f64) -> Result<std::time::Duration, Failure> {
    if !(secs > 0.0 && secs <= 86_400.0) {
        return Err(Failure::usage(format!(
            "{flag} must be a number of seconds above 0 and at most 86400"
        )));
    }
    Ok(std::time::Duration::from_secs_f64(secs))
}

impl Failure {
    pub fn usage(message: impl Into<String>) -> Self {
        Failure {
            code: exit::USAGE,
            message: message.into(),
        }
    }
}

pub fn main() -> ExitCode {
    quiet_broken_pipe();
    let cli = Cli::parse();
    init_logging(cli.verbose);
    // One thread for a sender: the connection's driver, the sends and the
    // result lines then never wake each other across threads (on a small
    // machine that cross-thread traffic cost more than the work). The mock
    // and the gateway serve many clients and use every core.
    let mut builder = match &cli.command {
        Command::Serve(_) => tokio::runtime::Builder::new_multi_thread(),
        Command::Mock(args) if args.threads != 1 => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            if args.threads > 1 {
                b.worker_threads(args.threads);
            }
            b
        }
        _ => tokio::runtime::Builder::new_current_thread(),
    };
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("apns: cannot start the async runtime: {e}");
            return ExitCode::from(exit::USAGE);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Send(args) => send::run(*args).await,
            Command::Enqueue(args) => enqueue::run(*args).await,
            Command::Worker(args) => worker::run(*args).await,
            Command::Token(args) => token(args),
            Command::Mock(args) => mock::run(args).await,
            Command::Demo { output } => demo::run(output).await,
            Command::Bench(args) => bench::run(args).await,
            Command::Doctor(args) => doctor::run(args).await,
            Command::Serve(args) => serve::run(*args).await,
            Command::Cert(command) => cert::run(command),
            Command::Key(command) => key::run(command),
            Command::Channel(command) => channel::run(command).await,
            Command::Broadcast(args) => broadcast::run(*args).await,
            Command::Completions { shell } => {
                use clap::CommandFactory;
                clap_complete::generate(shell, &mut Cli::command(), "apns", &mut std::io::stdout());
                Ok(exit::OK)
            }
        }
    });
    match result {
        Ok(code) => ExitCode::from(code),
        Err(failure) => {
            eprintln!("apns: error: {}", failure.message);
            ExitCode::from(failure.code)
        }
    }
}

/// `apns ... | head` closes stdout early: end quietly, as Unix tools do,
/// instead of reporting a panic from `println!`.
fn quiet_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.contains("Broken pipe") {
            std::process::exit(141); // 128 + SIGPIPE, what shells report
        }
        default(info);
    }));
}

fn init_logging(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    // Colours only for a person at a terminal, and never with NO_COLOR.
    use std::io::IsTerminal;
    let ansi = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_target(false)
        .try_init();
}

/// The credentials a command sends with.
pub enum Credentials {
    /// A `.p8` key.
    Token(TokenSigner),
    /// A push certificate.
    Certificate(apns_provider::ClientCertificate),
}

/// Credentials plus what the profile (if any) says about defaults.
pub struct Resolved {
    pub credentials: Credentials,
    /// The profile's default topic.
    pub topic: Option<String>,
    /// The profile's environment: sandbox, production or both.
    pub environment: Option<String>,
    pub profile: Option<String>,
}

/// Resolves credentials with this precedence: command-line flags, then
/// environment variables (clap merges both, flags first), then the named
/// profile (`--key NAME` / `APNS_PROFILE`), then defaults.
fn resolve(key: &KeyArgs, cert: &args::CertArgs) -> Result<Resolved, Failure> {
    let profile = match &key.profile {
        Some(name) => {
            let path = paths::config_path()?;
            let file = apns_provider::keystore::ProfileFile::load(&path)?;
            let profile = file.get(name).map_err(|e| {
                // `--key AuthKey_X.p8`: a file where a stored key's name belongs.
                let looks_like_file = name.ends_with(".p8")
                    || name.contains('/')
                    || std::path::Path::new(name).is_file();
                if looks_like_file {
                    Failure::usage(format!(
                        "--key takes the name of a stored key (see `apns key list`); for the key file {name} use --key-file {name}"
                    ))
                } else {
                    Failure::from(e)
                }
            })?;
            Some((name.clone(), profile.clone()))
        }
        None => None,
    };
    let (topic, environment) = profile
        .as_ref()
        .map(|(_, p)| (p.topic.clone(), p.environment.clone()))
        .unwrap_or_default();
    let profile_name = profile.as_ref().map(|(n, _)| n.clone());
    let done = |credentials| Resolved {
        credentials,
        topic: topic.clone(),
        environment: environment.clone(),
        profile: profile_name.clone(),
    };
    // A certificate: from --cert, else from a certificate profile.
    if let Some(path) = &cert.cert {
        return Ok(done(Credentials::Certificate(load_certificate(
            path,
            cert.cert_key.as_deref(),
            &cert.password,
        )?)));
    }
    if let Some((name, p)) = &profile {
        if let (Some(c), None) = (&p.certificate, &key.key_file) {
            // A PEM pasted in place of a path is refused, never echoed.
            let inlined = |field: &str, value: &str| {
                apns_provider::keystore::looks_like_secret(value).then(|| {
                    Failure::usage(format!(
                        "the key inlined in profile {name:?} ({field}) is refused: a profile says where a key lives, never what it is; put the PEM in a file only you can read (chmod 600) and write {field} = \"file:PATH\""
                    ))
                })
            };
            if let Some(refused) = inlined("certificate", c) {
                return Err(refused);
            }
            let path = std::path::PathBuf::from(c.strip_prefix("file:").unwrap_or(c));
            let key_path = match &p.certificate_key {
                Some(k) => {
                    if let Some(refused) = inlined("certificate_key", k) {
                        return Err(refused);
                    }
                    Some(std::path::PathBuf::from(
                        k.strip_prefix("file:").unwrap_or(k),
                    ))
                }
                None => None,
            };
            let mut password = args::PasswordArgs::default();
            match p.password.as_deref() {
                Some("prompt") | None => {}
                Some(pw) => {
                    if let Some(var) = pw.strip_prefix("env:") {
                        password.cert_password_env = Some(var.to_string());
                    } else if let Some(file) = pw.strip_prefix("file:") {
                        password.cert_password_file = Some(file.into());
                    } else {
                        // Whatever it is, it may be the password itself:
                        // never repeat it.
                        return Err(Failure::usage(format!(
                            "the password inlined in profile {name:?} is refused (and not shown): a profile says where a password lives; write password = \"env:VAR\", \"file:PATH\" (a file only you can read) or \"prompt\""
                        )));
                    }
                }
            }
            return Ok(done(Credentials::Certificate(load_certificate(
                &path,
                key_path.as_deref(),
                &password,
            )?)));
        }
    }
    // A token key: from --key-file, else from the profile's store.
    let (signing_key, key_file) = match (&key.key_file, &profile) {
        (Some(path), _) => (SigningKey::from_file(path)?, Some(path.clone())),
        (None, Some((name, p))) => {
            let location = p.key_location()?;
            let pem = apns_provider::keystore::load_key_pem(&location, name, apns_provider::keystore::Keychain::system)?;
            let key = SigningKey::from_pem(pem.as_bytes()).map_err(|e| {
                Failure::usage(format!("profile {name}: the key in {location} is unusable: {e}"))
            })?;
            (key, None)
        }
        (None, None) => {
            return Err(Failure::usage(
                "no credentials: give --key NAME (a stored key, see `apns key list`), or --key-file AuthKey_<KEYID>.p8 --team-id TEAM, or --cert PATH",
            ))
        }
    };
    let profile_field = |f: fn(&apns_provider::keystore::Profile) -> Option<String>| {
        profile.as_ref().and_then(|(_, p)| f(p))
    };
    let team = key
        .team_id
        .clone()
        .or_else(|| profile_field(|p| p.team_id.clone()))
        .ok_or_else(|| {
            Failure::usage(
                "--team-id is required: the 10-character Team ID from Apple Developer > Membership",
            )
        })?;
    let team_id = TeamId::new(team)?;
    let key_id = match key
        .key_id
        .clone()
        .or_else(|| profile_field(|p| p.key_id.clone()))
    {
        Some(kid) => KeyId::new(kid)?,
        None => key_file
            .as_deref()
            .and_then(KeyId::from_apple_file_name)
            .ok_or_else(|| {
                Failure::usage("--key-id is required: the key file is not named AuthKey_<KEYID>.p8")
            })?,
    };
    if let Some(path) = &key_file {
        check_ids_against_file_name(&team_id, &key_id, path)?;
    }
    Ok(done(Credentials::Token(TokenSigner::new(
        signing_key,
        key_id,
        team_id,
    ))))
}

/// The environment to use: the flag (or APNS_ENV), else the profile's, else
/// production; a key limited to one environment is not used with the other.
fn pick_environment(
    flag: Option<&str>,
    resolved: &Resolved,
) -> Result<apns_provider::Environment, Failure> {
    let profile_env = resolved.environment.as_deref().filter(|e| *e != "both");
    let chosen: apns_provider::Environment =
        flag.or(profile_env).unwrap_or("production").parse()?;
    if let (Some(limit), Some(name)) = (profile_env, &resolved.profile) {
        let limit: apns_provider::Environment = limit.parse()?;
        if limit != chosen {
            return Err(Failure::usage(format!(
                "profile {name} is limited to {limit}; drop --env {chosen} or use a key for {chosen}"
            )));
        }
    }
    Ok(chosen)
}

fn load_signer(key: &KeyArgs) -> Result<TokenSigner, Failure> {
    match resolve(key, &args::CertArgs::default())?.credentials {
        Credentials::Token(signer) => Ok(signer),
        Credentials::Certificate(_) => Err(Failure::usage(
            "this profile holds a certificate; provider tokens need a .p8 key",
        )),
    }
}

/// Loads a certificate. The .p12 password comes from an environment
/// variable or a file, or is asked for on a terminal: never from an argument
/// that would land in shell history.
fn load_certificate(
    path: &std::path::Path,
    key: Option<&std::path::Path>,
    source: &args::PasswordArgs,
) -> Result<apns_provider::ClientCertificate, Failure> {
    use std::io::IsTerminal;
    let password: Option<zeroize::Zeroizing<String>> = match (
        source.cert_password_env.as_deref(),
        source.cert_password_file.as_deref(),
    ) {
        (Some(var), _) => Some(zeroize::Zeroizing::new(std::env::var(var).map_err(
            |_| {
                Failure::usage(format!(
                    "--cert-password-env {var}: that environment variable is not set"
                ))
            },
        )?)),
        (None, Some(file)) => {
            let text = std::fs::read_to_string(file).map_err(|e| {
                Failure::usage(format!(
                    "cannot read the password file {}: {e}",
                    file.display()
                ))
            })?;
            Some(zeroize::Zeroizing::new(
                text.lines().next().unwrap_or_default().to_string(),
            ))
        }
        (None, None) => None,
    };
    let load = |pw: Option<&str>| apns_provider::ClientCertificate::from_file(path, key, pw);
    match load(password.as_deref().map(|p| p.as_str())) {
        // The empty password failed and none was given: ask a terminal, or
        // say that none was given (not that it was wrong).
        Err(e)
            if password.is_none()
                && e.credential_problem()
                    == Some(apns_provider::CredentialProblem::WrongPassword) =>
        {
            if !std::io::stdin().is_terminal() {
                return Err(Failure::usage(format!(
                    "{} is protected by a password and none was given: use --cert-password-env VAR or --cert-password-file FILE (or run on a terminal to be asked)",
                    path.display()
                )));
            }
            let typed = zeroize::Zeroizing::new(
                rpassword::prompt_password(format!("Password for {}: ", path.display()))
                    .map_err(|e| Failure::usage(format!("cannot read the password: {e}")))?,
            );
            Ok(load(Some(&typed))?)
        }
        other => Ok(other?),
    }
}

fn token(args: args::TokenArgs) -> Result<u8, Failure> {
    let signer = load_signer(&args.key)?;
    let now = unix_now();
    if !args.decode {
        println!("{}", signer.sign_jwt(now));
        return Ok(exit::OK);
    }
    let jwt = match args.jwt.as_deref() {
        Some("-") => {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
                .map_err(|e| Failure::usage(format!("cannot read the token from stdin: {e}")))?;
            text.trim().to_string()
        }
        Some(t) => t.trim().to_string(),
        None => signer.sign_jwt(now),
    };
    let claims = apns_provider::auth::decode_unverified(&jwt)?;
    // In i128, then clamped: an absurd iat must not overflow the arithmetic.
    let age =
        (now as i128 - claims.iat as i128).clamp(i64::MIN as i128 / 2, i64::MAX as i128 / 2) as i64;
    let signature = apns_provider::auth::verify_token(&jwt, &signer.key().public_key());
    let mut problems = Vec::new();
    if claims.alg != "ES256" {
        problems.push(format!("alg is {:?}; APNs needs ES256", claims.alg));
    }
    if claims.kid != signer.key_id().as_str() {
        problems.push(format!(
            "kid {} is not this key's id {}",
            claims.kid,
            signer.key_id()
        ));
    }
    if claims.iss != signer.team_id().as_str() {
        problems.push(format!(
            "iss {} is not the team id {}",
            claims.iss,
            signer.team_id()
        ));
    }
    if signature.is_err() {
        problems.push("the signature does not verify with this key (wrong .p8, or a tampered token): APNs answers InvalidProviderToken".into());
    }
    if age >= 3600 {
        problems.push(format!(
            "issued {age} s ago: older than an hour, APNs answers ExpiredProviderToken"
        ));
    } else if age < -60 {
        problems.push(format!(
            "issued {} s in the future: this machine's clock (or the signer's) is wrong",
            -age
        ));
    }
    match args.output {
        args::Output::Json => println!(
            "{}",
            serde_json::json!({
                "header": {"alg": claims.alg, "kid": claims.kid},
                "claims": {"iss": claims.iss, "iat": claims.iat},
                "age_seconds": age,
                "signature_valid": signature.is_ok(),
                "problems": problems,
            })
        ),
        args::Output::Human => {
            println!(
                "header     {{\"alg\":\"{}\",\"kid\":\"{}\"}}",
                claims.alg, claims.kid
            );
            println!(
                "claims     {{\"iss\":\"{}\",\"iat\":{}}}",
                claims.iss, claims.iat
            );
            println!(
                "issued     {} ({age} s ago; APNs accepts it for {} s more)",
                apns_provider::clock::format_utc_millis(claims.iat.saturating_mul(1000)),
                (3600 - age).max(0)
            );
            println!(
                "signature  {}",
                if signature.is_ok() {
                    "valid for this key"
                } else {
                    "INVALID for this key"
                }
            );
            for p in &problems {
                println!("problem    {p}");
            }
        }
    }
    Ok(if problems.is_empty() {
        exit::OK
    } else {
        exit::USAGE
    })
}

fn unix_now() -> u64 {
    apns_provider::clock::now_unix_seconds()
}
