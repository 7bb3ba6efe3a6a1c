//! Header sizes: a broadcast channel id is at most 256 bytes (a typed
//! error, before anything is sent), and `apns mock` refuses request header
//! lists over 16 KiB as HTTP/2 servers do (431 and the stream reset; a far
//! larger block ends the connection), over real TLS and HTTP/2.

use apns_provider::broadcast::{ChannelId, MAX_CHANNEL_ID_LEN};
use apns_provider::mock::MAX_HEADER_LIST_SIZE;
use apns_provider::Error;
use bytes::Bytes;

use crate::support::raw::tls_to;
use crate::support::*;

#[test]
fn a_channel_id_over_256_bytes_is_a_typed_error_that_never_shows_it() {
    assert!(ChannelId::new("A".repeat(MAX_CHANNEL_ID_LEN)).is_ok());
    for len in [MAX_CHANNEL_ID_LEN + 4, 900 * 1024] {
        let id = "QUFB".repeat(len / 4);
        let e = ChannelId::new(&id).unwrap_err();
        assert!(
            matches!(e, Error::ChannelIdTooLong { length, limit: 256 } if length == id.len()),
            "{e:?}"
        );
        assert!(e.is_invalid_input());
        assert!(!e.to_string().contains("QUFB"), "{e}");
    }
}

/// What the mock did with one request: its status, or the stream's or the
/// connection's error.
async fn ask(
    send: &h2::client::SendRequest<Bytes>,
    authority: &str,
    headers: &[(&str, String)],
) -> Result<u16, h2::Error> {
    let mut req = http::Request::builder()
        .method("GET")
        .uri(format!("https://{authority}/1/apps/{BUNDLE}/channels"));
    for (k, v) in headers {
        req = req.header(*k, v.as_str());
    }
    let mut send = send.clone().ready().await?;
    let (resp, _) = send.send_request(req.body(()).unwrap(), true)?;
    Ok(resp.await?.status().as_u16())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mock_refuses_header_lists_over_16_kib_as_a_server_does() {
    let key = new_key();
    let mock = mock_for(&key).start().await.unwrap();
    let authority = mock.local_addr().to_string();
    let signer = apns_provider::TokenSigner::new(
        key.clone(),
        apns_provider::KeyId::new(KEY_ID).unwrap(),
        apns_provider::TeamId::new(TEAM_ID).unwrap(),
    );
    let auth = format!(
        "bearer {}",
        signer.sign_jwt(apns_provider::clock::now_unix_seconds())
    );
    let (send, conn) = h2::client::handshake(tls_to(&mock).await).await.unwrap();
    let driver = tokio::spawn(conn);
    let with_id = |id: String| vec![("authorization", auth.clone()), ("apns-channel-id", id)];

    // A normal id: an answer of the API (no such channel).
    let small = ask(&send, &authority, &with_id("dHN0LXNyY2gtY2hubA==".into())).await;
    assert!(matches!(small, Ok(s) if s != 431), "{small:?}");

    // Just over the limit: 431, or the stream refused; the connection lives.
    let over = "QUFB".repeat(MAX_HEADER_LIST_SIZE as usize / 4 + 16);
    match ask(&send, &authority, &with_id(over)).await {
        Ok(status) => assert_eq!(status, 431),
        Err(e) => assert!(e.is_reset(), "{e:?}"),
    }
    let again = ask(&send, &authority, &with_id("dHN0LXNyY2gtY2hubA==".into())).await;
    assert!(matches!(again, Ok(s) if s != 431), "{again:?}");

    // 900 KB: refused too (431 or reset), or the connection ended; never
    // an answer of the API.
    let huge = "QUFB".repeat(900 * 1024 / 4);
    let r = ask(&send, &authority, &with_id(huge)).await;
    assert!(
        matches!(r, Ok(431)) || matches!(&r, Err(e) if e.is_reset() || e.is_go_away() || e.is_io()),
        "{r:?}"
    );
    driver.abort();

    // The mock still serves new connections.
    let (send, conn) = h2::client::handshake(tls_to(&mock).await).await.unwrap();
    let driver = tokio::spawn(conn);
    let fresh = ask(&send, &authority, &with_id("dHN0LXNyY2gtY2hubA==".into())).await;
    assert!(matches!(fresh, Ok(s) if s != 431), "{fresh:?}");
    driver.abort();
}
