//! `checkhost bench`: measurements that print a ratio against a baseline
//! measured in the same process, never absolute thresholds.

pub mod api;
pub mod cluster;
pub mod cold_start;
pub mod pass;
pub mod pipeline;
pub mod probe;
pub mod runtime;
mod scratch;
pub mod serve;
pub mod store;

use std::time::{Duration, Instant};

/// Runs `f` `n` times after `n / 10` warm-up calls; returns time per call.
pub async fn per_call<F, Fut>(n: u32, mut f: F) -> anyhow::Result<Duration>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    for _ in 0..(n / 10).max(1) {
        f().await?;
    }
    let start = Instant::now();
    for _ in 0..n {
        f().await?;
    }
    Ok(start.elapsed() / n)
}

/// A temporary folder with the no-op test guests in `plugins/` and
/// `checkhost.yaml` made by `config` from that plugin folder's path.
pub(crate) fn noop_workspace(
    guests: &std::path::Path,
    config: impl FnOnce(&std::path::Path) -> String,
) -> anyhow::Result<(tempfile::TempDir, std::path::PathBuf)> {
    let dir = tempfile::tempdir()?;
    let plugins = dir.path().join("plugins");
    std::fs::create_dir(&plugins)?;
    for name in ["noop.wasm", "hostile.wasm"] {
        std::fs::copy(guests.join(name), plugins.join(name))?;
    }
    let path = dir.path().join("checkhost.yaml");
    std::fs::write(&path, config(&plugins))?;
    Ok((dir, path))
}

/// `systems:` s0… and `assignments:` of `check` to each, appended to a
/// bench configuration.
pub(crate) fn push_systems(yaml: &mut String, slices: usize, check: &str) {
    yaml.push_str("systems:\n");
    for i in 0..slices {
        yaml.push_str(&format!("  - {{id: s{i}}}\n"));
    }
    yaml.push_str("assignments:\n");
    for i in 0..slices {
        yaml.push_str(&format!("  - {{system: s{i}, check: {check}}}\n"));
    }
}

pub fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}
