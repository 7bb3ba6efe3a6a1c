//! Apple team and key identifiers.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use crate::error::{Error, Result};

macro_rules! apple_id {
    ($(#[$doc:meta])* $name:ident, $field:literal, $where:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// Validates and wraps an identifier: exactly 10 ASCII letters or
            /// digits.
            pub fn new(id: impl AsRef<str>) -> Result<Self> {
                let id = id.as_ref();
                validate_apple_id($field, $where, id)?;
                Ok(Self(id.to_string()))
            }

            /// The identifier as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self> {
                Self::new(s)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }
    };
}

apple_id!(
    /// A 10-character Apple Developer team id (the `iss` claim of a provider
    /// token).
    ///
    /// ```
    /// # use apns_provider::TeamId;
    /// assert!(TeamId::new("ABCDE12345").is_ok());
    /// let err = TeamId::new("ABC").unwrap_err();
    /// assert!(err.to_string().contains("team_id"));
    /// ```
    TeamId,
    "team_id",
    "the Team ID shown under Membership details in the Apple Developer account"
);

apple_id!(
    /// A 10-character APNs key id (the `kid` header of a provider token): the
    /// `<KEYID>` in `AuthKey_<KEYID>.p8`.
    KeyId,
    "key_id",
    "the Key ID shown next to the key under Certificates, Identifiers & Profiles > Keys, also in the file name AuthKey_<KEYID>.p8"
);

impl KeyId {
    /// The key id in an Apple key file name (`AuthKey_<KEYID>.p8`), if the
    /// name has that form.
    ///
    /// ```
    /// # use apns_provider::KeyId;
    /// let kid = KeyId::from_apple_file_name("/keys/AuthKey_ABCDE12345.p8").unwrap();
    /// assert_eq!(kid.as_str(), "ABCDE12345");
    /// ```
    pub fn from_apple_file_name(path: impl AsRef<Path>) -> Option<KeyId> {
        let name = path.as_ref().file_name()?.to_str()?;
        let id = name.strip_prefix("AuthKey_")?.strip_suffix(".p8")?;
        KeyId::new(id).ok()
    }
}

fn validate_apple_id(field: &'static str, hint: &str, id: &str) -> Result<()> {
    if id.is_empty() {
        return Err(Error::invalid(
            field,
            format!("missing; expected 10 letters or digits ({hint})"),
        ));
    }
    if id.len() != 10 || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(Error::invalid(
            field,
            format!(
                "{:?} is not 10 ASCII letters or digits ({} characters); expected {hint}",
                id.chars().take(16).collect::<String>(),
                id.chars().count()
            ),
        ));
    }
    Ok(())
}

/// Checks a (team id, key id) pair against a key file's name and reports the
/// classic mistake of swapped ids, the most common cause of
/// `InvalidProviderToken`.
pub fn check_ids_against_file_name(
    team_id: &TeamId,
    key_id: &KeyId,
    key_file: impl AsRef<Path>,
) -> Result<()> {
    let Some(from_name) = KeyId::from_apple_file_name(key_file) else {
        return Ok(());
    };
    if &from_name == key_id {
        return Ok(());
    }
    if from_name.as_str() == team_id.as_str() {
        return Err(Error::invalid(
            "key_id",
            format!(
                "team id and key id look swapped: the key file is named for key {from_name}, which was given as the team id"
            ),
        ));
    }
    Err(Error::invalid(
        "key_id",
        format!(
            "{key_id} does not match the key file, which is named for key {from_name}; tokens would be rejected with InvalidProviderToken"
        ),
    ))
}
