//! Notifications as JSON: the one format shared by the JSON lines of a
//! tokens file, the jobs of a queue and the requests of an HTTP gateway;
//! and their results as JSON ([`result_json`]), shared by the result lines
//! of a bulk send and the answers of the gateway.
//!
//! A [`NotificationSpec`] holds what varies per device; [`SpecDefaults`]
//! holds what the sender sets for all (topic, push type, payload...). A
//! spec's own fields win.
//!
//! ```
//! use apns_provider::wire::{NotificationSpec, SpecDefaults};
//! use apns_provider::{Payload, PushType};
//!
//! let defaults = SpecDefaults::builder()
//!     .topic("com.example.app")
//!     .payload(Payload::alert("Hello"))
//!     .build()?;
//! let spec: NotificationSpec = serde_json::from_str(
//!     r#"{"device_token":"00fc13ad","priority":5,"push_type":"background","payload":{"aps":{"content-available":1}}}"#,
//! )?;
//! let n = defaults.build(&spec)?;
//! assert_eq!(n.push_type(), PushType::Background);
//! assert_eq!(n.topic().unwrap().as_str(), "com.example.app");
//! // A bare token takes everything from the defaults.
//! let n = defaults.build_for_token("0badc0de")?;
//! assert_eq!(n.payload().as_ref(), br#"{"aps":{"alert":"Hello"}}"#);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::notification::{ApnsId, DeviceToken, Expiration, Notification, Priority, PushType};
use crate::payload::Payload;
use crate::response::Response;

/// One notification to one device, as JSON. Every field is optional; a
/// missing one takes the [`SpecDefaults`]' value. Unknown fields are
/// errors, so typos are caught.
///
/// | field | JSON | example |
/// |---|---|---|
/// | `device_token` | string, hex | `"00fc13ad..."` |
/// | `payload` | object, or a string of JSON | `{"aps":{"alert":"hi"}}` |
/// | `topic` | string | `"com.example.app"` |
/// | `push_type` | string | `"background"` |
/// | `priority` | number or string | `5` |
/// | `expiration` | number (UNIX seconds, 0) or string (`"+1h"`) | `"+1h"` |
/// | `collapse_id` | string, at most 64 bytes | `"score"` |
/// | `apns_id` | string, a UUID | `"123e4567-e89b-12d3-a456-4266554400a0"` |
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct NotificationSpec {
    /// The hex device token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_token: Option<String>,
    /// The payload: a JSON object, or a string holding one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<serde_json::Value>,
    /// `apns-topic`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// `apns-push-type`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push_type: Option<String>,
    /// `apns-priority`: 10, 5 or 1, as a number or a string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<serde_json::Value>,
    /// `apns-expiration`: 0, UNIX seconds, or a relative `"+1h"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration: Option<serde_json::Value>,
    /// `apns-collapse-id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collapse_id: Option<String>,
    /// `apns-id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apns_id: Option<String>,
}

impl NotificationSpec {
    /// A spec holding only a device token.
    pub fn for_token(device_token: impl Into<String>) -> Self {
        NotificationSpec {
            device_token: Some(device_token.into()),
            ..Self::default()
        }
    }

    /// Parses one JSON object (a tokens-file line, a job) strictly:
    /// unknown fields are errors, and so is a key given twice at any
    /// depth, which serde_json alone would take as its last copy (other
    /// languages' parsers may keep the first).
    ///
    /// ```
    /// use apns_provider::wire::NotificationSpec;
    /// let spec = NotificationSpec::from_json(br#"{"device_token":"00fc"}"#)?;
    /// assert_eq!(spec.device_token.as_deref(), Some("00fc"));
    /// let e = NotificationSpec::from_json(br#"{"device_token":"00fc","device_token":"ab"}"#);
    /// assert!(e.unwrap_err().to_string().contains("duplicate key \"device_token\""));
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn from_json(json: &[u8]) -> std::result::Result<Self, serde_json::Error> {
        crate::strict_json::check(json).map_err(<serde_json::Error as serde::de::Error>::custom)?;
        serde_json::from_slice(json)
    }

    /// Whether the spec holds a device token and nothing else (so the
    /// defaults' template applies as it is).
    pub fn is_token_only(&self) -> bool {
        self.payload.is_none()
            && self.topic.is_none()
            && self.push_type.is_none()
            && self.priority.is_none()
            && self.expiration.is_none()
            && self.collapse_id.is_none()
            && self.apns_id.is_none()
    }
}

