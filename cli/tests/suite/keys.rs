//! Key loading, ids and the exact token format, checked by an independent
//! verifier (`ring`), not by the signer's own code.

use apns_provider::auth::{check_ids_against_file_name, decode_unverified};
use apns_provider::{KeyId, PublicKey, SigningKey, TeamId, TokenSigner};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use crate::support::*;

fn signer(key: SigningKey) -> TokenSigner {
    TokenSigner::new(
        key,
        KeyId::new(KEY_ID).unwrap(),
        TeamId::new(TEAM_ID).unwrap(),
    )
}

#[test]
fn token_has_exactly_apples_header_claims_and_raw_signature() {
    let key = new_key();
    let public = key.public_key();
    let jwt = signer(key).sign_jwt(1_700_000_000);
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3);
    for p in &parts {
        assert!(!p.contains('='), "no padding");
        assert!(!p.contains('+') && !p.contains('/'), "base64url alphabet");
    }
    let header = URL_SAFE_NO_PAD.decode(parts[0]).unwrap();
    let claims = URL_SAFE_NO_PAD.decode(parts[1]).unwrap();
    // Byte for byte: no `typ` (jsonwebtoken's Header::new adds one), no
    // spaces, Apple's order.
    assert_eq!(
        String::from_utf8(header.clone()).unwrap(),
        format!(r#"{{"alg":"ES256","kid":"{KEY_ID}"}}"#)
    );
    assert_eq!(
        String::from_utf8(claims.clone()).unwrap(),
        format!(r#"{{"iss":"{TEAM_ID}","iat":1700000000}}"#)
    );
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&header).unwrap(),
        serde_json::json!({"alg": "ES256", "kid": KEY_ID})
    );
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&claims).unwrap(),
        serde_json::json!({"iss": TEAM_ID, "iat": 1_700_000_000u64})
    );
    let sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    assert_eq!(sig.len(), 64, "raw r||s, not DER");

    // Verified by ring, a different ECDSA implementation from the signer's.
    let input = format!("{}.{}", parts[0], parts[1]);
    ring::signature::UnparsedPublicKey::new(
        &ring::signature::ECDSA_P256_SHA256_FIXED,
        public.to_sec1_bytes(),
    )
    .verify(input.as_bytes(), &sig)
    .expect("ring verifies the signature");

    // And a tampered token does not verify.
    let tampered = format!(
        "{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(br#"{"iss":"OTHERTEAM1","iat":1700000000}"#)
    );
    assert!(ring::signature::UnparsedPublicKey::new(
        &ring::signature::ECDSA_P256_SHA256_FIXED,
        public.to_sec1_bytes(),
    )
    .verify(tampered.as_bytes(), &sig)
    .is_err());
}

/// Set in the child process of the test below.
const FOREIGN_PROVIDER_CHILD: &str = "APNS_TEST_FOREIGN_JWT_PROVIDER";

/// jsonwebtoken's crypto provider is process-wide. When the application has
/// installed its own before our first token, ours is not installed, theirs
/// is never called, and tokens are byte for byte the same; when it installs
/// one after, it gets `Err` rather than a panic and tokens keep working.
/// The first case needs a process where nothing installed ours yet: the
/// test runs itself again in a child process.
#[test]
fn another_jwt_crypto_provider_in_the_process_changes_nothing() {
    use jsonwebtoken::crypto::{CryptoProvider, KeyUtils};

    // A provider whose every entry point panics: proof that it is unused.
    static FOREIGN: CryptoProvider = CryptoProvider {
        signer_factory: |_, _| panic!("the application's JWT signer was called"),
        verifier_factory: |_, _| panic!("the application's JWT verifier was called"),
        key_utils: KeyUtils::new_unimplemented(),
    };
    let signer_of = |pem: &str| signer(SigningKey::from_pem(pem.as_bytes()).unwrap());

    let Ok(pem) = std::env::var(FOREIGN_PROVIDER_CHILD) else {
        // Parent: ours is installed by the first token...
        let pem = new_key_pem();
        let jwt = signer_of(&pem).sign_jwt(1_700_000_000);
        // ...so an application installing one later gets Err, not a panic.
        assert!(FOREIGN.install_default().is_err());
        assert_eq!(signer_of(&pem).sign_jwt(1_700_000_000), jwt);
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "suite::keys::another_jwt_crypto_provider_in_the_process_changes_nothing",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(FOREIGN_PROVIDER_CHILD, &pem)
            .env("APNS_TEST_EXPECTED_JWT", &jwt)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "child process: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        return;
    };
    // Child: the application installs its provider before any token.
    FOREIGN.install_default().unwrap();
    let key = SigningKey::from_pem(pem.as_bytes()).unwrap();
    let public = key.public_key();
    let jwt = signer(key).sign_jwt(1_700_000_000);
    // RFC 6979 signatures are deterministic: the very same token.
    assert_eq!(jwt, std::env::var("APNS_TEST_EXPECTED_JWT").unwrap());
    let claims = apns_provider::auth::verify_token(&jwt, &public).unwrap();
    assert_eq!((claims.kid.as_str(), claims.iat), (KEY_ID, 1_700_000_000));
    assert_eq!(decode_unverified(&jwt).unwrap(), claims);
    assert!(apns_provider::auth::verify_token(&jwt, &new_key().public_key()).is_err());
    // The mock verifies it too (strictly), and the provider is still theirs.
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let key = SigningKey::from_pem(pem.as_bytes()).unwrap();
        let mock = mock_for(&key).strict_tokens(true).start().await.unwrap();
        let client = client_for(&mock, key).build().unwrap();
        let n = apns_provider::Notification::builder(DEVICE, apns_provider::Payload::alert("hi"))
            .topic(BUNDLE)
            .build()
            .unwrap();
        assert!(client.send(&n).await.unwrap().is_accepted());
    });
    assert!(std::ptr::eq(
        CryptoProvider::try_get_default().unwrap(),
        &FOREIGN
    ));
}

