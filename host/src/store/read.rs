//! What the API, the event stream and the status page read: slices with
//! their last runs, pages of runs and transitions, history merged across the
//! aggregate tiers, uptime and latency series, and API pauses.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use sqlx::QueryBuilder;

use super::db::with_pool;
use super::entity::EntityId;
use super::fields::{self, FieldMap, FieldPoint};
use super::ids::{created_at, first_id_at};
use super::state::{Status, TransitionKind};
use super::{
    DAY_MS, EntityStatus, HOUR_MS, RunEvent, Store, StoreError, StoreEvent, TransitionEvent,
};

/// Which runs, slices or aggregates a read is about. `environment`:
/// `Some("")` means runs without an environment.
#[derive(Debug, Default, Clone)]
pub struct SliceFilter {
    pub system: Option<String>,
    pub check: Option<String>,
    /// An environment; "": the slices without one.
    pub environment: Option<String>,
    /// A probe location; "": the server's own slices; `None`: wherever the
    /// slices run.
    pub location: Option<String>,
}

impl SliceFilter {
    fn is_empty(&self) -> bool {
        self.system.is_none()
            && self.check.is_none()
            && self.environment.is_none()
            && self.location.is_none()
    }

    /// ` AND <column> IN (SELECT id FROM slices WHERE …)`, or nothing.
    pub(super) fn push<DB: sqlx::Database>(&self, q: &mut QueryBuilder<DB>, column: &str)
    where
        for<'q> String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    {
        if self.is_empty() {
            return;
        }
        q.push(format!(
            " AND {column} IN (SELECT id FROM slices WHERE 1 = 1"
        ));
        if let Some(system) = &self.system {
            q.push(" AND system_id = ").push_bind(system.clone());
        }
        if let Some(check) = &self.check {
            q.push(" AND check_id = ").push_bind(check.clone());
        }
        // "" picks the slices without one.
        for (column, value) in [
            ("environment_id", &self.environment),
            ("location_id", &self.location),
        ] {
            match value.as_deref() {
                None => {}
                Some("") => {
                    q.push(format!(" AND {column} IS NULL"));
                }
                Some(value) => {
                    q.push(format!(" AND {column} = "))
                        .push_bind(value.to_string());
                }
            }
        }
        q.push(")");
    }
}

/// `SELECT <columns>, <tier>` from both tiers of a table (`tables`: the
/// hourly, then the daily), with the buckets that overlap `from`–`to`.
pub(super) fn push_tiers<DB: sqlx::Database>(
    q: &mut QueryBuilder<DB>,
    columns: &str,
    tables: [&str; 2],
    (from_ms, to_ms): (i64, i64),
    slices: &SliceFilter,
) where
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    for (tier, table) in tables.into_iter().enumerate() {
        if tier > 0 {
            q.push(" UNION ALL ");
        }
        q.push(format!(
            "SELECT {columns}, {tier} FROM {table} WHERE bucket >= "
        ));
        // A bucket that starts before `from` may still overlap it.
        let span = if tier == 1 { DAY_MS } else { HOUR_MS };
        q.push_bind(from_ms.saturating_sub(from_ms.rem_euclid(span)));
        q.push(" AND bucket < ").push_bind(to_ms);
        slices.push(q, "slice_id");
    }
}

/// A stored run, as the API lists it: the run as events tell it, and its
/// result, which was masked before it was stored.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunRecord {
    #[serde(flatten)]
    pub run: RunEvent,
    /// Collector results and assertion outcomes.
    #[schema(value_type = Object)]
    pub result: serde_json::Value,
}

type RunRow = (
    i64,
    String,
    String,
    Option<String>,
    Option<String>,
    String,
    f64,
    Option<String>,
    String,
    Option<i64>,
);

fn run_record(row: RunRow) -> RunRecord {
    let (
        id,
        system_id,
        check_id,
        environment_id,
        location_id,
        status,
        latency_ms,
        error,
        result,
        measured_at,
    ) = row;
    RunRecord {
        run: RunEvent {
            id,
            system_id,
            check_id,
            environment_id,
            location_id,
            status: Status::parse(&status),
            latency_ms,
            error,
            // A probe's run was measured before it was numbered at ingest.
            at_ms: measured_at.unwrap_or_else(|| created_at(id)),
        },
        result: serde_json::from_str(&result).unwrap_or(serde_json::Value::Null),
    }
}

