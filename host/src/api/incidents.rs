//! Incidents and announcements: `GET`/`POST /api/v1/incidents`,
//! `POST /api/v1/incidents/{id}/updates` and `/resolve`. Writes need the
//! token; bodies are plain text, capped, and shown escaped.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::ApiState;
use super::error::{ApiError, ErrorBody, Params, cursor_param, limit_param};
use crate::clock::now_ms;
use crate::store::incidents::{Incident, NewIncident, Severity, UpdateError, UpdateState};

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum IncidentFilter {
    Open,
    All,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct IncidentParams {
    /// `open` (default) or `all`.
    state: Option<IncidentFilter>,
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
    cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IncidentPage {
    pub items: Vec<Incident>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IncidentBody {
    /// One line, at most 200 characters.
    pub title: String,
    pub severity: Severity,
    /// System ids it affects; none: all.
    #[serde(default)]
    pub systems: Vec<String>,
    /// Plain text, at most 10,000 characters.
    pub body: String,
    /// Default `investigating`.
    pub state: Option<UpdateState>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateBody {
    pub body: String,
    /// Default `update`; `resolved` closes the incident.
    pub state: Option<UpdateState>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResolveBody {
    /// Default "Resolved.".
    pub body: Option<String>,
}

/// A JSON body, or a 400 that says what is wrong with it.
fn body<T>(json: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    json.map(|Json(t)| t)
        .map_err(|e| ApiError::bad_request("body", e.body_text()))
}

/// The `{id}` of the path: an incident id, or a 400 naming it.
fn incident_id(text: &str) -> Result<i64, ApiError> {
    text.parse()
        .ok()
        .filter(|id: &i64| *id > 0)
        .ok_or_else(|| ApiError::bad_request("id", format!("`{text}` is not an incident id")))
}

fn refused((field, message): (String, String)) -> ApiError {
    ApiError::bad_request(&field, format!("{field} {message}"))
}

#[utoipa::path(
    get, path = "/api/v1/incidents", operation_id = "listIncidents", tag = "incidents",
    params(IncidentParams),
    responses(
        (status = 200, description = "Incidents newest first, with their updates", body = IncidentPage),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    )
)]
pub async fn list(
    State(state): State<ApiState>,
    Params(p): Params<IncidentParams>,
) -> Result<Json<IncidentPage>, ApiError> {
    let limit = limit_param(p.limit)?;
    let open_only = !matches!(p.state, Some(IncidentFilter::All));
    let before = cursor_param(p.cursor.as_deref())?;
    let mut items = state.store.incidents(open_only, before, limit + 1).await?;
    let more = items.len() as i64 > limit;
    items.truncate(limit as usize);
    let next_cursor = more
        .then(|| items.last().map(|i| i.id.to_string()))
        .flatten();
    Ok(Json(IncidentPage { items, next_cursor }))
}

#[utoipa::path(
    post, path = "/api/v1/incidents", operation_id = "openIncident", tag = "incidents",
    request_body = IncidentBody,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "The incident, with its first update", body = Incident),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 413, body = ErrorBody),
    )
)]
pub async fn open(
    State(state): State<ApiState>,
    json: Result<Json<IncidentBody>, JsonRejection>,
) -> Result<(StatusCode, Json<Incident>), ApiError> {
    let b = body(json)?;
    let new = NewIncident {
        title: b.title,
        severity: b.severity,
        systems: b.systems,
        state: b.state.unwrap_or(UpdateState::Investigating),
        body: b.body,
    };
    let generation = state.live.generation();
    let config = &generation.setup.config.file;
    new.check(|s| config.system(s).is_some()).map_err(refused)?;
    let id = state.store.open_incident(&new, now_ms()).await?;
    tracing::info!(incident = id, title = %new.title, "incident opened through the API");
    Ok((StatusCode::CREATED, Json(stored(&state, id).await?)))
}

async fn stored(state: &ApiState, id: i64) -> Result<Incident, ApiError> {
    state
        .store
        .incident(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no incident {id}")))
}

async fn add_update(
    state: &ApiState,
    id: i64,
    update: UpdateState,
    text: &str,
) -> Result<Json<Incident>, ApiError> {
    crate::store::incidents::check_text("body", text, crate::store::incidents::BODY_MAX)
        .map_err(refused)?;
    match state
        .store
        .update_incident(id, update, text, now_ms())
        .await
    {
        Ok(()) => Ok(Json(stored(state, id).await?)),
        Err(UpdateError::NotFound(_)) => Err(ApiError::not_found(format!("no incident {id}"))),
        Err(e @ UpdateError::Resolved(_)) => Err(ApiError::conflict(e.to_string())),
        Err(UpdateError::Store(e)) => Err(e.into()),
    }
}

#[utoipa::path(
    post, path = "/api/v1/incidents/{id}/updates", operation_id = "updateIncident", tag = "incidents",
    params(("id" = i64, Path)),
    request_body = UpdateBody,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The incident with the new update", body = Incident),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 413, body = ErrorBody),
    )
)]
pub async fn update(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    json: Result<Json<UpdateBody>, JsonRejection>,
) -> Result<Json<Incident>, ApiError> {
    let id = incident_id(&id)?;
    let b = body(json)?;
    add_update(&state, id, b.state.unwrap_or(UpdateState::Update), &b.body).await
}

#[utoipa::path(
    post, path = "/api/v1/incidents/{id}/resolve", operation_id = "resolveIncident", tag = "incidents",
    params(("id" = i64, Path)),
    request_body = ResolveBody,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The resolved incident", body = Incident),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 413, body = ErrorBody),
    )
)]
pub async fn resolve(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    raw: axum::body::Bytes,
) -> Result<Json<Incident>, ApiError> {
    let id = incident_id(&id)?;
    // The body is optional: an empty one takes the default text.
    let given = if raw.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        serde_json::from_slice::<ResolveBody>(&raw)
            .map_err(|e| ApiError::bad_request("body", format!("not a resolve body: {e}")))?
            .body
    };
    let text = given.unwrap_or_else(|| "Resolved.".into());
    add_update(&state, id, UpdateState::Resolved, &text).await
}
