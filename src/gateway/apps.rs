//! The apps a gateway serves: each [`App`] with its readiness record and
//! metrics, and the table requests pick them from.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use super::ready;
use crate::client::Client;
use crate::metrics::AppMetrics;
use crate::wire::SpecDefaults;

/// One app the gateway sends for: its client (credentials, environment,
/// pool) and the defaults its notifications start from.
pub struct App {
    pub(super) name: String,
    pub(super) client: Client,
    defaults: SpecDefaults,
    pub(super) metrics: Option<AppMetrics>,
    pub(super) recent: ready::RecentOutcomes,
}

impl fmt::Debug for App {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("App")
            .field("name", &self.name)
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

impl App {
    /// An app sending with `client`, from `defaults` (a default topic,
    /// typically; [`SpecDefaults::prepare`] it first).
    pub fn new(client: Client, defaults: SpecDefaults) -> Self {
        App {
            name: String::new(),
            client,
            defaults,
            metrics: None,
            recent: ready::RecentOutcomes::default(),
        }
    }

    /// Its name (the `app` of requests).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Its defaults.
    pub fn defaults(&self) -> &SpecDefaults {
        &self.defaults
    }

    /// Where its outcomes are recorded.
    pub fn metrics(&self) -> Option<&AppMetrics> {
        self.metrics.as_ref()
    }

    /// Takes one finished send into account for `/readyz`: a dispatcher
    /// that sends calls it with each result ([`SendNow`](super::SendNow) does). The app is
    /// not ready when, within the last minute, its last 3 sends in a row
    /// ended without an answer from APNs, or APNs refused the credentials
    /// of the last 2 (`InvalidProviderToken`, `ExpiredProviderToken`,
    /// `BadCertificate`...); any other answer ends both streaks, and a
    /// streak is forgotten a minute after its last send.
    pub fn record_outcome(&self, result: &crate::Result<crate::Response>) {
        self.recent.record(result);
    }
}

/// The apps a gateway serves, and the one used when an item names none.
#[derive(Debug, Clone)]
pub struct Apps {
    pub(crate) map: BTreeMap<String, Arc<App>>,
    pub(crate) default: Option<String>,
}

impl Apps {
    pub(crate) fn pick(&self, named: Option<&str>) -> Result<&Arc<App>, String> {
        let names = || self.map.keys().cloned().collect::<Vec<_>>().join(", ");
        match named {
            Some(name) => self
                .map
                .get(name)
                .ok_or_else(|| format!("unknown app {name:?}; this gateway serves {}", names())),
            None => match &self.default {
                Some(d) => self
                    .map
                    .get(d)
                    .ok_or_else(|| format!("the default app {d:?} is not configured")),
                None if self.map.len() == 1 => {
                    self.map.values().next().ok_or_else(|| "no app".into())
                }
                None => Err(format!(
                    "missing: name one of the apps this gateway serves ({})",
                    names()
                )),
            },
        }
    }
}
