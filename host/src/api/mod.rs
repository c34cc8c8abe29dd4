//! The REST API of `checkhost serve` under `/api/v1`: systems, runs,
//! history, transitions, assignment actions, the live event stream and the
//! delivery log, with its OpenAPI document at `/openapi.json`.

pub mod assignments;
pub mod client;
mod cluster;
pub mod cost;
pub mod error;
mod events;
mod incidents;
pub mod notifications;
pub mod probes;
mod runs;
pub mod slos;
mod systems;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

use crate::config::ReadAccess;
use crate::probe::wire;
use crate::runtime::Runtime;
use crate::serve::generation::Access;
use crate::serve::live::LiveConfig;
use crate::store::Store;
use error::ApiError;
pub use runs::{HistoryField, history_fields};
pub use systems::{SystemDetail, system_detail as systems_detail};

/// Request bodies are small (actions take none): anything larger is refused.
pub const BODY_LIMIT: usize = 64 * 1024;

#[derive(Clone)]
pub struct ApiState {
    pub store: Arc<Store>,
    /// The current configuration and the API's pauses.
    pub live: Arc<LiveConfig>,
    pub runtime: Arc<Runtime>,
    /// Probe refusals are counted here.
    pub metrics: Arc<crate::serve::metrics::Metrics>,
    /// The probe endpoints' rendered work and batch slots.
    pub probes: Arc<probes::ProbeDesk>,
    /// Turns true on shutdown: event streams end so the server can stop.
    pub stop: tokio::sync::watch::Receiver<bool>,
    pub systems_json: Arc<systems::RenderedSystems>,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "checkhost API",
        description = "Systems, runs, history, transitions and notifications of a checkhost \
                       daemon. Times are Unix milliseconds; `from`/`to` also take RFC 3339.",
        version = "1"
    ),
    paths(
        systems::list,
        systems::detail,
        runs::list,
        runs::history,
        runs::transitions,
        assignments::run_now,
        assignments::pause,
        assignments::resume,
        events::stream,
        notifications::deliveries,
        notifications::message,
        cluster::view,
        probes::list,
        cost::list_costs,
        slos::list_slos,
        incidents::list,
        incidents::open,
        incidents::update,
        incidents::resolve,
    ),
    // Enums used only as query parameters are not collected on their own.
    components(schemas(runs::RunStatus, runs::BucketParam, notifications::DeliveryState, incidents::IncidentFilter)),
    modifiers(&BearerAuth),
    tags(
        (name = "status", description = "What is up, and since when"),
        (name = "runs", description = "Stored runs, history and transitions"),
        (name = "actions", description = "Run, pause and resume assignments (token required)"),
        (name = "events", description = "Live runs and transitions"),
        (name = "notifications", description = "Webhook deliveries"),
        (name = "incidents", description = "Incidents and announcements (writes need the token)"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

pub fn router(state: ApiState) -> Router {
    let api = Router::new()
        .route("/api/v1/systems", get(systems::list))
        .route("/api/v1/systems/{id}", get(systems::detail))
        .route("/api/v1/runs", get(runs::list))
        .route("/api/v1/history", get(runs::history))
        .route("/api/v1/transitions", get(runs::transitions))
        .route(
            "/api/v1/assignments/{system}/{check}/run",
            post(assignments::run_now),
        )
        .route(
            "/api/v1/assignments/{system}/{check}/pause",
            post(assignments::pause),
        )
        .route(
            "/api/v1/assignments/{system}/{check}/resume",
            post(assignments::resume),
        )
        .route("/api/v1/events", get(events::stream))
        .route(
            "/api/v1/incidents",
            get(incidents::list).post(incidents::open),
        )
        .route("/api/v1/incidents/{id}/updates", post(incidents::update))
        .route("/api/v1/incidents/{id}/resolve", post(incidents::resolve))
        .route("/api/v1/cluster", get(cluster::view))
        .route("/api/v1/probes", get(probes::list))
        .route("/api/v1/cost", get(cost::list_costs))
        .route("/api/v1/slos", get(slos::list_slos))
        .route(
            "/api/v1/notifications/deliveries",
            get(notifications::deliveries),
        )
        .route(
            "/api/v1/notifications/{target}/messages",
            post(notifications::message),
        )
        .fallback(|| async { ApiError::not_found("no such API endpoint") })
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        .layer(middleware::from_fn_with_state(state.clone(), authorize))
        .layer(middleware::from_fn(limit_body))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state.clone());
    // Probes carry their own tokens and larger bodies: outside the API's
    // access rules and body limit.
    let probe = Router::new()
        .route(wire::WORK_PATH, get(probes::work))
        .route(
            wire::HEARTBEAT_PATH,
            post(probes::heartbeat).layer(DefaultBodyLimit::max(BODY_LIMIT)),
        )
        .route(
            wire::RUNS_PATH,
            post(probes::runs)
                .layer(DefaultBodyLimit::max(wire::MAX_BATCH_BYTES))
                .layer(middleware::from_fn_with_state(
                    state.clone(),
                    probes::one_batch_at_a_time,
                )),
        )
        .route(
            &format!("{}/{{digest}}", wire::COMPONENTS_PATH),
            get(probes::component),
        )
        .layer(middleware::from_fn_with_state(
            state.clone(),
            probes::authenticate,
        ))
        .with_state(state);
    Router::new()
        .route("/openapi.json", get(openapi))
        .merge(probe)
        .merge(api)
}

async fn openapi() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        ApiDoc::openapi().to_json().unwrap_or_default(),
    )
}

