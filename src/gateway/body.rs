//! Request bodies without building them whole: read once into one buffer
//! (reserved from `Content-Length`), then scanned in place.
//!
//! Why: a body of `[0,0,0,...]` parsed into a `serde_json::Value` costs
//! about 25 times its size (32 bytes per number plus the array's growth).
//! Here the top of the body is scanned first, counting an array's items
//! with nothing kept, and stopping at one past the limit; then each item is
//! borrowed from the buffer as raw text ([`RawValue`]) and parsed alone.
//! Only the fields of one item are ever materialised, each at most
//! [`MAX_FIELD_TEXT`] bytes of text.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::Value;

/// The longest text of one field's value: far above any valid one (a
/// payload is at most 5120 bytes compact, a device token 200 hex digits),
/// so that one field never costs more than this to parse.
pub const MAX_FIELD_TEXT: usize = 64 * 1024;

/// Why a body could not be read.
pub(crate) enum ReadError {
    /// Over the limit.
    TooLarge,
    /// The client went away, or sent a broken body.
    Failed(String),
}

/// Reads `body` into one buffer of at most `max` bytes, reserved once
/// when the length is declared (no chunk list copied at the end).
pub(crate) async fn read(
    body: axum::body::Body,
    declared: Option<u64>,
    max: usize,
) -> Result<Vec<u8>, ReadError> {
    use http_body_util::BodyExt;
    let reserve = declared.map_or(0, |n| n.min(max as u64) as usize);
    let mut out = Vec::with_capacity(reserve);
    let mut body = body;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ReadError::Failed(e.to_string()))?;
        if let Ok(data) = frame.into_data() {
            if data.len() > max - out.len() {
                return Err(ReadError::TooLarge);
            }
            out.extend_from_slice(&data);
        }
    }
    Ok(out)
}

/// The top of a body.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Top {
    /// One object.
    Object,
    /// An array of this many items (at most the limit).
    Array(usize),
    /// An array of more items than the limit (counting stopped there).
    TooMany,
    /// Anything else.
    Other,
}

/// What the top of `body` is, counting an array's items up to
/// `max_items + 1`; a syntax error anywhere before that point is `Err`.
pub(crate) fn scan(body: &[u8], max_items: usize) -> Result<Top, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(body);
    match de.deserialize_any(TopVisitor { max_items }) {
        Ok(top) => {
            de.end()?;
            Ok(top)
        }
        Err(e) if e.is_data() && e.to_string().starts_with(TOO_MANY) => Ok(Top::TooMany),
        Err(e) => Err(e),
    }
}

/// The marker of the error that stops counting.
const TOO_MANY: &str = "apns: too many items";

struct TopVisitor {
    max_items: usize,
}

impl<'de> Visitor<'de> for TopVisitor {
    type Value = Top;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JSON")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Top, A::Error> {
        let mut count = 0usize;
        while seq.next_element::<IgnoredAny>()?.is_some() {
            count += 1;
            if count > self.max_items {
                return Err(de::Error::custom(TOO_MANY));
            }
        }
        Ok(Top::Array(count))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Top, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Top::Object)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Top, E> {
        Ok(Top::Other)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Top, E> {
        Ok(Top::Other)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Top, E> {
        Ok(Top::Other)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Top, E> {
        Ok(Top::Other)
    }
    fn visit_str<E>(self, _: &str) -> Result<Top, E> {
        Ok(Top::Other)
    }
    fn visit_unit<E>(self) -> Result<Top, E> {
        Ok(Top::Other)
    }
}

/// Calls `each` with every item of the array `body` (scanned already), as
/// raw text borrowed from `body`.
pub(crate) fn each_item<'a>(
    body: &'a [u8],
    each: impl FnMut(&'a RawValue),
) -> Result<(), serde_json::Error> {
    struct Each<F>(F);
    impl<'de, F: FnMut(&'de RawValue)> Visitor<'de> for Each<F> {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an array")
        }
        fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
            while let Some(raw) = seq.next_element::<&'de RawValue>()? {
                (self.0)(raw);
            }
            Ok(())
        }
    }
    serde_json::Deserializer::from_slice(body).deserialize_seq(Each(each))
}

