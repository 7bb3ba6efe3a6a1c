//! A pool of HTTP/2 connections to one endpoint for one credential.
//!
//! - Up to `size` connections, opened lazily when the live ones are full.
//! - A request leases a stream on a connection below its live
//!   `SETTINGS_MAX_CONCURRENT_STREAMS`, or waits (bounded by its deadline,
//!   and by `max_pending` waiters if set).
//! - **Connection failures** (a connect, TLS or HTTP/2 handshake that
//!   failed, a connection that closed unexpectedly) put the slot in
//!   jittered exponential backoff (about 1 s doubling to 60 s), reset by the
//!   next answer. **Answers** from the server (500, 503, `Shutdown`, a
//!   GOAWAY...) never do: the slot reconnects when needed.
//! - **Probing.** After a transient error answer (500, 503, `Shutdown`,
//!   `TooManyProviderTokenUpdates`, `REFUSED_STREAM`), one request at a time
//!   goes out across the pool, spaced by the probe backoff, until one gets a
//!   real answer; then everything waiting resumes at full speed. An outage
//!   costs APNs a few requests per second, not a storm.
//! - **Liveness.** A connection that stopped answering (no PONG) is closed
//!   by its keepalive; its queued requests move to a new connection. If that
//!   one stops answering too before any answer came, the endpoint is
//!   unresponsive and the waiting requests fail (never sent) instead of
//!   waiting out their deadlines.
//! - A waiting request fails early when a connection attempt fails during
//!   its wait, or when the next attempt is due after its deadline.

use std::collections::BTreeSet;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use rustls::ClientConfig;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::connection::{Connection, Ending, Keepalive, Stage, StreamPermit, Timeouts};
use super::Endpoint;
use crate::backoff::Backoff;
use crate::error::{Error, Result};

/// Pool settings.
#[derive(Debug, Clone)]
pub(crate) struct PoolConfig {
    pub size: usize,
    /// Delays between connection attempts after connection failures.
    pub reconnect: Backoff,
    /// Spacing of probes while the server answers with transient errors.
    pub probe: Backoff,
    pub keepalive: Option<Keepalive>,
    pub max_pending: Option<usize>,
    /// How to reach the endpoint: a pinned address, a proxy, or DNS.
    pub route: super::Route,
}

pub(crate) struct Pool {
    endpoint: Endpoint,
    tls: Arc<ClientConfig>,
    timeouts: Timeouts,
    config: PoolConfig,
    slots: Mutex<Slots>,
    notify: Arc<Notify>,
    waiting: AtomicUsize,
    closed: AtomicBool,
    next: AtomicUsize,
    opened: AtomicU64,
    probes: AtomicU64,
    // Something to reset on the next answer: probing, strikes, or a slot
    // with failures. While false, answers cost nothing here.
    unhealthy: AtomicBool,
}

struct Slots {
    slots: Vec<Slot>,
    // Counts failed connection attempts (and unresponsive endpoints), so
    // waiters know one failed since they started waiting.
    failures_seen: u64,
    last_error: Option<Arc<Error>>,
    probing: Option<Probing>,
    // Connections found unresponsive since the last answer.
    strikes: u32,
    next_probe_id: u64,
    // Tickets of the requests waiting, in arrival order: while probing, the
    // oldest waiter sends the probe, so a notification that just failed goes
    // to the back of the line instead of spending all its retries.
    waiters: BTreeSet<u64>,
    next_ticket: u64,
}

/// One request at a time until the server gives a real answer.
struct Probing {
    failures: u32,
    next_at: Instant,
    // The id of the probe on the wire, if any.
    in_flight: Option<u64>,
}

struct Slot {
    state: SlotState,
    failures: u32,
}

enum SlotState {
    Empty,
    /// An attempt is under way, in this stage.
    Connecting(Arc<Stage>),
    Live(Arc<Connection>),
    Backoff(Instant),
}

enum Step {
    Ready(Arc<Connection>, StreamPermit, Option<u64>),
    Connect(usize),
    Wait(Option<Instant>),
    Fail(Error),
}

