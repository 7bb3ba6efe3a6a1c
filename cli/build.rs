//! Probes the programs and services some integration tests need
//! (`cli/tests/support/prerequisites.rs`), so that a test whose
//! prerequisite is missing is *ignored*, visibly, with what to install:
//! `cargo test` lists it as `ignored, needs redis-server: ...`.
//!
//! Under `CI=true` nothing is marked missing: those tests run, and the
//! check at their start fails them with the same message, so CI cannot
//! pass by skipping them. The probes only set `cfg`s for the tests; the
//! `apns` binary does not change.

use std::process::{Command, Stdio};

/// Whether a prerequisite is here.
type Probe = fn() -> bool;

/// `(cfg, probe)`: the cfg is set when the probe fails.
const PROBES: [(&str, Probe); 7] = [
    ("missing_redis", || runs("redis-server", &["--version"])),
    ("missing_curl_http2", curl_has_http2),
    ("missing_openssl", || runs("openssl", &["version"])),
    ("missing_script", || runs("script", &["--version"])),
    ("missing_mkfifo", || runs("mkfifo", &["--version"])),
    ("missing_pyjwt", || {
        runs("python3", &["-c", "import jwt, cryptography"])
    }),
    // A Secret Service needs a D-Bus session (`dbus-run-session`, with
    // gnome-keyring unlocked in it, as .ci/run does).
    ("missing_secret_service", || {
        std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some_and(|v| !v.is_empty())
    }),
];

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=CI");
    println!("cargo::rerun-if-env-changed=PATH");
    println!("cargo::rerun-if-env-changed=DBUS_SESSION_BUS_ADDRESS");
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    for (cfg, present) in PROBES {
        println!("cargo::rustc-check-cfg=cfg({cfg})");
        if !ci && !present() {
            println!("cargo::rustc-cfg={cfg}");
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

/// Whether `curl -V` lists HTTP2 among its features.
fn curl_has_http2() -> bool {
    Command::new("curl")
        .arg("-V")
        .stderr(Stdio::null())
        .output()
        .is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).contains("HTTP2"))
}
