//! Arguments of `apns enqueue` and `apns worker` (the Redis Streams queue).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

use super::args::{numbers, CertArgs, KeyArgs, PayloadArgs, ProxyArgs, ServerArgs};

pub const ENQUEUE_HELP: &str = "Each device token becomes one stream entry (a job): the notification's fields, a unique \
`job` id (a UUID, also its apns-id), the format version `v` and `--app`. It prints\n  \
{\"enqueued\":N,\"first_id\":\"...\",\"last_id\":\"...\",\"invalid\":0}\n\
Invalid lines are reported on stderr and not enqueued (exit 2).\n\n\
EXAMPLES:\n  \
apns enqueue --redis redis://10.0.0.5:6379 --app myapp --alert 'New episode' --tokens-file devices.txt\n  \
apns enqueue --redis redis://127.0.0.1 --topic com.example.app --title Hi --body 'Arrives Tuesday' TOKEN1 TOKEN2\n  \
export APNS_REDIS_URL=redis://:PASSWORD@redis.internal:6379   # keeps the password out of ps and shell history";

pub const WORKER_HELP: &str = "Runs until SIGTERM or Ctrl-C: then it reads no more, finishes the jobs in flight, writes \
their results and exits 0. A second signal abandons the jobs in flight (exit 130): they stay pending and another \
worker claims them after --claim-idle.\n\n\
A job's `app` names a profile (`apns key list`) whose key sends it; a job without one uses --key, --key-file or \
--cert. Each job gets one entry in --results-stream; bad jobs also go to --dead-letter. A line on stderr every \
--stats-interval says jobs/s, in flight, pending, claimed and dead-lettered.\n\n\
EXAMPLES:\n  \
apns worker --redis redis://10.0.0.5:6379                 # jobs name their app (profiles in keys.toml)\n  \
apns worker --redis redis://10.0.0.5:6379 --key myapp --consumer \"$(hostname)-1\" --concurrency 2000 --connections 2\n  \
apns worker --redis redis://127.0.0.1 --delivery at-most-once --claim-idle 2m --max-deliveries 10";

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

    /// The app's bundle id, plus the push type's suffix (else the app's default topic).
    #[arg(long, env = "APNS_TOPIC")]
    pub topic: Option<String>,
    /// apns-push-type: alert, background, location, voip, complication, fileprovider, mdm, liveactivity, pushtotalk, widgets, controls.
    #[arg(long, default_value = "alert", value_name = "TYPE")]
    pub push_type: String,
    /// apns-priority: 10 (immediate), 5 (power-aware, required for background) or 1.
    #[arg(long, value_name = "10|5|1")]
    pub priority: Option<String>,
    /// apns-expiration: 0 (do not store), UNIX seconds, or +DURATION such as +1h (from now, not
    /// from when a worker sends it).
    #[arg(long, value_name = "E", allow_hyphen_values = true)]
    pub expiration: Option<String>,
    /// apns-collapse-id (at most 64 bytes).
    #[arg(long, value_name = "ID")]
    pub collapse_id: Option<String>,
    /// apns-id (a UUID) for every job; by default each job's apns-id is its own job id.
    #[arg(long, value_name = "UUID")]
    pub apns_id: Option<String>,

    #[command(flatten)]
    pub payload: PayloadArgs,

    /// Read device tokens from a file (or stdin with "-"): one hex token per line, or JSON lines
    /// {"device_token":"..","payload":{..},"push_type":..,"priority":..,"expiration":..,"collapse_id":..,"apns_id":..,"topic":..},
    /// as for apns send. Streamed: any size.
    #[arg(long, value_name = "PATH|-")]
    pub tokens_file: Option<PathBuf>,
    /// Never draw the progress bar (it is drawn only when stderr is a terminal).
    #[arg(long)]
    pub no_progress: bool,

    /// Hex device tokens.
    #[arg(value_name = "DEVICE_TOKEN", required_unless_present = "tokens_file")]
    pub device_tokens: Vec<String>,
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
    /// Jobs in flight at once (read, being sent, or result being written), 1 to 100000.
    #[arg(long, default_value = "1000", value_name = "N", value_parser = numbers::count::<usize>(1, super::args::MAX_CONCURRENCY))]
    pub concurrency: usize,
    /// HTTP/2 connections per app (team, key and environment), at most 64.
    #[arg(long, default_value = "1", value_name = "N", value_parser = numbers::count::<usize>(1, super::args::MAX_CONNECTIONS))]
    pub connections: usize,
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
    /// Serve Prometheus metrics at http://ADDR/metrics (no authentication: bind to loopback or a
    /// private address; port 0 picks one, said on stderr): outcomes and durations per app,
    /// connections, and apns_queue_pending (jobs not yet delivered plus delivered without a result).
    #[arg(long, value_name = "ADDR", value_parser = super::args::MetricsListen)]
    pub metrics_listen: Option<std::net::SocketAddr>,

    #[command(flatten)]
    pub key: KeyArgs,
    #[command(flatten)]
    pub cert: CertArgs,
    /// The topic of jobs that have none and whose app has no default topic.
    #[arg(long, env = "APNS_TOPIC")]
    pub topic: Option<String>,
    /// Apple environment for every app (default: each profile's, else production).
    #[arg(long = "env", env = "APNS_ENV", value_name = "sandbox|production")]
    pub environment: Option<String>,
    #[command(flatten)]
    pub server: ServerArgs,
    /// Limit for one notification, in seconds, retries included (keep it below --claim-idle).
    #[arg(long, default_value = "30", value_name = "SECONDS", value_parser = numbers::seconds(false, numbers::DAY))]
    pub timeout: f64,
    #[command(flatten)]
    pub proxy: ProxyArgs,
}
