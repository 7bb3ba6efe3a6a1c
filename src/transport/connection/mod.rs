//! One HTTP/2 connection to APNs: TCP, then TLS with ALPN `h2`, then `h2`.
//!
//! A connection hands out *stream permits*: never more than the server's
//! live `SETTINGS_MAX_CONCURRENT_STREAMS`, so requests wait in the pool
//! instead of queueing without bound inside `h2`.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::HeaderName;
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio::sync::Notify;
use tokio::time::{timeout, timeout_at, Instant};

use super::inbound::{GoAway, Inbound};
use super::shim::Shim;
use super::Endpoint;
use crate::error::{Error, Result};
use crate::response::Response;

pub(crate) use super::stage::{Phase, Stage, FIRST_SETTINGS, TLS_HANDSHAKE};

/// Timeouts for the steps of a connection and a request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timeouts {
    pub connect: Duration,
    pub tls: Duration,
    pub request: Duration,
}

/// Which answer a request gets: a push's (status, `apns-id`,
/// `apns-unique-id`, a short error body), or a broadcast's or
/// channel-management request's, which also carries `apns-request-id`,
/// `apns-channel-id` and a body that may list thousands of channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AnswerKind {
    Push,
    Broadcast,
}

impl AnswerKind {
    /// The most body bytes kept: an error body for a push; for a list of
    /// 10,000 channels (ids of no fixed length), a few megabytes.
    fn body_limit(self) -> usize {
        match self {
            AnswerKind::Push => 64 * 1024,
            AnswerKind::Broadcast => 8 * 1024 * 1024,
        }
    }
}

/// Keepalive and liveness: a PING after `idle` without traffic, or after
/// `silence` without a frame from the server while requests are
/// outstanding; no PONG within `timeout` closes the connection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Keepalive {
    pub idle: Duration,
    pub silence: Duration,
    pub timeout: Duration,
}

/// How a connection ended, which decides how soon its slot reconnects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ending {
    /// Still open.
    Open,
    /// Taken out of service by the client (after an answer, or shutdown).
    Retired,
    /// The server sent GOAWAY.
    GoAway,
    /// A PING went unanswered: the server (or the path to it) stopped
    /// answering.
    Unresponsive,
    /// Closed without a GOAWAY: I/O error, reset, end of stream.
    Lost,
}

impl Ending {
    fn code(self) -> u8 {
        self as u8
    }
    fn from_code(code: u8) -> Ending {
        match code {
            1 => Ending::Retired,
            2 => Ending::GoAway,
            3 => Ending::Unresponsive,
            4 => Ending::Lost,
            _ => Ending::Open,
        }
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A live HTTP/2 connection.
#[derive(Debug)]
pub(crate) struct Connection {
    send: h2::client::SendRequest<Bytes>,
    state: Arc<LinkState>,
}

#[derive(Debug)]
struct LinkState {
    id: u64,
    // The driver task ended: nothing more can be sent or received.
    closed: AtomicBool,
    // No new streams: GOAWAY, a failed PING, or a retirement by the client.
    retired: AtomicBool,
    // How it ended (an `Ending` code); the first cause wins.
    ending: AtomicU8,
    // An idle keepalive PING is outstanding: hold new streams until it
    // answers.
    pinging: AtomicBool,
    reason: Mutex<Option<String>>,
    in_flight: AtomicUsize,
    // Milliseconds since `born` of the last finished request.
    last_activity_ms: AtomicU64,
    // Frames from the server, seen by the read side of the shim.
    inbound: Arc<Inbound>,
    born: Instant,
    // Closes the connection at once (a dead PING), failing what is in flight.
    kill: Notify,
    // Wakes requests waiting in the pool for a stream.
    pool: Arc<Notify>,
}

impl LinkState {
    fn end(&self, ending: Ending, reason: &str) {
        let _ = self.ending.compare_exchange(
            Ending::Open.code(),
            ending.code(),
            Ordering::AcqRel,
            Ordering::Acquire,
        );
        self.reason
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert_with(|| reason.to_string());
    }

    fn retire(&self, ending: Ending, reason: &str) {
        if !self.retired.swap(true, Ordering::AcqRel) {
            tracing::debug!(connection = self.id, reason, "connection retired");
            self.end(ending, reason);
        }
        self.pool.notify_waiters();
    }

    fn touch(&self) {
        let ms = self.born.elapsed().as_millis() as u64;
        self.last_activity_ms.store(ms, Ordering::Relaxed);
    }

    fn idle_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_activity_ms.load(Ordering::Relaxed));
        self.born.elapsed().saturating_sub(last)
    }
}

/// Permission to open one stream; returned when dropped.
#[derive(Debug)]
pub(crate) struct StreamPermit {
    state: Arc<LinkState>,
}

