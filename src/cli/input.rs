//! Where `apns send` gets its notifications: device tokens on the command
//! line, or a tokens file streamed line by line (plain tokens, or JSON lines
//! with per-device payloads and options).

use std::io::{BufRead, BufReader, Read};
use std::path::Path;

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
    /// Why the line is invalid before it is even parsed (not UTF-8, far too
    /// long); `text` then holds only a short excerpt for its result line.
    pub problem: Option<String>,
}

/// Lines read ahead of sending; bounds memory whatever the file size.
const READ_AHEAD: usize = 1024;

/// The longest line kept: far above any valid line (a 200-digit token and
/// a 5120-byte payload, even escaped), so that a line with no end (a binary
/// file, a runaway export) costs at most this much memory. The rest of a
/// longer line is read and dropped.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// Where the lines of a tokens file come from (a file or stdin), opened.
pub type Source = Box<dyn Read + Send>;

/// Starts reading `source` on a blocking thread, after the command-line
/// `tokens`. The receiver yields lines in order; closing it stops the
/// reader. An `Err` is a read error, and the last item.
pub fn spawn_reader(
    tokens: Vec<String>,
    source: Option<Source>,
) -> mpsc::Receiver<Result<Line, String>> {
    let (tx, rx) = mpsc::channel(READ_AHEAD);
    std::thread::spawn(move || {
        for text in tokens {
            let line = Line {
                number: None,
                text,
                problem: None,
            };
            if tx.blocking_send(Ok(line)).is_err() {
                return;
            }
        }
        let Some(source) = source else { return };
        let mut reader = BufReader::with_capacity(64 * 1024, source);
        let mut number = 0u64;
        let mut buf = Vec::new();
        loop {
            number += 1;
            let length = match read_bounded_line(&mut reader, &mut buf) {
                Ok(Some(length)) => length,
                Ok(None) => return,
                Err(e) => {
                    let _ = tx.blocking_send(Err(format!(
                        "cannot read the tokens file at line {number}: {e}"
                    )));
                    return;
                }
            };
            let Some(line) = decode_line(number, &buf, length) else {
                continue;
            };
            if tx.blocking_send(Ok(line)).is_err() {
                return;
            }
        }
    });
    rx
}

/// Reads one line into `buf` (without its end, and at most
/// [`MAX_LINE_BYTES`] of it) and returns its full length, or `None` at the
/// end of the input.
fn read_bounded_line(
    reader: &mut impl BufRead,
    buf: &mut Vec<u8>,
) -> std::io::Result<Option<usize>> {
    buf.clear();
    let mut length = 0usize;
    let mut started = false;
    loop {
        let available = match reader.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            return Ok(started.then_some(length));
        }
        started = true;
        let (used, end) = match available.iter().position(|b| *b == b'\n') {
            Some(i) => (i + 1, Some(i)),
            None => (available.len(), None),
        };
        let content = &available[..end.unwrap_or(used)];
        let room = MAX_LINE_BYTES.saturating_sub(buf.len());
        buf.extend_from_slice(&content[..content.len().min(room)]);
        length = length.saturating_add(content.len());
        reader.consume(used);
        if end.is_some() {
            return Ok(Some(length));
        }
    }
}

/// Turns the bytes of line `number` into a [`Line`], or `None` for a blank
/// line or a comment. `length` is the line's full length (`bytes` holds at
/// most [`MAX_LINE_BYTES`] of it).
fn decode_line(number: u64, bytes: &[u8], length: usize) -> Option<Line> {
    let cut = length > bytes.len();
    let mut bytes = bytes;
    if number == 1 {
        // A byte order mark, as some Windows editors write.
        bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    }
    let trimmed = bytes.trim_ascii();
    // Comments are skipped whatever their encoding.
    if trimmed.is_empty() || trimmed.starts_with(b"#") {
        return None;
    }
    let invalid = |problem: String| {
        let text = String::from_utf8_lossy(trimmed);
        Some(Line {
            number: Some(number),
            text: if cut {
                excerpt_of(&text, length)
            } else {
                excerpt(&text)
            },
            problem: Some(problem),
        })
    };
    if cut {
        return invalid(if trimmed.starts_with(b"{") {
            format!(
                "the line is {length} bytes long, over the {MAX_LINE_BYTES}-byte limit of a tokens-file line"
            )
        } else {
            format!(
                "invalid device_token: device token too long: {length} characters, over the limit of {} hex digits (100 bytes)",
                DeviceToken::MAX_HEX_DIGITS
            )
        });
    }
    let text = match std::str::from_utf8(trimmed) {
        Ok(text) => text,
        Err(e) => {
            let at = e.valid_up_to();
            return invalid(format!(
                "the line is not UTF-8 text (byte 0x{:02x} at column {}); save the tokens file as UTF-8",
                trimmed.get(at).copied().unwrap_or_default(),
                at + 1
            ));
        }
    };
    // A token this long is refused now, so the line is not carried along.
    if !text.starts_with('{') && text.len() > DeviceToken::MAX_HEX_DIGITS {
        if let Err(e) = DeviceToken::new(text) {
            return invalid(e.to_string());
        }
    }
    Some(Line {
        number: Some(number),
        text: text.to_string(),
        problem: None,
    })
}

