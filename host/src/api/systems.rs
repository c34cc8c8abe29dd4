//! `GET /api/v1/systems` and `GET /api/v1/systems/{id}`: statuses from one
//! read of the entity states, whatever the number of systems.

use std::collections::{BTreeMap, HashMap};

use axum::Json;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::ApiState;
use super::error::{ApiError, ErrorBody, Params};
use crate::config::{ConfigFile, System};
use crate::store::entity::EntityId;
use crate::store::read::RunRecord;
use crate::store::state::Status;
use crate::store::{EntityStatus, entity_ids};

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentStatus {
    pub id: String,
    pub name: String,
    pub status: Status,
    /// When the status last changed; absent while never measured.
    pub since_ms: Option<i64>,
    /// Of the checks that count in this environment, how many are healthy
    /// ("2 of 3 checks"); absent while never measured.
    pub healthy_checks: Option<u32>,
    pub total_checks: Option<u32>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SystemSummary {
    pub id: String,
    pub name: String,
    /// Worst over the system's environments and environment-less checks.
    pub status: Status,
    pub since_ms: Option<i64>,
    /// Of the checks that count in the system (enabled, measured), how many
    /// are healthy, each judged worst-wins over its environments.
    pub healthy_checks: Option<u32>,
    pub total_checks: Option<u32>,
    pub metadata: BTreeMap<String, String>,
    pub environments: Vec<EnvironmentStatus>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SliceStatus {
    /// Absent for a check that runs without environment.
    pub environment_id: Option<String>,
    /// The probe location that runs it; absent when this server does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location_id: Option<String>,
    pub status: Status,
    /// Whether the slice changed status at least the assignment's
    /// `flapping.changes` times within its window, up to now: its notices
    /// are held back. Always false without `flapping:`.
    pub flapping: bool,
    pub last_run: Option<RunRecord>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CheckStatus {
    pub id: String,
    pub name: String,
    pub interval: String,
    pub strategy: String,
    pub collectors: Vec<String>,
    pub paused: bool,
    pub slices: Vec<SliceStatus>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SystemDetail {
    #[serde(flatten)]
    pub summary: SystemSummary,
    pub checks: Vec<CheckStatus>,
}

/// No query parameters; any given is refused.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct NoParams {}

type States = HashMap<String, EntityStatus>;

pub fn summary(config: &ConfigFile, system: &System, states: &States) -> SystemSummary {
    let state = |entity: &str| {
        states
            .get(entity)
            .map_or((Status::Unknown, None, None), |s| {
                (s.status, Some(s.updated_at_ms), s.checks)
            })
    };
    let (status, since_ms, checks) = state(&system.id);
    SystemSummary {
        id: system.id.clone(),
        name: system.name.clone().unwrap_or_else(|| system.id.clone()),
        status,
        since_ms,
        healthy_checks: checks.map(|c| c.healthy_checks),
        total_checks: checks.map(|c| c.total_checks),
        metadata: system.metadata.clone(),
        environments: system
            .environments
            .iter()
            .map(|env| {
                let entity = EntityId::of(&system.id, Some(env)).to_string();
                let (status, since_ms, checks) = state(&entity);
                EnvironmentStatus {
                    id: env.clone(),
                    name: config
                        .environment(env)
                        .and_then(|e| e.name.clone())
                        .unwrap_or_else(|| env.clone()),
                    status,
                    since_ms,
                    healthy_checks: checks.map(|c| c.healthy_checks),
                    total_checks: checks.map(|c| c.total_checks),
                }
            })
            .collect(),
    }
}

#[utoipa::path(
    get, path = "/api/v1/systems", operation_id = "listSystems", tag = "status",
    params(NoParams),
    responses(
        (status = 200, description = "Every system with its rollup and per-environment status", body = [SystemSummary]),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    )
)]
pub async fn list(
    State(state): State<ApiState>,
    Params(NoParams {}): Params<NoParams>,
) -> Result<Response, ApiError> {
    let generation = state.live.generation();
    let statuses = state.store.current_statuses().await?;
    let key = (generation.id, statuses.version);
    let cached = state.systems_json.get(key);
    let body = match cached {
        Some(body) => body,
        None => {
            let config = &generation.setup.config.file;
            let systems: Vec<SystemSummary> = config
                .systems
                .iter()
                .map(|s| summary(config, s, &statuses.states))
                .collect();
            let body = Bytes::from(serde_json::to_vec(&systems).unwrap_or_default());
            state.systems_json.put(key, body.clone());
            body
        }
    };
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// The last `/api/v1/systems` answer, by (configuration, states version):
/// while nothing changed, a read is one small query and a copy.
#[derive(Default)]
pub struct RenderedSystems(std::sync::Mutex<Option<((u64, u64), Bytes)>>);

impl RenderedSystems {
    fn get(&self, key: (u64, u64)) -> Option<Bytes> {
        let slot = self.0.lock().unwrap_or_else(|e| e.into_inner());
        slot.as_ref()
            .filter(|(k, _)| *k == key)
            .map(|(_, b)| b.clone())
    }

    fn put(&self, key: (u64, u64), body: Bytes) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some((key, body));
    }
}

#[utoipa::path(
    get, path = "/api/v1/systems/{id}", operation_id = "getSystem", tag = "status",
    params(("id" = String, Path, description = "System id"), NoParams),
    responses(
        (status = 200, description = "The system's checks, each with its last run per environment", body = SystemDetail),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
    )
)]
pub async fn detail(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    Params(NoParams {}): Params<NoParams>,
) -> Result<Json<SystemDetail>, ApiError> {
    Ok(Json(system_detail(&state, &id).await?))
}

