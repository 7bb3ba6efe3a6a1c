//! The arguments of `apns bench`: what to measure, against which mock.

use clap::Args;

use super::connections::{ConcurrencyArgs, ConnectionsArgs};
use super::mock::{LatencyArgs, StreamsArgs};
use super::numbers;
use super::output::OutputArgs;
use super::target::ServerArgs;

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Notifications to send (after a warm-up of a tenth, at most 10,000).
    #[arg(long, default_value = "100000", value_name = "N", value_parser = numbers::count::<u64>(1, 100_000_000))]
    pub count: u64,
    #[command(flatten)]
    pub pool: ConnectionsArgs,
    #[command(flatten)]
    pub in_flight: ConcurrencyArgs,
    #[command(flatten)]
    pub streams: StreamsArgs,
    /// Payload size in bytes (default: a small alert).
    #[arg(long, default_value = "0", value_name = "BYTES", value_parser = numbers::count::<usize>(0, 5120))]
    pub payload_bytes: usize,
    // Benchmark an already running server (e.g. `apns mock --accept-all`) instead of spawning
    // one: --endpoint and --ca-file.
    #[command(flatten)]
    pub server: ServerArgs,
    /// Measure the CLI instead: write a file of --count tokens, run `apns send --tokens-file ...
    /// --results ...` on it as a separate process, and report its time and peak memory.
    #[arg(long)]
    pub cli: bool,
    /// Measure `apns worker` instead: enqueue --count jobs in Redis, run --workers worker
    /// processes (each with --concurrency and --connections) on them, and report jobs/s.
    #[arg(long, conflicts_with = "cli")]
    pub worker: bool,
    /// With --worker: how many worker processes share the stream.
    #[arg(long, default_value = "1", value_name = "N", value_parser = numbers::count::<usize>(1, 64))]
    pub workers: usize,
    /// With --worker: the Redis to use (default: a redis-server from PATH, started on a free
    /// loopback port).
    #[arg(long, value_name = "URL", requires = "worker")]
    pub redis: Option<String>,
    /// Pin the spawned mock to CPU 0 and the measured process (and h2load) to CPU 1 with
    /// taskset, so they do not share a core (needs 2 CPUs and taskset).
    #[arg(long)]
    pub pin: bool,
    /// With --cli: skip the h2load comparison (run when h2load is on the PATH).
    #[arg(long, requires = "cli")]
    pub no_h2load: bool,
    /// Spawn the mock in validating mode (it checks every header, the token's signature and
    /// the payload, as `apns mock --trust-key` does) instead of accept-all, to measure what
    /// validation costs per request.
    #[arg(long, conflicts_with = "endpoint")]
    pub validating: bool,
    /// --latency: the spawned mock's (throughput at a distance is in-flight work ÷ round trip:
    /// the report adds that physical limit, streams × connections ÷ latency).
    #[command(flatten)]
    pub distance: LatencyArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}