#[derive(Debug, Default, Clone)]
pub struct RunQuery {
    pub slices: SliceFilter,
    pub status: Option<Status>,
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    /// Runs older than this id (the cursor of the previous page).
    pub before: Option<i64>,
    pub limit: i64,
}

/// A slice of a system with its status and its newest run.
#[derive(Debug, Clone)]
pub struct SliceView {
    pub check_id: String,
    pub environment_id: Option<String>,
    pub location_id: Option<String>,
    pub status: Status,
    pub last_run: Option<RunRecord>,
}

/// One bucket of history: every matching slice's runs in it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HistoryPoint {
    pub start_ms: i64,
    /// `hour` or `day`: days older than the hourly tier stay whole days.
    pub span: String,
    pub total: i64,
    pub healthy: i64,
    pub unhealthy: i64,
    /// Healthy runs / runs, 0–1.
    pub uptime: f64,
    pub latency_avg_ms: f64,
    pub latency_min_ms: f64,
    pub latency_max_ms: f64,
    pub latency_p95_ms: f64,
    /// The marked result fields measured in the bucket, by
    /// `<collector>.<field>` (`request.statusCode`).
    pub fields: BTreeMap<String, FieldPoint>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bucket {
    Hour,
    Day,
}

#[derive(Debug, Default, Clone)]
pub struct TransitionQuery {
    pub entity: Option<String>,
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    pub before: Option<i64>,
    pub limit: i64,
}

/// Healthy share of runs over the last 24 hours, 7 days and 30 days, per
/// entity (`None`: no runs in that window).
pub type Uptime = HashMap<String, [Option<f64>; 3]>;

pub(super) type TransitionRow = (
    i64,
    String,
    String,
    String,
    String,
    Option<String>,
    i64,
    Option<i64>,
);

/// `entity_id, status, updated_at, healthy_checks, total_checks`.
pub(super) type EntityRow = (String, String, i64, Option<i32>, Option<i32>);

pub(super) fn entity_status(row: EntityRow) -> EntityStatus {
    let (entity_id, status, updated_at_ms, healthy, total) = row;
    EntityStatus {
        entity_id,
        status: Status::parse(&status),
        updated_at_ms,
        checks: super::state::CheckCounts::stored(healthy, total),
    }
}

pub(super) fn transition_event(row: TransitionRow) -> TransitionEvent {
    let (id, entity_id, from, to, check_id, environment_id, at_ms, run_id) = row;
    let (from, to) = (Status::parse(&from), Status::parse(&to));
    TransitionEvent {
        id: Some(id),
        // Stored rows are read for history and reminders, never routed anew.
        own_slice: !EntityId::parse(&entity_id).is_rollup() || environment_id.is_none(),
        entity_id,
        from,
        to,
        kind: TransitionKind::classify(from, to),
        check_id,
        environment_id,
        healthy_checks: None,
        total_checks: None,
        flapping: None,
        run_id,
        at_ms,
    }
}

/// Entity states as the API and the status page read them: kept in memory
/// and brought up to date on each read with the rows changed since the last
/// one, so a read costs one small query whatever the number of systems.
#[derive(Default)]
pub struct StatusCache {
    states: Arc<HashMap<String, EntityStatus>>,
    /// Bumped whenever a state changes: what callers cache their output by.
    version: u64,
    /// The newest `updated_at` seen.
    newest: i64,
    full_at: Option<Instant>,
}

/// A snapshot of every entity's state.
pub struct Statuses {
    pub states: Arc<HashMap<String, EntityStatus>>,
    /// Differs whenever any state differs.
    pub version: u64,
}

/// Rows are stamped with their run's time, which may be a little older than
/// their commit: each delta reads this far behind the newest stamp seen.
const LOOK_BACK_MS: i64 = 60_000;
/// A full read now and then picks up anything committed later than that
/// (runs that waited out a database outage).
const FULL_READ_EVERY: Duration = Duration::from_secs(300);

const RUN_COLUMNS: &str = "SELECT r.id, s.system_id, s.check_id, s.environment_id, s.location_id, \
     r.status, r.latency_ms, r.error, r.result, r.measured_at FROM runs r JOIN slices s ON s.id = r.slice_id \
     WHERE 1 = 1";

