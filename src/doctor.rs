//! Step-by-step checks of the road to an APNs endpoint, for the command
//! line's doctor and for tools that want the same diagnosis: DNS, TCP, the
//! HTTPS proxy's tunnel (when one is used), TLS, ALPN `h2`, the server's
//! certificate chain, and a request without credentials, which APNs answers
//! `403 MissingProviderToken`. Each check says what it found and, when
//! it fails, what to do.
//!
//! ```no_run
//! # async fn run() {
//! use apns_provider::doctor::{check_endpoint, ProbeOptions};
//! let checks = check_endpoint(&apns_provider::Endpoint::sandbox(), &ProbeOptions::default()).await;
//! for c in &checks {
//!     println!("{:?} {}: {}", c.status, c.name, c.detail);
//! }
//! # }
//! ```

use std::net::SocketAddr;
use std::time::Duration;

use rustls_pki_types::{CertificateDer, ServerName};
use serde::Serialize;
use tokio::net::TcpStream;
use tokio::time::timeout;

use crate::error::TlsProblem;
use crate::transport::{tls, Endpoint, Proxy};

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum CheckStatus {
    /// Fine.
    Pass,
    /// Works, but worth a look.
    Warn,
    /// Broken; later checks were skipped.
    Fail,
}

/// One check: its name, what it found, and a fix when it failed.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Check {
    /// Short name: `dns`, `tcp`, `tls`, `alpn`, `chain`...
    pub name: &'static str,
    /// Pass, warn or fail.
    pub status: CheckStatus,
    /// What was found.
    pub detail: String,
    /// What to do about a failure or warning.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
    /// For a failed TLS handshake, which case it is (so a tool can add its
    /// own advice).
    #[serde(skip)]
    pub tls_problem: Option<TlsProblem>,
}

impl Check {
    /// A passing check.
    pub fn pass(name: &'static str, detail: impl Into<String>) -> Check {
        Check {
            name,
            status: CheckStatus::Pass,
            detail: detail.into(),
            fix: None,
            tls_problem: None,
        }
    }
    /// A warning, with what to do.
    pub fn warn(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            name,
            status: CheckStatus::Warn,
            detail: detail.into(),
            fix: Some(fix.into()),
            tls_problem: None,
        }
    }
    /// A failure, with what to do.
    pub fn fail(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            name,
            status: CheckStatus::Fail,
            detail: detail.into(),
            fix: Some(fix.into()),
            tls_problem: None,
        }
    }
}

/// How to reach the endpoint.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ProbeOptions {
    /// Trust `webpki-roots` (default true).
    pub webpki_roots: bool,
    /// Extra CA certificates (PEM), e.g. a mock's or a proxy's.
    pub extra_roots_pem: Vec<Vec<u8>>,
    /// Limit for each network step.
    pub timeout: Duration,
    /// The HTTPS proxy to go through, as the client would (see
    /// [`Client::proxy`](crate::Client::proxy)); `None` connects directly.
    pub proxy: Option<Proxy>,
}

impl Default for ProbeOptions {
    fn default() -> Self {
        ProbeOptions {
            webpki_roots: true,
            extra_roots_pem: Vec::new(),
            timeout: Duration::from_secs(10),
            proxy: None,
        }
    }
}

