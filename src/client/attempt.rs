//! One request, from the first attempt to the final answer: leasing a
//! stream, building the request, and deciding after each attempt whether
//! to retry (a transient answer), resend (a request the server never
//! processed), re-mint (an expired provider token) or stop. The same loop
//! serves pushes, broadcasts and channel-management requests.

use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, AUTHORIZATION};
use tokio::time::Instant;

use super::stats::Counters;
use super::{Client, Credentials};
#[allow(unused_imports)] // for doc links
use crate::auth::CertificateInfo;
use crate::auth::ProviderToken;
use crate::broadcast::Broadcast;
use crate::error::{Error, Result};
use crate::notification::{ApnsId, Notification, Topic};
use crate::response::{ReasonClass, Response};
use crate::transport::connection::AnswerKind;
use crate::transport::pool::Verdict;

/// What one run of the loop sends.
#[derive(Clone, Copy)]
pub(super) enum Outgoing<'a> {
    /// A notification to a device, on the push pool.
    Push(&'a Notification),
    /// A broadcast to a channel, on the push pool.
    Broadcast(&'a Broadcast),
    /// A channel-management request, on the channels pool.
    Manage(&'a ManageRequest),
}

/// A channel-management request: method, path, headers and body.
pub(super) struct ManageRequest {
    pub method: http::Method,
    pub path: http::uri::PathAndQuery,
    /// The app, for the certificate check.
    pub bundle_id: Topic,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Bytes,
}

impl Outgoing<'_> {
    fn body(&self) -> Bytes {
        match self {
            Outgoing::Push(n) => n.payload.clone(),
            Outgoing::Broadcast(b) => b.payload.clone(),
            Outgoing::Manage(m) => m.body.clone(),
        }
    }

    /// The header that names this request to APNs, and the id set by the
    /// caller, if any.
    fn id_header(&self) -> (&'static str, bool) {
        match self {
            Outgoing::Push(n) => ("apns-id", n.apns_id.is_some()),
            Outgoing::Broadcast(b) => ("apns-request-id", b.request_id.is_some()),
            // Always carries its own request id.
            Outgoing::Manage(_) => ("apns-request-id", true),
        }
    }

    /// Whether a copy that may duplicate an earlier one is acceptable with
    /// `resend_unknown`: never for a create or a delete (a second create
    /// makes a second channel; a second delete reports the first's success
    /// as ChannelNotRegistered).
    fn may_resend_unknown(&self) -> bool {
        match self {
            Outgoing::Manage(m) => m.method == http::Method::GET,
            _ => true,
        }
    }
}

impl Client {
    /// Sends `out` until a final answer or its deadline. `sent` tells the
    /// caller whether a request is (or was) on the wire.
    pub(super) async fn attempt(&self, out: Outgoing<'_>, sent: &AtomicBool) -> Result<Response> {
        let inner = &*self.inner;
        let deadline = Instant::now() + inner.timeouts.request;
        let (pool, kind) = match out {
            Outgoing::Push(_) => (&inner.pool, AnswerKind::Push),
            Outgoing::Broadcast(_) => (&inner.pool, AnswerKind::Broadcast),
            Outgoing::Manage(_) => (inner.channels.pool(), AnswerKind::Broadcast),
        };
        self.check_for_certificate(out)?;
        inner.budget.deposit();
        let resend_unknown = inner.retry.resend_unknown && out.may_resend_unknown();
        // At-least-once resends carry the same apns-id, so APNs and the
        // device see one notification sent twice, not two notifications.
        let (id_header, has_id) = out.id_header();
        let own_id = (resend_unknown && !has_id).then(ApnsId::new_v4);
        let mut retries = 0u32;
        let mut reminted = false;
        let mut was_on_wire = false;
        let mut avoid = None;
        // The last transient rejection, returned if no retry can follow it.
        let mut last_answer: Option<Response> = None;
        // A retry was decided and has not gone out yet.
        let mut retry_due = false;
        loop {
            let lease = match pool.acquire(deadline, avoid.take()).await {
                Ok(lease) => lease,
                Err(e) => {
                    return match last_answer {
                        Some(answer) if !matches!(e, Error::Shutdown { .. }) => Ok(answer),
                        _ => Err(upgrade(e, was_on_wire)),
                    }
                }
            };
            // A retry sent while APNs still fails spends the budget; the
            // backlog released after it recovered does not.
            if retry_due {
                if let Some(answer) = last_answer.as_ref().filter(|_| lease.is_probe()) {
                    if !inner.budget.withdraw() {
                        tracing::info!(
                            "retry budget exhausted; returning the rejection without retrying"
                        );
                        return Ok(answer.clone());
                    }
                }
                retry_due = false;
                if let Some(answer) = &last_answer {
                    inner
                        .counters
                        .retried(answer.reason().map(|r| r.as_str()), answer.status());
                }
            }
            // The token is taken once a stream is ours, so a request that
            // waited carries the newest token.
            let token = inner.credentials.tokens().map(|t| t.get());
            let request = match out {
                Outgoing::Push(n) => self.build_request(n, token.as_ref(), own_id)?,
                Outgoing::Broadcast(b) => compose_request(
                    &inner.authority,
                    http::Method::POST,
                    &b.path,
                    &b.headers,
                    token.as_ref(),
                    own_id.map(|id| (id_header, id)),
                )?,
                Outgoing::Manage(m) => compose_request(
                    &inner.channels.authority,
                    m.method.clone(),
                    &m.path,
                    &m.headers,
                    token.as_ref(),
                    None,
                )?,
            };
            let result = lease
                .conn
                .send(
                    &lease.permit,
                    request,
                    out.body(),
                    deadline,
                    inner.timeouts.request,
                    sent,
                    kind,
                )
                .await;
            let response = match result {
                Ok(response) => response,
                Err(failure) => {
                    let e = failure.error;
                    if failure.refused {
                        pool.report(&lease, Verdict::Trouble { retire: false }, "REFUSED_STREAM");
                    }
                    let on_wire = e.may_have_been_delivered();
                    let resend = matches!(e, Error::Connection { .. })
                        && (!on_wire || resend_unknown)
                        && Instant::now() < deadline;
                    if !resend {
                        return Err(upgrade(e, was_on_wire));
                    }
                    tracing::debug!(connection = lease.conn.id(), error = %e, "resending");
                    was_on_wire |= on_wire;
                    avoid = Some(lease.conn.id());
                    Counters::bump(&inner.counters.resends);
                    sent.store(was_on_wire, Ordering::Release);
                    continue;
                }
            };
            // A 5xx without a body still says what to do.
            let class = match response.reason() {
                Some(reason) => reason.class(),
                None if response.status() == 500 => ReasonClass::RetryLater,
                None if response.status() == 503 => ReasonClass::RetryNewConnection,
                None => ReasonClass::RequestBug,
            };
            // Borrowed: built for every answer, needed only for the rare
            // report or log line.
            let reason: std::borrow::Cow<'_, str> = match response.reason() {
                Some(r) => r.as_str().into(),
                None if response.status() == 200 => "200".into(),
                None => response.status().to_string().into(),
            };
            match class {
                ReasonClass::RefreshProviderToken => {
                    let (Some(tokens), Some(token)) = (inner.credentials.tokens(), &token) else {
                        pool.report(&lease, Verdict::Answered, &reason);
                        return Ok(response);
                    };
                    // A fresh replacement reported expired too: re-minting
                    // cannot help, the clock is wrong. Once the replacement is
                    // 20 minutes old, a new mint is allowed again (the clock
                    // may have been fixed), so one bad moment does not block
                    // sending until the next refresh.
                    let fresh_replacement = token.is_replacement()
                        && tokens.age(token) < crate::auth::MIN_REFRESH_AFTER;
                    if reminted || fresh_replacement {
                        tracing::error!("a freshly minted provider token was reported expired; check this machine's clock");
                        return Err(Error::TokenExpiredAgain(Box::new(response)));
                    }
                    pool.report(&lease, Verdict::Reconnect, "ExpiredProviderToken");
                    // However many requests saw this token expire, one re-mint.
                    tokens.invalidate(token);
                    tracing::info!("ExpiredProviderToken: minted a new token; retrying once on a new connection");
                    reminted = true;
                    sent.store(was_on_wire, Ordering::Release);
                    continue;
                }
                ReasonClass::TokenUpdates | ReasonClass::RetryNewConnection => {
                    pool.report(&lease, Verdict::Trouble { retire: true }, &reason);
                }
                ReasonClass::RetryLater => {
                    pool.report(&lease, Verdict::Trouble { retire: false }, &reason);
                }
                ReasonClass::Reconnect => pool.report(&lease, Verdict::Reconnect, &reason),
                // Accepted, or a final rejection: the endpoint works.
                _ => {
                    pool.report(&lease, Verdict::Answered, &reason);
                    return Ok(response);
                }
            }
            if retries >= inner.retry.max_retries || Instant::now() >= deadline {
                return Ok(response);
            }
            retries += 1;
            tracing::debug!(%reason, retry = retries, "retrying a transient rejection");
            sent.store(was_on_wire, Ordering::Release);
            last_answer = Some(response);
            retry_due = true;
        }
    }

    /// With a certificate: a push must follow its rules
    /// ([`CertificateInfo::check_push`]); a broadcast's or channel
    /// request's bundle id must be one it allows. Broadcasts and channel
    /// management take certificates (`docs/apns-facts.md`, "Broadcast":
    /// token or certificate auth).
    fn check_for_certificate(&self, out: Outgoing<'_>) -> Result<()> {
        let Credentials::Certificate { certificate, .. } = &self.inner.credentials else {
            return Ok(());
        };
        let info = certificate.info();
        match out {
            Outgoing::Push(n) => info.check_push(n.push_type, n.topic.as_ref().map(|t| t.as_str())),
            Outgoing::Broadcast(Broadcast { bundle_id, .. })
            | Outgoing::Manage(ManageRequest { bundle_id, .. }) => {
                if info.allows_topic(bundle_id.as_str()) {
                    Ok(())
                } else {
                    Err(Error::invalid(
                        "bundle_id",
                        format!(
                            "{bundle_id} is not allowed by the certificate, which allows {}",
                            info.allowed_topics().join(", ")
                        ),
                    ))
                }
            }
        }
    }

    pub(crate) fn build_request(
        &self,
        n: &Notification,
        token: Option<&ProviderToken>,
        own_id: Option<ApnsId>,
    ) -> Result<http::Request<()>> {
        let default_topic = match &self.inner.credentials {
            Credentials::Certificate { default_topic, .. } => default_topic.as_ref(),
            Credentials::Token(_) => None,
        };
        if n.topic.is_none() && default_topic.is_none() {
            return Err(Error::invalid(
                "topic",
                "required with token authentication; set it to the app's bundle id (plus the push type's suffix)",
            ));
        }
        let mut request = compose_request(
            &self.inner.authority,
            http::Method::POST,
            &n.path,
            &n.headers,
            token,
            own_id.map(|id| ("apns-id", id)),
        )?;
        let headers = request.headers_mut();
        if n.topic.is_none() {
            if let Some(topic) = default_topic {
                headers.insert(HeaderName::from_static("apns-topic"), topic.clone());
            }
        }
        Ok(request)
    }
}

