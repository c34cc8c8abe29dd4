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
        let mut set = PluginSet::default();
        for path in wasm_files(dir)? {
            set.insert(runtime.load(&path).await?, &path)?;
        }
        Ok(set)
    }

    /// Loads the folder again (unchanged files come from the compile
    /// cache). A file that no longer loads keeps its build from `previous`,
    /// so its checks go on running; each such failure is returned.
    pub async fn reload_dir(
        runtime: &Runtime,
        dir: &Path,
        previous: &PluginSet,
    ) -> Result<(PluginSet, Vec<String>), PluginSetError> {
        let mut set = PluginSet::default();
        let mut kept = Vec::new();
        for path in wasm_files(dir)? {
            let plugin = match runtime.load(&path).await {
                Ok(plugin) => plugin,
                Err(error) => match previous.by_path(&path) {
                    Some(old) => {
                        kept.push(format!("{error} (keeping its previous build)"));
                        old.clone()
                    }
                    None => return Err(error.into()),
                },
            };
            set.insert(plugin, &path)?;
        }
        Ok((set, kept))
    }

    fn by_path(&self, path: &Path) -> Option<&Arc<Plugin>> {
        self.strategies
            .values()
            .chain(self.collectors.values())
            .find(|p| p.path == path)
    }

    fn insert(&mut self, plugin: Arc<Plugin>, path: &Path) -> Result<(), PluginSetError> {
        let map = match plugin.info.kind {
            PluginKind::Strategy => &mut self.strategies,
            PluginKind::Collector => &mut self.collectors,
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
        Ok(())
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

fn wasm_files(dir: &Path) -> Result<Vec<std::path::PathBuf>, PluginSetError> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| PluginSetError::Folder(dir.display().to_string(), e))?;
    let mut paths: Vec<_> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("wasm"))
        .collect();
    paths.sort();
    Ok(paths)
}
