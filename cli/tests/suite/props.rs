//! Property tests: whatever the input, parsers return a value or a typed
//! error, never panic, and what can round-trip does.
//!
//! A few seconds in all with `cargo test`; for a longer run, set the number
//! of cases: `PROPTEST_CASES=100000 cargo test --test tests props`. (The
//! mock's crate-private token parse has its own in `src/auth/verify.rs`,
//! run by `cargo test --lib props`.)

use std::sync::OnceLock;

use apns_provider::auth::{decode_unverified, verify_token, TokenClaims};
use apns_provider::{
    ClientCertificate, DeviceToken, Error, KeyId, Notification, Payload, PublicKey, PushType,
    Reason, Response, SigningKey, TeamId, TokenSigner,
};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;

use crate::support::{self, certs, BUNDLE, DEVICE};

/// `cases` unless `PROPTEST_CASES` says otherwise.
fn config(cases: u32) -> ProptestConfig {
    let mut config = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = cases;
    }
    config
}

/// Any JSON value, nested a few levels.
fn json() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(serde_json::Value::from),
        ".{0,20}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(3, 40, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(serde_json::Value::Array),
            vec((".{0,8}", inner), 0..6)
                .prop_map(|kv| serde_json::Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// Replaces the byte at `at` with `with` (a different one), or cuts the
/// input there: the mutations a damaged file shows.
fn mutate(input: &[u8], at: Index, with: u8, cut: bool) -> Vec<u8> {
    let mut out = input.to_vec();
    if out.is_empty() {
        return out;
    }
    let i = at.index(out.len());
    if cut {
        out.truncate(i);
    } else if out[i] == with {
        out[i] = with.wrapping_add(1);
    } else {
        out[i] = with;
    }
    out
}

// ---------------------------------------------------------------- device tokens

fn device_token_text() -> impl Strategy<Value = String> {
    prop_oneof![
        ".*",
        "[0-9a-fA-F]{0,210}",
        "[0-9a-f]{190,210}",
        // Hex with one stray character.
        ("[0-9a-f]{0,100}", "[^0-9a-fA-F]", "[0-9a-f]{0,100}")
            .prop_map(|(a, junk, b)| format!("{a}{junk}{b}")),
    ]
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn device_tokens_are_valid_exactly_as_specified_and_round_trip(text in device_token_text()) {
        let valid = !text.is_empty()
            && text.len() <= DeviceToken::MAX_HEX_DIGITS
            && text.len() % 2 == 0
            && text.bytes().all(|b| b.is_ascii_hexdigit());
        match DeviceToken::new(&text) {
            Ok(token) => {
                prop_assert!(valid, "accepted {text:?}");
                prop_assert_eq!(token.as_str(), text.as_str());
                prop_assert_eq!(DeviceToken::new(token.as_str()).unwrap(), token);
            }
            Err(e) => {
                prop_assert!(!valid, "refused {text:?}: {e}");
                let is_device_token_error =
                    matches!(&e, Error::InvalidField { field: "device_token", .. });
                prop_assert!(is_device_token_error, "{e:?}");
                prop_assert!(e.is_invalid_input());
            }
        }
        // A notification built from any token never panics either (the
        // request path is built from it).
        let built = Notification::builder(&text, Payload::alert("hi")).topic(BUNDLE).build();
        prop_assert_eq!(built.is_ok(), valid);
    }
}

// ---------------------------------------------------------------- payloads

/// Text for an alert: ASCII, characters JSON escapes (`"`, `\`, controls)
/// and multi-byte ones, so encoded sizes differ from character counts.
fn alert_text(len: std::ops::Range<usize>) -> impl Strategy<Value = String> {
    prop_oneof![
        len.clone().prop_map(|n| "a".repeat(n)),
        (len, "[a\"\\\\\n\u{1}é€😀]{0,40}").prop_map(|(n, tail)| {
            let mut s = "a".repeat(n.saturating_sub(tail.len()));
            s.push_str(&tail);
            s
        }),
    ]
}

fn push_type() -> impl Strategy<Value = PushType> {
    proptest::sample::select(PushType::ALL.to_vec())
}

/// Checks `build()` against the payload's encoded size and the limit.
fn check_size(payload: Payload, push_type: PushType) -> Result<(), TestCaseError> {
    let size = payload.to_json_string().unwrap().len();
    let limit = push_type.payload_limit();
    let built = Notification::builder(DEVICE, payload)
        .topic(push_type.topic_for(BUNDLE))
        .push_type(push_type)
        .build();
    match built {
        Ok(n) => {
            prop_assert!(size <= limit, "{size} bytes accepted for {push_type:?}");
            prop_assert_eq!(n.payload().len(), size);
        }
        Err(Error::PayloadTooLarge {
            size: s, limit: l, ..
        }) => {
            prop_assert!(size > limit, "{size} bytes refused for {push_type:?}");
            prop_assert_eq!((s, l), (size, limit));
        }
        Err(e) => prop_assert!(false, "unexpected error: {e}"),
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn raw_payloads_are_json_objects_passed_through_byte_for_byte(
        bytes in prop_oneof![
            vec(any::<u8>(), 0..64),
            json().prop_map(|v| v.to_string().into_bytes()),
            json().prop_map(|v| serde_json::json!({"aps": {"alert": "hi"}, "x": v}).to_string().into_bytes()),
        ]
    ) {
        let is_object = serde_json::from_slice::<serde_json::Value>(&bytes)
            .is_ok_and(|v| v.is_object());
        match Payload::raw(bytes.clone()) {
            Ok(payload) => {
                prop_assert!(is_object);
                let json = payload.to_json_string().unwrap();
                prop_assert_eq!(json.as_bytes(), &bytes[..]);
            }
            Err(e) => {
                prop_assert!(!is_object);
                prop_assert!(e.is_invalid_input(), "{e:?}");
            }
        }
    }

    #[test]
    fn payloads_around_the_limits_build_exactly_when_they_fit(
        text in prop_oneof![alert_text(3990..4110), alert_text(5010..5130)],
        push_type in push_type(),
        raw: bool,
    ) {
        let payload = if raw {
            Payload::raw(serde_json::json!({"aps": {"alert": text}}).to_string()).unwrap()
        } else {
            Payload::builder().alert_text(text).build()
        };
        check_size(payload, push_type)?;
    }

    #[test]
    fn custom_data_of_any_shape_builds_exactly_when_it_fits(
        value in json(),
        padding in prop_oneof![0..200usize, 3900..4200usize, 4950..5250usize],
        push_type in push_type(),
    ) {
        let payload = Payload::builder()
            .alert_text("hi")
            .custom("data", value)
            .custom("pad", "p".repeat(padding))
            .build();
        check_size(payload, push_type)?;
    }
}

// ---------------------------------------------------------------- responses

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn any_response_body_is_kept_and_never_panics(
        status: u16,
        apns_id in proptest::option::of(".{0,40}"),
        body in prop_oneof![
            vec(any::<u8>(), 0..600),
            json().prop_map(|v| v.to_string().into_bytes()),
            "[ \t\r\n]{0,8}".prop_map(String::into_bytes),
        ],
    ) {
        let r = Response::from_parts(status, apns_id.clone(), None, &body);
        prop_assert_eq!(r.status(), status);
        prop_assert_eq!(r.apns_id(), apns_id.as_deref());
        let blank = body.iter().all(|b| b.is_ascii_whitespace());
        if blank {
            prop_assert_eq!((r.reason(), r.timestamp_millis()), (None, None));
        } else if serde_json::from_slice::<serde_json::Value>(&body).is_err() {
            // Not JSON: the text survives as the reason, never dropped.
            let kept = String::from_utf8_lossy(&body[..body.len().min(256)]).into_owned();
            prop_assert_eq!(r.reason(), Some(&Reason::Other(kept)));
        }
        let _ = r.describe();
    }

    #[test]
    fn well_formed_bodies_round_trip_reason_and_timestamp(
        reason in prop_oneof![
            proptest::sample::select(Reason::KNOWN.to_vec()).prop_map(|r| r.as_str().to_string()),
            ".{0,40}",
        ],
        timestamp: u64,
        status in 400u16..600,
    ) {
        let body = serde_json::json!({"reason": reason, "timestamp": timestamp}).to_string();
        let r = Response::from_parts(status, None, None, body.as_bytes());
        prop_assert_eq!(r.reason().map(|r| r.as_str()), Some(reason.as_str()));
        prop_assert_eq!(r.timestamp_millis(), Some(timestamp));
        let parsed: Reason = reason.parse().unwrap();
        prop_assert_eq!(r.reason(), Some(&parsed));
    }
}

// ---------------------------------------------------------------- provider tokens

fn token_key() -> &'static (SigningKey, PublicKey, PublicKey) {
    static KEY: OnceLock<(SigningKey, PublicKey, PublicKey)> = OnceLock::new();
    KEY.get_or_init(|| {
        let key = support::new_key();
        let public = key.public_key();
        (key, public, support::new_key().public_key())
    })
}

