//! The gateway's client connections: who holds a slot, which one gives it
//! up when a new client arrives, and the deadlines of each.
//!
//! - **First request.** A connection whose first request has not reached
//!   the router within [`Limits::first_request_timeout`] of being accepted
//!   (TLS handshake, protocol detection and the request head included) is
//!   closed, whether it is plain TCP, TLS or HTTP/2 (a preface, SETTINGS
//!   and PING answers are not a request).
//! - **Idle.** A connection that has served requests and has none in
//!   progress for [`Limits::idle_timeout`] is closed gracefully (HTTP/2:
//!   GOAWAY; HTTP/1.1: closed between requests).
//! - **Eviction.** [`Limits::max_connections`] slots. When every slot is
//!   taken, a new connection evicts the connection that has no request in
//!   progress and has been idle longest, connections that never sent a
//!   request first (oldest first). So silent or idle clients can never
//!   keep a real client out: it gets a slot at once. Only when every slot
//!   has a request in progress do new connections wait in the kernel's
//!   backlog.
//!
//! [`Limits::first_request_timeout`]: super::Limits::first_request_timeout
//! [`Limits::idle_timeout`]: super::Limits::idle_timeout
//! [`Limits::max_connections`]: super::Limits::max_connections

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper_util::service::TowerToHyperService;
use tokio::sync::Notify;

/// How long a connection asked to close (idle, evicted, shutting down)
/// may take to say goodbye (HTTP/2 GOAWAY and its PING) once it has no
/// request in progress, before it is dropped.
pub(crate) const CLOSE_LINGER: Duration = Duration::from_secs(1);

/// Every open connection, and the requests in progress over all of them.
pub(crate) struct Registry {
    epoch: Instant,
    max: usize,
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
    next_id: AtomicU64,
    in_progress: AtomicUsize,
    /// Woken when a slot may have become free or evictable.
    changed: Notify,
}

/// One connection's state, shared by its task and its service.
pub(crate) struct Conn {
    id: u64,
    accepted: Instant,
    /// Requests started on it so far.
    requests: AtomicU64,
    in_progress: AtomicUsize,
    /// When it last had no request in progress, in ms since the
    /// registry's epoch.
    idle_since_ms: AtomicU64,
    /// Asks its task to close it (a new connection took its slot).
    pub(crate) evict: Notify,
    /// Tells its task that its last request in progress ended, so that
    /// its idle deadline starts.
    pub(crate) went_idle: Notify,
}

