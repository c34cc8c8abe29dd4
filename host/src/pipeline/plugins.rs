//! The plugins of a configuration: every component in the plugin folder,
//! loaded once and looked up by kind and id.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use crate::runtime::{LoadError, Plugin, PluginKind, Runtime};

#[derive(Debug, thiserror::Error)]
pub enum PluginSetError {
    #[error("plugin folder {0}: {1}")]
    Folder(String, std::io::Error),
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("{kind} id `{id}` is provided by both {first} and {second}")]
    Duplicate {
        kind: PluginKind,
        id: String,
        first: String,
        second: String,
    },
}

#[derive(Default)]
pub struct PluginSet {
    strategies: BTreeMap<String, Arc<Plugin>>,
    collectors: BTreeMap<String, Arc<Plugin>>,
}

impl PluginSet {
    pub async fn load_dir(runtime: &Runtime, dir: &Path) -> Result<PluginSet, PluginSetError> {
        let entries = std::fs::read_dir(dir)
            .map_err(|e| PluginSetError::Folder(dir.display().to_string(), e))?;
        let mut paths: Vec<_> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("wasm"))
            .collect();
        paths.sort();
        let mut set = PluginSet::default();
        for path in paths {
            let plugin = runtime.load(&path).await?;
            let map = match plugin.info.kind {
                PluginKind::Strategy => &mut set.strategies,
                PluginKind::Collector => &mut set.collectors,
            };
            if let Some(existing) = map.get(&plugin.info.id) {
                return Err(PluginSetError::Duplicate {
                    kind: plugin.info.kind,
                    id: plugin.info.id.clone(),
                    first: existing.path.display().to_string(),
                    second: path.display().to_string(),
                });
            }
            map.insert(plugin.info.id.clone(), plugin);
        }
        Ok(set)
    }

    pub fn strategy(&self, id: &str) -> Option<&Arc<Plugin>> {
        self.strategies.get(id)
    }

    pub fn collector(&self, id: &str) -> Option<&Arc<Plugin>> {
        self.collectors.get(id)
    }

    pub fn strategy_ids(&self) -> Vec<&str> {
        self.strategies.keys().map(String::as_str).collect()
    }

    pub fn collector_ids(&self) -> Vec<&str> {
        self.collectors.keys().map(String::as_str).collect()
    }
}
