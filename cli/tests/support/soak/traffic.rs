//! The soak's traffic: good batches with retries, /healthz probes, bad tokens and huge bodies.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::hostile::huge_body;
use super::http::request;
use super::state::Shared;
use crate::support::bulk::token;

/// The API token serve accepts (in its --api-token-file).
pub const TOKEN: &str = "soak-token-0123456789abcdef";
/// Notifications per batch, and a batch every TICK.
const BATCH: u64 = 20;
const TICK: Duration = Duration::from_millis(100);
/// Batches waiting for an answer at once; a tick beyond that is skipped.
const MAX_WAITING: u64 = 32;
/// How long a request may wait for its answer.
const ANSWER_LIMIT: Duration = Duration::from_secs(30);
/// Attempts per batch (503 and no answer are retried a second later).
const ATTEMPTS: u32 = 5;
/// The good clients' address, and the hostile ones' (so that a per-address
/// limit can tell them apart; the silent and slowloris ones are the suite's).
const GOOD: [u8; 4] = [127, 0, 0, 1];
const HOSTILE: [u8; 4] = [127, 0, 0, 4];
/// A body far over the gateway's limit.
const HUGE: usize = 8 << 20; // with --max-body 64KiB

/// A batch every TICK until the stop, each retried on 503 or no answer.
pub async fn traffic(shared: Arc<Shared>, gateway: SocketAddr) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut batches = tokio::task::JoinSet::new();
    while !shared.stop.load(Ordering::Relaxed) {
        tick.tick().await;
        while batches.try_join_next().is_some() {}
        if shared.waiting.load(Ordering::Relaxed) >= MAX_WAITING {
            shared.count(shared.phase(), |c| c.skipped += 1);
            continue;
        }
        shared.waiting.fetch_add(1, Ordering::Relaxed);
        batches.spawn(batch(shared.clone(), gateway));
    }
    while batches.join_next().await.is_some() {}
}

