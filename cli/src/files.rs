//! The files of a bulk send: the tokens file (or stdin), and the outputs
//! (`--results`, `--unregistered-out`), opened so that an output can never
//! overwrite the input or another output.
//!
//! Outputs are opened without truncating, their identity (device and inode)
//! is compared with the input's and with each other's, and only then are
//! they truncated (or, with `--resume`, appended to). Symbolic links, hard
//! links and `./x` against `x` are all caught, since the open files are
//! compared, not their names.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use super::input::Source;
use super::Failure;

/// What makes two open files the same file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Identity {
    device: u64,
    inode: u64,
}

/// Regular files only: devices (`/dev/null`, `/dev/full`) and pipes may be
/// named by several flags at once without harm.
fn identity(file: &File) -> Option<Identity> {
    let meta = file.metadata().ok()?;
    if !meta.is_file() {
        return None;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        Some(Identity {
            device: meta.dev(),
            inode: meta.ino(),
        })
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// The tokens file, opened.
pub struct Input {
    pub source: Source,
    /// The flag and path, for messages.
    name: String,
    identity: Option<Identity>,
    /// Without unix identities: the canonical path, compared instead.
    canonical: Option<PathBuf>,
}

/// Opens `--tokens-file PATH` (or stdin for `-`).
pub fn open_input(path: &Path) -> Result<Input, Failure> {
    if path.as_os_str() == "-" {
        return Ok(Input {
            identity: stdin_identity(),
            source: Box::new(std::io::stdin()),
            name: "--tokens-file - (stdin)".into(),
            canonical: None,
        });
    }
    let file = File::open(path)
        .map_err(|e| Failure::usage(format!("cannot open tokens file {}: {e}", path.display())))?;
    Ok(Input {
        identity: identity(&file),
        source: Box::new(file),
        name: format!("--tokens-file {}", path.display()),
        canonical: std::fs::canonicalize(path).ok(),
    })
}

/// Stdin redirected from a file (`< tokens.txt`) is that file.
fn stdin_identity() -> Option<Identity> {
    #[cfg(unix)]
    {
        use std::os::fd::AsFd;
        let fd = std::io::stdin().as_fd().try_clone_to_owned().ok()?;
        identity(&File::from(fd))
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// An output file, opened and checked.
pub struct Output {
    pub file: File,
    pub path: PathBuf,
    /// `--results PATH` or `--unregistered-out PATH`, for messages.
    pub name: String,
}

/// Opens the outputs: `(flag, path)` pairs, in the order given. Refuses,
/// before anything is truncated, an output that is the input or another
/// output. With `append` (for `--resume`) they are opened for reading and
/// appending; otherwise they are truncated once checked.
pub fn open_outputs(
    input: Option<&Input>,
    outputs: &[(&'static str, Option<&Path>)],
    append: bool,
) -> Result<Vec<Option<Output>>, Failure> {
    let mut opened: Vec<Option<(Output, bool)>> = Vec::new();
    let refuse = |opened: Vec<Option<(Output, bool)>>, message: String| {
        // Files this run created (empty) are removed again.
        for (output, created) in opened.into_iter().flatten() {
            if created && output.file.metadata().is_ok_and(|m| m.len() == 0) {
                let _ = std::fs::remove_file(&output.path);
            }
        }
        Err(Failure::usage(message))
    };
    for (flag, path) in outputs {
        let Some(path) = path else {
            opened.push(None);
            continue;
        };
        let existed = std::fs::symlink_metadata(path).is_ok();
        let mut options = OpenOptions::new();
        options.create(true);
        if append {
            options.read(true).append(true);
        } else {
            options.write(true);
        }
        let file = match options.open(path) {
            Ok(f) => f,
            Err(e) => {
                return refuse(
                    opened,
                    format!("cannot create {flag} {}: {e}", path.display()),
                )
            }
        };
        let output = Output {
            file,
            path: path.to_path_buf(),
            name: format!("{flag} {}", path.display()),
        };
        if let Some(input) = input {
            if same_file(&output, input.identity, input.canonical.as_deref()) {
                let message = format!(
                    "{} is the same file as {}: it would be overwritten; write the {} to another file",
                    output.name,
                    input.name,
                    what(flag)
                );
                opened.push(Some((output, !existed)));
                return refuse(opened, message);
            }
        }
        let clash = opened.iter().flatten().find(|(other, _)| {
            let canonical = std::fs::canonicalize(&other.path).ok();
            same_file(&output, identity(&other.file), canonical.as_deref())
        });
        if let Some((other, _)) = clash {
            let message = format!(
                "{} is the same file as {}: give each output its own file",
                output.name, other.name
            );
            opened.push(Some((output, !existed)));
            return refuse(opened, message);
        }
        opened.push(Some((output, !existed)));
    }
    let mut outputs = Vec::new();
    for entry in opened {
        let Some((output, _)) = entry else {
            outputs.push(None);
            continue;
        };
        // Only regular files are truncated (a device such as /dev/full
        // cannot be).
        if !append && output.file.metadata().is_ok_and(|m| m.is_file()) {
            output
                .file
                .set_len(0)
                .map_err(|e| Failure::usage(format!("cannot truncate {}: {e}", output.name)))?;
        }
        outputs.push(Some(output));
    }
    Ok(outputs)
}

/// Whether `output` is the file with `identity` (or, where files have no
/// identity, at the `canonical` path).
fn same_file(output: &Output, identity_b: Option<Identity>, canonical: Option<&Path>) -> bool {
    #[cfg(unix)]
    {
        let _ = canonical;
        matches!((identity(&output.file), identity_b), (Some(a), Some(b)) if a == b)
    }
    #[cfg(not(unix))]
    {
        let _ = identity_b;
        canonical.is_some_and(|c| std::fs::canonicalize(&output.path).is_ok_and(|p| p == c))
    }
}

fn what(flag: &str) -> &'static str {
    if flag == "--results" {
        "results"
    } else {
        "tokens to prune"
    }
}
