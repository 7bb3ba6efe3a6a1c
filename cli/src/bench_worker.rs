//! `apns bench --worker`: jobs per second of `apns worker` processes
//! sharing one Redis stream, against a mock in accept-all mode.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use apns_provider::worker::Job;
use apns_provider::{Endpoint, Notification, Payload};

use super::args::{BenchArgs, Output};
use super::bench_measure::{process_cpu_of, vm_hwm};
use super::failure::{exit, Failure};

const KEY_ID: &str = "BENCHKEY01";
const TEAM_ID: &str = "BENCHTEAM1";
const TOPIC: &str = "com.example.bench";

/// Kills a child process if the benchmark stops early.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

impl Process {
    fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        self.0.wait().ok()
    }
}

fn io(what: &str, e: impl std::fmt::Display) -> Failure {
    Failure::usage(format!("{what}: {e}"))
}

pub async fn run(
    args: &BenchArgs,
    dir: &super::demo::TempDir,
    endpoint: &Endpoint,
    ca_file: &std::path::Path,
    key_pem: &str,
) -> Result<u8, Failure> {
    if args.workers == 0 || args.workers > 64 {
        return Err(Failure::usage("--workers must be between 1 and 64"));
    }
    let mut own_redis = None;
    let url = match &args.redis {
        Some(url) => url.clone(),
        None => {
            let (child, port) = spawn_redis(dir.path())?;
            own_redis = Some(Process(child));
            format!("redis://127.0.0.1:{port}")
        }
    };
    // Keys of their own, so that an existing Redis is not disturbed.
    let prefix = format!("apns-bench:{}", uuid::Uuid::new_v4().simple());
    let (stream, results, dead) = (
        format!("{prefix}:jobs"),
        format!("{prefix}:results"),
        format!("{prefix}:dead"),
    );
    let client = redis::Client::open(url.as_str()).map_err(|e| io("--redis", e))?;
    let config =
        redis::AsyncConnectionConfig::new().set_response_timeout(Some(Duration::from_secs(30)));
    let mut conn = client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .map_err(|e| io("cannot reach Redis", e))?;

    // The jobs, added before any worker runs (the group starts at the
    // beginning of the stream).
    let template = Notification::builder("00", Payload::alert("benchmark"))
        .topic(TOPIC)
        .build()?;
    let enqueue_started = Instant::now();
    let mut added = 0u64;
    while added < args.count {
        let mut pipe = redis::pipe();
        let n = (args.count - added).min(1000);
        for i in added..added + n {
            let token = apns_provider::DeviceToken::new(format!("{i:064x}"))?;
            let job = Job::from_notification(
                uuid::Uuid::new_v4().to_string(),
                &template.with_device_token(token),
            );
            let cmd = pipe.cmd("XADD").arg(&stream).arg("*");
            for (k, v) in job.to_fields() {
                cmd.arg(k).arg(v);
            }
            cmd.ignore();
        }
        pipe.query_async::<()>(&mut conn)
            .await
            .map_err(|e| io("cannot enqueue", e))?;
        added += n;
    }
    let enqueue_rate = args.count as f64 / enqueue_started.elapsed().as_secs_f64();

    let key_path =
        apns_provider::keystore::store_key_file(dir.path(), &format!("AuthKey_{KEY_ID}"), key_pem)?;
    let exe = std::env::current_exe().map_err(|e| io("cannot find the apns binary", e))?;
    if args.output.output == Output::Human {
        eprintln!(
            "apns bench --worker: {} jobs, {} worker process(es), {} in flight and {} connection(s) each, Redis {}",
            args.count,
            args.workers,
            args.in_flight.concurrency,
            args.pool.connections,
            client.get_connection_info().addr()
        );
    }
    // Redis's own CPU per job, when it runs here: one Redis serves every
    // worker, so this bounds what one Redis can carry.
    let redis_cpu_before = own_redis.as_ref().map(|r| process_cpu_of(r.0.id()));
    let started = Instant::now();
    let mut workers = Vec::new();
    for i in 0..args.workers {
        let child = Command::new(&exe)
            .args(["worker", "--redis", &url, "--stream", &stream])
            .args(["--results-stream", &results, "--dead-letter", &dead])
            .args(["--group", "bench", "--consumer", &format!("bench-{i}")])
            .arg("--key-file")
            .arg(&key_path)
            .args(["--key-id", KEY_ID, "--team-id", TEAM_ID, "--topic", TOPIC])
            .args(["--endpoint", &endpoint.to_string(), "--ca-file"])
            .arg(ca_file)
            .args(["--concurrency", &args.in_flight.concurrency.to_string()])
            .args(["--connections", &args.pool.connections.to_string()])
            .args(["--stats-interval", "0"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| io("cannot start apns worker", e))?;
        workers.push(Process(child));
    }
    // Timed from 5% of the results to the last, so that process start-up
    // and connection set-up are left out.
    let five_percent = (args.count / 20).max(1);
    let mut from: Option<Instant> = None;
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let done: u64 = redis::cmd("XLEN")
            .arg(&results)
            .query_async(&mut conn)
            .await
            .map_err(|e| io("cannot read the results", e))?;
        if from.is_none() && done >= five_percent {
            from = Some(Instant::now());
        }
        if done >= args.count {
            break;
        }
        if Instant::now() > deadline
            || workers
                .iter_mut()
                .any(|w| !matches!(w.0.try_wait(), Ok(None)))
        {
            return Err(Failure::usage(format!(
                "only {done} of {} results after {:.0} s (a worker stopped, or it is far too slow)",
                args.count,
                started.elapsed().as_secs_f64()
            )));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let total = started.elapsed();
    let measured = from.map(|f| f.elapsed()).unwrap_or(total);
    let rate = (args.count - five_percent) as f64 / measured.as_secs_f64().max(1e-6);
    // CPU and memory of the workers, read before they exit.
    let mut cpu = Duration::ZERO;
    let mut peak_kib = 0u64;
    for w in &workers {
        let pid = w.0.id();
        cpu += process_cpu_of(pid);
        if let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
            peak_kib = peak_kib.max(vm_hwm(&text).unwrap_or(0));
        }
    }
    let redis_cpu = own_redis
        .as_ref()
        .zip(redis_cpu_before)
        .map(|(r, before)| process_cpu_of(r.0.id()).saturating_sub(before));
    let mut failed_exits = 0;
    for w in &mut workers {
        if !w.terminate().is_some_and(|s| s.success()) {
            failed_exits += 1;
        }
    }
    let accepted = count_accepted(&mut conn, &results).await?;
    let dead_letters: u64 = redis::cmd("XLEN")
        .arg(&dead)
        .query_async(&mut conn)
        .await
        .unwrap_or(0);
    let _: Result<(), _> = redis::cmd("DEL")
        .arg(&stream)
        .arg(&results)
        .arg(&dead)
        .query_async(&mut conn)
        .await;
    if let Some(mut r) = own_redis {
        r.terminate();
    }
    let cpu_us = cpu.as_secs_f64() * 1e6 / args.count as f64;
    let redis_us = redis_cpu.map(|c| c.as_secs_f64() * 1e6 / args.count as f64);
    match args.output.output {
        Output::Json => println!(
            "{}",
            serde_json::json!({
                "mode": "worker",
                "count": args.count,
                "workers": args.workers,
                "concurrency": args.in_flight.concurrency,
                "connections": args.pool.connections,
                "jobs_per_second": rate,
                "jobs_per_second_per_worker": rate / args.workers as f64,
                "seconds": total.as_secs_f64(),
                "enqueue_jobs_per_second": enqueue_rate,
                "worker_cpu_us_per_job": cpu_us,
                "redis_cpu_us_per_job": redis_us,
                "worker_peak_rss_kib": peak_kib,
                "accepted": accepted,
                "dead_lettered": dead_letters,
            })
        ),
        Output::Human => {
            println!("jobs              {}", args.count);
            println!(
                "throughput        {rate:.0} jobs/s ({:.0} per worker), from 5% of the results to the last",
                rate / args.workers as f64
            );
            println!("time              {:.3} s in all", total.as_secs_f64());
            println!("worker CPU        {cpu_us:.1} µs/job (user + system, all workers)");
            if let Some(us) = redis_us {
                println!(
                    "Redis CPU         {us:.1} µs/job (reads, markers, results, acknowledgements)"
                );
            }
            println!(
                "peak memory       {:.1} MiB (largest worker)",
                peak_kib as f64 / 1024.0
            );
            println!(
                "enqueue           {enqueue_rate:.0} jobs/s (pipelined XADD, batches of 1000)"
            );
            println!(
                "results           {accepted} accepted of {}; {dead_letters} dead-lettered",
                args.count
            );
        }
    }
    if accepted != args.count || failed_exits > 0 {
        return Err(Failure::usage(format!(
            "{accepted} of {} jobs accepted; {failed_exits} worker(s) did not stop cleanly",
            args.count
        )));
    }
    Ok(exit::OK)
}

/// Results that say accepted, read in pages.
async fn count_accepted(
    conn: &mut redis::aio::MultiplexedConnection,
    results: &str,
) -> Result<u64, Failure> {
    let mut accepted = 0;
    let mut from = "-".to_string();
    loop {
        let page: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
            .arg(results)
            .arg(&from)
            .arg("+")
            .arg("COUNT")
            .arg(10_000)
            .query_async(conn)
            .await
            .map_err(|e| io("cannot read the results", e))?;
        let Some((last, _)) = page.last() else {
            return Ok(accepted);
        };
        from = format!("({last}");
        accepted += page
            .iter()
            .filter(|(_, f)| f.iter().any(|(k, v)| k == "status" && v == "200"))
            .count() as u64;
    }
}

/// Starts `redis-server` from PATH on a free loopback port (another one if
/// the first is taken), without persistence.
fn spawn_redis(dir: &std::path::Path) -> Result<(Child, u16), Failure> {
    for _ in 0..20 {
        let port = 20_000 + (uuid::Uuid::new_v4().as_u128() % 40_000) as u16;
        let mut child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .arg("--dir")
            .arg(dir)
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .args(["--logfile", ""])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                io(
                    "cannot run redis-server (install it, e.g. apt-get install redis-server, or give --redis URL)",
                    e,
                )
            })?;
        let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        let mut log = String::new();
        let mut ready = false;
        for line in lines.by_ref() {
            let Ok(line) = line else { break };
            if line.contains("Ready to accept connections") {
                ready = true;
                break;
            }
            log.push_str(&line);
            log.push('\n');
        }
        if ready {
            std::thread::spawn(move || for _ in lines {});
            return Ok((child, port));
        }
        let _ = child.wait();
        if !log.contains("in use") {
            return Err(Failure::usage(format!("redis-server did not start: {log}")));
        }
    }
    Err(Failure::usage("redis-server found no free port"))
}
