//! JSON without duplicate keys: a check run before the ordinary parse of
//! what other programs send us (gateway bodies, tokens-file lines, queue
//! jobs).
//!
//! Why: serde_json keeps the last of two equal keys. A producer in another
//! language may keep the first, or merge them; a body that means two
//! different things to two parsers is refused instead of guessed at.
//! The check walks the document once without building it (keys are
//! compared per object, at every depth) and stops at the first duplicate.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// Refuses `json` when any object in it has the same key twice; the error
/// names the key (JSON-escaped, cut to 64 characters) and says where.
/// Text that is not JSON passes: the parse that follows reports it.
pub(crate) fn check(json: &[u8]) -> Result<(), String> {
    check_within(json, 0)
}

/// [`check`] for a value found at `depth` in a larger document (e.g. a
/// field's value, at depth 1), so that the error's place is the larger
/// document's.
pub(crate) fn check_within(json: &[u8], depth: usize) -> Result<(), String> {
    let mut de = serde_json::Deserializer::from_slice(json);
    let walk = Walk { depth };
    match walk.deserialize(&mut de) {
        Ok(()) => Ok(()),
        Err(e) if e.is_data() => Err(e.to_string()),
        // Syntax or EOF: not ours to report.
        Err(_) => Ok(()),
    }
}

/// Deeper than serde_json's own recursion limit (128) is never reached.
struct Walk {
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for Walk {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JSON")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq
            .next_element_seed(Walk {
                depth: self.depth + 1,
            })?
            .is_some()
        {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        // A set, not a sorted Vec: a hostile object of a million keys
        // must cost O(n log n), not O(n^2) (one insert shifting them all).
        let mut seen: std::collections::BTreeSet<String> = Default::default();
        while let Some(key) = map.next_key::<String>()? {
            if seen.contains(&key) {
                let shown: String = key.chars().take(64).collect();
                let place = if self.depth == 0 {
                    "in the top-level object".to_string()
                } else {
                    format!("in an object at depth {}", self.depth)
                };
                return Err(de::Error::custom(format!(
                        "duplicate key {} {place}: each key may appear once (parsers disagree on which copy wins)",
                        serde_json::Value::String(shown)
                    )));
            }
            seen.insert(key);
            map.next_value_seed(Walk {
                depth: self.depth + 1,
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn duplicates_are_found_at_every_depth() {
        assert!(check(br#"{"a":1,"b":[{"c":1,"d":2}],"e":{"f":{"g":null}}}"#).is_ok());
        let e = check(br#"{"device_token":"aa","device_token":"bb"}"#).unwrap_err();
        assert!(e.contains("duplicate key \"device_token\""), "{e}");
        assert!(e.contains("top-level"), "{e}");
        let e = check(br#"[{"payload":{"aps":{"alert":"x","alert":"y"}}}]"#).unwrap_err();
        assert!(e.contains("\"alert\""), "{e}");
        // Escaped spellings of one key are the same key.
        assert!(check(br#"{"a":1,"\u0061":2}"#).is_err());
        // Equal keys in different objects are fine.
        assert!(check(br#"[{"a":1},{"a":2}]"#).is_ok());
        // A value inside a larger document: its place is the document's.
        let e = super::check_within(br#"{"aps":{"a":1,"a":2}}"#, 1).unwrap_err();
        assert!(e.contains("at depth 2"), "{e}");
        // Many keys: no quadratic insert.
        let many: Vec<String> = (0..200_000).map(|i| format!("\"k{i}\":0")).collect();
        let many = format!("{{{},\"k7\":1}}", many.join(","));
        assert!(check(many.as_bytes()).unwrap_err().contains("\"k7\""));
        // Not JSON: left to the parser that follows.
        assert!(check(b"{nope").is_ok());
        assert!(check(b"").is_ok());
        // A key that would flood the message is cut.
        let long = format!(r#"{{"{0}":1,"{0}":2}}"#, "k".repeat(10_000));
        assert!(check(long.as_bytes()).unwrap_err().len() < 300);
    }
}
