//! `GET /api/v1/runs`, `/history` and `/transitions`: stored runs and
//! transitions newest first with keyset pagination, and history merged
//! across the aggregate tiers.

use std::collections::BTreeSet;

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::ApiState;
use super::error::{ApiError, ErrorBody, Params, cursor_param, limit_param, time_param};
use crate::clock::now_ms;
use crate::pipeline::plugins::PluginSet;
use crate::runtime::result_fields::ResultField;
use crate::store::read::{Bucket, HistoryPoint, RunQuery, RunRecord, SliceFilter, TransitionQuery};
use crate::store::state::Status;
use crate::store::{DAY_MS, TransitionEvent};

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Healthy,
    Unhealthy,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RunParams {
    /// System id.
    system: Option<String>,
    /// Check id.
    check: Option<String>,
    /// Environment id, or `none` for runs without environment.
    environment: Option<String>,
    /// Probe location id, or `none` for the server's own runs.
    location: Option<String>,
    status: Option<RunStatus>,
    /// From this time on (Unix ms or RFC 3339).
    from: Option<String>,
    /// Before this time (Unix ms or RFC 3339).
    to: Option<String>,
    /// Items per page, 1–1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
    /// `nextCursor` of the previous page.
    cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunPage {
    pub items: Vec<RunRecord>,
    /// Pass as `cursor` for the next (older) page; absent on the last.
    pub next_cursor: Option<String>,
}

fn slices(
    system: Option<String>,
    check: Option<String>,
    environment: Option<String>,
    location: Option<String>,
) -> SliceFilter {
    // `none` picks the slices without one, which the filter spells "".
    let none_as_empty = |v: String| if v == "none" { String::new() } else { v };
    SliceFilter {
        system,
        check,
        environment: environment.map(none_as_empty),
        location: location.map(none_as_empty),
    }
}

/// Keeps `limit` items and says where the next page starts.
pub(super) fn page<T>(
    mut items: Vec<T>,
    limit: i64,
    id: impl Fn(&T) -> i64,
) -> (Vec<T>, Option<String>) {
    let more = items.len() as i64 > limit;
    items.truncate(limit as usize);
    let next = more
        .then(|| items.last().map(|i| id(i).to_string()))
        .flatten();
    (items, next)
}

#[utoipa::path(
    get, path = "/api/v1/runs", operation_id = "listRuns", tag = "runs",
    params(RunParams),
    responses(
        (status = 200, description = "Runs, newest first", body = RunPage),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    )
)]
pub async fn list(
    State(state): State<ApiState>,
    Params(p): Params<RunParams>,
) -> Result<Json<RunPage>, ApiError> {
    let limit = limit_param(p.limit)?;
    let query = RunQuery {
        slices: slices(p.system, p.check, p.environment, p.location),
        status: p.status.map(|s| match s {
            RunStatus::Healthy => Status::Healthy,
            RunStatus::Unhealthy => Status::Unhealthy,
        }),
        from_ms: time_param("from", p.from.as_deref())?,
        to_ms: time_param("to", p.to.as_deref())?,
        before: cursor_param(p.cursor.as_deref())?,
        limit: limit + 1,
    };
    let masker = state.live.generation().masker.clone();
    let mut runs = state.store.runs(&query).await?;
    for run in &mut runs {
        masker.json(&mut run.result);
        run.run.error = run.run.error.take().map(|e| masker.text(&e));
    }
    let (items, next_cursor) = page(runs, limit, |r| r.run.id);
    Ok(Json(RunPage { items, next_cursor }))
}