impl Drop for StreamPermit {
    fn drop(&mut self) {
        self.state.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.state.touch();
        self.state.pool.notify_one();
    }
}

impl Connection {
    /// Dials `endpoint` and completes the TLS and HTTP/2 handshakes.
    pub(crate) async fn connect(
        endpoint: &Endpoint,
        tls: Arc<ClientConfig>,
        timeouts: &Timeouts,
        keepalive: Option<Keepalive>,
        pool: Arc<Notify>,
        route: &super::Route,
        stage: &Stage,
    ) -> Result<Connection> {
        let authority = endpoint.authority();
        // Directly, or through a proxy's CONNECT tunnel (src/transport/proxy/mod.rs).
        let tcp = route.dial(endpoint, timeouts.connect, stage).await?;
        // Without TCP_NODELAY, small HTTP/2 frames wait ~40 ms on delayed ACKs.
        let _ = tcp.set_nodelay(true);

        let server_name = ServerName::try_from(endpoint.host().to_string()).map_err(|_| {
            Error::Config(format!(
                "{:?} is not a valid TLS server name",
                endpoint.host()
            ))
        })?;
        stage.set(Phase::Tls);
        let tls_stream = timeout(
            timeouts.tls,
            tokio_rustls::TlsConnector::from(tls).connect(server_name, tcp),
        )
        .await
        .map_err(|_| Error::Timeout {
            what: TLS_HANDSHAKE,
            after: timeouts.tls,
            may_have_been_delivered: false,
        })?
        .map_err(|e| {
            let (problem, message) = super::tls::explain(&e);
            Error::Tls {
                endpoint: authority.clone(),
                problem,
                message,
            }
        })?;
        if tls_stream.get_ref().1.alpn_protocol() != Some(b"h2") {
            return Err(Error::Tls {
                endpoint: authority,
                problem: crate::error::TlsProblem::NoHttp2,
                message: "the server did not agree on HTTP/2 (ALPN h2); APNs requires HTTP/2"
                    .into(),
            });
        }

        // `:path` goes out as a never-indexed literal, as Apple asks; the
        // read side stamps when the server last sent anything.
        let born = Instant::now();
        let inbound = Arc::new(Inbound::new(born));
        let tls_stream = Shim::new(tls_stream, inbound.clone());
        stage.set(Phase::Settings);
        let (send, mut connection) = timeout(
            timeouts.tls,
            h2::client::Builder::new()
                // Apple allows one stream until the first valid token; h2
                // would otherwise assume unlimited streams until SETTINGS.
                .initial_max_send_streams(1)
                .enable_push(false)
                .handshake::<_, Bytes>(tls_stream),
        )
        .await
        .map_err(|_| Error::Timeout {
            what: FIRST_SETTINGS,
            after: timeouts.tls,
            may_have_been_delivered: false,
        })?
        .map_err(|e| Error::Protocol(format!("HTTP/2 handshake failed: {e}")))?;

        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let state = Arc::new(LinkState {
            id,
            closed: AtomicBool::new(false),
            retired: AtomicBool::new(false),
            ending: AtomicU8::new(Ending::Open.code()),
            pinging: AtomicBool::new(false),
            reason: Mutex::new(None),
            in_flight: AtomicUsize::new(0),
            last_activity_ms: AtomicU64::new(0),
            inbound,
            born,
            kill: Notify::new(),
            pool,
        });
        let ping_pong = connection.ping_pong();
        let driver_state = state.clone();
        tokio::spawn(async move {
            let result = tokio::select! {
                r = &mut connection => Some(r),
                // Dropping the connection fails every stream on it.
                _ = driver_state.kill.notified() => None,
            };
            drop(connection);
            let goaway = driver_state.inbound.received_goaway();
            let (ending, reason) = match (&result, &goaway) {
                (None, _) => (
                    Ending::Unresponsive,
                    "closed: the server stopped answering".into(),
                ),
                // The server said GOAWAY: an answer, not a failure.
                (_, Some(g)) => (Ending::GoAway, describe_goaway(g)),
                (Some(Ok(())), None) => (Ending::Lost, "closed".to_string()),
                (Some(Err(e)), None) => (Ending::Lost, describe_h2_error(e, None)),
            };
            match ending {
                Ending::GoAway => {
                    tracing::warn!(connection = id, %reason, "APNs closed the connection")
                }
                _ => tracing::debug!(connection = id, %reason, "APNs connection closed"),
            }
            driver_state.end(ending, &reason);
            driver_state.closed.store(true, Ordering::Release);
            driver_state.pool.notify_waiters();
        });
        if let (Some(keepalive), Some(ping_pong)) = (keepalive, ping_pong) {
            tokio::spawn(keepalive_loop(state.clone(), ping_pong, keepalive));
        }
        tracing::debug!(connection = id, endpoint = %authority, "APNs connection established");
        Ok(Connection { send, state })
    }

