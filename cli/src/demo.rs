//! `apns demo`: a real send, end to end, with nothing but this binary.

use std::path::{Path, PathBuf};

use apns_provider::mock::{MockServer, TrustedKey};
use apns_provider::payload::{Alert, InterruptionLevel, LiveActivityEvent, Sound};
use apns_provider::{Client, Notification, Payload, Priority, PushType, SigningKey};

use super::args::Output;
use super::failure::{exit, Failure};

const KEY_ID: &str = "DEMOKEY001";
const TEAM_ID: &str = "DEMOTEAM01";
const BUNDLE: &str = "com.example.demo";
const DEVICE: &str = "00fc13adff785122b4ad28809a3420982341241421348097878e577c991de8f0";
const DEAD_DEVICE: &str = "0badc0de0badc0de0badc0de0badc0de0badc0de0badc0de0badc0de0badc0de";

/// Prints a line on stdout; if stdout is closed (`apns demo | head -1`),
/// returns from the command quietly, so the throwaway key and CA are
/// removed on the way out instead of left behind by an abrupt exit.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write;
        if writeln!(std::io::stdout(), $($arg)*).is_err() {
            return Ok(exit::OK);
        }
    }};
}

pub async fn run(output: Output) -> Result<u8, Failure> {
    let human = output == Output::Human;
    let dir = TempDir::new()?;
    if human {
        say!("apns demo: a throwaway key, the built-in mock APNs server, real TLS and HTTP/2.\n");
    }

    // 1. A throwaway key, as Apple would issue it.
    let key_path = dir.path().join(format!("AuthKey_{KEY_ID}.p8"));
    apns_provider::keystore::write_private(
        &key_path,
        apns_provider::auth::generate_p8_pem().as_bytes(),
    )?;
    let key = SigningKey::from_file(&key_path)?;
    if human {
        say!(
            "key       {} (key id {KEY_ID}, team {TEAM_ID})",
            key_path.display()
        );
    }

    // 2. The mock, trusting that key, with one device token reported dead.
    let mock = MockServer::builder()
        .trust_key(TrustedKey::new(KEY_ID, TEAM_ID, key.public_key())?.topics([BUNDLE]))
        .unregistered(DEAD_DEVICE, 1_700_000_000_000)
        .start()
        .await?;
    let ca_path = dir.path().join("mock-ca.pem");
    mock.write_ca_file(&ca_path)?;
    if human {
        say!("mock      {} (CA {})\n", mock.endpoint(), ca_path.display());
    }

    // 3. A client trusting the mock's CA explicitly: verification stays on.
    // Never through a proxy: the mock runs in this process, on loopback,
    // whatever HTTPS_PROXY or ALL_PROXY say.
    let client = Client::builder()
        .endpoint(mock.endpoint())
        .no_proxy()
        .add_root_certificates_file(&ca_path)
        .token_auth(key, KEY_ID, TEAM_ID)
        .build()?;

    let sends = [
        (
            "alert",
            Notification::builder(
                DEVICE,
                Payload::builder()
                    .alert(Alert::new().title("Order shipped").body("Arrives Tuesday"))
                    .badge(1)
                    .sound(Sound::named("default"))
                    .interruption_level(InterruptionLevel::TimeSensitive)
                    .custom("order_id", 1234)
                    .build(),
            )
            .topic(BUNDLE),
        ),
        (
            "background",
            Notification::builder(DEVICE, Payload::background())
                .topic(BUNDLE)
                .push_type(PushType::Background)
                .priority(Priority::Normal),
        ),
        (
            "liveactivity",
            Notification::builder(
                DEVICE,
                Payload::builder()
                    .event(LiveActivityEvent::Update)
                    .timestamp(now_secs())
                    .content_state(serde_json::json!({"eta": "12:30", "stops": 2}))
                    .build(),
            )
            .topic(PushType::Liveactivity.topic_for(BUNDLE))
            .push_type(PushType::Liveactivity),
        ),
        (
            "voip",
            Notification::builder(DEVICE, Payload::builder().custom("caller", "Ada").build())
                .topic(PushType::Voip.topic_for(BUNDLE))
                .push_type(PushType::Voip),
        ),
        (
            "to a dead token",
            Notification::builder(DEAD_DEVICE, Payload::alert("Are you there?")).topic(BUNDLE),
        ),
    ];

    let mut unexpected = 0;
    for (label, builder) in sends {
        let notification = builder.build()?;
        let response = client.send(&notification).await?;
        let expected = if notification.device_token().as_str() == DEAD_DEVICE {
            !response.is_accepted()
        } else {
            response.is_accepted()
        };
        if !expected {
            unexpected += 1;
        }
        if human {
            say!(
                "{label:<16} {:<60} apns-id={}",
                response.describe(),
                response.apns_id().unwrap_or("-")
            );
            say!(
                "{:<16} payload {}",
                "",
                String::from_utf8_lossy(notification.payload())
            );
        } else {
            say!(
                "{}",
                serde_json::json!({
                    "send": label,
                    "push_type": notification.push_type().as_str(),
                    "device_token": notification.device_token().as_str(),
                    "status": response.status(),
                    "apns_id": response.apns_id(),
                    "reason": response.reason().map(|r| r.as_str()),
                    "timestamp": response.timestamp_millis(),
                    "payload": String::from_utf8_lossy(notification.payload()),
                })
            );
        }
    }

    let stats = mock.stats();
    if !human {
        say!(
            "{}",
            serde_json::json!({"summary": {
                "requests": stats.requests,
                "connections": stats.connections,
                "tokens_verified": stats.tokens_verified,
                "tokens_minted": client.stats().tokens_minted,
                "unexpected": unexpected,
            }})
        );
        return Ok(if unexpected > 0 {
            exit::REJECTED
        } else {
            exit::OK
        });
    }
    say!(
        "\nmock saw {} requests on {} connection, verified {} provider token (cached after that); client minted {} token.",
        stats.requests,
        stats.connections,
        stats.tokens_verified,
        client.stats().tokens_minted
    );
    say!("\nThe same first send with curl, against `apns mock` (which prints its endpoint and CA file):");
    say!(
        "  curl --http2 --cacert CA_FILE \\\n    -H \"authorization: bearer $(apns token --key-file AuthKey_{KEY_ID}.p8 --team-id {TEAM_ID})\" \\\n    -H 'apns-topic: {BUNDLE}' -H 'apns-push-type: alert' \\\n    -d '{{\"aps\":{{\"alert\":\"hi\"}}}}' \\\n    ENDPOINT/3/device/{DEVICE}"
    );
    say!("\nFor real devices: apns send --key-file AuthKey_<KEYID>.p8 --team-id <TEAM> --topic <bundle id> --env sandbox --alert hi <device token>");
    if unexpected > 0 {
        eprintln!("apns demo: {unexpected} send(s) did not behave as expected");
        return Ok(exit::REJECTED);
    }
    Ok(exit::OK)
}

fn now_secs() -> u64 {
    apns_provider::clock::now_unix_seconds()
}

/// A private directory removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> Result<Self, Failure> {
        let path = std::env::temp_dir().join(format!(
            "apns-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        let mut builder = std::fs::DirBuilder::new();
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            builder.mode(0o700);
        }
        builder
            .create(&path)
            .map_err(|e| Failure::usage(format!("cannot create {}: {e}", path.display())))?;
        Ok(TempDir(path))
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
