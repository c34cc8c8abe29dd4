//! Before any run: the configuration, its plugins and its secret provider,
//! loaded and validated the way `validate`, `run` and `serve` all need.

use std::path::{Path, PathBuf};

use crate::config::{LoadedConfig, load_config};
use crate::pipeline::plugins::PluginSet;
use crate::pipeline::secrets::SecretProvider;
use crate::runtime::Runtime;
use crate::validate::Problem;

pub struct Setup {
    pub config: LoadedConfig,
    pub plugins: PluginSet,
    pub secrets: SecretProvider,
}

impl Setup {
    /// Loads the config file (or folder) and the plugin folder: `plugins`
    /// overrides the config's `plugins:`. With `previous`, a plugin that
    /// fails to load keeps its previous build; the failures are returned.
    pub async fn load(
        config_path: &Path,
        plugins: Option<&PathBuf>,
        runtime: &Runtime,
        previous: Option<&PluginSet>,
    ) -> Result<(Setup, Vec<String>), String> {
        let config = load_config(config_path).map_err(|e| e.to_string())?;
        let dir = plugins
            .cloned()
            .or_else(|| config.file.plugins.as_ref().map(|p| config.resolve(p)))
            .ok_or_else(|| {
                format!(
                    "{}: no plugin folder: set `plugins:` or pass --plugins",
                    config.path.display()
                )
            })?;
        let (plugins, kept) = match previous {
            None => (
                PluginSet::load_dir(runtime, &dir)
                    .await
                    .map_err(|e| e.to_string())?,
                Vec::new(),
            ),
            Some(previous) => PluginSet::reload_dir(runtime, &dir, previous)
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
            },
            kept,
        ))
    }

    /// The problems that stop a configuration from running. A missing
    /// secret does not, nor a plugin's fault: each fails the runs it
    /// concerns, by name.
    pub async fn blocking_problems(&self, runtime: &Runtime) -> Vec<Problem> {
        crate::validate::validate(&self.config.file, &self.plugins, runtime, &self.secrets)
            .await
            .into_iter()
            .filter(Problem::blocks_running)
            .collect()
    }

    /// The database URL: the flag or environment first, then `database:` of
    /// the config (a SQLite path relative to the config file).
    pub fn database_url(&self, flag: Option<&str>) -> String {
        database_url(flag, Some(&self.config))
    }
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
