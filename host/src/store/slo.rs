//! Service level objectives, as the Google SRE workbook measures them:
//! attainment and the error budget left over the objective's window, read
//! from the aggregate tiers; burn rates over 5 m, 30 m, 1 h and 6 h, read
//! from raw runs; the multi-window page condition (1 h and 5 m above 14.4,
//! or 6 h and 30 m above 6); and when the budget runs out at the last
//! hour's rate. `no-probe` runs measure nothing and count for nothing.
//! When the page condition starts or ends, the objective's notices go
//! through the outbox once (`slo_alerts` remembers the last state).
//!
//! A latency objective counts time slices instead of runs: a slice is good
//! when the chosen percentile of its runs' latencies is below the bound.
//! The window's slices are its hours, read from the hourly sketches merged
//! across the objective's slices; a daily row stands for its day's hours
//! inside the window that are not kept hourly (no more than it had runs),
//! judged by the day's sketch. The burn
//! windows' slices are 5 minutes of raw runs. Slices without a measured
//! latency count for nothing.

use serde::Serialize;
use sqlx::QueryBuilder;
use utoipa::ToSchema;

use super::db::{WritePool, with_pool};
use super::ids::first_id_at;
use super::read::SliceFilter;
use super::sketch::Sketch;
use super::{HOUR_MS, Store, StoreError};
use crate::config::{ConfigFile, LatencyObjective, Slo};

/// The burn-rate windows: (name, length).
pub const BURN_WINDOWS: [(&str, i64); 4] = [
    ("5m", 5 * 60_000),
    ("30m", 30 * 60_000),
    ("1h", 3_600_000),
    ("6h", 6 * 3_600_000),
];

/// One configured objective and the runs it covers.
#[derive(Debug, Clone)]
pub struct SloDef {
    /// `shop` for a system's, `shop/payments` for an assignment's.
    pub id: String,
    pub system: String,
    pub check: Option<String>,
    pub slo: Slo,
}

impl SloDef {
    /// Every objective of a configuration, systems' first.
    pub fn all(config: &ConfigFile) -> Vec<SloDef> {
        let systems = config.systems.iter().filter_map(|s| {
            Some(SloDef {
                id: s.id.clone(),
                system: s.id.clone(),
                check: None,
                slo: s.slo.clone()?,
            })
        });
        let assignments = config.assignments.iter().filter_map(|a| {
            Some(SloDef {
                id: format!("{}/{}", a.system, a.check),
                system: a.system.clone(),
                check: Some(a.check.clone()),
                slo: a.slo.clone()?,
            })
        });
        systems.chain(assignments).collect()
    }

    fn filter(&self) -> SliceFilter {
        SliceFilter {
            system: Some(self.system.clone()),
            check: self.check.clone(),
            ..SliceFilter::default()
        }
    }
}

/// The time slice of a burn window for a latency objective.
pub const BURN_SLICE_MS: i64 = 5 * 60_000;

/// Runs counted, and how many of them were healthy (for a latency
/// objective: time slices, and how many were fast enough).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct Counts {
    pub total: i64,
    pub good: i64,
}