#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum BucketParam {
    #[default]
    Hour,
    Day,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct HistoryParams {
    system: Option<String>,
    check: Option<String>,
    /// Environment id, or `none` for runs without environment.
    environment: Option<String>,
    /// Probe location id, or `none` for the server's own runs.
    location: Option<String>,
    /// Default: 24 hours (hour buckets) or 30 days (day buckets) before `to`.
    from: Option<String>,
    /// Default: now.
    to: Option<String>,
    bucket: Option<BucketParam>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct History {
    pub from_ms: i64,
    pub to_ms: i64,
    /// `hour` or `day`.
    pub bucket: String,
    pub points: Vec<HistoryPoint>,
    /// What the points' `fields` are, as the loaded plugins mark them:
    /// how to aggregate and chart each, and its unit.
    pub fields: Vec<HistoryField>,
}

/// A marked result field found in the history.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HistoryField {
    /// The points' key: `<collector>.<field>`.
    pub key: String,
    /// The collector's plugin id; `<id>#2` for its second use in a check.
    pub collector: String,
    #[serde(flatten)]
    pub field: ResultField,
}

/// The marks of every field in `points`; a field whose plugin is no longer
/// loaded keeps its values but has no marks to list.
pub fn history_fields(plugins: &PluginSet, points: &[HistoryPoint]) -> Vec<HistoryField> {
    let keys: BTreeSet<&String> = points.iter().flat_map(|p| p.fields.keys()).collect();
    keys.into_iter()
        .filter_map(|key| {
            // Plugin ids and field names may both hold dots: the split is
            // the one a loaded plugin answers to.
            key.match_indices('.').find_map(|(at, _)| {
                let (collector, name) = (&key[..at], &key[at + 1..]);
                Some(HistoryField {
                    key: key.clone(),
                    collector: collector.to_string(),
                    field: plugins.result_field(collector, name)?.clone(),
                })
            })
        })
        .collect()
}

#[utoipa::path(
    get, path = "/api/v1/history", operation_id = "getHistory", tag = "runs",
    params(HistoryParams),
    responses(
        (status = 200, description = "Aggregated history across the hourly and daily tiers", body = History),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    )
)]
pub async fn history(
    State(state): State<ApiState>,
    Params(p): Params<HistoryParams>,
) -> Result<Json<History>, ApiError> {
    let bucket = match p.bucket.unwrap_or_default() {
        BucketParam::Hour => Bucket::Hour,
        BucketParam::Day => Bucket::Day,
    };
    let to_ms = time_param("to", p.to.as_deref())?.unwrap_or_else(now_ms);
    let span = if bucket == Bucket::Hour {
        DAY_MS
    } else {
        30 * DAY_MS
    };
    let from_ms = time_param("from", p.from.as_deref())?.unwrap_or(to_ms.saturating_sub(span));
    if from_ms > to_ms {
        return Err(ApiError::bad_request("from", "`from` is after `to`"));
    }
    let filter = slices(p.system, p.check, p.environment, p.location);
    let points = state.store.history(&filter, from_ms, to_ms, bucket).await?;
    let fields = history_fields(&state.live.generation().setup.plugins, &points);
    Ok(Json(History {
        from_ms,
        to_ms,
        bucket: if bucket == Bucket::Hour {
            "hour"
        } else {
            "day"
        }
        .into(),
        points,
        fields,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TransitionParams {
    /// `<system>` or `<system>::<environment>`.
    entity: Option<String>,
    from: Option<String>,
    to: Option<String>,
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
    cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TransitionPage {
    pub items: Vec<TransitionEvent>,
    pub next_cursor: Option<String>,
}

#[utoipa::path(
    get, path = "/api/v1/transitions", operation_id = "listTransitions", tag = "runs",
    params(TransitionParams),
    responses(
        (status = 200, description = "Status transitions, newest first", body = TransitionPage),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    )
)]
pub async fn transitions(
    State(state): State<ApiState>,
    Params(p): Params<TransitionParams>,
) -> Result<Json<TransitionPage>, ApiError> {
    let limit = limit_param(p.limit)?;
    let query = TransitionQuery {
        entity: p.entity,
        from_ms: time_param("from", p.from.as_deref())?,
        to_ms: time_param("to", p.to.as_deref())?,
        before: cursor_param(p.cursor.as_deref())?,
        limit: limit + 1,
    };
    let found = state.store.transitions(&query).await?;
    let (items, next_cursor) = page(found, limit, |t| t.id.unwrap_or_default());
    Ok(Json(TransitionPage { items, next_cursor }))
}