/// Three segments, each arbitrary text, base64 of arbitrary bytes, or
/// base64 (padded or not) of JSON shaped like a header or claims.
fn token_text() -> impl Strategy<Value = String> {
    let json = prop_oneof![
        ".*".prop_map(|kid| serde_json::json!({"alg": "ES256", "kid": kid}).to_string()),
        (".*", any::<i64>())
            .prop_map(|(iss, iat)| serde_json::json!({"iss": iss, "iat": iat}).to_string()),
        json().prop_map(|v| v.to_string()),
    ];
    let segment = prop_oneof![
        "[A-Za-z0-9_=+/-]{0,90}",
        vec(any::<u8>(), 0..80).prop_map(|b| URL_SAFE_NO_PAD.encode(b)),
        json.clone().prop_map(|j| URL_SAFE_NO_PAD.encode(j)),
        json.prop_map(|j| STANDARD.encode(j)),
    ];
    prop_oneof![
        ".*",
        (segment.clone(), segment.clone(), segment).prop_map(|(h, c, s)| format!("{h}.{c}.{s}")),
    ]
}

fn signer(kid: &str, iss: &str) -> TokenSigner {
    TokenSigner::new(
        token_key().0.clone(),
        KeyId::new(kid).unwrap(),
        TeamId::new(iss).unwrap(),
    )
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn any_token_text_decodes_or_fails_without_panicking(text in token_text()) {
        let _ = decode_unverified(&text);
        // Nothing but a signature made with the key verifies.
        prop_assert!(verify_token(&text, &token_key().1).is_err());
    }
}

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn a_signed_token_decodes_to_what_was_signed(
        kid in "[A-Z0-9]{10}",
        iss in "[A-Z0-9]{10}",
        iat: u64,
    ) {
        let jwt = signer(&kid, &iss).sign_jwt(iat);
        let expected = TokenClaims { alg: "ES256".into(), kid, iss, iat };
        prop_assert_eq!(decode_unverified(&jwt).unwrap(), expected.clone());
        prop_assert_eq!(verify_token(&jwt, &token_key().1).unwrap(), expected);
        prop_assert!(verify_token(&jwt, &token_key().2).is_err());
    }

    #[test]
    fn any_single_byte_change_to_the_signed_content_or_signature_fails(
        iat: u64,
        part in 0..3usize,
        at: Index,
        xor in 1..=255u8,
    ) {
        let jwt = signer(support::KEY_ID, support::TEAM_ID).sign_jwt(iat);
        let mut parts: Vec<Vec<u8>> =
            jwt.split('.').map(|p| URL_SAFE_NO_PAD.decode(p).unwrap()).collect();
        let i = at.index(parts[part].len());
        parts[part][i] ^= xor;
        let mutated = parts.iter().map(|p| URL_SAFE_NO_PAD.encode(p)).collect::<Vec<_>>().join(".");
        prop_assert!(verify_token(&mutated, &token_key().1).is_err(), "{mutated} verified");
    }
}

