//! The mock server's TLS identity: a CA generated at start (written out so
//! clients can trust it explicitly) or PEM files given by the user.

use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::{Error, Result};
use crate::transport::tls;

/// A server certificate chain and key, and the CA PEM clients should trust
/// (when the mock generated it).
pub(crate) struct Identity {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    pub ca_pem: Option<String>,
}

fn rcgen_err(e: rcgen::Error) -> Error {
    Error::Config(format!("cannot generate the mock's certificates: {e}"))
}

/// Generates a CA and a server certificate for `names` (DNS names or IP
/// addresses; `localhost` and `127.0.0.1` are always included).
pub(crate) fn generate(names: &[String]) -> Result<Identity> {
    let ca_key = KeyPair::generate().map_err(rcgen_err)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(rcgen_err)?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "apns-provider mock CA");
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = ca_params.self_signed(&ca_key).map_err(rcgen_err)?;

    let mut all = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    for n in names {
        if !all.contains(n) {
            all.push(n.clone());
        }
    }
    let server_key = KeyPair::generate().map_err(rcgen_err)?;
    let mut params = CertificateParams::new(all).map_err(|e| {
        Error::Config(format!(
            "invalid server name for the mock's certificate: {e}"
        ))
    })?;
    params
        .distinguished_name
        .push(DnType::CommonName, "apns-provider mock server");
    let cert = params
        .signed_by(&server_key, &ca, &ca_key)
        .map_err(rcgen_err)?;
    Ok(Identity {
        chain: vec![cert.der().clone(), ca.der().clone()],
        key: PrivateKeyDer::try_from(server_key.serialize_der())
            .map_err(|e| Error::Config(format!("mock key: {e}")))?,
        ca_pem: Some(ca.pem()),
    })
}

/// Loads a certificate chain and key from PEM.
pub(crate) fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<Identity> {
    let chain = tls::certificates_from_pem(cert_pem, "mock server certificate")?;
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| Error::Config(format!("mock server key: {e}")))?;
    Ok(Identity {
        chain,
        key,
        ca_pem: None,
    })
}

/// The server's TLS configuration. With `client_ca`, clients may present a
/// certificate, which must be signed by it (certificate mode); clients
/// without one use token authentication.
pub(crate) fn server_config(
    identity: &Identity,
    client_ca: Option<&[u8]>,
) -> Result<Arc<ServerConfig>> {
    let builder = ServerConfig::builder_with_provider(crate::crypto::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| {
            Error::Config(format!(
                "TLS setup failed: {}",
                crate::tls_words::rustls_error(&e)
            ))
        })?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(pem) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in tls::certificates_from_pem(pem, "client CA")? {
                roots.add(cert).map_err(|e| {
                    Error::Config(format!(
                        "client CA unusable: {}",
                        crate::tls_words::rustls_error(&e)
                    ))
                })?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                crate::crypto::provider(),
            )
            .allow_unauthenticated()
            .build()
            .map_err(|e| Error::Config(format!("client CA unusable: {e}")))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(identity.chain.clone(), identity.key.clone_key())
        .map_err(|e| {
            Error::Config(format!(
                "mock TLS identity rejected: {}",
                crate::tls_words::rustls_error(&e)
            ))
        })?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}
