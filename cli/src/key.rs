//! `apns key`: stored keys and their profiles.

use std::io::IsTerminal;
use std::path::PathBuf;

use apns_provider::keystore::{self, load_key_pem, KeyLocation, Keychain, Profile, ProfileFile};
use apns_provider::{KeyId, SigningKey, TeamId};

use super::args::{KeyCommand, KeyFileArgs, Output, StoreKind};
use super::failure::{exit, Failure};
use super::paths::{config_path, data_dir};

pub fn run(command: KeyCommand) -> Result<u8, Failure> {
    let path = config_path()?;
    let mut file = ProfileFile::load(&path)?;
    match command {
        KeyCommand::Add {
            name,
            key,
            environment,
            topic,
            store,
        } => {
            if file.profiles.contains_key(&name) {
                file.insert_new(&name, Profile::default())?; // says how to rotate or remove
            }
            let key_file = required_key_file(&key, "add")?;
            let team = key.team_id.as_deref().map(TeamId::new).transpose()?;
            let (key, pem, kid) = read_new_key(&key_file, key.key_id.as_deref())?;
            if let Some(team) = &team {
                apns_provider::auth::check_ids_against_file_name(team, &kid, &key_file)?;
            } else {
                eprintln!("apns: warning: no --team-id: give it when sending (--team-id or APNS_TEAM_ID), or add team_id to the profile");
            }
            let environment = check_environment(&environment)?;
            let topic = topic.topic;
            if let Some(t) = &topic {
                apns_provider::Topic::new(t)?;
            }
            let location = put_secret(store, &name, &pem)?;
            file.insert_new(
                &name,
                Profile {
                    team_id: team.as_ref().map(|t| t.to_string()),
                    key_id: Some(kid.to_string()),
                    environment: Some(environment),
                    topic,
                    key: Some(location.to_string()),
                    ..Profile::default()
                },
            )?;
            file.save(&path)?;
            eprintln!(
                "apns: stored key {kid} (team {}, {}) in {}; profile {name} written to {}",
                team.as_ref()
                    .map_or("not set".to_string(), |t| t.to_string()),
                key.public_key().fingerprint(),
                describe(&location),
                path.display()
            );
            eprintln!("apns: send with: apns send --key {name} --alert hi DEVICE_TOKEN");
            Ok(exit::OK)
        }
        KeyCommand::List { output } => {
            let rows: Vec<serde_json::Value> =
                file.profiles.iter().map(|(n, p)| summary(n, p)).collect();
            match output.output {
                Output::Json => {
                    for row in &rows {
                        println!("{row}");
                    }
                }
                Output::Human => {
                    if rows.is_empty() {
                        eprintln!("apns: no profiles in {}; add one with `apns key add NAME --key-file AuthKey_<KEYID>.p8 --team-id TEAM`", path.display());
                    }
                    // Columns as wide as their longest value (a file store's
                    // path can be long).
                    let keys = [
                        "name",
                        "team_id",
                        "key_id",
                        "environment",
                        "store",
                        "fingerprint",
                    ];
                    let mut table =
                        vec![["NAME", "TEAM", "KEY ID", "ENV", "STORE", "FINGERPRINT"]
                            .map(String::from)];
                    for r in &rows {
                        table.push(keys.map(|k| r[k].as_str().unwrap_or("-").to_string()));
                    }
                    let widths: Vec<usize> = (0..keys.len())
                        .map(|i| {
                            table
                                .iter()
                                .map(|row| row[i].chars().count())
                                .max()
                                .unwrap_or(0)
                        })
                        .collect();
                    for row in &table {
                        let cells: Vec<String> = row
                            .iter()
                            .zip(&widths)
                            .map(|(cell, w)| format!("{cell:<w$}"))
                            .collect();
                        println!("{}", cells.join("  ").trim_end());
                    }
                }
            }
            Ok(exit::OK)
        }
        KeyCommand::Show { name, output } => {
            let profile = file.get(&name)?.clone();
            let mut row = summary(&name, &profile);
            let public = public_pem(&name, &profile)?;
            match output.output {
                Output::Json => {
                    row["public_key_pem"] = public.clone().into();
                    println!("{row}");
                }
                Output::Human => {
                    for key in [
                        "name",
                        "team_id",
                        "key_id",
                        "environment",
                        "topic",
                        "store",
                        "fingerprint",
                    ] {
                        println!("{key:<12} {}", row[key].as_str().unwrap_or("-"));
                    }
                    if let Some(topics) = row["topics"].as_array() {
                        let topics: Vec<&str> = topics.iter().filter_map(|t| t.as_str()).collect();
                        println!(
                            "{:<12} {} (a topic-specific key)",
                            "topics",
                            topics.join(", ")
                        );
                    }
                    print!("{public}");
                }
            }
            Ok(exit::OK)
        }
        KeyCommand::Rotate { name, key } => {
            let profile = file.get(&name)?.clone();
            let key_file = required_key_file(&key, "rotate")?;
            if let (Some(given), Some(team)) = (&key.team_id, &profile.team_id) {
                if given != team {
                    return Err(Failure::usage(format!(
                        "--team-id {given} (or APNS_TEAM_ID) is not profile {name:?}'s team ({team}): a rotated key belongs to the same team"
                    )));
                }
            }
            let location = profile.key_location()?;
            let (key, pem, kid) = read_new_key(&key_file, key.key_id.as_deref())?;
            if let Some(team) = &profile.team_id {
                apns_provider::auth::check_ids_against_file_name(
                    &TeamId::new(team)?,
                    &kid,
                    &key_file,
                )?;
            }
            let new_location = match &location {
                KeyLocation::Keychain => {
                    Keychain::system()?.store(&name, &pem)?;
                    location.clone()
                }
                KeyLocation::File(old) => {
                    // Only files in the store are replaced; a key file of
                    // the user's own (Apple lets you download a .p8 once) is
                    // left alone and the new key goes into the store.
                    let stored = keystore::store_key_file(&data_dir()?, &name, &pem)?;
                    if !in_store(old)? {
                        eprintln!(
                            "apns: left {} in place; the new key is stored in {}",
                            old.display(),
                            stored.display()
                        );
                    }
                    KeyLocation::File(stored)
                }
                KeyLocation::Inline => {
                    return Err(Failure::usage(format!(
                        "the key inlined in profile {name:?} is not a stored key: remove it from the profile, then `apns key add` the new one"
                    )))
                }
                other => {
                    return Err(Failure::usage(format!(
                        "profile {name} reads its key from {other}: put the new PEM there; `apns key rotate` replaces stored keys only"
                    )))
                }
            };
            let old_kid = profile.key_id.clone().unwrap_or_else(|| "-".into());
            let updated = Profile {
                key_id: Some(kid.to_string()),
                key: Some(new_location.to_string()),
                ..profile
            };
            file.profiles.insert(name.clone(), updated);
            file.save(&path)?;
            eprintln!(
                "apns: profile {name} now uses key {kid} ({}); sends from now on use it",
                key.public_key().fingerprint()
            );
            eprintln!(
                "apns: revoke the old key {old_kid} in the Apple Developer account (Certificates, Identifiers & Profiles > Keys) once nothing uses it"
            );
            println!("{old_kid}");
            Ok(exit::OK)
        }
        KeyCommand::Remove { name, yes } => {
            let profile = file.get(&name)?.clone();
            let location = profile.key_location()?;
            if !yes {
                if !std::io::stdin().is_terminal() {
                    return Err(Failure::usage(format!(
                        "refusing to remove {name} without confirmation: add --yes"
                    )));
                }
                eprint!(
                    "Remove profile {name} (key {}) and its key from {}? [y/N] ",
                    profile.key_id.as_deref().unwrap_or("-"),
                    describe(&location)
                );
                let mut answer = String::new();
                let _ = std::io::stdin().read_line(&mut answer);
                if !matches!(answer.trim(), "y" | "Y" | "yes") {
                    eprintln!("apns: nothing removed");
                    return Ok(exit::USAGE);
                }
            }
            match &location {
                KeyLocation::Keychain if profile.certificate.is_none() => {
                    Keychain::system()?.remove(&name)?
                }
                KeyLocation::File(p) => match std::fs::remove_file(p) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => {
                        return Err(Failure::usage(format!(
                            "cannot remove {}: {e}",
                            p.display()
                        )))
                    }
                },
                _ => {}
            }
            file.profiles.remove(&name);
            file.save(&path)?;
            eprintln!("apns: removed profile {name} and its stored key");
            Ok(exit::OK)
        }
    }
}

