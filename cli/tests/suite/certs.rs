//! Certificate mode: loading every form users have, sending over mutual
//! TLS to the mock in certificate mode, inspection, expiry, topics, and the
//! original curl-era flow addressed by Apple's host name.

use apns_provider::mock::MockServer;
use apns_provider::{
    CertEnvironment, Client, ClientCertificate, Endpoint, Environment, Error, Notification,
    Payload, PushType, Reason,
};

use crate::support::certs::{self, Env, Spec, PASSWORD};
use crate::support::*;

async fn cert_mock(ca: &certs::Ca, env: Environment, goaway: bool) -> MockServer {
    MockServer::builder()
        .client_ca_pem(&std::fs::read(&ca.pem_path).unwrap())
        .environment(env)
        .bad_environment_as_goaway(goaway)
        .start()
        .await
        .unwrap()
}

fn client(mock: &MockServer, cert: ClientCertificate) -> Client {
    Client::builder()
        .no_proxy()
        .endpoint(mock.endpoint())
        .add_root_certificates_pem(mock.ca_pem().unwrap().as_bytes())
        .certificate(cert)
        .build()
        .unwrap()
}

fn alert(topic: Option<&str>) -> Notification {
    let mut b = Notification::builder(DEVICE, Payload::alert("hi"));
    if let Some(t) = topic {
        b = b.topic(t);
    }
    b.build().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(missing_openssl, ignore = "needs openssl: apt install openssl")]
