//! Where the `apns` command keeps its profiles and stored keys: the
//! application's conventions (`APNS_CONFIG`, XDG, `HOME`), which the
//! library does not know. The library takes these paths as arguments
//! (`ProfileFile::load`, `keystore::store_key_file`).

use std::ffi::OsString;
use std::path::PathBuf;

use apns_provider::Error;

/// The profile file: `$APNS_CONFIG`, else `$XDG_CONFIG_HOME/apns/keys.toml`,
/// else `~/.config/apns/keys.toml`.
pub fn config_path() -> Result<PathBuf, Error> {
    config_path_in(&|name| std::env::var_os(name))
}

/// The directory of the file store: `$XDG_DATA_HOME/apns/keys`, else
/// `~/.local/share/apns/keys`.
pub fn data_dir() -> Result<PathBuf, Error> {
    data_dir_in(&|name| std::env::var_os(name))
}

/// The environment, as a lookup (tests pass their own).
type Env<'a> = &'a dyn Fn(&str) -> Option<OsString>;

fn config_path_in(env: Env) -> Result<PathBuf, Error> {
    if let Some(p) = var(env, "APNS_CONFIG") {
        return Ok(p);
    }
    let base = match var(env, "XDG_CONFIG_HOME") {
        Some(d) => d,
        None => home(env)?.join(".config"),
    };
    Ok(base.join("apns").join("keys.toml"))
}

fn data_dir_in(env: Env) -> Result<PathBuf, Error> {
    let base = match var(env, "XDG_DATA_HOME") {
        Some(d) => d,
        None => home(env)?.join(".local/share"),
    };
    Ok(base.join("apns").join("keys"))
}

/// A variable that is set and not empty, as a path.
fn var(env: Env, name: &str) -> Option<PathBuf> {
    env(name).filter(|v| !v.is_empty()).map(PathBuf::from)
}

fn home(env: Env) -> Result<PathBuf, Error> {
    var(env, "HOME")
        .ok_or_else(|| Error::Config("HOME is not set; set APNS_CONFIG and XDG_DATA_HOME".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<OsString> + 'a {
        move |name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| OsString::from(v))
        }
    }

    #[test]
    fn apns_config_then_xdg_then_home() {
        let home = env(&[("HOME", "/home/u"), ("XDG_CONFIG_HOME", "")]);
        assert_eq!(
            config_path_in(&home).unwrap(),
            PathBuf::from("/home/u/.config/apns/keys.toml")
        );
        assert_eq!(
            data_dir_in(&home).unwrap(),
            PathBuf::from("/home/u/.local/share/apns/keys")
        );
        let xdg = env(&[
            ("HOME", "/home/u"),
            ("XDG_CONFIG_HOME", "/xdg/config"),
            ("XDG_DATA_HOME", "/xdg/data"),
        ]);
        assert_eq!(
            config_path_in(&xdg).unwrap(),
            PathBuf::from("/xdg/config/apns/keys.toml")
        );
        assert_eq!(
            data_dir_in(&xdg).unwrap(),
            PathBuf::from("/xdg/data/apns/keys")
        );
        let named = env(&[("APNS_CONFIG", "/etc/apns.toml"), ("XDG_CONFIG_HOME", "/x")]);
        assert_eq!(
            config_path_in(&named).unwrap(),
            PathBuf::from("/etc/apns.toml")
        );
        let e = data_dir_in(&named).unwrap_err();
        assert!(e.to_string().contains("HOME is not set"), "{e}");
    }
}
