//! Where `apns send` gets its notifications: device tokens on the command
//! line, or a tokens file streamed line by line (plain tokens, or JSON lines
//! with per-device payloads and options).

use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use apns_provider::wire::{NotificationSpec, SpecDefaults};
use apns_provider::{DeviceToken, Notification};
use tokio::sync::mpsc;

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
pub const READ_AHEAD: usize = 1024;

/// The longest line kept: far above any valid line (a 200-digit token and
/// a 5120-byte payload, even escaped), so that a line with no end (a binary
/// file, a runaway export) costs at most this much memory. The rest of a
/// longer line is read and dropped.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// Where the lines of a tokens file come from (a file or stdin), opened.
pub type Source = Box<dyn Read + Send>;

/// The lines of the input in order: command-line tokens, then the tokens
/// file. A thread reads ahead and hands them over in batches (one wake-up
/// per batch, not per line); an `Err` is a read error, and the last item.
pub struct Lines {
    rx: mpsc::Receiver<Vec<Result<Line, String>>>,
    batch: std::collections::VecDeque<Result<Line, String>>,
}

impl Lines {
    /// The next line; `None` at the end. Cancel-safe.
    pub async fn recv(&mut self) -> Option<Result<Line, String>> {
        if let Some(line) = self.batch.pop_front() {
            return Some(line);
        }
        let batch = self.rx.recv().await?;
        self.batch = batch.into();
        self.batch.pop_front()
    }

    /// The next line if one was read already.
    pub fn try_recv(&mut self) -> Option<Result<Line, String>> {
        if let Some(line) = self.batch.pop_front() {
            return Some(line);
        }
        self.batch = self.rx.try_recv().ok()?.into();
        self.batch.pop_front()
    }

    /// Puts a line back in front.
    pub fn push_front(&mut self, line: Result<Line, String>) {
        self.batch.push_front(line);
    }

    /// Stops the reader; lines read already can still be taken.
    pub fn close(&mut self) {
        self.rx.close();
    }
}

/// Lines per batch, at most.
const BATCH: usize = 1024;

