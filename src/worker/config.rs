//! A worker's settings: [`Delivery`] (public) and `Config` (what the
//! builder checked), read by every task.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::error::{Error, Result};

/// What happens to a job whose earlier delivery may have reached APNs (its
/// worker died, or its connection dropped, while it was on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Delivery {
    /// Send it again, with the same `apns-id`: nothing is lost, and a
    /// device may show it twice (give such notifications a collapse id).
    /// Build the clients with
    /// [`RetryPolicy::with_resend_unknown`](crate::RetryPolicy::with_resend_unknown)
    /// so that they resend such notifications themselves too.
    #[default]
    AtLeastOnce,
    /// Never send it twice: write a result with `may_have_been_delivered:
    /// true` instead.
    AtMostOnce,
}

impl Delivery {
    /// `at-least-once` or `at-most-once`.
    pub fn as_str(self) -> &'static str {
        match self {
            Delivery::AtLeastOnce => "at-least-once",
            Delivery::AtMostOnce => "at-most-once",
        }
    }
}

impl FromStr for Delivery {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "at-least-once" => Ok(Delivery::AtLeastOnce),
            "at-most-once" => Ok(Delivery::AtMostOnce),
            _ => Err(Error::invalid(
                "delivery",
                format!("{s:?}: expected at-least-once or at-most-once"),
            )),
        }
    }
}

impl fmt::Display for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The settings of a worker.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub stream: String,
    pub group: String,
    pub consumer: String,
    pub results_stream: String,
    pub dead_letter: String,
    pub concurrency: usize,
    pub claim_idle: Duration,
    pub claim_every: Duration,
    pub max_deliveries: u64,
    pub delivery: Delivery,
    pub marker_ttl: Duration,
    pub block: Duration,
    pub delete_acked: bool,
    pub results_maxlen: Option<u64>,
}

impl Config {
    /// The key of the marker of entry `id`.
    pub fn marker_key(&self, id: &str) -> String {
        format!("{}:attempt:{id}", self.stream)
    }
}
