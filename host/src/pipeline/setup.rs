//! Before any run: the configuration, its plugins and its secret provider,
//! loaded and validated the way `validate`, `run` and `serve` all need.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::config::{ConfigFile, LoadedConfig, load_config};
use crate::pipeline::lock::{LockError, PluginLock};
use crate::pipeline::plugins::{PluginRef, PluginSet};
use crate::pipeline::run::Selection;
use crate::pipeline::secrets::SecretProvider;
use crate::runtime::{PluginKind, Runtime};

/// Which of the folder's plugins to load.
enum Loading<'a> {
    All,
    /// All, again: a file that no longer loads keeps its previous build.
    Again(&'a PluginSet),
    /// Those the selected checks use.
    Needed(&'a Selection),
}

pub struct Setup {
    pub config: LoadedConfig,
    pub plugins: PluginSet,
    pub secrets: SecretProvider,
    /// `checkhost.lock` beside the config, if there is one.
    pub lock: Option<PluginLock>,
}

impl Setup {
    /// Loads the config file (or folder) and the plugin folder: `plugins`
    /// overrides the config's `plugins:`. With `previous`, a plugin that
    /// fails to load keeps its previous build; the failures are returned.
    /// The lock beside the config, if any, pins the plugin files; with
    /// `require_lock`, there must be one.
    pub async fn load(
        config_path: &Path,
        plugins: Option<&PathBuf>,
        runtime: &Runtime,
        previous: Option<&PluginSet>,
        require_lock: bool,
    ) -> Result<(Setup, Vec<String>), String> {
        let loading = match previous {
            None => Loading::All,
            Some(previous) => Loading::Again(previous),
        };
        Setup::load_with(config_path, plugins, runtime, loading, require_lock).await
    }

    /// As `load`, but only the plugins that the checks `selected` picks
    /// use are loaded (see `PluginSet::load_needed`): what `run` needs.
    pub async fn load_selected(
        config_path: &Path,
        plugins: Option<&PathBuf>,
        runtime: &Runtime,
        require_lock: bool,
        selected: &Selection,
    ) -> Result<Setup, String> {
        let loading = Loading::Needed(selected);
        let (setup, _) =
            Setup::load_with(config_path, plugins, runtime, loading, require_lock).await?;
        Ok(setup)
    }

    async fn load_with(
        config_path: &Path,
        plugins: Option<&PathBuf>,
        runtime: &Runtime,
        loading: Loading<'_>,
        require_lock: bool,
    ) -> Result<(Setup, Vec<String>), String> {
        let config = load_config(config_path).map_err(|e| e.to_string())?;
        let lock_path = PluginLock::path_for(config_path);
        let lock = PluginLock::read(&lock_path).map_err(|e| e.to_string())?;
        if require_lock && lock.is_none() {
            return Err(LockError::Missing { path: lock_path }.to_string());
        }
        let dir = plugin_dir(&config, plugins)?;
        let lock_ref = lock.as_ref();
        let (plugins, kept) = match loading {
            Loading::All => (
                PluginSet::load_dir(runtime, &dir, lock_ref).await,
                Vec::new(),
            ),
            Loading::Again(previous) => {
                match PluginSet::reload_dir(runtime, &dir, previous, lock_ref).await {
                    Ok((set, kept)) => (Ok(set), kept),
                    Err(e) => (Err(e), Vec::new()),
                }
            }
            Loading::Needed(selection) => {
                let needed = needed_plugins(&config.file, selection);
                let set = PluginSet::load_needed(runtime, &dir, lock_ref, &needed).await;
                (set, Vec::new())
            }
        };
        let plugins = plugins.map_err(|e| e.to_string())?;
        let secrets = SecretProvider {
            env_prefix: config.file.secrets.env_prefix.clone(),
            dir: config.file.secrets.dir.as_ref().map(|d| config.resolve(d)),
        };
        Ok((
            Setup {
                config,
                plugins,
                secrets,
                lock,
            },
            kept,
        ))
    }

    /// The database URL: the flag or environment first, then `database:` of
    /// the config (a SQLite path relative to the config file).
    pub fn database_url(&self, flag: Option<&str>) -> String {
        database_url(flag, Some(&self.config))
    }
}

/// The checks a selection runs: those assigned to the selected system
/// (any, without one) and picked by the selected check.
pub fn selected_checks(config: &ConfigFile, selection: &Selection) -> BTreeSet<String> {
    config
        .assignments
        .iter()
        .filter(|a| {
            selection.system.as_ref().is_none_or(|s| *s == a.system)
                && selection.check.as_ref().is_none_or(|c| *c == a.check)
        })
        .map(|a| a.check.clone())
        .collect()
}

/// The plugins of the checks a selection runs.
fn needed_plugins(config: &ConfigFile, selection: &Selection) -> BTreeSet<PluginRef> {
    let selected = selected_checks(config, selection);
    config
        .checks
        .iter()
        .filter(|check| selected.contains(&check.id))
        .flat_map(|check| {
            let strategy = (PluginKind::Strategy, check.strategy.plugin.clone());
            let collectors = check
                .collectors
                .iter()
                .map(|c| (PluginKind::Collector, c.plugin.clone()));
            std::iter::once(strategy).chain(collectors)
        })
        .collect()
}

/// The plugin folder: the flag, else `plugins:` of the config.
pub fn plugin_dir(config: &LoadedConfig, flag: Option<&PathBuf>) -> Result<PathBuf, String> {
    flag.cloned()
        .or_else(|| config.file.plugins.as_ref().map(|p| config.resolve(p)))
        .ok_or_else(|| {
            format!(
                "{}: no plugin folder: set `plugins:` or pass --plugins",
                config.path.display()
            )
        })
}

pub fn database_url(flag: Option<&str>, config: Option<&LoadedConfig>) -> String {
    if let Some(url) = flag {
        return url.to_string();
    }
    if let Some(config) = config
        && let Some(url) = &config.file.database
    {
        return match url.strip_prefix("sqlite://") {
            Some(path) => format!("sqlite://{}", config.resolve(Path::new(path)).display()),
            None => url.clone(),
        };
    }
    "sqlite://checkhost.db".into()
}
