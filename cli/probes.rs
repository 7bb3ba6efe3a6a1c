//! The programs and services some integration tests need, and how each is
//! probed: one list, read by `build.rs` (which marks the tests of a missing
//! one ignored, outside CI) and by `tests/support/prerequisites.rs` (which
//! fails such a test at its start when it runs anyway, as under CI=true).
// Each side uses its own part of this file.
#![allow(dead_code)]

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
    /// Every prerequisite.
    pub const ALL: [Prerequisite; 7] = [
        Prerequisite::Redis,
        Prerequisite::CurlHttp2,
        Prerequisite::Openssl,
        Prerequisite::Script,
        Prerequisite::Mkfifo,
        Prerequisite::PyJwt,
        Prerequisite::SecretService,
    ];

    /// The cfg `build.rs` sets when it is missing (outside CI).
    pub fn missing_cfg(self) -> &'static str {
        match self {
            Prerequisite::Redis => "missing_redis",
            Prerequisite::CurlHttp2 => "missing_curl_http2",
            Prerequisite::Openssl => "missing_openssl",
            Prerequisite::Script => "missing_script",
            Prerequisite::Mkfifo => "missing_mkfifo",
            Prerequisite::PyJwt => "missing_pyjwt",
            Prerequisite::SecretService => "missing_secret_service",
        }
    }

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

    /// Whether it is here.
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
            // A Secret Service needs a D-Bus session (`dbus-run-session`,
            // with gnome-keyring unlocked in it, as .ci/run does).
            Prerequisite::SecretService => {
                std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some_and(|v| !v.is_empty())
            }
        }
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
