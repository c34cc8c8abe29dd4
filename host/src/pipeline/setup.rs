//! Before any run: the configuration, its plugins and its secret provider,
//! loaded and validated the way `validate`, `run` and `serve` all need.

use std::path::{Path, PathBuf};

use crate::config::{LoadedConfig, load_config};
use crate::pipeline::lock::{LockError, PluginLock};
use crate::pipeline::plugins::PluginSet;
use crate::pipeline::secrets::SecretProvider;
use crate::runtime::Runtime;

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
        let config = load_config(config_path).map_err(|e| e.to_string())?;
        let lock_path = PluginLock::path_for(config_path);
        let lock = PluginLock::read(&lock_path).map_err(|e| e.to_string())?;
        if require_lock && lock.is_none() {
            return Err(LockError::Missing { path: lock_path }.to_string());
        }
        let dir = plugin_dir(&config, plugins)?;
        let (plugins, kept) = match previous {
            None => (
                PluginSet::load_dir(runtime, &dir, lock.as_ref())
                    .await
                    .map_err(|e| e.to_string())?,
                Vec::new(),
            ),
            Some(previous) => PluginSet::reload_dir(runtime, &dir, previous, lock.as_ref())
                .await
                .map_err(|e| e.to_string())?,
        };
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
