//! How much a client sends at once: `--connections` (HTTP/2 connections
//! to APNs, for `send`, `worker`, `serve` and `bench`) and `--concurrency`
//! (work in flight, for `send`, `worker` and `bench`).

use clap::Args;

use super::{numbers, MAX_CONCURRENCY, MAX_CONNECTIONS};

/// The size of a client's pool of connections.
#[derive(Debug, Args, Clone, Copy)]
pub struct ConnectionsArgs {
    /// HTTP/2 connections to APNs (per app for `worker` and `serve`), at most 64: each carries up
    /// to the server's stream limit (1000 at Apple).
    #[arg(
        long,
        default_value = "1",
        value_name = "N",
        value_parser = numbers::count::<usize>(1, MAX_CONNECTIONS)
    )]
    pub connections: usize,
}

/// How much work is in flight at once. `apns worker` counts jobs (read,
/// being sent, or result being written) and defaults to more, see
/// [`WORKER_CONCURRENCY`].
#[derive(Debug, Args, Clone, Copy)]
pub struct ConcurrencyArgs {
    /// Notifications in flight at once (1 to 100000).
    #[arg(
        long,
        default_value = "500",
        value_name = "N",
        value_parser = numbers::count::<usize>(1, MAX_CONCURRENCY)
    )]
    pub concurrency: usize,
}

/// `apns worker`'s `--concurrency` default: a job also waits on Redis, for
/// its read and its result, so more are kept in flight than `send` keeps.
pub const WORKER_CONCURRENCY: &str = "1000";
