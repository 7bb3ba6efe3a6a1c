//! Where a server listens and when it closes an idle client: `--listen`
//! and `--idle-timeout`, declared once for `apns mock` and `apns serve`.
//! `serve` keeps its own defaults and help (set in `args.rs`).

use std::net::SocketAddr;

use clap::Args;

use super::numbers;

/// A server's socket and idle limit. The defaults are `apns mock`'s.
#[derive(Debug, Args, Clone, Copy)]
pub struct ListenArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:0", value_name = "ADDR")]
    pub listen: SocketAddr,
    /// Close connections without a request for SECS seconds (with a GOAWAY).
    #[arg(
        long,
        default_value = "300",
        value_name = "SECS",
        help_heading = "Long-running",
        value_parser = numbers::seconds(false, numbers::DAY)
    )]
    pub idle_timeout: f64,
}

/// `apns serve`'s `--listen` default: a fixed port a client can be told.
pub const SERVE_LISTEN: &str = "127.0.0.1:8080";
/// `apns serve`'s `--idle-timeout` default: HTTP clients reconnect cheaply,
/// so idle ones are let go sooner than the mock lets APNs clients go.
pub const SERVE_IDLE_TIMEOUT: &str = "60";
