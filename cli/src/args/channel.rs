//! The arguments of `apns channel` (broadcast channel management) and
//! `apns broadcast` (one Live Activity push to a channel).

use clap::{Args, Subcommand};

use super::checking::CheckingArgs;
use super::headers::TimingArgs;
use super::help;
use super::numbers;
use super::output::OutputArgs;
use super::payload::{AlertTextArgs, WholePayloadArgs};
use super::target::TargetArgs;

/// Credentials and endpoint of `apns channel` and `apns broadcast`: as for `apns send`.
#[derive(Debug, Args)]
pub struct AppArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// The app's bare bundle id, without a push-type suffix (default: the profile's topic, else the
    /// certificate's bundle id).
    #[arg(long, value_name = "BUNDLE_ID")]
    pub bundle_id: Option<String>,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// Where channel-management requests go.
#[derive(Debug, Args)]
pub struct ChannelArgs {
    #[command(flatten)]
    pub app: AppArgs,
    /// The channel-management host (default: Apple's for --env, or --endpoint when given).
    #[arg(long, value_name = "URL")]
    pub channels_endpoint: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum ChannelCommand {
    /// Create a channel and print its id.
    #[command(
        after_help = help::CHANNEL_CREATE
    )]
    Create {
        #[command(flatten)]
        args: ChannelArgs,
        /// What APNs keeps for late subscribers: none (broadcasts must use --expiration 0), or the
        /// most recent message (up to about 8 hours). It cannot change later.
        #[arg(long, default_value = "none", value_name = "none|most-recent")]
        storage: String,
    },
    /// List the app's channels in this environment, one id per line.
    #[command(
        after_help = help::CHANNEL_LIST
    )]
    List {
        #[command(flatten)]
        args: ChannelArgs,
    },
    /// Show a channel: its storage policy and push type.
    #[command(
        after_help = help::CHANNEL_SHOW
    )]
    Show {
        #[command(flatten)]
        args: ChannelArgs,
        /// The channel id, as `apns channel create` printed it.
        #[arg(value_name = "CHANNEL_ID")]
        channel_id: String,
    },
    /// Delete a channel (irreversible: later broadcasts to it get ChannelNotRegistered).
    #[command(
        after_help = help::CHANNEL_DELETE
    )]
    Delete {
        #[command(flatten)]
        args: ChannelArgs,
        /// The channel id.
        #[arg(value_name = "CHANNEL_ID")]
        channel_id: String,
    },
}

#[derive(Debug, Args)]
pub struct BroadcastArgs {
    #[command(flatten)]
    pub app: AppArgs,
    /// The channel to broadcast to (apns-channel-id), as `apns channel create` printed it.
    #[arg(long, value_name = "ID")]
    pub channel_id: String,

    #[command(flatten, next_help_heading = "Payload")]
    pub whole: WholePayloadArgs,
    /// aps.event: update or end (start is a push-to-start notification to a device, not a broadcast).
    #[arg(
        long,
        value_name = "start|update|end",
        conflicts_with_all = ["payload", "payload_file"],
        help_heading = "Payload"
    )]
    pub event: Option<String>,
    /// aps.content-state: the Live Activity's dynamic data, as JSON.
    #[arg(
        long,
        value_name = "JSON",
        requires = "event",
        help_heading = "Payload"
    )]
    pub content_state: Option<String>,
    /// aps.stale-date: UNIX seconds, or +DURATION such as +15m.
    #[arg(long, value_name = "T", requires = "event", help_heading = "Payload")]
    pub stale_date: Option<String>,
    /// aps.dismissal-date (end events): UNIX seconds, or +DURATION such as +1h.
    #[arg(long, value_name = "T", requires = "event", help_heading = "Payload")]
    pub dismissal_date: Option<String>,
    /// aps.relevance-score, from 0.0 to 1.0.
    #[arg(
        long,
        value_name = "SCORE",
        requires = "event",
        help_heading = "Payload",
        value_parser = numbers::real(0.0, 1.0)
    )]
    pub relevance_score: Option<f64>,
    /// --alert, --title, --body: with --event (checked in `broadcast.rs`).
    #[command(flatten, next_help_heading = "Payload")]
    pub text: AlertTextArgs,

    #[command(flatten)]
    pub timing: TimingArgs,
    /// apns-request-id (a UUID); APNs makes one when omitted.
    #[arg(long, value_name = "UUID")]
    pub request_id: Option<String>,

    #[command(flatten)]
    pub checking: CheckingArgs,
}
