//! Maintenance windows: a fixed range or a cron recurrence (five fields,
//! UTC) with a duration. They silence notifications, never monitoring.

use chrono::{DateTime, Utc};
use croner::parser::{CronParser, Seconds, Year};

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
    Recurring { cron: Box<Cron>, duration_ms: i64 },
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
                When::Recurring {
                    cron: Box::new(cron),
                    duration_ms,
                }
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
                // The first start whose occurrence has not ended by now.
                let start = cron.first_after(now_ms - duration_ms)?;
                (start <= now_ms + MAX_DURATION_MS + MINUTE_MS)
                    .then_some((start, start + duration_ms))
            }
        }
    }

    fn open_at(&self, at_ms: i64) -> bool {
        match &self.when {
            When::Range { start_ms, end_ms } => (*start_ms..*end_ms).contains(&at_ms),
            When::Recurring { cron, duration_ms } => {
                // Open if a recurrence started within the last `duration`.
                cron.latest_until(at_ms)
                    .is_some_and(|start| start > at_ms - duration_ms)
            }
        }
    }
}

fn rfc3339(text: &str) -> Result<i64, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp_millis())
        .map_err(|e| format!("`{text}` is not an RFC 3339 time ({e})"))
}

/// A five-field cron expression (minute, hour, day of month, month, day of
/// week; UTC), read and searched by croner: numbers, names, ranges, lists,
/// steps, `L`/`W`/`#` and the `@daily`-style nicknames. As in Vixie cron,
/// when both day fields are restricted either may match.
#[derive(Debug, Clone)]
pub struct Cron(croner::Cron);

const FIELDS: [&str; 5] = ["minute", "hour", "day of month", "month", "day of week"];

impl Cron {
    pub fn parse(text: &str) -> Result<Cron, String> {
        let nickname = text.trim_start().starts_with('@');
        let fields: Vec<&str> = text.split_whitespace().collect();
        if !nickname {
            if fields.len() != FIELDS.len() {
                return Err(format!(
                    "`{text}` needs five fields: minute hour day-of-month month day-of-week"
                ));
            }
            // croner reads month and day names wherever they stand.
            for (i, field) in fields.iter().enumerate() {
                if let Some(word) = misplaced_word(i, field) {
                    return Err(format!("`{text}`: {} cannot hold `{word}`", FIELDS[i]));
                }
            }
        }
        let parser = CronParser::builder()
            .seconds(Seconds::Disallowed)
            .year(Year::Disallowed)
            .build();
        let cron = parser.parse(text).map_err(|e| {
            // croner does not say which field is at fault: the first that
            // fails alone, the others left at `*`, is.
            let blamed = (!nickname)
                .then(|| {
                    (0..FIELDS.len()).find(|&i| {
                        let alone: Vec<&str> = (0..FIELDS.len())
                            .map(|j| if j == i { fields[i] } else { "*" })
                            .collect();
                        parser.parse(&alone.join(" ")).is_err()
                    })
                })
                .flatten();
            match blamed {
                Some(i) => format!("`{text}`: {} `{}` is not valid ({e})", FIELDS[i], fields[i]),
                None => format!("`{text}` is not a cron expression ({e})"),
            }
        })?;
        // One that never matches (`0 0 30 2 *`) would make every later
        // question search croner's whole calendar.
        if cron.find_next_occurrence(&Utc::now(), false).is_err() {
            return Err(format!("`{text}` never matches a date"));
        }
        Ok(Cron(cron))
    }

    /// The latest matching minute at or before `at_ms`.
    fn latest_until(&self, at_ms: i64) -> Option<i64> {
        let found = self.0.find_previous_occurrence(&minute_of(at_ms)?, true);
        found.ok().map(|t| t.timestamp_millis())
    }

    /// The first matching minute after `at_ms`.
    fn first_after(&self, at_ms: i64) -> Option<i64> {
        let found = self.0.find_next_occurrence(&minute_of(at_ms)?, false);
        found.ok().map(|t| t.timestamp_millis())
    }
}

/// The start of the minute holding `at_ms`: croner keeps the seconds and
/// milliseconds of the time it searches from in what it finds.
fn minute_of(at_ms: i64) -> Option<DateTime<Utc>> {
    DateTime::<Utc>::from_timestamp_millis(at_ms.div_euclid(MINUTE_MS) * MINUTE_MS)
}

/// A word in cron field `index` that croner would read as a month or day
/// name although the field takes none (`jan` as a day of week).
fn misplaced_word(index: usize, field: &str) -> Option<&str> {
    let allowed = |word: &str| match index {
        2 => matches!(word, "l" | "w" | "lw"),
        3 => MONTHS.contains(&word),
        4 => WEEKDAYS.contains(&word) || word == "l",
        _ => false,
    };
    field
        .split(|c: char| !c.is_ascii_alphabetic())
        .filter(|w| !w.is_empty())
        .find(|w| !allowed(&w.to_ascii_lowercase()))
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const WEEKDAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

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
        // Times off the whole minute find the same occurrence.
        assert_eq!(
            w.occurrence("shop", None, at("2026-11-29T03:00:00Z") + 250),
            Some(sunday)
        );
        assert!(!w.silences("shop", None, at("2026-11-29T04:29:59Z") + 999 + 1));
    }

    impl Cron {
        fn matches(&self, at_ms: i64) -> bool {
            self.latest_until(at_ms) == Some(at_ms)
        }
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
            "0 * * * * *",
            "61 * * * *",
            "* * * * mon-",
            "*/0 * * * *",
            "5-1 * * * *",
        ] {
            let error = Cron::parse(bad).unwrap_err();
            assert!(error.starts_with(&format!("`{bad}`")), "{error}");
        }
        assert!(
            Cron::parse("0 25 * * *")
                .unwrap_err()
                .starts_with("`0 25 * * *`: hour `25` is not valid ("),
            "the field at fault is named"
        );
        // Either restricted day field may match, as in Vixie cron.
        let first_or_monday = Cron::parse("0 0 1 * mon").unwrap();
        assert!(
            first_or_monday.matches(at("2026-12-01T00:00:00Z")),
            "the 1st"
        );
        assert!(
            first_or_monday.matches(at("2026-12-07T00:00:00Z")),
            "a Monday"
        );
        assert!(!first_or_monday.matches(at("2026-12-08T00:00:00Z")));
        for (bad, error) in [
            (
                "0 0 * * jan",
                "`0 0 * * jan`: day of week cannot hold `jan`",
            ),
            ("0 0 * mon *", "`0 0 * mon *`: month cannot hold `mon`"),
            ("0 0 30 2 *", "`0 0 30 2 *` never matches a date"),
        ] {
            assert_eq!(Cron::parse(bad).unwrap_err(), error);
        }
        assert!(
            Cron::parse("0 0 L * *").is_ok(),
            "the last day of the month"
        );
        assert!(Cron::parse("0 0 * * 5L").is_ok(), "the last Friday");
        assert!(
            Cron::parse("@every 5m")
                .unwrap_err()
                .starts_with("`@every 5m` is not a cron expression ("),
            "a nickname is not blamed on a field"
        );
        let daily = Cron::parse("@daily").unwrap();
        assert!(daily.matches(at("2026-12-08T00:00:00Z")));
        assert!(!daily.matches(at("2026-12-08T00:01:00Z")));
        assert_eq!(
            daily.latest_until(at("2026-12-08T13:37:12Z")),
            Some(at("2026-12-08T00:00:00Z"))
        );
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
