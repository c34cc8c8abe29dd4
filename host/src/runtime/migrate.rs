//! Running a plugin's config migration chain. Stored configs carry no
//! version, so the host assumes v1 and applies every step up to the
//! plugin's current version; steps are idempotent by contract.

use serde_json::Value;

use super::loader::{Plugin, PluginPre};
use super::sandbox::{Sandbox, new_store};
use super::{Runtime, describe_scope, epoch_ticks};

#[derive(Debug, thiserror::Error)]
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
}

impl Runtime {
    /// Migrates a config from v1 to the plugin's current version.
    pub async fn migrate(&self, plugin: &Plugin, config: &Value) -> Result<Value, MigrateError> {
        let id = &plugin.info.id;
        let current = plugin.info.config_version;
        if current <= 1 {
            return Ok(config.clone());
        }
        let scope = describe_scope();
        let mut store = new_store(
            &self.engine,
            Sandbox::new(id, &[], &scope),
            epoch_ticks(scope.limits.timeout_ms),
        );
        let guest = |e: wasmtime::Error| MigrateError::Guest {
            plugin: id.clone(),
            message: format!("{e:#}"),
        };
        let mut json = config.to_string();
        for from in 1..current {
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
                message,
            })?;
        }
        serde_json::from_str(&json).map_err(|e| MigrateError::Guest {
            plugin: id.clone(),
            message: format!("migrated config is not JSON: {e}"),
        })
    }
}
