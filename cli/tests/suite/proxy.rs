//! HTTPS proxies: `apns send` and the library through an in-process
//! CONNECT proxy on loopback (open, with Basic authentication, answering
//! 407), the environment's variables with curl's NO_PROXY rules, token and
//! certificate mode, `apns doctor`'s proxy hop, and credentials that never
//! show.

use apns_provider::mock::MockServer;
use apns_provider::transport::Proxy;
use apns_provider::{Client, ClientCertificate, Notification, Payload};

use crate::support::bulk::{self, Setup};
use crate::support::certs::{self, Spec};
use crate::support::proxy::{self, Mode};
use crate::support::*;

const USER: &str = "alice";
const PASSWORD: &str = "s3cret-proxy-pw";

/// The CONNECT line a proxy sees for the mock.
fn connect_line(s: &Setup) -> String {
    let e = s.mock.endpoint();
    format!("CONNECT {}:{} HTTP/1.1", e.host(), e.port())
}

fn json_results(out: &std::process::Output) -> Vec<serde_json::Value> {
    stdout(out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_goes_through_a_proxy_with_and_without_basic_auth() {
    let s = bulk::setup_with(|m| m).await;

    // An open proxy: the send is accepted, and went through a tunnel.
    let open = proxy::start(Mode::Open).await;
    let mut cmd = bulk::send(&s);
    cmd.args([
        "--proxy",
        &open.url(None),
        "--output",
        "json",
        "--alert",
        "hi",
        DEVICE,
    ]);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(json_results(&out)[0]["status"], 200);
    let seen = open.seen();
    assert_eq!(seen.len(), 1, "one connection, one tunnel: {seen:?}");
    assert_eq!(seen[0].request_line, connect_line(&s));
    assert_eq!(seen[0].authorization, None);
    assert_eq!(s.mock.accepted().len(), 1);

    // With Basic authentication: the right credentials get through.
    let guarded = proxy::start(Mode::Basic(USER, PASSWORD)).await;
    let mut cmd = bulk::send(&s);
    cmd.args(["--proxy", &guarded.url(Some((USER, PASSWORD)))])
        .args(["-vvv", "--output", "json", "--alert", "hi", DEVICE]);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(json_results(&out)[0]["status"], 200);
    let seen = guarded.seen();
    assert_eq!(seen.last().unwrap().status, 200);
    assert!(seen
        .last()
        .unwrap()
        .authorization
        .as_deref()
        .unwrap()
        .starts_with("Basic "));
    // Even at TRACE, neither the password nor its Basic form is logged.
    let basic = seen.last().unwrap().authorization.clone().unwrap();
    for text in [stderr(&out), stdout(&out)] {
        assert!(
            !text.contains(PASSWORD) && !text.contains(&basic[6..]),
            "{text}"
        );
    }

    // The wrong password: 407, named, with the fix, and nothing sent.
    let before = s.mock.accepted().len();
    let mut cmd = bulk::send(&s);
    cmd.args(["--proxy", &guarded.url(Some((USER, "wrong-password-123")))])
        .args(["--timeout", "5", "--alert", "hi", DEVICE]);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(3), "{}", stdout(&out));
    let text = stdout(&out) + &stderr(&out);
    assert!(text.contains("proxy authentication required"), "{text}");
    assert!(text.contains("rejected the credentials"), "{text}");
    assert!(text.contains(&format!("http://{}", guarded.addr)), "{text}");
    assert!(
        text.contains("check the user and password in --proxy"),
        "{text}"
    );
    assert!(
        !text.contains("wrong-password-123") && !text.contains(PASSWORD),
        "{text}"
    );
    assert_eq!(guarded.seen().last().unwrap().status, 407);
    assert_eq!(s.mock.accepted().len(), before);

    // A proxy that wants credentials and got none says so.
    let denied = proxy::start(Mode::AlwaysDenied).await;
    let mut cmd = bulk::send(&s);
    cmd.args([
        "--proxy",
        &denied.url(None),
        "--timeout",
        "5",
        "--alert",
        "hi",
        DEVICE,
    ]);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stdout(&out).contains("wants credentials and none were given"),
        "{}",
        stdout(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_environment_names_the_proxy_and_no_proxy_bypasses_it() {
    let s = bulk::setup_with(|m| m).await;
    let open = proxy::start(Mode::Open).await;
    let denied = proxy::start(Mode::AlwaysDenied).await;
    let send = |envs: &[(&str, String)], extra: &[&str]| {
        let mut cmd = bulk::send(&s);
        for (k, v) in envs {
            cmd.env(k, v);
        }
        cmd.args(extra).args([
            "--timeout",
            "5",
            "--output",
            "json",
            "--alert",
            "hi",
            DEVICE,
        ]);
        cmd
    };

    // HTTPS_PROXY applies to every host, loopback included (as with curl).
    let out = run(send(&[("HTTPS_PROXY", open.url(None))], &[])).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(open.seen().len(), 1);
    assert_eq!(open.seen()[0].request_line, connect_line(&s));

    // ALL_PROXY too; https_proxy wins over it.
    let out = run(send(
        &[
            ("ALL_PROXY", denied.url(None)),
            ("https_proxy", open.url(None)),
        ],
        &[],
    ))
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert_eq!((open.seen().len(), denied.seen().len()), (2, 0));

    // NO_PROXY naming the host bypasses it (the proxy sees nothing); so
    // does `*`; a suffix of another name does not.
    for no_proxy in ["127.0.0.1", "localhost,127.0.0.0/8", "*"] {
        let out = run(send(
            &[
                ("HTTPS_PROXY", denied.url(None)),
                ("NO_PROXY", no_proxy.into()),
            ],
            &[],
        ))
        .await;
        assert_eq!(
            out.status.code(),
            Some(0),
            "NO_PROXY={no_proxy}: {}",
            stdout(&out)
        );
    }
    assert_eq!(denied.seen().len(), 0);
    let out = run(send(
        &[
            ("HTTPS_PROXY", denied.url(None)),
            ("NO_PROXY", "27.0.0.1,example.com".into()),
        ],
        &[],
    ))
    .await;
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(denied.seen().len(), 1);

    // --proxy beats the environment, and --no-proxy turns it off.
    let out = run(send(
        &[("HTTPS_PROXY", denied.url(None))],
        &["--proxy", &open.url(None)],
    ))
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert_eq!(open.seen().len(), 3);
    let out = run(send(&[("HTTPS_PROXY", denied.url(None))], &["--no-proxy"])).await;
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert_eq!(denied.seen().len(), 1, "--no-proxy never reaches the proxy");
    // A proxy scheme that cannot work is refused before anything is sent.
    let out = run(send(
        &[("ALL_PROXY", "socks5://u:pw-in-env@127.0.0.1:1".into())],
        &[],
    ))
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("ALL_PROXY") && !stderr(&out).contains("pw-in-env"));
    assert_eq!(s.mock.accepted().len(), 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(missing_openssl, ignore = "needs openssl: apt install openssl")]
async fn certificate_mode_goes_through_the_proxy() {
    let dir = temp_dir();
    let ca = certs::ca(dir.path());
    let cert = certs::push_cert(
        dir.path(),
        &ca,
        Spec {
            rsa: false,
            ..Spec::default()
        },
    );
    let mock = MockServer::builder()
        .client_ca_pem(&std::fs::read(&ca.pem_path).unwrap())
        .start()
        .await
        .unwrap();
    let mock_ca = dir.path().join("mock-ca.pem");
    mock.write_ca_file(&mock_ca).unwrap();
    let guarded = proxy::start(Mode::Basic(USER, PASSWORD)).await;

    // The CLI, with a PEM certificate and key.
    let mut cmd = apns_against(&["send"], &At::new(mock.endpoint(), &mock_ca));
    cmd.arg("--cert")
        .arg(&cert.cert_pem)
        .arg("--cert-key")
        .arg(&cert.key_pkcs8)
        .args(["--topic", BUNDLE])
        .args(["--proxy", &guarded.url(Some((USER, PASSWORD)))])
        .args(["--output", "json", "--alert", "hi", DEVICE]);
    let out = run(cmd).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert_eq!(guarded.seen().len(), 1);
    assert_eq!(guarded.seen()[0].status, 200);
    assert_eq!(mock.accepted().len(), 1);

    // The library: ClientBuilder::proxy, and Client::proxy says where.
    let certificate =
        ClientCertificate::from_file(&cert.cert_pem, Some(&cert.key_pkcs8), None).unwrap();
    let proxy: Proxy = guarded.url(Some((USER, PASSWORD))).parse().unwrap();
    let client = Client::builder()
        .endpoint(mock.endpoint())
        .add_root_certificates_pem(mock.ca_pem().unwrap().as_bytes())
        .certificate(certificate)
        .proxy(proxy)
        .build()
        .unwrap();
    assert_eq!(
        client.proxy().map(|p| p.to_string()),
        Some(format!("http://{}", guarded.addr))
    );
    assert!(!format!("{client:?}").contains(PASSWORD));
    let n = Notification::builder(DEVICE, Payload::alert("hi"))
        .topic(BUNDLE)
        .build()
        .unwrap();
    assert!(client.send(&n).await.unwrap().is_accepted());
    assert_eq!(guarded.seen().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_library_tunnels_token_connections_and_no_proxy_turns_it_off() {
    let key = new_key();
    let mock = mock_for(&key).start().await.unwrap();
    let open = proxy::start(Mode::Open).await;
    let n = Notification::builder(DEVICE, Payload::alert("hi"))
        .topic(BUNDLE)
        .build()
        .unwrap();
    let client = client_for(&mock, key.clone())
        .proxy(open.url(None).parse().unwrap())
        .pool_size(2)
        .build()
        .unwrap();
    for _ in 0..3 {
        assert!(client.send(&n).await.unwrap().is_accepted());
    }
    assert!(client.stats().connections_opened >= 1);
    assert_eq!(open.seen().len() as u64, client.stats().connections_opened);
    // Channel management has its own connection: tunnelled too.
    let before = open.seen().len();
    let channels = client.channels();
    let id = channels
        .create(BUNDLE, apns_provider::StoragePolicy::NoStorage)
        .await
        .unwrap();
    assert_eq!(channels.list(BUNDLE).await.unwrap(), vec![id]);
    assert_eq!(
        open.seen().len(),
        before + 1,
        "one more CONNECT, for channels"
    );
    // A no-proxy list naming the endpoint's host bypasses an explicit proxy.
    let bypass = client_for(&mock, key)
        .proxy(
            open.url(None)
                .parse::<Proxy>()
                .unwrap()
                .with_no_proxy(apns_provider::transport::NoProxy::parse("127.0.0.1")),
        )
        .build()
        .unwrap();
    assert!(bypass.proxy().is_none());
    let seen_before = open.seen().len();
    assert!(bypass.send(&n).await.unwrap().is_accepted());
    assert_eq!(open.seen().len(), seen_before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_shows_the_proxy_hop() {
    let s = bulk::setup_with(|m| m).await;
    let guarded = proxy::start(Mode::Basic(USER, PASSWORD)).await;
    let doctor = |proxy_url: String| {
        let mut cmd = apns_with_key(&["doctor"], &s, &s.key_path);
        cmd.args(["--device-token", DEVICE, "--proxy", &proxy_url]);
        cmd
    };
    let out = run(doctor(guarded.url(Some((USER, PASSWORD))))).await;
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let text = stdout(&out);
    assert!(
        text.contains(&format!("via    http://{}", guarded.addr)),
        "{text}"
    );
    assert!(text.contains("PASS  proxy"), "{text}");
    assert!(text.contains("opened a tunnel to 127.0.0.1:"), "{text}");
    assert!(text.contains("PASS  send"), "{text}");
    assert!(!text.contains(PASSWORD));
    // Wrong credentials: the proxy check fails with the fix; exit 3.
    let out = run(doctor(guarded.url(Some((USER, "nope-nope-nope"))))).await;
    assert_eq!(out.status.code(), Some(3), "{}", stdout(&out));
    let text = stdout(&out);
    assert!(
        text.contains("FAIL  proxy") && text.contains("proxy authentication required"),
        "{text}"
    );
    assert!(!text.contains("nope-nope-nope"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apns_send_reaches_apns_mock_through_an_authenticating_proxy() {
    let dir = temp_dir();
    let (key_path, _, mock_cmd) = mock_command_trusting_a_new_key(dir.path());
    let mock = spawn_mock(mock_cmd);
    let _guard = bulk::KillOnPanic(mock.pid());
    let guarded = proxy::start(Mode::Basic(USER, PASSWORD)).await;
    let mut cmd = send_cmd(&mock, &key_path);
    cmd.args(["--proxy", &guarded.url(Some((USER, PASSWORD)))])
        .args(["--output", "json", "--alert", "hi", DEVICE, "abcd"]);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let results = json_results(&out);
    assert_eq!(results.len(), 2);
    assert!(results.iter().all(|r| r["status"] == 200), "{results:?}");
    let seen = guarded.seen();
    assert_eq!(seen.len(), 1, "one connection carried both: {seen:?}");
    assert_eq!(
        seen[0].request_line,
        format!("CONNECT 127.0.0.1:{} HTTP/1.1", mock.port())
    );
    let stopped = mock.stop().await;
    assert!(
        stderr(&stopped).contains(": 2 accepted"),
        "{}",
        stderr(&stopped)
    );
}

/// `apns channel` and `apns broadcast` reach the management and push hosts
/// through the proxy too (`--proxy`), and `--no-proxy` skips it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_and_broadcast_commands_go_through_the_proxy() {
    let s = bulk::setup_with(|m| m).await;
    let open = proxy::start(Mode::Open).await;
    let command = |args: &[&str], proxy: &[&str]| {
        let mut cmd = apns_against(args, &s);
        cmd.arg("--key-file")
            .arg(&s.key_path)
            .args(["--team-id", TEAM_ID, "--bundle-id", BUNDLE])
            .args(["--output", "json"])
            .args(proxy);
        cmd
    };
    let out = run(command(
        &["channel", "create"],
        &["--proxy", &open.url(None)],
    ))
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let created: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = created["channel_id"].as_str().unwrap().to_string();
    assert_eq!(open.seen().len(), 1, "{:?}", open.seen());
    assert_eq!(open.seen()[0].request_line, connect_line(&s));
    let out = run(command(
        &[
            "broadcast",
            "--channel-id",
            &id,
            "--event",
            "update",
            "--content-state",
            "{}",
        ],
        &["--proxy", &open.url(None)],
    ))
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(open.seen().len(), 2);
    // --no-proxy: straight to the endpoint, the environment's proxy unused.
    let mut cmd = command(&["channel", "list"], &["--no-proxy"]);
    cmd.env("HTTPS_PROXY", open.url(None));
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(open.seen().len(), 2);
    assert!(String::from_utf8_lossy(&out.stdout).contains(&id));
}
