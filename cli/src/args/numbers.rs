//! The one place numeric flags are checked: typed clap value parsers with
//! a range per flag. A value out of range (NaN, inf, 0 where 0 means
//! nothing, -1, u64::MAX...) is a usage error from clap itself (exit 2,
//! "invalid value '...' for '--flag <N>': ..."), before any command runs,
//! so no later `Duration::from_secs_f64`, semaphore or allocation can panic
//! on it.

use std::ffi::OsStr;
use std::time::Duration;

use clap::builder::TypedValueParser;
use clap::error::ErrorKind;

/// The most seconds a timeout-like flag takes: a day.
pub const DAY: f64 = 86_400.0;
/// A day, for duration flags' ranges.
pub const DAY_DURATION: Duration = Duration::from_secs(86_400);

/// The usage error clap would give for `value` of `arg`: it names the flag
/// and says what is accepted.
pub(super) fn refuse(
    cmd: &clap::Command,
    arg: Option<&clap::Arg>,
    value: &str,
    why: &str,
) -> clap::Error {
    let flag = arg.map_or_else(|| "...".to_string(), |a| a.to_string());
    let mut cmd = cmd.clone();
    cmd.error(
        ErrorKind::ValueValidation,
        format!("invalid value '{value}' for '{flag}': {why}"),
    )
}

/// A whole number from `min` to `max` (inclusive), of type `T`.
#[derive(Clone, Copy, Debug)]
pub struct Count<T> {
    min: u64,
    max: u64,
    _type: std::marker::PhantomData<fn() -> T>,
}

/// A whole number from `min` to `max` (inclusive): `--concurrency`,
/// `--connections`, `--max-connections` and the like.
pub fn count<T>(min: u64, max: u64) -> Count<T> {
    Count {
        min,
        max,
        _type: std::marker::PhantomData,
    }
}

impl<T> TypedValueParser for Count<T>
where
    T: TryFrom<u64> + Clone + Send + Sync + 'static,
{
    type Value = T;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &OsStr,
    ) -> Result<T, clap::Error> {
        let text = value.to_string_lossy();
        let why = format!("expected a whole number from {} to {}", self.min, self.max);
        let n: u64 = text
            .trim()
            .parse()
            .map_err(|_| refuse(cmd, arg, &text, &why))?;
        if !(self.min..=self.max).contains(&n) {
            return Err(refuse(cmd, arg, &text, &why));
        }
        T::try_from(n).map_err(|_| refuse(cmd, arg, &text, &why))
    }
}

/// A finite real number in a range: seconds, or a score.
#[derive(Clone, Copy, Debug)]
pub struct Real {
    min: f64,
    /// Whether `min` itself is accepted (a score of 0 is; a timeout of 0
    /// is not).
    min_inclusive: bool,
    max: f64,
    what: &'static str,
}

/// A number of seconds above 0 (or from 0, with `zero`) and at most `max`,
/// finite: `--timeout`, `--request-timeout`, `--shutdown-grace`...
pub fn seconds(zero: bool, max: f64) -> Real {
    Real {
        min: 0.0,
        min_inclusive: zero,
        max,
        what: "a number of seconds",
    }
}

/// A number from `min` to `max`, both included (`--relevance-score`).
pub fn real(min: f64, max: f64) -> Real {
    Real {
        min,
        min_inclusive: true,
        max,
        what: "a number",
    }
}

impl TypedValueParser for Real {
    type Value = f64;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &OsStr,
    ) -> Result<f64, clap::Error> {
        let text = value.to_string_lossy();
        let why = if self.min_inclusive {
            format!("expected {} from {} to {}", self.what, self.min, self.max)
        } else {
            format!(
                "expected {} above {} and at most {}",
                self.what, self.min, self.max
            )
        };
        let n: f64 = text
            .trim()
            .parse()
            .map_err(|_| refuse(cmd, arg, &text, &why))?;
        let above_min = if self.min_inclusive {
            n >= self.min
        } else {
            n > self.min
        };
        // NaN fails both comparisons; inf fails the second.
        if !(above_min && n <= self.max) {
            return Err(refuse(cmd, arg, &text, &why));
        }
        Ok(n)
    }
}

