//! The serving side of the mock: the accept loop, one task per connection
//! (TLS, the HTTP/2 handshake, timeouts), and one per stream (faults, the
//! route by path, validation, the answer).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::StatusCode;
use tokio::net::TcpListener;

use super::broadcast::validate_broadcast;
use super::channels::manage;
use super::faults::FaultAction;
use super::push::validate;
use super::records::AcceptedNotification;
use super::rejection::Rejection;
use super::route::{request_id_of, Route};
use super::shim::{ConnControl, ControlShim};
use super::state::{lock, MockConn, State};
use crate::auth::CertificateInfo;
use crate::notification::ApnsId;
use crate::transport::Environment;

/// Accepts connections until the mock is dropped. Out of file descriptors
/// (`EMFILE`/`ENFILE`), it backs off instead of spinning.
/// The largest request header list the mock takes (RFC 9113's
/// SETTINGS_MAX_HEADER_LIST_SIZE, advertised in its SETTINGS): 16 KiB,
/// nginx's long-standing `http2_max_header_size` default (h2's own default
/// is 16 MiB). Apple does not publish its limit; a real APNs request's
/// headers are well under 1 KiB. A request over it is answered as h2
/// servers answer: `431 Request Header Fields Too Large` and the stream
/// reset; a header block past the limit in CONTINUATION frames ends the
/// connection with GOAWAY (COMPRESSION_ERROR).
pub const MAX_HEADER_LIST_SIZE: u32 = 16 * 1024;

