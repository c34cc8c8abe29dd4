//! One run: a fresh store per guest, the strategy connected first, its
//! client shared with every collector through the `transport` import, the
//! whole run under one wall-clock deadline, outcomes typed and masked.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::join_all;
use serde::Serialize;
use serde_json::Value;
use wasmtime::{Trap, WasmBacktrace};

use super::bindings::{CollectorOutput, RunContext};
use super::limits::{RunLimits, human_bytes};
use super::loader::{Plugin, PluginPre};
use super::mask::Masker;
use super::policy::NetworkPolicy;
use super::sandbox::{LogLine, RunJournal, RunScope, Sandbox, journal, new_store};
use super::transport::{StrategySession, TransportLink};
use super::{Runtime, epoch_ticks};

/// One collector of a run, with its config already rendered.
pub struct CollectorRun {
    pub plugin: Arc<Plugin>,
    pub config_json: String,
    /// The collector's environment: exactly its resolved `secretEnv`.
    pub env: Vec<(String, String)>,
}

pub struct RunSpec {
    pub strategy: Arc<Plugin>,
    pub strategy_config: String,
    pub collectors: Vec<CollectorRun>,
    pub context: RunContext,
    pub limits: RunLimits,
    pub policy: Arc<NetworkPolicy>,
    /// Resolved secret values, masked out of everything the run returns.
    pub secrets: Vec<String>,
}

/// Why the host stopped a run. Each variant reads as an operator message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "kind", content = "message", rename_all = "kebab-case")]
pub enum Failure {
    #[error("timeout after {0} ms")]
    Timeout(u64),
    #[error("cpu budget exceeded after {0} ms")]
    CpuBudget(u64),
    #[error("{0}")]
    Limit(String),
    #[error("{0}")]
    Denied(String),
    #[error("{0}")]
    Trap(String),
    #[error("{0}")]
    OutputTooLarge(String),
    #[error("{0}")]
    Host(String),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CollectorOutcome {
    pub id: String,
    pub result: Value,
    pub error: Option<String>,
}

/// What a run cost, for metrics.
#[derive(Debug, Clone, Copy, Default)]
pub struct GuestStats {
    /// Time the run waited for room in the pool and the memory budget.
    pub queued: Duration,
    pub instantiate: Duration,
    pub memory_peak_bytes: usize,
    /// CPU time of the threads while they ran this run's guests and host calls.
    pub cpu: Duration,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunOutcome {
    /// The strategy could not connect: the transport error it reported.
    pub connect_error: Option<String>,
    /// The host stopped the run (deadline, limit, trap, policy).
    pub failure: Option<Failure>,
    pub collectors: Vec<CollectorOutcome>,
    pub logs: Vec<LogLine>,
    pub duration_ms: f64,
    #[serde(skip)]
    pub stats: GuestStats,
}

impl RunOutcome {
    /// The first error of the run, if any, for one-line summaries.
    pub fn error(&self) -> Option<String> {
        self.failure
            .as_ref()
            .map(|f| f.to_string())
            .or_else(|| self.connect_error.clone())
            .or_else(|| {
                self.collectors
                    .iter()
                    .find_map(|c| c.error.as_ref().map(|e| format!("{}: {e}", c.id)))
            })
    }