/// A duration such as `500ms`, `30s`, `2m`, `1h` (or plain seconds), from
/// `min` to `max`.
#[derive(Clone, Copy, Debug)]
pub struct DurationRange {
    min: Duration,
    max: Duration,
}

/// A duration from `min` to `max`: `--claim-idle`, `--stats-interval`.
pub fn duration(min: Duration, max: Duration) -> DurationRange {
    DurationRange { min, max }
}

impl TypedValueParser for DurationRange {
    type Value = Duration;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &OsStr,
    ) -> Result<Duration, clap::Error> {
        let text = value.to_string_lossy();
        let why = format!(
            "expected a duration such as 500ms, 30s, 2m or 1h, from {} to {}",
            human(self.min),
            human(self.max)
        );
        match parse_duration(&text) {
            Some(d) if (self.min..=self.max).contains(&d) => Ok(d),
            _ => Err(refuse(cmd, arg, &text, &why)),
        }
    }
}

/// A delay, or a range of delays: `50ms`, or `40ms..60ms` for a jitter,
/// each at most `max` (`apns mock --latency`).
#[derive(Clone, Copy, Debug)]
pub struct LatencyRange {
    max: Duration,
}

/// `--latency`: one delay or `MIN..MAX`, at most `max`.
pub fn latency(max: Duration) -> LatencyRange {
    LatencyRange { max }
}

impl TypedValueParser for LatencyRange {
    type Value = (Duration, Duration);

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &OsStr,
    ) -> Result<(Duration, Duration), clap::Error> {
        let text = value.to_string_lossy();
        let why = format!(
            "expected a delay such as 50ms, or a range such as 40ms..60ms, at most {}",
            human(self.max)
        );
        let (min, max) = match text.split_once("..") {
            Some((a, b)) => (parse_duration(a), parse_duration(b)),
            None => (parse_duration(&text), parse_duration(&text)),
        };
        match (min, max) {
            (Some(min), Some(max)) if min <= max && max <= self.max => Ok((min, max)),
            _ => Err(refuse(cmd, arg, &text, &why)),
        }
    }
}

/// `30 days`, `1h`: how a limit reads in a message.
fn human(d: Duration) -> String {
    let s = d.as_secs();
    if d.is_zero() {
        "0".into()
    } else if s >= 86_400 && s.is_multiple_of(86_400) {
        format!("{} days", s / 86_400)
    } else {
        format!("{d:?}")
    }
}

/// `500ms`, `30s`, `2m`, `1h`, or plain seconds; `None` for anything else
/// (signs, NaN, inf, other units) or past a year.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let n: f64 = number.parse().ok()?;
    let seconds = match unit {
        "ms" => n / 1000.0,
        "" | "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return None,
    };
    // Checked before from_secs_f64, which panics past u64::MAX seconds.
    if !(0.0..=365.0 * DAY).contains(&seconds) {
        return None;
    }
    Some(Duration::from_secs_f64(seconds))
}

/// A size in bytes (`1048576`, `512KiB`, `1MiB`; also `K`, `KB`, `M`,
/// `MB`, as binary units), from `min` to `max`; the value stays the text,
/// which the command converts.
#[derive(Clone, Copy, Debug)]
pub struct Size {
    min: usize,
    max: usize,
}

/// A size from `min` to `max` bytes (`--max-body`).
pub fn size(min: usize, max: usize) -> Size {
    Size { min, max }
}

/// `1048576`, `512KiB`, `1MiB` in bytes; `None` when not a size.
pub fn parse_size(text: &str) -> Option<usize> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let unit_size: usize = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        _ => return None,
    };
    digits.parse::<usize>().ok()?.checked_mul(unit_size)
}

