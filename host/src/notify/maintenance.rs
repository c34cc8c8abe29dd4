//! Maintenance windows: a fixed range or a cron recurrence (five fields,
//! UTC) with a duration. They silence notifications, never monitoring.

use chrono::{DateTime, Datelike, Timelike, Utc};

use crate::config::MaintenanceWindow;

const MINUTE_MS: i64 = 60_000;
/// A recurrence lasts at most a week: longer is a fixed range.
const MAX_DURATION_MS: i64 = 7 * 24 * 60 * MINUTE_MS;

#[derive(Debug, Clone)]
pub struct Window {
    pub id: String,
    systems: Vec<String>,
    environments: Vec<String>,
    when: When,
}

#[derive(Debug, Clone)]
enum When {
    Range { start_ms: i64, end_ms: i64 },
    Recurring { cron: Cron, duration_ms: i64 },
}

impl Window {
    /// Parses a configured window; the error names the field at fault.
    pub fn parse(w: &MaintenanceWindow) -> Result<Window, (&'static str, String)> {
        let when = match (&w.start, &w.end, &w.cron, &w.duration) {
            (Some(start), Some(end), None, None) => {
                let start_ms = rfc3339(start).map_err(|e| ("start", e))?;
                let end_ms = rfc3339(end).map_err(|e| ("end", e))?;
                if end_ms <= start_ms {
                    return Err(("end", "must be after `start`".into()));
                }
                When::Range { start_ms, end_ms }
            }
            (None, None, Some(cron), Some(duration)) => {
                let cron = Cron::parse(cron).map_err(|e| ("cron", e))?;
                let duration_ms = Some(duration.as_millis())
                    .filter(|ms| (MINUTE_MS..=MAX_DURATION_MS).contains(ms))
                    .ok_or((
                        "duration",
                        format!("`{duration}` is not a duration between 1m and 168h"),
                    ))?;
                When::Recurring { cron, duration_ms }
            }
            _ => {
                return Err((
                    "start",
                    "give either `start` and `end`, or `cron` and `duration`".into(),
                ));
            }
        };
        Ok(Window {
            id: w.id.clone(),
            systems: w.systems.clone(),
            environments: w.environments.clone(),
            when,
        })
    }

    /// Whether this window silences `system` (in `environment`) at `at_ms`.
    pub fn silences(&self, system: &str, environment: Option<&str>, at_ms: i64) -> bool {
        let system_in = self.systems.is_empty() || self.systems.iter().any(|s| s == system);
        let env_in = self.environments.is_empty()
            || environment.is_some_and(|e| self.environments.iter().any(|x| x == e));
        system_in && env_in && self.open_at(at_ms)
    }

    /// The window's occurrence that is open at `now_ms` for `system` (in
    /// `environment`), or else its next one within a week: `(start, end)`.
    pub fn occurrence(
        &self,
        system: &str,
        environment: Option<&str>,
        now_ms: i64,
    ) -> Option<(i64, i64)> {
        let system_in = self.systems.is_empty() || self.systems.iter().any(|s| s == system);
        let env_in = self.environments.is_empty()
            || environment.is_some_and(|e| self.environments.iter().any(|x| x == e));
        if !(system_in && env_in) {
            return None;
        }
        match &self.when {
            When::Range { start_ms, end_ms } => (*end_ms > now_ms).then_some((*start_ms, *end_ms)),
            When::Recurring { cron, duration_ms } => {
                let first = (now_ms - duration_ms).div_euclid(MINUTE_MS) * MINUTE_MS + MINUTE_MS;
                let mut minute = first;
                while minute <= now_ms + MAX_DURATION_MS + MINUTE_MS {
                    if cron.matches(minute) {
                        return Some((minute, minute + duration_ms));
                    }
                    minute += MINUTE_MS;
                }
                None
            }
        }
    }

