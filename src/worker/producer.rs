//! Adding jobs to a stream: what `apns enqueue`, the gateway's `--redis`
//! mode and your own code use.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionManager;

use super::Job;
use crate::error::{Error, Result};

/// Adds [`Job`]s to a Redis stream with `XADD`, for workers to send.
/// Cheap to clone (clones share one connection, reopened after a failure).
///
/// ```no_run
/// use apns_provider::spec::NotificationSpec;
/// use apns_provider::worker::{Job, Producer};
///
/// # async fn run() -> apns_provider::Result<()> {
/// let producer = Producer::connect("redis://127.0.0.1:6379", "apns:jobs").await?;
/// let mut spec = NotificationSpec::for_token("00fc13adff785122b4ad28809a3420982341241421348097878e577c991de8f0");
/// spec.payload = Some(serde_json::json!({"aps": {"alert": "hi"}}));
/// let ids = producer.add(&[Job::new("order-1234", spec).app("myapp")]).await?;
/// println!("entry {}", ids[0]);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Producer {
    conn: ConnectionManager,
    stream: Arc<str>,
    /// `host:port`, never the URL (it may hold a password).
    addr: Arc<str>,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("redis", &self.addr)
            .field("stream", &self.stream)
            .finish()
    }
}

impl Producer {
    /// Connects to the Redis at `url` (`redis://[:PASSWORD@]HOST[:PORT][/DB]`)
    /// to add jobs to `stream`.
    ///
    /// Errors: an invalid URL is [`Error::Config`]; a refused password is
    /// [`Error::Redis`] (waiting will not fix it); an unreachable server
    /// is [`Error::Connect`] ([`is_connection`](Error::is_connection)).
    /// None of them repeats the URL. Later failures of
    /// [`add`](Producer::add) and [`ping`](Producer::ping) are
    /// [`Error::Redis`]; the connection is reopened at the next call.
    pub async fn connect(url: &str, stream: &str) -> Result<Producer> {
        if stream.is_empty() || stream.chars().any(char::is_control) {
            return Err(Error::Config(
                "the stream name must be non-empty, without control characters".into(),
            ));
        }
        let client = redis::Client::open(url).map_err(|e| {
            Error::Config(format!(
                "the Redis URL is not valid ({}); expected redis://[:PASSWORD@]HOST[:PORT][/DB]",
                e.detail().unwrap_or(e.category())
            ))
        })?;
        let addr: Arc<str> = client.get_connection_info().addr().to_string().into();
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(5)))
            .set_response_timeout(Some(Duration::from_secs(30)))
            .set_number_of_retries(2);
        let conn = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(|e| {
                if super::queue::is_fatal(&e) {
                    Error::Redis(format!("cannot use Redis at {addr}: {e}"))
                } else {
                    Error::Connect {
                        endpoint: format!("Redis at {addr}"),
                        source: std::io::Error::other(e.to_string()),
                    }
                }
            })?;
        Ok(Producer {
            conn,
            stream: stream.into(),
            addr,
        })
    }

    /// The server's `host:port`.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The stream jobs are added to.
    pub fn stream(&self) -> &str {
        &self.stream
    }

    /// Adds `jobs` with one pipeline of `XADD`s; returns their entry ids,
    /// in order. On an error none, some or all of them may have been added:
    /// a batch is not sent again blindly.
    pub async fn add(&self, jobs: &[Job]) -> Result<Vec<String>> {
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for job in jobs {
            let cmd = pipe.cmd("XADD").arg(&*self.stream).arg("*");
            for (k, v) in job.to_fields() {
                cmd.arg(k).arg(v);
            }
        }
        let mut conn = self.conn.clone();
        pipe.query_async(&mut conn).await.map_err(|e| {
            Error::Redis(format!(
                "at {}, adding {} job(s) failed: {e}",
                self.addr,
                jobs.len()
            ))
        })
    }

    /// Whether the server answers (`PING`).
    pub async fn ping(&self) -> Result<()> {
        let mut conn = self.conn.clone();
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .map(|_| ())
            .map_err(|e| Error::Redis(format!("at {} does not answer: {e}", self.addr)))
    }
}
