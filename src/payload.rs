//! Notification payloads: a builder for every `aps` key, custom data, and
//! raw JSON passthrough.
//!
//! ```
//! use apns_provider::payload::{Alert, Payload, Sound, InterruptionLevel};
//!
//! let payload = Payload::builder()
//!     .alert(Alert::new().title("Order shipped").body("Arrives Tuesday"))
//!     .badge(1)
//!     .sound(Sound::named("chime.aiff"))
//!     .interruption_level(InterruptionLevel::TimeSensitive)
//!     .custom("order_id", 1234)
//!     .build();
//! let json = payload.to_json_string().unwrap();
//! assert!(json.starts_with(r#"{"aps":{"alert":{"title":"Order shipped""#));
//! assert!(json.ends_with(r#""order_id":1234}"#));
//! ```

use bytes::Bytes;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// What the lints need to know about a payload.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct PayloadSummary {
    pub alert: bool,
    pub sound: bool,
    pub badge: bool,
    pub content_available: bool,
    /// `{"aps":{}}` and nothing else: a push that shows and does nothing.
    pub empty: bool,
    /// The Live Activity keys, for their lints.
    pub live: LiveSummary,
}

/// Which Live Activity keys a payload carries.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct LiveSummary {
    /// `aps.event`, if present.
    pub event: Option<EventSeen>,
    pub timestamp: bool,
    pub content_state: bool,
    pub attributes_type: bool,
    pub attributes: bool,
    pub input_push_token: bool,
    pub input_push_channel: bool,
    pub dismissal_date: bool,
}

/// The `aps.event` of a payload: a known event, or text that is none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EventSeen {
    Start,
    Update,
    End,
    Unknown,
}

impl LiveSummary {
    fn of_raw(aps: Option<&Value>) -> Self {
        let has = |k: &str| aps.and_then(|a| a.get(k)).is_some();
        let event = aps.and_then(|a| a.get("event")).map(|e| match e.as_str() {
            Some("start") => EventSeen::Start,
            Some("update") => EventSeen::Update,
            Some("end") => EventSeen::End,
            _ => EventSeen::Unknown,
        });
        LiveSummary {
            event,
            timestamp: has("timestamp"),
            content_state: has("content-state"),
            attributes_type: has("attributes-type"),
            attributes: has("attributes"),
            input_push_token: has("input-push-token"),
            input_push_channel: has("input-push-channel"),
            dismissal_date: has("dismissal-date"),
        }
    }

    fn of_built(aps: &Aps) -> Self {
        LiveSummary {
            event: aps.event.map(|e| match e {
                LiveActivityEvent::Start => EventSeen::Start,
                LiveActivityEvent::Update => EventSeen::Update,
                LiveActivityEvent::End => EventSeen::End,
            }),
            timestamp: aps.timestamp.is_some(),
            content_state: aps.content_state.is_some(),
            attributes_type: aps.attributes_type.is_some(),
            attributes: aps.attributes.is_some(),
            input_push_token: aps.input_push_token.is_some(),
            input_push_channel: aps.input_push_channel.is_some(),
            dismissal_date: aps.dismissal_date.is_some(),
        }
    }

    /// Whether the payload carries any Live Activity key.
    pub(crate) fn any(&self) -> bool {
        self.event.is_some()
            || self.content_state
            || self.attributes_type
            || self.attributes
            || self.input_push_token
            || self.input_push_channel
            || self.dismissal_date
    }
}

