//! `apns channel create|list|show|delete`: broadcast channel management,
//! and what `apns broadcast` shares with it (credentials, the client, how
//! a rejection is reported).

use std::time::Duration;

use apns_provider::{ChannelId, Client, Endpoint, Error, Reason, Response, StoragePolicy};
use serde_json::json;

use super::args::{AppArgs, ChannelArgs, ChannelCommand, Output};
use super::credentials::{Credentials, Resolved};
use super::failure::{exit, Failure};

pub async fn run(command: ChannelCommand) -> Result<u8, Failure> {
    match command {
        ChannelCommand::Create { args, storage } => {
            let storage: StoragePolicy = storage.parse()?;
            let app = connect(&args)?;
            let id = app.client.channels().create(&app.bundle_id, storage).await;
            app.finish(id, |id| match app.output {
                Output::Json => json!({"channel_id": id, "storage": storage}).to_string(),
                Output::Human => id.to_string(),
            })
        }
        ChannelCommand::List { args } => {
            let app = connect(&args)?;
            let ids = app.client.channels().list(&app.bundle_id).await;
            app.finish(ids, |ids| match app.output {
                Output::Json => json!({"bundle_id": app.bundle_id, "channels": ids}).to_string(),
                Output::Human => ids
                    .iter()
                    .map(ChannelId::as_str)
                    .collect::<Vec<_>>()
                    .join("\n"),
            })
        }
        ChannelCommand::Show { args, channel_id } => {
            let id = ChannelId::new(&channel_id)?;
            let app = connect(&args)?;
            let info = app.client.channels().get(&app.bundle_id, &id).await;
            app.finish(info, |info| match app.output {
                Output::Json => json!({
                    "channel_id": info.channel_id,
                    "storage": info.storage_policy,
                    "push_type": info.push_type,
                })
                .to_string(),
                Output::Human => format!(
                    "channel_id  {}\nstorage     {} (message-storage-policy {})\npush_type   {}",
                    info.channel_id,
                    info.storage_policy,
                    info.storage_policy.as_u8(),
                    info.push_type
                ),
            })
        }
        ChannelCommand::Delete { args, channel_id } => {
            let id = ChannelId::new(&channel_id)?;
            let app = connect(&args)?;
            let done = app.client.channels().delete(&app.bundle_id, &id).await;
            app.finish(done, |()| match app.output {
                Output::Json => json!({"channel_id": id, "deleted": true}).to_string(),
                Output::Human => format!("deleted {id}"),
            })
        }
    }
}

/// What `apns channel` and `apns broadcast` talk to APNs with: a client,
/// the bundle id whose channels they manage or broadcast to, and how to
/// print the answer. (Not the library's `App`: no defaults, one
/// invocation's output.)
pub struct ChannelClient {
    pub client: Client,
    pub bundle_id: String,
    pub output: Output,
}

impl ChannelClient {
    /// Prints the result of a channel request and picks the exit code: a
    /// rejection by APNs is exit 1 (with its reason and a hint), as for
    /// `apns send`.
    fn finish<T>(
        &self,
        result: apns_provider::Result<T>,
        show: impl FnOnce(T) -> String,
    ) -> Result<u8, Failure> {
        match result {
            Ok(value) => {
                let text = show(value);
                if !text.is_empty() {
                    println!("{text}");
                }
                Ok(exit::OK)
            }
            Err(Error::Rejected(answer)) => Ok(rejected(&answer, self.output)),
            Err(e) => Err(e.into()),
        }
    }
}

fn connect(args: &ChannelArgs) -> Result<ChannelClient, Failure> {
    let channels_endpoint = args
        .channels_endpoint
        .as_deref()
        .map(str::parse::<Endpoint>)
        .transpose()?;
    let (app, _) = channel_client(&args.app, channels_endpoint)?;
    Ok(app)
}

/// Resolves credentials as `apns send` does, picks the bundle id and
/// builds the client. Also returns what was resolved (for `--curl`).
pub fn channel_client(
    args: &AppArgs,
    channels_endpoint: Option<Endpoint>,
) -> Result<(ChannelClient, Resolved), Failure> {
    let target = &args.target;
    let resolved = target.resolve()?;
    let environment = target.environment_for(&resolved)?;
    // Without --endpoint, Apple's hosts; the library sends channel requests
    // to the management host of the same environment, or to --endpoint
    // itself when that is a mock or proxy.
    let certificate_bundle = match &resolved.credentials {
        Credentials::Certificate(cert) => {
            let info = cert.info();
            if let Some(w) = info.expiry_warning(
                std::time::SystemTime::now(),
                Duration::from_secs(30 * 86_400),
            ) {
                eprintln!("apns: warning: {w}");
            }
            info.bundle_id.clone()
        }
        Credentials::Token(_) => None,
    };
    let bundle_id = args
        .bundle_id
        .clone()
        .or_else(|| resolved.topic.clone())
        .or(certificate_bundle)
        .ok_or_else(|| {
            Failure::usage("--bundle-id is required: the app's bundle id, such as com.example.app")
        })?;
    let mut builder = target.client_builder(
        resolved.credentials.clone(),
        environment,
        target.timeout_or(30.0),
    )?;
    if let Some(channels) = channels_endpoint {
        builder = builder.channels_endpoint(channels);
    }
    let client = builder.build()?;
    let app = ChannelClient {
        client,
        bundle_id,
        output: args.output.output,
    };
    Ok((app, resolved))
}

/// Reports APNs' rejection of a channel request (on stdout as JSON, else
/// on stderr) and returns exit code 1.
fn rejected(answer: &Response, output: Output) -> u8 {
    match output {
        Output::Json => println!(
            "{}",
            json!({
                "status": answer.status(),
                "request_id": answer.apns_request_id(),
                "reason": answer.reason(),
            })
        ),
        Output::Human => {
            let hint = answer
                .reason()
                .and_then(hint)
                .map(|h| format!("; {h}"))
                .unwrap_or_default();
            eprintln!(
                "apns: rejected by APNs: {} (apns-request-id {}){hint}",
                answer.describe(),
                answer.apns_request_id().unwrap_or("-")
            );
        }
    }
    exit::REJECTED
}

/// What to do about a rejection of a channel request or a broadcast.
pub fn hint(reason: &Reason) -> Option<&'static str> {
    Some(match reason {
        Reason::ChannelNotRegistered => "the channel does not exist in this environment (deleted, never created, or created with the other --env); see `apns channel list`",
        Reason::BadExpirationDate => "a channel created with --storage none takes only --expiration 0 (the default)",
        Reason::CannotCreateChannelConfig => "the app has 10,000 channels in this environment: delete unused ones (`apns channel list`, `apns channel delete`)",
        Reason::MissingChannelId | Reason::BadChannelId => "pass the channel id exactly as `apns channel create` printed it",
        Reason::FeatureNotEnabled => "enable the Broadcast capability for this App ID (Apple Developer > Identifiers > Push Notifications)",
        Reason::InvalidPushType | Reason::MissingPushType => "channels and broadcasts are for Live Activities only (push type liveactivity)",
        Reason::TopicDisallowed => "pass the bare bundle id (no .push-type.liveactivity suffix), one the key or certificate may use",
        other => return super::report::reason_hint(other),
    })
}
