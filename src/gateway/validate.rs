//! Turning a request body into a [`Batch`]: every item is checked before
//! anything is sent, and every problem names the item's index and field.

use serde::Serialize;

use super::apps::Apps;
use super::body::{self, Top};
use super::dispatch::{Batch, Item};
use crate::error::Error;
use crate::wire::NotificationSpec;

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

/// A problem's field name is cut to this many characters, its message to
/// [`MAX_MESSAGE`]: both may quote the body (an unknown key, a value
/// serde could not take), and an answer must stay small whatever was sent.
pub(crate) const MAX_FIELD_NAME: usize = 64;

/// See [`MAX_FIELD_NAME`].
pub(crate) const MAX_MESSAGE: usize = 512;

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

/// Why a `POST /v1/notifications` body is refused (see
/// [`Gateway::validate`](super::Gateway::validate)).
#[derive(Debug)]
#[non_exhaustive]
pub enum Refusal {
    /// Not JSON at all (400).
    NotJson(String),
    /// JSON, but not an object or an array of objects, or an empty array
    /// (422).
    Shape(String),
    /// More items than allowed (413); counting stopped at `limit + 1`.
    TooMany {
        /// The most items a request may carry.
        limit: usize,
    },
    /// Invalid items (422): the first [`MAX_LISTED`], and how many in all.
    Invalid {
        /// The first problems, in item order.
        problems: Vec<Problem>,
        /// How many items are invalid.
        total: usize,
    },
}

/// The fields an item may have: [`FIELDS`] and `app`.
const ITEM_FIELDS: [&str; 9] = [
    "app",
    "device_token",
    "payload",
    "topic",
    "push_type",
    "priority",
    "expiration",
    "collapse_id",
    "apns_id",
];

/// Parses and validates a body of one notification object or an array of
/// them, without building the body whole: an array's items are counted
/// first (counting stops at `max_items + 1`), then each is parsed alone
/// from the body's text. A key given twice in an item, at any depth, is
/// an invalid item.
pub fn batch(body: &[u8], apps: &Apps, max_items: usize) -> Result<Batch, Refusal> {
    let (count, array) = match body::scan(body, max_items)
        .map_err(|e| Refusal::NotJson(e.to_string()))?
    {
        Top::Array(0) => return Err(Refusal::Shape("the array is empty: nothing to send".into())),
        Top::Array(n) => (n, true),
        Top::TooMany => return Err(Refusal::TooMany { limit: max_items }),
        Top::Object => (1, false),
        Top::Other => {
            return Err(Refusal::Shape(
                "expected a notification object or an array of them".into(),
            ))
        }
    };
    let mut items = Vec::with_capacity(count);
    let mut problems = Vec::new();
    let mut total = 0usize;
    let mut index = 0usize;
    let mut one = |raw: &serde_json::value::RawValue| {
        match item(raw, apps) {
            Ok(item) => items.push(item),
            Err((field, message)) => {
                total += 1;
                if problems.len() < MAX_LISTED {
                    problems.push(Problem {
                        index,
                        field: field.map(|f| body::cut(f, MAX_FIELD_NAME)),
                        message: body::cut(message, MAX_MESSAGE),
                    });
                }
            }
        }
        index += 1;
    };
    // Scanned already: these cannot fail, but a failure is still typed.
    let read = if array {
        body::each_item(body, &mut one)
    } else {
        body::whole(body).map(&mut one)
    };
    read.map_err(|e| Refusal::NotJson(e.to_string()))?;
    if total > 0 {
        return Err(Refusal::Invalid { problems, total });
    }
    Ok(Batch { items })
}

type Fault = body::Fault;

fn item(raw: &serde_json::value::RawValue, apps: &Apps) -> Result<Item, Fault> {
    let members = body::members(raw, &ITEM_FIELDS).map_err(|(field, message)| match field {
        None => (None, "expected a notification object".into()),
        field => (field, message),
    })?;
    let mut object = serde_json::Map::new();
    let mut named = None;
    for (key, value) in &members.known {
        if key == "app" {
            named = match body::field_value(key, value)? {
                serde_json::Value::Null => None,
                serde_json::Value::String(s) => Some(s),
                _ => return Err((Some("app".into()), "expected a string".into())),
            };
        }
    }
    let app = apps
        .pick(named.as_deref())
        .map_err(|m| (Some("app".into()), m))?;
    if let Some(unknown) = members.unknown {
        return Err((
            Some(unknown),
            format!("unknown field; the fields are app, {}", FIELDS.join(", ")),
        ));
    }
    for (key, value) in members.known {
        if key != "app" {
            let value = body::field_value(&key, value)?;
            object.insert(key.into_owned(), value);
        }
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
            if let Err(Error::InvalidField { field, message }) =
                info.check_topic(notification.topic().map(|t| t.as_str()))
            {
                // The gateway's words: it is the app's certificate.
                let message = message.replacen("the certificate", "the app's certificate", 1);
                return Err((Some(field.into()), message));
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
