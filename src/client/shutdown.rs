//! Ending a client: graceful [`Client::shutdown`] and immediate
//! [`Client::abort`].

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::Instant;

use super::{Client, ShutdownReport};
#[allow(unused_imports)] // for doc links
use crate::error::Error;

impl Client {
    /// Stops intake, waits up to `grace` for requests in flight, then
    /// abandons the rest with [`Error::Shutdown`] and closes the connections.
    /// Notifications and broadcasts are waited for; a channel-management
    /// request in flight finishes on its connection, and later ones fail
    /// with [`Error::Shutdown`].
    ///
    /// Later sends fail at once with [`Error::Shutdown`]. Calling it again
    /// returns the first report.
    pub async fn shutdown(&self, grace: Duration) -> ShutdownReport {
        let inner = &*self.inner;
        let _serial = inner.shutdown_lock.lock().await;
        if let Some(report) = *inner
            .shutdown_report
            .lock()
            .unwrap_or_else(|e| e.into_inner())
        {
            return report;
        }
        inner.closing.store(true, Ordering::Release);
        let in_flight_at_start = self.stats().in_flight;
        let finished_before = self.finished();
        let deadline = Instant::now() + grace;
        self.wait_idle(Some(deadline)).await;
        let completed = self.finished() - finished_before;
        if self.stats().in_flight > 0 {
            let _ = inner.force.send(true);
            self.wait_idle(None).await;
        }
        inner.pool.close();
        if let Some(channels) = inner.channels.opened() {
            channels.close();
        }
        let stats = self.stats();
        let report = ShutdownReport {
            in_flight_at_start,
            completed: completed.min(in_flight_at_start),
            abandoned: in_flight_at_start.saturating_sub(completed),
            stats,
        };
        tracing::info!(?report, "APNs client shut down");
        *inner
            .shutdown_report
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(report);
        report
    }

    /// Abandons everything at once, without waiting: later sends fail with
    /// [`Error::Shutdown`], every send in progress resolves promptly with
    /// [`Error::Shutdown`] (saying whether it was on the wire), and from
    /// the moment this returns no new request goes on the wire. For a
    /// second Ctrl-C; [`shutdown`](Client::shutdown) is the graceful way.
    pub fn abort(&self) {
        let inner = &*self.inner;
        inner.closing.store(true, Ordering::Release);
        let _ = inner.force.send(true);
        inner.pool.close();
        if let Some(channels) = inner.channels.opened() {
            channels.close();
        }
    }

    fn finished(&self) -> u64 {
        let s = self.stats();
        s.accepted + s.rejected + s.failed
    }

    async fn wait_idle(&self, deadline: Option<Instant>) {
        loop {
            let notified = self.inner.idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.stats().in_flight == 0 {
                return;
            }
            match deadline {
                Some(d) => {
                    if tokio::time::timeout_at(d, notified).await.is_err() {
                        return;
                    }
                }
                None => notified.await,
            }
        }
    }
}