impl TypedValueParser for Size {
    type Value = usize;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &OsStr,
    ) -> Result<usize, clap::Error> {
        let text = value.to_string_lossy();
        let why = format!(
            "expected a size from {} byte(s) to {}MiB, such as 1048576, 512KiB or 1MiB",
            self.min,
            self.max >> 20
        );
        match parse_size(&text) {
            Some(n) if (self.min..=self.max).contains(&n) => Ok(n),
            _ => Err(refuse(cmd, arg, &text, &why)),
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    /// Every flag of every subcommand, with its command path.
    fn all_flags() -> Vec<(String, clap::Command, clap::Arg)> {
        fn walk(
            cmd: &clap::Command,
            path: String,
            out: &mut Vec<(String, clap::Command, clap::Arg)>,
        ) {
            for arg in cmd.get_arguments() {
                if arg.get_long().is_some() && arg.get_action().takes_values() {
                    out.push((path.clone(), cmd.clone(), arg.clone()));
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub, format!("{path} {}", sub.get_name()), out);
            }
        }
        let mut cmd = crate::Cli::command();
        cmd.build();
        let mut out = Vec::new();
        walk(&cmd, "apns".into(), &mut out);
        out
    }

    /// `Err` with clap's message when clap refuses `value` for `arg`
    /// (other complaints, such as a missing required flag, do not count).
    fn parses(cmd: &clap::Command, arg: &clap::Arg, value: &str) -> Result<(), String> {
        let long = arg.get_long().unwrap();
        match cmd
            .clone()
            .try_get_matches_from(["apns".to_string(), format!("--{long}={value}")])
        {
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::ValueValidation | ErrorKind::InvalidValue
                ) =>
            {
                Err(e.to_string())
            }
            _ => Ok(()),
        }
    }

    /// A flag is numeric when its parser takes "1" (or "1s") and refuses
    /// "abc": each of those refuses NaN, inf, -1 and u64::MAX, naming
    /// itself, and says what range it takes.
    #[test]
    fn every_numeric_flag_refuses_absurd_values_naming_itself() {
        let mut numeric = 0;
        for (path, cmd, arg) in all_flags() {
            let long = arg.get_long().unwrap();
            let takes_one = parses(&cmd, &arg, "1").is_ok() || parses(&cmd, &arg, "1s").is_ok();
            if !(takes_one && parses(&cmd, &arg, "abc").is_err()) {
                continue;
            }
            numeric += 1;
            for bad in ["NaN", "inf", "-1", "18446744073709551615", "1e400"] {
                let e = parses(&cmd, &arg, bad)
                    .expect_err(&format!("{path} --{long} {bad} was accepted"));
                assert!(
                    e.contains(&format!("'--{long}")),
                    "{path} --{long} {bad}: {e}"
                );
                assert!(e.contains("expected"), "{path} --{long} {bad}: {e}");
            }
            // 0 is either meaningful or refused with the same kind of message.
            if let Err(e) = parses(&cmd, &arg, "0") {
                assert!(e.contains(&format!("'--{long}")), "{path} --{long} 0: {e}");
            }
        }
        assert!(numeric > 30, "only {numeric} numeric flags found");
    }

    #[test]
    fn ranges() {
        let cmd = clap::Command::new("t");
        let p = count::<usize>(1, 64);
        assert_eq!(p.parse_ref(&cmd, None, OsStr::new("64")).unwrap(), 64);
        assert!(p.parse_ref(&cmd, None, OsStr::new("65")).is_err());
        assert!(p.parse_ref(&cmd, None, OsStr::new("0")).is_err());
        let s = seconds(false, DAY);
        assert_eq!(s.parse_ref(&cmd, None, OsStr::new("0.5")).unwrap(), 0.5);
        for bad in ["0", "NaN", "inf", "-inf", "86401"] {
            assert!(s.parse_ref(&cmd, None, OsStr::new(bad)).is_err(), "{bad}");
        }
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5"), Some(Duration::from_millis(1500)));
        assert!(parse_duration("5 parsecs").is_none());
        assert!(parse_duration("-1s").is_none());
        assert!(parse_duration("99999999h").is_none());
        let l = latency(Duration::from_secs(60));
        let ms = Duration::from_millis;
        assert_eq!(
            l.parse_ref(&cmd, None, OsStr::new("50ms")).unwrap(),
            (ms(50), ms(50))
        );
        assert_eq!(
            l.parse_ref(&cmd, None, OsStr::new("40ms..60ms")).unwrap(),
            (ms(40), ms(60))
        );
        for bad in ["60ms..40ms", "61s", "..", "1s..", "-5ms", "fast"] {
            assert!(l.parse_ref(&cmd, None, OsStr::new(bad)).is_err(), "{bad}");
        }
        assert_eq!(parse_size("1MiB"), Some(1 << 20));
        assert_eq!(parse_size("512 KiB"), Some(512 << 10));
        assert_eq!(parse_size("18446744073709551615M"), None);
    }
}
