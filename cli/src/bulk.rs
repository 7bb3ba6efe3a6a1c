//! The send loop of `apns send`: reads lines, sends up to `--concurrency`
//! at once, writes a result line for each as it completes, and stops intake
//! on Ctrl-C, on a write error or when the input ends. Every line read gets
//! exactly one result line (or, with `--resume`, is counted as skipped).

use std::time::Duration;

use apns_provider::metrics::AppMetrics;
use apns_provider::wire::SpecDefaults;
use apns_provider::Client;
use futures_util::stream::FuturesUnordered;
use futures_util::StreamExt;

use super::input::{require_topic, Lines, Parsed};
use super::report::{Outcome, Reporter};
use super::resume::{Resume, Verdict};
use super::{exit, Failure};

/// How often buffered result lines are written out (and a write error
/// noticed) at the latest.
const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// What the loop needs besides the client and the lines.
pub struct Options {
    pub concurrency: usize,
    /// `--timeout` in seconds, for the Ctrl-C message.
    pub timeout: f64,
    pub resume: Option<Resume>,
    /// Where outcomes are counted (`--metrics-listen`).
    pub metrics: Option<apns_provider::metrics::AppMetrics>,
}

/// Why intake stopped before the input ended.
enum Stop {
    Interrupted,
    WriteError,
    ReadError(String),
    Mismatch(String),
}

impl Stop {
    /// The result of lines read but not sent.
    fn not_sent(&self) -> &'static str {
        match self {
            Stop::Interrupted => "not sent: interrupted",
            Stop::WriteError => "not sent: an output could not be written",
            Stop::ReadError(_) => "not sent: the tokens file could not be read",
            Stop::Mismatch(_) => "not sent: the tokens file does not match the results to resume",
        }
    }
}

/// Sends every line, writing a result line for each, until the input ends
/// or something stops intake.
pub async fn send_all(
    client: Client,
    mut lines: Lines,
    defaults: SpecDefaults,
    mut options: Options,
    mut reporter: Reporter,
) -> Result<u8, Failure> {
    let mut in_flight = futures_for(send_one);
    let mut intake = true;
    let mut stop: Option<Stop> = None;
    // Ctrl-C presses, counted by one listener for the whole run (a listener
    // made per press could miss one).
    let mut interrupts = count_interrupts();
    let mut presses = 0u32;
    let mut listening = true;
    let mut flush = tokio::time::interval(FLUSH_EVERY);
    flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        if !intake && in_flight.is_empty() {
            break;
        }
        // Set when intake must stop after this turn, with the reason.
        let mut stopping: Option<Stop> = None;
        tokio::select! {
            // Presses first: a Ctrl-C acts at once however busy the rest is.
            biased;
            changed = interrupts.changed(), if listening => {
                if changed.is_err() {
                    listening = false;
                    continue;
                }
                let now = *interrupts.borrow_and_update();
                if now >= 1 && presses == 0 {
                    announce_interrupt(in_flight.len(), options.timeout);
                    stopping = Some(Stop::Interrupted);
                }
                if now >= 2 {
                    // Synchronous: once it returns no request goes on the
                    // wire, and every send in progress resolves at once
                    // (each still gets its result line below).
                    client.abort();
                    eprintln!(
                        "apns: abandoning {} notification(s) in flight; each gets a result line",
                        in_flight.len()
                    );
                    listening = false;
                }
                presses = now;
            }
            Some((number, token, outcome)) = in_flight.next(), if !in_flight.is_empty() => {
                reporter.record(number, &token, &outcome);
                if reporter.write_error.is_some() {
                    stopping = Some(Stop::WriteError);
                }
            }
            _ = flush.tick() => {
                reporter.flush();
                if reporter.write_error.is_some() {
                    stopping = Some(Stop::WriteError);
                }
            }
            next = lines.recv(), if intake && in_flight.len() < options.concurrency => {
                match next {
                    None => intake = false,
                    Some(Err(e)) => stopping = Some(Stop::ReadError(e)),
                    // Parsed once: the resume verdict and the result line
                    // take its token, the send its notification.
                    Some(Ok(line)) => {
                        let line = line.parse(&defaults);
                        match check_resume(&mut options.resume, &line) {
                            Verdict::Send => in_flight.push(send_one(client.clone(), line, options.metrics.clone())),
                            Verdict::SkipDone => reporter.skip(false),
                            Verdict::SkipMaybeDelivered => reporter.skip(true),
                            Verdict::Mismatch(message) => {
                                let why = Stop::Mismatch(message);
                                reporter.record(line.number, &line.token, &Outcome::NotSent(why.not_sent()));
                                stopping = Some(why);
                            }
                        }
                    }
                }
            }
        }
        if let Some(why) = stopping {
            if intake {
                intake = false;
                // Lines read ahead but never sent still get a result line.
                lines.close();
                while let Some(Ok(line)) = lines.try_recv() {
                    let line = line.parse(&defaults);
                    match check_resume(&mut options.resume, &line) {
                        Verdict::SkipDone => reporter.skip(false),
                        Verdict::SkipMaybeDelivered => reporter.skip(true),
                        Verdict::Send | Verdict::Mismatch(_) => reporter.record(
                            line.number,
                            &line.token,
                            &Outcome::NotSent(why.not_sent()),
                        ),
                    }
                }
            }
            // The first reason is the one reported.
            if stop.is_none() {
                stop = Some(why);
            }
        }
    }
    let interrupted = presses >= 1;
    // Nothing is in flight any more: this only closes the connections.
    client.shutdown(Duration::from_secs(5)).await;
    if let Some(resume) = &options.resume {
        let past = resume.lines_past_the_end();
        if stop.is_none() && past > 0 {
            eprintln!("apns: warning: --resume: the results have {past} finished line(s) past the end of the tokens file: is it the same file?");
        }
    }
    reporter.finish(interrupted);
    if let Some(e) = reporter.write_error.take() {
        return Err(Failure {
            code: exit::OUTPUT,
            message: format!("{e}; intake stopped, and every line read is counted in the summary"),
        });
    }
    match stop {
        Some(Stop::ReadError(e)) | Some(Stop::Mismatch(e)) => return Err(Failure::usage(e)),
        _ => {}
    }
    let s = &reporter.summary;
    Ok(if interrupted {
        exit::INTERRUPTED
    } else if s.failed > 0 {
        exit::CONNECTION
    } else if s.invalid > 0 {
        exit::USAGE
    } else if !s.rejected.is_empty() {
        exit::REJECTED
    } else {
        exit::OK
    })
}

