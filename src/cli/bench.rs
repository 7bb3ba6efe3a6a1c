//! `apns bench`: throughput, client CPU, latency and memory against a mock
//! in accept-all mode running in its own process.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use apns_provider::{Client, Endpoint, Notification, Payload, SigningKey};
use futures_util::StreamExt;

use super::args::{BenchArgs, Output};
use super::{exit, Failure};

const KEY_ID: &str = "BENCHKEY01";
const TEAM_ID: &str = "BENCHTEAM1";

pub async fn run(args: BenchArgs) -> Result<u8, Failure> {
    if args.count == 0 || args.concurrency == 0 || args.connections == 0 {
        return Err(Failure::usage(
            "--count, --concurrency and --connections must be at least 1",
        ));
    }
    if args.connections > super::MAX_CONNECTIONS || args.payload_bytes > 5120 {
        return Err(Failure::usage(format!(
            "--connections is at most {} and --payload-bytes at most 5120 (APNs' largest payload)",
            super::MAX_CONNECTIONS
        )));
    }
    let dir = super::demo::TempDir::new()?;
    let (endpoint, ca_file, mut mock) = match (&args.endpoint, &args.ca_file) {
        (Some(url), Some(ca)) => (url.parse::<Endpoint>()?, ca.clone(), None),
        (Some(_), None) => return Err(Failure::usage("--endpoint needs --ca-file")),
        _ => {
            let (endpoint, ca, child) = spawn_mock(&dir, args.max_streams)?;
            (endpoint, ca, Some(MockProcess(child)))
        }
    };
    let key_pem = apns_provider::auth::generate_p8_pem();
    if args.worker {
        let result = super::bench_worker::run(&args, &dir, &endpoint, &ca_file, &key_pem).await;
        if let Some(m) = mock.as_mut() {
            m.stop();
        }
        return result;
    }
    if args.cli {
        let result = bench_cli(&args, &dir, &endpoint, &ca_file, &key_pem);
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
        .pool_size(args.connections)
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

    if args.output == Output::Human {
        eprintln!(
            "apns bench: {} notifications, {} connection(s), {} in flight, against {} ({})",
            args.count,
            args.connections,
            args.concurrency,
            endpoint,
            if mock.is_some() {
                "mock in accept-all mode, separate process"
            } else {
                "given endpoint"
            }
        );
    }
    // Warm up: connections open, the stream limit rises, code paths are hot.
    let warmup = (args.count / 10).clamp(100, 10_000);
    drain(
        &client,
        &notification,
        warmup,
        args.concurrency,
        &mut Histogram::new(),
    )
    .await;

    let cpu_before = process_cpu();
    let started = Instant::now();
    let mut latency = Histogram::new();
    let tally = drain(
        &client,
        &notification,
        args.count,
        args.concurrency,
        &mut latency,
    )
    .await;
    let wall = started.elapsed();
    let cpu = process_cpu().saturating_sub(cpu_before);
    let stats = client.stats();
    client.shutdown(Duration::from_secs(5)).await;
    if let Some(m) = mock.as_mut() {
        m.stop();
    }

    let rate = args.count as f64 / wall.as_secs_f64();
    let cpu_us = cpu.as_secs_f64() * 1e6 / args.count as f64;
    let peak = peak_rss_kib();
    let accounted = tally.accepted + tally.rejected + tally.failed;
    match args.output {
        Output::Json => println!(
            "{}",
            serde_json::json!({
                "count": args.count,
                "connections": args.connections,
                "concurrency": args.concurrency,
                "seconds": wall.as_secs_f64(),
                "notifications_per_second": rate,
                "client_cpu_us_per_notification": cpu_us,
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
            })
        ),
        Output::Human => {
            println!("notifications     {}", args.count);
            println!("time              {:.3} s", wall.as_secs_f64());
            println!("throughput        {rate:.0} notifications/s");
            println!("client CPU        {cpu_us:.1} µs/notification");
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

/// `--cli`: the bulk send of the CLI, measured from outside.
fn bench_cli(
    args: &BenchArgs,
    dir: &super::demo::TempDir,
    endpoint: &Endpoint,
    ca_file: &std::path::Path,
    key_pem: &str,
) -> Result<u8, Failure> {
    use std::io::Write;
    let io = |what: &str, e: std::io::Error| Failure::usage(format!("{what}: {e}"));
    let key_path =
        apns_provider::keystore::store_key_file(dir.path(), &format!("AuthKey_{KEY_ID}"), key_pem)?;
    let tokens = dir.path().join("tokens.txt");
    let results = dir.path().join("results.jsonl");
    {
        let mut f = std::io::BufWriter::new(
            std::fs::File::create(&tokens).map_err(|e| io("cannot write the tokens file", e))?,
        );
        for i in 0..args.count {
            writeln!(f, "{i:064x}").map_err(|e| io("cannot write the tokens file", e))?;
        }
        f.flush()
            .map_err(|e| io("cannot write the tokens file", e))?;
    }
    let file_mib = std::fs::metadata(&tokens).map(|m| m.len()).unwrap_or(0) as f64 / 1048576.0;
    if args.output == Output::Human {
        eprintln!(
            "apns bench --cli: apns send --tokens-file ({} lines, {file_mib:.0} MiB) --results, {} connection(s), {} in flight",
            args.count, args.connections, args.concurrency
        );
    }
    let exe = std::env::current_exe().map_err(|e| io("cannot find the apns binary", e))?;
    let started = Instant::now();
    let mut child = Command::new(exe)
        .arg("send")
        .arg("--key-file")
        .arg(&key_path)
        .args([
            "--key-id",
            KEY_ID,
            "--team-id",
            TEAM_ID,
            "--topic",
            "com.example.bench",
        ])
        .args(["--endpoint", &endpoint.to_string(), "--ca-file"])
        .arg(ca_file)
        .args(["--alert", "benchmark", "--no-progress", "--output", "json"])
        .args(["--concurrency", &args.concurrency.to_string()])
        .args(["--connections", &args.connections.to_string()])
        .arg("--tokens-file")
        .arg(&tokens)
        .arg("--results")
        .arg(&results)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| io("cannot start apns send", e))?;
    // VmHWM only grows: the last reading before exit is the peak.
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak_kib = 0u64;
    let status = loop {
        if let Ok(text) = std::fs::read_to_string(&status_path) {
            if let Some(kib) = vm_hwm(&text) {
                peak_kib = peak_kib.max(kib);
            }
        }
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(io("waiting for apns send", e)),
        }
    };
    let wall = started.elapsed();
    let mut stderr_text = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut stderr_text);
    }
    let check = check_results(&results, args.count);
    let result_lines = check.accepted;
    let rate = args.count as f64 / wall.as_secs_f64();
    match args.output {
        Output::Json => println!(
            "{}",
            serde_json::json!({
                "mode": "cli",
                "count": args.count,
                "seconds": wall.as_secs_f64(),
                "notifications_per_second": rate,
                "peak_rss_kib": peak_kib,
                "result_lines": result_lines,
                "exit_code": status.code(),
            })
        ),
        Output::Human => {
            println!("notifications     {}", args.count);
            println!("time              {:.3} s", wall.as_secs_f64());
            println!("throughput        {rate:.0} notifications/s (reading the file, writing the results)");
            println!(
                "peak memory       {:.1} MiB (apns send process)",
                peak_kib as f64 / 1024.0
            );
            println!(
                "result lines      {result_lines} of {} accepted, one per line",
                args.count
            );
        }
    }
    if let Some(problem) = &check.problem {
        return Err(Failure::usage(format!(
            "the results file is wrong: {problem}"
        )));
    }
    if !status.success() || result_lines != args.count {
        return Err(Failure::usage(format!(
            "apns send exited with {status} and wrote {result_lines} of {} result lines: {}",
            args.count,
            stderr_text.lines().last().unwrap_or("")
        )));
    }
    Ok(exit::OK)
}

