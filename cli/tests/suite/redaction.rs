//! Keys and tokens never show in Debug output or error messages.

use apns_provider::{Client, KeyId, SigningKey, TeamId, TokenCache, TokenSigner};

use crate::support::*;

#[test]
fn debug_of_keys_signers_tokens_caches_and_clients_is_redacted() {
    let pem = new_key_pem();
    let key = SigningKey::from_pem(pem.as_bytes()).unwrap();
    let signer = TokenSigner::new(
        key.clone(),
        KeyId::new(KEY_ID).unwrap(),
        TeamId::new(TEAM_ID).unwrap(),
    );
    let jwt = signer.sign_jwt(1_700_000_000);
    let cache = TokenCache::new(signer.clone());
    let token = cache.get();
    let builder = Client::builder()
        .no_proxy()
        .token_auth(key.clone(), KEY_ID, TEAM_ID);
    let builder_debug = format!("{builder:?}");
    let client = builder.build().unwrap();

    let secrets: Vec<String> = pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .map(str::to_string)
        .chain([jwt.clone(), token.expose_secret().to_string()])
        .chain(token.expose_secret().split('.').map(str::to_string))
        .collect();
    let outputs = [
        format!("{key:?}"),
        format!("{key:#?}"),
        format!("{signer:?}"),
        format!("{token:?}"),
        format!("{cache:?}"),
        format!("{client:?}"),
        format!("{client:#?}"),
        builder_debug,
    ];
    for out in &outputs {
        for secret in &secrets {
            assert!(!out.contains(secret.as_str()), "secret leaked in {out}");
        }
    }
    assert_eq!(outputs[0], "SigningKey([redacted])");
    assert_eq!(outputs[3], "ProviderToken([redacted])");
    assert!(outputs[2].contains("[redacted]") && outputs[2].contains(KEY_ID));
    assert!(outputs[5].contains("[redacted]") && outputs[5].contains(TEAM_ID));
}
