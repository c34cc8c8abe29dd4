//! Persistence behind one API on two engines (embedded SQLite, shared
//! PostgreSQL): runs go through a single batched writer; reads, config sync
//! and retention go straight to the database.

mod apply;
pub(crate) mod db;
pub mod entity;
pub mod fields;
mod ids;
pub mod incidents;
pub mod outbox;
pub mod probes;
pub mod read;
pub mod retention;
pub mod schedule;
pub mod sketch;
pub mod slo;
pub mod state;
mod writer;

use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;
use sqlx::QueryBuilder;
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::config::environments::{effective_environments, effective_locations};
use crate::config::{Assignment, Check, EnvSelection, System, Thresholds};
use db::{Db, with_pool};
use entity::SliceId;
use state::{Status, TransitionKind};
pub use writer::{WriteFailure, WriterConfig};

pub const HOUR_MS: i64 = 3_600_000;
pub const DAY_MS: i64 = 86_400_000;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database {url}: cannot open: {source}")]
    Open { url: String, source: sqlx::Error },
    #[error("database {url}: migration failed: {source}")]
    Migrate {
        url: String,
        source: sqlx::migrate::MigrateError,
    },
    #[error(
        "database {url} was migrated by a newer checkhost (schema version {version}; this \
         checkhost knows up to {known}): upgrade checkhost or point it at another database"
    )]
    NewerSchema {
        url: String,
        version: i64,
        known: i64,
    },
    #[error("database error: {0}")]
    Query(#[from] sqlx::Error),
    #[error("runs were not persisted: {0}")]
    NotPersisted(String),
    #[error("the database did not answer within {0:?}")]
    NoAnswer(std::time::Duration),
    #[error("unsupported database URL `{0}`: use sqlite://<path> or postgres://<user>@<host>/<db>")]
    Url(String),
}

/// One finished run, ready to persist. Results are already masked.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NewRun {
    pub system_id: String,
    pub check_id: String,
    pub environment_id: Option<String>,
    /// The probe location that ran it; `None`: this server.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location_id: Option<String>,
    pub healthy: bool,
    /// `None` for a run of a check that could not be prepared at all (its
    /// plugin is missing, its migration fails): it has no latency, stays out
    /// of the latency aggregates, and is stored with 0.
    pub latency_ms: Option<f64>,
    pub result: Value,
    pub error: Option<String>,
    pub at_ms: i64,
    /// The values of the result fields its collectors mark for aggregation.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FieldSample>,
    /// The probe run this is: stored once however often its batch comes.
    #[serde(skip)]
    pub origin: Option<ProbeRunKey>,
    /// Recorded for a probe slice while no probe of its location reports:
    /// the slice is degraded whatever its thresholds say, and the run adds
    /// nothing to the aggregates (nothing was measured).
    #[serde(skip)]
    pub no_probe: bool,
}

impl NewRun {
    /// As stored: `degraded` for a `no-probe` run.
    pub fn status(&self) -> Status {
        match (self.no_probe, self.healthy) {
            (true, _) => Status::Degraded,
            (false, true) => Status::Healthy,
            (false, false) => Status::Unhealthy,
        }
    }
}

/// A run's key as its probe made it: the probe's id and its own sequence
/// number, which rises with every run the probe makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeRunKey {
    pub probe: String,
    pub seq: i64,
}

/// One marked result field's value in a run, merged into the field's
/// hourly bucket beside the latency.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FieldSample {
    /// The collector's plugin id; `<id>#2` for its second use in a check.
    pub collector: String,
    pub field: String,
    /// The number, or 1 and 0 for a boolean.
    pub value: f64,
}

/// A status change of an entity (`<system>` or `<system>::<environment>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TransitionEvent {
    /// The transition row's id, once written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    pub entity_id: String,
    /// Whether the entity is the causing slice's own (its environment's,
    /// or the system for a slice without environment) rather than a rollup
    /// of it: only these notify, so one change sends one notice.
    #[serde(skip)]
    pub own_slice: bool,
    pub from: Status,
    pub to: Status,
    pub kind: TransitionKind,
    pub check_id: String,
    pub environment_id: Option<String>,
    /// "2 of 3 checks" in the entity after the change (see
    /// [`state::CheckCounts`]); on live transitions, not on stored ones.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub healthy_checks: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_checks: Option<u32>,
    /// Set when the slice is flapping (see [`state::FlapRule`]); on live
    /// transitions, not on stored ones.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flapping: Option<state::Flap>,
    /// The run that caused it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_id: Option<i64>,
    pub at_ms: i64,
}