impl Counts {
    pub fn bad(&self) -> i64 {
        self.total - self.good
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BurnRate {
    /// `5m`, `30m`, `1h` or `6h`.
    pub window: String,
    pub total: i64,
    pub bad: i64,
    /// The share of bad runs over the share the objective allows; 1 spends
    /// the budget exactly over the window. Absent without runs.
    pub rate: Option<f64>,
}

/// An objective, evaluated.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SloReport {
    pub id: String,
    pub system: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check: Option<String>,
    /// Percent of runs (or time slices) that must be good.
    pub objective: f64,
    /// The latency bound, for a latency objective.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub latency: Option<LatencyObjective>,
    pub window_ms: i64,
    /// Runs in the window (from the hour or day buckets it overlaps), or,
    /// by latency, hours with a measured latency.
    pub total: i64,
    pub good: i64,
    /// Percent of them healthy; absent without runs.
    pub attainment: Option<f64>,
    /// Bad runs the objective allows over the window's runs.
    pub budget_allowed: f64,
    /// The share of the error budget left: 1 untouched, 0 spent, below 0
    /// overspent. Absent without runs.
    pub budget_remaining: Option<f64>,
    pub burn_rates: Vec<BurnRate>,
    /// `page` when a multi-window condition holds: the budget burns fast
    /// now and has for a while.
    pub alert: Option<String>,
    /// When the budget runs out at the last hour's burn rate (now when it
    /// has): absent while it does not burn.
    pub exhausts_at_ms: Option<i64>,
}

impl SloReport {
    /// `99.9 %`, or `99 % of hours at p95 < 800 ms` by latency.
    pub fn objective_label(&self) -> String {
        match &self.latency {
            None => format!("{} %", self.objective),
            Some(latency) => format!("{} % of hours at {latency}", self.objective),
        }
    }
}

/// The report of an objective from its counts: the window's, and each
/// burn window's (in `BURN_WINDOWS` order).
pub fn evaluate(def: &SloDef, window: Counts, burns: [Counts; 4], now_ms: i64) -> SloReport {
    // (100 − objective) / 100 keeps 99 % at exactly 0.01.
    let allowed_share = (100.0 - def.slo.objective) / 100.0;
    let window_ms = def.slo.window.as_millis();
    let budget_allowed = window.total as f64 * allowed_share;
    let budget_remaining = (window.total > 0)
        .then(|| 1.0 - window.bad() as f64 / budget_allowed.max(f64::MIN_POSITIVE));
    let burn_rates: Vec<BurnRate> = BURN_WINDOWS
        .iter()
        .zip(burns)
        .map(|((name, _), c)| BurnRate {
            window: name.to_string(),
            total: c.total,
            bad: c.bad(),
            rate: (c.total > 0).then(|| c.bad() as f64 / c.total as f64 / allowed_share),
        })
        .collect();
    let rate = |i: usize| burn_rates[i].rate.unwrap_or(0.0);
    let page = (rate(2) > 14.4 && rate(0) > 14.4) || (rate(3) > 6.0 && rate(1) > 6.0);
    let exhausts_at_ms = match budget_remaining {
        Some(left) if left <= 0.0 => Some(now_ms),
        Some(left) if rate(2) > 0.0 => Some(now_ms + (left * window_ms as f64 / rate(2)) as i64),
        _ => None,
    };
    SloReport {
        id: def.id.clone(),
        system: def.system.clone(),
        check: def.check.clone(),
        objective: def.slo.objective,
        latency: def.slo.latency,
        window_ms,
        total: window.total,
        good: window.good,
        attainment: (window.total > 0).then(|| 100.0 * window.good as f64 / window.total as f64),
        budget_allowed,
        budget_remaining,
        burn_rates,
        alert: page.then(|| "page".to_string()),
        exhausts_at_ms,
    }
}

impl Store {
    /// Records whether an objective pages at `at_ms`. When that changes
    /// (or first pages), `notices` are written to the outbox in the same
    /// transaction and `true` comes back; of several nodes evaluating the
    /// same objective, only the one whose update flips the row writes them.
    pub async fn set_slo_paging(
        &self,
        slo_id: &str,
        system: &str,
        paging: bool,
        at_ms: i64,
        notices: impl FnOnce() -> Vec<super::outbox::Notice>,
    ) -> Result<bool, StoreError> {
        let now = i32::from(paging);
        let flipped = with_pool!(&self.db.write().await?, pool => {
            let mut tx = pool.begin_write().await?;
            let before: Option<i32> =
                sqlx::query_scalar("SELECT paging FROM slo_alerts WHERE slo_id = $1")
                    .bind(slo_id)
                    .fetch_optional(&mut *tx)
                    .await?;
            let flipped = match before {
                Some(was) if was == now => false,
                // The guarded update: of two nodes flipping it at once, the
                // second finds the row changed.
                Some(was) => {
                    sqlx::query(
                        "UPDATE slo_alerts SET paging = $1, changed_at = $2
                         WHERE slo_id = $3 AND paging = $4",
                    )
                    .bind(now)
                    .bind(at_ms)
                    .bind(slo_id)
                    .bind(was)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                        == 1
                }
                // First seen: a baseline, news only when it pages.
                None => {
                    let inserted = sqlx::query(
                        "INSERT INTO slo_alerts (slo_id, paging, changed_at) VALUES ($1, $2, $3)
                         ON CONFLICT (slo_id) DO NOTHING",
                    )
                    .bind(slo_id)
                    .bind(now)
                    .bind(at_ms)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    inserted == 1 && paging
                }
            };
            if flipped {
                let notices = notices();
                let kind = if paging { "slo-page" } else { "slo-recovered" };
                let rows: Vec<super::outbox::OutboxRow> =
                    notices.into_iter().map(|n| (0, system, kind, n)).collect();
                super::outbox::insert(&mut tx, &rows, at_ms).await?;
            }
            tx.commit().await?;
            flipped
        });
        Ok(flipped)
    }

