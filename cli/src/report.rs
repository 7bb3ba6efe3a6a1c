//! What `apns send` writes: a result line per notification, a closing
//! summary, the list of tokens to prune, and a progress bar on terminals.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use apns_provider::clock::format_utc_millis;
use apns_provider::wire::{write_result_line, Ended};
use apns_provider::{Error, Response};
use serde_json::json;

use super::args::Output;
use super::files;

/// How one input line ended.
pub enum Outcome {
    /// Sent: APNs' answer, or why none came.
    Sent(Result<Response, Error>),
    /// Not sent: the line is invalid.
    Invalid(String),
    /// Not sent: intake stopped (Ctrl-C) before its turn.
    NotSent(&'static str),
}

/// Writes result lines and keeps the tallies.
pub struct Reporter {
    out: Box<dyn Write + Send>,
    /// What `out` is, for messages: `--results PATH` or `stdout`.
    out_name: String,
    // Result lines: JSON in files, else as --output says.
    format: Output,
    // The closing summary on stderr follows --output.
    summary_format: Output,
    out_is_terminal: bool,
    unregistered_out: Option<(std::io::BufWriter<std::fs::File>, String)>,
    pub summary: Summary,
    /// Whether to write the closing summary (not for a single notification).
    pub summary_enabled: bool,
    pub progress: Option<Progress>,
    // One result line at a time, reused.
    scratch: Vec<u8>,
    /// Sending with a certificate (some hints differ).
    pub certificate: bool,
    since_flush: usize,
    /// The first failure to write a result or prune line (disk full, a
    /// closed pipe...): it stops intake, and is reported at the end.
    pub write_error: Option<WriteError>,
}

/// A failure to write an output.
pub struct WriteError {
    /// `--results PATH`, `--unregistered-out PATH` or `stdout`.
    pub target: String,
    pub error: std::io::Error,
}

impl std::fmt::Display for WriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use std::io::ErrorKind;
        let cause = match self.error.kind() {
            ErrorKind::StorageFull => "disk full",
            ErrorKind::BrokenPipe => "output closed",
            ErrorKind::QuotaExceeded => "disk quota exceeded",
            ErrorKind::FileTooLarge => "file too large",
            _ => "write error",
        };
        write!(f, "cannot write {}: {cause} ({})", self.target, self.error)
    }
}

/// The closing tallies.
#[derive(Default)]
pub struct Summary {
    pub accepted: u64,
    pub rejected: BTreeMap<String, u64>,
    pub failed: u64,
    pub failed_maybe_delivered: u64,
    pub invalid: u64,
    pub not_sent: u64,
    pub unregistered: Vec<(String, Option<u64>)>,
    pub unregistered_total: u64,
    pub first_failure: Option<String>,
    /// `--resume`: lines an earlier run finished.
    pub skipped_done: u64,
    /// `--resume`: lines an earlier run may have delivered (skipped without
    /// `--resend-unknown`).
    pub skipped_maybe_delivered: u64,
}

/// Unregistered tokens listed in the summary itself (all go to the prune
/// file).
const SUMMARY_TOKENS: usize = 1000;

impl Reporter {
    pub fn new(
        results: Option<files::Output>,
        format: Output,
        unregistered_out: Option<files::Output>,
    ) -> Self {
        // Big enough for the 256 lines between flushes: one write each time.
        const OUT_BUFFER: usize = 64 * 1024;
        let is_file = results.is_some();
        let (out, out_name, out_is_terminal): (Box<dyn Write + Send>, String, bool) = match results
        {
            Some(o) => (
                Box::new(std::io::BufWriter::with_capacity(OUT_BUFFER, o.file)),
                o.name,
                false,
            ),
            None => (
                Box::new(std::io::BufWriter::with_capacity(
                    OUT_BUFFER,
                    std::io::stdout(),
                )),
                "the results to stdout".into(),
                std::io::stdout().is_terminal(),
            ),
        };
        Reporter {
            out,
            out_name,
            // Result files are always JSON lines.
            format: if is_file { Output::Json } else { format },
            summary_format: format,
            out_is_terminal,
            unregistered_out: unregistered_out.map(|o| (std::io::BufWriter::new(o.file), o.name)),
            summary: Summary::default(),
            summary_enabled: true,
            scratch: Vec::with_capacity(512),
            certificate: false,
            progress: None,
            since_flush: 0,
            write_error: None,
        }
    }

    /// Counts a line `--resume` skips (it has no new result line).
    pub fn skip(&mut self, maybe_delivered: bool) {
        if maybe_delivered {
            self.summary.skipped_maybe_delivered += 1;
        } else {
            self.summary.skipped_done += 1;
        }
        if let Some(p) = &self.progress {
            p.tick(false);
        }
    }

