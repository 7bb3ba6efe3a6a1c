//! The accept loop: TCP, then TLS when configured, then HTTP/1.1 or HTTP/2
//! (hyper's auto builder) with the router; a bounded number of connections;
//! a graceful stop.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::PrivateKeyDer;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::error::{Error, Result};
use crate::transport::tls;

/// Limit for a client to finish the TLS handshake or send its request
/// headers (slow clients hold a connection slot, never a request slot).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Builds the TLS configuration of a gateway from PEM files: the
/// certificate chain (leaf first) and its private key. Offers HTTP/2 and
/// HTTP/1.1 (ALPN).
pub fn tls_config_from_pem_files(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<Arc<ServerConfig>> {
    let read = |p: &std::path::Path, what: &str| {
        std::fs::read(p)
            .map_err(|e| Error::io(format!("cannot read the {what} {}", p.display()), e))
    };
    let cert_pem = read(cert, "TLS certificate")?;
    let key_pem = zeroize::Zeroizing::new(read(key, "TLS key")?);
    let chain =
        tls::certificates_from_pem(&cert_pem, &format!("TLS certificate {}", cert.display()))?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        Error::malformed(format!(
            "the TLS key {} holds no usable private key ({e})",
            key.display()
        ))
    })?;
    let mut config = ServerConfig::builder_with_provider(crate::crypto::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(format!("TLS setup failed: {e}")))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| Error::Config(format!("the TLS certificate and key cannot be used: {e}")))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Serves `router` on `listener` until `shutdown` resolves, then stops
/// accepting and lets the requests in progress finish within `grace`.
pub(crate) async fn run(
    router: axum::Router,
    listener: TcpListener,
    tls: Option<Arc<ServerConfig>>,
    max_connections: usize,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HANDSHAKE_TIMEOUT);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(60)))
        .max_concurrent_streams(256);
    let builder = Arc::new(builder);
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let service = TowerToHyperService::new(router);
    let graceful = GracefulShutdown::new();
    let connections = Arc::new(Semaphore::new(max_connections.max(1)));
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        // A slot first: past the bound, connections wait in the kernel's
        // backlog instead of in memory.
        let permit = tokio::select! {
            _ = &mut shutdown => break,
            p = connections.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (tcp, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!("gateway: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let (builder, service, acceptor, watcher) = (
            builder.clone(),
            service.clone(),
            acceptor.clone(),
            graceful.watcher(),
        );
        tokio::spawn(async move {
            let _permit = permit;
            let result = match acceptor {
                Some(acceptor) => {
                    let tls =
                        match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                            Ok(Ok(tls)) => tls,
                            Ok(Err(e)) => {
                                tracing::debug!(%peer, "gateway: TLS handshake failed: {e}");
                                return;
                            }
                            Err(_) => return,
                        };
                    let conn = builder.serve_connection(TokioIo::new(tls), service);
                    watcher.watch(conn.into_owned()).await
                }
                None => {
                    let conn = builder.serve_connection(TokioIo::new(tcp), service);
                    watcher.watch(conn.into_owned()).await
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, "gateway: connection ended: {e}");
            }
        });
    }
    drop(listener);
    tracing::info!(
        connections = graceful.count(),
        "gateway: stopped accepting; finishing the requests in progress"
    );
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("gateway: requests still in progress after {grace:?}; closing");
    }
}
