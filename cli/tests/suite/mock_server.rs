//! The mock as a long-running server (issue 10, section 5): memory bounded
//! by `keep`, silent clients and half-open streams closed by timeouts,
//! idle connections closed with a GOAWAY, and an accept loop that backs off
//! at the file-descriptor limit instead of spinning.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use apns_provider::mock::DEFAULT_KEEP;
use tokio::io::AsyncReadExt;

use crate::support::raw::tls_to;
use crate::support::sends::*;
use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_clients_are_closed_within_the_timeout_while_real_sends_work() {
    let timeout = Duration::from_millis(800);
    let key = new_key();
    let mock = mock_for(&key)
        .handshake_timeout(timeout)
        .start()
        .await
        .unwrap();
    // 150 clients that finish TLS and never send the HTTP/2 preface, and 150
    // that open TCP and never say hello.
    let started = Instant::now();
    let mut tls = Vec::new();
    let mut tcp = Vec::new();
    for _ in 0..150 {
        tls.push(tls_to(&mock).await);
        tcp.push(
            tokio::net::TcpStream::connect(mock.local_addr())
                .await
                .unwrap(),
        );
    }
    // Meanwhile a real client sends.
    let client = client_for(&mock, key).build().unwrap();
    let out = batch(&client, 20, 10).await;
    assert_eq!(accepted_ids(&out).len(), 20);
    // Every silent client sees its connection closed, within the timeout
    // (counted from its own connect, which came after `started`).
    let limit = timeout + Duration::from_secs(3);
    let mut closed = 0;
    for s in tls {
        assert_closed_within(s, limit).await;
        closed += 1;
    }
    for s in tcp {
        assert_closed_within(s, limit).await;
        closed += 1;
    }
    assert_eq!(closed, 300);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert!(mock.stats().timeouts >= 300, "{:?}", mock.stats());
}

