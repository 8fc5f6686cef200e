//! Durations in a spec, written as people write them (`15m`, `1h30m`, `90s`).

use std::{borrow::Cow, fmt, time::Duration};

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

/// The longest duration the API accepts for a link or a session. Clerk may allow more; an
/// impersonation that outlives a working day is not one this operator should hand out.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 60 * 60);

/// A positive duration of hours, minutes and seconds, at most 24h: `15m`, `1h`, `1h30m`, `90s`.
/// The API server checks the form and the bounds (pattern and CEL) before the operator sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SpecDuration(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DurationError {
    #[error("`{0}` is not a duration like 15m, 1h or 1h30m")]
    Malformed(String),
    #[error("`{0}` must be longer than zero")]
    Zero(String),
    #[error("`{0}` is longer than {max}", max = humanize(MAX_DURATION))]
    TooLong(String),
}

impl SpecDuration {
    pub fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Parses and bounds-checks the duration. The schema already enforces this for objects
    /// that went through the API server; this guards everything else (and tests the schema's
    /// intent in plain Rust).
    pub fn to_duration(&self) -> Result<Duration, DurationError> {
        let malformed = || DurationError::Malformed(self.0.clone());
        let mut rest = self.0.as_str();
        if rest.is_empty() {
            return Err(malformed());
        }
        let mut total: u64 = 0;
        let mut last_unit = 0; // h=3, m=2, s=1: units must come in that order, once each
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 || digits > 6 {
                return Err(malformed());
            }
            let value: u64 = rest[..digits].parse().map_err(|_| malformed())?;
            let (unit, seconds) = match rest.as_bytes().get(digits) {
                Some(b'h') => (3, 3600),
                Some(b'm') => (2, 60),
                Some(b's') => (1, 1),
                _ => return Err(malformed()),
            };
            if last_unit != 0 && unit >= last_unit {
                return Err(malformed());
            }
            last_unit = unit;
            total += value * seconds;
            rest = &rest[digits + 1..];
        }
        let duration = Duration::from_secs(total);
        if duration.is_zero() {
            Err(DurationError::Zero(self.0.clone()))
        } else if duration > MAX_DURATION {
            Err(DurationError::TooLong(self.0.clone()))
        } else {
            Ok(duration)
        }
    }
}

impl fmt::Display for SpecDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `3600s` → `1h`, `5400s` → `1h30m`: how durations are shown back to people.
pub fn humanize(duration: Duration) -> String {
    let secs = duration.as_secs();
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 || out.is_empty() {
        out.push_str(&format!("{s}s"));
    }
    out
}

impl JsonSchema for SpecDuration {
    fn schema_name() -> Cow<'static, str> {
        "SpecDuration".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "A duration of hours, minutes and seconds, like 15m, 1h or 1h30m; more than zero and at most 24h.",
            "pattern": "^([0-9]{1,6}h)?([0-9]{1,6}m)?([0-9]{1,6}s)?$",
            "minLength": 2,
            "maxLength": 24,
            "x-kubernetes-validations": [
                { "rule": "duration(self) > duration('0s')", "message": "must be longer than zero" },
                { "rule": "duration(self) <= duration('24h')", "message": "must be at most 24h" }
            ]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Duration, DurationError> {
        SpecDuration::new(s).to_duration()
    }

    #[test]
    fn parses_the_forms_people_write() {
        assert_eq!(parse("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("24h"), Ok(MAX_DURATION));
    }

    #[test]
    fn rejects_zero_too_long_and_malformed() {
        assert!(matches!(parse("0s"), Err(DurationError::Zero(_))));
        assert!(matches!(parse("0h0m"), Err(DurationError::Zero(_))));
        assert!(matches!(parse("24h1s"), Err(DurationError::TooLong(_))));
        assert!(matches!(parse("25h"), Err(DurationError::TooLong(_))));
        for bad in [
            "", "15", "m", "-5m", "1.5h", "5m1h", "1h1h", "1d", " 1h", "1H",
        ] {
            assert!(
                matches!(parse(bad), Err(DurationError::Malformed(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn humanizes() {
        assert_eq!(humanize(Duration::from_secs(3600)), "1h");
        assert_eq!(humanize(Duration::from_secs(5430)), "1h30m30s");
        assert_eq!(humanize(Duration::ZERO), "0s");
    }
}
