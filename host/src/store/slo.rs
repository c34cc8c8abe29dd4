//! Service level objectives, as the Google SRE workbook measures them:
//! attainment and the error budget left over the objective's window, read
//! from the aggregate tiers; burn rates over 5 m, 30 m, 1 h and 6 h, read
//! from raw runs; the multi-window page condition (1 h and 5 m above 14.4,
//! or 6 h and 30 m above 6); and when the budget runs out at the last
//! hour's rate. `no-probe` runs measure nothing and count for nothing.
//! When the page condition starts or ends, the objective's notices go
//! through the outbox once (`slo_alerts` remembers the last state).

use serde::Serialize;
use sqlx::QueryBuilder;
use utoipa::ToSchema;

use super::db::{WritePool, with_pool};
use super::ids::first_id_at;
use super::read::SliceFilter;
use super::{Store, StoreError};
use crate::config::{ConfigFile, Slo};

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

/// Runs counted, and how many of them were healthy.
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
    /// Percent of runs that must be healthy.
    pub objective: f64,
    pub window_ms: i64,
    /// Runs in the window (from the hour or day buckets it overlaps).
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
        let window = self
            .tier_counts(&filter, now_ms - def.slo.window.as_millis(), now_ms + 1)
            .await?;
        let burns = self.recent_counts(&filter, now_ms).await?;
        Ok(evaluate(def, window, burns, now_ms))
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
