//! What a worker's tasks and its handles share: the run state (running,
//! stopping, aborted) and the counters behind [`WorkerStats`].

use std::sync::atomic::{AtomicU64, Ordering};

use super::queue::Target;

/// The run states, in order: a state only ever goes up.
pub(crate) const RUNNING: u8 = 0;
pub(crate) const STOPPING: u8 = 1;
pub(crate) const ABORTED: u8 = 2;

/// What a worker has done: counts since it started, and the group's state
/// as last seen.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WorkerStats {
    /// New jobs read.
    pub read: u64,
    /// Jobs claimed from other consumers (or taken back from an earlier
    /// run with this consumer name).
    pub claimed: u64,
    /// Results written saying APNs accepted the notification.
    pub accepted: u64,
    /// Results written with a rejection by APNs.
    pub rejected: u64,
    /// Results written without an answer (at-most-once: may have been
    /// delivered).
    pub failed: u64,
    /// Jobs sent to the dead letter (each with a result too).
    pub dead_lettered: u64,
    /// Times a job was left pending to be tried again after a failure to
    /// reach APNs (a job tried three times counts three).
    pub retried: u64,
    /// Jobs this worker left pending to be tried again, and has not
    /// finished since: each once, however often it was tried. After a
    /// graceful stop, with no other worker, `XPENDING` shows these.
    pub left_pending: u64,
    /// Jobs whose result another worker wrote (it claimed them meanwhile).
    pub taken_over: u64,
    /// Jobs in flight now: read or claimed, result not yet written.
    pub in_flight: u64,
    /// Entries pending in the group (all consumers), as last seen.
    pub pending: Option<u64>,
    /// Entries not yet delivered to any consumer, as last seen.
    pub lag: Option<u64>,
    /// Redis errors met (each waited out).
    pub redis_errors: u64,
}

impl WorkerStats {
    /// Results written (accepted, rejected, failed and dead-lettered).
    pub fn results(&self) -> u64 {
        self.accepted + self.rejected + self.failed + self.dead_lettered
    }
}

/// State shared by a worker's tasks and its handles.
pub(crate) struct Shared {
    pub state: tokio::sync::watch::Sender<u8>,
    pub read: AtomicU64,
    pub claimed: AtomicU64,
    pub accepted: AtomicU64,
    pub rejected: AtomicU64,
    pub failed: AtomicU64,
    pub dead_lettered: AtomicU64,
    pub retried: AtomicU64,
    /// Entry ids whose last outcome this worker wrote left them pending.
    pub left: std::sync::Mutex<std::collections::HashSet<String>>,
    pub taken_over: AtomicU64,
    /// Jobs being handled (read or claimed, outcome not yet written).
    pub in_flight: AtomicU64,
    /// `u64::MAX` when unknown.
    pub pending: AtomicU64,
    pub lag: AtomicU64,
}

impl Default for Shared {
    fn default() -> Self {
        Shared {
            state: tokio::sync::watch::Sender::new(RUNNING),
            read: AtomicU64::new(0),
            claimed: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            dead_lettered: AtomicU64::new(0),
            retried: AtomicU64::new(0),
            left: Default::default(),
            taken_over: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            pending: AtomicU64::new(u64::MAX),
            lag: AtomicU64::new(u64::MAX),
        }
    }
}

impl Shared {
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self, target: &Target) -> WorkerStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let known = |c: &AtomicU64| Some(get(c)).filter(|v| *v != u64::MAX);
        WorkerStats {
            read: get(&self.read),
            claimed: get(&self.claimed),
            accepted: get(&self.accepted),
            rejected: get(&self.rejected),
            failed: get(&self.failed),
            dead_lettered: get(&self.dead_lettered),
            retried: get(&self.retried),
            left_pending: self.left.lock().unwrap_or_else(|p| p.into_inner()).len() as u64,
            taken_over: get(&self.taken_over),
            in_flight: get(&self.in_flight),
            pending: known(&self.pending),
            lag: known(&self.lag),
            redis_errors: target.errors.load(Ordering::Relaxed),
        }
    }
}
