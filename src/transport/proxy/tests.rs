//! Unit tests of the proxy: URL parsing, credentials never printed, the environment's order, the CONNECT handshake and its failures.

use super::*;

#[test]
fn parses_proxy_urls_like_curl() {
    let p = Proxy::parse("http://proxy.corp:3128").unwrap();
    assert_eq!(
        (p.host(), p.port(), p.has_credentials()),
        ("proxy.corp", 3128, false)
    );
    let p = Proxy::parse("proxy.corp").unwrap();
    assert_eq!((p.host(), p.port()), ("proxy.corp", DEFAULT_PROXY_PORT));
    let p = Proxy::parse("HTTP://[::1]:8080/").unwrap();
    assert_eq!((p.host(), p.port()), ("::1", 8080));
    assert_eq!(p.to_string(), "http://[::1]:8080");
    let p = Proxy::parse("http://al%40ce:p%3Ass@127.0.0.1:3128").unwrap();
    assert!(p.has_credentials());
    let expected = ProxyCredentials::basic("al@ce", "p:ss");
    assert_eq!(*p.credentials.unwrap().header, *expected.header);
    for bad in [
        "https://proxy:443",
        "socks5://proxy:1080",
        "http://proxy:0",
        "http://proxy:99999",
        "http://:3128",
        "http://proxy:3128/path",
        "http://[::1:3128",
    ] {
        assert!(Proxy::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn credentials_never_print() {
    let url = "http://alice:hunter2-secret@proxy.corp:3128";
    let p = Proxy::parse(url).unwrap();
    for text in [p.to_string(), format!("{p:?}"), format!("{p:#?}")] {
        assert!(
            !text.contains("hunter2") && !text.contains("alice"),
            "{text}"
        );
    }
    // Not even the base64 form of them.
    let b64 = base64::engine::general_purpose::STANDARD.encode("alice:hunter2-secret");
    assert!(!format!("{p:?}").contains(&b64));
    // Nor an error about a URL that holds them.
    let e = Proxy::parse("socks5://alice:hunter2-secret@proxy:1080").unwrap_err();
    assert!(!e.to_string().contains("hunter2"), "{e}");
    assert!(e.to_string().contains("[redacted]@proxy:1080"), "{e}");
    for no_host in [
        "http://alice:S3cret",
        "alice:S3cret",
        "http://alice:S3cret/",
        "http://al ice:S3cret",
    ] {
        let e = Proxy::parse(no_host).unwrap_err().to_string();
        assert!(!e.contains("S3cret") && !e.contains("alice"), "{e}");
    }
    assert_eq!(redacted("http://proxy.corp:3128"), "http://proxy.corp:3128");
    assert_eq!(redacted("http://u:pw@h:1"), "http://[redacted]@h:1");
    assert_eq!(
        redacted("http://alice:S3cret"),
        "http://[12 characters not shown]"
    );
    let e = Proxy::parse("http://alice:hunter2%zz@proxy:1080").unwrap_err();
    assert!(!e.to_string().contains("hunter2"), "{e}");
}

#[test]
fn environment_order_is_curls() {
    let env = |pairs: &'static [(&'static str, &'static str)]| {
        move |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    };
    let p = Proxy::from_lookup(env(&[
        ("ALL_PROXY", "http://all:1"),
        ("HTTPS_PROXY", "http://upper:2"),
        ("https_proxy", "http://lower:3"),
    ]))
    .unwrap()
    .unwrap();
    assert_eq!(p.host(), "lower");
    let p = Proxy::from_lookup(env(&[("ALL_PROXY", "http://all:1"), ("https_proxy", "")]))
        .unwrap()
        .unwrap();
    assert_eq!(p.host(), "all");
    assert!(Proxy::from_lookup(env(&[("http_proxy", "http://plain:1")]))
        .unwrap()
        .is_none());
    let p = Proxy::from_lookup(env(&[
        ("HTTPS_PROXY", "http://p:1"),
        ("NO_PROXY", "upper.example"),
        ("no_proxy", "lower.example"),
    ]))
    .unwrap()
    .unwrap();
    assert!(!p.applies_to("lower.example") && p.applies_to("upper.example"));
    let e = Proxy::from_lookup(env(&[("ALL_PROXY", "socks5://u:pw@p:1")])).unwrap_err();
    assert!(
        e.to_string().contains("ALL_PROXY") && !e.to_string().contains("pw@"),
        "{e}"
    );
}

#[test]
fn status_lines() {
    assert_eq!(
        parse_status("HTTP/1.1 200 Connection established\r\nX: y"),
        Some((200, "Connection established".into()))
    );
    assert_eq!(parse_status("HTTP/1.0 407"), Some((407, String::new())));
    assert_eq!(parse_status("SSH-2.0-OpenSSH"), None);
    assert_eq!(parse_status("HTTP/1.1 abc x"), None);
}

/// A one-shot proxy on loopback that answers with `answer` and reports
/// what it was asked.
async fn one_shot(answer: &'static [u8]) -> (Proxy, tokio::task::JoinHandle<String>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 4096];
        let mut got = Vec::new();
        while !got.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = s.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        s.write_all(answer).await.unwrap();
        String::from_utf8(got).unwrap()
    });
    let proxy = Proxy::parse(&format!("http://u:p@127.0.0.1:{port}")).unwrap();
    (proxy, task)
}

