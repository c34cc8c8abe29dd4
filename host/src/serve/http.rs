//! The daemon's HTTP endpoints: Prometheus `/metrics`, liveness `/healthz`
//! and readiness `/readyz` (database reachable, configuration loaded).

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use super::metrics::Metrics;
use crate::runtime::Runtime;
use crate::store::Store;

#[derive(Clone)]
pub struct Endpoints {
    pub metrics: Arc<Metrics>,
    pub store: Arc<Store>,
    pub runtime: Arc<Runtime>,
}

pub fn router(endpoints: Endpoints) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .with_state(endpoints)
}

/// OpenMetrics to a scraper that asks for it (Prometheus does), and the
/// Prometheus text format 0.0.4 to anything else (`curl`, `promtool`).
async fn metrics(State(e): State<Endpoints>, headers: HeaderMap) -> impl IntoResponse {
    e.metrics.writer_queue.set(e.store.queue_depth() as i64);
    e.metrics
        .observe_write_failure(e.store.write_failure().as_ref());
    e.metrics.observe_pool(e.runtime.pool_usage());
    let open_metrics = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/openmetrics-text"));
    let text = e.metrics.render();
    if open_metrics {
        (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
    } else {
        (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            super::metrics::prometheus_text(&text),
        )
    }
}

/// The daemon only serves once its configuration is loaded, so readiness
/// is the database answering, and taking the writes it is given.
async fn ready(State(e): State<Endpoints>) -> impl IntoResponse {
    if let Some(f) = e.store.write_failure() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "database not writable ({}) since {}, runs held: {}: {}\n",
                f.reason,
                chrono::DateTime::<chrono::Utc>::from_timestamp_millis(f.since_ms)
                    .map(|t| t.to_rfc3339())
                    .unwrap_or_default(),
                e.store.queue_depth(),
                f.message
            ),
        );
    }
    match e.store.ping().await {
        Ok(()) => (StatusCode::OK, "ready\n".to_string()),
        Err(error) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("database unreachable: {error}\n"),
        ),
    }
}
