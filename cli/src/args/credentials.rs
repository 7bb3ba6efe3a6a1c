//! Who sends: a `.p8` key (flags, environment variables or a stored
//! profile) or a push certificate and where its password comes from.

use std::path::PathBuf;

use clap::Args;

/// Token credentials: a stored key (`--key NAME`) or a `.p8` file and its ids.
#[derive(Debug, Args, Clone)]
pub struct KeyArgs {
    /// Use a named profile from the profile file (`apns key list`); flags and environment
    /// variables override its fields.
    #[arg(long = "key", env = "APNS_PROFILE", value_name = "NAME")]
    pub profile: Option<String>,
    #[command(flatten)]
    pub file: KeyFileArgs,
}

/// A `.p8` key file and its ids: what a send signs with, and what
/// `apns key add` and `apns key rotate` store.
#[derive(Debug, Args, Clone, Default)]
pub struct KeyFileArgs {
    /// The .p8 key from Apple (AuthKey_<KEYID>.p8).
    #[arg(long, env = "APNS_KEY_FILE", value_name = "PATH")]
    pub key_file: Option<PathBuf>,
    /// The 10-character key id; inferred from an AuthKey_<KEYID>.p8 file name when omitted.
    #[arg(long, env = "APNS_KEY_ID", value_name = "KID")]
    pub key_id: Option<String>,
    /// The 10-character team id (Apple Developer > Membership).
    #[arg(long, env = "APNS_TEAM_ID", value_name = "TEAM")]
    pub team_id: Option<String>,
}

/// Certificate credentials (the older way, still supported during the move to tokens).
#[derive(Debug, Args, Clone, Default)]
pub struct CertArgs {
    /// A push certificate: .p12/.pfx, or PEM with the certificate and its key
    /// (as `openssl pkcs12 -in cert.p12 -out cert.pem -clcerts -nodes` writes it).
    #[arg(
        long,
        value_name = "PATH",
        conflicts_with = "key_file",
        help_heading = "Certificate authentication"
    )]
    pub cert: Option<PathBuf>,
    /// The certificate's private key, when it is in a separate PEM file.
    #[arg(
        long,
        value_name = "PATH",
        requires = "cert",
        help_heading = "Certificate authentication"
    )]
    pub cert_key: Option<PathBuf>,
    #[command(flatten)]
    pub password: PasswordArgs,
}

/// Where a .p12 password comes from: never an argument that lands in shell
/// history. Without either, a terminal is asked.
#[derive(Debug, Args, Clone, Default)]
pub struct PasswordArgs {
    /// Read the .p12 password from this environment variable.
    #[arg(
        long,
        value_name = "VAR",
        conflicts_with = "cert_password_file",
        help_heading = "Certificate authentication"
    )]
    pub cert_password_env: Option<String>,
    /// Read the .p12 password from this file (its first line).
    #[arg(long, value_name = "FILE", help_heading = "Certificate authentication")]
    pub cert_password_file: Option<PathBuf>,
}

impl KeyArgs {
    /// The stored key (profile) `name`, and nothing else: a job's or an
    /// `--app`'s credentials.
    pub fn named(name: &str) -> Self {
        KeyArgs {
            profile: Some(name.to_string()),
            file: KeyFileArgs::default(),
        }
    }
}
