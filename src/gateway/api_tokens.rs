//! API tokens: who may call the gateway. Every request carries
//! `Authorization: Bearer <token>`; there is no anonymous mode.
//!
//! Tokens are kept as SHA-256 digests and compared in constant time with
//! every one known (no early exit), so neither a token's content nor its
//! length leaks through timing.
//!
//! A token file is re-read off the request path: a background thread looks
//! at it once a second and swaps in the new set; requests only read the
//! set in memory. A read that does not finish (a FIFO nobody writes to, a
//! hung network mount) never delays a request: the last set read is kept,
//! with a WARN, and no second read starts until it ends. A read that fails
//! (the file deleted, unreadable, no longer private, not a regular file)
//! fails closed: every request is refused (401) until the file is good
//! again, with one WARN when that starts, not one a second.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant, SystemTime};

use subtle::ConstantTimeEq;

use crate::error::{Error, Result};

/// The shortest API token accepted: 16 characters (about 96 bits when
/// random, as from `openssl rand -hex 16`).
pub const MIN_TOKEN_LEN: usize = 16;

/// How often a token file is checked for changes.
const RECHECK: Duration = Duration::from_secs(1);

/// A read of the token file taking longer than this is warned about.
const STUCK: Duration = Duration::from_secs(5);

/// At most this many ignored lines are listed, one WARN each.
const MAX_LINES_WARNED: usize = 20;

type Digest = [u8; 32];

/// The API tokens a gateway accepts: fixed, or from a file that is
/// re-read when it changes. Prints as `[redacted]`.
///
/// The file holds one token per line:
/// - blank lines are skipped, and so are comments: a `#` at the start of a
///   line, or after a space or tab, starts a comment to the end of the
///   line, so `TOKEN  # CI deploys` accepts `TOKEN`. A `#` with no space
///   before it is part of the token.
/// - spaces and tabs around a token are trimmed; a line still holding a
///   space, a tab or a control character inside is ignored with a WARN that
///   says so (and its line number, never its text), as is a line shorter
///   than [`MIN_TOKEN_LEN`].
/// - a UTF-8 byte order mark at the start is skipped; the file must be
///   UTF-8, private (no group or other permissions), a regular file (not
///   a FIFO or a device), and at most 1 MiB.
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
    shared: Arc<Shared>,
}

struct Shared {
    file: Option<PathBuf>,
    /// What requests check: replaced whole by the reader, never held
    /// during I/O.
    digests: RwLock<Arc<Vec<Digest>>>,
    /// When the read in progress started (milliseconds since `epoch`, at
    /// least 1), or 0 when none is.
    reading_since: AtomicU64,
    /// Whether the read in progress was warned about.
    stuck_warned: AtomicBool,
    epoch: Instant,
    /// Set when the [`ApiTokens`] is dropped: the watcher stops.
    closed: AtomicBool,
    /// The reader's own state (one read at a time).
    reader: Mutex<ReaderState>,
}

#[derive(Default)]
struct ReaderState {
    /// The version of the file the digests come from (`None` after a
    /// failed read: the next read is never skipped).
    stamp: Option<Stamp>,
    /// The failure warned about last, until a read succeeds.
    problem: Option<String>,
}

/// What identifies a version of the token file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    #[cfg(unix)]
    inode: u64,
    /// The mode and the change time: loosened permissions are seen.
    #[cfg(unix)]
    mode: u32,
    #[cfg(unix)]
    changed: (i64, i64),
}

impl fmt::Debug for ApiTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiTokens([redacted])")
    }
}

impl Drop for ApiTokens {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::Relaxed);
    }
}

