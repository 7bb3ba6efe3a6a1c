//! `apns send --resume`: which lines of a tokens file an earlier run
//! (recorded in its `--results` file) already finished.
//!
//! A line is **done**, and skipped, when one of its result lines says
//! APNs accepted it, or rejected it for a reason that sending again cannot
//! change: the device token is dead or wrong (`Unregistered`,
//! `BadDeviceToken`, `DeviceTokenNotForTopic`...) or the request itself is
//! bad (`PayloadTooLarge`, `TopicDisallowed`...).
//!
//! A line **may have been delivered** when its result is an error that says
//! so (the connection died while it was on the wire): skipped, unless
//! `--resend-unknown` asks for at-least-once delivery.
//!
//! Every other line is sent (again): no result yet, `not sent:
//! interrupted`, an error before it reached APNs, a transient rejection
//! (500, 503, `TooManyRequests`...), a rejection of the sender's
//! credentials or configuration (`InvalidProviderToken`,
//! `BadEnvironmentKeyIdInToken`...: presumably fixed since), a reason this
//! version does not know, and invalid lines (they are checked again, so a
//! line fixed in the tokens file is sent).
//!
//! A line appears in several result lines after several runs: the most
//! final one counts (done, then may have been delivered, then to send).

use std::collections::hash_map::DefaultHasher;
use std::fs::File;
use std::hash::{Hash, Hasher};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};

use apns_provider::{Reason, ReasonClass};

use super::Failure;

/// The longest result line read (they are a few hundred bytes).
const MAX_RESULT_LINE: u64 = 64 * 1024;

/// What became of a line in earlier runs, by increasing finality.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum State {
    MayHaveBeenDelivered,
    Done,
}

/// A line an earlier run finished (or may have).
#[derive(Debug, Clone, Copy)]
struct Entry {
    line: u64,
    state: State,
    /// A hash of the device token it was sent to, to notice a tokens file
    /// that changed since.
    token: u64,
}

/// What to do with a line.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Send,
    /// Skipped: accepted, or rejected for good, in an earlier run.
    SkipDone,
    /// Skipped: it may have been delivered in an earlier run.
    SkipMaybeDelivered,
    /// The tokens file is not the one the results were written for.
    Mismatch(String),
}

/// The finished lines of an earlier run, read from its results file.
pub struct Resume {
    /// Sorted by line number, one per line.
    entries: Vec<Entry>,
    /// Lines come in increasing order: where the next one is looked up.
    cursor: usize,
    /// The last line asked about.
    last: u64,
    resend_unknown: bool,
    name: String,
}