impl Registry {
    pub(crate) fn new(max: usize) -> Self {
        Registry {
            epoch: Instant::now(),
            max: max.max(1),
            conns: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            in_progress: AtomicUsize::new(0),
            changed: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Conn>>> {
        self.conns.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Requests in progress, over every connection.
    pub(crate) fn in_progress(&self) -> usize {
        self.in_progress.load(Ordering::Acquire)
    }

    /// Open connections.
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether a new connection can have a slot now: one is free, or one
    /// can be evicted.
    pub(crate) fn has_room(&self) -> bool {
        let conns = self.lock();
        conns.len() < self.max || conns.values().any(|c| c.evictable())
    }

    /// Waits until [`has_room`](Self::has_room) may have changed.
    pub(crate) async fn changed(&self) {
        self.changed.notified().await
    }

    /// A slot for a new connection, evicting one when all are taken (see
    /// the module's rule); `None` when every slot has a request in
    /// progress.
    pub(crate) fn admit(self: &Arc<Self>) -> Option<Slot> {
        let mut conns = self.lock();
        if conns.len() >= self.max {
            // Never-used connections first, then the longest idle.
            let victim = conns
                .values()
                .filter(|c| c.evictable())
                .min_by_key(|c| {
                    (
                        c.requests.load(Ordering::Acquire) > 0,
                        c.idle_since_ms.load(Ordering::Acquire),
                        c.id,
                    )
                })
                .cloned()?;
            conns.remove(&victim.id);
            victim.evict.notify_one();
            tracing::debug!(
                connection = victim.id,
                "gateway: every connection slot is taken; closing the longest idle connection"
            );
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Conn {
            id,
            accepted: Instant::now(),
            requests: AtomicU64::new(0),
            in_progress: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(self.now_ms()),
            evict: Notify::new(),
            went_idle: Notify::new(),
        });
        conns.insert(id, conn.clone());
        Some(Slot {
            conn,
            registry: self.clone(),
        })
    }
}

impl Conn {
    fn evictable(&self) -> bool {
        self.in_progress.load(Ordering::Acquire) == 0
    }

    /// Requests in progress on it.
    pub(crate) fn in_progress(&self) -> usize {
        self.in_progress.load(Ordering::Acquire)
    }
}

/// A connection's hold on its slot: given back when dropped (the
/// connection's task ended, or was aborted).
pub(crate) struct Slot {
    pub(crate) conn: Arc<Conn>,
    registry: Arc<Registry>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.registry.lock().remove(&self.conn.id);
        self.registry.changed.notify_one();
    }
}

/// When a connection must be looked at again, and what is due then.
pub(crate) enum Due {
    /// No request within the first-request deadline: close it now.
    NeverUsed,
    /// Idle past the idle timeout: close it gracefully.
    Idle,
    /// Nothing yet; look again at this instant.
    At(Instant),
}

impl Slot {
    /// A service counting this connection's requests around `inner`.
    pub(crate) fn service(&self, inner: TowerToHyperService<axum::Router>) -> Tracked {
        Tracked {
            inner,
            conn: self.conn.clone(),
            registry: self.registry.clone(),
        }
    }

    /// Whether a request ever reached the router on this connection.
    pub(crate) fn ever_used(&self) -> bool {
        self.conn.requests.load(Ordering::Acquire) > 0
    }

    /// What the connection's deadlines say now.
    pub(crate) fn due(&self, first_request: Duration, idle: Duration) -> Due {
        let c = &self.conn;
        let now = Instant::now();
        let later = |d: Duration| {
            now.checked_add(d)
                .unwrap_or(now + Duration::from_secs(86_400))
        };
        if !self.ever_used() {
            return match c.accepted.checked_add(first_request) {
                Some(at) if at > now => Due::At(at),
                Some(_) => Due::NeverUsed,
                None => Due::At(later(Duration::from_secs(86_400))),
            };
        }
        if c.in_progress() > 0 {
            return Due::At(later(idle));
        }
        let since =
            self.registry.epoch + Duration::from_millis(c.idle_since_ms.load(Ordering::Acquire));
        match since.checked_add(idle) {
            Some(at) if at > now => Due::At(at),
            Some(_) => Due::Idle,
            None => Due::At(later(Duration::from_secs(86_400))),
        }
    }
}

/// The router, counting the requests in progress (per connection and in
/// all) from the moment a request head is complete until its response is
/// ready.
#[derive(Clone)]
pub(crate) struct Tracked {
    inner: TowerToHyperService<axum::Router>,
    conn: Arc<Conn>,
    registry: Arc<Registry>,
}

/// One request in progress; counted off when dropped (answered, or its
/// connection gone).
struct Busy {
    conn: Arc<Conn>,
    registry: Arc<Registry>,
}

impl Busy {
    fn begin(conn: &Arc<Conn>, registry: &Arc<Registry>) -> Self {
        conn.requests.fetch_add(1, Ordering::AcqRel);
        conn.in_progress.fetch_add(1, Ordering::AcqRel);
        registry.in_progress.fetch_add(1, Ordering::AcqRel);
        Busy {
            conn: conn.clone(),
            registry: registry.clone(),
        }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.conn
            .idle_since_ms
            .store(self.registry.now_ms(), Ordering::Release);
        if self.conn.in_progress.fetch_sub(1, Ordering::AcqRel) == 1 {
            // Evictable again, and its idle deadline starts.
            self.registry.changed.notify_one();
            self.conn.went_idle.notify_one();
        }
        self.registry.in_progress.fetch_sub(1, Ordering::AcqRel);
    }
}

type Answer = hyper::Response<axum::body::Body>;

impl hyper::service::Service<hyper::Request<Incoming>> for Tracked {
    type Response = Answer;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Answer, Infallible>> + Send>>;

    fn call(&self, request: hyper::Request<Incoming>) -> Self::Future {
        let busy = Busy::begin(&self.conn, &self.registry);
        let answer = self.inner.call(request);
        Box::pin(async move {
            let answer = answer.await;
            drop(busy);
            answer
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_registry_evicts_the_never_used_then_the_longest_idle_never_the_busy() {
        let r = Arc::new(Registry::new(3));
        let a = r.admit().unwrap();
        let b = r.admit().unwrap();
        let c = r.admit().unwrap();
        // a and b serve a request; a's stays in progress.
        let busy_a = Busy::begin(&a.conn, &r);
        drop(Busy::begin(&b.conn, &r));
        assert!(r.has_room(), "b and c are evictable");
        // c never sent a request: it goes first.
        let d = r.admit().unwrap();
        assert!(!r.lock().contains_key(&c.conn.id));
        drop(Busy::begin(&d.conn, &r));
        // Then the longest idle, b; never a, which is busy.
        let e = r.admit().unwrap();
        assert!(!r.lock().contains_key(&b.conn.id));
        assert!(r.lock().contains_key(&a.conn.id));
        let _busy = (Busy::begin(&d.conn, &r), Busy::begin(&e.conn, &r));
        assert!(!r.has_room(), "every slot busy");
        assert!(r.admit().is_none());
        assert_eq!(r.in_progress(), 3);
        drop(busy_a);
        assert!(r.has_room());
        drop((a, b, c));
        assert_eq!(r.len(), 2);
    }
}