/// The caller's bearer token matches the configured one. Compared in
/// constant time, so the answer's timing does not leak a prefix.
fn bearer_matches(headers: &HeaderMap, token: &str) -> bool {
    let Some(given) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    let (a, b) = (given.trim().as_bytes(), token.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether a request may go on under the current configuration's access
/// rules: writes always need the token, reads when the config says so.
pub fn check_access(access: &Access, method: &Method, headers: &HeaderMap) -> Result<(), ApiError> {
    let write = method != Method::GET && method != Method::HEAD;
    if !write && access.reads == ReadAccess::Public {
        return Ok(());
    }
    match &access.token {
        None if write => Err(ApiError::forbidden(
            "actions are off: set `api.token` to a secret reference in the configuration",
        )),
        None => Err(ApiError::forbidden(
            "reads need a token but `api.token` is not set",
        )),
        Some(Err(message)) => Err(ApiError::forbidden(message.clone())),
        Some(Ok(token)) if bearer_matches(headers, token) => Ok(()),
        Some(Ok(_)) => Err(ApiError::unauthorized(
            "send `Authorization: Bearer <token>` with the configured api.token",
        )),
    }
}

/// Refuses a declared body over the limit before anything reads it.
async fn limit_body(request: Request, next: Next) -> Response {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    match declared {
        Some(n) if n > BODY_LIMIT => {
            ApiError::too_large(format!("request bodies are limited to {BODY_LIMIT} bytes"))
                .into_response()
        }
        _ => next.run(request).await,
    }
}

/// Middleware: lets a request on under the current configuration's access
/// rules (API and status page alike).
pub async fn authorize(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let access = state.live.generation().access.clone();
    match check_access(&access, request.method(), request.headers()) {
        Ok(()) => next.run(request).await,
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(token: Option<Result<String, String>>, reads: ReadAccess) -> Access {
        Access {
            token,
            reads,
            badges: false,
        }
    }

    fn bearer(token: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            format!("Bearer {token}").parse().unwrap(),
        );
        h
    }

    #[test]
    fn writes_need_the_token_and_reads_follow_the_config() {
        let open = access(Some(Ok("s3cret-token".into())), ReadAccess::Public);
        assert!(check_access(&open, &Method::GET, &HeaderMap::new()).is_ok());
        let e = check_access(&open, &Method::POST, &HeaderMap::new()).unwrap_err();
        assert_eq!(e.status, 401);
        assert_eq!(
            check_access(&open, &Method::POST, &bearer("wrong"))
                .unwrap_err()
                .status,
            401
        );
        assert!(check_access(&open, &Method::POST, &bearer("s3cret-token")).is_ok());
        let closed = access(Some(Ok("s3cret-token".into())), ReadAccess::Token);
        assert_eq!(
            check_access(&closed, &Method::GET, &HeaderMap::new())
                .unwrap_err()
                .status,
            401
        );
        let off = access(None, ReadAccess::Public);
        assert_eq!(
            check_access(&off, &Method::POST, &bearer("x"))
                .unwrap_err()
                .status,
            403
        );
    }

    #[test]
    fn the_openapi_document_is_3_1_and_lists_every_route() {
        let doc: serde_json::Value =
            serde_json::from_str(&ApiDoc::openapi().to_json().unwrap()).unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
        let text = doc.to_string();
        for reference in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
            let name = &reference[..reference.find('"').unwrap()];
            assert!(
                doc["components"]["schemas"].get(name).is_some(),
                "$ref to {name} resolves"
            );
        }
        for path in [
            "/api/v1/systems",
            "/api/v1/systems/{id}",
            "/api/v1/runs",
            "/api/v1/history",
            "/api/v1/transitions",
            "/api/v1/assignments/{system}/{check}/run",
            "/api/v1/assignments/{system}/{check}/pause",
            "/api/v1/assignments/{system}/{check}/resume",
            "/api/v1/events",
            "/api/v1/notifications/deliveries",
            "/api/v1/notifications/{target}/messages",
            "/api/v1/cluster",
        ] {
            assert!(doc["paths"].get(path).is_some(), "{path} is documented");
        }
    }
}