    /// A process-unique id, for logs.
    pub(crate) fn id(&self) -> u64 {
        self.state.id
    }

    /// False once the connection is closed or retired.
    pub(crate) fn is_usable(&self) -> bool {
        !self.state.closed.load(Ordering::Acquire) && !self.state.retired.load(Ordering::Acquire)
    }

    /// Streams the server allows at once, as last advertised.
    pub(crate) fn max_streams(&self) -> usize {
        self.send.current_max_send_streams()
    }

    /// Requests in flight.
    pub(crate) fn in_flight(&self) -> usize {
        self.state.in_flight.load(Ordering::Acquire)
    }

    /// Takes a stream permit if the connection is usable and under its
    /// stream limit.
    pub(crate) fn try_acquire(&self) -> Option<StreamPermit> {
        if !self.is_usable() || self.state.pinging.load(Ordering::Acquire) {
            return None;
        }
        let max = self.max_streams().max(1);
        self.state
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()?;
        Some(StreamPermit {
            state: self.state.clone(),
        })
    }

    /// Stops new streams on this connection; in-flight ones finish.
    pub(crate) fn retire(&self, reason: &str) {
        self.state.retire(Ending::Retired, reason);
    }

    /// How the connection ended ([`Ending::Open`] while it is usable).
    pub(crate) fn ending(&self) -> Ending {
        Ending::from_code(self.state.ending.load(Ordering::Acquire))
    }

    /// Why the connection closed or was retired, if it was.
    pub(crate) fn close_reason(&self) -> Option<String> {
        self.state
            .reason
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Sends one request and reads the whole answer, before `deadline`.
    /// `sent` is set once the request is handed to the connection.
    // Each argument is a plain value the caller already holds; a struct
    // would be built per request for nothing.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn send(
        &self,
        _permit: &StreamPermit,
        request: http::Request<()>,
        body: Bytes,
        deadline: Instant,
        request_timeout: Duration,
        sent: &AtomicBool,
        kind: AnswerKind,
    ) -> std::result::Result<Response, StreamError> {
        // A server that never sent its SETTINGS (a black hole after TLS)
        // leaves the request waiting on that, not on an answer.
        let what = if self.state.inbound.heard() {
            "request"
        } else {
            FIRST_SETTINGS
        };
        let timed_out = |delivered| StreamError {
            error: Error::Timeout {
                what,
                after: request_timeout,
                may_have_been_delivered: delivered,
            },
            refused: false,
        };
        if Instant::now() >= deadline {
            return Err(timed_out(false));
        }
        // Waiting for h2: nothing has been sent yet.
        let mut sender = timeout_at(deadline, self.send.clone().ready())
            .await
            .map_err(|_| timed_out(false))?
            .map_err(|e| self.stream_error(&e, false))?;
        let (response, mut stream) = sender
            .send_request(request, body.is_empty())
            .map_err(|e| self.stream_error(&e, false))?;
        sent.store(true, Ordering::Release);
        if !body.is_empty() {
            stream
                .send_data(body, true)
                .map_err(|e| self.stream_error(&e, true))?;
        }
        timeout_at(deadline, async {
            let response = response.await.map_err(|e| self.stream_error(&e, true))?;
            let (parts, mut body) = response.into_parts();
            let mut buf = BytesMut::new();
            while let Some(chunk) = body.data().await {
                let chunk = chunk.map_err(|e| self.stream_error(&e, true))?;
                // Release flow-control capacity, or error bodies slowly close
                // the connection window.
                let _ = body.flow_control().release_capacity(chunk.len());
                if buf.len() < kind.body_limit() {
                    buf.extend_from_slice(&chunk);
                }
            }
            let header = |name: &HeaderName| {
                parts
                    .headers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            };
            let response = Response::from_parts(
                parts.status.as_u16(),
                header(&APNS_ID),
                header(&APNS_UNIQUE_ID),
                &buf,
            );
            Ok(match kind {
                AnswerKind::Push => response,
                AnswerKind::Broadcast => response.with_broadcast_parts(
                    header(&APNS_REQUEST_ID),
                    header(&APNS_CHANNEL_ID),
                    &buf,
                ),
            })
        })
        .await
        .map_err(|_| timed_out(true))?
    }

