//! What to do after each attempt of one request, decided without I/O.
//!
//! Like tower's retry `Policy`: the loop in `attempt.rs` does the I/O
//! (leases, sends, the pool, the token cache, the clock, the retry budget)
//! and hands [`next`] the facts; [`next`] keeps the tally in [`State`] and
//! answers with a [`Step`] and what to tell the pool. Every rule about
//! retries, resends and re-mints lives here, so an outage fix edits this
//! file and its tests, which need no sockets.

use std::borrow::Cow;

use crate::error::{Error, Result};
use crate::response::{ReasonClass, Response};
use crate::transport::pool::Verdict;

/// What one request has been through so far, and its policy.
#[derive(Debug)]
pub(super) struct State {
    max_retries: u32,
    resend_unknown: bool,
    /// Retries of transient rejections so far (resends and re-mints do not
    /// count).
    retries: u32,
    /// A token was re-minted for this request already: a second
    /// `ExpiredProviderToken` is the clock's fault.
    reminted: bool,
    /// An earlier attempt was on the wire when its connection died: the
    /// request may have been delivered, whatever happens later.
    was_on_wire: bool,
    /// The connection the next lease should not use (a resend's).
    avoid: Option<u64>,
    /// The last transient rejection, returned if no retry can follow it.
    last_answer: Option<Response>,
    /// A retry was decided and has not gone out yet.
    retry_due: bool,
}

/// What an attempt produced, with the facts [`next`] needs that only the
/// I/O side can know.
#[derive(Debug)]
pub(super) enum Outcome {
    /// The request got no answer.
    Failed {
        /// Why; its `may_have_been_delivered` says whether it was on the
        /// wire, and only an [`Error::Connection`] may be resent.
        error: Error,
        /// The server refused the stream (`REFUSED_STREAM`).
        refused: bool,
        /// The connection it was sent on.
        connection: u64,
        /// The request's deadline has passed.
        deadline_passed: bool,
    },
    /// APNs answered.
    Answered {
        response: Response,
        /// The provider token the request carried, `None` with a
        /// certificate.
        token: Option<TokenUse>,
        /// The request's deadline has passed.
        deadline_passed: bool,
    },
}

/// What the loop knows about the provider token a request carried.
#[derive(Debug, Clone, Copy)]
pub(super) struct TokenUse {
    /// A replacement minted after an invalidation and younger than
    /// `MIN_REFRESH_AFTER`: if APNs calls it expired, re-minting cannot
    /// help, the clock is wrong. Once it is 20 minutes old a new mint is
    /// allowed again (the clock may have been fixed), so one bad moment
    /// does not block sending until the next refresh.
    pub fresh_replacement: bool,
}

/// What the loop must do after an attempt.
#[derive(Debug)]
pub(super) struct Decision {
    /// Tell the pool this about the lease's connection, before the step.
    pub report: Option<Report>,
    pub step: Step,
}

/// A verdict on a connection and the reason the pool logs with it.
#[derive(Debug, PartialEq)]
pub(super) struct Report {
    pub verdict: Verdict,
    pub reason: Cow<'static, str>,
}

/// The next thing the loop does.
#[derive(Debug)]
pub(super) enum Step {
    /// Send again at once, avoiding [`State::take_avoid`]'s connection, and
    /// bump the resends counter: the server never processed the request
    /// (or `resend_unknown` accepts a duplicate). Not a retry.
    Resend,
    /// Invalidate the token the request carried (a new one is minted) and
    /// send again; the pool was told to reconnect.
    Remint,
    /// A retry of a transient rejection: lease again (the pool spaces
    /// probes) and send; [`State::retry_going_out`] says when it leaves.
    Retry,
    /// Stop: the request's result.
    Return(Result<Response>),
}

impl State {
    /// A request not yet sent, with its retry policy (`resend_unknown`
    /// already narrowed to what this request may duplicate).
    pub(super) fn new(max_retries: u32, resend_unknown: bool) -> State {
        State {
            max_retries,
            resend_unknown,
            retries: 0,
            reminted: false,
            was_on_wire: false,
            avoid: None,
            last_answer: None,
            retry_due: false,
        }
    }

    /// Whether an attempt so far was on the wire when its connection died:
    /// what the caller's `sent` flag says between attempts.
    pub(super) fn was_on_wire(&self) -> bool {
        self.was_on_wire
    }

    /// The connection the next lease should avoid; asked once per lease.
    pub(super) fn take_avoid(&mut self) -> Option<u64> {
        self.avoid.take()
    }

    /// Called once a stream is leased: if a retry is going out on it, the
    /// rejection it retries (for the budget and the retries counter). The
    /// budget stays with the loop: it is shared by all requests, and only
    /// a retry sent as the pool's probe spends it.
    pub(super) fn retry_going_out(&mut self) -> Option<&Response> {
        if !std::mem::take(&mut self.retry_due) {
            return None;
        }
        self.last_answer.as_ref()
    }