    /// An objective, evaluated at `now_ms`.
    pub async fn slo(&self, def: &SloDef, now_ms: i64) -> Result<SloReport, StoreError> {
        let filter = def.filter();
        let from_ms = now_ms - def.slo.window.as_millis();
        let (window, burns) = match &def.slo.latency {
            None => (
                self.tier_counts(&filter, from_ms, now_ms + 1).await?,
                self.recent_counts(&filter, now_ms).await?,
            ),
            Some(latency) => (
                self.tier_slices(&filter, from_ms, now_ms + 1, latency)
                    .await?,
                self.recent_slices(&filter, now_ms, latency).await?,
            ),
        };
        Ok(evaluate(def, window, burns, now_ms))
    }

    /// Hours (and days kept only as daily rows, for their hours not kept
    /// hourly) overlapping `[from, to)` with a measured latency, and how
    /// many were fast enough.
    async fn tier_slices(
        &self,
        filter: &SliceFilter,
        from_ms: i64,
        to_ms: i64,
        latency: &LatencyObjective,
    ) -> Result<Counts, StoreError> {
        let rows: Vec<(i64, i64, f64, f64, String, i32)> = with_pool!(&self.db.read().await, pool => {
            let mut q = QueryBuilder::new("");
            super::read::push_tiers(
                &mut q,
                "bucket, latency_count, latency_min, latency_max, sketch",
                ["aggregates_hourly", "aggregates_daily"],
                (from_ms, to_ms),
                filter,
            );
            q.build_query_as().fetch_all(pool).await?
        });
        // (tier, bucket) → the objective's slices merged.
        let mut buckets: std::collections::BTreeMap<(i32, i64), LatencySlice> = Default::default();
        // The hours kept hourly: a daily row holds the other hours of its day.
        let mut hours_kept: std::collections::HashSet<i64> = Default::default();
        for (bucket, count, min, max, sketch, tier) in rows {
            if tier == 0 {
                hours_kept.insert(bucket);
            }
            if count > 0 {
                buckets.entry((tier, bucket)).or_default().merge(
                    count,
                    min,
                    max,
                    &Sketch::from_json(&sketch),
                );
            }
        }
        let first_hour = from_ms - from_ms.rem_euclid(HOUR_MS);
        let mut counts = Counts::default();
        for ((tier, bucket), slice) in &buckets {
            let weight = match tier {
                0 => 1,
                // The day's hours inside the window that are not kept
                // hourly, and no more than it had runs: a day cannot have
                // more hours with runs.
                _ => ((0..24)
                    .map(|h| bucket + h * HOUR_MS)
                    .filter(|hour| *hour >= first_hour && *hour < to_ms)
                    .filter(|hour| !hours_kept.contains(hour))
                    .count() as i64)
                    .min(slice.runs),
            };
            counts.total += weight;
            if slice.fast_enough(latency) {
                counts.good += weight;
            }
        }
        Ok(counts)
    }

