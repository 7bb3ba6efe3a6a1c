//! The value parsers of the flags that name one of a few words: `--env`
//! and `--push-type`. Checked by clap where the flag is read, with the same
//! one-line usage error on every command, and offered to `--help` and to
//! shell completion.

use std::ffi::OsStr;

use apns_provider::{Environment, PushType};
use clap::builder::{PossibleValue, TypedValueParser};

use super::numbers::refuse;

/// What every `--env` says when it refuses a value.
const ENV_EXPECTED: &str =
    "expected sandbox or production (development, dev and prod work too; `apns key add` also takes both)";

/// The value parser of `--env` on every command that connects: the
/// library's environment names.
#[derive(Clone, Copy, Debug)]
pub struct EnvironmentParser;

/// The value of `--env`.
pub fn environment() -> EnvironmentParser {
    EnvironmentParser
}

impl TypedValueParser for EnvironmentParser {
    type Value = Environment;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &OsStr,
    ) -> Result<Environment, clap::Error> {
        let text = value.to_string_lossy();
        text.parse()
            .map_err(|_| refuse(cmd, arg, &text, ENV_EXPECTED))
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = PossibleValue> + '_>> {
        Some(Box::new(
            ["sandbox", "production"]
                .into_iter()
                .map(PossibleValue::new),
        ))
    }
}

/// An environment a stored key may be used with (`apns key add --env`).
#[derive(Clone, Copy, Debug)]
pub struct KeyEnvironmentParser;

/// The value of `apns key add --env`: an environment, or `both`.
pub fn key_environment() -> KeyEnvironmentParser {
    KeyEnvironmentParser
}

impl TypedValueParser for KeyEnvironmentParser {
    type Value = String;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &OsStr,
    ) -> Result<String, clap::Error> {
        let text = value.to_string_lossy();
        if text.eq_ignore_ascii_case("both") {
            return Ok("both".into());
        }
        EnvironmentParser
            .parse_ref(cmd, arg, value)
            .map(|env| env.to_string())
            .map_err(|_| refuse(cmd, arg, &text, ENV_EXPECTED))
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = PossibleValue> + '_>> {
        Some(Box::new(
            ["sandbox", "production", "both"]
                .into_iter()
                .map(PossibleValue::new),
        ))
    }
}

/// The value parser of `--push-type`: the library's push types.
#[derive(Clone, Copy, Debug)]
pub struct PushTypeParser;

/// The value of `--push-type`.
pub fn push_type() -> PushTypeParser {
    PushTypeParser
}

impl TypedValueParser for PushTypeParser {
    type Value = PushType;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &OsStr,
    ) -> Result<PushType, clap::Error> {
        let text = value.to_string_lossy();
        text.parse().map_err(|_| {
            let names: Vec<&str> = PushType::ALL.iter().map(|t| t.as_str()).collect();
            refuse(
                cmd,
                arg,
                &text,
                &format!("expected one of {}", names.join(", ")),
            )
        })
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = PossibleValue> + '_>> {
        Some(Box::new(
            PushType::ALL.iter().map(|t| PossibleValue::new(t.as_str())),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse<P>(p: P, value: &str) -> Result<P::Value, String>
    where
        P: TypedValueParser,
        P::Value: Clone + Send + Sync + 'static,
    {
        let cmd = clap::Command::new("apns").arg(
            clap::Arg::new("env")
                .long("env")
                .value_name("ENV")
                .value_parser(p),
        );
        cmd.try_get_matches_from(["apns", "--env", value])
            .map(|m| m.get_one::<P::Value>("env").unwrap().clone())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn every_env_refuses_bogus_alike() {
        let a = parse(environment(), "bogus").unwrap_err();
        let b = parse(key_environment(), "bogus").unwrap_err();
        assert_eq!(a, b);
        assert!(a.contains("invalid value 'bogus' for '--env"), "{a}");
        assert_eq!(parse(environment(), "dev").unwrap(), Environment::Sandbox);
        assert_eq!(parse(key_environment(), "prod").unwrap(), "production");
        assert_eq!(parse(key_environment(), "both").unwrap(), "both");
        assert!(parse(environment(), "both").is_err());
    }

    #[test]
    fn the_offered_push_types_are_the_librarys() {
        let offered: Vec<String> = push_type()
            .possible_values()
            .unwrap()
            .map(|v| v.get_name().to_string())
            .collect();
        let all: Vec<String> = PushType::ALL.iter().map(|t| t.to_string()).collect();
        assert_eq!(offered, all);
        assert!(parse(push_type(), "alrt").is_err());
    }
}
