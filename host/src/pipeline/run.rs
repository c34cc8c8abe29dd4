//! One pass of the pipeline over the selected assignments, each environment
//! its own run, isolated from its siblings' failures.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use futures::future::join_all;
use serde::Serialize;
use serde_json::{Value, json};

use super::assert::{AssertionOutcome, evaluate};
use super::plugins::PluginSet;
use super::render::{context, render_config};
use super::secrets::{SecretProvider, resolve_config_secrets, resolve_secret_env};
use crate::clock::now_ms;
use crate::config::environments::effective_environments;
use crate::config::{Assignment, Check, ConfigFile, System};
use crate::probe::wire::{
    CollectorWork, ContextWire, PluginRef, ProbeRun, RunWork, SliceRef, Task, WorkItem,
};
use crate::runtime::bindings::{CheckInfo, EnvironmentInfo, RunContext, SystemInfo};
use crate::runtime::mask::Masker;
use crate::runtime::result_fields::Sample;
use crate::runtime::timeline::{Timeline, TraceParent};
use crate::runtime::{
    CollectorOutcome, CollectorRun, GuestStats, NetworkPolicy, Plugin, PluginKind, RunLimits,
    RunOutcome, RunSpec, Runtime,
};
use crate::store::entity::SliceId;
use crate::store::{FieldSample, NewRun, ProbeRunKey, Store, StoreError, TransitionEvent};
use crate::telemetry::{FinishedRun, PluginUse, RunEnd, Traces};

/// Runs `checkhost run` keeps in flight at once.
pub const RUN_CONCURRENCY: usize = 32;

/// Which slices `checkhost run` runs.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub system: Option<String>,
    pub check: Option<String>,
    pub environment: Option<String>,
}

/// What one run did, for tables and `--json`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunReport {
    pub system: String,
    pub environment: Option<String>,
    pub check: String,
    pub healthy: bool,
    pub latency_ms: f64,
    pub error: Option<String>,
    pub assertions: Vec<AssertionOutcome>,
    pub transitions: Vec<TransitionEvent>,
    /// The stored run's id.
    pub run_id: i64,
    /// The run's trace, when it was traced and kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// What the sandbox spent on the run.
    #[serde(skip)]
    pub guest: GuestStats,
    /// Marked result fields left out of the aggregates for their type.
    #[serde(skip)]
    pub skipped_fields: Vec<SkippedField>,
}

impl RunReport {
    pub fn failed_assertions(&self) -> Vec<String> {
        self.assertions
            .iter()
            .filter(|a| !a.passed)
            .map(AssertionOutcome::describe)
            .collect()
    }
}

/// A run tried out and stored nowhere, masked.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrialRun {
    pub environment: Option<String>,
    pub healthy: bool,
    pub latency_ms: f64,
    pub error: Option<String>,
    #[schemars(with = "Vec<Value>")]
    pub assertions: Vec<AssertionOutcome>,
    /// Each collector's result, as a stored run keeps it.
    pub collectors: Value,
}

impl TrialRun {
    fn failed(env: Option<&str>, error: String) -> TrialRun {
        TrialRun {
            environment: env.map(str::to_string),
            healthy: false,
            latency_ms: 0.0,
            error: Some(error),
            assertions: Vec::new(),
            collectors: Value::Array(Vec::new()),
        }
    }
}

pub struct Pipeline<'a> {
    pub runtime: &'a Runtime,
    pub plugins: &'a PluginSet,
    pub config: &'a ConfigFile,
    pub store: &'a Store,
    pub secrets: SecretProvider,
    /// Assignments run at once; runs beyond the runtime's pool wait for a slot.
    pub concurrency: usize,
    /// A run admitted by the runtime after this is not started, and
    /// nothing is recorded for it (a claim whose lease may have passed on).
    pub start_by: Option<std::time::Instant>,
    pub traces: Traces,
}

/// A check with its plugins resolved and its configs migrated to current.
pub struct PreparedCheck {
    check: Check,
    strategy: Arc<Plugin>,
    strategy_config: Value,
    collectors: Vec<(Arc<Plugin>, Value)>,
    limits: RunLimits,
    interval_seconds: u64,
    policy: Arc<NetworkPolicy>,
}

