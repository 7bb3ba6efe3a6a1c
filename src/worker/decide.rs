//! What to do with a job, decided without Redis: the pure half of
//! `deliver.rs` and `finish.rs`, which carry the decisions out.
//!
//! One delivery goes through [`check`] (before anything is sent: a bad
//! entry, too many deliveries, an interrupted at-most-once send),
//! [`notification`] (what the job's app makes of it) and [`answered`]
//! (what APNs' answer, or the failure to get one, means). Each ends in an
//! [`Action`] for the finisher, which [`tally`] counts once written.

use super::config::{Config, Delivery};
use super::job::{excerpt, Job, JobResult};
use super::queue::Fields;
use super::read::Shape;
use crate::app::App;
use crate::error::Result;
use crate::notification::Notification;
use crate::response::Response;

/// What an earlier delivery left in the marker.
#[derive(Debug, PartialEq)]
pub(super) enum Marker {
    /// It was being sent: the outcome is unknown.
    Sending,
    /// It failed before reaching APNs, with this error.
    Failed(String),
}

impl Marker {
    pub(super) fn parse(value: &str) -> Marker {
        let mut parts = value.splitn(4, '|');
        match (parts.next(), parts.nth(2)) {
            (Some("failed"), Some(error)) => Marker::Failed(error.to_string()),
            // Anything else may have been on the wire.
            _ => Marker::Sending,
        }
    }
}

fn attempt() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// The marker of a delivery about to send (unique to this attempt).
pub(super) fn sending_marker(consumer: &str) -> String {
    format!("sending|{consumer}|{}", attempt())
}

/// The marker of a delivery that failed before reaching APNs.
pub(super) fn failed_marker(consumer: &str, error: &str) -> String {
    format!("failed|{consumer}|{}|{}", attempt(), excerpt(error, 500))
}

/// What one delivery of a job came to: what the finisher does with it.
#[derive(Debug, PartialEq)]
pub(super) enum Action {
    /// Write the result and acknowledge the job: it is done.
    Result(JobResult),
    /// Add the job's fields to the dead letter, write the result and
    /// acknowledge the job: it is done, and never comes back.
    Dead {
        result: JobResult,
        fields: Fields,
        error: String,
        deliveries: u64,
    },
    /// Failed before reaching APNs: leave it pending, to be claimed and
    /// tried again after `claim_idle`, with the error in its marker.
    Retry { error: String },
    /// May have reached APNs (at-least-once): leave it pending with its
    /// `sending` marker, to be sent again (same `apns-id`) when claimed.
    Release,
}

impl Action {
    /// Whether the job stays pending (to be tried again) after this.
    pub(super) fn leaves_pending(&self) -> bool {
        matches!(self, Action::Retry { .. } | Action::Release)
    }

    /// Whether the finisher writes anything for it (a release leaves the
    /// marker as it is, so needs no transaction).
    pub(super) fn writes(&self) -> bool {
        !matches!(self, Action::Release)
    }
}

/// One delivery of a job, as read: what [`check`] decides from.
#[derive(Debug)]
pub(super) struct Attempt<'a> {
    /// The stream entry id.
    pub entry_id: &'a str,
    pub fields: &'a Fields,
    /// Placeholders the read put in place of oversized fields.
    pub shape: &'a Shape,
    /// What an earlier delivery left in the marker (`None`: no marker).
    pub earlier: Option<&'a Marker>,
    /// Deliveries so far, this one included.
    pub deliveries: u64,
}

impl Attempt<'_> {
    /// The field `name` as text (a placeholder is never taken for the
    /// job's own value).
    fn raw(&self, name: &[u8]) -> Option<String> {
        self.fields
            .iter()
            .enumerate()
            .find(|(i, (k, _))| k.as_slice() == name && !self.shape.is_replaced(2 * i + 1))
            .map(|(_, (_, v))| String::from_utf8_lossy(v).into_owned())
    }

    /// The job's dead letter, with its result saying `error`.
    pub(super) fn dead(&self, base: JobResult, error: String, maybe: bool) -> Action {
        Action::Dead {
            result: base.failed(error.clone(), maybe),
            fields: self.fields.clone(),
            error,
            deliveries: self.deliveries,
        }
    }
}

