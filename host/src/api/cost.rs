//! `GET /api/v1/cost`: what each check's guests cost this node, costliest
//! first (what `checkhost top` shows).

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::ApiState;
use super::error::{ApiError, ErrorBody, Params, limit_param};
use crate::serve::cost::CheckCost;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CostParams {
    /// Checks to list, 1–1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CostList {
    /// Since this node started, costliest (by CPU) first.
    pub items: Vec<CheckCost>,
}

/// Each check's runs, guest CPU, instantiation and peak memory on this
/// node since it started, costliest first.
#[utoipa::path(
    get,
    path = "/api/v1/cost",
    tag = "status",
    params(CostParams),
    responses((status = 200, body = CostList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody))
)]
pub async fn list_costs(
    State(state): State<ApiState>,
    Params(params): Params<CostParams>,
) -> Result<Json<CostList>, ApiError> {
    let limit = limit_param(params.limit)?;
    Ok(Json(CostList {
        items: state.metrics.costs.top(limit as usize),
    }))
}
