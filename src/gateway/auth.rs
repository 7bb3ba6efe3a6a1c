//! API tokens: who may call the gateway. Every request carries
//! `Authorization: Bearer <token>`; there is no anonymous mode.
//!
//! Tokens are kept as SHA-256 digests and compared in constant time with
//! every one known (no early exit), so neither a token's content nor its
//! length leaks through timing. A token file is re-read when it changes
//! (checked at most once a second), so tokens rotate without a restart.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use subtle::ConstantTimeEq;

use crate::error::{Error, Result};

/// The shortest API token accepted: 16 characters (about 96 bits when
/// random, as from `openssl rand -hex 16`).
pub const MIN_TOKEN_LEN: usize = 16;

/// How often a token file is checked for changes, at most.
const RECHECK: Duration = Duration::from_secs(1);

type Digest = [u8; 32];

/// The API tokens a gateway accepts: fixed, or from a file of one token per
/// line (blank lines and `#` comments skipped) that is re-read when it
/// changes. Prints as `[redacted]`.
///
/// ```
/// use apns_provider::gateway::ApiTokens;
/// let tokens = ApiTokens::from_tokens(["0123456789abcdef0123"])?;
/// assert!(tokens.check("0123456789abcdef0123"));
/// assert!(!tokens.check("0123456789abcdef012"));
/// assert_eq!(format!("{tokens:?}"), "ApiTokens([redacted])");
/// # Ok::<(), apns_provider::Error>(())
/// ```
pub struct ApiTokens {
    file: Option<PathBuf>,
    state: Mutex<State>,
}

struct State {
    digests: Vec<Digest>,
    stamp: Option<Stamp>,
    checked_at: Instant,
}

/// What identifies a version of the token file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    #[cfg(unix)]
    inode: u64,
}

impl fmt::Debug for ApiTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiTokens([redacted])")
    }
}

fn digest(token: &str) -> Digest {
    let d = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

impl ApiTokens {
    /// These tokens, fixed (e.g. one from an environment variable).
    pub fn from_tokens<'a>(tokens: impl IntoIterator<Item = &'a str>) -> Result<Self> {
        let mut digests = Vec::new();
        for t in tokens {
            let t = t.trim();
            check_token(t).map_err(|why| Error::invalid("API token", why))?;
            digests.push(digest(t));
        }
        if digests.is_empty() {
            return Err(Error::invalid("API token", "none given"));
        }
        Ok(ApiTokens {
            file: None,
            state: Mutex::new(State {
                digests,
                stamp: None,
                checked_at: Instant::now(),
            }),
        })
    }

    /// The tokens in `path`, one per line; the file is re-read when it
    /// changes. Refuses a file its group or others may read, and one without
    /// a valid token.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let (digests, stamp, skipped) = read_file(&path)?;
        if skipped > 0 {
            tracing::warn!(file = %path.display(), skipped, "API token lines shorter than {MIN_TOKEN_LEN} characters were ignored");
        }
        if digests.is_empty() {
            return Err(Error::Config(format!(
                "the API token file {} holds no token (one per line, at least {MIN_TOKEN_LEN} characters)",
                path.display()
            )));
        }
        Ok(ApiTokens {
            file: Some(path),
            state: Mutex::new(State {
                digests,
                stamp: Some(stamp),
                checked_at: Instant::now(),
            }),
        })
    }

    /// How many tokens are accepted now.
    pub fn len(&self) -> usize {
        self.lock().digests.len()
    }

    /// Whether no token is accepted (every request is refused).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `presented` is one of the tokens, in constant time.
    pub fn check(&self, presented: &str) -> bool {
        let wanted = digest(presented);
        let mut state = self.lock();
        if let Some(path) = &self.file {
            if state.checked_at.elapsed() >= RECHECK {
                state.checked_at = Instant::now();
                reload(path, &mut state);
            }
        }
        let mut found = subtle::Choice::from(0u8);
        for d in &state.digests {
            found |= d.ct_eq(&wanted);
        }
        found.into()
    }

    /// Checks an `Authorization` header value: `Bearer <token>` (the
    /// scheme in any case).
    pub fn check_header(&self, value: &[u8]) -> bool {
        let Ok(text) = std::str::from_utf8(value) else {
            return false;
        };
        match text.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => {
                self.check(token.trim())
            }
            _ => false,
        }
    }
}

/// Re-reads the file if it changed. A file that cannot be read (being
/// replaced, permissions loosened) keeps the tokens known; a readable file
/// without tokens revokes them all.
fn reload(path: &Path, state: &mut State) {
    let Ok(meta) = std::fs::metadata(path) else {
        return;
    };
    if Some(stamp_of(&meta)) == state.stamp {
        return;
    }
    match read_file(path) {
        Ok((digests, stamp, skipped)) => {
            if digests.is_empty() {
                tracing::warn!(file = %path.display(), "the API token file holds no token now: every request is refused until one is added");
            } else {
                tracing::info!(file = %path.display(), tokens = digests.len(), skipped, "API tokens reloaded");
            }
            state.digests = digests;
            state.stamp = Some(stamp);
        }
        Err(e) => tracing::warn!("keeping the API tokens known: {e}"),
    }
}

