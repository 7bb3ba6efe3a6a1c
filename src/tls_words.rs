//! rustls' and webpki's errors in words. Their `Display` prints many
//! variants with `Debug` (`Other(OtherError(UnsupportedCertVersion))`),
//! which no message of this crate may show: every TLS error in a message
//! goes through [`rustls_error`] or [`io_error`].

use rustls::{AlertDescription, CertificateError, Error as TlsError};

/// A failed TLS operation (handshake, read, write) in words: the rustls
/// error inside it if there is one, else the I/O error.
pub(crate) fn io_error(e: &std::io::Error) -> String {
    match e.get_ref().and_then(|i| i.downcast_ref::<TlsError>()) {
        Some(tls) => rustls_error(tls),
        None => e.to_string(),
    }
}

/// A rustls error in words.
pub(crate) fn rustls_error(e: &TlsError) -> String {
    match e {
        TlsError::InvalidCertificate(c) => format!("invalid certificate: {}", certificate_error(c)),
        TlsError::AlertReceived(alert) => alert_received(*alert),
        TlsError::NoCertificatesPresented => "the peer sent no certificate".into(),
        TlsError::NoApplicationProtocol => {
            "the peer does not offer HTTP/2 (ALPN h2); APNs requires HTTP/2".into()
        }
        TlsError::InconsistentKeys(_) => "the private key does not match the certificate".into(),
        TlsError::PeerIncompatible(why) => {
            format!(
                "the peer's TLS is incompatible: {}",
                words(&format!("{why:?}"))
            )
        }
        TlsError::PeerMisbehaved(why) => {
            format!(
                "the peer broke the TLS protocol: {}",
                words(&format!("{why:?}"))
            )
        }
        TlsError::InvalidMessage(_) | TlsError::InappropriateMessage { .. } => {
            "the peer sent a message TLS does not allow here (is it a TLS server?)".into()
        }
        TlsError::InappropriateHandshakeMessage { .. } => {
            "the peer sent an unexpected TLS handshake message".into()
        }
        TlsError::DecryptError => "a TLS record could not be decrypted".into(),
        TlsError::HandshakeNotComplete => "the TLS handshake did not complete".into(),
        TlsError::General(text) => text.clone(),
        TlsError::Other(other) => other_error(&*other.0),
        // The rest are rare, and rustls words them itself without `Debug`.
        other => {
            let text = other.to_string();
            if text.contains('(') || text.contains('{') {
                words(&text)
            } else {
                text
            }
        }
    }
}

/// A certificate rustls or webpki refused, in words.
pub(crate) fn certificate_error(e: &CertificateError) -> String {
    use CertificateError::*;
    match e {
        BadEncoding => "the certificate is not valid DER".into(),
        Expired | ExpiredContext { .. } => {
            "the certificate has expired (or this machine's clock is wrong)".into()
        }
        NotValidYet | NotValidYetContext { .. } => {
            "the certificate is not valid yet (or this machine's clock is wrong)".into()
        }
        Revoked => "the certificate is revoked".into(),
        UnhandledCriticalExtension => "the certificate has a critical extension TLS does not know".into(),
        UnknownIssuer => "the certificate is not signed by a trusted CA".into(),
        BadSignature => "the certificate's signature is wrong".into(),
        NotValidForName | NotValidForNameContext { .. } => {
            // rustls words the name context itself, with the names.
            e.to_string()
        }
        InvalidPurpose | InvalidPurposeContext { .. } => {
            "the certificate's extended key usage does not allow this use (a client certificate needs clientAuth)".into()
        }
        ApplicationVerificationFailure => "the certificate was refused by the verifier".into(),
        Other(other) => other_error(&*other.0),
        other => words(&format!("{other:?}")),
    }
}

