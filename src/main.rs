//! The `apns` command. All logic lives in the library and `cli`.

#![forbid(unsafe_code)]

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
