//! The apps a gateway serves: each [`App`] as a [`ServedApp`] (with its
//! name, metrics and readiness record), and the table requests pick them
//! from.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use super::ready;
use crate::app::App;
use crate::client::Client;
use crate::metrics::AppMetrics;
use crate::wire::SpecDefaults;

/// An [`App`] as the gateway serves it: with its name (what requests
/// give as `app`), where its outcomes are counted, and what readiness
/// learned from its recent sends. [`GatewayBuilder::app`](super::GatewayBuilder::app)
/// makes one; dispatchers get it with each [`Item`](super::Item).
pub struct ServedApp {
    name: String,
    app: App,
    metrics: Option<AppMetrics>,
    pub(super) recent: ready::RecentOutcomes,
}

impl fmt::Debug for ServedApp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServedApp")
            .field("name", &self.name)
            .field("client", self.client())
            .finish_non_exhaustive()
    }
}

impl ServedApp {
    /// `app`, served as `name`, its outcomes counted in `metrics`.
    pub(super) fn new(name: String, app: App, metrics: Option<AppMetrics>) -> Self {
        ServedApp {
            name,
            app,
            metrics,
            recent: ready::RecentOutcomes::default(),
        }
    }

    /// Its name (the `app` of requests).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The app: its client and defaults.
    pub fn app(&self) -> &App {
        &self.app
    }

    /// Its client.
    pub fn client(&self) -> &Client {
        self.app.client()
    }

    /// Its defaults.
    pub fn defaults(&self) -> &SpecDefaults {
        self.app.defaults()
    }

    /// Where its outcomes are recorded.
    pub fn metrics(&self) -> Option<&AppMetrics> {
        self.metrics.as_ref()
    }

    /// Takes one finished send into account for `/readyz`: a dispatcher
    /// that sends calls it with each result ([`SendNow`](super::SendNow)
    /// does). The app is not ready when, within the last minute, its last
    /// 3 sends in a row ended without an answer from APNs, or APNs refused
    /// the credentials of the last 2 (`InvalidProviderToken`,
    /// `ExpiredProviderToken`, `BadCertificate`...); any other answer ends
    /// both streaks, and a streak is forgotten a minute after its last
    /// send.
    pub fn record_outcome(&self, result: &crate::Result<crate::Response>) {
        self.recent.record(result);
    }
}

/// The apps a gateway serves, and the one used when an item names none.
#[derive(Debug, Clone)]
pub struct Apps {
    pub(crate) map: BTreeMap<String, Arc<ServedApp>>,
    pub(crate) default: Option<String>,
}

impl Apps {
    pub(crate) fn pick(&self, named: Option<&str>) -> Result<&Arc<ServedApp>, String> {
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