async fn every_form_loads_and_sends_over_mutual_tls() {
    let dir = temp_dir();
    let ca = certs::ca(dir.path());
    let rsa = certs::push_cert(dir.path(), &ca, Spec::default());
    let ec = certs::push_cert(
        dir.path(),
        &ca,
        Spec {
            name: "ec",
            rsa: false,
            ..Spec::default()
        },
    );
    let mock = cert_mock(&ca, Environment::Sandbox, false).await;
    let forms: Vec<(&str, ClientCertificate)> = vec![
        (
            "p12 modern (AES-256/PBKDF2)",
            ClientCertificate::from_file(&rsa.p12_modern, None, Some(PASSWORD)).unwrap(),
        ),
        (
            "p12 legacy (RC2/3DES)",
            ClientCertificate::from_file(&rsa.p12_legacy, None, Some(PASSWORD)).unwrap(),
        ),
        (
            "p12 empty password",
            ClientCertificate::from_file(&rsa.p12_empty, None, None).unwrap(),
        ),
        (
            "PEM from openssl -clcerts -nodes",
            ClientCertificate::from_file(&rsa.combined_pem, None, None).unwrap(),
        ),
        (
            "PEM + PKCS#8 key",
            ClientCertificate::from_file(&rsa.cert_pem, Some(&rsa.key_pkcs8), None).unwrap(),
        ),
        (
            "PEM + PKCS#1 RSA key",
            ClientCertificate::from_file(&rsa.cert_pem, Some(&rsa.key_traditional), None).unwrap(),
        ),
        (
            "EC PEM + SEC1 key",
            ClientCertificate::from_file(&ec.cert_pem, Some(&ec.key_traditional), None).unwrap(),
        ),
    ];
    assert!(std::fs::read_to_string(&rsa.combined_pem)
        .unwrap()
        .contains("Bag Attributes"));
    for (form, cert) in forms {
        let c = client(&mock, cert);
        let r = c.send(&alert(Some("com.example.app.voip"))).await.unwrap();
        assert!(r.is_accepted(), "{form}: {}", r.describe());
        assert_eq!(c.stats().tokens_minted, 0, "{form}");
    }
    let accepted = mock.accepted();
    assert_eq!(accepted.len(), 7);
    for a in &accepted {
        assert!(
            a.certificate_subject
                .as_deref()
                .unwrap()
                .contains("com.example.app"),
            "{a:?}"
        );
        assert_eq!(a.key_id, "", "no provider token on certificate connections");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(missing_openssl, ignore = "needs openssl: apt install openssl")]
async fn inspection_reads_what_apple_put_in_the_certificate() {
    let dir = temp_dir();
    let ca = certs::ca(dir.path());
    let universal = certs::push_cert(dir.path(), &ca, Spec::default());
    let info = ClientCertificate::from_file(&universal.p12_modern, None, Some(PASSWORD))
        .unwrap()
        .info()
        .clone();
    assert_eq!(info.bundle_id.as_deref(), Some("com.example.app"));
    assert_eq!(
        info.topics,
        [
            "com.example.app",
            "com.example.app.voip",
            "com.example.app.complication"
        ]
    );
    assert_eq!(info.environment, CertEnvironment::Universal);
    assert_eq!(
        info.common_name.as_deref(),
        Some("Apple Push Services: com.example.app")
    );
    let days = info.days_left(std::time::SystemTime::now());
    assert!((363..=365).contains(&days), "{days}");

    let dev = certs::push_cert(
        dir.path(),
        &ca,
        Spec {
            name: "dev",
            env: Env::Development,
            topics: &[],
            ..Spec::default()
        },
    );
    let info = ClientCertificate::from_file(&dev.combined_pem, None, None)
        .unwrap()
        .info()
        .clone();
    assert_eq!(info.environment, CertEnvironment::Development);
    assert_eq!(
        info.allowed_topics(),
        ["com.example.app"],
        "old-style certificates allow their bundle id"
    );
    assert_eq!(info.default_topic().as_deref(), Some("com.example.app"));
    let prod = certs::push_cert(
        dir.path(),
        &ca,
        Spec {
            name: "prod",
            env: Env::Production,
            ..Spec::default()
        },
    );
    assert_eq!(
        ClientCertificate::from_file(&prod.cert_pem, Some(&prod.key_pkcs8), None)
            .unwrap()
            .info()
            .environment,
        CertEnvironment::Production
    );
}

/// A certificate that names no topic (no topics extension, no bundle id
/// UID) allows none: the client refuses before sending (exit 2 in the
/// CLI), and the mock, sent to by curl, answers as APNs does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(missing_openssl, ignore = "needs openssl: apt install openssl")]
#[cfg_attr(
    missing_curl_http2,
    ignore = "needs curl with HTTP/2: apt install curl"
)]
async fn a_certificate_naming_no_topic_allows_none() {
    let dir = temp_dir();
    let ca = certs::ca(dir.path());
    let bare = certs::push_cert(
        dir.path(),
        &ca,
        Spec {
            name: "bare",
            bundle: "",
            topics: &[],
            ..Spec::default()
        },
    );
    let cert = ClientCertificate::from_file(&bare.combined_pem, None, None).unwrap();
    assert!(cert.info().allowed_topics().is_empty(), "{:?}", cert.info());
    let mock = cert_mock(&ca, Environment::Sandbox, false).await;

    // The library refuses before sending, with and without a topic.
    let c = client(&mock, cert);
    for topic in [Some(BUNDLE), None] {
        let e = c.send(&alert(topic)).await.unwrap_err();
        assert!(
            matches!(e, Error::InvalidField { field: "topic", .. }),
            "{e}"
        );
        assert!(e.to_string().contains("names no topic"), "{e}");
    }
    assert_eq!(mock.stats().requests, 0, "nothing was sent");

    // The CLI: a refusal before sending is a usage error.
    let mock_ca = dir.path().join("mock-ca.pem");
    std::fs::write(&mock_ca, mock.ca_pem().unwrap()).unwrap();
    let mut send = apns_against(&["send"], &At::new(mock.endpoint(), &mock_ca));
    send.arg("--cert")
        .arg(&bare.combined_pem)
        .args(["--topic", BUNDLE, "--alert", "hi", DEVICE]);
    let out = run(send).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("names no topic"), "{}", stderr(&out));

    // Sent anyway (curl checks nothing), the mock refuses the topic.
    let mut curl = program(Prerequisite::CurlHttp2);
    curl.args(["-sS", "--http2", "-o", "-", "-w", "\n%{http_code}"])
        .arg("--cacert")
        .arg(&mock_ca)
        .arg("--cert")
        .arg(&bare.combined_pem)
        .args(["-H", &format!("apns-topic: {BUNDLE}")])
        .args([
            "-d",
            r#"{"aps":{"alert":"hi"}}"#,
            &format!("{}/3/device/{DEVICE}", mock.endpoint()),
        ]);
    let out = run(curl).await;
    assert!(out.status.success(), "curl failed: {}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains(r#""reason":"TopicDisallowed""#) && text.trim().ends_with("400"),
        "{text}"
    );
    assert_eq!(mock.accepted().len(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(missing_openssl, ignore = "needs openssl: apt install openssl")]
async fn topics_default_and_are_checked_before_sending() {
    let dir = temp_dir();
    let ca = certs::ca(dir.path());
    let single = certs::push_cert(
        dir.path(),
        &ca,
        Spec {
            name: "single",
            topics: &[],
            ..Spec::default()
        },
    );
    let multi = certs::push_cert(dir.path(), &ca, Spec::default());
    let mock = cert_mock(&ca, Environment::Sandbox, false).await;

    // One topic: it is the default.
    let c = client(
        &mock,
        ClientCertificate::from_file(&single.combined_pem, None, None).unwrap(),
    );
    assert!(c.send(&alert(None)).await.unwrap().is_accepted());
    assert_eq!(mock.accepted()[0].topic, "com.example.app");

    // A topic the certificate does not allow: refused before sending.
    let e = c.send(&alert(Some("com.other.app"))).await.unwrap_err();
    assert!(
        matches!(e, Error::InvalidField { field: "topic", .. }),
        "{e}"
    );
    assert!(
        e.to_string().contains("not allowed by the certificate")
            && e.to_string().contains("com.example.app"),
        "{e}"
    );
    // Several topics and none given: the caller must choose.
    let c = client(
        &mock,
        ClientCertificate::from_file(&multi.combined_pem, None, None).unwrap(),
    );
    let e = c.send(&alert(None)).await.unwrap_err();
    assert!(e.to_string().contains("allows several topics"), "{e}");
    // Token-only push types cannot go over a certificate.
    let la = Notification::builder(DEVICE, Payload::alert("x"))
        .topic("com.example.app.push-type.liveactivity")
        .push_type(PushType::Liveactivity)
        .build()
        .unwrap();
    let e = c.send(&la).await.unwrap_err();
    assert!(e.to_string().contains("token authentication"), "{e}");
    assert_eq!(
        mock.stats().requests,
        1,
        "nothing invalid reached the server"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(missing_openssl, ignore = "needs openssl: apt install openssl")]
async fn expiry_warns_within_thirty_days_and_refuses_expired() {
    let dir = temp_dir();
    let ca = certs::ca(dir.path());
    let soon = certs::push_cert(
        dir.path(),
        &ca,
        Spec {
            name: "soon",
            not_after_days: 10,
            ..Spec::default()
        },
    );
    let expired = certs::push_cert(
        dir.path(),
        &ca,
        Spec {
            name: "old",
            not_before_days: -400,
            not_after_days: -35,
            ..Spec::default()
        },
    );
    let mock = cert_mock(&ca, Environment::Sandbox, false).await;
    let c = client(
        &mock,
        ClientCertificate::from_file(&soon.combined_pem, None, None).unwrap(),
    );
    assert_eq!(c.warnings().len(), 1);
    assert!(
        c.warnings()[0].contains("expires on") && c.warnings()[0].contains("days left"),
        "{:?}",
        c.warnings()
    );
    assert!(c
        .send(&alert(Some("com.example.app")))
        .await
        .unwrap()
        .is_accepted());

    let e = Client::builder()
        .no_proxy()
        .endpoint(mock.endpoint())
        .certificate(ClientCertificate::from_file(&expired.combined_pem, None, None).unwrap())
        .build()
        .unwrap_err();
    let date = expired_date(&expired.cert_pem);
    assert!(
        e.to_string().contains("expired on") && e.to_string().contains(&date),
        "{e} / {date}"
    );
    assert_eq!(
        mock.stats().connections,
        1,
        "an expired certificate never connects"
    );
}

/// The certificate's expiry date (YYYY-MM-DD), as openssl reads it: an
/// independent parse of the date the library reports.
fn expired_date(cert_pem: &std::path::Path) -> String {
    let out = program(Prerequisite::Openssl)
        .args(["x509", "-noout", "-enddate", "-dateopt", "iso_8601", "-in"])
        .arg(cert_pem)
        .output()
        .expect("openssl is installed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // notAfter=2025-10-27 12:00:00Z
    let text = String::from_utf8(out.stdout).unwrap();
    text.trim()
        .strip_prefix("notAfter=")
        .map(|d| d[..10].to_string())
        .unwrap_or_else(|| panic!("{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(missing_openssl, ignore = "needs openssl: apt install openssl")]
async fn bad_inputs_say_what_is_wrong() {
    let dir = temp_dir();
    let ca = certs::ca(dir.path());
    let a = certs::push_cert(dir.path(), &ca, Spec::default());
    let b = certs::push_cert(
        dir.path(),
        &ca,
        Spec {
            name: "other",
            ..Spec::default()
        },
    );
    let err = |r: Result<ClientCertificate, Error>| r.unwrap_err().to_string();

    for p12 in [&a.p12_modern, &a.p12_legacy] {
        let msg = err(ClientCertificate::from_file(p12, None, Some("wrong")));
        assert!(msg.contains("wrong password"), "{msg}");
        let e = ClientCertificate::from_file(p12, None, None).unwrap_err();
        assert_eq!(
            e.credential_problem(),
            Some(apns_provider::CredentialProblem::WrongPassword)
        );
        // The library names no flag; the CLI adds its own hint.
        assert!(!e.to_string().contains("--"), "{e}");
    }
    let bytes = std::fs::read(&a.p12_modern).unwrap();
    let cut = write_file(dir.path(), "cut.p12", &bytes[..bytes.len() / 2]);
    let e = ClientCertificate::from_file(&cut, None, Some(PASSWORD)).unwrap_err();
    assert_eq!(
        e.credential_problem(),
        Some(apns_provider::CredentialProblem::NotPkcs12)
    );
    let msg = e.to_string();
    assert!(
        msg.contains("not a valid PKCS#12") && msg.contains("truncated"),
        "{msg}"
    );

    let pem = std::fs::read_to_string(&a.combined_pem).unwrap();
    let cut_pem = write_file(dir.path(), "cut.pem", &pem.as_bytes()[..pem.len() / 3]);
    let msg = err(ClientCertificate::from_file(&cut_pem, None, None));
    assert!(
        msg.contains("damaged PEM")
            || msg.contains("no certificate")
            || msg.contains("no private key"),
        "{msg}"
    );

    let msg = err(ClientCertificate::from_file(
        &a.cert_pem,
        Some(&b.key_pkcs8),
        None,
    ));
    assert!(msg.contains("does not match the certificate"), "{msg}");
    let e = ClientCertificate::from_file(&a.cert_pem, None, None).unwrap_err();
    assert_eq!(
        e.credential_problem(),
        Some(apns_provider::CredentialProblem::MissingKey)
    );
    assert!(e.to_string().contains("no private key"), "{e}");
}

/// The usual OpenSSL 3 recipe, `openssl x509 -req` without extensions,
/// makes an X.509 version 1 certificate, which rustls refuses: the error
/// says so in words (never rustls' `Other(OtherError(..))`) and names the
/// fix; the fixed recipe (`-extfile`, or `req -x509 -CA -addext`) sends
/// over mutual TLS to the mock in certificate mode.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(missing_openssl, ignore = "needs openssl: apt install openssl")]
async fn a_version_1_certificate_is_named_with_its_fix() {
    let dir = temp_dir();
    let at = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let subject = "/CN=Apple Push Services: com.example.app/UID=com.example.app";
    certs::openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        &at("ca.key"),
        "-out",
        &at("ca.pem"),
        "-days",
        "30",
        "-subj",
        "/CN=Test CA",
    ]);
    certs::openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        &at("client.key"),
        "-out",
        &at("client.csr"),
        "-subj",
        subject,
    ]);
    let (csr, ca_pem, ca_key) = (at("client.csr"), at("ca.pem"), at("ca.key"));
    let sign = |out: &str, extra: &[&str]| {
        let mut args = vec![
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca_pem,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-days",
            "30",
        ];
        let out = at(out);
        args.extend(["-out", out.as_str()]);
        args.extend(extra);
        certs::openssl(&args);
    };
    sign("v1.pem", &[]);
    let key = dir.path().join("client.key");
    let e = ClientCertificate::from_file(dir.path().join("v1.pem"), Some(&key), None).unwrap_err();
    assert_eq!(
        e.credential_problem(),
        Some(apns_provider::CredentialProblem::UnsupportedCertificateVersion),
        "{e}"
    );
    let msg = e.to_string();
    assert!(
        msg.contains("X.509 version 1") && msg.contains("-extfile") && msg.contains("-addext"),
        "{msg}"
    );
    for debug in [
        "OtherError",
        "UnsupportedCertVersion",
        "Other(",
        "unusable certificate key",
    ] {
        assert!(!msg.contains(debug), "{debug} in: {msg}");
    }

    // The fixes the message names: both make version 3 certificates that
    // the mock accepts.
    std::fs::write(
        dir.path().join("client.ext"),
        "extendedKeyUsage=clientAuth\n",
    )
    .unwrap();
    sign("v3.pem", &["-extfile", &at("client.ext")]);
    certs::openssl(&[
        "req",
        "-x509",
        "-CA",
        &at("ca.pem"),
        "-CAkey",
        &at("ca.key"),
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        &at("one-step.key"),
        "-out",
        &at("one-step.pem"),
        "-days",
        "30",
        "-subj",
        subject,
        "-addext",
        "basicConstraints=CA:FALSE",
        "-addext",
        "extendedKeyUsage=clientAuth",
    ]);
    let mock = MockServer::builder()
        .client_ca_pem(&std::fs::read(dir.path().join("ca.pem")).unwrap())
        .start()
        .await
        .unwrap();
    for (cert, key) in [("v3.pem", "client.key"), ("one-step.pem", "one-step.key")] {
        let cert =
            ClientCertificate::from_file(dir.path().join(cert), Some(&dir.path().join(key)), None)
                .unwrap();
        let r = client(&mock, cert)
            .send(&alert(Some("com.example.app")))
            .await
            .unwrap();
        assert!(r.is_accepted(), "{}", r.describe());
    }
    assert_eq!(mock.accepted().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(missing_openssl, ignore = "needs openssl: apt install openssl")]
async fn bad_certificate_environment_as_a_response_and_as_a_goaway() {
    let dir = temp_dir();
    let ca = certs::ca(dir.path());
    let dev = certs::push_cert(
        dir.path(),
        &ca,
        Spec {
            name: "dev",
            env: Env::Development,
            ..Spec::default()
        },
    );
    for goaway in [false, true] {
        let mock = cert_mock(&ca, Environment::Production, goaway).await;
        let c = client(
            &mock,
            ClientCertificate::from_file(&dev.combined_pem, None, None).unwrap(),
        );
        let r = c.send(&alert(Some("com.example.app"))).await.unwrap();
        assert_eq!(
            (r.status(), r.reason()),
            (403, Some(&Reason::BadCertificateEnvironment)),
            "goaway {goaway}"
        );
        assert_eq!(mock.stats().goaways_sent, u64::from(goaway));
    }
    // Against Apple's own hosts the client knows the environment and refuses
    // before connecting.
    let e = Client::builder()
        .no_proxy()
        .endpoint(Endpoint::production())
        .certificate(ClientCertificate::from_file(&dev.combined_pem, None, None).unwrap())
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("BadCertificateEnvironment"), "{e}");
}

/// The seed's own flow: `--endpoint` names the old sandbox host, `--resolve`
/// maps that very name to the mock, whose certificate names only it. TLS
/// checks the name typed (it used to be rewritten to the sandbox's, and the
/// `--resolve` entry was ignored).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(missing_openssl, ignore = "needs openssl: apt install openssl")]
async fn the_development_host_as_typed_with_its_own_resolve_entry() {
    let dir = temp_dir();
    let ca = certs::ca(dir.path());
    let cert = certs::push_cert(dir.path(), &ca, Spec::default());
    let mock_ca = dir.path().join("mock-ca.pem");
    let mut mock_cmd = apns();
    mock_cmd
        .arg("mock")
        .arg("--client-ca")
        .arg(&ca.pem_path)
        .args(["--server-name", "api.development.push.apple.com"])
        .arg("--ca-out")
        .arg(&mock_ca);
    let mock = spawn_mock(mock_cmd);
    let port = mock.port().to_string();
    let apple = At::new("https://api.development.push.apple.com", &mock_ca);
    let mut send = apns_against(&["send"], &apple);
    send.args([
        "--resolve",
        &format!("api.development.push.apple.com:443:127.0.0.1:{port}"),
    ])
    .arg("--cert")
    .arg(&cert.combined_pem)
    .args([
        "--topic",
        "com.example.app",
        "--alert",
        "hi",
        "--output",
        "json",
        DEVICE,
    ]);
    let out = run(send).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let v: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(v["status"], 200);
    mock.stop().await;
}

/// The flow this project replaces: a .p12 from the Keychain, converted with
/// openssl, POSTed to the sandbox host with apns-expiration 0 and priority
/// 10. Unchanged, it gets 200 from `apns mock` in certificate mode,
/// addressed by Apple's host name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(missing_openssl, ignore = "needs openssl: apt install openssl")]
async fn the_original_flow_works_against_the_mock_by_its_real_name() {
    let dir = temp_dir();
    let ca = certs::ca(dir.path());
    let cert = certs::push_cert(dir.path(), &ca, Spec::default());
    let mock_ca = dir.path().join("mock-ca.pem");
    let mut mock_cmd = apns();
    mock_cmd
        .arg("mock")
        .arg("--client-ca")
        .arg(&ca.pem_path)
        .args([
            "--server-name",
            "api.sandbox.push.apple.com",
            "--server-name",
            "api.development.push.apple.com",
        ])
        .arg("--ca-out")
        .arg(&mock_ca);
    let mock = spawn_mock(mock_cmd);
    let port = mock.port().to_string();

    let mut send = apns();
    send.args([
        "send",
        "--env",
        "sandbox",
        "--resolve",
        &format!("api.development.push.apple.com:443:127.0.0.1:{port}"),
    ])
    .arg("--ca-file")
    .arg(&mock_ca)
    .arg("--cert")
    .arg(&cert.combined_pem)
    .args([
        "--expiration",
        "0",
        "--priority",
        "10",
        "--topic",
        "com.example.app",
        "--alert",
        "Hello from the old flow",
        "--output",
        "json",
        DEVICE,
    ]);
    let out = run(send).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let v: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(v["status"], 200);

    // The same with the .p12 itself and its password from the environment.
    let mut send = apns();
    send.args([
        "send",
        "--env",
        "sandbox",
        "--resolve",
        &format!("api.sandbox.push.apple.com:443:127.0.0.1:{port}"),
    ])
    .arg("--ca-file")
    .arg(&mock_ca)
    .arg("--cert")
    .arg(&cert.p12_legacy)
    .args([
        "--cert-password-env",
        "P12_PASSWORD",
        "--alert",
        "hi",
        "--topic",
        "com.example.app",
        DEVICE,
    ])
    .env("P12_PASSWORD", PASSWORD);
    let out = run(send).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );

    let out = mock.stop().await;
    assert!(stderr(&out).contains("2 accepted"), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(missing_openssl, ignore = "needs openssl: apt install openssl")]
async fn cli_inspect_convert_and_password_sources() {
    let dir = temp_dir();
    let ca = certs::ca(dir.path());
    let cert = certs::push_cert(dir.path(), &ca, Spec::default());
    let soon = certs::push_cert(
        dir.path(),
        &ca,
        Spec {
            name: "soon",
            not_after_days: 5,
            ..Spec::default()
        },
    );
    let password_file = write_file(dir.path(), "pw.txt", format!("{PASSWORD}\n").as_bytes());

    let mut cmd = apns();
    cmd.args(["cert", "inspect"])
        .arg(&cert.p12_modern)
        .arg("--cert-password-file")
        .arg(&password_file)
        .args(["--output", "json"]);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(v["bundle_id"], "com.example.app");
    assert_eq!(v["environment"], "universal");
    assert_eq!(v["topics"].as_array().unwrap().len(), 3);
    assert_eq!(v["expired"], false);

    let mut cmd = apns();
    cmd.args(["cert", "inspect"]).arg(&soon.combined_pem);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(0));
    assert!(
        stdout(&out).contains("days left")
            && stderr(&out).contains("warning")
            && stderr(&out).contains("expires on"),
        "{}",
        stderr(&out)
    );

    let mut cmd = apns();
    cmd.args(["cert", "inspect"])
        .arg(&cert.p12_modern)
        .args(["--cert-password-env", "NOT_SET_ANYWHERE"]);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("NOT_SET_ANYWHERE") && stderr(&out).contains("not set"),
        "{}",
        stderr(&out)
    );

    // No password source and no terminal: said so, not "wrong password".
    let mut cmd = apns();
    cmd.args(["cert", "inspect"]).arg(&cert.p12_legacy);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("none was given") && stderr(&out).contains("--cert-password-env"),
        "{}",
        stderr(&out)
    );
    // A wrong one given: said so, with the flags to fix it.
    let mut cmd = apns();
    cmd.args(["cert", "inspect"])
        .arg(&cert.p12_legacy)
        .args(["--cert-password-env", "WRONG_PW"])
        .env("WRONG_PW", "not-it");
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("wrong password") && stderr(&out).contains("--cert-password-file"),
        "{}",
        stderr(&out)
    );

    // Convert: mode 0600, and the result works.
    let out_pem = dir.path().join("converted.pem");
    let mut cmd = apns();
    cmd.args(["cert", "convert"])
        .arg(&cert.p12_legacy)
        .arg("--out")
        .arg(&out_pem)
        .args(["--cert-password-env", "P12_PASSWORD"])
        .env("P12_PASSWORD", PASSWORD);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&out_pem).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let converted = ClientCertificate::from_file(&out_pem, None, None).unwrap();
    assert_eq!(
        converted.info().bundle_id.as_deref(),
        Some("com.example.app")
    );
    let mock = cert_mock(&ca, Environment::Sandbox, false).await;
    assert!(client(&mock, converted)
        .send(&alert(Some("com.example.app")))
        .await
        .unwrap()
        .is_accepted());
}
