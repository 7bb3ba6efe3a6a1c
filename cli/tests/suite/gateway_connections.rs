//! The gateway's connections against silent, idle and hostile clients,
//! over real sockets and real TLS (a test CA): the first-request and idle
//! deadlines, eviction when every slot is taken, a SIGTERM that does not
//! wait for idle clients and cuts real requests at the grace; limits that
//! would panic, a TLS key others can read, the request counter, and
//! readiness after refused sends.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use apns_provider::gateway::{ApiTokens, App, Gateway, Limits};
use apns_provider::wire::SpecDefaults;
use bytes::Bytes;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::support::bulk;
use crate::support::web::{self, *};
use crate::support::*;

/// How long a test waits for something the gateway must do within its
/// deadline (a bound, far above the deadline).
const BOUND: Duration = Duration::from_secs(15);

/// A certificate for `localhost` and its key, from a CA of the test's own.
struct GatewayTls {
    cert: PathBuf,
    key: PathBuf,
    ca_pem: String,
}

fn gateway_tls(dir: &Path) -> GatewayTls {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "gateway connections test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &ca, &ca_key)
        .unwrap();
    GatewayTls {
        cert: write_file(dir, "gw.pem", leaf.pem().as_bytes()),
        key: write_file(dir, "gw-key.pem", leaf_key.serialize_pem().as_bytes()),
        ca_pem: ca.pem(),
    }
}

/// A TLS connection to `addr` trusting `ca_pem` only, offering `alpn`.
async fn tls_connect(addr: &str, ca_pem: &str, alpn: &[u8]) -> TlsStream<TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    let tcp = TcpStream::connect(addr).await.unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap()
}

/// Whether the peer closes `stream` within `limit` (EOF or an error).
async fn closed_within<S: AsyncRead + Unpin>(stream: &mut S, limit: Duration) -> bool {
    tokio::time::timeout(limit, async {
        let mut buf = [0u8; 1024];
        while let Ok(n) = stream.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    })
    .await
    .is_ok()
}

/// An HTTP/2 client that sends its preface and SETTINGS (and answers
/// PINGs) but no request: the handle ends when the server closes it.
async fn h2_preface_only<S>(io: S) -> (h2::client::SendRequest<Bytes>, tokio::task::JoinHandle<()>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (send, conn) = h2::client::handshake(io).await.unwrap();
    (
        send,
        tokio::spawn(async move {
            let _ = conn.await;
        }),
    )
}

/// `GET path` over HTTP/2; the status.
async fn h2_get(send: &h2::client::SendRequest<Bytes>, path: &str) -> u16 {
    let req = http::Request::builder()
        .uri(format!("http://localhost{path}"))
        .body(())
        .unwrap();
    let mut send = send.clone().ready().await.unwrap();
    let (resp, _) = send.send_request(req, true).unwrap();
    resp.await.unwrap().status().as_u16()
}

/// `GET path` on a keep-alive HTTP/1.1 connection; the status, with the
/// connection left open and ready for the next request.
async fn keepalive_get<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S, path: &str) -> u16 {
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf).await.unwrap();
        assert!(
            n > 0,
            "closed before the answer: {:?}",
            String::from_utf8_lossy(&raw)
        );
        raw.extend_from_slice(&buf[..n]);
        let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map_or(0, |v| v.trim().parse().unwrap());
        if raw.len() >= end + 4 + length {
            return head.split(' ').nth(1).unwrap().parse().unwrap();
        }
    }
}

/// A gateway served in-process with `limits` (and TLS when given),
/// sending to an in-process mock; its address.
async fn in_process(
    limits: Limits,
    tls: Option<&GatewayTls>,
) -> (SocketAddr, apns_provider::mock::MockServer) {
    let (mock, client) = mock_and_client().await;
    let mut builder = Gateway::builder()
        .app(
            "default",
            App::new(client).with_defaults(SpecDefaults::builder().topic(BUNDLE).build().unwrap()),
        )
        .api_tokens(ApiTokens::from_tokens([TOKEN]).unwrap())
        .limits(limits);
    if let Some(t) = tls {
        builder = builder
            .tls(apns_provider::gateway::tls_config_from_pem_files(&t.cert, &t.key).unwrap());
    }
    let gateway = builder.build().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // Runs until the test's runtime ends.
    tokio::spawn(gateway.serve(listener, std::future::pending()));
    (addr, mock)
}

