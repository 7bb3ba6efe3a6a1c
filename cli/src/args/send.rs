//! The arguments of `apns send`: the shared groups (target, headers,
//! payload, tokens, output, checking) and the bulk-sending flags of its own.

use std::path::PathBuf;

use clap::Args;

use super::checking::CheckingArgs;
use super::connections::{ConcurrencyArgs, ConnectionsArgs};
use super::headers::HeaderArgs;
use super::metrics_listen::MetricsArgs;
use super::output::OutputArgs;
use super::payload::PayloadArgs;
use super::target::TargetArgs;
use super::tokens::TokensArgs;

#[derive(Debug, Args)]
pub struct SendArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Connect to ADDR for HOST:PORT instead of resolving it, like curl's --resolve
    /// (e.g. api.development.push.apple.com:443:127.0.0.1:8443); TLS still checks HOST.
    #[arg(long, value_name = "HOST:PORT:ADDR")]
    pub resolve: Option<String>,

    #[command(flatten)]
    pub headers: HeaderArgs,
    #[command(flatten)]
    pub payload: PayloadArgs,
    #[command(flatten)]
    pub output: OutputArgs,

    #[command(flatten)]
    pub tokens: TokensArgs,
    /// Write one JSON result line per notification to PATH, as they complete (flushed at least
    /// every second). Never the tokens file: that is refused before anything is read.
    #[arg(long, value_name = "PATH", help_heading = "Bulk sending")]
    pub results: Option<PathBuf>,
    /// Write the tokens APNs reports unregistered (410), one per line: the ones to prune.
    #[arg(long, value_name = "PATH", help_heading = "Bulk sending")]
    pub unregistered_out: Option<PathBuf>,
    #[command(flatten, next_help_heading = "Bulk sending")]
    pub in_flight: ConcurrencyArgs,
    #[command(flatten)]
    pub pool: ConnectionsArgs,
    /// Finish an interrupted bulk send: read the --results file of that run, skip every line it
    /// finished (accepted, or rejected for good: Unregistered, BadDeviceToken, a bad payload...),
    /// send the rest and append their result lines (the --unregistered-out file is appended to as
    /// well). Lines that may have been delivered are skipped unless --resend-unknown is given. Needs
    /// the same --tokens-file and --results.
    #[arg(long, help_heading = "Bulk sending")]
    pub resume: bool,
    /// At-least-once delivery: also resend, with the same apns-id, notifications that may have been
    /// delivered (their connection died while they were on the wire), and with --resume the lines
    /// whose result says may_have_been_delivered. The cost: a device may show such a notification
    /// twice; give a --collapse-id so that a second copy replaces the first.
    #[arg(long, help_heading = "Bulk sending")]
    pub resend_unknown: bool,
    #[command(flatten)]
    pub metrics: MetricsArgs,
    #[command(flatten)]
    pub checking: CheckingArgs,
}
