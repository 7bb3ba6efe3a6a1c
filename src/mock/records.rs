//! What the mock remembers of accepted notifications: a total count, and
//! the last N records (so memory stays bounded however long it runs).

use std::collections::VecDeque;

use bytes::Bytes;

/// How many accepted notifications a mock keeps by default.
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

/// The last `keep` records, oldest first.
#[derive(Debug)]
pub(crate) struct Records {
    keep: usize,
    items: VecDeque<AcceptedNotification>,
}

impl Records {
    pub(crate) fn new(keep: usize) -> Self {
        Records {
            keep,
            items: VecDeque::with_capacity(keep.min(1024)),
        }
    }

    pub(crate) fn push(&mut self, record: AcceptedNotification) {
        if self.keep == 0 {
            return;
        }
        if self.items.len() == self.keep {
            self.items.pop_front();
        }
        self.items.push_back(record);
    }

    pub(crate) fn to_vec(&self) -> Vec<AcceptedNotification> {
        self.items.iter().cloned().collect()
    }

    pub(crate) fn clear(&mut self) {
        self.items.clear();
    }
}