/// An empty set of the futures `send` makes (naming their type for the
/// compiler).
fn futures_for<F: std::future::Future>(
    _send: fn(Client, Parsed, Option<AppMetrics>) -> F,
) -> FuturesUnordered<F> {
    FuturesUnordered::new()
}

/// Says at once what the first Ctrl-C does.
fn announce_interrupt(in_flight: usize, timeout: f64) {
    use std::io::IsTerminal;
    // On a terminal, off the line where the shell echoed ^C.
    let newline = if std::io::stderr().is_terminal() {
        "\n"
    } else {
        ""
    };
    if in_flight == 0 {
        eprintln!("{newline}apns: interrupted: no new sends; nothing in flight");
    } else {
        eprintln!(
            "{newline}apns: interrupted: no new sends; waiting up to {timeout}s for {in_flight} in flight (Ctrl-C again to abandon)"
        );
    }
}

fn check_resume(resume: &mut Option<Resume>, line: &Parsed) -> Verdict {
    match (resume, line.number) {
        (Some(resume), Some(number)) => resume.verdict(number, &line.token),
        _ => Verdict::Send,
    }
}

async fn send_one(
    client: Client,
    line: Parsed,
    metrics: Option<AppMetrics>,
) -> (Option<u64>, String, Outcome) {
    let outcome = match line.notification.and_then(require_topic) {
        Ok(n) => {
            let started = metrics.as_ref().map(|_| std::time::Instant::now());
            let result = client.send(&n).await;
            if let (Some(m), Some(started)) = (&metrics, started) {
                m.record(n.push_type(), &result, started.elapsed());
            }
            Outcome::Sent(result)
        }
        Err(e) => Outcome::Invalid(e),
    };
    (line.number, line.token, outcome)
}

/// Counts Ctrl-C presses for the rest of the process.
fn count_interrupts() -> tokio::sync::watch::Receiver<u32> {
    let (tx, rx) = tokio::sync::watch::channel(0u32);
    // Registered before returning, so no press is lost to the default
    // handler in between.
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut sigint) = signal(SignalKind::interrupt()) {
            tokio::spawn(async move {
                while sigint.recv().await.is_some() {
                    tx.send_modify(|n| *n += 1);
                }
            });
        }
    }
    #[cfg(not(unix))]
    tokio::spawn(async move {
        while tokio::signal::ctrl_c().await.is_ok() {
            tx.send_modify(|n| *n += 1);
        }
    });
    rx
}
