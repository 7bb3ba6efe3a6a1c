//! The payload as flags (`--alert`, the alert fields, `--payload`,
//! `--payload-file`) and the payload they build. The whole-payload and
//! alert-text groups are shared with `apns broadcast`.

use std::io::Read;
use std::path::{Path, PathBuf};

use apns_provider::payload::{Alert, InterruptionLevel, PayloadBuilder, Sound};
use apns_provider::Payload;
use clap::Args;

use super::numbers;
use crate::failure::Failure;

/// The whole payload, sent byte for byte: `--payload` or `--payload-file`.
#[derive(Debug, Args)]
pub struct WholePayloadArgs {
    /// The whole payload as JSON, sent byte for byte.
    #[arg(long, value_name = "JSON", conflicts_with = "payload_file")]
    pub payload: Option<String>,
    /// Read the payload JSON from a file, or from stdin with "-".
    #[arg(long, value_name = "PATH|-")]
    pub payload_file: Option<PathBuf>,
}

impl WholePayloadArgs {
    /// The payload given whole, if it was.
    pub fn read(&self) -> Result<Option<Payload>, Failure> {
        if let Some(json) = &self.payload {
            return Ok(Some(Payload::raw(json.clone().into_bytes())?));
        }
        match &self.payload_file {
            Some(path) => Ok(Some(read_payload_file(path)?)),
            None => Ok(None),
        }
    }
}

/// An alert's text: `--alert TEXT`, or `--title` and `--body`.
#[derive(Debug, Args)]
pub struct AlertTextArgs {
    /// A plain alert: aps.alert = TEXT.
    #[arg(long, value_name = "TEXT", conflicts_with_all = ["payload", "payload_file", "title", "body"])]
    pub alert: Option<String>,
    /// Alert title (aps.alert.title).
    #[arg(long, value_name = "T", conflicts_with_all = ["payload", "payload_file"])]
    pub title: Option<String>,
    /// Alert body (aps.alert.body).
    #[arg(long, value_name = "B", conflicts_with_all = ["payload", "payload_file"])]
    pub body: Option<String>,
}

impl AlertTextArgs {
    /// Whether any alert flag is given.
    pub fn is_given(&self) -> bool {
        self.alert.is_some() || self.title.is_some() || self.body.is_some()
    }

    /// Adds the alert (with `subtitle`, which only pushes have) to `b`.
    pub fn apply(&self, b: PayloadBuilder, subtitle: Option<&str>) -> PayloadBuilder {
        if let Some(text) = &self.alert {
            return b.alert_text(text);
        }
        if !self.is_given() && subtitle.is_none() {
            return b;
        }
        let mut alert = Alert::new();
        if let Some(t) = &self.title {
            alert = alert.title(t);
        }
        if let Some(s) = subtitle {
            alert = alert.subtitle(s);
        }
        if let Some(body) = &self.body {
            alert = alert.body(body);
        }
        b.alert(alert)
    }
}

/// How the payload is given: one of --alert, the alert fields, --payload or --payload-file.
#[derive(Debug, Args)]
pub struct PayloadArgs {
    #[command(flatten)]
    pub text: AlertTextArgs,
    /// Alert subtitle (aps.alert.subtitle).
    #[arg(long, value_name = "S", conflicts_with_all = ["alert", "payload", "payload_file"])]
    pub subtitle: Option<String>,
    /// Badge number (0 clears it).
    #[arg(long, value_name = "N", value_parser = numbers::count::<u32>(0, i32::MAX as u64), conflicts_with_all = ["payload", "payload_file"])]
    pub badge: Option<u32>,
    /// Sound file name, or "default".
    #[arg(long, value_name = "NAME", conflicts_with_all = ["payload", "payload_file"])]
    pub sound: Option<String>,
    /// Notification category.
    #[arg(long, value_name = "ID", conflicts_with_all = ["payload", "payload_file"])]
    pub category: Option<String>,
    /// Thread id for grouping.
    #[arg(long, value_name = "ID", conflicts_with_all = ["payload", "payload_file"])]
    pub thread_id: Option<String>,
    /// Set aps.content-available = 1.
    #[arg(long, conflicts_with_all = ["payload", "payload_file"])]
    pub content_available: bool,
    /// Set aps.mutable-content = 1.
    #[arg(long, conflicts_with_all = ["payload", "payload_file"])]
    pub mutable_content: bool,
    /// aps.interruption-level: passive, active, time-sensitive or critical.
    #[arg(long, value_name = "LEVEL", conflicts_with_all = ["payload", "payload_file"])]
    pub interruption_level: Option<String>,
    /// Custom data beside aps, as KEY=JSON (e.g. order_id=1234); repeatable.
    #[arg(long = "custom", value_name = "KEY=JSON", conflicts_with_all = ["payload", "payload_file"])]
    pub custom: Vec<String>,
    #[command(flatten)]
    pub whole: WholePayloadArgs,
}

