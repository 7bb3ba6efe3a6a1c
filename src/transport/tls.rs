//! TLS client configuration: rustls on the `ring` provider, `webpki-roots`
//! trust plus optional extra roots, ALPN `h2`.

use std::sync::Arc;

use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::{CredentialProblem, Error, Result, TlsProblem};

/// Parses every certificate in a PEM bundle, failing if there is none.
pub(crate) fn certificates_from_pem(
    pem: &[u8],
    what: &str,
) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::Config(format!("{what}: damaged PEM ({e})")))?;
    if certs.is_empty() {
        return Err(Error::Config(format!(
            "{what}: no -----BEGIN CERTIFICATE----- block found"
        )));
    }
    Ok(certs)
}

/// Builds the client TLS configuration.
///
/// `webpki_roots`: trust the Mozilla root store (which holds the USERTrust
/// root Apple's servers chain to). `extra_roots`: more trust anchors, such as
/// a mock server's CA or a corporate proxy's.
pub(crate) fn client_config(
    webpki_roots: bool,
    extra_roots: &[CertificateDer<'static>],
) -> Result<Arc<ClientConfig>> {
    client_config_with_cert(webpki_roots, extra_roots, None)
}

/// A certificate chain (leaf first) and its private key, presented for TLS
/// client authentication.
pub(crate) type Identity = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

/// Like [`client_config`], presenting `identity` for TLS client
/// authentication.
pub(crate) fn client_config_with_cert(
    webpki_roots: bool,
    extra_roots: &[CertificateDer<'static>],
    identity: Option<Identity>,
) -> Result<Arc<ClientConfig>> {
    let mut roots = RootCertStore::empty();
    if webpki_roots {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    for cert in extra_roots {
        roots.add(cert.clone()).map_err(|e| {
            Error::Config(format!(
                "cannot use a CA certificate as a trust anchor: {}",
                crate::tls_words::rustls_error(&e)
            ))
        })?;
    }
    if roots.is_empty() {
        return Err(Error::Config(
            "no trusted root certificates: keep the built-in roots or add a CA file".into(),
        ));
    }
    let builder = ClientConfig::builder_with_provider(crate::crypto::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| {
            Error::Config(format!(
                "TLS setup failed: {}",
                crate::tls_words::rustls_error(&e)
            ))
        })?
        .with_root_certificates(roots);
    let mut config = match identity {
        None => builder.with_no_client_auth(),
        Some((chain, key)) => builder.with_client_auth_cert(chain, key).map_err(|e| {
            Error::credentials(
                CredentialProblem::Malformed,
                format!(
                    "the client certificate cannot be used: {}",
                    crate::tls_words::rustls_error(&e)
                ),
            )
        })?,
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// What a failed TLS handshake means, in one line, for the client's errors
/// and for the doctor (one explainer for both).
pub(crate) fn explain(e: &std::io::Error) -> (TlsProblem, String) {
    let inner = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match inner {
        Some(rustls::Error::InvalidCertificate(cert)) => {
            use rustls::CertificateError::*;
            let problem = match cert {
                Expired | ExpiredContext { .. } | NotValidYet | NotValidYetContext { .. } => {
                    TlsProblem::CertificateDates
                }
                NotValidForName | NotValidForNameContext { .. } => TlsProblem::WrongHostName,
                _ => TlsProblem::UntrustedCertificate,
            };
            let what = match problem {
                TlsProblem::CertificateDates => {
                    "is outside its validity dates (or this machine's clock is wrong)"
                }
                TlsProblem::WrongHostName => "is for another host name",
                _ => "is not signed by a trusted root",
            };
            (
                problem,
                format!(
                    "the server's certificate {what} ({})",
                    crate::tls_words::certificate_error(cert)
                ),
            )
        }
        Some(rustls::Error::AlertReceived(rustls::AlertDescription::NoApplicationProtocol)) => (
            TlsProblem::NoHttp2,
            "the server does not offer HTTP/2 (ALPN h2); APNs requires HTTP/2".into(),
        ),
        _ => (TlsProblem::Other, crate::tls_words::io_error(e)),
    }
}