/// What [`check`] found.
#[derive(Debug)]
pub(super) enum Check {
    /// Send it: resolve its app, build the notification, send.
    Send {
        // Boxed: a job is several times the size of an outcome.
        job: Box<Job>,
        /// The result so far (job, app, token, worker).
        base: JobResult,
    },
    /// Do not send it: this is its outcome.
    Done(Action),
}

/// What to do with a delivery before anything is sent: a bad entry, one
/// delivered too often, or (at-most-once) one whose earlier delivery was
/// interrupted while sending does not go out.
pub(super) fn check(cfg: &Config, a: &Attempt<'_>) -> Check {
    // The result names the job even when the entry is bad.
    let job_id = a
        .raw(b"job")
        .filter(|j| !j.is_empty())
        .unwrap_or_else(|| format!("entry {}", a.entry_id));
    let app_name = a.raw(b"app");
    let base = JobResult::for_job(
        &job_id,
        app_name.as_deref(),
        &a.raw(b"device_token").unwrap_or_default(),
        &cfg.consumer,
    );
    if let Some(why) = a.shape.problem(a.fields) {
        return Check::Done(a.dead(base, format!("invalid job: {why}"), false));
    }
    if a.deliveries > cfg.max_deliveries {
        let (last, maybe) = match a.earlier {
            Some(Marker::Failed(e)) => (e.as_str(), false),
            Some(Marker::Sending) => (
                "a worker stopped or lost its connection while sending it (it may have been delivered)",
                true,
            ),
            None => ("the workers handling it stopped before sending it", false),
        };
        let error = format!(
            "delivered {} times, more than the {} allowed; last error: {last}",
            a.deliveries, cfg.max_deliveries
        );
        return Check::Done(a.dead(base, error, maybe));
    }
    let job = match Job::from_fields(a.fields) {
        Ok(j) => j,
        // Its text starts with "invalid <field>:" already.
        Err(e) => return Check::Done(a.dead(base, e.to_string(), false)),
    };
    if a.earlier == Some(&Marker::Sending) && cfg.delivery == Delivery::AtMostOnce {
        return Check::Done(Action::Result(base.failed(
            "outcome unknown: an earlier delivery was interrupted while sending it; not sent again (at-most-once)",
            true,
        )));
    }
    Check::Send {
        job: Box::new(job),
        base,
    }
}

/// The app and notification to send for `job`, given its app (or the
/// error that resolving the app gave), or why the job goes to the dead
/// letter. Sets the job's `apns-id` (stable across deliveries).
pub(super) fn notification(
    job: &mut Job,
    app: std::result::Result<App, String>,
) -> std::result::Result<(App, Notification), String> {
    let app = app.map_err(|e| {
        let which = match &job.app {
            Some(name) => format!("app {:?}", excerpt(name, 64)),
            None => "the worker's own credentials (the job names no app)".into(),
        };
        format!("{which}: {e}")
    })?;
    let apns_id = job.apns_id().map_err(|e| e.to_string())?;
    job.spec.apns_id = Some(apns_id.to_string());
    let notification = app.defaults().build(&job.spec).map_err(|e| e.to_string())?;
    if notification.topic().is_none() && app.client().certificate().is_none() {
        return Err(
            "invalid topic: required; the job has none and its app no default topic".into(),
        );
    }
    Ok((app, notification))
}

/// What a send's result means: APNs' answer is the result; a failure that
/// may have reached APNs is resent (at-least-once) or reported
/// (at-most-once); any other failure is tried again later.
pub(super) fn answered(delivery: Delivery, base: JobResult, result: &Result<Response>) -> Action {
    match result {
        Ok(r) => Action::Result(base.answered(r)),
        Err(e) if e.may_have_been_delivered() => match delivery {
            Delivery::AtMostOnce => Action::Result(base.failed(e.to_string(), true)),
            Delivery::AtLeastOnce => Action::Release,
        },
        Err(e) => Action::Retry {
            error: e.to_string(),
        },
    }
}

