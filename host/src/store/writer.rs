//! The one batched writer of a process: finished runs wait in a bounded
//! queue; each batch is what queued while the previous one committed (up to
//! `max_batch`), written in one transaction of a handful of multi-row
//! statements. A producer hears back only after its batch committed.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::{QueryBuilder, Transaction};
use tokio::sync::{broadcast, mpsc, oneshot};

use super::apply::{Aggregate, Applied, Loaded, PendingRun, SliceState, apply, hour_bucket};
use super::db::{Db, WritePool, entity_lock_key, unavailable, with_pool};
use super::entity::{EntityId, SliceId, entities_of, split_key};
use super::fields;
use super::ids::RunIds;
use super::outbox::{self, SharedRouter};
use super::sketch::Sketch;
use super::state::{CheckCounts, FlapRule, Status, TransitionKind, worst};
use super::{NewRun, Recorded, RunEvent, StoreError, StoreEvent, TransitionEvent, entity_ids};
use crate::config::Thresholds;

/// Rows per multi-row statement: well inside both engines' parameter limits.
const CHUNK: usize = 500;

/// Told the duration and size of every committed batch (for metrics).
pub type CommitObserver = Arc<dyn Fn(Duration, usize) + Send + Sync>;

#[derive(Clone)]
pub struct WriterConfig {
    /// Runs waiting for the writer before producers wait too.
    pub queue: usize,
    /// Runs per transaction at most.
    pub max_batch: usize,
    /// How long a batch waits for more runs after its first: under a
    /// trickle of runs, a few milliseconds turn many tiny transactions
    /// into a few larger ones.
    pub linger: Duration,
    /// How long a batch is held and retried while the database cannot take
    /// it (unreachable, full, read-only, failing) before its runs are
    /// reported as not persisted; the daemon holds them for good.
    pub retry_for: Duration,
    pub observer: Option<CommitObserver>,
}

impl Default for WriterConfig {
    fn default() -> Self {
        WriterConfig {
            queue: 8192,
            max_batch: 2000,
            linger: Duration::from_millis(2),
            retry_for: Duration::from_secs(30),
            observer: None,
        }
    }
}

pub enum Job {
    Run {
        run: NewRun,
        /// `run.result`, serialised by the producer.
        result_json: String,
        reply: Reply,
    },
    /// Runs that commit together or not at all (a probe's batch): a
    /// batch never splits them, so its sequence cursor never passes a run
    /// that was not stored.
    Runs {
        runs: Vec<(NewRun, String)>,
        replies: Vec<Reply>,
    },
    /// Re-derive these systems' entities (each with the check that prompted
    /// it) from the slices that count now, after what queued before it.
    Reevaluate(Reevaluation),
    /// Commit what is queued and end.
    Stop,
}

type Reply = oneshot::Sender<Result<Recorded, StoreError>>;

pub struct Reevaluation {
    pub systems: Vec<(String, String)>,
    /// A pause or resume to apply in the same transaction, so no run
    /// commits between the change and what it does to the system.
    pub pause: Option<Pause>,
    pub at_ms: i64,
    pub reply: oneshot::Sender<Result<Vec<TransitionEvent>, StoreError>>,
}

pub struct Pause {
    pub system: String,
    pub check: String,
    pub paused: bool,
}

/// Systems per re-evaluation transaction: bounds the locks one holds.
const REEVALUATE_CHUNK: usize = 200;

/// What taking a job into a batch asks of the writer.
enum Taken {
    Queued,
    Stop,
    /// Close the batch here; re-evaluate once it committed.
    Reevaluate(Reevaluation),
}

/// Runs with their serialised results, and who waits for each.
#[derive(Default)]
struct Batch {
    runs: Vec<(NewRun, String)>,
    replies: Vec<Reply>,
}

impl Batch {
    /// Adds a job's run, or says what else the job asks.
    fn take(&mut self, job: Job) -> Taken {
        match job {
            Job::Run {
                run,
                result_json,
                reply,
            } => {
                self.runs.push((run, result_json));
                self.replies.push(reply);
                Taken::Queued
            }
            Job::Runs { runs, replies } => {
                self.runs.extend(runs);
                self.replies.extend(replies);
                Taken::Queued
            }
            Job::Reevaluate(r) => Taken::Reevaluate(r),
            Job::Stop => Taken::Stop,
        }
    }
}

/// Why the writer holds work it cannot write, shared with readers of its
/// health (`/readyz`, `/metrics`).
#[derive(Default)]
pub struct WriteHealth {
    failure: std::sync::Mutex<Option<WriteFailure>>,
    /// When the store was asked to close.
    closing: std::sync::OnceLock<Instant>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteFailure {
    /// `disk-full`, `read-only`, `io-error`, `cannot-open`, `busy`,
    /// `unreachable`, `file-removed` (a SQLite file that cannot be restored
    /// yet) or `file-replaced`.
    pub reason: &'static str,
    pub message: String,
    pub since_ms: i64,
}

impl WriteHealth {
    pub fn failure(&self) -> Option<WriteFailure> {
        self.failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn close(&self) {
        let _ = self.closing.set(Instant::now());
    }

    fn failing(&self, reason: &'static str, message: String) {
        let mut failure = self.failure.lock().unwrap_or_else(|e| e.into_inner());
        let since_ms = failure
            .as_ref()
            .map_or_else(crate::clock::now_ms, |f| f.since_ms);
        *failure = Some(WriteFailure {
            reason,
            message,
            since_ms,
        });
    }

    fn recovered(&self) {
        let mut failure = self.failure.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(f) = failure.take() {
            tracing::info!(reason = f.reason, "the database takes writes again");
        }
    }
}

/// How long a closing writer still retries before it gives up what it
/// holds: a daemon asked to stop does not wait forever for its database.
const CLOSING_GRACE: Duration = Duration::from_secs(10);

/// The retry schedule of one batch: every failure that the database may
/// recover from is retried with backoff, holding the batch (and, through
/// the bounded queue, what waits behind it) for as long as `retry_for`.
struct Retry {
    started: Instant,
    delay: Duration,
}

impl Retry {
    fn new() -> Retry {
        Retry {
            started: Instant::now(),
            delay: Duration::from_millis(50),
        }
    }

