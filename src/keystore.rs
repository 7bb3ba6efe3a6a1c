//! Where keys live, and the named profiles that say so.
//!
//! - **Keychain**: the OS credential store, through the `keyring` ecosystem
//!   (`keyring-core` plus one store crate chosen per platform: macOS
//!   Keychain, Windows Credential Manager, Linux Secret Service). There is no
//!   silent fallback: when no keychain service is reachable, the error says
//!   so and names the alternatives.
//! - **File**: the key copied into a directory the caller names
//!   ([`store_key_file`]), directory `0700`, file `0600`, for headless
//!   servers.
//! - **Environment**: a variable holding the PEM, for containers and CI.
//!
//! A key (or a `.p12` password) written into the profile file itself is
//! refused, and never printed: the file says where secrets live, never what
//! they are.
//!
//! A [`ProfileFile`] (TOML, see `keys.example`) names profiles: team id, key
//! id, environment, default topic and where the key lives.
//!
//! ## Paths
//!
//! This module follows no path convention and reads no variable to find
//! its files: the caller passes the profile file's path
//! ([`ProfileFile::load`], [`ProfileFile::save`]) and the file store's
//! directory ([`store_key_file`]). The `apns` command line keeps them at:
//!
//! | what | where the `apns` CLI looks, first match wins |
//! |---|---|
//! | profile file | `$APNS_CONFIG`; `$XDG_CONFIG_HOME/apns/keys.toml`; `$HOME/.config/apns/keys.toml` |
//! | file store | `$XDG_DATA_HOME/apns/keys`; `$HOME/.local/share/apns/keys` |
//!
//! (an empty variable counts as unset). A tool that shares the CLI's
//! profiles resolves the same paths, or asks its user for them, and passes
//! them in.
//!
//! ```
//! use apns_provider::keystore::{Keychain, KeyLocation};
//!
//! let keychain = Keychain::in_memory(); // for tests; Keychain::system() in real use
//! keychain.store("myapp", "-----BEGIN PRIVATE KEY-----...")?;
//! assert!(keychain.load("myapp")?.starts_with("-----BEGIN"));
//! assert_eq!("file:/etc/apns/AuthKey.p8".parse::<KeyLocation>()?, KeyLocation::File("/etc/apns/AuthKey.p8".into()));
//! # Ok::<(), apns_provider::Error>(())
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::{Error, KeystoreProblem, Result};

/// The keychain service name entries are stored under.
pub const KEYCHAIN_SERVICE: &str = "apns-provider";

/// Where a profile's private key lives.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyLocation {
    /// The OS keychain, under the profile's name.
    Keychain,
    /// A file (`0600`).
    File(PathBuf),
    /// An environment variable holding the PEM.
    Env(String),
    /// The key itself, written into the profile file (a PEM). Refused by
    /// [`load_key_pem`], and never kept or printed: it displays as `inline`.
    Inline,
}

impl FromStr for KeyLocation {
    type Err = Error;
    /// Parses `keychain`, `file:PATH` or `env:VAR`; a key written in place
    /// (see [`looks_like_secret`]) is [`KeyLocation::Inline`].
    fn from_str(s: &str) -> Result<Self> {
        if s == "keychain" {
            return Ok(KeyLocation::Keychain);
        }
        if looks_like_secret(s) {
            return Ok(KeyLocation::Inline);
        }
        if let Some(path) = s.strip_prefix("file:") {
            return Ok(KeyLocation::File(PathBuf::from(path)));
        }
        if let Some(var) = s.strip_prefix("env:") {
            return Ok(KeyLocation::Env(var.to_string()));
        }
        Err(Error::keystore(
            KeystoreProblem::BadProfile,
            None,
            format!(
                "key location {} is not one of keychain, file:PATH, env:VAR",
                quote_unless_long(s)
            ),
        ))
    }
}

impl fmt::Display for KeyLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyLocation::Keychain => f.write_str("keychain"),
            KeyLocation::File(p) => write!(f, "file:{}", p.display()),
            KeyLocation::Env(v) => write!(f, "env:{v}"),
            KeyLocation::Inline => f.write_str("inline"),
        }
    }
}

