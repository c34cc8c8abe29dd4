//! What the tools work on: the configuration as loaded, the store, the
//! runtime for dry runs, and the daemon's actions; with the bounds every
//! call keeps (argument size, write rate) and the count of calls by tool
//! and outcome.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::api::client::ApiClient;
use crate::pipeline::setup::Setup;
use crate::runtime::Runtime;
use crate::serve::generation::Shared;
use crate::store::Store;

/// The largest arguments one call may bring, as JSON.
pub const MAX_ARGUMENT_BYTES: usize = 256 * 1024;

/// The configuration in force: this process's own, or the daemon's
/// current generation.
pub enum SetupRef {
    Own(Arc<Setup>),
    Live(Shared),
}

impl std::ops::Deref for SetupRef {
    type Target = Setup;

    fn deref(&self) -> &Setup {
        match self {
            SetupRef::Own(setup) => setup,
            SetupRef::Live(generation) => &generation.setup,
        }
    }
}

/// Where the configuration comes from and how a change reaches the runs.
#[async_trait::async_trait]
pub trait Configs: Send + Sync {
    /// The configuration as loaded now.
    fn current(&self) -> SetupRef;
    /// The file or folder it was loaded from.
    fn path(&self) -> &Path;
    /// After an edit: the configuration loaded again, or why not.
    async fn reload(&self, runtime: &Runtime) -> Reload;
}

/// What became of an edit once written.
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Reload {
    /// Whether the configuration in force now holds the change.
    pub applied: bool,
    pub message: String,
}

/// The actions only a running daemon can take.
#[async_trait::async_trait]
pub trait Actions: Send + Sync {
    async fn set_paused(&self, system: &str, check: &str, paused: bool) -> Result<Value, String>;
    async fn run_now(&self, system: &str, check: &str) -> Result<Value, String>;
    async fn notify(&self, target: &str, text: &str) -> Result<Value, String>;
}

/// A configuration file read by this process, read again after each edit.
pub struct LocalConfigs {
    path: PathBuf,
    plugins: Option<PathBuf>,
    require_lock: bool,
    setup: Mutex<Arc<Setup>>,
}

impl LocalConfigs {
    pub fn new(
        path: PathBuf,
        plugins: Option<PathBuf>,
        require_lock: bool,
        setup: Setup,
    ) -> LocalConfigs {
        LocalConfigs {
            path,
            plugins,
            require_lock,
            setup: Mutex::new(Arc::new(setup)),
        }
    }
}

#[async_trait::async_trait]
impl Configs for LocalConfigs {
    fn current(&self) -> SetupRef {
        SetupRef::Own(
            self.setup
                .lock()
                .map(|s| s.clone())
                .unwrap_or_else(|e| e.into_inner().clone()),
        )
    }

    fn path(&self) -> &Path {
        &self.path
    }

    async fn reload(&self, runtime: &Runtime) -> Reload {
        let previous = self.current();
        match Setup::load(
            &self.path,
            self.plugins.as_ref(),
            runtime,
            Some(&previous.plugins),
            self.require_lock,
        )
        .await
        {
            Ok((setup, _)) => {
                let problems = crate::validate::blocking_problems(&setup, runtime, None).await;
                if let Ok(mut current) = self.setup.lock() {
                    *current = Arc::new(setup);
                }
                if problems.is_empty() {
                    Reload {
                        applied: true,
                        message: "configuration reloaded and valid; a running `checkhost serve` picks the change up from its file watch".into(),
                    }
                } else {
                    Reload {
                        applied: false,
                        message: format!(
                            "configuration reloaded with problems: {}",
                            problems
                                .iter()
                                .map(|p| p.to_string())
                                .collect::<Vec<_>>()
                                .join("; ")
                        ),
                    }
                }
            }
            Err(e) => Reload {
                applied: false,
                message: format!("configuration not reloaded: {e}"),
            },
        }
    }
}

/// No daemon was named: the actions say how to name one.
pub struct NoDaemon;

const NEEDS_DAEMON: &str =
    "needs a running checkhost serve: start `checkhost mcp` with --server URL --token-file FILE";

