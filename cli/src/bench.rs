//! `apns bench`: throughput, client CPU, latency and memory against a mock
//! in accept-all mode running in its own process.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use apns_provider::{Client, Endpoint, Notification, Payload, SigningKey};
use futures_util::StreamExt;

use super::args::{BenchArgs, Output};
use super::bench_measure::{
    peak_rss_kib, physical_limit, pinned, process_cpu_of, self_usage, KEY_ID, TEAM_ID,
};
use super::failure::{exit, Failure};

pub async fn run(args: BenchArgs) -> Result<u8, Failure> {
    if args.count == 0 || args.in_flight.concurrency == 0 || args.pool.connections == 0 {
        return Err(Failure::usage(
            "--count, --concurrency and --connections must be at least 1",
        ));
    }
    if args.pool.connections > super::args::MAX_CONNECTIONS as usize || args.payload_bytes > 5120 {
        return Err(Failure::usage(format!(
            "--connections is at most {} and --payload-bytes at most 5120 (APNs' largest payload)",
            super::args::MAX_CONNECTIONS as usize
        )));
    }
    if args.pin && std::thread::available_parallelism().map_or(0, |n| n.get()) < 2 {
        return Err(Failure::usage("--pin needs at least 2 CPUs"));
    }
    let dir = super::demo::TempDir::new()?;
    let key_pem = apns_provider::auth::generate_p8_pem();
    let (endpoint, ca_file, mut mock) = match (&args.server.endpoint, &args.server.ca_file) {
        (Some(url), Some(ca)) => (url.parse::<Endpoint>()?, ca.clone(), None),
        (Some(_), None) => return Err(Failure::usage("--endpoint needs --ca-file")),
        _ => {
            let trust = if args.validating {
                Some(apns_provider::keystore::store_key_file(
                    dir.path(),
                    "trusted-by-mock",
                    &key_pem,
                )?)
            } else {
                None
            };
            let (endpoint, ca, child) = spawn_mock(&dir, &args, trust.as_deref())?;
            (endpoint, ca, Some(MockProcess(child)))
        }
    };
    let mock_pid = mock.as_ref().map(|m| m.0.id());
    if args.worker {
        let result = super::bench_worker::run(&args, &dir, &endpoint, &ca_file, &key_pem).await;
        if let Some(m) = mock.as_mut() {
            m.stop();
        }
        return result;
    }
    if args.cli {
        let result = super::bench_cli::run(&args, &dir, &endpoint, &ca_file, &key_pem, mock_pid);
        if let Some(m) = mock.as_mut() {
            m.stop();
        }
        return result;
    }
    let key = SigningKey::from_pem(key_pem.as_bytes())?;
    let client = Client::builder()
        .endpoint(endpoint.clone())
        .add_root_certificates_file(&ca_file)
        .token_auth(key, KEY_ID, TEAM_ID)
        .pool_size(args.pool.connections)
        .request_timeout(Duration::from_secs(60))
        .build()?;
    let payload = if args.payload_bytes > 0 {
        let filler = "x".repeat(args.payload_bytes.saturating_sub(24));
        Payload::raw(format!(r#"{{"aps":{{"alert":"{filler}"}}}}"#))?
    } else {
        Payload::alert("benchmark")
    };
    let notification = Notification::builder(
        "00fc13adff785122b4ad28809a3420982341241421348097878e577c991de8f0",
        payload,
    )
    .topic("com.example.bench")
    .build()?;

    if args.output.output == Output::Human {
        eprintln!(
            "apns bench: {} notifications, {} connection(s), {} in flight, against {} ({})",
            args.count,
            args.pool.connections,
            args.in_flight.concurrency,
            endpoint,
            match (&mock, args.validating) {
                (Some(_), true) => "validating mock, separate process",
                (Some(_), false) => "mock in accept-all mode, separate process",
                (None, _) => "given endpoint",
            }
        );
    }
    // Warm up: connections open, the stream limit rises, code paths are hot.
    let warmup = (args.count / 10).clamp(100, 10_000);
    drain(
        &client,
        &notification,
        warmup,
        args.in_flight.concurrency,
        &mut Histogram::new(),
    )
    .await;

    let before = self_usage();
    let mock_before = mock_pid.map(process_cpu_of);
    let started = Instant::now();
    let mut latency = Histogram::new();
    let tally = drain(
        &client,
        &notification,
        args.count,
        args.in_flight.concurrency,
        &mut latency,
    )
    .await;
    let wall = started.elapsed();
    let usage = self_usage().since(&before);
    let cpu = usage.cpu();
    let mock_cpu = mock_pid
        .zip(mock_before)
        .map(|(pid, b)| process_cpu_of(pid).saturating_sub(b));
    let stats = client.stats();
    client.shutdown(Duration::from_secs(5)).await;
    if let Some(m) = mock.as_mut() {
        m.stop();
    }

    let rate = args.count as f64 / wall.as_secs_f64();
    let cpu_us = cpu.as_secs_f64() * 1e6 / args.count as f64;
    let peak = peak_rss_kib();
    let accounted = tally.accepted + tally.rejected + tally.failed;
    match args.output.output {
        Output::Json => println!(
            "{}",
            serde_json::json!({
                "count": args.count,
                "connections": args.pool.connections,
                "concurrency": args.in_flight.concurrency,
                "validating_mock": args.validating,
                "seconds": wall.as_secs_f64(),
                "notifications_per_second": rate,
                "client_cpu_us_per_notification": cpu_us,
                "voluntary_context_switches": usage.voluntary,
                "involuntary_context_switches": usage.involuntary,
                "mock_cpu_us_per_notification": mock_cpu.map(|c| c.as_secs_f64() * 1e6 / args.count as f64),
                "latency_ms": {
                    "p50": latency.quantile(0.50).as_secs_f64() * 1e3,
                    "p90": latency.quantile(0.90).as_secs_f64() * 1e3,
                    "p99": latency.quantile(0.99).as_secs_f64() * 1e3,
                    "max": latency.max().as_secs_f64() * 1e3,
                },
                "peak_rss_kib": peak,
                "accepted": tally.accepted,
                "rejected": tally.rejected,
                "failed": tally.failed,
                "connections_opened": stats.connections_opened,
                "tokens_minted": stats.tokens_minted,
                "physical_limit": physical_limit(&args).map(|l| l.json(rate)),
            })
        ),
        Output::Human => {
            println!("notifications     {}", args.count);
            println!("time              {:.3} s", wall.as_secs_f64());
            println!("throughput        {rate:.0} notifications/s");
            println!("client CPU        {cpu_us:.1} µs/notification");
            println!(
                "context switches  {} voluntary, {} involuntary ({:.4}/notification)",
                usage.voluntary,
                usage.involuntary,
                (usage.voluntary + usage.involuntary) as f64 / args.count as f64
            );
            if let Some(c) = mock_cpu {
                println!(
                    "mock CPU          {:.1} µs/request",
                    c.as_secs_f64() * 1e6 / args.count as f64
                );
            }
            println!(
                "latency           p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
                latency.quantile(0.50).as_secs_f64() * 1e3,
                latency.quantile(0.90).as_secs_f64() * 1e3,
                latency.quantile(0.99).as_secs_f64() * 1e3,
                latency.max().as_secs_f64() * 1e3
            );
            println!(
                "peak memory       {:.1} MiB (client process)",
                peak as f64 / 1024.0
            );
            println!(
                "results           {} accepted, {} rejected, {} failed ({} of {} accounted for)",
                tally.accepted, tally.rejected, tally.failed, accounted, args.count
            );
            println!(
                "connections       {} opened; {} provider token(s) minted",
                stats.connections_opened, stats.tokens_minted
            );
            if let Some(limit) = physical_limit(&args) {
                println!("{}", limit.line(rate));
            }
        }
    }
    if accounted != args.count {
        return Err(Failure::usage(format!(
            "only {accounted} of {} results came back",
            args.count
        )));
    }
    Ok(if tally.failed > 0 {
        exit::CONNECTION
    } else if tally.rejected > 0 {
        exit::REJECTED
    } else {
        exit::OK
    })
}

#[derive(Default)]
struct Tally {
    accepted: u64,
    rejected: u64,
    failed: u64,
}

/// Sends `count` copies through `send_many`, tallying every result.
async fn drain(
    client: &Client,
    notification: &Notification,
    count: u64,
    concurrency: usize,
    latency: &mut Histogram,
) -> Tally {
    let template = notification.clone();
    let input = futures_util::stream::iter((0..count).map(move |_| template.clone()));
    let mut results = client.send_many(input, concurrency);
    let mut tally = Tally::default();
    while let Some(outcome) = results.next().await {
        latency.record(outcome.elapsed);
        match outcome.result {
            Ok(r) if r.is_accepted() => tally.accepted += 1,
            Ok(_) => tally.rejected += 1,
            Err(_) => tally.failed += 1,
        }
    }
    tally
}

struct MockProcess(Child);

impl MockProcess {
    fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

impl Drop for MockProcess {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Starts `apns mock` in its own process: accept-all, or validating and
/// trusting the key at `trust`.
fn spawn_mock(
    dir: &super::demo::TempDir,
    args: &BenchArgs,
    trust: Option<&std::path::Path>,
) -> Result<(Endpoint, std::path::PathBuf, Child), Failure> {
    let (max_streams, pin) = (args.streams.max_streams, args.pin);
    let exe = std::env::current_exe()
        .map_err(|e| Failure::usage(format!("cannot find the apns binary: {e}")))?;
    let ca = dir.path().join("bench-ca.pem");
    let mut child = pinned(&exe, pin.then_some(0));
    if pin {
        // One core: one thread (a multi-thread runtime on one core only
        // adds wakeups between its threads).
        child.args(["mock", "--threads", "1"]);
    } else {
        child.arg("mock");
    }
    match trust {
        Some(key) => child
            .arg("--trust-key")
            .arg(format!("{KEY_ID}={TEAM_ID}:{}", key.display())),
        None => child.arg("--accept-all"),
    };
    if let Some((min, max)) = args.distance.latency {
        child.arg("--latency").arg(format!(
            "{}ms..{}ms",
            min.as_secs_f64() * 1e3,
            max.as_secs_f64() * 1e3
        ));
    }
    let mut child = child
        .args(["--max-streams", &max_streams.to_string(), "--ca-out"])
        .arg(&ca)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| Failure::usage(format!("cannot start the mock: {e}")))?;
    let mut line = String::new();
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| Failure::usage("the mock's stdout is not piped"))?;
    BufReader::new(stdout)
        .read_line(&mut line)
        .map_err(|e| Failure::usage(format!("cannot read the mock's address: {e}")))?;
    let ready: serde_json::Value = serde_json::from_str(&line)
        .map_err(|_| Failure::usage(format!("unexpected output from the mock: {line:?}")))?;
    let endpoint = ready["endpoint"]
        .as_str()
        .unwrap_or_default()
        .parse::<Endpoint>()?;
    Ok((endpoint, ca, child))
}

/// A log-linear latency histogram of fixed size (memory independent of
/// the count): 16 sub-buckets per power of two of microseconds.
struct Histogram {
    buckets: Vec<u64>,
    count: u64,
    max: Duration,
}

impl Histogram {
    const SUB: u32 = 16;

    fn new() -> Self {
        Histogram {
            buckets: vec![0; 64 * Self::SUB as usize],
            count: 0,
            max: Duration::ZERO,
        }
    }

    fn index(us: u64) -> usize {
        if us < Self::SUB as u64 {
            return us as usize;
        }
        let exp = 63 - us.leading_zeros(); // >= 4
        let sub = (us >> (exp - 4)) & (Self::SUB as u64 - 1);
        ((exp - 3) * Self::SUB) as usize + sub as usize
    }

    fn lower_bound(index: usize) -> u64 {
        let sub_n = Self::SUB as usize;
        if index < sub_n {
            return index as u64;
        }
        let exp = (index / sub_n) as u32 + 3;
        let sub = (index % sub_n) as u64;
        (Self::SUB as u64 + sub) << (exp - 4)
    }

    fn record(&mut self, d: Duration) {
        let us = d.as_micros().min(u64::MAX as u128) as u64;
        let i = Self::index(us).min(self.buckets.len() - 1);
        self.buckets[i] += 1;
        self.count += 1;
        self.max = self.max.max(d);
    }

    fn quantile(&self, q: f64) -> Duration {
        let target = ((self.count as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= target {
                return Duration::from_micros(Self::lower_bound(i));
            }
        }
        self.max
    }

    fn max(&self) -> Duration {
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_quantiles_are_within_a_bucket() {
        let mut h = Histogram::new();
        for us in 1..=10_000u64 {
            h.record(Duration::from_micros(us));
        }
        let p50 = h.quantile(0.5).as_micros() as f64;
        let p99 = h.quantile(0.99).as_micros() as f64;
        assert!((p50 - 5000.0).abs() / 5000.0 < 0.07, "{p50}");
        assert!((p99 - 9900.0).abs() / 9900.0 < 0.07, "{p99}");
        assert_eq!(h.max(), Duration::from_micros(10_000));
        for i in 0..200 {
            assert!(Histogram::index(Histogram::lower_bound(i)) == i);
        }
    }
}
