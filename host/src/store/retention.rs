//! Retention: raw runs for days, hourly aggregates for a month (then rolled
//! into daily rows), daily for a year; transitions pruned but the newest of
//! every entity always kept.

use std::collections::BTreeMap;

use serde::Serialize;
use sqlx::Row;

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
}

#[derive(Default)]
struct DailyRow {
    environment_id: Option<String>,
    total: i64,
    healthy: i64,
    unhealthy: i64,
    latency_sum: f64,
    latency_min: f64,
    latency_max: f64,
    p95: f64,
    sketch: Sketch,
}

impl Store {
    pub async fn retention(
        &self,
        policy: RetentionPolicy,
        now_ms: i64,
    ) -> Result<RetentionReport, StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let runs_deleted = sqlx::query("DELETE FROM runs WHERE created_at < ?")
            .bind(now_ms - policy.raw_days * DAY_MS)
            .execute(&mut *tx)
            .await?
            .rows_affected();

        let cutoff = now_ms - policy.hourly_days * DAY_MS;
        let hourly = sqlx::query(
            "SELECT check_id, system_id, environment_id, env_key, bucket, total, healthy, unhealthy,
                    latency_sum, latency_min, latency_max, p95, sketch
             FROM aggregates_hourly WHERE bucket < ?",
        )
        .bind(cutoff)
        .fetch_all(&mut *tx)
        .await?;
        let mut days: BTreeMap<(String, String, String, i64), DailyRow> = BTreeMap::new();
        for r in &hourly {
            let bucket: i64 = r.get("bucket");
            let key = (
                r.get("check_id"),
                r.get("system_id"),
                r.get("env_key"),
                bucket.div_euclid(DAY_MS) * DAY_MS,
            );
            let first = !days.contains_key(&key);
            let day = days.entry(key).or_default();
            day.environment_id = r.get("environment_id");
            day.total += r.get::<i64, _>("total");
            day.healthy += r.get::<i64, _>("healthy");
            day.unhealthy += r.get::<i64, _>("unhealthy");
            day.latency_sum += r.get::<f64, _>("latency_sum");
            let (min, max): (f64, f64) = (r.get("latency_min"), r.get("latency_max"));
            day.latency_min = if first { min } else { day.latency_min.min(min) };
            day.latency_max = day.latency_max.max(max);
            // p95 of a day is the max of its hourly p95s.
            day.p95 = day.p95.max(r.get::<f64, _>("p95"));
            day.sketch
                .merge(&Sketch::from_json(r.get::<String, _>("sketch").as_str()));
        }
        for ((check, system, env_key, bucket), day) in &days {
            sqlx::query(
                "INSERT INTO aggregates_daily (check_id, system_id, environment_id, env_key, bucket, total, healthy,
                    unhealthy, latency_sum, latency_min, latency_max, p95, sketch)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                 ON CONFLICT (check_id, system_id, env_key, bucket) DO UPDATE SET
                    total = total + excluded.total, healthy = healthy + excluded.healthy,
                    unhealthy = unhealthy + excluded.unhealthy, latency_sum = latency_sum + excluded.latency_sum,
                    latency_min = MIN(latency_min, excluded.latency_min),
                    latency_max = MAX(latency_max, excluded.latency_max),
                    p95 = MAX(p95, excluded.p95), sketch = excluded.sketch",
            )
            .bind(check)
            .bind(system)
            .bind(&day.environment_id)
            .bind(env_key)
            .bind(bucket)
            .bind(day.total)
            .bind(day.healthy)
            .bind(day.unhealthy)
            .bind(day.latency_sum)
            .bind(day.latency_min)
            .bind(day.latency_max)
            .bind(day.p95)
            .bind(day.sketch.to_json())
            .execute(&mut *tx)
            .await?;
        }
        let hourly_rolled = sqlx::query("DELETE FROM aggregates_hourly WHERE bucket < ?")
            .bind(cutoff)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let daily_deleted = sqlx::query("DELETE FROM aggregates_daily WHERE bucket < ?")
            .bind(now_ms - policy.daily_days * DAY_MS)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let transitions_deleted = sqlx::query(
            "DELETE FROM transitions WHERE created_at < ?
             AND id NOT IN (SELECT MAX(id) FROM transitions GROUP BY entity_id)",
        )
        .bind(now_ms - policy.transition_days * DAY_MS)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(RetentionReport {
            runs_deleted,
            hourly_rolled,
            daily_deleted,
            transitions_deleted,
        })
    }
}