/// What the results file of a CLI run says: every line 1..=count exactly
/// once, each accepted (each line is read and parsed, not only counted).
struct ResultCheck {
    accepted: u64,
    problem: Option<String>,
}

fn check_results(path: &std::path::Path, count: u64) -> ResultCheck {
    let mut check = ResultCheck {
        accepted: 0,
        problem: None,
    };
    let Ok(file) = std::fs::File::open(path) else {
        check.problem = Some(format!("{} cannot be opened", path.display()));
        return check;
    };
    let mut seen = vec![false; count as usize + 1];
    for (i, text) in BufReader::new(file).lines().enumerate() {
        let Ok(text) = text else {
            check.problem = Some(format!("result line {} cannot be read", i + 1));
            break;
        };
        let parsed: Option<(u64, u64)> = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| Some((v["line"].as_u64()?, v["status"].as_u64().unwrap_or(0))));
        match parsed {
            Some((line, 200)) if (1..=count).contains(&line) && !seen[line as usize] => {
                seen[line as usize] = true;
                check.accepted += 1;
            }
            _ => {
                check.problem.get_or_insert(format!(
                    "result line {} is not a single accepted notification: {}",
                    i + 1,
                    text.chars().take(200).collect::<String>()
                ));
            }
        }
    }
    check
}

pub(super) fn vm_hwm(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
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

fn spawn_mock(
    dir: &super::demo::TempDir,
    max_streams: u32,
) -> Result<(Endpoint, std::path::PathBuf, Child), Failure> {
    let exe = std::env::current_exe()
        .map_err(|e| Failure::usage(format!("cannot find the apns binary: {e}")))?;
    let ca = dir.path().join("bench-ca.pem");
    let mut child = Command::new(exe)
        .args([
            "mock",
            "--accept-all",
            "--max-streams",
            &max_streams.to_string(),
            "--ca-out",
        ])
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

/// User plus system CPU time of this process, from /proc (Linux).
fn process_cpu() -> Duration {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
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

/// Peak resident memory of this process in KiB (VmHWM), 0 if unknown.
pub fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| vm_hwm(&s))
        .unwrap_or(0)
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