/// A notification payload (the JSON body of the request).
#[derive(Debug, Clone)]
pub struct Payload {
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    Built(Box<Built>),
    Raw(Bytes),
    // A builder error, reported when the notification is built.
    Invalid(&'static str, String),
}

#[derive(Debug, Clone, Serialize)]
struct Built {
    #[serde(skip_serializing_if = "Option::is_none")]
    aps: Option<Aps>,
    #[serde(flatten)]
    custom: Map<String, Value>,
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
struct Aps {
    #[serde(skip_serializing_if = "Option::is_none")]
    alert: Option<AlertValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    badge: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sound: Option<Sound>,
    #[serde(skip_serializing_if = "Option::is_none")]
    thread_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    category: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content_available: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mutable_content: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    target_content_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    interruption_level: Option<InterruptionLevel>,
    #[serde(skip_serializing_if = "Option::is_none")]
    relevance_score: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    filter_criteria: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    timestamp: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    event: Option<LiveActivityEvent>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content_state: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stale_date: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dismissal_date: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    attributes_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    attributes: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    input_push_token: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    input_push_channel: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content_changed: Option<bool>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
enum AlertValue {
    Text(String),
    Dict(Box<Alert>),
}

/// The dictionary form of `aps.alert`, with localization keys.
///
/// ```
/// # use apns_provider::payload::Alert;
/// let alert = Alert::new().title_loc_key("GAME_TITLE").loc_key("GAME_BODY").loc_args(["Jenna", "Frank"]);
/// ```
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
#[serde(rename_all = "kebab-case")]
pub struct Alert {
    #[serde(skip_serializing_if = "Option::is_none")]
    title: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    subtitle: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    body: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    launch_image: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    title_loc_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    title_loc_args: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    subtitle_loc_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    subtitle_loc_args: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    loc_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    loc_args: Option<Vec<String>>,
}

macro_rules! setters {
    ($($(#[$doc:meta])* $name:ident: String),* ; $($(#[$vdoc:meta])* $vname:ident: Vec),*) => {
        $( $(#[$doc])* pub fn $name(mut self, value: impl Into<String>) -> Self {
            self.$name = Some(value.into());
            self
        } )*
        $( $(#[$vdoc])* pub fn $vname<I, S>(mut self, args: I) -> Self
        where I: IntoIterator<Item = S>, S: Into<String> {
            self.$vname = Some(args.into_iter().map(Into::into).collect());
            self
        } )*
    };
}

impl Alert {
    /// An empty alert dictionary.
    pub fn new() -> Self {
        Self::default()
    }
    setters!(
        /// `title`.
        title: String,
        /// `subtitle`.
        subtitle: String,
        /// `body`.
        body: String,
        /// `launch-image`.
        launch_image: String,
        /// `title-loc-key`.
        title_loc_key: String,
        /// `subtitle-loc-key`.
        subtitle_loc_key: String,
        /// `loc-key`.
        loc_key: String;
        /// `title-loc-args`.
        title_loc_args: Vec,
        /// `subtitle-loc-args`.
        subtitle_loc_args: Vec,
        /// `loc-args`.
        loc_args: Vec
    );
}

/// `aps.sound`: a file name, or the dictionary form for critical alerts.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(untagged)]
#[non_exhaustive]
pub enum Sound {
    /// A sound file in the app bundle, or `default`.
    Named(String),
    /// A critical alert sound (needs Apple's entitlement).
    Critical {
        /// Always 1 for critical alerts.
        critical: u8,
        /// The sound file name.
        name: String,
        /// Volume from 0.0 to 1.0.
        volume: f64,
    },
}

impl Sound {
    /// A named sound.
    pub fn named(name: impl Into<String>) -> Self {
        Sound::Named(name.into())
    }
    /// A critical alert sound at `volume` (clamped to 0.0..=1.0).
    pub fn critical(name: impl Into<String>, volume: f64) -> Self {
        Sound::Critical {
            critical: 1,
            name: name.into(),
            volume: volume.clamp(0.0, 1.0),
        }
    }
}

/// `aps.interruption-level`.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum InterruptionLevel {
    /// Added silently to the list.
    Passive,
    /// The default.
    Active,
    /// Breaks through Focus.
    TimeSensitive,
    /// Breaks through mute (entitlement required).
    Critical,
}

/// `aps.event` of a Live Activity push.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum LiveActivityEvent {
    /// Start a Live Activity (push-to-start).
    Start,
    /// Update it.
    Update,
    /// End it.
    End,
}

/// Builds a [`Payload`]. Every `aps` key Apple documents has a method; keys
/// beside `aps` are added with [`custom`](PayloadBuilder::custom).
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct PayloadBuilder {
    aps: Aps,
    custom: Map<String, Value>,
    // The first invalid value, reported when the notification is built.
    error: Option<(&'static str, String)>,
}

impl PayloadBuilder {
    fn fail(&mut self, field: &'static str, message: impl Into<String>) {
        self.error.get_or_insert((field, message.into()));
    }

    /// `aps.alert` as a plain string.
    pub fn alert_text(mut self, text: impl Into<String>) -> Self {
        self.aps.alert = Some(AlertValue::Text(text.into()));
        self
    }
    /// `aps.alert` as a dictionary.
    pub fn alert(mut self, alert: Alert) -> Self {
        self.aps.alert = Some(AlertValue::Dict(Box::new(alert)));
        self
    }
    /// `aps.badge` (0 clears the badge).
    pub fn badge(mut self, badge: u32) -> Self {
        self.aps.badge = Some(badge);
        self
    }
    /// `aps.sound`.
    pub fn sound(mut self, sound: Sound) -> Self {
        self.aps.sound = Some(sound);
        self
    }
    /// `aps.thread-id`.
    pub fn thread_id(mut self, id: impl Into<String>) -> Self {
        self.aps.thread_id = Some(id.into());
        self
    }
    /// `aps.category`.
    pub fn category(mut self, category: impl Into<String>) -> Self {
        self.aps.category = Some(category.into());
        self
    }
    /// `aps.content-available: 1` (background update).
    pub fn content_available(mut self) -> Self {
        self.aps.content_available = Some(1);
        self
    }
    /// `aps.mutable-content: 1` (lets a notification service extension edit it).
    pub fn mutable_content(mut self) -> Self {
        self.aps.mutable_content = Some(1);
        self
    }
    /// `aps.target-content-id`.
    pub fn target_content_id(mut self, id: impl Into<String>) -> Self {
        self.aps.target_content_id = Some(id.into());
        self
    }
    /// `aps.interruption-level`.
    pub fn interruption_level(mut self, level: InterruptionLevel) -> Self {
        self.aps.interruption_level = Some(level);
        self
    }
    /// `aps.relevance-score`, from 0.0 to 1.0.
    pub fn relevance_score(mut self, score: f64) -> Self {
        if !(0.0..=1.0).contains(&score) {
            self.fail("relevance_score", format!("{score} is outside 0.0..=1.0"));
        }
        self.aps.relevance_score = Some(score);
        self
    }
    /// `aps.filter-criteria` (Focus filters).
    pub fn filter_criteria(mut self, criteria: impl Into<String>) -> Self {
        self.aps.filter_criteria = Some(criteria.into());
        self
    }
    /// `aps.timestamp` of a Live Activity update (UNIX seconds).
    pub fn timestamp(mut self, unix_seconds: u64) -> Self {
        self.aps.timestamp = Some(unix_seconds);
        self
    }
    /// `aps.event` of a Live Activity push.
    pub fn event(mut self, event: LiveActivityEvent) -> Self {
        self.aps.event = Some(event);
        self
    }
    /// `aps.content-state`: the Live Activity's dynamic data.
    pub fn content_state(mut self, state: impl Serialize) -> Self {
        match serde_json::to_value(state) {
            Ok(v) => self.aps.content_state = Some(v),
            Err(e) => {
                self.fail("content_state", e.to_string());
            }
        }
        self
    }
    /// `aps.stale-date` (UNIX seconds).
    pub fn stale_date(mut self, unix_seconds: u64) -> Self {
        self.aps.stale_date = Some(unix_seconds);
        self
    }
    /// `aps.dismissal-date` (UNIX seconds).
    pub fn dismissal_date(mut self, unix_seconds: u64) -> Self {
        self.aps.dismissal_date = Some(unix_seconds);
        self
    }
    /// `aps.attributes-type` (push-to-start).
    pub fn attributes_type(mut self, name: impl Into<String>) -> Self {
        self.aps.attributes_type = Some(name.into());
        self
    }
    /// `aps.attributes` (push-to-start).
    pub fn attributes(mut self, attributes: impl Serialize) -> Self {
        match serde_json::to_value(attributes) {
            Ok(v) => self.aps.attributes = Some(v),
            Err(e) => {
                self.fail("attributes", e.to_string());
            }
        }
        self
    }
    /// `aps.input-push-token: 1`: ask the activity a push-to-start
    /// notification starts for its update token (start events only).
    pub fn input_push_token(mut self) -> Self {
        self.aps.input_push_token = Some(1);
        self
    }
    /// `aps.input-push-channel`: subscribe the activity a push-to-start
    /// notification starts to a broadcast channel (start events only; the
    /// id as [`ChannelId`](crate::broadcast::ChannelId) prints it).
    pub fn input_push_channel(mut self, channel_id: impl Into<String>) -> Self {
        self.aps.input_push_channel = Some(channel_id.into());
        self
    }
    /// `aps.content-changed: true` (widgets and controls pushes).
    pub fn content_changed(mut self) -> Self {
        self.aps.content_changed = Some(true);
        self
    }
    /// A custom key beside `aps` (never inside it). `aps` itself is refused.
    pub fn custom(mut self, key: impl Into<String>, value: impl Serialize) -> Self {
        let key = key.into();
        if key == "aps" {
            self.fail(
                "payload",
                "custom data cannot use the key \"aps\"; put custom keys beside it",
            );
            return self;
        }
        match serde_json::to_value(value) {
            Ok(v) => {
                self.custom.insert(key, v);
            }
            Err(e) => {
                self.fail("payload", e.to_string());
            }
        }
        self
    }
    /// The MDM payload: top-level `{"mdm": "<push magic>"}`, and no `aps`.
    pub fn mdm(self, push_magic: impl Into<String>) -> Self {
        self.custom("mdm", push_magic.into())
    }

    /// Finishes the payload. Invalid values (a relevance score out of range,
    /// a custom `aps` key) are reported when the notification is built.
    pub fn build(self) -> Payload {
        if let Some((field, message)) = self.error {
            return Payload {
                kind: Kind::Invalid(field, message),
            };
        }
        // An MDM payload has no `aps`; any other payload keeps one, even if
        // empty, so APNs sees the shape it expects.
        let aps = (!is_empty_aps(&self.aps) || self.custom.is_empty()).then_some(self.aps);
        Payload {
            kind: Kind::Built(Box::new(Built {
                aps,
                custom: self.custom,
            })),
        }
    }
}

fn is_empty_aps(aps: &Aps) -> bool {
    serde_json::to_value(aps)
        .ok()
        .and_then(|v| v.as_object().map(|m| m.is_empty()))
        .unwrap_or(false)
}

impl Payload {
    /// Starts building a payload.
    pub fn builder() -> PayloadBuilder {
        PayloadBuilder::default()
    }

    /// `{"aps":{"alert":"<text>"}}`.
    pub fn alert(text: impl Into<String>) -> Payload {
        Payload::builder().alert_text(text).build()
    }

    /// `{"aps":{"content-available":1}}`: a silent background update.
    pub fn background() -> Payload {
        Payload::builder().content_available().build()
    }

    /// Raw JSON passed through byte for byte. It must be a JSON object.
    ///
    /// ```
    /// # use apns_provider::Payload;
    /// assert!(Payload::raw(r#"{"aps":{"alert":"hi"}}"#).is_ok());
    /// assert!(Payload::raw("[1,2]").is_err());
    /// ```
    pub fn raw(json: impl Into<Bytes>) -> Result<Payload> {
        let bytes: Bytes = json.into();
        if bytes.is_empty() {
            return Err(Error::invalid(
                "payload",
                "empty; APNs rejects empty payloads (PayloadEmpty)",
            ));
        }
        let value: Value = serde_json::from_slice(&bytes)
            .map_err(|e| Error::invalid("payload", format!("not valid JSON: {e}")))?;
        if !value.is_object() {
            return Err(Error::invalid(
                "payload",
                "must be a JSON object such as {\"aps\":{\"alert\":\"hi\"}}",
            ));
        }
        Ok(Payload {
            kind: Kind::Raw(bytes),
        })
    }

    /// The payload as JSON text (what will be sent).
    pub fn to_json_string(&self) -> Result<String> {
        let (bytes, _) = self.clone().encode()?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Encodes the payload and summarizes it for the lints.
    pub(crate) fn encode(self) -> Result<(Bytes, PayloadSummary)> {
        match self.kind {
            Kind::Raw(bytes) => {
                let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                let aps = value.get("aps");
                let has = |k: &str| aps.and_then(|a| a.get(k)).is_some();
                let only_empty_aps = value.as_object().is_some_and(|o| {
                    o.len() == 1
                        && aps
                            .and_then(|a| a.as_object())
                            .is_some_and(|a| a.is_empty())
                });
                let summary = PayloadSummary {
                    alert: has("alert"),
                    sound: has("sound"),
                    badge: has("badge"),
                    content_available: has("content-available"),
                    empty: only_empty_aps,
                    live: LiveSummary::of_raw(aps),
                };
                Ok((bytes, summary))
            }
            Kind::Invalid(field, message) => Err(Error::invalid(field, message)),
            Kind::Built(built) => {
                let summary = built
                    .aps
                    .as_ref()
                    .map(|a| PayloadSummary {
                        alert: a.alert.is_some(),
                        sound: a.sound.is_some(),
                        badge: a.badge.is_some(),
                        content_available: a.content_available.is_some(),
                        empty: built.custom.is_empty() && is_empty_aps(a),
                        live: LiveSummary::of_built(a),
                    })
                    .unwrap_or_default();
                let bytes = serde_json::to_vec(&built)
                    .map_err(|e| Error::invalid("payload", e.to_string()))?;
                Ok((Bytes::from(bytes), summary))
            }
        }
    }
}