#[test]
fn decode_shows_header_and_claims() {
    let jwt = signer(new_key()).sign_jwt(1_700_000_123);
    let claims = decode_unverified(&jwt).unwrap();
    assert_eq!(claims.kid, KEY_ID);
    assert_eq!(claims.iss, TEAM_ID);
    assert_eq!(claims.iat, 1_700_000_123);
    assert_eq!(claims.alg, "ES256");
    assert!(decode_unverified("not.a-jwt").is_err());
}

/// Tokens verify with PyJWT (the reference JWT library most teams use).
/// CI installs it (`pip install pyjwt cryptography`).
#[test]
#[cfg_attr(
    missing_pyjwt,
    ignore = "needs python3 with PyJWT: pip install pyjwt cryptography"
)]
fn pyjwt_verifies_our_tokens() {
    let key = new_key();
    let public_pem = key.public_key().to_pem();
    let jwt = signer(key).sign_jwt(1_700_000_000);
    let script = r#"
import jwt, sys
token, key = sys.argv[1], sys.argv[2]
claims = jwt.decode(token, key, algorithms=["ES256"], options={"verify_iat": False})
header = jwt.get_unverified_header(token)
assert header == {"alg": "ES256", "kid": sys.argv[3]}, header
assert claims == {"iss": sys.argv[4], "iat": 1700000000}, claims
print("ok")
"#;
    let out = program(Prerequisite::PyJwt)
        .args(["-c", script, &jwt, &public_pem, KEY_ID, TEAM_ID])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok");
}

#[test]
fn loads_pkcs8_and_sec1_keys() {
    let pem = new_key_pem();
    let key = SigningKey::from_pem(pem.as_bytes()).unwrap();
    // The same key as SEC1 (what `openssl ecparam -genkey` writes).
    let der: Vec<u8> = {
        use p256::pkcs8::DecodePrivateKey;
        let secret = p256::SecretKey::from_pkcs8_pem(&pem).unwrap();
        secret.to_sec1_der().unwrap().to_vec()
    };
    let sec1 = pem_block("EC PRIVATE KEY", &der);
    let key2 = SigningKey::from_pem(sec1.as_bytes()).unwrap();
    assert_eq!(key.public_key(), key2.public_key());
}

fn pem_block(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let body: Vec<String> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| String::from_utf8(c.to_vec()).unwrap())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        body.join("\n")
    )
}

fn key_error(pem: &str) -> String {
    SigningKey::from_pem(pem.as_bytes())
        .unwrap_err()
        .to_string()
}

#[test]
fn wrong_key_files_say_what_was_found_and_expected() {
    let cert = rcgen::generate_simple_self_signed(vec!["x".into()]).unwrap();
    let msg = key_error(&cert.cert.pem());
    assert!(
        msg.contains("certificate") && msg.contains("expected"),
        "{msg}"
    );

    let p384 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
    let msg = key_error(&p384.serialize_pem());
    assert!(
        msg.contains("P-384") && msg.contains("expected P-256"),
        "{msg}"
    );

    let ed = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let msg = key_error(&ed.serialize_pem());
    assert!(msg.contains("Ed25519"), "{msg}");

    let msg = key_error("");
    assert!(
        msg.contains("empty file") && msg.contains("BEGIN PRIVATE KEY"),
        "{msg}"
    );

    let msg = key_error("hello world");
    assert!(msg.contains("no PEM block"), "{msg}");

    let msg = key_error(
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n",
    );
    assert!(msg.contains("encrypted"), "{msg}");

    let truncated: String = new_key_pem().lines().take(2).collect::<Vec<_>>().join("\n");
    let msg = key_error(&truncated);
    assert!(msg.contains("damaged") || msg.contains("expected"), "{msg}");

    let public = new_key().public_key().to_pem();
    let msg = key_error(&public);
    assert!(msg.contains("public key"), "{msg}");
}

