//! The Redis side of the worker: connections that reopen themselves, the
//! stream commands it uses, and their replies read into plain types.
//!
//! Each long-running task of a worker owns one connection (the reads, the
//! claims, the finishing transactions): a `WATCH` must not be shared with
//! another task's commands, and a read of big entries would hold up
//! everything queued behind it on a shared connection. (Reads and claims
//! themselves are in `read.rs`.)

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, ErrorKind, RedisError, Value};

use crate::backoff::Backoff;
use crate::error::{Error, Result};

/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Reconnect delays: short, so that a restarted Redis is found again
/// within about a second (a connection attempt costs Redis little).
const RECONNECT: (Duration, Duration) = (Duration::from_millis(50), Duration::from_secs(1));
/// While Redis stays unreachable, one warning per this period.
const WARN_EVERY: Duration = Duration::from_secs(30);

/// Where Redis is; shown as `host:port` only (a URL may hold a password).
pub(crate) struct Target {
    client: redis::Client,
    pub addr: String,
    /// When any connection of this worker last failed.
    last_failure: std::sync::Mutex<Option<Instant>>,
    /// Failures seen, for the stats.
    pub errors: std::sync::atomic::AtomicU64,
}

impl Target {
    pub fn open(url: &str) -> Result<Target> {
        let client = redis::Client::open(url).map_err(|e| {
            // The URL itself is not repeated: it may hold a password.
            Error::Config(format!(
                "the Redis URL is not valid ({}); expected redis://[:PASSWORD@]HOST[:PORT][/DB]",
                e.detail().unwrap_or(e.category())
            ))
        })?;
        let addr = client.get_connection_info().addr().to_string();
        Ok(Target {
            client,
            addr,
            last_failure: std::sync::Mutex::new(None),
            errors: Default::default(),
        })
    }

    /// The start-up check: one connection (with `AUTH`, when the URL has a
    /// password) and a `PING`. A missing or refused password is an error,
    /// in Redis's words; an unreachable Redis is not (it is waited out).
    pub async fn check(&self) -> Result<()> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(CONNECT_TIMEOUT));
        let r = async {
            let mut c = self
                .client
                .get_multiplexed_async_connection_with_config(&config)
                .await?;
            redis::cmd("PING").query_async::<Value>(&mut c).await
        }
        .await;
        match r {
            Err(e) if is_fatal(&e) => Err(Error::Redis(format!(
                "checking Redis (PING) on {}: {}{}",
                self.addr,
                refusal_words(&self.client, &e).await,
                auth_hint(&e)
            ))),
            _ => Ok(()),
        }
    }

    /// How long every connection has worked without a failure.
    pub fn healthy_for(&self) -> Duration {
        match *self.last_failure.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(at) => at.elapsed(),
            None => Duration::MAX,
        }
    }

    fn failed(&self) {
        *self.last_failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
        self.errors
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target").field("addr", &self.addr).finish()
    }
}

/// Errors that waiting cannot fix: bad credentials or permissions, a key
/// of the wrong type, a command this Redis does not have.
pub(crate) fn is_fatal(e: &RedisError) -> bool {
    matches!(
        e.kind(),
        ErrorKind::AuthenticationFailed
            | ErrorKind::InvalidClientConfig
            | ErrorKind::Server(redis::ServerErrorKind::NoPerm)
    ) || matches!(
        e.code(),
        Some("WRONGTYPE" | "NOAUTH" | "WRONGPASS" | "NOPERM")
    ) || (e.code() == Some("ERR")
        && e.detail()
            .is_some_and(|d| d.starts_with("unknown command") || d.contains("syntax error")))
}

/// Redis's own words for `e`. For a refused password redis-rs has only
/// its own ("Password authentication failed"): the `AUTH` is sent again
/// on a bare connection to hear Redis's (`WRONGPASS ...`), which never
/// repeat the password.
pub(crate) async fn refusal_words(client: &redis::Client, e: &RedisError) -> String {
    if e.kind() != ErrorKind::AuthenticationFailed {
        return e.to_string();
    }
    let info = client.get_connection_info().clone();
    let settings = info.redis_settings();
    let (Some(password), username) = (
        settings.password().map(str::to_string),
        settings.username().map(str::to_string),
    ) else {
        return e.to_string();
    };
    let heard = async {
        let bare = redis::Client::open(info.set_redis_settings(Default::default())).ok()?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(CONNECT_TIMEOUT));
        let mut c = bare
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .ok()?;
        let mut auth = redis::cmd("AUTH");
        if let Some(u) = username {
            auth.arg(u);
        }
        auth.arg(password);
        auth.query_async::<Value>(&mut c).await.err()
    }
    .await;
    match heard {
        Some(words) if words.code().is_some() => format!("the password was refused: {words}"),
        _ => e.to_string(),
    }
}

