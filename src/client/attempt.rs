//! One request, from the first attempt to the final answer: the I/O of
//! leasing a stream, building the request and sending it, then doing what
//! `decide.rs` says follows the attempt (retry a transient answer, resend
//! a request the server never processed, re-mint an expired provider
//! token, or stop). The same loop serves pushes, broadcasts and
//! channel-management requests.

use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, AUTHORIZATION};
use tokio::time::Instant;

use super::decide::{self, Decision, Outcome, Report, State, Step, TokenUse};
use super::stats::Counters;
use super::{Client, Credentials};
#[allow(unused_imports)] // for doc links
use crate::auth::CertificateInfo;
use crate::auth::ProviderToken;
use crate::broadcast::Broadcast;
use crate::error::{Error, Result};
use crate::notification::{ApnsId, Notification, Topic};
use crate::response::Response;
use crate::transport::connection::AnswerKind;

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
    /// caller whether a request is (or was) on the wire. The I/O only:
    /// what follows each attempt is [`decide::next`]'s call.
    pub(super) async fn attempt(&self, out: Outgoing<'_>, sent: &AtomicBool) -> Result<Response> {
        let inner = &*self.inner;
        let deadline = Instant::now() + inner.timeouts.request;
        let (pool, kind) = match out {
            Outgoing::Push(_) => (&inner.pool, AnswerKind::Push),
            Outgoing::Broadcast(_) => (&inner.pool, AnswerKind::Broadcast),
            Outgoing::Manage(_) => (inner.channels.pool(), AnswerKind::Broadcast),
        };
        self.check_credentials(out)?;
        inner.budget.deposit();
        let resend_unknown = inner.retry.resend_unknown && out.may_resend_unknown();
        // At-least-once resends carry the same apns-id, so APNs and the
        // device see one notification sent twice, not two notifications.
        let own_id = (resend_unknown && !out.id_header().1).then(ApnsId::new_v4);
        let mut state = State::new(inner.retry.max_retries, resend_unknown);
        loop {
            let lease = match pool.acquire(deadline, state.take_avoid()).await {
                Ok(lease) => lease,
                Err(e) => return state.no_stream(e),
            };
            if let Some(answer) = state.retry_going_out() {
                // A retry sent while APNs still fails (as the pool's probe)
                // spends the budget; the backlog released after it
                // recovered does not.
                if lease.is_probe() && !inner.budget.withdraw() {
                    tracing::info!(
                        "retry budget exhausted; returning the rejection without retrying"
                    );
                    return Ok(answer.clone());
                }
                inner
                    .counters
                    .retried(answer.reason().map(|r| r.as_str()), answer.status());
            }
            // The token is taken once a stream is ours, so a request that
            // waited carries the newest token.
            let tokens = inner.credentials.tokens();
            let token = tokens.map(|t| t.get());
            let request = self.request_for(out, token.as_ref(), own_id)?;
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
            let deadline_passed = Instant::now() >= deadline;
            let outcome = match result {
                Ok(response) => Outcome::Answered {
                    response,
                    // The token cache's clock is read only for a replacement.
                    token: tokens.zip(token.as_ref()).map(|(tokens, token)| TokenUse {
                        fresh_replacement: token.is_replacement()
                            && tokens.age(token) < crate::auth::MIN_REFRESH_AFTER,
                    }),
                    deadline_passed,
                },
                Err(failure) => Outcome::Failed {
                    error: failure.error,
                    refused: failure.refused,
                    connection: lease.conn.id(),
                    deadline_passed,
                },
            };
            let Decision { report, step } = decide::next(outcome, &mut state);
            if let Some(Report { verdict, reason }) = report {
                pool.report(&lease, verdict, &reason);
            }
            match step {
                Step::Return(result) => return result,
                Step::Resend => Counters::bump(&inner.counters.resends),
                Step::Remint => {
                    if let (Some(tokens), Some(token)) = (tokens, &token) {
                        tokens.invalidate(token);
                    }
                }
                Step::Retry => {}
            }
            sent.store(state.was_on_wire(), Ordering::Release);
        }
    }

    /// The request for `out`, carrying `token` and, for an at-least-once
    /// resend, `own_id`.
    fn request_for(
        &self,
        out: Outgoing<'_>,
        token: Option<&ProviderToken>,
        own_id: Option<ApnsId>,
    ) -> Result<http::Request<()>> {
        let inner = &*self.inner;
        match out {
            Outgoing::Push(n) => self.build_request(n, token, own_id),
            Outgoing::Broadcast(b) => compose_request(
                &inner.authority,
                http::Method::POST,
                &b.path,
                &b.headers,
                token,
                own_id.map(|id| (out.id_header().0, id)),
            ),
            Outgoing::Manage(m) => compose_request(
                &inner.channels.authority,
                m.method.clone(),
                &m.path,
                &m.headers,
                token,
                None,
            ),
        }
    }

    /// What the credentials cannot send is refused before sending. With a
    /// topic-specific key: a topic or bundle id outside its scope
    /// ([`TokenSigner::check_topic`](crate::TokenSigner::check_topic)).
    /// With a certificate: a push must follow its rules
    /// ([`CertificateInfo::check_push`]); a broadcast's or channel
    /// request's bundle id must be one it allows. Broadcasts and channel
    /// management take certificates (`docs/apns-facts.md`, "Broadcast":
    /// token or certificate auth).
    fn check_credentials(&self, out: Outgoing<'_>) -> Result<()> {
        let certificate = match &self.inner.credentials {
            Credentials::Certificate { certificate, .. } => certificate,
            Credentials::Token(tokens) => {
                let signer = tokens.signer();
                let topic = match out {
                    Outgoing::Push(n) => n.topic.as_ref().map(|t| t.as_str()),
                    Outgoing::Broadcast(Broadcast { bundle_id, .. })
                    | Outgoing::Manage(ManageRequest { bundle_id, .. }) => Some(bundle_id.as_str()),
                };
                // A push without a topic is refused when its request is built.
                return topic.map_or(Ok(()), |t| signer.check_topic(t));
            }
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
                            "{bundle_id} is not allowed by the certificate, which {}",
                            info.allowed_words()
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
