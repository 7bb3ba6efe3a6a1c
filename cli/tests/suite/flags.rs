//! Numeric flags: every numeric flag of every command refuses NaN, inf,
//! -1 and u64::MAX with a usage error naming the flag (exit 2), before
//! anything runs (no ready line, no panic), and 0 never panics.
//!
//! The flags are found in the binary itself: each command's `--help` lists
//! its flags, and a flag is numeric when clap refuses "abc" for it but not
//! "1". A new numeric flag is therefore tested without touching this file.

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{apns, temp_dir};

/// A child process killed when dropped (a failing assert must not leave it
/// running), with its process group: `apns bench` cut at the deadline must
/// not leave the mock it spawned behind.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        #[cfg(unix)]
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.0.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What one run did: its exit code (None: still running at the deadline,
/// then killed), stdout and stderr.
pub(super) struct Ran {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `apns ARGS` for at most `limit` (then kills it), in a private
/// home, without proxies or APNS_* variables.
pub(super) fn run(args: &[String], limit: Duration) -> Ran {
    run_env(args, &[], limit)
}

/// [`run`] with these environment variables set.
pub(super) fn run_env(args: &[String], env: &[(&str, &str)], limit: Duration) -> Ran {
    let dir = temp_dir();
    let out = std::fs::File::create(dir.path().join("out")).unwrap();
    let err = std::fs::File::create(dir.path().join("err")).unwrap();
    let mut cmd: Command = apns();
    cmd.args(args)
        .env("HOME", dir.path())
        .env("XDG_CONFIG_HOME", dir.path())
        .env("XDG_DATA_HOME", dir.path())
        .env_remove("APNS_PROFILE")
        .env_remove("APNS_REDIS_URL")
        .env_remove("APNS_CONFIG")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    // Its own process group, killed whole by `Killed`.
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut child = Killed(cmd.spawn().expect("start apns"));
    let deadline = Instant::now() + limit;
    let code = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break Some(status.code().unwrap_or(-1));
        }
        if Instant::now() >= deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    drop(child);
    Ran {
        code,
        stdout: std::fs::read_to_string(dir.path().join("out")).unwrap_or_default(),
        stderr: std::fs::read_to_string(dir.path().join("err")).unwrap_or_default(),
    }
}

fn help(path: &[String]) -> String {
    let mut args = path.to_vec();
    args.push("--help".into());
    let ran = run(&args, Duration::from_secs(20));
    assert_eq!(ran.code, Some(0), "{args:?}: {}", ran.stderr);
    ran.stdout
}

/// The subcommands a `--help` lists (its "Commands:" section).
fn subcommands(help: &str) -> Vec<String> {
    let Some(start) = help.find("\nCommands:\n") else {
        return Vec::new();
    };
    help[start + 11..]
        .lines()
        .take_while(|l| l.starts_with("  "))
        .filter(|l| !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(String::from)
        .collect()
}

/// The flags a `--help` lists that take a value (`--flag <VALUE>`).
fn value_flags(help: &str) -> BTreeSet<String> {
    help.lines()
        .filter_map(|l| {
            let l = l.trim_start();
            let l = l
                .strip_prefix('-')
                .filter(|r| r.len() > 3 && &r[1..3] == ", ")
                .map_or(l, |r| &r[3..]);
            let rest = l.strip_prefix("--")?;
            let (name, after) = rest.split_once(' ')?;
            after.starts_with('<').then(|| name.to_string())
        })
        .collect()
}

/// Every command path (`send`, `channel create`...) of the binary.
fn command_paths() -> Vec<Vec<String>> {
    let mut todo = vec![Vec::<String>::new()];
    let mut all = Vec::new();
    while let Some(path) = todo.pop() {
        let text = help(&path);
        for sub in subcommands(&text) {
            let mut p = path.clone();
            p.push(sub);
            todo.push(p);
        }
        if !path.is_empty() {
            all.push((path, text));
        }
    }
    all.into_iter().map(|(p, _)| p).collect()
}

/// Whether clap refuses `value` for `--flag` of `path`: a trailing unknown
/// argument makes every run stop at parsing, whichever way it goes.
fn refused(path: &[String], flag: &str, value: &str) -> bool {
    let mut args = path.to_vec();
    args.push(format!("--{flag}={value}"));
    args.push("--not-a-flag-of-any-command".into());
    let ran = run(&args, Duration::from_secs(20));
    assert_eq!(ran.code, Some(2), "{args:?}: {}", ran.stderr);
    ran.stderr
        .contains(&format!("invalid value '{value}' for '--{flag}"))
}

#[test]
fn every_numeric_flag_refuses_nan_inf_negative_and_u64_max_with_a_usage_error() {
    let paths = command_paths();
    let names: Vec<String> = paths.iter().map(|p| p.join(" ")).collect();
    for expected in [
        "send",
        "serve",
        "worker",
        "enqueue",
        "mock",
        "bench",
        "channel create",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} not found in {names:?}"
        );
    }
    let mut numeric = Vec::new();
    for path in &paths {
        let text = help(path);
        for flag in value_flags(&text) {
            if refused(path, &flag, "abc") && !refused(path, &flag, "1") {
                numeric.push((path.clone(), flag));
            }
        }
    }
    let found: Vec<String> = numeric
        .iter()
        .map(|(p, f)| format!("{} --{f}", p.join(" ")))
        .collect();
    // The flags of the issue are among them (the walk finds flags at all).
    for expected in [
        "serve --shutdown-grace",
        "serve --max-concurrent-requests",
        "serve --max-connections",
        "serve --max-body",
        "worker --concurrency",
        "worker --claim-idle",
        "send --timeout",
        "mock --max-streams",
    ] {
        assert!(
            found.iter().any(|f| f == expected),
            "{expected} not in {found:?}"
        );
    }

    for (path, flag) in &numeric {
        for value in ["NaN", "inf", "0", "-1", "18446744073709551615"] {
            let mut args = path.clone();
            args.push(format!("--{flag}={value}"));
            let ran = run(&args, Duration::from_secs(3));
            let what = format!("apns {}", args.join(" "));
            assert_ne!(ran.code, Some(101), "{what} panicked: {}", ran.stderr);
            assert!(!ran.stderr.contains("panicked"), "{what}: {}", ran.stderr);
            if value == "0" {
                // Meaningful for some flags (--badge 0, --stats-interval 0):
                // then the command goes on, and fails for want of other
                // flags, or runs (a mock) until killed. Refused, it is named.
                if ran.stderr.contains("invalid value") {
                    assert_eq!(ran.code, Some(2), "{what}: {}", ran.stderr);
                    assert!(
                        ran.stderr.contains(&format!("'--{flag}")),
                        "{what}: {}",
                        ran.stderr
                    );
                }
                continue;
            }
            assert_eq!(ran.code, Some(2), "{what}: {}", ran.stderr);
            assert!(
                ran.stderr
                    .contains(&format!("invalid value '{value}' for '--{flag}")),
                "{what}: {}",
                ran.stderr
            );
            assert!(ran.stderr.contains("expected"), "{what}: {}", ran.stderr);
            assert!(ran.stdout.is_empty(), "{what} printed {:?}", ran.stdout);
        }
    }
}