/// What to do about an authentication error (`NOAUTH`, `WRONGPASS`, a
/// refused `AUTH`), to follow Redis's own words; empty for other errors.
pub(crate) fn auth_hint(e: &RedisError) -> &'static str {
    let auth = e.kind() == ErrorKind::AuthenticationFailed
        || matches!(e.code(), Some("NOAUTH" | "WRONGPASS"));
    if auth {
        " (a configuration error: give the password in the URL, redis://:PASSWORD@HOST:PORT, best through APNS_REDIS_URL)"
    } else {
        ""
    }
}

/// The group (or the whole stream) is gone: Redis restarted without its
/// data, or someone deleted them.
pub(crate) fn is_nogroup(e: &RedisError) -> bool {
    e.code() == Some("NOGROUP")
}

/// A Redis error as a crate error (never quoting the URL).
pub(crate) fn fatal_error(target: &Target, what: &str, e: &RedisError) -> Error {
    Error::Redis(format!("{what} on {}: {e}{}", target.addr, auth_hint(e)))
}

/// One connection owned by one task: opened on first use, dropped after an
/// error and opened again, with backoff.
pub(crate) struct Conn {
    target: Arc<Target>,
    response_timeout: Duration,
    conn: Option<MultiplexedConnection>,
    failures: u32,
    warned_at: Option<Instant>,
    down_since: Option<Instant>,
    what: &'static str,
}

impl Conn {
    pub fn new(target: Arc<Target>, response_timeout: Duration, what: &'static str) -> Conn {
        Conn {
            target,
            response_timeout,
            conn: None,
            failures: 0,
            warned_at: None,
            down_since: None,
            what,
        }
    }

    /// The connection, opened if needed; an error when it cannot be opened
    /// (the caller reports it to [`broke`](Conn::broke) and tries again).
    pub async fn get(&mut self) -> std::result::Result<&mut MultiplexedConnection, RedisError> {
        if self.conn.is_none() {
            let config = AsyncConnectionConfig::new()
                .set_connection_timeout(Some(CONNECT_TIMEOUT))
                .set_response_timeout(Some(self.response_timeout));
            let conn = self
                .target
                .client
                .get_multiplexed_async_connection_with_config(&config)
                .await?;
            self.conn = Some(conn);
        }
        // Just set when it was None.
        self.conn
            .as_mut()
            .ok_or_else(|| RedisError::from((ErrorKind::Client, "no connection")))
    }

    /// A command worked: the connection is healthy.
    pub fn worked(&mut self) {
        if let Some(since) = self.down_since.take() {
            tracing::warn!(
                "Redis {} reachable again ({}, after {:.1} s)",
                self.target.addr,
                self.what,
                since.elapsed().as_secs_f64()
            );
        }
        self.failures = 0;
        self.warned_at = None;
    }

    /// A command failed: drops the connection (the next [`get`](Conn::get)
    /// opens another), logs the first failure of an outage and then one
    /// every 30 s, and waits a jittered backoff.
    pub async fn broke(&mut self, e: &RedisError) {
        self.conn = None;
        self.failures = self.failures.saturating_add(1);
        self.target.failed();
        self.down_since.get_or_insert_with(Instant::now);
        if self.warned_at.is_none_or(|at| at.elapsed() >= WARN_EVERY) {
            self.warned_at = Some(Instant::now());
            tracing::warn!(
                "Redis {} ({}): {e}; retrying until it answers",
                self.target.addr,
                self.what
            );
        }
        let backoff = Backoff::new(RECONNECT.0, RECONNECT.1);
        tokio::time::sleep(backoff.delay(self.failures)).await;
    }
}

/// A stream entry's fields, as Redis holds them (oversized ones as
/// placeholders: see `read.rs`).
pub(crate) type Fields = Vec<(Vec<u8>, Vec<u8>)>;

fn unexpected(what: &str) -> RedisError {
    RedisError::from((
        ErrorKind::UnexpectedReturnType,
        "unexpected reply",
        what.to_string(),
    ))
}

/// The text of a simple value.
pub(crate) fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        Value::Okay => Some("OK".into()),
        _ => None,
    }
}

fn items(v: Value) -> std::result::Result<Vec<Value>, RedisError> {
    match v {
        Value::Array(a) | Value::Set(a) => Ok(a),
        Value::Nil => Ok(Vec::new()),
        Value::Map(m) => Ok(m.into_iter().flat_map(|(k, v)| [k, v]).collect()),
        _ => Err(unexpected("expected an array")),
    }
}

/// `XGROUP CREATE stream group 0 MKSTREAM`, at the start of the stream so
/// that jobs added before the first worker are sent; an existing group is
/// left as it is.
pub(crate) async fn create_group(
    c: &mut MultiplexedConnection,
    stream: &str,
    group: &str,
) -> std::result::Result<(), RedisError> {
    let r: std::result::Result<Value, RedisError> = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(stream)
        .arg(group)
        .arg("0")
        .arg("MKSTREAM")
        .query_async(c)
        .await;
    match r {
        Ok(_) => Ok(()),
        Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
        Err(e) => Err(e),
    }
}