/// A slice's run, built and ready for a sandbox here or at a probe.
struct SliceSpec {
    spec: RunSpec,
    /// Collectors whose secrets could not be resolved: each fails alone.
    unresolved: Vec<(usize, CollectorOutcome)>,
    masker: Masker,
}

/// Stages 3–7 of one run, before masking and persisting.
struct Executed {
    healthy: bool,
    error: Option<String>,
    assertions: Vec<AssertionOutcome>,
    result: Value,
    masker: Masker,
    guest: GuestStats,
    fields: Vec<FieldSample>,
    skipped_fields: Vec<SkippedField>,
    /// What a traced run recorded, and when its assertions were judged.
    timeline: Option<Timeline>,
    judged: Option<(Instant, Instant)>,
}

/// A marked result field whose value had another type than its schema
/// says: left out of the aggregates and counted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedField {
    pub plugin: String,
    pub field: String,
}

/// How long a check's config migrations may take: its own timeout, and
/// never more than the 10 s any guest call gets.
pub fn migration_timeout(check_timeout: std::time::Duration) -> std::time::Duration {
    check_timeout.min(crate::runtime::DEFAULT_CALL_TIMEOUT)
}

/// The part of a run that went wrong before the sandbox was reached.
pub struct EarlyFailure(String);

impl std::fmt::Display for EarlyFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A check as prepared once per configuration (stage 2), or why it cannot run.
pub type Prepared = Result<PreparedCheck, EarlyFailure>;