/// `--metrics-listen` on an address other than loopback: one warning line
/// on stderr saying what to do, from every command that takes the flag
/// (found from `--help`); none on loopback.
#[test]
fn metrics_listen_off_loopback_warns_in_every_command_that_takes_it() {
    let warning =
        "apns: warning: --metrics-listen 0.0.0.0:0 serves /metrics without authentication";
    let mut takers = Vec::new();
    for path in command_paths() {
        if !value_flags(&help(&path)).contains("metrics-listen") {
            continue;
        }
        for (addr, warned) in [
            ("0.0.0.0:0", true),
            ("[::]:0", true),
            ("127.0.0.1:0", false),
        ] {
            let mut args = path.clone();
            args.push(format!("--metrics-listen={addr}"));
            args.push("--not-a-flag-of-any-command".into());
            let ran = run(&args, Duration::from_secs(20));
            let lines = ran
                .stderr
                .lines()
                .filter(|l| l.contains("apns: warning: --metrics-listen"))
                .count();
            assert_eq!(lines, warned as usize, "{args:?}: {}", ran.stderr);
            if addr == "0.0.0.0:0" {
                let line = ran.stderr.lines().find(|l| l.starts_with(warning));
                let line = line.unwrap_or_else(|| panic!("{args:?}: {}", ran.stderr));
                assert!(line.contains("bind to loopback"), "{line}");
            }
        }
        takers.push(path.join(" "));
    }
    for expected in ["send", "worker"] {
        assert!(
            takers.iter().any(|t| t == expected),
            "{expected} not in {takers:?}"
        );
    }
}