    fn failed_to_write(slot: &mut Option<WriteError>, target: &str, error: std::io::Error) {
        slot.get_or_insert(WriteError {
            target: target.to_string(),
            error,
        });
    }

    /// Records and writes the result of one line.
    pub fn record(&mut self, line: Option<u64>, token: &str, outcome: &Outcome) {
        let s = &mut self.summary;
        let mut is_error = true;
        match outcome {
            Outcome::Sent(Ok(r)) if r.is_accepted() => {
                s.accepted += 1;
                is_error = false;
            }
            Outcome::Sent(Ok(r)) => {
                let reason = r
                    .reason()
                    .map(|r| r.as_str().to_string())
                    .unwrap_or_else(|| r.status().to_string());
                *s.rejected.entry(reason).or_default() += 1;
                if r.status() == 410 {
                    s.unregistered_total += 1;
                    if s.unregistered.len() < SUMMARY_TOKENS {
                        s.unregistered
                            .push((token.to_string(), r.timestamp_millis()));
                    }
                    if let Some((w, name)) = &mut self.unregistered_out {
                        if let Err(e) = writeln!(w, "{token}") {
                            Self::failed_to_write(&mut self.write_error, name, e);
                        }
                    }
                }
            }
            // Refused before sending (a topic or push type the certificate
            // does not allow): the line's fault, as for an invalid line
            // (exit 2), not a delivery failure (exit 3).
            Outcome::Sent(Err(e)) if e.is_invalid_input() => s.invalid += 1,
            Outcome::Sent(Err(e)) => {
                s.failed += 1;
                if e.may_have_been_delivered() {
                    s.failed_maybe_delivered += 1;
                }
                s.first_failure.get_or_insert_with(|| e.to_string());
            }
            Outcome::Invalid(_) => s.invalid += 1,
            Outcome::NotSent(_) => {
                // Not sent because of Ctrl-C: not an error of the line.
                s.not_sent += 1;
                is_error = false;
            }
        }
        if let Some(p) = &self.progress {
            p.tick(is_error);
        }
        self.scratch.clear();
        match self.format {
            Output::Json => write_json_line(&mut self.scratch, line, token, outcome),
            Output::Human => self
                .scratch
                .extend_from_slice(human_line(line, token, outcome, self.certificate).as_bytes()),
        }
        self.scratch.push(b'\n');
        if self.out_is_terminal {
            if let Some(p) = &self.progress {
                p.clear();
            }
        }
        if let Err(e) = self.out.write_all(&self.scratch) {
            Self::failed_to_write(&mut self.write_error, &self.out_name, e);
        }
        self.since_flush += 1;
        // Lines go out as they complete, in batches to spare syscalls.
        if self.since_flush >= 256 || self.out_is_terminal {
            self.flush();
        }
    }

    /// Writes out what is buffered (at least every second, and at the end).
    pub fn flush(&mut self) {
        self.since_flush = 0;
        if let Err(e) = self.out.flush() {
            Self::failed_to_write(&mut self.write_error, &self.out_name, e);
        }
        if let Some((w, name)) = &mut self.unregistered_out {
            if let Err(e) = w.flush() {
                Self::failed_to_write(&mut self.write_error, name, e);
            }
        }
    }

