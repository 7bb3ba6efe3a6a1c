//! `--dry-run`, `--curl` and `--reveal`: what `send` and `broadcast` do
//! instead of sending.

use clap::Args;

/// Check or show what would be sent, without sending.
#[derive(Debug, Args, Clone, Copy)]
pub struct CheckingArgs {
    /// Build and validate every notification (payload size, lints, fields) without connecting;
    /// print what would be sent: the request line, its headers and the payload.
    #[arg(long, conflicts_with = "curl", help_heading = "Checking")]
    pub dry_run: bool,
    /// Print the equivalent curl command for each notification instead of sending.
    #[arg(long, help_heading = "Checking")]
    pub curl: bool,
    /// With --curl: put the real provider token in the command instead of $(apns token ...).
    #[arg(long, requires = "curl", help_heading = "Checking")]
    pub reveal: bool,
}