    /// Each burn window's 5-minute slices ending now with a measured
    /// latency, and how many were fast enough, from the raw runs.
    async fn recent_slices(
        &self,
        filter: &SliceFilter,
        now_ms: i64,
        latency: &LatencyObjective,
    ) -> Result<[Counts; 4], StoreError> {
        let longest = BURN_WINDOWS[3].1;
        let rows: Vec<(i64, Option<i64>, f64)> = with_pool!(&self.db.read().await, pool => {
            let mut q = QueryBuilder::new(
                "SELECT id, measured_at, latency_ms FROM runs
                 WHERE status <> 'degraded' AND latency_ms > 0 AND id >= ",
            );
            // Runs are stored after they are measured: the id bound keeps
            // every run measured in the window.
            q.push_bind(first_id_at(now_ms - longest));
            filter.push(&mut q, "slice_id");
            q.build_query_as().fetch_all(pool).await?
        });
        let slices = (longest / BURN_SLICE_MS) as usize;
        let mut latencies: Vec<Vec<f64>> = vec![Vec::new(); slices];
        for (id, measured_at, ms) in rows {
            let at = measured_at.unwrap_or_else(|| super::ids::created_at(id));
            let age = (now_ms - at).max(0);
            if age < longest {
                latencies[(age / BURN_SLICE_MS) as usize].push(ms);
            }
        }
        let judged: Vec<Option<bool>> = latencies
            .iter_mut()
            .map(|runs| {
                exact_quantile(runs, latency.percentile / 100.0).map(|q| q < latency.below_ms)
            })
            .collect();
        let mut out = [Counts::default(); 4];
        for (counts, (_, length)) in out.iter_mut().zip(BURN_WINDOWS) {
            let within = (length / BURN_SLICE_MS) as usize;
            for good in judged[..within].iter().flatten() {
                counts.total += 1;
                counts.good += i64::from(*good);
            }
        }
        Ok(out)
    }

    /// Runs and healthy runs in the hour and day buckets that overlap
    /// `[from, to)`.
    async fn tier_counts(
        &self,
        filter: &SliceFilter,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Counts, StoreError> {
        let rows: Vec<(i64, i64, i32)> = with_pool!(&self.db.read().await, pool => {
            let mut q = QueryBuilder::new("");
            super::read::push_tiers(
                &mut q,
                "total, healthy",
                ["aggregates_hourly", "aggregates_daily"],
                (from_ms, to_ms),
                filter,
            );
            q.build_query_as().fetch_all(pool).await?
        });
        Ok(rows
            .into_iter()
            .fold(Counts::default(), |c, (total, healthy, _)| Counts {
                total: c.total + total,
                good: c.good + healthy,
            }))
    }

    /// Runs and healthy runs over each burn window ending now, from the
    /// raw runs in one pass, each at the time it was measured.
    async fn recent_counts(
        &self,
        filter: &SliceFilter,
        now_ms: i64,
    ) -> Result<[Counts; 4], StoreError> {
        type Row = (i64, i64, i64, i64, i64, i64, i64, i64);
        let row: Row = with_pool!(&self.db.read().await, pool => {
            let mut q = QueryBuilder::new("SELECT ");
            for (i, (_, length)) in BURN_WINDOWS.iter().enumerate() {
                if i > 0 {
                    q.push(", ");
                }
                // A probe's run counts when it was measured, not when a
                // reconnecting probe delivered it.
                let since = now_ms - length;
                for healthy in [false, true] {
                    if healthy {
                        q.push(", ");
                    }
                    q.push("COALESCE(SUM(CASE WHEN (measured_at >= ")
                        .push_bind(since)
                        .push(" OR (measured_at IS NULL AND id >= ")
                        .push_bind(first_id_at(since))
                        .push("))");
                    if healthy {
                        q.push(" AND status = 'healthy'");
                    }
                    q.push(" THEN 1 ELSE 0 END), 0)");
                }
            }
            q.push(" FROM runs WHERE status <> 'degraded' AND id >= ")
                .push_bind(first_id_at(now_ms - BURN_WINDOWS[3].1));
            filter.push(&mut q, "slice_id");
            q.build_query_as().fetch_one(pool).await?
        });
        let (a, b, c, d, e, f, g, h) = row;
        Ok([
            Counts { total: a, good: b },
            Counts { total: c, good: d },
            Counts { total: e, good: f },
            Counts { total: g, good: h },
        ])
    }
}

/// The latencies of one time slice across the objective's slices.
#[derive(Debug, Default)]
struct LatencySlice {
    sketch: Sketch,
    min: f64,
    max: f64,
    /// Runs with a latency.
    runs: i64,
}

impl LatencySlice {
    fn merge(&mut self, runs: i64, min: f64, max: f64, sketch: &Sketch) {
        self.runs += runs;
        if self.sketch.count() == 0 {
            (self.min, self.max) = (min, max);
        } else {
            self.min = self.min.min(min);
            self.max = self.max.max(max);
        }
        self.sketch.merge(sketch);
    }