#[test]
fn key_file_errors_name_the_file_and_never_echo_the_key() {
    let dir = temp_dir();
    let missing = dir.path().join("AuthKey_NOPE.p8");
    let msg = SigningKey::from_file(&missing).unwrap_err().to_string();
    assert!(msg.contains("AuthKey_NOPE.p8"), "{msg}");

    let pem = new_key_pem();
    let broken = pem.replace("BEGIN PRIVATE KEY", "BEGIN PRIVATE KEYS");
    let path = write_file(dir.path(), "broken.p8", broken.as_bytes());
    let msg = SigningKey::from_file(&path).unwrap_err().to_string();
    let body_line = pem.lines().nth(1).unwrap();
    assert!(!msg.contains(body_line), "key material leaked: {msg}");
    assert!(msg.contains("broken.p8"), "{msg}");
}

#[test]
fn public_keys_load_from_spki_or_private_pem() {
    let key = new_key();
    let from_spki = PublicKey::from_pem(key.public_key().to_pem().as_bytes()).unwrap();
    assert_eq!(from_spki, key.public_key());
    assert!(key.public_key().fingerprint().starts_with("SHA256:"));
}

#[test]
fn ids_are_validated_with_a_clear_message() {
    assert!(TeamId::new("ABCDE12345").is_ok());
    for bad in ["", "ABC", "ABCDE123456", "ABCDE-1234", "ABCDÉ1234"] {
        let e = TeamId::new(bad).unwrap_err().to_string();
        assert!(e.contains("team_id"), "{e}");
        let e = KeyId::new(bad).unwrap_err().to_string();
        assert!(e.contains("key_id") && e.contains("AuthKey_"), "{e}");
    }
}

#[test]
fn swapped_ids_are_caught_from_the_file_name() {
    let team = TeamId::new("KEYID12345").unwrap();
    let kid = KeyId::new("TEAM123456").unwrap();
    let e = check_ids_against_file_name(&team, &kid, "AuthKey_KEYID12345.p8")
        .unwrap_err()
        .to_string();
    assert!(e.contains("swapped"), "{e}");
    let ok = KeyId::new("KEYID12345").unwrap();
    assert!(check_ids_against_file_name(
        &TeamId::new("TEAM123456").unwrap(),
        &ok,
        "AuthKey_KEYID12345.p8"
    )
    .is_ok());
    assert!(check_ids_against_file_name(&team, &kid, "mykey.p8").is_ok());
}

#[test]
fn errors_about_damaged_pems_never_quote_the_key() {
    let pem = new_key_pem();
    let body: Vec<&str> = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    // A PEM squeezed onto one line, as secret stores sometimes keep it.
    let one_line = pem.lines().collect::<String>();
    // A body with a damaged character, and a BEGIN line with garbage after it.
    let damaged = pem.replacen(&body[0][..8], "!!!!!!!!", 1);
    let glued = pem.replacen(
        "-----BEGIN PRIVATE KEY-----\n",
        "-----BEGIN PRIVATE KEY-----",
        1,
    );
    for text in [one_line, damaged, glued] {
        let msg = SigningKey::from_pem(text.as_bytes())
            .unwrap_err()
            .to_string();
        for line in &body {
            assert!(!msg.contains(&line[..12]), "key material in: {msg}");
        }
    }
    // Ids are echoed short.
    let msg = TeamId::new("x".repeat(300)).unwrap_err().to_string();
    assert!(msg.len() < 300, "{msg}");
}

