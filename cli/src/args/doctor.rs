//! The arguments of `apns doctor`: the shared target, a topic and a
//! device token for the test send.

use clap::Args;

use super::headers::TopicArgs;
use super::output::OutputArgs;
use super::target::TargetArgs;

#[derive(Debug, Args)]
pub struct DoctorArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Finish with one real send to this device token (needs the key and --topic).
    #[arg(long, value_name = "TOKEN")]
    pub device_token: Option<String>,
    // The topic of the test send.
    #[command(flatten)]
    pub topic: TopicArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}
