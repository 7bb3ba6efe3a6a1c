//! Where `apns send` gets its notifications: device tokens on the command
//! line, or a tokens file streamed line by line (plain tokens, or JSON lines
//! with per-device payloads and options).

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use apns_provider::{ApnsId, DeviceToken, Expiration, Notification, Payload, Priority, PushType};
use serde::Deserialize;
use tokio::sync::mpsc;

use super::Failure;

/// One input line: its number in the tokens file (none for command-line
/// tokens) and its text.
#[derive(Debug)]
pub struct Line {
    pub number: Option<u64>,
    pub text: String,
}

/// Lines read ahead of sending; bounds memory whatever the file size.
const READ_AHEAD: usize = 1024;

/// Starts reading `source` on a blocking thread. The receiver yields lines
/// in order; closing it stops the reader.
pub fn spawn_reader(
    tokens: Vec<String>,
    file: Option<PathBuf>,
) -> Result<mpsc::Receiver<Result<Line, String>>, Failure> {
    let (tx, rx) = mpsc::channel(READ_AHEAD);
    let reader: Option<Box<dyn Read + Send>> = match &file {
        None => None,
        Some(p) if p.as_os_str() == "-" => Some(Box::new(std::io::stdin())),
        Some(p) => Some(Box::new(std::fs::File::open(p).map_err(|e| {
            Failure::usage(format!("cannot open tokens file {}: {e}", p.display()))
        })?)),
    };
    std::thread::spawn(move || {
        for text in tokens {
            if tx.blocking_send(Ok(Line { number: None, text })).is_err() {
                return;
            }
        }
        let Some(reader) = reader else { return };
        let mut reader = BufReader::with_capacity(64 * 1024, reader);
        let mut number = 0u64;
        let mut buf = String::new();
        loop {
            buf.clear();
            number += 1;
            match reader.read_line(&mut buf) {
                Ok(0) => return,
                Ok(_) => {
                    let text = buf.trim();
                    if text.is_empty() || text.starts_with('#') {
                        continue;
                    }
                    let line = Line {
                        number: Some(number),
                        text: text.to_string(),
                    };
                    if tx.blocking_send(Ok(line)).is_err() {
                        return;
                    }
                }
                Err(e) => {
                    let _ = tx.blocking_send(Err(format!(
                        "cannot read the tokens file at line {number}: {e}"
                    )));
                    return;
                }
            }
        }
    });
    Ok(rx)
}

/// Counts the lines of a regular file, for the progress bar's total.
pub fn count_lines(path: &Path) -> Option<u64> {
    if path.as_os_str() == "-" {
        return None;
    }
    let file = std::fs::File::open(path).ok()?;
    let mut reader = BufReader::with_capacity(256 * 1024, file);
    let mut count = 0u64;
    loop {
        let buf = reader.fill_buf().ok()?;
        if buf.is_empty() {
            return Some(count);
        }
        count += buf.iter().filter(|b| **b == b'\n').count() as u64;
        let n = buf.len();
        reader.consume(n);
    }
}

/// Settings every notification starts from (the command-line flags).
pub struct Defaults {
    pub topic: Option<String>,
    pub push_type: PushType,
    pub priority: Option<Priority>,
    pub expiration: Option<Expiration>,
    pub collapse_id: Option<String>,
    pub apns_id: Option<ApnsId>,
    pub payload: Option<Payload>,
    /// A notification with the default settings, for plain-token lines: a
    /// line only swaps the device token (the payload bytes are shared).
    pub template: Option<Notification>,
}

impl Defaults {
    pub fn new(
        topic: Option<String>,
        push_type: PushType,
        priority: Option<Priority>,
        expiration: Option<Expiration>,
        collapse_id: Option<String>,
        apns_id: Option<ApnsId>,
        payload: Option<Payload>,
    ) -> Result<Self, Failure> {
        let mut defaults = Defaults {
            topic,
            push_type,
            priority,
            expiration,
            collapse_id,
            apns_id,
            payload,
            template: None,
        };
        if let Some(payload) = defaults.payload.clone() {
            // A placeholder token: the template is only ever copied with a
            // line's own token.
            defaults.template = Some(defaults.build("00", payload, &JsonLine::default())?);
        }
        Ok(defaults)
    }

    fn build(
        &self,
        token: &str,
        payload: Payload,
        line: &JsonLine,
    ) -> Result<Notification, apns_provider::Error> {
        let mut b = Notification::builder(token, payload);
        if let Some(t) = line.topic.as_ref().or(self.topic.as_ref()) {
            b = b.topic(t);
        }
        let push_type = match &line.push_type {
            Some(t) => t.parse()?,
            None => self.push_type,
        };
        b = b.push_type(push_type);
        let priority = match &line.priority {
            Some(p) => Some(json_scalar(p).parse()?),
            None => self.priority,
        };
        if let Some(p) = priority {
            b = b.priority(p);
        }
        let expiration = match &line.expiration {
            Some(e) => Some(json_scalar(e).parse()?),
            None => self.expiration,
        };
        if let Some(e) = expiration {
            b = b.expiration(e);
        }
        if let Some(c) = line.collapse_id.as_ref().or(self.collapse_id.as_ref()) {
            b = b.collapse_id(c);
        }
        match &line.apns_id {
            Some(id) => b = b.apns_id_str(id),
            None => {
                if let Some(id) = self.apns_id {
                    b = b.apns_id(id);
                }
            }
        }
        b.build()
    }

    /// Turns one line into a notification, or says what is wrong with it.
    pub fn parse(&self, line: &Line) -> Result<Notification, String> {
        if !line.text.starts_with('{') {
            let token = DeviceToken::new(&line.text).map_err(|e| e.to_string())?;
            return match &self.template {
                Some(t) => Ok(t.with_device_token(token)),
                None => Err(NO_PAYLOAD.into()),
            };
        }
        let parsed: JsonLine =
            serde_json::from_str(&line.text).map_err(|e| format!("not a valid JSON line: {e}"))?;
        let token = parsed
            .device_token
            .clone()
            .ok_or("the JSON line has no \"device_token\"")?;
        if parsed.is_token_only() {
            let token = DeviceToken::new(&token).map_err(|e| e.to_string())?;
            return match &self.template {
                Some(t) => Ok(t.with_device_token(token)),
                None => Err(NO_PAYLOAD.into()),
            };
        }
        let payload = match &parsed.payload {
            Some(serde_json::Value::String(raw)) => {
                Payload::raw(raw.clone().into_bytes()).map_err(|e| e.to_string())?
            }
            Some(value) => {
                Payload::raw(value.to_string().into_bytes()).map_err(|e| e.to_string())?
            }
            None => self.payload.clone().ok_or(NO_PAYLOAD)?,
        };
        self.build(&token, payload, &parsed)
            .map_err(|e| e.to_string())
    }
}

const NO_PAYLOAD: &str =
    "no payload: give one with --alert/--payload, or a \"payload\" in the JSON line";

/// A JSON line of a tokens file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonLine {
    device_token: Option<String>,
    payload: Option<serde_json::Value>,
    topic: Option<String>,
    push_type: Option<String>,
    priority: Option<serde_json::Value>,
    expiration: Option<serde_json::Value>,
    collapse_id: Option<String>,
    apns_id: Option<String>,
}

impl JsonLine {
    fn is_token_only(&self) -> bool {
        self.payload.is_none()
            && self.topic.is_none()
            && self.push_type.is_none()
            && self.priority.is_none()
            && self.expiration.is_none()
            && self.collapse_id.is_none()
            && self.apns_id.is_none()
    }
}

/// `5` or `"5"` as text.
fn json_scalar(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
