//! `/mcp` on the daemon: the tools over streamable HTTP, behind the API
//! token, on the daemon's own configuration, store and actions.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::Value;

use super::desk::{Actions, Configs, Desk, Reload, SetupRef, WriteBudget};
use super::tools::Tools;
use crate::api::ApiState;
use crate::runtime::Runtime;
use crate::serve::reload::Reloader;

/// The daemon's configuration, reloaded by the daemon itself.
struct LiveConfigs {
    api: ApiState,
    path: PathBuf,
    reloader: Arc<Reloader>,
}

#[async_trait::async_trait]
impl Configs for LiveConfigs {
    fn current(&self) -> SetupRef {
        SetupRef::Live(self.api.live.generation())
    }

    fn path(&self) -> &Path {
        &self.path
    }

    async fn reload(&self, _runtime: &Runtime) -> Reload {
        // The file watch would get there too; reloading now gives the
        // caller the outcome.
        if self.reloader.reload().await {
            Reload {
                applied: true,
                message: "the daemon reloaded its configuration; the change is in force".into(),
            }
        } else {
            Reload {
                applied: false,
                message: "the daemon refused the new configuration and keeps the previous one; its log says why".into(),
            }
        }
    }
}

/// The daemon's actions, taken in this process as the API takes them.
struct InProcess(ApiState);

fn answer<T: serde::Serialize>(
    result: Result<T, crate::api::error::ApiError>,
) -> Result<Value, String> {
    match result {
        Ok(value) => serde_json::to_value(value).map_err(|e| e.to_string()),
        Err(e) => Err(e.body.message),
    }
}

#[async_trait::async_trait]
impl Actions for InProcess {
    async fn set_paused(&self, system: &str, check: &str, paused: bool) -> Result<Value, String> {
        answer(
            crate::api::assignments::set_paused(&self.0, system.into(), check.into(), paused).await,
        )
    }

    async fn run_now(&self, system: &str, check: &str) -> Result<Value, String> {
        answer(crate::api::assignments::run_assignment(&self.0, system.into(), check.into()).await)
    }

    async fn notify(&self, target: &str, text: &str) -> Result<Value, String> {
        answer(crate::api::notifications::send_message(&self.0, target, text).await)
    }
}

/// Every MCP request needs the API token, reads included: the tools can
/// change the configuration.
async fn authorize(State(api): State<ApiState>, request: Request, next: Next) -> Response {
    let access = api.live.generation().access.clone();
    match crate::api::check_access(&access, &axum::http::Method::POST, request.headers()) {
        Ok(()) => next.run(request).await,
        Err(e) => e.into_response(),
    }
}

/// A request body's bound: the arguments' own bound and the envelope.
const MAX_REQUEST_BYTES: usize = 2 * super::desk::MAX_ARGUMENT_BYTES;

/// `/mcp`, served by the daemon's HTTP server.
pub fn router(api: ApiState, config_path: PathBuf, reloader: Arc<Reloader>) -> axum::Router {
    let desk = Arc::new(Desk {
        configs: Arc::new(LiveConfigs {
            api: api.clone(),
            path: config_path,
            reloader,
        }),
        store: api.store.clone(),
        runtime: api.runtime.clone(),
        actions: Arc::new(InProcess(api.clone())),
        writes: WriteBudget::default(),
        editing: Default::default(),
        calls: api.metrics.clone(),
    });
    // Sessions end with the daemon, or its graceful stop would wait on
    // their open event streams.
    let sessions = tokio_util::sync::CancellationToken::new();
    let mut stop = api.stop.clone();
    let ending = sessions.clone();
    tokio::spawn(async move {
        let _ = stop.wait_for(|stopped| *stopped).await;
        ending.cancel();
    });
    let config = StreamableHttpServerConfig::default()
        .with_cancellation_token(sessions)
        .with_max_request_body_bytes(MAX_REQUEST_BYTES)
        // The bearer token is what a DNS-rebinding page cannot bring, and
        // the daemon may be reached by any of its names.
        .disable_allowed_hosts();
    let service = StreamableHttpService::new(
        move || Ok(Tools::new(desk.clone())),
        LocalSessionManager::default().into(),
        config,
    );
    axum::Router::new()
        .nest_service("/mcp", service)
        .layer(axum::middleware::from_fn_with_state(api, authorize))
}
