//! The arguments of `apns key` (stored keys and profiles), `apns cert`
//! (push certificates) and `apns token`.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

use super::credentials::{KeyArgs, KeyFileArgs, PasswordArgs};
use super::headers::TopicArgs;
use super::help;
use super::output::OutputArgs;
use super::values;

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Store a .p8 key (keychain or file store) and write its profile.
    #[command(
        after_help = help::KEY_ADD,
        mut_arg("topic", |a| a.help("The profile's default topic (the app's bundle id)."))
    )]
    Add {
        /// Profile name.
        name: String,
        /// --key-file (required; must be chmod 600), --key-id, --team-id (may also be given at
        /// send time).
        #[command(flatten)]
        key: KeyFileArgs,
        /// Environment the key may be used with.
        #[arg(
            long = "env",
            default_value = "both",
            value_name = "ENV",
            value_parser = values::key_environment()
        )]
        environment: String,
        #[command(flatten)]
        topic: TopicArgs,
        /// Where to keep the key: the OS keychain, or a 0600 file under the XDG data directory.
        #[arg(long, value_enum, default_value = "keychain")]
        store: StoreKind,
    },
    /// List profiles: name, team, key id, environment, store, public-key fingerprint (never a secret).
    List {
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Show one profile and its public key PEM (what a mock or a verifier needs).
    Show {
        /// Profile name.
        name: String,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Replace a profile's key in place; the old key id is shown so you can revoke it at Apple.
    Rotate {
        /// Profile name.
        name: String,
        /// The new key: --key-file (required), --key-id; a --team-id must be the profile's.
        #[command(flatten)]
        key: KeyFileArgs,
    },
    /// Remove a profile and its stored key (asks first, unless --yes).
    Remove {
        /// Profile name.
        name: String,
        /// Do not ask.
        #[arg(long, short)]
        yes: bool,
    },
}

/// Where `apns key add` keeps a key.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum StoreKind {
    /// The OS keychain (macOS Keychain, Windows Credential Manager, Linux Secret Service).
    Keychain,
    /// A 0600 file under $XDG_DATA_HOME/apns/keys.
    File,
}

#[derive(Debug, Subcommand)]
pub enum CertCommand {
    /// Show what a push certificate allows: bundle id, topics, environment, validity.
    #[command(
        after_help = help::CERT_INSPECT
    )]
    Inspect {
        /// The certificate (.p12/.pfx or PEM).
        #[arg(value_name = "PATH")]
        path: PathBuf,
        /// The private key, when it is in a separate PEM file.
        #[arg(long, value_name = "PATH")]
        cert_key: Option<PathBuf>,
        #[command(flatten)]
        password: PasswordArgs,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Convert a .p12 to PEM (certificate chain and unencrypted key), written with mode 0600.
    #[command(
        after_help = help::CERT_CONVERT
    )]
    Convert {
        /// The .p12/.pfx to convert.
        #[arg(value_name = "IN.p12")]
        path: PathBuf,
        /// Where to write the PEM.
        #[arg(long, value_name = "OUT.pem")]
        out: PathBuf,
        #[command(flatten)]
        password: PasswordArgs,
    },
}

#[derive(Debug, Args)]
pub struct TokenArgs {
    #[command(flatten)]
    pub key: KeyArgs,
    /// Show the token's header, claims and age instead of the bare token. With JWT (or "-" for
    /// stdin), decode that token: no key is needed, and with one its signature, kid and iss are
    /// checked too.
    #[arg(long)]
    pub decode: bool,
    /// A token to decode (with --decode).
    #[arg(value_name = "JWT", requires = "decode")]
    pub jwt: Option<String>,
    #[command(flatten)]
    pub output: OutputArgs,
}
