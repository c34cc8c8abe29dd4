//! `checkhost validate`: everything that can be known before a run, with
//! the exact place of each problem. Nothing is persisted.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;

use crate::config::environments::effective_environments;
use crate::config::{Assertion, ConfigFile, OperandKind};
use crate::pipeline::assert::assertion_path;
use crate::pipeline::plugins::PluginSet;
use crate::pipeline::render::{context, render_config};
use crate::pipeline::schema_walk::{is_open, schema_at, types_of, visit_strings};
use crate::pipeline::secrets::{SecretProvider, reference_name};
use crate::pipeline::setup::Setup;
use crate::runtime::{NetworkPolicy, Plugin, PluginKind, Runtime};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// `checks[homepage].collectors[0].config.url`
    pub place: String,
    pub message: String,
    /// A secret the provider cannot resolve now: `run` records the affected
    /// runs as failed instead of refusing the whole configuration.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub missing_secret: bool,
    /// A plugin's fault, not the configuration's (a file that does not
    /// load, a migration that fails or hangs): `run` and `serve` fail the
    /// checks that use it and run the others.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub plugin_fault: bool,
}

impl Problem {
    /// Whether the problem stops a configuration from running at all.
    pub fn blocks_running(&self) -> bool {
        !self.missing_secret && !self.plugin_fault
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.place, self.message)
    }
}

struct Problems(Vec<Problem>);

impl Problems {
    fn add(&mut self, place: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem {
            place: place.into(),
            message: message.into(),
            missing_secret: false,
            plugin_fault: false,
        });
    }

    fn plugin_fault(&mut self, place: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem {
            place: place.into(),
            message: message.into(),
            missing_secret: false,
            plugin_fault: true,
        });
    }

    fn missing_secret(&mut self, place: impl Into<String>, name: &str, secrets: &SecretProvider) {
        self.0.push(Problem {
            place: place.into(),
            message: format!(
                "secret `{name}` cannot be resolved ({})",
                secrets.describe()
            ),
            missing_secret: true,
            plugin_fault: false,
        });
    }
}

/// The problems that stop a loaded configuration from running. A missing
/// secret does not, nor a plugin's fault: each fails the runs it concerns,
/// by name.
/// With `selected`, only those checks are validated as far as their
/// plugins go (the others' may not be loaded); the rest of the config is
/// validated whole.
pub async fn blocking_problems(
    setup: &Setup,
    runtime: &Runtime,
    selected: Option<&BTreeSet<String>>,
) -> Vec<Problem> {
    let (config, plugins, secrets) = (&setup.config.file, &setup.plugins, &setup.secrets);
    validate_selected(config, plugins, runtime, secrets, selected)
        .await
        .into_iter()
        .filter(Problem::blocks_running)
        .collect()
}

pub async fn validate(
    config: &ConfigFile,
    plugins: &PluginSet,
    runtime: &Runtime,
    secrets: &SecretProvider,
) -> Vec<Problem> {
    validate_selected(config, plugins, runtime, secrets, None).await
}

