//! `apns bench --cli`: the whole `apns send` process a user runs, measured
//! from outside: wall time, its CPU (user and system) and context switches
//! from `getrusage`, its peak memory; the mock's CPU over the same run; and
//! `h2load` against the same server, with the same headers and payload,
//! when it is installed: the floor to compare with.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use apns_provider::{Endpoint, KeyId, Notification, Payload, SigningKey, TeamId, TokenSigner};
use serde_json::json;

use super::args::{BenchArgs, Output};
use super::bench_measure::{
    children_usage, pinned, process_cpu_of, vm_hwm, Usage, KEY_ID, TEAM_ID,
};
use super::failure::{exit, Failure};

const TOPIC: &str = "com.example.bench";
const ALERT: &str = "benchmark";

/// What the measured process did.
struct Measured {
    wall: Duration,
    usage: Usage,
    peak_kib: u64,
    mock_cpu: Option<Duration>,
}

pub(super) fn run(
    args: &BenchArgs,
    dir: &super::demo::TempDir,
    endpoint: &Endpoint,
    ca_file: &Path,
    key_pem: &str,
    mock_pid: Option<u32>,
) -> Result<u8, Failure> {
    let io = |what: &str, e: std::io::Error| Failure::usage(format!("{what}: {e}"));
    let key_path =
        apns_provider::keystore::store_key_file(dir.path(), &format!("AuthKey_{KEY_ID}"), key_pem)?;
    let tokens = dir.path().join("tokens.txt");
    let results = dir.path().join("results.jsonl");
    write_lines(&tokens, args.count, |i| format!("{i:064x}"))
        .map_err(|e| io("cannot write the tokens file", e))?;
    let file_mib = std::fs::metadata(&tokens).map(|m| m.len()).unwrap_or(0) as f64 / 1048576.0;
    if args.output.output == Output::Human {
        eprintln!(
            "apns bench --cli: apns send --tokens-file ({} lines, {file_mib:.0} MiB) --results, {} connection(s), {} in flight{}{}",
            args.count,
            args.pool.connections,
            args.in_flight.concurrency,
            if args.validating { "; validating mock" } else { "" },
            if args.pin { "; mock on CPU 0, apns send on CPU 1" } else { "" }
        );
    }
    let exe = std::env::current_exe().map_err(|e| io("cannot find the apns binary", e))?;
    let mut cmd = pinned(&exe, args.pin.then_some(1));
    cmd.arg("send")
        .arg("--key-file")
        .arg(&key_path)
        .args(["--key-id", KEY_ID, "--team-id", TEAM_ID, "--topic", TOPIC])
        .args(["--endpoint", &endpoint.to_string(), "--ca-file"])
        .arg(ca_file)
        .args(["--alert", ALERT, "--no-progress", "--output", "json"])
        .args(["--concurrency", &args.in_flight.concurrency.to_string()])
        .args(["--connections", &args.pool.connections.to_string()])
        .arg("--tokens-file")
        .arg(&tokens)
        .arg("--results")
        .arg(&results)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let (status, measured, stderr_text) = measure(cmd, mock_pid)?;
    let check = check_results(&results, args.count);
    let result_lines = check.accepted;

    let h2load = if args.no_h2load {
        None
    } else {
        h2load(args, dir, endpoint, key_pem, mock_pid)?
    };
    report(
        args,
        &measured,
        result_lines,
        status.code(),
        h2load.as_ref(),
    );

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

fn write_lines(path: &Path, n: u64, line: impl Fn(u64) -> String) -> std::io::Result<()> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    for i in 0..n {
        writeln!(f, "{}", line(i))?;
    }
    f.flush()
}

/// Runs `cmd` to its end: its status, what it cost (from `getrusage` of
/// the children waited for, before and after), its peak memory (VmHWM,
/// polled), the mock's CPU meanwhile, and its stderr.
fn measure(
    mut cmd: Command,
    mock_pid: Option<u32>,
) -> Result<(std::process::ExitStatus, Measured, String), Failure> {
    let io = |what: &str, e: std::io::Error| Failure::usage(format!("{what}: {e}"));
    let before = children_usage();
    let mock_before = mock_pid.map(process_cpu_of);
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|e| io("cannot start the measured command", e))?;
    // The stderr is read as it comes, so a full pipe never stalls the run.
    let reader = child.stderr.take().map(|mut e| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = std::io::Read::read_to_string(&mut e, &mut text);
            text
        })
    });
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
            Err(e) => return Err(io("waiting for the measured command", e)),
        }
    };
    let wall = started.elapsed();
    let usage = children_usage().since(&before);
    let mock_cpu = match (mock_pid, mock_before) {
        (Some(pid), Some(b)) => Some(process_cpu_of(pid).saturating_sub(b)),
        _ => None,
    };
    let stderr_text = reader.and_then(|r| r.join().ok()).unwrap_or_default();
    Ok((
        status,
        Measured {
            wall,
            usage,
            peak_kib,
            mock_cpu,
        },
        stderr_text,
    ))
}

