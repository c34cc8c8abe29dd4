//! The MCP server: its tools, resources and prompts over the desk. Every
//! call is bounded in size, logged with its tool and outcome, and counted.

use std::sync::Arc;

use rmcp::handler::server::router::prompt::PromptRouter;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::ToolCallContext;
use rmcp::handler::server::wrapper;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    ListResourcesResult, PaginatedRequestParams, PromptMessage, ReadResourceRequestParams,
    ReadResourceResponse, ReadResourceResult, Resource, ResourceContents, Role, ServerCapabilities,
    ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{
    ErrorData, Json, RoleServer, ServerHandler, prompt, prompt_handler, prompt_router, tool,
    tool_handler, tool_router,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::args::Parameters;
use super::desk::{Desk, MAX_ARGUMENT_BYTES, Reload};
use super::edit;
use super::proposal::{self, Draft, Proposal};
use super::reads;
use crate::config::environments::effective_environments;
use crate::pipeline::run::{Pipeline, TrialRun};
use crate::pipeline::setup::Setup;
use crate::runtime::{Plugin, PluginKind};
use crate::telemetry::Traces;
use crate::validate::Problem;

/// What a tool that refuses returns: the reason, for the assistant to read.
type Refusal = CallToolResult;

fn refuse(text: impl Into<String>) -> Refusal {
    CallToolResult::error(vec![ContentBlock::text(text.into())])
}

fn refuse_problems(what: &str, problems: &[Problem]) -> Refusal {
    let lines: Vec<String> = problems.iter().map(|p| format!("- {p}")).collect();
    refuse(format!("{what}:\n{}", lines.join("\n")))
}

#[derive(Clone)]
pub struct Tools {
    desk: Arc<Desk>,
    tool_router: ToolRouter<Tools>,
    prompt_router: PromptRouter<Tools>,
}

impl Tools {
    pub fn new(desk: Arc<Desk>) -> Tools {
        Tools {
            desk,
            tool_router: Self::tool_router(),
            prompt_router: Self::prompt_router(),
        }
    }

    /// Writes are bounded per minute across clients; over `/mcp` the
    /// token was checked before the call got here.
    fn may_write(&self) -> Result<(), Refusal> {
        let per_minute = self
            .desk
            .configs
            .current()
            .config
            .file
            .mcp
            .writes_per_minute;
        self.desk.writes.take(per_minute).map_err(refuse)
    }

    async fn draft(&self, proposal: &Proposal) -> Result<Draft, Refusal> {
        let setup = self.desk.configs.current();
        proposal::check(proposal, &setup, &self.desk.runtime)
            .await
            .map_err(|problems| refuse_problems("the proposal is refused", &problems))
    }
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Capabilities {
    pub strategies: Vec<PluginView>,
    pub collectors: Vec<PluginView>,
    /// Environments with the names of their template fields
    /// (`{{ environment.<field> }}`).
    pub environments: Vec<EnvironmentView>,
    pub systems: Vec<SystemView>,
    pub locations: Vec<String>,
    /// The checks configured now, by id.
    pub checks: Vec<String>,
    /// Network rules a proposal may allow (`mcp.allowNetwork`).
    pub allow_network: Vec<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PluginView {
    pub id: String,
    pub name: String,
    pub description: String,
    /// The JSON Schema its `config` follows.
    pub config_schema: Value,
    /// Fields of its result, for assertions: name (dotted when nested),
    /// type, and the meta the host charts and aggregates by.
    pub result_fields: Vec<FieldView>,
    /// Collectors: the strategies they ride on.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub strategies: Vec<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FieldView {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chart: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aggregate: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentView {
    pub id: String,
    pub fields: Vec<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SystemView {
    pub id: String,
    pub name: Option<String>,
    pub environments: Vec<String>,
}

/// Fields a result view lists, at most: a schema is guest-made.
const MAX_FIELDS: usize = 200;

/// The result schema's properties, dotted when nested.
fn result_fields(schema: &Value) -> Vec<FieldView> {
    let mut out = Vec::new();
    walk_fields(schema, "", 0, &mut out);
    out
}

fn walk_fields(schema: &Value, prefix: &str, depth: usize, out: &mut Vec<FieldView>) {
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
        return;
    };
    for (name, field) in properties {
        if out.len() >= MAX_FIELDS {
            return;
        }
        let name = format!("{prefix}{name}");
        let text = |key: &str| field.get(key).and_then(Value::as_str).map(str::to_string);
        let kind = match field.get("type") {
            Some(Value::String(t)) => t.clone(),
            Some(Value::Array(types)) => types
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(" | "),
            _ => "any".into(),
        };
        let nested = kind == "object" && depth < 3;
        out.push(FieldView {
            name: name.clone(),
            kind,
            unit: text("x-unit"),
            chart: text("x-chart"),
            aggregate: text("x-aggregate"),
            description: text("description").map(|d| crate::runtime::text::bounded(d, 200)),
        });
        if nested {
            walk_fields(field, &format!("{name}."), depth + 1, out);
        }
    }
}

fn plugin_view(plugin: &Plugin) -> PluginView {
    let info = &plugin.info;
    PluginView {
        id: info.id.clone(),
        name: info.display_name.clone(),
        description: info.description.clone(),
        config_schema: info.config_schema.clone(),
        result_fields: result_fields(&info.result_schema),
        strategies: info.strategies.clone(),
    }
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Proposed {
    /// `checks:` and `assignments:` to put in the configuration.
    pub yaml: String,
    /// Secrets this process cannot resolve (the daemon may): not blocking.
    pub warnings: Vec<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DryRun {
    /// Whether every run was healthy.
    pub healthy: bool,
    /// One run per environment the check would run in.
    pub runs: Vec<TrialRun>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Applied {
    /// The files changed, as a unified diff.
    pub diff: String,
    pub reload: Reload,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CheckArgs {
    /// The check's id.
    pub check: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AssignmentArgs {
    pub system: String,
    pub check: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NotifyArgs {
    /// A notification target's id (`notifications.targets`).
    pub target: String,
    /// The message, sent in the target's format and signed as every notice.
    pub text: String,
}

/// A daemon's answer, passed on as it came.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Answer {
    #[schemars(with = "Value")]
    pub answer: Value,
}

fn store_error(e: crate::store::StoreError) -> Refusal {
    refuse(format!("the database could not be read: {e}"))
}

#[tool_router]
impl Tools {
    #[tool(
        description = "What checks can be built here: the strategies (how to reach a target) and collectors (what to measure) with their config schemas and result fields; the environments, systems and locations; the network an assistant may open.",
        annotations(read_only_hint = true)
    )]
    async fn capabilities(&self) -> Json<Capabilities> {
        let setup = self.desk.configs.current();
        let file = &setup.config.file;
        let (strategies, collectors): (Vec<&Arc<Plugin>>, Vec<&Arc<Plugin>>) =
            all_plugins(&setup).partition(|p| p.info.kind == PluginKind::Strategy);
        let (strategies, collectors) = (
            strategies.into_iter().map(|p| plugin_view(p)).collect(),
            collectors.into_iter().map(|p| plugin_view(p)).collect(),
        );
        Json(Capabilities {
            strategies,
            collectors,
            environments: file
                .environments
                .iter()
                .map(|e| EnvironmentView {
                    id: e.id.clone(),
                    fields: e.fields.keys().cloned().collect(),
                })
                .collect(),
            systems: file
                .systems
                .iter()
                .map(|s| SystemView {
                    id: s.id.clone(),
                    name: s.name.clone(),
                    environments: s.environments.clone(),
                })
                .collect(),
            locations: file.locations.iter().map(|l| l.id.clone()).collect(),
            checks: file.checks.iter().map(|c| c.id.clone()).collect(),
            allow_network: file.mcp.allow_network.clone(),
        })
    }

    #[tool(
        description = "Draft a check and its assignment to a system from structured fields; returns the YAML, validated as `checkhost validate` does (plugins, config schemas, assertion operators against result field types, templates against each environment, network within mcp.allowNetwork). Changes nothing.",
        annotations(read_only_hint = true)
    )]
    async fn propose_check(
        &self,
        Parameters(proposal): Parameters<Proposal>,
    ) -> Result<Json<Proposed>, Refusal> {
        let draft = self.draft(&proposal).await?;
        Ok(Json(Proposed {
            yaml: draft.yaml(),
            warnings: draft.warnings.iter().map(|p| p.to_string()).collect(),
        }))
    }

    #[tool(
        description = "Run a proposed check once per environment, in the sandbox with its network policy, against the real target; nothing is stored. Returns each run's masked result and which assertions pass.",
        annotations(read_only_hint = true, open_world_hint = true)
    )]
    async fn dry_run(
        &self,
        Parameters(proposal): Parameters<Proposal>,
    ) -> Result<Json<DryRun>, Refusal> {
        let draft = self.draft(&proposal).await?;
        let setup = self.desk.configs.current();
        let mut config = setup.config.file.clone();
        config.checks = vec![draft.check.clone()];
        config.assignments = vec![draft.assignment.clone()];
        let Some(system) = config.system(&draft.assignment.system).cloned() else {
            return Err(refuse(format!(
                "unknown system `{}`",
                draft.assignment.system
            )));
        };
        let pipeline = Pipeline {
            runtime: &self.desk.runtime,
            plugins: &setup.plugins,
            config: &config,
            store: &self.desk.store,
            secrets: setup.secrets.clone(),
            concurrency: 1,
            start_by: None,
            traces: Traces::off(),
        };
        let prepared = pipeline
            .prepare(&draft.check)
            .await
            .map_err(|e| refuse(format!("the check cannot run: {e}")))?;
        let mut runs = Vec::new();
        for env in effective_environments(&draft.assignment.environments, &system.environments) {
            runs.push(pipeline.try_slice(&prepared, &system, env.as_deref()).await);
        }
        Ok(Json(DryRun {
            healthy: runs.iter().all(|r| r.healthy),
            runs,
        }))
    }

    #[tool(
        description = "Add or replace a check and its assignment in the configuration file (comments kept) or, for a folder, in a file of its own; refused when the proposal does not validate or the files are read-only. Returns the diff and whether the configuration in force took it.",
        annotations(destructive_hint = false, idempotent_hint = true)
    )]
    async fn apply_check(
        &self,
        Parameters(proposal): Parameters<Proposal>,
    ) -> Result<Json<Applied>, Refusal> {
        self.may_write()?;
        let draft = self.draft(&proposal).await?;
        let edits = edit::plan_apply(
            self.desk.configs.path(),
            &draft.check.id,
            &draft.assignment.system,
            &draft.check_value,
            &draft.assignment_value,
            &format!("# Added through checkhost mcp.\n{}", draft.yaml()),
        )
        .map_err(|e| refuse(e.to_string()))?;
        self.write(edits).await
    }

    #[tool(
        description = "Take a check and all its assignments out of the configuration. Returns the diff and whether the configuration in force took it.",
        annotations(destructive_hint = true, idempotent_hint = true)
    )]
    async fn remove_check(
        &self,
        Parameters(args): Parameters<CheckArgs>,
    ) -> Result<Json<Applied>, Refusal> {
        self.may_write()?;
        let edits = edit::plan_remove(self.desk.configs.path(), &args.check)
            .map_err(|e| refuse(e.to_string()))?;
        self.write(edits).await
    }

    #[tool(
        description = "Current status of every system (or one, with its checks and their newest runs).",
        annotations(read_only_hint = true)
    )]
    async fn status(
        &self,
        Parameters(args): Parameters<reads::StatusArgs>,
    ) -> Result<Json<reads::StatusView>, Refusal> {
        reads::status(&self.desk.store, &args)
            .await
            .map(Json)
            .map_err(store_error)
    }

    #[tool(
        description = "Uptime and latency of a system (or one check or environment of it) in hourly or daily buckets.",
        annotations(read_only_hint = true)
    )]
    async fn history(
        &self,
        Parameters(args): Parameters<reads::HistoryArgs>,
    ) -> Result<Json<reads::HistoryView>, Refusal> {
        reads::history(&self.desk.store, &args)
            .await
            .map(Json)
            .map_err(store_error)
    }

    #[tool(
        description = "Status changes, newest first, a page at a time.",
        annotations(read_only_hint = true)
    )]
    async fn transitions(
        &self,
        Parameters(args): Parameters<reads::TransitionsArgs>,
    ) -> Result<Json<reads::TransitionsPage>, Refusal> {
        reads::transitions(&self.desk.store, &args)
            .await
            .map(Json)
            .map_err(store_error)
    }

    #[tool(
        description = "Stored runs, newest first, a page at a time, masked; results on request.",
        annotations(read_only_hint = true)
    )]
    async fn runs(
        &self,
        Parameters(args): Parameters<reads::RunsArgs>,
    ) -> Result<Json<reads::RunsPage>, Refusal> {
        reads::runs(&self.desk.store, &args)
            .await
            .map(Json)
            .map_err(store_error)
    }

    #[tool(description = "Pause an assignment on the running daemon until resumed.")]
    async fn pause(
        &self,
        Parameters(args): Parameters<AssignmentArgs>,
    ) -> Result<Json<Answer>, Refusal> {
        self.may_write()?;
        answer(
            self.desk
                .actions
                .set_paused(&args.system, &args.check, true)
                .await,
        )
    }

    #[tool(description = "Resume a paused assignment on the running daemon.")]
    async fn resume(
        &self,
        Parameters(args): Parameters<AssignmentArgs>,
    ) -> Result<Json<Answer>, Refusal> {
        self.may_write()?;
        answer(
            self.desk
                .actions
                .set_paused(&args.system, &args.check, false)
                .await,
        )
    }

    #[tool(
        description = "Run an assignment now on the running daemon, stored like a scheduled run.",
        annotations(open_world_hint = true)
    )]
    async fn run_now(
        &self,
        Parameters(args): Parameters<AssignmentArgs>,
    ) -> Result<Json<Answer>, Refusal> {
        self.may_write()?;
        answer(self.desk.actions.run_now(&args.system, &args.check).await)
    }

    #[tool(
        description = "Send a message to a configured notification target through the daemon's outbox, in the target's format and signed like every notice.",
        annotations(open_world_hint = true)
    )]
    async fn notify(
        &self,
        Parameters(args): Parameters<NotifyArgs>,
    ) -> Result<Json<Answer>, Refusal> {
        self.may_write()?;
        answer(self.desk.actions.notify(&args.target, &args.text).await)
    }
}