async fn validate_selected(
    config: &ConfigFile,
    plugins: &PluginSet,
    runtime: &Runtime,
    secrets: &SecretProvider,
    selected: Option<&BTreeSet<String>>,
) -> Vec<Problem> {
    let mut p = Problems(Vec::new());
    for broken in plugins.broken() {
        p.plugin_fault(broken.path.display().to_string(), broken.error.clone());
    }
    check_ids(
        &mut p,
        "environments",
        config.environments.iter().map(|e| &e.id),
    );
    check_ids(&mut p, "systems", config.systems.iter().map(|s| &s.id));
    check_ids(&mut p, "checks", config.checks.iter().map(|c| &c.id));
    check_ids(&mut p, "locations", config.locations.iter().map(|l| &l.id));
    let location_ids: BTreeSet<&str> = config.locations.iter().map(|l| l.id.as_str()).collect();
    let unknown_locations = |p: &mut Problems, place: &str, listed: &[String]| {
        for (j, location) in listed.iter().enumerate() {
            if !location_ids.contains(location.as_str()) {
                p.add(
                    format!("{place}.locations[{j}]"),
                    format!("unknown location `{location}`: declare it under `locations:`"),
                );
            }
        }
    };
    for check in &config.checks {
        unknown_locations(&mut p, &format!("checks[{}]", check.id), &check.locations);
    }
    for (i, a) in config.assignments.iter().enumerate() {
        unknown_locations(
            &mut p,
            &format!("assignments[{i}]"),
            a.locations.as_deref().unwrap_or(&[]),
        );
    }
    if config.probes.offline_after == 0 {
        p.add("probes.offlineAfter", "must be at least 1");
    }
    let env_ids: BTreeSet<&str> = config.environments.iter().map(|e| e.id.as_str()).collect();
    for system in &config.systems {
        for (i, env) in system.environments.iter().enumerate() {
            if !env_ids.contains(env.as_str()) {
                p.add(
                    format!("systems[{}].environments[{i}]", system.id),
                    format!("unknown environment `{env}`"),
                );
            }
        }
    }
    for check in &config.checks {
        let with_plugins = selected.is_none_or(|ids| ids.contains(&check.id));
        let plugins = with_plugins.then_some(plugins);
        validate_check(&mut p, config, check, plugins, runtime, secrets).await;
    }
    let mut seen = BTreeSet::new();
    for (i, a) in config.assignments.iter().enumerate() {
        let place = format!("assignments[{i}]");
        if config.system(&a.system).is_none() {
            p.add(
                format!("{place}.system"),
                format!("unknown system `{}`", a.system),
            );
        }
        if config.check(&a.check).is_none() {
            p.add(
                format!("{place}.check"),
                format!("unknown check `{}`", a.check),
            );
        }
        if !seen.insert((&a.system, &a.check)) {
            p.add(
                &place,
                format!(
                    "system `{}` is assigned check `{}` twice",
                    a.system, a.check
                ),
            );
        }
        if let crate::config::EnvSelection::List(list) = &a.environments {
            for (j, env) in list.iter().enumerate() {
                if !env_ids.contains(env.as_str()) {
                    p.add(
                        format!("{place}.environments[{j}]"),
                        format!("unknown environment `{env}`"),
                    );
                }
            }
        }
        validate_thresholds(&mut p, &place, &a.thresholds);
        if a.flapping.as_ref().is_some_and(|f| f.changes < 2) {
            p.add(
                format!("{place}.flapping.changes"),
                "flapping needs at least 2 changes within the window",
            );
        }
        for (j, target) in a.notify.iter().enumerate() {
            if !config.notifications.targets.iter().any(|t| &t.id == target) {
                p.add(
                    format!("{place}.notify[{j}]"),
                    format!("unknown notification target `{target}`"),
                );
            }
        }
    }
    for (place, message) in crate::config::dependencies::problems(config) {
        p.add(place, message);
    }
    let slos = config
        .systems
        .iter()
        .map(|s| (format!("systems[{}].slo", s.id), &s.slo))
        .chain(
            config
                .assignments
                .iter()
                .enumerate()
                .map(|(i, a)| (format!("assignments[{i}].slo"), &a.slo)),
        );
    for (place, slo) in slos {
        let Some(slo) = slo else { continue };
        if !(slo.objective > 0.0 && slo.objective < 100.0) {
            p.add(
                format!("{place}.objective"),
                format!(
                    "{} is not a percentage between 0 and 100 (exclusive): write 99.9",
                    slo.objective
                ),
            );
        }
        let window = slo.window.get();
        if window < std::time::Duration::from_secs(3600)
            || window > std::time::Duration::from_secs(365 * 24 * 3600)
        {
            p.add(
                format!("{place}.window"),
                "the window must be between 1h and 365d",
            );
        }
        if let Some(latency) = &slo.latency {
            if !(latency.percentile > 0.0 && latency.percentile <= 100.0) {
                p.add(
                    format!("{place}.latency.percentile"),
                    format!(
                        "{} is not a percentile above 0 and at most 100: write 95",
                        latency.percentile
                    ),
                );
            }
            if !(latency.below_ms.is_finite() && latency.below_ms > 0.0) {
                p.add(
                    format!("{place}.latency.belowMs"),
                    format!(
                        "{} is not a latency bound: write a number of milliseconds above 0, e.g. 800",
                        latency.below_ms
                    ),
                );
            }
        }
    }
    validate_api(&mut p, &config.api, secrets);
    validate_traces(&mut p, &config.traces);
    validate_mcp(&mut p, &config.mcp);
    validate_notifications(&mut p, config, secrets);
    p.0
}

