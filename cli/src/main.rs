//! The `apns` command line: a thin layer over the `apns-provider` library.
//! This file only dispatches: it parses the arguments, sets up logging and
//! the async runtime, and hands each command to its own file.

#![forbid(unsafe_code)]

mod args;
mod bench;
mod bench_cli;
mod bench_measure;
mod bench_worker;
mod broadcast;
mod bulk;
mod cert;
mod channel;
mod checking;
mod credentials;
mod demo;
mod doctor;
mod enqueue;
mod failure;
mod files;
mod input;
mod key;
mod mock;
mod paths;
mod plan;
mod report;
mod resume;
mod send;
mod serve;
mod token;
mod worker;

use std::process::ExitCode;

use clap::Parser;

use args::{Cli, Command};
// The bulk pipeline's files name these as `super::...`.
pub use failure::{exit, hint, Failure};

/// mimalloc: a bulk send allocates a little per notification, and glibc's
/// malloc spent about a tenth of the CPU there.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
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
            Command::Token(args) => token::run(args),
            Command::Mock(args) => mock::run(args).await,
            Command::Demo { output } => demo::run(output.output).await,
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

/// Logs on stderr: warnings only by default; `-v` the steps of this
/// command line (credentials, endpoint, proxy) and the library's
/// connections, retries and token mints; `-vv` more of both; `-vvv`
/// everything, the HTTP/2 and TLS crates included. RUST_LOG overrides.
/// Neither ever logs a key, a password or a provider token.
fn init_logging(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        0 => "warn",
        1 => "warn,apns=info,apns_provider=debug",
        2 => "info,apns=debug,apns_provider=trace",
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
