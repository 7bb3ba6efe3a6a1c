//! The `apns-*` request headers as flags: the topic, the push type,
//! priority and expiration, the collapse id and the apns-id, declared once
//! for `send`, `enqueue`, `broadcast` and the commands that take a default
//! topic; and the defaults they make for every notification of a run.

use apns_provider::wire::SpecDefaults;
use apns_provider::{ApnsId, Expiration, Payload, Priority, PushType};
use clap::Args;

use super::values;
use crate::failure::Failure;

/// `--topic` (or APNS_TOPIC).
#[derive(Debug, Args, Clone, Default)]
pub struct TopicArgs {
    /// apns-topic: the app's bundle id, plus the push type's suffix (e.g. com.example.app.voip).
    /// Default: the profile's topic, else the certificate's only topic.
    #[arg(long, env = "APNS_TOPIC", value_name = "TOPIC")]
    pub topic: Option<String>,
}

/// `--priority` and `--expiration`: when APNs delivers, and how long it
/// keeps trying.
#[derive(Debug, Args, Clone, Default)]
pub struct TimingArgs {
    /// apns-priority: 10 (immediate; APNs' default), 5 (power-aware, required for background)
    /// or 1.
    #[arg(long, value_name = "10|5|1")]
    pub priority: Option<String>,
    /// apns-expiration: 0 (do not store), UNIX seconds, or +DURATION from now such as +1h. A
    /// broadcast's default is 0, and only channels created with --storage most-recent take a
    /// later time (others: BadExpirationDate).
    #[arg(long, value_name = "E", allow_hyphen_values = true)]
    pub expiration: Option<String>,
}

impl TimingArgs {
    /// `--priority`, checked.
    pub fn priority(&self) -> Result<Option<Priority>, Failure> {
        Ok(self.priority.as_deref().map(str::parse).transpose()?)
    }

    /// `--expiration`, checked (a relative time counts from now).
    pub fn expiration(&self) -> Result<Option<Expiration>, Failure> {
        Ok(self.expiration.as_deref().map(str::parse).transpose()?)
    }
}

/// Every header flag of a notification to a device.
#[derive(Debug, Args, Clone)]
pub struct HeaderArgs {
    #[command(flatten)]
    pub topic: TopicArgs,
    /// apns-push-type (a topic suffix goes with some: .voip, .complication, .pushkit.fileprovider,
    /// .push-type.liveactivity...).
    #[arg(long, default_value = "alert", value_name = "TYPE", value_parser = values::push_type())]
    pub push_type: PushType,
    #[command(flatten)]
    pub timing: TimingArgs,
    /// apns-collapse-id (at most 64 bytes): a later notification with the same id replaces an
    /// earlier one on the device.
    #[arg(long, value_name = "ID")]
    pub collapse_id: Option<String>,
    /// apns-id (a UUID) for every notification; by default APNs makes one (`apns enqueue`: each
    /// job's own id).
    #[arg(long, value_name = "UUID")]
    pub apns_id: Option<String>,
}

impl HeaderArgs {
    /// The defaults of every notification of a run, built (and so
    /// checked): these flags, the topic falling back to `fallback_topic` (a
    /// profile's or a certificate's), and `payload` (none: each line of a
    /// tokens file brings its own).
    pub fn defaults(
        &self,
        fallback_topic: Option<String>,
        payload: Option<Payload>,
    ) -> Result<SpecDefaults, Failure> {
        let mut d = SpecDefaults::builder().push_type(self.push_type);
        if let Some(t) = self.topic.topic.clone().or(fallback_topic) {
            d = d.topic(t);
        }
        if let Some(p) = self.timing.priority()? {
            d = d.priority(p);
        }
        if let Some(e) = self.timing.expiration()? {
            d = d.expiration(e);
        }
        if let Some(c) = &self.collapse_id {
            d = d.collapse_id(c);
        }
        if let Some(id) = &self.apns_id {
            d = d.apns_id(ApnsId::parse(id)?);
        }
        if let Some(p) = payload {
            d = d.payload(p);
        }
        Ok(d.build()?)
    }

    /// The warning for an `--apns-id` that every one of `count` (or a
    /// file's) notifications would carry.
    pub fn reused_id_warning(&self, many: bool, what: &str) -> Option<String> {
        (self.apns_id.is_some() && many).then(|| {
            format!("apns: warning: --apns-id is reused for every {what}; APNs and your logs will see one id for all of them")
        })
    }
}
