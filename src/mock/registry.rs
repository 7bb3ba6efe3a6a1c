//! The channels the mock holds: a registry per app and environment. A
//! leaf: the shared state holds it; the channel-management and broadcast
//! handlers read it.

use std::collections::HashMap;

use base64::Engine;

use super::rejection::{reject, Rejection};
use crate::broadcast::{ChannelId, StoragePolicy};
use crate::notification::ApnsId;
use crate::response::Reason;
use crate::transport::Environment;

/// A channel the mock holds ([`MockServer::channels`](super::MockServer::channels)).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RegisteredChannel {
    /// The app's bundle id.
    pub bundle_id: String,
    /// The channel.
    pub channel_id: ChannelId,
    /// Its storage policy.
    pub storage_policy: StoragePolicy,
    /// The environment it lives in (channels are not shared between them).
    pub environment: Environment,
}

/// Every channel, per app and environment
/// (`docs/apns-facts.md`, "Broadcast": "channels are not shared between
/// development and production").
pub(crate) struct Registry {
    max_per_app: usize,
    apps: HashMap<(Environment, String), HashMap<String, Entry>>,
    // Creation order, for listing.
    next: u64,
}

struct Entry {
    policy: StoragePolicy,
    order: u64,
}

impl Registry {
    pub(crate) fn new(max_per_app: usize) -> Self {
        Registry {
            max_per_app,
            apps: HashMap::new(),
            next: 0,
        }
    }

    fn app(&self, env: Environment, bundle: &str) -> Option<&HashMap<String, Entry>> {
        self.apps.get(&(env, bundle.to_string()))
    }

    /// A new channel, or `CannotCreateChannelConfig` at the limit (at most
    /// 10,000 per app and environment by default, as Apple).
    pub(crate) fn create(
        &mut self,
        env: Environment,
        bundle: &str,
        policy: StoragePolicy,
    ) -> Result<ChannelId, Rejection> {
        let max = self.max_per_app;
        let app = self.apps.entry((env, bundle.to_string())).or_default();
        if app.len() >= max {
            return Err(reject(Reason::CannotCreateChannelConfig));
        }
        let id = loop {
            match new_channel_id() {
                Some(id) if !app.contains_key(id.as_str()) => break id,
                _ => continue,
            }
        };
        self.next += 1;
        app.insert(
            id.as_str().to_string(),
            Entry {
                policy,
                order: self.next,
            },
        );
        Ok(id)
    }

    pub(crate) fn policy(
        &self,
        env: Environment,
        bundle: &str,
        id: &ChannelId,
    ) -> Option<StoragePolicy> {
        self.app(env, bundle)?.get(id.as_str()).map(|e| e.policy)
    }

    pub(crate) fn delete(&mut self, env: Environment, bundle: &str, id: &ChannelId) -> bool {
        self.apps
            .get_mut(&(env, bundle.to_string()))
            .is_some_and(|app| app.remove(id.as_str()).is_some())
    }

    pub(crate) fn list(&self, env: Environment, bundle: &str) -> Vec<&str> {
        let Some(app) = self.app(env, bundle) else {
            return Vec::new();
        };
        let mut ids: Vec<(&str, u64)> = app.iter().map(|(id, e)| (id.as_str(), e.order)).collect();
        ids.sort_by_key(|(_, order)| *order);
        ids.into_iter().map(|(id, _)| id).collect()
    }

    /// The storage policy of a registered channel, or `ChannelNotRegistered`
    /// (never created, deleted, or of the other environment).
    pub(crate) fn registered(
        &self,
        env: Environment,
        bundle: &str,
        id: &ChannelId,
    ) -> Result<StoragePolicy, Rejection> {
        self.policy(env, bundle, id)
            .ok_or_else(|| reject(Reason::ChannelNotRegistered))
    }

    pub(crate) fn all(&self) -> Vec<RegisteredChannel> {
        let mut all: Vec<(u64, RegisteredChannel)> = self
            .apps
            .iter()
            .flat_map(|((env, bundle), app)| {
                app.iter().filter_map(move |(id, e)| {
                    Some((
                        e.order,
                        RegisteredChannel {
                            bundle_id: bundle.clone(),
                            channel_id: ChannelId::new(id).ok()?,
                            storage_policy: e.policy,
                            environment: *env,
                        },
                    ))
                })
            })
            .collect();
        all.sort_by_key(|(order, _)| *order);
        all.into_iter().map(|(_, c)| c).collect()
    }
}

/// A fresh channel id: random bytes in standard base64. Its length varies
/// (16 to 24 bytes), so clients that assume one are caught.
fn new_channel_id() -> Option<ChannelId> {
    let mut bytes = ApnsId::new_v4().as_uuid().into_bytes().to_vec();
    bytes.extend_from_slice(&ApnsId::new_v4().as_uuid().into_bytes());
    let len = 16 + usize::from(bytes[0] % 9);
    bytes.truncate(len);
    // Standard base64 of 16 bytes or more: always a valid id.
    ChannelId::new(base64::engine::general_purpose::STANDARD.encode(&bytes)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_registry_keeps_apps_and_environments_apart_and_caps_them() {
        let mut r = Registry::new(2);
        let sandbox = Environment::Sandbox;
        let a = r
            .create(sandbox, "com.a", StoragePolicy::NoStorage)
            .ok()
            .unwrap();
        let b = r
            .create(sandbox, "com.a", StoragePolicy::MostRecentMessage)
            .ok()
            .unwrap();
        assert!(r
            .create(sandbox, "com.a", StoragePolicy::NoStorage)
            .is_err());
        assert!(r.create(sandbox, "com.b", StoragePolicy::NoStorage).is_ok());
        assert_eq!(r.policy(Environment::Production, "com.a", &a), None);
        assert_eq!(r.list(sandbox, "com.a"), vec![a.as_str(), b.as_str()]);
        assert!(r.delete(sandbox, "com.a", &a));
        assert!(!r.delete(sandbox, "com.a", &a), "deleted once");
        assert_eq!(r.policy(sandbox, "com.a", &a), None);
        assert!(r.create(sandbox, "com.a", StoragePolicy::NoStorage).is_ok());
        assert_eq!(r.all().len(), 3);
    }

    #[test]
    fn ids_are_base64_of_varying_length() {
        let lengths: std::collections::HashSet<usize> = (0..200)
            .map(|_| new_channel_id().unwrap().as_str().len())
            .collect();
        assert!(lengths.len() > 1, "{lengths:?}");
    }
}