fn digest(token: &str) -> Digest {
    let d = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

impl ApiTokens {
    fn new(file: Option<PathBuf>, digests: Vec<Digest>, stamp: Option<Stamp>) -> Self {
        ApiTokens {
            shared: Arc::new(Shared {
                file,
                digests: RwLock::new(Arc::new(digests)),
                reading_since: AtomicU64::new(0),
                stuck_warned: AtomicBool::new(false),
                epoch: Instant::now(),
                closed: AtomicBool::new(false),
                reader: Mutex::new(ReaderState {
                    stamp,
                    problem: None,
                }),
            }),
        }
    }

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
        Ok(Self::new(None, digests, None))
    }

    /// The tokens in `path` (see [`ApiTokens`] for its rules); the file is
    /// re-read when it changes, by a background thread. Refuses a file
    /// that is not a regular file, one its group or others may read, and
    /// one without a valid token.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        // Before opening: opening a FIFO would wait for a writer.
        let meta = std::fs::metadata(&path).map_err(|e| {
            Error::io(
                format!("cannot read the API token file {}", path.display()),
                e,
            )
        })?;
        if !meta.is_file() {
            return Err(not_regular(&path));
        }
        let read = read_file(&path)?;
        warn_ignored(&path, &read.ignored);
        if read.digests.is_empty() {
            return Err(Error::Config(format!(
                "the API token file {} holds no token (one per line, at least {MIN_TOKEN_LEN} characters)",
                path.display()
            )));
        }
        let tokens = Self::new(Some(path), read.digests, Some(read.stamp));
        let watched = Arc::downgrade(&tokens.shared);
        // Detached: a read stuck forever never keeps the process from
        // exiting, nor the async runtime from shutting down.
        std::thread::Builder::new()
            .name("apns-api-tokens".into())
            .spawn(move || watch(watched))
            .map_err(|e| Error::io("cannot start the API token file's reader", e))?;
        Ok(tokens)
    }

    /// How many tokens are accepted now.
    pub fn len(&self) -> usize {
        self.current().len()
    }

    /// Whether no token is accepted (every request is refused).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn current(&self) -> Arc<Vec<Digest>> {
        self.shared
            .digests
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Whether `presented` is one of the tokens, in constant time. Never
    /// waits for the token file.
    pub fn check(&self, presented: &str) -> bool {
        let wanted = digest(presented);
        let mut found = subtle::Choice::from(0u8);
        for d in self.current().iter() {
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

fn not_regular(path: &Path) -> Error {
    Error::Config(format!(
        "the API token file {} is not a regular file (a FIFO, a socket or a device?): give a file of tokens, one per line",
        path.display()
    ))
}

/// The watcher: once a second, a read of the file on a thread of its own,
/// unless one is still in progress (then a WARN, once, past [`STUCK`]).
fn watch(shared: Weak<Shared>) {
    loop {
        std::thread::sleep(RECHECK);
        let Some(s) = shared.upgrade() else { return };
        if s.closed.load(Ordering::Relaxed) {
            return;
        }
        let now = s.epoch.elapsed().as_millis() as u64 + 1;
        let since = s.reading_since.load(Ordering::Acquire);
        if since != 0 {
            let waited = Duration::from_millis(now.saturating_sub(since));
            if waited >= STUCK && !s.stuck_warned.swap(true, Ordering::Relaxed) {
                let file = s.file.as_deref().unwrap_or(Path::new("")).display();
                tracing::warn!(
                    %file,
                    tokens = s.digests.read().map(|d| d.len()).unwrap_or(0),
                    "reading the API token file has not finished after {}s (a FIFO nobody writes to? a hung mount?): keeping the tokens read last; requests are not delayed, and no other read starts until this one ends",
                    waited.as_secs()
                );
            }
            continue;
        }
        s.reading_since.store(now, Ordering::Release);
        s.stuck_warned.store(false, Ordering::Relaxed);
        let reader = s.clone();
        let spawned = std::thread::Builder::new()
            .name("apns-api-tokens-read".into())
            .spawn(move || {
                reader.reload();
                reader.reading_since.store(0, Ordering::Release);
            });
        if let Err(e) = spawned {
            s.reading_since.store(0, Ordering::Release);
            tracing::warn!("cannot start a read of the API token file: {e}");
        }
    }
}

impl Shared {
    /// Re-reads the file if it changed (blocking: the reader's thread
    /// only). A file that cannot be read revokes every token.
    fn reload(&self) {
        let Some(path) = &self.file else { return };
        let mut state = self.reader.lock().unwrap_or_else(|e| e.into_inner());
        let outcome = match std::fs::metadata(path) {
            Err(e) => Err(Error::io(
                format!("cannot read the API token file {}", path.display()),
                e,
            )),
            Ok(meta) if Some(stamp_of(&meta)) == state.stamp => return,
            Ok(_) => read_file(path),
        };
        match outcome {
            Ok(read) => {
                warn_ignored(path, &read.ignored);
                let recovered = state.problem.take().is_some();
                if read.digests.is_empty() {
                    tracing::warn!(file = %path.display(), "the API token file holds no token now: every request is refused until one is added");
                } else if recovered {
                    tracing::warn!(file = %path.display(), tokens = read.digests.len(), "the API token file is readable again: its tokens are accepted");
                } else {
                    tracing::info!(file = %path.display(), tokens = read.digests.len(), ignored = read.ignored.len(), "API tokens reloaded");
                }
                state.stamp = Some(read.stamp);
                self.swap(read.digests);
            }
            Err(e) => {
                // Fail closed: a deleted file is how access is revoked.
                self.swap(Vec::new());
                state.stamp = None;
                let problem = e.to_string();
                if state.problem.as_deref() != Some(problem.as_str()) {
                    tracing::warn!(
                        "{problem}: every request is refused (401) until it can be read again"
                    );
                    state.problem = Some(problem);
                }
            }
        }
    }

    fn swap(&self, digests: Vec<Digest>) {
        *self.digests.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(digests);
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
        #[cfg(unix)]
        mode: meta.mode(),
        #[cfg(unix)]
        changed: (meta.ctime(), meta.ctime_nsec()),
    }
}

/// What a read of the token file found.
struct Read {
    digests: Vec<Digest>,
    stamp: Stamp,
    /// Lines that are not tokens: (line number, why).
    ignored: Vec<(usize, String)>,
}

/// Reads and parses the token file (blocking; may never return on a FIFO
/// or a hung mount, so never on a request's path).
fn read_file(path: &Path) -> Result<Read> {
    use std::io::Read as _;
    let context = || format!("cannot read the API token file {}", path.display());
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(context(), e))?;
    let meta = file.metadata().map_err(|e| Error::io(context(), e))?;
    if !meta.is_file() {
        return Err(not_regular(path));
    }
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
    let (digests, ignored) = parse_tokens(&text);
    Ok(Read {
        digests,
        stamp: stamp_of(&meta),
        ignored,
    })
}

/// The digests of the tokens in `text` (a token file's content), and the
/// lines ignored, with why (never their text).
fn parse_tokens(text: &str) -> (Vec<Digest>, Vec<(usize, String)>) {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut digests = Vec::new();
    let mut ignored = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let token = without_comment(line).trim();
        if token.is_empty() {
            continue;
        }
        match check_token(token) {
            Ok(()) => digests.push(digest(token)),
            Err(why) => ignored.push((i + 1, why)),
        }
    }
    (digests, ignored)
}