#[async_trait::async_trait]
impl Actions for NoDaemon {
    async fn set_paused(&self, _: &str, _: &str, _: bool) -> Result<Value, String> {
        Err(NEEDS_DAEMON.into())
    }
    async fn run_now(&self, _: &str, _: &str) -> Result<Value, String> {
        Err(NEEDS_DAEMON.into())
    }
    async fn notify(&self, _: &str, _: &str) -> Result<Value, String> {
        Err(NEEDS_DAEMON.into())
    }
}

fn path_part(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// A daemon's actions over its API.
#[async_trait::async_trait]
impl Actions for ApiClient {
    async fn set_paused(&self, system: &str, check: &str, paused: bool) -> Result<Value, String> {
        let verb = if paused { "pause" } else { "resume" };
        let path = format!(
            "/api/v1/assignments/{}/{}/{verb}",
            path_part(system),
            path_part(check)
        );
        self.call(reqwest::Method::POST, &path, None)
            .await
            .map_err(|e| e.to_string())
    }

    async fn run_now(&self, system: &str, check: &str) -> Result<Value, String> {
        let path = format!(
            "/api/v1/assignments/{}/{}/run",
            path_part(system),
            path_part(check)
        );
        self.call(reqwest::Method::POST, &path, None)
            .await
            .map_err(|e| e.to_string())
    }

    async fn notify(&self, target: &str, text: &str) -> Result<Value, String> {
        let path = format!("/api/v1/notifications/{}/messages", path_part(target));
        self.call(reqwest::Method::POST, &path, Some(json!({"text": text})))
            .await
            .map_err(|e| e.to_string())
    }
}

/// Writes taken in the last minute, across clients.
#[derive(Default)]
pub struct WriteBudget {
    recent: Mutex<VecDeque<Instant>>,
}

impl WriteBudget {
    /// Takes one write within `per_minute` (the configuration's, as it is
    /// now), or says when the next may come.
    pub fn take(&self, per_minute: u32) -> Result<(), String> {
        if per_minute == 0 {
            return Err("writes through MCP are off (`mcp.writesPerMinute: 0`)".into());
        }
        let now = Instant::now();
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        while recent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(60))
        {
            recent.pop_front();
        }
        if recent.len() >= per_minute as usize {
            let wait = recent
                .front()
                .map(|t| Duration::from_secs(60).saturating_sub(now.duration_since(*t)))
                .unwrap_or_default();
            return Err(format!(
                "too many writes: {} a minute (`mcp.writesPerMinute`); try again in {} s",
                per_minute,
                wait.as_secs().max(1)
            ));
        }
        recent.push_back(now);
        Ok(())
    }
}

/// Where each call's tool and outcome (`ok`, `refused`, `error`) are
/// counted: the daemon's `/metrics`, or nowhere over stdio (its log says).
pub trait CallSink: Send + Sync {
    fn count(&self, tool: &str, outcome: &'static str);
}

impl CallSink for crate::serve::metrics::Metrics {
    fn count(&self, tool: &str, outcome: &'static str) {
        self.mcp_calls
            .get_or_create(&crate::serve::metrics::McpCallLabels {
                tool: tool.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
    }
}

/// Calls logged and not counted.
pub struct Uncounted;

impl CallSink for Uncounted {
    fn count(&self, _: &str, _: &'static str) {}
}

/// Everything a tool call reaches.
pub struct Desk {
    pub configs: Arc<dyn Configs>,
    pub store: Arc<Store>,
    pub runtime: Arc<Runtime>,
    pub actions: Arc<dyn Actions>,
    pub writes: WriteBudget,
    /// Held from planning an edit to its reload: edits never interleave.
    pub editing: tokio::sync::Mutex<()>,
    pub calls: Arc<dyn CallSink>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_beyond_the_budget_are_refused_with_the_wait() {
        let budget = WriteBudget::default();
        assert!(budget.take(2).is_ok());
        assert!(budget.take(2).is_ok());
        let refused = budget.take(2).unwrap_err();
        assert!(refused.contains("2 a minute"), "{refused}");
        assert!(
            budget.take(3).is_ok(),
            "a larger budget from a reload applies at once"
        );
        assert!(budget.take(0).unwrap_err().contains("off"));
    }
}