/// Starts reading `source` on a blocking thread, after the command-line
/// `tokens`. Dropping or closing the [`Lines`] stops the reader.
pub fn spawn_reader(tokens: Vec<String>, source: Option<Source>) -> Lines {
    let (tx, rx) = mpsc::channel(READ_AHEAD.div_ceil(BATCH).max(2));
    std::thread::spawn(move || {
        let mut batch: Vec<Result<Line, String>> = tokens
            .into_iter()
            .map(|text| {
                Ok(Line {
                    number: None,
                    text,
                    problem: None,
                })
            })
            .collect();
        let Some(source) = source else {
            let _ = tx.blocking_send(batch);
            return;
        };
        let mut reader = BufReader::with_capacity(64 * 1024, source);
        let mut number = 0u64;
        let mut buf = Vec::new();
        loop {
            // Hand the batch over when it is full, or before a read that
            // may block (a pipe with nothing more yet).
            if !batch.is_empty()
                && (batch.len() >= BATCH || reader.buffer().is_empty())
                && tx.blocking_send(std::mem::take(&mut batch)).is_err()
            {
                return;
            }
            number += 1;
            let length = match read_bounded_line(&mut reader, &mut buf) {
                Ok(Some(length)) => length,
                Ok(None) => break,
                Err(e) => {
                    batch.push(Err(format!(
                        "cannot read the tokens file at line {number}: {e}"
                    )));
                    break;
                }
            };
            if let Some(line) = decode_line(number, &buf, length) {
                batch.push(Ok(line));
            }
        }
        if !batch.is_empty() {
            let _ = tx.blocking_send(batch);
        }
    });
    Lines {
        rx,
        batch: Default::default(),
    }
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

/// Counts the lines of a regular file that will get a result, for the
/// progress bar's total: blank lines and `#` comments are not counted.
/// Nothing else is counted: stdin, a FIFO or a device can be read only
/// once, and the send reads it.
pub fn count_lines(path: &Path) -> Option<u64> {
    if path.as_os_str() == "-" || !std::fs::metadata(path).ok()?.is_file() {
        return None;
    }
    let file = std::fs::File::open(path).ok()?;
    let mut reader = BufReader::with_capacity(256 * 1024, file);
    let mut count = 0u64;
    let mut line = Vec::with_capacity(256);
    loop {
        line.clear();
        // Long lines are read through; only their first bytes matter here.
        let n = reader.read_until(b'\n', &mut line).ok()?;
        if n == 0 {
            return Some(count);
        }
        let first = line
            .iter()
            .copied()
            .find(|b| !b.is_ascii_whitespace() && *b != 0xEF && *b != 0xBB && *b != 0xBF);
        if first.is_some_and(|b| b != b'#') {
            count += 1;
        }
    }
}

/// A line parsed once, into what both its send and its result line need.
#[derive(Debug)]
pub struct Parsed {
    /// Its number in the tokens file (none for command-line tokens).
    pub number: Option<u64>,
    /// The device token its result line echoes, even when the line is
    /// invalid: at most an excerpt of one far too long, empty when the
    /// line names none.
    pub token: String,
    /// Its notification, or what is wrong with the line.
    pub notification: Result<Notification, String>,
}

impl Line {
    /// Parses the line (a plain token, or a JSON line: a
    /// [`NotificationSpec`]) into its notification over `defaults` (the
    /// command-line flags), and the token its result line echoes.
    pub fn parse(self, defaults: &SpecDefaults) -> Parsed {
        let Line {
            number,
            text,
            problem,
        } = self;
        let (token, notification) = if let Some(problem) = problem {
            // `text` is an excerpt already; a JSON line may still name its token.
            let token = if text.starts_with('{') {
                token_in_json(&text)
            } else {
                text
            };
            (token, Err(problem))
        } else if !text.starts_with('{') {
            // A plain token: the template with this token, nothing to parse.
            let notification = if defaults.has_payload() {
                defaults.build_for_token(&text).map_err(|e| e.to_string())
            } else {
                DeviceToken::new(&text)
                    .map_err(|e| e.to_string())
                    .and(Err(NO_PAYLOAD.into()))
            };
            // A token of a sane length is its own result token: moved, not copied.
            let token = if text.len() <= DeviceToken::MAX_HEX_DIGITS {
                text
            } else {
                excerpt(&text)
            };
            (token, notification)
        } else {
            // Strict: a key given twice is an error, not its last copy.
            match NotificationSpec::from_json(text.as_bytes()) {
                Ok(spec) => {
                    let token = spec.device_token.as_deref().map(excerpt);
                    (token.unwrap_or_default(), build(defaults, &spec))
                }
                Err(e) => (
                    token_in_json(&text),
                    Err(format!("not a valid JSON line: {e}")),
                ),
            }
        };
        Parsed {
            number,
            token,
            notification,
        }
    }

    /// Whether the line lacks the payload it needs: no payload flag and
    /// none of its own (a plain token, or a JSON line without "payload").
    pub fn lacks_payload(&self, defaults: &SpecDefaults) -> bool {
        if defaults.has_payload() || self.problem.is_some() {
            return false;
        }
        !self.text.starts_with('{')
            || NotificationSpec::from_json(self.text.as_bytes())
                .is_ok_and(|spec| spec.payload.is_none())
    }
}

/// The notification of a JSON line's `spec`.
fn build(defaults: &SpecDefaults, spec: &NotificationSpec) -> Result<Notification, String> {
    let Some(token) = spec.device_token.as_deref() else {
        return Err("the JSON line has no \"device_token\"".into());
    };
    // The library says "no payload"; here it can say which flags give one.
    if spec.payload.is_none() && !defaults.has_payload() {
        DeviceToken::new(token).map_err(|e| e.to_string())?;
        return Err(NO_PAYLOAD.into());
    }
    defaults.build(spec).map_err(|e| e.to_string())
}

/// The device token of a JSON line that is not a valid spec (an unknown
/// field, a wrong type, a key twice...), for its result line. Only such
/// lines are read a second time, leniently: a valid line's token comes
/// from its one parse.
fn token_in_json(text: &str) -> String {
    // Only the token is read; a line giving it twice has no one token to
    // echo (serde refuses a field twice).
    #[derive(serde::Deserialize)]
    struct TokenOnly {
        #[serde(default)]
        device_token: Option<serde_json::Value>,
    }
    serde_json::from_str::<TokenOnly>(text)
        .ok()
        .and_then(|t| t.device_token)
        .and_then(|t| t.as_str().map(excerpt))
        .unwrap_or_default()
}

const NO_PAYLOAD: &str =
    "no payload: give one with --alert/--payload, or a \"payload\" in the JSON line";

/// Refuses a notification without a topic (the flags and the JSON line
/// gave none): APNs would answer MissingTopic for each.
pub fn require_topic(n: Notification) -> Result<Notification, String> {
    if n.topic().is_none() {
        return Err("invalid topic: required; give --topic or a \"topic\" in the JSON line".into());
    }
    Ok(n)
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

    fn line(text: &str) -> Line {
        Line {
            number: Some(7),
            text: text.into(),
            problem: None,
        }
    }

    #[test]
    fn a_line_parsed_once_gives_its_token_even_when_invalid() {
        let defaults = SpecDefaults::builder()
            .topic("com.example.app")
            .payload(apns_provider::Payload::alert("hi"))
            .build()
            .unwrap();
        let token = "00fc13ad".repeat(8);
        let ok = line(&token).parse(&defaults);
        assert_eq!((ok.number, ok.token.as_str()), (Some(7), token.as_str()));
        assert_eq!(ok.notification.unwrap().device_token().as_str(), token);
        let json = line(&format!(r#"{{"device_token":"{token}","priority":5}}"#)).parse(&defaults);
        assert_eq!(json.token, token);
        assert!(json.notification.is_ok());
        // Invalid lines still name their token: an unknown field, a bad
        // value, a key twice.
        for bad in [
            format!(r#"{{"device_token":"{token}","colour":"red"}}"#),
            format!(r#"{{"device_token":"{token}","priority":7}}"#),
            format!(r#"{{"device_token":"{token}","topic":"a","topic":"b"}}"#),
        ] {
            let p = line(&bad).parse(&defaults);
            assert_eq!(p.token, token, "{bad}");
            assert!(p.notification.is_err(), "{bad}");
        }
        // A token given twice is no one token; a huge one is an excerpt.
        let twice = format!(r#"{{"device_token":"{token}","device_token":"ab"}}"#);
        assert_eq!(line(&twice).parse(&defaults).token, "");
        let huge = line(&format!(r#"{{"device_token":"{}"}}"#, "ab".repeat(500))).parse(&defaults);
        assert!(
            huge.token.ends_with("... (1000 characters)"),
            "{}",
            huge.token
        );
        assert!(huge.notification.is_err());
        // No payload anywhere: the flags to give one are named.
        let none = line(&token).parse(&SpecDefaults::default());
        assert!(none.notification.unwrap_err().starts_with("no payload"));
    }

    #[test]
    fn the_progress_total_counts_only_lines_that_get_a_result() {
        let dir =
            std::env::temp_dir().join(format!("apns-count-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("tokens.txt");
        std::fs::write(&path, "\u{feff}# header\n\n00ab\n   \n# c\n{\"device_token\":\"00\"}\n  11cd\nlast-without-newline").unwrap();
        assert_eq!(count_lines(&path), Some(4));
        assert_eq!(count_lines(Path::new("-")), None);
        std::fs::remove_dir_all(dir).unwrap();
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
