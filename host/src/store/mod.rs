//! Persistence: runs, hourly/daily aggregates, entity state and transitions
//! on embedded SQLite (WAL), one transaction per run.

pub mod retention;
pub mod sketch;
pub mod state;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, Sqlite, SqlitePool, Transaction};
use tokio::sync::broadcast;

use crate::config::{Assignment, Check, Thresholds};
use sketch::Sketch;
use state::{Status, TransitionKind, runs_needed, slice_status, worst};

pub const HOUR_MS: i64 = 3_600_000;
pub const DAY_MS: i64 = 86_400_000;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database {url}: {source}")]
    Open { url: String, source: sqlx::Error },
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database error: {0}")]
    Query(#[from] sqlx::Error),
    #[error("unsupported database URL `{0}`: use sqlite://<path>")]
    Url(String),
}

/// One finished run, ready to persist. Results are already masked.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NewRun {
    pub system_id: String,
    pub check_id: String,
    pub environment_id: Option<String>,
    pub healthy: bool,
    pub latency_ms: f64,
    pub result: Value,
    pub error: Option<String>,
    pub at_ms: i64,
}

/// A status change of an entity (`<system>` or `<system>::<environment>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TransitionEvent {
    pub entity_id: String,
    pub from: Status,
    pub to: Status,
    pub kind: TransitionKind,
    pub check_id: String,
    pub environment_id: Option<String>,
    pub at_ms: i64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EntityStatus {
    pub entity_id: String,
    pub status: Status,
    pub updated_at_ms: i64,
}

pub struct Store {
    pool: SqlitePool,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    events: broadcast::Sender<TransitionEvent>,
}

pub fn entity_ids(system: &str, environment: Option<&str>) -> Vec<String> {
    let mut ids = vec![system.to_string()];
    if let Some(env) = environment {
        ids.push(format!("{system}::{env}"));
    }
    ids.sort();
    ids
}

