//! Entity ids: a system's rollup (`shop`) or one of its environments
//! (`shop::production`); and slice ids, one assignment in one environment
//! (or none). System, check and environment ids use `[A-Za-z0-9_.-]`
//! (`validate` refuses others), so `::` and `/` always separate them.

use std::collections::BTreeMap;

/// The entity a status, a transition or a notice is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntityId {
    system: String,
    environment: Option<String>,
}

impl EntityId {
    pub fn of(system: &str, environment: Option<&str>) -> EntityId {
        EntityId {
            system: system.to_string(),
            environment: environment.map(str::to_string),
        }
    }

    pub fn rollup(system: &str) -> EntityId {
        EntityId::of(system, None)
    }

    /// Reads a stored or requested id (`shop`, `shop::production`).
    pub fn parse(text: &str) -> EntityId {
        match text.split_once("::") {
            Some((system, environment)) => EntityId::of(system, Some(environment)),
            None => EntityId::rollup(text),
        }
    }

    pub fn system(&self) -> &str {
        &self.system
    }

    pub fn environment(&self) -> Option<&str> {
        self.environment.as_deref()
    }

    /// The system's own entity, worst over all its slices.
    pub fn is_rollup(&self) -> bool {
        self.environment.is_none()
    }

    /// The slices whose status rolls up into this entity: all of its
    /// system's for a rollup, those of its environment otherwise.
    pub fn slices_in<'a, T>(
        &'a self,
        slices: &'a BTreeMap<SliceId, T>,
    ) -> impl Iterator<Item = (&'a SliceId, &'a T)> {
        // Slices sort by system first: the range is the system's.
        slices
            .range(SliceId::of(&self.system, "", None)..)
            .take_while(|(slice, _)| slice.system == self.system)
            .filter(|(slice, _)| self.is_rollup() || slice.environment == self.environment)
    }
}

impl std::fmt::Display for EntityId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.environment {
            Some(env) => write!(f, "{}::{env}", self.system),
            None => f.write_str(&self.system),
        }
    }
}

/// One (assignment, environment | none): the unit the scheduler runs, a
/// row of `slices`, and what thresholds judge.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SliceId {
    pub system: String,
    pub check: String,
    pub environment: Option<String>,
}

impl SliceId {
    pub fn of(system: &str, check: &str, environment: Option<&str>) -> SliceId {
        SliceId {
            system: system.to_string(),
            check: check.to_string(),
            environment: environment.map(str::to_string),
        }
    }

    /// From a `slices` row, whose `env_key` is "" for no environment.
    pub fn from_row(system: String, check: String, env_key: String) -> SliceId {
        SliceId {
            system,
            check,
            environment: (!env_key.is_empty()).then_some(env_key),
        }
    }

    /// The `env_key` column: the environment, or "" for none (a unique key
    /// cannot hold NULLs that compare equal).
    pub fn env_key(&self) -> &str {
        self.environment.as_deref().unwrap_or("")
    }
}

/// `system/check/environment` (`-` when none): stable across restarts, it
/// seeds the slice's phase and names it in a cluster's schedule.
impl std::fmt::Display for SliceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}/{}/{}",
            self.system,
            self.check,
            self.environment.as_deref().unwrap_or("-")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip() {
        for text in ["shop", "shop::production", "a.b-c_d::e"] {
            assert_eq!(EntityId::parse(text).to_string(), text);
        }
        let env = EntityId::parse("shop::production");
        assert_eq!(
            (env.system(), env.environment(), env.is_rollup()),
            ("shop", Some("production"), false)
        );
        assert!(EntityId::parse("shop").is_rollup());
    }

    #[test]
    fn slice_ids_read_their_row_and_print_stably() {
        let none = SliceId::from_row("shop".into(), "ping".into(), String::new());
        assert_eq!((none.environment.as_deref(), none.env_key()), (None, ""));
        assert_eq!(none.to_string(), "shop/ping/-");
        let prod = SliceId::from_row("shop".into(), "ping".into(), "prod".into());
        assert_eq!(prod, SliceId::of("shop", "ping", Some("prod")));
        assert_eq!(
            (prod.env_key(), prod.to_string()),
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
