//! The job format: one Redis stream entry per notification, and one result
//! entry per job. Both are flat lists of text fields, so that any producer
//! or consumer, in any language, can `XADD` and `XREAD` them.
//!
//! The table of fields is on [`Job`]; the result's on [`JobResult`].

use crate::error::{Error, Result};
use crate::notification::{ApnsId, Notification};
use crate::response::Response;
use crate::wire::NotificationSpec;

/// The version of the job format this crate writes, and the highest it reads.
pub const FORMAT_VERSION: u32 = 1;

/// The most bytes one field of a job may hold (far above any payload APNs
/// takes, 5120 bytes), so that a runaway producer cannot make a worker
/// hold huge values.
pub const MAX_FIELD_BYTES: usize = 64 * 1024;

/// The longest `job` id or `app` name.
pub const MAX_ID_BYTES: usize = 256;

/// The names of a job's fields.
pub mod field {
    /// The format version.
    pub const VERSION: &str = "v";
    /// The job's unique id.
    pub const JOB: &str = "job";
    /// The app (profile) whose credentials send it.
    pub const APP: &str = "app";
    /// The hex device token.
    pub const DEVICE_TOKEN: &str = "device_token";
    /// The payload, JSON text.
    pub const PAYLOAD: &str = "payload";
    /// `apns-topic`.
    pub const TOPIC: &str = "topic";
    /// `apns-push-type`.
    pub const PUSH_TYPE: &str = "push_type";
    /// `apns-priority`.
    pub const PRIORITY: &str = "priority";
    /// `apns-expiration`.
    pub const EXPIRATION: &str = "expiration";
    /// `apns-collapse-id`.
    pub const COLLAPSE_ID: &str = "collapse_id";
    /// `apns-id`.
    pub const APNS_ID: &str = "apns_id";
}

/// One notification to send, as a queue job: its id, the app whose
/// credentials send it, and the notification itself as a
/// [`NotificationSpec`] (the JSON-lines format of tokens files).
///
/// A job (format version 1):
///
/// | field | required | value |
/// |---|---|---|
/// | `v` | yes | `1`, the format version |
/// | `job` | yes | a unique id (`apns enqueue` makes a UUID); at most 256 bytes |
/// | `app` | no | a profile name: whose key sends it (else the worker's own credentials) |
/// | `device_token` | yes | hex |
/// | `payload` | yes | the payload, JSON text |
/// | `topic` | no | `apns-topic` (else the app's default topic) |
/// | `push_type` | no | `apns-push-type` (`alert` unless given) |
/// | `priority` | no | `10`, `5` or `1` |
/// | `expiration` | no | `0`, UNIX seconds, or `+1h` (relative to when the worker sends it) |
/// | `collapse_id` | no | `apns-collapse-id` |
/// | `apns_id` | no | `apns-id`, a UUID (else the `job` id when it is a UUID, else one derived from it) |
///
/// Any other field is an error (typos are caught), as is a repeated field,
/// a value over [`MAX_FIELD_BYTES`], a `payload` with a repeated JSON key
/// at any depth, or a `job` or `app` with control characters (the job's
/// result then shows them escaped, as `\n` or `\u{1b}`). A version above
/// [`FORMAT_VERSION`] is refused rather than guessed at.
///
/// ```
/// use apns_provider::worker::Job;
/// use apns_provider::wire::NotificationSpec;
///
/// let mut spec = NotificationSpec::for_token("00fc13ad");
/// spec.payload = Some(serde_json::Value::String(r#"{"aps":{"alert":"hi"}}"#.into()));
/// let job = Job::new("order-1234", spec).app("myapp");
/// let fields = job.to_fields();
/// assert!(fields.contains(&("v", "1".to_string())));
/// assert_eq!(Job::from_fields(&fields)?, job);
/// // The apns-id is stable across redeliveries: derived from the job id.
/// assert_eq!(job.apns_id()?, Job::from_fields(&fields)?.apns_id()?);
/// # Ok::<(), apns_provider::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Job {
    /// The job's unique id (`job`).
    pub id: String,
    /// The app (a profile name) whose credentials send it (`app`).
    pub app: Option<String>,
    /// The notification. Its `payload`, when set, is JSON text as a
    /// [`serde_json::Value::String`] or a JSON object.
    pub spec: NotificationSpec,
}