    fn mask(&mut self, masker: &Masker) {
        if masker.is_empty() {
            return;
        }
        if let Some(e) = self.connect_error.as_mut() {
            masker.in_place(e);
        }
        if let Some(f) = self.failure.take() {
            self.failure = Some(match f {
                Failure::Limit(m) => Failure::Limit(masker.text(&m)),
                Failure::Denied(m) => Failure::Denied(masker.text(&m)),
                Failure::Trap(m) => Failure::Trap(masker.text(&m)),
                Failure::OutputTooLarge(m) => Failure::OutputTooLarge(masker.text(&m)),
                Failure::Host(m) => Failure::Host(masker.text(&m)),
                other => other,
            });
        }
        for c in &mut self.collectors {
            masker.json(&mut c.result);
            if let Some(e) = c.error.as_mut() {
                masker.in_place(e);
            }
        }
        for line in &mut self.logs {
            masker.in_place(&mut line.message);
        }
    }
}

/// Failure of one guest call, before it is turned into an outcome.
struct GuestError {
    plugin: String,
    error: wasmtime::Error,
}

impl Runtime {
    /// Runs a strategy and its collectors once. Never fails: every problem
    /// becomes part of the outcome.
    pub async fn run(&self, spec: RunSpec) -> RunOutcome {
        let arrived = Instant::now();
        let admitted = {
            let _waiting = WaitingRun::new(&self.waiting);
            self.admit(&spec).await
        };
        let queued = arrived.elapsed();
        // The clock starts once the run is admitted: waiting for room in the
        // pool is not the target's latency, nor part of its deadline.
        let started = Instant::now();
        let shared = Arc::new(Mutex::new(RunJournal::default()));
        let masker = Masker::new(spec.secrets.iter().cloned());
        let limits = spec.limits;
        let scope = RunScope {
            limits,
            policy: spec.policy.clone(),
            journal: shared.clone(),
            deadline: started + limits.timeout(),
        };
        let cpu = Arc::new(Mutex::new(Duration::ZERO));
        let mut outcome = match admitted {
            Err(failure) => empty_outcome(Some(failure)),
            Ok(_admission) => {
                let guests = CpuMeter::new(self.run_guests(&spec, &scope), cpu.clone());
                match tokio::time::timeout(limits.timeout(), guests).await {
                    Ok(Ok(outcome)) => outcome,
                    Ok(Err(guest)) => {
                        empty_outcome(Some(classify(guest, &journal(&shared), &limits)))
                    }
                    Err(_) => empty_outcome(Some(Failure::Timeout(limits.timeout_ms))),
                }
            }
        };
        let mut record = journal(&shared);
        outcome.logs = std::mem::take(&mut record.logs);
        outcome.stats = GuestStats {
            queued,
            instantiate: record.instantiate,
            memory_peak_bytes: record.memory_peak_bytes,
            cpu: *cpu.lock().unwrap_or_else(|e| e.into_inner()),
        };
        if let Some(denial) = record.denials.first() {
            let failed = outcome.connect_error.is_some()
                || outcome.failure.is_some()
                || outcome.collectors.iter().any(|c| c.error.is_some());
            if failed && !matches!(outcome.failure, Some(Failure::Timeout(_))) {
                outcome.failure = Some(Failure::Denied(denial.to_string()));
            }
        }
        drop(record);
        outcome.duration_ms = started.elapsed().as_secs_f64() * 1000.0;
        outcome.mask(&masker);
        outcome
    }

    async fn run_guests(&self, spec: &RunSpec, scope: &RunScope) -> Result<RunOutcome, GuestError> {
        let ticks = epoch_ticks(scope.limits.timeout_ms);
        let strategy_id = spec.strategy.info.id.clone();
        let guest = |plugin: &str| {
            let plugin = plugin.to_string();
            move |error| GuestError { plugin, error }
        };
        let PluginPre::Strategy(pre) = &spec.strategy.pre else {
            return Err(guest(&strategy_id)(wasmtime::format_err!(
                "`{strategy_id}` is a collector, not a strategy"
            )));
        };
        let mut store = new_store(&self.engine, Sandbox::new(&strategy_id, &[], scope), ticks);
        let started = Instant::now();
        let bindings = pre
            .instantiate_async(&mut store)
            .await
            .map_err(guest(&strategy_id))?;
        journal(&scope.journal).instantiate += started.elapsed();
        let connected = bindings
            .checkhost_plugin_strategy_plugin()
            .call_connect(&mut store, &spec.strategy_config, &spec.context)
            .await
            .map_err(guest(&strategy_id))?;
        let client = match connected {
            Ok(client) => client,
            Err(transport_error) => {
                store.data_mut().drain_stdout();
                return Ok(RunOutcome {
                    connect_error: Some(transport_error.describe()),
                    ..empty_outcome(None)
                });
            }
        };
        let link: TransportLink = Arc::new(tokio::sync::Mutex::new(StrategySession {
            store,
            bindings,
            client,
        }));

        let results = join_all(
            spec.collectors
                .iter()
                .map(|c| self.run_collector(c, spec, scope, ticks, link.clone())),
        )
        .await;

        let mut session = link.lock().await;
        let StrategySession { store, client, .. } = &mut *session;
        client
            .resource_drop_async(&mut *store)
            .await
            .map_err(guest(&strategy_id))?;
        store.data_mut().drain_stdout();
        drop(session);

        let mut collectors = Vec::with_capacity(results.len());
        for result in results {
            collectors.push(result?);
        }
        Ok(RunOutcome {
            collectors,
            ..empty_outcome(None)
        })
    }

