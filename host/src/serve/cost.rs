//! What each check's guests cost this process, by check and strategy
//! plugin: runs, CPU, epoch ticks, instantiation and peak memory. `/metrics` labels the
//! costliest checks (by CPU) up to a bound and folds the rest into
//! `check="(other)"` (no check id can be that), so a fleet of 100,000
//! checks does not explode the series count. A labelled check keeps its
//! series until the next reload, so no counter drops between scrapes; a
//! reload forgets the checks it removed. `GET /api/v1/cost` and
//! `checkhost top` list the checks by cost.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeCounterValue, EncodeGaugeValue, EncodeLabelSet, EncodeMetric,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use serde::Serialize;
use utoipa::ToSchema;

use crate::runtime::GuestStats;

/// The label the checks beyond the bound share.
pub const OTHER: &str = "(other)";

/// What one check's runs have cost since the process started.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Totals {
    runs: u64,
    cpu: Duration,
    epoch_ticks: u64,
    instantiate: Duration,
    memory_peak_bytes: u64,
    host_memory_peak_bytes: u64,
}

impl Totals {
    fn add(&mut self, other: &Totals) {
        self.runs += other.runs;
        self.cpu += other.cpu;
        self.epoch_ticks += other.epoch_ticks;
        self.instantiate += other.instantiate;
        self.memory_peak_bytes = self.memory_peak_bytes.max(other.memory_peak_bytes);
        self.host_memory_peak_bytes = self
            .host_memory_peak_bytes
            .max(other.host_memory_peak_bytes);
    }
}

/// One check's cost, as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CheckCost {
    pub check: String,
    /// The check's strategy plugin.
    pub plugin: String,
    /// Runs this process made of it (every slice), since it started.
    pub runs: u64,
    /// CPU of its guests and their host calls, in seconds.
    pub cpu_seconds: f64,
    pub cpu_ms_per_run: f64,
    /// Epoch ticks (10 ms each) its guests' code ran through: wasmtime's
    /// count of guest execution, which excludes host calls.
    pub epoch_ticks: u64,
    pub instantiate_ms_per_run: f64,
    /// The most linear memory one of its runs' guests grew to.
    pub memory_peak_bytes: u64,
    /// The most host memory one of its runs made the host hold.
    pub host_memory_peak_bytes: u64,
}

#[derive(Debug)]
pub struct CheckCosts {
    /// Check → (strategy plugin, totals): one plugin, unless a reload
    /// changed the check's strategy. Looked up by `&str` on every run,
    /// without allocating.
    by_check: Mutex<HashMap<String, Vec<(String, Totals)>>>,
    /// How many checks are labelled on `/metrics`.
    labelled: AtomicUsize,
    /// The checks labelled so far: kept until a reload.
    labels: Mutex<BTreeSet<(String, String)>>,
}

impl Default for CheckCosts {
    fn default() -> Self {
        CheckCosts {
            by_check: Mutex::default(),
            labelled: AtomicUsize::new(crate::config::MetricsConfig::default().check_labels),
            labels: Mutex::default(),
        }
    }
}

impl CheckCosts {
    /// On start and reload: the label bound, and the checks the
    /// configuration still has (the others are forgotten). Labels are
    /// handed out afresh, costliest first.
    pub fn reconfigure(&self, labelled: usize, checks: &BTreeSet<&str>) {
        self.labelled.store(labelled, Ordering::Relaxed);
        self.by_check
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|check, _| checks.contains(check.as_str()));
        self.labels
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    pub fn observe(&self, check: &str, plugin: &str, guest: &GuestStats) {
        let run = Totals {
            runs: 1,
            cpu: guest.cpu,
            epoch_ticks: guest.epoch_ticks,
            instantiate: guest.instantiate,
            memory_peak_bytes: guest.memory_peak_bytes as u64,
            host_memory_peak_bytes: guest.host_memory_peak_bytes as u64,
        };
        let mut by_check = self.by_check.lock().unwrap_or_else(|e| e.into_inner());
        let plugins = match by_check.get_mut(check) {
            Some(plugins) => plugins,
            None => by_check.entry(check.to_string()).or_default(),
        };
        match plugins.iter_mut().find(|(p, _)| p == plugin) {
            Some((_, totals)) => totals.add(&run),
            None => plugins.push((plugin.to_string(), run)),
        }
    }

    /// The checks by CPU spent, costliest first.
    fn ranked(&self) -> Vec<((String, String), Totals)> {
        let by_check = self.by_check.lock().unwrap_or_else(|e| e.into_inner());
        let mut ranked: Vec<((String, String), Totals)> = by_check
            .iter()
            .flat_map(|(check, plugins)| {
                plugins
                    .iter()
                    .map(move |(plugin, t)| ((check.clone(), plugin.clone()), *t))
            })
            .collect();
        drop(by_check);
        ranked.sort_by(|a, b| b.1.cpu.cmp(&a.1.cpu).then_with(|| a.0.cmp(&b.0)));
        ranked
    }

