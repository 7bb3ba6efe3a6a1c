//! The checks at the end: the results stream read whole, the drain, one result per accepted job.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use apns_provider::worker::JobResult;

use crate::support::redis::{self as rs, Redis};

/// Every entry of `stream`, read in pages (results streams grow long).
pub async fn all_entries(
    c: &mut redis::aio::MultiplexedConnection,
    stream: &str,
) -> Result<Vec<(String, Vec<(String, String)>)>, redis::RedisError> {
    let mut all = Vec::new();
    let mut start = "-".to_string();
    loop {
        let page: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
            .arg(stream)
            .arg(&start)
            .arg("+")
            .arg("COUNT")
            .arg(5000)
            .query_async(c)
            .await?;
        let Some((last, _)) = page.last() else {
            return Ok(all);
        };
        start = format!("({last}");
        all.extend(page);
    }
}

/// Waits until nothing is pending and the jobs stream is empty.
pub async fn drain(redis: &Redis, limit: Duration) -> Result<(), String> {
    let deadline = Instant::now() + limit;
    let mut last = String::from("Redis did not answer");
    while Instant::now() < deadline {
        if let Ok(mut c) = tokio::time::timeout(Duration::from_secs(5), redis.conn()).await {
            let pending = rs::pending(&mut c).await;
            let queued = rs::len(&mut c, "apns:jobs").await;
            if pending == 0 && queued == 0 {
                return Ok(());
            }
            last = format!("{pending} jobs still pending, {queued} in apns:jobs");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Err(format!("after {limit:?} without traffic: {last}"))
}

/// Every job of a 202 has exactly one result; any other result is for a
/// batch that was not answered 202 (part of it may have landed).
/// `jobs`: the ids of 202 answers; `unsure`: device tokens of attempts not
/// answered 202. Adds what is wrong to `failures`, the figures to `report`.
pub fn check_results(
    jobs: &HashSet<String>,
    unsure: &HashSet<String>,
    results: &[(String, Vec<(String, String)>)],
    dead: u64,
    failures: &mut Vec<String>,
    report: &mut String,
) {
    let mut by_job: HashMap<&str, u32> = HashMap::new();
    let mut statuses: HashMap<String, u64> = HashMap::new();
    let (mut unreadable, mut strays, mut unknown) = (Vec::new(), 0u64, Vec::new());
    let parsed: Vec<JobResult> = results
        .iter()
        .filter_map(|(id, f)| match JobResult::from_fields(f) {
            Ok(r) => Some(r),
            Err(e) => {
                unreadable.push(format!("{id}: {e}"));
                None
            }
        })
        .collect();
    for r in &parsed {
        *by_job.entry(r.job.as_str()).or_default() += 1;
        if !jobs.contains(&r.job) {
            if unsure.contains(&r.device_token) {
                strays += 1;
            } else {
                unknown.push(format!("{} ({})", r.job, r.device_token));
            }
            continue;
        }
        let key = match (&r.status, &r.error) {
            (Some(s), _) => format!("status {s}"),
            (None, Some(e)) => format!("error: {}", e.chars().take(60).collect::<String>()),
            _ => "neither status nor error".into(),
        };
        *statuses.entry(key).or_default() += 1;
    }
    let twice: Vec<String> = by_job
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(j, n)| format!("{j} ×{n}"))
        .collect();
    let missing: Vec<&String> = jobs
        .iter()
        .filter(|j| !by_job.contains_key(j.as_str()))
        .collect();
    let examples = |v: &[String]| v.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
    if !twice.is_empty() {
        failures.push(format!(
            "{} jobs have more than one result: {}",
            twice.len(),
            examples(&twice)
        ));
    }
    if !missing.is_empty() {
        let m: Vec<String> = missing.iter().map(|s| s.to_string()).collect();
        failures.push(format!(
            "{} of the {} accepted jobs have no result: {}",
            m.len(),
            jobs.len(),
            examples(&m)
        ));
    }
    if !unknown.is_empty() {
        failures.push(format!(
            "{} results for jobs no answer named, from batches answered 202: {}",
            unknown.len(),
            examples(&unknown)
        ));
    }
    if !unreadable.is_empty() {
        failures.push(format!(
            "{} unreadable result entries: {}",
            unreadable.len(),
            examples(&unreadable)
        ));
    }
    let ok = statuses.get("status 200").copied().unwrap_or(0);
    if (ok as f64) < 0.9 * jobs.len() as f64 {
        failures.push(format!(
            "only {ok} of {} accepted jobs were accepted by the mock (200): {statuses:?}",
            jobs.len()
        ));
    }
    let mut by_status: Vec<_> = statuses.into_iter().collect();
    by_status.sort();
    let _ = writeln!(
        report,
        "jobs: {} accepted by serve (202), {} results; by outcome {by_status:?}; {strays} results for jobs of batches not answered 202 (part enqueued before a 503 or a cut); dead letter {dead}",
        jobs.len(),
        results.len()
    );
}
