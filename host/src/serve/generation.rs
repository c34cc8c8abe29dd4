//! One loaded configuration, ready to schedule: its setup (config, plugins,
//! secrets), its checks prepared once, and the slices it defines.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::config::parse_duration;
use crate::pipeline::environments::effective_environments;
use crate::pipeline::run::{Pipeline, Prepared, RunReport};
use crate::pipeline::setup::Setup;
use crate::runtime::Runtime;
use crate::store::{Store, StoreError};

/// One (assignment, environment | none): the unit the scheduler runs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SliceKey {
    pub system: String,
    pub check: String,
    pub environment: Option<String>,
}

impl SliceKey {
    /// `system/check/environment` (`-` when none): stable across restarts,
    /// it seeds the slice's phase.
    pub fn id(&self) -> String {
        format!(
            "{}/{}/{}",
            self.system,
            self.check,
            self.environment.as_deref().unwrap_or("-")
        )
    }
}

pub struct Generation {
    pub setup: Setup,
    prepared: HashMap<String, Prepared>,
    /// Every slice and its interval in milliseconds.
    pub slices: BTreeMap<SliceKey, i64>,
}

impl Generation {
    /// Prepares every check (plugins resolved, configs migrated) and lists
    /// the slices of the non-paused assignments.
    pub async fn prepare(setup: Setup, runtime: &Runtime, store: &Store) -> Generation {
        let mut prepared = HashMap::new();
        {
            let pipeline = pipeline(&setup, runtime, store);
            for check in &setup.config.file.checks {
                prepared.insert(check.id.clone(), pipeline.prepare(check).await);
            }
        }
        let file = &setup.config.file;
        let mut slices = BTreeMap::new();
        for a in file.assignments.iter().filter(|a| !a.paused) {
            let (Some(system), Some(check)) = (file.system(&a.system), file.check(&a.check)) else {
                continue;
            };
            // Validation refuses a bad interval; a minimum keeps a typo from spinning.
            let interval = parse_duration(&check.interval)
                .map_or(60_000, |d| d.as_millis() as i64)
                .max(100);
            for environment in effective_environments(&a.environments, &system.environments) {
                slices.insert(
                    SliceKey {
                        system: a.system.clone(),
                        check: a.check.clone(),
                        environment,
                    },
                    interval,
                );
            }
        }
        Generation {
            setup,
            prepared,
            slices,
        }
    }

    /// Runs one slice through the whole pipeline and persists it; `None`
    /// when this configuration no longer has the slice.
    pub async fn run(
        &self,
        key: &SliceKey,
        runtime: &Runtime,
        store: &Store,
    ) -> Option<Result<RunReport, StoreError>> {
        let file = &self.setup.config.file;
        let system = file.system(&key.system)?;
        let check = file.check(&key.check)?;
        let prepared = self.prepared.get(&key.check)?;
        let pipeline = pipeline(&self.setup, runtime, store);
        Some(
            pipeline
                .run_one(check, prepared, system, key.environment.as_deref())
                .await,
        )
    }

    /// The strategy plugin of a check, for metrics.
    pub fn strategy_of(&self, check: &str) -> &str {
        self.setup
            .config
            .file
            .check(check)
            .map_or("", |c| c.strategy.plugin.as_str())
    }
}

fn pipeline<'a>(setup: &'a Setup, runtime: &'a Runtime, store: &'a Store) -> Pipeline<'a> {
    Pipeline {
        runtime,
        plugins: &setup.plugins,
        config: &setup.config.file,
        store,
        secrets: setup.secrets.clone(),
        concurrency: 1,
    }
}

pub type Shared = Arc<Generation>;
