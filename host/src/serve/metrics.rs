//! The daemon's Prometheus metrics at `/metrics`: OpenMetrics, whose run
//! and guest-cost histograms carry the run id (and trace id, when the run
//! was traced) of an observation as an exemplar (a scraper jumps from a
//! slow bucket to the run), or the Prometheus text format without
//! exemplars.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::{EncodeLabelSet, LabelSetEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::exemplar::HistogramWithExemplars;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::pipeline::run::RunReport;
use crate::telemetry::ExportStats;

/// The trace export's counters, read at each scrape.
#[derive(Debug)]
struct TraceCollector(Arc<std::sync::OnceLock<Arc<ExportStats>>>);

impl prometheus_client::collector::Collector for TraceCollector {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::DescriptorEncoder,
    ) -> Result<(), std::fmt::Error> {
        use prometheus_client::encoding::EncodeMetric;
        use prometheus_client::metrics::MetricType;
        use prometheus_client::metrics::counter::ConstCounter;
        use std::sync::atomic::Ordering::Relaxed;
        let Some(stats) = self.0.get() else {
            return Ok(());
        };
        let exported = encoder.encode_descriptor(
            "trace_spans_exported",
            "Spans of run traces the OTLP endpoint accepted",
            None,
            MetricType::Counter,
        )?;
        ConstCounter::new(stats.exported.load(Relaxed)).encode(exported)?;
        let mut dropped = encoder.encode_descriptor(
            "trace_spans_dropped",
            "Spans of run traces dropped, by reason (queue_full: the endpoint fell behind; \
             export_failed: it refused or did not answer in time)",
            None,
            MetricType::Counter,
        )?;
        for (reason, count) in [
            ("queue_full", &stats.dropped_queue_full),
            ("export_failed", &stats.dropped_export_failed),
        ] {
            let labels = ReasonLabels {
                reason: reason.into(),
            };
            ConstCounter::new(count.load(Relaxed)).encode(dropped.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct McpCallLabels {
    pub tool: String,
    /// `ok`, `refused` (the tool said no) or `error` (bad arguments).
    pub outcome: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RunLabels {
    pub check: String,
    pub plugin: String,
    /// `healthy`, `unhealthy`, or `not_persisted`.
    pub outcome: String,
}

/// The run an observation came from: `GET /api/v1/runs/{run_id}`, and
/// its trace when it was traced.
#[derive(Debug, Clone, Hash, PartialEq, Eq)]
pub struct RunExemplar {
    pub run_id: String,
    pub trace_id: Option<String>,
}

impl EncodeLabelSet for RunExemplar {
    fn encode(&self, encoder: LabelSetEncoder) -> Result<(), std::fmt::Error> {
        let run = ("run_id", self.run_id.as_str());
        match &self.trace_id {
            Some(trace) => [run, ("trace_id", trace.as_str())].encode(encoder),
            None => [run].encode(encoder),
        }
    }
}

/// A histogram whose buckets remember the last run that fell in them.
pub type RunHistogram = HistogramWithExemplars<RunExemplar>;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FieldLabels {
    pub plugin: String,
    pub field: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SloLabels {
    pub slo: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BurnLabels {
    pub slo: String,
    pub window: String,
}

type FloatGauge = Gauge<f64, std::sync::atomic::AtomicU64>;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LocationLabels {
    pub location: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProbeLabels {
    pub probe: String,
    pub location: String,
}

pub struct Metrics {
    registry: Registry,
    pub runs: Family<RunLabels, Counter>,
    pub run_duration: RunHistogram,
    pub guest_instantiate: RunHistogram,
    pub guest_memory_peak: RunHistogram,
    pub guest_host_memory_peak: RunHistogram,
    pub run_host_memory_budget: Gauge,
    pub guest_cpu: RunHistogram,
    pub scheduler_lag: Histogram,
    pub in_flight: Gauge,
    pub slices: Gauge,
    pub ticks_skipped: Counter,
    pub writer_queue: Gauge,
    /// 1 for the reason the writer holds runs it cannot write, if any.
    pub write_failing: Family<ReasonLabels, Gauge>,
    pub batch_commit: Histogram,
    pub batch_runs: Histogram,
    pub reloads: Counter,
    pub reload_failures: Counter,
    pub pool_memories_in_use: Gauge,
    pub pool_warm_memories: Gauge,
    pub pool_warm_resident_bytes: Gauge,
    pub memory_budget_bytes: Gauge,
    pub memory_budget_in_use_bytes: Gauge,
    pub runs_waiting: Gauge,
    pub result_fields_skipped: Family<FieldLabels, Counter>,
    pub probes_online: Family<LocationLabels, Gauge>,
    pub probe_spool_depth: Family<ProbeLabels, Gauge>,
    pub probe_spool_dropped: Family<ProbeLabels, Gauge>,
    pub probe_batches_refused: Family<ReasonLabels, Counter>,
    pub mcp_calls: Family<McpCallLabels, Counter>,
    /// Each check's guest cost, labelled for the costliest.
    pub costs: Arc<super::cost::CheckCosts>,
    pub slo_attainment: Family<SloLabels, FloatGauge>,
    pub slo_budget_remaining: Family<SloLabels, FloatGauge>,
    pub slo_burn_rate: Family<BurnLabels, FloatGauge>,
    pub slo_page: Family<SloLabels, Gauge>,
    /// Held while the objectives' series are replaced, so a scrape sees
    /// the old set or the new one, never an empty one between.
    slo_update: std::sync::RwLock<()>,
    /// The objectives as last evaluated, for the status page.
    slo_reports: std::sync::Mutex<Arc<Vec<crate::store::slo::SloReport>>>,
    /// What became of the run traces' spans, once traces are on.
    traces: Arc<std::sync::OnceLock<Arc<ExportStats>>>,
}

impl Metrics {
    pub fn new() -> Arc<Metrics> {
        let seconds = || Histogram::new(exponential_buckets(0.0005, 2.0, 16));
        let metrics = Metrics {
            registry: Registry::with_prefix("checkhost"),
            runs: Family::default(),
            run_duration: RunHistogram::new(exponential_buckets(0.0005, 2.0, 16)),
            guest_instantiate: RunHistogram::new(exponential_buckets(0.000_01, 2.0, 16)),
            guest_memory_peak: RunHistogram::new(exponential_buckets(65_536.0, 2.0, 14)),
            guest_host_memory_peak: RunHistogram::new(exponential_buckets(16_384.0, 2.0, 16)),
            run_host_memory_budget: Gauge::default(),
            guest_cpu: RunHistogram::new(exponential_buckets(0.000_01, 2.0, 18)),
            scheduler_lag: seconds(),
            in_flight: Gauge::default(),
            slices: Gauge::default(),
            ticks_skipped: Counter::default(),
            writer_queue: Gauge::default(),
            write_failing: Family::default(),
            batch_commit: seconds(),
            batch_runs: Histogram::new(exponential_buckets(1.0, 2.0, 13)),
            reloads: Counter::default(),
            reload_failures: Counter::default(),
            pool_memories_in_use: Gauge::default(),
            pool_warm_memories: Gauge::default(),
            pool_warm_resident_bytes: Gauge::default(),
            memory_budget_bytes: Gauge::default(),
            memory_budget_in_use_bytes: Gauge::default(),
            runs_waiting: Gauge::default(),
            result_fields_skipped: Family::default(),
            probes_online: Family::default(),
            probe_spool_depth: Family::default(),
            probe_spool_dropped: Family::default(),
            probe_batches_refused: Family::default(),
            mcp_calls: Family::default(),
            costs: Arc::default(),
            slo_attainment: Family::default(),
            slo_budget_remaining: Family::default(),
            slo_burn_rate: Family::default(),
            slo_page: Family::default(),
            slo_update: Default::default(),
            slo_reports: Default::default(),
            traces: Default::default(),
        };
        let mut registry = metrics.registry;
        registry.register(
            "runs",
            "Runs by check, strategy plugin and outcome",
            metrics.runs.clone(),
        );
        registry.register(
            "run_duration_seconds",
            "Wall time of a run, sandbox included",
            metrics.run_duration.clone(),
        );
        registry.register(
            "guest_instantiate_seconds",
            "Time to instantiate the guests of a run",
            metrics.guest_instantiate.clone(),
        );
        registry.register(
            "guest_memory_peak_bytes",
            "Largest linear memory a guest of the run asked for",
            metrics.guest_memory_peak.clone(),
        );
        registry.register(
            "guest_host_memory_peak_bytes",
            "Most host memory a run's guests made the host hold (HTTP fields, bodies, streams, tables)",
            metrics.guest_host_memory_peak.clone(),
        );
        registry.register(
            "run_host_memory_budget_bytes",
            "Host memory a run may make the host hold unless its check sets hostMemoryMib",
            metrics.run_host_memory_budget.clone(),
        );
        registry.register(
            "guest_cpu_seconds",
            "CPU time spent running a run's guests and their host calls",
            metrics.guest_cpu.clone(),
        );
        registry.register(
            "scheduler_lag_seconds",
            "Actual start minus scheduled start of a run",
            metrics.scheduler_lag.clone(),
        );
        registry.register(
            "runs_in_flight",
            "Runs executing now",
            metrics.in_flight.clone(),
        );
        registry.register(
            "slices",
            "Slices the scheduler keeps",
            metrics.slices.clone(),
        );
        registry.register(
            "ticks_skipped",
            "Ticks skipped because the slice's previous run was still going",
            metrics.ticks_skipped.clone(),
        );
        registry.register(
            "writer_queue_depth",
            "Runs waiting for the batched writer",
            metrics.writer_queue.clone(),
        );
        registry.register(
            "store_write_failing",
            "1 while the writer holds runs the database cannot take, labelled by why \
             (disk-full, read-only, io-error, cannot-open, busy, unreachable, file-removed, \
             file-replaced)",
            metrics.write_failing.clone(),
        );
        registry.register(
            "batch_commit_seconds",
            "Time to commit one batch of runs",
            metrics.batch_commit.clone(),
        );
        registry.register(
            "batch_runs",
            "Runs per committed batch",
            metrics.batch_runs.clone(),
        );
        registry.register(
            "reloads",
            "Configurations applied after a reload",
            metrics.reloads.clone(),
        );
        registry.register(
            "reload_failures",
            "Reloads refused because the new configuration or a plugin was invalid",
            metrics.reload_failures.clone(),
        );
        registry.register(
            "guest_pool_memories_in_use",
            "Guest linear memories held by runs in flight",
            metrics.pool_memories_in_use.clone(),
        );
        registry.register(
            "guest_pool_warm_memories",
            "Guest memory slots kept warm between runs for the module that last used them",
            metrics.pool_warm_memories.clone(),
        );
        registry.register(
            "guest_pool_warm_resident_bytes",
            "Bytes the warm guest memory slots keep resident between runs",
            metrics.pool_warm_resident_bytes.clone(),
        );
        registry.register(
            "guest_memory_budget_bytes",
            "Initial guest memory the runs in flight may hold together (--guest-memory-budget)",
            metrics.memory_budget_bytes.clone(),
        );
        registry.register(
            "guest_memory_budget_in_use_bytes",
            "Initial guest memory held by runs in flight; at the budget, runs wait",
            metrics.memory_budget_in_use_bytes.clone(),
        );
        registry.register(
            "guest_runs_waiting",
            "Runs started by the scheduler but waiting for a pool slot or guest memory budget",
            metrics.runs_waiting.clone(),
        );
        registry.register(
            "result_fields_skipped",
            "Marked result field values left out of the aggregates because their type was not \
             the one the plugin's result schema declares",
            metrics.result_fields_skipped.clone(),
        );
        registry.register(
            "probes_online",
            "Probes of each location that reported within probes.offlineAfter heartbeats; at 0 \
             the location's slices record no-probe runs",
            metrics.probes_online.clone(),
        );
        registry.register(
            "probe_spool_depth",
            "Runs waiting in each probe's spool, as its last heartbeat said",
            metrics.probe_spool_depth.clone(),
        );
        registry.register(
            "probe_spool_dropped",
            "Runs each probe's spool dropped for room or the server refused, as its last \
             heartbeat said",
            metrics.probe_spool_dropped.clone(),
        );
        registry.register(
            "probe_batches_refused",
            "Probe batches refused, by reason (token, slice, size, malformed, clock, busy, timeout)",
            metrics.probe_batches_refused.clone(),
        );
        registry.register(
            "mcp_calls",
            "MCP tool calls, by tool and outcome (ok, refused, error)",
            metrics.mcp_calls.clone(),
        );
        registry.register(
            "slo_attainment_percent",
            "Percent of an objective's runs healthy over its window",
            metrics.slo_attainment.clone(),
        );
        registry.register(
            "slo_error_budget_remaining_ratio",
            "Share of an objective's error budget left (1 untouched, below 0 overspent)",
            metrics.slo_budget_remaining.clone(),
        );
        registry.register(
            "slo_burn_rate",
            "How fast an objective's error budget burns over a window (1: exactly over the \
             objective's window)",
            metrics.slo_burn_rate.clone(),
        );
        registry.register(
            "slo_page",
            "1 while an objective's multi-window burn-rate condition holds (1h and 5m above \
             14.4, or 6h and 30m above 6)",
            metrics.slo_page.clone(),
        );
        registry.register_collector(Box::new(super::cost::CostCollector(metrics.costs.clone())));
        registry.register_collector(Box::new(TraceCollector(metrics.traces.clone())));
        metrics.run_host_memory_budget.set(
            i64::try_from(crate::runtime::RunLimits::default().host_memory_bytes())
                .unwrap_or(i64::MAX),
        );
        Arc::new(Metrics {
            registry,
            ..metrics
        })
    }

    /// Counts the spans of run traces from now on.
    pub fn watch_traces(&self, stats: Arc<ExportStats>) {
        let _ = self.traces.set(stats);
    }

    pub fn observe_run(&self, check: &str, plugin: &str, report: &RunReport) {
        let outcome = if report.healthy {
            "healthy"
        } else {
            "unhealthy"
        };
        self.runs
            .get_or_create(&RunLabels {
                check: check.into(),
                plugin: plugin.into(),
                outcome: outcome.into(),
            })
            .inc();
        let run = || {
            Some(RunExemplar {
                run_id: report.run_id.to_string(),
                trace_id: report.trace_id.clone(),
            })
        };
        self.run_duration.observe(report.latency_ms / 1000.0, run());
        let guest = &report.guest;
        self.guest_instantiate
            .observe(guest.instantiate.as_secs_f64(), run());
        self.guest_memory_peak
            .observe(guest.memory_peak_bytes as f64, run());
        self.guest_host_memory_peak
            .observe(guest.host_memory_peak_bytes as f64, run());
        self.guest_cpu.observe(guest.cpu.as_secs_f64(), run());
        self.costs.observe(check, plugin, guest);
        for skipped in &report.skipped_fields {
            let counter = self.result_fields_skipped.get_or_create(&FieldLabels {
                plugin: skipped.plugin.clone(),
                field: skipped.field.clone(),
            });
            // Said once per field: the counter tells how often since.
            if counter.inc() == 0 {
                tracing::warn!(
                    plugin = %skipped.plugin,
                    field = %skipped.field,
                    "a result field marked for aggregation had another type than its schema \
                     says; such values are left out of the aggregates (metric \
                     checkhost_result_fields_skipped_total)"
                );
            }
        }
    }

    /// The objectives as last evaluated; an objective without runs has
    /// no attainment, budget or burn series.
    pub fn observe_slos(&self, reports: Vec<crate::store::slo::SloReport>) {
        let _replacing = self.slo_update.write().unwrap_or_else(|e| e.into_inner());
        self.slo_attainment.clear();
        self.slo_budget_remaining.clear();
        self.slo_burn_rate.clear();
        self.slo_page.clear();
        for r in &reports {
            let labels = SloLabels { slo: r.id.clone() };
            if let Some(a) = r.attainment {
                self.slo_attainment.get_or_create(&labels).set(a);
            }
            if let Some(b) = r.budget_remaining {
                self.slo_budget_remaining.get_or_create(&labels).set(b);
            }
            for burn in &r.burn_rates {
                if let Some(rate) = burn.rate {
                    self.slo_burn_rate
                        .get_or_create(&BurnLabels {
                            slo: r.id.clone(),
                            window: burn.window.clone(),
                        })
                        .set(rate);
                }
            }
            self.slo_page
                .get_or_create(&labels)
                .set(i64::from(r.alert.is_some()));
        }
        *self.slo_reports.lock().unwrap_or_else(|e| e.into_inner()) = Arc::new(reports);
    }

    /// The objectives as last evaluated (every `metrics.sloEvery`).
    pub fn slo_reports(&self) -> Arc<Vec<crate::store::slo::SloReport>> {
        self.slo_reports
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn observe_unpersisted(&self, check: &str) {
        self.runs
            .get_or_create(&RunLabels {
                check: check.into(),
                plugin: String::new(),
                outcome: "not_persisted".into(),
            })
            .inc();
    }

    pub fn observe_commit(&self, took: Duration, runs: usize) {
        self.batch_commit.observe(took.as_secs_f64());
        self.batch_runs.observe(runs as f64);
    }

    pub fn observe_write_failure(&self, failure: Option<&crate::store::WriteFailure>) {
        self.write_failing.clear();
        if let Some(f) = failure {
            self.write_failing
                .get_or_create(&ReasonLabels {
                    reason: f.reason.to_string(),
                })
                .set(1);
        }
    }

    pub fn observe_pool(&self, pool: crate::runtime::PoolUsage) {
        let gauge = |g: &Gauge, v: u64| g.set(i64::try_from(v).unwrap_or(i64::MAX));
        gauge(&self.pool_memories_in_use, pool.memories_in_use);
        gauge(&self.pool_warm_memories, pool.warm_memories);
        gauge(&self.pool_warm_resident_bytes, pool.warm_resident_bytes);
        gauge(&self.memory_budget_bytes, pool.budget_bytes);
        gauge(&self.memory_budget_in_use_bytes, pool.budget_bytes_in_use);
        gauge(&self.runs_waiting, pool.runs_waiting);
    }

    /// The OpenMetrics exposition.
    pub fn render(&self) -> String {
        let _objectives = self.slo_update.read().unwrap_or_else(|e| e.into_inner());
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut text, &self.registry);
        text
    }
}
/// The OpenMetrics text as the Prometheus text format 0.0.4: a counter
/// family is named with its `_total` (as its samples are), and the
/// OpenMetrics-only parts (`# EOF`, `# UNIT`, exemplars) go.
/// prometheus-client writes OpenMetrics only; this is the whole difference
/// for what it writes.
pub fn prometheus_text(open_metrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = open_metrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(open_metrics.len());
    for line in open_metrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let meta = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|prefix| Some((prefix, line.strip_prefix(prefix)?)));
        match meta {
            Some((prefix, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                let suffix = if counters.contains(name) {
                    "_total"
                } else {
                    ""
                };
                out.push_str(&format!("{prefix}{name}{suffix} {tail}"));
            }
            None => out.push_str(without_exemplar(line)),
        }
        out.push('\n');
    }
    out
}

/// A sample line without its exemplar (` # {…} value` after the value):
/// looked for only after the label set, whose values may hold anything.
fn without_exemplar(line: &str) -> &str {
    let mut labels_end = 0;
    // A label set follows the metric's name directly; a `{` after a space
    // is the exemplar's.
    let open = line
        .find([' ', '{'])
        .filter(|&i| line[i..].starts_with('{'));
    if let Some(open) = open {
        let (mut quoted, mut escaped) = (false, false);
        for (i, c) in line[open..].char_indices() {
            match c {
                _ if escaped => escaped = false,
                '\\' if quoted => escaped = true,
                '"' => quoted = !quoted,
                '}' if !quoted => {
                    labels_end = open + i;
                    break;
                }
                _ => {}
            }
        }
    }
    match line[labels_end..].find(" # ") {
        Some(at) => &line[..labels_end + at],
        None => line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exemplars_go_and_label_values_stay_whole() {
        assert_eq!(
            without_exemplar(r#"a_bucket{le="0.5"} 4 # {run_id="7"} 0.25"#),
            r#"a_bucket{le="0.5"} 4"#
        );
        let odd = r#"b_total{field="x # {y} \" # {"} 3"#;
        assert_eq!(without_exemplar(odd), odd);
        assert_eq!(without_exemplar("c 1 # {run_id=\"2\"} 1"), "c 1");
    }

    #[test]
    fn counters_are_named_with_their_total_in_the_text_format() {
        let open = "# HELP checkhost_runs Runs.\n# TYPE checkhost_runs counter\n\
                    checkhost_runs_total{outcome=\"healthy\"} 3\n\
                    # HELP checkhost_slices Slices.\n# TYPE checkhost_slices gauge\n\
                    # UNIT checkhost_slices slices\ncheckhost_slices 2\n\
                    # TYPE checkhost_lag histogram\n\
                    checkhost_lag_bucket{le=\"0.5\"} 4 # {run_id=\"7\"} 0.25\n# EOF\n";
        assert_eq!(
            prometheus_text(open),
            "# HELP checkhost_runs_total Runs.\n# TYPE checkhost_runs_total counter\n\
             checkhost_runs_total{outcome=\"healthy\"} 3\n\
             # HELP checkhost_slices Slices.\n# TYPE checkhost_slices gauge\ncheckhost_slices 2\n\
             # TYPE checkhost_lag histogram\ncheckhost_lag_bucket{le=\"0.5\"} 4\n"
        );
    }
}