fn short_limits(first_request: Duration, idle: Duration) -> Limits {
    let mut limits = Limits::default();
    limits.first_request_timeout = first_request;
    limits.idle_timeout = idle;
    limits
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_without_a_request_are_closed_after_the_first_request_deadline() {
    let dir = temp_dir();
    let tls = gateway_tls(dir.path());
    let limits = short_limits(Duration::from_secs(1), Duration::from_secs(300));
    let (plain, _m1) = in_process(limits.clone(), None).await;
    let (secure, _m2) = in_process(limits, Some(&tls)).await;
    let (plain, secure) = (plain.to_string(), format!("localhost:{}", secure.port()));

    // Plain: silent; half a request head; an HTTP/2 preface and nothing more.
    let mut silent = TcpStream::connect(&plain).await.unwrap();
    let mut partial = TcpStream::connect(&plain).await.unwrap();
    partial.write_all(b"GET /healthz HTT").await.unwrap();
    let (_keep, h2_plain) = h2_preface_only(TcpStream::connect(&plain).await.unwrap()).await;
    // TLS: no handshake; a handshake and nothing; HTTP/2 preface only.
    let mut tls_silent_tcp = TcpStream::connect(&secure).await.unwrap();
    let mut tls_silent = tls_connect(&secure, &tls.ca_pem, b"http/1.1").await;
    let (_keep2, h2_tls) = h2_preface_only(tls_connect(&secure, &tls.ca_pem, b"h2").await).await;
    // One that sent a request stays open past that deadline.
    let mut used = TcpStream::connect(&plain).await.unwrap();
    assert_eq!(keepalive_get(&mut used, "/healthz").await, 200);

    assert!(
        closed_within(&mut silent, BOUND).await,
        "a silent TCP connection stayed open"
    );
    assert!(
        closed_within(&mut partial, BOUND).await,
        "half a request head stayed open"
    );
    assert!(
        closed_within(&mut tls_silent_tcp, BOUND).await,
        "no TLS handshake, still open"
    );
    assert!(
        closed_within(&mut tls_silent, BOUND).await,
        "TLS without a request, still open"
    );
    for (what, h) in [("plain", h2_plain), ("TLS", h2_tls)] {
        assert!(
            tokio::time::timeout(BOUND, h).await.is_ok(),
            "an HTTP/2 preface without a request ({what}) stayed open"
        );
    }
    assert_eq!(
        keepalive_get(&mut used, "/healthz").await,
        200,
        "a used connection was closed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_idle_past_the_idle_timeout_are_closed() {
    let limits = short_limits(Duration::from_secs(300), Duration::from_secs(1));
    let (addr, _mock) = in_process(limits, None).await;
    let addr = addr.to_string();
    let mut h1 = TcpStream::connect(&addr).await.unwrap();
    assert_eq!(keepalive_get(&mut h1, "/healthz").await, 200);
    let (send, h2) = h2_preface_only(TcpStream::connect(&addr).await.unwrap()).await;
    assert_eq!(h2_get(&send, "/healthz").await, 200);
    assert!(
        closed_within(&mut h1, BOUND).await,
        "an idle HTTP/1.1 keep-alive connection stayed open"
    );
    assert!(
        tokio::time::timeout(BOUND, h2).await.is_ok(),
        "an idle HTTP/2 connection stayed open"
    );
}

/// The slow part of a request: its head and part of its body, the rest
/// never sent. The request is in progress (it holds a request slot) for as
/// long as the socket stays open.
async fn slow_post(addr: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(
        format!("POST /v1/notifications HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n[")
            .as_bytes(),
    )
    .await
    .unwrap();
    s
}

/// Sends a slow request (see [`slow_post`]) and waits until it holds the
/// one request slot: a POST gets 503. If the slow request itself was
/// refused (it arrived while a probe held the slot), it is sent again.
async fn hold_the_slot(serve: &ServeProcess) -> TcpStream {
    let mut slow = slow_post(&serve.addr()).await;
    wait_until_async(
        "a POST is refused 503 while the slow request holds the slot",
        BOUND,
        async || {
            if post(serve, Some(TOKEN), &alert(DEVICE)).await.status == 503 {
                return true;
            }
            // An answer on the slow connection: it was refused, not held.
            let mut buf = [0u8; 1024];
            match slow.try_read(&mut buf) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                _ => slow = slow_post(&serve.addr()).await,
            }
            false
        },
    )
    .await;
    slow
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_clients_filling_every_slot_never_keep_out_real_clients() {
    let s = bulk::setup_with(|m| m).await;
    // Plain HTTP: 25 silent sockets against 20 slots, and more arriving.
    let serve = spawn_serve(serve_cmd(&s, &["--max-connections", "20"]));
    let addr = serve.addr();
    let mut hold = Vec::new();
    for _ in 0..25 {
        hold.push(TcpStream::connect(&addr).await.unwrap());
    }
    let flood_addr = addr.clone();
    let flood = tokio::spawn(async move {
        let mut more = Vec::new();
        loop {
            if let Ok(c) = TcpStream::connect(&flood_addr).await {
                more.push(c);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    // Within the 10 s first-request deadline: eviction, not the deadline.
    let within = Duration::from_secs(5);
    let a = tokio::time::timeout(
        within,
        web::request(&serve.base, "GET", "/healthz", None, b""),
    )
    .await
    .expect("/healthz unreachable behind silent sockets");
    assert_eq!(a.status, 200);
    let a = tokio::time::timeout(within, post(&serve, Some(TOKEN), &alert(DEVICE)))
        .await
        .expect("an authenticated POST kept out by silent sockets");
    assert_eq!(a.status, 200, "{}", a.text());
    flood.abort();
    drop(hold);

    // TLS: silent TCP, TLS without a request, HTTP/2 prefaces only.
    let tls = gateway_tls(s.dir.path());
    let mut cmd = serve_cmd(&s, &["--max-connections", "20"]);
    cmd.arg("--tls-cert")
        .arg(&tls.cert)
        .arg("--tls-key")
        .arg(&tls.key);
    let serve = spawn_serve(cmd);
    let addr = format!("localhost:{}", serve.addr().rsplit(':').next().unwrap());
    let mut tcp = Vec::new();
    let mut tls_silent = Vec::new();
    let mut h2s = Vec::new();
    for i in 0..21 {
        match i % 3 {
            0 => tcp.push(TcpStream::connect(&addr).await.unwrap()),
            1 => tls_silent.push(tls_connect(&addr, &tls.ca_pem, b"http/1.1").await),
            _ => h2s.push(h2_preface_only(tls_connect(&addr, &tls.ca_pem, b"h2").await).await),
        }
    }
    let stream = tls_connect(&addr, &tls.ca_pem, b"http/1.1").await;
    let a = tokio::time::timeout(
        within,
        web::exchange(stream, &addr, "GET", "/healthz", None, b""),
    )
    .await
    .expect("/healthz unreachable over TLS behind silent clients");
    assert_eq!(a.status, 200);
    let stream = tls_connect(&addr, &tls.ca_pem, b"http/1.1").await;
    let body = alert(DEVICE).to_string();
    let a = tokio::time::timeout(
        within,
        web::exchange(
            stream,
            &addr,
            "POST",
            "/v1/notifications",
            Some(TOKEN),
            body.as_bytes(),
        ),
    )
    .await
    .expect("an authenticated POST kept out over TLS");
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(s.mock.accepted().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_idle_clients_at_once_and_cuts_real_requests_at_the_grace() {
    let s = bulk::setup_with(|m| m).await;
    let mut serve = spawn_serve(serve_cmd(
        &s,
        &["--shutdown-grace", "20", "--idle-timeout", "60"],
    ));
    let addr = serve.addr();
    // Idle keep-alive HTTP/1.1 and HTTP/2 clients, silent sockets, a
    // preface-only HTTP/2 client.
    let mut h1 = TcpStream::connect(&addr).await.unwrap();
    assert_eq!(keepalive_get(&mut h1, "/healthz").await, 200);
    let (send, _h2) = h2_preface_only(TcpStream::connect(&addr).await.unwrap()).await;
    assert_eq!(h2_get(&send, "/healthz").await, 200);
    let _silent: Vec<TcpStream> =
        futures_util::future::join_all((0..3).map(|_| TcpStream::connect(addr.clone())))
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
    let _preface = h2_preface_only(TcpStream::connect(&addr).await.unwrap()).await;
    let (code, err) = serve
        .stop_within(Duration::from_secs(12))
        .await
        .expect("SIGTERM waited for idle clients (grace 20 s)");
    assert_eq!(code, Some(0), "{err}");
    assert!(
        !err.contains("still in progress"),
        "no request was in progress: {err}"
    );

    // A request really in progress (its body never ends): the warning,
    // and the process still exits after the grace.
    let mut serve = spawn_serve(serve_cmd(
        &s,
        &["--shutdown-grace", "2", "--max-concurrent-requests", "1"],
    ));
    let _slow = hold_the_slot(&serve).await;
    let (code, err) = serve
        .stop_within(BOUND + Duration::from_secs(10))
        .await
        .expect("the grace is not a hard limit");
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("still in progress"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_that_would_panic_are_refused_before_listening() {
    let (_mock, client) = mock_and_client().await;
    let build = |limits: Limits| {
        Gateway::builder()
            .app("default", App::new(client.clone()))
            .api_tokens(ApiTokens::from_tokens([TOKEN]).unwrap())
            .limits(limits)
            .build()
    };
    type Case = (&'static str, fn(&mut Limits));
    let cases: [Case; 7] = [
        ("max_concurrent_requests", |l| {
            l.max_concurrent_requests = usize::MAX
        }),
        ("max_connections", |l| l.max_connections = 1 << 62),
        ("connections", |l| l.max_connections = 0),
        ("first_request_timeout", |l| {
            l.first_request_timeout = Duration::ZERO
        }),
        ("idle_timeout", |l| l.idle_timeout = Duration::ZERO),
        // hyper would add it to `Instant::now()`: a panic.
        ("idle_timeout", |l| l.idle_timeout = Duration::MAX),
        ("first_request_timeout", |l| {
            l.first_request_timeout = Duration::MAX
        }),
    ];
    for (name, set) in cases {
        let mut limits = Limits::default();
        set(&mut limits);
        match build(limits) {
            Err(apns_provider::Error::Config(m)) => assert!(m.contains(name), "{name}: {m}"),
            other => panic!("{name}: {other:?}"),
        }
    }
    // The command line: exit 2, and no ready line first.
    let s = bulk::setup_with(|m| m).await;
    for flags in [
        ["--max-connections", "4611686018427387904"],
        ["--max-concurrent-requests", "18446744073709551615"],
    ] {
        let out = run(serve_cmd(&s, &flags)).await;
        assert_eq!(out.status.code(), Some(2), "{flags:?}: {}", stderr(&out));
        assert!(stdout(&out).is_empty(), "a ready line: {}", stdout(&out));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_key_others_can_read_is_refused() {
    let s = bulk::setup_with(|m| m).await;
    let tls = gateway_tls(s.dir.path());
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&tls.key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut cmd = serve_cmd(&s, &[]);
    cmd.arg("--tls-cert")
        .arg(&tls.cert)
        .arg("--tls-key")
        .arg(&tls.key);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let fix = format!("chmod 600 {}", tls.key.display());
    assert!(stderr(&out).contains(&fix), "{}", stderr(&out));
    assert!(stdout(&out).is_empty(), "it started: {}", stdout(&out));
    let e = apns_provider::gateway::tls_config_from_pem_files(&tls.cert, &tls.key).unwrap_err();
    assert!(e.to_string().contains(&fix), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_and_overload_are_counted_by_route_and_status() {
    let (_s, serve) = start(&["--max-concurrent-requests", "1", "--max-body", "1KiB"]).await;
    let big = vec![b' '; 4096];
    let a = web::request(&serve.base, "POST", "/v1/notifications", Some(TOKEN), &big).await;
    assert_eq!(a.status, 413, "{}", a.text());
    let _slow = hold_the_slot(&serve).await;
    assert_eq!(post(&serve, Some(TOKEN), &alert(DEVICE)).await.status, 503);
    assert_eq!(post(&serve, None, &alert(DEVICE)).await.status, 401);
    assert_eq!(
        web::request(&serve.base, "GET", "/nope/42", None, b"")
            .await
            .status,
        404
    );
    assert_eq!(
        web::request(&serve.base, "GET", "/healthz", None, b"")
            .await
            .status,
        200
    );
    let text = scrape(&serve).await;
    let count = |route: &str, status: u16| {
        sample(
            &text,
            &format!(r#"apns_gateway_requests_total{{route="{route}",status="{status}"}}"#),
        )
    };
    assert!(
        count("/v1/notifications", 503).is_some_and(|n| n >= 2.0),
        "{text}"
    );
    assert_eq!(count("/v1/notifications", 401), Some(1.0), "{text}");
    assert_eq!(count("/v1/notifications", 413), Some(1.0), "{text}");
    assert_eq!(count("other", 404), Some(1.0), "{text}");
    assert_eq!(count("/healthz", 200), Some(1.0), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_turns_unready_when_apns_refuses_every_token() {
    let dir = temp_dir();
    // `apns mock` trusts a key; the gateway signs with another.
    let (_trusted, ca, cmd) = mock_command_trusting_a_new_key(dir.path());
    let mock = spawn_mock(cmd);
    let other = write_file(dir.path(), "other.p8", new_key_pem().as_bytes());
    let tokens = write_file(dir.path(), "api-tokens", TOKEN.as_bytes());
    let mut cmd = apns_with_key(
        &["serve", "--listen", "127.0.0.1:0"],
        &At::new(&mock.endpoint, &ca),
        &other,
    );
    cmd.arg("--api-token-file")
        .arg(&tokens)
        .args(["--key-id", KEY_ID]);
    let serve = spawn_serve(cmd);
    let ready = web::request(&serve.base, "GET", "/readyz", None, b"").await;
    assert_eq!(ready.status, 200, "the connection opens: {}", ready.text());
    for _ in 0..2 {
        let a = post(&serve, Some(TOKEN), &alert(DEVICE)).await;
        assert_eq!(a.status, 200, "{}", a.text());
        assert_eq!(
            a.json()["results"][0]["reason"],
            "InvalidProviderToken",
            "{}",
            a.text()
        );
    }
    let a = web::request(&serve.base, "GET", "/readyz", None, b"").await;
    assert_eq!(a.status, 503, "{}", a.text());
    let why = a.json()["apps"]["default"]["error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(why.contains("InvalidProviderToken"), "{}", a.text());
    mock.stop().await;
}