impl Store {
    /// Opens (creating on first start) `sqlite://path` and applies migrations.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .ok_or_else(|| StoreError::Url(url.to_string()))?;
        Self::open_sqlite(Path::new(path)).await
    }

    pub async fn open_sqlite(path: &Path) -> Result<Store, StoreError> {
        let url = format!("sqlite://{}", path.display());
        let open = |source| StoreError::Open {
            url: url.clone(),
            source,
        };
        let options = SqliteConnectOptions::from_str(&url)
            .map_err(open)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(30))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(open)?;
        sqlx::migrate!("../migrations/sqlite").run(&pool).await?;
        let (events, _) = broadcast::channel(1024);
        Ok(Store {
            pool,
            locks: Mutex::new(HashMap::new()),
            events,
        })
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    pub fn subscribe(&self) -> broadcast::Receiver<TransitionEvent> {
        self.events.subscribe()
    }

    /// Makes the stored checks and assignments match the configuration, so
    /// state evaluation sees current thresholds and paused flags.
    pub async fn sync_config(
        &self,
        checks: &[Check],
        assignments: &[Assignment],
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        for check in checks {
            sqlx::query(
                "INSERT INTO checks (id, name, definition, updated_at) VALUES (?, ?, ?, ?)
                 ON CONFLICT (id) DO UPDATE SET name = excluded.name, definition = excluded.definition,
                 updated_at = excluded.updated_at",
            )
            .bind(&check.id)
            .bind(check.name.clone().unwrap_or_else(|| check.id.clone()))
            .bind(serde_json::to_string(check).unwrap_or_default())
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query("DELETE FROM assignments")
            .execute(&mut *tx)
            .await?;
        for a in assignments {
            let environments = match &a.environments {
                crate::config::EnvSelection::All => None,
                crate::config::EnvSelection::List(list) => {
                    Some(serde_json::to_string(list).unwrap_or_default())
                }
            };
            sqlx::query(
                "INSERT INTO assignments (system_id, check_id, environments, thresholds, paused) VALUES (?, ?, ?, ?, ?)
                 ON CONFLICT (system_id, check_id) DO UPDATE SET environments = excluded.environments,
                 thresholds = excluded.thresholds, paused = excluded.paused",
            )
            .bind(&a.system)
            .bind(&a.check)
            .bind(environments)
            .bind(serde_json::to_string(&a.thresholds).unwrap_or_default())
            .bind(a.paused)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    fn entity_lock(&self, entity: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
        locks.entry(entity.to_string()).or_default().clone()
    }

    /// Persists one run in one transaction: the run row, its hourly
    /// aggregate, and the re-evaluated state of its entities with a
    /// transition row for each change. Returns (and broadcasts) the changes.
    pub async fn record_run(&self, run: &NewRun) -> Result<Vec<TransitionEvent>, StoreError> {
        let entities = entity_ids(&run.system_id, run.environment_id.as_deref());
        // Writes to one entity are serialised here; the lock order is sorted
        // so two runs never wait on each other in a cycle.
        let locks: Vec<_> = entities.iter().map(|e| self.entity_lock(e)).collect();
        let mut guards = Vec::with_capacity(locks.len());
        for lock in &locks {
            guards.push(lock.lock().await);
        }
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        insert_run(&mut tx, run).await?;
        fold_into_hourly(&mut tx, run).await?;
        let slices = slice_statuses(&mut tx, &run.system_id).await?;
        let mut events = Vec::new();
        for entity in &entities {
            // `<system>::<env>` is the worst of that environment's slices,
            // `<system>` the worst of all of them.
            let status = worst(slices.iter().filter_map(|(env, status)| {
                let in_scope =
                    !entity.contains("::") || env.as_deref() == run.environment_id.as_deref();
                in_scope.then_some(*status)
            }));
            if let Some(event) = apply_state(&mut tx, entity, status, run).await? {
                events.push(event);
            }
        }
        tx.commit().await?;
        drop(guards);
        for event in &events {
            // Nobody listening is fine: the transition row is the record.
            let _ = self.events.send(event.clone());
        }
        Ok(events)
    }

    /// Current status of every entity, rollups first.
    pub async fn statuses(&self) -> Result<Vec<EntityStatus>, StoreError> {
        let rows = sqlx::query(
            "SELECT entity_id, status, updated_at FROM entity_state ORDER BY entity_id",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| EntityStatus {
                entity_id: r.get("entity_id"),
                status: Status::parse(r.get::<String, _>("status").as_str()),
                updated_at_ms: r.get("updated_at"),
            })
            .collect())
    }

    pub async fn recent_transitions(&self, limit: i64) -> Result<Vec<TransitionEvent>, StoreError> {
        let rows = sqlx::query(
            "SELECT entity_id, from_status, to_status, check_id, environment_id, created_at
             FROM transitions ORDER BY created_at DESC, id DESC LIMIT ?",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| {
                let from = Status::parse(r.get::<String, _>("from_status").as_str());
                let to = Status::parse(r.get::<String, _>("to_status").as_str());
                TransitionEvent {
                    entity_id: r.get("entity_id"),
                    from,
                    to,
                    kind: TransitionKind::classify(from, to),
                    check_id: r.get("check_id"),
                    environment_id: r.get("environment_id"),
                    at_ms: r.get("created_at"),
                }
            })
            .collect())
    }
}