    /// Maps an `h2` error on one stream, deciding whether the request may
    /// have been processed, and retires the connection on connection-level
    /// failures.
    fn stream_error(&self, e: &h2::Error, sent: bool) -> StreamError {
        let refused = e.reason() == Some(h2::Reason::REFUSED_STREAM) && e.is_reset();
        // h2 fails streams above a GOAWAY's last-stream-id (and any stream
        // opened after it) with the GOAWAY itself: never processed.
        let above_goaway = e.is_go_away() && e.is_remote();
        let message = describe_h2_error(e, self.state.inbound.received_goaway().as_ref());
        if !e.is_reset() {
            if above_goaway && !self.state.retired.load(Ordering::Acquire) {
                tracing::debug!(
                    connection = self.id(),
                    "APNs is closing the connection: {message}"
                );
            }
            let ending = if above_goaway {
                Ending::GoAway
            } else {
                Ending::Lost
            };
            self.state.retire(ending, &message);
        }
        let mut full = message.clone();
        if let Some(reason) = self.close_reason().filter(|r| *r != message) {
            full = format!("{full}; connection: {reason}");
        }
        StreamError {
            error: Error::Connection {
                message: full,
                may_have_been_delivered: sent && !refused && !above_goaway,
            },
            refused,
        }
    }
}

// Looked up in every answer: named once, not parsed from text each time.
const APNS_ID: HeaderName = HeaderName::from_static("apns-id");
const APNS_UNIQUE_ID: HeaderName = HeaderName::from_static("apns-unique-id");
const APNS_REQUEST_ID: HeaderName = HeaderName::from_static("apns-request-id");
const APNS_CHANNEL_ID: HeaderName = HeaderName::from_static("apns-channel-id");

/// Why a request got no answer on a connection.
#[derive(Debug)]
pub(crate) struct StreamError {
    pub error: Error,
    /// The server refused the stream (`REFUSED_STREAM`): it never processed
    /// it, and is under pressure.
    pub refused: bool,
}

async fn keepalive_loop(state: Arc<LinkState>, mut ping_pong: h2::PingPong, keepalive: Keepalive) {
    let check = (keepalive.idle / 4)
        .min(keepalive.silence / 2)
        .clamp(Duration::from_millis(10), Duration::from_secs(1));
    loop {
        tokio::time::sleep(check).await;
        if state.closed.load(Ordering::Acquire) || state.retired.load(Ordering::Acquire) {
            return;
        }
        // Busy: requests are outstanding and the server has been silent too
        // long (a black hole, a dead NAT mapping). Idle: nothing happened for
        // a while (keep NATs and firewalls honest).
        let busy = state.in_flight.load(Ordering::Acquire) > 0;
        let due = if busy {
            state.inbound.silent_for() >= keepalive.silence
        } else {
            state.idle_for() >= keepalive.idle
        };
        if !due {
            continue;
        }
        // An idle connection takes no new stream until it proved alive; a
        // busy one keeps working while the PING is out.
        if !busy {
            state.pinging.store(true, Ordering::Release);
        }
        let answered = timeout(keepalive.timeout, ping_pong.ping(h2::Ping::opaque())).await;
        match answered {
            Ok(Ok(_)) => {
                state.touch();
                state.pinging.store(false, Ordering::Release);
                state.pool.notify_waiters();
            }
            Ok(Err(e)) => {
                state.retire(
                    Ending::Lost,
                    &format!("PING failed: {}", describe_h2_error(&e, None)),
                );
                return;
            }
            Err(_) => {
                let what = if busy {
                    format!(
                        "no answer to a PING within {:?}, after {:?} without a frame while requests were outstanding",
                        keepalive.timeout, keepalive.silence
                    )
                } else {
                    format!(
                        "no answer to a keepalive PING within {:?}",
                        keepalive.timeout
                    )
                };
                tracing::info!(connection = state.id, "{what}; closing the connection");
                state.retire(Ending::Unresponsive, &what);
                // Close it: what is on the wire fails now ("may have been
                // delivered") instead of waiting out its deadline.
                state.kill.notify_one();
                return;
            }
        }
    }
}

/// A one-line description of an `h2` error, with the GOAWAY the server
/// sent (and its APNs reason) when there was one.
pub(crate) fn describe_h2_error(e: &h2::Error, goaway: Option<&GoAway>) -> String {
    if e.is_go_away() {
        if let (true, Some(g)) = (e.is_remote(), goaway) {
            return describe_goaway(g);
        }
        let reason = e.reason().map(|r| format!("{r:?}")).unwrap_or_default();
        let side = if e.is_remote() {
            "from the server"
        } else {
            "sent by the client"
        };
        format!("GOAWAY {reason} {side}")
    } else if e.reason() == Some(h2::Reason::REFUSED_STREAM) {
        "stream refused by the server (REFUSED_STREAM); not processed".into()
    } else if let Some(io) = e.get_io() {
        format!("I/O error: {io}")
    } else {
        e.to_string()
    }
}

/// A server's GOAWAY in one line: `GOAWAY NO_ERROR from the server, reason Shutdown`.
fn describe_goaway(g: &GoAway) -> String {
    let code = format!("{:?}", h2::Reason::from(g.error_code));
    match &g.reason {
        Some(reason) => format!("GOAWAY {code} from the server, reason {reason}"),
        None => format!("GOAWAY {code} from the server"),
    }
}

#[cfg(test)]
mod tests;
