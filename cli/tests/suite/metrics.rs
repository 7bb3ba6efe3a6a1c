//! Prometheus metrics over real sockets: `apns serve`'s `/metrics` moving
//! with sends and retries, behind the token unless public, and `apns send
//! --metrics-listen` serving them while a bulk send runs.

use apns_provider::mock::Fault;
use apns_provider::Reason;
use serde_json::json;

use crate::support::bulk;
use crate::support::web::{self, *};
use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_move_after_sends() {
    let (s, serve) = start(&[]).await;
    let before = scrape(&serve).await;
    assert_eq!(sample(&before, ACCEPTED), None, "{before}");
    assert_eq!(
        sample(&before, r#"apns_token_mints_total{app="default"}"#),
        Some(0.0)
    );

    let a = post(
        &serve,
        Some(TOKEN),
        &json!([alert(DEVICE), alert(DEVICE), alert("dead0000")]),
    )
    .await;
    assert_eq!(a.status, 200);
    let after = scrape(&serve).await;
    assert_eq!(sample(&after, ACCEPTED), Some(2.0), "{after}");
    let rejected = r#"apns_notifications_total{outcome="rejected",reason="Unregistered",push_type="alert",app="default"}"#;
    assert_eq!(sample(&after, rejected), Some(1.0), "{after}");
    assert_eq!(
        sample(
            &after,
            r#"apns_request_duration_seconds_count{app="default"}"#
        ),
        Some(3.0)
    );
    assert_eq!(
        sample(&after, r#"apns_in_flight{app="default"}"#),
        Some(0.0)
    );
    assert_eq!(
        sample(&after, r#"apns_token_mints_total{app="default"}"#),
        Some(1.0)
    );
    assert_eq!(
        sample(&after, r#"apns_connections{app="default",state="open"}"#),
        Some(1.0)
    );
    assert_eq!(
        sample(&after, r#"apns_connections_opened_total{app="default"}"#),
        Some(1.0)
    );
    // The mock's limit after the first valid token.
    assert_eq!(
        sample(&after, r#"apns_stream_limit{app="default",slot="0"}"#),
        Some(1000.0)
    );
    assert!(sample(&after, r#"apns_token_age_seconds{app="default"}"#).is_some());

    // A 500 is retried: counted by reason.
    s.mock.inject(Fault::ErrorStorm {
        reason: Reason::InternalServerError,
        count: 1,
    });
    assert_eq!(post(&serve, Some(TOKEN), &alert(DEVICE)).await.status, 200);
    let later = scrape(&serve).await;
    assert_eq!(
        sample(
            &later,
            r#"apns_retries_total{app="default",reason="InternalServerError"}"#
        ),
        Some(1.0),
        "{later}"
    );
    assert_eq!(sample(&later, ACCEPTED), Some(3.0));
    drop(serve);

    // --metrics-public: no token needed for /metrics (still for the API).
    let serve = spawn_serve(serve_cmd(&s, &["--metrics-public"]));
    let a = web::request(&serve.base, "GET", "/metrics", None, b"").await;
    assert_eq!(a.status, 200);
    assert!(a
        .header("content-type")
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    assert_eq!(post(&serve, None, &alert(DEVICE)).await.status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_serves_metrics_while_it_runs() {
    use std::io::{BufRead, Write};
    let s = bulk::setup_with(|m| m.unregistered("dead0000", 1_700_000_000_000)).await;
    let mut cmd = bulk::send(&s);
    cmd.args(["--alert", "hi", "--tokens-file", "-", "--output", "json"])
        .args(["--metrics-listen", "127.0.0.1:0"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let _guard = bulk::KillOnPanic(child.id());
    let mut stdin = child.stdin.take().unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
    // The address, said on stderr before anything is sent.
    let base = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        err.read_line(&mut line).unwrap();
        let url = line
            .trim()
            .strip_prefix("apns: metrics at ")
            .unwrap_or_else(|| panic!("{line:?}"))
            .strip_suffix("/metrics")
            .unwrap()
            .to_string();
        (url, err)
    });
    let (base, _err) = base.await.unwrap();
    // Three lines; their results come back while the run goes on.
    writeln!(stdin, "{DEVICE}\nabcd\ndead0000").unwrap();
    stdin.flush().unwrap();
    let (results, out) = tokio::task::spawn_blocking(move || {
        let mut lines = Vec::new();
        for _ in 0..3 {
            let mut line = String::new();
            out.read_line(&mut line).unwrap();
            lines.push(line);
        }
        (lines, out)
    })
    .await
    .unwrap();
    assert_eq!(results.len(), 3);
    let a = web::request(&base, "GET", "/metrics", None, b"").await;
    assert_eq!(a.status, 200);
    let text = a.text();
    assert_eq!(sample(&text, ACCEPTED), Some(2.0), "{text}");
    let gone = r#"apns_notifications_total{outcome="rejected",reason="Unregistered",push_type="alert",app="default"}"#;
    assert_eq!(sample(&text, gone), Some(1.0), "{text}");
    assert_eq!(
        sample(&text, r#"apns_connections{app="default",state="open"}"#),
        Some(1.0)
    );
    // The end of the input ends the run, and the listener with it.
    drop(stdin);
    drop(out);
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert_eq!(status.code(), Some(1), "one rejection");
}
