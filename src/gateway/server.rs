//! The accept loop: TCP, then TLS when configured, then HTTP/1.1 or HTTP/2
//! (hyper's auto builder) with the router; a bounded number of connections
//! with deadlines and eviction (see `conns.rs`); a graceful stop with a
//! hard limit.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::PrivateKeyDer;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::conns::{Due, Registry, Slot, CLOSE_LINGER};

use crate::error::{Error, Result};
use crate::transport::tls;

/// Builds the TLS configuration of a gateway from PEM files: the
/// certificate chain (leaf first) and its private key, which must be
/// private to its owner (mode 0600 or stricter; refused otherwise, with
/// the `chmod 600` that fixes it). Offers HTTP/2 and HTTP/1.1 (ALPN).
pub fn tls_config_from_pem_files(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<Arc<ServerConfig>> {
    let read = |p: &std::path::Path, what: &str| {
        std::fs::read(p)
            .map_err(|e| Error::io(format!("cannot read the {what} {}", p.display()), e))
    };
    let cert_pem = read(cert, "TLS certificate")?;
    // As the .p8 key: refused when its group or others may read it.
    let key_pem = crate::auth::read_private_file(key)?;
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
        .map_err(|e| {
            Error::Config(format!(
                "TLS setup failed: {}",
                crate::tls_words::rustls_error(&e)
            ))
        })?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| {
            Error::Config(format!(
                "the TLS certificate and key cannot be used: {}",
                crate::tls_words::rustls_error(&e)
            ))
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The connection limits [`run`] applies.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnLimits {
    pub max_connections: usize,
    pub first_request: Duration,
    pub idle: Duration,
}

/// Serves `router` on `listener` until `shutdown` resolves, then stops
/// accepting, closes the connections without a request in progress at
/// once, and lets the requests in progress finish within `grace`: after
/// it, every connection is dropped and `run` returns.
pub(crate) async fn run(
    router: axum::Router,
    listener: TcpListener,
    tls: Option<Arc<ServerConfig>>,
    limits: ConnLimits,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // A backstop for later request heads on a keep-alive connection; the
    // first request's deadline and the idle timeout are ours (conns.rs).
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.idle.max(limits.first_request));
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(60)))
        .max_concurrent_streams(256);
    let builder = Arc::new(builder);
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let service = TowerToHyperService::new(router);
    let registry = Arc::new(Registry::new(limits.max_connections));
    let (stop, stopping) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        // Past the bound, with every slot busy, connections wait in the
        // kernel's backlog instead of in memory.
        let room = registry.has_room();
        tokio::select! {
            _ = &mut shutdown => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            _ = registry.changed(), if !room => {}
            accepted = listener.accept(), if room => {
                let (tcp, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!("gateway: accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let Some(slot) = registry.admit() else {
                    // Every slot became busy since `has_room`.
                    tracing::debug!(%peer, "gateway: every connection has a request in progress; refusing one");
                    continue;
                };
                let _ = tcp.set_nodelay(true);
                let (builder, service, acceptor, stopping) =
                    (builder.clone(), service.clone(), acceptor.clone(), stopping.clone());
                tasks.spawn(async move {
                    connection(tcp, peer, slot, acceptor, builder, service, limits, stopping).await
                });
            }
        }
    }
    drop(listener);
    tracing::info!(
        connections = registry.len(),
        in_progress = registry.in_progress(),
        "gateway: stopped accepting; finishing the requests in progress"
    );
    let _ = stop.send(true);
    let finished = {
        let all = async { while tasks.join_next().await.is_some() {} };
        tokio::time::timeout(grace, all).await.is_ok()
    };
    if !finished {
        let n = registry.in_progress();
        if n > 0 {
            tracing::warn!("gateway: {n} request(s) still in progress after {grace:?}; closing");
        } else {
            tracing::debug!("gateway: connections still closing after {grace:?}; dropping them");
        }
        tasks.shutdown().await;
    }
}

/// Serves one accepted connection within its deadlines.
#[allow(clippy::too_many_arguments)]
async fn connection(
    tcp: TcpStream,
    peer: std::net::SocketAddr,
    slot: Slot,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    service: TowerToHyperService<axum::Router>,
    limits: ConnLimits,
    mut stopping: watch::Receiver<bool>,
) {
    let Some(acceptor) = acceptor else {
        return serve(
            TokioIo::new(tcp),
            peer,
            slot,
            &builder,
            service,
            limits,
            stopping,
        )
        .await;
    };
    let deadline = tokio::time::Instant::now()
        .checked_add(limits.first_request)
        .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(86_400));
    let tls = tokio::select! {
        r = tokio::time::timeout_at(deadline, acceptor.accept(tcp)) => match r {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => {
                tracing::debug!(%peer, "gateway: TLS handshake failed: {}", crate::tls_words::io_error(&e));
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "gateway: no TLS handshake within {:?}; closing", limits.first_request);
                return;
            }
        },
        _ = slot.conn.evict.notified() => return,
        _ = stopping.wait_for(|s| *s) => return,
    };
    serve(
        TokioIo::new(tls),
        peer,
        slot,
        &builder,
        service,
        limits,
        stopping,
    )
    .await
}

/// HTTP on an established connection until it ends, is closed by a
/// deadline, evicted, or stopped.
async fn serve<I>(
    io: I,
    peer: std::net::SocketAddr,
    slot: Slot,
    builder: &auto::Builder<TokioExecutor>,
    service: TowerToHyperService<axum::Router>,
    limits: ConnLimits,
    mut stopping: watch::Receiver<bool>,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let conn = builder.serve_connection(io, slot.service(service));
    let mut conn = std::pin::pin!(conn);
    // When it was asked to close (gracefully).
    let mut closing: Option<Instant> = None;
    loop {
        let wake = match closing {
            Some(at) if slot.conn.in_progress() == 0 => at + CLOSE_LINGER,
            Some(_) => Instant::now() + Duration::from_millis(100),
            None => match slot.due(limits.first_request, limits.idle) {
                Due::NeverUsed => {
                    tracing::debug!(%peer, "gateway: no request within {:?}; closing", limits.first_request);
                    return;
                }
                Due::Idle => {
                    tracing::debug!(%peer, "gateway: idle for {:?}; closing", limits.idle);
                    conn.as_mut().graceful_shutdown();
                    closing = Some(Instant::now());
                    continue;
                }
                Due::At(at) => at,
            },
        };
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(%peer, "gateway: connection ended: {e}");
                }
                return;
            }
            _ = tokio::time::sleep_until(wake.into()) => {
                if closing.is_some_and(|at| at.elapsed() >= CLOSE_LINGER) && slot.conn.in_progress() == 0 {
                    return;
                }
            }
            // Deadlines to compute again.
            _ = slot.conn.went_idle.notified() => {}
            _ = slot.conn.evict.notified(), if closing.is_none() => {
                // A connection that never sent a request is owed no
                // goodbye: dropped at once, so that evicted silent
                // clients do not linger (and hold file descriptors).
                if !slot.ever_used() {
                    return;
                }
                conn.as_mut().graceful_shutdown();
                closing = Some(Instant::now());
            }
            _ = stopping.wait_for(|s| *s), if closing.is_none() => {
                if !slot.ever_used() {
                    return;
                }
                conn.as_mut().graceful_shutdown();
                closing = Some(Instant::now());
            }
        }
    }
}
