//! Helpers shared by the integration tests.

#![allow(dead_code)]

pub mod bulk;
pub mod certs;
pub mod prerequisites;
pub mod proxy;
pub mod raw;
pub mod redis;
pub mod sends;
pub mod soak;
pub mod web;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::{Duration, Instant};

use apns_provider::clock::Clock;
use apns_provider::mock::{MockServer, MockServerBuilder, TrustedKey};
use apns_provider::{Client, ClientBuilder, SigningKey};

pub use prerequisites::{program, require, Prerequisite};

pub const KEY_ID: &str = "ABCDE12345";
pub const TEAM_ID: &str = "TEAM123456";
pub const BUNDLE: &str = "com.example.app";
pub const DEVICE: &str = "00fc13adff785122b4ad28809a3420982341241421348097878e577c991de8f0";

/// How often [`wait_until`] and [`wait_until_async`] look again.
const POLL: Duration = Duration::from_millis(20);

/// Polls `condition` until it holds; panics naming `what` and the time
/// waited when it still does not after `within` (a bound against hanging,
/// not a timed assertion: make it generous). Blocks the thread: async
/// tests use [`wait_until_async`].
#[track_caller]
pub fn wait_until(what: &str, within: Duration, mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    while !condition() {
        let waited = start.elapsed();
        assert!(
            waited < within,
            "timed out after {waited:.1?} (of {within:?}) waiting until {what}"
        );
        std::thread::sleep(POLL);
    }
}

