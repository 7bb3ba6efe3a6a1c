//! One HTTP/2 connection to APNs: TCP, then TLS with ALPN `h2`, then `h2`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio::time::{timeout, timeout_at, Instant};

use super::Endpoint;
use crate::error::{Error, Result};
use crate::response::Response;

/// Timeouts for the steps of a connection and a request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timeouts {
    pub connect: Duration,
    pub tls: Duration,
    pub request: Duration,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A live HTTP/2 connection. Cheap to share: requests clone the `h2` handle.
#[derive(Debug)]
pub(crate) struct Connection {
    id: u64,
    send: h2::client::SendRequest<Bytes>,
    state: Arc<ConnState>,
}

#[derive(Debug, Default)]
struct ConnState {
    closed: AtomicBool,
    // Why the connection closed, including a GOAWAY's JSON reason.
    close_reason: Mutex<Option<String>>,
}

impl Connection {
    /// Dials `endpoint` and completes the TLS and HTTP/2 handshakes.
    pub(crate) async fn connect(
        endpoint: &Endpoint,
        tls: Arc<ClientConfig>,
        timeouts: &Timeouts,
    ) -> Result<Connection> {
        let authority = endpoint.authority();
        // Resolve on every connect, so a new connection follows DNS changes.
        let tcp = timeout(
            timeouts.connect,
            TcpStream::connect((endpoint.host(), endpoint.port())),
        )
        .await
        .map_err(|_| Error::Timeout {
            what: "connect",
            after: timeouts.connect,
            may_have_been_delivered: false,
        })?
        .map_err(|source| Error::Connect {
            endpoint: authority.clone(),
            source,
        })?;
        // Without TCP_NODELAY, small HTTP/2 frames wait ~40 ms on delayed ACKs.
        let _ = tcp.set_nodelay(true);

        let server_name = ServerName::try_from(endpoint.host().to_string()).map_err(|_| {
            Error::Config(format!(
                "{:?} is not a valid TLS server name",
                endpoint.host()
            ))
        })?;
        let tls_stream = timeout(
            timeouts.tls,
            tokio_rustls::TlsConnector::from(tls).connect(server_name, tcp),
        )
        .await
        .map_err(|_| Error::Timeout {
            what: "TLS handshake",
            after: timeouts.tls,
            may_have_been_delivered: false,
        })?
        .map_err(|e| Error::Tls {
            endpoint: authority.clone(),
            message: describe_tls_error(&e),
        })?;
        if tls_stream.get_ref().1.alpn_protocol() != Some(b"h2") {
            return Err(Error::Tls {
                endpoint: authority,
                message: "the server did not agree on HTTP/2 (ALPN h2); APNs requires HTTP/2"
                    .into(),
            });
        }

        let (send, connection) = timeout(
            timeouts.tls,
            h2::client::Builder::new()
                // Apple allows one stream until the first valid token; h2
                // would otherwise assume unlimited streams until SETTINGS.
                .initial_max_send_streams(1)
                .enable_push(false)
                .handshake::<_, Bytes>(tls_stream),
        )
        .await
        .map_err(|_| Error::Timeout {
            what: "HTTP/2 handshake",
            after: timeouts.tls,
            may_have_been_delivered: false,
        })?
        .map_err(|e| Error::Protocol(format!("HTTP/2 handshake failed: {e}")))?;

        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let state = Arc::new(ConnState::default());
        let driver_state = state.clone();
        tokio::spawn(async move {
            let result = connection.await;
            let reason = match &result {
                Ok(()) => "closed by the server".to_string(),
                Err(e) => describe_h2_error(e),
            };
            tracing::debug!(connection = id, %reason, "APNs connection closed");
            *driver_state
                .close_reason
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = Some(reason);
            driver_state.closed.store(true, Ordering::Release);
        });
        tracing::debug!(connection = id, endpoint = %authority, "APNs connection established");
        Ok(Connection { id, send, state })
    }

    /// A process-unique id, for logs.
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// False once the connection has closed or failed.
    pub(crate) fn is_open(&self) -> bool {
        !self.state.closed.load(Ordering::Acquire)
    }

