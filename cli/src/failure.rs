//! How a command ends: its exit code, the failure that stops it, and the
//! command line's hint for a library error (the library says what went
//! wrong and never names a flag; this file says which flag fixes it).

use apns_provider::Error;

/// Exit codes, documented in `apns --help`.
pub mod exit {
    /// Every notification was accepted.
    pub const OK: u8 = 0;
    /// At least one notification was rejected by APNs.
    pub const REJECTED: u8 = 1;
    /// Usage or configuration error.
    pub const USAGE: u8 = 2;
    /// APNs could not be reached, or the connection failed.
    pub const CONNECTION: u8 = 3;
    /// An output (results, prune list, stdout) could not be written (a full
    /// disk, a closed pipe): intake stopped.
    pub const OUTPUT: u8 = 4;
    /// Interrupted by Ctrl-C (128 + SIGINT, as shells report it).
    pub const INTERRUPTED: u8 = 130;
}

/// A failure that ends the command: a message for stderr and an exit code.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub message: String,
}

/// The exit code of a library error: 3 when APNs (or the proxy) could not
/// be reached or the connection failed, else 2: every refusal before
/// sending (a field, a certificate's topics, a push type a certificate
/// cannot send) is a usage or configuration error, never a connection one,
/// so that scripts retrying on 3 do not loop.
pub fn code(e: &Error) -> u8 {
    if e.is_connection() {
        exit::CONNECTION
    } else {
        exit::USAGE
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        let code = code(&e);
        let message = match hint(&e) {
            Some(hint) => format!("{e} ({hint})"),
            None => e.to_string(),
        };
        Failure { code, message }
    }
}

/// What to do about an error, in this command line's terms: the library
/// says what went wrong and never names a flag; the CLI adds how to fix it,
/// from the error's kind.
pub fn hint(e: &Error) -> Option<String> {
    use apns_provider::{CredentialProblem as C, KeystoreProblem as K, TlsProblem as T};
    if e.is_proxy_auth_required() {
        return Some(
            "check the user and password in --proxy, or in HTTPS_PROXY / ALL_PROXY".into(),
        );
    }
    if e.is_proxy() {
        return Some(
            "check --proxy, or HTTPS_PROXY / ALL_PROXY and NO_PROXY; --no-proxy connects directly"
                .into(),
        );
    }
    // Refusals before sending (a certificate's rules, a missing topic):
    // the field the library names, as the flag that sets it.
    if let Error::InvalidField { field, message } = e {
        return match *field {
            // The key, not the flag, sets the limit.
            "topic" if message.contains("outside the key's scope") => Some(
                "a topic-specific key: send to its apps' topics, or use a key for this app".into(),
            ),
            // No --topic can help a certificate that allows none.
            "topic" if message.contains("names no topic") => Some(
                "use the push certificate Apple issued for the app; `apns cert inspect` shows what a certificate allows".into(),
            ),
            "topic" => Some(
                "check --topic: the app's bundle id, plus the push type's suffix; `apns cert inspect` lists the topics a certificate allows".into(),
            ),
            "push_type" => Some(
                "send with --key NAME, or --key-file AuthKey_<KEYID>.p8 --team-id TEAM, instead of --cert".into(),
            ),
            "bundle_id" => Some(
                "check --bundle-id (`apns cert inspect` lists the topics a certificate allows)".into(),
            ),
            "environment" => Some("give --env sandbox or --env production".into()),
            _ => None,
        };
    }
    if let Some(problem) = e.credential_problem() {
        return match problem {
            C::WrongPassword => Some(
                "give the right password with --cert-password-env VAR or --cert-password-file FILE"
                    .into(),
            ),
            C::SeparateKeyForPkcs12 => Some("drop --cert-key".into()),
            C::MissingKey => Some("--cert-key KEY.pem names the key's own file".into()),
            C::WrongEnvironment => Some("check --env".into()),
            _ => None,
        };
    }
    if let Some(problem) = e.keystore_problem() {
        let name = match e {
            Error::Keystore { name: Some(n), .. } => n.as_str(),
            _ => "NAME",
        };
        return match problem {
            K::NoSuchKey => Some(format!(
                "add it with `apns key add {name} --key-file AuthKey_<KEYID>.p8`"
            )),
            K::NoSuchProfile => Some(format!(
                "add it with `apns key add {name} --key-file AuthKey_<KEYID>.p8 --team-id TEAM` (see `apns key list`)"
            )),
            K::ProfileExists => Some(format!(
                "use `apns key rotate {name}` to replace its key, or `apns key remove {name}`"
            )),
            K::NoKeychain | K::KeychainLocked => {
                Some("or store it with `apns key add NAME --store file ...`".into())
            }
            _ => None,
        };
    }
    match e.tls_problem() {
        Some(T::UntrustedCertificate) => {
            Some("for a mock or a TLS-inspecting proxy, pass its CA with --ca-file".into())
        }
        Some(T::WrongHostName) => Some(
            "check --endpoint (a mock's certificate names localhost and 127.0.0.1), or map Apple's name to the mock with --resolve".into(),
        ),
        _ => None,
    }
}

impl Failure {
    /// A usage or configuration error (exit 2).
    pub fn usage(message: impl Into<String>) -> Self {
        Failure {
            code: exit::USAGE,
            message: message.into(),
        }
    }
}
