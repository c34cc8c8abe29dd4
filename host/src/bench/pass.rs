//! The cost of one `checkhost run` pass over N HTTP checks with a given
//! collector, against the same pass with the Rust `request` collector: each
//! pass is a child process of this binary, whose CPU and peak RSS come from
//! the kernel when it is reaped and whose PSS is sampled while it runs.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;

/// The collector every pass is measured against.
const BASELINE: &str = "request";
const BASELINE_CONFIG: &str = "{url: /health}";
/// How often the child's memory is sampled for PSS.
const SAMPLE_EVERY: Duration = Duration::from_millis(5);

pub struct PassOptions {
    /// Folder with the http plugin, `request` and the collector measured.
    pub guests: PathBuf,
    /// The plugin id of the collector measured.
    pub collector: String,
    /// Its config, as YAML or JSON (the document served is
    /// `{"status":"up"}` at `/health`).
    pub collector_config: String,
    pub checks: usize,
    pub rounds: usize,
    /// Passed on to each `checkhost run`.
    pub guest_memory_budget_mib: u64,
}

/// What one pass cost its process.
#[derive(Debug, Clone, Copy)]
pub struct PassCost {
    pub wall: Duration,
    pub cpu: Duration,
    pub peak_rss_mib: f64,
    /// PSS sampled at the highest RSS seen; shared pages divided among
    /// the mappings that share them.
    pub pss_at_peak_mib: f64,
}

pub struct PassReport {
    pub collector: String,
    pub checks: usize,
    pub guest_memory_budget_mib: u64,
    /// (baseline, collector) per round.
    pub rounds: Vec<(PassCost, PassCost)>,
}

impl PassReport {
    pub fn render(&self) -> String {
        let mut out = format!(
            "one `checkhost run` pass of {} checks (http + collector, up to {} at once \
             within a {} MiB guest memory budget), per round:\n\
             {:<14} {:>8} {:>8} {:>14} {:>14}\n",
            self.checks,
            crate::pipeline::run::RUN_CONCURRENCY,
            self.guest_memory_budget_mib,
            "collector",
            "wall s",
            "CPU s",
            "peak RSS MiB",
            "PSS MiB"
        );
        let row = |name: &str, c: &PassCost| {
            format!(
                "{name:<14} {:>8.2} {:>8.2} {:>14.0} {:>14.0}\n",
                c.wall.as_secs_f64(),
                c.cpu.as_secs_f64(),
                c.peak_rss_mib,
                c.pss_at_peak_mib
            )
        };
        for (i, (base, cand)) in self.rounds.iter().enumerate() {
            out.push_str(&format!("round {}\n", i + 1));
            out.push_str(&row(BASELINE, base));
            out.push_str(&row(&self.collector, cand));
            out.push_str(&format!(
                "{:<14} {:>8.2} {:>8.2} {:>14.2} {:>14.2}\n",
                "ratio",
                cand.wall.as_secs_f64() / base.wall.as_secs_f64(),
                cand.cpu.as_secs_f64() / base.cpu.as_secs_f64(),
                cand.peak_rss_mib / base.peak_rss_mib,
                cand.pss_at_peak_mib / base.pss_at_peak_mib
            ));
        }
        out.trim_end().to_string()
    }
}

pub async fn run(options: PassOptions) -> anyhow::Result<PassReport> {
    let addr = super::pipeline::serve().await?;
    let exe = std::env::current_exe().context("finding this checkhost binary")?;
    let guests = std::fs::canonicalize(&options.guests)
        .with_context(|| format!("plugin folder {}", options.guests.display()))?;
    let dir = tempfile::tempdir()?;
    let baseline = write_config(dir.path(), BASELINE, BASELINE_CONFIG, addr, options.checks)?;
    let candidate = write_config(
        dir.path(),
        &options.collector,
        &options.collector_config,
        addr,
        options.checks,
    )?;
    // One unmeasured pass each fills the component cache, so no measured
    // pass pays for compiling a component.
    for config in [&baseline, &candidate] {
        measure(&exe, config, &guests, &options).await?;
    }
    let mut rounds = Vec::with_capacity(options.rounds);
    for _ in 0..options.rounds.max(1) {
        let base = measure(&exe, &baseline, &guests, &options).await?;
        let cand = measure(&exe, &candidate, &guests, &options).await?;
        rounds.push((base, cand));
    }
    Ok(PassReport {
        collector: options.collector,
        checks: options.checks,
        guest_memory_budget_mib: options.guest_memory_budget_mib,
        rounds,
    })
}

