//! A loopback relay that stands for the mock's fixed port.
//!
//! Why a relay: `apns mock` makes a new CA at every start, and `apns serve`
//! and `apns worker` read `--ca-file` once. So the soak starts every mock
//! it will need up front (their CAs in one bundle) and points the relay at
//! one after the other; a switch cuts every relayed connection, as a
//! restart of the mock on that port would.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A TCP relay on a fixed loopback port to one backend at a time.
pub struct Relay {
    pub port: u16,
    target: tokio::sync::watch::Sender<(u64, SocketAddr)>,
    accept: tokio::task::JoinHandle<()>,
    /// Per backend: connections relayed to it, and bytes the clients sent
    /// it (requests reached a black hole if that grows past the handshakes).
    pub traffic: Arc<Mutex<HashMap<SocketAddr, (u64, u64)>>>,
    /// Connections cut by a switch.
    pub cut: Arc<AtomicU64>,
}

impl Relay {
    pub async fn start(backend: SocketAddr) -> Relay {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (target, rx) = tokio::sync::watch::channel((0u64, backend));
        let traffic: Arc<Mutex<HashMap<SocketAddr, (u64, u64)>>> = Arc::default();
        let cut = Arc::new(AtomicU64::new(0));
        let (traffic2, cut2) = (traffic.clone(), cut.clone());
        let accept = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let mut rx = rx.clone();
                let (traffic, cut) = (traffic2.clone(), cut2.clone());
                tokio::spawn(async move {
                    let (generation, addr) = *rx.borrow_and_update();
                    let connect = TcpStream::connect(addr);
                    let Ok(Ok(outbound)) =
                        tokio::time::timeout(Duration::from_secs(5), connect).await
                    else {
                        return;
                    };
                    traffic.lock().unwrap().entry(addr).or_default().0 += 1;
                    let (mut in_read, mut in_write) = inbound.into_split();
                    let (mut out_read, mut out_write) = outbound.into_split();
                    let up = async {
                        let mut buf = vec![0u8; 16 * 1024];
                        while let Ok(n @ 1..) = in_read.read(&mut buf).await {
                            traffic.lock().unwrap().entry(addr).or_default().1 += n as u64;
                            if out_write.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                    };
                    let down = tokio::io::copy(&mut out_read, &mut in_write);
                    tokio::select! {
                        _ = up => {}
                        _ = down => {}
                        _ = async {
                            while rx.changed().await.is_ok() {
                                if rx.borrow().0 != generation {
                                    break;
                                }
                            }
                        } => {
                            cut.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        Relay {
            port,
            target,
            accept,
            traffic,
            cut,
        }
    }

    /// Points new connections at `backend` and cuts every open one.
    pub fn switch(&self, backend: SocketAddr) {
        self.target.send_modify(|(generation, addr)| {
            *generation += 1;
            *addr = backend;
        });
    }

    /// The backend new connections go to.
    pub fn backend(&self) -> SocketAddr {
        self.target.borrow().1
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.accept.abort();
        // Cuts the relayed connections too.
        self.target.send_modify(|(generation, _)| *generation += 1);
    }
}