    /// The `limit` costliest checks.
    pub fn top(&self, limit: usize) -> Vec<CheckCost> {
        self.ranked()
            .into_iter()
            .take(limit)
            .map(|((check, plugin), t)| {
                let per_run = |d: Duration| d.as_secs_f64() * 1000.0 / t.runs.max(1) as f64;
                CheckCost {
                    check,
                    plugin,
                    runs: t.runs,
                    cpu_seconds: t.cpu.as_secs_f64(),
                    cpu_ms_per_run: per_run(t.cpu),
                    epoch_ticks: t.epoch_ticks,
                    instantiate_ms_per_run: per_run(t.instantiate),
                    memory_peak_bytes: t.memory_peak_bytes,
                    host_memory_peak_bytes: t.host_memory_peak_bytes,
                }
            })
            .collect()
    }

    /// The labelled checks, then `(other)` (per plugin) for the rest.
    fn series(&self) -> Vec<(CostLabels, Totals)> {
        let bound = self.labelled.load(Ordering::Relaxed);
        let ranked = self.ranked();
        let mut labels = self.labels.lock().unwrap_or_else(|e| e.into_inner());
        for (key, _) in &ranked {
            if labels.len() >= bound {
                break;
            }
            labels.insert(key.clone());
        }
        let mut out: Vec<(CostLabels, Totals)> = Vec::new();
        let mut other: BTreeMap<String, Totals> = BTreeMap::new();
        for ((check, plugin), t) in ranked {
            if labels.contains(&(check.clone(), plugin.clone())) {
                out.push((CostLabels { check, plugin }, t));
            } else {
                other.entry(plugin).or_default().add(&t);
            }
        }
        out.extend(other.into_iter().map(|(plugin, t)| {
            (
                CostLabels {
                    check: OTHER.into(),
                    plugin,
                },
                t,
            )
        }));
        out
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CostLabels {
    check: String,
    plugin: String,
}

/// Registered beside the other metrics: each scrape reads the totals.
#[derive(Debug)]
pub struct CostCollector(pub std::sync::Arc<CheckCosts>);

impl Collector for CostCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let series = self.0.series();
        let e = &mut encoder;
        counters(
            e,
            "check_runs",
            "Runs this process made of each check (the costliest are labelled)",
            &series,
            |t| t.runs,
        )?;
        counters(
            e,
            "check_guest_cpu_seconds",
            "CPU of each check's guests and their host calls",
            &series,
            |t| t.cpu.as_secs_f64(),
        )?;
        counters(
            e,
            "check_guest_epoch_ticks",
            "Epoch ticks (10 ms) each check's guests' code ran through",
            &series,
            |t| t.epoch_ticks,
        )?;
        counters(
            e,
            "check_guest_instantiate_seconds",
            "Time spent instantiating each check's guests",
            &series,
            |t| t.instantiate.as_secs_f64(),
        )?;
        gauges(
            e,
            "check_guest_memory_peak_bytes",
            "The most linear memory one of each check's guests grew to",
            &series,
            |t| t.memory_peak_bytes,
        )?;
        gauges(
            e,
            "check_guest_host_memory_peak_bytes",
            "The most host memory one of each check's runs made the host hold",
            &series,
            |t| t.host_memory_peak_bytes,
        )
    }
}

fn counters<N: EncodeCounterValue>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: &[(CostLabels, Totals)],
    value: impl Fn(&Totals) -> N,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, totals) in series {
        ConstCounter::new(value(totals)).encode(family.encode_family(labels)?)?;
    }
    Ok(())
}

fn gauges<N: EncodeGaugeValue>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: &[(CostLabels, Totals)],
    value: impl Fn(&Totals) -> N,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, totals) in series {
        ConstGauge::new(value(totals)).encode(family.encode_family(labels)?)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cost(cpu_ms: u64) -> GuestStats {
        GuestStats {
            cpu: Duration::from_millis(cpu_ms),
            instantiate: Duration::from_millis(1),
            memory_peak_bytes: 65_536,
            ..GuestStats::default()
        }
    }

    #[test]
    fn the_costliest_checks_are_labelled_and_the_rest_folded_per_plugin() {
        let costs = CheckCosts::default();
        let checks = BTreeSet::from(["cheap", "burn", "other-cheap"]);
        costs.reconfigure(1, &checks);
        costs.observe("cheap", "http", &cost(1));
        costs.observe("burn", "http", &cost(40));
        costs.observe("burn", "http", &cost(60));
        costs.observe("other-cheap", "http", &cost(2));
        let top = costs.top(10);
        assert_eq!(top[0].check, "burn");
        assert_eq!(top[0].runs, 2);
        assert!((top[0].cpu_ms_per_run - 50.0).abs() < 1e-9);
        let series = costs.series();
        let labels: Vec<&str> = series.iter().map(|(l, _)| l.check.as_str()).collect();
        assert_eq!(labels, ["burn", OTHER]);
        assert_eq!(series[1].1.runs, 2, "the two cheap checks, folded");
        // A cheap check that grows costlier keeps to the fold until a
        // reload: no labelled series vanishes, no counter drops.
        costs.observe("cheap", "http", &cost(500));
        let labels: Vec<String> = costs.series().into_iter().map(|(l, _)| l.check).collect();
        assert_eq!(labels, ["burn", OTHER]);
        // A reload forgets removed checks and labels afresh.
        costs.reconfigure(1, &BTreeSet::from(["cheap"]));
        let labels: Vec<String> = costs.series().into_iter().map(|(l, _)| l.check).collect();
        assert_eq!(labels, ["cheap"]);
        assert_eq!(costs.top(10).len(), 1);
    }
}
