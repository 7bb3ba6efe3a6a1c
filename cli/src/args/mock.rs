//! The arguments of `apns mock`: the validating mock APNs server, its
//! fault injection and its long-running limits.

use std::path::PathBuf;

use clap::Args;

use super::listen::ListenArgs;
use super::{numbers, values, MAX_STREAMS};

/// `apns mock --token-updates`.
#[derive(Debug, Clone, Copy, clap::ValueEnum, PartialEq, Eq)]
pub enum TokenUpdates {
    /// A connection's token changes at most once per 20 minutes.
    PerConnection,
    /// A key's tokens change at most once per 20 minutes, across connections.
    PerKey,
}

/// `--latency`, for `apns mock` and the mock `apns bench` spawns.
#[derive(Debug, Args, Clone, Copy)]
pub struct LatencyArgs {
    /// Answer each request this much later, in every mode (--accept-all too): the distance to
    /// Apple (20-150 ms), e.g. 50ms, or 40ms..60ms for an even jitter. At most 60s.
    #[arg(long, value_name = "DELAY", help_heading = "Distance", value_parser = numbers::latency(std::time::Duration::from_secs(60)))]
    pub latency: Option<(std::time::Duration, std::time::Duration)>,
}

/// `--max-streams`, for `apns mock` and the mock `apns bench` spawns.
#[derive(Debug, Args, Clone, Copy)]
pub struct StreamsArgs {
    /// The stream limit a mock advertises per connection (after the first valid token).
    #[arg(long, default_value = "1000", value_name = "N", value_parser = numbers::count::<u32>(1, MAX_STREAMS))]
    pub max_streams: u32,
}