#[tokio::test]
async fn handshake_sends_connect_with_basic_auth() {
    let (proxy, task) = one_shot(b"HTTP/1.1 200 Connection established\r\n\r\n").await;
    let endpoint = Endpoint::new("api.push.apple.com", 443).unwrap();
    proxy
        .tunnel(&endpoint, Duration::from_secs(5), &Stage::default())
        .await
        .unwrap();
    let request = task.await.unwrap();
    assert!(
        request.starts_with("CONNECT api.push.apple.com:443 HTTP/1.1\r\n"),
        "{request}"
    );
    assert!(request.contains("Host: api.push.apple.com:443\r\n"));
    // base64("u:p")
    assert!(
        request.contains("Proxy-Authorization: Basic dTpw\r\n"),
        "{request}"
    );
}

#[tokio::test]
async fn refusals_name_the_proxy_and_the_status() {
    let endpoint = Endpoint::new("api.push.apple.com", 443).unwrap();
    let (proxy, _t) = one_shot(
        b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic\r\nContent-Length: 5\r\n\r\nnope!",
    )
    .await;
    let e = proxy
        .tunnel(&endpoint, Duration::from_secs(5), &Stage::default())
        .await
        .unwrap_err();
    assert!(e.is_proxy_auth_required() && e.is_connection(), "{e}");
    assert!(
        e.to_string().contains("proxy authentication required"),
        "{e}"
    );
    assert!(e.to_string().contains(&proxy.to_string()), "{e}");
    let (proxy, _t) = one_shot(b"HTTP/1.1 403 Forbidden\r\n\r\n").await;
    let e = proxy
        .tunnel(&endpoint, Duration::from_secs(5), &Stage::default())
        .await
        .unwrap_err();
    assert!(!e.is_proxy_auth_required());
    assert!(
        e.to_string()
            .contains("refused the tunnel to api.push.apple.com:443: 403 Forbidden"),
        "{e}"
    );
    let (proxy, _t) = one_shot(b"HTTP/1.1 200 OK\r\n\r\n\x16\x03\x01").await;
    let e = proxy
        .tunnel(&endpoint, Duration::from_secs(5), &Stage::default())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("sent data after its answer"), "{e}");
    let (proxy, _t) = one_shot(b"garbage\r\n\r\n").await;
    let e = proxy
        .tunnel(&endpoint, Duration::from_secs(5), &Stage::default())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("not HTTP"), "{e}");
}

#[tokio::test]
async fn an_unreachable_proxy_is_named() {
    // Port 0 cannot be connected to: refused at once, no port borrowed.
    let proxy = Proxy::parse("http://user:pw@127.0.0.1").unwrap();
    let proxy = Proxy { port: 0, ..proxy };
    let endpoint = Endpoint::new("api.push.apple.com", 443).unwrap();
    let e = proxy
        .tunnel(&endpoint, Duration::from_secs(5), &Stage::default())
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("cannot reach the proxy at http://127.0.0.1:0"),
        "{e}"
    );
    assert!(!e.to_string().contains("pw"));
}