    /// Writes the closing summary on stderr (one JSON object with
    /// `--output json`).
    pub fn finish(&mut self, interrupted: bool) {
        self.flush();
        if let Some(p) = self.progress.take() {
            p.stop();
        }
        if !self.summary_enabled && !interrupted {
            return;
        }
        let s = &self.summary;
        let rejected: u64 = s.rejected.values().sum();
        let total = s.accepted + rejected + s.failed + s.invalid + s.not_sent;
        let mut err = std::io::stderr().lock();
        match self.summary_format {
            Output::Json => {
                let unregistered: Vec<_> = s
                    .unregistered
                    .iter()
                    .map(|(t, ts)| json!({"device_token": t, "timestamp": ts}))
                    .collect();
                let _ = writeln!(
                    err,
                    "{}",
                    json!({"summary": {
                        "total": total,
                        "accepted": s.accepted,
                        "rejected": rejected,
                        "rejected_by_reason": s.rejected,
                        "failed": s.failed,
                        "failed_may_have_been_delivered": s.failed_maybe_delivered,
                        "invalid": s.invalid,
                        "not_sent": s.not_sent,
                        "unregistered": s.unregistered_total,
                        "unregistered_tokens": unregistered,
                        "skipped": s.skipped_done,
                        "skipped_may_have_been_delivered": s.skipped_maybe_delivered,
                        "interrupted": interrupted,
                    }})
                );
            }
            Output::Human => {
                let _ = writeln!(err, "apns: {total} notification(s): {} accepted, {rejected} rejected, {} failed to deliver, {} invalid{}",
                    s.accepted, s.failed, s.invalid,
                    if s.not_sent > 0 { format!(", {} not sent", s.not_sent) } else { String::new() });
                if s.skipped_done > 0 {
                    let _ = writeln!(err, "  {} skipped: already done (--resume)", s.skipped_done);
                }
                if s.skipped_maybe_delivered > 0 {
                    let _ = writeln!(
                        err,
                        "  {} skipped: may have been delivered in an earlier run (--resend-unknown sends them again)",
                        s.skipped_maybe_delivered
                    );
                }
                for (reason, n) in &s.rejected {
                    let _ = writeln!(err, "  rejected {reason}: {n}");
                }
                if s.failed > 0 {
                    let _ = writeln!(
                        err,
                        "  failed: {} ({} may have been delivered); first error: {}",
                        s.failed,
                        s.failed_maybe_delivered,
                        s.first_failure.as_deref().unwrap_or("")
                    );
                }
                if s.unregistered_total > 0 {
                    let _ = writeln!(
                        err,
                        "  unregistered (stop sending to these): {}",
                        s.unregistered_total
                    );
                    for (token, ts) in s.unregistered.iter().take(20) {
                        let since = ts.map(format_utc_millis).unwrap_or_else(|| "-".into());
                        let _ = writeln!(err, "    {token}  since {since}");
                    }
                    if s.unregistered_total > 20 {
                        let _ = writeln!(
                            err,
                            "    ... and {} more (see --unregistered-out)",
                            s.unregistered_total - 20
                        );
                    }
                }
                if interrupted {
                    let _ = writeln!(
                        err,
                        "apns: interrupted: intake stopped; every line read has a result"
                    );
                }
            }
        }
    }
}

/// One result line as JSON, written straight into `out`: the library's
/// format (see [`apns_provider::wire::write_result_line`]), with the line
/// number of a tokens file.
pub fn write_json_line(out: &mut Vec<u8>, line: Option<u64>, token: &str, outcome: &Outcome) {
    let ended = match outcome {
        Outcome::Sent(result) => Ended::Answer(result),
        Outcome::Invalid(msg) => Ended::Unsent {
            error: msg,
            may_have_been_delivered: false,
        },
        Outcome::NotSent(why) => Ended::Unsent {
            error: why,
            may_have_been_delivered: false,
        },
    };
    write_result_line(out, line, token, ended);
}

fn human_line(line: Option<u64>, token: &str, outcome: &Outcome, certificate: bool) -> String {
    let prefix = match line {
        Some(n) => format!("line {n}: {token}"),
        None => token.to_string(),
    };
    match outcome {
        Outcome::Sent(Ok(r)) => {
            let mut text = format!("{prefix}  {}", r.describe());
            if let Some(id) = r.apns_id() {
                text.push_str(&format!("  apns-id={id}"));
            }
            if let Some(id) = r.apns_unique_id() {
                text.push_str(&format!("  apns-unique-id={id}"));
            }
            let hint = match r.reason() {
                // With a certificate, no token is sent: the server never asked
                // for the certificate (not APNs, or a proxy that ends TLS).
                Some(apns_provider::Reason::MissingProviderToken) if certificate => Some(
                    "the server did not ask for the client certificate: is --endpoint APNs itself, and not a proxy that ends TLS?",
                ),
                Some(reason) => reason_hint(reason),
                None => None,
            };
            if let Some(hint) = hint {
                text.push_str(&format!("  hint: {hint}"));
            }
            text
        }
        Outcome::Sent(Err(e)) => match super::hint(e) {
            Some(hint) => format!("{prefix}  error: {e}  hint: {hint}"),
            None => format!("{prefix}  error: {e}"),
        },
        Outcome::Invalid(msg) => format!("{prefix}  invalid: {msg}"),
        Outcome::NotSent(why) => format!("{prefix}  {why}"),
    }
}

/// What an operator should do about the commonest rejections.
pub fn reason_hint(reason: &apns_provider::Reason) -> Option<&'static str> {
    use apns_provider::Reason::*;
    Some(match reason {
        InvalidProviderToken => {
            "check --key-id and --team-id (often swapped) and that the key is not revoked"
        }
        ExpiredProviderToken => {
            "this machine's clock may be wrong; tokens must be issued within the last hour"
        }
        BadDeviceToken => {
            "a token for the other environment? try --env sandbox or --env production"
        }
        DeviceTokenNotForTopic => "the token belongs to another app or topic suffix; check --topic",
        TopicDisallowed => "the key is not allowed to push to this topic",
        Unregistered | ExpiredToken => {
            "the app was removed or the token expired: stop sending to it"
        }
        BadEnvironmentKeyIdInToken => "this key is scoped to the other environment (sandbox-only or production-only): send with --env for the key's environment, or use a key for this one",
        PayloadTooLarge => "shorten the payload (4096 bytes, 5120 for VoIP)",
        _ => return None,
    })
}

