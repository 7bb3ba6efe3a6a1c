//! Broadcast push (iOS 18 Live Activities) on the client:
//! [`Client::broadcast`] on the push pool, and [`Channels`], channel
//! management on a pool of its own to the management host, opened at the
//! first channel request. Both go through the loop of `send`
//! (`attempt.rs`): the same deadline, retry policy, resends and typed
//! errors.

use std::fmt;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use http::header::HeaderName;
use rustls::ClientConfig;

use super::attempt::{ManageRequest, Outgoing};
use super::Client;
use crate::broadcast::{Broadcast, ChannelId, ChannelInfo, StoragePolicy, CHANNEL_PUSH_TYPE};
use crate::error::{Error, Result};
use crate::notification::{header_value, ApnsId};
use crate::response::Response;
use crate::transport::connection::Timeouts;
use crate::transport::pool::{Pool, PoolConfig};
use crate::transport::Endpoint;

/// The channel-management host and its pool, made at the first use: a
/// client that never manages channels never connects there.
pub(super) struct ChannelsPool {
    pub(super) endpoint: Endpoint,
    pub(super) authority: http::uri::Authority,
    tls: Arc<ClientConfig>,
    timeouts: Timeouts,
    config: PoolConfig,
    pool: OnceLock<Arc<Pool>>,
}

impl ChannelsPool {
    pub(super) fn new(
        endpoint: Endpoint,
        tls: Arc<ClientConfig>,
        timeouts: Timeouts,
        config: PoolConfig,
    ) -> Result<Self> {
        let authority = endpoint
            .authority()
            .parse()
            .map_err(|_| Error::Config(format!("invalid channels endpoint {endpoint}")))?;
        Ok(ChannelsPool {
            endpoint,
            authority,
            tls,
            timeouts,
            config,
            pool: OnceLock::new(),
        })
    }

    /// The pool, made now if this is the first channel request.
    pub(super) fn pool(&self) -> &Arc<Pool> {
        self.pool.get_or_init(|| {
            Arc::new(Pool::new(
                self.endpoint.clone(),
                self.tls.clone(),
                self.timeouts,
                self.config.clone(),
            ))
        })
    }

    /// The pool, if a channel request made it.
    pub(super) fn opened(&self) -> Option<&Arc<Pool>> {
        self.pool.get()
    }
}

impl Client {
    /// Sends one broadcast to a channel and returns APNs' answer, like
    /// [`send`](Client::send): `Ok` for any answer (accepted, or rejected
    /// with a [`Reason`](crate::Reason) such as `ChannelNotRegistered`),
    /// `Err` when none came before the deadline. Counted in
    /// [`stats`](Client::stats) as a notification.
    ///
    /// The answer carries [`Response::apns_request_id`] and
    /// [`Response::apns_unique_id`].
    pub async fn broadcast(&self, broadcast: &Broadcast) -> Result<Response> {
        let sent = AtomicBool::new(false);
        let work = self.attempt(Outgoing::Broadcast(broadcast), &sent);
        self.guarded(&sent, true, work).await
    }

    /// Channel management: create, read, delete and list broadcast
    /// channels, on the management host (see
    /// [`ClientBuilder::channels_endpoint`](crate::ClientBuilder::channels_endpoint))
    /// with this client's credentials, deadline and retry policy.
    pub fn channels(&self) -> Channels {
        Channels {
            client: self.clone(),
        }
    }

    /// Where channel-management requests go.
    pub fn channels_endpoint(&self) -> &Endpoint {
        &self.inner.channels.endpoint
    }
}

/// Broadcast channel management, from [`Client::channels`]: each call is
/// one request to the management host
/// (`docs/apns-facts.md`, "Channel management"),
/// under the client's deadline and retry policy. A rejection is
/// [`Error::Rejected`] with APNs' [`Response`] (its reason, and its
/// `apns-request-id`).
///
/// ```no_run
/// # use apns_provider::{Client, StoragePolicy};
/// # async fn run(client: Client) -> apns_provider::Result<()> {
/// let channels = client.channels();
/// let id = channels.create("com.example.app", StoragePolicy::NoStorage).await?;
/// assert!(channels.list("com.example.app").await?.contains(&id));
/// assert_eq!(channels.get("com.example.app", &id).await?.storage_policy, StoragePolicy::NoStorage);
/// channels.delete("com.example.app", &id).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Channels {
    client: Client,
}

impl fmt::Debug for Channels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Channels")
            .field("endpoint", self.client.channels_endpoint())
            .finish()
    }
}