/// `line` up to its comment: a `#` at its start or after a space or tab.
fn without_comment(line: &str) -> &str {
    let bytes = line.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        if *b == b'#' && (i == 0 || matches!(bytes[i - 1], b' ' | b'\t')) {
            return &line[..i];
        }
    }
    line
}

fn warn_ignored(path: &Path, ignored: &[(usize, String)]) {
    for (line, why) in ignored.iter().take(MAX_LINES_WARNED) {
        tracing::warn!(file = %path.display(), line, "API token file line {line} ignored: {why}");
    }
    if ignored.len() > MAX_LINES_WARNED {
        tracing::warn!(file = %path.display(), "{} more API token file lines ignored", ignored.len() - MAX_LINES_WARNED);
    }
}

/// What makes a string usable as a token (the message never quotes it).
fn check_token(t: &str) -> std::result::Result<(), String> {
    if t.chars().any(|c| c == ' ' || c == '\t') {
        return Err("it holds a space or a tab inside: an API token is one word (a comment after it starts with \" #\")".into());
    }
    if t.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("it holds a control character: an API token cannot".into());
    }
    if t.chars().count() < MIN_TOKEN_LEN {
        return Err(format!(
            "too short: an API token needs at least {MIN_TOKEN_LEN} characters (e.g. `openssl rand -hex 32`)"
        ));
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
        assert!(e.to_string().contains("space or a tab inside"), "{e}");
    }

    #[test]
    fn lines_bom_comments_and_inner_spaces() {
        let text = "\u{feff}first-token-0123456789\n# ops\n  second-token-0123456789  # CI deploys\nthird#token-0123456789\nshort\nsp ace\nhas a space-0123456789\n\ttab-token-0123456789\t#\n";
        let (digests, ignored) = parse_tokens(text);
        for t in [
            "first-token-0123456789",
            "second-token-0123456789",
            "third#token-0123456789",
            "tab-token-0123456789",
        ] {
            assert!(digests.contains(&digest(t)), "{t}");
        }
        assert_eq!(digests.len(), 4);
        let lines: Vec<usize> = ignored.iter().map(|(l, _)| *l).collect();
        assert_eq!(lines, [5, 6, 7]);
        assert!(ignored[0].1.contains("too short"));
        // Inner spaces are said to be spaces, whatever the length.
        assert!(
            ignored[1].1.contains("space or a tab inside"),
            "{:?}",
            ignored[1]
        );
        assert!(ignored[2].1.contains("space or a tab inside"));
        assert!(!ignored.iter().any(|(_, why)| why.contains("has a space")));
    }

    #[cfg(unix)]
    #[test]
    fn a_token_file_rotates_fails_closed_and_must_be_private() {
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
        // The background reader does this once a second; here, at once.
        tokens.shared.reload();
        assert!(!tokens.check("first-token-0123456789"));
        assert!(tokens.check("second-token-0123456789"));
        // Loosened permissions: refused at start, and fail closed after.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = ApiTokens::from_file(&path).unwrap_err();
        assert!(e.to_string().contains("chmod 600"), "{e}");
        tokens.shared.reload();
        assert!(tokens.is_empty());
        // Deleted: every token is revoked; back: accepted again.
        write("second-token-0123456789\n");
        tokens.shared.reload();
        assert!(tokens.check("second-token-0123456789"));
        std::fs::remove_file(&path).unwrap();
        tokens.shared.reload();
        assert!(!tokens.check("second-token-0123456789"));
        assert!(tokens.shared.reader.lock().unwrap().problem.is_some());
        write("second-token-0123456789\n");
        tokens.shared.reload();
        assert!(tokens.check("second-token-0123456789"));
        // An empty (but readable) file revokes every token.
        write("# none\n");
        tokens.shared.reload();
        assert!(!tokens.check("second-token-0123456789"));
        assert!(tokens.is_empty());
        write("");
        assert!(ApiTokens::from_file(&path).is_err());
        // Not a regular file: refused at start (without opening it).
        let e = ApiTokens::from_file(dir.path()).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
    }
}
