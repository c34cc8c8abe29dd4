//! Entity ids: a system's rollup (`shop`), one of its environments
//! (`shop::production`), or one location of either (`shop::production@eu-west`,
//! `shop@eu-west`); and slice ids, one assignment in one environment (or
//! none) at one location (or the server itself). System, check, environment
//! and location ids use `[A-Za-z0-9_.-]` (`validate` refuses others), so
//! `::`, `@` and `/` always separate them.

use std::borrow::Cow;
use std::collections::BTreeMap;

/// The entity a status, a transition or a notice is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntityId {
    system: String,
    environment: Option<String>,
    location: Option<String>,
}

impl EntityId {
    pub fn of(system: &str, environment: Option<&str>) -> EntityId {
        EntityId::located(system, environment, None)
    }

    pub fn located(system: &str, environment: Option<&str>, location: Option<&str>) -> EntityId {
        EntityId {
            system: system.to_string(),
            environment: environment.map(str::to_string),
            location: location.map(str::to_string),
        }
    }

    pub fn rollup(system: &str) -> EntityId {
        EntityId::of(system, None)
    }

    /// Reads a stored or requested id (`shop`, `shop::production`,
    /// `shop::production@eu-west`, `shop@eu-west`).
    pub fn parse(text: &str) -> EntityId {
        let (rest, location) = match text.split_once('@') {
            Some((rest, location)) => (rest, Some(location)),
            None => (text, None),
        };
        match rest.split_once("::") {
            Some((system, environment)) => EntityId::located(system, Some(environment), location),
            None => EntityId::located(rest, None, location),
        }
    }

    pub fn system(&self) -> &str {
        &self.system
    }

    pub fn environment(&self) -> Option<&str> {
        self.environment.as_deref()
    }

    pub fn location(&self) -> Option<&str> {
        self.location.as_deref()
    }

    /// The system's own entity, worst over all its slices.
    pub fn is_rollup(&self) -> bool {
        self.environment.is_none() && self.location.is_none()
    }

    /// Whether a slice of this entity's system in `environment` at
    /// `location` rolls up into it: every slice into the rollup, an
    /// environment's slices (wherever they run) into the environment, and
    /// one location's into that location's entity.
    pub fn holds(&self, environment: Option<&str>, location: Option<&str>) -> bool {
        self.is_rollup()
            || (self.environment.as_deref() == environment
                && self
                    .location
                    .as_ref()
                    .is_none_or(|l| Some(l.as_str()) == location))
    }

    /// Whether `other` is a narrower entity inside this one: its change is
    /// the one to notify about, and this one's is only its echo.
    pub fn covers(&self, other: &EntityId) -> bool {
        self != other
            && self.system == other.system
            && self.holds(other.environment(), other.location())
            && !other.is_rollup()
    }

    /// The slices whose status rolls up into this entity.
    pub fn slices_in<'a, T>(
        &'a self,
        slices: &'a BTreeMap<SliceId, T>,
    ) -> impl Iterator<Item = (&'a SliceId, &'a T)> {
        // Slices sort by system first: the range is the system's.
        slices
            .range(SliceId::of(&self.system, "", None)..)
            .take_while(|(slice, _)| slice.system == self.system)
            .filter(|(slice, _)| {
                self.holds(slice.environment.as_deref(), slice.location.as_deref())
            })
    }
}

impl std::fmt::Display for EntityId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.system)?;
        if let Some(env) = &self.environment {
            write!(f, "::{env}")?;
        }
        if let Some(location) = &self.location {
            write!(f, "@{location}")?;
        }
        Ok(())
    }
}

/// The entities a slice's run touches, widest first: its system's rollup,
/// its environment's entity, and its location's.
pub fn entities_of(
    system: &str,
    environment: Option<&str>,
    location: Option<&str>,
) -> Vec<EntityId> {
    let mut ids = vec![EntityId::rollup(system)];
    if environment.is_some() {
        ids.push(EntityId::of(system, environment));
    }
    if location.is_some() {
        ids.push(EntityId::located(system, environment, location));
    }
    ids
}

/// The environment and location a slice key (`env_key`) names:
/// `production`, `production@eu-west`, `@eu-west` or "".
pub fn split_key(key: &str) -> (Option<&str>, Option<&str>) {
    let (env, location) = match key.split_once('@') {
        Some((env, location)) => (env, Some(location)),
        None => (key, None),
    };
    ((!env.is_empty()).then_some(env), location)
}

/// One (assignment, environment | none, location | here): the unit the
/// scheduler or a probe runs, a row of `slices`, and what thresholds judge.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SliceId {
    pub system: String,
    pub check: String,
    pub environment: Option<String>,
    /// The probe location that runs it; `None`: the server itself.
    pub location: Option<String>,
}

impl SliceId {
    pub fn of(system: &str, check: &str, environment: Option<&str>) -> SliceId {
        SliceId::located(system, check, environment, None)
    }

    pub fn located(
        system: &str,
        check: &str,
        environment: Option<&str>,
        location: Option<&str>,
    ) -> SliceId {
        SliceId {
            system: system.to_string(),
            check: check.to_string(),
            environment: environment.map(str::to_string),
            location: location.map(str::to_string),
        }
    }

    /// From a `slices` row, whose `env_key` is "" for no environment and
    /// ends in `@<location>` for a probe's slice.
    pub fn from_row(system: String, check: String, env_key: String) -> SliceId {
        let (environment, location) = split_key(&env_key);
        SliceId::located(&system, &check, environment, location)
    }