/// Whether a profile value holds key material itself rather than saying
/// where it lives: a PEM (`-----BEGIN ...`, with real or `\n` line
/// breaks), or a long run of base64 such as a PEM's body.
pub fn looks_like_secret(value: &str) -> bool {
    if value.contains("-----") || value.contains("PRIVATE KEY") || value.contains('\n') {
        return true;
    }
    if value.starts_with("file:") || value.starts_with("env:") {
        return false;
    }
    value.contains("\\n")
        || (value.len() >= 64
            && value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=')))
}

/// A profile value for an error message: quoted when short, else only its
/// length (a long value may be a secret pasted in the wrong place).
fn quote_unless_long(value: &str) -> String {
    if value.chars().count() <= 64 && !looks_like_secret(value) {
        format!("{value:?}")
    } else {
        format!("(a {}-character value, not shown)", value.chars().count())
    }
}

/// What `key = "..."` says when the key is inlined: the refusal, naming the
/// profile and never the key.
fn inline_key_refused(profile: &str) -> Error {
    Error::keystore(KeystoreProblem::BadProfile, Some(profile), format!(
        "the key inlined in profile {profile:?} is refused: a profile says where a key lives, never what it is; put the PEM in a file only you can read (chmod 600) and write key = \"file:PATH\", or in an environment variable with key = \"env:VAR\""
    ))
}

/// The OS keychain (or an in-memory stand-in for tests).
#[derive(Clone)]
pub struct Keychain {
    store: Arc<keyring_core::CredentialStore>,
    kind: &'static str,
}

impl fmt::Debug for Keychain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keychain")
            .field("kind", &self.kind)
            .finish()
    }
}

const NO_KEYCHAIN_HELP: &str = "keep the key in a file only you can read (key = \"file:PATH\" in the profile), or give its PEM in an environment variable (key = \"env:VAR\")";

impl Keychain {
    /// The platform's keychain, chosen explicitly: macOS Keychain, Windows
    /// Credential Manager, or the Linux Secret Service (over D-Bus). Fails,
    /// naming the alternatives, when none is reachable.
    pub fn system() -> Result<Keychain> {
        Self::platform()
    }

    #[cfg(target_os = "linux")]
    fn platform() -> Result<Keychain> {
        if std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_none()
            && std::env::var_os("XDG_RUNTIME_DIR").is_none()
        {
            return Err(Error::keystore(KeystoreProblem::NoKeychain, None, format!(
                "no keychain service is reachable: the Linux Secret Service needs a D-Bus session (DBUS_SESSION_BUS_ADDRESS is not set) with a keyring such as gnome-keyring running; {NO_KEYCHAIN_HELP}"
            )));
        }
        let store = zbus_secret_service_keyring_store::Store::new().map_err(|e| {
            Error::keystore(
                KeystoreProblem::NoKeychain,
                None,
                format!(
                "no keychain service is reachable (Linux Secret Service: {e}); {NO_KEYCHAIN_HELP}"
            ),
            )
        })?;
        Ok(Keychain {
            store,
            kind: "Secret Service",
        })
    }

    #[cfg(target_os = "macos")]
    fn platform() -> Result<Keychain> {
        let store = apple_native_keyring_store::keychain::Store::new().map_err(|e| {
            Error::keystore(
                KeystoreProblem::NoKeychain,
                None,
                format!("the macOS Keychain is not reachable ({e}); {NO_KEYCHAIN_HELP}"),
            )
        })?;
        Ok(Keychain {
            store,
            kind: "macOS Keychain",
        })
    }

    #[cfg(target_os = "windows")]
    fn platform() -> Result<Keychain> {
        let store = windows_native_keyring_store::Store::new().map_err(|e| {
            Error::keystore(
                KeystoreProblem::NoKeychain,
                None,
                format!(
                    "the Windows Credential Manager is not reachable ({e}); {NO_KEYCHAIN_HELP}"
                ),
            )
        })?;
        Ok(Keychain {
            store,
            kind: "Windows Credential Manager",
        })
    }

    #[cfg(not(any(target_os = "linux", target_os = "macos", target_os = "windows")))]
    fn platform() -> Result<Keychain> {
        Err(Error::keystore(
            KeystoreProblem::NoKeychain,
            None,
            format!("no keychain is supported on this platform; {NO_KEYCHAIN_HELP}"),
        ))
    }

    /// An in-memory keychain (`keyring-core`'s mock store), for tests.
    pub fn in_memory() -> Keychain {
        Keychain {
            store: keyring_core::mock::Store::new().expect("the mock store always builds"),
            kind: "in-memory",
        }
    }

