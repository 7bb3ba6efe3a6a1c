//! Credentials from the flags, the environment and the profile file: a
//! `.p8` key's token signer or a push certificate (with its password from
//! a variable, a file or the terminal), and the environment to use them
//! with.

use apns_provider::auth::check_ids_against_file_name;
use apns_provider::{Environment, KeyId, SigningKey, TeamId, TokenSigner};

use super::args::{CertArgs, KeyArgs, PasswordArgs};
use super::failure::Failure;

/// The credentials a command sends with.
#[derive(Clone)]
pub enum Credentials {
    /// A `.p8` key.
    Token(TokenSigner),
    /// A push certificate.
    Certificate(apns_provider::ClientCertificate),
}

/// Credentials plus what the profile (if any) says about defaults.
pub struct Resolved {
    pub credentials: Credentials,
    /// The profile's default topic.
    pub topic: Option<String>,
    /// The profile's environment: sandbox, production or both.
    pub environment: Option<String>,
    pub profile: Option<String>,
}

/// Resolves credentials with this precedence: command-line flags, then
/// environment variables (clap merges both, flags first), then the named
/// profile (`--key NAME` / `APNS_PROFILE`), then defaults.
pub fn resolve(key: &KeyArgs, cert: &CertArgs) -> Result<Resolved, Failure> {
    let profile = match &key.profile {
        Some(name) => {
            let path = super::paths::config_path()?;
            let file = apns_provider::keystore::ProfileFile::load(&path)?;
            let profile = file.get(name).map_err(|e| {
                // `--key AuthKey_X.p8`: a file where a stored key's name belongs.
                let looks_like_file = name.ends_with(".p8")
                    || name.contains('/')
                    || std::path::Path::new(name).is_file();
                if looks_like_file {
                    Failure::usage(format!(
                        "--key takes the name of a stored key (see `apns key list`); for the key file {name} use --key-file {name}"
                    ))
                } else {
                    Failure::from(e)
                }
            })?;
            Some((name.clone(), profile.clone()))
        }
        None => None,
    };
    let (topic, environment) = profile
        .as_ref()
        .map(|(_, p)| (p.topic.clone(), p.environment.clone()))
        .unwrap_or_default();
    let profile_name = profile.as_ref().map(|(n, _)| n.clone());
    let done = |credentials| Resolved {
        credentials,
        topic: topic.clone(),
        environment: environment.clone(),
        profile: profile_name.clone(),
    };
    // A certificate: from --cert, else from a certificate profile.
    if let Some(path) = &cert.cert {
        return Ok(done(Credentials::Certificate(load_certificate(
            path,
            cert.cert_key.as_deref(),
            &cert.password,
        )?)));
    }
    if let Some((name, p)) = &profile {
        if let (Some(c), None) = (&p.certificate, &key.file.key_file) {
            // A PEM pasted in place of a path is refused, never echoed.
            let inlined = |field: &str, value: &str| {
                apns_provider::keystore::looks_like_secret(value).then(|| {
                    Failure::usage(format!(
                        "the key inlined in profile {name:?} ({field}) is refused: a profile says where a key lives, never what it is; put the PEM in a file only you can read (chmod 600) and write {field} = \"file:PATH\""
                    ))
                })
            };
            if let Some(refused) = inlined("certificate", c) {
                return Err(refused);
            }
            let path = std::path::PathBuf::from(c.strip_prefix("file:").unwrap_or(c));
            let key_path = match &p.certificate_key {
                Some(k) => {
                    if let Some(refused) = inlined("certificate_key", k) {
                        return Err(refused);
                    }
                    Some(std::path::PathBuf::from(
                        k.strip_prefix("file:").unwrap_or(k),
                    ))
                }
                None => None,
            };
            let mut password = PasswordArgs::default();
            match p.password.as_deref() {
                Some("prompt") | None => {}
                Some(pw) => {
                    if let Some(var) = pw.strip_prefix("env:") {
                        password.cert_password_env = Some(var.to_string());
                    } else if let Some(file) = pw.strip_prefix("file:") {
                        password.cert_password_file = Some(file.into());
                    } else {
                        // Whatever it is, it may be the password itself:
                        // never repeat it.
                        return Err(Failure::usage(format!(
                            "the password inlined in profile {name:?} is refused (and not shown): a profile says where a password lives; write password = \"env:VAR\", \"file:PATH\" (a file only you can read) or \"prompt\""
                        )));
                    }
                }
            }
            return Ok(done(Credentials::Certificate(load_certificate(
                &path,
                key_path.as_deref(),
                &password,
            )?)));
        }
        // A password written in a key profile is for no one (only a .p12
        // has one) and may be a secret: refused like a certificate's.
        if let Some(pw) = p.password.as_deref() {
            let pointer = pw == "prompt" || pw.starts_with("env:") || pw.starts_with("file:");
            if !pointer {
                return Err(Failure::usage(format!(
                    "the password inlined in profile {name:?} is refused (and not shown): a key profile needs no password (only a .p12 has one), and a profile says where a password lives, never what it is; remove it"
                )));
            }
        }
    }
    // A token key: from --key-file, else from the profile's store.
    let (signing_key, key_file) = match (&key.file.key_file, &profile) {
        (Some(path), _) => (SigningKey::from_file(path)?, Some(path.clone())),
        (None, Some((name, p))) => {
            let location = p.key_location()?;
            let pem = apns_provider::keystore::load_key_pem(&location, name, apns_provider::keystore::Keychain::system)?;
            let key = SigningKey::from_pem(pem.as_bytes()).map_err(|e| {
                Failure::usage(format!("profile {name}: the key in {location} is unusable: {e}"))
            })?;
            (key, None)
        }
        (None, None) => {
            return Err(Failure::usage(
                "no credentials: give --key NAME (a stored key, see `apns key list`), or --key-file AuthKey_<KEYID>.p8 --team-id TEAM, or --cert PATH",
            ))
        }
    };
    let profile_field = |f: fn(&apns_provider::keystore::Profile) -> Option<String>| {
        profile.as_ref().and_then(|(_, p)| f(p))
    };
    let team = key
        .file
        .team_id
        .clone()
        .or_else(|| profile_field(|p| p.team_id.clone()))
        .ok_or_else(|| {
            Failure::usage(
                "--team-id is required: the 10-character Team ID from Apple Developer > Membership",
            )
        })?;
    let team_id = TeamId::new(team)?;
    let key_id = match key
        .file
        .key_id
        .clone()
        .or_else(|| profile_field(|p| p.key_id.clone()))
    {
        Some(kid) => KeyId::new(kid)?,
        None => key_file
            .as_deref()
            .and_then(KeyId::from_apple_file_name)
            .ok_or_else(|| {
                Failure::usage("--key-id is required: the key file is not named AuthKey_<KEYID>.p8")
            })?,
    };
    if let Some(path) = &key_file {
        check_ids_against_file_name(&team_id, &key_id, path)?;
    }
    let mut signer = TokenSigner::new(signing_key, key_id, team_id);
    // The profile's scope is its key's: a --key-file is another key.
    if let (None, Some((name, p))) = (&key_file, &profile) {
        if let Some(topics) = &p.topics {
            for t in topics {
                // The profile is wrong, not a flag: say which line to fix.
                apns_provider::Topic::new(t).map_err(|e| {
                    Failure::usage(format!(
                        "profile {name}: its topics list has a bad entry: {e}"
                    ))
                })?;
            }
            signer = signer.limited_to_topics(topics.iter().cloned());
        }
    }
    Ok(done(Credentials::Token(signer)))
}

