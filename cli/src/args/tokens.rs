//! Which device tokens: on the command line, or streamed from a file
//! (`send`, `enqueue`).

use std::path::PathBuf;

use clap::Args;

/// The device tokens of a run.
#[derive(Debug, Args, Clone)]
pub struct TokensArgs {
    /// Read device tokens from a file (or stdin with "-"): one hex token per line, or JSON lines
    /// {"device_token":"..","payload":{..},"push_type":..,"priority":..,"expiration":..,"collapse_id":..,"apns_id":..,"topic":..}.
    /// Blank lines and lines starting with # are skipped. Streamed: any size. A bad line (not
    /// UTF-8, a token over 200 hex digits, over 64 KiB) is an invalid line of its own.
    #[arg(long, value_name = "PATH|-", help_heading = "Bulk sending")]
    pub tokens_file: Option<PathBuf>,
    /// Never draw the progress bar (it is drawn only when stderr is a terminal).
    #[arg(long, help_heading = "Bulk sending")]
    pub no_progress: bool,
    /// Hex device tokens (64 hex digits on devices; longer on simulators).
    #[arg(value_name = "DEVICE_TOKEN", required_unless_present = "tokens_file")]
    pub device_tokens: Vec<String>,
}

impl TokensArgs {
    /// The tokens file, opened (and checked) now, if one is given.
    pub fn open(&self) -> Result<Option<crate::files::Input>, crate::failure::Failure> {
        self.tokens_file
            .as_deref()
            .map(crate::files::open_input)
            .transpose()
    }

    /// Whether the tokens come from stdin (`--tokens-file -`).
    pub fn reads_stdin(&self) -> bool {
        self.tokens_file
            .as_ref()
            .is_some_and(|p| p.as_os_str() == "-")
    }

    /// Whether there are several notifications (a file, or more than one
    /// token): a summary and a progress bar are worth it.
    pub fn many(&self) -> bool {
        self.tokens_file.is_some() || self.device_tokens.len() > 1
    }
}
