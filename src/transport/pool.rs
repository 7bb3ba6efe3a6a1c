//! A pool of HTTP/2 connections to one endpoint for one credential.
//!
//! - Up to `size` connections, opened lazily when the live ones are full.
//! - A request takes a stream permit from a connection below its live
//!   `SETTINGS_MAX_CONCURRENT_STREAMS`, or waits (bounded by its deadline,
//!   and by `max_pending` waiters if set).
//! - A connection that failed, closed or was retired leaves its slot in
//!   jittered exponential backoff (about 1 s doubling to 60 s), reset by the
//!   next accepted request, so a failing endpoint is never hammered.
//! - A request that waits sees at most one connection attempt fail: it then
//!   fails with that attempt's error instead of waiting out its deadline.

use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rustls::ClientConfig;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::connection::{Connection, Keepalive, StreamPermit, Timeouts};
use super::Endpoint;
use crate::error::{Error, Result};

/// Pool settings.
#[derive(Debug, Clone)]
pub(crate) struct PoolConfig {
    pub size: usize,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    pub keepalive: Option<Keepalive>,
    pub max_pending: Option<usize>,
    /// Connect here instead of resolving the endpoint's host.
    pub resolve: Option<std::net::SocketAddr>,
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
}

struct Slots {
    slots: Vec<Slot>,
    // Counts failed connection attempts, so waiters know one failed since
    // they started waiting.
    failures_seen: u64,
    last_error: Option<Arc<Error>>,
}

struct Slot {
    state: SlotState,
    failures: u32,
}

enum SlotState {
    Empty,
    Connecting,
    Live(Arc<Connection>),
    Backoff(Instant),
}

enum Step {
    Ready(Arc<Connection>, StreamPermit),
    Connect(usize),
    Wait(Option<Instant>),
    Fail(Error),
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
            }),
            config,
            notify: Arc::new(Notify::new()),
            waiting: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            next: AtomicUsize::new(0),
            opened: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Slots> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Connections opened so far.
    pub(crate) fn connections_opened(&self) -> u64 {
        self.opened.load(Ordering::Relaxed)
    }

    /// Waits for a stream on some connection, preferring one other than
    /// `avoid` (for a resend after a refused stream).
    pub(crate) async fn acquire(
        self: &Arc<Self>,
        deadline: Instant,
        avoid: Option<u64>,
    ) -> Result<(Arc<Connection>, StreamPermit)> {
        let started_at_failures = self.lock().failures_seen;
        loop {
            if self.closed.load(Ordering::Acquire) {
                return Err(Error::Shutdown {
                    may_have_been_delivered: false,
                });
            }
            let mut notified = pin!(self.notify.notified());
            notified.as_mut().enable();
            match self.step(avoid, started_at_failures, deadline) {
                Step::Ready(conn, permit) => {
                    // Chain the wake-up: capacity may remain for another waiter.
                    if conn.in_flight() < conn.max_streams() {
                        self.notify.notify_one();
                    }
                    return Ok((conn, permit));
                }
                Step::Connect(i) => self.spawn_connect(i),
                Step::Fail(e) => return Err(e),
                Step::Wait(until) => {
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
                        return Err(Error::Timeout {
                            what: "waiting for a free stream",
                            after: self.timeouts.request,
                            may_have_been_delivered: false,
                        });
                    }
                }
            }
        }
    }

    fn step(&self, avoid: Option<u64>, started_at_failures: u64, deadline: Instant) -> Step {
        let now = Instant::now();
        let mut guard = self.lock();
        let slots = &mut *guard;
        let n = slots.slots.len();
        // Dead connections leave their slot in backoff.
        for slot in slots.slots.iter_mut() {
            if let SlotState::Live(conn) = &slot.state {
                if !conn.is_usable() {
                    slot.failures += 1;
                    slot.state = SlotState::Backoff(now + self.delay(slot.failures));
                }
            }
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        let mut avoided = None;
        for k in 0..n {
            let i = (start + k) % n;
            if let SlotState::Live(conn) = &slots.slots[i].state {
                if Some(conn.id()) == avoid {
                    avoided = Some(conn.clone());
                    continue;
                }
                if let Some(permit) = conn.try_acquire() {
                    return Step::Ready(conn.clone(), permit);
                }
            }
        }
        for (i, slot) in slots.slots.iter_mut().enumerate() {
            let free = match slot.state {
                SlotState::Empty => true,
                SlotState::Backoff(until) => until <= now,
                _ => false,
            };
            if free {
                slot.state = SlotState::Connecting;
                return Step::Connect(i);
            }
        }
        if let Some(conn) = avoided {
            if let Some(permit) = conn.try_acquire() {
                return Step::Ready(conn, permit);
            }
        }
        let any_alive = slots
            .slots
            .iter()
            .any(|s| matches!(s.state, SlotState::Live(_) | SlotState::Connecting));
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

    fn spawn_connect(self: &Arc<Self>, i: usize) {
        let pool = self.clone();
        tokio::spawn(async move {
            let result = Connection::connect(
                &pool.endpoint,
                pool.tls.clone(),
                &pool.timeouts,
                pool.config.keepalive,
                pool.notify.clone(),
                pool.config.resolve,
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
                    tracing::warn!(endpoint = %pool.endpoint, error = %e, "APNs connection attempt failed");
                    let slot = &mut slots.slots[i];
                    slot.failures += 1;
                    slot.state = SlotState::Backoff(Instant::now() + pool.delay(slot.failures));
                    slots.failures_seen += 1;
                    slots.last_error = Some(Arc::new(e));
                }
            }
            drop(slots);
            pool.notify.notify_waiters();
        });
    }

    /// Jittered exponential backoff: `min * 2^(failures-1)`, capped at `max`,
    /// then scaled by a random factor in [0.5, 1].
    fn delay(&self, failures: u32) -> Duration {
        let exp = failures.saturating_sub(1).min(16);
        let base = self
            .config
            .backoff_min
            .saturating_mul(1u32 << exp)
            .min(self.config.backoff_max);
        base.mul_f64(0.5 + 0.5 * random_fraction())
    }

    /// Takes `conn` out of service. With `backoff`, its slot waits before
    /// reconnecting (503, TooManyProviderTokenUpdates); without, a new
    /// connection may open at once (after re-minting an expired token).
    pub(crate) fn retire(&self, conn: &Connection, backoff: bool, reason: &str) {
        conn.retire(reason);
        let mut slots = self.lock();
        let now = Instant::now();
        let delay_for = |failures| self.delay(failures);
        for slot in slots.slots.iter_mut() {
            if matches!(&slot.state, SlotState::Live(c) if c.id() == conn.id()) {
                if backoff {
                    slot.failures += 1;
                    slot.state = SlotState::Backoff(now + delay_for(slot.failures));
                } else {
                    slot.state = SlotState::Empty;
                }
            }
        }
        drop(slots);
        self.notify.notify_waiters();
    }

    /// Records an accepted request: the connection's slot leaves backoff
    /// escalation.
    pub(crate) fn mark_healthy(&self, conn: &Connection) {
        let mut slots = self.lock();
        for slot in slots.slots.iter_mut() {
            if matches!(&slot.state, SlotState::Live(c) if c.id() == conn.id()) {
                slot.failures = 0;
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

/// A random number in [0, 1), for jitter.
fn random_fraction() -> f64 {
    (uuid::Uuid::new_v4().as_u128() as u64 >> 11) as f64 / (1u64 << 53) as f64
}
