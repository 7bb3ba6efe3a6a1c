//! What the benches measure with, shared by `bench.rs` (the library's
//! loop), `bench_cli.rs` (`apns send` as a process) and `bench_worker.rs`:
//! the bench key's ids, CPU and context switches (`getrusage`, /proc),
//! peak memory, CPU pinning, and the physical limit at a distance.

use std::process::Command;
use std::time::Duration;

use super::args::BenchArgs;

pub(super) const KEY_ID: &str = "BENCHKEY01";
pub(super) const TEAM_ID: &str = "BENCHTEAM1";

/// With `--latency`: the most a client can send per second at that
/// distance, whatever its CPU: the work it keeps in flight (its
/// concurrency, at most the streams of its connections) ÷ the mean round
/// trip. `None` without a latency.
pub(super) fn physical_limit(args: &BenchArgs) -> Option<PhysicalLimit> {
    let (min, max) = args.distance.latency?;
    let round_trip = (min + max) / 2;
    let streams = args.pool.connections as u64 * u64::from(args.streams.max_streams);
    let in_flight = (args.in_flight.concurrency as u64).min(streams);
    Some(PhysicalLimit {
        latency_ms: (min.as_secs_f64() * 1e3, max.as_secs_f64() * 1e3),
        in_flight,
        per_second: in_flight as f64 / round_trip.as_secs_f64().max(1e-6),
    })
}

/// What `--latency` allows at best (see [`physical_limit`]).
pub(super) struct PhysicalLimit {
    pub latency_ms: (f64, f64),
    pub in_flight: u64,
    pub per_second: f64,
}

impl PhysicalLimit {
    pub(super) fn json(&self, rate: f64) -> serde_json::Value {
        serde_json::json!({
            "latency_ms": {"min": self.latency_ms.0, "max": self.latency_ms.1},
            "in_flight": self.in_flight,
            "notifications_per_second": self.per_second,
            "reached": rate / self.per_second,
        })
    }

    pub(super) fn line(&self, rate: f64) -> String {
        format!(
            "at a distance     {:.0} notifications/s at most ({} in flight ÷ {:.0}..{:.0} ms); reached {:.0}%",
            self.per_second,
            self.in_flight,
            self.latency_ms.0,
            self.latency_ms.1,
            100.0 * rate / self.per_second
        )
    }
}

pub(super) fn vm_hwm(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// CPU time and context switches, from `getrusage`.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Usage {
    pub user: Duration,
    pub system: Duration,
    pub voluntary: u64,
    pub involuntary: u64,
}

impl Usage {
    fn read(who: nix::sys::resource::UsageWho) -> Usage {
        let Ok(u) = nix::sys::resource::getrusage(who) else {
            return Usage::default();
        };
        let time = |t: nix::sys::time::TimeVal| {
            Duration::from_secs(t.tv_sec().max(0) as u64)
                + Duration::from_micros(t.tv_usec().max(0) as u64)
        };
        Usage {
            user: time(u.user_time()),
            system: time(u.system_time()),
            voluntary: u.voluntary_context_switches().max(0) as u64,
            involuntary: u.involuntary_context_switches().max(0) as u64,
        }
    }

    /// User plus system time.
    pub fn cpu(&self) -> Duration {
        self.user + self.system
    }

    /// What was used between `earlier` and this reading.
    pub fn since(&self, earlier: &Usage) -> Usage {
        Usage {
            user: self.user.saturating_sub(earlier.user),
            system: self.system.saturating_sub(earlier.system),
            voluntary: self.voluntary.saturating_sub(earlier.voluntary),
            involuntary: self.involuntary.saturating_sub(earlier.involuntary),
        }
    }
}

/// This process's usage so far.
pub(super) fn self_usage() -> Usage {
    Usage::read(nix::sys::resource::UsageWho::RUSAGE_SELF)
}

/// The usage of the children waited for so far: the difference around
/// one child's wait is that child's.
pub(super) fn children_usage() -> Usage {
    Usage::read(nix::sys::resource::UsageWho::RUSAGE_CHILDREN)
}

/// User plus system CPU time of a running process, from /proc (Linux;
/// zero elsewhere): how the mock's share of a run is read.
pub(super) fn process_cpu_of(pid: u32) -> Duration {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return Duration::ZERO;
    };
    // Fields after the command name, which is in parentheses.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // utime and stime are fields 14 and 15 (1-based), in clock ticks (100 Hz).
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

/// A command for `program`, pinned to `cpu` with `taskset` when one is
/// given (so the mock and the measured process do not share a core).
pub(super) fn pinned(program: &std::path::Path, cpu: Option<usize>) -> Command {
    match cpu {
        Some(cpu) => {
            let mut cmd = Command::new("taskset");
            cmd.args(["-c", &cpu.to_string()]).arg(program);
            cmd
        }
        None => Command::new(program),
    }
}

/// Peak resident memory of this process in KiB (VmHWM), 0 if unknown.
pub fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| vm_hwm(&s))
        .unwrap_or(0)
}