async fn insert_run(tx: &mut Transaction<'static, Sqlite>, run: &NewRun) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO runs (system_id, check_id, environment_id, status, latency_ms, result, error, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&run.system_id)
    .bind(&run.check_id)
    .bind(&run.environment_id)
    .bind(if run.healthy { "healthy" } else { "unhealthy" })
    .bind(run.latency_ms)
    .bind(run.result.to_string())
    .bind(&run.error)
    .bind(run.at_ms)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn fold_into_hourly(
    tx: &mut Transaction<'static, Sqlite>,
    run: &NewRun,
) -> Result<(), StoreError> {
    let bucket = run.at_ms.div_euclid(HOUR_MS) * HOUR_MS;
    let env_key = run.environment_id.clone().unwrap_or_default();
    let existing = sqlx::query(
        "SELECT sketch FROM aggregates_hourly WHERE check_id = ? AND system_id = ? AND env_key = ? AND bucket = ?",
    )
    .bind(&run.check_id)
    .bind(&run.system_id)
    .bind(&env_key)
    .bind(bucket)
    .fetch_optional(&mut **tx)
    .await?;
    let mut sketch = existing
        .map(|r| Sketch::from_json(r.get::<String, _>("sketch").as_str()))
        .unwrap_or_default();
    sketch.add(run.latency_ms);
    let (healthy, unhealthy) = if run.healthy { (1, 0) } else { (0, 1) };
    sqlx::query(
        "INSERT INTO aggregates_hourly (check_id, system_id, environment_id, env_key, bucket, total, healthy,
            unhealthy, latency_sum, latency_min, latency_max, p95, sketch)
         VALUES (?, ?, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (check_id, system_id, env_key, bucket) DO UPDATE SET
            total = total + 1, healthy = healthy + excluded.healthy, unhealthy = unhealthy + excluded.unhealthy,
            latency_sum = latency_sum + excluded.latency_sum,
            latency_min = MIN(latency_min, excluded.latency_min),
            latency_max = MAX(latency_max, excluded.latency_max),
            p95 = excluded.p95, sketch = excluded.sketch",
    )
    .bind(&run.check_id)
    .bind(&run.system_id)
    .bind(&run.environment_id)
    .bind(&env_key)
    .bind(bucket)
    .bind(healthy)
    .bind(unhealthy)
    .bind(run.latency_ms)
    .bind(run.latency_ms)
    .bind(run.latency_ms)
    .bind(sketch.quantile(0.95))
    .bind(sketch.to_json())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The status of every slice (check × environment, env-less included) of a
/// system, from its recent runs and each assignment's thresholds, in two
/// queries. Paused assignments count for nothing.
async fn slice_statuses(
    tx: &mut Transaction<'static, Sqlite>,
    system: &str,
) -> Result<Vec<(Option<String>, Status)>, StoreError> {
    let assignments = sqlx::query(
        "SELECT check_id, thresholds FROM assignments WHERE system_id = ? AND paused = 0",
    )
    .bind(system)
    .fetch_all(&mut **tx)
    .await?;
    let thresholds: HashMap<String, Thresholds> = assignments
        .iter()
        .map(|r| {
            let t =
                serde_json::from_str(r.get::<String, _>("thresholds").as_str()).unwrap_or_default();
            (r.get("check_id"), t)
        })
        .collect();
    let depth = thresholds.values().map(runs_needed).max().unwrap_or(0);
    let rows = sqlx::query(
        "SELECT check_id, environment_id, status FROM (
            SELECT check_id, environment_id, status,
                   ROW_NUMBER() OVER (PARTITION BY check_id, environment_id ORDER BY created_at DESC, id DESC) AS n
            FROM runs WHERE system_id = ?)
         WHERE n <= ? ORDER BY check_id, environment_id, n",
    )
    .bind(system)
    .bind(i64::from(depth))
    .fetch_all(&mut **tx)
    .await?;
    let mut slices: BTreeMap<(String, Option<String>), Vec<bool>> = BTreeMap::new();
    for r in &rows {
        let key = (r.get("check_id"), r.get("environment_id"));
        slices
            .entry(key)
            .or_default()
            .push(r.get::<String, _>("status") != "healthy");
    }
    Ok(slices
        .into_iter()
        .filter_map(|((check, env), failed)| {
            let status = slice_status(thresholds.get(&check)?, &failed);
            (status != Status::Unknown).then_some((env, status))
        })
        .collect())
}

/// Stores the entity's new status; a change writes exactly one transition.
/// An entity without a stored state starts from the healthy baseline, so
/// its first unhealthy evaluation is a transition, not swallowed.
async fn apply_state(
    tx: &mut Transaction<'static, Sqlite>,
    entity: &str,
    status: Status,
    run: &NewRun,
) -> Result<Option<TransitionEvent>, StoreError> {
    let previous = sqlx::query("SELECT status FROM entity_state WHERE entity_id = ?")
        .bind(entity)
        .fetch_optional(&mut **tx)
        .await?
        .map(|r| Status::parse(r.get::<String, _>("status").as_str()));
    if previous == Some(status) || status == Status::Unknown {
        return Ok(None);
    }
    sqlx::query(
        "INSERT INTO entity_state (entity_id, status, updated_at) VALUES (?, ?, ?)
         ON CONFLICT (entity_id) DO UPDATE SET status = excluded.status, updated_at = excluded.updated_at",
    )
    .bind(entity)
    .bind(status.as_str())
    .bind(run.at_ms)
    .execute(&mut **tx)
    .await?;
    let from = previous.unwrap_or(Status::Healthy);
    if from == status {
        return Ok(None);
    }
    let kind = TransitionKind::classify(from, status);
    sqlx::query(
        "INSERT INTO transitions (entity_id, from_status, to_status, kind, check_id, environment_id, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(entity)
    .bind(from.as_str())
    .bind(status.as_str())
    .bind(kind.as_str())
    .bind(&run.check_id)
    .bind(&run.environment_id)
    .bind(run.at_ms)
    .execute(&mut **tx)
    .await?;
    Ok(Some(TransitionEvent {
        entity_id: entity.to_string(),
        from,
        to: status,
        kind,
        check_id: run.check_id.clone(),
        environment_id: run.environment_id.clone(),
        at_ms: run.at_ms,
    }))
}
