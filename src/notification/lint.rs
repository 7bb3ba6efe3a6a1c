//! Lints: notifications APNs would accept (or silently drop) that are very
//! likely mistakes.

use std::fmt;

use super::{Expiration, Notification, Priority, PushType};
use crate::payload::{EventSeen, LiveSummary};

/// A warning about a notification that APNs would accept but that is very
/// likely a mistake. See [`Notification::lints`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Lint {
    /// A stable identifier, such as `background-priority`.
    pub code: &'static str,
    /// What is wrong and what to do.
    pub message: String,
}

impl fmt::Display for Lint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} [{}]", self.message, self.code)
    }
}

impl Notification {
    /// Likely mistakes that APNs would not report, or would report as a
    /// silently dropped notification.
    ///
    /// ```
    /// # use apns_provider::{Notification, Payload, PushType, Priority};
    /// let n = Notification::builder("abcd", Payload::background())
    ///     .topic("com.example.app")
    ///     .push_type(PushType::Background)
    ///     .priority(Priority::Immediate)
    ///     .build()?;
    /// assert_eq!(n.lints()[0].code, "background-priority");
    /// # Ok::<(), apns_provider::Error>(())
    /// ```
    pub fn lints(&self) -> Vec<Lint> {
        let mut lints = Vec::new();
        let mut lint = |code, message: String| lints.push(Lint { code, message });
        if self.push_type == PushType::Background {
            if self.priority.unwrap_or(Priority::Immediate) == Priority::Immediate {
                lint(
                    "background-priority",
                    "background pushes must use priority 5; with 10 (the default) APNs may reject or drop them".into(),
                );
            }
            let h = self.payload_has;
            if h.alert || h.sound || h.badge {
                lint(
                    "background-visible",
                    "a background push carries alert, sound or badge; use push type alert for visible notifications".into(),
                );
            }
            if !h.content_available {
                lint(
                    "background-content-available",
                    "a background push without aps.content-available = 1 does not wake the app"
                        .into(),
                );
            }
        }
        let digits = self.device_token.as_str().len();
        if digits < 64 {
            lint(
                "device-token-short",
                format!("the device token has {digits} hex digits; tokens from devices have 64 (a truncated copy?)"),
            );
        }
        if self.payload_has.empty {
            lint(
                "payload-empty-aps",
                "the payload is {\"aps\":{}}: nothing to show, play or update; add an alert, a badge, a sound or content-available".into(),
            );
        }
        if let Some(message) = expiration_lint(self.expiration) {
            lint("expiration-duration", message);
        }
        let live = self.payload_has.live;
        if self.push_type == PushType::Liveactivity || live.any() {
            if self.push_type != PushType::Liveactivity {
                lint(
                    "live-activity-push-type",
                    format!("the payload carries Live Activity keys but the push type is {}; send it as liveactivity (topic: the bundle id followed by .push-type.liveactivity)", self.push_type),
                );
            }
            live_activity_lints(&live, &mut lint);
        }
        if let (Some(topic), Some(suffix)) = (&self.topic, self.push_type.topic_suffix()) {
            let t = topic.as_str();
            let other_suffix = PushType::ALL
                .iter()
                .filter_map(|p| p.topic_suffix().filter(|s| !s.is_empty()).map(|s| (p, s)))
                .find(|(_, s)| t.ends_with(*s));
            let ok = if suffix.is_empty() {
                other_suffix.is_none()
            } else {
                t.ends_with(suffix)
            };
            if !ok {
                let expected = if suffix.is_empty() {
                    "the bare bundle id".to_string()
                } else {
                    format!("the bundle id followed by {suffix}")
                };
                lint(
                    "topic-suffix",
                    format!(
                        "topic {t} does not fit push type {}: expected {expected}",
                        self.push_type
                    ),
                );
            }
        }
        lints
    }
}

/// An expiration before 2001 is not a real one: it is almost always a
/// duration (`300`) sent where an epoch time belongs.
pub(crate) fn expiration_lint(expiration: Option<Expiration>) -> Option<String> {
    match expiration {
        Some(Expiration::At(secs)) if secs < 1_000_000_000 => Some(format!(
            "expiration {secs} is a date in {}; it looks like a duration, so APNs treats the notification as expired. Use an absolute time such as now + {secs} seconds (\"+{secs}\" where an expiration is parsed from text)",
            1970 + secs / 31_557_600
        )),
        _ => None,
    }
}

/// The rules of a Live Activity payload (Apple's "Starting and updating
/// Live Activities with ActivityKit push notifications"), shared by
/// notifications and broadcasts: an `event`; `start` with
/// `attributes-type` and `attributes`; `content-state` to show; the
/// start-only and end-only keys where they apply; a `timestamp`.
pub(crate) fn live_activity_lints(live: &LiveSummary, lint: &mut dyn FnMut(&'static str, String)) {
    let event = live.event;
    let name = match event {
        Some(EventSeen::Start) => "start",
        Some(EventSeen::Update) => "update",
        Some(EventSeen::End) => "end",
        _ => "",
    };
    match event {
        None => lint(
            "live-activity-event",
            "a Live Activity push without aps.event does nothing; set event to update, end or start".into(),
        ),
        Some(EventSeen::Unknown) => lint(
            "live-activity-event",
            "aps.event must be \"start\", \"update\" or \"end\"".into(),
        ),
        Some(_) => {}
    }
    let start = event == Some(EventSeen::Start);
    if start && !(live.attributes_type && live.attributes) {
        lint(
            "live-activity-start-attributes",
            "a start event needs aps.attributes-type (the ActivityAttributes type's name) and aps.attributes, or the device cannot create the activity".into(),
        );
    }
    if matches!(event, Some(EventSeen::Start | EventSeen::Update)) && !live.content_state {
        lint(
            "live-activity-content-state",
            format!(
                "a{} {name} event without aps.content-state has nothing to show",
                if start { "" } else { "n" }
            ),
        );
    }
    if (live.input_push_token || live.input_push_channel) && !start && event.is_some() {
        lint(
            "live-activity-input-push",
            "aps.input-push-token and aps.input-push-channel only apply to start events (push-to-start)".into(),
        );
    }
    if (live.attributes_type || live.attributes) && !start && event.is_some() {
        lint(
            "live-activity-attributes",
            "aps.attributes-type and aps.attributes only apply to start events; updates carry aps.content-state".into(),
        );
    }
    if live.dismissal_date && event.is_some() && event != Some(EventSeen::End) {
        lint(
            "live-activity-dismissal-date",
            "aps.dismissal-date only applies to end events".into(),
        );
    }
    if !live.timestamp {
        lint(
            "live-activity-timestamp",
            "without aps.timestamp the device cannot tell a late update from a newer one; set it to the current UNIX time".into(),
        );
    }
}