async fn batch(shared: Arc<Shared>, gateway: SocketAddr) {
    let first = shared.next_token.fetch_add(BATCH, Ordering::Relaxed);
    let tokens: Vec<String> = (first..first + BATCH).map(token).collect();
    let body = serde_json::Value::Array(
        tokens
            .iter()
            .map(|t| serde_json::json!({"device_token": t, "payload": {"aps": {"alert": "soak"}}}))
            .collect(),
    )
    .to_string();
    let phase = shared.phase();
    shared.count(phase, |c| c.batches += 1);
    let auth = format!("Authorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n");
    let mut done = false;
    for _ in 0..ATTEMPTS {
        let reply = request(
            GOOD,
            gateway,
            "POST",
            "/v1/notifications",
            &auth,
            body.as_bytes(),
            ANSWER_LIMIT,
        )
        .await;
        match reply {
            Ok((202, answer)) => {
                let v: serde_json::Value = serde_json::from_slice(&answer).unwrap_or_default();
                let ids: Vec<String> = v["jobs"]
                    .as_array()
                    .map(|jobs| {
                        jobs.iter()
                            .filter_map(|j| j["job"].as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default();
                if ids.len() as u64 != BATCH {
                    shared.surprise(format!(
                        "a 202 without {BATCH} job ids: {}",
                        String::from_utf8_lossy(&answer)
                    ));
                    shared.count(phase, |c| c.other += 1);
                }
                shared.jobs.lock().unwrap().extend(ids);
                shared.accepted_at.lock().unwrap().push(shared.now());
                shared.count(phase, |c| c.accepted += 1);
                done = true;
                break;
            }
            Ok((503, _)) => shared.count(phase, |c| c.answered_503 += 1),
            Ok((status, answer)) => {
                shared.surprise(format!(
                    "phase {phase}: a good batch answered {status}: {}",
                    String::from_utf8_lossy(&answer)
                ));
                shared.count(phase, |c| c.other += 1);
                shared.unsure.lock().unwrap().extend(tokens.iter().cloned());
                done = true;
                break;
            }
            Err(e) => {
                shared.surprise(format!(
                    "phase {phase} at {:.0} s: a good batch: {e}",
                    shared.now()
                ));
                shared.count(phase, |c| c.no_answer += 1);
            }
        }
        // Part of it may have been enqueued.
        shared.unsure.lock().unwrap().extend(tokens.iter().cloned());
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    if !done {
        shared.count(phase, |c| c.given_up += 1);
    }
    shared.waiting.fetch_sub(1, Ordering::Relaxed);
}

/// Every second: /healthz, a request with a bad token, and every third
/// second a body far over --max-body, until the stop.
pub async fn probes(shared: Arc<Shared>, gateway: SocketAddr) {
    let mut n = 0u64;
    while !shared.stop.load(Ordering::Relaxed) {
        let phase = shared.phase();
        let s = shared.clone();
        tokio::spawn(async move {
            let reply = request(
                GOOD,
                gateway,
                "GET",
                "/healthz",
                "",
                b"",
                Duration::from_secs(5),
            )
            .await;
            if matches!(reply, Ok((200, _))) {
                s.healthy_at.lock().unwrap().push(s.now());
                s.count(phase, |c| c.health_ok += 1);
            } else {
                s.count(phase, |c| c.health_fail += 1);
            }
        });
        tokio::spawn(bad_token(shared.clone(), gateway, phase, n));
        if n.is_multiple_of(3) {
            tokio::spawn(huge(shared.clone(), gateway, phase, n.is_multiple_of(2)));
        }
        n += 1;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// More bad tokens and huge bodies, back to back, until `until`.
pub fn hostiles_burst(shared: Arc<Shared>, gateway: SocketAddr, phase: usize, until: Instant) {
    tokio::spawn(async move {
        let mut n = 0u64;
        while Instant::now() < until {
            tokio::join!(
                bad_token(shared.clone(), gateway, phase, n),
                huge(shared.clone(), gateway, phase, n % 2 == 1)
            );
            n += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
}

async fn bad_token(shared: Arc<Shared>, gateway: SocketAddr, phase: usize, n: u64) {
    let long = format!("Authorization: Bearer {}\r\n", "x".repeat(16 * 1024));
    let header = match n % 3 {
        0 => "Authorization: Bearer soak-token-0123456789abcdeX\r\n".to_string(),
        1 => String::new(),
        _ => long,
    };
    let body = br#"{"device_token":"00aa","payload":{"aps":{"alert":"x"}}}"#;
    let flooding = shared.flooding.load(std::sync::atomic::Ordering::Relaxed);
    let reply = request(
        HOSTILE,
        gateway,
        "POST",
        "/v1/notifications",
        &header,
        body,
        ANSWER_LIMIT,
    )
    .await;
    shared.count(phase, |c| c.bad_token += 1);
    match reply {
        Ok((401, _)) => {}
        Ok((431, _)) if n % 3 == 2 => {}
        Ok((status, answer)) => {
            shared.surprise(format!(
                "phase {phase}: a bad token (variant {}) answered {status}: {}",
                n % 3,
                String::from_utf8_lossy(&answer)
            ));
            shared.count(phase, |c| c.bad_token_wrong += 1);
        }
        // The long header may be refused by closing; silence is not fine.
        Err(e) if e.starts_with("closed") && n % 3 == 2 => {}
        // From the attackers' own address, in their flood: evicted before
        // its request arrived, as the eviction rule says.
        Err(e) if e.starts_with("closed") && flooding => {
            shared.count(phase, |c| c.bad_token_evicted += 1)
        }
        Err(e) => {
            shared.surprise(format!(
                "phase {phase}: a bad token (variant {}): {e}",
                n % 3
            ));
            shared.count(phase, |c| c.bad_token_wrong += 1);
        }
    }
}

async fn huge(shared: Arc<Shared>, gateway: SocketAddr, phase: usize, chunked: bool) {
    let reply = huge_body(HOSTILE, gateway, TOKEN, HUGE, chunked, ANSWER_LIMIT).await;
    shared.count(phase, |c| c.huge += 1);
    match reply {
        // 503: refused as overload before its body was read.
        Ok((413 | 503, _)) => shared.count(phase, |c| c.huge_413 += 1),
        // Refused by closing midway (the answer may be lost to the reset).
        Err(e) if e.starts_with("closed") => shared.count(phase, |c| c.huge_cut += 1),
        other => {
            let said = match other {
                Ok((s, b)) => format!("{s} {}", String::from_utf8_lossy(&b[..b.len().min(300)])),
                Err(e) => e,
            };
            shared.surprise(format!(
                "phase {phase}: an {HUGE}-byte body (chunked: {chunked}): {said}"
            ));
            shared.count(phase, |c| c.huge_wrong += 1);
        }
    }
}