impl Store {
    /// Every entity's current status, from the in-memory cache refreshed by
    /// one query (see [`StatusCache`]).
    pub async fn current_statuses(&self) -> Result<Statuses, StoreError> {
        let mut cache = self.status_cache.lock().await;
        let full = cache
            .full_at
            .is_none_or(|at| at.elapsed() >= FULL_READ_EVERY);
        let since = if full {
            i64::MIN
        } else {
            cache.newest - LOOK_BACK_MS
        };
        let rows: Vec<EntityRow> = with_pool!(&self.db.read().await, pool => {
            sqlx::query_as("SELECT entity_id, status, updated_at, healthy_checks, total_checks FROM entity_state WHERE updated_at >= $1")
                .bind(since)
                .fetch_all(pool)
                .await?
        });
        if full {
            cache.states = Arc::new(HashMap::with_capacity(rows.len()));
            cache.full_at = Some(Instant::now());
            cache.version += 1;
        }
        let cache = &mut *cache;
        for row in rows {
            let state = entity_status(row);
            cache.newest = cache.newest.max(state.updated_at_ms);
            let known = cache.states.get(&state.entity_id);
            if known.is_some_and(|k| {
                k.status == state.status
                    && k.updated_at_ms == state.updated_at_ms
                    && k.checks == state.checks
            }) {
                continue;
            }
            cache.version += 1;
            Arc::make_mut(&mut cache.states).insert(state.entity_id.clone(), state);
        }
        Ok(Statuses {
            states: cache.states.clone(),
            version: cache.version,
        })
    }

    /// The current status of some entities.
    pub async fn statuses_of(
        &self,
        entities: &[String],
    ) -> Result<Vec<super::EntityStatus>, StoreError> {
        let rows: Vec<EntityRow> = with_pool!(&self.db.read().await, pool => {
            let mut q = QueryBuilder::new("SELECT entity_id, status, updated_at, healthy_checks, total_checks FROM entity_state WHERE entity_id IN (");
            let mut list = q.separated(", ");
            for e in entities {
                list.push_bind(e.clone());
            }
            list.push_unseparated(")");
            q.build_query_as().fetch_all(pool).await?
        });
        Ok(rows.into_iter().map(entity_status).collect())
    }

    /// A system's slices, each with its newest run, in one query.
    pub async fn system_slices(&self, system: &str) -> Result<Vec<SliceView>, StoreError> {
        type Row = (
            String,
            Option<String>,
            Option<String>,
            String,
            Option<i64>,
            Option<String>,
            Option<f64>,
            Option<String>,
            Option<String>,
            Option<i64>,
        );
        let rows: Vec<Row> = with_pool!(&self.db.read().await, pool => {
            sqlx::query_as(
                "SELECT s.check_id, s.environment_id, s.location_id, s.status, r.id, r.status, r.latency_ms,
                        r.error, r.result, r.measured_at
                 FROM slices s LEFT JOIN runs r ON r.id = (SELECT MAX(l.id) FROM runs l WHERE l.slice_id = s.id)
                 WHERE s.system_id = $1 ORDER BY s.check_id, s.env_key",
            )
            .bind(system)
            .fetch_all(pool)
            .await?
        });
        Ok(rows
            .into_iter()
            .map(
                |(
                    check_id,
                    environment_id,
                    location_id,
                    status,
                    id,
                    rstatus,
                    latency,
                    error,
                    result,
                    measured_at,
                )| {
                    let last_run = id.map(|id| {
                        run_record((
                            id,
                            system.to_string(),
                            check_id.clone(),
                            environment_id.clone(),
                            location_id.clone(),
                            rstatus.unwrap_or_default(),
                            latency.unwrap_or_default(),
                            error,
                            result.unwrap_or_default(),
                            measured_at,
                        ))
                    });
                    SliceView {
                        check_id,
                        environment_id,
                        location_id,
                        status: Status::parse(&status),
                        last_run,
                    }
                },
            )
            .collect())
    }