/// Reads (the server's SETTINGS may come first) until the server closes
/// the connection, failing if it is still open after `limit`.
async fn assert_closed_within(mut s: impl tokio::io::AsyncRead + Unpin, limit: Duration) {
    let closed = tokio::time::timeout(limit, async {
        let mut buf = [0u8; 256];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "still open after {limit:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_is_bounded_by_keep_while_the_counters_count_everything() {
    assert_eq!(DEFAULT_KEEP, 10_000);
    let key = new_key();
    let mock = mock_for(&key).keep(100).start().await.unwrap();
    let client = client_for(&mock, key).build().unwrap();
    let out = batch(&client, 1000, 100).await;
    let sent: HashSet<String> = accepted_ids(&out);
    assert_eq!(sent.len(), 1000);
    let kept = mock.accepted();
    assert_eq!(kept.len(), 100, "only the last 100 are kept");
    assert!(kept.iter().all(|a| sent.contains(&a.apns_id)));
    assert_eq!(mock.stats().accepted, 1000);
    assert_eq!(mock.stats().requests, 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed_with_a_goaway_and_the_client_reconnects() {
    let key = new_key();
    let mock = mock_for(&key)
        .idle_timeout(Duration::from_millis(300))
        .start()
        .await
        .unwrap();
    let client = client_for(&mock, key).build().unwrap();
    assert_eq!(accepted_ids(&batch(&client, 3, 1).await).len(), 3);
    wait_until_async(
        "the idle connection is closed",
        Duration::from_secs(5),
        async || mock.stats().timeouts >= 1,
    )
    .await;
    assert_eq!(accepted_ids(&batch(&client, 3, 1).await).len(), 3);
    assert_eq!(mock.stats().connections, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_open_stream_is_reset_not_held() {
    let key = new_key();
    let mock = mock_for(&key)
        .handshake_timeout(Duration::from_millis(300))
        .start()
        .await
        .unwrap();
    let tls = tls_to(&mock).await;
    let (send, conn) = h2::client::handshake(tls).await.unwrap();
    tokio::spawn(conn);
    let request = http::Request::builder()
        .method("POST")
        .uri(format!("https://{}/3/device/{DEVICE}", mock.local_addr()))
        .body(())
        .unwrap();
    // Headers without END_STREAM, and a body that never comes.
    let (response, _stream) = send
        .ready()
        .await
        .unwrap()
        .send_request(request, false)
        .unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(5), response)
        .await
        .expect("the mock gave up on the stream");
    let e = answer.unwrap_err();
    assert_eq!(e.reason(), Some(h2::Reason::CANCEL), "{e}");
    assert_eq!(mock.stats().timeouts, 1);
}

/// CPU time (user + system) of a process, from /proc.
fn cpu_of(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_file_descriptor_limit_the_accept_loop_backs_off() {
    // accept() fails with EMFILE past the limit: the mock runs with 48
    // descriptors and gets 80 clients.
    let mut cmd = std::process::Command::new("sh");
    crate::support::hermetic(&mut cmd);
    cmd.arg("-c")
        .arg(format!(
            "ulimit -n 48 && exec {} mock --accept-all --handshake-timeout 60",
            env!("CARGO_BIN_EXE_apns")
        ))
        .env_remove("RUST_LOG");
    let mock = spawn_mock(cmd);
    let pid = mock.pid();
    let addr = format!("127.0.0.1:{}", mock.port());
    let mut held = Vec::new();
    for _ in 0..80 {
        held.push(tokio::net::TcpStream::connect(&addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = cpu_of(pid);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let used = cpu_of(pid) - before;
    assert!(
        used < Duration::from_millis(600),
        "the mock used {used:?} of CPU in 2 s at the descriptor limit"
    );
    // Once descriptors free up, it serves again.
    drop(held);
    let dir = temp_dir();
    let key = write_file(
        dir.path(),
        "AuthKey_ABCDE12345.p8",
        new_key_pem().as_bytes(),
    );
    let mut send = send_cmd(&mock, &key);
    send.args(["--alert", "hi", DEVICE]);
    let out = run(send).await;
    assert!(out.status.success(), "{}", stderr(&out));
    mock.stop().await;
}

/// `apns mock --latency` plays the distance to Apple: every answer waits at
/// least the delay, in validating and accept-all mode alike, and a range
/// spreads the delays (the library's `Fault::LatencyBetween`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_delays_every_answer_in_every_mode() {
    use apns_provider::mock::Fault;
    let dir = temp_dir();
    let delay = Duration::from_millis(300);
    for accept_all in [false, true] {
        let (key_path, _, mut cmd) = mock_command_trusting_a_new_key(dir.path());
        cmd.args(["--latency", "300ms..400ms"]);
        if accept_all {
            cmd.arg("--accept-all");
        }
        let mock = spawn_mock(cmd);
        let mut send = apns_with_key(&["send"], &mock, &key_path);
        send.args(["--alert", "hi", "--output", "json", DEVICE]);
        let started = Instant::now();
        let out = run(send).await;
        let took = started.elapsed();
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert!(
            took >= delay,
            "accept_all {accept_all}: answered after {took:?}, before the {delay:?} latency"
        );
        // Many at once all wait and all arrive (waiting costs no stream).
        let tokens = dir.path().join("tokens.txt");
        let lines: String = (0..200).map(|i| format!("{i:064x}\n")).collect();
        std::fs::write(&tokens, lines).unwrap();
        let mut bulk = apns_with_key(&["send"], &mock, &key_path);
        bulk.args(["--alert", "hi", "--tokens-file"]).arg(&tokens);
        let out = run(bulk).await;
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let out = mock.stop().await;
        assert!(stderr(&out).contains("201 accepted"), "{}", stderr(&out));
    }

    // The library: a range, with each answer inside it (at least its min).
    let key = new_key();
    let mock = mock_for(&key)
        .fault(Fault::LatencyBetween {
            min: Duration::from_millis(200),
            max: Duration::from_millis(250),
        })
        .start()
        .await
        .unwrap();
    let client = client_for(&mock, key).build().unwrap();
    for _ in 0..3 {
        let started = Instant::now();
        let r = client.send(&note(1)).await.unwrap();
        assert!(r.is_accepted(), "{r:?}");
        assert!(started.elapsed() >= Duration::from_millis(200));
    }
}
