//! Property tests of the gateway's body parser (`Gateway::validate`, what
//! `POST /v1/notifications` runs): whatever the bytes, a batch or a typed
//! refusal, never a panic; the items counted never pass the limit; what an
//! answer quotes from the body stays small; a key given twice is refused,
//! naming it.
//!
//! `PROPTEST_CASES=100000 cargo test --test tests gateway_props` for a
//! longer run.

use std::sync::OnceLock;

use apns_provider::gateway::{ApiTokens, App, Gateway, Limits, Refusal};
use apns_provider::wire::SpecDefaults;
use apns_provider::Client;
use proptest::collection::vec;
use proptest::prelude::*;
use serde_json::{json, Value};

use crate::support::{self, BUNDLE, DEVICE, KEY_ID, TEAM_ID};

/// The most items a body may carry here.
const MAX_ITEMS: usize = 8;

/// The item fields, and a few that are not.
const KEYS: [&str; 12] = [
    "app",
    "device_token",
    "payload",
    "topic",
    "push_type",
    "priority",
    "expiration",
    "collapse_id",
    "apns_id",
    "aps",
    "",
    "prio",
];

fn config(cases: u32) -> ProptestConfig {
    let mut config = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = cases;
    }
    config
}

/// One gateway (never serving: only its validation is used).
fn gateway() -> &'static Gateway {
    static GATEWAY: OnceLock<Gateway> = OnceLock::new();
    GATEWAY.get_or_init(|| {
        let client = Client::builder()
            .no_proxy()
            .token_auth(support::new_key(), KEY_ID, TEAM_ID)
            .no_proxy()
            .build()
            .unwrap();
        let defaults = SpecDefaults::builder().topic(BUNDLE).build().unwrap();
        let mut limits = Limits::default();
        limits.max_items = MAX_ITEMS;
        Gateway::builder()
            .app("default", App::new(client).with_defaults(defaults))
            .api_tokens(ApiTokens::from_tokens(["props-token-0123456789"]).unwrap())
            .limits(limits)
            .build()
            .unwrap()
    })
}

/// Whatever `validate` answers, it is typed and bounded; returns it.
fn check(body: &[u8]) -> Result<usize, Refusal> {
    match gateway().validate(body) {
        Ok(batch) => {
            assert!(
                (1..=MAX_ITEMS).contains(&batch.items.len()),
                "{} items",
                batch.items.len()
            );
            Ok(batch.items.len())
        }
        Err(refusal) => {
            match &refusal {
                Refusal::Invalid { problems, total } => {
                    assert!(!problems.is_empty() && problems.len() <= 100);
                    assert!(*total >= problems.len() && *total <= MAX_ITEMS);
                    let mut last = None;
                    for p in problems {
                        assert!(p.index < MAX_ITEMS, "{p:?}");
                        assert!(last < Some(p.index), "in item order: {problems:?}");
                        last = Some(p.index);
                        // Cut to 64 and 512 characters, plus an ellipsis.
                        let field = p.field.as_deref().unwrap_or("");
                        assert!(field.chars().count() <= 65, "{p:?}");
                        assert!(p.message.chars().count() <= 513, "{p:?}");
                        assert!(!p.message.is_empty());
                    }
                }
                Refusal::NotJson(why) | Refusal::Shape(why) => assert!(!why.is_empty()),
                Refusal::TooMany { limit } => assert_eq!(*limit, MAX_ITEMS),
                other => panic!("an unexpected refusal: {other:?}"),
            }
            Err(refusal)
        }
    }
}

/// Any JSON value, nested a few levels, long strings included.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,20}".prop_map(Value::from),
        (1usize..100).prop_map(|n| Value::from("x".repeat(n * 700))),
        Just(Value::from(DEVICE)),
        Just(json!({"aps": {"alert": "hi"}})),
    ];
    leaf.prop_recursive(3, 40, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Value::Array),
            vec((".{0,8}", inner), 0..6).prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// An object's text from members, a key possibly given twice (which a
/// `Value` cannot hold, so written by hand).
fn object_text(members: &[(String, Value)]) -> String {
    let inner: Vec<String> = members
        .iter()
        .map(|(k, v)| format!("{}:{v}", Value::String(k.clone())))
        .collect();
    format!("{{{}}}", inner.join(","))
}

/// An item: keys from [`KEYS`] or any, values of any kind.
fn item() -> impl Strategy<Value = Vec<(String, Value)>> {
    let key = prop_oneof![
        4 => proptest::sample::select(&KEYS[..]).prop_map(String::from),
        1 => ".{0,12}",
        1 => (1usize..200).prop_map(|n| "k".repeat(n * 10)),
    ];
    vec((key, json_value()), 0..8)
}

