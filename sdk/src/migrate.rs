use serde_json::Value;

type Step = fn(Value) -> Result<Value, String>;

/// A declarative chain of config migrations: step `n` turns a version-`n`
/// config into version `n + 1`. Each step must be idempotent: given a config
/// already in the newer shape it returns it unchanged, because stored configs
/// carry no version and the host assumes v1.
#[derive(Default, Clone)]
pub struct Migrations {
    steps: Vec<(u32, Step)>,
}

impl Migrations {
    pub fn new() -> Self {
        Migrations::default()
    }

    /// Registers the step from `from_version` to `from_version + 1`.
    pub fn step(mut self, from_version: u32, step: Step) -> Self {
        self.steps.push((from_version, step));
        self
    }

    /// Applies one step. A version without a registered step is a pure
    /// version bump and leaves the config unchanged.
    pub fn apply(&self, from_version: u32, config: Value) -> Result<Value, String> {
        match self.steps.iter().find(|(v, _)| *v == from_version) {
            Some((_, step)) => step(config),
            None => Ok(config),
        }
    }

    /// Applies every step from `from_version` up to `current_version`.
    pub fn upgrade(
        &self,
        from_version: u32,
        current_version: u32,
        mut config: Value,
    ) -> Result<Value, String> {
        for version in from_version..current_version {
            config = self
                .apply(version, config)
                .map_err(|e| format!("migration v{version}->v{}: {e}", version + 1))?;
        }
        Ok(config)
    }
}

/// Helpers for plugin unit tests.
pub mod testing {
    use super::Migrations;
    use serde_json::Value;

    /// Asserts that `v1` migrates to `expected` at `current_version`, and that
    /// running the whole chain again on the result changes nothing.
    pub fn assert_migrates(
        migrations: &Migrations,
        current_version: u32,
        v1: Value,
        expected: Value,
    ) {
        let migrated = migrations
            .upgrade(1, current_version, v1)
            .unwrap_or_else(|e| panic!("migration failed: {e}"));
        assert_eq!(migrated, expected, "v1 config did not migrate as expected");
        let again = migrations
            .upgrade(1, current_version, migrated.clone())
            .unwrap_or_else(|e| panic!("migration of an up-to-date config failed: {e}"));
        assert_eq!(again, migrated, "migrations are not idempotent");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rename_url(mut v: Value) -> Result<Value, String> {
        if let Some(url) = v.as_object_mut().and_then(|o| o.remove("url")) {
            v["baseUrl"] = url;
        }
        Ok(v)
    }

    #[test]
    fn chain_applies_steps_in_order_and_is_idempotent() {
        let m = Migrations::new().step(1, rename_url);
        testing::assert_migrates(
            &m,
            3,
            json!({"url": "http://x"}),
            json!({"baseUrl": "http://x"}),
        );
    }

    #[test]
    fn failing_step_names_the_versions() {
        let m = Migrations::new().step(2, |_| Err("boom".into()));
        let err = m.upgrade(1, 3, json!({})).unwrap_err();
        assert_eq!(err, "migration v2->v3: boom");
    }
}