impl Pipeline<'_> {
    pub async fn run(
        &self,
        selection: &Selection,
        on_done: &(dyn Fn(&RunReport) + Sync),
    ) -> Result<Vec<RunReport>, StoreError> {
        self.store
            .sync_config(
                &self.config.checks,
                &self.config.assignments,
                &self.config.systems,
                now_ms(),
            )
            .await?;
        let (systems, checks) = self.index();
        // Migration is deterministic: prepare each check once per pass, not
        // once per assignment.
        let mut prepared: HashMap<&str, Prepared> = HashMap::new();
        for assignment in self.selected(selection) {
            if let Some(check) = checks.get(assignment.check.as_str())
                && !prepared.contains_key(check.id.as_str())
            {
                prepared.insert(check.id.as_str(), self.prepare(check).await);
            }
        }
        let runs = self.selected(selection).filter_map(|assignment| {
            let check = *checks.get(assignment.check.as_str())?;
            let system = *systems.get(assignment.system.as_str())?;
            let prepared = prepared.get(check.id.as_str())?;
            Some(self.run_assignment(assignment, check, prepared, system, selection, on_done))
        });
        let results: Vec<_> = futures::stream::iter(runs)
            .buffered(self.concurrency.max(1))
            .collect()
            .await;
        let mut reports = Vec::new();
        for result in results {
            reports.extend(result?);
        }
        Ok(reports)
    }

    fn selected<'s>(&'s self, selection: &'s Selection) -> impl Iterator<Item = &'s Assignment> {
        self.config.assignments.iter().filter(move |a| {
            !a.paused
                && selection.system.as_ref().is_none_or(|s| *s == a.system)
                && selection.check.as_ref().is_none_or(|c| *c == a.check)
        })
    }

    /// Systems and checks by id: the config's lookups scan, and a pass
    /// looks up every assignment.
    fn index(&self) -> (HashMap<&str, &System>, HashMap<&str, &Check>) {
        let systems = self.config.systems.iter().map(|s| (s.id.as_str(), s));
        let checks = self.config.checks.iter().map(|c| (c.id.as_str(), c));
        (systems.collect(), checks.collect())
    }

    /// The number of runs `run` will do, for progress display.
    pub fn planned_runs(&self, selection: &Selection) -> usize {
        let (systems, _) = self.index();
        self.selected(selection)
            .filter_map(|a| {
                let system = systems.get(a.system.as_str())?;
                Some(self.environments_of(a, system, selection).len())
            })
            .sum()
    }

    fn environments_of(
        &self,
        a: &Assignment,
        system: &System,
        selection: &Selection,
    ) -> Vec<Option<String>> {
        effective_environments(&a.environments, &system.environments)
            .into_iter()
            .filter(|env| {
                selection
                    .environment
                    .as_ref()
                    .is_none_or(|want| env.as_ref() == Some(want))
            })
            .collect()
    }

    async fn run_assignment(
        &self,
        assignment: &Assignment,
        check: &Check,
        prepared: &Prepared,
        system: &System,
        selection: &Selection,
        on_done: &(dyn Fn(&RunReport) + Sync),
    ) -> Result<Vec<RunReport>, StoreError> {
        let environments = self.environments_of(assignment, system, selection);
        if environments.is_empty() {
            return Ok(Vec::new());
        }
        let prepared = match prepared {
            Ok(p) => p,
            Err(EarlyFailure(message)) => {
                // A failure before the fan-out is one env-less unhealthy run.
                let report = self.persist_failure(system, check, message.clone()).await?;
                on_done(&report);
                return Ok(vec![report]);
            }
        };
        let runs = environments.iter().map(|env| async {
            let report = self.run_slice(prepared, system, env.as_deref()).await;
            if let Ok(Some(r)) = &report {
                on_done(r);
            }
            report
        });
        let reports: Result<Vec<Option<RunReport>>, StoreError> =
            join_all(runs).await.into_iter().collect();
        Ok(reports?.into_iter().flatten().collect())
    }

    /// Runs one slice of an assignment — the scheduler's unit of work — and
    /// persists it. A check that could not be prepared is a failed env-less
    /// run instead (the caller has one slice per assignment report it).
    /// `None` when the run was admitted after `start_by`: not started, and
    /// nothing recorded.
    pub async fn run_one(
        &self,
        check: &Check,
        prepared: &Prepared,
        system: &System,
        env: Option<&str>,
    ) -> Result<Option<RunReport>, StoreError> {
        match prepared {
            Ok(p) => self.run_slice(p, system, env).await,
            Err(EarlyFailure(message)) => self
                .persist_failure(system, check, message.clone())
                .await
                .map(Some),
        }
    }

    /// Stage 2: resolve plugins and migrate stored (assumed v1) configs.
    /// Each migration gets the check's timeout, at most 10 s.
    pub async fn prepare(&self, check: &Check) -> Prepared {
        let fail = |m: String| EarlyFailure(m);
        let timeout = check.timeout.get();
        let interval = check.interval.get();
        let migrate_timeout = migration_timeout(timeout);
        let strategy = self
            .plugins
            .strategy(&check.strategy.plugin)
            .ok_or_else(|| {
                fail(
                    self.plugins
                        .missing(PluginKind::Strategy, &check.strategy.plugin),
                )
            })?
            .clone();
        let strategy_config = self
            .runtime
            .migrate_within(&strategy, &check.strategy.config, migrate_timeout)
            .await
            .map_err(|e| fail(e.to_string()))?;
        let mut collectors = Vec::new();
        for c in &check.collectors {
            let plugin = self
                .plugins
                .collector(&c.plugin)
                .ok_or_else(|| fail(self.plugins.missing(PluginKind::Collector, &c.plugin)))?
                .clone();
            let config = self
                .runtime
                .migrate_within(&plugin, &c.config, migrate_timeout)
                .await
                .map_err(|e| fail(e.to_string()))?;
            collectors.push((plugin, config));
        }
        let policy = NetworkPolicy::from_spec(&check.network).map_err(|e| fail(e.to_string()))?;
        Ok(PreparedCheck {
            check: check.clone(),
            strategy,
            strategy_config,
            collectors,
            limits: RunLimits {
                timeout_ms: timeout.as_millis() as u64,
                memory_mib: check.memory_mib.unwrap_or(RunLimits::default().memory_mib),
                host_memory_mib: check
                    .host_memory_mib
                    .unwrap_or(RunLimits::default().host_memory_mib),
                max_sockets: check
                    .max_sockets
                    .unwrap_or(RunLimits::default().max_sockets),
                ..RunLimits::default()
            },
            interval_seconds: interval.as_secs(),
            policy: Arc::new(policy),
        })
    }

    async fn run_slice(
        &self,
        p: &PreparedCheck,
        system: &System,
        env: Option<&str>,
    ) -> Result<Option<RunReport>, StoreError> {
        let started = Instant::now();
        let trace = self.traces.begin(p.check.propagate_trace);
        let parent = trace.as_ref().map(|t| t.parent);
        let mut executed = match self.execute_slice(p, system, env, parent).await {
            Ok(Some(done)) => done,
            Ok(None) => return Ok(None),
            Err(EarlyFailure(message)) => Executed {
                healthy: false,
                error: Some(message),
                assertions: Vec::new(),
                result: json!({}),
                masker: Masker::default(),
                guest: GuestStats::default(),
                fields: Vec::new(),
                skipped_fields: Vec::new(),
                timeline: None,
                judged: None,
            },
        };
        let (healthy, guest) = (executed.healthy, executed.guest);
        let skipped_fields = std::mem::take(&mut executed.skipped_fields);
        let timeline = executed.timeline.take();
        // Only a traced run's spans need the masker after the run is stored.
        let judged = executed.judged;
        let masker = trace.is_some().then(|| executed.masker.clone());
        // Waiting for the runtime to admit the run is the host's queue, not
        // the target's latency.
        let latency_ms = started.elapsed().saturating_sub(guest.queued).as_secs_f64() * 1000.0;
        let (run, assertions) = finished_run(executed, &p.check.id, system, env, latency_ms);
        let error = run.error.clone();
        let persisting = Instant::now();
        let recorded = self.store.record_run(run).await?;
        let trace_id = trace.and_then(|trace| {
            let masker = masker.as_ref()?;
            self.traces.end(
                &trace,
                &FinishedRun {
                    system: &system.id,
                    check: &p.check.id,
                    environment: env,
                    location: None,
                    run_id: Some(recorded.run_id),
                    end: if healthy {
                        RunEnd::Healthy
                    } else {
                        RunEnd::Unhealthy
                    },
                    error: error.as_deref(),
                    strategy: PluginUse::of(&p.strategy),
                    collectors: p.collectors.iter().map(|(c, _)| PluginUse::of(c)).collect(),
                    timeline: timeline.as_ref(),
                    judged,
                    persisted: (persisting, Instant::now()),
                    failed_assertions: assertions.iter().filter(|a| !a.passed).count(),
                    masker,
                },
            )
        });
        Ok(Some(RunReport {
            system: system.id.clone(),
            environment: env.map(str::to_string),
            check: p.check.id.clone(),
            healthy,
            latency_ms,
            error,
            assertions,
            transitions: recorded.transitions,
            run_id: recorded.run_id,
            trace_id,
            guest,
            skipped_fields,
        }))
    }

    /// Stages 3–7 for one environment, stored nowhere: a check tried out
    /// before it is applied. What comes back is masked as a stored run is.
    pub async fn try_slice(
        &self,
        p: &PreparedCheck,
        system: &System,
        env: Option<&str>,
    ) -> TrialRun {
        let started = Instant::now();
        let executed = match self.execute_slice(p, system, env, None).await {
            Ok(Some(done)) => done,
            // Only a run admitted after `start_by` is not started; a trial has none.
            Ok(None) => return TrialRun::failed(env, "the run was not started".into()),
            Err(EarlyFailure(message)) => return TrialRun::failed(env, message),
        };
        let latency_ms = started
            .elapsed()
            .saturating_sub(executed.guest.queued)
            .as_secs_f64()
            * 1000.0;
        let (run, assertions) = finished_run(executed, &p.check.id, system, env, latency_ms);
        TrialRun {
            environment: env.map(str::to_string),
            healthy: run.healthy,
            latency_ms,
            error: run.error,
            assertions,
            collectors: run.result.get("collectors").cloned().unwrap_or_default(),
        }
    }

    /// The run to store for one a probe made of this check's slice `key`,
    /// judged as a local run is: bounded and masked, its assertions and
    /// marked fields here, its thresholds and transitions in the store.
    /// `Err` says why a run is refused: it does not fit the check.
    pub fn probe_run(
        &self,
        p: &PreparedCheck,
        system: &System,
        key: &SliceId,
        origin: ProbeRunKey,
        run: ProbeRun,
        masker: &Masker,
    ) -> Result<NewRun, String> {
        if !(run.latency_ms.is_finite() && run.latency_ms >= 0.0) {
            return Err(format!("run {} has latency {}", run.seq, run.latency_ms));
        }
        // A run that stopped early reports fewer collectors, with its error.
        if run.error.is_none() && run.collectors.len() != p.collectors.len() {
            return Err(format!(
                "run {} reports {} collectors; check `{}` has {}",
                run.seq,
                run.collectors.len(),
                p.check.id,
                p.collectors.len()
            ));
        }
        for c in &run.collectors {
            let size = c.result.to_string().len();
            if size > p.limits.max_output_bytes {
                return Err(format!(
                    "run {}: collector {} returned {size} bytes, more than its {}",
                    run.seq,
                    crate::runtime::text::inert(&crate::runtime::text::bounded(c.id.clone(), 64)),
                    p.limits.max_output_bytes
                ));
            }
        }
        let mut outcome = RunOutcome {
            connect_error: run.error,
            failure: None,
            collectors: run.collectors,
            logs: Vec::new(),
            duration_ms: run.latency_ms,
            stats: GuestStats::default(),
            timeline: None,
        };
        outcome.mask_and_bound(masker);
        let executed = judge(p, outcome, Vec::new(), masker.clone());
        let env = key.environment.as_deref();
        let (mut new_run, _) = finished_run(executed, &p.check.id, system, env, run.latency_ms);
        new_run.location_id = key.location.clone();
        new_run.at_ms = run.at_ms;
        new_run.origin = Some(origin);
        Ok(new_run)
    }

    /// A slice's work for a probe: the run as `execute_slice` would hand it
    /// to the sandbox, with its plugins named by digest; or the failure a
    /// local run would record.
    pub fn probe_work(
        &self,
        p: &PreparedCheck,
        system: &System,
        env: Option<&str>,
        interval_ms: i64,
    ) -> WorkItem {
        let slice = SliceRef {
            system: system.id.clone(),
            check: p.check.id.clone(),
            environment: env.map(str::to_string),
        };
        let built = match self.spec_for(p, system, env) {
            Ok(built) => built,
            Err(EarlyFailure(error)) => {
                return WorkItem {
                    slice,
                    interval_ms,
                    task: Task::Fail { error },
                };
            }
        };
        let spec = built.spec;
        let plugin_ref = |plugin: &Plugin| PluginRef {
            id: plugin.info.id.clone(),
            digest: plugin.digest,
        };
        let work = RunWork {
            strategy: plugin_ref(&spec.strategy),
            strategy_config: spec.strategy_config,
            collectors: spec
                .collectors
                .into_iter()
                .map(|c| CollectorWork {
                    plugin: plugin_ref(&c.plugin),
                    config: c.config_json,
                    env: c.env,
                })
                .collect(),
            context: ContextWire::from(&spec.context),
            limits: spec.limits,
            network: p.check.network.clone(),
            secrets: spec.secrets,
            failed_collectors: built.unresolved,
            propagate_trace: p.check.propagate_trace,
        };
        WorkItem {
            slice,
            interval_ms,
            task: Task::Run(Box::new(work)),
        }
    }

    /// Stages 3–7 for one environment.
    async fn execute_slice(
        &self,
        p: &PreparedCheck,
        system: &System,
        env_id: Option<&str>,
        trace: Option<TraceParent>,
    ) -> Result<Option<Executed>, EarlyFailure> {
        let SliceSpec {
            spec,
            unresolved,
            masker,
        } = self.spec_for(p, system, env_id)?;
        let Some(outcome) = self.runtime.run_by(spec, self.start_by, trace).await else {
            return Ok(None);
        };
        let judging = Instant::now();
        let mut executed = judge(p, outcome, unresolved, masker);
        if trace.is_some() {
            executed.judged = Some((judging, Instant::now()));
        }
        Ok(Some(executed))
    }

    /// Stages 3–5 for one environment: secrets resolved, configs rendered,
    /// the run ready for a sandbox.
    fn spec_for(
        &self,
        p: &PreparedCheck,
        system: &System,
        env_id: Option<&str>,
    ) -> Result<SliceSpec, EarlyFailure> {
        let environment = env_id.and_then(|id| self.config.environment(id));
        let fail = |m: String| EarlyFailure(m);

        let mut secrets = Vec::new();
        let mut strategy_config = p.strategy_config.clone();
        secrets.extend(
            resolve_config_secrets(
                &p.strategy.info.config_schema,
                &mut strategy_config,
                &self.secrets,
            )
            .map_err(|e| fail(e.to_string()))?,
        );
        // A collector whose secret is missing fails alone, as in the seed;
        // its siblings still run.
        let mut envs = Vec::new();
        for ((plugin, _), spec) in p.collectors.iter().zip(&p.check.collectors) {
            match resolve_secret_env(&spec.secret_env, &self.secrets) {
                Ok(vars) => {
                    secrets.extend(vars.iter().map(|(_, v)| v.clone()));
                    envs.push(Ok(vars));
                }
                Err(e) => envs.push(Err(CollectorOutcome {
                    id: plugin.info.id.clone(),
                    result: json!({}),
                    error: Some(e.to_string()),
                })),
            }
        }
        let masker = Masker::new(secrets.iter().cloned());

        let ctx = context(environment, &p.check, p.interval_seconds, system);
        render_config(&p.strategy.info.config_schema, &mut strategy_config, &ctx)
            .map_err(|e| fail(format!("strategy {e}")))?;
        let mut collectors = Vec::new();
        let mut unresolved = Vec::new();
        for (i, ((plugin, config), env)) in p.collectors.iter().zip(envs).enumerate() {
            let env = match env {
                Ok(env) => env,
                Err(failed) => {
                    unresolved.push((i, failed));
                    continue;
                }
            };
            let mut config = config.clone();
            render_config(&plugin.info.config_schema, &mut config, &ctx)
                .map_err(|e| fail(format!("collector {}: {e}", plugin.info.id)))?;
            collectors.push(CollectorRun {
                plugin: plugin.clone(),
                config_json: config.to_string(),
                env,
            });
        }

        let spec = RunSpec {
            strategy: p.strategy.clone(),
            strategy_config: strategy_config.to_string(),
            collectors,
            context: run_context(p, system, environment),
            limits: p.limits,
            policy: p.policy.clone(),
            secrets,
        };
        Ok(SliceSpec {
            spec,
            unresolved,
            masker,
        })
    }

    /// A check that could not be prepared (plugin missing, migration
    /// failed) is one env-less unhealthy run on the system, without latency.
    async fn persist_failure(
        &self,
        system: &System,
        check: &Check,
        message: String,
    ) -> Result<RunReport, StoreError> {
        let run = NewRun {
            system_id: system.id.clone(),
            check_id: check.id.clone(),
            environment_id: None,
            location_id: None,
            healthy: false,
            latency_ms: None,
            result: json!({}),
            error: Some(message.clone()),
            at_ms: now_ms(),
            fields: Vec::new(),
            origin: None,
            no_probe: false,
        };
        let recorded = self.store.record_run(run).await?;
        Ok(RunReport {
            system: system.id.clone(),
            environment: None,
            check: check.id.clone(),
            healthy: false,
            latency_ms: 0.0,
            error: Some(message),
            assertions: Vec::new(),
            transitions: recorded.transitions,
            run_id: recorded.run_id,
            trace_id: None,
            guest: GuestStats::default(),
            skipped_fields: Vec::new(),
        })
    }
}