/// A stream on a connection, leased for one request. A lease taken while
/// the pool probes is *the* probe; dropping it without a verdict lets the
/// next probe go.
pub(crate) struct Lease {
    pub(crate) conn: Arc<Connection>,
    pub(crate) permit: StreamPermit,
    probe: Option<ProbeGuard>,
}

impl Lease {
    /// Whether this request is the one probe allowed during an outage.
    pub(crate) fn is_probe(&self) -> bool {
        self.probe.is_some()
    }
}

/// A waiting request's place in line; leaving the line (served, timed out
/// or cancelled) lets the next one move up.
struct Ticket<'a> {
    pool: &'a Pool,
    id: u64,
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        let mut slots = self.pool.lock();
        let was_first = slots.waiters.first() == Some(&self.id);
        slots.waiters.remove(&self.id);
        let probing = slots.probing.is_some();
        drop(slots);
        if was_first && probing {
            self.pool.notify.notify_waiters();
        }
    }
}

struct ProbeGuard {
    pool: Arc<Pool>,
    id: u64,
}

impl Drop for ProbeGuard {
    fn drop(&mut self) {
        let mut slots = self.pool.lock();
        if let Some(p) = &mut slots.probing {
            if p.in_flight == Some(self.id) {
                p.in_flight = None;
            }
        }
        drop(slots);
        self.pool.notify.notify_waiters();
    }
}

/// What a request's answer says about the endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// A real answer (accepted, or rejected for a reason of the request):
    /// the endpoint works; probing ends.
    Answered,
    /// A transient error answer or a refused stream: probe.
    Trouble {
        /// Take the connection out of service (503, `Shutdown`,
        /// `TooManyProviderTokenUpdates`); the slot reconnects when needed.
        retire: bool,
    },
    /// Use a new connection, at once (`IdleTimeout`, an expired token).
    Reconnect,
}