/// What every notification starts from, checked: made by
/// [`SpecDefaults::builder`] (whose [`build`](SpecDefaultsBuilder::build)
/// checks the payload and topic once and prepares what token-only specs
/// copy), or [`SpecDefaults::default`] for none at all (push type `alert`,
/// no topic, no payload: every spec brings its own).
///
/// ```
/// use apns_provider::wire::SpecDefaults;
/// use apns_provider::{Payload, Priority, PushType};
///
/// let defaults = SpecDefaults::builder()
///     .topic("com.example.app")
///     .push_type(PushType::Background)
///     .priority(Priority::Normal)
///     .payload(Payload::raw(br#"{"aps":{"content-available":1}}"#.to_vec())?)
///     .build()?;
/// let n = defaults.build_for_token("00fc13ad")?;
/// assert_eq!(n.push_type(), PushType::Background);
/// assert_eq!(defaults.default_topic(), Some("com.example.app"));
///
/// // A payload that cannot go with the push type is refused at once.
/// let too_big = Payload::raw(format!(r#"{{"aps":{{}},"x":"{}"}}"#, "x".repeat(5000)).into_bytes())?;
/// let refused = SpecDefaults::builder().push_type(PushType::Background).payload(too_big).build();
/// assert!(refused.is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct SpecDefaults {
    values: Values,
    // A notification with the defaults, for token-only specs: one only swaps
    // the device token (the payload bytes are shared). Made by `build`, so
    // defaults with a payload always have one.
    template: Option<Notification>,
}

/// The settings of [`SpecDefaults`], unchecked: each setter sets one
/// default, and [`build`](Self::build) checks them all.
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct SpecDefaultsBuilder {
    values: Values,
}

/// What the builder collects and the defaults keep.
#[derive(Debug, Clone, Default)]
struct Values {
    topic: Option<String>,
    push_type: PushType,
    priority: Option<Priority>,
    expiration: Option<Expiration>,
    collapse_id: Option<String>,
    apns_id: Option<ApnsId>,
    payload: Option<Payload>,
}

/// A device's length, so a template's lints say nothing about the token.
const PLACEHOLDER_TOKEN: &str = "0000000000000000000000000000000000000000000000000000000000000000";

impl SpecDefaultsBuilder {
    /// The default `apns-topic`.
    pub fn topic(mut self, topic: impl Into<String>) -> Self {
        self.values.topic = Some(topic.into());
        self
    }
    /// The default push type (`alert` unless set).
    pub fn push_type(mut self, push_type: PushType) -> Self {
        self.values.push_type = push_type;
        self
    }
    /// The default priority.
    pub fn priority(mut self, priority: Priority) -> Self {
        self.values.priority = Some(priority);
        self
    }
    /// The default expiration.
    pub fn expiration(mut self, expiration: Expiration) -> Self {
        self.values.expiration = Some(expiration);
        self
    }
    /// The default collapse id.
    pub fn collapse_id(mut self, id: impl Into<String>) -> Self {
        self.values.collapse_id = Some(id.into());
        self
    }
    /// The default `apns-id` (the same for every notification: rarely what
    /// you want for more than one).
    pub fn apns_id(mut self, id: ApnsId) -> Self {
        self.values.apns_id = Some(id);
        self
    }
    /// The default payload.
    pub fn payload(mut self, payload: Payload) -> Self {
        self.values.payload = Some(payload);
        self
    }

    /// Checks the defaults once (the payload's size for the push type, the
    /// topic, the collapse id...: what a notification with them would
    /// break) and prepares the template token-only specs copy.
    pub fn build(self) -> Result<SpecDefaults> {
        let mut defaults = SpecDefaults {
            values: self.values,
            template: None,
        };
        if let Some(payload) = defaults.values.payload.clone() {
            let spec = NotificationSpec::default();
            defaults.template = Some(defaults.assemble(PLACEHOLDER_TOKEN, payload, &spec)?);
        }
        Ok(defaults)
    }
}

impl SpecDefaults {
    /// A builder with no defaults set: push type `alert`, nothing else.
    pub fn builder() -> SpecDefaultsBuilder {
        SpecDefaultsBuilder::default()
    }

    /// The default topic, if any.
    pub fn default_topic(&self) -> Option<&str> {
        self.values.topic.as_deref()
    }

    /// Whether a default payload was given (else every spec needs its own).
    pub fn has_payload(&self) -> bool {
        self.values.payload.is_some()
    }

    /// The notification the defaults make for a placeholder token: its
    /// lints are the defaults' own.
    pub fn template(&self) -> Option<&Notification> {
        self.template.as_ref()
    }