fn read_new_key(
    path: &std::path::Path,
    key_id: Option<&str>,
) -> Result<(SigningKey, zeroize::Zeroizing<String>, KeyId), Failure> {
    // One read: the key checked (P-256, chmod 600) is the key stored.
    let (key, pem) = apns_provider::auth::load_key_file(path)?;
    let kid = match key_id {
        Some(k) => KeyId::new(k)?,
        None => KeyId::from_apple_file_name(path).ok_or_else(|| {
            Failure::usage(format!(
                "--key-id is required: {} is not named AuthKey_<KEYID>.p8",
                path.display()
            ))
        })?,
    };
    Ok((key, pem, kid))
}

/// Whether `path` is a key the store wrote (and may replace or delete).
fn in_store(path: &std::path::Path) -> Result<bool, Failure> {
    Ok(path.parent() == Some(data_dir()?.as_path()))
}

fn check_environment(env: &str) -> Result<String, Failure> {
    match env {
        "sandbox" | "production" | "both" => Ok(env.to_string()),
        "development" => Ok("sandbox".into()),
        other => Err(Failure::usage(format!(
            "--env {other:?}: expected sandbox, production or both"
        ))),
    }
}

fn put_secret(store: StoreKind, name: &str, pem: &str) -> Result<KeyLocation, Failure> {
    match store {
        StoreKind::Keychain => {
            Keychain::system()?.store(name, pem)?;
            Ok(KeyLocation::Keychain)
        }
        StoreKind::File => Ok(KeyLocation::File(keystore::store_key_file(
            &data_dir()?,
            name,
            pem,
        )?)),
    }
}