/// A one-line progress bar on stderr, redrawn four times a second: done
/// (of total when known), rate, errors so far.
pub struct Progress {
    state: Arc<ProgressState>,
    task: tokio::task::JoinHandle<()>,
}

struct ProgressState {
    done: AtomicU64,
    errors: AtomicU64,
    total: Option<u64>,
    started: Instant,
    drawn: AtomicBool,
    lock: Mutex<()>,
}

impl Progress {
    /// A progress bar if stderr is a terminal, else nothing. `total` (a
    /// first pass over the tokens file, counting its lines) is asked only
    /// for a bar that is shown.
    pub fn on_terminal(total: impl FnOnce() -> Option<u64>) -> Option<Progress> {
        if !std::io::stderr().is_terminal() {
            return None;
        }
        let total = total();
        let state = Arc::new(ProgressState {
            done: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            total,
            started: Instant::now(),
            drawn: AtomicBool::new(false),
            lock: Mutex::new(()),
        });
        let drawing = state.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            loop {
                tick.tick().await;
                drawing.draw();
            }
        });
        Some(Progress { state, task })
    }

    pub fn tick(&self, error: bool) {
        self.state.done.fetch_add(1, Ordering::Relaxed);
        if error {
            self.state.errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Prints `line` on stderr in place of the bar (drawn again at the
    /// next tick), so that messages never mix with it.
    pub fn say(&self, line: &str) {
        let _guard = self.state.lock.lock();
        if self.state.drawn.swap(false, Ordering::AcqRel) {
            eprint!("\r\x1b[2K");
        }
        eprintln!("{line}");
    }

    /// Erases the bar so a result line can be printed in its place.
    fn clear(&self) {
        let _guard = self.state.lock.lock();
        if self.state.drawn.swap(false, Ordering::AcqRel) {
            eprint!("\r\x1b[2K");
        }
    }

    pub fn stop(self) {
        self.task.abort();
        self.state.draw();
        eprintln!();
    }
}

impl ProgressState {
    fn draw(&self) {
        let _guard = self.lock.lock();
        let done = self.done.load(Ordering::Relaxed);
        let errors = self.errors.load(Ordering::Relaxed);
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        let rate = done as f64 / secs;
        let line = match self.total {
            Some(total) if total > 0 => {
                let frac = (done as f64 / total as f64).min(1.0);
                let filled = (frac * 30.0) as usize;
                let eta = if rate > 0.0 {
                    format!("{:.0}s", (total.saturating_sub(done)) as f64 / rate)
                } else {
                    "?".into()
                };
                format!(
                    "[{}{}] {done}/{total} {:>3.0}%  {rate:.0}/s  errors {errors}  eta {eta}",
                    "=".repeat(filled),
                    " ".repeat(30 - filled),
                    frac * 100.0
                )
            }
            _ => format!("{done} sent  {rate:.0}/s  errors {errors}"),
        };
        eprint!("\r\x1b[2K{line}");
        let _ = std::io::stderr().flush();
        self.drawn.store(true, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(outcome: &Outcome, number: Option<u64>, token: &str) -> String {
        let mut out = Vec::new();
        write_json_line(&mut out, number, token, outcome);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn result_lines_are_json_in_the_documented_order() {
        let ok = Response::from_parts(200, Some("id-1".into()), Some("u-1".into()), b"");
        assert_eq!(
            line(&Outcome::Sent(Ok(ok)), Some(7), "00ab"),
            r#"{"line":7,"device_token":"00ab","status":200,"apns_id":"id-1","apns_unique_id":"u-1","reason":null,"timestamp":null}"#
        );
        let gone = Response::from_parts(
            410,
            None,
            None,
            br#"{"reason":"Unregistered","timestamp":17}"#,
        );
        let text = line(&Outcome::Sent(Ok(gone)), None, "00ab");
        assert!(
            text.ends_with(r#""reason":"Unregistered","timestamp":17}"#),
            "{text}"
        );
        // Errors and awkward text are escaped and parse back.
        let odd = "a \"quoted\"\\ line\n\u{1}é";
        for outcome in [
            Outcome::Invalid(odd.into()),
            Outcome::NotSent("not sent: interrupted"),
            Outcome::Sent(Err(Error::Shutdown {
                may_have_been_delivered: true,
            })),
        ] {
            let text = line(&outcome, Some(1), odd);
            let v: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(v["device_token"], odd);
            assert!(v["status"].is_null());
            assert!(v["error"].is_string());
            assert!(v["may_have_been_delivered"].is_boolean());
        }
    }
}