impl PayloadArgs {
    /// The payload from the flags; `None` when none is given and a tokens
    /// file may carry per-line payloads.
    pub fn build(&self, tokens_file: bool) -> Result<Option<Payload>, Failure> {
        let p = self;
        if let Some(payload) = p.whole.read()? {
            return Ok(Some(payload));
        }
        let has_fields = p.text.is_given()
            || p.subtitle.is_some()
            || p.badge.is_some()
            || p.sound.is_some()
            || p.content_available
            || !p.custom.is_empty();
        if !has_fields {
            if tokens_file {
                return Ok(None);
            }
            return Err(Failure::usage(
                "no payload: give --alert TEXT, alert fields (--title/--body/--badge/--sound...), --content-available, --payload JSON or --payload-file PATH",
            ));
        }
        let mut b = p.text.apply(Payload::builder(), p.subtitle.as_deref());
        if let Some(n) = p.badge {
            b = b.badge(n);
        }
        if let Some(s) = &p.sound {
            b = b.sound(Sound::named(s));
        }
        if let Some(c) = &p.category {
            b = b.category(c);
        }
        if let Some(t) = &p.thread_id {
            b = b.thread_id(t);
        }
        if p.content_available {
            b = b.content_available();
        }
        if p.mutable_content {
            b = b.mutable_content();
        }
        if let Some(level) = &p.interruption_level {
            let level = match level.as_str() {
                "passive" => InterruptionLevel::Passive,
                "active" => InterruptionLevel::Active,
                "time-sensitive" => InterruptionLevel::TimeSensitive,
                "critical" => InterruptionLevel::Critical,
                other => {
                    return Err(Failure::usage(format!(
                        "--interruption-level {other:?}: expected passive, active, time-sensitive or critical"
                    )))
                }
            };
            b = b.interruption_level(level);
        }
        for kv in &p.custom {
            let (key, value) = kv
                .split_once('=')
                .ok_or_else(|| Failure::usage(format!("--custom {kv:?}: expected KEY=JSON")))?;
            // A bare word is taken as a string, so `--custom ref=abc` works.
            let value: serde_json::Value = serde_json::from_str(value)
                .unwrap_or_else(|_| serde_json::Value::String(value.to_string()));
            b = b.custom(key, value);
        }
        Ok(Some(b.build()))
    }
}

/// Reads `--payload-file PATH` (or stdin for `-`) as the payload, byte for
/// byte. Bounded far above any payload APNs takes (5120 bytes), so that
/// the size error names the real size, yet `--payload-file /dev/zero`
/// does not fill memory.
pub fn read_payload_file(path: &Path) -> Result<Payload, Failure> {
    const MAX_READ: u64 = 1 << 20;
    let (source, what): (Box<dyn Read>, String) = if path.as_os_str() == "-" {
        (Box::new(std::io::stdin()), "the payload from stdin".into())
    } else {
        let file = std::fs::File::open(path).map_err(|e| {
            Failure::usage(format!("cannot read payload file {}: {e}", path.display()))
        })?;
        (Box::new(file), format!("payload file {}", path.display()))
    };
    let mut bytes = Vec::new();
    source
        .take(MAX_READ + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Failure::usage(format!("cannot read {what}: {e}")))?;
    if bytes.len() as u64 > MAX_READ {
        return Err(Failure::usage(format!(
            "{what} is over {MAX_READ} bytes: not a payload (APNs takes at most 4096 bytes, 5120 for VoIP and broadcasts)"
        )));
    }
    Ok(Payload::raw(bytes)?)
}
