//! The stages of a connection attempt, so that a timeout names the one it
//! was stuck in.

use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use crate::error::Error;

/// Where a connection attempt is: a timeout that fires while it is stuck
/// (the request's deadline, shorter than the connection's own limits)
/// names that stage instead of "waiting for a free stream".
#[derive(Debug, Default)]
pub(crate) struct Stage(AtomicU8);

/// The stages of a connection attempt, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// TCP to APNs (or to the `--resolve` address).
    Tcp = 0,
    /// TCP to the proxy.
    ProxyTcp = 1,
    /// The proxy's answer to CONNECT.
    ProxyConnect = 2,
    /// The TLS handshake with APNs.
    Tls = 3,
    /// The HTTP/2 handshake, up to the server's first SETTINGS.
    Settings = 4,
}

impl Stage {
    pub(crate) fn set(&self, phase: Phase) {
        self.0.store(phase as u8, Ordering::Release);
    }

    pub(crate) fn get(&self) -> Phase {
        match self.0.load(Ordering::Acquire) {
            1 => Phase::ProxyTcp,
            2 => Phase::ProxyConnect,
            3 => Phase::Tls,
            4 => Phase::Settings,
            _ => Phase::Tcp,
        }
    }

    /// The error of a deadline that passed in this stage: which stage,
    /// and for the proxy's stages which proxy (never its credentials).
    pub(crate) fn timed_out(
        &self,
        after: Duration,
        proxy: Option<&super::Proxy>,
        target: &str,
    ) -> Error {
        let timeout = |what| Error::Timeout {
            what,
            after,
            may_have_been_delivered: false,
        };
        match (self.get(), proxy) {
            (Phase::ProxyTcp, Some(p)) => Error::Proxy {
                proxy: p.to_string(),
                status: None,
                message: format!(
                    "connect (TCP) to the proxy at {p} timed out after {after:?}"
                ),
            },
            (Phase::ProxyConnect, Some(p)) => Error::Proxy {
                proxy: p.to_string(),
                status: None,
                message: format!(
                    "CONNECT through the proxy at {p} timed out after {after:?}: no answer to CONNECT {target}"
                ),
            },
            (Phase::Tcp | Phase::ProxyTcp | Phase::ProxyConnect, _) => timeout(CONNECT_TCP),
            (Phase::Tls, _) => timeout(TLS_HANDSHAKE),
            (Phase::Settings, _) => timeout(FIRST_SETTINGS),
        }
    }
}

/// The stage names of [`Error::Timeout`].
pub(crate) const CONNECT_TCP: &str = "connect (TCP)";
pub(crate) const TLS_HANDSHAKE: &str = "TLS handshake";
pub(crate) const FIRST_SETTINGS: &str =
    "HTTP/2 handshake (waiting for the server's first SETTINGS)";
