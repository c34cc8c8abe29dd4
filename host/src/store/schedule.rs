//! The cluster's shared state on PostgreSQL: nodes and their heartbeats,
//! configuration versions, and the schedule — one row per slice with its
//! next due time and lease — that nodes claim with `FOR UPDATE SKIP LOCKED`,
//! so each slice runs once per interval cluster-wide.

use serde::Serialize;
use sqlx::QueryBuilder;

use super::db::with_pool;
use super::{Store, StoreError};

/// A slice as the schedule holds it.
#[derive(Debug, Clone)]
pub struct ScheduleRow {
    /// `SliceKey::id()`.
    pub slice: String,
    pub system_id: String,
    pub check_id: String,
    pub interval_ms: i64,
    /// Its next tick on its grid, for a slice new to the schedule.
    pub due_at: i64,
}

/// A due slice this node holds until `lease_until`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub slice: String,
    pub due_at: i64,
    /// How long the lease lasts from the claim, by the database's clock: a
    /// node measures it on its own monotonic clock, so node clocks that
    /// disagree never stretch a lease.
    pub lease: std::time::Duration,
}

/// A node as `checkhost status` and the API show it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeInfo {
    pub id: String,
    pub listen: String,
    pub config_version: String,
    pub started_at_ms: i64,
    pub heartbeat_at_ms: i64,
    pub stopped_at_ms: Option<i64>,
    /// Slices it holds a lease on now.
    pub leases: i64,
}

/// Rows per multi-row statement.
const CHUNK: usize = 500;

