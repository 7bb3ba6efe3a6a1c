//! What the server sent, as the read side of the wire shim (`shim.rs`)
//! records it for the connection: when bytes last arrived (liveness) and
//! the server's GOAWAY with APNs' JSON reason. A leaf: the shim writes
//! here, the connection reads.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// What the server sent, as the read side of the shim sees it: when it
/// last sent anything (for the liveness check), and its GOAWAY (h2 does not
/// expose a GOAWAY's debug data, where APNs puts its JSON reason).
#[derive(Debug)]
pub(crate) struct Inbound {
    born: Instant,
    last_ms: AtomicU64,
    /// Whether the server sent anything at all (its SETTINGS come first).
    heard: AtomicBool,
    goaway: Mutex<Option<GoAway>>,
}

/// A GOAWAY frame from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GoAway {
    pub last_stream_id: u32,
    pub error_code: u32,
    /// The `reason` of APNs' JSON debug data, if any.
    pub reason: Option<String>,
}

impl GoAway {
    /// Parses a GOAWAY frame's payload: last-stream-id, error code, debug
    /// data (APNs' `{"reason":"..."}`).
    pub(crate) fn parse(payload: &[u8]) -> Option<GoAway> {
        let last = payload.get(0..4)?;
        let code = payload.get(4..8)?;
        #[derive(serde::Deserialize)]
        struct Debug {
            reason: Option<String>,
        }
        let reason = serde_json::from_slice::<Debug>(payload.get(8..).unwrap_or_default())
            .ok()
            .and_then(|d| d.reason)
            .map(|r| r.chars().take(64).collect());
        Some(GoAway {
            last_stream_id: u32::from_be_bytes([last[0], last[1], last[2], last[3]]) & 0x7fff_ffff,
            error_code: u32::from_be_bytes([code[0], code[1], code[2], code[3]]),
            reason,
        })
    }
}

impl Inbound {
    pub(crate) fn new(born: Instant) -> Self {
        Inbound {
            born,
            last_ms: AtomicU64::new(0),
            heard: AtomicBool::new(false),
            goaway: Mutex::new(None),
        }
    }

    /// Records that bytes arrived now.
    pub(crate) fn stamp(&self) {
        let ms = self.born.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
        self.heard.store(true, Ordering::Relaxed);
    }

    /// Whether the server sent anything since the TLS handshake.
    pub(crate) fn heard(&self) -> bool {
        self.heard.load(Ordering::Relaxed)
    }

    /// Records a GOAWAY from the server (the last one wins).
    pub(crate) fn goaway(&self, goaway: GoAway) {
        *self.goaway.lock().unwrap_or_else(|e| e.into_inner()) = Some(goaway);
    }

    pub(crate) fn received_goaway(&self) -> Option<GoAway> {
        self.goaway
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn silent_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.born.elapsed().saturating_sub(last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn goaway_payloads_give_their_ids_code_and_apns_reason() {
        let mut payload = vec![0x80, 0, 0, 7, 0, 0, 0, 0];
        payload.extend_from_slice(br#"{"reason":"Shutdown"}"#);
        let g = GoAway::parse(&payload).unwrap();
        assert_eq!(g.last_stream_id, 7, "the reserved bit is ignored");
        assert_eq!(g.error_code, 0);
        assert_eq!(g.reason.as_deref(), Some("Shutdown"));
        assert_eq!(GoAway::parse(&payload[..8]).unwrap().reason, None);
        assert_eq!(GoAway::parse(&payload[..7]), None);
    }

    proptest! {
        #[test]
        fn any_goaway_payload_parses_or_not_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Some(g) = GoAway::parse(&bytes) {
                prop_assert!(g.reason.map_or(0, |r| r.chars().count()) <= 64);
            }
        }
    }
}