impl Job {
    /// A job for `spec`, sent with the worker's own credentials.
    pub fn new(id: impl Into<String>, spec: NotificationSpec) -> Job {
        Job {
            id: id.into(),
            app: None,
            spec,
        }
    }

    /// Sends the job with `app`'s credentials.
    pub fn app(mut self, app: impl Into<String>) -> Job {
        self.app = Some(app.into());
        self
    }

    /// The job for a built notification: its fields exactly (an
    /// expiration as UNIX seconds, so that a relative one counts from
    /// now, not from when a worker gets to it).
    pub fn from_notification(id: impl Into<String>, n: &Notification) -> Job {
        let spec = NotificationSpec {
            device_token: Some(n.device_token().as_str().to_string()),
            payload: Some(serde_json::Value::String(
                String::from_utf8_lossy(n.payload()).into_owned(),
            )),
            topic: n.topic().map(|t| t.as_str().to_string()),
            push_type: Some(n.push_type().as_str().to_string()),
            priority: n.priority().map(|p| p.as_u8().to_string().into()),
            expiration: n
                .expiration()
                .map(|e| e.as_unix_seconds().to_string().into()),
            collapse_id: n.collapse_id().map(|c| c.as_str().to_string()),
            apns_id: n.apns_id().map(|id| id.to_string()),
        };
        Job::new(id, spec)
    }

