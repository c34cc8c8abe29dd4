//! Entity ids: a system's rollup (`shop`) or one of its environments
//! (`shop::production`). System and environment ids use `[A-Za-z0-9_.-]`
//! (`validate` refuses others), so `::` always separates the two.

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
}

impl std::fmt::Display for EntityId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.environment {
            Some(env) => write!(f, "{}::{env}", self.system),
            None => f.write_str(&self.system),
        }
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
}