// ---------------------------------------------------------------- PEM and .p12

/// The lines of an input PEM that carry data (not its BEGIN/END markers,
/// even damaged ones).
fn body_lines(pem: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(pem)
        .lines()
        .map(str::trim)
        .filter(|l| l.len() >= 8 && !l.contains("---"))
        .map(str::to_string)
        .collect()
}

/// An error's text (`Display` and `Debug`) quotes no data line of the
/// input, nor any 12 characters of one.
fn quotes_nothing(result: Result<(), Error>, input: &[u8]) -> Result<(), TestCaseError> {
    let Err(e) = result else { return Ok(()) };
    let text = format!("{e} {e:?}");
    for line in body_lines(input) {
        let chars: Vec<char> = line.chars().collect();
        for window in chars.windows(12) {
            let piece: String = window.iter().collect();
            prop_assert!(!text.contains(&piece), "the error quotes {piece:?}: {text}");
        }
    }
    Ok(())
}

/// A PEM-looking text: a known or odd label and a body of base64 (of
/// random bytes) in lines, sometimes damaged.
fn pem_text() -> impl Strategy<Value = Vec<u8>> {
    let label = prop_oneof![
        Just("PRIVATE KEY".to_string()),
        Just("EC PRIVATE KEY".to_string()),
        Just("RSA PRIVATE KEY".to_string()),
        Just("PUBLIC KEY".to_string()),
        Just("CERTIFICATE".to_string()),
        Just("ENCRYPTED PRIVATE KEY".to_string()),
        "[A-Z ]{0,20}",
    ];
    (
        label,
        vec(any::<u8>(), 0..300),
        16..80usize,
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(label, body, width, end, crlf)| {
            let b64 = STANDARD.encode(body);
            let nl = if crlf { "\r\n" } else { "\n" };
            let mut pem = format!("-----BEGIN {label}-----{nl}");
            for chunk in b64.as_bytes().chunks(width) {
                pem.push_str(std::str::from_utf8(chunk).unwrap());
                pem.push_str(nl);
            }
            if end {
                pem.push_str(&format!("-----END {label}-----{nl}"));
            }
            pem.into_bytes()
        })
}