fn stamp_of(meta: &std::fs::Metadata) -> Stamp {
    #[cfg(unix)]
    use std::os::unix::fs::MetadataExt;
    Stamp {
        modified: meta.modified().ok(),
        len: meta.len(),
        #[cfg(unix)]
        inode: meta.ino(),
    }
}

/// The digests of the tokens in `path`, its stamp, and how many lines were
/// too short to be tokens.
fn read_file(path: &Path) -> Result<(Vec<Digest>, Stamp, usize)> {
    use std::io::Read;
    let context = || format!("cannot read the API token file {}", path.display());
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(context(), e))?;
    let meta = file.metadata().map_err(|e| Error::io(context(), e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(Error::Config(format!(
                "the API token file {} may be read by its group or others (mode {:o}); make it private: chmod 600 {}",
                path.display(),
                mode & 0o777,
                path.display()
            )));
        }
    }
    // Far above any real list of tokens; a mistake (a log file) is refused.
    const MAX: u64 = 1 << 20;
    let mut text = zeroize::Zeroizing::new(String::new());
    file.by_ref()
        .take(MAX + 1)
        .read_to_string(&mut text)
        .map_err(|e| Error::io(context(), e))?;
    if text.len() as u64 > MAX {
        return Err(Error::Config(format!(
            "the API token file {} is over 1 MiB: not a list of tokens",
            path.display()
        )));
    }
    let mut digests = Vec::new();
    let mut skipped = 0;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match check_token(line) {
            Ok(()) => digests.push(digest(line)),
            Err(_) => skipped += 1,
        }
    }
    Ok((digests, stamp_of(&meta), skipped))
}

/// What makes a string usable as a token (the message never quotes it).
fn check_token(t: &str) -> std::result::Result<(), String> {
    if t.chars().count() < MIN_TOKEN_LEN {
        return Err(format!(
            "too short: an API token needs at least {MIN_TOKEN_LEN} characters (e.g. `openssl rand -hex 32`)"
        ));
    }
    if t.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("an API token cannot hold spaces or control characters".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_forms() {
        let t = ApiTokens::from_tokens(["tok-0123456789abcdef"]).unwrap();
        assert!(t.check_header(b"Bearer tok-0123456789abcdef"));
        assert!(t.check_header(b"bearer  tok-0123456789abcdef "));
        assert!(!t.check_header(b"Basic tok-0123456789abcdef"));
        assert!(!t.check_header(b"tok-0123456789abcdef"));
        assert!(!t.check_header(b"Bearer "));
        assert!(!t.check_header(b"Bearer \xff\xfe"));
        assert!(ApiTokens::from_tokens(["short"]).is_err());
        assert!(ApiTokens::from_tokens(Vec::<&str>::new()).is_err());
        let e = ApiTokens::from_tokens(["has a space in it, long"]).unwrap_err();
        assert!(!e.to_string().contains("has a space"), "{e}");
    }

    #[cfg(unix)]
    #[test]
    fn a_token_file_rotates_and_must_be_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens");
        let write = |text: &str| {
            // Written beside and renamed in, as rotation tools do.
            let tmp = dir.path().join("tokens.new");
            std::fs::write(&tmp, text).unwrap();
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)).unwrap();
            std::fs::rename(&tmp, &path).unwrap();
        };
        write("# ops\nfirst-token-0123456789\nshort\n\n");
        let tokens = ApiTokens::from_file(&path).unwrap();
        assert_eq!(tokens.len(), 1);
        assert!(tokens.check("first-token-0123456789"));
        write("second-token-0123456789\n");
        // Re-read at most once a second.
        tokens.lock().checked_at -= RECHECK;
        assert!(!tokens.check("first-token-0123456789"));
        assert!(tokens.check("second-token-0123456789"));
        // Loosened permissions: refused at start, ignored on reload.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = ApiTokens::from_file(&path).unwrap_err();
        assert!(e.to_string().contains("chmod 600"), "{e}");
        std::fs::write(&path, "third-token-0123456789\n").unwrap();
        tokens.lock().checked_at -= RECHECK;
        assert!(tokens.check("second-token-0123456789"));
        assert!(!tokens.check("third-token-0123456789"));
        // An empty (but readable) file revokes every token.
        write("# none\n");
        tokens.lock().checked_at -= RECHECK;
        assert!(!tokens.check("second-token-0123456789"));
        assert!(tokens.is_empty());
        write("");
        assert!(ApiTokens::from_file(&path).is_err());
    }
}
