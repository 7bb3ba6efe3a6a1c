//! `--connections`: how many HTTP/2 connections to APNs a client opens,
//! the same flag for `send`, `worker`, `serve` and `bench`.

use clap::Args;

use super::{numbers, MAX_CONNECTIONS};

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
