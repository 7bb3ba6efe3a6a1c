//! Probes the programs and services some integration tests need
//! (`cli/tests/support/prerequisites.rs`), so that a test whose
//! prerequisite is missing is *ignored*, visibly, with what to install:
//! `cargo test` lists it as `ignored, needs redis-server: ...`.
//!
//! Under `CI=true` nothing is marked missing: those tests run, and the
//! check at their start fails them with the same message, so CI cannot
//! pass by skipping them. The probes only set `cfg`s for the tests; the
//! `apns` binary does not change.

mod probes;

use probes::Prerequisite;

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-changed=probes.rs");
    println!("cargo::rerun-if-env-changed=CI");
    println!("cargo::rerun-if-env-changed=PATH");
    println!("cargo::rerun-if-env-changed=DBUS_SESSION_BUS_ADDRESS");
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    for p in Prerequisite::ALL {
        let cfg = p.missing_cfg();
        println!("cargo::rustc-check-cfg=cfg({cfg})");
        if !ci && !p.present() {
            println!("cargo::rustc-cfg={cfg}");
        }
    }
}