    /// Which keychain this is.
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    fn entry(&self, name: &str) -> Result<keyring_core::Entry> {
        keyring_core::Entry::new_in_store(&self.store, KEYCHAIN_SERVICE, name)
            .map_err(|e| self.error(name, e))
    }

    fn error(&self, name: &str, e: keyring_core::Error) -> Error {
        use keyring_core::Error as K;
        match e {
            K::NoEntry => Error::keystore(
                KeystoreProblem::NoSuchKey,
                Some(name),
                format!("the {} has no key named {name:?}", self.kind),
            ),
            K::NoStorageAccess(err) => Error::keystore(
                KeystoreProblem::KeychainLocked,
                Some(name),
                format!(
                    "the {} is locked or refused access ({err}); unlock it, or {NO_KEYCHAIN_HELP}",
                    self.kind
                ),
            ),
            other => Error::keystore(
                KeystoreProblem::Store,
                Some(name),
                format!("{} error for {name:?}: {other}", self.kind),
            ),
        }
    }

    /// Stores (or replaces) the PEM of key `name`.
    pub fn store(&self, name: &str, pem: &str) -> Result<()> {
        self.entry(name)?
            .set_password(pem)
            .map_err(|e| self.error(name, e))
    }

    /// The PEM of key `name`, zeroized when dropped.
    pub fn load(&self, name: &str) -> Result<Zeroizing<String>> {
        self.entry(name)?
            .get_password()
            .map(Zeroizing::new)
            .map_err(|e| self.error(name, e))
    }

    /// Deletes key `name`.
    pub fn remove(&self, name: &str) -> Result<()> {
        self.entry(name)?
            .delete_credential()
            .map_err(|e| self.error(name, e))
    }
}

/// Copies a key into the file store as `<dir>/<name>.p8` (directory 0700,
/// file 0600) and returns its path.
pub fn store_key_file(dir: &Path, name: &str, pem: &str) -> Result<PathBuf> {
    validate_name(name)?;
    create_private_dir(dir)?;
    let path = dir.join(format!("{name}.p8"));
    write_private(&path, pem.as_bytes())?;
    Ok(path)
}

/// Reads a key's PEM from where it lives.
pub fn load_key_pem(
    location: &KeyLocation,
    name: &str,
    keychain: impl FnOnce() -> Result<Keychain>,
) -> Result<Zeroizing<String>> {
    match location {
        KeyLocation::Keychain => keychain()?.load(name),
        KeyLocation::File(path) => {
            let bytes = crate::auth::read_private_file(path)?;
            String::from_utf8(bytes.to_vec())
                .map(Zeroizing::new)
                .map_err(|_| Error::malformed(format!("{}: not PEM text", path.display())))
        }
        KeyLocation::Env(var) => {
            let value = Zeroizing::new(std::env::var(var).map_err(|_| {
                Error::keystore(
                    KeystoreProblem::MissingVariable,
                    Some(name),
                    format!("the key of profile {name:?} is in ${var}, which is not set"),
                )
            })?);
            Ok(unescape_newlines(value))
        }
        KeyLocation::Inline => Err(inline_key_refused(name)),
    }
}

/// CI secret stores often hold a PEM on one line with literal `\n`s: turn
/// them back into line breaks.
fn unescape_newlines(value: Zeroizing<String>) -> Zeroizing<String> {
    if value.contains('\n') || !value.contains("\\n") {
        return value;
    }
    Zeroizing::new(value.replace("\\n", "\n"))
}

fn validate_name(name: &str) -> Result<()> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        || name.starts_with('.')
    {
        return Err(Error::invalid(
            "profile",
            format!("{name:?} is not a profile name; use letters, digits, '-', '_' and '.'"),
        ));
    }
    Ok(())
}

fn create_private_dir(dir: &Path) -> Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder
        .create(dir)
        .map_err(|e| Error::io(format!("cannot create {}", dir.display()), e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| Error::io(format!("cannot restrict {}", dir.display()), e))?;
    }
    Ok(())
}