pub async fn system_detail(state: &ApiState, id: &str) -> Result<SystemDetail, ApiError> {
    let generation = state.live.generation();
    let config = &generation.setup.config.file;
    let system = config
        .system(id)
        .ok_or_else(|| ApiError::not_found(format!("no system `{id}` in the configuration")))?;
    let states: States = state
        .store
        .statuses_of(&entity_ids_of(system))
        .await?
        .into_iter()
        .map(|e| (e.entity_id.clone(), e))
        .collect();
    let mut stored: HashMap<(String, Option<String>, Option<String>), SliceStatus> = state
        .store
        .system_slices(id)
        .await?
        .into_iter()
        .map(|s| {
            let mut last_run = s.last_run;
            if let Some(run) = last_run.as_mut() {
                generation.masker.json(&mut run.result);
                run.run.error = run.run.error.take().map(|e| generation.masker.text(&e));
            }
            (
                (s.check_id, s.environment_id.clone(), s.location_id.clone()),
                SliceStatus {
                    environment_id: s.environment_id,
                    location_id: s.location_id,
                    status: s.status,
                    flapping: false,
                    last_run,
                },
            )
        })
        .collect();
    let mut checks = Vec::new();
    for a in config.assignments.iter().filter(|a| a.system == id) {
        let Some(check) = config.check(&a.check) else {
            continue;
        };
        let mut slices = Vec::new();
        for key in generation.slices_of(id, &a.check) {
            let mut slice = stored
                .remove(&(
                    a.check.clone(),
                    key.environment.clone(),
                    key.location.clone(),
                ))
                .unwrap_or(SliceStatus {
                    environment_id: key.environment.clone(),
                    location_id: key.location.clone(),
                    status: Status::Unknown,
                    flapping: false,
                    last_run: None,
                });
            if let Some(rule) = &a.flapping {
                slice.flapping = flapping_now(state, &key, rule).await?;
            }
            slices.push(slice);
        }
        checks.push(CheckStatus {
            id: check.id.clone(),
            name: check.name.clone().unwrap_or_else(|| check.id.clone()),
            interval: check.interval.to_string(),
            strategy: check.strategy.plugin.clone(),
            collectors: check.collectors.iter().map(|c| c.plugin.clone()).collect(),
            paused: state.live.is_paused(id, &a.check, a.paused),
            slices,
        });
    }
    Ok(SystemDetail {
        summary: summary(config, system, &states),
        checks,
    })
}

/// Whether the slice's own entity changed, because of this check, at
/// least `changes` times within the window up to now.
async fn flapping_now(
    state: &ApiState,
    slice: &crate::store::entity::SliceId,
    rule: &crate::config::Flapping,
) -> Result<bool, ApiError> {
    let entity = crate::store::entity::EntityId::of(&slice.system, slice.environment.as_deref());
    let query = crate::store::read::TransitionQuery {
        entity: Some(entity.to_string()),
        from_ms: Some(crate::clock::now_ms() - rule.window.as_millis()),
        limit: 1000,
        ..Default::default()
    };
    let changes = state
        .store
        .transitions(&query)
        .await?
        .iter()
        .filter(|t| t.check_id == slice.check)
        .count();
    Ok(changes >= rule.changes as usize)
}

/// The system's rollup entity and one per environment.
fn entity_ids_of(system: &System) -> Vec<String> {
    let mut ids = vec![system.id.clone()];
    for env in &system.environments {
        ids.extend(
            entity_ids(&system.id, Some(env), None)
                .into_iter()
                .filter(|e| e != &system.id),
        );
    }
    ids
}
