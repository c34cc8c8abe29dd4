//! Retention: raw runs for days, hourly aggregates (latency and marked
//! result fields) for a month (then rolled into daily rows), daily for a
//! year; transitions pruned but the newest of every entity always kept.

use std::collections::BTreeMap;

use serde::Serialize;
use sqlx::{AssertSqlSafe, QueryBuilder};

use super::db::{WritePool, with_pool};
use super::fields::{self, FieldMap};
use super::ids::first_id_at;
use super::sketch::Sketch;
use super::{DAY_MS, Store, StoreError};

#[derive(Debug, Clone, Copy)]
pub struct RetentionPolicy {
    pub raw_days: i64,
    pub hourly_days: i64,
    pub daily_days: i64,
    pub transition_days: i64,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        RetentionPolicy {
            raw_days: 7,
            hourly_days: 30,
            daily_days: 365,
            transition_days: 90,
        }
    }
}

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RetentionReport {
    pub runs_deleted: u64,
    pub hourly_rolled: u64,
    pub daily_deleted: u64,
    pub transitions_deleted: u64,
    pub notices_deleted: u64,
}

type BucketRow = (
    i64,
    i64,
    i64,
    i64,
    i64,
    i64,
    f64,
    f64,
    f64,
    f64,
    String,
    String,
);

/// A daily bucket being built from hourly rows (and the daily row already
/// stored, if any). A day's p95 is the max of its hourly p95s.
#[derive(Default)]
struct DailyRow {
    total: i64,
    healthy: i64,
    unhealthy: i64,
    latency_count: i64,
    latency_sum: f64,
    latency_min: f64,
    latency_max: f64,
    p95: f64,
    sketch: Sketch,
    fields: FieldMap,
}

impl DailyRow {
    fn fold(&mut self, row: &BucketRow) {
        let (_, _, total, healthy, unhealthy, count, sum, min, max, p95, ref sketch, ref fields) =
            *row;
        fields::merge(&mut self.fields, &fields::from_json(fields));
        self.total += total;
        self.healthy += healthy;
        self.unhealthy += unhealthy;
        // A bucket of runs without latency (their check could not be
        // prepared) has no range to fold.
        if count == 0 {
            return;
        }
        let first = self.latency_count == 0;
        self.latency_count += count;
        self.latency_sum += sum;
        self.latency_min = if first {
            min
        } else {
            self.latency_min.min(min)
        };
        self.latency_max = if first {
            max
        } else {
            self.latency_max.max(max)
        };
        self.p95 = self.p95.max(p95);
        self.sketch.merge(&Sketch::from_json(sketch));
    }
}

const BUCKET_COLUMNS: &str = "slice_id, bucket, total, healthy, unhealthy, latency_count, latency_sum, \
     latency_min, latency_max, p95, sketch, fields";