    /// The notification for a bare device token.
    pub fn build_for_token(&self, device_token: &str) -> Result<Notification> {
        let token = DeviceToken::new(device_token)?;
        match &self.template {
            Some(t) => Ok(t.with_device_token(token)),
            None => Err(missing_payload()),
        }
    }

    /// The notification `spec` describes, its missing fields taken from the
    /// defaults.
    pub fn build(&self, spec: &NotificationSpec) -> Result<Notification> {
        let token = spec
            .device_token
            .as_deref()
            .ok_or_else(|| Error::invalid("device_token", "missing"))?;
        if spec.is_token_only() {
            return self.build_for_token(token);
        }
        let payload = match &spec.payload {
            Some(serde_json::Value::String(raw)) => Payload::raw(raw.clone().into_bytes())?,
            Some(value) => Payload::raw(value.to_string().into_bytes())?,
            None => self.values.payload.clone().ok_or_else(missing_payload)?,
        };
        self.assemble(token, payload, spec)
    }

    fn assemble(
        &self,
        token: &str,
        payload: Payload,
        spec: &NotificationSpec,
    ) -> Result<Notification> {
        let mut b = Notification::builder(token, payload);
        if let Some(t) = spec.topic.as_ref().or(self.values.topic.as_ref()) {
            b = b.topic(t);
        }
        let push_type = match &spec.push_type {
            Some(t) => t.parse()?,
            None => self.values.push_type,
        };
        b = b.push_type(push_type);
        let priority = match &spec.priority {
            Some(p) => Some(scalar(p).parse()?),
            None => self.values.priority,
        };
        if let Some(p) = priority {
            b = b.priority(p);
        }
        let expiration = match &spec.expiration {
            Some(e) => Some(scalar(e).parse()?),
            None => self.values.expiration,
        };
        if let Some(e) = expiration {
            b = b.expiration(e);
        }
        if let Some(c) = spec
            .collapse_id
            .as_ref()
            .or(self.values.collapse_id.as_ref())
        {
            b = b.collapse_id(c);
        }
        match &spec.apns_id {
            Some(id) => b = b.apns_id_str(id),
            None => {
                if let Some(id) = self.values.apns_id {
                    b = b.apns_id(id);
                }
            }
        }
        b.build()
    }
}

fn missing_payload() -> Error {
    Error::invalid(
        "payload",
        "missing: the notification has none and no default payload was given",
    )
}

