//! The channel-management host as the mock plays it: a registry of
//! channels per app and environment, and the answers to create, read,
//! delete and list (`docs/apns-facts.md`, "Channel management").

use std::collections::HashMap;

use base64::Engine;
use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};

use super::broadcast::{authorize_app, channel_id_of, Route};
use super::lock;
use super::server::{MockConn, State};
use super::validate::{reject, Rejection};
use crate::broadcast::{ChannelId, StoragePolicy, CHANNEL_PUSH_TYPE};
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

    fn policy(&self, env: Environment, bundle: &str, id: &ChannelId) -> Option<StoragePolicy> {
        self.app(env, bundle)?.get(id.as_str()).map(|e| e.policy)
    }

    fn delete(&mut self, env: Environment, bundle: &str, id: &ChannelId) -> bool {
        self.apps
            .get_mut(&(env, bundle.to_string()))
            .is_some_and(|app| app.remove(id.as_str()).is_some())
    }

    fn list(&self, env: Environment, bundle: &str) -> Vec<&str> {
        let Some(app) = self.app(env, bundle) else {
            return Vec::new();
        };
        let mut ids: Vec<(&str, u64)> = app.iter().map(|(id, e)| (id.as_str(), e.order)).collect();
        ids.sort_by_key(|(_, order)| *order);
        ids.into_iter().map(|(id, _)| id).collect()
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

/// The storage policy of a registered channel, or `ChannelNotRegistered`
/// (never created, deleted, or of the other environment).
pub(crate) fn policy_of(
    state: &State,
    bundle: &str,
    id: &ChannelId,
) -> Result<StoragePolicy, Rejection> {
    lock(&state.channels)
        .policy(state.environment, bundle, id)
        .ok_or_else(|| reject(Reason::ChannelNotRegistered))
}

/// A successful channel-management answer.
pub(crate) struct Managed {
    pub status: StatusCode,
    /// `apns-channel-id` of a new channel.
    pub channel_id: Option<String>,
    pub body: Bytes,
    /// What it did to the registry: +1 created, -1 deleted, 0 read.
    pub change: i8,
}

/// Answers a channel-management request on `route`
/// (`Route::Channel` or `Route::AllChannels`).
pub(crate) fn manage(
    method: &Method,
    route: Route<'_>,
    headers: &HeaderMap,
    body: &Bytes,
    state: &State,
    conn: &MockConn,
) -> Result<Managed, Rejection> {
    let (bundle, list) = match route {
        Route::Channel(b) => (b, false),
        Route::AllChannels(b) => (b, true),
        Route::Push | Route::Broadcast(_) => return Err(reject(Reason::BadPath)),
    };
    let allowed = match list {
        true => *method == Method::GET,
        false => [Method::POST, Method::GET, Method::DELETE].contains(method),
    };
    if !allowed {
        return Err(reject(Reason::MethodNotAllowed));
    }
    authorize_app(bundle, headers, &["apns-channel-id"], state, conn)?;
    let env = state.environment;
    let ok = |status, body: Bytes| Managed {
        status,
        channel_id: None,
        body,
        change: 0,
    };
    if list {
        let channels = lock(&state.channels)
            .list(env, bundle)
            .into_iter()
            .map(str::to_string)
            .collect::<Vec<_>>();
        let body = serde_json::json!({ "channels": channels }).to_string();
        return Ok(ok(StatusCode::OK, Bytes::from(body)));
    }
    if *method == Method::POST {
        let policy = create_request(body)?;
        let id = lock(&state.channels).create(env, bundle, policy)?;
        return Ok(Managed {
            status: StatusCode::CREATED,
            channel_id: Some(id.as_str().to_string()),
            body: Bytes::new(),
            change: 1,
        });
    }
    let id = channel_id_of(headers)?;
    if *method == Method::DELETE {
        if !lock(&state.channels).delete(env, bundle, &id) {
            return Err(reject(Reason::ChannelNotRegistered));
        }
        return Ok(Managed {
            change: -1,
            ..ok(StatusCode::NO_CONTENT, Bytes::new())
        });
    }
    let policy = policy_of(state, bundle, &id)?;
    let body = serde_json::json!({
        "message-storage-policy": policy.as_u8(),
        "push-type": CHANNEL_PUSH_TYPE,
    })
    .to_string();
    Ok(ok(StatusCode::OK, Bytes::from(body)))
}

/// The body of a create: `{"message-storage-policy": 0|1, "push-type":
/// "LiveActivity"}`. (unsure) Apple does not document each malformed
/// body's reason; the mock answers `BadRequestPayload` for a body that is
/// not a JSON object, `MissingPushType`/`InvalidPushType` for the push type
/// (channels are for Live Activities only), and `BadRequestParams` for the
/// policy.
fn create_request(body: &Bytes) -> Result<StoragePolicy, Rejection> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|_| reject(Reason::BadRequestPayload))?;
    let object = value
        .as_object()
        .ok_or_else(|| reject(Reason::BadRequestPayload))?;
    match object.get("push-type").map(|t| t.as_str()) {
        None => return Err(reject(Reason::MissingPushType)),
        Some(Some(t)) if t.eq_ignore_ascii_case(CHANNEL_PUSH_TYPE) => {}
        Some(_) => return Err(reject(Reason::InvalidPushType)),
    }
    object
        .get("message-storage-policy")
        .and_then(|p| p.as_u64())
        .and_then(|p| u8::try_from(p).ok())
        .and_then(StoragePolicy::from_u8)
        .ok_or_else(|| reject(Reason::BadRequestParams))
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

    #[test]
    fn create_bodies() {
        let body = |s: &str| Bytes::from(s.to_string());
        let reason = |s: &str| create_request(&body(s)).err().map(|r| r.reason);
        assert_eq!(
            create_request(&body(
                r#"{"message-storage-policy":1,"push-type":"LiveActivity"}"#
            ))
            .ok(),
            Some(StoragePolicy::MostRecentMessage)
        );
        assert_eq!(reason("[]"), Some(Reason::BadRequestPayload));
        assert_eq!(
            reason(r#"{"message-storage-policy":0}"#),
            Some(Reason::MissingPushType)
        );
        assert_eq!(
            reason(r#"{"message-storage-policy":0,"push-type":"Alert"}"#),
            Some(Reason::InvalidPushType)
        );
        assert_eq!(
            reason(r#"{"message-storage-policy":2,"push-type":"LiveActivity"}"#),
            Some(Reason::BadRequestParams)
        );
    }
}
