//! The configuration file, as operators write it.

use std::collections::BTreeMap;
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::span::TimeSpan;
use crate::runtime::PolicySpec;

#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(title = "checkhost configuration")]
pub struct ConfigFile {
    /// Folder of plugin components (`*.wasm`), relative to this file.
    #[serde(default)]
    pub plugins: Option<PathBuf>,
    /// `sqlite://path` (relative to this file) or `postgres://...`.
    #[serde(default)]
    pub database: Option<String>,
    #[serde(default)]
    pub secrets: SecretsConfig,
    #[serde(default)]
    pub environments: Vec<Environment>,
    /// Places probes run checks from (`checkhost probe --location ID`).
    #[serde(default)]
    pub locations: Vec<Location>,
    /// How the server judges its probes.
    #[serde(default)]
    pub probes: ProbesConfig,
    #[serde(default)]
    pub systems: Vec<System>,
    #[serde(default)]
    pub checks: Vec<Check>,
    #[serde(default)]
    pub assignments: Vec<Assignment>,
    #[serde(default)]
    pub api: ApiConfig,
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// A trace per run over OTLP. Off unless an endpoint is set here or in
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`;
    /// what is set here wins over the environment.
    #[serde(default)]
    pub traces: TracesConfig,
    #[serde(default)]
    pub notifications: Notifications,
    /// Status, uptime and latency badges at `/badge/{system}/…`: `public`
    /// serves them without the token (even when `api.reads: token`),
    /// `off` does not serve them. Default: `public` when reads are public,
    /// `off` when they need the token.
    #[serde(default)]
    pub badges: Option<BadgeAccess>,
    /// What AI assistants may do through `checkhost mcp` and `/mcp`.
    #[serde(default)]
    pub mcp: McpConfig,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum BadgeAccess {
    Public,
    Off,
}

/// Who may use the REST API of `checkhost serve`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApiConfig {
    /// Bearer token for the mutating endpoints (run, pause, resume), as a
    /// secret reference: `${{ secrets.API_TOKEN }}`. Without it they are off.
    pub token: Option<String>,
    /// `public` (default): anyone may read the API and the status page;
    /// `token`: reads need the bearer token too.
    #[serde(default)]
    pub reads: ReadAccess,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ReadAccess {
    #[default]
    Public,
    Token,
}

/// Webhooks fired on status transitions, and when they stay quiet.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Notifications {
    #[serde(default)]
    pub targets: Vec<WebhookTarget>,
    /// Windows that silence notifications (never monitoring).
    #[serde(default)]
    pub maintenance: Vec<MaintenanceWindow>,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WebhookTarget {
    pub id: String,
    /// `http(s)://…`, or a secret reference when the URL itself is secret.
    pub url: String,
    #[serde(default)]
    pub format: WebhookFormat,
    /// The body for `format: template`: a minijinja template over
    /// `transition`, `system`, `check`, `environment`, `kind`, `reminder`.
    pub template: Option<String>,
    /// Content type of a templated body (default `application/json`).
    pub content_type: Option<String>,
    /// Fires for every assignment; otherwise only for assignments that list
    /// this target in `notify:`.
    #[serde(default)]
    pub default: bool,
    /// HMAC-SHA256 key for the `X-Checkhost-Signature` header, as a secret
    /// reference.
    pub signing_secret: Option<String>,
    /// Extra request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Per-attempt timeout, e.g. `10s`.
    #[serde(default = "default_webhook_timeout")]
    #[schemars(with = "String")]
    pub timeout: TimeSpan,
    /// Attempts before a notice is given up (`failed`).
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    #[serde(default = "yes")]
    pub on_escalation: bool,
    /// `false` keeps quiet when a status gets better but not yet healthy.
    #[serde(default = "yes")]
    pub on_de_escalation: bool,
    #[serde(default = "yes")]
    pub on_recovery: bool,
    /// Repeat the notice this often while the entity stays unhealthy, e.g.
    /// `1h`. Absent: no reminders.
    #[schemars(with = "Option<String>")]
    pub minimum_reminder_interval: Option<TimeSpan>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum WebhookFormat {
    /// `{"event": "transition", "transition": {...}, ...}`
    #[default]
    Json,
    /// `{"text": "..."}`, as Slack, Mattermost and Rocket.Chat take it.
    Slack,
    Template,
}

/// A window that silences notifications: a fixed `start`–`end` range, or a
/// recurrence (`cron`, five fields, UTC) lasting `duration`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MaintenanceWindow {
    pub id: String,
    /// Systems it silences (empty: every system).
    #[serde(default)]
    pub systems: Vec<String>,
    /// Environments it silences (empty: every environment).
    #[serde(default)]
    pub environments: Vec<String>,
    /// RFC 3339, e.g. `2026-12-01T02:00:00Z`.
    pub start: Option<String>,
    pub end: Option<String>,
    /// `minute hour day-of-month month day-of-week`, e.g. `0 2 * * sun`
    /// (UTC); `L`, `W`, `#` and nicknames like `@daily` work too.
    pub cron: Option<String>,
    /// How long each recurrence lasts, e.g. `2h`.
    #[schemars(with = "Option<String>")]
    pub duration: Option<TimeSpan>,
}