fn validate_traces(p: &mut Problems, traces: &crate::config::TracesConfig) {
    if let Some(ratio) = traces.sample_ratio
        && !(0.0..=1.0).contains(&ratio)
    {
        p.add(
            "traces.sampleRatio",
            format!(
                "{ratio} is not a share between 0 and 1: write 0.1 to trace one healthy run in ten"
            ),
        );
    }
    if let Some(endpoint) = &traces.endpoint
        && !matches!(endpoint.parse::<http::Uri>(), Ok(uri) if uri.scheme().is_some() && uri.host().is_some())
    {
        p.add(
            "traces.endpoint",
            format!("`{endpoint}` is not a URL: write http://collector:4318"),
        );
    }
}

fn validate_mcp(p: &mut Problems, mcp: &crate::config::McpConfig) {
    for (i, rule) in mcp.allow_network.iter().enumerate() {
        if let Err(e) = rule.parse::<crate::runtime::policy::Rule>() {
            p.add(format!("mcp.allowNetwork[{i}]"), e.to_string());
        }
    }
}

fn validate_api(p: &mut Problems, api: &crate::config::ApiConfig, secrets: &SecretProvider) {
    let Some(token) = &api.token else {
        if api.reads == crate::config::ReadAccess::Token {
            p.add("api.reads", "`token` reads need `api.token`");
        }
        return;
    };
    match reference_name(token) {
        None => p.add(
            "api.token",
            "must be a secret reference like ${{ secrets.API_TOKEN }}, never the token itself",
        ),
        Some(name) if secrets.resolve(name).is_none() => {
            p.missing_secret("api.token", name, secrets)
        }
        Some(_) => {}
    }
}

fn validate_notifications(p: &mut Problems, config: &ConfigFile, secrets: &SecretProvider) {
    let n = &config.notifications;
    check_ids(p, "notifications.targets", n.targets.iter().map(|t| &t.id));
    check_ids(
        p,
        "notifications.maintenance",
        n.maintenance.iter().map(|w| &w.id),
    );
    for t in &n.targets {
        let place = format!("notifications.targets[{}]", t.id);
        match reference_name(&t.url) {
            Some(name) if secrets.resolve(name).is_none() => {
                p.missing_secret(format!("{place}.url"), name, secrets)
            }
            Some(_) => {}
            None if !(t.url.starts_with("http://") || t.url.starts_with("https://")) => p.add(
                format!("{place}.url"),
                format!("`{}` is not an http(s) URL", t.url),
            ),
            None => {}
        }
        if let Some(secret) = &t.signing_secret {
            match reference_name(secret) {
                None => p.add(
                    format!("{place}.signingSecret"),
                    "must be a secret reference like ${{ secrets.WEBHOOK_KEY }}",
                ),
                Some(name) if secrets.resolve(name).is_none() => {
                    p.missing_secret(format!("{place}.signingSecret"), name, secrets)
                }
                Some(_) => {}
            }
        }
        if t.max_attempts == 0 {
            p.add(format!("{place}.maxAttempts"), "must be at least 1");
        }
        if t.template.is_some() && t.format != crate::config::WebhookFormat::Template {
            p.add(
                format!("{place}.template"),
                "is only used with `format: template`",
            );
        }
    }
    for w in &n.maintenance {
        for (i, system) in w.systems.iter().enumerate() {
            if config.system(system).is_none() {
                p.add(
                    format!("notifications.maintenance[{}].systems[{i}]", w.id),
                    format!("unknown system `{system}`"),
                );
            }
        }
        for (i, env) in w.environments.iter().enumerate() {
            if config.environment(env).is_none() {
                p.add(
                    format!("notifications.maintenance[{}].environments[{i}]", w.id),
                    format!("unknown environment `{env}`"),
                );
            }
        }
    }
    // Durations, templates and windows are checked by building the notifier.
    let quiet = SecretProvider {
        env_prefix: None,
        dir: None,
    };
    if let Err(e) =
        crate::notify::Notifier::new(config, &quiet, crate::runtime::mask::Masker::default())
    {
        p.add(e.place, e.message);
    }
}

