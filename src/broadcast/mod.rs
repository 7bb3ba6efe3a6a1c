//! Broadcast push (iOS 18 Live Activities): one notification to a
//! *channel* reaches every Live Activity subscribed to it.
//!
//! - Channels are managed on their own hosts
//!   ([`Endpoint::channels_for_environment`](crate::Endpoint::channels_for_environment))
//!   through [`Client::channels`](crate::Client::channels): create, read,
//!   delete, list.
//! - A [`Broadcast`] goes to the usual push hosts with
//!   [`Client::broadcast`](crate::Client::broadcast).
//!
//! ```no_run
//! use apns_provider::broadcast::{Broadcast, StoragePolicy};
//! use apns_provider::payload::LiveActivityEvent;
//! use apns_provider::{Client, Environment, Payload, SigningKey};
//!
//! # async fn run() -> apns_provider::Result<()> {
//! let client = Client::builder()
//!     .environment(Environment::Sandbox)
//!     .token_auth(SigningKey::from_file("AuthKey_ABCDE12345.p8")?, "ABCDE12345", "TEAM123456")
//!     .build()?;
//! let channel = client.channels().create("com.example.app", StoragePolicy::MostRecentMessage).await?;
//! let payload = Payload::builder()
//!     .event(LiveActivityEvent::Update)
//!     .timestamp(apns_provider::clock::now_unix_seconds())
//!     .content_state(serde_json::json!({"score": "2-1"}))
//!     .build();
//! let b = Broadcast::builder("com.example.app", channel.as_str(), payload).build()?;
//! let response = client.broadcast(&b).await?;
//! println!("{} {:?}", response.describe(), response.apns_request_id());
//! # Ok(()) }
//! ```
//!
//! | file | what it holds |
//! |---|---|
//! | `mod.rs` | [`ChannelId`], [`StoragePolicy`], [`ChannelInfo`] |
//! | `message.rs` | [`Broadcast`], its builder and lints |
//!
//! The rules come from Apple's "Sending channel management requests to
//! APNs" and "Sending broadcast push notification requests to APNs"
//! (`docs/apns-facts.md`, "Broadcast").

mod message;

use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;

use crate::error::{Error, Result};

pub use message::{Broadcast, BroadcastBuilder, BROADCAST_PAYLOAD_LIMIT};

/// The most channels Apple keeps per app in each environment
/// (`docs/apns-facts.md`, "Broadcast": at most 10,000 per app and
/// environment).
pub const MAX_CHANNELS_PER_APP: usize = 10_000;

/// The longest channel id accepted, in bytes. Apple's ids are short
/// base64 (about 24 characters for 16 bytes;
/// `docs/apns-facts.md`, "Channel management" says only
/// "don't assume its length"), so 256 leaves ten times the room while
/// keeping the `apns-channel-id` header far below the header-list limits
/// of HTTP/2 servers (a few KiB to 16 KiB; `apns mock` enforces 16 KiB):
/// an id past them would be refused by the server, on the connection
/// every push shares, instead of here.
pub const MAX_CHANNEL_ID_LEN: usize = 256;

/// The standard base64 alphabet, padded or not.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A broadcast channel id, as APNs returns it in `apns-channel-id`: base64
/// text of no fixed length (`docs/apns-facts.md`, "Channel management":
/// "base64; don't assume its length"). Kept exactly as given, since APNs
/// compares the text.
///
/// ```
/// # use apns_provider::broadcast::ChannelId;
/// let id = ChannelId::new("dHN0LXNyY2gtY2hubA==")?;
/// assert_eq!(id.as_str(), "dHN0LXNyY2gtY2hubA==");
/// assert!(ChannelId::new("not base64!").is_err());
/// # Ok::<(), apns_provider::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChannelId(String);

impl ChannelId {
    /// Validates a channel id: standard base64 (padding optional) that
    /// decodes to at least one byte, of at most [`MAX_CHANNEL_ID_LEN`]
    /// bytes (longer: [`Error::ChannelIdTooLong`]).
    pub fn new(id: impl AsRef<str>) -> Result<Self> {
        let id = id.as_ref();
        if id.len() > MAX_CHANNEL_ID_LEN {
            // Checked first: nothing of a huge id is decoded or copied.
            return Err(Error::ChannelIdTooLong {
                length: id.len(),
                limit: MAX_CHANNEL_ID_LEN,
            });
        }
        let bad = |why: &str| {
            Error::invalid("channel_id", format!("{why}; a channel id is the base64 text APNs returned when the channel was created, such as dHN0LXNyY2gtY2hubA=="))
        };
        if id.is_empty() {
            return Err(bad("empty"));
        }
        if !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
        {
            // Never echo the text: it may be anything, of any length.
            return Err(bad("not base64 (only A-Z, a-z, 0-9, +, / and = padding)"));
        }
        match BASE64.decode(id) {
            Ok(bytes) if !bytes.is_empty() => Ok(ChannelId(id.to_string())),
            Ok(_) => Err(bad("decodes to nothing")),
            Err(_) => Err(bad("not valid base64")),
        }
    }