    /// The stream fields of the job, `v` first.
    pub fn to_fields(&self) -> Vec<(&'static str, String)> {
        let s = &self.spec;
        let mut out = vec![
            (field::VERSION, FORMAT_VERSION.to_string()),
            (field::JOB, self.id.clone()),
        ];
        let mut put = |name: &'static str, value: Option<String>| {
            if let Some(v) = value {
                out.push((name, v));
            }
        };
        put(field::APP, self.app.clone());
        put(field::DEVICE_TOKEN, s.device_token.clone());
        put(field::PAYLOAD, s.payload.as_ref().map(text));
        put(field::TOPIC, s.topic.clone());
        put(field::PUSH_TYPE, s.push_type.clone());
        put(field::PRIORITY, s.priority.as_ref().map(text));
        put(field::EXPIRATION, s.expiration.as_ref().map(text));
        put(field::COLLAPSE_ID, s.collapse_id.clone());
        put(field::APNS_ID, s.apns_id.clone());
        out
    }

    /// Reads a job from its stream fields. Errors name the field and what
    /// is wrong: a missing or unknown field, a repeated one, a value that
    /// is not UTF-8 or too long, a version this crate does not know.
    /// (The notification itself is checked when it is built.)
    pub fn from_fields<K: AsRef<[u8]>, V: AsRef<[u8]>>(fields: &[(K, V)]) -> Result<Job> {
        let mut version = None;
        let mut id = None;
        let mut app = None;
        let mut spec = NotificationSpec::default();
        let mut seen: Vec<&[u8]> = Vec::with_capacity(fields.len());
        for (name, value) in fields {
            let (name, value) = (name.as_ref(), value.as_ref());
            let shown = excerpt(&String::from_utf8_lossy(name), 40);
            if seen.contains(&name) {
                return Err(Error::invalid(
                    "job",
                    format!("the field {shown:?} appears twice"),
                ));
            }
            seen.push(name);
            if value.len() > MAX_FIELD_BYTES {
                return Err(Error::invalid(
                    "job",
                    format!(
                        "the field {shown:?} is {} bytes long, over the {MAX_FIELD_BYTES}-byte limit",
                        value.len()
                    ),
                ));
            }
            let value = std::str::from_utf8(value)
                .map_err(|_| Error::invalid("job", format!("the field {shown:?} is not UTF-8")))?
                .to_string();
            match name {
                b"v" => version = Some(value),
                b"job" => id = Some(value),
                b"app" => app = Some(value),
                b"device_token" => spec.device_token = Some(value),
                b"payload" => {
                    // Producers in other languages may keep the first of
                    // two equal keys: such a payload is refused, not guessed.
                    crate::strict_json::check(value.as_bytes())
                        .map_err(|e| Error::invalid("payload", e))?;
                    spec.payload = Some(serde_json::Value::String(value))
                }
                b"topic" => spec.topic = Some(value),
                b"push_type" => spec.push_type = Some(value),
                b"priority" => spec.priority = Some(value.into()),
                b"expiration" => spec.expiration = Some(value.into()),
                b"collapse_id" => spec.collapse_id = Some(value),
                b"apns_id" => spec.apns_id = Some(value),
                _ => {
                    return Err(Error::invalid(
                        "job",
                        format!("unknown field {shown:?} (format version {FORMAT_VERSION} has v, job, app, device_token, payload, topic, push_type, priority, expiration, collapse_id, apns_id)"),
                    ))
                }
            }
        }
        match version.as_deref() {
            None => {
                return Err(Error::invalid(
                    "job",
                    format!("no \"v\" field: the format version ({FORMAT_VERSION})"),
                ))
            }
            Some(v) => match v.parse::<u32>() {
                Ok(FORMAT_VERSION) => {}
                Ok(n) if n > FORMAT_VERSION => {
                    return Err(Error::invalid(
                        "job",
                        format!("format version {n} is newer than this worker reads ({FORMAT_VERSION}): upgrade the worker"),
                    ))
                }
                _ => {
                    return Err(Error::invalid(
                        "job",
                        format!(
                            "\"v\" is {:?}; the format version is {FORMAT_VERSION}",
                            excerpt(v, 40)
                        ),
                    ))
                }
            },
        }
        let id = id.ok_or_else(|| Error::invalid("job", "no \"job\" field: the job's id"))?;
        check_name("job", &id)?;
        if let Some(a) = &app {
            check_name("app", a)?;
        }
        if spec.device_token.is_none() {
            return Err(Error::invalid("device_token", "missing"));
        }
        if spec.payload.is_none() {
            return Err(Error::invalid("payload", "missing"));
        }
        Ok(Job { id, app, spec })
    }

    /// The `apns-id` the job is sent with, the same on every delivery so
    /// that a resend can be recognised: `apns_id` when given, else the
    /// `job` id when it is a UUID, else a UUID derived from the job id
    /// (the first 16 bytes of its SHA-256, as a version-8 UUID).
    pub fn apns_id(&self) -> Result<ApnsId> {
        if let Some(id) = &self.spec.apns_id {
            return ApnsId::parse(id);
        }
        if let Ok(id) = ApnsId::parse(&self.id) {
            return Ok(id);
        }
        let digest = ring::digest::digest(&ring::digest::SHA256, self.id.as_bytes());
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest.as_ref()[..16]);
        let uuid = uuid::Builder::from_custom_bytes(bytes).into_uuid();
        ApnsId::parse(&uuid.hyphenated().to_string())
    }
}

