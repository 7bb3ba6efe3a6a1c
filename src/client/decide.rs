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

#[cfg(test)]
mod tests {
    //! The loop's rules, replayed without sockets: each test feeds
    //! outcomes to [`next`] as the loop would and checks the steps.

    use std::time::Duration;

    use super::*;

    const CONN: u64 = 7;

    fn answer(status: u16, reason: Option<&str>) -> Response {
        let body = reason.map_or(String::new(), |r| format!(r#"{{"reason":"{r}"}}"#));
        Response::from_parts(status, None, None, body.as_bytes())
    }

    fn answered(response: Response) -> Outcome {
        Outcome::Answered {
            response,
            token: None,
            deadline_passed: false,
        }
    }

    fn with_token(response: Response, fresh_replacement: bool) -> Outcome {
        Outcome::Answered {
            response,
            token: Some(TokenUse { fresh_replacement }),
            deadline_passed: false,
        }
    }

    fn lost(may_have_been_delivered: bool, refused: bool) -> Outcome {
        Outcome::Failed {
            error: Error::Connection {
                message: "gone".into(),
                may_have_been_delivered,
            },
            refused,
            connection: CONN,
            deadline_passed: false,
        }
    }

    fn timeout(may_have_been_delivered: bool) -> Error {
        Error::Timeout {
            what: "request",
            after: Duration::from_secs(1),
            may_have_been_delivered,
        }
    }

    fn report(verdict: Verdict, reason: &'static str) -> Option<Report> {
        Some(Report {
            verdict,
            reason: reason.into(),
        })
    }

    fn returned(d: Decision) -> Result<Response> {
        match d.step {
            Step::Return(r) => r,
            other => panic!("expected a return, got {other:?}"),
        }
    }

    #[test]
    fn a_storm_of_503s_returns_after_exactly_max_retries() {
        for max_retries in [0, 1, 3, 10] {
            let mut state = State::new(max_retries, false);
            let mut retries = 0;
            let result = loop {
                let d = next(
                    answered(answer(503, Some("ServiceUnavailable"))),
                    &mut state,
                );
                assert_eq!(
                    d.report,
                    report(Verdict::Trouble { retire: true }, "ServiceUnavailable")
                );
                match d.step {
                    Step::Retry => retries += 1,
                    Step::Return(r) => break r,
                    other => panic!("{other:?}"),
                }
                // Each retry goes out once, carrying the answer it retries.
                assert_eq!(state.retry_going_out().map(|a| a.status()), Some(503));
                assert!(state.retry_going_out().is_none());
            };
            assert_eq!(retries, max_retries);
            assert_eq!(result.unwrap().status(), 503);
        }
    }

    #[test]
    fn refused_stream_resends_without_counting_a_retry() {
        let mut state = State::new(1, false);
        for _ in 0..5 {
            let d = next(lost(false, true), &mut state);
            assert_eq!(
                d.report,
                report(Verdict::Trouble { retire: false }, "REFUSED_STREAM")
            );
            assert!(matches!(d.step, Step::Resend), "{:?}", d.step);
            assert_eq!(state.take_avoid(), Some(CONN));
            assert_eq!(state.take_avoid(), None, "avoided for one lease only");
            assert!(state.retry_going_out().is_none(), "a resend is no retry");
            assert!(!state.was_on_wire());
        }
        // The one retry allowed is still there after five resends.
        let d = next(
            answered(answer(500, Some("InternalServerError"))),
            &mut state,
        );
        assert!(matches!(d.step, Step::Retry), "{:?}", d.step);
        let d = next(
            answered(answer(500, Some("InternalServerError"))),
            &mut state,
        );
        assert_eq!(returned(d).unwrap().status(), 500);
    }

    #[test]
    fn a_connection_loss_on_the_wire_is_returned_unless_resend_unknown() {
        let mut state = State::new(10, false);
        let d = next(lost(true, false), &mut state);
        assert_eq!(d.report, None);
        let e = returned(d).unwrap_err();
        assert!(
            matches!(e, Error::Connection { .. }) && e.may_have_been_delivered(),
            "{e:?}"
        );

        let mut state = State::new(10, true);
        let d = next(lost(true, false), &mut state);
        assert!(matches!(d.step, Step::Resend), "{:?}", d.step);
        assert!(state.was_on_wire());
        assert_eq!(state.take_avoid(), Some(CONN));
    }

    #[test]
    fn only_connection_errors_are_resent() {
        let mut state = State::new(10, true);
        let d = next(
            Outcome::Failed {
                error: timeout(false),
                refused: false,
                connection: CONN,
                deadline_passed: false,
            },
            &mut state,
        );
        assert!(matches!(returned(d), Err(Error::Timeout { .. })));
    }

    #[test]
    fn expired_provider_token_remints_once_then_is_token_expired_again() {
        let mut state = State::new(10, false);
        let expired = || answer(403, Some("ExpiredProviderToken"));
        let d = next(with_token(expired(), false), &mut state);
        assert_eq!(d.report, report(Verdict::Reconnect, "ExpiredProviderToken"));
        assert!(matches!(d.step, Step::Remint), "{:?}", d.step);
        assert!(state.retry_going_out().is_none(), "a re-mint is no retry");
        // Even an old (not fresh) token: the request re-minted once already.
        let d = next(with_token(expired(), false), &mut state);
        assert_eq!(d.report, None);
        match returned(d) {
            Err(Error::TokenExpiredAgain(r)) => assert_eq!(r.status(), 403),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_fresh_replacement_token_expiring_is_token_expired_again_at_once() {
        let mut state = State::new(10, false);
        let d = next(
            with_token(answer(403, Some("ExpiredProviderToken")), true),
            &mut state,
        );
        assert_eq!(d.report, None);
        assert!(matches!(returned(d), Err(Error::TokenExpiredAgain(_))));
    }

    #[test]
    fn expired_provider_token_without_a_token_is_final() {
        // Certificate auth: nothing to re-mint.
        let mut state = State::new(10, false);
        let d = next(
            answered(answer(403, Some("ExpiredProviderToken"))),
            &mut state,
        );
        assert_eq!(d.report, report(Verdict::Answered, "ExpiredProviderToken"));
        assert_eq!(returned(d).unwrap().status(), 403);
    }

    #[test]
    fn bodyless_500_and_503_are_retried_and_other_statuses_final() {
        for (status, retire) in [(500, false), (503, true)] {
            let mut state = State::new(10, false);
            let d = next(answered(answer(status, None)), &mut state);
            let reason = if status == 500 { "500" } else { "503" };
            assert_eq!(d.report, report(Verdict::Trouble { retire }, reason));
            assert!(matches!(d.step, Step::Retry), "{status}: {:?}", d.step);
        }
        for status in [400, 403, 404, 410, 413, 429, 502] {
            let mut state = State::new(10, false);
            let d = next(answered(answer(status, None)), &mut state);
            assert_eq!(
                d.report.as_ref().map(|r| r.verdict),
                Some(Verdict::Answered)
            );
            assert_eq!(returned(d).unwrap().status(), status);
        }
        let mut state = State::new(10, false);
        let d = next(answered(answer(200, None)), &mut state);
        assert_eq!(d.report, report(Verdict::Answered, "200"));
        assert_eq!(returned(d).unwrap().status(), 200);
    }

    #[test]
    fn each_transient_reason_tells_the_pool_what_it_means() {
        let cases = [
            (
                "TooManyProviderTokenUpdates",
                429,
                Verdict::Trouble { retire: true },
            ),
            ("Shutdown", 503, Verdict::Trouble { retire: true }),
            (
                "InternalServerError",
                500,
                Verdict::Trouble { retire: false },
            ),
            ("IdleTimeout", 400, Verdict::Reconnect),
        ];
        for (reason, status, verdict) in cases {
            let mut state = State::new(10, false);
            let d = next(answered(answer(status, Some(reason))), &mut state);
            assert_eq!(d.report, report(verdict, reason));
            assert!(matches!(d.step, Step::Retry), "{reason}: {:?}", d.step);
        }
        // Final rejections: no retry, the endpoint works.
        for (reason, status) in [("BadDeviceToken", 400), ("Unregistered", 410)] {
            let mut state = State::new(10, false);
            let d = next(answered(answer(status, Some(reason))), &mut state);
            assert_eq!(d.report, report(Verdict::Answered, reason));
            assert_eq!(returned(d).unwrap().status(), status);
        }
    }

    #[test]
    fn a_passed_deadline_stops_retries_and_resends() {
        let mut state = State::new(10, true);
        let d = next(
            Outcome::Answered {
                response: answer(503, Some("ServiceUnavailable")),
                token: None,
                deadline_passed: true,
            },
            &mut state,
        );
        // The pool still hears about the trouble.
        assert_eq!(
            d.report.as_ref().map(|r| r.verdict),
            Some(Verdict::Trouble { retire: true })
        );
        assert_eq!(returned(d).unwrap().status(), 503);

        for (on_wire, refused) in [(false, true), (false, false), (true, false)] {
            let mut state = State::new(10, true);
            let d = next(
                Outcome::Failed {
                    error: Error::Connection {
                        message: "gone".into(),
                        may_have_been_delivered: on_wire,
                    },
                    refused,
                    connection: CONN,
                    deadline_passed: true,
                },
                &mut state,
            );
            assert_eq!(d.report.is_some(), refused);
            assert!(matches!(returned(d), Err(Error::Connection { .. })));
            assert_eq!(state.take_avoid(), None);
        }
    }

    #[test]
    fn an_earlier_attempt_on_the_wire_upgrades_a_later_error() {
        let mut state = State::new(10, true);
        assert!(matches!(
            next(lost(true, false), &mut state).step,
            Step::Resend
        ));
        // A later timeout that never reached the wire still may have been
        // delivered: the first copy may have been.
        let d = next(
            Outcome::Failed {
                error: timeout(false),
                refused: false,
                connection: CONN,
                deadline_passed: false,
            },
            &mut state,
        );
        let e = returned(d).unwrap_err();
        assert!(
            matches!(e, Error::Timeout { .. }) && e.may_have_been_delivered(),
            "{e:?}"
        );

        // As does the error of a lease that never came.
        let mut state = State::new(10, true);
        assert!(matches!(
            next(lost(true, false), &mut state).step,
            Step::Resend
        ));
        let e = state.no_stream(Error::Protocol("no".into())).unwrap_err();
        assert!(
            matches!(e, Error::Connection { .. }) && e.may_have_been_delivered(),
            "{e:?}"
        );

        // Without an earlier attempt on the wire, errors stay as they are.
        let mut state = State::new(10, true);
        assert!(matches!(
            next(lost(false, false), &mut state).step,
            Step::Resend
        ));
        let e = state.no_stream(timeout(false)).unwrap_err();
        assert!(!e.may_have_been_delivered(), "{e:?}");
    }

    #[test]
    fn no_stream_returns_the_last_transient_answer_except_at_shutdown() {
        let mut state = State::new(10, false);
        let d = next(
            answered(answer(503, Some("ServiceUnavailable"))),
            &mut state,
        );
        assert!(matches!(d.step, Step::Retry));
        assert_eq!(state.no_stream(timeout(false)).unwrap().status(), 503);

        let mut state = State::new(10, false);
        let d = next(
            answered(answer(503, Some("ServiceUnavailable"))),
            &mut state,
        );
        assert!(matches!(d.step, Step::Retry));
        let e = state
            .no_stream(Error::Shutdown {
                may_have_been_delivered: false,
            })
            .unwrap_err();
        assert!(matches!(e, Error::Shutdown { .. }), "{e:?}");

        // Nothing to fall back on: the wait's error.
        let state = State::new(10, false);
        assert!(matches!(
            state.no_stream(timeout(false)),
            Err(Error::Timeout { .. })
        ));
    }
}