    /// Runs newest first; pass the last id of a page as `before` for the next.
    pub async fn runs(&self, query: &RunQuery) -> Result<Vec<RunRecord>, StoreError> {
        let rows: Vec<RunRow> = with_pool!(&self.db.read().await, pool => {
            let mut q = QueryBuilder::new(RUN_COLUMNS);
            query.slices.push(&mut q, "r.slice_id");
            if let Some(status) = query.status {
                q.push(" AND r.status = ").push_bind(status.as_str().to_string());
            }
            if let Some(from) = query.from_ms {
                q.push(" AND r.id >= ").push_bind(first_id_at(from));
            }
            let to = query.to_ms.map_or(i64::MAX, first_id_at);
            q.push(" AND r.id < ").push_bind(query.before.map_or(to, |b| b.min(to)));
            q.push(" ORDER BY r.id DESC LIMIT ").push_bind(query.limit);
            q.build_query_as().fetch_all(pool).await?
        });
        Ok(rows.into_iter().map(run_record).collect())
    }

    /// Transitions newest first, keyset-paginated like `runs`.
    pub async fn transitions(
        &self,
        query: &TransitionQuery,
    ) -> Result<Vec<TransitionEvent>, StoreError> {
        let rows: Vec<TransitionRow> = with_pool!(&self.db.read().await, pool => {
            let mut q = QueryBuilder::new(
                "SELECT id, entity_id, from_status, to_status, check_id, environment_id, created_at, run_id
                 FROM transitions WHERE 1 = 1",
            );
            if let Some(entity) = &query.entity {
                q.push(" AND entity_id = ").push_bind(entity.clone());
            }
            if let Some(from) = query.from_ms {
                q.push(" AND created_at >= ").push_bind(from);
            }
            if let Some(to) = query.to_ms {
                q.push(" AND created_at < ").push_bind(to);
            }
            if let Some(before) = query.before {
                q.push(" AND id < ").push_bind(before);
            }
            q.push(" ORDER BY id DESC LIMIT ").push_bind(query.limit);
            q.build_query_as().fetch_all(pool).await?
        });
        Ok(rows.into_iter().map(transition_event).collect())
    }

    /// Committed runs after `after` (a run id) and the transitions they
    /// caused, in commit order: what a reconnecting event stream missed.
    pub async fn events_after(
        &self,
        after: i64,
        limit: i64,
    ) -> Result<Vec<StoreEvent>, StoreError> {
        let (runs, transitions): (Vec<RunRow>, Vec<TransitionRow>) = with_pool!(&self.db.read().await, pool => {
            let runs: Vec<RunRow> = sqlx::query_as(
                "SELECT r.id, s.system_id, s.check_id, s.environment_id, s.location_id, r.status, r.latency_ms,
                        r.error, '', r.measured_at
                 FROM runs r JOIN slices s ON s.id = r.slice_id WHERE r.id > $1 ORDER BY r.id LIMIT $2",
            )
            .bind(after)
            .bind(limit)
            .fetch_all(pool)
            .await?;
            let last = runs.last().map_or(after, |r| r.0);
            let transitions: Vec<TransitionRow> = sqlx::query_as(
                "SELECT id, entity_id, from_status, to_status, check_id, environment_id, created_at, run_id
                 FROM transitions WHERE run_id > $1 AND run_id <= $2 ORDER BY run_id, id",
            )
            .bind(after)
            .bind(last)
            .fetch_all(pool)
            .await?;
            (runs, transitions)
        });
        let mut caused: BTreeMap<i64, Vec<TransitionEvent>> = BTreeMap::new();
        for row in transitions {
            let t = transition_event(row);
            caused
                .entry(t.run_id.unwrap_or_default())
                .or_default()
                .push(t);
        }
        Ok(runs
            .into_iter()
            .map(|row| {
                let run = run_record(row).run;
                StoreEvent {
                    transitions: caused.remove(&run.id).unwrap_or_default(),
                    run: Some(run),
                }
            })
            .collect())
    }

    /// The newest run id, where a fresh event stream starts.
    pub async fn newest_run_id(&self) -> Result<i64, StoreError> {
        let id: Option<i64> = with_pool!(&self.db.read().await, pool => {
            sqlx::query_scalar("SELECT MAX(id) FROM runs").fetch_one(pool).await?
        });
        Ok(id.unwrap_or(0))
    }

