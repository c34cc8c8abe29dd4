//! One loaded configuration, ready to schedule: its setup (config, plugins,
//! secrets), its checks prepared once, and the slices it defines.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::config::environments::{effective_environments, effective_locations};
use crate::config::{ApiConfig, BadgeAccess, ReadAccess};
use crate::notify::Notifier;
use crate::pipeline::run::{Pipeline, Prepared, RunReport};
use crate::pipeline::secrets::{SecretProvider, reference_name, referenced_values};
use crate::pipeline::setup::Setup;
use crate::probe::wire::{ProbeRun, SliceRef, Task, WorkItem};
use crate::runtime::Runtime;
use crate::runtime::mask::Masker;
use crate::store::entity::SliceId;
use crate::store::{NewRun, ProbeRunKey, Store, StoreError};
use crate::telemetry::Traces;

/// Where a slice's system and check sit in the config, found once.
#[derive(Debug, Clone, Copy)]
pub struct SliceDef {
    pub interval_ms: i64,
    /// The configuration's `paused`; an API pause or resume overrides it.
    pub paused: bool,
    /// The assignment's first slice: when its check could not be prepared,
    /// this one reports the failure (one env-less run per interval) and the
    /// others add nothing.
    lead: bool,
    system: usize,
    check: usize,
}

pub struct Generation {
    /// Unique per loaded configuration in this process (for caches).
    pub id: u64,
    /// A digest of the configuration: nodes of a cluster compare them.
    pub config_version: String,
    pub setup: Setup,
    /// Who may use the API under this configuration.
    pub access: Access,
    pub notifier: Arc<Notifier>,
    /// Every secret this configuration references, for masking output.
    pub masker: Masker,
    prepared: HashMap<String, Prepared>,
    /// The slices this server runs.
    pub slices: BTreeMap<SliceId, SliceDef>,
    /// The slices probes run, by location.
    pub probe_slices: BTreeMap<SliceId, SliceDef>,
    /// The process's run traces: set up at start, kept across reloads.
    pub traces: Traces,
}

impl Generation {
    /// Prepares every check (plugins resolved, configs migrated) and lists
    /// the slices of every assignment, paused or not (an API resume may
    /// start a paused one).
    pub async fn prepare(
        setup: Setup,
        runtime: &Runtime,
        store: &Store,
        traces: Traces,
    ) -> Generation {
        let mut prepared = HashMap::new();
        {
            let pipeline = pipeline(&setup, &traces, runtime, store, None);
            for check in &setup.config.file.checks {
                prepared.insert(check.id.clone(), pipeline.prepare(check).await);
            }
        }
        let file = &setup.config.file;
        let systems: HashMap<&str, usize> = file
            .systems
            .iter()
            .enumerate()
            .map(|(i, s)| (s.id.as_str(), i))
            .collect();
        let checks: HashMap<&str, usize> = file
            .checks
            .iter()
            .enumerate()
            .map(|(i, c)| (c.id.as_str(), i))
            .collect();
        let mut slices = BTreeMap::new();
        let mut probe_slices = BTreeMap::new();
        for a in &file.assignments {
            let (Some(&system_at), Some(&check_at)) =
                (systems.get(a.system.as_str()), checks.get(a.check.as_str()))
            else {
                continue;
            };
            let (system, check) = (&file.systems[system_at], &file.checks[check_at]);
            // A minimum keeps a typo (`1ms`) from spinning.
            let interval = check.interval.as_millis().max(100);
            let environments = effective_environments(&a.environments, &system.environments);
            let locations = effective_locations(a, &check.locations);
            for (i, environment) in environments.iter().enumerate() {
                for location in &locations {
                    let key = SliceId::located(
                        &a.system,
                        &a.check,
                        environment.as_deref(),
                        location.as_deref(),
                    );
                    let def = SliceDef {
                        interval_ms: interval,
                        paused: a.paused,
                        lead: i == 0,
                        system: system_at,
                        check: check_at,
                    };
                    match location {
                        None => slices.insert(key, def),
                        Some(_) => probe_slices.insert(key, def),
                    };
                }
            }
        }
        let masker = Masker::new(referenced_values(file, &setup.secrets));
        let notifier = Notifier::new(file, &setup.secrets, masker.clone()).unwrap_or_else(|e| {
            // `validate` refuses this first; reaching it means a bug, not a config.
            tracing::error!("notifications are off: {e}");
            Notifier::new(&Default::default(), &setup.secrets, masker.clone())
                .expect("an empty configuration has valid notifications")
        });
        static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        Generation {
            id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            config_version: version_of(file),
            access: Access::of(&file.api, file.badges, &setup.secrets),
            notifier: Arc::new(notifier),
            masker,
            setup,
            prepared,
            slices,
            probe_slices,
            traces,
        }
    }

    /// Runs one slice through the whole pipeline and persists it; `None`
    /// when this configuration no longer has the slice, when its check
    /// could not be prepared and another slice of the assignment reports it,
    /// or when the runtime admitted it only after `start_by` (not started).
    pub async fn run(
        &self,
        key: &SliceId,
        runtime: &Runtime,
        store: &Store,
        start_by: Option<std::time::Instant>,
    ) -> Option<Result<RunReport, StoreError>> {
        let file = &self.setup.config.file;
        let def = self.slices.get(key)?;
        let (system, check) = (&file.systems[def.system], &file.checks[def.check]);
        let prepared = self.prepared.get(&key.check)?;
        if prepared.is_err() && !def.lead {
            return None;
        }
        let pipeline = pipeline(&self.setup, &self.traces, runtime, store, start_by);
        pipeline
            .run_one(check, prepared, system, key.environment.as_deref())
            .await
            .transpose()
    }

