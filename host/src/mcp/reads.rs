//! The store's reads shaped for an assistant: few fields, short pages with
//! a cursor, results cut to a size a model reads. Runs are masked before
//! they are stored, so nothing here can show a secret.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::clock::now_ms;
use crate::runtime::text::bounded;
use crate::store::read::{Bucket, RunQuery, SliceFilter, TransitionQuery};
use crate::store::state::Status;
use crate::store::{Store, StoreError};

/// Runs and transitions in one page, at most.
const MAX_PAGE: u32 = 50;
/// A run's result as shown: its first bytes.
const RESULT_BYTES: usize = 2048;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StatusArgs {
    /// One system (with its environments and checks); absent: every system.
    #[serde(default)]
    pub system: Option<String>,
    /// Entities in a page, by id (default 100, at most 500).
    #[serde(default)]
    pub limit: Option<u32>,
    /// The `next` of the previous page.
    #[serde(default)]
    pub after: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatusView {
    /// `system`, `system::environment`, `system::environment@location`.
    pub entities: Vec<EntityView>,
    /// Pass as `after` for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    /// The system's slices with their newest run, when a system was asked.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<SliceStatus>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EntityView {
    pub entity: String,
    /// healthy, degraded, unhealthy, paused or unknown.
    pub status: String,
    pub since_ms: i64,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SliceStatus {
    pub check: String,
    pub environment: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_run: Option<RunView>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunView {
    pub id: i64,
    pub system: String,
    pub check: String,
    pub environment: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    pub status: String,
    pub latency_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub at_ms: i64,
    /// The collectors' results and assertions, cut to 2 KiB of JSON.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
}

fn run_view(record: crate::store::read::RunRecord, with_result: bool) -> RunView {
    let run = record.run;
    RunView {
        id: run.id,
        system: run.system_id,
        check: run.check_id,
        environment: run.environment_id,
        location: run.location_id,
        status: run.status.to_string(),
        latency_ms: (run.latency_ms * 10.0).round() / 10.0,
        error: run.error.map(|e| bounded(e, 512)),
        at_ms: run.at_ms,
        result: with_result.then(|| bounded(record.result.to_string(), RESULT_BYTES)),
    }
}

pub async fn status(store: &Store, args: &StatusArgs) -> Result<StatusView, StoreError> {
    let limit = args.limit.unwrap_or(100).clamp(1, 500) as usize;
    let mut entities: Vec<EntityView> = store
        .statuses()
        .await?
        .into_iter()
        .filter(|e| {
            args.system.as_ref().is_none_or(|s| {
                e.entity_id == *s
                    || e.entity_id.starts_with(&format!("{s}::"))
                    || e.entity_id.starts_with(&format!("{s}@"))
            })
        })
        .filter(|e| args.after.as_ref().is_none_or(|after| e.entity_id > *after))
        .map(|e| EntityView {
            entity: e.entity_id,
            status: e.status.to_string(),
            since_ms: e.updated_at_ms,
        })
        .collect();
    entities.sort_by(|a, b| a.entity.cmp(&b.entity));
    let next = (entities.len() > limit).then(|| entities[limit - 1].entity.clone());
    entities.truncate(limit);
    let checks = match &args.system {
        Some(system) => store
            .system_slices(system)
            .await?
            .into_iter()
            .map(|s| SliceStatus {
                check: s.check_id,
                environment: s.environment_id,
                location: s.location_id,
                status: s.status.to_string(),
                last_run: s.last_run.map(|r| run_view(r, false)),
            })
            .collect(),
        None => Vec::new(),
    };
    Ok(StatusView {
        entities,
        next,
        checks,
    })
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RunsArgs {
    #[serde(default)]
    pub system: Option<String>,
    #[serde(default)]
    pub check: Option<String>,
    /// An environment; `""`: runs without one.
    #[serde(default)]
    pub environment: Option<String>,
    /// Only `healthy` or only `unhealthy` runs.
    #[serde(default)]
    pub status: Option<RunStatus>,
    /// Runs in a page, newest first (default 10, at most 50).
    #[serde(default)]
    pub limit: Option<u32>,
    /// The `next` of the previous page.
    #[serde(default)]
    pub before: Option<i64>,
    /// Include each run's result (cut to 2 KiB).
    #[serde(default)]
    pub with_results: bool,
}

#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Healthy,
    Unhealthy,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunsPage {
    pub runs: Vec<RunView>,
    /// Pass as `before` for the next, older page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<i64>,
}

fn page_limit(limit: Option<u32>, default: u32) -> i64 {
    i64::from(limit.unwrap_or(default).clamp(1, MAX_PAGE))
}

pub async fn runs(store: &Store, args: &RunsArgs) -> Result<RunsPage, StoreError> {
    let limit = page_limit(args.limit, 10);
    let records = store
        .runs(&RunQuery {
            slices: SliceFilter {
                system: args.system.clone(),
                check: args.check.clone(),
                environment: args.environment.clone(),
                location: None,
            },
            status: args.status.map(|s| match s {
                RunStatus::Healthy => Status::Healthy,
                RunStatus::Unhealthy => Status::Unhealthy,
            }),
            before: args.before,
            limit,
            ..RunQuery::default()
        })
        .await?;
    let next = (records.len() as i64 == limit)
        .then(|| records.last().map(|r| r.run.id))
        .flatten();
    Ok(RunsPage {
        runs: records
            .into_iter()
            .map(|r| run_view(r, args.with_results))
            .collect(),
        next,
    })
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TransitionsArgs {
    /// `shop`, `shop::production`, …; absent: every entity.
    #[serde(default)]
    pub entity: Option<String>,
    /// Transitions in a page, newest first (default 20, at most 50).
    #[serde(default)]
    pub limit: Option<u32>,
    /// The `next` of the previous page.
    #[serde(default)]
    pub before: Option<i64>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TransitionView {
    pub id: i64,
    pub entity: String,
    pub from: String,
    pub to: String,
    pub check: String,
    pub environment: Option<String>,
    pub at_ms: i64,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TransitionsPage {
    pub transitions: Vec<TransitionView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<i64>,
}

pub async fn transitions(
    store: &Store,
    args: &TransitionsArgs,
) -> Result<TransitionsPage, StoreError> {
    let limit = page_limit(args.limit, 20);
    let found = store
        .transitions(&TransitionQuery {
            entity: args.entity.clone(),
            before: args.before,
            limit,
            ..TransitionQuery::default()
        })
        .await?;
    let transitions: Vec<TransitionView> = found
        .into_iter()
        .map(|t| TransitionView {
            id: t.id.unwrap_or_default(),
            entity: t.entity_id,
            from: t.from.to_string(),
            to: t.to.to_string(),
            check: t.check_id,
            environment: t.environment_id,
            at_ms: t.at_ms,
        })
        .collect();
    let next = (transitions.len() as i64 == limit)
        .then(|| transitions.last().map(|t| t.id))
        .flatten();
    Ok(TransitionsPage { transitions, next })
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HistoryArgs {
    pub system: String,
    #[serde(default)]
    pub check: Option<String>,
    #[serde(default)]
    pub environment: Option<String>,
    /// How far back, in hours (default 24, at most 2160 = 90 days); past
    /// 72 hours the buckets are days.
    #[serde(default)]
    pub hours: Option<u32>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HistoryView {
    /// `hour` or `day`.
    pub bucket: String,
    pub points: Vec<HistoryPointView>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HistoryPointView {
    pub start_ms: i64,
    pub runs: i64,
    pub unhealthy: i64,
    /// Healthy runs / runs, 0–1.
    pub uptime: f64,
    pub latency_avg_ms: f64,
    pub latency_p95_ms: f64,
}

pub async fn history(store: &Store, args: &HistoryArgs) -> Result<HistoryView, StoreError> {
    let hours = i64::from(args.hours.unwrap_or(24).clamp(1, 2160));
    let bucket = if hours > 72 {
        Bucket::Day
    } else {
        Bucket::Hour
    };
    let to = now_ms();
    let points = store
        .history(
            &SliceFilter {
                system: Some(args.system.clone()),
                check: args.check.clone(),
                environment: args.environment.clone(),
                location: None,
            },
            to - hours * 3_600_000,
            to,
            bucket,
        )
        .await?;
    let round = |v: f64| (v * 10.0).round() / 10.0;
    Ok(HistoryView {
        bucket: match bucket {
            Bucket::Hour => "hour",
            Bucket::Day => "day",
        }
        .into(),
        points: points
            .into_iter()
            .map(|p| HistoryPointView {
                start_ms: p.start_ms,
                runs: p.total,
                unhealthy: p.unhealthy,
                uptime: (p.uptime * 10_000.0).round() / 10_000.0,
                latency_avg_ms: round(p.latency_avg_ms),
                latency_p95_ms: round(p.latency_p95_ms),
            })
            .collect(),
    })
}