fn default_webhook_timeout() -> TimeSpan {
    TimeSpan::from_secs(10)
}

fn default_attempts() -> u32 {
    10
}

fn yes() -> bool {
    true
}

/// Where `${{ secrets.NAME }}` references are resolved.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct SecretsConfig {
    /// Read `NAME` from the environment variable `<envPrefix>NAME`.
    pub env_prefix: Option<String>,
    /// Read `NAME` from the file `<dir>/NAME` (trailing newline trimmed),
    /// relative to this file.
    pub dir: Option<PathBuf>,
}

impl Default for SecretsConfig {
    fn default() -> Self {
        SecretsConfig {
            env_prefix: Some("CHECKHOST_SECRET_".into()),
            dir: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Environment {
    pub id: String,
    pub name: Option<String>,
    /// Free-form values for templates: `{{ environment.baseUrl }}`.
    #[serde(default)]
    pub fields: serde_json::Map<String, Value>,
}

/// A place probes run checks from, e.g. a region.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Location {
    pub id: String,
    pub name: Option<String>,
}

/// What `/metrics` exposes beyond the fixed series.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Checks whose guest cost is labelled by check (the costliest by
    /// CPU); the rest are summed under `check="(other)"`.
    pub check_labels: usize,
    /// How often the objectives' gauges are evaluated, e.g. `30s`: each
    /// evaluation reads every objective's window of aggregates.
    #[schemars(with = "String")]
    pub slo_every: TimeSpan,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            check_labels: 100,
            slo_every: TimeSpan::from_secs(30),
        }
    }
}

/// The bounds of the MCP tools.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct McpConfig {
    /// Network rules a proposed check's `network.allow` may use (each of
    /// its rules must lie within one of these): an assistant cannot open
    /// more of the network than this. Empty: proposals allow nothing
    /// beyond the default policy.
    pub allow_network: Vec<String>,
    /// Secrets (names, as in `${{ secrets.NAME }}`) a proposed check may
    /// use. A granted secret goes wherever the check's network policy lets
    /// it; others are refused. Empty: proposals use no secret.
    pub secrets: Vec<String>,
    /// Calls of the tools that act (dry run, apply, remove, pause, resume,
    /// run now, notify) per minute, across clients; 0 turns them off.
    pub writes_per_minute: u32,
}

impl Default for McpConfig {
    fn default() -> Self {
        McpConfig {
            allow_network: Vec::new(),
            secrets: Vec::new(),
            writes_per_minute: 10,
        }
    }
}

/// Where and how run traces are exported.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct TracesConfig {
    /// The OTLP endpoint, e.g. `http://collector:4318` (HTTP; spans go to
    /// `/v1/traces` under it) or `http://collector:4317` (gRPC).
    pub endpoint: Option<String>,
    pub protocol: Option<OtlpProtocol>,
    /// The share of healthy runs traced, from 0 to 1 (default 1). Failed
    /// runs are always traced.
    pub sample_ratio: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