    /// Waits before the next attempt, or says why there is none.
    async fn wait(&mut self, writer: &Writer, error: &sqlx::Error) -> Result<(), String> {
        let message = format!("database {}: {error}", writer.db.url);
        let Some(reason) = unavailable(error) else {
            return Err(message);
        };
        if self.started.elapsed() >= writer.config.retry_for {
            return Err(message);
        }
        if writer
            .health
            .closing
            .get()
            .is_some_and(|since| since.elapsed() >= CLOSING_GRACE)
        {
            return Err(format!("{message} (still failing at shutdown)"));
        }
        tracing::warn!(database = %writer.db.url, reason, "write failed, holding it and retrying: {error}");
        writer.health.failing(reason, message);
        tokio::time::sleep(self.delay).await;
        self.delay = (self.delay * 2).min(Duration::from_secs(5));
        Ok(())
    }
}

struct Writer {
    db: Arc<Db>,
    health: Arc<WriteHealth>,
    events: broadcast::Sender<StoreEvent>,
    router: SharedRouter,
    config: WriterConfig,
    ids: RunIds,
    /// Slice ids never change once made: resolved once per process.
    slice_ids: HashMap<SliceId, i64>,
}

/// Registers the writer in the database (for its id tag) and starts it.
pub async fn start(
    db: Arc<Db>,
    health: Arc<WriteHealth>,
    events: broadcast::Sender<StoreEvent>,
    router: SharedRouter,
    config: WriterConfig,
) -> Result<(mpsc::Sender<Job>, tokio::task::JoinHandle<()>), StoreError> {
    let row_id: i64 = with_pool!(&db.write().await?, pool => {
        sqlx::query_scalar("INSERT INTO writers (started_at) VALUES ($1) RETURNING id")
            .bind(crate::clock::now_ms())
            .fetch_one(pool)
            .await?
    });
    let (queue, jobs) = mpsc::channel(config.queue.max(1));
    let writer = Writer {
        db,
        health,
        events,
        router,
        config,
        ids: RunIds::new(row_id),
        slice_ids: HashMap::new(),
    };
    Ok((queue, tokio::spawn(writer.run(jobs))))
}

impl Writer {
    async fn run(mut self, mut jobs: mpsc::Receiver<Job>) {
        let mut stopping = false;
        while !stopping {
            let Some(first) = jobs.recv().await else {
                break;
            };
            let mut batch = Batch::default();
            let mut held = Vec::new();
            // A batch closes when full, or `linger` after its first run, or
            // where a re-evaluation asks to follow it.
            let closes = tokio::time::Instant::now() + self.config.linger;
            let mut taken = batch.take(first);
            loop {
                match taken {
                    Taken::Queued => {}
                    Taken::Stop => stopping = true,
                    Taken::Reevaluate(r) => held.push(r),
                }
                if stopping || !held.is_empty() || batch.replies.len() >= self.config.max_batch {
                    break;
                }
                let next = match jobs.try_recv() {
                    Ok(job) => Some(job),
                    Err(_) => tokio::time::timeout_at(closes, jobs.recv())
                        .await
                        .ok()
                        .flatten(),
                };
                match next {
                    Some(job) => taken = batch.take(job),
                    None => break,
                }
            }
            if stopping {
                // Runs and re-evaluations queued behind the stop still happen.
                while let Ok(job) = jobs.try_recv() {
                    if let Taken::Reevaluate(r) = batch.take(job) {
                        held.push(r);
                    }
                }
            }
            if !batch.replies.is_empty() {
                self.write(batch.runs, batch.replies).await;
            }
            for r in held {
                self.reevaluate(r).await;
            }
        }
    }

    async fn reevaluate(&mut self, r: Reevaluation) {
        let mut transitions = Vec::new();
        for chunk in r.systems.chunks(REEVALUATE_CHUNK) {
            let pause = r
                .pause
                .as_ref()
                .filter(|p| chunk.iter().any(|(s, _)| *s == p.system));
            match self.reevaluate_with_retry(chunk, pause, r.at_ms).await {
                Ok(caused) => transitions.extend(caused),
                Err(message) => {
                    tracing::error!(systems = chunk.len(), "{message}");
                    let _ = r.reply.send(Err(StoreError::NotPersisted(message)));
                    return;
                }
            }
        }
        if !transitions.is_empty() {
            let _ = self.events.send(StoreEvent {
                run: None,
                transitions: transitions.clone(),
            });
        }
        let _ = r.reply.send(Ok(transitions));
    }

    /// Re-evaluating is idempotent (it writes only differences), so a retry
    /// after a commit whose answer was lost writes nothing twice.
    async fn reevaluate_with_retry(
        &mut self,
        systems: &[(String, String)],
        pause: Option<&Pause>,
        at_ms: i64,
    ) -> Result<Vec<TransitionEvent>, String> {
        let mut retry = Retry::new();
        loop {
            let error = match self.reevaluate_once(systems, pause, at_ms).await {
                Ok(transitions) => {
                    self.health.recovered();
                    return Ok(transitions);
                }
                Err(e) => e,
            };
            retry.wait(self, &error).await?;
        }
    }

