//! One run: a fresh store per guest, the strategy connected first, its
//! client shared with every collector through the `transport` import, the
//! whole run under one wall-clock deadline, outcomes typed and masked.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::join_all;
use serde::Serialize;
use serde_json::Value;

use super::bindings::{CollectorOutput, RunContext};
use super::failure::{Failure, GuestError, classify};
use super::host_memory::{Charged, RunAllocations};
use super::journal::{LogLine, journal};
use super::limits::{RunLimits, human_bytes};
use super::loader::{Plugin, PluginPre};
use super::mask::Masker;
use super::policy::NetworkPolicy;
use super::sandbox::{Sandbox, new_store};
use super::scope::RunScope;
use super::text::{MAX_MESSAGE_BYTES, mask_and_bound};
use super::timeline::{PhaseKind, Timeline, TraceParent};
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

#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
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
    /// The most host memory the run's guests made the host hold.
    pub host_memory_peak_bytes: usize,
    /// CPU time of the threads while they ran this run's guests and host calls.
    pub cpu: Duration,
    /// Epoch ticks the guests' code ran through.
    pub epoch_ticks: u64,
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
    /// What a traced run recorded of its phases and requests.
    #[serde(skip)]
    pub timeline: Option<Timeline>,
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

    /// Puts back collectors that failed without running (`(place, outcome)`,
    /// in rising place), so results line up with the check's collectors. A
    /// run that stopped before its collectors ran reports that instead.
    pub fn restore_unrun(&mut self, unrun: Vec<(usize, CollectorOutcome)>) {
        if self.collectors.is_empty() && self.error().is_some() {
            return;
        }
        for (place, outcome) in unrun {
            let place = place.min(self.collectors.len());
            self.collectors.insert(place, outcome);
        }
    }

    /// Masks secrets out of everything the run returns and cuts each
    /// message a guest controls to `MAX_MESSAGE_BYTES`.
    /// Also for an outcome a probe reports: it obeys the same bounds.
    pub fn mask_and_bound(&mut self, masker: &Masker) {
        let finish = |text: &mut String| {
            mask_and_bound(text, MAX_MESSAGE_BYTES, |t| masker.in_place(t));
            // PostgreSQL's TEXT cannot hold NUL.
            if text.contains('\0') {
                *text = text.replace('\0', "\\0");
            }
        };
        if let Some(e) = self.connect_error.as_mut() {
            finish(e);
        }
        if let Some(f) = self.failure.as_mut() {
            match f {
                Failure::Limit(m)
                | Failure::Denied(m)
                | Failure::Trap(m)
                | Failure::OutputTooLarge(m)
                | Failure::Host(m) => finish(m),
                Failure::Timeout(_) | Failure::CpuBudget(_) => {}
            }
        }
        for c in &mut self.collectors {
            masker.json(&mut c.result);
            if let Some(e) = c.error.as_mut() {
                finish(e);
            }
        }
        for line in &mut self.logs {
            finish(&mut line.message);
        }
    }
}

impl Runtime {
    /// Runs a strategy and its collectors once. Never fails: every problem
    /// becomes part of the outcome.
    pub async fn run(&self, spec: RunSpec) -> RunOutcome {
        match self.run_by(spec, None, None).await {
            Some(outcome) => outcome,
            None => empty_outcome(Some(Failure::Host("the run was not started".into()))),
        }
    }