/// h2load's run against the same server.
struct H2load {
    requests_per_second: f64,
    succeeded: u64,
    measured: Measured,
    streams: usize,
}

/// Runs h2load (when on the PATH) with what `apns send` sends: one POST
/// per distinct device token, the same `authorization`, `apns-topic` and
/// `apns-push-type` headers and the same payload, over as many
/// connections, with as many streams in flight.
fn h2load(
    args: &BenchArgs,
    dir: &super::demo::TempDir,
    endpoint: &Endpoint,
    key_pem: &str,
    mock_pid: Option<u32>,
) -> Result<Option<H2load>, Failure> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("h2load"))
            .find(|p| p.is_file())
    });
    let Some(h2load) = found else {
        if args.output.output == Output::Human {
            eprintln!(
                "apns bench --cli: h2load is not installed (Debian: nghttp2-client); no comparison"
            );
        }
        return Ok(None);
    };
    let io = |what: &str, e: std::io::Error| Failure::usage(format!("{what}: {e}"));
    let uris = dir.path().join("uris.txt");
    let base = format!("https://{}", endpoint.authority());
    write_lines(&uris, args.count, |i| format!("{base}/3/device/{i:064x}"))
        .map_err(|e| io("cannot write h2load's URI file", e))?;
    let payload_path = dir.path().join("payload.json");
    let n = Notification::builder("00", Payload::alert(ALERT))
        .topic(TOPIC)
        .build()?;
    std::fs::write(&payload_path, n.payload()).map_err(|e| io("cannot write the payload", e))?;
    let signer = TokenSigner::new(
        SigningKey::from_pem(key_pem.as_bytes())?,
        KeyId::new(KEY_ID)?,
        TeamId::new(TEAM_ID)?,
    );
    let jwt = signer.sign_jwt(apns_provider::clock::now_unix_seconds());
    let per_connection = args
        .in_flight
        .concurrency
        .div_ceil(args.pool.connections)
        .max(1);
    let streams = per_connection.min(args.streams.max_streams as usize);
    let mut cmd = pinned(&h2load, args.pin.then_some(1));
    cmd.args(["-n", &args.count.to_string()])
        .args(["-c", &args.pool.connections.to_string()])
        .args(["-m", &streams.to_string()])
        .args(["-t", "1"])
        .arg("-d")
        .arg(&payload_path)
        .args(["-H", &format!("authorization: bearer {jwt}")])
        .args(["-H", &format!("apns-topic: {TOPIC}")])
        .args(["-H", "apns-push-type: alert"])
        .arg("-i")
        .arg(&uris)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // Its stdout is read after the run: it says little until the end.
    let out_path = dir.path().join("h2load.out");
    let out =
        std::fs::File::create(&out_path).map_err(|e| io("cannot write h2load's output", e))?;
    cmd.stdout(out);
    let (status, measured, stderr_text) = measure(cmd, mock_pid)?;
    let text = std::fs::read_to_string(&out_path).unwrap_or_default();
    let (rps, succeeded) = parse_h2load(&text);
    if !status.success() || succeeded == 0 {
        eprintln!(
            "apns bench --cli: h2load failed ({status}): {}",
            text.lines()
                .chain(stderr_text.lines())
                .rfind(|l| !l.trim().is_empty())
                .unwrap_or("no output")
        );
        return Ok(None);
    }
    Ok(Some(H2load {
        requests_per_second: rps,
        succeeded,
        measured,
        streams,
    }))
}