impl Pool {
    pub(crate) fn new(
        endpoint: Endpoint,
        tls: Arc<ClientConfig>,
        timeouts: Timeouts,
        config: PoolConfig,
    ) -> Pool {
        let size = config.size.max(1);
        Pool {
            endpoint,
            tls,
            timeouts,
            slots: Mutex::new(Slots {
                slots: (0..size)
                    .map(|_| Slot {
                        state: SlotState::Empty,
                        failures: 0,
                    })
                    .collect(),
                failures_seen: 0,
                last_error: None,
                probing: None,
                strikes: 0,
                next_probe_id: 1,
                waiters: BTreeSet::new(),
                next_ticket: 1,
            }),
            config,
            notify: Arc::new(Notify::new()),
            waiting: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            next: AtomicUsize::new(0),
            opened: AtomicU64::new(0),
            probes: AtomicU64::new(0),
            unhealthy: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Slots> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Connections opened so far.
    pub(crate) fn connections_opened(&self) -> u64 {
        self.opened.load(Ordering::Relaxed)
    }

    /// Probes sent while the server answered with transient errors.
    pub(crate) fn probes_sent(&self) -> u64 {
        self.probes.load(Ordering::Relaxed)
    }

    /// The proxy connections go through, if any.
    pub(crate) fn proxy(&self) -> Option<&super::Proxy> {
        self.config.route.proxy.as_deref()
    }

    /// What each slot holds now, for metrics and health checks. Takes the
    /// pool's lock briefly; never called on the send path.
    pub(crate) fn connections(&self) -> Vec<super::snapshot::ConnectionInfo> {
        use super::snapshot::{ConnectionInfo, ConnectionState};
        let slots = self.lock();
        slots
            .slots
            .iter()
            .enumerate()
            .map(|(slot, s)| {
                let (state, stream_limit, in_flight) = match &s.state {
                    SlotState::Empty => (ConnectionState::Idle, None, 0),
                    SlotState::Connecting(_) => (ConnectionState::Connecting, None, 0),
                    SlotState::Backoff(_) => (ConnectionState::Backoff, None, 0),
                    SlotState::Live(c) => (
                        if c.is_usable() {
                            ConnectionState::Open
                        } else {
                            ConnectionState::Draining
                        },
                        Some(c.max_streams()),
                        c.in_flight(),
                    ),
                };
                ConnectionInfo {
                    slot,
                    state,
                    stream_limit,
                    in_flight,
                }
            })
            .collect()
    }

    /// Waits for a stream on some connection, preferring one other than
    /// `avoid` (for a resend after a refused stream).
    pub(crate) async fn acquire(
        self: &Arc<Self>,
        deadline: Instant,
        avoid: Option<u64>,
    ) -> Result<Lease> {
        let started_at_failures = self.lock().failures_seen;
        let mut ticket: Option<Ticket<'_>> = None;
        loop {
            if self.closed.load(Ordering::Acquire) {
                return Err(Error::Shutdown {
                    may_have_been_delivered: false,
                });
            }
            let mut notified = pin!(self.notify.notified());
            notified.as_mut().enable();
            match self.step(
                avoid,
                started_at_failures,
                deadline,
                ticket.as_ref().map(|t| t.id),
            ) {
                Step::Ready(conn, permit, probe) => {
                    // Chain the wake-up: capacity may remain for another waiter.
                    if probe.is_none() && conn.in_flight() < conn.max_streams() {
                        self.notify.notify_one();
                    }
                    if probe.is_some() {
                        self.probes.fetch_add(1, Ordering::Relaxed);
                    }
                    return Ok(Lease {
                        conn,
                        permit,
                        probe: probe.map(|id| ProbeGuard {
                            pool: self.clone(),
                            id,
                        }),
                    });
                }
                Step::Connect(i) => self.spawn_connect(i),
                Step::Fail(e) => return Err(e),
                Step::Wait(until) => {
                    if ticket.is_none() {
                        ticket = Some(self.take_ticket());
                    }
                    if let Some(max) = self.config.max_pending {
                        if self.waiting.load(Ordering::Acquire) >= max {
                            return Err(Error::QueueFull { limit: max });
                        }
                    }
                    let wake = until.map_or(deadline, |u| u.min(deadline));
                    self.waiting.fetch_add(1, Ordering::AcqRel);
                    let woke = tokio::time::timeout_at(wake, notified).await;
                    self.waiting.fetch_sub(1, Ordering::AcqRel);
                    if woke.is_err() && wake >= deadline {
                        return Err(self.wait_timed_out());
                    }
                }
            }
        }
    }

    /// The error of a request whose deadline passed while it waited: the
    /// stage a connection attempt is stuck in (TCP, the proxy's CONNECT,
    /// TLS, the first SETTINGS) when one is under way and no connection
    /// is live, else "waiting for a free stream" (every stream busy).
    fn wait_timed_out(&self) -> Error {
        let after = self.timeouts.request;
        let slots = self.lock();
        let live = slots
            .slots
            .iter()
            .any(|s| matches!(&s.state, SlotState::Live(c) if c.is_usable()));
        let stuck = slots.slots.iter().find_map(|s| match &s.state {
            SlotState::Connecting(stage) => Some(stage.clone()),
            _ => None,
        });
        drop(slots);
        match stuck {
            Some(stage) if !live => stage.timed_out(
                after,
                self.config.route.proxy.as_deref(),
                &self.endpoint.authority(),
            ),
            _ => Error::Timeout {
                what: "waiting for a free stream",
                after,
                may_have_been_delivered: false,
            },
        }
    }

    fn take_ticket(&self) -> Ticket<'_> {
        let mut slots = self.lock();
        let id = slots.next_ticket;
        slots.next_ticket += 1;
        slots.waiters.insert(id);
        Ticket { pool: self, id }
    }

    fn step(
        &self,
        avoid: Option<u64>,
        started_at_failures: u64,
        deadline: Instant,
        ticket: Option<u64>,
    ) -> Step {
        let now = Instant::now();
        let mut guard = self.lock();
        let slots = &mut *guard;
        self.sweep(slots, now);

        // While probing, one request at a time, spaced by the probe backoff.
        let probe = match &slots.probing {
            Some(p) if p.in_flight.is_some() => return Step::Wait(None),
            Some(p) if p.next_at > now => return Step::Wait(Some(p.next_at)),
            Some(_) => match slots.waiters.first() {
                Some(first) if Some(*first) != ticket => return Step::Wait(None),
                _ => true,
            },
            None => false,
        };
        let n = slots.slots.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        let mut avoided = None;
        let mut found = None;
        for k in 0..n {
            let i = (start + k) % n;
            if let SlotState::Live(conn) = &slots.slots[i].state {
                if Some(conn.id()) == avoid {
                    avoided = Some(conn.clone());
                    continue;
                }
                if let Some(permit) = conn.try_acquire() {
                    found = Some((conn.clone(), permit));
                    break;
                }
            }
        }
        if found.is_none() {
            for (i, slot) in slots.slots.iter_mut().enumerate() {
                let free = match slot.state {
                    SlotState::Empty => true,
                    SlotState::Backoff(until) => until <= now,
                    _ => false,
                };
                if free {
                    slot.state = SlotState::Connecting(Arc::default());
                    return Step::Connect(i);
                }
            }
            if let Some(conn) = avoided {
                if let Some(permit) = conn.try_acquire() {
                    found = Some((conn, permit));
                }
            }
        }
        if let Some((conn, permit)) = found {
            let probe_id = probe.then(|| {
                let id = slots.next_probe_id;
                slots.next_probe_id += 1;
                if let Some(p) = &mut slots.probing {
                    p.in_flight = Some(id);
                }
                id
            });
            return Step::Ready(conn, permit, probe_id);
        }
        let any_alive = slots
            .slots
            .iter()
            .any(|s| matches!(s.state, SlotState::Live(_) | SlotState::Connecting(_)));
        if any_alive {
            return Step::Wait(None);
        }
        let last_error = slots.last_error.clone().unwrap_or_else(|| {
            Arc::new(Error::Connection {
                message: "the connection closed".into(),
                may_have_been_delivered: false,
            })
        });
        if slots.failures_seen > started_at_failures {
            return Step::Fail(Error::Unavailable {
                endpoint: self.endpoint.authority(),
                source: last_error,
                retry_in: None,
            });
        }
        let earliest = slots
            .slots
            .iter()
            .filter_map(|s| match s.state {
                SlotState::Backoff(until) => Some(until),
                _ => None,
            })
            .min();
        match earliest {
            Some(until) if until > deadline => Step::Fail(Error::Unavailable {
                endpoint: self.endpoint.authority(),
                source: last_error,
                retry_in: Some(until - now),
            }),
            other => Step::Wait(other),
        }
    }

    /// Frees the slots of connections that ended, deciding how soon each
    /// may reconnect from how it ended.
    fn sweep(&self, slots: &mut Slots, now: Instant) {
        for i in 0..slots.slots.len() {
            let SlotState::Live(conn) = &slots.slots[i].state else {
                continue;
            };
            if conn.is_usable() {
                continue;
            }
            let ending = conn.ending();
            let reason = conn.close_reason().unwrap_or_default();
            match ending {
                // The client retired it for an answer, or the server said
                // GOAWAY: answers, not failures.
                Ending::Open | Ending::Retired | Ending::GoAway => {
                    slots.slots[i].state = SlotState::Empty;
                }
                Ending::Unresponsive => {
                    slots.strikes += 1;
                    self.unhealthy.store(true, Ordering::Release);
                    if slots.strikes >= 2 {
                        // A second connection stopped answering before any
                        // answer came: the endpoint is unresponsive.
                        tracing::info!(endpoint = %self.endpoint, "APNs stopped answering on two connections in a row; failing the requests waiting for it");
                        slots.failures_seen += 1;
                        slots.last_error = Some(Arc::new(Error::Connection {
                            message: format!("APNs stopped answering ({reason})"),
                            may_have_been_delivered: false,
                        }));
                        let slot = &mut slots.slots[i];
                        slot.failures += 1;
                        self.unhealthy.store(true, Ordering::Release);
                        slot.state =
                            SlotState::Backoff(now + self.config.reconnect.delay(slot.failures));
                    } else {
                        // Queued requests move to a new connection, one
                        // request at a time until it answers.
                        slots.slots[i].state = SlotState::Empty;
                        slots.probing.get_or_insert(Probing {
                            failures: 0,
                            next_at: now,
                            in_flight: None,
                        });
                    }
                }
                Ending::Lost => {
                    let slot = &mut slots.slots[i];
                    slot.failures += 1;
                    self.unhealthy.store(true, Ordering::Release);
                    slot.state =
                        SlotState::Backoff(now + self.config.reconnect.delay(slot.failures));
                }
            }
        }
    }

    fn spawn_connect(self: &Arc<Self>, i: usize) {
        let pool = self.clone();
        let stage = match &self.lock().slots[i].state {
            SlotState::Connecting(stage) => stage.clone(),
            _ => Arc::default(),
        };
        tokio::spawn(async move {
            let result = Connection::connect(
                &pool.endpoint,
                pool.tls.clone(),
                &pool.timeouts,
                pool.config.keepalive,
                pool.notify.clone(),
                &pool.config.route,
                &stage,
            )
            .await;
            let mut slots = pool.lock();
            match result {
                Ok(conn) if !pool.closed.load(Ordering::Acquire) => {
                    pool.opened.fetch_add(1, Ordering::Relaxed);
                    slots.slots[i].state = SlotState::Live(Arc::new(conn));
                }
                Ok(conn) => {
                    conn.retire("client shut down");
                    slots.slots[i].state = SlotState::Empty;
                }
                Err(e) => {
                    // The failed sends carry this error; a WARN would repeat them.
                    tracing::info!(endpoint = %pool.endpoint, error = %e, "APNs connection attempt failed");
                    let slot = &mut slots.slots[i];
                    slot.failures += 1;
                    pool.unhealthy.store(true, Ordering::Release);
                    slot.state = SlotState::Backoff(
                        Instant::now() + pool.config.reconnect.delay(slot.failures),
                    );
                    slots.failures_seen += 1;
                    slots.last_error = Some(Arc::new(e));
                }
            }
            drop(slots);
            pool.notify.notify_waiters();
        });
    }

    /// Records what the answer to a leased request says about the endpoint.
    pub(crate) fn report(&self, lease: &Lease, verdict: Verdict, reason: &str) {
        let conn = &lease.conn;
        // The common case, an answer while all is well, takes no lock and
        // wakes nobody: the stream permit's release wakes the next waiter.
        if verdict == Verdict::Answered && !self.unhealthy.load(Ordering::Acquire) {
            return;
        }
        let mut slots = self.lock();
        match verdict {
            Verdict::Answered => {
                slots.probing = None;
                slots.strikes = 0;
                for slot in slots.slots.iter_mut() {
                    if matches!(&slot.state, SlotState::Live(c) if c.id() == conn.id()) {
                        slot.failures = 0;
                    }
                }
                let still = slots.slots.iter().any(|s| s.failures > 0);
                self.unhealthy.store(still, Ordering::Release);
            }
            Verdict::Trouble { retire } => {
                let now = Instant::now();
                let probe = &self.config.probe;
                match &mut slots.probing {
                    None => {
                        tracing::info!(endpoint = %self.endpoint, %reason, "APNs answered with a transient error; probing with one request at a time");
                        slots.probing = Some(Probing {
                            failures: 1,
                            next_at: now + probe.delay(1),
                            in_flight: None,
                        });
                        self.unhealthy.store(true, Ordering::Release);
                    }
                    // Only the probe's failure spaces the next probe: the
                    // answers to requests already on the wire say nothing new.
                    Some(p) if lease.probe.as_ref().map(|g| g.id) == p.in_flight => {
                        p.failures = p.failures.saturating_add(1);
                        p.next_at = now + probe.delay(p.failures);
                        p.in_flight = None;
                    }
                    Some(_) => {}
                }
                if retire {
                    Self::free_slot(&mut slots, conn, reason);
                }
            }
            Verdict::Reconnect => Self::free_slot(&mut slots, conn, reason),
        }
        drop(slots);
        self.notify.notify_waiters();
    }

    fn free_slot(slots: &mut Slots, conn: &Connection, reason: &str) {
        conn.retire(reason);
        for slot in slots.slots.iter_mut() {
            if matches!(&slot.state, SlotState::Live(c) if c.id() == conn.id()) {
                slot.state = SlotState::Empty;
            }
        }
    }

    /// Stops all connections; waiting and later requests fail.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        let mut slots = self.lock();
        for slot in slots.slots.iter_mut() {
            if let SlotState::Live(conn) = &slot.state {
                conn.retire("client shut down");
            }
            slot.state = SlotState::Empty;
        }
        drop(slots);
        self.notify.notify_waiters();
    }
}
