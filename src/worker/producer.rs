//! Adding jobs to a stream: what `apns enqueue`, the gateway's `--redis`
//! mode and your own code use.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionManager;

use super::job::Job;
use crate::error::{Error, Result};

/// Adds [`Job`]s to a Redis stream with `XADD`, for workers to send.
/// Cheap to clone (clones share one connection, reopened after a failure).
///
/// ```no_run
/// use apns_provider::wire::NotificationSpec;
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
    /// It sends `PING` (after `AUTH`, when the URL has a password), so that
    /// a missing or wrong password shows now.
    ///
    /// Errors: an invalid URL is [`Error::Config`]; a missing or refused
    /// password (`NOAUTH`, `WRONGPASS`) is [`Error::Redis`] with Redis's
    /// words (waiting will not fix it); an unreachable server
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
        let probe = client.clone();
        let cannot = |e: redis::RedisError, words: String| {
            if super::queue::is_fatal(&e) {
                Error::Redis(format!(
                    "cannot use Redis at {addr}: {words}{}",
                    super::queue::auth_hint(&e)
                ))
            } else {
                Error::Connect {
                    endpoint: format!("Redis at {addr}"),
                    source: std::io::Error::other(words),
                }
            }
        };
        let connected = async {
            let mut conn = ConnectionManager::new_with_config(client, config).await?;
            // Checked now: a Redis that wants a password (NOAUTH) answers
            // only once a command is sent, and would look like an outage
            // at the first batch.
            redis::cmd("PING")
                .query_async::<redis::Value>(&mut conn)
                .await?;
            Ok::<_, redis::RedisError>(conn)
        }
        .await;
        let conn = match connected {
            Ok(c) => c,
            Err(e) => {
                let words = super::queue::refusal_words(&probe, &e).await;
                return Err(cannot(e, words));
            }
        };
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
    /// in order. On an error none, some or all of them may have been added
    /// (see [`add_each`](Producer::add_each) to know which): a batch is not
    /// sent again blindly.
    pub async fn add(&self, jobs: &[Job]) -> Result<Vec<String>> {
        let each = self.add_each(jobs).await.map_err(|f| f.error)?;
        let mut ids = Vec::with_capacity(each.len());
        for (i, r) in each.into_iter().enumerate() {
            match r {
                Ok(id) => ids.push(id),
                Err(e) => {
                    return Err(Error::Redis(format!(
                        "at {}, adding job {} of {} failed: {e}",
                        self.addr,
                        i + 1,
                        jobs.len()
                    )))
                }
            }
        }
        Ok(ids)
    }

    /// Adds `jobs` with one pipeline of `XADD`s and says what became of
    /// each: its entry id, or Redis's error (that job was not added). An
    /// `Err` means Redis did not answer them all: the
    /// [`AddFailure`] says whether any may have landed.
    pub async fn add_each(
        &self,
        jobs: &[Job],
    ) -> std::result::Result<Vec<std::result::Result<String, String>>, AddFailure> {
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        // Each command's own reply, errors included: a refused XADD did
        // not add its job, and the others are still known.
        pipe.ignore_errors();
        for job in jobs {
            let cmd = pipe.cmd("XADD").arg(&*self.stream).arg("*");
            for (k, v) in job.to_fields() {
                cmd.arg(k).arg(v);
            }
        }
        let mut conn = self.conn.clone();
        let replies: Vec<redis::Value> = pipe.query_async(&mut conn).await.map_err(|e| {
            // A refused connection sent nothing.
            let none = e.is_connection_refusal();
            AddFailure {
                error: Error::Redis(format!(
                    "at {}, adding {} job(s) failed: {e}{}",
                    self.addr,
                    jobs.len(),
                    super::queue::auth_hint(&e)
                )),
                may_have_landed: !none,
            }
        })?;
        Ok(replies
            .into_iter()
            .map(|v| match v {
                redis::Value::ServerError(e) => Err(e.to_string()),
                other => super::queue::text(&other).ok_or_else(|| "no entry id".to_string()),
            })
            .collect())
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

/// Why [`Producer::add_each`] cannot say what became of each job.
#[derive(Debug)]
#[non_exhaustive]
pub struct AddFailure {
    /// What went wrong.
    pub error: Error,
    /// Whether some of the jobs may have been added: false when nothing
    /// reached Redis (the connection was refused), true when the
    /// connection failed while they were on their way.
    pub may_have_landed: bool,
}

impl std::fmt::Display for AddFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl std::error::Error for AddFailure {}