/// Stages 6–7 of a run, wherever it ran: its collectors' outcomes back in
/// the check's order, assertions, the persisted result and marked fields.
fn judge(
    p: &PreparedCheck,
    mut outcome: RunOutcome,
    unresolved: Vec<(usize, CollectorOutcome)>,
    masker: Masker,
) -> Executed {
    outcome.restore_unrun(unresolved);

    let assertions: Vec<AssertionOutcome> = outcome
        .collectors
        .iter()
        .zip(&p.check.collectors)
        .flat_map(|(out, spec)| {
            spec.assertions
                .iter()
                .map(|a| evaluate(&out.id, a, &out.result))
        })
        .collect();
    let error = outcome.error();
    let healthy = error.is_none() && assertions.iter().all(|a| a.passed);
    let (fields, skipped_fields) = field_samples(&outcome, p);
    Executed {
        healthy,
        error,
        assertions,
        result: persisted_results(&outcome, p),
        masker,
        guest: outcome.stats,
        fields,
        skipped_fields,
        timeline: outcome.timeline,
        judged: None,
    }
}

/// The run to store and the assertions to report, masked.
fn finished_run(
    executed: Executed,
    check_id: &str,
    system: &System,
    env: Option<&str>,
    latency_ms: f64,
) -> (NewRun, Vec<AssertionOutcome>) {
    let Executed {
        healthy,
        error,
        mut assertions,
        result,
        masker,
        fields,
        ..
    } = executed;
    for a in &mut assertions {
        if let Some(actual) = a.actual.as_mut() {
            masker.json(actual);
        }
        // A message may quote the value (`… is not a number`).
        if let Some(message) = a.message.as_mut() {
            masker.in_place(message);
        }
    }
    let error = error.map(|e| masker.text(&e));
    let mut persisted = json!({
        "collectors": result,
        "assertions": persisted_assertions(&assertions),
    });
    masker.json(&mut persisted);
    let run = NewRun {
        system_id: system.id.clone(),
        check_id: check_id.to_string(),
        environment_id: env.map(str::to_string),
        location_id: None,
        healthy,
        latency_ms: Some(latency_ms),
        result: persisted,
        error,
        at_ms: now_ms(),
        fields,
        origin: None,
        no_probe: false,
    };
    (run, assertions)
}

