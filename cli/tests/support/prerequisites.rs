//! What some tests need from the machine, and the one way they check it.
//!
//! `cli/build.rs` probes each of these. Outside CI a missing one sets a
//! cfg (`missing_redis`...) that marks its tests ignored, visibly, with the
//! same instruction as here:
//!
//! ```ignore
//! #[cfg_attr(missing_redis, ignore = "needs redis-server: apt install redis-server")]
//! ```
//!
//! Under `CI=true` no test is ignored this way: each calls [`require`] at
//! its start, which fails it when the prerequisite is missing. (Outside CI
//! the same call catches a prerequisite removed since the last build.)

use std::process::Command;

#[path = "../../probes.rs"]
mod probes;

pub use probes::Prerequisite;

/// The program `p` provides, checked with [`require`] and hermetic (no
/// proxy variable of the caller's): `program(Prerequisite::CurlHttp2)` is
/// `curl`.
#[track_caller]
pub fn program(p: Prerequisite) -> Command {
    require(p);
    let name = match p {
        Prerequisite::Redis => "redis-server",
        Prerequisite::CurlHttp2 => "curl",
        Prerequisite::Openssl => "openssl",
        Prerequisite::Script => "script",
        Prerequisite::Mkfifo => "mkfifo",
        Prerequisite::PyJwt => "python3",
        Prerequisite::SecretService => panic!("a Secret Service is not a program"),
    };
    let mut cmd = Command::new(name);
    super::hermetic(&mut cmd);
    cmd
}

/// Fails the test at once, saying what to install, when `p` is missing.
#[track_caller]
pub fn require(p: Prerequisite) {
    if !p.present() {
        let ci = std::env::var("CI").is_ok_and(|v| v == "true");
        let why = if ci {
            "CI=true runs every test"
        } else {
            "it was there when the tests were built; rebuild them to have this test ignored"
        };
        panic!("this test {} ({why})", p.instruction());
    }
}
