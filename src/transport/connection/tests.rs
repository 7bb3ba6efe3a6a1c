//! Unit tests of the connection: GOAWAY payloads.

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
    assert_eq!(
        describe_goaway(&g),
        "GOAWAY NO_ERROR from the server, reason Shutdown"
    );
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
