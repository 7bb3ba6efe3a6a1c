//! Helpers for the tests of `apns send` bulk sends: an in-process mock, a
//! key file and its CA, the command line pointed at them, and readers for
//! result lines and the summary.

use super::*;

/// A mock for `apns send` to talk to, with the key and CA files it needs.
pub struct Setup {
    pub dir: tempfile::TempDir,
    pub key_path: std::path::PathBuf,
    pub ca_path: std::path::PathBuf,
    pub mock: apns_provider::mock::MockServer,
}

/// The 64-digit device token of line `i`.
pub fn token(i: u64) -> String {
    format!("{i:064x}")
}

/// A key, a mock trusting it (after `tweak`), and its CA file.
pub async fn setup_with(
    tweak: impl FnOnce(apns_provider::mock::MockServerBuilder) -> apns_provider::mock::MockServerBuilder,
) -> Setup {
    let dir = temp_dir();
    let pem = new_key_pem();
    let key_path = write_file(dir.path(), &format!("AuthKey_{KEY_ID}.p8"), pem.as_bytes());
    let key = apns_provider::SigningKey::from_pem(pem.as_bytes()).unwrap();
    let mock = tweak(mock_for(&key)).start().await.unwrap();
    let ca_path = dir.path().join("ca.pem");
    mock.write_ca_file(&ca_path).unwrap();
    Setup {
        dir,
        key_path,
        ca_path,
        mock,
    }
}

/// `apns send` with the key, team, topic, endpoint and CA of `s`.
pub fn send(s: &Setup) -> std::process::Command {
    send_cmd(s, &s.key_path)
}

/// Every line of a JSON lines file, parsed.
pub fn read_json_lines(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The summary object apns writes on stderr with --output json.
pub fn summary(stderr_text: &str) -> serde_json::Value {
    let line = stderr_text
        .lines()
        .rev()
        .find(|l| l.starts_with("{\"summary\""))
        .expect("a summary line");
    serde_json::from_str::<serde_json::Value>(line).unwrap()["summary"].clone()
}

/// Kills the process `pid` if the test fails while it runs.
pub struct KillOnPanic(pub u32);

impl Drop for KillOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &self.0.to_string()])
                .status();
        }
    }
}