    async fn run_collector(
        &self,
        run: &CollectorRun,
        spec: &RunSpec,
        scope: &RunScope,
        ticks: u64,
        link: TransportLink,
    ) -> Result<CollectorOutcome, GuestError> {
        let id = run.plugin.info.id.clone();
        let fail = |error| GuestError {
            plugin: id.clone(),
            error,
        };
        let PluginPre::Collector(pre) = &run.plugin.pre else {
            return Err(fail(wasmtime::format_err!(
                "`{id}` is a strategy, not a collector"
            )));
        };
        let mut sandbox = Sandbox::new(&id, &run.env, scope);
        sandbox.transport = Some(link);
        let mut store = new_store(&self.engine, sandbox, ticks);
        let started = Instant::now();
        let bindings = pre.instantiate_async(&mut store).await.map_err(fail)?;
        journal(&scope.journal).instantiate += started.elapsed();
        let output = bindings
            .checkhost_plugin_collector_plugin()
            .call_collect(&mut store, &run.config_json, &spec.context)
            .await;
        store.data_mut().drain_stdout();
        let CollectorOutput { result_json, error } = output.map_err(fail)?;
        if result_json.len() > scope.limits.max_output_bytes {
            return Err(fail(wasmtime::Error::new(Failure::OutputTooLarge(
                format!(
                    "{id}: output exceeded {} ({} bytes)",
                    human_bytes(scope.limits.max_output_bytes),
                    result_json.len()
                ),
            ))));
        }
        let result = match serde_json::from_str(&result_json) {
            Ok(value) => value,
            Err(e) => {
                return Ok(CollectorOutcome {
                    id: id.clone(),
                    result: Value::Object(Default::default()),
                    error: Some(format!("collector returned invalid JSON: {e}")),
                });
            }
        };
        Ok(CollectorOutcome { id, result, error })
    }

    /// Waits until the pool has an instance for each guest of the run and
    /// the guest memory budget has room for their initial memories.
    async fn admit(&self, spec: &RunSpec) -> Result<Admission<'_>, Failure> {
        let slots = 1 + spec.collectors.len() as u32;
        if slots > self.instance_slots {
            return Err(Failure::Host(format!(
                "run needs {slots} instances but the pool holds {}",
                self.instance_slots
            )));
        }
        let shutting_down = |_| Failure::Host("runtime is shutting down".into());
        let memory = self
            .memory_budget
            .acquire_many(self.memory_weight(spec))
            .await
            .map_err(shutting_down)?;
        let instances = self
            .slots
            .acquire_many(slots)
            .await
            .map_err(shutting_down)?;
        Ok(Admission {
            _memory: memory,
            _instances: instances,
        })
    }