/// A committed run, as the event stream tells it (its result stays in the
/// database; `GET /api/v1/runs` has it).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunEvent {
    pub id: i64,
    pub system_id: String,
    pub check_id: String,
    pub environment_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location_id: Option<String>,
    /// `healthy` or `unhealthy`.
    pub status: Status,
    pub latency_ms: f64,
    pub error: Option<String>,
    pub at_ms: i64,
}

/// What the store tells listeners after each commit, in commit order: a
/// run and the transitions it caused, or (without a run) the transitions a
/// pause, resume or configuration change caused.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreEvent {
    pub run: Option<RunEvent>,
    pub transitions: Vec<TransitionEvent>,
}

impl StoreEvent {
    pub fn run_id(&self) -> Option<i64> {
        self.run.as_ref().map(|r| r.id)
    }
}

/// A committed run: its id and the transitions it caused.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub run_id: i64,
    pub transitions: Vec<TransitionEvent>,
    /// A probe run stored before (its batch came again): nothing was written.
    pub duplicate: bool,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EntityStatus {
    pub entity_id: String,
    pub status: Status,
    pub updated_at_ms: i64,
    /// Absent until the entity is evaluated again after an upgrade.
    pub checks: Option<state::CheckCounts>,
}

/// The store: a handle on the database and on its one writer task.
pub struct Store {
    db: Arc<Db>,
    queue: mpsc::Sender<writer::Job>,
    events: broadcast::Sender<StoreEvent>,
    router: outbox::SharedRouter,
    status_cache: tokio::sync::Mutex<read::StatusCache>,
    health: Arc<writer::WriteHealth>,
    writer: tokio::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// The slices the configuration selects, as `(system, check, env_key)`.
fn selected_slices(
    assignments: &[Assignment],
    systems: &[System],
    checks: &[Check],
) -> std::collections::HashSet<(String, String, String)> {
    let systems: HashMap<&str, &System> = systems.iter().map(|s| (s.id.as_str(), s)).collect();
    let checks: HashMap<&str, &Check> = checks.iter().map(|c| (c.id.as_str(), c)).collect();
    let mut selected = std::collections::HashSet::new();
    for a in assignments {
        let Some(system) = systems.get(a.system.as_str()) else {
            continue;
        };
        let check_locations = checks
            .get(a.check.as_str())
            .map_or(&[][..], |c| &c.locations[..]);
        let locations = effective_locations(a, check_locations);
        for env in effective_environments(&a.environments, &system.environments) {
            for location in &locations {
                let key =
                    SliceId::located(&a.system, &a.check, env.as_deref(), location.as_deref());
                selected.insert((
                    key.system.clone(),
                    key.check.clone(),
                    key.env_key().into_owned(),
                ));
            }
        }
    }
    selected
}

/// An assignment's flapping rule as the writer reads it.
fn flap_rule(a: &Assignment) -> Option<String> {
    let f = a.flapping.as_ref()?;
    serde_json::to_string(&state::FlapRule {
        changes: f.changes,
        window_ms: f.window.as_millis(),
    })
    .ok()
}

/// One cause per system: the first check (in order) whose change touched it.
fn causes(mut changed: Vec<(String, String)>) -> Vec<(String, String)> {
    changed.sort();
    changed.dedup_by(|a, b| a.0 == b.0);
    changed
}

/// The entities a slice's run touches, widest first (which is also their
/// sorted order): its system's rollup, its environment's, its location's.
pub fn entity_ids(system: &str, environment: Option<&str>, location: Option<&str>) -> Vec<String> {
    entity::entities_of(system, environment, location)
        .iter()
        .map(ToString::to_string)
        .collect()
}

impl Store {
    /// Opens `sqlite://path` (created on first start) or `postgres://…`,
    /// migrates it and starts the writer.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        Self::open_with(url, WriterConfig::default()).await
    }