/// `5` or `"5"` as text.
fn scalar(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The result of one notification as JSON: `device_token`, `status`,
/// `apns_id`, `apns_unique_id`, `reason` and `timestamp` for an answer;
/// for an error, `error` (the message) and `may_have_been_delivered`
/// instead of `apns_unique_id`.
///
/// ```
/// use apns_provider::{wire::result_json, Response};
/// let gone = Response::from_parts(410, Some("abc".into()), None,
///     br#"{"reason":"Unregistered","timestamp":1700000000000}"#);
/// let v = result_json("0badc0de", &Ok(gone));
/// assert_eq!(v["status"], 410);
/// assert_eq!(v["reason"], "Unregistered");
/// assert_eq!(v["timestamp"], 1700000000000u64);
/// ```
pub fn result_json(device_token: &str, result: &Result<Response>) -> serde_json::Value {
    match result {
        Ok(r) => serde_json::json!({
            "device_token": device_token,
            "status": r.status(),
            "apns_id": r.apns_id(),
            "apns_unique_id": r.apns_unique_id(),
            "reason": r.reason().map(|r| r.as_str()),
            "timestamp": r.timestamp_millis(),
        }),
        Err(e) => unsent_result_json(device_token, &e.to_string(), e.may_have_been_delivered()),
    }
}

/// The result of a notification that got no answer, as JSON: like an
/// error of [`result_json`], with `error` saying why (an invalid line, an
/// interruption...).
pub fn unsent_result_json(
    device_token: &str,
    error: &str,
    may_have_been_delivered: bool,
) -> serde_json::Value {
    serde_json::json!({
        "device_token": device_token,
        "status": null,
        "apns_id": null,
        "apns_unique_id": null,
        "reason": null,
        "timestamp": null,
        "error": error,
        "may_have_been_delivered": may_have_been_delivered,
    })
}

/// How a notification ended, for [`write_result_line`].
#[derive(Debug, Clone, Copy)]
pub enum Ended<'a> {
    /// APNs' answer, or the error that kept one from coming.
    Answer(&'a Result<Response>),
    /// Never sent: the reason (an invalid line, an interruption...).
    Unsent {
        /// Why.
        error: &'a str,
        /// Whether it may have been delivered all the same.
        may_have_been_delivered: bool,
    },
}

/// One result as a line of JSON, written straight into `out` (no
/// intermediate JSON value: bulk senders write one per notification). The
/// fields of [`result_json`], in this order: `line` (when given),
/// `device_token`, `status`, `apns_id`, `apns_unique_id`, `reason`,
/// `timestamp`, and for a notification without an answer `error` and
/// `may_have_been_delivered`. No newline is added.
///
/// ```
/// use apns_provider::wire::{write_result_line, Ended};
/// use apns_provider::Response;
///
/// let mut out = Vec::new();
/// let ok = Ok(Response::from_parts(200, Some("id".into()), None, b""));
/// write_result_line(&mut out, Some(3), "00ab", Ended::Answer(&ok));
/// assert_eq!(
///     String::from_utf8(out)?,
///     r#"{"line":3,"device_token":"00ab","status":200,"apns_id":"id","apns_unique_id":null,"reason":null,"timestamp":null}"#
/// );
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn write_result_line(
    out: &mut Vec<u8>,
    line: Option<u64>,
    device_token: &str,
    ended: Ended<'_>,
) {
    use std::io::Write as _;
    out.push(b'{');
    if let Some(n) = line {
        let _ = write!(out, "\"line\":{n},");
    }
    out.extend_from_slice(b"\"device_token\":");
    json_str(out, device_token);
    let (error, maybe) = match ended {
        Ended::Answer(Ok(r)) => {
            let _ = write!(out, ",\"status\":{}", r.status());
            out.extend_from_slice(b",\"apns_id\":");
            json_opt_str(out, r.apns_id());
            out.extend_from_slice(b",\"apns_unique_id\":");
            json_opt_str(out, r.apns_unique_id());
            out.extend_from_slice(b",\"reason\":");
            json_opt_str(out, r.reason().map(|r| r.as_str()));
            match r.timestamp_millis() {
                Some(ts) => {
                    let _ = write!(out, ",\"timestamp\":{ts}");
                }
                None => out.extend_from_slice(b",\"timestamp\":null"),
            }
            out.push(b'}');
            return;
        }
        Ended::Answer(Err(e)) => (
            std::borrow::Cow::Owned(e.to_string()),
            e.may_have_been_delivered(),
        ),
        Ended::Unsent {
            error,
            may_have_been_delivered,
        } => (std::borrow::Cow::Borrowed(error), may_have_been_delivered),
    };
    out.extend_from_slice(
        b",\"status\":null,\"apns_id\":null,\"apns_unique_id\":null,\"reason\":null,\"timestamp\":null,\"error\":",
    );
    json_str(out, &error);
    let _ = write!(out, ",\"may_have_been_delivered\":{maybe}}}");
}

/// A JSON string, escaped (ids and device tokens need none: copied as
/// they are).
fn json_str(out: &mut Vec<u8>, s: &str) {
    // A fold without short-circuit: the compiler vectorizes it, and the
    // strings written here (tokens, ids, timestamps) are almost always clean.
    let plain = s.bytes().fold(true, |ok, b| {
        ok & ((0x20..0x7f).contains(&b) & (b != b'"') & (b != b'\\'))
    });
    if plain {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        let _ = serde_json::to_writer(&mut *out, s);
    }
}

fn json_opt_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => json_str(out, s),
        None => out.extend_from_slice(b"null"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hand-written line is the JSON serde would write, escapes included.
    #[test]
    fn result_lines_escape_what_json_needs() {
        for error in [
            "plain",
            "a \"quoted\" word",
            "back\\slash",
            "new\nline\tand\u{1}control",
            "café, 東京, 🚀",
            "",
        ] {
            let mut out = Vec::new();
            let ended = Ended::Unsent {
                error,
                may_have_been_delivered: true,
            };
            write_result_line(&mut out, Some(7), "tok\"en", ended);
            let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
            assert_eq!(v["error"], error, "{}", String::from_utf8_lossy(&out));
            assert_eq!(v["device_token"], "tok\"en");
            assert_eq!(v["line"], 7);
            assert_eq!(v["may_have_been_delivered"], true);
            // The line and the JSON value carry the same fields.
            let mut value = unsent_result_json("tok\"en", error, true);
            value["line"] = 7.into();
            assert_eq!(v, value);
        }
    }
}
