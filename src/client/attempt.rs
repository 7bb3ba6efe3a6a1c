//! One `send`, from the first attempt to the final answer: leasing a
//! stream, building the request, and deciding after each attempt whether
//! to retry (a transient answer), resend (a request the server never
//! processed), re-mint (an expired provider token) or stop.

use std::sync::atomic::{AtomicBool, Ordering};

use http::header::{HeaderName, HeaderValue, AUTHORIZATION};
use tokio::time::Instant;

use super::stats::Counters;
use super::{Client, Credentials};
#[allow(unused_imports)] // for doc links
use crate::auth::CertificateInfo;
use crate::auth::ProviderToken;
use crate::error::{Error, Result};
use crate::notification::{ApnsId, Notification};
use crate::response::{ReasonClass, Response};
use crate::transport::pool::Verdict;

impl Client {
    /// Sends `n` until a final answer or its deadline. `sent` tells the
    /// caller whether a request is (or was) on the wire.
    pub(super) async fn attempt(&self, n: &Notification, sent: &AtomicBool) -> Result<Response> {
        let inner = &*self.inner;
        let deadline = Instant::now() + inner.timeouts.request;
        self.check_for_certificate(n)?;
        inner.budget.deposit();
        // At-least-once resends carry the same apns-id, so APNs and the
        // device see one notification sent twice, not two notifications.
        let own_id = (inner.retry.resend_unknown && n.apns_id.is_none()).then(ApnsId::new_v4);
        let mut retries = 0u32;
        let mut reminted = false;
        let mut was_on_wire = false;
        let mut avoid = None;
        // The last transient rejection, returned if no retry can follow it.
        let mut last_answer: Option<Response> = None;
        // A retry was decided and has not gone out yet.
        let mut retry_due = false;
        loop {
            let lease = match inner.pool.acquire(deadline, avoid.take()).await {
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
            let request = self.build_request(n, token.as_ref(), own_id)?;
            let result = lease
                .conn
                .send(
                    &lease.permit,
                    request,
                    n.payload.clone(),
                    deadline,
                    inner.timeouts.request,
                    sent,
                )
                .await;
            let response = match result {
                Ok(response) => response,
                Err(failure) => {
                    let e = failure.error;
                    if failure.refused {
                        inner.pool.report(
                            &lease,
                            Verdict::Trouble { retire: false },
                            "REFUSED_STREAM",
                        );
                    }
                    let on_wire = e.may_have_been_delivered();
                    let resend = matches!(e, Error::Connection { .. })
                        && (!on_wire || inner.retry.resend_unknown)
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
            let reason = response
                .reason()
                .map(|r| r.as_str().to_string())
                .unwrap_or_else(|| response.status().to_string());
            match class {
                ReasonClass::RefreshProviderToken => {
                    let (Some(tokens), Some(token)) = (inner.credentials.tokens(), &token) else {
                        inner.pool.report(&lease, Verdict::Answered, &reason);
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
                    inner
                        .pool
                        .report(&lease, Verdict::Reconnect, "ExpiredProviderToken");
                    // However many requests saw this token expire, one re-mint.
                    tokens.invalidate(token);
                    tracing::info!("ExpiredProviderToken: minted a new token; retrying once on a new connection");
                    reminted = true;
                    sent.store(was_on_wire, Ordering::Release);
                    continue;
                }
                ReasonClass::TokenUpdates | ReasonClass::RetryNewConnection => {
                    inner
                        .pool
                        .report(&lease, Verdict::Trouble { retire: true }, &reason);
                }
                ReasonClass::RetryLater => {
                    inner
                        .pool
                        .report(&lease, Verdict::Trouble { retire: false }, &reason);
                }
                ReasonClass::Reconnect => inner.pool.report(&lease, Verdict::Reconnect, &reason),
                // Accepted, or a final rejection: the endpoint works.
                _ => {
                    inner.pool.report(&lease, Verdict::Answered, &reason);
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

    /// With a certificate: its rules (see [`CertificateInfo::check_push`]).
    fn check_for_certificate(&self, n: &Notification) -> Result<()> {
        match &self.inner.credentials {
            Credentials::Certificate { certificate, .. } => certificate
                .info()
                .check_push(n.push_type, n.topic.as_ref().map(|t| t.as_str())),
            Credentials::Token(_) => Ok(()),
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
        let uri = http::Uri::from_parts({
            let mut parts = http::uri::Parts::default();
            parts.scheme = Some(http::uri::Scheme::HTTPS);
            parts.authority = Some(self.inner.authority.clone());
            parts.path_and_query = Some(n.path.clone());
            parts
        })
        .map_err(|e| Error::Protocol(e.to_string()))?;
        let mut request = http::Request::new(());
        *request.method_mut() = http::Method::POST;
        *request.uri_mut() = uri;
        let headers = request.headers_mut();
        headers.reserve(n.headers.len() + 3);
        // `authorization` is marked sensitive: HPACK sends it never-indexed.
        // Certificate connections send none.
        if let Some(token) = token {
            headers.insert(AUTHORIZATION, token.header_value().clone());
        }
        for (name, value) in n.headers.iter() {
            headers.insert(name.clone(), value.clone());
        }
        if let Some(id) = own_id {
            if let Ok(value) = HeaderValue::from_str(&id.to_string()) {
                headers.insert(HeaderName::from_static("apns-id"), value);
            }
        }
        if n.topic.is_none() {
            if let Some(topic) = default_topic {
                headers.insert(HeaderName::from_static("apns-topic"), topic.clone());
            }
        }
        Ok(request)
    }
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