/// Checks DNS, TCP, the proxy's tunnel (with [`ProbeOptions::proxy`]), TLS,
/// ALPN and the certificate chain of `endpoint`, in order, stopping at the
/// first failure. Through a proxy, DNS and TCP are checked for the proxy
/// (which resolves APNs' host itself).
pub async fn check_endpoint(endpoint: &Endpoint, options: &ProbeOptions) -> Vec<Check> {
    let mut checks = Vec::new();
    let host = endpoint.host().to_string();
    let authority = endpoint.authority();
    let proxy = options
        .proxy
        .as_ref()
        .filter(|p| p.applies_to(endpoint.host()));
    // Where TCP goes: the proxy, or the endpoint.
    let (dial_host, dial_port, whose) = match proxy {
        Some(p) => (p.host().to_string(), p.port(), "the proxy "),
        None => (host.clone(), endpoint.port(), ""),
    };

    // DNS.
    let addrs: Vec<SocketAddr> = match timeout(
        options.timeout,
        tokio::net::lookup_host((dial_host.as_str(), dial_port)),
    )
    .await
    {
        Ok(Ok(addrs)) => addrs.collect(),
        Ok(Err(e)) => {
            checks.push(Check::fail("dns", format!("cannot resolve {whose}{dial_host}: {e}"), "check this machine's DNS and network; a mock is addressed by its IP, as https://127.0.0.1:PORT"));
            return checks;
        }
        Err(_) => {
            checks.push(Check::fail(
                "dns",
                format!(
                    "resolving {whose}{dial_host} timed out after {:?}",
                    options.timeout
                ),
                "check this machine's DNS servers",
            ));
            return checks;
        }
    };
    if addrs.is_empty() {
        checks.push(Check::fail(
            "dns",
            format!("{whose}{dial_host} has no addresses"),
            "check the host name",
        ));
        return checks;
    }
    let listed: Vec<String> = addrs.iter().take(4).map(|a| a.ip().to_string()).collect();
    checks.push(Check::pass(
        "dns",
        format!("{whose}{dial_host} resolves to {}", listed.join(", ")),
    ));

    // TCP.
    let mut tcp = None;
    let mut last_error = String::new();
    for addr in &addrs {
        match timeout(options.timeout, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => {
                tcp = Some((stream, *addr));
                break;
            }
            Ok(Err(e)) => last_error = format!("{addr}: {e}"),
            Err(_) => last_error = format!("{addr}: timed out after {:?}", options.timeout),
        }
    }
    let Some((mut tcp, addr)) = tcp else {
        let check = match proxy {
            Some(p) => Check::fail("tcp", format!("cannot reach the proxy at {p} ({last_error})"), "check the proxy URL's host and port (or HTTPS_PROXY / ALL_PROXY), and that the proxy runs"),
            None => Check::fail("tcp", format!("cannot connect to {authority} ({last_error})"), "is the server running? A firewall must allow outbound TCP to port 443 (APNs also listens on 2197)"),
        };
        checks.push(check);
        return checks;
    };
    let _ = tcp.set_nodelay(true);
    checks.push(Check::pass("tcp", format!("connected to {whose}{addr}")));

    // The proxy's tunnel.
    if let Some(p) = proxy {
        match p.handshake(&mut tcp, endpoint, options.timeout).await {
            Ok(()) => checks.push(Check::pass(
                "proxy",
                format!(
                    "{p} opened a tunnel to {authority} (CONNECT{})",
                    if p.has_credentials() {
                        ", with credentials"
                    } else {
                        ""
                    }
                ),
            )),
            Err(e) => {
                let fix = if e.is_proxy_auth_required() {
                    "check the user and password in the proxy URL (http://USER:PASSWORD@HOST:PORT)"
                } else {
                    "the proxy must allow CONNECT to APNs' host on port 443 (or 2197); check it with its administrator"
                };
                checks.push(Check::fail("proxy", e.to_string(), fix));
                return checks;
            }
        }
    }

    // TLS, with the trust the client would use.
    let mut roots = Vec::new();
    for pem in &options.extra_roots_pem {
        match tls::certificates_from_pem(pem, "CA file") {
            Ok(certs) => roots.extend(certs),
            Err(e) => {
                checks.push(Check::fail(
                    "tls",
                    e.to_string(),
                    "give a PEM file of CA certificates",
                ));
                return checks;
            }
        }
    }
    let config = match tls::client_config(options.webpki_roots, &roots) {
        Ok(c) => c,
        Err(e) => {
            checks.push(Check::fail(
                "tls",
                e.to_string(),
                "keep the built-in roots or add a CA file",
            ));
            return checks;
        }
    };
    let Ok(name) = ServerName::try_from(host.clone()) else {
        checks.push(Check::fail(
            "tls",
            format!("{host:?} is not a valid TLS server name"),
            "use a DNS name or an IP address",
        ));
        return checks;
    };
    let tls_stream = match timeout(
        options.timeout,
        tokio_rustls::TlsConnector::from(config).connect(name, tcp),
    )
    .await
    {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            let (problem, detail, fix) = explain_tls_error(&e);
            let mut check = Check::fail("tls", detail, fix);
            check.tls_problem = Some(problem);
            checks.push(check);
            return checks;
        }
        Err(_) => {
            checks.push(Check::fail("tls", format!("no TLS answer within {:?}", options.timeout), "the server accepts TCP but never finishes the handshake: a stalled server, or a middlebox eating TLS"));
            return checks;
        }
    };
    let conn = tls_stream.get_ref().1;
    let version = conn
        .protocol_version()
        .map(|v| format!("{v:?}"))
        .unwrap_or_default();
    let trusted = if options.webpki_roots {
        format!("webpki-roots plus {} extra root(s)", roots.len())
    } else {
        format!("{} given root(s) only", roots.len())
    };
    checks.push(Check::pass(
        "tls",
        format!(
            "{version} handshake; certificate valid for {host}, chain verified against {trusted}"
        ),
    ));

    // ALPN.
    match conn.alpn_protocol() {
        Some(b"h2") => checks.push(Check::pass("alpn", "the server agreed on HTTP/2 (h2)")),
        other => {
            let got = other
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .unwrap_or_else(|| "nothing".into());
            checks.push(Check::fail("alpn", format!("the server chose {got} instead of h2"), "APNs speaks only HTTP/2: check the endpoint, or a proxy that downgrades to HTTP/1.1"));
            return checks;
        }
    }

    // The chain, as presented.
    let chain: Vec<CertificateDer<'static>> = conn
        .peer_certificates()
        .map(|c| c.iter().map(|c| c.clone().into_owned()).collect())
        .unwrap_or_default();
    checks.push(describe_chain(&chain));

    // HTTP/2 and the path, short of credentials.
    checks.push(probe_without_credentials(tls_stream, &authority, options.timeout).await);
    checks
}

