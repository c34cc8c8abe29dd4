//! `POST /api/v1/assignments/{system}/{check}/run|pause|resume`: run an
//! assignment now, or pause and resume it at once and across restarts.

use axum::Json;
use axum::extract::{Path, State};
use serde::Serialize;
use utoipa::ToSchema;

use super::ApiState;
use super::error::{ApiError, ErrorBody, Params};
use super::systems::NoParams;
use crate::clock::now_ms;
use crate::config::Assignment;
use crate::store::TransitionEvent;
use crate::store::state::Status;

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunNowResult {
    pub run_id: i64,
    pub environment_id: Option<String>,
    /// `healthy` or `unhealthy`.
    pub status: Status,
    pub latency_ms: f64,
    pub error: Option<String>,
    pub failed_assertions: Vec<String>,
    pub transitions: Vec<TransitionEvent>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunNow {
    pub system: String,
    pub check: String,
    pub runs: Vec<RunNowResult>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PauseState {
    pub system: String,
    pub check: String,
    pub paused: bool,
    /// What the pause or resume changed: a paused slice counts for nothing,
    /// so the system and its environments are re-derived at once.
    pub transitions: Vec<TransitionEvent>,
}

fn assignment<'a>(
    assignments: &'a [Assignment],
    system: &str,
    check: &str,
) -> Result<&'a Assignment, ApiError> {
    assignments
        .iter()
        .find(|a| a.system == system && a.check == check)
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "system `{system}` has no assignment of check `{check}`"
            ))
        })
}

#[utoipa::path(
    post, path = "/api/v1/assignments/{system}/{check}/run", operation_id = "runAssignmentNow", tag = "actions",
    params(("system" = String, Path), ("check" = String, Path), NoParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The runs, one per environment, stored like scheduled ones", body = RunNow),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 413, body = ErrorBody),
    )
)]
pub async fn run_now(
    State(state): State<ApiState>,
    Path((system, check)): Path<(String, String)>,
    Params(NoParams {}): Params<NoParams>,
) -> Result<Json<RunNow>, ApiError> {
    run_assignment(&state, system, check).await.map(Json)
}

/// Runs every slice of an assignment now, stored like scheduled runs.
pub async fn run_assignment(
    state: &ApiState,
    system: String,
    check: String,
) -> Result<RunNow, ApiError> {
    let generation = state.live.generation();
    assignment(&generation.setup.config.file.assignments, &system, &check)?;
    let keys = generation.slices_of(&system, &check);
    let outcomes = futures::future::join_all(
        keys.iter()
            .map(|key| generation.run(key, &state.runtime, &state.store, None)),
    )
    .await;
    let mut runs = Vec::new();
    for (key, outcome) in keys.iter().zip(outcomes) {
        let Some(outcome) = outcome else {
            continue;
        };
        let report = outcome?;
        // A run on demand costs like a scheduled one, and counts alike.
        state
            .metrics
            .observe_run(&key.check, generation.strategy_of(key), &report);
        runs.push(RunNowResult {
            run_id: report.run_id,
            status: if report.healthy {
                Status::Healthy
            } else {
                Status::Unhealthy
            },
            latency_ms: report.latency_ms,
            error: report.error.as_deref().map(|e| generation.masker.text(e)),
            failed_assertions: report.failed_assertions(),
            environment_id: report.environment,
            transitions: report.transitions,
        });
    }
    Ok(RunNow {
        system,
        check,
        runs,
    })
}

/// Pauses or resumes an assignment at once and across restarts.
pub async fn set_paused(
    state: &ApiState,
    system: String,
    check: String,
    paused: bool,
) -> Result<PauseState, ApiError> {
    let generation = state.live.generation();
    assignment(&generation.setup.config.file.assignments, &system, &check)?;
    let transitions = state
        .store
        .set_paused(&system, &check, paused, now_ms())
        .await?;
    state.live.set_paused(&system, &check, paused);
    tracing::info!(%system, %check, paused, "assignment paused or resumed through the API");
    Ok(PauseState {
        system,
        check,
        paused,
        transitions,
    })
}

#[utoipa::path(
    post, path = "/api/v1/assignments/{system}/{check}/pause", operation_id = "pauseAssignment", tag = "actions",
    params(("system" = String, Path), ("check" = String, Path), NoParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Paused from now on, until resumed (also across restarts)", body = PauseState),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 413, body = ErrorBody),
    )
)]
pub async fn pause(
    State(state): State<ApiState>,
    Path((system, check)): Path<(String, String)>,
    Params(NoParams {}): Params<NoParams>,
) -> Result<Json<PauseState>, ApiError> {
    set_paused(&state, system, check, true).await.map(Json)
}

#[utoipa::path(
    post, path = "/api/v1/assignments/{system}/{check}/resume", operation_id = "resumeAssignment", tag = "actions",
    params(("system" = String, Path), ("check" = String, Path), NoParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Running again from the next tick on", body = PauseState),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 413, body = ErrorBody),
    )
)]
pub async fn resume(
    State(state): State<ApiState>,
    Path((system, check)): Path<(String, String)>,
    Params(NoParams {}): Params<NoParams>,
) -> Result<Json<PauseState>, ApiError> {
    set_paused(&state, system, check, false).await.map(Json)
}