    fn open_at(&self, at_ms: i64) -> bool {
        match &self.when {
            When::Range { start_ms, end_ms } => (*start_ms..*end_ms).contains(&at_ms),
            When::Recurring { cron, duration_ms } => {
                // Open if a recurrence started within the last `duration`.
                let now = at_ms.div_euclid(MINUTE_MS) * MINUTE_MS;
                let mut minute = now;
                while minute > at_ms - duration_ms {
                    if cron.matches(minute) {
                        return true;
                    }
                    minute -= MINUTE_MS;
                }
                false
            }
        }
    }
}

fn rfc3339(text: &str) -> Result<i64, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp_millis())
        .map_err(|e| format!("`{text}` is not an RFC 3339 time ({e})"))
}

/// A five-field cron expression: minute, hour, day of month, month, day of
/// week (0 or 7 = Sunday). Fields take `*`, numbers, names, ranges, lists
/// and `/step`. As in cron, when both day fields are restricted either may
/// match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    minutes: u64,
    hours: u64,
    days: u64,
    months: u64,
    weekdays: u64,
    days_restricted: bool,
    weekdays_restricted: bool,
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const WEEKDAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

impl Cron {
    pub fn parse(text: &str) -> Result<Cron, String> {
        let fields: Vec<&str> = text.split_whitespace().collect();
        let [minute, hour, day, month, weekday] = fields[..] else {
            return Err(format!(
                "`{text}` needs five fields: minute hour day-of-month month day-of-week"
            ));
        };
        let mut weekdays = field(weekday, 0, 7, &WEEKDAYS, 0, "day of week")?;
        if weekdays & (1 << 7) != 0 {
            weekdays |= 1; // 7 is Sunday too
        }
        Ok(Cron {
            minutes: field(minute, 0, 59, &[], 0, "minute")?,
            hours: field(hour, 0, 23, &[], 0, "hour")?,
            days: field(day, 1, 31, &[], 1, "day of month")?,
            months: field(month, 1, 12, &MONTHS, 1, "month")?,
            weekdays,
            days_restricted: day != "*",
            weekdays_restricted: weekday != "*",
        })
    }

    /// Whether the minute starting at `at_ms` matches.
    pub fn matches(&self, at_ms: i64) -> bool {
        let Some(t) = DateTime::<Utc>::from_timestamp_millis(at_ms) else {
            return false;
        };
        let bit = |set: u64, n: u32| set & (1 << n) != 0;
        let day = bit(self.days, t.day());
        let weekday = bit(self.weekdays, t.weekday().num_days_from_sunday());
        let day_ok = match (self.days_restricted, self.weekdays_restricted) {
            (true, true) => day || weekday,
            _ => day && weekday,
        };
        bit(self.minutes, t.minute())
            && bit(self.hours, t.hour())
            && bit(self.months, t.month())
            && day_ok
    }
}

