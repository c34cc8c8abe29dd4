//! The daemon under load: N slices of a no-op strategy + collector on one
//! interval, scheduled by the real scheduler into the real store for a
//! while. Reports sustained runs/s against the rate the slices ask for,
//! scheduling lag, RSS and CPU per run.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::scratch::Scratch;
use crate::clock::now_ms;
use crate::pipeline::setup::Setup;
use crate::runtime::{Runtime, RuntimeConfig};
use crate::serve::generation::Generation;
use crate::serve::live::LiveConfig;
use crate::serve::metrics::Metrics;
use crate::serve::scheduler::Scheduler;
use crate::store::{Store, WriterConfig};

pub struct ServeReport {
    pub slices: usize,
    pub interval: Duration,
    pub duration: Duration,
    pub runs: u64,
    /// Upper bounds of the histogram buckets holding the p50 and p99 lag.
    pub lag_p50_ms: f64,
    pub lag_p99_ms: f64,
    pub rss_mib: f64,
    pub peak_rss_mib: f64,
    pub cpu: Duration,
}

impl ServeReport {
    pub fn render(&self) -> String {
        let asked = self.slices as f64 / self.interval.as_secs_f64();
        let got = self.runs as f64 / self.duration.as_secs_f64();
        format!(
            "{slices} slices every {interval:?} for {duration:?}\n\
             runs/s sustained:            {got:>9.0} (the slices ask for {asked:.0}; ratio {ratio:.2})\n\
             scheduling lag p50 / p99:    ≤ {p50} ms / ≤ {p99} ms (histogram bucket bounds)\n\
             RSS now / peak:              {rss:.0} / {peak:.0} MiB\n\
             CPU per run:                 {cpu:.0} µs",
            slices = self.slices,
            interval = self.interval,
            duration = self.duration,
            ratio = got / asked,
            p50 = self.lag_p50_ms,
            p99 = self.lag_p99_ms,
            rss = self.rss_mib,
            peak = self.peak_rss_mib,
            cpu = self.cpu.as_secs_f64() * 1e6 / self.runs.max(1) as f64,
        )
    }
}

pub(super) fn config_yaml(plugins: &Path, slices: usize, interval: Duration) -> String {
    let mut yaml = format!(
        "plugins: {}\nchecks:\n  - id: tick\n    interval: {}ms\n    strategy: {{plugin: noop}}\n    \
         collectors: [{{plugin: hostile, config: {{mode: noop}}}}]\n",
        plugins.display(),
        interval.as_millis()
    );
    super::push_systems(&mut yaml, slices, "tick");
    yaml
}

pub async fn run(
    guests: &Path,
    database: &str,
    slices: usize,
    interval: Duration,
    duration: Duration,
) -> anyhow::Result<ServeReport> {
    let (_dir, config) =
        super::noop_workspace(guests, |plugins| config_yaml(plugins, slices, interval))?;

    let runtime = Arc::new(Runtime::new(RuntimeConfig {
        instance_slots: 128,
        // 1 MiB a no-op guest: the slots, not the budget, bound this bench.
        guest_memory_budget_mib: 128 * 2,
        ..RuntimeConfig::default()
    })?);
    let (setup, _) = Setup::load(&config, None, &runtime, None, false)
        .await
        .map_err(anyhow::Error::msg)?;
    let scratch = Scratch::new(database, "serve").await?;
    let metrics = Metrics::new();
    let store = Arc::new(
        Store::open_with(
            &scratch.url(),
            WriterConfig {
                observer: Some({
                    let metrics = metrics.clone();
                    Arc::new(move |took, runs| metrics.observe_commit(took, runs))
                }),
                ..WriterConfig::default()
            },
        )
        .await?,
    );
    let file = &setup.config.file;
    store
        .sync_config(&file.checks, &file.assignments, &file.systems, now_ms())
        .await?;
    let generation = Generation::prepare(setup, &runtime, &store, Default::default()).await;
    let scheduler = Scheduler::new(
        LiveConfig::new(Arc::new(generation), store.clone()),
        runtime.clone(),
        store.clone(),
        metrics.clone(),
        256,
    );
    let (stop_tx, stop) = watch::channel(false);
    let cpu_before = cpu_time();
    let started = Instant::now();
    let scheduling = tokio::spawn(scheduler.run(stop));
    tokio::time::sleep(duration).await;
    let _ = stop_tx.send(true);
    let elapsed = started.elapsed();
    let mut in_flight = scheduling.await?;
    while in_flight.join_next().await.is_some() {}
    let cpu = cpu_time().saturating_sub(cpu_before);
    let text = metrics.render();
    let runs = metric_sum(&text, "checkhost_runs_total{");
    let (rss_mib, peak_rss_mib) = rss();
    store.close().await;
    scratch.drop_database().await;
    Ok(ServeReport {
        slices,
        interval,
        duration: elapsed,
        runs: runs as u64,
        lag_p50_ms: lag_quantile(&text, 0.5) * 1000.0,
        lag_p99_ms: lag_quantile(&text, 0.99) * 1000.0,
        rss_mib,
        peak_rss_mib,
        cpu,
    })
}

pub(super) fn metric_sum(text: &str, prefix: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The upper bound of the lag bucket where the quantile falls.
fn lag_quantile(text: &str, q: f64) -> f64 {
    let buckets: Vec<(f64, f64)> = text
        .lines()
        .filter(|l| l.starts_with("checkhost_scheduler_lag_seconds_bucket{le=\""))
        .filter_map(|l| {
            let le = l.split('"').nth(1)?;
            let count = l.rsplit(' ').next()?.parse().ok()?;
            Some((le.parse().unwrap_or(f64::INFINITY), count))
        })
        .collect();
    let total = buckets.last().map_or(0.0, |b| b.1);
    buckets
        .iter()
        .find(|(_, count)| *count >= q * total)
        .map_or(f64::NAN, |(le, _)| *le)
}

pub(super) fn cpu_time() -> Duration {
    // SAFETY: getrusage only writes the struct it is given.
    let usage = unsafe {
        let mut usage = std::mem::zeroed::<libc::rusage>();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// (current, peak) resident memory in MiB, from /proc/self/status.
fn rss() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
            .map_or(0.0, |kib| kib / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}
