//! `GET /api/v1/cluster`: the nodes sharing this database, their heartbeats
//! and the slices each holds.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use super::ApiState;
use super::error::{ApiError, ErrorBody, Params};
use super::systems::NoParams;
use crate::clock::now_ms;
use crate::store::schedule::NodeInfo;

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterView {
    /// `sqlite` (one node) or `postgres` (nodes may share the work).
    pub engine: String,
    pub now_ms: i64,
    /// Every node that ever ran on this database, newest heartbeat first;
    /// one whose heartbeat is seconds old is gone.
    pub nodes: Vec<NodeInfo>,
}

#[utoipa::path(
    get, path = "/api/v1/cluster", operation_id = "getCluster", tag = "status",
    params(NoParams),
    responses(
        (status = 200, description = "The nodes, their heartbeats and leases", body = ClusterView),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    )
)]
pub async fn view(
    State(state): State<ApiState>,
    Params(NoParams {}): Params<NoParams>,
) -> Result<Json<ClusterView>, ApiError> {
    Ok(Json(ClusterView {
        engine: state.store.engine().to_string(),
        now_ms: now_ms(),
        nodes: state.store.nodes().await?,
    }))
}