impl Store {
    pub async fn retention(
        &self,
        policy: RetentionPolicy,
        now_ms: i64,
    ) -> Result<RetentionReport, StoreError> {
        let cutoff = now_ms - policy.hourly_days * DAY_MS;
        let report = with_pool!(&self.db.write().await?, pool => {
            let mut tx = WritePool::begin_write(pool).await?;
            // Run ids start with their timestamp: no time index needed.
            let runs_deleted = sqlx::query("DELETE FROM runs WHERE id < $1")
                .bind(first_id_at(now_ms - policy.raw_days * DAY_MS))
                .execute(&mut *tx)
                .await?
                .rows_affected();

            let hourly: Vec<BucketRow> = sqlx::query_as(AssertSqlSafe(format!(
                "SELECT {BUCKET_COLUMNS} FROM aggregates_hourly WHERE bucket < $1"
            )))
            .bind(cutoff)
            .fetch_all(&mut *tx)
            .await?;
            let mut days: BTreeMap<(i64, i64), DailyRow> = BTreeMap::new();
            for row in &hourly {
                days.entry((row.0, row.1.div_euclid(DAY_MS) * DAY_MS))
                    .or_default()
                    .fold(row);
            }
            let day_keys: Vec<(i64, i64)> = days.keys().copied().collect();
            for chunk in day_keys.chunks(500) {
                let mut q = QueryBuilder::new(format!(
                    "SELECT {BUCKET_COLUMNS} FROM aggregates_daily WHERE slice_id IN ("
                ));
                let mut list = q.separated(", ");
                for (slice, _) in chunk {
                    list.push_bind(*slice);
                }
                list.push_unseparated(")");
                let stored: Vec<BucketRow> = q.build_query_as().fetch_all(&mut *tx).await?;
                for row in &stored {
                    if let Some(day) = days.get_mut(&(row.0, row.1)) {
                        day.fold(row);
                    }
                }
            }
            let rows: Vec<_> = days.iter().collect();
            for chunk in rows.chunks(500) {
                let mut q = QueryBuilder::new(format!("INSERT INTO aggregates_daily ({BUCKET_COLUMNS}) "));
                q.push_values(chunk, |mut row, ((slice, bucket), day)| {
                    row.push_bind(*slice)
                        .push_bind(*bucket)
                        .push_bind(day.total)
                        .push_bind(day.healthy)
                        .push_bind(day.unhealthy)
                        .push_bind(day.latency_count)
                        .push_bind(day.latency_sum)
                        .push_bind(day.latency_min)
                        .push_bind(day.latency_max)
                        .push_bind(day.p95)
                        .push_bind(day.sketch.to_json())
                        .push_bind(fields::to_json(&day.fields));
                });
                q.push(
                    " ON CONFLICT (slice_id, bucket) DO UPDATE SET total = excluded.total,
                        healthy = excluded.healthy, unhealthy = excluded.unhealthy,
                        latency_count = excluded.latency_count, latency_sum = excluded.latency_sum, latency_min = excluded.latency_min,
                        latency_max = excluded.latency_max, p95 = excluded.p95, sketch = excluded.sketch,
                        fields = excluded.fields",
                );
                q.build().execute(&mut *tx).await?;
            }
            let hourly_rolled = sqlx::query("DELETE FROM aggregates_hourly WHERE bucket < $1")
                .bind(cutoff)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            let daily_deleted = sqlx::query("DELETE FROM aggregates_daily WHERE bucket < $1")
                .bind(now_ms - policy.daily_days * DAY_MS)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            let transitions_deleted = sqlx::query(
                "DELETE FROM transitions WHERE created_at < $1
                 AND id NOT IN (SELECT MAX(id) FROM transitions GROUP BY entity_id)",
            )
            .bind(now_ms - policy.transition_days * DAY_MS)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            // Finished notices go with the transitions' horizon; pending
            // ones stay until delivered or given up.
            let notices_deleted = sqlx::query(
                "DELETE FROM outbox WHERE state <> 'pending' AND created_at < $1",
            )
            .bind(now_ms - policy.transition_days * DAY_MS)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            sqlx::query("DELETE FROM delivery_attempts WHERE outbox_id NOT IN (SELECT id FROM outbox)")
                .execute(&mut *tx)
                .await?;
            // Nodes silent for the raw-run horizon are gone for good; a
            // configuration version nobody runs or schedules is history.
            sqlx::query("DELETE FROM nodes WHERE heartbeat_at < $1")
                .bind(now_ms - policy.raw_days * DAY_MS)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "DELETE FROM config_versions WHERE version NOT IN (SELECT config_version FROM nodes)
                 AND version NOT IN (SELECT config_version FROM schedule)",
            )
            .execute(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM writers WHERE started_at < $1 AND id < (SELECT MAX(id) FROM writers)")
                .bind(now_ms - policy.raw_days * DAY_MS)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            RetentionReport {
                runs_deleted,
                hourly_rolled,
                daily_deleted,
                transitions_deleted,
                notices_deleted,
            }
        });
        Ok(report)
    }
}