/// The whole of `body` (scanned already) as raw text.
pub(crate) fn whole(body: &[u8]) -> Result<&RawValue, serde_json::Error> {
    serde_json::from_slice(body)
}

/// `text` cut to `max` characters, with an ellipsis when cut: for what
/// an answer quotes from a body.
pub(crate) fn cut(mut text: String, max: usize) -> String {
    if let Some((at, _)) = text.char_indices().nth(max) {
        text.truncate(at);
        text.push('…');
    }
    text
}

/// A fault with one item or body: the field, when one is at fault, and
/// what is wrong.
pub(crate) type Fault = (Option<String>, String);

/// The members of one JSON object, in order, their values as raw text.
pub(crate) struct Members<'a> {
    /// The members whose key is allowed.
    pub known: Vec<(Cow<'a, str>, &'a RawValue)>,
    /// The first unknown key, in sorted order (what a map would list first).
    pub unknown: Option<String>,
}

/// Splits the object `raw` into its members. Refuses what is not an
/// object (field `None`) and a key given twice (field: the key). Unknown
/// keys are skipped, their values never kept; the first is reported.
pub(crate) fn members<'a>(raw: &'a RawValue, allowed: &[&str]) -> Result<Members<'a>, Fault> {
    if !raw.get().trim_start().starts_with('{') {
        return Err((None, "expected a JSON object".into()));
    }
    let mut duplicate = None;
    let mut de = serde_json::Deserializer::from_str(raw.get());
    let visitor = MembersVisitor {
        allowed,
        duplicate: &mut duplicate,
    };
    match de.deserialize_map(visitor) {
        Ok(m) => Ok(m),
        Err(e) => Err(match duplicate {
            Some(key) => {
                let message = duplicate_message(&key);
                (Some(key), message)
            }
            None => (None, e.to_string()),
        }),
    }
}

/// What a repeated key at the top of an item is told.
fn duplicate_message(key: &str) -> String {
    let shown: String = key.chars().take(64).collect();
    format!(
        "duplicate key {} in the top-level object: each key may appear once (parsers disagree on which copy wins)",
        Value::String(shown)
    )
}

struct MembersVisitor<'v> {
    allowed: &'v [&'v str],
    duplicate: &'v mut Option<String>,
}

impl<'de> Visitor<'de> for MembersVisitor<'_> {
    type Value = Members<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members<'de>, A::Error> {
        let mut known: Vec<(Cow<'de, str>, &'de RawValue)> = Vec::new();
        let mut unknown: Option<String> = None;
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            if !self.allowed.contains(&key.as_ref()) {
                if unknown.as_deref().is_none_or(|u| *key < *u) {
                    unknown = Some(key.into_owned());
                }
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            if known.iter().any(|(k, _)| *k == key) {
                *self.duplicate = Some(key.into_owned());
                return Err(de::Error::custom("duplicate key"));
            }
            let value = map.next_value::<&'de RawValue>()?;
            known.push((key, value));
        }
        Ok(Members { known, unknown })
    }
}

/// A key, borrowed from the text when it has no escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_string())))
            }
            fn visit_string<E>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// The value of field `key` (an object's member, at depth 1) as a
/// [`Value`]: at most [`MAX_FIELD_TEXT`] bytes of text, no duplicate key
/// at any depth, within serde_json's nesting limit.
pub(crate) fn field_value(key: &str, raw: &RawValue) -> Result<Value, Fault> {
    let text = raw.get();
    let fault = |message: String| (Some(key.to_string()), message);
    if text.len() > MAX_FIELD_TEXT {
        return Err(fault(format!(
            "too large: {} bytes of JSON, over the {MAX_FIELD_TEXT}-byte limit of one field (APNs takes payloads of at most 4096 bytes, 5120 for VoIP)",
            text.len()
        )));
    }
    crate::strict_json::check_within(text.as_bytes(), 1).map_err(fault)?;
    serde_json::from_str(text).map_err(|e| fault(e.to_string()))
}