    /// History in hour or day buckets, merged across the hourly and daily
    /// tiers. The hourly tier is written in each run's own transaction, so
    /// it already holds the raw runs of the current hour.
    pub async fn history(
        &self,
        slices: &SliceFilter,
        from_ms: i64,
        to_ms: i64,
        bucket: Bucket,
    ) -> Result<Vec<HistoryPoint>, StoreError> {
        type Row = (i64, i64, i64, i64, i64, f64, f64, f64, f64, String, i32);
        let rows: Vec<Row> = with_pool!(&self.db.read().await, pool => {
            let mut q = QueryBuilder::new("");
            push_tiers(
                &mut q,
                "bucket, total, healthy, unhealthy, latency_count, latency_sum, latency_min, \
                 latency_max, p95, fields",
                ["aggregates_hourly", "aggregates_daily"],
                (from_ms, to_ms),
                slices,
            );
            q.build_query_as().fetch_all(pool).await?
        });
        // One p95 rule everywhere, the seed's: a bucket that merges stored
        // rows (the hours of a day, several slices) reports the largest of
        // their p95s, as the daily tier stores it.
        // Runs without latency (their check could not be prepared) count in
        // the totals only.
        let key = |start: i64, tier: i32| {
            let day = tier == 1 || bucket == Bucket::Day;
            let start = if day {
                start.div_euclid(DAY_MS) * DAY_MS
            } else {
                start
            };
            (start, day)
        };
        // Fields merge across slices and tiers like latency.
        let mut fields: BTreeMap<(i64, bool), FieldMap> = BTreeMap::new();
        let mut merged: BTreeMap<(i64, bool), (HistoryPoint, i64, f64)> = BTreeMap::new();
        for (start, total, healthy, unhealthy, count, sum, min, max, p95, bucket_fields, tier) in
            rows
        {
            let (start, day) = key(start, tier);
            if bucket_fields.len() > 2 {
                fields::merge(
                    fields.entry((start, day)).or_default(),
                    &fields::from_json(&bucket_fields),
                );
            }
            let (point, count_total, sum_total) = merged.entry((start, day)).or_insert_with(|| {
                (
                    HistoryPoint {
                        start_ms: start,
                        span: if day { "day" } else { "hour" }.into(),
                        total: 0,
                        healthy: 0,
                        unhealthy: 0,
                        uptime: 0.0,
                        latency_avg_ms: 0.0,
                        latency_min_ms: f64::INFINITY,
                        latency_max_ms: 0.0,
                        latency_p95_ms: 0.0,
                        fields: BTreeMap::new(),
                    },
                    0,
                    0.0,
                )
            });
            point.total += total;
            point.healthy += healthy;
            point.unhealthy += unhealthy;
            if count > 0 {
                point.latency_min_ms = point.latency_min_ms.min(min);
                point.latency_max_ms = point.latency_max_ms.max(max);
                point.latency_p95_ms = point.latency_p95_ms.max(p95);
                *count_total += count;
                *sum_total += sum;
            }
        }
        Ok(merged
            .into_iter()
            .filter(|(_, (p, _, _))| p.total > 0)
            .map(|(key, (mut p, count, sum))| {
                p.fields = fields
                    .remove(&key)
                    .unwrap_or_default()
                    .iter()
                    .map(|(name, b)| (name.clone(), b.into()))
                    .collect();
                p.uptime = p.healthy as f64 / p.total as f64;
                if count > 0 {
                    p.latency_avg_ms = sum / count as f64;
                } else {
                    p.latency_min_ms = 0.0;
                }
                p
            })
            .collect())
    }