/// Real files to damage: a `.p8`, a certificate with its key in one PEM,
/// and a `.p12` (password `certs::PASSWORD`), made once.
struct Files {
    p8: Vec<u8>,
    combined_pem: Vec<u8>,
    p12: Vec<u8>,
}

fn files() -> &'static Files {
    static FILES: OnceLock<Files> = OnceLock::new();
    FILES.get_or_init(|| {
        let dir = support::temp_dir();
        let ca = certs::ca(dir.path());
        let cert = certs::push_cert(
            dir.path(),
            &ca,
            certs::Spec {
                rsa: false,
                ..Default::default()
            },
        );
        Files {
            p8: support::new_key_pem().into_bytes(),
            combined_pem: std::fs::read(&cert.combined_pem).unwrap(),
            p12: std::fs::read(&cert.p12_modern).unwrap(),
        }
    })
}

fn check_pem_loaders(pem: &[u8]) -> Result<(), TestCaseError> {
    quotes_nothing(SigningKey::from_pem(pem).map(drop), pem)?;
    quotes_nothing(PublicKey::from_pem(pem).map(drop), pem)?;
    quotes_nothing(ClientCertificate::from_pem(pem, None).map(drop), pem)?;
    // The same text as a separate key file next to a valid certificate.
    let cert = &files().combined_pem;
    quotes_nothing(ClientCertificate::from_pem(cert, Some(pem)).map(drop), pem)?;
    Ok(())
}

proptest! {
    #![proptest_config(config(128))]

    #[test]
    #[cfg_attr(missing_openssl, ignore = "needs openssl: apt install openssl")]
    fn pem_loaders_never_panic_nor_quote_the_input(
        pem in prop_oneof![vec(any::<u8>(), 0..400), pem_text()],
    ) {
        check_pem_loaders(&pem)?;
    }

    #[test]
    #[cfg_attr(missing_openssl, ignore = "needs openssl: apt install openssl")]
    fn damaged_real_pems_fail_without_quoting_them(
        which: bool,
        at: Index,
        with in prop_oneof![any::<u8>(), Just(b'\n'), Just(b'-'), Just(b'A')],
        cut: bool,
    ) {
        let original = if which { &files().p8 } else { &files().combined_pem };
        let pem = mutate(original, at, with, cut);
        check_pem_loaders(&pem)?;
    }
}

