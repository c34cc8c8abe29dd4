//! `GET /api/v1/slos`: each configured objective with its attainment,
//! error budget, burn rates and projected exhaustion.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use super::ApiState;
use super::error::{ApiError, ErrorBody, Params};
use super::systems::NoParams;
use crate::clock::now_ms;
use crate::store::slo::{SloDef, SloReport};

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SloList {
    pub items: Vec<SloReport>,
}

/// Every objective of the configuration (systems' first, then
/// assignments'), evaluated now.
#[utoipa::path(
    get,
    path = "/api/v1/slos",
    tag = "status",
    responses((status = 200, body = SloList), (status = 401, body = ErrorBody))
)]
pub async fn list_slos(
    State(state): State<ApiState>,
    Params(NoParams {}): Params<NoParams>,
) -> Result<Json<SloList>, ApiError> {
    let generation = state.live.generation();
    let now = now_ms();
    let mut items = Vec::new();
    for def in SloDef::all(&generation.setup.config.file) {
        items.push(state.store.slo(&def, now).await?);
    }
    Ok(Json(SloList { items }))
}
