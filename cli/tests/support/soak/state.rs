//! What the soak's tasks share: the phase, the counts of each phase, the jobs, the surprises.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// What happened during one phase (a request counts in the phase it
/// started in).
#[derive(Default, Clone)]
pub struct Counts {
    pub batches: u64,
    pub accepted: u64,
    pub answered_503: u64,
    pub no_answer: u64,
    pub other: u64,
    pub skipped: u64,
    pub given_up: u64,
    pub health_ok: u64,
    pub health_fail: u64,
    pub bad_token: u64,
    pub bad_token_wrong: u64,
    /// Bad-token connections from the attackers' address evicted during
    /// the flood before their request arrived.
    pub bad_token_evicted: u64,
    pub huge: u64,
    pub huge_413: u64,
    pub huge_cut: u64,
    pub huge_wrong: u64,
}

/// State shared by the soak's tasks.
pub struct Shared {
    pub start: Instant,
    pub phase: AtomicUsize,
    pub counts: Mutex<Vec<Counts>>,
    /// Job ids from 202 answers.
    pub jobs: Mutex<HashSet<String>>,
    /// Device tokens of attempts answered otherwise or not at all: part of
    /// such a batch may have been enqueued.
    pub unsure: Mutex<HashSet<String>>,
    /// When 202s and healthy /healthz answers came (seconds).
    pub accepted_at: Mutex<Vec<f64>>,
    pub healthy_at: Mutex<Vec<f64>>,
    /// The first unexpected answers, said as they were.
    pub surprises: Mutex<Vec<String>>,
    pub next_token: AtomicU64,
    pub waiting: AtomicU64,
    pub stop: AtomicBool,
    /// While the hostile phase's attackers flood the gateway: a hostile
    /// client's own fresh connection may then be evicted before its first
    /// request (the documented eviction rule), which is no failure.
    pub flooding: AtomicBool,
}

impl Shared {
    pub fn now(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }
    pub fn phase(&self) -> usize {
        self.phase.load(Ordering::Relaxed)
    }
    pub fn count(&self, phase: usize, f: impl FnOnce(&mut Counts)) {
        f(&mut self.counts.lock().unwrap()[phase]);
    }
    pub fn surprise(&self, what: String) {
        let mut s = self.surprises.lock().unwrap();
        if s.len() < 20 {
            s.push(what);
        }
    }
}
