//! A bare HTTP/2 client for sending requests the typed client refuses to
//! build (bad headers, wrong methods), to see how the mock answers them.

use std::sync::Arc;

use apns_provider::mock::MockServer;
use apns_provider::Response;
use bytes::Bytes;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};

pub struct RawConn {
    send: h2::client::SendRequest<Bytes>,
    authority: String,
}

/// A TLS connection to the mock (ALPN h2), trusting its CA, that has sent
/// nothing yet.
pub async fn tls_to(mock: &MockServer) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(mock.ca_pem().unwrap().as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = tokio::net::TcpStream::connect(mock.local_addr())
        .await
        .unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await
        .unwrap()
}

impl RawConn {
    pub async fn open(mock: &MockServer) -> RawConn {
        let tls = tls_to(mock).await;
        let (send, conn) = h2::client::handshake(tls).await.unwrap();
        tokio::spawn(conn);
        RawConn {
            send,
            authority: mock.local_addr().to_string(),
        }
    }

    pub async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Response {
        let (parts, buf) = self.exchange(method, path, headers, body).await;
        push_response(&parts, &buf)
    }

    /// Like [`send`](RawConn::send), reading what answers on the broadcast
    /// routes carry (`apns-request-id`, `apns-channel-id`).
    pub async fn send_api(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Response {
        let (parts, buf) = self.exchange(method, path, headers, body).await;
        push_response(&parts, &buf).with_broadcast_parts(
            header(&parts, "apns-request-id"),
            header(&parts, "apns-channel-id"),
            &buf,
        )
    }

    async fn exchange(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (http::response::Parts, Vec<u8>) {
        let mut req = http::Request::builder()
            .method(method)
            .uri(format!("https://{}{}", self.authority, path));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(()).unwrap();
        let mut send = self.send.clone().ready().await.unwrap();
        let (resp, mut stream) = send.send_request(req, body.is_empty()).unwrap();
        if !body.is_empty() {
            stream
                .send_data(Bytes::copy_from_slice(body), true)
                .unwrap();
        }
        let resp = resp.await.unwrap();
        let (parts, mut body) = resp.into_parts();
        let mut buf = Vec::new();
        while let Some(chunk) = body.data().await {
            let chunk = chunk.unwrap();
            let _ = body.flow_control().release_capacity(chunk.len());
            buf.extend_from_slice(&chunk);
        }
        (parts, buf)
    }
}

fn push_response(parts: &http::response::Parts, body: &[u8]) -> Response {
    Response::from_parts(
        parts.status.as_u16(),
        header(parts, "apns-id"),
        header(parts, "apns-unique-id"),
        body,
    )
}

fn header(parts: &http::response::Parts, name: &str) -> Option<String> {
    parts
        .headers
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
}
