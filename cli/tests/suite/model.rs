//! Typed notification fields: invalid values are rejected before sending,
//! with an error naming the field.

use apns_provider::{
    ApnsId, CollapseId, DeviceToken, Endpoint, Environment, Error, Expiration, Notification,
    Payload, Priority, PushType,
};

use crate::support::*;

fn field_of(e: Error) -> &'static str {
    match e {
        Error::InvalidField { field, .. } => field,
        other => panic!("expected InvalidField, got {other:?}"),
    }
}

#[test]
fn device_tokens_are_hex_even_and_non_empty_of_any_length() {
    assert!(DeviceToken::new(DEVICE).is_ok());
    assert!(DeviceToken::new("ab").is_ok());
    assert!(
        DeviceToken::new("AB".repeat(100)).is_ok(),
        "no fixed length"
    );
    for bad in ["", "abc", "zz", "<00fc13ad>", "00fc 13ad", "00fc13ad\n"] {
        assert_eq!(
            field_of(DeviceToken::new(bad).unwrap_err()),
            "device_token",
            "{bad:?}"
        );
    }
    let e = DeviceToken::new("00fc 13ad").unwrap_err().to_string();
    assert!(e.contains("position 5"), "{e}");
}

#[test]
fn every_push_type_has_its_topic_suffix_and_limit() {
    let expected = [
        ("alert", ""),
        ("background", ""),
        ("location", ".location-query"),
        ("voip", ".voip"),
        ("complication", ".complication"),
        ("fileprovider", ".pushkit.fileprovider"),
        ("liveactivity", ".push-type.liveactivity"),
        ("pushtotalk", ".voip-ptt"),
        ("widgets", ".push-type.widgets"),
        ("controls", ".push-type.controls"),
    ];
    assert_eq!(PushType::ALL.len(), 11);
    for (name, suffix) in expected {
        let t: PushType = name.parse().unwrap();
        assert_eq!(t.as_str(), name);
        assert_eq!(t.topic_suffix(), Some(suffix));
        assert_eq!(t.payload_limit(), if name == "voip" { 5120 } else { 4096 });
    }
    assert_eq!(PushType::Mdm.topic_suffix(), None);
    assert!(
        PushType::Location.requires_token_auth() && PushType::Liveactivity.requires_token_auth()
    );
    assert_eq!(
        field_of("Alert ".parse::<PushType>().unwrap_err()),
        "push_type"
    );
}

