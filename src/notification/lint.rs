//! Lints: notifications APNs would accept (or silently drop) that are very
//! likely mistakes.

use std::fmt;

use super::{Expiration, Notification, Priority, PushType};

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
        if let Some(Expiration::At(secs)) = self.expiration {
            // Any time before 2001 is not a real expiration: it is almost
            // always a duration (`300`) sent where an epoch time belongs.
            if secs < 1_000_000_000 {
                lint(
                    "expiration-duration",
                    format!("expiration {secs} is a date in {}; it looks like a duration, so APNs treats the notification as expired. Use an absolute time such as now + {secs} seconds (\"+{secs}\" where an expiration is parsed from text)", 1970 + secs / 31_557_600),
                );
            }
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