/// [`wait_until`] for async tests: sleeps on the runtime rather than
/// blocking one of its threads, and `condition` may await (`async || ...`).
pub async fn wait_until_async(
    what: &str,
    within: Duration,
    mut condition: impl AsyncFnMut() -> bool,
) {
    let start = Instant::now();
    while !condition().await {
        let waited = start.elapsed();
        assert!(
            waited < within,
            "timed out after {waited:.1?} (of {within:?}) waiting until {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// A fresh P-256 key in Apple's `.p8` form.
pub fn new_key_pem() -> String {
    apns_provider::auth::generate_p8_pem()
}

/// A fresh signing key.
pub fn new_key() -> SigningKey {
    SigningKey::from_pem(new_key_pem().as_bytes()).expect("generated key parses")
}

/// A mock builder trusting `key` as (KEY_ID, TEAM_ID) for BUNDLE.
pub fn mock_for(key: &SigningKey) -> MockServerBuilder {
    MockServer::builder().trust_key(
        TrustedKey::new(KEY_ID, TEAM_ID, key.public_key())
            .unwrap()
            .topics([BUNDLE]),
    )
}

/// A client builder pointed at `mock`, trusting its CA and nothing else.
pub fn client_for(mock: &MockServer, key: SigningKey) -> ClientBuilder {
    Client::builder()
        .no_proxy()
        .endpoint(mock.endpoint())
        .webpki_roots(false)
        .add_root_certificates_pem(mock.ca_pem().unwrap().as_bytes())
        .token_auth(key, KEY_ID, TEAM_ID)
        // Hermetic: whatever proxy the machine running the tests names.
        .no_proxy()
}

/// A started mock and a client for it.
pub async fn mock_and_client() -> (MockServer, Client) {
    let key = new_key();
    let mock = mock_for(&key).start().await.unwrap();
    let client = client_for(&mock, key).build().unwrap();
    (mock, client)
}

pub fn shared(clock: &(impl Clock + Clone + 'static)) -> Arc<dyn Clock> {
    Arc::new(clock.clone())
}

/// A private temporary directory.
pub fn temp_dir() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

/// Writes `contents` to `dir/name` with mode 0600 and returns the path.
pub fn write_file(dir: &Path, name: &str, contents: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    path
}

/// The `apns` binary built for these tests.
pub fn apns() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_apns"));
    cmd.env_remove("RUST_LOG")
        .env_remove("APNS_KEY_FILE")
        .env_remove("APNS_KEY_ID")
        .env_remove("APNS_TEAM_ID")
        .env_remove("APNS_TOPIC")
        .env_remove("APNS_ENV")
        .env_remove("APNS_API_TOKEN");
    hermetic(&mut cmd);
    cmd
}

/// A mock a test's `apns` talks to: the `--endpoint` to name and the
/// `--ca-file` that trusts it.
pub trait Target {
    fn endpoint_arg(&self) -> String;
    fn ca_file_arg(&self) -> &Path;
}

/// Any endpoint and CA file (an `apns serve` in front of a relay, a mock
/// addressed by Apple's host name with `--resolve`).
pub struct At<'a> {
    pub endpoint: String,
    pub ca_file: &'a Path,
}

impl<'a> At<'a> {
    pub fn new(endpoint: impl std::fmt::Display, ca_file: &'a Path) -> Self {
        At {
            endpoint: endpoint.to_string(),
            ca_file,
        }
    }
}

impl Target for At<'_> {
    fn endpoint_arg(&self) -> String {
        self.endpoint.clone()
    }
    fn ca_file_arg(&self) -> &Path {
        self.ca_file
    }
}

impl Target for MockProcess {
    fn endpoint_arg(&self) -> String {
        self.endpoint.clone()
    }
    fn ca_file_arg(&self) -> &Path {
        Path::new(&self.ca_file)
    }
}

impl Target for bulk::Setup {
    fn endpoint_arg(&self) -> String {
        self.mock.endpoint().to_string()
    }
    fn ca_file_arg(&self) -> &Path {
        &self.ca_path
    }
}

impl Target for redis::Setup {
    fn endpoint_arg(&self) -> String {
        self.mock.endpoint().to_string()
    }
    fn ca_file_arg(&self) -> &Path {
        &self.ca_path
    }
}

/// `apns WORDS --endpoint E --ca-file C`, pointed at `target` (for
/// certificate auth, a stored key or a profile: add the credentials).
pub fn apns_against(words: &[&str], target: &impl Target) -> Command {
    let mut cmd = apns();
    cmd.args(words)
        .arg("--endpoint")
        .arg(target.endpoint_arg())
        .arg("--ca-file")
        .arg(target.ca_file_arg());
    cmd
}

/// `apns WORDS --key-file KEY --team-id TEAM_ID --topic BUNDLE --endpoint E
/// --ca-file C`: `send`, `worker`, `serve` or `doctor` with token auth
/// against `target`.
pub fn apns_with_key(words: &[&str], target: &impl Target, key_file: &Path) -> Command {
    let mut cmd = apns_against(words, target);
    cmd.arg("--key-file")
        .arg(key_file)
        .args(["--team-id", TEAM_ID, "--topic", BUNDLE]);
    cmd
}

/// `apns send --key-file KEY --team-id TEAM_ID --topic BUNDLE --endpoint E
/// --ca-file C`, the command line most tests start from (hermetic, as
/// [`apns`] is): add the notification and the device tokens.
pub fn send_cmd(target: &impl Target, key_file: &Path) -> Command {
    apns_with_key(&["send"], target, key_file)
}

/// The proxy variables of the caller's environment (a corporate laptop's
/// `HTTPS_PROXY`), which no process a test starts may inherit: a test that
/// wants a proxy sets one itself.
pub const PROXY_VARS: [&str; 8] = [
    "https_proxy",
    "HTTPS_PROXY",
    "http_proxy",
    "HTTP_PROXY",
    "all_proxy",
    "ALL_PROXY",
    "no_proxy",
    "NO_PROXY",
];

/// Removes [`PROXY_VARS`] from what `cmd` will inherit (for `curl`, `sh`,
/// `script` and every other process a test starts).
pub fn hermetic(cmd: &mut Command) -> &mut Command {
    for var in PROXY_VARS {
        cmd.env_remove(var);
    }
    cmd
}

/// Runs a command off the async runtime's threads.
pub async fn run(mut cmd: Command) -> Output {
    tokio::task::spawn_blocking(move || cmd.output().expect("run apns"))
        .await
        .unwrap()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `apns mock` running as a process, with what its ready line said.
pub struct MockProcess {
    child: std::process::Child,
    pub endpoint: String,
    pub ca_file: String,
}

/// A new key written to `dir` as `AuthKey_<KEY_ID>.p8`, and an `apns mock`
/// command trusting it that writes its CA to `dir/mock-ca.pem`: returns
/// the key's path, the CA's path and the command (add flags, then
/// [`spawn_mock`]).
pub fn mock_command_trusting_a_new_key(dir: &Path) -> (PathBuf, PathBuf, Command) {
    let key_path = write_file(
        dir,
        &format!("AuthKey_{KEY_ID}.p8"),
        new_key_pem().as_bytes(),
    );
    let ca_out = dir.join("mock-ca.pem");
    let mut cmd = apns();
    cmd.arg("mock")
        .arg("--ca-out")
        .arg(&ca_out)
        .arg("--trust-key")
        .arg(format!("{KEY_ID}={TEAM_ID}:{}", key_path.display()));
    (key_path, ca_out, cmd)
}

/// Starts `cmd` (an `apns mock ...` command) and waits for its ready line.
pub fn spawn_mock(mut cmd: Command) -> MockProcess {
    use std::io::BufRead;
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start apns mock");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let ready: serde_json::Value = serde_json::from_str(&line)
        .unwrap_or_else(|e| panic!("apns mock's ready line {line:?}: {e}"));
    MockProcess {
        child,
        endpoint: ready["endpoint"].as_str().unwrap().to_string(),
        ca_file: ready["ca_file"].as_str().unwrap().to_string(),
    }
}

impl MockProcess {
    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The port it listens on.
    pub fn port(&self) -> &str {
        self.endpoint.rsplit(':').next().unwrap()
    }

    /// Stops it with SIGTERM, as an operator would, and returns its output.
    pub async fn stop(self) -> Output {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        let child = self.child;
        tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
            .await
            .unwrap()
    }
}
