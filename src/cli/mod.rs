//! The `apns` command line: a thin layer over the library.

mod args;
mod bench;
mod cert;
mod demo;
mod doctor;
mod input;
mod mock;
mod report;
mod send;

use std::process::ExitCode;

use apns_provider::auth::check_ids_against_file_name;
use apns_provider::{Error, KeyId, SigningKey, TeamId, TokenSigner};
use clap::Parser;

pub use args::Cli;
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
    /// Interrupted by Ctrl-C (128 + SIGINT, as shells report it).
    pub const INTERRUPTED: u8 = 130;
}

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
        Failure {
            code,
            message: e.to_string(),
        }
    }
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
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("apns: cannot start the async runtime: {e}");
            return ExitCode::from(exit::USAGE);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Send(args) => send::run(*args).await,
            Command::Token(args) => token(args),
            Command::Mock(args) => mock::run(args).await,
            Command::Demo => demo::run().await,
            Command::Bench(args) => bench::run(args).await,
            Command::Doctor(args) => doctor::run(args).await,
            Command::Cert(command) => cert::run(command),
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

fn init_logging(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

/// Loads the key and ids, inferring the key id from `AuthKey_<KID>.p8` and
/// catching swapped ids.
fn load_signer(args: &KeyArgs) -> Result<TokenSigner, Failure> {
    let key_file = args.key_file.as_ref().ok_or_else(|| {
        Failure::usage("--key-file is required: the AuthKey_<KEYID>.p8 from Apple (or --cert PATH for a certificate)")
    })?;
    let team = args.team_id.as_ref().ok_or_else(|| {
        Failure::usage(
            "--team-id is required: the 10-character Team ID from Apple Developer > Membership",
        )
    })?;
    let key = SigningKey::from_file(key_file)?;
    let team_id = TeamId::new(team)?;
    let key_id = match &args.key_id {
        Some(kid) => KeyId::new(kid)?,
        None => KeyId::from_apple_file_name(key_file).ok_or_else(|| {
            Failure::usage(format!(
                "--key-id is required: {} is not named AuthKey_<KEYID>.p8",
                key_file.display()
            ))
        })?,
    };
    check_ids_against_file_name(&team_id, &key_id, key_file)?;
    Ok(TokenSigner::new(key, key_id, team_id))
}

/// The credentials a command sends with.
pub enum Credentials {
    /// A `.p8` key.
    Token(TokenSigner),
    /// A push certificate.
    Certificate(apns_provider::ClientCertificate),
}

fn load_credentials(key: &KeyArgs, cert: &args::CertArgs) -> Result<Credentials, Failure> {
    match &cert.cert {
        Some(path) => Ok(Credentials::Certificate(load_certificate(
            path,
            cert.cert_key.as_deref(),
            cert.cert_password_env.as_deref(),
            cert.cert_password_file.as_deref(),
        )?)),
        None => Ok(Credentials::Token(load_signer(key)?)),
    }
}

/// Loads a certificate. The .p12 password comes from an environment
/// variable or a file, or is asked for on a terminal: never from an argument
/// that would land in shell history.
fn load_certificate(
    path: &std::path::Path,
    key: Option<&std::path::Path>,
    password_env: Option<&str>,
    password_file: Option<&std::path::Path>,
) -> Result<apns_provider::ClientCertificate, Failure> {
    use std::io::IsTerminal;
    let password: Option<zeroize::Zeroizing<String>> = match (password_env, password_file) {
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
        Err(e)
            if password.is_none()
                && e.to_string().contains("wrong password")
                && std::io::stdin().is_terminal() =>
        {
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
    let age = now as i64 - claims.iat as i64;
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
                apns_provider::response::format_utc_millis(claims.iat * 1000),
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
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
