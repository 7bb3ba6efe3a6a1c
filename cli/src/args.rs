//! Command-line arguments (clap derive): the commands, and the flag groups
//! they share, each declared once in a file under `args/` named for what
//! it holds. The help text is the manual.

use clap::{Parser, Subcommand};

mod bench;
mod channel;
mod checking;
mod connections;
mod credentials;
mod doctor;
mod headers;
mod help;
mod keys;
mod listen;
mod metrics_listen;
mod mock;
pub mod numbers;
mod output;
mod payload;
mod proxy;
mod queue;
mod send;
mod serve;
mod target;
mod tokens;
mod values;

pub use bench::BenchArgs;
pub use channel::{AppArgs, BroadcastArgs, ChannelArgs, ChannelCommand};
pub use credentials::{CertArgs, KeyArgs, KeyFileArgs, PasswordArgs};
pub use doctor::DoctorArgs;
pub use keys::{CertCommand, KeyCommand, StoreKind, TokenArgs};
pub use mock::{MockArgs, TokenUpdates};
pub use output::{Output, OutputArgs};
pub use queue::{DeliveryArg, EnqueueArgs, WorkerArgs};
pub use send::SendArgs;
pub use serve::ServeArgs;
pub use target::TargetArgs;
pub use tokens::TokensArgs;

/// The most HTTP/2 connections `--connections` opens (APNs asks for few,
/// long-lived connections; each carries up to the server's stream limit,
/// 1000 at Apple).
pub const MAX_CONNECTIONS: u64 = 64;
/// The most notifications or jobs in flight `--concurrency` takes (each
/// holds a task and a stream's buffers; Apple's stream limit is 1000 per
/// connection, so more than 64 × 1000 only queues).
pub const MAX_CONCURRENCY: u64 = 100_000;
/// The most streams per connection a mock advertises (`--max-streams`).
pub const MAX_STREAMS: u64 = 100_000;

/// Send Apple push notifications with token (.p8) or certificate authentication.
#[derive(Debug, Parser)]
#[command(
    name = "apns",
    version,
    about = "Send Apple push notifications over HTTP/2 with .p8 token authentication (or a .p12/PEM certificate)",
    long_about = "Send Apple push notifications over HTTP/2 with .p8 token authentication, or with a push\ncertificate (.p12 or PEM) while you move to tokens.\n\nStart with `apns demo` (no Apple account needed: it runs a local mock APNs server).",
    after_help = help::APNS
)]
pub struct Cli {
    /// More logging on stderr: -v each step (credentials, endpoint, proxy, connections, retries,
    /// token mints; never a secret), -vv more of them, -vvv everything.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Send a notification to one or more device tokens.
    #[command(
        after_help = help::SEND
    )]
    Send(Box<SendArgs>),
    /// Add one job per device token to a Redis stream, for `apns worker` processes to send.
    #[command(after_help = help::ENQUEUE)]
    Enqueue(Box<EnqueueArgs>),
    /// Send the jobs of a Redis stream, sharing them with other workers on any number of machines.
    #[command(
        after_help = help::WORKER,
        mut_arg("concurrency", |a| a
            .default_value(connections::WORKER_CONCURRENCY)
            .help("Jobs in flight at once (read, being sent, or result being written), 1 to 100000."))
    )]
    Worker(Box<WorkerArgs>),
    /// Print one fresh provider token (JWT) on stdout, for curl.
    #[command(
        after_help = help::TOKEN
    )]
    Token(TokenArgs),
    /// Run the validating mock APNs server (TLS + HTTP/2) until Ctrl-C.
    #[command(
        after_help = help::MOCK
    )]
    Mock(MockArgs),
    /// Show a real send end to end: throwaway key, built-in mock, several pushes.
    Demo {
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Measure throughput, client CPU, latency and memory against a mock in its own process.
    #[command(
        after_help = help::BENCH,
        mut_arg("latency", |a| a
            .conflicts_with("endpoint")
            .help("Make the spawned mock answer each request this much later (as `apns mock --latency`): 50ms, or 40ms..60ms. The report adds the physical limit at that distance: work in flight ÷ round trip."))
    )]
    Bench(BenchArgs),
    /// Check a setup step by step: clock, key, DNS, TCP, TLS, HTTP/2, certificate chain, a real send.
    #[command(
        after_help = help::DOCTOR
    )]
    Doctor(DoctorArgs),
    /// Run an authenticated HTTP gateway: POST /v1/notifications, /healthz, /readyz, /metrics.
    #[command(
        after_help = help::SERVE,
        mut_arg("listen", |a| a
            .default_value(listen::SERVE_LISTEN)
            .help("Address to listen on. Other than loopback, it needs --tls-cert (or --insecure-http).")),
        mut_arg("idle_timeout", |a| a
            .default_value(listen::SERVE_IDLE_TIMEOUT)
            .value_name("SECONDS")
            .help_heading("Limits")
            .help("Close a client connection (HTTP/2, or HTTP/1.1 keep-alive) after this many seconds without a request in progress (above 0, at most 86400)."))
    )]
    Serve(Box<ServeArgs>),
    /// Manage stored keys and profiles: add, list, show, rotate, remove.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Inspect or convert push certificates (.p12 / PEM).
    #[command(subcommand)]
    Cert(CertCommand),
    /// Print a shell completion script: apns completions bash > /etc/bash_completion.d/apns
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Manage broadcast channels (iOS 18 Live Activities): create, list, show, delete.
    #[command(subcommand)]
    Channel(ChannelCommand),
    /// Send one broadcast push to a channel: every Live Activity subscribed to it updates.
    #[command(
        after_help = help::BROADCAST
    )]
    Broadcast(Box<BroadcastArgs>),
}
