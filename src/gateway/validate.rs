//! Turning a request body into a [`Batch`]: every item is checked before
//! anything is sent, and every problem names the item's index and field.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use super::dispatch::{Batch, Item};
use super::App;
use crate::error::Error;
use crate::spec::NotificationSpec;

/// The fields of a notification object (a tokens-file JSON line) plus `app`.
const FIELDS: [&str; 8] = [
    "device_token",
    "payload",
    "topic",
    "push_type",
    "priority",
    "expiration",
    "collapse_id",
    "apns_id",
];

/// At most this many problems are listed in one answer.
const MAX_LISTED: usize = 100;

/// One problem with one item.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Problem {
    /// The item's index in the request (0 for a single object).
    pub index: usize,
    /// The field at fault, when one is.
    pub field: Option<String>,
    /// What is wrong and what is expected.
    pub message: String,
}

/// Why a body is refused.
#[derive(Debug)]
pub enum Refusal {
    /// Not JSON at all (400).
    NotJson(String),
    /// JSON, but not an object or an array of objects, or an empty array
    /// (422).
    Shape(String),
    /// More items than allowed (413).
    TooMany { count: usize, limit: usize },
    /// Invalid items (422): the first [`MAX_LISTED`], and how many in all.
    Invalid {
        problems: Vec<Problem>,
        total: usize,
    },
}

/// The apps a gateway serves, and the one used when an item names none.
#[derive(Debug, Clone)]
pub struct Apps {
    pub(crate) map: BTreeMap<String, Arc<App>>,
    pub(crate) default: Option<String>,
}

impl Apps {
    pub(crate) fn pick(&self, named: Option<&str>) -> Result<&Arc<App>, String> {
        let names = || self.map.keys().cloned().collect::<Vec<_>>().join(", ");
        match named {
            Some(name) => self
                .map
                .get(name)
                .ok_or_else(|| format!("unknown app {name:?}; this gateway serves {}", names())),
            None => match &self.default {
                Some(d) => self
                    .map
                    .get(d)
                    .ok_or_else(|| format!("the default app {d:?} is not configured")),
                None if self.map.len() == 1 => {
                    self.map.values().next().ok_or_else(|| "no app".into())
                }
                None => Err(format!(
                    "missing: name one of the apps this gateway serves ({})",
                    names()
                )),
            },
        }
    }
}

/// Parses and validates a body of one notification object or an array of
/// them.
pub fn batch(body: &[u8], apps: &Apps, max_items: usize) -> Result<Batch, Refusal> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| Refusal::NotJson(e.to_string()))?;
    let values = match value {
        serde_json::Value::Array(items) => {
            if items.is_empty() {
                return Err(Refusal::Shape("the array is empty: nothing to send".into()));
            }
            if items.len() > max_items {
                return Err(Refusal::TooMany {
                    count: items.len(),
                    limit: max_items,
                });
            }
            items
        }
        object @ serde_json::Value::Object(_) => vec![object],
        _ => {
            return Err(Refusal::Shape(
                "expected a notification object or an array of them".into(),
            ))
        }
    };
    let mut items = Vec::with_capacity(values.len());
    let mut problems = Vec::new();
    let mut total = 0usize;
    for (index, value) in values.into_iter().enumerate() {
        match item(value, apps) {
            Ok(item) => items.push(item),
            Err((field, message)) => {
                total += 1;
                if problems.len() < MAX_LISTED {
                    problems.push(Problem {
                        index,
                        field,
                        message,
                    });
                }
            }
        }
    }
    if total > 0 {
        return Err(Refusal::Invalid { problems, total });
    }
    Ok(Batch { items })
}

type Fault = (Option<String>, String);

fn item(value: serde_json::Value, apps: &Apps) -> Result<Item, Fault> {
    let serde_json::Value::Object(mut object) = value else {
        return Err((None, "expected a notification object".into()));
    };
    let named = match object.remove("app") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) => Some(s),
        Some(_) => return Err((Some("app".into()), "expected a string".into())),
    };
    let app = apps
        .pick(named.as_deref())
        .map_err(|m| (Some("app".into()), m))?;
    if let Some(unknown) = object.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err((
            Some(unknown.clone()),
            format!("unknown field; the fields are app, {}", FIELDS.join(", ")),
        ));
    }
    let spec: NotificationSpec =
        match serde_json::from_value(serde_json::Value::Object(object.clone())) {
            Ok(spec) => spec,
            // Which field: the first that fails alone.
            Err(e) => {
                let field = object.iter().find_map(|(k, v)| {
                    let mut alone = serde_json::Map::new();
                    alone.insert(k.clone(), v.clone());
                    serde_json::from_value::<NotificationSpec>(serde_json::Value::Object(alone))
                        .err()
                        .map(|e| (k.clone(), e.to_string()))
                });
                return Err(match field {
                    Some((k, message)) => (Some(k), message),
                    None => (None, e.to_string()),
                });
            }
        };
    if spec.device_token.is_none() {
        return Err((Some("device_token".into()), "missing".into()));
    }
    let notification = app.defaults().build(&spec).map_err(fault)?;
    // What the client would refuse at send time, refused now.
    match app.client().certificate() {
        None if notification.topic().is_none() => {
            return Err((
                Some("topic".into()),
                "missing: give the app's bundle id (plus the push type's suffix)".into(),
            ))
        }
        Some(info) => {
            if notification.push_type().requires_token_auth() {
                return Err((
                    Some("push_type".into()),
                    format!(
                        "{} pushes need token authentication; this app uses a certificate",
                        notification.push_type()
                    ),
                ));
            }
            match notification.topic() {
                Some(t) if !info.allows_topic(t.as_str()) => {
                    return Err((
                        Some("topic".into()),
                        format!(
                            "{t} is not allowed by the app's certificate, which allows {}",
                            info.allowed_topics().join(", ")
                        ),
                    ))
                }
                None if info.default_topic().is_none() => {
                    return Err((
                        Some("topic".into()),
                        format!(
                            "missing: the app's certificate allows several topics ({})",
                            info.allowed_topics().join(", ")
                        ),
                    ))
                }
                _ => {}
            }
        }
        None => {}
    }
    Ok(Item {
        app: app.clone(),
        spec,
        notification,
    })
}

/// A library error as (field, message).
fn fault(e: Error) -> Fault {
    match e {
        Error::InvalidField { field, message } => (Some(field.to_string()), message),
        e @ Error::PayloadTooLarge { .. } => (Some("payload".into()), e.to_string()),
        other => (None, other.to_string()),
    }
}