    /// The id as text, exactly as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ChannelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for ChannelId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::new(s)
    }
}

impl serde::Serialize for ChannelId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// What APNs keeps of a channel's messages (`message-storage-policy`). It
/// cannot change after the channel is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StoragePolicy {
    /// `0`: nothing is stored; broadcasts must carry `apns-expiration: 0`
    /// (a later one gets `BadExpirationDate`).
    NoStorage,
    /// `1`: the most recent message is kept (up to about 8 hours) for
    /// devices that subscribe or come online later.
    MostRecentMessage,
}

impl StoragePolicy {
    /// The number APNs uses: 0 or 1.
    pub fn as_u8(self) -> u8 {
        match self {
            StoragePolicy::NoStorage => 0,
            StoragePolicy::MostRecentMessage => 1,
        }
    }

    /// The policy for APNs' number, if it is one.
    pub fn from_u8(n: u8) -> Option<Self> {
        match n {
            0 => Some(StoragePolicy::NoStorage),
            1 => Some(StoragePolicy::MostRecentMessage),
            _ => None,
        }
    }

    /// `none` or `most-recent`.
    pub fn as_str(self) -> &'static str {
        match self {
            StoragePolicy::NoStorage => "none",
            StoragePolicy::MostRecentMessage => "most-recent",
        }
    }
}

impl fmt::Display for StoragePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for StoragePolicy {
    /// As `none` or `most-recent`.
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl FromStr for StoragePolicy {
    type Err = Error;
    /// Parses `none` (or `0`) and `most-recent` (or `1`).
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "none" | "no-storage" | "0" => Ok(StoragePolicy::NoStorage),
            "most-recent" | "most-recent-message" | "1" => Ok(StoragePolicy::MostRecentMessage),
            _ => Err(Error::invalid(
                "storage_policy",
                format!("{s:?} is not a storage policy; expected none or most-recent"),
            )),
        }
    }
}

/// A channel as APNs describes it ([`Channels::get`](crate::client::Channels::get)).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChannelInfo {
    /// The channel.
    pub channel_id: ChannelId,
    /// Its `message-storage-policy`.
    pub storage_policy: StoragePolicy,
    /// Its `push-type` (`LiveActivity`).
    pub push_type: String,
}

/// An app's bundle id, checked as a topic and named as what it is.
pub(crate) fn bundle_id(id: impl AsRef<str>) -> Result<crate::notification::Topic> {
    crate::notification::Topic::new(id).map_err(|e| match e {
        Error::InvalidField { message, .. } => Error::InvalidField {
            field: "bundle_id",
            message,
        },
        other => other,
    })
}

/// The `push-type` of a channel, as Apple spells it in channel bodies.
pub(crate) const CHANNEL_PUSH_TYPE: &str = "LiveActivity";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_ids_are_base64_of_any_length_up_to_256_bytes() {
        for ok in [
            "dHN0LXNyY2gtY2hubA==",
            "dHN0LXNyY2gtY2hubA",
            "QQ==",
            "a+b/",
            &"QUJD".repeat(64),
        ] {
            assert_eq!(ChannelId::new(ok).unwrap().as_str(), ok);
        }
        for bad in [
            "",
            "====",
            "abc!",
            "a b",
            "dHN0LXNyY2gtY2hubA===",
            "A",
            "-_-_",
        ] {
            let e = ChannelId::new(bad).unwrap_err();
            assert!(e.is_invalid_input(), "{bad:?}: {e}");
        }
        let long = "A".repeat(MAX_CHANNEL_ID_LEN + 4);
        assert!(ChannelId::new(&long[..MAX_CHANNEL_ID_LEN]).is_ok());
        let e = ChannelId::new(&long).unwrap_err();
        assert!(
            matches!(
                e,
                Error::ChannelIdTooLong {
                    length: 260,
                    limit: 256
                }
            ) && e.is_invalid_input(),
            "{e:?}"
        );
        assert!(!e.to_string().contains("AAAA"), "never echoed: {e}");
        let e = ChannelId::new("secret!").unwrap_err().to_string();
        assert!(!e.contains("secret"), "never echoed: {e}");
    }

    #[test]
    fn storage_policies_round_trip() {
        for p in [StoragePolicy::NoStorage, StoragePolicy::MostRecentMessage] {
            assert_eq!(StoragePolicy::from_u8(p.as_u8()), Some(p));
            assert_eq!(p.as_str().parse::<StoragePolicy>().unwrap(), p);
        }
        assert_eq!(StoragePolicy::from_u8(2), None);
        assert!("sometimes".parse::<StoragePolicy>().is_err());
    }
}