pub(crate) async fn accept_loop(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    state: Arc<State>,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    // Connection tasks live in the set, so aborting this task ends them all.
    let mut connections = tokio::task::JoinSet::new();
    let mut pause = Duration::ZERO;
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (tcp, peer) = match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        if is_resource_exhaustion(&e) {
                            pause = (pause * 2).clamp(Duration::from_millis(10), Duration::from_secs(1));
                            if pause >= Duration::from_secs(1) {
                                tracing::warn!(error = %e, "mock cannot accept connections (out of file descriptors?); backing off");
                            }
                            tokio::time::sleep(pause).await;
                        }
                        continue;
                    }
                };
                pause = Duration::ZERO;
                let _ = tcp.set_nodelay(true);
                let id = state.counters.connections.fetch_add(1, Ordering::Relaxed) + 1;
                let acceptor = acceptor.clone();
                let state = state.clone();
                if lock(&state.faults).stall_tls {
                    // Fault: hold the socket and never answer the ClientHello.
                    connections.spawn(async move {
                        let _held = tcp;
                        std::future::pending::<()>().await;
                    });
                    continue;
                }
                connections.spawn(async move {
                    if let Err(e) = serve_connection(acceptor, tcp, id, state).await {
                        tracing::debug!(connection = id, %peer, error = %e, "mock connection ended");
                    }
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

fn is_resource_exhaustion(e: &std::io::Error) -> bool {
    // EMFILE 24, ENFILE 23, ENOBUFS 105, ENOMEM 12 on Linux; the kinds cover
    // the rest where the standard library maps them.
    matches!(e.raw_os_error(), Some(23 | 24 | 105 | 12))
        || matches!(e.kind(), std::io::ErrorKind::OutOfMemory)
}

async fn serve_connection(
    acceptor: tokio_rustls::TlsAcceptor,
    tcp: tokio::net::TcpStream,
    id: u64,
    state: Arc<State>,
) -> Result<(), String> {
    let timeouts = state.timeouts;
    let started = Instant::now();
    let handshake = tokio::time::timeout(timeouts.handshake, acceptor.accept(tcp)).await;
    let tls = match handshake {
        Ok(result) => result
            .map_err(|e| format!("TLS handshake failed: {}", crate::tls_words::io_error(&e)))?,
        Err(_) => {
            state.counters.timed_out.fetch_add(1, Ordering::Relaxed);
            return Err("TLS handshake timed out".into());
        }
    };
    if tls.get_ref().1.alpn_protocol() != Some(b"h2") {
        return Err("client did not negotiate h2".into());
    }
    let certificate = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .and_then(|leaf| CertificateInfo::from_der(leaf).ok());
    // Certificate connections are not subject to the token ramp-up.
    let initial = if state.accept_all || certificate.is_some() {
        state.max_streams
    } else {
        1
    };
    let control = ConnControl::new(id, initial, state.pings.clone(), state.hpack.clone());
    let conn = Arc::new(MockConn::new(id, control.clone(), certificate));
    let io = ControlShim::new(tls, control.clone());
    // The client preface must arrive within what is left of the handshake
    // timeout: a client that connects and says nothing is closed.
    let left = timeouts.handshake.saturating_sub(started.elapsed());
    let preface = tokio::time::timeout(
        left,
        h2::server::Builder::new()
            // h2 enforces this; the shim advertises the real, changing limit.
            .max_concurrent_streams(state.max_streams)
            .max_header_list_size(MAX_HEADER_LIST_SIZE)
            .handshake::<_, Bytes>(io),
    )
    .await;
    let mut h2 = match preface {
        Ok(result) => result.map_err(|e| format!("HTTP/2 handshake failed: {e}"))?,
        Err(_) => {
            state.counters.timed_out.fetch_add(1, Ordering::Relaxed);
            return Err("no HTTP/2 preface within the handshake timeout".into());
        }
    };
    let mut idle_check = tokio::time::Instant::now() + timeouts.idle;
    loop {
        tokio::select! {
            next = h2.accept() => {
                let Some(next) = next else { return Ok(()) };
                let (request, respond) = next.map_err(|e| e.to_string())?;
                conn.touch();
                let state = state.clone();
                let conn = conn.clone();
                tokio::spawn(async move {
                    handle_stream(request, respond, &state, &conn).await;
                });
            }
            _ = conn.kill.notified() => {
                // Fault: close TCP with requests in flight, no GOAWAY.
                state.counters.dropped.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
            _ = tokio::time::sleep_until(idle_check) => {
                let idle = conn.idle_for();
                if conn.active.load(Ordering::Acquire) == 0 && idle >= timeouts.idle {
                    // As APNs does with idle connections: a GOAWAY, then close.
                    h2.graceful_shutdown();
                    state.counters.timed_out.fetch_add(1, Ordering::Relaxed);
                    let _ = tokio::time::timeout(Duration::from_secs(1), std::future::poll_fn(|cx| h2.poll_closed(cx))).await;
                    return Ok(());
                }
                idle_check = tokio::time::Instant::now() + timeouts.idle.saturating_sub(idle).max(Duration::from_millis(10));
            }
            _ = tokio::time::sleep(Duration::from_millis(20)), if conn.closing.load(Ordering::Acquire) => {
                if conn.active.load(Ordering::Acquire) == 0 {
                    return Ok(());
                }
            }
        }
    }
}

/// Decrements the active-stream count when a stream ends, however it ends.
struct ActiveGuard<'a>(&'a MockConn);

impl Drop for ActiveGuard<'_> {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::AcqRel);
        self.0.touch();
    }
}

