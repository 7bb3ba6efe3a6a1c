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

use std::process::{Command, Stdio};

/// A program or service a test needs.
#[derive(Debug, Clone, Copy)]
pub enum Prerequisite {
    /// `redis-server` (the worker, enqueue, gateway-to-Redis, soak tests).
    Redis,
    /// `curl` built with HTTP/2.
    CurlHttp2,
    /// `openssl` (certificates and .p12 files).
    Openssl,
    /// `script(1)` from util-linux (a pseudo-terminal).
    Script,
    /// `mkfifo` (coreutils).
    Mkfifo,
    /// `python3` with PyJWT and cryptography.
    PyJwt,
    /// A D-Bus session with an unlocked Secret Service (gnome-keyring).
    SecretService,
}

impl Prerequisite {
    /// What is missing and how to install it: the `ignore` reason of its
    /// tests says the same.
    pub fn instruction(self) -> &'static str {
        match self {
            Prerequisite::Redis => "needs redis-server: apt install redis-server",
            Prerequisite::CurlHttp2 => "needs curl with HTTP/2: apt install curl",
            Prerequisite::Openssl => "needs openssl: apt install openssl",
            Prerequisite::Script => "needs script(1): apt install util-linux",
            Prerequisite::Mkfifo => "needs mkfifo: apt install coreutils",
            Prerequisite::PyJwt => "needs python3 with PyJWT: pip install pyjwt cryptography",
            Prerequisite::SecretService => {
                "needs a Secret Service: run inside dbus-run-session with gnome-keyring unlocked (see .ci/run)"
            }
        }
    }

    /// Whether it is here (the probes of `cli/build.rs`).
    pub fn present(self) -> bool {
        match self {
            Prerequisite::Redis => runs("redis-server", &["--version"]),
            Prerequisite::CurlHttp2 => Command::new("curl")
                .arg("-V")
                .stderr(Stdio::null())
                .output()
                .is_ok_and(|o| {
                    o.status.success() && String::from_utf8_lossy(&o.stdout).contains("HTTP2")
                }),
            Prerequisite::Openssl => runs("openssl", &["version"]),
            Prerequisite::Script => runs("script", &["--version"]),
            Prerequisite::Mkfifo => runs("mkfifo", &["--version"]),
            Prerequisite::PyJwt => runs("python3", &["-c", "import jwt, cryptography"]),
            Prerequisite::SecretService => {
                std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some_and(|v| !v.is_empty())
            }
        }
    }
}

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

/// Whether `program args` runs and succeeds (quietly).
fn runs(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