impl Resume {
    /// Reads the results file `name` (open for reading and appending). A
    /// damaged last line (a run cut off mid-write) is removed; any other
    /// line that is not a JSON result line is an error.
    pub fn load(file: &mut File, name: &str, resend_unknown: bool) -> Result<Resume, Failure> {
        let not_results = |number: u64, why: String| {
            Failure::usage(format!(
                "--resume: {name} is not a results file of `apns send --tokens-file` (line {number}: {why}); give the --results file of the run to resume"
            ))
        };
        // A device (/dev/full, /dev/zero) or a pipe has no results to read.
        if !file.metadata().is_ok_and(|m| m.is_file()) {
            return Err(Failure::usage(format!(
                "--resume: {name} is not a regular file; give the --results file of the run to resume"
            )));
        }
        file.seek(SeekFrom::Start(0))
            .map_err(|e| Failure::usage(format!("--resume: cannot read {name}: {e}")))?;
        let mut reader = BufReader::new(&*file);
        let mut entries = Vec::new();
        let mut buf = Vec::new();
        let mut number = 0u64;
        // The end of the last complete line.
        let mut complete = 0u64;
        let mut tail = Tail::Complete;
        loop {
            buf.clear();
            // Result lines are short: a line with no end in sight is not one.
            let n = (&mut reader)
                .take(MAX_RESULT_LINE)
                .read_until(b'\n', &mut buf)
                .map_err(|e| Failure::usage(format!("--resume: cannot read {name}: {e}")))?;
            if n == 0 {
                break;
            }
            number += 1;
            if n as u64 == MAX_RESULT_LINE && buf.last() != Some(&b'\n') {
                return Err(not_results(number, format!("over {MAX_RESULT_LINE} bytes")));
            }
            let ended = buf.last() == Some(&b'\n');
            let text = buf.trim_ascii();
            if text.is_empty() {
                complete += n as u64;
                continue;
            }
            let parsed = serde_json::from_slice::<serde_json::Value>(text);
            if !ended {
                // The last line, without its line break: complete, or cut
                // off by a crash mid-write.
                match parsed.ok().map(|v| entry(&v)) {
                    Some(Ok(e)) => {
                        entries.extend(e);
                        tail = Tail::Unterminated;
                    }
                    _ => tail = Tail::Damaged,
                }
                break;
            }
            let value = parsed.map_err(|e| not_results(number, format!("not JSON: {e}")))?;
            entries.extend(entry(&value).map_err(|why| not_results(number, why))?);
            complete += n as u64;
        }
        drop(reader);
        match tail {
            Tail::Complete => {}
            Tail::Unterminated => file
                .write_all(b"\n")
                .map_err(|e| Failure::usage(format!("--resume: cannot write {name}: {e}")))?,
            Tail::Damaged => {
                file.set_len(complete).map_err(|e| {
                    Failure::usage(format!(
                        "--resume: cannot remove the damaged last line of {name}: {e}"
                    ))
                })?;
                eprintln!(
                    "apns: --resume: removed the damaged last line of {name} (a run cut off mid-write)"
                );
            }
        }
        entries.sort_by_key(|e: &Entry| (e.line, e.state));
        // One entry per line: the most final (the last after sorting).
        let mut merged: Vec<Entry> = Vec::with_capacity(entries.len());
        for e in entries {
            match merged.last_mut() {
                Some(last) if last.line == e.line => *last = e,
                _ => merged.push(e),
            }
        }
        Ok(Resume {
            entries: merged,
            cursor: 0,
            last: 0,
            resend_unknown,
            name: name.to_string(),
        })
    }

    /// What to do with line `number`, whose device token is `token`. Lines
    /// must be asked about in increasing order.
    pub fn verdict(&mut self, number: u64, token: &str) -> Verdict {
        self.last = number;
        while self
            .entries
            .get(self.cursor)
            .is_some_and(|e| e.line < number)
        {
            self.cursor += 1;
        }
        let Some(entry) = self.entries.get(self.cursor).filter(|e| e.line == number) else {
            return Verdict::Send;
        };
        if entry.token != hash(token) {
            return Verdict::Mismatch(format!(
                "--resume: line {number} of the tokens file is not the device token {} has for it: the tokens file changed since that run; resume with the same tokens file, or start afresh with a new --results file",
                self.name
            ));
        }
        match entry.state {
            State::Done => Verdict::SkipDone,
            State::MayHaveBeenDelivered if self.resend_unknown => Verdict::Send,
            State::MayHaveBeenDelivered => Verdict::SkipMaybeDelivered,
        }
    }

    /// Finished lines past the last line asked about: the results file
    /// has more lines than the tokens file.
    pub fn lines_past_the_end(&self) -> usize {
        let asked = self.entries.partition_point(|e| e.line <= self.last);
        self.entries.len() - asked
    }
}

/// How the results file ended.
enum Tail {
    /// With a line break (or empty).
    Complete,
    /// With a whole result line but no line break: one is added.
    Unterminated,
    /// With part of a line: it is removed.
    Damaged,
}

fn hash(token: &str) -> u64 {
    let mut h = DefaultHasher::new();
    token.hash(&mut h);
    h.finish()
}

/// The entry a result line makes, if it finished its line.
fn entry(value: &serde_json::Value) -> Result<Option<Entry>, String> {
    let line = value
        .get("line")
        .and_then(|l| l.as_u64())
        .ok_or("no \"line\" number")?;
    let token = value
        .get("device_token")
        .and_then(|t| t.as_str())
        .ok_or("no \"device_token\"")?;
    let status = value.get("status").and_then(|s| s.as_u64());
    let state = match status {
        Some(200) => Some(State::Done),
        Some(_) => {
            let reason = value
                .get("reason")
                .and_then(|r| r.as_str())
                .map(|r| r.parse::<Reason>().unwrap_or_else(|e| match e {}));
            reason.filter(is_final).map(|_| State::Done)
        }
        None => value
            .get("may_have_been_delivered")
            .and_then(|m| m.as_bool())
            .unwrap_or(false)
            .then_some(State::MayHaveBeenDelivered),
    };
    Ok(state.map(|state| Entry {
        line,
        state,
        token: hash(token),
    }))
}