/// Which counter an outcome goes to, once the finisher knows whether it
/// wrote it (`mine`: the marker was still this worker's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Tally {
    Accepted,
    Rejected,
    Failed,
    DeadLettered,
    Retried,
    /// Another worker claimed the job meanwhile and writes its outcome.
    TakenOver,
}

/// The counter of an outcome.
pub(super) fn tally(action: &Action, mine: bool) -> Tally {
    match (action, mine) {
        (_, false) => Tally::TakenOver,
        (Action::Result(r), true) if r.is_accepted() => Tally::Accepted,
        (Action::Result(r), true) if r.status.is_some() => Tally::Rejected,
        (Action::Result(_), true) => Tally::Failed,
        (Action::Dead { .. }, true) => Tally::DeadLettered,
        (Action::Retry { .. } | Action::Release, true) => Tally::Retried,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::error::Error;
    use crate::wire::SpecDefaults;

    const TOKEN: &str = "00fc13adff785122b4ad28809a3420982341241421348097878e577c991de8f0";

    fn config(delivery: Delivery) -> Config {
        Config {
            stream: "jobs".into(),
            group: "g".into(),
            consumer: "w1".into(),
            results_stream: "results".into(),
            dead_letter: "dead".into(),
            concurrency: 10,
            claim_idle: Duration::from_secs(60),
            claim_every: Duration::from_secs(15),
            max_deliveries: 3,
            delivery,
            marker_ttl: Duration::from_secs(3600),
            block: Duration::from_secs(2),
            delete_acked: true,
            results_maxlen: None,
        }
    }

    fn fields(pairs: &[(&str, &str)]) -> Fields {
        pairs
            .iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect()
    }

    fn good() -> Fields {
        fields(&[
            ("v", "1"),
            ("job", "j1"),
            ("app", "shop"),
            ("device_token", TOKEN),
            ("payload", r#"{"aps":{"alert":"hi"}}"#),
        ])
    }

    fn attempt<'a>(
        fields: &'a Fields,
        shape: &'a Shape,
        earlier: Option<&'a Marker>,
        deliveries: u64,
    ) -> Attempt<'a> {
        Attempt {
            entry_id: "1-0",
            fields,
            shape,
            earlier,
            deliveries,
        }
    }

    fn dead_error(check: Check) -> (String, bool) {
        match check {
            Check::Done(Action::Dead { result, error, .. }) => {
                assert_eq!(result.error.as_deref(), Some(error.as_str()));
                (error, result.may_have_been_delivered)
            }
            other => panic!("not a dead letter: {other:?}"),
        }
    }

    fn client() -> crate::Client {
        let key = crate::SigningKey::from_pem(crate::auth::generate_p8_pem().as_bytes()).unwrap();
        crate::Client::builder()
            .token_auth(key, "ABCDE12345", "TEAM123456")
            .build()
            .unwrap()
    }

    #[test]
    fn markers_say_what_an_earlier_delivery_did() {
        assert_eq!(Marker::parse(&sending_marker("w1")), Marker::Sending);
        assert_eq!(
            Marker::parse(&failed_marker("w1", "no route | to host")),
            Marker::Failed("no route | to host".into())
        );
        assert_eq!(Marker::parse("garbage"), Marker::Sending);
        assert_ne!(sending_marker("w"), sending_marker("w"));
    }

    #[test]
    fn a_good_first_delivery_is_sent() {
        let (f, shape) = (good(), Shape::default());
        match check(
            &config(Delivery::AtLeastOnce),
            &attempt(&f, &shape, None, 1),
        ) {
            Check::Send { job, base } => {
                assert_eq!(job.id, "j1");
                assert_eq!(job.app.as_deref(), Some("shop"));
                assert_eq!(base.job, "j1");
                assert_eq!(base.app.as_deref(), Some("shop"));
                assert_eq!(base.device_token, TOKEN);
                assert_eq!(base.worker, "w1");
                assert_eq!(base.error, None);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_bad_entry_goes_to_the_dead_letter_named_by_its_entry() {
        let f = fields(&[("v", "1"), ("device_token", TOKEN), ("payload", "{}")]);
        let shape = Shape::default();
        let check = check(
            &config(Delivery::AtLeastOnce),
            &attempt(&f, &shape, None, 1),
        );
        let Check::Done(Action::Dead {
            result,
            fields,
            deliveries,
            ..
        }) = &check
        else {
            panic!("{check:?}")
        };
        assert_eq!(result.job, "entry 1-0");
        assert_eq!(fields, &f);
        assert_eq!(*deliveries, 1);
        let (error, maybe) = dead_error(check);
        assert!(error.starts_with("invalid job"), "{error}");
        assert!(!maybe);
    }

    #[test]
    fn an_entry_cut_by_the_read_is_invalid_and_its_placeholder_not_taken() {
        let f = good();
        // The `job` value (flat index 3) is a placeholder.
        let shape = Shape {
            replaced: vec![crate::worker::read::Replaced {
                index: 3,
                len: 1 << 20,
            }],
            flat_len: f.len() * 2,
        };
        let check = check(
            &config(Delivery::AtLeastOnce),
            &attempt(&f, &shape, None, 1),
        );
        let Check::Done(Action::Dead { result, .. }) = &check else {
            panic!("{check:?}")
        };
        assert_eq!(result.job, "entry 1-0");
        let (error, _) = dead_error(check);
        assert!(
            error.starts_with("invalid job: the field \"job\" is"),
            "{error}"
        );
    }

    #[test]
    fn too_many_deliveries_go_to_the_dead_letter_with_the_last_error() {
        let (f, shape) = (good(), Shape::default());
        let cfg = config(Delivery::AtLeastOnce);
        let failed = Marker::Failed("no route to host".into());
        let (error, maybe) = dead_error(check(&cfg, &attempt(&f, &shape, Some(&failed), 4)));
        assert_eq!(
            error,
            "delivered 4 times, more than the 3 allowed; last error: no route to host"
        );
        assert!(!maybe);
        let (error, maybe) =
            dead_error(check(&cfg, &attempt(&f, &shape, Some(&Marker::Sending), 4)));
        assert!(
            error.contains("while sending it (it may have been delivered)"),
            "{error}"
        );
        assert!(maybe);
        let (error, maybe) = dead_error(check(&cfg, &attempt(&f, &shape, None, 4)));
        assert!(error.ends_with("stopped before sending it"), "{error}");
        assert!(!maybe);
        // The last allowed delivery is still sent.
        assert!(matches!(
            check(&cfg, &attempt(&f, &shape, Some(&failed), 3)),
            Check::Send { .. }
        ));
    }

    #[test]
    fn an_interrupted_send_is_resent_only_at_least_once() {
        let (f, shape) = (good(), Shape::default());
        let a = attempt(&f, &shape, Some(&Marker::Sending), 2);
        assert!(matches!(
            check(&config(Delivery::AtLeastOnce), &a),
            Check::Send { .. }
        ));
        match check(&config(Delivery::AtMostOnce), &a) {
            Check::Done(Action::Result(r)) => {
                assert!(r.may_have_been_delivered);
                assert!(r.error.unwrap().starts_with("outcome unknown"));
                assert_eq!(r.status, None);
            }
            other => panic!("{other:?}"),
        }
        // A failed earlier delivery never reached APNs: sent again.
        let failed = Marker::Failed("refused".into());
        let a = attempt(&f, &shape, Some(&failed), 2);
        assert!(matches!(
            check(&config(Delivery::AtMostOnce), &a),
            Check::Send { .. }
        ));
    }

    fn job() -> Job {
        Job::from_fields(&good()).unwrap()
    }

    #[test]
    fn an_app_that_did_not_resolve_is_named_in_the_error() {
        let e = notification(&mut job(), Err("no such profile".into())).unwrap_err();
        assert_eq!(e, "app \"shop\": no such profile");
        let mut own = job();
        own.app = None;
        let e = notification(&mut own, Err("no key".into())).unwrap_err();
        assert_eq!(
            e,
            "the worker's own credentials (the job names no app): no key"
        );
    }

    #[test]
    fn the_notification_takes_the_apps_topic_and_a_stable_apns_id() {
        let app = App::new(client()).with_defaults(
            SpecDefaults::builder()
                .topic("com.example.app")
                .build()
                .unwrap(),
        );
        let mut j = job();
        let (_, n) = notification(&mut j, Ok(app)).unwrap();
        assert_eq!(n.topic().map(|t| t.as_str()), Some("com.example.app"));
        let id = job().apns_id().unwrap().to_string();
        assert_eq!(j.spec.apns_id.as_deref(), Some(id.as_str()));
        assert_eq!(n.apns_id().map(|i| i.to_string()), Some(id));
        // Token auth needs a topic: none in the job nor the app.
        let bare = App::new(client());
        let e = notification(&mut job(), Ok(bare)).unwrap_err();
        assert!(e.starts_with("invalid topic: required"), "{e}");
    }

    #[test]
    fn answers_failures_and_the_delivery_mode() {
        let base = || JobResult::for_job("j1", None, TOKEN, "w1");
        let ok = Ok(Response::from_parts(200, Some("id".into()), None, b""));
        for d in [Delivery::AtLeastOnce, Delivery::AtMostOnce] {
            let Action::Result(r) = answered(d, base(), &ok) else {
                panic!()
            };
            assert!(r.is_accepted());
            let bad = Ok(Response::from_parts(
                400,
                None,
                None,
                br#"{"reason":"BadDeviceToken"}"#,
            ));
            let Action::Result(r) = answered(d, base(), &bad) else {
                panic!()
            };
            assert_eq!(
                (r.status, r.reason.as_deref()),
                (Some(400), Some("BadDeviceToken"))
            );
            // Never on the wire: tried again later, whatever the mode.
            let never = Err(Error::Shutdown {
                may_have_been_delivered: false,
            });
            let action = answered(d, base(), &never);
            assert!(matches!(&action, Action::Retry { error } if error.contains("not sent")));
            assert!(action.leaves_pending() && action.writes());
        }
        let maybe = Err(Error::Shutdown {
            may_have_been_delivered: true,
        });
        let action = answered(Delivery::AtLeastOnce, base(), &maybe);
        assert_eq!(action, Action::Release);
        assert!(action.leaves_pending() && !action.writes());
        let Action::Result(r) = answered(Delivery::AtMostOnce, base(), &maybe) else {
            panic!()
        };
        assert!(r.may_have_been_delivered && r.status.is_none() && r.error.is_some());
    }

    #[test]
    fn outcomes_are_counted_once_written() {
        let base = || JobResult::for_job("j1", None, TOKEN, "w1");
        let accepted = Action::Result(base().answered(&Response::from_parts(200, None, None, b"")));
        let rejected = Action::Result(base().answered(&Response::from_parts(
            410,
            None,
            None,
            br#"{"reason":"Unregistered"}"#,
        )));
        let failed = Action::Result(base().failed("timeout", true));
        let dead = Action::Dead {
            result: base().failed("bad", false),
            fields: good(),
            error: "bad".into(),
            deliveries: 1,
        };
        let retry = Action::Retry { error: "e".into() };
        for (action, tally_) in [
            (&accepted, Tally::Accepted),
            (&rejected, Tally::Rejected),
            (&failed, Tally::Failed),
            (&dead, Tally::DeadLettered),
            (&retry, Tally::Retried),
            (&Action::Release, Tally::Retried),
        ] {
            assert_eq!(tally(action, true), tally_, "{action:?}");
            assert_eq!(tally(action, false), Tally::TakenOver, "{action:?}");
            assert_eq!(
                action.leaves_pending(),
                tally_ == Tally::Retried,
                "{action:?}"
            );
        }
    }
}
