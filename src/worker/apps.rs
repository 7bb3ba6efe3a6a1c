//! Which app sends a job: the [`AppResolver`] that names them, and the
//! cache of what it answered.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::app::App;
use crate::error::{Error, Result};

/// Turns a job's `app` (a name, or `None` for a job without one) into the
/// [`App`] that sends it.
///
/// Called once per name, on a blocking thread (it may read a keychain or
/// files), and kept for the life of the worker; a failure is kept for 10
/// seconds, and the jobs naming that app meanwhile go to the dead letter
/// with the error. Give apps that share a team, key and environment the
/// same [`Client`](crate::Client) (clones share connections): a connection must never
/// carry two teams' tokens, and APNs prefers few connections.
///
/// A closure `Fn(Option<&str>) -> Result<App>` is a resolver.
pub trait AppResolver: Send + Sync + 'static {
    /// The app named `app`.
    fn resolve(&self, app: Option<&str>) -> Result<App>;
}

impl<F> AppResolver for F
where
    F: Fn(Option<&str>) -> Result<App> + Send + Sync + 'static,
{
    fn resolve(&self, app: Option<&str>) -> Result<App> {
        self(app)
    }
}

/// How long an app that could not be resolved is remembered as such.
const FAILED_APP_TTL: Duration = Duration::from_secs(10);

/// An app resolved, or why it could not be (and when that was found).
type Resolved = std::result::Result<App, (String, Instant)>;

/// Apps resolved so far, by name.
pub(super) struct AppCache {
    resolver: Arc<dyn AppResolver>,
    apps: Mutex<HashMap<Option<String>, Resolved>>,
    // One resolution at a time: they are rare, and may prompt or read files.
    resolving: tokio::sync::Mutex<()>,
}

impl AppCache {
    pub(super) fn new(resolver: Arc<dyn AppResolver>) -> AppCache {
        AppCache {
            resolver,
            apps: Mutex::new(HashMap::new()),
            resolving: tokio::sync::Mutex::new(()),
        }
    }

    fn lookup(&self, app: Option<&str>) -> Option<std::result::Result<App, String>> {
        let apps = self.apps.lock().unwrap_or_else(|p| p.into_inner());
        match apps.get(&app.map(str::to_string))? {
            Ok(a) => Some(Ok(a.clone())),
            Err((e, at)) if at.elapsed() < FAILED_APP_TTL => Some(Err(e.clone())),
            Err(_) => None,
        }
    }

    pub(super) async fn get(&self, app: Option<&str>) -> std::result::Result<App, String> {
        if let Some(found) = self.lookup(app) {
            return found;
        }
        let _one = self.resolving.lock().await;
        if let Some(found) = self.lookup(app) {
            return found;
        }
        let resolver = self.resolver.clone();
        let name = app.map(str::to_string);
        let resolved = tokio::task::spawn_blocking(move || resolver.resolve(name.as_deref()))
            .await
            .unwrap_or_else(|e| Err(Error::Config(format!("the app resolver failed: {e}"))))
            .map_err(|e| e.to_string());
        let mut apps = self.apps.lock().unwrap_or_else(|p| p.into_inner());
        apps.insert(
            app.map(str::to_string),
            resolved.clone().map_err(|e| (e, Instant::now())),
        );
        resolved
    }

    /// The clients of the apps resolved so far.
    pub(super) fn clients(&self) -> Vec<crate::Client> {
        let apps = self.apps.lock().unwrap_or_else(|p| p.into_inner());
        apps.values()
            .filter_map(|a| a.as_ref().ok().map(|a| a.client().clone()))
            .collect()
    }
}