fn describe(location: &KeyLocation) -> String {
    match location {
        KeyLocation::Keychain => Keychain::system()
            .map(|k| format!("the {}", k.kind()))
            .unwrap_or_else(|_| "the keychain".into()),
        KeyLocation::File(p) => p.display().to_string(),
        KeyLocation::Env(v) => format!("${v}"),
        KeyLocation::Inline => "the profile file itself".into(),
        other => other.to_string(),
    }
}

/// What `list` and `show` print: never a secret.
fn summary(name: &str, p: &Profile) -> serde_json::Value {
    // Where things live, never what they are: a key pasted into the
    // profile shows as "inline".
    let store = if let Some(c) = &p.certificate {
        if keystore::looks_like_secret(c) {
            "certificate inline".to_string()
        } else {
            format!("certificate {c}")
        }
    } else {
        match p.key_location() {
            Ok(location) => location.to_string(),
            Err(_) => "unknown".to_string(),
        }
    };
    let fingerprint = match public_key(name, p) {
        Ok(Some(k)) => k.fingerprint(),
        Ok(None) => "-".into(),
        Err(e) => format!("unavailable: {}", e.message),
    };
    serde_json::json!({
        "name": name,
        "team_id": p.team_id,
        "key_id": p.key_id,
        "environment": p.environment,
        "topic": p.topic,
        "topics": p.topics,
        "store": store,
        "fingerprint": fingerprint,
    })
}

fn public_key(name: &str, p: &Profile) -> Result<Option<apns_provider::PublicKey>, Failure> {
    if p.certificate.is_some() {
        return Ok(None);
    }
    let pem = load_key_pem(&p.key_location()?, name, Keychain::system)?;
    Ok(Some(SigningKey::from_pem(pem.as_bytes())?.public_key()))
}

fn public_pem(name: &str, p: &Profile) -> Result<String, Failure> {
    Ok(public_key(name, p)?.map(|k| k.to_pem()).unwrap_or_default())
}

/// `--key-file` of `key add` and `key rotate`: optional in the shared flag
/// group (a send may use a profile instead), required here.
fn required_key_file(key: &KeyFileArgs, command: &str) -> Result<PathBuf, Failure> {
    key.key_file.clone().ok_or_else(|| {
        Failure::usage(format!(
            "apns key {command} needs the .p8 key: --key-file AuthKey_<KEYID>.p8 (or APNS_KEY_FILE)"
        ))
    })
}
