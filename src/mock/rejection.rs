//! The mock's error answer: the HTTP status and the APNs reason a handler
//! answers with (as Pushy's `MockApnsServer` has its rejection type). A
//! leaf: every handler shares it, so it imports no other mock file.

use http::StatusCode;

use crate::response::Reason;

/// An error answer: status, reason and, on 410, the timestamp.
pub(crate) struct Rejection {
    pub status: StatusCode,
    pub reason: Reason,
    pub timestamp_ms: Option<u64>,
}

/// The answer APNs gives with `reason`.
pub(crate) fn reject(reason: Reason) -> Rejection {
    Rejection {
        status: StatusCode::from_u16(reason.status()).unwrap_or(StatusCode::BAD_REQUEST),
        reason,
        timestamp_ms: None,
    }
}
