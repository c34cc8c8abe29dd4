//! Hot reload on SIGHUP and on changes to the config or plugin files. The
//! new configuration is validated as `checkhost validate` does; an invalid
//! one is logged problem by problem and counted while the running one goes
//! on. A plugin that no longer loads keeps its previous build.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{EventKind, RecursiveMode, Watcher};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, watch};

use super::generation::Generation;
use super::live::LiveConfig;
use super::metrics::Metrics;
use crate::clock::now_ms;
use crate::pipeline::lock::LOCK_FILE;
use crate::pipeline::setup::Setup;
use crate::runtime::Runtime;
use crate::store::Store;

pub struct Reloader {
    pub config_path: PathBuf,
    pub plugins_flag: Option<PathBuf>,
    pub require_lock: bool,
    pub runtime: Arc<Runtime>,
    pub store: Arc<Store>,
    pub live: Arc<LiveConfig>,
    pub metrics: Arc<Metrics>,
}

impl Reloader {
    /// Loads, validates and applies the configuration; false when it was
    /// refused and the running one stays.
    pub async fn reload(&self) -> bool {
        let previous = self.live.generation();
        let loaded = Setup::load(
            &self.config_path,
            self.plugins_flag.as_ref(),
            &self.runtime,
            Some(&previous.setup.plugins),
            self.require_lock,
        )
        .await;
        let (setup, kept) = match loaded {
            Ok(loaded) => loaded,
            Err(error) => {
                self.metrics.reload_failures.inc();
                tracing::error!("reload refused, the running configuration stays: {error}");
                return false;
            }
        };
        for problem in &kept {
            self.metrics.reload_failures.inc();
            tracing::error!("plugin failed to load on reload: {problem}");
        }
        let problems = crate::validate::blocking_problems(&setup, &self.runtime, None).await;
        if !problems.is_empty() {
            self.metrics.reload_failures.inc();
            for p in &problems {
                tracing::error!(
                    place = %p.place,
                    "reload refused, the running configuration stays: {}: {}",
                    self.config_path.display(),
                    p
                );
            }
            return false;
        }
        let current = self.live.generation();
        if setup.config.file.traces != current.setup.config.file.traces {
            tracing::warn!("traces: a changed section takes effect when the daemon restarts");
        }
        let traces = current.traces.clone();
        drop(current);
        let generation = Generation::prepare(setup, &self.runtime, &self.store, traces).await;
        let file = &generation.setup.config.file;
        // In a cluster only the nodes of the owning version write the shared
        // checks and assignments (with the schedule); see `cluster`.
        let standalone = !self.store.shared();
        if standalone {
            // What the sync re-derives is notified under the new targets
            // and maintenance windows.
            self.store.set_router(generation.notifier.clone());
            if let Err(error) = self
                .store
                .sync_config(&file.checks, &file.assignments, &file.systems, now_ms())
                .await
            {
                self.store
                    .set_router(self.live.generation().notifier.clone());
                self.metrics.reload_failures.inc();
                tracing::error!("reload refused, the running configuration stays: {error}");
                return false;
            }
        }
        tracing::info!(slices = generation.slices.len(), "configuration reloaded");
        self.metrics.reloads.inc();
        self.metrics.costs.reconfigure(
            file.metrics.check_labels,
            &file.checks.iter().map(|c| c.id.as_str()).collect(),
        );
        self.live.replace(Arc::new(generation));
        true
    }

    /// Reloads on SIGHUP and on file changes until `stop` turns true.
    pub async fn run(
        self: Arc<Self>,
        plugin_dir: Option<PathBuf>,
        mut stop: watch::Receiver<bool>,
    ) {
        let (changes, mut changed) = mpsc::channel::<()>(1);
        let _watcher = watch_files(&self.config_path, plugin_dir.as_deref(), changes)
            .map_err(|e| tracing::warn!("not watching files, reload with SIGHUP: {e}"))
            .ok();
        let mut hangup = match signal(SignalKind::hangup()) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!("cannot listen for SIGHUP: {e}");
                None
            }
        };
        loop {
            tokio::select! {
                _ = stop.changed() => return,
                Some(()) = async { match hangup.as_mut() { Some(h) => h.recv().await, None => None } } => {
                    tracing::info!("SIGHUP: reloading");
                }
                Some(()) = changed.recv() => {
                    // Editors write in several steps: let them finish.
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    while changed.try_recv().is_ok() {}
                    tracing::info!("configuration files changed: reloading");
                }
            }
            self.reload().await;
        }
    }
}

/// Watches the config file (or folder of YAML files) and the plugin folder;
/// each relevant change sends on `changes` (coalesced).
fn watch_files(
    config: &Path,
    plugin_dir: Option<&Path>,
    changes: mpsc::Sender<()>,
) -> notify::Result<notify::RecommendedWatcher> {
    let config = std::fs::canonicalize(config).unwrap_or_else(|_| config.to_path_buf());
    let plugin_dir =
        plugin_dir.map(|d| std::fs::canonicalize(d).unwrap_or_else(|_| d.to_path_buf()));
    let config_is_dir = config.is_dir();
    let relevant = {
        let (config, plugin_dir) = (config.clone(), plugin_dir.clone());
        move |path: &Path| {
            let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
            let yaml = matches!(ext, "yaml" | "yml");
            (config_is_dir && yaml && path.starts_with(&config))
                || path == config
                || path.file_name().is_some_and(|n| n == LOCK_FILE)
                || (ext == "wasm" && plugin_dir.as_ref().is_some_and(|d| path.starts_with(d)))
        }
    };
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else { return };
        if matches!(event.kind, EventKind::Access(_)) {
            return;
        }
        if event.paths.iter().any(|p| relevant(p)) {
            let _ = changes.try_send(());
        }
    })?;
    // Editors replace files: watch the folder that holds the file.
    let config_dir = if config_is_dir {
        config.clone()
    } else {
        config
            .parent()
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
    };
    watcher.watch(&config_dir, RecursiveMode::NonRecursive)?;
    if let Some(dir) = &plugin_dir {
        watcher.watch(dir, RecursiveMode::NonRecursive)?;
    }
    Ok(watcher)
}