    /// The slices of one assignment, this server's and its probes'.
    pub fn slices_of(&self, system: &str, check: &str) -> Vec<SliceId> {
        self.slices
            .keys()
            .chain(self.probe_slices.keys())
            .filter(|k| k.system == system && k.check == check)
            .cloned()
            .collect()
    }

    /// A probe slice's work: to run, or to report as failed when its check
    /// cannot be prepared.
    pub fn probe_work(&self, key: &SliceId, runtime: &Runtime, store: &Store) -> Option<WorkItem> {
        let def = self.probe_slices.get(key)?;
        let file = &self.setup.config.file;
        let prepared = match self.prepared.get(&key.check)? {
            Ok(p) => p,
            Err(e) => {
                return Some(WorkItem {
                    slice: SliceRef {
                        system: key.system.clone(),
                        check: key.check.clone(),
                        environment: key.environment.clone(),
                    },
                    interval_ms: def.interval_ms,
                    task: Task::Fail {
                        error: e.to_string(),
                    },
                });
            }
        };
        let pipeline = pipeline(&self.setup, &self.traces, runtime, store, None);
        Some(pipeline.probe_work(
            prepared,
            &file.systems[def.system],
            key.environment.as_deref(),
            def.interval_ms,
        ))
    }

    /// The run to store for a probe's run of one of its location's slices;
    /// `Err` says why it is refused (the run does not fit its check). A
    /// check the server cannot prepare fails each run, as it would here.
    pub fn probe_run(
        &self,
        key: &SliceId,
        origin: ProbeRunKey,
        run: ProbeRun,
        runtime: &Runtime,
        store: &Store,
    ) -> Result<NewRun, String> {
        let def = self
            .probe_slices
            .get(key)
            .ok_or_else(|| format!("slice {key} is not a probe slice here"))?;
        let prepared = match self.prepared.get(&key.check) {
            Some(Ok(p)) => p,
            Some(Err(e)) => return Ok(unprepared_run(key, origin, &run, e.to_string())),
            None => return Err(format!("no check `{}` here", key.check)),
        };
        let file = &self.setup.config.file;
        pipeline(&self.setup, &self.traces, runtime, store, None).probe_run(
            prepared,
            &file.systems[def.system],
            key,
            origin,
            run,
            &self.masker,
        )
    }

    /// The strategy plugin of a slice's check, for metrics.
    pub fn strategy_of(&self, key: &SliceId) -> &str {
        self.slices.get(key).map_or("", |def| {
            self.setup.config.file.checks[def.check]
                .strategy
                .plugin
                .as_str()
        })
    }
}

/// A probe's run of a check the server cannot prepare: failed with the
/// server's own reason, whatever the probe reported.
fn unprepared_run(key: &SliceId, origin: ProbeRunKey, run: &ProbeRun, error: String) -> NewRun {
    NewRun {
        system_id: key.system.clone(),
        check_id: key.check.clone(),
        environment_id: key.environment.clone(),
        location_id: key.location.clone(),
        healthy: false,
        latency_ms: None,
        result: serde_json::json!({}),
        error: Some(error),
        at_ms: run.at_ms,
        fields: Vec::new(),
        origin: Some(origin),
        no_probe: false,
    }
}

fn pipeline<'a>(
    setup: &'a Setup,
    traces: &Traces,
    runtime: &'a Runtime,
    store: &'a Store,
    start_by: Option<std::time::Instant>,
) -> Pipeline<'a> {
    Pipeline {
        runtime,
        plugins: &setup.plugins,
        config: &setup.config.file,
        store,
        secrets: setup.secrets.clone(),
        concurrency: 1,
        start_by,
        traces: traces.clone(),
    }
}

pub type Shared = Arc<Generation>;

/// The first 16 hex digits of the SHA-256 of the configuration as loaded.
fn version_of(file: &crate::config::ConfigFile) -> String {
    use sha2::{Digest, Sha256};
    // Streamed into the hash: a large configuration is never one string.
    let mut hasher = Sha256::new();
    let _ = serde_json::to_writer(&mut hasher, file);
    hex::encode(&hasher.finalize()[..8])
}

/// The API's access rules with the token resolved.
#[derive(Debug, Clone)]
pub struct Access {
    /// `None`: no token configured, mutating endpoints are off. `Err`: the
    /// configured secret cannot be resolved (the message names it).
    pub token: Option<Result<String, String>>,
    pub reads: ReadAccess,
    /// Badges are served, to anyone.
    pub badges: bool,
}

impl Access {
    fn of(api: &ApiConfig, badges: Option<BadgeAccess>, secrets: &SecretProvider) -> Access {
        let token = api.token.as_ref().map(|text| match reference_name(text) {
            None => Err("api.token must be a secret reference like ${{ secrets.NAME }}".into()),
            Some(name) => secrets
                .resolve(name)
                .ok_or_else(|| format!("api.token: secret `{name}` is not available")),
        });
        Access {
            token,
            reads: api.reads,
            badges: badges.map_or(api.reads == ReadAccess::Public, |b| {
                b == BadgeAccess::Public
            }),
        }
    }
}