    /// The `env_key` column: the environment ("" for none), then
    /// `@<location>` for a probe's slice (a unique key cannot hold NULLs
    /// that compare equal).
    pub fn env_key(&self) -> Cow<'_, str> {
        let env = self.environment.as_deref().unwrap_or("");
        match &self.location {
            None => Cow::Borrowed(env),
            Some(location) => Cow::Owned(format!("{env}@{location}")),
        }
    }

    /// The entity this slice's changes notify about.
    pub fn own_entity(&self) -> EntityId {
        EntityId::located(
            &self.system,
            self.environment.as_deref(),
            self.location.as_deref(),
        )
    }
}

/// `system/check/environment` (`-` when none), then `@location` for a
/// probe's slice: stable across restarts, it seeds the slice's phase and
/// names it in a cluster's schedule.
impl std::fmt::Display for SliceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}/{}/{}",
            self.system,
            self.check,
            self.environment.as_deref().unwrap_or("-")
        )?;
        if let Some(location) = &self.location {
            write!(f, "@{location}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip() {
        for text in [
            "shop",
            "shop::production",
            "a.b-c_d::e",
            "shop::production@eu-west",
            "shop@eu-west",
        ] {
            assert_eq!(EntityId::parse(text).to_string(), text);
        }
        let env = EntityId::parse("shop::production");
        assert_eq!(
            (env.system(), env.environment(), env.is_rollup()),
            ("shop", Some("production"), false)
        );
        assert!(EntityId::parse("shop").is_rollup());
        let located = EntityId::parse("shop::production@eu-west");
        assert_eq!(
            (
                located.environment(),
                located.location(),
                located.is_rollup()
            ),
            (Some("production"), Some("eu-west"), false)
        );
        let envless = EntityId::parse("shop@eu-west");
        assert_eq!(
            (envless.environment(), envless.location()),
            (None, Some("eu-west"))
        );
        assert!(!envless.is_rollup());
    }

    #[test]
    fn located_slices_roll_up_into_their_environment_and_system() {
        let located = SliceId::located("shop", "ping", Some("prod"), Some("eu"));
        assert_eq!(located.env_key(), "prod@eu");
        assert_eq!(located.to_string(), "shop/ping/prod@eu");
        assert_eq!(
            SliceId::from_row("shop".into(), "ping".into(), "prod@eu".into()),
            located
        );
        let envless = SliceId::from_row("shop".into(), "ping".into(), "@eu".into());
        assert_eq!(
            (envless.environment.as_deref(), envless.location.as_deref()),
            (None, Some("eu"))
        );
        assert_eq!(envless.env_key(), "@eu");
        let names = |s: &SliceId| -> Vec<String> {
            entities_of(&s.system, s.environment.as_deref(), s.location.as_deref())
                .iter()
                .map(ToString::to_string)
                .collect()
        };
        assert_eq!(names(&located), ["shop", "shop::prod", "shop::prod@eu"]);
        assert_eq!(names(&envless), ["shop", "shop@eu"]);
        assert_eq!(located.own_entity().to_string(), "shop::prod@eu");
        let (system, env, here) = (
            EntityId::parse("shop"),
            EntityId::parse("shop::prod"),
            EntityId::parse("shop::prod@eu"),
        );
        assert!(env.holds(Some("prod"), Some("eu")) && env.holds(Some("prod"), None));
        assert!(!here.holds(Some("prod"), None) && !here.holds(Some("prod"), Some("us")));
        assert!(!EntityId::parse("shop@eu").holds(Some("prod"), Some("eu")));
        assert!(system.covers(&env) && system.covers(&here) && env.covers(&here));
        assert!(
            !here.covers(&env)
                && !env.covers(&env)
                && !env.covers(&EntityId::parse("shop::dev@eu"))
        );
    }

    #[test]
    fn slice_ids_read_their_row_and_print_stably() {
        let none = SliceId::from_row("shop".into(), "ping".into(), String::new());
        assert_eq!(
            (none.environment.as_deref(), none.env_key().as_ref()),
            (None, "")
        );
        assert_eq!(none.to_string(), "shop/ping/-");
        let prod = SliceId::from_row("shop".into(), "ping".into(), "prod".into());
        assert_eq!(prod, SliceId::of("shop", "ping", Some("prod")));
        assert_eq!(
            (prod.env_key().as_ref(), prod.to_string()),
            ("prod", "shop/ping/prod".to_string())
        );
    }

    #[test]
    fn an_entity_finds_the_slices_it_rolls_up() {
        let slices: BTreeMap<SliceId, ()> = [
            SliceId::of("shop", "ping", None),
            SliceId::of("shop", "ping", Some("prod")),
            SliceId::of("shop", "api", Some("dev")),
            SliceId::of("shop.eu", "ping", Some("prod")),
            SliceId::of("shoq", "ping", Some("prod")),
        ]
        .into_iter()
        .map(|s| (s, ()))
        .collect();
        let names = |entity: &str| -> Vec<String> {
            EntityId::parse(entity)
                .slices_in(&slices)
                .map(|(s, ())| s.to_string())
                .collect()
        };
        assert_eq!(
            names("shop"),
            ["shop/api/dev", "shop/ping/-", "shop/ping/prod"]
        );
        assert_eq!(names("shop::prod"), ["shop/ping/prod"]);
        assert_eq!(names("shop.eu"), ["shop.eu/ping/prod"]);
        assert!(names("sho").is_empty());
    }
}
