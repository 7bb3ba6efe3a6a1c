//! The `apns` command line: a thin layer over the library.

mod args;
mod bench;
mod demo;
mod mock;
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
    let key = SigningKey::from_file(&args.key_file)?;
    let team_id = TeamId::new(&args.team_id)?;
    let key_id = match &args.key_id {
        Some(kid) => KeyId::new(kid)?,
        None => KeyId::from_apple_file_name(&args.key_file).ok_or_else(|| {
            Failure::usage(format!(
                "--key-id is required: {} is not named AuthKey_<KEYID>.p8",
                args.key_file.display()
            ))
        })?,
    };
    check_ids_against_file_name(&team_id, &key_id, &args.key_file)?;
    Ok(TokenSigner::new(key, key_id, team_id))
}

fn token(args: args::TokenArgs) -> Result<u8, Failure> {
    let signer = load_signer(&args.key)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    println!("{}", signer.sign_jwt(now));
    Ok(exit::OK)
}