/// A push with no credentials at all: APNs (and the mock) answer `403
/// MissingProviderToken` (`docs/apns-facts.md`, "Responses"). That answer
/// proves HTTP/2, the server's SETTINGS, the request path and APNs' JSON
/// answers work, with no key needed. Anything else is said as found.
async fn probe_without_credentials<IO>(io: IO, authority: &str, limit: Duration) -> Check
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    const NAME: &str = "probe";
    let device = "0".repeat(64);
    let run = async {
        let (client, connection) = h2::client::handshake(io).await?;
        let driver = tokio::spawn(async move {
            let _ = connection.await;
        });
        let request = http::Request::post(format!("https://{authority}/3/device/{device}"))
            .header("apns-push-type", "alert")
            .body(())
            .expect("a fixed request is valid");
        let mut client = client.ready().await?;
        let (answer, mut body) = client.send_request(request, false)?;
        body.send_data(
            bytes::Bytes::from_static(br#"{"aps":{"alert":"apns doctor"}}"#),
            true,
        )?;
        let answer = answer.await?;
        let status = answer.status().as_u16();
        let mut stream = answer.into_body();
        let mut text = Vec::new();
        while let Some(chunk) = stream.data().await {
            let chunk = chunk?;
            let _ = stream.flow_control().release_capacity(chunk.len());
            text.extend_from_slice(&chunk);
            // APNs' answers are small; a page is not one of them.
            if text.len() > 4096 {
                break;
            }
        }
        driver.abort();
        Ok::<_, h2::Error>((status, text))
    };
    match timeout(limit, run).await {
        Ok(Ok((status, text))) => {
            let answer = crate::response::Response::from_parts(status, None, None, &text);
            match answer.reason() {
                Some(crate::response::Reason::MissingProviderToken) if status == 403 => {
                    Check::pass(
                        NAME,
                        "a push without credentials got 403 MissingProviderToken, as APNs answers: HTTP/2 and the path work",
                    )
                }
                Some(reason) => Check::warn(
                    NAME,
                    format!("a push without credentials got {status} {}", reason.as_str()),
                    "APNs answers 403 MissingProviderToken: is this endpoint APNs (or a mock of it)?",
                ),
                None => Check::warn(
                    NAME,
                    format!("a push without credentials got {status} without a reason"),
                    "APNs answers 403 MissingProviderToken: is this endpoint APNs (or a mock of it)?",
                ),
            }
        }
        Ok(Err(e)) => Check::warn(
            NAME,
            format!("a push without credentials failed over HTTP/2: {e}"),
            "the TLS and ALPN checks passed: look for a proxy or server that breaks HTTP/2",
        ),
        Err(_) => Check::warn(
            NAME,
            format!("a push without credentials got no answer within {limit:?}"),
            "the server accepts HTTP/2 but does not answer: a stalled server?",
        ),
    }
}

fn describe_chain(chain: &[CertificateDer<'_>]) -> Check {
    use x509_parser::prelude::*;
    let Some(leaf) = chain.first() else {
        return Check::warn(
            "chain",
            "the server sent no certificate",
            "unexpected after a verified handshake",
        );
    };
    let Ok((_, cert)) = X509Certificate::from_der(leaf) else {
        return Check::warn(
            "chain",
            "the server certificate could not be parsed for display",
            "the handshake verified it anyway",
        );
    };
    let issuer_top = chain
        .last()
        .and_then(|c| X509Certificate::from_der(c).ok())
        .map(|(_, c)| c.issuer().to_string())
        .unwrap_or_default();
    let not_after = cert.validity().not_after;
    let days_left = (not_after.timestamp() - now_unix()) / 86_400;
    let detail = format!(
        "{} certificate(s); leaf {} issued by {}; top issuer {}; expires {} ({} days)",
        chain.len(),
        cert.subject(),
        cert.issuer(),
        issuer_top,
        not_after,
        days_left
    );
    if days_left < 7 {
        Check::warn(
            "chain",
            detail,
            "the server's certificate expires within a week",
        )
    } else {
        Check::pass("chain", detail)
    }
}

fn now_unix() -> i64 {
    crate::clock::now_unix_seconds() as i64
}

/// The doctor's reading of a failed handshake: the shared explanation, and
/// what to do about it.
fn explain_tls_error(e: &std::io::Error) -> (TlsProblem, String, String) {
    let (problem, detail) = tls::explain(e);
    let fix = match problem {
        TlsProblem::UntrustedCertificate => "for a mock or a TLS-inspecting proxy, trust its CA certificate; otherwise something is intercepting the connection",
        TlsProblem::CertificateDates => "check this machine's clock (date -u); if it is right, the server's certificate has expired",
        TlsProblem::WrongHostName => "the certificate is for another host name: check the endpoint (a mock's certificate names localhost and 127.0.0.1)",
        TlsProblem::NoHttp2 => "APNs speaks only HTTP/2: check the endpoint",
        _ => "check the endpoint; is it a TLS server?",
    };
    (problem, detail, fix.into())
}