    fn close_reason(&self) -> Option<String> {
        self.state
            .close_reason
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Sends one request and reads the whole answer, before `deadline`.
    pub(crate) async fn send(
        &self,
        request: http::Request<()>,
        body: Bytes,
        deadline: Instant,
        request_timeout: Duration,
    ) -> Result<Response> {
        let timed_out = |delivered| Error::Timeout {
            what: "request",
            after: request_timeout,
            may_have_been_delivered: delivered,
        };
        // Waiting for a free stream: nothing has been sent yet.
        let mut sender = timeout_at(deadline, self.send.clone().ready())
            .await
            .map_err(|_| timed_out(false))?
            .map_err(|e| self.stream_error(&e, false))?;
        let (response, mut stream) = sender
            .send_request(request, body.is_empty())
            .map_err(|e| self.stream_error(&e, false))?;
        if !body.is_empty() {
            stream
                .send_data(body, true)
                .map_err(|e| self.stream_error(&e, true))?;
        }
        timeout_at(deadline, async {
            let response = response.await.map_err(|e| self.stream_error(&e, true))?;
            let (parts, mut body) = response.into_parts();
            let mut buf = BytesMut::new();
            while let Some(chunk) = body.data().await {
                let chunk = chunk.map_err(|e| self.stream_error(&e, true))?;
                // Release flow-control capacity, or error bodies slowly close
                // the connection window.
                let _ = body.flow_control().release_capacity(chunk.len());
                if buf.len() < 64 * 1024 {
                    buf.extend_from_slice(&chunk);
                }
            }
            let header = |name: &str| {
                parts
                    .headers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            };
            Ok(Response::from_parts(
                parts.status.as_u16(),
                header("apns-id"),
                header("apns-unique-id"),
                &buf,
            ))
        })
        .await
        .map_err(|_| timed_out(true))?
    }

    /// Maps an `h2` error on one stream, deciding whether the request may
    /// have been processed.
    fn stream_error(&self, e: &h2::Error, sent: bool) -> Error {
        let refused = e.reason() == Some(h2::Reason::REFUSED_STREAM);
        // h2 fails streams above a GOAWAY's last-stream-id with the GOAWAY
        // itself: the server never processed them.
        let above_goaway = e.is_go_away() && e.is_remote();
        let mut message = describe_h2_error(e);
        if !e.is_reset() {
            if let Some(reason) = self.close_reason().filter(|r| *r != message) {
                message = format!("{message}; connection: {reason}");
            }
        }
        Error::Connection {
            message,
            may_have_been_delivered: sent && !refused && !above_goaway,
        }
    }
}

/// A one-line description of an `h2` error, with a GOAWAY's JSON reason.
pub(crate) fn describe_h2_error(e: &h2::Error) -> String {
    if e.is_go_away() {
        let reason = e.reason().map(|r| format!("{r:?}")).unwrap_or_default();
        match goaway_reason(e) {
            Some(apns) => format!("GOAWAY {reason} from server, reason {apns}"),
            None => format!("GOAWAY {reason} from server"),
        }
    } else if e.reason() == Some(h2::Reason::REFUSED_STREAM) {
        "stream refused by the server (REFUSED_STREAM); not processed".into()
    } else if let Some(io) = e.get_io() {
        format!("I/O error: {io}")
    } else {
        e.to_string()
    }
}

/// The `reason` of the JSON debug data APNs puts in a GOAWAY.
fn goaway_reason(e: &h2::Error) -> Option<String> {
    // h2 does not expose the debug data; its Display prints it as escaped
    // bytes, e.g. `(b"{\"reason\":\"Shutdown\"}")`.
    let text = e.to_string().replace('\\', "");
    let start = text.find("\"reason\":\"")? + "\"reason\":\"".len();
    let end = text[start..].find('"')?;
    Some(text[start..start + end].to_string())
}

fn describe_tls_error(e: &std::io::Error) -> String {
    let inner = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match inner {
        Some(rustls::Error::InvalidCertificate(cert)) => format!(
            "the server's certificate is not trusted ({cert:?}); for a mock or proxy, pass its CA with --ca-file"
        ),
        Some(rustls::Error::AlertReceived(rustls::AlertDescription::NoApplicationProtocol)) => {
            "the server does not offer HTTP/2 (ALPN h2); APNs requires HTTP/2".into()
        }
        Some(other) => other.to_string(),
        None => e.to_string(),
    }
}