/// A request: its host, method, path and headers, the token, and the id an
/// at-least-once resend keeps (`apns-id`, or a broadcast's
/// `apns-request-id`).
fn compose_request(
    authority: &http::uri::Authority,
    method: http::Method,
    path: &http::uri::PathAndQuery,
    fields: &[(HeaderName, HeaderValue)],
    token: Option<&ProviderToken>,
    own_id: Option<(&'static str, ApnsId)>,
) -> Result<http::Request<()>> {
    let uri = http::Uri::from_parts({
        let mut parts = http::uri::Parts::default();
        parts.scheme = Some(http::uri::Scheme::HTTPS);
        parts.authority = Some(authority.clone());
        parts.path_and_query = Some(path.clone());
        parts
    })
    .map_err(|e| Error::Protocol(e.to_string()))?;
    let mut request = http::Request::new(());
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    let headers = request.headers_mut();
    headers.reserve(fields.len() + 3);
    // `authorization` is marked sensitive: HPACK sends it never-indexed.
    // Certificate connections send none.
    if let Some(token) = token {
        headers.insert(AUTHORIZATION, token.header_value().clone());
    }
    for (name, value) in fields {
        headers.insert(name.clone(), value.clone());
    }
    if let Some((name, id)) = own_id {
        if let Ok(value) = HeaderValue::from_str(&id.to_string()) {
            headers.insert(HeaderName::from_static(name), value);
        }
    }
    Ok(request)
}

/// An error after an earlier attempt of the same notification was on the
/// wire when its connection died: whatever the last attempt says, the
/// notification may have been delivered.
fn upgrade(e: Error, was_on_wire: bool) -> Error {
    if !was_on_wire || e.may_have_been_delivered() {
        return e;
    }
    match e {
        Error::Timeout { what, after, .. } => Error::Timeout {
            what,
            after,
            may_have_been_delivered: true,
        },
        Error::Shutdown { .. } => Error::Shutdown {
            may_have_been_delivered: true,
        },
        other => Error::Connection {
            message: format!(
                "{other}; an earlier attempt was on the wire when its connection was lost"
            ),
            may_have_been_delivered: true,
        },
    }
}
