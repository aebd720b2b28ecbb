//! Durations in Alertmanager's syntax (`30s`, `5m`, `1h30m`, `1d`, `1w`, `1y`, `0`).
//!
//! Alertmanager (via Prometheus' `model.ParseDuration`) accepts units in strictly
//! descending order `y w d h m s ms`, with `y` = 365 days and no spaces. `humantime`
//! differs (1y = 365.25 d, accepts spaces), so we keep a small exact parser.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::time::Duration;

/// A duration written the Alertmanager way; serialises back to the same syntax.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct AmDuration(pub Duration);

/// Why a duration string was rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("not a valid duration {input:?}: expected e.g. 30s, 5m, 1h30m, 2d (units y w d h m s ms, largest first)")]
pub struct DurationError {
    input: String,
}

/// Longest accepted duration, in milliseconds: 100 years.
pub const MAX_MS: u64 = 100 * 365 * 24 * 3600 * 1000;

/// The units, largest first, with their length in milliseconds (`y` = 365 days).
pub const UNITS: [(&str, u64); 7] = [
    ("y", 365 * 24 * 3600 * 1000),
    ("w", 7 * 24 * 3600 * 1000),
    ("d", 24 * 3600 * 1000),
    ("h", 3600 * 1000),
    ("m", 60 * 1000),
    ("s", 1000),
    ("ms", 1),
];

impl AmDuration {
    /// Parse `((\d+)y)?((\d+)w)?((\d+)d)?((\d+)h)?((\d+)m)?((\d+)s)?((\d+)ms)?` or `0`.
    pub fn parse(input: &str) -> Result<Self, DurationError> {
        let err = || DurationError {
            input: input.to_string(),
        };
        if input == "0" {
            return Ok(AmDuration(Duration::ZERO));
        }
        if input.is_empty() {
            return Err(err());
        }
        let bytes = input.as_bytes();
        let mut pos = 0;
        let mut next_unit = 0; // index into UNITS: units must appear in descending order
        let mut total_ms: u64 = 0;
        while pos < bytes.len() {
            let start = pos;
            while pos < bytes.len() && bytes[pos].is_ascii_digit() {
                pos += 1;
            }
            if start == pos {
                return Err(err());
            }
            let n: u64 = input[start..pos].parse().map_err(|_| err())?;
            let unit_start = pos;
            while pos < bytes.len() && bytes[pos].is_ascii_alphabetic() {
                pos += 1;
            }
            let unit = &input[unit_start..pos];
            let idx = UNITS[next_unit..]
                .iter()
                .position(|(u, _)| *u == unit)
                .map(|i| i + next_unit)
                .ok_or_else(err)?;
            next_unit = idx + 1;
            total_ms = n
                .checked_mul(UNITS[idx].1)
                .and_then(|v| v.checked_add(total_ms))
                .ok_or_else(err)?;
        }
        // Far beyond any sensible interval, and keeps timestamp arithmetic from overflowing.
        if total_ms > MAX_MS {
            return Err(err());
        }
        Ok(AmDuration(Duration::from_millis(total_ms)))
    }

    pub fn as_duration(self) -> Duration {
        self.0
    }

    pub fn from_secs(s: u64) -> Self {
        AmDuration(Duration::from_secs(s))
    }
}

impl fmt::Display for AmDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ms = self.0.as_millis() as u64;
        if ms == 0 {
            return f.write_str("0s");
        }
        for (unit, size) in UNITS {
            // Prometheus prints weeks/years only when exact; we print the canonical
            // descending form, which parses back to the same value.
            if ms >= size {
                write!(f, "{}{}", ms / size, unit)?;
                ms %= size;
            }
        }
        Ok(())
    }
}

impl Serialize for AmDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for AmDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        AmDuration::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_alertmanager_syntax() {
        let cases = [
            ("0", 0),
            ("30s", 30_000),
            ("5m", 300_000),
            ("1h30m", 5_400_000),
            ("1d", 86_400_000),
            ("1w", 604_800_000),
            ("1y", 31_536_000_000),
            ("1h0m5s100ms", 3_605_100),
            ("250ms", 250),
        ];
        for (input, ms) in cases {
            assert_eq!(
                AmDuration::parse(input).map(|d| d.0.as_millis() as u64),
                Ok(ms),
                "{input}"
            );
        }
    }

    #[test]
    fn rejects_bad_syntax() {
        for input in [
            "",
            "5",
            "1m1h",
            "1h 30m",
            "-1s",
            "1.5h",
            "5x",
            "s",
            "1s1s",
            "99999999999999999999y",
            "101y",
        ] {
            assert!(AmDuration::parse(input).is_err(), "{input} should fail");
        }
    }

    #[test]
    fn display_round_trips() {
        for input in ["30s", "5m", "1h30m", "4h", "250ms", "1d2h"] {
            let d = AmDuration::parse(input).unwrap();
            assert_eq!(d.to_string(), input);
            assert_eq!(AmDuration::parse(&d.to_string()).unwrap(), d);
        }
        assert_eq!(AmDuration::from_secs(0).to_string(), "0s");
    }
}