/// Assertion outcomes as stored: every outcome with its expected and actual
/// values when any failed; when all passed, only their count — the values
/// they judged are in the collector results, and most runs are this case.
fn persisted_assertions(assertions: &[AssertionOutcome]) -> Value {
    if assertions.iter().all(|a| a.passed) {
        json!({ "passed": assertions.len() })
    } else {
        json!(assertions)
    }
}

/// The values of the fields each collector marks for aggregation, keyed
/// by its plugin id (`<id>#2` for a plugin's second use in the check, so
/// two uses never merge); values of another type are left out and named.
fn field_samples(outcome: &RunOutcome, p: &PreparedCheck) -> (Vec<FieldSample>, Vec<SkippedField>) {
    let mut samples = Vec::new();
    let mut skipped = Vec::new();
    let mut uses: HashMap<&str, usize> = HashMap::new();
    for (out, (plugin, _)) in outcome.collectors.iter().zip(&p.collectors) {
        let id = plugin.info.id.as_str();
        let nth = uses.entry(id).or_default();
        *nth += 1;
        let collector = match *nth {
            1 => id.to_string(),
            n => format!("{id}#{n}"),
        };
        for field in &plugin.result_fields {
            match field.sample(&out.result) {
                Sample::Value(value) => samples.push(FieldSample {
                    collector: collector.clone(),
                    field: field.name.clone(),
                    value,
                }),
                Sample::Missing => {}
                Sample::Mismatch => skipped.push(SkippedField {
                    plugin: id.to_string(),
                    field: field.name.clone(),
                }),
            }
        }
    }
    (samples, skipped)
}