    pub async fn open_with(url: &str, config: WriterConfig) -> Result<Store, StoreError> {
        let db = Arc::new(Db::connect(url).await?);
        let (events, _) = broadcast::channel(4096);
        let router = outbox::SharedRouter::default();
        let health = Arc::new(writer::WriteHealth::default());
        let (queue, handle) = writer::start(
            db.clone(),
            health.clone(),
            events.clone(),
            router.clone(),
            config,
        )
        .await?;
        Ok(Store {
            db,
            queue,
            events,
            router,
            status_cache: Default::default(),
            health,
            writer: tokio::sync::Mutex::new(Some(handle)),
        })
    }

    /// `sqlite` or `postgres`.
    pub fn engine(&self) -> &'static str {
        self.db.engine()
    }

    /// Whether other processes may share this database as cluster nodes:
    /// on PostgreSQL. `serve` then runs as a node.
    pub fn shared(&self) -> bool {
        self.engine() == "postgres"
    }

    /// Runs and transitions as they commit. A receiver that lags behind
    /// loses events here; the database still has them (`read::events_after`).
    pub fn subscribe(&self) -> broadcast::Receiver<StoreEvent> {
        self.events.subscribe()
    }

    /// Decides which webhooks each new transition goes to; its notices are
    /// written in the transition's own transaction.
    pub fn set_router(&self, router: std::sync::Arc<dyn outbox::Route>) {
        self.router.set(router);
    }

    /// Why the writer holds work the database cannot take now, if it does.
    pub fn write_failure(&self) -> Option<WriteFailure> {
        self.health.failure()
    }

    /// Runs waiting for the writer.
    pub fn queue_depth(&self) -> usize {
        self.queue.max_capacity() - self.queue.capacity()
    }

    /// Whether the database answers, within two seconds.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let limit = std::time::Duration::from_secs(2);
        let answer = tokio::time::timeout(limit, async {
            with_pool!(&self.db.read().await, pool => sqlx::query("SELECT 1").execute(pool).await.map(drop))
        })
        .await;
        match answer {
            Ok(result) => Ok(result?),
            Err(_) => Err(StoreError::NoAnswer(limit)),
        }
    }

    /// When each slice last ran: run ids carry their timestamp, and the
    /// runs index finds each slice's newest.
    pub async fn last_runs(&self) -> Result<HashMap<SliceId, i64>, StoreError> {
        let rows: Vec<(String, String, String, Option<i64>)> = with_pool!(&self.db.read().await, pool => {
            sqlx::query_as(
                "SELECT s.system_id, s.check_id, s.env_key,
                        (SELECT MAX(r.id) FROM runs r WHERE r.slice_id = s.id)
                 FROM slices s",
            )
            .fetch_all(pool)
            .await?
        });
        Ok(rows
            .into_iter()
            .filter_map(|(system, check, env_key, id)| {
                Some((
                    SliceId::from_row(system, check, env_key),
                    ids::created_at(id?),
                ))
            })
            .collect())
    }

    /// Queues a finished run for the writer and returns once its batch has
    /// committed, with the transitions it caused (also broadcast). Waits
    /// while the queue is full: that is the backpressure on producers.
    pub async fn record_run(&self, mut run: NewRun) -> Result<Recorded, StoreError> {
        // Serialised here, on the producer's task, so the one writer does not.
        let result_json = std::mem::take(&mut run.result).to_string();
        let (reply, done) = oneshot::channel();
        self.queue
            .send(writer::Job::Run {
                run,
                result_json,
                reply,
            })
            .await
            .map_err(|_| StoreError::NotPersisted("the store is closed".into()))?;
        done.await
            .map_err(|_| StoreError::NotPersisted("the writer stopped".into()))?
    }

    /// Queues runs that commit together or not at all (a probe's batch, in
    /// its order) and returns once they have, with what each caused.
    pub async fn record_runs(&self, runs: Vec<NewRun>) -> Result<Vec<Recorded>, StoreError> {
        let mut jobs = Vec::with_capacity(runs.len());
        let mut replies = Vec::with_capacity(runs.len());
        let mut done = Vec::with_capacity(runs.len());
        for mut run in runs {
            let result_json = std::mem::take(&mut run.result).to_string();
            let (reply, answer) = oneshot::channel();
            jobs.push((run, result_json));
            replies.push(reply);
            done.push(answer);
        }
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        self.queue
            .send(writer::Job::Runs {
                runs: jobs,
                replies,
            })
            .await
            .map_err(|_| StoreError::NotPersisted("the store is closed".into()))?;
        let mut recorded = Vec::with_capacity(done.len());
        for answer in done {
            recorded.push(
                answer
                    .await
                    .map_err(|_| StoreError::NotPersisted("the writer stopped".into()))??,
            );
        }
        Ok(recorded)
    }

    /// Stops taking runs, lets the writer commit everything queued, and
    /// closes the database.
    pub async fn close(&self) {
        if let Some(handle) = self.writer.lock().await.take() {
            self.health.close();
            let _ = self.queue.send(writer::Job::Stop).await;
            let _ = handle.await;
        }
        self.db.close().await;
    }

    /// Makes the stored checks and assignments match the configuration,
    /// re-evaluates every slice under its (possibly new) thresholds and
    /// marks which slices still count (assignment present, environment still
    /// selected), then re-derives the entities of every system whose
    /// counting slices or statuses changed, at once.
    pub async fn sync_config(
        &self,
        checks: &[Check],
        assignments: &[Assignment],
        systems: &[System],
        now_ms: i64,
    ) -> Result<Vec<TransitionEvent>, StoreError> {
        let selected = selected_slices(assignments, systems, checks);
        let changed: Vec<(String, String)> = with_pool!(&self.db.write().await?, pool => {
            let mut tx = db::WritePool::begin_write(pool).await?;
            for chunk in checks.chunks(500) {
                let mut q = QueryBuilder::new("INSERT INTO checks (id, name, definition, updated_at) ");
                q.push_values(chunk, |mut row, check| {
                    row.push_bind(check.id.as_str())
                        .push_bind(check.name.clone().unwrap_or_else(|| check.id.clone()))
                        .push_bind(serde_json::to_string(check).unwrap_or_default())
                        .push_bind(now_ms);
                });
                q.push(
                    " ON CONFLICT (id) DO UPDATE SET name = excluded.name, \
                     definition = excluded.definition, updated_at = excluded.updated_at",
                );
                q.build().execute(&mut *tx).await?;
            }
            let was_paused: HashMap<(String, String), bool> =
                sqlx::query_as::<_, (String, String, bool)>("SELECT system_id, check_id, paused FROM assignments")
                    .fetch_all(&mut *tx)
                    .await?
                    .into_iter()
                    .map(|(s, c, p)| ((s, c), p))
                    .collect();
            sqlx::query("DELETE FROM assignments").execute(&mut *tx).await?;
            // Later duplicates win, as they did row by row.
            let unique: HashMap<(&str, &str), &Assignment> = assignments
                .iter()
                .map(|a| ((a.system.as_str(), a.check.as_str()), a))
                .collect();
            let unique: Vec<&Assignment> = unique.into_values().collect();
            for chunk in unique.chunks(500) {
                let mut q = QueryBuilder::new(
                    "INSERT INTO assignments (system_id, check_id, environments, thresholds, paused, flapping) ",
                );
                q.push_values(chunk, |mut row, a| {
                    let environments = match &a.environments {
                        EnvSelection::All => None,
                        EnvSelection::List(list) => Some(serde_json::to_string(list).unwrap_or_default()),
                    };
                    row.push_bind(a.system.as_str())
                        .push_bind(a.check.as_str())
                        .push_bind(environments)
                        .push_bind(serde_json::to_string(&a.thresholds).unwrap_or_default())
                        .push_bind(a.paused)
                        .push_bind(flap_rule(a));
                });
                q.build().execute(&mut *tx).await?;
            }
            // A pause or resume through the API wins over the file.
            sqlx::query(
                "UPDATE assignments SET paused = p.paused FROM assignment_pauses p
                 WHERE p.system_id = assignments.system_id AND p.check_id = assignments.check_id",
            )
            .execute(&mut *tx)
            .await?;
            let now_paused: Vec<(String, String, bool)> =
                sqlx::query_as("SELECT system_id, check_id, paused FROM assignments")
                    .fetch_all(&mut *tx)
                    .await?;
            // (system, check) pairs whose part in their system changed.
            let mut changed: Vec<(String, String)> = Vec::new();
            let mut still_assigned = std::collections::HashSet::new();
            for (system, check, paused) in now_paused {
                if was_paused.get(&(system.clone(), check.clone())) != Some(&paused) {
                    changed.push((system.clone(), check.clone()));
                }
                still_assigned.insert((system, check));
            }
            changed.extend(was_paused.into_keys().filter(|k| !still_assigned.contains(k)));
            type SliceRow = (i64, String, String, String, String, String, bool, Option<String>);
            let slices: Vec<SliceRow> = sqlx::query_as(
                "SELECT s.id, s.system_id, s.check_id, s.env_key, s.outcomes, s.status, s.counts, a.thresholds
                 FROM slices s LEFT JOIN assignments a ON a.system_id = s.system_id AND a.check_id = s.check_id",
            )
            .fetch_all(&mut *tx)
            .await?;
            let mut updates: Vec<(i64, &'static str, bool)> = Vec::new();
            for (id, system, check, env_key, outcomes, stored, counted, thresholds) in slices {
                let stored_status = Status::parse(&stored);
                let assigned = thresholds.is_some();
                // A removed assignment's slice keeps its last status: it no
                // longer counts, and its history stays readable.
                let status = match thresholds {
                    Some(t) => {
                        let t: Thresholds = serde_json::from_str(&t).unwrap_or_default();
                        state::outcomes_status(&t, &outcomes, stored_status)
                    }
                    None => stored_status,
                };
                // An env-less slice that counts although not selected holds
                // the runs of a check that could not be prepared: it keeps
                // counting while its assignment exists, until a run in one
                // of its environments releases it (see the writer).
                let counts = selected.contains(&(system.clone(), check.clone(), env_key.clone()))
                    || (env_key.is_empty() && assigned && counted);
                if status != stored_status || counts != counted {
                    updates.push((id, status.as_str(), counts));
                    changed.push((system, check));
                }
            }
            for chunk in updates.chunks(500) {
                // VALUES columns are column1, column2, … in both engines.
                let mut q = QueryBuilder::new(
                    "UPDATE slices SET status = v.column2, counts = v.column3 FROM (",
                );
                q.push_values(chunk, |mut row, (id, status, counts)| {
                    row.push_bind(*id).push_bind(*status).push_bind(*counts);
                });
                q.push(") AS v WHERE slices.id = v.column1");
                q.build().execute(&mut *tx).await?;
            }
            tx.commit().await?;
            changed
        });
        self.reevaluate(causes(changed), now_ms).await
    }

    /// Re-derives the entities of these systems (each with the check whose
    /// change prompted it) from the slices that count now, writing a
    /// transition for each status that changed between measured states.
    pub async fn reevaluate(
        &self,
        systems: Vec<(String, String)>,
        at_ms: i64,
    ) -> Result<Vec<TransitionEvent>, StoreError> {
        self.rederive(systems, None, at_ms).await
    }

    /// Pauses or resumes an assignment until the next API call: survives
    /// restarts and reloads. The system's entities are re-derived in the
    /// same transaction (a paused slice counts for nothing), and the
    /// transitions that caused are returned.
    pub async fn set_paused(
        &self,
        system: &str,
        check: &str,
        paused: bool,
        now_ms: i64,
    ) -> Result<Vec<TransitionEvent>, StoreError> {
        let pause = writer::Pause {
            system: system.to_string(),
            check: check.to_string(),
            paused,
        };
        self.rederive(
            vec![(system.to_string(), check.to_string())],
            Some(pause),
            now_ms,
        )
        .await
    }

    async fn rederive(
        &self,
        systems: Vec<(String, String)>,
        pause: Option<writer::Pause>,
        at_ms: i64,
    ) -> Result<Vec<TransitionEvent>, StoreError> {
        if systems.is_empty() {
            return Ok(Vec::new());
        }
        let (reply, done) = oneshot::channel();
        self.queue
            .send(writer::Job::Reevaluate(writer::Reevaluation {
                systems,
                pause,
                at_ms,
                reply,
            }))
            .await
            .map_err(|_| StoreError::NotPersisted("the store is closed".into()))?;
        done.await
            .map_err(|_| StoreError::NotPersisted("the writer stopped".into()))?
    }

    /// Current status of every entity, rollups first.
    pub async fn statuses(&self) -> Result<Vec<EntityStatus>, StoreError> {
        let rows: Vec<read::EntityRow> = with_pool!(&self.db.read().await, pool => {
            sqlx::query_as(
                "SELECT entity_id, status, updated_at, healthy_checks, total_checks FROM entity_state
                 ORDER BY entity_id",
            )
            .fetch_all(pool)
            .await?
        });
        Ok(rows.into_iter().map(read::entity_status).collect())
    }
}