    /// No stream could be leased (deadline, shutdown, no connection): the
    /// last transient rejection is a better answer than the wait's error,
    /// except at shutdown, which the caller must see.
    pub(super) fn no_stream(self, e: Error) -> Result<Response> {
        match self.last_answer {
            Some(answer) if !matches!(e, Error::Shutdown { .. }) => Ok(answer),
            _ => Err(upgrade(e, self.was_on_wire)),
        }
    }
}

/// Decides what follows an attempt, and updates the tally.
pub(super) fn next(outcome: Outcome, state: &mut State) -> Decision {
    match outcome {
        Outcome::Failed {
            error,
            refused,
            connection,
            deadline_passed,
        } => failed(error, refused, connection, deadline_passed, state),
        Outcome::Answered {
            response,
            token,
            deadline_passed,
        } => answered(response, token, deadline_passed, state),
    }
}

fn failed(
    error: Error,
    refused: bool,
    connection: u64,
    deadline_passed: bool,
    state: &mut State,
) -> Decision {
    // A refused stream says the server is under pressure: the pool probes,
    // but the connection stays.
    let report = refused.then(|| Report {
        verdict: Verdict::Trouble { retire: false },
        reason: "REFUSED_STREAM".into(),
    });
    let on_wire = error.may_have_been_delivered();
    let resend = matches!(error, Error::Connection { .. })
        && (!on_wire || state.resend_unknown)
        && !deadline_passed;
    if !resend {
        let step = Step::Return(Err(upgrade(error, state.was_on_wire)));
        return Decision { report, step };
    }
    tracing::debug!(connection, %error, "resending");
    state.was_on_wire |= on_wire;
    state.avoid = Some(connection);
    Decision {
        report,
        step: Step::Resend,
    }
}

fn answered(
    response: Response,
    token: Option<TokenUse>,
    deadline_passed: bool,
    state: &mut State,
) -> Decision {
    // A 5xx without a body still says what to do.
    let class = match response.reason() {
        Some(reason) => reason.class(),
        None if response.status() == 500 => ReasonClass::RetryLater,
        None if response.status() == 503 => ReasonClass::RetryNewConnection,
        None => ReasonClass::RequestBug,
    };
    let reason = reason_text(&response);
    let report = |verdict| {
        Some(Report {
            verdict,
            reason: reason.clone(),
        })
    };
    let report = match class {
        ReasonClass::RefreshProviderToken => {
            let Some(token) = token else {
                // Certificate auth: nothing to re-mint; a final answer.
                return Decision {
                    report: report(Verdict::Answered),
                    step: Step::Return(Ok(response)),
                };
            };
            if state.reminted || token.fresh_replacement {
                tracing::error!("a freshly minted provider token was reported expired; check this machine's clock");
                return Decision {
                    report: None,
                    step: Step::Return(Err(Error::TokenExpiredAgain(Box::new(response)))),
                };
            }
            // However many requests saw this token expire, one re-mint.
            tracing::info!(
                "ExpiredProviderToken: minted a new token; retrying once on a new connection"
            );
            state.reminted = true;
            return Decision {
                report: Some(Report {
                    verdict: Verdict::Reconnect,
                    reason: "ExpiredProviderToken".into(),
                }),
                step: Step::Remint,
            };
        }
        ReasonClass::TokenUpdates | ReasonClass::RetryNewConnection => {
            report(Verdict::Trouble { retire: true })
        }
        ReasonClass::RetryLater => report(Verdict::Trouble { retire: false }),
        ReasonClass::Reconnect => report(Verdict::Reconnect),
        // Accepted, or a final rejection: the endpoint works.
        _ => {
            return Decision {
                report: report(Verdict::Answered),
                step: Step::Return(Ok(response)),
            }
        }
    };
    if state.retries >= state.max_retries || deadline_passed {
        return Decision {
            report,
            step: Step::Return(Ok(response)),
        };
    }
    state.retries += 1;
    tracing::debug!(%reason, retry = state.retries, "retrying a transient rejection");
    state.last_answer = Some(response);
    state.retry_due = true;
    Decision {
        report,
        step: Step::Retry,
    }
}

/// The reason the pool logs: static for every known reason and for 200, so
/// an ordinary answer allocates nothing (the pool ignores most of them).
fn reason_text(response: &Response) -> Cow<'static, str> {
    match response.reason() {
        Some(r) => match r.known_name() {
            Some(name) => name.into(),
            None => r.as_str().to_owned().into(),
        },
        None if response.status() == 200 => "200".into(),
        None => response.status().to_string().into(),
    }
}

/// An error after an earlier attempt of the same notification was on the
/// wire when its connection died: whatever the last attempt says, the
/// notification may have been delivered.
fn upgrade(e: Error, was_on_wire: bool) -> Error {
    if !was_on_wire || e.may_have_been_delivered() {
        return e;
    }
    match e {
        Error::Timeout { what, after, .. } => Error::Timeout {
            what,
            after,
            may_have_been_delivered: true,
        },
        Error::Shutdown { .. } => Error::Shutdown {
            may_have_been_delivered: true,
        },
        other => Error::Connection {
            message: format!(
                "{other}; an earlier attempt was on the wire when its connection was lost"
            ),
            may_have_been_delivered: true,
        },
    }
}