proptest! {
    // Each .p12 parse derives keys from the password: fewer cases.
    #![proptest_config(config(24))]

    #[test]
    fn p12_loading_never_panics_nor_quotes_the_password(
        data in prop_oneof![
            vec(any::<u8>(), 0..300),
            (any::<Index>(), any::<u8>(), any::<bool>())
                .prop_map(|(at, with, cut)| mutate(&files().p12, at, with, cut)),
        ],
        right_password: bool,
    ) {
        let password = if right_password { certs::PASSWORD } else { "wrong password 123" };
        if let Err(e) = ClientCertificate::from_pkcs12(&data, password) {
            let text = format!("{e} {e:?}");
            prop_assert!(!text.contains(password), "{text}");
        }
    }
}

#[test]
#[cfg_attr(missing_openssl, ignore = "needs openssl: apt install openssl")]
fn the_undamaged_files_load() {
    let files = files();
    assert!(SigningKey::from_pem(&files.p8).is_ok());
    assert!(ClientCertificate::from_pem(&files.combined_pem, None).is_ok());
    assert!(ClientCertificate::from_pkcs12(&files.p12, certs::PASSWORD).is_ok());
}

// ------------------------------------------------ tokens-file lines (specs)

/// A JSON line as a tokens file holds it: the spec's fields with values of
/// any type, sometimes right, plus a stray field now and then.
fn spec_line() -> impl Strategy<Value = String> {
    let field = prop_oneof![
        Just("device_token"),
        Just("payload"),
        Just("topic"),
        Just("push_type"),
        Just("priority"),
        Just("expiration"),
        Just("collapse_id"),
        Just("apns_id"),
        Just("typo"),
    ];
    let value = prop_oneof![
        json(),
        device_token_text().prop_map(serde_json::Value::from),
        Just(serde_json::json!({"aps": {"alert": "hi"}})),
        Just(serde_json::json!("alert")),
        Just(serde_json::json!(5)),
        Just(serde_json::json!("+1h")),
    ];
    vec((field, value), 0..6).prop_map(|fields| {
        let object: serde_json::Map<String, serde_json::Value> = fields
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        serde_json::Value::Object(object).to_string()
    })
}

/// A JSON line every field of which is right: it must parse, build and
/// round-trip.
fn valid_spec_line() -> impl Strategy<Value = String> {
    let text = "[a-zA-Z0-9 ,.!?'\u{e9}\u{1F600}]{0,40}";
    (
        "[0-9a-f]{64}",
        proptest::option::of(text.prop_map(|t| serde_json::json!({"aps": {"alert": t}}))),
        proptest::option::of("com\\.example\\.[a-z]{1,12}"),
        proptest::option::of(Just("alert")),
        proptest::option::of(prop_oneof![
            Just(serde_json::json!(5)),
            Just(serde_json::json!(10)),
            Just(serde_json::json!("5")),
        ]),
        proptest::option::of(prop_oneof![
            Just(serde_json::json!(0)),
            (1_700_000_000u64..1_900_000_000).prop_map(serde_json::Value::from),
            Just(serde_json::json!("+1h")),
            Just(serde_json::json!("+30m")),
        ]),
        proptest::option::of("[a-z0-9-]{1,64}"),
        proptest::option::of(any::<u128>().prop_map(|n| uuid::Uuid::from_u128(n).to_string())),
    )
        .prop_map(
            |(token, payload, topic, push_type, priority, expiration, collapse_id, apns_id)| {
                let mut object = serde_json::Map::new();
                object.insert("device_token".into(), token.into());
                let mut put = |k: &str, v: Option<serde_json::Value>| {
                    if let Some(v) = v {
                        object.insert(k.into(), v);
                    }
                };
                put("payload", payload);
                put("topic", topic.map(Into::into));
                put("push_type", push_type.map(Into::into));
                put("priority", priority);
                put("expiration", expiration);
                put("collapse_id", collapse_id.map(Into::into));
                put("apns_id", apns_id.map(Into::into));
                serde_json::Value::Object(object).to_string()
            },
        )
}

fn spec_defaults() -> apns_provider::wire::SpecDefaults {
    apns_provider::wire::SpecDefaults::builder()
        .topic(BUNDLE)
        .payload(Payload::alert("default"))
        .build()
        .unwrap()
}