    /// The run's guests' initial memories in budget pages, capped at the
    /// whole budget so that a run heavier than the budget still runs, alone.
    fn memory_weight(&self, spec: &RunSpec) -> u32 {
        let bytes: u64 = std::iter::once(&spec.strategy)
            .chain(spec.collectors.iter().map(|c| &c.plugin))
            .map(|plugin| plugin.initial_memory_bytes)
            .sum();
        let pages = bytes.div_ceil(super::WASM_PAGE_BYTES);
        u32::try_from(pages)
            .unwrap_or(u32::MAX)
            .clamp(1, self.memory_budget_pages)
    }
}

/// Counts a run as waiting for admission until dropped, also when the run
/// is cancelled while it waits.
struct WaitingRun<'a>(&'a AtomicU64);

impl<'a> WaitingRun<'a> {
    fn new(waiting: &'a AtomicU64) -> Self {
        waiting.fetch_add(1, Ordering::Relaxed);
        WaitingRun(waiting)
    }
}

impl Drop for WaitingRun<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What a run holds while it runs; dropping it makes room for the next.
struct Admission<'a> {
    _memory: tokio::sync::SemaphorePermit<'a>,
    _instances: tokio::sync::SemaphorePermit<'a>,
}

fn empty_outcome(failure: Option<Failure>) -> RunOutcome {
    RunOutcome {
        connect_error: None,
        failure,
        collectors: Vec::new(),
        logs: Vec::new(),
        duration_ms: 0.0,
        stats: GuestStats::default(),
    }
}

/// Adds the CPU time of each poll of a future to a total. A poll runs on
/// one thread from start to end, so the thread's CPU clock measures it
/// exactly, whichever worker the task moves to.
struct CpuMeter<F> {
    inner: std::pin::Pin<Box<F>>,
    total: Arc<Mutex<Duration>>,
}

impl<F> CpuMeter<F> {
    fn new(inner: F, total: Arc<Mutex<Duration>>) -> Self {
        CpuMeter {
            inner: Box::pin(inner),
            total,
        }
    }
}

impl<F: Future> Future for CpuMeter<F> {
    type Output = F::Output;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<F::Output> {
        let before = thread_cpu_time();
        let poll = self.inner.as_mut().poll(cx);
        let spent = thread_cpu_time().saturating_sub(before);
        *self.total.lock().unwrap_or_else(|e| e.into_inner()) += spent;
        poll
    }
}

fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes the timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Turns a guest error into the message an operator needs.
fn classify(guest: GuestError, journal: &RunJournal, limits: &RunLimits) -> Failure {
    if let Some(violation) = &journal.violation {
        return Failure::Limit(format!("{}: {violation}", guest.plugin));
    }
    if let Some(failure) = guest.error.downcast_ref::<Failure>() {
        return failure.clone();
    }
    let plugin = &guest.plugin;
    match guest.error.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => Failure::CpuBudget(limits.timeout_ms),
        Some(trap) => {
            let what = match trap {
                Trap::StackOverflow => "stack overflow".to_string(),
                other => other.to_string(),
            };
            let mut reason = format!("guest {plugin} trapped: {what}");
            if let Some(panic) = panic_message(&journal.logs, plugin) {
                reason.push_str(&format!(" ({panic})"));
            }
            if let Some(backtrace) = guest.error.downcast_ref::<WasmBacktrace>() {
                for frame in backtrace.to_string().lines().take(12) {
                    reason.push('\n');
                    reason.push_str(frame);
                }
            }
            Failure::Trap(reason)
        }
        None => Failure::Trap(format!("guest {plugin} failed: {:#}", guest.error)),
    }
}

/// A Rust guest's panic prints `thread '…' panicked at file:line:col:` and
/// the message on the next line; both tell the operator more than the trap.
fn panic_message(logs: &[LogLine], plugin: &str) -> Option<String> {
    let lines: Vec<&str> = logs
        .iter()
        .filter(|l| l.plugin == plugin && l.level == "stdout")
        .map(|l| l.message.trim())
        .collect();
    let at = lines.iter().rposition(|l| l.contains("panicked at"))?;
    let location = lines[at];
    Some(match lines.get(at + 1) {
        Some(message) if !message.starts_with("note:") => format!("{location} {message}"),
        _ => location.to_string(),
    })
}
