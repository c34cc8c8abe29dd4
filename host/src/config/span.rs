//! Durations as operators write them (`500ms`, `30s`, `5m`, `1h`; a bare
//! number is seconds), parsed once when the configuration loads, so every
//! use reads a checked value. Written by hand rather than with `humantime`:
//! configurations already use bare seconds and decimals (`1.5s`), which it
//! does not take.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A positive duration and the text it was written as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeSpan {
    text: String,
    value: Duration,
}

impl TimeSpan {
    pub fn from_secs(secs: u64) -> TimeSpan {
        TimeSpan {
            text: format!("{secs}s"),
            value: Duration::from_secs(secs),
        }
    }

    pub fn from_days(days: u64) -> TimeSpan {
        TimeSpan {
            text: format!("{days}d"),
            value: Duration::from_secs(days * 86_400),
        }
    }

    pub fn from_minutes(minutes: u64) -> TimeSpan {
        TimeSpan {
            text: format!("{minutes}m"),
            value: Duration::from_secs(minutes * 60),
        }
    }

    pub fn get(&self) -> Duration {
        self.value
    }

    pub fn as_millis(&self) -> i64 {
        i64::try_from(self.value.as_millis()).unwrap_or(i64::MAX)
    }

    pub fn parse(text: &str) -> Result<TimeSpan, String> {
        match parse_duration(text) {
            Some(value) if !value.is_zero() => Ok(TimeSpan {
                text: text.trim().to_string(),
                value,
            }),
            Some(_) => Err(format!("`{text}` must be longer than zero")),
            None => Err(format!("`{text}` is not a duration like 30s, 5m or 500ms")),
        }
    }
}

impl std::fmt::Display for TimeSpan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl Serialize for TimeSpan {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for TimeSpan {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<TimeSpan, D::Error> {
        // A visitor, so the error is raised inside the field and the
        // loader's message names it (`checks[0].interval`).
        struct Text;
        impl serde::de::Visitor<'_> for Text {
            type Value = TimeSpan;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a duration like 30s, 5m or 500ms")
            }

            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<TimeSpan, E> {
                TimeSpan::parse(text).map_err(E::custom)
            }

            // A bare number is seconds.
            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<TimeSpan, E> {
                self.visit_str(&n.to_string())
            }

            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<TimeSpan, E> {
                self.visit_str(&n.to_string())
            }

            fn visit_f64<E: serde::de::Error>(self, n: f64) -> Result<TimeSpan, E> {
                self.visit_str(&n.to_string())
            }
        }
        d.deserialize_any(Text)
    }
}

/// Parses `500ms`, `5s`, `2m`, `1h` (a bare number is seconds).
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: f64 = number.parse().ok()?;
    let secs = match unit.trim() {
        "ms" => n / 1000.0,
        "" | "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        "d" => n * 86_400.0,
        _ => return None,
    };
    // `try_from` refuses what does not fit (`1e20s`) instead of panicking.
    Duration::try_from_secs_f64(secs).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_parse_once_and_keep_their_text() {
        let span = TimeSpan::parse(" 1.5s ").unwrap();
        assert_eq!(span.get(), Duration::from_millis(1500));
        assert_eq!(span.to_string(), "1.5s");
        assert_eq!(TimeSpan::parse("2m").unwrap().as_millis(), 120_000);
        assert_eq!(TimeSpan::parse("30d").unwrap().as_millis(), 30 * 86_400_000);
        assert_eq!(
            TimeSpan::parse("5 parsecs").unwrap_err(),
            "`5 parsecs` is not a duration like 30s, 5m or 500ms"
        );
        assert_eq!(
            TimeSpan::parse("0s").unwrap_err(),
            "`0s` must be longer than zero"
        );
        assert!(TimeSpan::parse("99999999999999999999999h").is_err());
        assert!(TimeSpan::parse("-5s").is_err());
        let yaml: TimeSpan = serde_yaml_ng::from_str("30").unwrap();
        assert_eq!(yaml.get(), Duration::from_secs(30));
        assert_eq!(serde_json::to_string(&yaml).unwrap(), "\"30\"");
    }
}