/// A rejection that sending the same notification again cannot change:
/// the device token is dead or wrong, or the request is bad.
fn is_final(reason: &Reason) -> bool {
    !reason.is_retryable()
        && matches!(
            reason.class(),
            ReasonClass::DeadToken | ReasonClass::TokenMismatch | ReasonClass::RequestBug
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resume(text: &str, resend_unknown: bool) -> Result<(Resume, String), Failure> {
        let dir =
            std::env::temp_dir().join(format!("apns-resume-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("results.jsonl");
        std::fs::write(&path, text).unwrap();
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .append(true)
            .open(&path)
            .unwrap();
        let r = Resume::load(&mut file, "results.jsonl", resend_unknown);
        let after = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_dir_all(dir).unwrap();
        r.map(|r| (r, after))
    }

    #[test]
    fn final_results_are_skipped_and_the_rest_sent() {
        let text = [
            r#"{"line":1,"device_token":"aa","status":200,"reason":null}"#,
            r#"{"line":2,"device_token":"bb","status":410,"reason":"Unregistered"}"#,
            r#"{"line":3,"device_token":"cc","status":503,"reason":"ServiceUnavailable"}"#,
            r#"{"line":4,"device_token":"dd","status":null,"error":"timed out","may_have_been_delivered":true}"#,
            r#"{"line":5,"device_token":"ee","status":null,"error":"not sent: interrupted","may_have_been_delivered":false}"#,
            r#"{"line":6,"device_token":"ff","status":403,"reason":"InvalidProviderToken"}"#,
            r#"{"line":3,"device_token":"cc","status":200,"reason":null}"#,
        ]
        .join("\n")
            + "\n";
        let (mut r, _) = resume(&text, false).unwrap();
        assert_eq!(r.verdict(1, "aa"), Verdict::SkipDone);
        assert_eq!(r.verdict(2, "bb"), Verdict::SkipDone);
        assert_eq!(
            r.verdict(3, "cc"),
            Verdict::SkipDone,
            "the later result counts"
        );
        assert_eq!(r.verdict(4, "dd"), Verdict::SkipMaybeDelivered);
        assert_eq!(r.verdict(5, "ee"), Verdict::Send);
        assert_eq!(r.verdict(6, "ff"), Verdict::Send);
        assert_eq!(r.verdict(7, "00"), Verdict::Send);
        let (mut r, _) = resume(&text, true).unwrap();
        assert_eq!(r.verdict(4, "dd"), Verdict::Send);
        assert!(matches!(r.verdict(5, "ee"), Verdict::Send));
        let (mut r, _) = resume(&text, false).unwrap();
        assert!(matches!(r.verdict(1, "ab"), Verdict::Mismatch(_)));
    }

    #[test]
    fn a_damaged_last_line_is_removed_and_other_damage_refused() {
        let good = r#"{"line":1,"device_token":"aa","status":200}"#.to_string() + "\n";
        let (mut r, after) = resume(&(good.clone() + r#"{"line":2,"devi"#), false).unwrap();
        assert_eq!(after, good);
        assert_eq!(r.verdict(1, "aa"), Verdict::SkipDone);
        assert_eq!(r.lines_past_the_end(), 0);
        let (r, after) = resume(good.trim_end(), false).unwrap();
        assert_eq!(after, good, "a line break is added before appending");
        assert_eq!(r.lines_past_the_end(), 1);
        let e = resume(&format!("{good}{{\"line\":2,\"devi\n{good}"), false)
            .err()
            .unwrap();
        assert!(e.message.contains("line 2: not JSON"), "{}", e.message);
        let e = resume("00fc13ad\n", false).err().unwrap();
        assert!(e.message.contains("is not a results file"), "{}", e.message);
        let e = resume(&"x".repeat(100_000), false).err().unwrap();
        assert!(
            e.message.contains("line 1: over 65536 bytes"),
            "{}",
            e.message
        );
        let e = resume("{\"status\":200}\n", false).err().unwrap();
        assert!(e.message.contains("no \"line\""), "{}", e.message);
        assert!(resume("", false).unwrap().0.entries.is_empty());
    }
}