fn answer(result: Result<Value, String>) -> Result<Json<Answer>, Refusal> {
    result.map(|answer| Json(Answer { answer })).map_err(refuse)
}

impl Tools {
    /// Writes the edits and reloads; a configuration the reload refuses is
    /// put back as it was, so no edit leaves a file the daemon will not run.
    async fn write(&self, edits: Vec<edit::FileEdit>) -> Result<Json<Applied>, Refusal> {
        let refused = |e: edit::EditError| refuse(e.to_string());
        edit::check(&edits).map_err(refused)?;
        edit::write(&edits).map_err(refused)?;
        let reload = self.desk.configs.reload(&self.desk.runtime).await;
        if !reload.applied {
            edit::undo(&edits).map_err(refused)?;
            let back = self.desk.configs.reload(&self.desk.runtime).await;
            tracing::warn!(reason = %reload.message, restored = back.applied, "MCP edit undone");
            return Err(refuse(format!("the edit was undone: {}", reload.message)));
        }
        for e in &edits {
            tracing::info!(file = %e.path.display(), "configuration edited through MCP");
        }
        Ok(Json(Applied {
            diff: edit::diff(&edits),
            reload,
        }))
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct AddCheckPrompt {
    /// The URL to watch.
    pub url: String,
    /// The system it belongs to.
    #[serde(default)]
    pub system: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ExplainPrompt {
    /// The system whose status to explain.
    pub system: String,
}

#[prompt_router]
impl Tools {
    #[prompt(
        name = "add_check_for_url",
        description = "Watch a URL: propose, dry-run and apply a check for it"
    )]
    async fn add_check_for_url(
        &self,
        wrapper::Parameters(args): wrapper::Parameters<AddCheckPrompt>,
    ) -> Vec<PromptMessage> {
        let system = args
            .system
            .map(|s| format!(" in system `{s}`"))
            .unwrap_or_default();
        vec![PromptMessage::new_text(
            Role::User,
            format!(
                "Add a health check for {url}{system} with checkhost.\n\
                 1. Call `capabilities` to see the strategies, collectors, their config schemas and result fields, and the systems and environments.\n\
                 2. Call `propose_check` with the http strategy and a request collector for the URL, asserting the status code and a response time; fix every problem it names.\n\
                 3. Call `dry_run` with the same proposal and show me which assertions pass.\n\
                 4. Only if I agree, call `apply_check`, then `status` for its first run.",
                url = args.url
            ),
        )]
    }

    #[prompt(
        name = "explain_degraded",
        description = "Explain why a system is degraded or unhealthy, from its status, transitions and failing runs"
    )]
    async fn explain_degraded(
        &self,
        wrapper::Parameters(args): wrapper::Parameters<ExplainPrompt>,
    ) -> Vec<PromptMessage> {
        let store = &self.desk.store;
        let status = reads::status(
            store,
            &reads::StatusArgs {
                system: Some(args.system.clone()),
                limit: None,
                after: None,
            },
        )
        .await
        .map(|v| serde_json::to_string(&v).unwrap_or_default())
        .unwrap_or_else(|e| format!("(status unavailable: {e})"));
        let failing = reads::runs(
            store,
            &reads::RunsArgs {
                system: Some(args.system.clone()),
                check: None,
                environment: None,
                status: Some(reads::RunStatus::Unhealthy),
                limit: Some(5),
                before: None,
                with_results: true,
            },
        )
        .await
        .map(|v| serde_json::to_string(&v).unwrap_or_default())
        .unwrap_or_else(|e| format!("(runs unavailable: {e})"));
        vec![PromptMessage::new_text(
            Role::User,
            format!(
                "Explain why system `{system}` is not healthy, and what to do about it. \
                 Its status now:\n{status}\n\nIts newest failing runs:\n{failing}\n\n\
                 Use `transitions` (entity `{system}`) for when it changed and `history` for how long it has been so. \
                 Name the failing check, environment and assertion, and quote the error.",
                system = args.system
            ),
        )]
    }
}

