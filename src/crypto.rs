//! The crypto provider of every TLS configuration in the crate: exactly
//! one, `ring`, chosen explicitly so that a second provider compiled in by
//! another crate can never make rustls panic or pick a different one.

use std::sync::Arc;

/// rustls on `ring`.
pub(crate) fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}