    async fn reevaluate_once(
        &mut self,
        systems: &[(String, String)],
        pause: Option<&Pause>,
        at_ms: i64,
    ) -> Result<Vec<TransitionEvent>, sqlx::Error> {
        // Every run's transaction locks its system's rollup: locking the
        // rollups serialises this with them.
        let mut lock_keys: Vec<i64> = systems.iter().map(|(s, _)| entity_lock_key(s)).collect();
        lock_keys.sort_unstable();
        lock_keys.dedup();
        let cause: HashMap<&str, &str> = systems
            .iter()
            .map(|(s, c)| (s.as_str(), c.as_str()))
            .collect();
        with_pool!(&self.db.write().await?, pool => {
            let mut tx = pool.begin_write().await?;
            pool.lock_entities(&mut tx, &lock_keys).await?;
            if let Some(p) = pause {
                sqlx::query(
                    "INSERT INTO assignment_pauses (system_id, check_id, paused, updated_at) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (system_id, check_id) DO UPDATE SET paused = excluded.paused,
                         updated_at = excluded.updated_at",
                )
                .bind(p.system.as_str())
                .bind(p.check.as_str())
                .bind(p.paused)
                .bind(at_ms)
                .execute(&mut *tx)
                .await?;
                sqlx::query("UPDATE assignments SET paused = $1 WHERE system_id = $2 AND check_id = $3")
                    .bind(p.paused)
                    .bind(p.system.as_str())
                    .bind(p.check.as_str())
                    .execute(&mut *tx)
                    .await?;
            }
            let mut transitions = rederive(&mut tx, &cause, at_ms).await?;
            insert_transitions(&mut tx, transitions.iter_mut()).await?;
            let router = self.router.current();
            let now = crate::clock::now_ms();
            let rows = outbox::route(&mut tx, router.as_deref(), transitions.iter()).await?;
            if !rows.is_empty() {
                outbox::insert(&mut tx, &rows, now).await?;
            }
            let all: Vec<&TransitionEvent> = transitions.iter().collect();
            outbox::release_held(&mut tx, router.as_deref(), &all, now).await?;
            tx.commit().await?;
            Ok(transitions)
        })
    }

    async fn write(&mut self, runs: Vec<(NewRun, String)>, replies: Vec<Reply>) {
        // A probe's run is numbered at ingest, so the ids (and the event
        // stream) follow commit order even for runs it spooled for hours.
        let now = crate::clock::now_ms();
        let ids: Vec<i64> = runs
            .iter()
            .map(|(r, _)| {
                self.ids
                    .next(if r.origin.is_some() { now } else { r.at_ms })
            })
            .collect();
        let started = Instant::now();
        match self.commit_with_retry(&runs, &ids).await {
            Ok(transitions) => {
                if let Some(observe) = &self.config.observer {
                    observe(started.elapsed(), runs.len());
                }
                for (((reply, run_id), caused), (run, _)) in
                    replies.into_iter().zip(ids).zip(transitions).zip(&runs)
                {
                    let Some(caused) = caused else {
                        let _ = reply.send(Ok(Recorded {
                            run_id,
                            transitions: Vec::new(),
                            duplicate: true,
                        }));
                        continue;
                    };
                    // Nobody listening is fine: the rows are the record.
                    let _ = self.events.send(StoreEvent {
                        run: Some(run_event(run_id, run)),
                        transitions: caused.clone(),
                    });
                    let _ = reply.send(Ok(Recorded {
                        run_id,
                        transitions: caused,
                        duplicate: false,
                    }));
                }
            }
            Err(message) => {
                tracing::error!(runs = runs.len(), "{message}");
                for reply in replies {
                    let _ = reply.send(Err(StoreError::NotPersisted(message.clone())));
                }
            }
        }
    }

    /// Commits the batch, retrying while the database is unreachable. The
    /// run ids are made once, so a retry after a commit whose answer was
    /// lost finds the batch already there and does not write it twice.
    async fn commit_with_retry(
        &mut self,
        runs: &[(NewRun, String)],
        ids: &[i64],
    ) -> Result<Vec<Option<Vec<TransitionEvent>>>, String> {
        let mut retry = Retry::new();
        let mut attempt: Option<Vec<Option<Vec<TransitionEvent>>>> = None;
        loop {
            let error = match self.commit(runs, ids, &mut attempt).await {
                Ok(transitions) => {
                    self.health.recovered();
                    return Ok(transitions);
                }
                Err(e) => e,
            };
            retry.wait(self, &error).await?;
            if let Some(transitions) = attempt.take() {
                // A run the attempt stored tells whether it committed; one
                // that stored none (every run a probe's repeat) had nothing
                // to lose.
                let stored = transitions.iter().position(Option::is_some);
                if stored.is_none() || self.committed(ids[stored.unwrap_or(0)]).await {
                    self.health.recovered();
                    return Ok(transitions);
                }
            }
        }
    }

    /// Whether the run with this id is stored (a batch is all or nothing).
    async fn committed(&self, run_id: i64) -> bool {
        let Ok(pools) = self.db.write().await else {
            return false;
        };
        let found: Result<Option<i64>, sqlx::Error> = with_pool!(&pools, pool => {
            sqlx::query_scalar("SELECT id FROM runs WHERE id = $1")
                .bind(run_id)
                .fetch_optional(pool)
                .await
        });
        matches!(found, Ok(Some(_)))
    }

