//! Unit tests of the connection: how a GOAWAY is described.

use super::*;

#[test]
fn a_goaway_is_described_with_its_code_and_apns_reason() {
    let mut payload = vec![0x80, 0, 0, 7, 0, 0, 0, 0];
    payload.extend_from_slice(br#"{"reason":"Shutdown"}"#);
    let g = GoAway::parse(&payload).unwrap();
    assert_eq!(
        describe_goaway(&g),
        "GOAWAY NO_ERROR from the server, reason Shutdown"
    );
}