/// What a result line echoes of a device token (or of a line that should
/// have been one): all of it up to the longest valid token, else its start
/// and its length.
pub fn excerpt(text: &str) -> String {
    let chars = text.chars().count();
    if chars <= DeviceToken::MAX_HEX_DIGITS {
        return text.to_string();
    }
    excerpt_of(text, chars)
}

/// The start of `text`, and the `length` of what it starts.
fn excerpt_of(text: &str, length: usize) -> String {
    let start: String = text.chars().take(64).collect();
    format!("{start}... ({length} characters)")
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

/// The template's device token: every line swaps in its own. A device's
/// length, so the template's lints say nothing about it.
const PLACEHOLDER_TOKEN: &str = "0000000000000000000000000000000000000000000000000000000000000000";

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
            defaults.template =
                Some(defaults.build(PLACEHOLDER_TOKEN, payload, &JsonLine::default())?);
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
        if let Some(problem) = &line.problem {
            return Err(problem.clone());
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(bytes: &[u8]) -> Vec<(u64, String, Option<String>)> {
        let mut reader = BufReader::with_capacity(16, bytes);
        let mut buf = Vec::new();
        let mut out = Vec::new();
        let mut number = 0;
        while let Some(length) = read_bounded_line(&mut reader, &mut buf).unwrap() {
            number += 1;
            assert!(buf.len() <= MAX_LINE_BYTES);
            if let Some(line) = decode_line(number, &buf, length) {
                out.push((number, line.text, line.problem));
            }
        }
        out
    }

    #[test]
    fn hostile_lines_become_per_line_errors() {
        let mut input = b"\xEF\xBB\xBFaabb\r\n# caf\xe9\n\n  ccdd  \n00fc\xff\n".to_vec();
        input.extend(b"ab".repeat(40_000));
        input.extend(b"\n{\"device_token\":\"");
        input.extend(b"0".repeat(MAX_LINE_BYTES));
        input.extend(b"\"}\n");
        input.extend(b"c".repeat(300));
        input.extend(b"\neeff");
        let got = lines(&input);
        assert_eq!(got[0], (1, "aabb".into(), None), "BOM and CR stripped");
        assert_eq!(
            got[1],
            (4, "ccdd".into(), None),
            "comment and blank skipped"
        );
        assert_eq!(got[2].0, 5);
        assert!(got[2]
            .2
            .as_deref()
            .unwrap()
            .contains("not UTF-8 text (byte 0xff at column 5)"));
        assert_eq!(got[3].0, 6);
        assert!(got[3].1.ends_with("... (80000 characters)") && got[3].1.len() < 100);
        assert!(got[3]
            .2
            .as_deref()
            .unwrap()
            .contains("device token too long: 80000 characters"));
        assert_eq!(got[4].0, 7);
        assert!(got[4]
            .2
            .as_deref()
            .unwrap()
            .contains("over the 65536-byte limit"));
        assert_eq!(got[5].0, 8);
        assert!(got[5]
            .2
            .as_deref()
            .unwrap()
            .contains("device token too long: 300 characters"));
        assert_eq!(
            got[6],
            (9, "eeff".into(), None),
            "a last line without its end"
        );
        assert_eq!(got.len(), 7);
    }
}