/// Requests per second and succeeded requests from h2load's summary:
/// `finished in 1.07s, 93403.17 req/s, ...` and
/// `requests: N total, N started, N done, N succeeded, ...`.
fn parse_h2load(text: &str) -> (f64, u64) {
    let mut rps = 0.0;
    let mut succeeded = 0;
    for line in BufReader::new(text.as_bytes())
        .lines()
        .map_while(Result::ok)
    {
        if let Some(rest) = line.strip_prefix("finished in ") {
            rps = rest
                .split(", ")
                .find_map(|p| p.strip_suffix(" req/s"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0.0);
        } else if let Some(rest) = line.strip_prefix("requests: ") {
            succeeded = rest
                .split(", ")
                .find_map(|p| p.strip_suffix(" succeeded"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
        }
    }
    (rps, succeeded)
}

fn report(
    args: &BenchArgs,
    m: &Measured,
    result_lines: u64,
    exit_code: Option<i32>,
    h2load: Option<&H2load>,
) {
    let count = args.count as f64;
    let rate = count / m.wall.as_secs_f64();
    let per = |d: Duration| d.as_secs_f64() * 1e6 / count;
    let h2 = h2load.map(|h| {
        json!({
            "requests_per_second": h.requests_per_second,
            "succeeded": h.succeeded,
            "streams_per_connection": h.streams,
            "cpu_us_per_request": per(h.measured.usage.cpu()),
            "mock_cpu_us_per_request": h.measured.mock_cpu.map(per),
            "apns_send_throughput_ratio": rate / h.requests_per_second,
        })
    });
    match args.output.output {
        Output::Json => println!(
            "{}",
            json!({
                "mode": "cli",
                "count": args.count,
                "connections": args.pool.connections,
                "concurrency": args.in_flight.concurrency,
                "pinned": args.pin,
                "validating_mock": args.validating,
                "seconds": m.wall.as_secs_f64(),
                "notifications_per_second": rate,
                "cpu_user_seconds": m.usage.user.as_secs_f64(),
                "cpu_system_seconds": m.usage.system.as_secs_f64(),
                "cpu_us_per_notification": per(m.usage.cpu()),
                "voluntary_context_switches": m.usage.voluntary,
                "involuntary_context_switches": m.usage.involuntary,
                "peak_rss_kib": m.peak_kib,
                "mock_cpu_us_per_notification": m.mock_cpu.map(per),
                "result_lines": result_lines,
                "exit_code": exit_code,
                "h2load": h2,
                "physical_limit": super::bench_measure::physical_limit(args).map(|l| l.json(rate)),
            })
        ),
        Output::Human => {
            println!("notifications     {}", args.count);
            println!("time              {:.3} s", m.wall.as_secs_f64());
            println!("throughput        {rate:.0} notifications/s (reading the file, writing the results)");
            println!(
                "CPU               {:.2} s user + {:.2} s system = {:.1} µs/notification (apns send process)",
                m.usage.user.as_secs_f64(),
                m.usage.system.as_secs_f64(),
                per(m.usage.cpu())
            );
            println!(
                "context switches  {} voluntary, {} involuntary ({:.4}/notification)",
                m.usage.voluntary,
                m.usage.involuntary,
                (m.usage.voluntary + m.usage.involuntary) as f64 / count
            );
            println!(
                "peak memory       {:.1} MiB (apns send process)",
                m.peak_kib as f64 / 1024.0
            );
            if let Some(cpu) = m.mock_cpu {
                println!("mock CPU          {:.1} µs/request", per(cpu));
            }
            if let Some(h) = h2load {
                println!(
                    "h2load            {:.0} requests/s at {:.1} µs CPU/request (same server, headers and payload; -c {} -m {}); apns send: {:.0}% of its throughput, {:.1}x its CPU",
                    h.requests_per_second,
                    per(h.measured.usage.cpu()),
                    args.pool.connections,
                    h.streams,
                    100.0 * rate / h.requests_per_second,
                    m.usage.cpu().as_secs_f64() / h.measured.usage.cpu().as_secs_f64().max(1e-9)
                );
            }
            println!(
                "result lines      {result_lines} of {} accepted, one per line",
                args.count
            );
            if let Some(limit) = super::bench_measure::physical_limit(args) {
                println!("{}", limit.line(rate));
            }
        }
    }
}

/// What the results file of a CLI run says: every line 1..=count exactly
/// once, each accepted (each line is read and parsed, not only counted).
struct ResultCheck {
    accepted: u64,
    problem: Option<String>,
}

fn check_results(path: &Path, count: u64) -> ResultCheck {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn h2load_summaries_are_read() {
        let text = "starting benchmark...\n\
            finished in 1.07s, 93403.17 req/s, 9.12MB/s\n\
            requests: 100000 total, 100000 started, 100000 done, 99998 succeeded, 2 failed, 0 errored, 0 timeout\n";
        assert_eq!(parse_h2load(text), (93403.17, 99998));
        assert_eq!(parse_h2load("garbage"), (0.0, 0));
    }
}