/// The type of a key (`stream`, `none`, ...).
pub(crate) async fn key_type(
    c: &mut MultiplexedConnection,
    key: &str,
) -> std::result::Result<String, RedisError> {
    let v: Value = redis::cmd("TYPE").arg(key).query_async(c).await?;
    Ok(text(&v).unwrap_or_default())
}

/// Entries pending in the group (delivered, not acknowledged).
pub(crate) async fn pending_count(
    c: &mut MultiplexedConnection,
    stream: &str,
    group: &str,
) -> std::result::Result<u64, RedisError> {
    let v: Value = redis::cmd("XPENDING")
        .arg(stream)
        .arg(group)
        .query_async(c)
        .await?;
    Ok(items(v)?
        .first()
        .and_then(text)
        .and_then(|t| t.parse().ok())
        .unwrap_or(0))
}

/// The group's `lag` (entries not yet delivered to any consumer), from
/// `XINFO GROUPS`; `None` when Redis does not know it (before 7.0, or
/// after deletions).
pub(crate) async fn group_lag(
    c: &mut MultiplexedConnection,
    stream: &str,
    group: &str,
) -> std::result::Result<Option<u64>, RedisError> {
    let v: Value = redis::cmd("XINFO")
        .arg("GROUPS")
        .arg(stream)
        .query_async(c)
        .await?;
    for g in items(v)? {
        let flat = items(g)?;
        let get = |key: &str| {
            flat.chunks(2)
                .find(|kv| text(&kv[0]).as_deref() == Some(key))
                .and_then(|kv| kv.get(1))
                .and_then(text)
        };
        if get("name").as_deref() == Some(group) {
            return Ok(get("lag").and_then(|l| l.parse().ok()));
        }
    }
    Ok(None)
}

/// Which pending entries to look up after setting the markers: this
/// consumer's between `first` and `last`.
pub(crate) struct PendingRange<'a> {
    pub stream: &'a str,
    pub group: &'a str,
    pub consumer: &'a str,
    pub first: &'a str,
    pub last: &'a str,
    pub count: usize,
}

/// `SET key value EX ttl GET` for each marker, in one pipeline: sets every
/// marker and returns what each held before (`None` when it did not
/// exist). With `pending`, the pipeline then runs `XPENDING` on that range
/// and also returns the delivery count of each entry still pending with
/// this consumer, as seen *after* the markers were set: an entry missing
/// there was acknowledged meanwhile (by the worker it was claimed from).
pub(crate) async fn set_markers(
    c: &mut MultiplexedConnection,
    markers: &[(String, String)],
    ttl: Duration,
    pending: Option<&PendingRange<'_>>,
) -> std::result::Result<(Vec<Option<String>>, Option<HashMap<String, u64>>), RedisError> {
    let mut p = redis::pipe();
    for (key, value) in markers {
        p.cmd("SET")
            .arg(key)
            .arg(value)
            .arg("EX")
            .arg(ttl.as_secs().max(1))
            .arg("GET");
    }
    if let Some(r) = pending {
        p.cmd("XPENDING")
            .arg(r.stream)
            .arg(r.group)
            .arg(r.first)
            .arg(r.last)
            .arg(r.count)
            .arg(r.consumer);
    }
    let mut values: Vec<Value> = p.query_async(c).await?;
    let counts = match pending {
        Some(_) => {
            let rows = values
                .pop()
                .ok_or_else(|| unexpected("no XPENDING reply"))?;
            let mut out = HashMap::new();
            for row in items(rows)? {
                let row = items(row)?;
                // [id, consumer, idle ms, deliveries]
                if let (Some(id), Some(n)) = (
                    row.first().and_then(text),
                    row.get(3).and_then(text).and_then(|t| t.parse().ok()),
                ) {
                    out.insert(id, n);
                }
            }
            Some(out)
        }
        None => None,
    };
    let old = values
        .iter()
        .map(|v| match v {
            Value::Nil => None,
            other => text(other),
        })
        .collect();
    Ok((old, counts))
}

/// Deletes keys (markers of entries dropped).
pub(crate) async fn delete(
    c: &mut MultiplexedConnection,
    keys: &[String],
) -> std::result::Result<(), RedisError> {
    if keys.is_empty() {
        return Ok(());
    }
    let _: Value = redis::cmd("DEL").arg(keys).query_async(c).await?;
    Ok(())
}

/// `XACK` (entries that have nothing else to do, such as deleted ones).
pub(crate) async fn ack(
    c: &mut MultiplexedConnection,
    stream: &str,
    group: &str,
    ids: &[String],
) -> std::result::Result<(), RedisError> {
    if ids.is_empty() {
        return Ok(());
    }
    let _: Value = redis::cmd("XACK")
        .arg(stream)
        .arg(group)
        .arg(ids)
        .query_async(c)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fatal_errors_are_told_from_outages() {
        let e = RedisError::from((ErrorKind::AuthenticationFailed, "auth"));
        assert!(is_fatal(&e));
        let io = RedisError::from(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "refused",
        ));
        assert!(!is_fatal(&io));
    }
}
