//! Running a plugin's config migration chain. Stored configs carry no
//! version, so the host assumes v1 and applies every step up to the
//! plugin's current version; steps are idempotent by contract.
//!
//! Each step gets a fresh store (a store holds a bounded number of
//! instances, and a trapped store is poisoned), and the whole chain runs
//! under one deadline, wall clock and CPU: a guest blocked in a host call
//! is not stopped by epochs, so the chain is also dropped when time is up.

use std::time::Duration;

use serde_json::Value;

use super::host_memory::Charged;
use super::loader::{Plugin, PluginPre};
use super::sandbox::{Sandbox, new_store};
use super::text::{MAX_MESSAGE_BYTES, bounded};
use super::{DEFAULT_CALL_TIMEOUT, Runtime, describe_scope, epoch_ticks};

#[derive(Debug, Clone, thiserror::Error)]
pub enum MigrateError {
    #[error("plugin `{plugin}` could not migrate its config from v{from} to v{to}: {message}")]
    Step {
        plugin: String,
        from: u32,
        to: u32,
        message: String,
    },
    #[error("plugin `{plugin}` failed while migrating: {message}")]
    Guest { plugin: String, message: String },
    #[error("plugin `{plugin}` did not finish migrating its config within {ms} ms")]
    Timeout { plugin: String, ms: u128 },
}

impl Runtime {
    /// Migrates a config from v1 to the plugin's current version, within
    /// the default 10 s.
    pub async fn migrate(&self, plugin: &Plugin, config: &Value) -> Result<Value, MigrateError> {
        self.migrate_within(plugin, config, DEFAULT_CALL_TIMEOUT)
            .await
    }

    /// Migrates a config from v1 to the plugin's current version; the whole
    /// chain gets `timeout`.
    pub async fn migrate_within(
        &self,
        plugin: &Plugin,
        config: &Value,
        timeout: Duration,
    ) -> Result<Value, MigrateError> {
        let id = &plugin.info.id;
        if plugin.info.config_version <= 1 {
            return Ok(config.clone());
        }
        let json = config.to_string();
        let failed = plugin
            .failed_migrations
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&json)
            .cloned();
        if let Some(error) = failed {
            return Err(error);
        }
        // One instance of the pool at a time, like any run: a full pool
        // makes the migration wait, it never fails a run's instantiation.
        let _slot = self
            .slots
            .acquire()
            .await
            .map_err(|_| MigrateError::Guest {
                plugin: id.clone(),
                message: "runtime is shutting down".into(),
            })?;
        let (scope, allocations) = describe_scope(timeout);
        let chain = Charged::new(
            self.migrate_chain(plugin, json.clone(), &scope),
            allocations,
        );
        let migrated = match tokio::time::timeout(timeout, chain).await {
            Ok(migrated) => migrated,
            Err(_) => Err(MigrateError::Timeout {
                plugin: id.clone(),
                ms: timeout.as_millis(),
            }),
        };
        if let Err(error) = &migrated {
            plugin
                .failed_migrations
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(json, error.clone());
        }
        migrated
    }

    async fn migrate_chain(
        &self,
        plugin: &Plugin,
        mut json: String,
        scope: &super::scope::RunScope,
    ) -> Result<Value, MigrateError> {
        let id = &plugin.info.id;
        let guest = |e: wasmtime::Error| MigrateError::Guest {
            plugin: id.clone(),
            message: bounded(
                format!("{:#}", super::failure::explain(e, scope, id)),
                MAX_MESSAGE_BYTES,
            ),
        };
        for from in 1..plugin.info.config_version {
            // The CPU budget is what is left of the chain's deadline.
            let left = scope
                .deadline
                .saturating_duration_since(std::time::Instant::now());
            let mut store = new_store(
                &self.engine,
                Sandbox::new(id, &[], scope),
                epoch_ticks(u64::try_from(left.as_millis()).unwrap_or(u64::MAX)),
            );
            let step = match &plugin.pre {
                PluginPre::Strategy(pre) => {
                    let b = pre.instantiate_async(&mut store).await.map_err(guest)?;
                    b.checkhost_plugin_strategy_plugin()
                        .call_migrate(&mut store, from, &json)
                        .await
                }
                PluginPre::Collector(pre) => {
                    let b = pre.instantiate_async(&mut store).await.map_err(guest)?;
                    b.checkhost_plugin_collector_plugin()
                        .call_migrate(&mut store, from, &json)
                        .await
                }
            };
            json = step.map_err(guest)?.map_err(|message| MigrateError::Step {
                plugin: id.clone(),
                from,
                to: from + 1,
                message: bounded(message, MAX_MESSAGE_BYTES),
            })?;
        }
        serde_json::from_str(&json).map_err(|e| MigrateError::Guest {
            plugin: id.clone(),
            message: format!("migrated config is not JSON: {e}"),
        })
    }
}