    /// Uptime over 24 h, 7 d and 30 d for `systems` and their
    /// `system::environment`s, from the aggregates in one query.
    pub async fn uptime(&self, now_ms: i64, systems: &[String]) -> Result<Uptime, StoreError> {
        type Row = (String, Option<String>, i64, i64, i64, i64, i64, i64);
        if systems.is_empty() {
            return Ok(Uptime::new());
        }
        let windows = [now_ms - DAY_MS, now_ms - 7 * DAY_MS, now_ms - 30 * DAY_MS];
        let day = windows[0] - windows[0].rem_euclid(HOUR_MS);
        let week = windows[1] - windows[1].rem_euclid(HOUR_MS);
        let month = windows[2] - windows[2].rem_euclid(DAY_MS);
        let rows: Vec<Row> = with_pool!(&self.db.read().await, pool => {
            // PostgreSQL sums BIGINTs into NUMERIC: cast back.
            let mut q = QueryBuilder::new("SELECT s.system_id, s.environment_id, ");
            for (since, column) in [(day, "total"), (day, "healthy"), (week, "total"), (week, "healthy")] {
                q.push("CAST(SUM(CASE WHEN a.bucket >= ")
                    .push_bind(since)
                    .push(format!(" THEN a.{column} ELSE 0 END) AS BIGINT), "));
            }
            q.push("CAST(SUM(a.total) AS BIGINT), CAST(SUM(a.healthy) AS BIGINT) FROM (");
            for (i, table) in ["aggregates_hourly", "aggregates_daily"].into_iter().enumerate() {
                if i > 0 {
                    q.push(" UNION ALL ");
                }
                // From the systems' slices into the primary key (slice_id,
                // bucket): the planners walk the index per slice.
                q.push(format!(
                    "SELECT t.slice_id, t.bucket, t.total, t.healthy FROM slices x \
                     JOIN {table} t ON t.slice_id = x.id AND t.bucket >= "
                ))
                .push_bind(month)
                .push(" WHERE x.system_id IN (");
                let mut ids = q.separated(", ");
                for system in systems {
                    ids.push_bind(system.clone());
                }
                q.push(")");
            }
            q.push(") a JOIN slices s ON s.id = a.slice_id GROUP BY s.system_id, s.environment_id");
            q.build_query_as().fetch_all(pool).await?
        });
        let mut counts: HashMap<String, [(i64, i64); 3]> = HashMap::new();
        for (system, env, t1, h1, t7, h7, t30, h30) in rows {
            let mut keys = vec![system.clone()];
            if let Some(env) = env {
                keys.push(EntityId::of(&system, Some(&env)).to_string());
            }
            for key in keys {
                let c = counts.entry(key).or_default();
                for (slot, (t, h)) in c.iter_mut().zip([(t1, h1), (t7, h7), (t30, h30)]) {
                    slot.0 += t;
                    slot.1 += h;
                }
            }
        }
        Ok(counts
            .into_iter()
            .map(|(entity, c)| {
                (
                    entity,
                    c.map(|(total, healthy)| (total > 0).then(|| healthy as f64 / total as f64)),
                )
            })
            .collect())
    }

    /// Average latency per hour over the last `hours` for `systems`,
    /// oldest first (for sparklines).
    pub async fn latency_series(
        &self,
        now_ms: i64,
        hours: i64,
        systems: &[String],
    ) -> Result<HashMap<String, Vec<(i64, f64)>>, StoreError> {
        if systems.is_empty() {
            return Ok(HashMap::new());
        }
        let since = now_ms.div_euclid(HOUR_MS) * HOUR_MS - (hours - 1) * HOUR_MS;
        let rows: Vec<(String, i64, f64, i64)> = with_pool!(&self.db.read().await, pool => {
            let mut q = QueryBuilder::new(
                "SELECT s.system_id, a.bucket, SUM(a.latency_sum), CAST(SUM(a.latency_count) AS BIGINT)
                 FROM aggregates_hourly a JOIN slices s ON s.id = a.slice_id
                 WHERE a.bucket >= ",
            );
            q.push_bind(since).push(" AND s.system_id IN (");
            let mut ids = q.separated(", ");
            for system in systems {
                ids.push_bind(system.clone());
            }
            q.push(") GROUP BY s.system_id, a.bucket ORDER BY a.bucket");
            q.build_query_as().fetch_all(pool).await?
        });
        let mut series: HashMap<String, Vec<(i64, f64)>> = HashMap::new();
        for (system, bucket, sum, total) in rows {
            if total > 0 {
                series
                    .entry(system)
                    .or_default()
                    .push((bucket, sum / total as f64));
            }
        }
        Ok(series)
    }

    /// Pauses and resumes set through the API: `(system, check) → paused`.
    pub async fn pauses(&self) -> Result<HashMap<(String, String), bool>, StoreError> {
        let rows: Vec<(String, String, bool)> = with_pool!(&self.db.read().await, pool => {
            sqlx::query_as("SELECT system_id, check_id, paused FROM assignment_pauses")
                .fetch_all(pool)
                .await?
        });
        Ok(rows.into_iter().map(|(s, c, p)| ((s, c), p)).collect())
    }
}
