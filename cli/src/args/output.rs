//! `--output`: how a command prints its results on stdout, the same flag
//! on every command.

use clap::{Args, ValueEnum};

/// The format of what a command prints on stdout.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Output {
    /// Readable lines.
    Human,
    /// One JSON object per line (per result, then a summary where there is one).
    Json,
}

/// `--output human|json`.
#[derive(Debug, Args, Clone, Copy)]
pub struct OutputArgs {
    /// Output format on stdout (result files and ready lines are always JSON).
    #[arg(long, value_enum, default_value = "human")]
    pub output: Output,
}
