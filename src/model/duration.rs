//! Durations in Istio's form: `1.5s`, `500ms`, `1m`, `1h30m`.
//!
//! The model keeps the text the user wrote so that a rule round-trips unchanged; the value is parsed on
//! demand, and validation reports text that does not parse.

use std::fmt;
use std::time::Duration as StdDuration;

use serde::{Serialize, Serializer};

/// A duration as written in a rule (`10s`, `1.5s`, `250ms`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Duration(pub String);

/// Why a duration's text is not a duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("a duration cannot be empty")]
    Empty,
    #[error(
        "`{0}` is not a duration: write a number followed by a unit (h, m, s, ms, us, ns), such as 10s, 1.5s or 500ms"
    )]
    Syntax(String),
    #[error("`{0}` has no unit: write it as {0}s or {0}ms")]
    MissingUnit(String),
    #[error("`{text}` uses the unknown unit `{unit}`: the units are h, m, s, ms, us, ns")]
    UnknownUnit { text: String, unit: String },
    #[error("`{0}` is too large")]
    Overflow(String),
}

impl Duration {
    pub fn new(text: impl Into<String>) -> Self {
        Duration(text.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Parses the text. Accepts one or more `<number><unit>` parts (`1h30m`, `1.5s`); negative durations
    /// are rejected here because no rule field takes one.
    pub fn parse(&self) -> Result<StdDuration, DurationError> {
        parse_duration(&self.0)
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// Parses `1h30m`, `1.5s`, `500ms`, `250us`, `10ns`, `2d` (days: Istio's CORS example used `1d`).
pub fn parse_duration(text: &str) -> Result<StdDuration, DurationError> {
    let s = text.trim();
    if s.is_empty() {
        return Err(DurationError::Empty);
    }
    let bytes = s.as_bytes();
    let mut i = 0;
    let mut total: u128 = 0;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'.') {
            i += 1;
        }
        let number = &s[start..i];
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return Err(DurationError::Syntax(text.to_string()));
        }
        let unit_start = i;
        while i < bytes.len() && !(bytes[i].is_ascii_digit() || bytes[i] == b'.') {
            i += 1;
        }
        let unit = &s[unit_start..i];
        let nanos_per_unit: u128 = match unit {
            "" => return Err(DurationError::MissingUnit(text.to_string())),
            "ns" => 1,
            "us" | "µs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60 * 1_000_000_000,
            "h" => 3_600 * 1_000_000_000,
            "d" => 86_400 * 1_000_000_000,
            other => {
                return Err(DurationError::UnknownUnit {
                    text: text.to_string(),
                    unit: other.to_string(),
                });
            }
        };
        let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
        let whole: u128 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| DurationError::Overflow(text.to_string()))?
        };
        let mut part = whole
            .checked_mul(nanos_per_unit)
            .ok_or_else(|| DurationError::Overflow(text.to_string()))?;
        // Fractions beyond nanosecond precision are dropped, as Go's time.ParseDuration does.
        let mut scale = nanos_per_unit;
        for digit in frac.bytes().take(30) {
            scale /= 10;
            part += u128::from(digit - b'0') * scale;
        }
        total = total
            .checked_add(part)
            .ok_or_else(|| DurationError::Overflow(text.to_string()))?;
    }
    let secs = u64::try_from(total / 1_000_000_000).map_err(|_| DurationError::Overflow(text.to_string()))?;
    // The remainder is below 1e9, so it fits in u32.
    let nanos = (total % 1_000_000_000) as u32;
    Ok(StdDuration::new(secs, nanos))
}

impl<'de> serde::Deserialize<'de> for Duration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Duration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as 10s or 500ms")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Duration, E> {
                Ok(Duration(v.to_string()))
            }
            fn visit_newtype_struct<D: serde::Deserializer<'de>>(self, d: D) -> Result<Duration, D::Error> {
                String::deserialize(d).map(Duration)
            }
        }
        use serde::Deserialize;
        d.deserialize_newtype_struct("Duration", V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_istio_forms() {
        assert_eq!(parse_duration("1.5s"), Ok(StdDuration::from_millis(1500)));
        assert_eq!(parse_duration("500ms"), Ok(StdDuration::from_millis(500)));
        assert_eq!(parse_duration("1m"), Ok(StdDuration::from_secs(60)));
        assert_eq!(parse_duration("1h"), Ok(StdDuration::from_secs(3600)));
        assert_eq!(parse_duration("1h30m"), Ok(StdDuration::from_secs(5400)));
        assert_eq!(parse_duration("1d"), Ok(StdDuration::from_secs(86400)));
        assert_eq!(parse_duration("250us"), Ok(StdDuration::from_micros(250)));
        assert_eq!(parse_duration(".5s"), Ok(StdDuration::from_millis(500)));
    }

    #[test]
    fn rejects_what_is_not_a_duration() {
        assert_eq!(parse_duration(""), Err(DurationError::Empty));
        assert!(matches!(parse_duration("10"), Err(DurationError::MissingUnit(_))));
        assert!(matches!(
            parse_duration("10 seconds"),
            Err(DurationError::UnknownUnit { .. })
        ));
        assert!(matches!(parse_duration("-1s"), Err(DurationError::Syntax(_))));
        assert!(matches!(parse_duration("1..5s"), Err(DurationError::Syntax(_))));
        assert!(matches!(
            parse_duration("99999999999999999999999999999999999999h"),
            Err(DurationError::Overflow(_))
        ));
    }
}