/// An error rustls wraps as `Other`: most often webpki's.
fn other_error(e: &(dyn std::error::Error + 'static)) -> String {
    match e.downcast_ref::<webpki::Error>() {
        Some(w) => webpki_error(w),
        None => e.to_string(),
    }
}

/// A webpki error (whose `Display` is its `Debug`) in words.
pub(crate) fn webpki_error(e: &webpki::Error) -> String {
    use webpki::Error::*;
    match e {
        UnsupportedCertVersion => VERSION_1.into(),
        BadDer | BadDerTime | TrailingData(_) => "the certificate is not valid DER".into(),
        CaUsedAsEndEntity => "a CA certificate is used as the end-entity (leaf) certificate".into(),
        EndEntityUsedAsCa => {
            "a leaf certificate is used as a CA (it lacks basicConstraints CA:TRUE)".into()
        }
        CertExpired { .. } => "the certificate has expired".into(),
        CertNotValidYet { .. } => "the certificate is not valid yet".into(),
        UnknownIssuer => "the certificate is not signed by a trusted CA".into(),
        InvalidSignatureForPublicKey => "the certificate's signature does not verify".into(),
        UnsupportedCriticalExtension => {
            "the certificate has a critical extension webpki does not know".into()
        }
        MalformedExtensions | ExtensionValueInvalid => {
            "the certificate's extensions are damaged".into()
        }
        other => words(&format!("{other:?}")),
    }
}

/// What a version 1 certificate gets, wherever rustls meets it.
pub(crate) const VERSION_1: &str = "the certificate is X.509 version 1, which rustls/webpki refuses (only version 3 is accepted; Apple's certificates are version 3). `openssl x509 -req` writes version 1 unless it is given extensions: add `-extfile FILE`, FILE holding the line `extendedKeyUsage=clientAuth`; or make it in one step with `openssl req -x509 -CA ca.pem -CAkey ca.key -addext basicConstraints=CA:FALSE -addext extendedKeyUsage=clientAuth ...`";

/// The TLS alert a peer sent, in words.
fn alert_received(alert: AlertDescription) -> String {
    use AlertDescription::*;
    let what = match alert {
        BadCertificate => "the server refused the client certificate (bad_certificate)",
        UnsupportedCertificate => {
            "the server refused the client certificate (unsupported_certificate)"
        }
        CertificateRevoked => "the peer says the certificate is revoked",
        CertificateExpired => "the peer says the certificate has expired",
        CertificateUnknown => "the peer refused the certificate (certificate_unknown)",
        UnknownCA => "the peer does not trust the certificate's CA (unknown_ca)",
        CertificateRequired => "the server requires a client certificate",
        HandshakeFailure => {
            "the peer ended the TLS handshake (handshake_failure: no common parameters)"
        }
        ProtocolVersion => "the peer does not speak a TLS version we offer (TLS 1.2 or 1.3)",
        NoApplicationProtocol => "the peer does not offer HTTP/2 (ALPN h2); APNs requires HTTP/2",
        AccessDenied => "the peer denied access",
        DecryptError => "the peer could not verify the handshake (decrypt_error)",
        other => {
            return format!(
                "the peer sent the TLS alert {}",
                words(&format!("{other:?}"))
            )
        }
    };
    what.into()
}

/// `UnsupportedCertVersion` as `unsupported cert version`: the last resort
/// for variants without their own words (the enums are non-exhaustive).
fn words(debug: &str) -> String {
    let mut out = String::with_capacity(debug.len() + 8);
    let mut prev_lower = false;
    for c in debug.chars() {
        match c {
            '(' | ')' | '{' | '}' | '[' | ']' | '"' | ',' | ':' => {
                if !out.ends_with(' ') && !out.is_empty() {
                    out.push(' ');
                }
                prev_lower = false;
            }
            c if c.is_uppercase() => {
                if prev_lower {
                    out.push(' ');
                }
                out.extend(c.to_lowercase());
                prev_lower = false;
            }
            c => {
                prev_lower = c.is_lowercase() || c.is_ascii_digit();
                out.push(c);
            }
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn webpki_errors_inside_rustls_errors_read_as_words() {
        let e = TlsError::InvalidCertificate(CertificateError::Other(rustls::OtherError(
            Arc::new(webpki::Error::UnsupportedCertVersion),
        )));
        let text = rustls_error(&e);
        assert!(text.contains("X.509 version 1"), "{text}");
        assert!(
            !text.contains("OtherError") && !text.contains("Unsupported"),
            "{text}"
        );
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, e);
        assert_eq!(io_error(&io), text);
    }

    #[test]
    fn no_debug_string_survives() {
        let cases = [
            TlsError::AlertReceived(AlertDescription::BadCertificate),
            TlsError::AlertReceived(AlertDescription::RecordOverflow),
            TlsError::PeerIncompatible(rustls::PeerIncompatible::NoCipherSuitesInCommon),
            TlsError::InvalidCertificate(CertificateError::UnknownIssuer),
            TlsError::InvalidCertificate(CertificateError::InvalidOcspResponse),
            TlsError::InvalidCertificate(CertificateError::Other(rustls::OtherError(Arc::new(
                webpki::Error::MaximumPathDepthExceeded,
            )))),
        ];
        for e in cases {
            let text = rustls_error(&e);
            let camel = text.split_whitespace().any(|w| {
                w.chars().skip(1).any(char::is_uppercase) && w.chars().any(char::is_lowercase)
            });
            let call = text
                .as_bytes()
                .windows(2)
                .any(|w| w[0].is_ascii_alphanumeric() && w[1] == b'(');
            assert!(!camel && !call, "{text} (from {e:?})");
        }
        assert_eq!(
            words("MaximumPathDepthExceeded"),
            "maximum path depth exceeded"
        );
        assert_eq!(words("Other(OtherError(X))"), "other other error x");
    }
}