/// A real `apns send` to a mock with `--metrics-listen 0.0.0.0:0`: the
/// warning, once, and the send still goes through.
#[test]
fn a_send_with_public_metrics_warns_once_and_sends() {
    use crate::support::{mock_command_trusting_a_new_key, spawn_mock, DEVICE, TEAM_ID};
    let dir = temp_dir();
    let (key, _ca, cmd) = mock_command_trusting_a_new_key(dir.path());
    let mock = spawn_mock(cmd);
    let _kill_mock = KillPid(mock.pid());
    let args: Vec<String> = [
        "send",
        "--key-file",
        key.to_str().unwrap(),
        "--team-id",
        TEAM_ID,
        "--topic",
        crate::support::BUNDLE,
        "--env",
        "sandbox",
        "--endpoint",
        &mock.endpoint,
        "--ca-file",
        &mock.ca_file,
        "--metrics-listen",
        "0.0.0.0:0",
        "--timeout",
        "10",
        "--alert",
        "hi",
        DEVICE,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let ran = run(&args, Duration::from_secs(30));
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
    let warnings = ran
        .stderr
        .lines()
        .filter(|l| l.starts_with("apns: warning: --metrics-listen 0.0.0.0:0"))
        .count();
    assert_eq!(warnings, 1, "{}", ran.stderr);
}

/// Kills a process by id when dropped (MockProcess has no Drop of its own).
struct KillPid(u32);

impl Drop for KillPid {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", &self.0.to_string()])
            .status();
    }
}

/// Issue 20: every command that takes `--env` refuses `bogus` with the
/// same message, at parse time (exit 2, nothing run). The commands are
/// found from `--help`.
#[test]
fn every_env_refuses_bogus_with_the_same_message() {
    let mut messages = BTreeSet::new();
    let mut takers = Vec::new();
    for path in command_paths() {
        if !value_flags(&help(&path)).contains("env") {
            continue;
        }
        let mut args = path.clone();
        args.push("--env=bogus".into());
        let ran = run(&args, Duration::from_secs(20));
        let what = path.join(" ");
        assert_eq!(ran.code, Some(2), "{what}: {}", ran.stderr);
        assert!(ran.stdout.is_empty(), "{what}: {}", ran.stdout);
        let first = ran.stderr.lines().next().unwrap_or_default().to_string();
        assert!(
            first.contains("invalid value 'bogus' for '--env"),
            "{what}: {first}"
        );
        messages.insert(first);
        takers.push(what);
    }
    for expected in [
        "send",
        "worker",
        "serve",
        "doctor",
        "mock",
        "broadcast",
        "channel create",
        "key add",
    ] {
        assert!(
            takers.iter().any(|t| t == expected),
            "{expected} not in {takers:?}"
        );
    }
    assert_eq!(messages.len(), 1, "{messages:#?}");
}

/// Issue 20: `--push-type` is checked at parse time in `enqueue` as in
/// `send`: no Redis is reached, nothing is read.
#[test]
fn push_type_is_checked_where_it_is_read() {
    for command in ["send", "enqueue"] {
        let args: Vec<String> = [
            command,
            "--redis",
            "redis://127.0.0.1:9",
            "--push-type",
            "alrt",
            "--alert",
            "hi",
            "00fc13ad",
        ]
        .iter()
        .filter(|a| command == "enqueue" || !a.starts_with("redis") && **a != "--redis")
        .map(|a| a.to_string())
        .collect();
        let ran = run(&args, Duration::from_secs(20));
        assert_eq!(ran.code, Some(2), "{command}: {}", ran.stderr);
        assert!(
            ran.stderr.contains("invalid value 'alrt' for '--push-type")
                && ran.stderr.contains("expected one of alert, background"),
            "{command}: {}",
            ran.stderr
        );
    }
}

/// Issue 20: rendered at 60 columns, every example of every command's
/// `--help` is still a command (or a comment) on each line, or continues
/// the one before with `\`: clap's wrapping broke none, so each pastes as
/// written.
#[test]
fn help_examples_paste_at_sixty_columns() {
    let mut seen = 0;
    for path in command_paths() {
        let mut args = path.clone();
        args.push("--help".into());
        let ran = run_env(&args, &[("COLUMNS", "60")], Duration::from_secs(20));
        assert_eq!(ran.code, Some(0), "{args:?}: {}", ran.stderr);
        let mut in_examples = false;
        let mut continued = false;
        for line in ran.stdout.lines() {
            if line == "EXAMPLES:" || line == "EXAMPLE:" {
                in_examples = true;
                continue;
            }
            if line.trim().is_empty() {
                in_examples = false;
                continue;
            }
            if !in_examples {
                continue;
            }
            seen += 1;
            let word = line.split_whitespace().next().unwrap_or_default();
            let starts = ["apns", "curl", "echo", "export", "#"].contains(&word);
            assert!(
                starts || continued,
                "apns {}: a broken example line {line:?} in:\n{}",
                path.join(" "),
                ran.stdout
            );
            continued = line.ends_with('\\') && word != "#";
        }
    }
    assert!(seen > 50, "only {seen} example lines found");
}