/// What [`tokens_file_lines_parse_build_and_round_trip`] checks of one line:
/// whether it parsed as a spec, and whether that spec built.
fn check_spec_line(line: &str) -> Result<(bool, bool), TestCaseError> {
    use apns_provider::wire::NotificationSpec;
    let defaults = spec_defaults();
    let (mut parsed, mut built) = (false, false);
    if let Ok(spec) = serde_json::from_str::<NotificationSpec>(line) {
        parsed = true;
        // (Numbers in payloads may lose their last digit through
        // serde_json's float printing: compare the text fields.)
        let again: NotificationSpec =
            serde_json::from_str(&serde_json::to_string(&spec).unwrap()).unwrap();
        prop_assert_eq!(&again.device_token, &spec.device_token);
        prop_assert_eq!(&again.topic, &spec.topic);
        prop_assert_eq!(&again.push_type, &spec.push_type);
        prop_assert_eq!(&again.collapse_id, &spec.collapse_id);
        prop_assert_eq!(&again.apns_id, &spec.apns_id);
        if let Ok(n) = defaults.build(&spec) {
            built = true;
            prop_assert_eq!(
                Some(n.device_token().as_str()),
                spec.device_token.as_deref()
            );
        }
    }
    // A plain-token line.
    if let Ok(n) = defaults.build_for_token(line) {
        prop_assert_eq!(n.device_token().as_str(), line);
    }
    Ok((parsed, built))
}

/// The mixed lines of [`spec_line`] reach the checks past the parse: a
/// generator whose lines never parsed would check nothing.
#[test]
fn tokens_file_lines_often_parse_and_build() {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = spec_line();
    let (mut parsed, mut built) = (0, 0);
    const CASES: usize = 512;
    for _ in 0..CASES {
        let line = strategy.new_tree(&mut runner).unwrap().current();
        let (p, b) = check_spec_line(&line).unwrap_or_else(|e| panic!("{line}: {e}"));
        parsed += usize::from(p);
        built += usize::from(b);
    }
    // (About 45% parse; few build, their values being mostly wrong: the
    // lines that build are valid_tokens_file_lines_parse_build_and_round_trip's.)
    assert!(parsed >= CASES / 4, "{parsed} of {CASES} lines parsed");
    assert!(built >= 1, "{built} of {CASES} lines built");
}

proptest! {
    #![proptest_config(config(512))]

    /// Any JSON line, or any text, is a spec or an error, never a panic; a
    /// spec that builds carries the line's own device token, and a spec
    /// round-trips through its JSON form.
    #[test]
    fn tokens_file_lines_parse_build_and_round_trip(line in prop_oneof![spec_line(), ".{0,200}".prop_map(String::from)]) {
        check_spec_line(&line)?;
    }

    /// A line with every field right parses (strictly, as a tokens file
    /// reads it), builds with the line's own fields, and round-trips whole.
    #[test]
    fn valid_tokens_file_lines_parse_build_and_round_trip(line in valid_spec_line()) {
        use apns_provider::wire::NotificationSpec;
        let spec = NotificationSpec::from_json(line.as_bytes());
        prop_assert!(spec.is_ok(), "{line}: {:?}", spec.err());
        let spec = spec.unwrap();
        prop_assert_eq!(check_spec_line(&line)?, (true, true), "{}", line);
        let again: NotificationSpec =
            serde_json::from_str(&serde_json::to_string(&spec).unwrap()).unwrap();
        prop_assert_eq!(&again, &spec);
        let n = spec_defaults().build(&spec);
        prop_assert!(n.is_ok(), "{line}: {:?}", n.err());
        let n = n.unwrap();
        prop_assert_eq!(Some(n.device_token().as_str()), spec.device_token.as_deref());
        prop_assert_eq!(
            n.topic().map(|t| t.as_str()),
            Some(spec.topic.as_deref().unwrap_or(BUNDLE))
        );
        if let Some(id) = &spec.apns_id {
            let sent = n.apns_id().map(|i| i.to_string());
            prop_assert_eq!(sent.as_ref(), Some(id));
        }
        if let Some(id) = &spec.collapse_id {
            prop_assert_eq!(n.collapse_id().map(|c| c.as_str()), Some(id.as_str()));
        }
        if let Some(payload) = &spec.payload {
            let sent: serde_json::Value = serde_json::from_slice(n.payload().as_ref()).unwrap();
            prop_assert_eq!(&sent, payload);
        }
    }
}
