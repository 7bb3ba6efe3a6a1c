//! What the mock remembers of accepted notifications and broadcasts: a
//! total count, and the last N records of each (so memory stays bounded
//! however long it runs).

use std::collections::VecDeque;

use bytes::Bytes;

/// How many accepted notifications (and, separately, broadcasts) a mock
/// keeps by default.
pub const DEFAULT_KEEP: usize = 10_000;

/// A notification the mock accepted, for tests to assert on.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AcceptedNotification {
    /// The device token from the path.
    pub device_token: String,
    /// `apns-topic`.
    pub topic: String,
    /// `apns-push-type` (`alert` when absent).
    pub push_type: String,
    /// `apns-priority`, if sent.
    pub priority: Option<u8>,
    /// `apns-expiration`, if sent.
    pub expiration: Option<u64>,
    /// `apns-collapse-id`, if sent.
    pub collapse_id: Option<String>,
    /// The `apns-id` returned (echoed or generated).
    pub apns_id: String,
    /// The JSON body.
    pub payload: Bytes,
    /// The key id of the token that authorized it.
    pub key_id: String,
    /// The team id of that token.
    pub team_id: String,
    /// Which connection it came on (1, 2, ... in accept order).
    pub connection: u64,
    /// The client certificate's subject, in certificate mode (then
    /// `key_id` and `team_id` are empty).
    pub certificate_subject: Option<String>,
}

/// A broadcast the mock accepted (`POST /4/broadcasts/apps/<bundle id>`),
/// for tests to assert on.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AcceptedBroadcast {
    /// The bundle id from the path.
    pub bundle_id: String,
    /// `apns-channel-id`.
    pub channel_id: String,
    /// `apns-push-type` (always `liveactivity` once accepted).
    pub push_type: String,
    /// `apns-priority`.
    pub priority: u8,
    /// `apns-expiration`.
    pub expiration: u64,
    /// The `apns-request-id` returned (echoed or generated).
    pub request_id: String,
    /// The `apns-unique-id` returned.
    pub unique_id: String,
    /// The JSON body.
    pub payload: Bytes,
    /// The key id of the token that authorized it (empty with a certificate).
    pub key_id: String,
    /// The team id of that token (empty with a certificate).
    pub team_id: String,
    /// Which connection it came on (1, 2, ... in accept order).
    pub connection: u64,
    /// The client certificate's subject, in certificate mode.
    pub certificate_subject: Option<String>,
}

/// The last `keep` records, oldest first.
#[derive(Debug)]
pub(crate) struct Records<T> {
    keep: usize,
    items: VecDeque<T>,
}

impl<T: Clone> Records<T> {
    pub(crate) fn new(keep: usize) -> Self {
        Records {
            keep,
            items: VecDeque::with_capacity(keep.min(1024)),
        }
    }

    pub(crate) fn push(&mut self, record: T) {
        if self.keep == 0 {
            return;
        }
        if self.items.len() == self.keep {
            self.items.pop_front();
        }
        self.items.push_back(record);
    }

    pub(crate) fn to_vec(&self) -> Vec<T> {
        self.items.iter().cloned().collect()
    }

    pub(crate) fn clear(&mut self) {
        self.items.clear();
    }
}