    /// As [`Runtime::run`], but `None`, with nothing started, when the
    /// run is admitted (a pool slot, the memory budget) only after
    /// `start_by`: a run claimed under a lease must not start once another
    /// node may hold that lease. A run with a `trace` records its timeline.
    pub async fn run_by(
        &self,
        spec: RunSpec,
        start_by: Option<Instant>,
        trace: Option<TraceParent>,
    ) -> Option<RunOutcome> {
        let arrived = Instant::now();
        let admitted = {
            let _waiting = WaitingRun::new(&self.waiting);
            self.admit(&spec).await
        };
        if start_by.is_some_and(|by| Instant::now() > by) {
            return None;
        }
        let queued = arrived.elapsed();
        // The clock starts once the run is admitted: waiting for room in the
        // pool is not the target's latency, nor part of its deadline.
        let started = Instant::now();
        let masker = Masker::new(spec.secrets.iter().cloned());
        let limits = spec.limits;
        let allocations = RunAllocations::start();
        let scope = RunScope::new(
            limits,
            spec.policy.clone(),
            allocations.as_ref().map(RunAllocations::meter),
            started + limits.timeout(),
        )
        .traced(trace, started);
        let shared = scope.journal.clone();
        let cpu = Arc::new(Mutex::new(Duration::ZERO));
        let mut outcome = match (admitted, allocations) {
            (Err(failure), _) => empty_outcome(Some(failure)),
            (Ok(_), None) => empty_outcome(Some(Failure::Host(
                "too many runs in flight to account their host memory".into(),
            ))),
            (Ok(_admission), Some(allocations)) => {
                let guests = CpuMeter::new(
                    Charged::new(self.run_guests(&spec, &scope), Some(allocations)),
                    cpu.clone(),
                );
                match tokio::time::timeout(limits.timeout(), guests).await {
                    Ok(Ok(outcome)) => outcome,
                    Ok(Err(guest)) => {
                        empty_outcome(Some(classify(guest, &journal(&shared), &limits)))
                    }
                    Err(_) => empty_outcome(Some(Failure::Timeout(limits.timeout_ms))),
                }
            }
        };
        if outcome.failure.is_none() {
            // Sets the violation in the journal, read just below.
            let _ = scope.budget.check_after();
        }
        let mut record = journal(&shared);
        // A cap the run crossed fails it even when the guest caught the
        // refused call and returned a result.
        if outcome.failure.is_none()
            && let Some(violation) = &record.violation
        {
            outcome.failure = Some(Failure::Limit(match &record.violator {
                Some(plugin) => format!("{plugin}: {violation}"),
                None => violation.to_string(),
            }));
        }
        outcome.logs = std::mem::take(&mut record.logs);
        outcome.timeline = record.timeline.take();
        outcome.stats = GuestStats {
            queued,
            instantiate: record.instantiate,
            memory_peak_bytes: record.memory_peak_bytes,
            host_memory_peak_bytes: scope.budget.host_memory_peak(),
            cpu: *cpu.lock().unwrap_or_else(|e| e.into_inner()),
            epoch_ticks: record.epoch_ticks,
        };
        if let Some(denial) = &record.denial {
            let failed = outcome.connect_error.is_some()
                || outcome.failure.is_some()
                || outcome.collectors.iter().any(|c| c.error.is_some());
            if failed && !matches!(outcome.failure, Some(Failure::Timeout(_))) {
                outcome.failure = Some(Failure::Denied(denial.to_string()));
            }
        }
        drop(record);
        outcome.duration_ms = started.elapsed().as_secs_f64() * 1000.0;
        outcome.mask_and_bound(&masker);
        Some(outcome)
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
        scope.phase(PhaseKind::Instantiate, &strategy_id, None, started);
        let connecting = Instant::now();
        let connected = bindings
            .checkhost_plugin_strategy_plugin()
            .call_connect(&mut store, &spec.strategy_config, &spec.context)
            .await
            .map_err(guest(&strategy_id))?;
        scope.phase(PhaseKind::Connect, &strategy_id, None, connecting);
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
                .enumerate()
                .map(|(place, c)| self.run_collector(place, c, spec, scope, ticks, link.clone())),
        )
        .await;

        // A collector that failed (a trap in the strategy's `exec` it
        // called included) says why; dropping a client still borrowed by a
        // trapped call would only add "owned resource while borrowed".
        let mut collectors = Vec::with_capacity(results.len());
        for result in results {
            collectors.push(result?);
        }
        let mut session = link.lock().await;
        let StrategySession { store, client, .. } = &mut *session;
        client
            .resource_drop_async(&mut *store)
            .await
            .map_err(guest(&strategy_id))?;
        store.data_mut().drain_stdout();
        drop(session);
        Ok(RunOutcome {
            collectors,
            ..empty_outcome(None)
        })
    }

    async fn run_collector(
        &self,
        place: usize,
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
        let mut sandbox = Sandbox::new(&id, &run.env, scope).collector_at(place);
        sandbox.transport = Some(link);
        let mut store = new_store(&self.engine, sandbox, ticks);
        let started = Instant::now();
        let bindings = pre.instantiate_async(&mut store).await.map_err(fail)?;
        journal(&scope.journal).instantiate += started.elapsed();
        scope.phase(PhaseKind::Instantiate, &id, Some(place), started);
        let output = bindings
            .checkhost_plugin_collector_plugin()
            .call_collect(&mut store, &run.config_json, &spec.context)
            .await;
        scope.phase(PhaseKind::Collect, &id, Some(place), started);
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
        timeline: None,
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