/// Ids are unique and use `[A-Za-z0-9_.-]` only: they join into entity
/// ids (`shop::production`), schedule keys and URLs, where `:`, `/`, `@`
/// or spaces would make two things one.
fn check_ids<'a>(p: &mut Problems, what: &str, ids: impl Iterator<Item = &'a String>) {
    let mut seen = BTreeSet::new();
    for id in ids {
        if id.is_empty()
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        {
            p.add(
                format!("{what}[{id}]"),
                format!(
                    "id `{id}` may use only letters, digits, `_`, `.` and `-` \
                     (ids are joined into entity ids like `shop::production`)"
                ),
            );
        }
        if !seen.insert(id) {
            p.add(format!("{what}[{id}]"), "duplicate id");
        }
    }
}

fn validate_thresholds(p: &mut Problems, place: &str, t: &crate::config::Thresholds) {
    use crate::config::Thresholds::*;
    let (degraded, unhealthy, size, healthy) = match *t {
        Consecutive {
            degraded,
            unhealthy,
            healthy,
        } => (degraded, unhealthy, None, healthy),
        Window {
            size,
            degraded,
            unhealthy,
            healthy,
        } => (degraded, unhealthy, Some(size), healthy),
    };
    if healthy == 0 {
        p.add(
            format!("{place}.thresholds.healthy"),
            "at least 1 success is needed to recover",
        );
    }
    if degraded == 0 || unhealthy < degraded {
        p.add(
            format!("{place}.thresholds"),
            "need 1 <= degraded <= unhealthy",
        );
    }
    if size.is_some_and(|s| s < unhealthy) {
        p.add(
            format!("{place}.thresholds.size"),
            "window size must be at least the unhealthy threshold",
        );
    }
}

async fn validate_check(
    p: &mut Problems,
    config: &ConfigFile,
    check: &crate::config::Check,
    plugins: Option<&PluginSet>,
    runtime: &Runtime,
    secrets: &SecretProvider,
) {
    let place = format!("checks[{}]", check.id);
    if let Some(mib) = check.memory_mib
        && !(1..=runtime.max_memory_mib()).contains(&mib)
    {
        p.add(
            format!("{place}.memoryMib"),
            format!(
                "must be between 1 and {} (the runtime's largest memory slot)",
                runtime.max_memory_mib()
            ),
        );
    }
    if check.host_memory_mib == Some(0) {
        p.add(format!("{place}.hostMemoryMib"), "must be at least 1");
    }
    if check.max_sockets == Some(0) {
        p.add(
            format!("{place}.maxSockets"),
            "must be at least 1: the strategy's own connection counts",
        );
    }
    if let Err(e) = NetworkPolicy::from_spec(&check.network) {
        p.add(format!("{place}.network"), e.to_string());
    }
    // A check `run` did not select: its plugins may not be loaded.
    let Some(plugins) = plugins else {
        return;
    };
    let Some(strategy) = plugins.strategy(&check.strategy.plugin) else {
        unknown_plugin(
            p,
            format!("{place}.strategy.plugin"),
            plugins,
            PluginKind::Strategy,
            &check.strategy.plugin,
        );
        return;
    };
    let migrate_timeout = crate::pipeline::run::migration_timeout(check.timeout.get());
    let migrated = validate_config(
        p,
        &format!("{place}.strategy.config"),
        strategy,
        &check.strategy.config,
        (runtime, migrate_timeout),
        secrets,
    )
    .await;
    if let Some(migrated) = migrated {
        refused_targets(p, config, check, strategy, &migrated);
    }
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, c) in check.collectors.iter().enumerate() {
        let cplace = format!("{place}.collectors[{i}]");
        let Some(collector) = plugins.collector(&c.plugin) else {
            unknown_plugin(
                p,
                format!("{cplace}.plugin"),
                plugins,
                PluginKind::Collector,
                &c.plugin,
            );
            continue;
        };
        if !collector.info.strategies.contains(&strategy.info.id) {
            p.add(
                format!("{cplace}.plugin"),
                format!(
                    "collector `{}` does not support strategy `{}` (it supports: {})",
                    c.plugin,
                    strategy.info.id,
                    collector.info.strategies.join(", ")
                ),
            );
        }
        let count = counts.entry(c.plugin.as_str()).or_default();
        *count += 1;
        if *count > 1 && !collector.info.allow_multiple {
            p.add(
                format!("{cplace}.plugin"),
                format!("collector `{}` may appear only once per check", c.plugin),
            );
        }
        validate_config(
            p,
            &format!("{cplace}.config"),
            collector,
            &c.config,
            (runtime, migrate_timeout),
            secrets,
        )
        .await;
        for (var, reference) in &c.secret_env {
            match reference_name(reference) {
                None => p.add(
                    format!("{cplace}.secretEnv.{var}"),
                    "must be a secret reference like ${{ secrets.NAME }}",
                ),
                Some(name) if secrets.resolve(name).is_none() => {
                    p.missing_secret(format!("{cplace}.secretEnv.{var}"), name, secrets)
                }
                Some(_) => {}
            }
        }
        for (j, a) in c.assertions.iter().enumerate() {
            validate_assertion(
                p,
                &format!("{cplace}.assertions[{j}]"),
                a,
                &collector.info.result_schema,
            );
        }
    }
}

