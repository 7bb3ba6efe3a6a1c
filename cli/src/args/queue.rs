//! The arguments of `apns enqueue` and `apns worker` (the Redis Streams
//! queue).

use std::time::Duration;

use clap::{Args, ValueEnum};

use super::connections::{ConcurrencyArgs, ConnectionsArgs};
use super::headers::{HeaderArgs, TopicArgs};
use super::metrics_listen::MetricsArgs;
use super::numbers;
use super::payload::PayloadArgs;
use super::target::TargetArgs;
use super::tokens::TokensArgs;

/// Where the queue lives.
#[derive(Debug, Args, Clone)]
pub struct RedisArgs {
    /// The Redis server: redis://[:PASSWORD@]HOST[:PORT][/DB]. Prefer APNS_REDIS_URL for a URL
    /// with a password.
    // The value may hold a password: --help never shows it.
    #[arg(
        long = "redis",
        env = "APNS_REDIS_URL",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub url: String,
    /// The jobs stream.
    #[arg(long, default_value = "apns:jobs", value_name = "KEY")]
    pub stream: String,
}

#[derive(Debug, Args)]
pub struct EnqueueArgs {
    #[command(flatten)]
    pub redis: RedisArgs,
    /// The app (a profile name on the workers' machines) whose key sends these notifications;
    /// without it, the workers' own credentials do.
    #[arg(long, value_name = "NAME")]
    pub app: Option<String>,

    #[command(flatten)]
    pub headers: HeaderArgs,
    #[command(flatten)]
    pub payload: PayloadArgs,

    #[command(flatten)]
    pub tokens: TokensArgs,
}

/// What happens to a job whose earlier delivery may have reached APNs.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum DeliveryArg {
    /// Send it again with the same apns-id: nothing lost, a device may show it twice.
    AtLeastOnce,
    /// Never twice: its result says may_have_been_delivered instead.
    AtMostOnce,
}

#[derive(Debug, Args)]
pub struct WorkerArgs {
    #[command(flatten)]
    pub redis: RedisArgs,
    /// The consumer group all workers of this stream share (created if missing).
    #[arg(long, default_value = "apns", value_name = "NAME")]
    pub group: String,
    /// This worker's name in the group (default: host name and process id). A worker restarted
    /// with the same name takes back its own pending jobs at once.
    #[arg(long, value_name = "NAME")]
    pub consumer: Option<String>,
    /// Where each job's result goes (one entry per job).
    #[arg(long, default_value = "apns:results", value_name = "KEY")]
    pub results_stream: String,
    /// Where bad jobs, and jobs delivered more than --max-deliveries times, go.
    #[arg(long, default_value = "apns:dead", value_name = "KEY")]
    pub dead_letter: String,
    #[command(flatten)]
    pub in_flight: ConcurrencyArgs,
    #[command(flatten)]
    pub pool: ConnectionsArgs,
    /// Claim jobs pending this long with another worker (it died): 500ms, 30s, 2m...
    #[arg(long, default_value = "60s", value_name = "DURATION", value_parser = numbers::duration(Duration::from_millis(10), 30 * numbers::DAY_DURATION))]
    pub claim_idle: Duration,
    /// Deliveries after which a job goes to the dead letter with its last error (1 to 1000).
    #[arg(long, default_value = "5", value_name = "N", value_parser = numbers::count::<u64>(1, 1000))]
    pub max_deliveries: u64,
    /// What to do with a job whose earlier delivery may have reached APNs (its worker died
    /// while sending it).
    #[arg(long, value_enum, default_value = "at-least-once")]
    pub delivery: DeliveryArg,
    /// Keep jobs in the stream once their result is written (by default they are deleted, so
    /// that the stream does not grow; keep them when other groups read it).
    #[arg(long)]
    pub keep_jobs: bool,
    /// Trim the results stream to about N entries (by default it grows until read and trimmed).
    #[arg(long, value_name = "N", value_parser = numbers::count::<u64>(1, 1_000_000_000))]
    pub results_maxlen: Option<u64>,
    /// How often to print a progress line on stderr (0 for never).
    #[arg(long, default_value = "10s", value_name = "DURATION", value_parser = numbers::duration(Duration::ZERO, 30 * numbers::DAY_DURATION))]
    pub stats_interval: Duration,
    #[command(flatten)]
    pub metrics: MetricsArgs,

    #[command(flatten)]
    pub target: TargetArgs,
    // The topic of jobs that have none and whose app has no default topic.
    #[command(flatten)]
    pub topic: TopicArgs,
}