impl Channels {
    /// Creates a channel for the app `bundle_id` (`POST
    /// /1/apps/<bundle>/channels`) and returns its id. APNs keeps at most
    /// 10,000 per app and environment; past that it answers
    /// `CannotCreateChannelConfig`.
    pub async fn create(&self, bundle_id: &str, policy: StoragePolicy) -> Result<ChannelId> {
        let body = serde_json::json!({
            "message-storage-policy": policy.as_u8(),
            "push-type": CHANNEL_PUSH_TYPE,
        });
        let answer = self
            .request(
                http::Method::POST,
                bundle_id,
                "channels",
                None,
                Bytes::from(body.to_string()),
            )
            .await?;
        let id = answer.apns_channel_id().ok_or_else(|| {
            Error::Protocol("APNs created a channel but sent no apns-channel-id".into())
        })?;
        ChannelId::new(id)
            .map_err(|_| Error::Protocol("APNs sent an apns-channel-id that is not base64".into()))
    }

    /// Reads a channel (`GET /1/apps/<bundle>/channels` with
    /// `apns-channel-id`).
    pub async fn get(&self, bundle_id: &str, channel_id: &ChannelId) -> Result<ChannelInfo> {
        #[derive(serde::Deserialize)]
        struct Body {
            #[serde(rename = "message-storage-policy")]
            policy: u8,
            #[serde(rename = "push-type", default)]
            push_type: Option<String>,
        }
        let answer = self
            .request(
                http::Method::GET,
                bundle_id,
                "channels",
                Some(channel_id),
                Bytes::new(),
            )
            .await?;
        let body: Body = serde_json::from_slice(answer.body()).map_err(|e| {
            Error::Protocol(format!(
                "APNs described the channel in an unexpected form: {e}"
            ))
        })?;
        let storage_policy = StoragePolicy::from_u8(body.policy).ok_or_else(|| {
            Error::Protocol(format!(
                "APNs described the channel with an unknown message-storage-policy {}",
                body.policy
            ))
        })?;
        Ok(ChannelInfo {
            channel_id: channel_id.clone(),
            storage_policy,
            push_type: body.push_type.unwrap_or_else(|| CHANNEL_PUSH_TYPE.into()),
        })
    }

    /// Deletes a channel (`DELETE /1/apps/<bundle>/channels`). Irreversible:
    /// its id is never reused, and broadcasts to it get
    /// `ChannelNotRegistered`.
    pub async fn delete(&self, bundle_id: &str, channel_id: &ChannelId) -> Result<()> {
        self.request(
            http::Method::DELETE,
            bundle_id,
            "channels",
            Some(channel_id),
            Bytes::new(),
        )
        .await
        .map(drop)
    }

    /// Lists the app's channels in this environment (`GET
    /// /1/apps/<bundle>/all-channels`).
    pub async fn list(&self, bundle_id: &str) -> Result<Vec<ChannelId>> {
        #[derive(serde::Deserialize)]
        struct Body {
            channels: Vec<String>,
        }
        let answer = self
            .request(
                http::Method::GET,
                bundle_id,
                "all-channels",
                None,
                Bytes::new(),
            )
            .await?;
        let body: Body = serde_json::from_slice(answer.body()).map_err(|e| {
            Error::Protocol(format!(
                "APNs listed the channels in an unexpected form: {e}"
            ))
        })?;
        body.channels
            .iter()
            .map(|id| {
                ChannelId::new(id).map_err(|_| {
                    Error::Protocol("APNs listed a channel id that is not base64".into())
                })
            })
            .collect()
    }

    /// One request: `/1/apps/<bundle>/<what>`, with a fresh
    /// `apns-request-id` (kept across retries, so APNs' logs show one
    /// request) and the channel id when there is one. Anything but a 2xx
    /// answer is [`Error::Rejected`].
    async fn request(
        &self,
        method: http::Method,
        bundle_id: &str,
        what: &str,
        channel_id: Option<&ChannelId>,
        body: Bytes,
    ) -> Result<Response> {
        let bundle_id = crate::broadcast::bundle_id(bundle_id)?;
        let path = http::uri::PathAndQuery::try_from(format!("/1/apps/{bundle_id}/{what}"))
            .map_err(|_| Error::invalid("bundle_id", "cannot be used in a request path"))?;
        let request_id = ApnsId::new_v4().to_string();
        let mut headers = vec![(
            HeaderName::from_static("apns-request-id"),
            header_value("request_id", &request_id)?,
        )];
        if let Some(id) = channel_id {
            headers.push((
                HeaderName::from_static("apns-channel-id"),
                header_value("channel_id", id.as_str())?,
            ));
        }
        let request = ManageRequest {
            method,
            path,
            bundle_id,
            headers,
            body,
        };
        let sent = AtomicBool::new(false);
        let work = self.client.attempt(Outgoing::Manage(&request), &sent);
        let answer = self.client.guarded(&sent, false, work).await?;
        tracing::debug!(
            method = %request.method,
            path = %request.path,
            status = answer.status(),
            request_id = answer.apns_request_id().unwrap_or(&request_id),
            "channel request answered"
        );
        if answer.is_success() {
            Ok(answer)
        } else {
            Err(Error::Rejected(Box::new(answer)))
        }
    }
}