/// A check names a plugin the folder does not provide. When the file named
/// after it did not load, that plugin's fault affects only this check; any
/// other unknown id is a mistake in the configuration.
fn unknown_plugin(
    p: &mut Problems,
    place: String,
    plugins: &PluginSet,
    kind: PluginKind,
    id: &str,
) {
    let available = match kind {
        PluginKind::Strategy => plugins.strategy_ids(),
        PluginKind::Collector => plugins.collector_ids(),
    };
    let message = format!(
        "{} (available: {})",
        plugins.missing(kind, id),
        available.join(", ")
    );
    if plugins.broken_named(id).is_some() {
        p.plugin_fault(place, message);
    } else {
        p.add(place, message);
    }
}

/// Migrates (assuming v1), then checks the schema and secret references.
/// Returns the migrated config, for checks that read it as runs will.
async fn validate_config(
    p: &mut Problems,
    place: &str,
    plugin: &Plugin,
    config: &Value,
    (runtime, migrate_timeout): (&Runtime, std::time::Duration),
    secrets: &SecretProvider,
) -> Option<Value> {
    let migrated = match runtime
        .migrate_within(plugin, config, migrate_timeout)
        .await
    {
        Ok(m) => m,
        Err(e) => {
            p.plugin_fault(place, e.to_string());
            return None;
        }
    };
    match plugin.config_validator() {
        Err(e) => p.add(
            place,
            format!("plugin `{}` has an unusable schema: {e}", plugin.info.id),
        ),
        Ok(validator) => {
            for error in validator.iter_errors(&migrated) {
                let pointer = error.instance_path().to_string();
                p.add(
                    format!("{place}{}", pointer.replace('/', ".")),
                    error.to_string(),
                );
            }
        }
    }
    let mut migrated = migrated;
    let mut found = Vec::new();
    visit_strings(
        &plugin.info.config_schema,
        &mut migrated,
        &mut |pointer, marks, text| {
            if marks.secret {
                found.push((
                    pointer.replace('/', "."),
                    reference_name(text).map(str::to_string),
                ));
            }
        },
    );
    for (pointer, name) in found {
        match name {
            None => p.add(
                format!("{place}{pointer}"),
                "must be a secret reference like ${{ secrets.NAME }}",
            ),
            Some(name) if secrets.resolve(&name).is_none() => {
                p.missing_secret(format!("{place}{pointer}"), &name, secrets)
            }
            Some(_) => {}
        }
    }
    Some(migrated)
}