async fn handle_stream(
    request: http::Request<h2::RecvStream>,
    mut respond: h2::server::SendResponse<Bytes>,
    state: &State,
    conn: &MockConn,
) {
    let active = conn.active.fetch_add(1, Ordering::AcqRel) + 1;
    // Released just before the stream's last frame is queued: once the
    // client can see the stream end, it may open the next one.
    let guard = ActiveGuard(conn);
    state
        .counters
        .max_concurrent
        .fetch_max(active as u64, Ordering::Relaxed);
    let stream_id: u32 = respond.stream_id().into();
    let limit = conn.control.limit_at_open(stream_id) as usize;
    // A stream the client reset just before opening this one may not have
    // been counted out yet (its task runs separately): let it finish before
    // calling this a violation.
    let mut tries = 0;
    while conn.active.load(Ordering::Acquire) > limit && tries < 4 {
        tokio::task::yield_now().await;
        tries += 1;
    }
    if conn.active.load(Ordering::Acquire) > limit {
        state.counters.violations.fetch_add(1, Ordering::Relaxed);
        drop(guard);
        respond.send_reset(h2::Reason::REFUSED_STREAM);
        return;
    }
    let (parts, mut body) = request.into_parts();
    // A half-open stream (a body that never ends) is reset, not held.
    let read = tokio::time::timeout(state.timeouts.handshake, async {
        let mut payload = BytesMut::new();
        while let Some(chunk) = body.data().await {
            let chunk = chunk.ok()?;
            let _ = body.flow_control().release_capacity(chunk.len());
            // Keep a little past the largest limit so oversize is detectable.
            if payload.len() <= 8192 {
                payload.extend_from_slice(&chunk);
            }
        }
        Some(payload.freeze())
    })
    .await;
    let payload = match read {
        Ok(Some(payload)) => payload,
        Ok(None) => return,
        Err(_) => {
            state.counters.timed_out.fetch_add(1, Ordering::Relaxed);
            drop(guard);
            respond.send_reset(h2::Reason::CANCEL);
            return;
        }
    };

    // Streams above a GOAWAY's last one are refused before any fault.
    let action = match conn.admit(stream_id) {
        true => lock(&state.faults).decide(),
        false => FaultAction::Refuse,
    };
    let fault = match action {
        FaultAction::None => None,
        FaultAction::Refuse => {
            state.counters.refused.fetch_add(1, Ordering::Relaxed);
            drop(guard);
            respond.send_reset(h2::Reason::REFUSED_STREAM);
            return;
        }
        FaultAction::BlackHole => {
            // Read, never answered: wait until the client gives up.
            state.counters.black_holed.fetch_add(1, Ordering::Relaxed);
            let _ = std::future::poll_fn(|cx| respond.poll_reset(cx)).await;
            return;
        }
        FaultAction::Drop => {
            conn.kill.notify_one();
            return;
        }
        FaultAction::Answer(rejection) => Some(rejection),
    };
    let latency = lock(&state.faults).delay();
    if let Some(delay) = latency {
        tokio::time::sleep(delay).await;
    }
    state.counters.requests.fetch_add(1, Ordering::Relaxed);
    let route = Route::of(parts.uri.path());
    let answer = match fault {
        Some(rejection) => Answer::rejected(route, &parts.headers, rejection),
        None if state.accept_all => Answer::push(Ok(None), &parts.headers, state),
        None => answer(route, &parts, &payload, state, conn),
    };
    count(route, &answer, state);
    if answer.accepted {
        state.counters.accepted.fetch_add(1, Ordering::Relaxed);
        if lock(&state.faults).limit_drop
            && conn.control.current() == 1
            && lock(&conn.auth).is_valid()
        {
            conn.control.set(state.max_streams);
        }
    } else {
        state.counters.rejected.fetch_add(1, Ordering::Relaxed);
        if lock(&state.faults).limit_drop && conn.control.current() > 1 {
            // APNs may drop a connection back to one stream after rejections.
            state.counters.limit_drops.fetch_add(1, Ordering::Relaxed);
            conn.control.set(1);
        }
    }
    maybe_go_away(state, conn);
    let mut builder = http::Response::builder().status(answer.status);
    for (name, value) in answer.headers {
        builder = builder.header(name, value);
    }
    let Ok(response) = builder.body(()) else {
        respond.send_reset(h2::Reason::INTERNAL_ERROR);
        return;
    };
    let body = answer.body;
    let end = body.is_empty();
    drop(guard);
    if let Ok(mut stream) = respond.send_response(response, end) {
        if !end {
            let _ = stream.send_data(body, true);
        }
    }
}

/// One answer, ready for the wire.
struct Answer {
    status: StatusCode,
    headers: Vec<(&'static str, String)>,
    body: Bytes,
    accepted: bool,
    /// Channel management: +1 created a channel, -1 deleted one.
    change: i8,
}

impl Answer {
    /// A push's answer: `apns-id` (and `apns-unique-id` in sandbox) when
    /// accepted, recorded; APNs' JSON reason otherwise.
    fn push(
        verdict: Result<Option<AcceptedNotification>, Rejection>,
        headers: &http::HeaderMap,
        state: &State,
    ) -> Answer {
        let accepted = match verdict {
            Ok(accepted) => accepted,
            Err(rejection) => return Answer::rejected(Route::Push, headers, rejection),
        };
        let apns_id = match &accepted {
            Some(a) => a.apns_id.clone(),
            None => ApnsId::new_v4().to_string(),
        };
        let mut fields = vec![("apns-id", apns_id)];
        if state.environment == Environment::Sandbox {
            fields.push(("apns-unique-id", ApnsId::new_v4().to_string()));
        }
        if let Some(accepted) = accepted {
            lock(&state.records).push(accepted);
        }
        Answer::ok(StatusCode::OK, fields, Bytes::new())
    }