pub enum OtlpProtocol {
    #[serde(rename = "http/protobuf")]
    HttpProtobuf,
    #[serde(rename = "grpc")]
    Grpc,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ProbesConfig {
    /// How often probes report in, e.g. `10s`.
    #[schemars(with = "String")]
    pub heartbeat: TimeSpan,
    /// Heartbeats a location may miss before its slices record `no-probe`
    /// runs (degraded) instead of going stale.
    pub offline_after: u32,
    /// How far a probe's clock may be from the server's before its batches
    /// are refused, e.g. `30s`.
    #[schemars(with = "String")]
    pub max_clock_skew: TimeSpan,
}

impl ProbesConfig {
    /// How long a probe may be silent and still count as online.
    pub fn offline_window_ms(&self) -> i64 {
        self.heartbeat.as_millis() * i64::from(self.offline_after.max(1))
    }
}

impl Default for ProbesConfig {
    fn default() -> Self {
        ProbesConfig {
            heartbeat: TimeSpan::from_secs(10),
            offline_after: 3,
            max_clock_skew: TimeSpan::from_secs(30),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct System {
    pub id: String,
    pub name: Option<String>,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// Environments this system belongs to.
    #[serde(default)]
    pub environments: Vec<String>,
    /// Systems (`db`) or environments of them (`db::production`) this one
    /// needs: while one is unhealthy, this system's notices are held.
    #[serde(default)]
    pub depends_on: Vec<String>,
    /// An objective over all of this system's runs.
    #[serde(default)]
    pub slo: Option<Slo>,
}

/// A service level objective over a rolling window. By availability
/// (`{objective: 99.9, window: 30d}`): the share of runs that must be
/// healthy. By latency (`{objective: 99, latency: {percentile: 95,
/// belowMs: 800}}`): the share of time slices whose percentile latency
/// must stay below the bound.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Slo {
    /// Percent of runs (or, by latency, of time slices) that must be good,
    /// between 0 and 100 (exclusive).
    pub objective: f64,
    /// The rolling window, e.g. `30d` (default), `7d`.
    #[serde(default = "default_slo_window")]
    #[schemars(with = "String")]
    pub window: TimeSpan,
    /// Judge latency instead of health: a slice (an hour of the window, 5
    /// minutes of a burn-rate window) is good when this percentile of its
    /// runs' latencies is below `belowMs`.
    #[serde(default)]
    pub latency: Option<LatencyObjective>,
}

/// `p<percentile> < <belowMs> ms`, per time slice.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LatencyObjective {
    /// Which percentile of a slice's latencies, e.g. 95; above 0, at most 100.
    pub percentile: f64,
    /// The bound it must stay below, in milliseconds.
    pub below_ms: f64,
}

impl std::fmt::Display for LatencyObjective {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "p{} < {} ms", self.percentile, self.below_ms)
    }
}

