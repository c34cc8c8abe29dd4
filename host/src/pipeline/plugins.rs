//! The plugins of a configuration: every component in the plugin folder
//! (with a lock, every file it pins, at its digest), loaded once and looked
//! up by kind and id. A file that does not load is kept aside with its
//! error: the checks that name a plugin it might have provided fail with
//! that error, every other check runs. `run` loads only the files its
//! checks use, when the lock or the plugin index says which those are.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::lock::{LOCK_FILE, LockedPlugin, PluginLock};
use super::plugin_index::{PluginIndex, Stamp};
use crate::runtime::result_fields::ResultField;
use crate::runtime::{ComponentDigest, LoadError, Plugin, PluginKind, Runtime};

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

/// A file in the plugin folder that did not load, and why.
#[derive(Debug, Clone)]
pub struct BrokenPlugin {
    pub path: PathBuf,
    pub error: String,
    /// The plugin id the lock gives the file, if it is locked.
    pub locked_id: Option<String>,
    /// Its bytes are not the ones the lock pins.
    pub digest_mismatch: bool,
}

#[derive(Default)]
pub struct PluginSet {
    strategies: BTreeMap<String, Arc<Plugin>>,
    collectors: BTreeMap<String, Arc<Plugin>>,
    broken: Vec<BrokenPlugin>,
    /// Files of the folder left unloaded because the lock does not list them.
    unlocked: Vec<PathBuf>,
    /// Plugins of the folder known (from the lock or the index) but not
    /// loaded, because no selected check uses them.
    skipped: BTreeSet<(PluginKind, String)>,
    /// Files loaded from their bytes (not kept from a previous build), with
    /// their stamp from before they were read: what the index may learn.
    fresh: Vec<(PathBuf, Stamp)>,
}

/// A plugin a check names, by kind and id.
pub type PluginRef = (PluginKind, String);

impl PluginSet {
    /// Loads every component of the folder, all at once (a plugin whose
    /// `describe` hangs delays the others by nothing); with a lock, only
    /// the files it pins, each at its digest.
    pub async fn load_dir(
        runtime: &Runtime,
        dir: &Path,
        lock: Option<&PluginLock>,
    ) -> Result<PluginSet, PluginSetError> {
        Ok(
            PluginSet::reload_dir(runtime, dir, &PluginSet::default(), lock)
                .await?
                .0,
        )
    }

    /// Loads the folder again (unchanged files come from the compile
    /// cache). A file that no longer loads keeps its build from `previous`,
    /// so its checks go on running; each such failure is returned.
    pub async fn reload_dir(
        runtime: &Runtime,
        dir: &Path,
        previous: &PluginSet,
        lock: Option<&PluginLock>,
    ) -> Result<(PluginSet, Vec<String>), PluginSetError> {
        let mut index = PluginIndex::open(runtime.cache_dir());
        let loaded = PluginSet::load_files(runtime, dir, previous, lock, |_, _| None).await?;
        loaded.0.remember(&mut index);
        index.save();
        Ok(loaded)
    }

    /// Loads only the files that provide the `needed` plugins, as far as
    /// the lock or the plugin index tells without loading them (a file
    /// neither knows is loaded, to learn what it provides). The others'
    /// plugins are known as skipped: their checks are neither validated
    /// nor run. Should the index have been wrong, the whole folder loads.
    pub async fn load_needed(
        runtime: &Runtime,
        dir: &Path,
        lock: Option<&PluginLock>,
        needed: &BTreeSet<PluginRef>,
    ) -> Result<PluginSet, PluginSetError> {
        let mut index = PluginIndex::open(runtime.cache_dir());
        let unneeded = |path: &Path, pin: Option<&LockedPlugin>| {
            pin.map(|p| (p.kind, p.id.clone()))
                .or_else(|| index.lookup(path))
                .filter(|plugin| !needed.contains(plugin))
        };
        let (set, _) =
            PluginSet::load_files(runtime, dir, &PluginSet::default(), lock, unneeded).await?;
        let found = |(kind, id): &PluginRef| match kind {
            PluginKind::Strategy => set.strategies.contains_key(id),
            PluginKind::Collector => set.collectors.contains_key(id),
        };
        let set = if needed.iter().all(found) || set.skipped.is_empty() {
            set
        } else {
            PluginSet::load_files(runtime, dir, &PluginSet::default(), lock, |_, _| None)
                .await?
                .0
        };
        set.remember(&mut index);
        index.save();
        if !set.skipped.is_empty() {
            let skipped: Vec<String> = set
                .skipped
                .iter()
                .map(|(kind, id)| format!("{kind} `{id}`"))
                .collect();
            tracing::debug!(
                skipped = %skipped.join(", "),
                "plugins no selected check uses were left unloaded"
            );
        }
        Ok(set)
    }

    /// Notes in the index what each file loaded afresh provides, under
    /// the stamp it had before it was read: a file replaced meanwhile keeps
    /// no entry, and a previous build kept for a broken file none at all.
    fn remember(&self, index: &mut PluginIndex) {
        for (path, stamp) in &self.fresh {
            if let Some(plugin) = self.by_path(path) {
                index.remember(path, *stamp, plugin.info.kind, &plugin.info.id);
            }
        }
    }