/// Writes a file readable only by its owner (mode 0600), atomically: a new
/// temporary file beside it, synced and renamed over the old one, so a
/// crash never leaves half a key and an existing file's looser mode or a
/// symlink at `path` is never followed.
///
/// ```
/// # let dir = std::env::temp_dir().join(format!("apns-doc-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir)?;
/// let path = dir.join("secret.pem");
/// apns_provider::keystore::write_private(&path, b"-----BEGIN PRIVATE KEY-----\n...")?;
/// # #[cfg(unix)] {
/// use std::os::unix::fs::PermissionsExt;
/// assert_eq!(std::fs::metadata(&path)?.permissions().mode() & 0o777, 0o600);
/// # }
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let fail = |e| Error::io(format!("cannot write {}", path.display()), e);
    let mut file = options.open(&tmp).map_err(fail)?;
    let written = file
        .write_all(bytes)
        .and_then(|()| file.sync_all())
        .and_then(|()| {
            drop(file);
            std::fs::rename(&tmp, path)
        });
    if let Err(e) = written {
        // Never leave a partial copy of a secret behind.
        let _ = std::fs::remove_file(&tmp);
        return Err(fail(e));
    }
    Ok(())
}

/// One named profile. Every field is optional in the file; commands say
/// which they need. Its `Debug` never shows a key or password written in
/// place.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// 10-character team id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub team_id: Option<String>,
    /// 10-character key id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// `sandbox`, `production` or `both`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// Default `apns-topic`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// A topic-specific key's bundle ids (Apple, 2025): sends to any other
    /// topic are refused before anything is sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topics: Option<Vec<String>>,
    /// Where the private key lives: `keychain`, `file:PATH`, `env:VAR`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// A certificate profile: `file:PATH` (or a plain path) of a .p12 or PEM.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
    /// With `certificate`: its separate PEM key, `file:PATH`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate_key: Option<String>,
    /// With a .p12: where its password comes from: `env:VAR`, `file:PATH`
    /// or `prompt`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

impl Profile {
    /// Where the key lives (`keychain` when not said).
    pub fn key_location(&self) -> Result<KeyLocation> {
        self.key.as_deref().unwrap_or("keychain").parse()
    }
}

impl fmt::Debug for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Values that may be secrets pasted in place are shown by length.
        let shown = |v: &Option<String>| v.as_deref().map(quote_unless_long);
        let password = self.password.as_deref().map(|p| {
            if p == "prompt" || p.starts_with("env:") || p.starts_with("file:") {
                format!("{p:?}")
            } else {
                "[inline, redacted]".to_string()
            }
        });
        f.debug_struct("Profile")
            .field("team_id", &self.team_id)
            .field("key_id", &self.key_id)
            .field("environment", &self.environment)
            .field("topic", &self.topic)
            .field("topics", &self.topics)
            .field("key", &shown(&self.key))
            .field("certificate", &shown(&self.certificate))
            .field("certificate_key", &shown(&self.certificate_key))
            .field("password", &password)
            .finish()
    }
}

/// The TOML file of profiles.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileFile {
    /// Profiles by name.
    #[serde(default)]
    pub profiles: BTreeMap<String, Profile>,
}

