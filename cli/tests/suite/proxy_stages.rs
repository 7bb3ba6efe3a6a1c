//! Timeouts name the stage a connection was stuck in, and proxy values
//! never show a password: `apns send --timeout 2` against a black-holed
//! proxy (CONNECT never answered), a server that never finishes TLS, and
//! one that finishes TLS but never sends its SETTINGS; and a proxy
//! variable without `@host` (`http://alice:S3cret`).

use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

use super::flags::{run_env, Ran};
use crate::support::proxy::{self, Mode};
use crate::support::*;

const PASSWORD: &str = "S3cret-pw-9f1";

/// `apns send --timeout 2` of one alert to `endpoint`, plus `extra`.
async fn send(
    dir: &std::path::Path,
    endpoint: &str,
    ca: Option<&str>,
    extra: &[&str],
    env: &[(&'static str, String)],
) -> Ran {
    let key = write_file(
        dir,
        &format!("AuthKey_{KEY_ID}.p8"),
        new_key_pem().as_bytes(),
    );
    let mut args: Vec<String> = [
        "send",
        "--key-file",
        key.to_str().unwrap(),
        "--team-id",
        TEAM_ID,
        "--topic",
        BUNDLE,
        "--env",
        "sandbox",
        "--endpoint",
        endpoint,
        "--timeout",
        "2",
        "--alert",
        "hi",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if let Some(ca) = ca {
        args.extend(["--ca-file".to_string(), ca.to_string()]);
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    args.push(DEVICE.into());
    let env: Vec<(&'static str, String)> = env.to_vec();
    tokio::task::spawn_blocking(move || {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        run_env(&args, &env, Duration::from_secs(60))
    })
    .await
    .unwrap()
}

/// A listener that accepts TCP and reads forever, answering nothing.
async fn black_hole() -> (String, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut sink = [0u8; 1024];
                while matches!(tcp.read(&mut sink).await, Ok(n) if n > 0) {}
            });
        }
    });
    (format!("https://{addr}"), task)
}

/// A TLS server (ALPN h2, a certificate for 127.0.0.1 from a new CA in
/// `dir`) that finishes the handshake, then never sends a byte: no
/// SETTINGS. Returns its endpoint and the CA's path.
async fn tls_then_silence(dir: &std::path::Path) -> (String, String, tokio::task::JoinHandle<()>) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &ca, &ca_key)
        .unwrap();
    let ca_path = dir.join("silent-ca.pem");
    std::fs::write(&ca_path, ca.pem()).unwrap();
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![leaf.der().clone()],
        rustls_pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
    )
    .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(mut tls) = acceptor.accept(tcp).await {
                    let mut sink = [0u8; 1024];
                    while matches!(tls.read(&mut sink).await, Ok(n) if n > 0) {}
                }
            });
        }
    });
    (
        format!("https://{addr}"),
        ca_path.display().to_string(),
        task,
    )
}

/// The send failed for want of a connection (exit 3), and its result
/// line (stdout) and stderr name `stage`, never the free-stream wait nor
/// the password.
fn assert_stage(ran: &Ran, stage: &str) {
    let all = format!("{}{}", ran.stdout, ran.stderr);
    assert_eq!(ran.code, Some(3), "{all}");
    assert!(all.contains(stage), "wanted {stage:?}: {all}");
    assert!(!all.contains("free stream"), "{all}");
    assert!(!all.contains(PASSWORD), "{all}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_black_holed_proxy_times_out_in_connect_naming_the_proxy_never_the_password() {
    let dir = temp_dir();
    let proxy = proxy::start(Mode::BlackHole).await;
    let url = proxy.url(Some(("alice", PASSWORD)));
    // By flag, and by HTTPS_PROXY.
    let by_flag = send(
        dir.path(),
        "https://127.0.0.1:9",
        None,
        &["--proxy", &url],
        &[],
    )
    .await;
    let stage = format!(
        "CONNECT through the proxy at http://{} timed out",
        proxy.addr
    );
    assert_stage(&by_flag, &stage);
    let by_env = send(
        dir.path(),
        "https://127.0.0.1:9",
        None,
        &[],
        &[("HTTPS_PROXY", url.clone())],
    )
    .await;
    assert_stage(&by_env, &stage);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_finishes_tls_times_out_in_the_tls_handshake() {
    let dir = temp_dir();
    let (endpoint, _task) = black_hole().await;
    let ran = send(dir.path(), &endpoint, None, &["--no-proxy"], &[]).await;
    assert_stage(&ran, "TLS handshake timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_sends_settings_times_out_waiting_for_them() {
    let dir = temp_dir();
    let (endpoint, ca, _task) = tls_then_silence(dir.path()).await;
    let ran = send(dir.path(), &endpoint, Some(&ca), &["--no-proxy"], &[]).await;
    assert_stage(&ran, "first SETTINGS");
}

/// `HTTPS_PROXY=http://alice:S3cret` (no `@host`): a usage error that
/// names the variable and never shows the password (nor the user).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_variable_without_a_host_never_shows_its_password() {
    let dir = temp_dir();
    for var in ["HTTPS_PROXY", "https_proxy", "ALL_PROXY"] {
        for value in [
            format!("http://alice:{PASSWORD}"),
            format!("alice:{PASSWORD}"),
            format!("http://alice:{PASSWORD}/x"),
        ] {
            let ran = send(
                dir.path(),
                "https://127.0.0.1:9",
                None,
                &[],
                &[(var, value.clone())],
            )
            .await;
            assert_eq!(ran.code, Some(2), "{var}={value}: {}", ran.stderr);
            assert!(ran.stderr.contains(var), "{var}={value}: {}", ran.stderr);
            assert!(
                !ran.stderr.contains(PASSWORD) && !ran.stderr.contains("alice"),
                "{var}={value}: {}",
                ran.stderr
            );
        }
        // --proxy alike.
        let value = format!("http://alice:{PASSWORD}");
        let ran = send(
            dir.path(),
            "https://127.0.0.1:9",
            None,
            &["--proxy", &value],
            &[],
        )
        .await;
        assert_eq!(ran.code, Some(2), "{}", ran.stderr);
        assert!(!ran.stderr.contains(PASSWORD), "{}", ran.stderr);
    }
}