#[test]
fn priorities_expirations_collapse_ids_and_apns_ids() {
    assert_eq!("10".parse::<Priority>().unwrap(), Priority::Immediate);
    assert_eq!("5".parse::<Priority>().unwrap().as_u8(), 5);
    assert_eq!("1".parse::<Priority>().unwrap(), Priority::Low);
    assert_eq!(field_of("7".parse::<Priority>().unwrap_err()), "priority");

    assert_eq!("0".parse::<Expiration>().unwrap(), Expiration::DoNotStore);
    assert_eq!(
        "1767225600".parse::<Expiration>().unwrap(),
        Expiration::At(1_767_225_600)
    );
    let Expiration::At(t) = "+1h".parse::<Expiration>().unwrap() else {
        panic!()
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!((now + 3590..=now + 3610).contains(&t));
    for bad in ["soon", "-5", "+5w", "1.5"] {
        assert_eq!(
            field_of(bad.parse::<Expiration>().unwrap_err()),
            "expiration"
        );
    }

    assert!(CollapseId::new("x".repeat(64)).is_ok());
    assert_eq!(
        field_of(CollapseId::new("x".repeat(65)).unwrap_err()),
        "collapse_id"
    );

    let id = ApnsId::parse("123E4567-E89B-12D3-A456-4266554400A0").unwrap();
    assert_eq!(id.to_string(), "123e4567-e89b-12d3-a456-4266554400a0");
    for bad in [
        "123",
        "123e4567e89b12d3a4564266554400a0",
        "{123e4567-e89b-12d3-a456-4266554400a0}",
    ] {
        assert_eq!(field_of(ApnsId::parse(bad).unwrap_err()), "apns_id");
    }
}

#[test]
fn builder_reports_the_invalid_field() {
    let e = Notification::builder("xyz", Payload::alert("hi"))
        .build()
        .unwrap_err();
    assert_eq!(field_of(e), "device_token");
    let e = Notification::builder(DEVICE, Payload::alert("hi"))
        .topic("com example")
        .build()
        .unwrap_err();
    assert_eq!(field_of(e), "topic");
    let e = Notification::builder(DEVICE, Payload::alert("hi"))
        .collapse_id("c".repeat(65))
        .build()
        .unwrap_err();
    assert_eq!(field_of(e), "collapse_id");
    let e = Notification::builder(DEVICE, Payload::alert("hi"))
        .apns_id_str("nope")
        .build()
        .unwrap_err();
    assert_eq!(field_of(e), "apns_id");
}

#[test]
fn lints_catch_common_mistakes() {
    let codes = |b: apns_provider::NotificationBuilder| -> Vec<&'static str> {
        b.build()
            .unwrap()
            .lints()
            .into_iter()
            .map(|l| l.code)
            .collect()
    };
    let bg = || {
        Notification::builder(DEVICE, Payload::background())
            .topic(BUNDLE)
            .push_type(PushType::Background)
    };
    assert_eq!(codes(bg()), ["background-priority"]);
    assert!(codes(bg().priority(Priority::Normal)).is_empty());
    let noisy = Notification::builder(
        DEVICE,
        Payload::builder().content_available().badge(3).build(),
    )
    .topic(BUNDLE)
    .push_type(PushType::Background)
    .priority(Priority::Normal);
    assert_eq!(codes(noisy), ["background-visible"]);

    let dur = Notification::builder(DEVICE, Payload::alert("hi"))
        .topic(BUNDLE)
        .expiration(Expiration::At(300));
    let lints = dur.build().unwrap().lints();
    assert_eq!(lints[0].code, "expiration-duration");
    assert!(
        lints[0].message.contains("1970") && lints[0].message.contains("+300"),
        "{}",
        lints[0]
    );
    let future = Notification::builder(DEVICE, Payload::alert("hi"))
        .topic(BUNDLE)
        .expiration(Expiration::after(std::time::Duration::from_secs(300)));
    assert!(codes(future).is_empty());

    let voip_bare = Notification::builder(DEVICE, Payload::alert("call"))
        .topic(BUNDLE)
        .push_type(PushType::Voip);
    assert_eq!(codes(voip_bare), ["topic-suffix"]);
    let alert_voip =
        Notification::builder(DEVICE, Payload::alert("x")).topic("com.example.app.voip");
    assert_eq!(codes(alert_voip), ["topic-suffix"]);
    let good = Notification::builder(DEVICE, Payload::alert("call"))
        .topic("com.example.app.voip")
        .push_type(PushType::Voip);
    assert!(codes(good).is_empty());
}

#[test]
fn endpoints_parse_and_alias_the_development_host() {
    // The old sandbox name is the sandbox, and is kept as typed (TLS checks
    // the name the user gave, as curl does).
    let dev: Endpoint = "https://api.development.push.apple.com".parse().unwrap();
    assert_eq!(dev.environment(), Some(Environment::Sandbox));
    assert_eq!(dev.host(), "api.development.push.apple.com");
    assert_eq!(
        Endpoint::sandbox().to_string(),
        "https://api.sandbox.push.apple.com:443"
    );
    assert_eq!(
        Endpoint::production().environment(),
        Some(Environment::Production)
    );
    assert_eq!(
        "development".parse::<Environment>().unwrap(),
        Environment::Sandbox
    );
    let e: Endpoint = "https://[::1]:2197/".parse().unwrap();
    assert_eq!(e.authority(), "[::1]:2197");
    for bad in ["http://127.0.0.1:80", "127.0.0.1:443", "https://host/path"] {
        assert_eq!(
            field_of(bad.parse::<Endpoint>().unwrap_err()),
            "endpoint",
            "{bad}"
        );
    }
}