    /// Loads the folder's files but those `skip` names a plugin for.
    async fn load_files(
        runtime: &Runtime,
        dir: &Path,
        previous: &PluginSet,
        lock: Option<&PluginLock>,
        skip: impl Fn(&Path, Option<&LockedPlugin>) -> Option<PluginRef>,
    ) -> Result<(PluginSet, Vec<String>), PluginSetError> {
        let mut set = PluginSet::default();
        let mut paths = Vec::new();
        let mut skipped_paths = Vec::new();
        for path in wasm_files(dir)? {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let pin = match lock.map(|l| l.pinned(name)) {
                None => None,
                Some(Some(pin)) => Some(pin),
                Some(None) => {
                    set.unlocked.push(path);
                    continue;
                }
            };
            match skip(&path, pin) {
                Some(plugin) => {
                    set.skipped.insert(plugin);
                    skipped_paths.push(path);
                }
                None => paths.push((path, pin)),
            }
        }
        for pin in lock.iter().flat_map(|l| &l.plugins) {
            let path = dir.join(&pin.file);
            if !paths.iter().any(|(p, _)| *p == path) && !skipped_paths.contains(&path) {
                set.broken.push(BrokenPlugin {
                    error: format!(
                        "{}: pinned in {LOCK_FILE} as {} `{}`, but not in the plugin folder",
                        path.display(),
                        pin.kind,
                        pin.id
                    ),
                    path,
                    locked_id: Some(pin.id.clone()),
                    digest_mismatch: false,
                });
            }
        }
        let stamps: Vec<Option<Stamp>> = paths.iter().map(|(path, _)| Stamp::of(path)).collect();
        let loads = futures::future::join_all(
            paths
                .iter()
                .map(|(path, pin)| runtime.load_pinned(path, pin.map(|p| p.digest))),
        )
        .await;
        let mut kept = Vec::new();
        for (((path, pin), loaded), stamp) in paths.into_iter().zip(loads).zip(stamps) {
            let plugin = match loaded {
                Ok(plugin) => {
                    if let Some(stamp) = stamp {
                        set.fresh.push((path.clone(), stamp));
                    }
                    plugin
                }
                Err(error) => match previous.by_path(&path) {
                    // A build whose digest the lock no longer pins is not kept.
                    Some(old) if pin.is_none_or(|p| p.digest == old.digest) => {
                        kept.push(format!("{error} (keeping its previous build)"));
                        old.clone()
                    }
                    _ => {
                        set.broken.push(BrokenPlugin {
                            path,
                            digest_mismatch: matches!(error, LoadError::Digest { .. }),
                            error: error.to_string(),
                            locked_id: pin.map(|p| p.id.clone()),
                        });
                        continue;
                    }
                },
            };
            // A file claiming an id another file has is broken too: which
            // of the two a check meant cannot be known.
            if let Err(duplicate) = set.insert(plugin, &path) {
                set.broken.push(BrokenPlugin {
                    path,
                    error: duplicate.to_string(),
                    locked_id: None,
                    digest_mismatch: false,
                });
            }
        }
        Ok((set, kept))
    }

    /// Adds a plugin loaded from elsewhere; its id must be new.
    pub fn add(&mut self, plugin: Arc<Plugin>) -> Result<(), PluginSetError> {
        let path = plugin.path.clone();
        self.insert(plugin, &path)
    }

    /// The files of the folder that did not load.
    pub fn broken(&self) -> &[BrokenPlugin] {
        &self.broken
    }

    /// The file that did not load and is locked as `id` or named after
    /// it, if any.
    pub fn broken_named(&self, id: &str) -> Option<&BrokenPlugin> {
        self.broken
            .iter()
            .find(|b| b.locked_id.as_deref() == Some(id))
            .or_else(|| {
                self.broken
                    .iter()
                    .find(|b| b.path.file_stem().and_then(|s| s.to_str()) == Some(id))
            })
    }

    /// Why no plugin of `kind` answers to `id`: the load error of the file
    /// named after it, or that it is unknown (and which files failed).
    pub fn missing(&self, kind: PluginKind, id: &str) -> String {
        if let Some(broken) = self.broken_named(id) {
            return format!("{kind} `{id}` did not load: {}", broken.error);
        }
        let mut message = format!("unknown {kind} `{id}`");
        if !self.unlocked.is_empty() {
            let files: Vec<String> = self
                .unlocked
                .iter()
                .map(|p| p.display().to_string())
                .collect();
            message.push_str(&format!(
                "; not loaded because {LOCK_FILE} does not pin them: {} (run `checkhost plugin lock` to pin them)",
                files.join(", ")
            ));
        }
        if !self.broken.is_empty() {
            let files: Vec<String> = self
                .broken
                .iter()
                .map(|b| b.path.display().to_string())
                .collect();
            message.push_str(&format!(
                "; plugin files that did not load: {}",
                files.join(", ")
            ));
        }
        message
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

    /// The file of the loaded plugin with this digest, for probes to fetch.
    pub fn path_of(&self, digest: &ComponentDigest) -> Option<PathBuf> {
        self.strategies
            .values()
            .chain(self.collectors.values())
            .find(|p| p.digest == *digest)
            .map(|p| p.path.clone())
    }

    /// The marks of a stored field: `collector` as the aggregates name it
    /// (`<id>` or `<id>#2`).
    pub fn result_field(&self, collector: &str, field: &str) -> Option<&ResultField> {
        // `<id>#<n>` is a second use; an id may itself hold a `#`.
        let id = match collector.rsplit_once('#') {
            Some((id, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => id,
            _ => collector,
        };
        self.collector(id)?
            .result_fields
            .iter()
            .find(|f| f.name == field)
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
