//! Cold start: `checkhost run` of one check, each a fresh child process,
//! with a plugin folder of many components (the shipped guests) against a
//! folder holding only the two the check uses. `run` loads only what its
//! checks use, so the two should cost the same; the absolute wall time is
//! set against the 50 ms a one-off run should take to reach its result.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::Context;

use super::pass::{PassCost, measure_child};

/// The plugins the measured check uses, as files of the guests folder.
const USED: [&str; 2] = ["http.wasm", "http-request.wasm"];
/// Unmeasured runs per side first: they fill the compile cache and the
/// plugin index, as any earlier run on the machine would have.
const WARM_UPS: usize = 2;
/// What a one-off run of one check should take to reach its result.
pub const TARGET: Duration = Duration::from_millis(50);

pub struct ColdStartReport {
    pub runs: usize,
    /// Plugin files in the full folder.
    pub folder_files: usize,
    pub full: Vec<PassCost>,
    pub minimal: Vec<PassCost>,
}

impl ColdStartReport {
    pub fn render(&self) -> String {
        let (full, minimal) = (Medians::of(&self.full), Medians::of(&self.minimal));
        let row = |name: &str, m: &Medians| {
            format!(
                "{name:<34} {:>8.1} {:>8.1} {:>14.0}\n",
                m.wall.as_secs_f64() * 1e3,
                m.cpu.as_secs_f64() * 1e3,
                m.peak_rss_mib
            )
        };
        let mut out = format!(
            "`checkhost run` of one check (http + request against a loopback server), \
             a fresh process each, median of {} runs per side:\n{:<34} {:>8} {:>8} {:>14}\n",
            self.runs, "plugin folder", "wall ms", "CPU ms", "peak RSS MiB"
        );
        out.push_str(&row(
            &format!("all guests ({} files)", self.folder_files),
            &full,
        ));
        out.push_str(&row("only the two plugins used", &minimal));
        out.push_str(&format!(
            "ratio all guests / only the two used: wall {:.2}, peak RSS {:.2}\n",
            full.wall.as_secs_f64() / minimal.wall.as_secs_f64(),
            full.peak_rss_mib / minimal.peak_rss_mib,
        ));
        out.push_str(&format!(
            "cold start with all guests: {:.1} ms (target < {} ms: {})",
            full.wall.as_secs_f64() * 1e3,
            TARGET.as_millis(),
            if full.wall < TARGET { "met" } else { "not met" }
        ));
        out
    }
}

struct Medians {
    wall: Duration,
    cpu: Duration,
    peak_rss_mib: f64,
}

impl Medians {
    fn of(costs: &[PassCost]) -> Medians {
        fn median<T: Copy + PartialOrd>(mut v: Vec<T>) -> T {
            v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
            v[v.len() / 2]
        }
        Medians {
            wall: median(costs.iter().map(|c| c.wall).collect()),
            cpu: median(costs.iter().map(|c| c.cpu).collect()),
            peak_rss_mib: median(costs.iter().map(|c| c.peak_rss_mib).collect()),
        }
    }
}

pub async fn run(guests: &Path, runs: usize) -> anyhow::Result<ColdStartReport> {
    let runs = runs.max(1);
    let guests = std::fs::canonicalize(guests)
        .with_context(|| format!("plugin folder {}", guests.display()))?;
    let folder_files = std::fs::read_dir(&guests)?
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "wasm"))
        .count();
    let dir = tempfile::tempdir()?;
    let minimal = dir.path().join("plugins");
    std::fs::create_dir(&minimal)?;
    for name in USED {
        std::fs::copy(guests.join(name), minimal.join(name)).with_context(|| {
            format!(
                "{} has no {name}: build the guests with scripts/build-guests",
                guests.display()
            )
        })?;
    }
    let addr = super::pipeline::serve().await?;
    let config = dir.path().join("checkhost.yaml");
    std::fs::write(
        &config,
        format!(
            "database: sqlite://{db}\n\
             checks:\n  - id: health\n    timeout: 10s\n    \
             strategy: {{plugin: http, config: {{baseUrl: 'http://{addr}'}}}}\n    \
             network: {{allow: ['127.0.0.1/32']}}\n    \
             collectors: [{{plugin: request, config: {{url: /health}}}}]\n\
             systems: [{{id: shop}}]\n\
             assignments: [{{system: shop, check: health}}]\n",
            db = dir.path().join("cold.db").display()
        ),
    )?;
    let exe = std::env::current_exe().context("finding this checkhost binary")?;
    let one = |plugins: PathBuf| {
        let mut command = Command::new(&exe);
        command
            .arg("run")
            .arg(&config)
            .arg("--plugins")
            .arg(plugins);
        measure_child(command, false)
    };
    for _ in 0..WARM_UPS {
        one(guests.clone()).await?;
        one(minimal.clone()).await?;
    }
    let (mut full, mut only_used) = (Vec::with_capacity(runs), Vec::with_capacity(runs));
    // Alternating sides share whatever the machine is doing meanwhile.
    for _ in 0..runs {
        full.push(one(guests.clone()).await?);
        only_used.push(one(minimal.clone()).await?);
    }
    Ok(ColdStartReport {
        runs,
        folder_files,
        full,
        minimal: only_used,
    })
}