/// Collector results as stored: fields whose result schema says
/// `x-persist: false` (an HTTP body, say) are there for assertions only.
fn persisted_results(outcome: &RunOutcome, p: &PreparedCheck) -> Value {
    let items = outcome
        .collectors
        .iter()
        .zip(&p.collectors)
        .map(|(out, (plugin, _))| {
            let mut result = out.result.clone();
            if let (Some(obj), Some(props)) = (
                result.as_object_mut(),
                plugin
                    .info
                    .result_schema
                    .get("properties")
                    .and_then(Value::as_object),
            ) {
                for (name, schema) in props {
                    if schema.get("x-persist").and_then(Value::as_bool) == Some(false) {
                        obj.remove(name);
                    }
                }
            }
            match &out.error {
                Some(error) => json!({"id": out.id, "result": result, "error": error}),
                None => json!({"id": out.id, "result": result}),
            }
        });
    Value::Array(items.collect())
}

fn run_context(
    p: &PreparedCheck,
    system: &System,
    environment: Option<&crate::config::Environment>,
) -> RunContext {
    RunContext {
        check: CheckInfo {
            id: p.check.id.clone(),
            name: p.check.name.clone().unwrap_or_else(|| p.check.id.clone()),
            interval_seconds: p.interval_seconds.min(u64::from(u32::MAX)) as u32,
        },
        system: SystemInfo {
            id: system.id.clone(),
            name: system.name.clone().unwrap_or_else(|| system.id.clone()),
            metadata: system
                .metadata
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        },
        environment: environment.map(|e| EnvironmentInfo {
            id: e.id.clone(),
            name: e.name.clone().unwrap_or_else(|| e.id.clone()),
            fields_json: Value::Object(e.fields.clone()).to_string(),
        }),
    }
}