fn default_slo_window() -> TimeSpan {
    TimeSpan::from_days(30)
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Check {
    pub id: String,
    pub name: Option<String>,
    pub strategy: StrategyRef,
    /// How often to run, e.g. `30s`, `5m`.
    #[serde(default = "default_interval")]
    #[schemars(with = "String")]
    pub interval: TimeSpan,
    /// Deadline of each run, e.g. `5s`.
    #[serde(default = "default_timeout")]
    #[schemars(with = "String")]
    pub timeout: TimeSpan,
    /// Linear memory each guest of a run may grow to, in MiB (default 64).
    #[serde(default)]
    pub memory_mib: Option<u64>,
    /// Host memory the guests of a run may make the host hold (HTTP
    /// fields, requests, bodies, streams), in MiB (default 64).
    #[serde(default)]
    pub host_memory_mib: Option<u64>,
    /// Sockets and outgoing HTTP connections a run may hold open at once
    /// (default 64).
    #[serde(default)]
    pub max_sockets: Option<usize>,
    #[serde(default)]
    pub network: PolicySpec,
    #[serde(default)]
    pub collectors: Vec<CollectorRef>,
    /// Probe locations that run this check instead of the server (ids of
    /// `locations`); an assignment's own list wins.
    #[serde(default)]
    pub locations: Vec<String>,
    /// Sends a W3C `traceparent` header with the run's HTTP requests, so
    /// the target's own traces join the run's (when traces are on).
    #[serde(default)]
    pub propagate_trace: bool,
}

fn default_interval() -> TimeSpan {
    TimeSpan::from_secs(60)
}

fn default_timeout() -> TimeSpan {
    TimeSpan::from_secs(30)
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StrategyRef {
    /// Strategy plugin id, e.g. `http`.
    pub plugin: String,
    #[serde(default = "empty_object")]
    pub config: Value,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CollectorRef {
    /// Collector plugin id, e.g. `request`.
    pub plugin: String,
    #[serde(default = "empty_object")]
    pub config: Value,
    /// Environment variables for this collector only:
    /// `{API_TOKEN: "${{ secrets.API_TOKEN }}"}`.
    #[serde(default)]
    pub secret_env: BTreeMap<String, String>,
    #[serde(default)]
    pub assertions: Vec<Assertion>,
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Assertion {
    /// A result field, dotted for nesting: `statusCode`, `body.status`.
    pub field: Option<String>,
    /// A JSONPath into the result: `$.body.items[0].id`.
    pub json_path: Option<String>,
    pub operator: Operator,
    #[serde(default)]
    pub value: Value,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum Operator {
    Equals,
    NotEquals,
    LessThan,
    LessThanOrEqual,
    GreaterThan,
    GreaterThanOrEqual,
    Contains,
    NotContains,
    StartsWith,
    EndsWith,
    Matches,
    IsTrue,
    IsFalse,
    Exists,
    NotExists,
}

/// The kind of value an operator judges, for validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperandKind {
    Any,
    Number,
    String,
    Boolean,
}

impl Operator {
    pub fn operand(self) -> OperandKind {
        use Operator::*;
        match self {
            Equals | NotEquals | Exists | NotExists => OperandKind::Any,
            LessThan | LessThanOrEqual | GreaterThan | GreaterThanOrEqual => OperandKind::Number,
            Contains | NotContains | StartsWith | EndsWith | Matches => OperandKind::String,
            IsTrue | IsFalse => OperandKind::Boolean,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Assignment {
    pub system: String,
    pub check: String,
    /// `null`/absent: every environment the system belongs to; `[]`: one
    /// run without environment; a list: those ∩ the system's membership.
    #[serde(default, deserialize_with = "explicit_null")]
    #[schemars(with = "Option<Vec<String>>")]
    pub environments: EnvSelection,
    #[serde(default)]
    pub thresholds: Thresholds,
    #[serde(default)]
    pub paused: bool,
    /// Webhook targets (ids) for this assignment's transitions, besides the
    /// `default` ones.
    #[serde(default)]
    pub notify: Vec<String>,
    /// Flapping detection, off unless given (`flapping: {}` takes the
    /// defaults: 3 changes within 60m).
    #[serde(default)]
    pub flapping: Option<Flapping>,
    /// Probe locations that run it instead of the server; absent: the
    /// check's `locations`; `[]`: the server.
    #[serde(default)]
    pub locations: Option<Vec<String>>,
    /// Besides the system's `dependsOn`: what this assignment needs
    /// (`db`, `db::production`); while one is unhealthy its notices are held.
    #[serde(default)]
    pub depends_on: Vec<String>,
    /// An availability objective over this assignment's runs.
    #[serde(default)]
    pub slo: Option<Slo>,
}

/// A slice whose status changed `changes` times within `window` is
/// flapping: the notice of the change that made it so says so, once, and
/// the notices of further changes are held back until it settles.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Flapping {
    #[serde(default = "three")]
    pub changes: u32,
    /// A duration: `90s`, `60m`, `2h`.
    #[serde(default = "an_hour")]
    #[schemars(with = "String")]
    pub window: TimeSpan,
}

impl Default for Flapping {
    fn default() -> Self {
        Flapping {
            changes: three(),
            window: an_hour(),
        }
    }
}

fn an_hour() -> TimeSpan {
    TimeSpan::from_minutes(60)
}

/// `environments:` of an assignment; null, [] and a list stay distinct.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum EnvSelection {
    #[default]
    All,
    List(Vec<String>),
}

fn explicit_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<EnvSelection, D::Error> {
    Ok(match Option::<Vec<String>>::deserialize(d)? {
        None => EnvSelection::All,
        Some(list) => EnvSelection::List(list),
    })
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(tag = "mode", rename_all = "camelCase", deny_unknown_fields)]
pub enum Thresholds {
    /// Counts the streak of failures from the newest run.
    Consecutive {
        #[serde(default = "two")]
        degraded: u32,
        #[serde(default = "five")]
        unhealthy: u32,
        /// Successes in a row needed to leave degraded or unhealthy.
        #[serde(default = "one")]
        healthy: u32,
    },
    /// Counts failures among the last `size` runs.
    Window {
        #[serde(default = "ten")]
        size: u32,
        #[serde(default = "three")]
        degraded: u32,
        #[serde(default = "seven")]
        unhealthy: u32,
        /// Successes in a row needed to leave degraded or unhealthy.
        #[serde(default = "one")]
        healthy: u32,
    },
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds::Consecutive {
            degraded: 2,
            unhealthy: 5,
            healthy: 1,
        }
    }
}

fn one() -> u32 {
    1
}
fn two() -> u32 {
    2
}
fn three() -> u32 {
    3
}
fn five() -> u32 {
    5
}
fn seven() -> u32 {
    7
}
fn ten() -> u32 {
    10
}

impl ConfigFile {
    pub fn environment(&self, id: &str) -> Option<&Environment> {
        self.environments.iter().find(|e| e.id == id)
    }

    pub fn system(&self, id: &str) -> Option<&System> {
        self.systems.iter().find(|s| s.id == id)
    }

    pub fn location(&self, id: &str) -> Option<&Location> {
        self.locations.iter().find(|l| l.id == id)
    }

    pub fn check(&self, id: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_empty_and_list_environments_stay_distinct() {
        let yaml = "- {system: a, check: c}\n- {system: a, check: c, environments: null}\n\
                    - {system: a, check: c, environments: []}\n- {system: a, check: c, environments: [x]}";
        let parsed: Vec<Assignment> = serde_yaml_ng::from_str(yaml).unwrap();
        assert_eq!(parsed[0].environments, EnvSelection::All);
        assert_eq!(parsed[1].environments, EnvSelection::All);
        assert_eq!(parsed[2].environments, EnvSelection::List(vec![]));
        assert_eq!(parsed[3].environments, EnvSelection::List(vec!["x".into()]));
    }
}