    async fn commit(
        &mut self,
        runs: &[(NewRun, String)],
        ids: &[i64],
        attempt: &mut Option<Vec<Option<Vec<TransitionEvent>>>>,
    ) -> Result<Vec<Option<Vec<TransitionEvent>>>, sqlx::Error> {
        self.resolve_slices(runs).await?;
        let pending = runs
            .iter()
            .zip(ids)
            .map(|((run, result_json), id)| {
                let slice_id = self.slice_ids.get(&slice_of(run)).copied();
                slice_id
                    .map(|slice_id| PendingRun {
                        id: *id,
                        slice_id,
                        run,
                        result_json,
                    })
                    .ok_or(sqlx::Error::RowNotFound)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut lock_keys: Vec<i64> = runs
            .iter()
            .flat_map(|(r, _)| {
                entity_ids(
                    &r.system_id,
                    r.environment_id.as_deref(),
                    r.location_id.as_deref(),
                )
            })
            .collect::<HashSet<_>>()
            .iter()
            .map(|e| entity_lock_key(e))
            .collect();
        lock_keys.sort_unstable();
        lock_keys.dedup();
        with_pool!(&self.db.write().await?, pool => {
            let mut tx = pool.begin_write().await?;
            pool.lock_entities(&mut tx, &lock_keys).await?;
            let fresh = probe_cursors(&mut tx, runs).await?;
            // Probe runs stored before (their batch came again) are left out.
            let pending: Vec<PendingRun> = pending
                .iter()
                .zip(&fresh)
                .filter(|(_, f)| **f)
                .map(|(p, _)| *p)
                .collect();
            let mut loaded = load(&mut tx, &pending).await?;
            let mut applied = apply(&mut loaded, &pending);
            mark_flapping(&mut tx, &mut applied.transitions).await?;
            write(&mut tx, &pending, &loaded, &mut applied).await?;
            let router = self.router.current();
            let now = crate::clock::now_ms();
            let rows =
                outbox::route(&mut tx, router.as_deref(), applied.transitions.iter().flatten())
                    .await?;
            if !rows.is_empty() {
                outbox::insert(&mut tx, &rows, now).await?;
            }
            let all: Vec<&TransitionEvent> = applied.transitions.iter().flatten().collect();
            outbox::release_held(&mut tx, router.as_deref(), &all, now).await?;
            let mut caused = applied.transitions.into_iter();
            let per_run: Vec<Option<Vec<TransitionEvent>>> =
                fresh.iter().map(|f| if *f { caused.next() } else { None }).collect();
            *attempt = Some(per_run.clone());
            tx.commit().await?;
            Ok(per_run)
        })
    }

    /// Gives every slice of the batch its id, creating the new ones. Runs
    /// outside the batch transaction: a slice row is harmless on its own,
    /// and creating it under the entity locks could deadlock with another
    /// process creating the same slice.
    async fn resolve_slices(&mut self, runs: &[(NewRun, String)]) -> Result<(), sqlx::Error> {
        let mut missing: Vec<SliceId> = Vec::new();
        for (run, _) in runs {
            let key = slice_of(run);
            if !self.slice_ids.contains_key(&key) && !missing.contains(&key) {
                missing.push(key);
            }
        }
        for chunk in missing.chunks(CHUNK) {
            let rows: Vec<(i64, String, String, String)> = with_pool!(&self.db.write().await?, pool => {
                let mut q = QueryBuilder::new(
                    "INSERT INTO slices (system_id, check_id, environment_id, location_id, env_key) ",
                );
                q.push_values(chunk, |mut row, slice| {
                    row.push_bind(slice.system.as_str())
                        .push_bind(slice.check.as_str())
                        .push_bind(slice.environment.as_deref())
                        .push_bind(slice.location.as_deref())
                        .push_bind(slice.env_key().into_owned());
                });
                // A no-op update, so existing slices return their id too.
                q.push(
                    " ON CONFLICT (system_id, check_id, env_key) DO UPDATE SET env_key = excluded.env_key \
                     RETURNING id, system_id, check_id, env_key",
                );
                q.build_query_as().fetch_all(pool).await?
            });
            for (id, system, check, env_key) in rows {
                self.slice_ids
                    .insert(SliceId::from_row(system, check, env_key), id);
            }
        }
        Ok(())
    }
}

fn run_event(id: i64, run: &NewRun) -> RunEvent {
    // A probe run was measured before it was numbered.
    let at_ms = match run.origin {
        Some(_) => run.at_ms,
        None => super::ids::created_at(id),
    };
    RunEvent {
        id,
        system_id: run.system_id.clone(),
        check_id: run.check_id.clone(),
        environment_id: run.environment_id.clone(),
        location_id: run.location_id.clone(),
        status: run.status(),
        latency_ms: run.latency_ms.unwrap_or(0.0),
        error: run.error.clone(),
        at_ms,
    }
}

fn slice_of(run: &NewRun) -> SliceId {
    SliceId::located(
        &run.system_id,
        &run.check_id,
        run.environment_id.as_deref(),
        run.location_id.as_deref(),
    )
}

type SliceRow = (
    i64,
    Option<i64>,
    String,
    String,
    String,
    String,
    Option<String>,
    Option<bool>,
    bool,
);

type AggregateRow = (i64, i64, i64, i64, i64, i64, f64, f64, f64, String, String);

/// Reads what the batch needs, under the entity locks: its slices, the
/// worst status of the other slices of its systems, its entities' stored
/// statuses and the hourly buckets it folds into.
async fn load<DB>(
    tx: &mut Transaction<'static, DB>,
    pending: &[PendingRun<'_>],
) -> Result<Loaded, sqlx::Error>
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    DB::Arguments: Default + sqlx::IntoArguments<DB>,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    SliceRow: for<'r> sqlx::FromRow<'r, DB::Row>,
    (String, String, String, i32): for<'r> sqlx::FromRow<'r, DB::Row>,
    (String, String, Option<i32>, Option<i32>): for<'r> sqlx::FromRow<'r, DB::Row>,
    (i64, String, String): for<'r> sqlx::FromRow<'r, DB::Row>,
    (String, String): for<'r> sqlx::FromRow<'r, DB::Row>,
    AggregateRow: for<'r> sqlx::FromRow<'r, DB::Row>,
{
    let mut slice_ids: Vec<i64> = pending.iter().map(|p| p.slice_id).collect();
    slice_ids.sort_unstable();
    slice_ids.dedup();
    let mut systems: Vec<&str> = pending.iter().map(|p| p.run.system_id.as_str()).collect();
    systems.sort_unstable();
    systems.dedup();
    let mut entities: Vec<String> = pending
        .iter()
        .flat_map(|p| {
            entity_ids(
                &p.run.system_id,
                p.run.environment_id.as_deref(),
                p.run.location_id.as_deref(),
            )
        })
        .collect();
    entities.sort_unstable();
    entities.dedup();

    let mut loaded = Loaded::default();
    for chunk in slice_ids.chunks(CHUNK) {
        let mut q = QueryBuilder::<DB>::new(
            "SELECT s.id, s.newest_at, s.check_id, s.env_key, s.outcomes, s.status,
                    a.thresholds, a.paused, s.counts
             FROM slices s LEFT JOIN assignments a ON a.system_id = s.system_id AND a.check_id = s.check_id
             WHERE s.id IN (",
        );
        push_list(&mut q, chunk.iter().copied());
        let rows: Vec<SliceRow> = q.build_query_as().fetch_all(&mut **tx).await?;
        for (id, newest_at, check_id, env_key, outcomes, status, thresholds, paused, selected) in
            rows
        {
            let assigned = thresholds.is_some() && paused == Some(false);
            let thresholds: Thresholds = thresholds
                .and_then(|t| serde_json::from_str(&t).ok())
                .unwrap_or_default();
            loaded.slices.insert(
                id,
                SliceState {
                    check_id,
                    env_key,
                    stored: (outcomes.clone(), Status::parse(&status)),
                    outcomes,
                    status: Status::parse(&status),
                    thresholds,
                    assigned,
                    selected,
                    stored_selected: selected,
                    newest_at,
                },
            );
        }
    }
    // Env-less slices that count although the configuration runs their
    // check in environments hold the runs of a check that could not be
    // prepared; a run in one of its environments releases them.
    let with_environments: HashSet<(&str, &str)> = pending
        .iter()
        .filter(|p| p.run.environment_id.is_some() || p.run.location_id.is_some())
        .map(|p| (p.run.system_id.as_str(), p.run.check_id.as_str()))
        .collect();
    let unprepared: HashSet<(&str, &str)> = pending
        .iter()
        .filter(|p| p.run.latency_ms.is_none() && !p.run.no_probe)
        .map(|p| (p.run.system_id.as_str(), p.run.check_id.as_str()))
        .collect();
    if !with_environments.is_empty() {
        let mut batch_systems: Vec<&str> = with_environments.iter().map(|(s, _)| *s).collect();
        batch_systems.sort_unstable();
        batch_systems.dedup();
        for chunk in batch_systems.chunks(CHUNK) {
            let mut q = QueryBuilder::<DB>::new(
                "SELECT id, system_id, check_id FROM slices WHERE env_key = '' AND counts AND system_id IN (",
            );
            push_list(&mut q, chunk.iter().copied());
            let rows: Vec<(i64, String, String)> = q.build_query_as().fetch_all(&mut **tx).await?;
            loaded
                .released
                .extend(rows.into_iter().filter_map(|(id, system, check)| {
                    let key = (system.as_str(), check.as_str());
                    (with_environments.contains(&key) && !unprepared.contains(&key)).then_some(id)
                }));
        }
    }
    for chunk in systems.chunks(CHUNK) {
        let mut q = QueryBuilder::<DB>::new(
            "SELECT s.system_id, s.check_id, s.env_key, MAX(CASE s.status WHEN 'unhealthy' THEN 3 WHEN 'degraded' THEN 2
                    WHEN 'healthy' THEN 1 ELSE 0 END)
             FROM slices s JOIN assignments a ON a.system_id = s.system_id AND a.check_id = s.check_id
             WHERE NOT a.paused AND s.counts AND s.status <> 'unknown' AND s.system_id IN (",
        );
        push_list(&mut q, chunk.iter().copied());
        q.push(" AND s.id NOT IN (");
        push_list(&mut q, slice_ids.iter().chain(&loaded.released).copied());
        q.push(" GROUP BY s.system_id, s.check_id, s.env_key");
        let rows: Vec<(String, String, String, i32)> =
            q.build_query_as().fetch_all(&mut **tx).await?;
        for (system, check, env_key, rank) in rows {
            let status = match rank {
                3 => Status::Unhealthy,
                2 => Status::Degraded,
                1 => Status::Healthy,
                _ => Status::Unknown,
            };
            loaded
                .others
                .entry(system)
                .or_default()
                .push((check, env_key, status));
        }
    }
    loaded.entities = load_entities(tx, entities.iter().map(String::as_str)).await?;
    let mut buckets: Vec<i64> = pending.iter().map(|p| hour_bucket(p.run.at_ms)).collect();
    buckets.sort_unstable();
    buckets.dedup();
    for chunk in slice_ids.chunks(CHUNK) {
        let mut q = QueryBuilder::<DB>::new(
            "SELECT slice_id, bucket, total, healthy, unhealthy, latency_count, latency_sum, latency_min,
                    latency_max, sketch, fields
             FROM aggregates_hourly WHERE slice_id IN (",
        );
        push_list(&mut q, chunk.iter().copied());
        q.push(" AND bucket IN (");
        push_list(&mut q, buckets.iter().copied());
        let rows: Vec<AggregateRow> = q.build_query_as().fetch_all(&mut **tx).await?;
        for (
            slice_id,
            bucket,
            total,
            healthy,
            unhealthy,
            latency_count,
            latency_sum,
            latency_min,
            latency_max,
            sketch,
            fields,
        ) in rows
        {
            loaded.aggregates.insert(
                (slice_id, bucket),
                Aggregate {
                    total,
                    healthy,
                    unhealthy,
                    latency_count,
                    latency_sum,
                    latency_min,
                    latency_max,
                    sketch: Sketch::from_json(&sketch),
                    fields: fields::from_json(&fields),
                },
            );
        }
    }
    Ok(loaded)
}

/// `a, b, c)` — the rest of an `IN (` list.
fn push_list<'a, DB, T>(q: &mut QueryBuilder<DB>, items: impl Iterator<Item = T>)
where
    DB: sqlx::Database,
    T: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
{
    let mut list = q.separated(", ");
    for item in items {
        list.push_bind(item);
    }
    list.push_unseparated(")");
}

/// The batch's rows: runs, hourly buckets, slice states, entity states and
/// transitions (whose ids are filled in from the database).
/// Which runs of the batch to store: all local runs, and each probe run
/// whose sequence number is above the newest its probe has stored; the
/// probes' cursors move up in the same transaction. Touching the probe rows
/// first locks them on PostgreSQL, so two nodes given the same retried
/// batch store it once.
async fn probe_cursors<DB>(
    tx: &mut Transaction<'static, DB>,
    runs: &[(NewRun, String)],
) -> Result<Vec<bool>, sqlx::Error>
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    DB::Arguments: Default + sqlx::IntoArguments<DB>,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    (String, i64): for<'r> sqlx::FromRow<'r, DB::Row>,
{
    let mut probes: Vec<&str> = runs
        .iter()
        .filter_map(|(r, _)| r.origin.as_ref().map(|o| o.probe.as_str()))
        .collect();
    if probes.is_empty() {
        return Ok(vec![true; runs.len()]);
    }
    probes.sort_unstable();
    probes.dedup();
    let mut q = QueryBuilder::<DB>::new("UPDATE probes SET last_seq = last_seq WHERE id IN (");
    push_list(&mut q, probes.iter().copied());
    q.build().execute(&mut **tx).await?;
    let mut q = QueryBuilder::<DB>::new("SELECT id, last_seq FROM probes WHERE id IN (");
    push_list(&mut q, probes.iter().copied());
    let mut cursors: HashMap<String, i64> = q
        .build_query_as()
        .fetch_all(&mut **tx)
        .await?
        .into_iter()
        .collect();
    let stored = cursors.clone();
    let fresh = runs
        .iter()
        .map(|(r, _)| match &r.origin {
            None => true,
            Some(key) => {
                let cursor = cursors.entry(key.probe.clone()).or_insert(0);
                let fresh = key.seq > *cursor;
                *cursor = (*cursor).max(key.seq);
                fresh
            }
        })
        .collect();
    for (probe, seq) in &cursors {
        if stored.get(probe) != Some(seq) {
            let mut q = QueryBuilder::<DB>::new("UPDATE probes SET last_seq = ");
            q.push_bind(*seq)
                .push(" WHERE id = ")
                .push_bind(probe.as_str());
            q.build().execute(&mut **tx).await?;
        }
    }
    Ok(fresh)
}

async fn write<DB>(
    tx: &mut Transaction<'static, DB>,
    pending: &[PendingRun<'_>],
    loaded: &Loaded,
    applied: &mut Applied,
) -> Result<(), sqlx::Error>
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    DB::Arguments: Default + sqlx::IntoArguments<DB>,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> i32: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> f64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> bool: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> Option<&'q str>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> Option<i64>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    (i64, String, Option<i64>): for<'r> sqlx::FromRow<'r, DB::Row>,
{
    for chunk in pending.chunks(CHUNK) {
        let mut q = QueryBuilder::<DB>::new(
            "INSERT INTO runs (id, slice_id, status, latency_ms, result, error, measured_at) ",
        );
        q.push_values(chunk, |mut row, p| {
            row.push_bind(p.id)
                .push_bind(p.slice_id)
                .push_bind(p.run.status().as_str())
                // Runs without a latency are stored with 0 (the column
                // predates them); the aggregates leave them out.
                .push_bind(p.run.latency_ms.unwrap_or(0.0))
                .push_bind(p.result_json)
                .push_bind(p.run.error.as_deref())
                .push_bind(p.run.origin.as_ref().map(|_| p.run.at_ms));
        });
        q.build().execute(&mut **tx).await?;
    }

    // A `no-probe` run measured nothing and has no bucket.
    let mut buckets: Vec<(i64, i64)> = pending
        .iter()
        .filter(|p| !p.run.no_probe)
        .map(|p| (p.slice_id, hour_bucket(p.run.at_ms)))
        .collect();
    buckets.sort_unstable();
    buckets.dedup();
    for chunk in buckets.chunks(CHUNK) {
        let mut q = QueryBuilder::<DB>::new(
            "INSERT INTO aggregates_hourly (slice_id, bucket, total, healthy, unhealthy, latency_count,
                latency_sum, latency_min, latency_max, p95, sketch, fields) ",
        );
        q.push_values(chunk, |mut row, key| {
            let a = &loaded.aggregates[key];
            row.push_bind(key.0)
                .push_bind(key.1)
                .push_bind(a.total)
                .push_bind(a.healthy)
                .push_bind(a.unhealthy)
                .push_bind(a.latency_count)
                .push_bind(a.latency_sum)
                .push_bind(a.latency_min)
                .push_bind(a.latency_max)
                .push_bind(a.p95())
                .push_bind(a.sketch.to_json())
                .push_bind(fields::to_json(&a.fields));
        });
        q.push(
            " ON CONFLICT (slice_id, bucket) DO UPDATE SET total = excluded.total, healthy = excluded.healthy,
                unhealthy = excluded.unhealthy, latency_count = excluded.latency_count,
                latency_sum = excluded.latency_sum,
                latency_min = excluded.latency_min, latency_max = excluded.latency_max,
                p95 = excluded.p95, sketch = excluded.sketch, fields = excluded.fields",
        );
        q.build().execute(&mut **tx).await?;
    }

    let mut slices: Vec<(&i64, &SliceState)> = pending
        .iter()
        .filter_map(|p| loaded.slices.get_key_value(&p.slice_id))
        .filter(|(_, s)| s.changed())
        .collect();
    slices.sort_unstable_by_key(|(id, _)| **id);
    slices.dedup_by_key(|(id, _)| **id);
    for chunk in slices.chunks(CHUNK) {
        // VALUES columns are column1, column2, … in both engines.
        let mut q = QueryBuilder::<DB>::new(
            "UPDATE slices SET outcomes = v.column2, status = v.column3, newest_at = v.column4 FROM (",
        );
        q.push_values(chunk, |mut row, (id, s)| {
            row.push_bind(**id)
                .push_bind(s.outcomes.as_str())
                .push_bind(s.status.as_str())
                .push_bind(s.newest_at);
        });
        q.push(") AS v WHERE slices.id = v.column1");
        q.build().execute(&mut **tx).await?;
    }
    // Only a flag this batch changed is written: the configuration sync
    // owns it otherwise, and a value loaded before a sync must not undo it.
    let held: Vec<i64> = slices
        .iter()
        .filter(|(_, s)| s.selected && !s.stored_selected)
        .map(|(id, _)| **id)
        .collect();
    for chunk in held.chunks(CHUNK) {
        let mut q = QueryBuilder::<DB>::new("UPDATE slices SET counts = ");
        q.push_bind(true).push(" WHERE id IN (");
        push_list(&mut q, chunk.iter().copied());
        q.build().execute(&mut **tx).await?;
    }
    for chunk in loaded.released.chunks(CHUNK) {
        let mut q = QueryBuilder::<DB>::new("UPDATE slices SET counts = ");
        q.push_bind(false).push(" WHERE id IN (");
        push_list(&mut q, chunk.iter().copied());
        q.build().execute(&mut **tx).await?;
    }

    let entities: Vec<(&str, Status, CheckCounts, i64)> = applied
        .entities
        .iter()
        .map(|(entity, status, counts, at)| (entity.as_str(), *status, *counts, *at))
        .collect();
    store_entities(tx, &entities).await?;

    insert_transitions(tx, applied.transitions.iter_mut().flatten()).await
}

/// Inserts new transitions and fills in their row ids.
async fn insert_transitions<'t, DB>(
    tx: &mut Transaction<'static, DB>,
    transitions: impl Iterator<Item = &'t mut TransitionEvent>,
) -> Result<(), sqlx::Error>
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    DB::Arguments: Default + sqlx::IntoArguments<DB>,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> Option<&'q str>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> Option<i64>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    (i64, String, Option<i64>): for<'r> sqlx::FromRow<'r, DB::Row>,
{
    let mut transitions: Vec<&mut TransitionEvent> = transitions.collect();
    let mut ids: HashMap<(String, Option<i64>), i64> = HashMap::new();
    for chunk in transitions.chunks(CHUNK) {
        let mut q = QueryBuilder::<DB>::new(
            "INSERT INTO transitions (entity_id, from_status, to_status, kind, check_id, environment_id,
                created_at, run_id) ",
        );
        q.push_values(chunk, |mut row, t| {
            row.push_bind(t.entity_id.as_str())
                .push_bind(t.from.as_str())
                .push_bind(t.to.as_str())
                .push_bind(t.kind.as_str())
                .push_bind(t.check_id.as_str())
                .push_bind(t.environment_id.as_deref())
                .push_bind(t.at_ms)
                .push_bind(t.run_id);
        });
        // A run (or a re-evaluation) causes at most one transition per
        // entity: (entity, run) names a row.
        q.push(" RETURNING id, entity_id, run_id");
        let rows: Vec<(i64, String, Option<i64>)> = q.build_query_as().fetch_all(&mut **tx).await?;
        ids.extend(
            rows.into_iter()
                .map(|(id, entity, run)| ((entity, run), id)),
        );
    }
    for t in &mut transitions {
        t.id = ids.get(&(t.entity_id.clone(), t.run_id)).copied();
    }
    Ok(())
}

/// Re-derives the entities of the given systems (system → the check that
/// prompted it) from their counting slices, writes the states that changed
/// and returns the transitions between measured states. An entity left with
/// nothing enabled becomes `unknown` without a transition: it has no status
/// to report, and its next measurement starts from a baseline.
async fn rederive<DB>(
    tx: &mut Transaction<'static, DB>,
    cause: &HashMap<&str, &str>,
    at_ms: i64,
) -> Result<Vec<TransitionEvent>, sqlx::Error>
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    DB::Arguments: Default + sqlx::IntoArguments<DB>,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> i32: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    (String, String, String, String, bool, Option<bool>): for<'r> sqlx::FromRow<'r, DB::Row>,
    (String, String, Option<i32>, Option<i32>): for<'r> sqlx::FromRow<'r, DB::Row>,
{
    let mut systems: Vec<&str> = cause.keys().copied().collect();
    systems.sort_unstable();
    let mut q = QueryBuilder::<DB>::new(
        "SELECT s.system_id, s.check_id, s.env_key, s.status, s.counts, a.paused
         FROM slices s LEFT JOIN assignments a ON a.system_id = s.system_id AND a.check_id = s.check_id
         WHERE s.system_id IN (",
    );
    push_list(&mut q, systems.iter().copied());
    let rows: Vec<(String, String, String, String, bool, Option<bool>)> =
        q.build_query_as().fetch_all(&mut **tx).await?;
    /// An entity as its counting slices make it now.
    #[derive(Default)]
    struct Derived {
        system: String,
        environment: Option<String>,
        slices: Vec<(String, Status)>,
    }
    let mut derived: std::collections::BTreeMap<String, Derived> = Default::default();
    for system in &systems {
        derived.insert(
            system.to_string(),
            Derived {
                system: system.to_string(),
                ..Default::default()
            },
        );
    }
    for (system, check, env_key, status, selected, paused) in rows {
        let (env, location) = split_key(&env_key);
        for entity in entities_of(&system, env, location) {
            let slot = derived
                .entry(entity.to_string())
                .or_insert_with(|| Derived {
                    system: system.clone(),
                    environment: entity.environment().map(str::to_string),
                    slices: Vec::new(),
                });
            if selected && paused == Some(false) {
                slot.slices.push((check.clone(), Status::parse(&status)));
            }
        }
    }
    let stored = load_entities(tx, derived.keys().map(String::as_str)).await?;
    let mut states: Vec<(&str, Status, CheckCounts, i64)> = Vec::new();
    let mut transitions = Vec::new();
    for (entity, d) in &derived {
        let status = worst(d.slices.iter().map(|(_, s)| *s));
        let counts = CheckCounts::of(d.slices.iter().map(|(c, s)| (c.as_str(), *s)));
        let (before, before_counts) = match stored.get(entity) {
            Some((s, c)) => (Some(*s), *c),
            None => (None, None),
        };
        if (before == Some(status) && before_counts == Some(counts))
            || (before.is_none() && status == Status::Unknown)
        {
            continue;
        }
        states.push((entity, status, counts, at_ms));
        let Some(from) = before.filter(|s| *s != Status::Unknown) else {
            continue;
        };
        if status == Status::Unknown || from == status {
            continue;
        }
        transitions.push(TransitionEvent {
            id: None,
            own_slice: false,
            entity_id: entity.clone(),
            from,
            to: status,
            kind: TransitionKind::classify(from, status),
            check_id: cause
                .get(d.system.as_str())
                .copied()
                .unwrap_or_default()
                .to_string(),
            environment_id: d.environment.clone(),
            healthy_checks: Some(counts.healthy_checks),
            total_checks: Some(counts.total_checks),
            flapping: None,
            run_id: None,
            at_ms,
        });
    }
    super::apply::mark_own(&mut transitions);
    store_entities(tx, &states).await?;
    Ok(transitions)
}

/// Stored statuses and check counts of these entities.
async fn load_entities<'e, DB>(
    tx: &mut Transaction<'static, DB>,
    entities: impl Iterator<Item = &'e str>,
) -> Result<HashMap<String, (Status, Option<CheckCounts>)>, sqlx::Error>
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    DB::Arguments: Default + sqlx::IntoArguments<DB>,
    for<'q> &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    (String, String, Option<i32>, Option<i32>): for<'r> sqlx::FromRow<'r, DB::Row>,
{
    let entities: Vec<&str> = entities.collect();
    let mut stored = HashMap::with_capacity(entities.len());
    for chunk in entities.chunks(CHUNK) {
        let mut q = QueryBuilder::<DB>::new(
            "SELECT entity_id, status, healthy_checks, total_checks FROM entity_state WHERE entity_id IN (",
        );
        push_list(&mut q, chunk.iter().copied());
        let rows: Vec<(String, String, Option<i32>, Option<i32>)> =
            q.build_query_as().fetch_all(&mut **tx).await?;
        stored.extend(
            rows.into_iter()
                .map(|(e, s, h, t)| (e, (Status::parse(&s), CheckCounts::stored(h, t)))),
        );
    }
    Ok(stored)
}

/// Writes entities' statuses and check counts, each with when it changed.
async fn store_entities<DB>(
    tx: &mut Transaction<'static, DB>,
    states: &[(&str, Status, CheckCounts, i64)],
) -> Result<(), sqlx::Error>
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    DB::Arguments: Default + sqlx::IntoArguments<DB>,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> i32: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    for chunk in states.chunks(CHUNK) {
        let mut q = QueryBuilder::<DB>::new(
            "INSERT INTO entity_state (entity_id, status, updated_at, healthy_checks, total_checks) ",
        );
        q.push_values(chunk, |mut row, (entity, status, counts, at)| {
            row.push_bind(*entity)
                .push_bind(status.as_str())
                .push_bind(*at)
                .push_bind(counts.healthy_checks as i32)
                .push_bind(counts.total_checks as i32);
        });
        q.push(
            " ON CONFLICT (entity_id) DO UPDATE SET status = excluded.status, updated_at = excluded.updated_at, \
             healthy_checks = excluded.healthy_checks, total_checks = excluded.total_checks",
        );
        q.build().execute(&mut **tx).await?;
    }
    Ok(())
}

/// Marks the notifying transitions of flapping slices: the change that
/// reaches the assignment's `changes` within its window starts flapping,
/// later ones within the window are held. Transitions are rare, so each
/// costs a lookup here; assignments without a rule cost one per batch.
async fn mark_flapping<DB>(
    tx: &mut Transaction<'static, DB>,
    transitions: &mut [Vec<TransitionEvent>],
) -> Result<(), sqlx::Error>
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    DB::Arguments: Default + sqlx::IntoArguments<DB>,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    (Option<String>,): for<'r> sqlx::FromRow<'r, DB::Row>,
    (i64,): for<'r> sqlx::FromRow<'r, DB::Row>,
{
    let mut rules: HashMap<(String, String), Option<FlapRule>> = HashMap::new();
    // The slice's changes so far: stored ones (read once) and this batch's.
    let mut changes: HashMap<(String, String), Vec<i64>> = HashMap::new();
    for t in transitions.iter_mut().flatten().filter(|t| t.own_slice) {
        let system = EntityId::parse(&t.entity_id).system().to_string();
        let assignment = (system, t.check_id.clone());
        let rule = match rules.get(&assignment) {
            Some(rule) => *rule,
            None => {
                let row: Option<(Option<String>,)> = sqlx::query_as(
                    "SELECT flapping FROM assignments WHERE system_id = $1 AND check_id = $2",
                )
                .bind(assignment.0.as_str())
                .bind(assignment.1.as_str())
                .fetch_optional(&mut **tx)
                .await?;
                let rule = row
                    .and_then(|(text,)| text)
                    .and_then(|text| serde_json::from_str::<FlapRule>(&text).ok());
                rules.insert(assignment, rule);
                rule
            }
        };
        let Some(rule) = rule else {
            continue;
        };
        // Per slice: this entity's changes that this check caused.
        let slice = (t.entity_id.clone(), t.check_id.clone());
        if !changes.contains_key(&slice) {
            // Two windows back: enough to judge the previous change too.
            let since = t.at_ms.saturating_sub(rule.window_ms.saturating_mul(2));
            let stored: Vec<(i64,)> = sqlx::query_as(
                "SELECT created_at FROM transitions WHERE entity_id = $1 AND check_id = $2 AND created_at > $3",
            )
            .bind(t.entity_id.as_str())
            .bind(t.check_id.as_str())
            .bind(since)
            .fetch_all(&mut **tx)
            .await?;
            changes.insert(slice.clone(), stored.into_iter().map(|(at,)| at).collect());
        }
        let seen = changes.entry(slice).or_default();
        t.flapping = rule.judge(t.at_ms, seen);
        seen.push(t.at_ms);
    }
    Ok(())
}
