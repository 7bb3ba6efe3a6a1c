//! [`App`]: what the gateway and the worker send for, one shape for both
//! (features `gateway`, `worker`).
//!
//! An app is a [`Client`] (credentials, environment, pool) and the
//! [`SpecDefaults`] its notifications start from (usually just its topic,
//! the bundle id). Its name is not part of it: it is the key the app is
//! known by, given where it is used (`GatewayBuilder::app` takes a name
//! and an app; a worker's `AppResolver` turns a job's name into one).
//!
//! ```no_run
//! # fn client() -> apns_provider::Client { unimplemented!() }
//! # fn main() -> apns_provider::Result<()> {
//! use apns_provider::app::App;
//! use apns_provider::wire::SpecDefaults;
//! let app = App::new(client()).with_defaults(SpecDefaults::builder().topic("com.example.app").build()?);
//! assert_eq!(app.defaults().default_topic(), Some("com.example.app"));
//! # Ok(()) }
//! ```

use std::fmt;
use std::sync::Arc;

use crate::client::Client;
use crate::wire::SpecDefaults;

/// A client and the defaults its notifications start from; cheap to clone
/// (the client's clones share its connections). See the [module](self)
/// docs.
#[derive(Clone)]
pub struct App {
    client: Client,
    defaults: Arc<SpecDefaults>,
}

impl App {
    /// An app sending with `client`, with no defaults.
    pub fn new(client: Client) -> App {
        App {
            client,
            defaults: Arc::new(SpecDefaults::default()),
        }
    }

    /// The defaults a notification's missing fields are taken from (such
    /// as the topic), checked when [`SpecDefaults::builder`] built them.
    pub fn with_defaults(mut self, defaults: SpecDefaults) -> App {
        self.defaults = Arc::new(defaults);
        self
    }

    /// The client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The defaults.
    pub fn defaults(&self) -> &SpecDefaults {
        &self.defaults
    }
}

impl fmt::Debug for App {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("App")
            .field("client", &self.client)
            .field("topic", &self.defaults.default_topic())
            .finish()
    }
}