/// A config of `checks` systems, each with the http check and `collector`,
/// in a folder of its own with its own SQLite file.
fn write_config(
    dir: &Path,
    collector: &str,
    collector_config: &str,
    addr: std::net::SocketAddr,
    checks: usize,
) -> anyhow::Result<PathBuf> {
    let folder = dir.join(collector);
    std::fs::create_dir_all(&folder)?;
    let mut yaml = format!(
        "database: sqlite://{db}\n\
         checks:\n  - id: health\n    timeout: 10s\n    \
         strategy: {{plugin: http, config: {{baseUrl: 'http://{addr}'}}}}\n    \
         network: {{allow: ['127.0.0.1/32']}}\n    \
         collectors: [{{plugin: {collector}, config: {collector_config}}}]\n\
         systems:\n",
        db = folder.join("pass.db").display(),
    );
    for i in 0..checks {
        yaml.push_str(&format!("  - {{id: s{i}}}\n"));
    }
    yaml.push_str("assignments:\n");
    for i in 0..checks {
        yaml.push_str(&format!("  - {{system: s{i}, check: health}}\n"));
    }
    let path = folder.join("checkhost.yaml");
    std::fs::write(&path, yaml)?;
    Ok(path)
}

/// Runs `checkhost run <config>` as a child and reaps it with `wait4`,
/// which reports the child's own CPU time and peak RSS.
async fn measure(
    exe: &Path,
    config: &Path,
    guests: &Path,
    options: &PassOptions,
) -> anyhow::Result<PassCost> {
    let mut command = Command::new(exe);
    command
        .arg("run")
        .arg(config)
        .arg("--plugins")
        .arg(guests)
        .arg("--guest-memory-budget")
        .arg(options.guest_memory_budget_mib.to_string());
    measure_child(command, true).await
}

/// Runs `command` (a `checkhost run …`) as a child with its output
/// discarded and reaps it with `wait4`, which reports the child's own CPU
/// time and peak RSS; PSS is sampled while it runs when `sample_pss`.
pub(super) async fn measure_child(
    mut command: Command,
    sample_pss: bool,
) -> anyhow::Result<PassCost> {
    let shown = format!("{command:?}");
    let started = std::time::Instant::now();
    let child = command
        .stdout(std::process::Stdio::null())
        .spawn()
        .with_context(|| format!("starting {shown}"))?;
    let pid = child.id();
    let done = Arc::new(AtomicBool::new(false));
    let sampler = sample_pss.then(|| {
        let done = done.clone();
        std::thread::spawn(move || sample_pss_at_peak(pid, &done))
    });
    let (status, usage) = tokio::task::spawn_blocking(move || reap(pid)).await??;
    let wall = started.elapsed();
    done.store(true, Ordering::Relaxed);
    let pss_at_peak = sampler.and_then(|s| s.join().ok()).unwrap_or(0.0);
    anyhow::ensure!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "{shown} failed (wait status {status}); run it by hand to see why"
    );
    let cpu = timeval(usage.ru_utime) + timeval(usage.ru_stime);
    Ok(PassCost {
        wall,
        cpu,
        // ru_maxrss is in KiB on Linux.
        peak_rss_mib: usage.ru_maxrss as f64 / 1024.0,
        pss_at_peak_mib: pss_at_peak,
    })
}

fn reap(pid: u32) -> anyhow::Result<(i32, libc::rusage)> {
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to overwrite.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4 only writes the status and the struct it is given; the
    // pid is our own child, which nothing else waits for.
    let got = unsafe { libc::wait4(pid as libc::pid_t, &mut status, 0, &mut usage) };
    anyhow::ensure!(
        got == pid as libc::pid_t,
        "wait4: {}",
        std::io::Error::last_os_error()
    );
    Ok((status, usage))
}

fn timeval(t: libc::timeval) -> Duration {
    Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
}

/// PSS (MiB) when RSS was highest, sampling until `done`.
fn sample_pss_at_peak(pid: u32, done: &AtomicBool) -> f64 {
    let path = format!("/proc/{pid}/smaps_rollup");
    let (mut peak_rss, mut pss_at_peak) = (0.0, 0.0);
    while !done.load(Ordering::Relaxed) {
        if let Ok(text) = std::fs::read_to_string(&path)
            && let (Some(rss), Some(pss)) = (field_kib(&text, "Rss:"), field_kib(&text, "Pss:"))
            && rss > peak_rss
        {
            peak_rss = rss;
            pss_at_peak = pss;
        }
        std::thread::sleep(SAMPLE_EVERY);
    }
    pss_at_peak / 1024.0
}

fn field_kib(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(name))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_field_of_smaps_rollup() {
        let text = "00400000-7fff [rollup]\nRss:              114688 kB\nPss:               98304 kB\nPss_Anon:  1 kB\n";
        assert_eq!(field_kib(text, "Rss:"), Some(114688.0));
        assert_eq!(field_kib(text, "Pss:"), Some(98304.0));
        assert_eq!(field_kib(text, "Swap:"), None);
    }
}
