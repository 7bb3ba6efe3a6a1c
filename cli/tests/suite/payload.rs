//! The payload builder's JSON for every feature, raw passthrough, and the
//! size limits at their boundaries.

use apns_provider::payload::{Alert, InterruptionLevel, LiveActivityEvent, Sound};
use apns_provider::{Error, Notification, Payload, PushType};
use serde_json::{json, Value};

use crate::support::*;

fn json_of(p: Payload) -> Value {
    serde_json::from_str(&p.to_json_string().unwrap()).unwrap()
}

#[test]
fn alert_string_and_dictionary_with_localization() {
    assert_eq!(
        json_of(Payload::alert("hi")),
        json!({"aps": {"alert": "hi"}})
    );
    let alert = Alert::new()
        .title("T")
        .subtitle("S")
        .body("B")
        .launch_image("L.png")
        .title_loc_key("TK")
        .title_loc_args(["a"])
        .subtitle_loc_key("SK")
        .subtitle_loc_args(["b", "c"])
        .loc_key("LK")
        .loc_args(["d"]);
    assert_eq!(
        json_of(Payload::builder().alert(alert).build()),
        json!({"aps": {"alert": {
            "title": "T", "subtitle": "S", "body": "B", "launch-image": "L.png",
            "title-loc-key": "TK", "title-loc-args": ["a"],
            "subtitle-loc-key": "SK", "subtitle-loc-args": ["b", "c"],
            "loc-key": "LK", "loc-args": ["d"]
        }}})
    );
}

#[test]
fn every_other_aps_key() {
    let p = Payload::builder()
        .alert_text("x")
        .badge(0)
        .sound(Sound::critical("alarm.caf", 1.5))
        .thread_id("t1")
        .category("C")
        .content_available()
        .mutable_content()
        .target_content_id("w1")
        .interruption_level(InterruptionLevel::TimeSensitive)
        .relevance_score(0.75)
        .filter_criteria("work")
        .build();
    assert_eq!(
        json_of(p),
        json!({"aps": {
            "alert": "x", "badge": 0,
            "sound": {"critical": 1, "name": "alarm.caf", "volume": 1.0},
            "thread-id": "t1", "category": "C", "content-available": 1, "mutable-content": 1,
            "target-content-id": "w1", "interruption-level": "time-sensitive",
            "relevance-score": 0.75, "filter-criteria": "work"
        }})
    );
    assert_eq!(
        json_of(Payload::builder().sound(Sound::named("default")).build()),
        json!({"aps": {"sound": "default"}})
    );
    for (level, text) in [
        (InterruptionLevel::Passive, "passive"),
        (InterruptionLevel::Active, "active"),
        (InterruptionLevel::Critical, "critical"),
    ] {
        assert_eq!(
            json_of(Payload::builder().interruption_level(level).build())["aps"]
                ["interruption-level"],
            text
        );
    }
}

#[test]
fn live_activity_and_widget_keys() {
    let start = Payload::builder()
        .event(LiveActivityEvent::Start)
        .timestamp(1_700_000_000)
        .content_state(json!({"score": "1-0"}))
        .stale_date(1_700_003_600)
        .dismissal_date(1_700_007_200)
        .attributes_type("MatchAttributes")
        .attributes(json!({"home": "A", "away": "B"}))
        .input_push_token()
        .input_push_channel("dHN0LXNyY2gtY2hubA==")
        .alert(Alert::new().title("Kick-off"))
        .build();
    assert_eq!(
        json_of(start),
        json!({"aps": {
            "alert": {"title": "Kick-off"},
            "timestamp": 1_700_000_000u64, "event": "start", "content-state": {"score": "1-0"},
            "stale-date": 1_700_003_600u64, "dismissal-date": 1_700_007_200u64,
            "attributes-type": "MatchAttributes", "attributes": {"home": "A", "away": "B"},
            "input-push-token": 1, "input-push-channel": "dHN0LXNyY2gtY2hubA=="
        }})
    );
    for (event, text) in [
        (LiveActivityEvent::Update, "update"),
        (LiveActivityEvent::End, "end"),
    ] {
        assert_eq!(
            json_of(Payload::builder().event(event).build())["aps"]["event"],
            text
        );
    }
    assert_eq!(
        json_of(Payload::builder().content_changed().build()),
        json!({"aps": {"content-changed": true}})
    );
}

#[test]
fn custom_data_goes_beside_aps_and_mdm_has_no_aps() {
    let p = Payload::builder()
        .alert_text("hi")
        .custom("order", json!({"id": 7}))
        .custom("n", 1)
        .build();
    assert_eq!(
        json_of(p),
        json!({"aps": {"alert": "hi"}, "order": {"id": 7}, "n": 1})
    );
    assert_eq!(
        json_of(Payload::builder().mdm("magic-123").build()),
        json!({"mdm": "magic-123"})
    );
    assert_eq!(json_of(Payload::builder().build()), json!({"aps": {}}));

    let e = Notification::builder(DEVICE, Payload::builder().custom("aps", 1).build())
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("\"aps\""), "{e}");
    let e = Notification::builder(DEVICE, Payload::builder().relevance_score(2.0).build())
        .build()
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::InvalidField {
                field: "relevance_score",
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn raw_json_passes_through_byte_for_byte() {
    let raw = "{ \"aps\" : {\"alert\":\"spaced\"},\"z\":1 }";
    let n = Notification::builder(DEVICE, Payload::raw(raw).unwrap())
        .build()
        .unwrap();
    assert_eq!(n.payload().as_ref(), raw.as_bytes());
    for bad in ["", "not json", "[1]", "\"str\""] {
        assert!(
            matches!(
                Payload::raw(bad.to_string()).unwrap_err(),
                Error::InvalidField {
                    field: "payload",
                    ..
                }
            ),
            "{bad:?}"
        );
    }
}

/// A raw payload of exactly `size` bytes.
fn sized(size: usize) -> Payload {
    let overhead = r#"{"aps":{"alert":""}}"#.len();
    Payload::raw(format!(
        r#"{{"aps":{{"alert":"{}"}}}}"#,
        "a".repeat(size - overhead)
    ))
    .unwrap()
}

#[test]
fn size_limits_at_the_boundary() {
    let build = |size, t: PushType| {
        Notification::builder(DEVICE, sized(size))
            .push_type(t)
            .build()
    };
    assert_eq!(build(4096, PushType::Alert).unwrap().payload().len(), 4096);
    match build(4097, PushType::Alert).unwrap_err() {
        Error::PayloadTooLarge {
            size,
            limit,
            push_type,
        } => {
            assert_eq!((size, limit, push_type), (4097, 4096, "alert"));
        }
        other => panic!("{other:?}"),
    }
    assert!(build(5120, PushType::Voip).is_ok());
    assert!(matches!(
        build(5121, PushType::Voip).unwrap_err(),
        Error::PayloadTooLarge { limit: 5120, .. }
    ));
    assert!(build(4097, PushType::Background).is_err());
    // The builder's output is measured the same way.
    let big = Payload::builder().alert_text("a".repeat(4096)).build();
    let e = Notification::builder(DEVICE, big).build().unwrap_err();
    assert!(e.to_string().contains("4096-byte limit"), "{e}");
}