/// One cron field as a bit set of the values it allows.
fn field(
    text: &str,
    min: u32,
    max: u32,
    names: &[&str],
    names_from: u32,
    what: &str,
) -> Result<u64, String> {
    let value = |v: &str| -> Result<u32, String> {
        let lower = v.to_ascii_lowercase();
        let n = names
            .iter()
            .position(|name| *name == lower)
            .map(|i| i as u32 + names_from)
            .or_else(|| v.parse().ok())
            .ok_or_else(|| format!("{what}: `{v}` is not a number"))?;
        if (min..=max).contains(&n) {
            Ok(n)
        } else {
            Err(format!("{what}: {n} is outside {min}–{max}"))
        }
    };
    let mut set = 0u64;
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((range, step)) => (
                range,
                step.parse::<u32>()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| format!("{what}: step `{step}` is not a positive number"))?,
            ),
            None => (part, 1),
        };
        let (from, to) = match range {
            "*" => (min, max),
            _ => match range.split_once('-') {
                Some((a, b)) => (value(a)?, value(b)?),
                None if part.contains('/') => (value(range)?, max),
                None => {
                    let n = value(range)?;
                    (n, n)
                }
            },
        };
        if from > to {
            return Err(format!("{what}: range `{range}` runs backwards"));
        }
        for n in (from..=to).step_by(step as usize) {
            set |= 1 << n;
        }
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> i64 {
        rfc3339(text).unwrap()
    }

    fn recurring(cron: &str, duration: &str) -> Window {
        Window::parse(&MaintenanceWindow {
            id: "w".into(),
            systems: vec!["shop".into()],
            environments: vec![],
            start: None,
            end: None,
            cron: Some(cron.into()),
            duration: Some(crate::config::TimeSpan::parse(duration).unwrap()),
        })
        .unwrap()
    }

    #[test]
    fn a_sunday_night_window_opens_and_closes_on_time() {
        // 2026-11-29 is a Sunday.
        let w = recurring("30 2 * * sun", "2h");
        assert!(!w.silences("shop", Some("prod"), at("2026-11-29T02:29:59Z")));
        assert!(w.silences("shop", Some("prod"), at("2026-11-29T02:30:00Z")));
        assert!(w.silences("shop", None, at("2026-11-29T04:29:59Z")));
        assert!(!w.silences("shop", None, at("2026-11-29T04:30:00Z")));
        assert!(
            !w.silences("shop", None, at("2026-11-30T03:00:00Z")),
            "Monday"
        );
        assert!(
            !w.silences("blog", None, at("2026-11-29T03:00:00Z")),
            "other system"
        );
    }

    #[test]
    fn the_page_finds_the_open_or_the_next_occurrence() {
        let w = recurring("30 2 * * sun", "2h");
        let sunday = (at("2026-11-29T02:30:00Z"), at("2026-11-29T04:30:00Z"));
        assert_eq!(
            w.occurrence("shop", None, at("2026-11-28T12:00:00Z")),
            Some(sunday)
        );
        assert_eq!(
            w.occurrence("shop", None, at("2026-11-29T04:29:00Z")),
            Some(sunday)
        );
        let next = w
            .occurrence("shop", None, at("2026-11-29T04:30:00Z"))
            .unwrap();
        assert_eq!(next.0, at("2026-12-06T02:30:00Z"), "a week later");
    }

    #[test]
    fn cron_fields_take_lists_ranges_steps_and_names() {
        let c = Cron::parse("*/15 9-17 * jan,dec 1-5").unwrap();
        assert!(c.matches(at("2026-12-01T09:45:00Z")), "Tuesday in December");
        assert!(!c.matches(at("2026-12-01T09:50:00Z")));
        assert!(!c.matches(at("2026-12-06T10:00:00Z")), "Sunday");
        assert!(!c.matches(at("2026-11-03T10:00:00Z")), "November");
        assert!(
            Cron::parse("0 0 * * 7")
                .unwrap()
                .matches(at("2026-11-29T00:00:00Z"))
        );
        for bad in [
            "* * *",
            "61 * * * *",
            "* * * * mon-",
            "*/0 * * * *",
            "5-1 * * * *",
        ] {
            assert!(Cron::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_fixed_range_silences_only_its_environments() {
        let w = Window::parse(&MaintenanceWindow {
            id: "upgrade".into(),
            systems: vec![],
            environments: vec!["prod".into()],
            start: Some("2026-12-01T02:00:00Z".into()),
            end: Some("2026-12-01T03:00:00+00:00".into()),
            cron: None,
            duration: None,
        })
        .unwrap();
        assert!(w.silences("any", Some("prod"), at("2026-12-01T02:30:00Z")));
        assert!(!w.silences("any", Some("staging"), at("2026-12-01T02:30:00Z")));
        assert!(!w.silences("any", None, at("2026-12-01T02:30:00Z")));
        assert!(!w.silences("any", Some("prod"), at("2026-12-01T03:00:00Z")));
    }
}