    fn ok(status: StatusCode, headers: Vec<(&'static str, String)>, body: Bytes) -> Answer {
        Answer {
            status,
            headers,
            body,
            accepted: true,
            change: 0,
        }
    }

    /// A rejection: the reason in JSON, with the request's id echoed (or a
    /// new one): `apns-id` for a push, `apns-request-id` on the broadcast
    /// routes.
    fn rejected(route: Route<'_>, headers: &http::HeaderMap, rejection: Rejection) -> Answer {
        let id = if route.is_push() {
            let id = headers
                .get("apns-id")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| ApnsId::parse(v).ok())
                .unwrap_or_else(ApnsId::new_v4);
            ("apns-id", id.to_string())
        } else {
            ("apns-request-id", request_id_of(headers))
        };
        let body = match rejection.timestamp_ms {
            Some(ts) => format!(r#"{{"reason":"{}","timestamp":{ts}}}"#, rejection.reason),
            None => format!(r#"{{"reason":"{}"}}"#, rejection.reason),
        };
        Answer {
            status: rejection.status,
            headers: vec![id],
            body: Bytes::from(body),
            accepted: false,
            change: 0,
        }
    }
}

/// Checks a request on its route and answers it.
fn answer(
    route: Route<'_>,
    parts: &http::request::Parts,
    payload: &Bytes,
    state: &State,
    conn: &MockConn,
) -> Answer {
    let (method, headers) = (&parts.method, &parts.headers);
    match route {
        Route::Push => {
            let verdict = validate(method, parts.uri.path(), headers, payload, state, conn);
            Answer::push(verdict.map(Some), headers, state)
        }
        Route::Broadcast(bundle) => {
            match validate_broadcast(method, bundle, headers, payload, state, conn) {
                Ok(mut accepted) => {
                    // Both ids on success (`docs/apns-facts.md`, "Broadcast send").
                    accepted.unique_id = ApnsId::new_v4().to_string();
                    let fields = vec![
                        ("apns-request-id", accepted.request_id.clone()),
                        ("apns-unique-id", accepted.unique_id.clone()),
                    ];
                    lock(&state.broadcasts).push(accepted);
                    Answer::ok(StatusCode::OK, fields, Bytes::new())
                }
                Err(rejection) => Answer::rejected(route, headers, rejection),
            }
        }
        Route::Channel(_) | Route::AllChannels(_) => {
            match manage(method, route, headers, payload, state, conn) {
                Ok(managed) => {
                    let mut fields = vec![("apns-request-id", request_id_of(headers))];
                    if let Some(id) = managed.channel_id {
                        fields.push(("apns-channel-id", id));
                    }
                    Answer {
                        change: managed.change,
                        ..Answer::ok(managed.status, fields, managed.body)
                    }
                }
                Err(rejection) => Answer::rejected(route, headers, rejection),
            }
        }
    }
}

/// The per-route counters of [`MockStats`](super::MockStats).
fn count(route: Route<'_>, answer: &Answer, state: &State) {
    let c = &state.counters;
    let counter = match (route, answer.accepted) {
        (Route::Push, _) => return,
        (Route::Broadcast(_), true) => &c.broadcasts_accepted,
        (Route::Broadcast(_), false) => &c.broadcasts_rejected,
        (Route::Channel(_) | Route::AllChannels(_), _) => &c.channel_requests,
    };
    counter.fetch_add(1, Ordering::Relaxed);
    match answer.change {
        1 => c.channels_created.fetch_add(1, Ordering::Relaxed),
        -1 => c.channels_deleted.fetch_add(1, Ordering::Relaxed),
        _ => 0,
    };
}

/// Fault `GoAwayAfter`: after a connection answered n requests, a GOAWAY
/// naming the highest stream admitted so far as the last processed one,
/// with APNs' JSON reason.
fn maybe_go_away(state: &State, conn: &MockConn) {
    let answered = conn.answered.fetch_add(1, Ordering::AcqRel) + 1;
    let due = lock(&state.faults).goaway_due(answered);
    if let Some(reason) = due {
        conn.go_away_now(state, &reason);
    }
}