impl ProfileFile {
    /// Reads the file at `path` (an empty set of profiles if it does not
    /// exist).
    pub fn load(path: &Path) -> Result<ProfileFile> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ProfileFile::default()),
            Err(e) => return Err(Error::io(format!("cannot read {}", path.display()), e)),
        };
        toml::from_str(&text)
            .map_err(|e| Error::Config(format!("{}: {}", path.display(), e.message())))
    }

    /// Writes the file (mode 0600, directory created 0700).
    pub fn save(&self, path: &Path) -> Result<()> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if !dir.exists() {
                create_private_dir(dir)?;
            }
        }
        let text = toml::to_string_pretty(self)
            .map_err(|e| Error::Config(format!("cannot encode profiles: {e}")))?;
        let header = "# apns-provider key profiles (see keys.example). No secrets here: only where keys live.\n\n";
        write_private(path, format!("{header}{text}").as_bytes())
    }

    /// The profile `name`, or an error listing the known ones.
    pub fn get(&self, name: &str) -> Result<&Profile> {
        self.profiles.get(name).ok_or_else(|| {
            let known: Vec<&str> = self.profiles.keys().map(String::as_str).collect();
            let message = if known.is_empty() {
                format!("no profile named {name:?}: there are none yet")
            } else {
                format!(
                    "no profile named {name:?}; known profiles: {}",
                    known.join(", ")
                )
            };
            Error::keystore(KeystoreProblem::NoSuchProfile, Some(name), message)
        })
    }

    /// Adds a profile, refusing to replace one.
    pub fn insert_new(&mut self, name: &str, profile: Profile) -> Result<()> {
        validate_name(name)?;
        if self.profiles.contains_key(name) {
            return Err(Error::keystore(
                KeystoreProblem::ProfileExists,
                Some(name),
                format!("a profile named {name:?} exists already"),
            ));
        }
        self.profiles.insert(name.to_string(), profile);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_memory_keychain_round_trip() {
        let k = Keychain::in_memory();
        k.store("a", "pem-a").unwrap();
        assert_eq!(k.load("a").unwrap().as_str(), "pem-a");
        k.store("a", "pem-b").unwrap();
        assert_eq!(k.load("a").unwrap().as_str(), "pem-b");
        k.remove("a").unwrap();
        let e = k.load("a").unwrap_err();
        assert!(e.to_string().contains("no key named \"a\""), "{e}");
        assert_eq!(e.keystore_problem(), Some(KeystoreProblem::NoSuchKey));
    }

    #[test]
    fn one_line_pems_from_ci_secrets_get_their_line_breaks_back() {
        let one_line = Zeroizing::new(
            "-----BEGIN PRIVATE KEY-----\\nAAAA\\n-----END PRIVATE KEY-----".to_string(),
        );
        assert_eq!(
            unescape_newlines(one_line).as_str(),
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----"
        );
        let normal = Zeroizing::new("a\nb\\n".to_string());
        assert_eq!(unescape_newlines(normal).as_str(), "a\nb\\n");
    }

    #[test]
    fn locations_parse_and_print() {
        for s in ["keychain", "file:/x/y.p8", "env:APNS_KEY"] {
            assert_eq!(s.parse::<KeyLocation>().unwrap().to_string(), s);
        }
        let e = "vault:x".parse::<KeyLocation>().unwrap_err().to_string();
        assert!(e.contains("\"vault:x\""), "{e}");
        let body = "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg".repeat(2);
        for inline in [
            format!("-----BEGIN PRIVATE KEY-----\n{body}\n-----END PRIVATE KEY-----\n"),
            format!("-----BEGIN PRIVATE KEY-----\\n{body}\\n-----END PRIVATE KEY-----"),
            body.clone(),
        ] {
            let location: KeyLocation = inline.parse().unwrap();
            assert_eq!(location, KeyLocation::Inline);
            assert_eq!(location.to_string(), "inline");
            let e = load_key_pem(&location, "p", || Ok(Keychain::in_memory()))
                .unwrap_err()
                .to_string();
            assert!(e.contains("the key inlined in profile \"p\""), "{e}");
            let profile = Profile {
                key: Some(inline.clone()),
                password: Some("hunter2".into()),
                ..Profile::default()
            };
            let debug = format!("{profile:?}");
            assert!(
                !debug.contains(&body[..40]) && !debug.contains("hunter2"),
                "{debug}"
            );
        }
        // Paths are not mistaken for keys.
        let long_path = format!("file:/{}/AuthKey_ABCDE12345.p8", "a".repeat(80));
        assert!(matches!(
            long_path.parse::<KeyLocation>(),
            Ok(KeyLocation::File(_))
        ));
    }

    #[test]
    fn profile_files_round_trip_and_refuse_unknown_fields() {
        let dir = std::env::temp_dir().join(format!("apns-ks-{}", uuid::Uuid::new_v4().simple()));
        let path = dir.join("keys.toml");
        let mut file = ProfileFile::default();
        file.insert_new(
            "app",
            Profile {
                team_id: Some("TEAM123456".into()),
                key: Some("keychain".into()),
                ..Profile::default()
            },
        )
        .unwrap();
        assert!(file.insert_new("app", Profile::default()).is_err());
        assert!(file.insert_new("../x", Profile::default()).is_err());
        file.save(&path).unwrap();
        assert_eq!(ProfileFile::load(&path).unwrap(), file);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        std::fs::write(&path, "[profiles.x]\nteam = \"T\"\n").unwrap();
        let e = ProfileFile::load(&path).unwrap_err().to_string();
        assert!(e.contains("unknown field") && e.contains("team"), "{e}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
