//! RSS: sampled every 2 s (with deaths noticed), the least-squares slope, the table and its bound.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::process::Proc;
use super::state::Shared;

/// Every 2 s: each process's RSS, and whether one died unasked.
pub async fn sample(
    shared: Arc<Shared>,
    fleet: Arc<Mutex<Vec<Arc<Proc>>>>,
    deaths: Arc<Mutex<Vec<(String, String)>>>,
    kinds: Vec<&'static str>,
) {
    while !shared.stop.load(Ordering::Relaxed) {
        let t = shared.now();
        let procs: Vec<Arc<Proc>> = fleet.lock().unwrap().clone();
        for p in procs {
            if let Some(status) = p.exited() {
                // Killed on purpose is flagged before the signal.
                let mut d = deaths.lock().unwrap();
                if !p.killed_on_purpose() && !d.iter().any(|(n, _)| *n == p.name) {
                    let i = shared.phase();
                    d.push((p.name.clone(), format!(
                        "{} (pid {}) died unasked ({status}) during phase {i} '{}' at {t:.0} s; its stderr ends: {}",
                        p.name, p.pid(), kinds[i], p.stderr_tail(1500)
                    )));
                }
            } else if p.sampled {
                p.sample(t);
            }
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// The least-squares slope of `samples` (seconds, KiB), in KiB per minute.
pub fn slope_kib_per_min(samples: &[(f64, u64)]) -> f64 {
    let n = samples.len() as f64;
    if samples.len() < 2 {
        return 0.0;
    }
    let mean_t = samples.iter().map(|s| s.0).sum::<f64>() / n;
    let mean_r = samples.iter().map(|s| s.1 as f64).sum::<f64>() / n;
    let (mut num, mut den) = (0.0, 0.0);
    for (t, r) in samples {
        num += (t - mean_t) * (*r as f64 - mean_r);
        den += (t - mean_t) * (t - mean_t);
    }
    if den == 0.0 {
        0.0
    } else {
        num / den * 60.0
    }
}

/// Start and end RSS and the slope after warm-up (the first quarter of each
/// process's sampled life skipped), with a bound on the growth it implies.
pub fn rss_table(all: &[Arc<Proc>], failures: &mut Vec<String>, report: &mut String) {
    let _ = writeln!(report, "process           samples  start RSS   end RSS   slope after warm-up  growth over the window");
    for p in all.iter().filter(|p| p.sampled) {
        let samples = p.samples.lock().unwrap().clone();
        let (Some(first), Some(last)) = (samples.first(), samples.last()) else {
            continue;
        };
        let from = first.0 + (last.0 - first.0) / 4.0;
        let after: Vec<(f64, u64)> = samples.iter().copied().filter(|s| s.0 >= from).collect();
        let slope = slope_kib_per_min(&after);
        let window_min = (last.0 - from) / 60.0;
        let growth = slope * window_min;
        let base = after.first().map(|s| s.1).unwrap_or(first.1) as f64;
        let _ =
            writeln!(
            report,
            "{:<17} {:>7} {:>7.1} MiB {:>7.1} MiB {:>+9.1} KiB/min {:>+14.1} MiB over {:.1} min{}",
            p.name,
            samples.len(),
            first.1 as f64 / 1024.0,
            last.1 as f64 / 1024.0,
            slope,
            growth / 1024.0,
            window_min,
            if p.killed_on_purpose() { " (SIGKILLed on purpose)" } else { "" }
        );
        let bound = 20.0 * 1024.0 + 0.25 * base;
        if after.len() >= 10 && window_min >= 0.5 && growth > bound {
            failures.push(format!(
                "RSS of {} grows: {slope:+.0} KiB/min after warm-up, {:+.1} MiB over {window_min:.1} min, over the bound of 20 MiB + 25% of {:.1} MiB",
                p.name,
                growth / 1024.0,
                base / 1024.0
            ));
        }
    }
}