#[derive(Debug, Args)]
pub struct MockArgs {
    #[command(flatten)]
    pub socket: ListenArgs,
    /// Where to write the generated CA certificate (default: a file in the temp directory).
    #[arg(long, value_name = "PATH")]
    pub ca_out: Option<PathBuf>,
    /// Trust tokens from a key: KID=TEAM:PATH (PATH being the .p8 or a public-key PEM), with
    /// @sandbox or @production at the end for a key Apple limits to one environment; or the name
    /// of a stored key (`apns key list`), with its profile's environment and topics. Repeatable.
    #[arg(long, value_name = "KID=TEAM:PATH[@ENV]")]
    pub trust_key: Vec<String>,
    /// Limit a trusted key to these bundle ids (a topic-specific key): KID=BUNDLE[,BUNDLE...];
    /// other topics get 400 TopicDisallowed. Repeatable.
    #[arg(long, value_name = "KID=BUNDLES")]
    pub key_topics: Vec<String>,
    #[command(flatten)]
    pub streams: StreamsArgs,
    /// Answer 410 Unregistered for this device token; repeatable.
    #[arg(long, value_name = "TOKEN")]
    pub unregistered: Vec<String>,
    /// Which environment to play (sandbox also sends apns-unique-id).
    #[arg(
        long = "env",
        default_value = "sandbox",
        value_name = "ENV",
        value_parser = values::environment()
    )]
    pub environment: apns_provider::Environment,
    /// Refuse tokens APNs tolerates (padded base64, DER signatures, "Bearer").
    #[arg(long)]
    pub strict_tokens: bool,
    /// Where Apple's 20-minute token rule applies: per-connection, or per-key (across every
    /// connection, as Apple seems to enforce it: a fleet whose processes mint their own tokens gets
    /// 429 TooManyProviderTokenUpdates).
    #[arg(
        long,
        value_enum,
        default_value = "per-connection",
        value_name = "SCOPE"
    )]
    pub token_updates: TokenUpdates,
    /// Add a DNS name to the mock's server certificate (e.g. api.sandbox.push.apple.com); repeatable.
    #[arg(long, value_name = "NAME")]
    pub server_name: Vec<String>,
    /// Certificate mode: accept client certificates signed by this CA; topics come from them.
    #[arg(long, value_name = "CA.pem")]
    pub client_ca: Option<PathBuf>,
    /// Refuse a certificate for the other environment with a GOAWAY instead of a 403.
    #[arg(long, requires = "client_ca")]
    pub bad_env_goaway: bool,
    /// Benchmark mode: answer every request 200 at once, without validation or recording.
    #[arg(long)]
    pub accept_all: bool,
    /// Broadcast channels allowed per app before a create gets CannotCreateChannelConfig (Apple: 10000).
    #[arg(long, default_value = "10000", value_name = "N", value_parser = numbers::count::<usize>(1, 1_000_000))]
    pub max_channels: usize,

    /// Fault: after a connection answers N requests, send GOAWAY (once).
    #[arg(long, value_name = "N", help_heading = "Fault injection", value_parser = numbers::count::<u64>(0, 1_000_000_000))]
    pub goaway_after: Option<u64>,
    /// The reason in the GOAWAY's JSON debug data.
    #[arg(
        long,
        value_name = "REASON",
        default_value = "Shutdown",
        help_heading = "Fault injection"
    )]
    pub goaway_reason: String,
    /// Fault: reset the next K streams with REFUSED_STREAM.
    #[arg(long, value_name = "K", help_heading = "Fault injection", value_parser = numbers::count::<u64>(0, 1_000_000_000))]
    pub refuse_streams: Option<u64>,
    /// Fault: after N requests, close the TCP connection of the next one mid-flight (once).
    #[arg(long, value_name = "N", help_heading = "Fault injection", value_parser = numbers::count::<u64>(0, 1_000_000_000))]
    pub drop_after: Option<u64>,
    /// Fault: read requests and never answer them.
    #[arg(long, help_heading = "Fault injection")]
    pub black_hole: bool,
    /// Fault: never answer PINGs.
    #[arg(long, help_heading = "Fault injection")]
    pub ignore_pings: bool,
    /// Fault: accept TCP connections and never finish the TLS handshake.
    #[arg(long, help_heading = "Fault injection")]
    pub stall_tls: bool,
    /// Fault: answer the next K requests with an error: STATUS:K (500, 503, 429) or REASON:K (e.g. Shutdown:10).
    #[arg(long, value_name = "STATUS:K", help_heading = "Fault injection")]
    pub storm: Vec<String>,
    /// Fault: drop a connection's stream limit to 1 after any rejection.
    #[arg(long, help_heading = "Fault injection")]
    pub limit_drop_on_reject: bool,
    /// Fault: answer every request 403 ExpiredProviderToken.
    #[arg(long, help_heading = "Fault injection")]
    pub expire_tokens: bool,
    /// Fault: a timed outage: answer every request 503 ServiceUnavailable for the first SECS seconds.
    #[arg(long, value_name = "SECS", help_heading = "Fault injection", value_parser = numbers::seconds(false, numbers::DAY))]
    pub outage: Option<f64>,

    #[command(flatten)]
    pub distance: LatencyArgs,

    /// Threads serving connections (default: one per core; 1 runs everything on one thread).
    #[arg(long, default_value = "0", value_name = "N", hide_default_value = true, value_parser = numbers::count::<usize>(0, 1024))]
    pub threads: usize,

    /// Keep the last N accepted notifications in memory (counters count them all).
    #[arg(
        long,
        default_value = "10000",
        value_name = "N",
        help_heading = "Long-running",
        value_parser = numbers::count::<usize>(0, 10_000_000)
    )]
    pub keep: usize,
    /// Close clients that do not finish TLS and send the HTTP/2 preface (or a whole request)
    /// within SECS seconds.
    #[arg(
        long,
        default_value = "10",
        value_name = "SECS",
        help_heading = "Long-running",
        value_parser = numbers::seconds(false, numbers::DAY)
    )]
    pub handshake_timeout: f64,
}
