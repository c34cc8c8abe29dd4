//! `GET /api/v1/notifications/deliveries`: the delivery log of webhook
//! notices, newest first; `POST /api/v1/notifications/{target}/messages`:
//! a message of one's own to a target, through the same outbox.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::ApiState;
use super::error::{ApiError, ErrorBody, Params, cursor_param, limit_param};
use crate::clock::now_ms;
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

/// The longest message a target is sent.
const MAX_MESSAGE_CHARS: usize = 4000;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MessageBody {
    /// The message; at most 4,000 characters.
    pub text: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct QueuedMessage {
    pub target: String,
    /// The notice's key in the delivery log.
    pub idempotency_key: String,
}

/// Queues `text` for `target` in the outbox, in the target's format.
pub async fn send_message(
    state: &ApiState,
    target: &str,
    text: &str,
) -> Result<QueuedMessage, ApiError> {
    if text.trim().is_empty() || text.chars().count() > MAX_MESSAGE_CHARS {
        return Err(ApiError::bad_request(
            "text",
            format!("text must hold 1 to {MAX_MESSAGE_CHARS} characters"),
        ));
    }
    let at = now_ms();
    let notice = state
        .live
        .generation()
        .notifier
        .message(target, text, at)
        .map_err(ApiError::not_found)?;
    let queued = QueuedMessage {
        target: notice.target.clone(),
        idempotency_key: notice.idempotency_key.clone(),
    };
    state.store.insert_messages("", vec![notice], at).await?;
    tracing::info!(target, "message queued for a notification target");
    Ok(queued)
}

#[utoipa::path(
    post, path = "/api/v1/notifications/{target}/messages", operation_id = "sendMessage", tag = "notifications",
    params(("target" = String, Path)),
    request_body = MessageBody,
    security(("bearer" = [])),
    responses(
        (status = 202, description = "Queued in the outbox, delivered like every notice", body = QueuedMessage),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 413, body = ErrorBody),
    )
)]
pub async fn message(
    State(state): State<ApiState>,
    Path(target): Path<String>,
    json: Result<Json<MessageBody>, JsonRejection>,
) -> Result<(StatusCode, Json<QueuedMessage>), ApiError> {
    let body = json
        .map(|Json(b)| b)
        .map_err(|e| ApiError::bad_request("body", e.body_text()))?;
    let queued = send_message(&state, &target, &body.text).await?;
    Ok((StatusCode::ACCEPTED, Json(queued)))
}