/// The environment to use: the flag (or APNS_ENV), else the profile's, else
/// production; a key limited to one environment is not used with the other.
pub fn pick_environment(
    flag: Option<Environment>,
    resolved: &Resolved,
) -> Result<Environment, Failure> {
    let profile_env = resolved.environment.as_deref().filter(|e| *e != "both");
    let chosen = match (flag, profile_env) {
        (Some(env), _) => env,
        (None, Some(env)) => env.parse()?,
        (None, None) => Environment::Production,
    };
    if let (Some(limit), Some(name)) = (profile_env, &resolved.profile) {
        let limit: Environment = limit.parse()?;
        if limit != chosen {
            return Err(Failure::usage(format!(
                "profile {name} is limited to {limit}; drop --env {chosen} or use a key for {chosen}"
            )));
        }
    }
    Ok(chosen)
}

/// A `.p8` key's signer (`apns token`): a certificate profile is refused.
pub fn load_signer(key: &KeyArgs) -> Result<TokenSigner, Failure> {
    // Said here, in token terms: `--cert` is not a flag of `apns token`.
    if key.profile.is_none() && key.file.key_file.is_none() {
        return Err(Failure::usage(
            "no key: give --key NAME (a stored key, see `apns key list`) or --key-file AuthKey_<KEYID>.p8 --team-id TEAM",
        ));
    }
    match resolve(key, &CertArgs::default())?.credentials {
        Credentials::Token(signer) => Ok(signer),
        Credentials::Certificate(_) => Err(Failure::usage(
            "this profile holds a certificate; provider tokens need a .p8 key",
        )),
    }
}

/// Loads a certificate. The .p12 password comes from an environment
/// variable or a file, or is asked for on a terminal: never from an argument
/// that would land in shell history.
pub fn load_certificate(
    path: &std::path::Path,
    key: Option<&std::path::Path>,
    source: &PasswordArgs,
) -> Result<apns_provider::ClientCertificate, Failure> {
    use std::io::IsTerminal;
    let password: Option<zeroize::Zeroizing<String>> = match (
        source.cert_password_env.as_deref(),
        source.cert_password_file.as_deref(),
    ) {
        (Some(var), _) => Some(zeroize::Zeroizing::new(std::env::var(var).map_err(
            |_| {
                Failure::usage(format!(
                    "--cert-password-env {var}: that environment variable is not set"
                ))
            },
        )?)),
        (None, Some(file)) => {
            let text = std::fs::read_to_string(file).map_err(|e| {
                Failure::usage(format!(
                    "cannot read the password file {}: {e}",
                    file.display()
                ))
            })?;
            Some(zeroize::Zeroizing::new(
                text.lines().next().unwrap_or_default().to_string(),
            ))
        }
        (None, None) => None,
    };
    let load = |pw: Option<&str>| apns_provider::ClientCertificate::from_file(path, key, pw);
    match load(password.as_deref().map(|p| p.as_str())) {
        // The empty password failed and none was given: ask a terminal, or
        // say that none was given (not that it was wrong).
        Err(e)
            if password.is_none()
                && e.credential_problem()
                    == Some(apns_provider::CredentialProblem::WrongPassword) =>
        {
            if !std::io::stdin().is_terminal() {
                return Err(Failure::usage(format!(
                    "{} is protected by a password and none was given: use --cert-password-env VAR or --cert-password-file FILE (or run on a terminal to be asked)",
                    path.display()
                )));
            }
            let typed = zeroize::Zeroizing::new(
                rpassword::prompt_password(format!("Password for {}: ", path.display()))
                    .map_err(|e| Failure::usage(format!("cannot read the password: {e}")))?,
            );
            Ok(load(Some(&typed))?)
        }
        other => Ok(other?),
    }
}
