//! What the worker's tasks share (`Ctx`), why one ends early (`Halt`),
//! and how they call Redis until it answers (`retrying!`). A leaf: it
//! imports none of the loops (`run.rs`, `deliver.rs`, `finish.rs`).

use std::collections::HashSet;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

use super::apps::AppCache;
use super::config::Config;
use super::decide::Action;
use super::queue::{self, Conn, Target};
use super::stats::Shared;
use crate::backoff::Backoff;
use crate::error::{Error, Result};
use crate::notification::Notification;
use crate::response::Response;

/// The response timeout of the connections that do not block.
pub(super) const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);
/// After failures to reach APNs, reading pauses this long (doubling).
const INTAKE_PAUSE: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(30));

/// Why a task ended early.
pub(super) enum Halt {
    /// A stop was asked for while Redis could not be reached.
    Stopped,
    /// Something waiting cannot fix.
    Fatal(Error),
}

/// One send to APNs a worker made, as told to an
/// [`on_sent`](super::WorkerBuilder::on_sent) observer.
#[derive(Debug)]
#[non_exhaustive]
pub struct Sent<'a> {
    /// The job's app (`None` for a job naming none).
    pub app: Option<&'a str>,
    /// The notification sent.
    pub notification: &'a Notification,
    /// APNs' answer, or the error that kept one from coming.
    pub result: &'a Result<Response>,
    /// From the send to its result, retries included.
    pub elapsed: Duration,
}

/// What [`WorkerBuilder::on_sent`](super::WorkerBuilder::on_sent) takes.
pub(super) type OnSent = Arc<dyn Fn(&Sent<'_>) + Send + Sync>;

/// One job's outcome, on its way to the finisher (`finish.rs`).
pub(super) struct Finish {
    pub id: String,
    pub key: String,
    /// The marker this worker set; the outcome is written only if it is
    /// still there.
    pub expected: String,
    pub action: Action,
    pub _permit: OwnedSemaphorePermit,
}

pub(super) struct Ctx {
    pub config: Config,
    pub target: Arc<Target>,
    pub shared: Arc<Shared>,
    pub apps: AppCache,
    pub permits: Arc<Semaphore>,
    /// Entry ids this worker is handling, so that a claim of one of its
    /// own slow jobs does not start it twice.
    pub in_flight: Mutex<HashSet<String>>,
    pub finish: mpsc::UnboundedSender<Finish>,
    pause_until: Mutex<Option<Instant>>,
    fail_streak: AtomicU32,
    pub on_sent: Option<OnSent>,
}

impl Ctx {
    pub fn new(
        config: Config,
        target: Arc<Target>,
        shared: Arc<Shared>,
        apps: AppCache,
        finish: mpsc::UnboundedSender<Finish>,
        on_sent: Option<OnSent>,
    ) -> Ctx {
        Ctx {
            permits: Arc::new(Semaphore::new(config.concurrency)),
            config,
            target,
            shared,
            apps,
            in_flight: Mutex::new(HashSet::new()),
            finish,
            pause_until: Mutex::new(None),
            fail_streak: AtomicU32::new(0),
            on_sent,
        }
    }

    pub fn state(&self) -> u8 {
        *self.shared.state.borrow()
    }

    pub fn forget(&self, id: &str) {
        let mut mine = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        mine.remove(id);
        self.shared
            .in_flight
            .store(mine.len() as u64, Ordering::Relaxed);
    }

    /// A send failed without an answer: pause intake, longer each time, and
    /// say why at the 1st, 2nd, 4th, 8th... failure in a row (the job stays
    /// pending; without this line an operator would see only counters).
    pub fn note_failure(&self, error: &crate::Error) {
        let streak = self.fail_streak.fetch_add(1, Ordering::Relaxed) + 1;
        if streak.is_power_of_two() {
            tracing::warn!(
                failures_in_a_row = streak,
                "sends are failing: {error}; the jobs stay pending and are retried"
            );
        }
        let delay = Backoff::new(INTAKE_PAUSE.0, INTAKE_PAUSE.1).delay(streak);
        *self.pause_until.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now() + delay);
    }

    pub fn note_answer(&self) {
        let streak = self.fail_streak.swap(0, Ordering::Relaxed);
        if streak > 0 {
            tracing::info!("sends are answered again, after {streak} failure(s) in a row");
            *self.pause_until.lock().unwrap_or_else(|p| p.into_inner()) = None;
        }
    }

    pub fn pause_left(&self) -> Option<Duration> {
        let until = (*self.pause_until.lock().unwrap_or_else(|p| p.into_inner()))?;
        until.checked_duration_since(Instant::now())
    }
}

/// Runs a Redis call on `conn` until it works. Outages are waited out
/// (the connection reopens with backoff); a missing group is created
/// again; the caller's function returns `Halt::Stopped` when the state
/// reaches `$give_up` while Redis cannot be reached, and `Halt::Fatal`
/// for errors waiting cannot fix.
macro_rules! retrying {
    ($ctx:expr, $conn:expr, $what:expr, $give_up:expr, |$c:ident| $body:expr) => {
        loop {
            let result: std::result::Result<_, ::redis::RedisError> = match $conn.get().await {
                Ok($c) => $body.await,
                Err(e) => Err(e),
            };
            match result {
                Ok(v) => {
                    $conn.worked();
                    break v;
                }
                Err(e) if $crate::worker::queue::is_fatal(&e) => {
                    return Err($crate::worker::ctx::Halt::Fatal(
                        $crate::worker::queue::fatal_error(&$ctx.target, $what, &e),
                    ));
                }
                Err(e) => {
                    let nogroup = $crate::worker::queue::is_nogroup(&e);
                    $conn.broke(&e).await;
                    if nogroup {
                        $crate::worker::ctx::recreate_group(&$ctx, &mut *$conn).await;
                    }
                    if $ctx.state() >= $give_up {
                        return Err($crate::worker::ctx::Halt::Stopped);
                    }
                }
            }
        }
    };
}
pub(super) use retrying;

pub(super) async fn recreate_group(ctx: &Ctx, conn: &mut Conn) {
    if let Ok(c) = conn.get().await {
        let cfg = &ctx.config;
        match queue::create_group(c, &cfg.stream, &cfg.group).await {
            Ok(()) => tracing::warn!(
                "the group {} of {} was gone (Redis restarted without its data?): created it again",
                cfg.group,
                cfg.stream
            ),
            Err(e) => tracing::debug!("creating the group again: {e}"),
        }
    }
}