/// A body that must be one JSON object of `allowed` fields, as a map;
/// a key given twice, at any depth, is refused naming it.
pub(crate) fn object(
    body: &[u8],
    allowed: &[&str],
) -> Result<serde_json::Map<String, Value>, ObjectError> {
    match scan(body, 0) {
        Err(e) => return Err(ObjectError::NotJson(e.to_string())),
        Ok(Top::Object) => {}
        Ok(_) => return Err(ObjectError::NotObject),
    }
    let raw = whole(body).map_err(|e| ObjectError::NotJson(e.to_string()))?;
    let m = members(raw, allowed).map_err(ObjectError::Field)?;
    if let Some(unknown) = m.unknown {
        return Err(ObjectError::Unknown(unknown));
    }
    let mut map = serde_json::Map::new();
    for (key, value) in m.known {
        let value = field_value(&key, value).map_err(ObjectError::Field)?;
        map.insert(key.into_owned(), value);
    }
    Ok(map)
}

/// Why [`object`] refused a body.
pub(crate) enum ObjectError {
    /// Not JSON (400).
    NotJson(String),
    /// JSON, not an object (422).
    NotObject,
    /// A field not allowed (422).
    Unknown(String),
    /// A field's problem, or a duplicate key (422).
    Field(Fault),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_top_is_counted_up_to_one_past_the_limit() {
        assert_eq!(scan(b"[1,2,3]", 3).unwrap(), Top::Array(3));
        assert_eq!(scan(b"[1,2,3,4]", 3).unwrap(), Top::TooMany);
        // Counting stops there: what follows is not even read.
        assert_eq!(scan(b"[1,2,3,4,", 3).unwrap(), Top::TooMany);
        assert_eq!(scan(b" {\"a\":[1]} ", 3).unwrap(), Top::Object);
        assert_eq!(scan(b"5", 3).unwrap(), Top::Other);
        assert_eq!(scan(b"[]", 3).unwrap(), Top::Array(0));
        assert!(scan(b"{nope", 3).is_err());
        assert!(scan(b"[1] x", 3).is_err());
        assert!(scan(b"", 3).is_err());
        // Deep nesting is skipped without recursion.
        let deep = format!("[{}{}]", "[".repeat(10_000), "]".repeat(10_000));
        assert_eq!(scan(deep.as_bytes(), 3).unwrap(), Top::Array(1));
    }

    #[test]
    fn members_are_borrowed_and_checked() {
        let raw = whole(br#"{"b":1,"zz":{"x":1},"a":[2],"yy":0}"#).unwrap();
        let m = members(raw, &["a", "b"]).unwrap();
        assert_eq!(m.known.len(), 2);
        assert!(matches!(m.known[0].0, Cow::Borrowed("b")));
        assert_eq!(m.known[1].1.get(), "[2]");
        assert_eq!(m.unknown.as_deref(), Some("yy"));
        let raw = whole(br#"{"a":1,"\u0061":2}"#).unwrap();
        let (field, message) = members(raw, &["a"]).err().unwrap();
        assert_eq!(field.as_deref(), Some("a"));
        assert!(message.contains("duplicate key \"a\""), "{message}");
        let raw = whole(b"[1]").unwrap();
        assert_eq!(members(raw, &["a"]).err().unwrap().0, None);
        let raw = whole(br#"{"aps":{"alert":1,"alert":2}}"#).unwrap();
        let (_, message) = field_value("payload", raw).unwrap_err();
        assert!(
            message.contains("\"alert\" in an object at depth 2"),
            "{message}"
        );
    }
}
