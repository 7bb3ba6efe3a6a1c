//! The arguments of `apns serve`: the shared target and topic, and how
//! the gateway listens, limits and queues.

use std::path::PathBuf;

use clap::Args;

use super::connections::ConnectionsArgs;
use super::headers::TopicArgs;
use super::listen::ListenArgs;
use super::target::TargetArgs;
use super::{numbers, MAX_CONCURRENCY};

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub socket: ListenArgs,
    /// API tokens, one per line (blank lines skipped; a `#` at a line's start or after a space
    /// starts a comment, so `TOKEN  # CI` is TOKEN; at least 16 characters, no inner spaces; a
    /// regular file, chmod 600). Re-read every second off the request path, so tokens rotate
    /// without a restart; while it is missing or unreadable every request gets 401.
    /// Without it, the token in APNS_API_TOKEN.
    #[arg(long, value_name = "PATH")]
    pub api_token_file: Option<PathBuf>,
    #[command(flatten)]
    pub target: TargetArgs,
    /// Also serve this profile (`apns key list`) as an app: requests pick it with "app":"NAME";
    /// repeatable. Requests without "app" go to the credentials given by the flags above (app
    /// "default", or the --key profile's name), else to the only app.
    #[arg(long = "app", value_name = "PROFILE")]
    pub apps: Vec<String>,
    // The default app's default topic.
    #[command(flatten)]
    pub topic: TopicArgs,
    #[command(flatten)]
    pub pool: ConnectionsArgs,

    /// Serve HTTPS with this certificate chain (PEM, leaf first).
    #[arg(
        long,
        value_name = "PEM",
        requires = "tls_key",
        help_heading = "Listening"
    )]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(
        long,
        value_name = "PEM",
        requires = "tls_cert",
        help_heading = "Listening"
    )]
    pub tls_key: Option<PathBuf>,
    /// Allow plain HTTP on an address other than loopback (API tokens then cross the network in
    /// clear text: only behind a TLS-terminating proxy).
    #[arg(long, conflicts_with = "tls_cert", help_heading = "Listening")]
    pub insecure_http: bool,
    /// Serve /metrics without authentication.
    #[arg(long, help_heading = "Listening")]
    pub metrics_public: bool,

    /// Largest request body (bytes, or with a KiB / MiB suffix); larger: 413.
    #[arg(
        long,
        default_value = "1MiB",
        value_name = "SIZE",
        help_heading = "Limits",
        value_parser = numbers::size(1, 64 << 20)
    )]
    pub max_body: usize,
    /// Most notifications in one request (1 to 1000000); more: 413.
    #[arg(
        long,
        default_value = "10000",
        value_name = "N",
        help_heading = "Limits",
        value_parser = numbers::count::<usize>(1, 1_000_000)
    )]
    pub max_items: usize,
    /// Limit for one request (reading it and sending its notifications), in seconds; longer: 504.
    /// Keep it above --timeout.
    #[arg(
        long,
        default_value = "60",
        value_name = "SECONDS",
        help_heading = "Limits",
        value_parser = numbers::seconds(false, numbers::DAY)
    )]
    pub request_timeout: f64,
    /// Requests to /v1/ in progress at once (1 to 100000); more get 503 with Retry-After (never a
    /// queue).
    #[arg(long, default_value = "32", value_name = "N", help_heading = "Limits", value_parser = numbers::count::<usize>(1, MAX_CONCURRENCY))]
    pub max_concurrent_requests: usize,
    /// Client connections open at once (1 to 65536). When all are taken, a new one closes the
    /// connection idle longest (one that never sent a request first); only when every connection
    /// has a request in progress do new ones wait. A connection with no request within 10 s of
    /// opening is closed.
    #[arg(
        long,
        default_value = "1024",
        value_name = "N",
        help_heading = "Limits",
        value_parser = numbers::count::<usize>(1, 65_536)
    )]
    pub max_connections: usize,
    /// After SIGTERM, how long requests in progress may take to finish, in seconds (0 to 3600; idle
    /// connections close at once; after it, the requests still in progress are cut).
    #[arg(
        long,
        default_value = "30",
        value_name = "SECONDS",
        help_heading = "Limits",
        value_parser = numbers::seconds(true, 3600.0)
    )]
    pub shutdown_grace: f64,

    /// Enqueue each request's notifications to a Redis stream for `apns worker`s to send, and
    /// answer 202 with the job ids, instead of sending at once. `--redis` alone takes the URL
    /// from APNS_REDIS_URL (keeps a password out of ps); or --redis redis://[:PASSWORD@]HOST[:PORT][/DB].
    /// Jobs carry the app's name (the workers resolve it to a profile); those of the app the
    /// credential flags define without --key carry none (the workers' own credentials).
    #[arg(
        long,
        num_args = 0..=1,
        default_missing_value = "",
        value_name = "URL",
        help_heading = "Queue"
    )]
    pub redis: Option<String>,
    /// The jobs stream (with --redis).
    #[arg(
        long,
        default_value = "apns:jobs",
        value_name = "KEY",
        requires = "redis",
        help_heading = "Queue"
    )]
    pub stream: String,
}