fn validate_assertion(p: &mut Problems, place: &str, a: &Assertion, result_schema: &Value) {
    let path = match assertion_path(a) {
        Ok(path) => path,
        Err(e) => return p.add(place, e),
    };
    let target = a
        .field
        .clone()
        .or_else(|| a.json_path.clone())
        .unwrap_or_default();
    let Some(parts) = schema_at(result_schema, &path) else {
        return p.add(
            place,
            format!("`{target}` is not in the collector's result schema"),
        );
    };
    if is_open(&parts) {
        return;
    }
    let types = types_of(&parts);
    let fits = match a.operator.operand() {
        OperandKind::Any => true,
        OperandKind::Number => types.iter().any(|t| t == "number" || t == "integer"),
        OperandKind::String => types.iter().any(|t| t == "string"),
        OperandKind::Boolean => types.iter().any(|t| t == "boolean"),
    };
    if !fits {
        p.add(
            format!("{place}.operator"),
            format!(
                "operator {:?} does not fit `{target}` of type {}",
                a.operator,
                types.join("|")
            ),
        );
    }
}

/// Strategy config fields that name where a check connects.
const TARGET_FIELDS: &[&str] = &["host", "baseUrl", "url", "nameserver", "server"];

/// Targets the check's own network policy will refuse: a strategy config
/// field naming an IP or `localhost`, migrated and rendered as each
/// assignment's runs will be. Names that need DNS are left to the run,
/// which resolves and checks them.
fn refused_targets(
    p: &mut Problems,
    config: &ConfigFile,
    check: &crate::config::Check,
    strategy: &Plugin,
    migrated: &Value,
) {
    let Ok(policy) = NetworkPolicy::from_spec(&check.network) else {
        return;
    };
    let interval = check.interval.get().as_secs();
    let mut reported = BTreeSet::new();
    for assignment in config.assignments.iter().filter(|a| a.check == check.id) {
        let Some(system) = config.system(&assignment.system) else {
            continue;
        };
        for env in effective_environments(&assignment.environments, &system.environments) {
            let environment = env.as_deref().and_then(|id| config.environment(id));
            let ctx = context(environment, check, interval, system);
            let mut rendered = migrated.clone();
            if render_config(&strategy.info.config_schema, &mut rendered, &ctx).is_err() {
                continue;
            }
            let Some(fields) = rendered.as_object() else {
                continue;
            };
            for (field, addr) in fields
                .iter()
                .filter(|(k, _)| TARGET_FIELDS.contains(&k.as_str()))
                .filter_map(|(k, v)| Some((k, literal_target(v.as_str()?, fields.get("port"))?)))
            {
                let verdict = match addr.port() {
                    0 => policy.check_ip(addr.ip()),
                    _ => policy.check_addr(addr),
                };
                if let Err(denial) = verdict
                    && reported.insert((field.clone(), denial.target.clone()))
                {
                    let runs = match &env {
                        Some(env) => {
                            format!("runs of system `{}` in environment `{env}`", system.id)
                        }
                        None => format!("runs of system `{}`", system.id),
                    };
                    p.add(
                        format!("checks[{}].strategy.config.{field}", check.id),
                        format!(
                            "{runs} would fail: {denial}; add the address to the check's network.allow"
                        ),
                    );
                }
            }
        }
    }
}

/// The address a host or URL value names, when it is an IP literal or
/// `localhost` (port from the URL, a sibling `port` field, or the scheme;
/// 0 when none says, which the plugin's own default decides).
fn literal_target(value: &str, port: Option<&Value>) -> Option<std::net::SocketAddr> {
    let (host, url_port) = match value.parse::<http::Uri>() {
        Ok(uri) if uri.scheme().is_some() => {
            let default = match uri.scheme_str() {
                Some("http") => Some(80),
                Some("https") => Some(443),
                _ => None,
            };
            (uri.host()?.to_string(), uri.port_u16().or(default))
        }
        _ => (value.to_string(), None),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let ip = if host.eq_ignore_ascii_case("localhost") {
        std::net::IpAddr::from([127, 0, 0, 1])
    } else {
        host.parse().ok()?
    };
    let port = url_port
        .or_else(|| {
            port.and_then(Value::as_u64)
                .and_then(|p| u16::try_from(p).ok())
        })
        .unwrap_or(0);
    Some(std::net::SocketAddr::new(ip, port))
}