const CONFIG_SCHEMA_URI: &str = "checkhost://schema/config";

/// Every loaded plugin, strategies first, each kind by id.
fn all_plugins(setup: &Setup) -> impl Iterator<Item = &Arc<Plugin>> {
    let plugins = &setup.plugins;
    let strategies = plugins
        .strategy_ids()
        .into_iter()
        .filter_map(|id| plugins.strategy(id));
    let collectors = plugins
        .collector_ids()
        .into_iter()
        .filter_map(|id| plugins.collector(id));
    strategies.chain(collectors)
}

fn plugin_uri(plugin: &Plugin, which: &str) -> String {
    let kind = match plugin.info.kind {
        PluginKind::Strategy => "strategies",
        PluginKind::Collector => "collectors",
    };
    format!("checkhost://plugins/{kind}/{}/{which}", plugin.info.id)
}

#[tool_handler(router = self.tool_router)]
#[prompt_handler(router = self.prompt_router)]
impl ServerHandler for Tools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_prompts()
                .enable_resources()
                .build(),
        )
        .with_server_info(Implementation::new("checkhost", env!("CARGO_PKG_VERSION")))
        .with_instructions(
            "checkhost runs health checks as sandboxed WebAssembly plugins. Start with `capabilities`; \
             draft checks with `propose_check`, try them with `dry_run`, and apply them with `apply_check`. \
             `status`, `history`, `transitions` and `runs` read what the checks found.",
        )
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let tool = request.name.to_string();
        let size = request
            .arguments
            .as_ref()
            .map_or(0, |a| serde_json::to_vec(a).map_or(0, |v| v.len()));
        let answer = if size > MAX_ARGUMENT_BYTES {
            Err(ErrorData::invalid_params(
                format!(
                    "arguments of `{tool}` are {size} bytes; at most {MAX_ARGUMENT_BYTES} are read"
                ),
                None,
            ))
        } else {
            let call = ToolCallContext::new(self, request, context);
            self.tool_router.call(call).await
        };
        let outcome = match &answer {
            Ok(CallToolResponse::Complete(result)) if result.is_error == Some(true) => "refused",
            Ok(_) => "ok",
            Err(_) => "error",
        };
        match &answer {
            Err(e) => tracing::warn!(tool, outcome, error = %e.message, "MCP tool call"),
            _ => tracing::info!(tool, outcome, "MCP tool call"),
        }
        // The label names a tool of this server, never what a client sent.
        let label = if self.tool_router.has_route(&tool) {
            tool.as_str()
        } else {
            "unknown"
        };
        self.desk.calls.count(label, outcome);
        answer
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<rmcp::model::ListResourcesResult, ErrorData> {
        let setup = self.desk.configs.current();
        let mut resources = vec![
            Resource::new(CONFIG_SCHEMA_URI, "config-schema")
                .with_description("The JSON Schema of checkhost's configuration file")
                .with_mime_type("application/schema+json"),
        ];
        for plugin in all_plugins(&setup) {
            for (which, what) in [("config-schema", "config"), ("result-schema", "result")] {
                resources.push(
                    Resource::new(
                        plugin_uri(plugin, which),
                        format!("{} {which}", plugin.info.id),
                    )
                    .with_description(format!(
                        "The JSON Schema of plugin `{}`'s {what}",
                        plugin.info.id
                    ))
                    .with_mime_type("application/schema+json"),
                );
            }
        }
        Ok(ListResourcesResult::with_all_items(resources))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let uri = request.uri;
        let schema = if uri == CONFIG_SCHEMA_URI {
            Some(serde_json::to_value(crate::config::json_schema()).unwrap_or_default())
        } else {
            let setup = self.desk.configs.current();
            all_plugins(&setup).find_map(|p| {
                if uri == plugin_uri(p, "config-schema") {
                    Some(p.info.config_schema.clone())
                } else if uri == plugin_uri(p, "result-schema") {
                    Some(p.info.result_schema.clone())
                } else {
                    None
                }
            })
        };
        match schema {
            Some(schema) => Ok(ReadResourceResult::new(vec![
                ResourceContents::text(
                    serde_json::to_string_pretty(&schema).unwrap_or_default(),
                    uri,
                )
                .with_mime_type("application/schema+json"),
            ])
            .into()),
            None => Err(ErrorData::resource_not_found(
                format!("no resource `{uri}`: `resources/list` names them"),
                Some(json!({"uri": uri})),
            )),
        }
    }
}
