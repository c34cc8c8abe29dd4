//! `GET /api/v1/notifications/deliveries`: the delivery log of webhook
//! notices, newest first.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::ApiState;
use super::error::{ApiError, ErrorBody, Params, cursor_param, limit_param};
use crate::store::outbox::{Delivery, DeliveryFilter};

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryState {
    Pending,
    Delivered,
    Failed,
    Suppressed,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeliveryParams {
    /// Webhook target id.
    target: Option<String>,
    state: Option<DeliveryState>,
    /// `<system>` or `<system>::<environment>`.
    entity: Option<String>,
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
    cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryPage {
    pub items: Vec<Delivery>,
    pub next_cursor: Option<String>,
}

#[utoipa::path(
    get, path = "/api/v1/notifications/deliveries", operation_id = "listDeliveries", tag = "notifications",
    params(DeliveryParams),
    responses(
        (status = 200, description = "Notices and how their delivery went, newest first", body = DeliveryPage),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    )
)]
pub async fn deliveries(
    State(state): State<ApiState>,
    Params(p): Params<DeliveryParams>,
) -> Result<Json<DeliveryPage>, ApiError> {
    let limit = limit_param(p.limit)?;
    let filter = DeliveryFilter {
        target: p.target,
        state: p.state.map(|s| {
            match s {
                DeliveryState::Pending => "pending",
                DeliveryState::Delivered => "delivered",
                DeliveryState::Failed => "failed",
                DeliveryState::Suppressed => "suppressed",
            }
            .to_string()
        }),
        entity: p.entity,
        before: cursor_param(p.cursor.as_deref())?,
        limit: limit + 1,
    };
    let mut items = state.store.deliveries(&filter).await?;
    let more = items.len() as i64 > limit;
    items.truncate(limit as usize);
    let next_cursor = more
        .then(|| items.last().map(|d| d.id.to_string()))
        .flatten();
    Ok(Json(DeliveryPage { items, next_cursor }))
}