/// A topic-specific key (Apple, 2025) refuses, before anything is sent,
/// any topic outside its scope and names the scope: in the library
/// (`TokenSigner::limited_to_topics`) and from a profile's `topics`, where
/// the refusal exits 2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_specific_key_refuses_other_topics_before_sending() {
    use apns_provider::{Client, Error, Notification, Payload};
    let key = new_key();
    let mock = mock_for(&key).start().await.unwrap();
    let client = Client::builder()
        .no_proxy()
        .endpoint(mock.endpoint())
        .webpki_roots(false)
        .add_root_certificates_pem(mock.ca_pem().unwrap().as_bytes())
        .token_signer(signer(key.clone()).limited_to_topics([BUNDLE]))
        .build()
        .unwrap();
    let to = |topic: &str| {
        Notification::builder(DEVICE, Payload::alert("hi"))
            .topic(topic)
            .build()
            .unwrap()
    };
    assert!(client.send(&to(BUNDLE)).await.unwrap().is_accepted());
    for outside in [
        "com.example.other",
        "com.example.application",
        "com.example",
    ] {
        let e = client.send(&to(outside)).await.unwrap_err();
        assert!(
            matches!(e, Error::InvalidField { field: "topic", .. }),
            "{outside}: {e}"
        );
        assert!(
            e.to_string().contains("outside the key's scope") && e.to_string().contains(BUNDLE),
            "{e}"
        );
    }
    assert_eq!(mock.stats().requests, 1, "only the topic in scope was sent");

    // From a profile: `topics = [...]` next to the key.
    let dir = temp_dir();
    let key_path = write_file(dir.path(), "scoped.p8", new_key_pem().as_bytes());
    let profiles = format!(
        "[profiles.scoped]\nteam_id = \"{TEAM_ID}\"\nkey_id = \"{KEY_ID}\"\nkey = \"file:{}\"\ntopics = [\"{BUNDLE}\"]\n",
        key_path.display()
    );
    let config = write_file(dir.path(), "keys.toml", profiles.as_bytes());
    let mock_ca = dir.path().join("mock-ca.pem");
    std::fs::write(&mock_ca, mock.ca_pem().unwrap()).unwrap();
    let mut send = apns_against(&["send"], &At::new(mock.endpoint(), &mock_ca));
    send.env("APNS_CONFIG", &config)
        .args(["--key", "scoped", "--topic", "com.example.other"])
        .args(["--alert", "hi", DEVICE]);
    let out = run(send).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("outside the key's scope") && stderr(&out).contains(BUNDLE),
        "{}",
        stderr(&out)
    );
    assert_eq!(mock.stats().requests, 1, "the CLI sent nothing either");
}

/// `apns mock` can be told a key's scope, and answers as Apple does: a
/// key limited to production used against a sandbox mock gets 403
/// BadEnvironmentKeyIdInToken, and a topic outside `--key-topics` gets 400
/// TopicDisallowed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mock_enforces_a_keys_environment_and_topics() {
    let dir = temp_dir();
    let key_path = write_file(
        dir.path(),
        &format!("AuthKey_{KEY_ID}.p8"),
        new_key_pem().as_bytes(),
    );
    let trusted = format!("{KEY_ID}={TEAM_ID}:{}@production", key_path.display());
    let scoped = format!("{KEY_ID}={BUNDLE}");
    for (env, topic, reason) in [
        ("sandbox", BUNDLE, "BadEnvironmentKeyIdInToken"),
        ("production", "com.example.other", "TopicDisallowed"),
        ("production", BUNDLE, ""),
    ] {
        let mut cmd = apns();
        cmd.args(["mock", "--env", env, "--trust-key", &trusted])
            .args(["--key-topics", &scoped]);
        let mock = spawn_mock(cmd);
        let mut send = apns_against(&["send"], &mock);
        send.arg("--key-file")
            .arg(&key_path)
            .args(["--team-id", TEAM_ID, "--env", env, "--topic", topic])
            .args(["--alert", "hi", "--output", "json", DEVICE]);
        let out = run(send).await;
        let v: serde_json::Value = serde_json::from_str(stdout(&out).trim())
            .unwrap_or_else(|e| panic!("{e}: {}{}", stdout(&out), stderr(&out)));
        if reason.is_empty() {
            assert_eq!(v["status"], 200, "{env} {topic}: {v}");
        } else {
            assert_eq!(v["reason"], reason, "{env} {topic}: {v}");
        }
        if reason == "BadEnvironmentKeyIdInToken" {
            // Said to a person: what is wrong with the key.
            let mut send = apns_against(&["send"], &mock);
            send.arg("--key-file")
                .arg(&key_path)
                .args(["--team-id", TEAM_ID, "--env", env, "--topic", topic])
                .args(["--alert", "hi", DEVICE]);
            let out = run(send).await;
            assert!(
                stdout(&out).contains("hint: this key is scoped to the other environment"),
                "{}",
                stdout(&out)
            );
        }
        mock.stop().await;
    }
    // A scope for a key the mock does not trust is a mistake, said at once.
    let mut cmd = apns();
    cmd.args(["mock", "--key-topics", "OTHERKEY01=com.example.app"]);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no --trust-key has key id OTHERKEY01"),
        "{}",
        stderr(&out)
    );
}