fn check_name(what: &'static str, value: &str) -> Result<()> {
    if value.is_empty() {
        return Err(Error::invalid(what, "empty"));
    }
    if value.len() > MAX_ID_BYTES {
        return Err(Error::invalid(
            what,
            format!("{} bytes, over the limit of {MAX_ID_BYTES}", value.len()),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(Error::invalid(what, "contains control characters"));
    }
    Ok(())
}

/// A JSON value as stream text: a string as it is, anything else as JSON.
fn text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `s` with each control character escaped (`\n`, `\t`, `\r`,
/// `\u{1b}`...): what a bad job's result shows of its id, app and token,
/// so that a reader of the results stream never gets raw control bytes.
pub(crate) fn escape_controls(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_string();
    }
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// At most `max` characters of `s` (then `...`).
pub(crate) fn excerpt(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let start: String = s.chars().take(max).collect();
    format!("{start}...")
}

/// The names of a result entry's fields.
pub mod result_field {
    /// The job's id.
    pub const JOB: &str = "job";
    /// The job's app, when it named one.
    pub const APP: &str = "app";
    /// The device token (at most its first 200 characters for a bad job).
    pub const DEVICE_TOKEN: &str = "device_token";
    /// APNs' HTTP status; absent when no answer came.
    pub const STATUS: &str = "status";
    /// APNs' reason for a rejection.
    pub const REASON: &str = "reason";
    /// The `apns-id` APNs answered with.
    pub const APNS_ID: &str = "apns_id";
    /// The `apns-unique-id` (sandbox only).
    pub const APNS_UNIQUE_ID: &str = "apns_unique_id";
    /// For `410 Unregistered`: since when the token is invalid (ms).
    pub const TIMESTAMP: &str = "timestamp";
    /// `true` when no answer came but APNs may have delivered it.
    pub const MAY_HAVE_BEEN_DELIVERED: &str = "may_have_been_delivered";
    /// The consumer name of the worker that wrote it.
    pub const WORKER: &str = "worker";
    /// Why there is no answer, or why the job is bad.
    pub const ERROR: &str = "error";
}

/// What happened to one job: one entry in the results stream. Fields that
/// do not apply are absent from the entry (`None` here). The entry's own
/// stream id says when it was written.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct JobResult {
    /// The job's id.
    pub job: String,
    /// The job's app, if it named one.
    pub app: Option<String>,
    /// The device token.
    pub device_token: String,
    /// APNs' HTTP status (200 accepted), when it answered.
    pub status: Option<u16>,
    /// APNs' reason for a rejection.
    pub reason: Option<String>,
    /// The `apns-id` of the answer.
    pub apns_id: Option<String>,
    /// The `apns-unique-id` of the answer (sandbox).
    pub apns_unique_id: Option<String>,
    /// For `410 Unregistered`: since when the token is invalid, in
    /// milliseconds since the epoch.
    pub timestamp: Option<u64>,
    /// No answer came, and APNs may have delivered it.
    pub may_have_been_delivered: bool,
    /// The consumer name of the worker that wrote the result.
    pub worker: String,
    /// Why there is no answer (or why the job is bad).
    pub error: Option<String>,
}

impl JobResult {
    /// A result with no answer yet: the job, app, token and worker.
    pub(crate) fn for_job(
        job: &str,
        app: Option<&str>,
        device_token: &str,
        worker: &str,
    ) -> JobResult {
        JobResult {
            job: excerpt(&escape_controls(job), MAX_ID_BYTES),
            app: app.map(|a| excerpt(&escape_controls(a), MAX_ID_BYTES)),
            device_token: excerpt(
                &escape_controls(device_token),
                crate::DeviceToken::MAX_HEX_DIGITS,
            ),
            worker: worker.to_string(),
            ..JobResult::default()
        }
    }

    /// Fills in APNs' answer.
    pub(crate) fn answered(mut self, r: &Response) -> JobResult {
        self.status = Some(r.status());
        self.reason = r.reason().map(|r| r.as_str().to_string());
        self.apns_id = r.apns_id().map(str::to_string);
        self.apns_unique_id = r.apns_unique_id().map(str::to_string);
        self.timestamp = r.timestamp_millis();
        self
    }

    /// Fills in why no answer came.
    pub(crate) fn failed(
        mut self,
        error: impl Into<String>,
        may_have_been_delivered: bool,
    ) -> Self {
        self.error = Some(error.into());
        self.may_have_been_delivered = may_have_been_delivered;
        self
    }

    /// Whether APNs accepted the notification.
    pub fn is_accepted(&self) -> bool {
        self.status == Some(200)
    }

    /// The stream fields of the result.
    pub fn to_fields(&self) -> Vec<(&'static str, String)> {
        use result_field as f;
        let mut out = vec![
            (f::JOB, self.job.clone()),
            (f::DEVICE_TOKEN, self.device_token.clone()),
        ];
        let mut put = |name: &'static str, value: Option<String>| {
            if let Some(v) = value {
                out.push((name, v));
            }
        };
        put(f::APP, self.app.clone());
        put(f::STATUS, self.status.map(|s| s.to_string()));
        put(f::REASON, self.reason.clone());
        put(f::APNS_ID, self.apns_id.clone());
        put(f::APNS_UNIQUE_ID, self.apns_unique_id.clone());
        put(f::TIMESTAMP, self.timestamp.map(|t| t.to_string()));
        put(f::ERROR, self.error.clone());
        out.push((
            f::MAY_HAVE_BEEN_DELIVERED,
            self.may_have_been_delivered.to_string(),
        ));
        out.push((f::WORKER, self.worker.clone()));
        out
    }

    /// Reads a result entry (for consumers of the results stream). Unknown
    /// fields are ignored, so that later versions may add some.
    pub fn from_fields<K: AsRef<[u8]>, V: AsRef<[u8]>>(fields: &[(K, V)]) -> Result<JobResult> {
        let mut r = JobResult::default();
        for (name, value) in fields {
            let value = String::from_utf8_lossy(value.as_ref()).into_owned();
            let number = |what: &'static str, v: &str| {
                v.parse::<u64>()
                    .map_err(|_| Error::invalid(what, format!("{v:?} is not a number")))
            };
            match name.as_ref() {
                b"job" => r.job = value,
                b"app" => r.app = Some(value),
                b"device_token" => r.device_token = value,
                b"status" => {
                    r.status = Some(
                        u16::try_from(number("status", &value)?)
                            .map_err(|_| Error::invalid("status", "out of range"))?,
                    )
                }
                b"reason" => r.reason = Some(value),
                b"apns_id" => r.apns_id = Some(value),
                b"apns_unique_id" => r.apns_unique_id = Some(value),
                b"timestamp" => r.timestamp = Some(number("timestamp", &value)?),
                b"may_have_been_delivered" => r.may_have_been_delivered = value == "true",
                b"worker" => r.worker = value,
                b"error" => r.error = Some(value),
                _ => {}
            }
        }
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payload::Payload;
    use crate::wire::SpecDefaults;

    fn fields(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const TOKEN: &str = "00fc13adff785122b4ad28809a3420982341241421348097878e577c991de8f0";

    #[test]
    fn a_notification_round_trips_through_its_fields() {
        let n = Notification::builder(TOKEN, Payload::alert("hi"))
            .topic("com.example.app")
            .push_type(crate::PushType::Background)
            .priority(crate::Priority::Normal)
            .expiration("+1h".parse().unwrap())
            .collapse_id("c1")
            .build()
            .unwrap();
        let job = Job::from_notification("j1", &n).app("myapp");
        let back = Job::from_fields(&job.to_fields()).unwrap();
        assert_eq!(back, job);
        let rebuilt = SpecDefaults::default().build(&back.spec).unwrap();
        assert_eq!(rebuilt.payload(), n.payload());
        assert_eq!(rebuilt.topic(), n.topic());
        assert_eq!(rebuilt.push_type(), n.push_type());
        assert_eq!(rebuilt.priority(), n.priority());
        assert_eq!(rebuilt.expiration(), n.expiration());
        assert!(
            matches!(n.expiration(), Some(crate::Expiration::At(s)) if s > 1_700_000_000),
            "a relative expiration is made absolute"
        );
        assert_eq!(rebuilt.collapse_id(), n.collapse_id());
    }

    #[test]
    fn bad_jobs_say_what_is_wrong() {
        let good = [
            ("v", "1"),
            ("job", "j"),
            ("device_token", "aa"),
            ("payload", "{}"),
        ];
        assert!(Job::from_fields(&fields(&good)).is_ok());
        let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
            (
                vec![("job", "j"), ("device_token", "aa"), ("payload", "{}")],
                "no \"v\"",
            ),
            (
                vec![
                    ("v", "2"),
                    ("job", "j"),
                    ("device_token", "aa"),
                    ("payload", "{}"),
                ],
                "newer than this worker",
            ),
            (
                vec![
                    ("v", "x"),
                    ("job", "j"),
                    ("device_token", "aa"),
                    ("payload", "{}"),
                ],
                "\"v\" is \"x\"",
            ),
            (
                vec![("v", "1"), ("device_token", "aa"), ("payload", "{}")],
                "no \"job\"",
            ),
            (
                vec![
                    ("v", "1"),
                    ("job", ""),
                    ("device_token", "aa"),
                    ("payload", "{}"),
                ],
                "invalid job: empty",
            ),
            (
                vec![("v", "1"), ("job", "j"), ("payload", "{}")],
                "device_token: missing",
            ),
            (
                vec![("v", "1"), ("job", "j"), ("device_token", "aa")],
                "payload: missing",
            ),
            (
                vec![
                    ("v", "1"),
                    ("job", "j"),
                    ("device_token", "aa"),
                    ("payload", "{}"),
                    ("device-token", "x"),
                ],
                "unknown field \"device-token\"",
            ),
            (
                vec![
                    ("v", "1"),
                    ("job", "j"),
                    ("job", "k"),
                    ("device_token", "aa"),
                    ("payload", "{}"),
                ],
                "appears twice",
            ),
            (
                vec![
                    ("v", "1"),
                    ("job", "j"),
                    ("app", "a\nb"),
                    ("device_token", "aa"),
                    ("payload", "{}"),
                ],
                "control characters",
            ),
        ];
        for (pairs, expected) in cases {
            let e = Job::from_fields(&fields(&pairs)).unwrap_err().to_string();
            assert!(e.contains(expected), "{pairs:?}: {e}");
        }
        let long = "x".repeat(MAX_FIELD_BYTES + 1);
        let e = Job::from_fields(&fields(&[("v", "1"), ("payload", &long)]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("over the 65536-byte limit"), "{e}");
        let raw: Vec<(&[u8], &[u8])> = vec![(b"v", b"1"), (b"job", b"\xff")];
        let e = Job::from_fields(&raw).unwrap_err().to_string();
        assert!(e.contains("\"job\" is not UTF-8"), "{e}");
    }

    #[test]
    fn the_apns_id_is_stable_and_derived_from_the_job() {
        let spec = NotificationSpec::for_token(TOKEN);
        let uuid = "123e4567-e89b-12d3-a456-4266554400a0";
        assert_eq!(
            Job::new(uuid, spec.clone()).apns_id().unwrap().to_string(),
            uuid
        );
        let a = Job::new("order-1", spec.clone()).apns_id().unwrap();
        assert_eq!(a, Job::new("order-1", spec.clone()).apns_id().unwrap());
        assert_ne!(a, Job::new("order-2", spec.clone()).apns_id().unwrap());
        assert_eq!(a.as_uuid().get_version_num(), 8);
        let mut explicit = spec;
        explicit.apns_id = Some("00000000-0000-4000-8000-000000000001".into());
        assert_eq!(
            Job::new("order-1", explicit).apns_id().unwrap().to_string(),
            "00000000-0000-4000-8000-000000000001"
        );
    }

    #[test]
    fn results_round_trip() {
        let r = JobResult {
            job: "j".into(),
            app: Some("a".into()),
            device_token: TOKEN.into(),
            status: Some(410),
            reason: Some("Unregistered".into()),
            apns_id: Some("id".into()),
            apns_unique_id: None,
            timestamp: Some(1_700_000_000_000),
            may_have_been_delivered: false,
            worker: "w1".into(),
            error: None,
        };
        let fields = r.to_fields();
        assert!(!fields.iter().any(|(k, _)| *k == "apns_unique_id"));
        assert_eq!(JobResult::from_fields(&fields).unwrap(), r);
        let failed = JobResult::for_job("j", None, "aa", "w").failed("boom", true);
        assert_eq!(JobResult::from_fields(&failed.to_fields()).unwrap(), failed);
    }
}