impl Store {
    /// The database's clock in Unix milliseconds, as SQL: leases, heartbeats
    /// and the order of configuration versions follow one clock, whatever
    /// the nodes' clocks say.
    pub(super) fn db_now(&self) -> &'static str {
        if self.engine() == "postgres" {
            "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)"
        } else {
            "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)"
        }
    }

    /// Records this node (again, after a restart under the same id).
    pub async fn register_node(
        &self,
        id: &str,
        listen: &str,
        config_version: &str,
    ) -> Result<(), StoreError> {
        let now = self.db_now();
        with_pool!(&self.db.write().await?, pool => {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO nodes (id, listen, config_version, started_at, heartbeat_at) VALUES ($1, $2, $3, {now}, {now})
                 ON CONFLICT (id) DO UPDATE SET listen = excluded.listen, config_version = excluded.config_version,
                     started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at, stopped_at = NULL",
            )))
            .bind(id)
            .bind(listen)
            .bind(config_version)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    pub async fn heartbeat(&self, id: &str, config_version: &str) -> Result<(), StoreError> {
        let now = self.db_now();
        with_pool!(&self.db.write().await?, pool => {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE nodes SET heartbeat_at = {now}, config_version = $1 WHERE id = $2"
            )))
                .bind(config_version)
                .bind(id)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// A clean stop: the node's leases go back at once, for others to take.
    pub async fn node_stopped(&self, id: &str) -> Result<(), StoreError> {
        let now = self.db_now();
        with_pool!(&self.db.write().await?, pool => {
            sqlx::query("UPDATE schedule SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = $1")
                .bind(id)
                .execute(pool)
                .await?;
            sqlx::query(sqlx::AssertSqlSafe(format!("UPDATE nodes SET stopped_at = {now} WHERE id = $1")))
                .bind(id)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Registers a configuration version; returns when the cluster first
    /// saw it.
    pub async fn register_config(&self, version: &str) -> Result<i64, StoreError> {
        let now = self.db_now();
        let first_seen: i64 = with_pool!(&self.db.write().await?, pool => {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO config_versions (version, first_seen) VALUES ($1, {now}) ON CONFLICT (version) DO NOTHING",
            )))
            .bind(version)
            .execute(pool)
            .await?;
            sqlx::query_scalar("SELECT first_seen FROM config_versions WHERE version = $1")
                .bind(version)
                .fetch_one(pool)
                .await?
        });
        Ok(first_seen)
    }

    /// The newest configuration version among nodes that heartbeat within
    /// the last `alive_ms` (database clock): the one that owns the schedule.
    pub async fn newest_live_config(&self, alive_ms: i64) -> Result<Option<String>, StoreError> {
        let now = self.db_now();
        let version: Option<String> = with_pool!(&self.db.read().await, pool => {
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT n.config_version FROM nodes n JOIN config_versions c ON c.version = n.config_version
                 WHERE n.heartbeat_at >= {now} - $1 AND n.stopped_at IS NULL
                 ORDER BY c.first_seen DESC, n.config_version LIMIT 1",
            )))
            .bind(alive_ms)
            .fetch_optional(pool)
            .await?
        });
        Ok(version)
    }

    /// Makes the schedule hold exactly `rows`, under `version`. A slice
    /// already there keeps its due time unless its interval changed; its
    /// lease stays with whoever holds it.
    pub async fn sync_schedule(
        &self,
        version: &str,
        rows: &[ScheduleRow],
    ) -> Result<(), StoreError> {
        with_pool!(&self.db.write().await?, pool => {
            let mut tx = super::db::WritePool::begin_write(pool).await?;
            for chunk in rows.chunks(CHUNK) {
                let mut q = QueryBuilder::new(
                    "INSERT INTO schedule (slice, system_id, check_id, config_version, interval_ms, due_at) ",
                );
                q.push_values(chunk, |mut row, r| {
                    row.push_bind(r.slice.as_str())
                        .push_bind(r.system_id.as_str())
                        .push_bind(r.check_id.as_str())
                        .push_bind(version)
                        .push_bind(r.interval_ms)
                        .push_bind(r.due_at);
                });
                q.push(
                    " ON CONFLICT (slice) DO UPDATE SET config_version = excluded.config_version,
                       due_at = CASE WHEN schedule.interval_ms = excluded.interval_ms THEN schedule.due_at
                                ELSE excluded.due_at END,
                       interval_ms = excluded.interval_ms",
                );
                q.build().execute(&mut *tx).await?;
            }
            sqlx::query("DELETE FROM schedule WHERE config_version <> $1")
                .bind(version)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// Claims up to `limit` slices of configuration `version` due by
    /// `due_by` whose lease is free, for `owner`; each lease runs until its
    /// due time (or now, if later) plus `hold_ms`. Paused assignments are
    /// skipped.
    pub async fn claim_due(
        &self,
        owner: &str,
        version: &str,
        due_by: i64,
        now_ms: i64,
        hold_ms: i64,
        limit: i64,
    ) -> Result<Vec<Claim>, StoreError> {
        let now = self.db_now();
        let rows: Vec<(String, i64, i64)> = with_pool!(&self.db.write().await?, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                // Due times are on the slices' grid (node clocks); leases are
                // on the database's clock: the wait until due (`$5` is the
                // claiming node's now) plus `hold`, from the database's now.
                // A slice claimed late (its holder died) gets its full lease.
                "UPDATE schedule SET lease_owner = $1,
                     lease_until = {now} + CASE WHEN due_at > $5 THEN due_at - $5 ELSE 0 END + $2
                 WHERE slice IN (SELECT s.slice FROM schedule s
                     WHERE s.config_version = $3 AND s.due_at <= $4
                       AND (s.lease_until IS NULL OR s.lease_until < {now})
                       AND NOT EXISTS (SELECT 1 FROM assignments a WHERE a.system_id = s.system_id
                                       AND a.check_id = s.check_id AND a.paused)
                     ORDER BY s.due_at LIMIT $6{})
                 RETURNING slice, due_at, lease_until - {now}",
                if self.engine() == "postgres" { " FOR UPDATE SKIP LOCKED" } else { "" }
            )))
            .bind(owner)
            .bind(hold_ms)
            .bind(version)
            .bind(due_by)
            .bind(now_ms)
            .bind(limit)
            .fetch_all(pool)
            .await?
        });
        Ok(rows
            .into_iter()
            .map(|(slice, due_at, lease_ms)| Claim {
                slice,
                due_at,
                lease: std::time::Duration::from_millis(lease_ms.max(0) as u64),
            })
            .collect())
    }

    /// Hands slices back with their next due times, in one statement per
    /// 500. Each is `(slice, the due time it was claimed at, next)`: a
    /// slice whose row changed since (a reload moved it, or its lease ran
    /// out and it was claimed again) is left as it is.
    pub async fn release(
        &self,
        owner: &str,
        next: &[(String, i64, i64)],
    ) -> Result<(), StoreError> {
        for chunk in next.chunks(CHUNK) {
            with_pool!(&self.db.write().await?, pool => {
                let mut q = QueryBuilder::new(
                    "UPDATE schedule SET due_at = v.column3, lease_owner = NULL, lease_until = NULL FROM (",
                );
                q.push_values(chunk, |mut row, (slice, claimed, due)| {
                    row.push_bind(slice.as_str()).push_bind(*claimed).push_bind(*due);
                });
                q.push(
                    ") AS v WHERE schedule.slice = v.column1 AND schedule.due_at = v.column2 \
                     AND schedule.lease_owner = ",
                );
                q.push_bind(owner);
                q.build().execute(pool).await?;
            });
        }
        Ok(())
    }

    /// Every node the database knows, newest heartbeat first, with the
    /// leases each holds.
    pub async fn nodes(&self) -> Result<Vec<NodeInfo>, StoreError> {
        type Row = (String, String, String, i64, i64, Option<i64>, i64);
        let rows: Vec<Row> = with_pool!(&self.db.read().await, pool => {
            sqlx::query_as(
                "SELECT n.id, n.listen, n.config_version, n.started_at, n.heartbeat_at, n.stopped_at,
                        (SELECT COUNT(*) FROM schedule s WHERE s.lease_owner = n.id)
                 FROM nodes n ORDER BY n.heartbeat_at DESC, n.id",
            )
            .fetch_all(pool)
            .await?
        });
        Ok(rows
            .into_iter()
            .map(
                |(
                    id,
                    listen,
                    config_version,
                    started_at_ms,
                    heartbeat_at_ms,
                    stopped_at_ms,
                    leases,
                )| {
                    NodeInfo {
                        id,
                        listen,
                        config_version,
                        started_at_ms,
                        heartbeat_at_ms,
                        stopped_at_ms,
                        leases,
                    }
                },
            )
            .collect())
    }
}