proptest! {
    #![proptest_config(config(128))]

    #[test]
    fn any_bytes_get_a_batch_or_a_typed_refusal(body in vec(any::<u8>(), 0..600)) {
        let _ = check(&body);
    }

    #[test]
    fn json_ish_text_gets_a_batch_or_a_typed_refusal(
        parts in vec(prop_oneof![
            Just("["), Just("]"), Just("{"), Just("}"), Just(","), Just(":"),
            Just("\"device_token\""), Just("\"payload\""), Just("\"aps\""),
            Just("0"), Just("-1e999"), Just("null"), Just("\"\\ud800\""), Just(" "),
        ], 0..80)
    ) {
        let _ = check(parts.concat().as_bytes());
    }

    #[test]
    fn arrays_of_any_items_are_counted_and_bounded(
        items in vec(item(), 0..(MAX_ITEMS + 4)),
        single in any::<bool>(),
    ) {
        let texts: Vec<String> = items.iter().map(|m| object_text(m)).collect();
        let body = if single && items.len() == 1 {
            texts[0].clone()
        } else {
            format!("[{}]", texts.join(","))
        };
        match check(body.as_bytes()) {
            Ok(n) => prop_assert_eq!(n, items.len()),
            Err(Refusal::TooMany { .. }) => prop_assert!(items.len() > MAX_ITEMS),
            Err(Refusal::Shape(_)) => prop_assert!(items.is_empty()),
            Err(Refusal::Invalid { problems, .. }) => {
                prop_assert!(items.len() <= MAX_ITEMS);
                // An item giving one of its fields twice is invalid, and
                // says so.
                for (i, members) in items.iter().enumerate() {
                    let mut seen = std::collections::HashSet::new();
                    let twice = members
                        .iter()
                        .any(|(k, _)| KEYS[..9].contains(&k.as_str()) && !seen.insert(k.as_str()));
                    if twice {
                        let p = problems.iter().find(|p| p.index == i);
                        prop_assert!(
                            p.is_some_and(|p| p.message.contains("duplicate key")),
                            "item {}: {:?}", i, p
                        );
                    }
                }
            }
            Err(other) => prop_assert!(false, "{:?} for {}", other, body),
        }
    }

    #[test]
    fn a_key_given_twice_at_any_depth_is_refused_naming_it(
        depth in 0usize..5,
        key in "[a-z_]{1,10}",
        first in json_value(),
        second in json_value(),
    ) {
        // {"key":1,"key":2} nested `depth` objects down in the payload.
        let mut twice = format!(
            "{{{k}:{first},{k}:{second}}}",
            k = Value::String(key.clone())
        );
        for _ in 0..depth {
            twice = format!("{{\"aps\":{twice}}}");
        }
        // A field too large is refused first, for being so.
        prop_assume!(twice.len() < 60_000);
        // Over the field limit, the size is what is refused (tested apart).
        prop_assume!(twice.len() <= apns_provider::gateway::MAX_FIELD_TEXT);
        let body = format!(
            r#"[{{"device_token":"{DEVICE}","payload":{{"aps":{{"alert":"hi"}}}}}},{{"device_token":"{DEVICE}","payload":{twice}}}]"#
        );
        match check(body.as_bytes()) {
            Err(Refusal::Invalid { problems, total }) => {
                prop_assert_eq!(total, 1);
                prop_assert_eq!(problems[0].index, 1);
                prop_assert_eq!(problems[0].field.as_deref(), Some("payload"));
                let named = format!("duplicate key {}", Value::String(key));
                prop_assert!(problems[0].message.contains(&named), "{:?}", problems[0]);
            }
            other => prop_assert!(false, "{:?}", other.map(|_| ())),
        }
    }

}

proptest! {
    #![proptest_config(config(32))]

    #[test]
    fn deep_nesting_never_overflows_the_stack(depth in 0usize..100_000, array in any::<bool>()) {
        let (open, close) = if array { ("[", "]") } else { ("{\"a\":", "}") };
        let body = format!("[{}0{}]", open.repeat(depth), close.repeat(depth));
        let _ = check(body.as_bytes());
        // Unclosed too.
        let _ = check(format!("[{}", open.repeat(depth)).as_bytes());
    }
}

#[test]
fn what_an_answer_quotes_from_a_body_is_cut() {
    let long = "k".repeat(100_000);
    let body =
        format!(r#"{{"device_token":"{DEVICE}","payload":{{"aps":{{"alert":"hi"}}}},"{long}":1}}"#);
    let Err(Refusal::Invalid { problems, .. }) = check(body.as_bytes()) else {
        panic!("an unknown field is invalid");
    };
    assert_eq!(
        problems[0].field.as_deref().map(|f| f.chars().count()),
        Some(65)
    );
    let body = format!(r#"{{"device_token":"{DEVICE}","app":"{long}"}}"#);
    let Err(Refusal::Invalid { problems, .. }) = check(body.as_bytes()) else {
        panic!("an unknown app is invalid");
    };
    assert!(problems[0].message.chars().count() <= 513, "{problems:?}");
}