    /// The sketch's estimate, clamped to the slice's own range as the
    /// buckets' p95 is.
    fn fast_enough(&self, latency: &LatencyObjective) -> bool {
        let q = self
            .sketch
            .quantile(latency.percentile / 100.0)
            .clamp(self.min, self.max);
        q < latency.below_ms
    }
}

/// The `q` quantile of `values` by the sketch's rank rule (the ⌈q·n⌉-th
/// smallest), or `None` when there are none.
fn exact_quantile(values: &mut [f64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
    Some(values[rank - 1])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TimeSpan;

    fn def(objective: f64) -> SloDef {
        SloDef {
            id: "shop".into(),
            system: "shop".into(),
            check: None,
            slo: Slo {
                objective,
                window: TimeSpan::from_secs(30 * 24 * 3600),
                latency: None,
            },
        }
    }

    #[test]
    fn budget_burn_and_exhaustion_follow_the_workbook() {
        // 99 % over 10,000 runs allows 100 bad; 40 spent leaves 60 %.
        let window = Counts {
            total: 10_000,
            good: 9_960,
        };
        // Last hour: 20 of 100 bad = 20 %, a burn rate of 20; 5 m: 3 of 10.
        let burns = [
            Counts { total: 10, good: 7 },
            Counts {
                total: 50,
                good: 45,
            },
            Counts {
                total: 100,
                good: 80,
            },
            Counts {
                total: 600,
                good: 590,
            },
        ];
        let r = evaluate(&def(99.0), window, burns, 1_000);
        assert!((r.attainment.unwrap() - 99.6).abs() < 1e-9);
        assert!((r.budget_allowed - 100.0).abs() < 1e-9);
        assert!((r.budget_remaining.unwrap() - 0.6).abs() < 1e-9);
        let rates: Vec<f64> = r.burn_rates.iter().map(|b| b.rate.unwrap()).collect();
        for (got, want) in rates.iter().zip([30.0, 10.0, 20.0, 10.0 / 6.0]) {
            assert!((got - want).abs() < 1e-9, "{rates:?}");
        }
        assert_eq!(
            r.alert.as_deref(),
            Some("page"),
            "1 h and 5 m both above 14.4"
        );
        // 60 % of a 30-day budget at 20 budgets per window: 0.9 days.
        let expected = 1_000 + (0.6 * 30.0 * 86_400_000.0 / 20.0) as i64;
        assert_eq!(r.exhausts_at_ms, Some(expected));
    }

    #[test]
    fn a_slice_quantile_is_the_rank_rule_of_the_sketch() {
        let mut runs = vec![900.0, 100.0, 300.0, 200.0];
        // p50 of four: the 2nd smallest; p95: the 4th.
        assert_eq!(exact_quantile(&mut runs, 0.5), Some(200.0));
        assert_eq!(exact_quantile(&mut runs, 0.95), Some(900.0));
        assert_eq!(exact_quantile(&mut [], 0.95), None);
    }

    #[test]
    fn no_runs_no_figures_and_a_spent_budget_is_exhausted_now() {
        let r = evaluate(&def(99.9), Counts::default(), [Counts::default(); 4], 5);
        assert_eq!(
            (r.attainment, r.budget_remaining, r.exhausts_at_ms),
            (None, None, None)
        );
        assert!(r.burn_rates.iter().all(|b| b.rate.is_none()));
        let spent = evaluate(
            &def(99.0),
            Counts {
                total: 100,
                good: 97,
            },
            [Counts::default(); 4],
            5,
        );
        assert!(spent.budget_remaining.unwrap() < 0.0);
        assert_eq!(spent.exhausts_at_ms, Some(5));
        assert_eq!(spent.alert, None);
    }
}
