//! A check proposed in structured fields: the YAML an operator would write
//! for it, validated the way `checkhost validate` validates a file, with
//! each problem placed at the proposal's own field.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::config::{Assignment, Check, McpConfig};
use crate::pipeline::setup::Setup;
use crate::runtime::policy::Rule;
use crate::runtime::{PolicySpec, Runtime};
use crate::validate::Problem;

/// A check and its assignment to one system, as an assistant describes it.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Proposal {
    /// The check's id (`[A-Za-z0-9_.-]`); proposing an existing id
    /// replaces that check.
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The system it is assigned to (an id from `capabilities`).
    pub system: String,
    /// The system's environments to run in: absent, every one it has;
    /// `[]`, one run without an environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environments: Option<Vec<String>>,
    /// How to reach the target: `{plugin, config}` of a strategy.
    pub strategy: PluginUse,
    /// What to measure over it: `{plugin, config, assertions}` each.
    #[serde(default)]
    pub collectors: Vec<CollectorUse>,
    /// How often it runs, e.g. `30s` (default `60s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    /// Each run's deadline, e.g. `5s` (default `30s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Network rules beyond the default policy (`{allow: ["api.example.com:443"]}`);
    /// each allowed rule must lie within the operator's `mcp.allowNetwork`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<PolicySpec>,
    /// When a system turns degraded or unhealthy, e.g. `{mode: consecutive,
    /// degraded: 2, unhealthy: 3}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<Value>")]
    pub thresholds: Option<Value>,
    /// An objective, e.g. `{objective: 99, window: 30d, latency:
    /// {percentile: 95, belowMs: 800}}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<Value>")]
    pub slo: Option<Value>,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PluginUse {
    /// A plugin id from `capabilities`.
    pub plugin: String,
    /// Its config, as its config schema says; strings may use
    /// `{{ environment.<field> }}` and `${{ secrets.NAME }}`.
    #[serde(default)]
    #[schemars(with = "Option<Map<String, Value>>")]
    pub config: Option<Value>,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CollectorUse {
    pub plugin: String,
    #[serde(default)]
    #[schemars(with = "Option<Map<String, Value>>")]
    pub config: Option<Value>,
    /// Each `{field | jsonPath, operator, value}`; operators: equals,
    /// notEquals, lessThan, lessThanOrEqual, greaterThan,
    /// greaterThanOrEqual, contains, notContains, startsWith, endsWith,
    /// matches, isTrue, isFalse, exists, notExists.
    #[serde(default)]
    #[schemars(with = "Vec<Map<String, Value>>")]
    pub assertions: Vec<Value>,
    /// Environment variables for this collector only, from secrets:
    /// `{API_TOKEN: "${{ secrets.API_TOKEN }}"}`.
    #[serde(
        default,
        rename = "secretEnv",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub secret_env: BTreeMap<String, String>,
}

/// A proposal that passed: the check and assignment as the config holds
/// them, and as YAML.
#[derive(Debug, Clone)]
pub struct Draft {
    pub check: Check,
    pub assignment: Assignment,
    /// The check as written in the config file.
    pub check_value: Value,
    pub assignment_value: Value,
    /// Secrets this process cannot resolve: the daemon may.
    pub warnings: Vec<Problem>,
}

impl Draft {
    /// `checks:` and `assignments:` as they would go into the config.
    pub fn yaml(&self) -> String {
        let doc = json!({
            "checks": [self.check_value],
            "assignments": [self.assignment_value],
        });
        serde_yaml_ng::to_string(&super::edit::ordered(&doc)).unwrap_or_default()
    }
}

impl Proposal {
    /// The check as the config file would hold it: absent fields stay out.
    fn check_value(&self) -> Value {
        let mut check = Map::new();
        check.insert("id".into(), json!(self.id));
        if let Some(name) = &self.name {
            check.insert("name".into(), json!(name));
        }
        for (key, value) in [("interval", &self.interval), ("timeout", &self.timeout)] {
            if let Some(value) = value {
                check.insert(key.into(), json!(value));
            }
        }
        check.insert(
            "strategy".into(),
            plugin_value(&self.strategy.plugin, &self.strategy.config),
        );
        if let Some(network) = &self.network {
            let mut rules = Map::new();
            for (key, list) in [("allow", &network.allow), ("deny", &network.deny)] {
                if !list.is_empty() {
                    rules.insert(key.into(), json!(list));
                }
            }
            check.insert("network".into(), Value::Object(rules));
        }
        let collectors = self
            .collectors
            .iter()
            .map(|c| {
                let mut value = plugin_value(&c.plugin, &c.config);
                if let Value::Object(map) = &mut value {
                    if !c.secret_env.is_empty() {
                        map.insert("secretEnv".into(), json!(c.secret_env));
                    }
                    if !c.assertions.is_empty() {
                        map.insert("assertions".into(), json!(c.assertions));
                    }
                }
                value
            })
            .collect();
        check.insert("collectors".into(), Value::Array(collectors));
        Value::Object(check)
    }

    fn assignment_value(&self) -> Value {
        let mut assignment = Map::new();
        assignment.insert("system".into(), json!(self.system));
        assignment.insert("check".into(), json!(self.id));
        if let Some(environments) = &self.environments {
            assignment.insert("environments".into(), json!(environments));
        }
        for (key, value) in [("thresholds", &self.thresholds), ("slo", &self.slo)] {
            if let Some(value) = value {
                assignment.insert(key.into(), value.clone());
            }
        }
        Value::Object(assignment)
    }
}

fn plugin_value(plugin: &str, config: &Option<Value>) -> Value {
    let mut map = Map::new();
    map.insert("plugin".into(), json!(plugin));
    if let Some(config) = config {
        map.insert("config".into(), config.clone());
    }
    Value::Object(map)
}

/// Reads a value as the config file's own type would, naming the field a
/// problem is at.
fn typed<T: serde::de::DeserializeOwned>(value: &Value, problems: &mut Vec<Problem>) -> Option<T> {
    match serde_path_to_error::deserialize::<_, T>(value) {
        Ok(typed) => Some(typed),
        Err(e) => {
            let path = e.path().to_string();
            problems.push(problem(
                if path == "." {
                    "(proposal)".into()
                } else {
                    path
                },
                e.into_inner().to_string(),
            ));
            None
        }
    }
}

fn problem(place: String, message: String) -> Problem {
    Problem {
        place,
        message,
        missing_secret: false,
        plugin_fault: false,
    }
}

/// Checks a proposal against the loaded plugins and the configuration it
/// would join, as `checkhost validate` would check the file with it.
pub async fn check(
    proposal: &Proposal,
    setup: &Setup,
    runtime: &Runtime,
) -> Result<Draft, Vec<Problem>> {
    let mut problems = Vec::new();
    let check_value = proposal.check_value();
    let assignment_value = proposal.assignment_value();
    let check: Option<Check> = typed(&check_value, &mut problems);
    let assignment: Option<Assignment> = typed(&assignment_value, &mut problems);
    let (Some(check), Some(assignment)) = (check, assignment) else {
        return Err(problems);
    };
    problems.extend(wider_than_granted(&check.network, &setup.config.file.mcp));
    ungranted_secrets(
        &check_value,
        "",
        &setup.config.file.mcp.secrets,
        &mut problems,
    );
    // The check alone among the configuration's systems, environments and
    // targets: its own problems, without migrating every other check.
    let mut alone = setup.config.file.clone();
    alone.checks = vec![check.clone()];
    alone.assignments = vec![assignment.clone()];
    let mut warnings = Vec::new();
    let own = format!("checks[{}]", check.id);
    for mut p in crate::validate::validate(&alone, &setup.plugins, runtime, &setup.secrets).await {
        let Some(place) = proposal_place(&p.place, &own) else {
            continue;
        };
        p.place = place;
        if p.missing_secret {
            warnings.push(p);
        } else {
            problems.push(p);
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Draft {
        check,
        assignment,
        check_value,
        assignment_value,
        warnings,
    })
}

/// `checks[<id>].collectors[0].config.url` → `collectors[0].config.url`;
/// `assignments[0].slo` → `slo`; `None` for a place outside the proposal.
fn proposal_place(place: &str, own_check: &str) -> Option<String> {
    let rest = place
        .strip_prefix(own_check)
        .or_else(|| place.strip_prefix("assignments[0]"))?;
    Some(match rest.strip_prefix('.') {
        Some(field) => field.to_string(),
        None if rest.is_empty() => "id".to_string(),
        None => return None,
    })
}

/// Secret references the operator did not grant assistants, by place: a
/// proposal could otherwise send any secret to a target of its choosing.
fn ungranted_secrets(value: &Value, place: &str, granted: &[String], problems: &mut Vec<Problem>) {
    static REFERENCE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let reference = REFERENCE.get_or_init(|| {
        regex::Regex::new(r"\$\{\{\s*secrets\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
            .expect("valid regex")
    });
    match value {
        Value::String(text) => {
            for name in reference.captures_iter(text).filter_map(|c| c.get(1)) {
                if !granted.iter().any(|g| g == name.as_str()) {
                    problems.push(problem(
                        place.to_string(),
                        format!(
                            "secret `{}` is not one an assistant may use: an operator lists it in `mcp.secrets`",
                            name.as_str()
                        ),
                    ));
                }
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                ungranted_secrets(item, &format!("{place}[{i}]"), granted, problems);
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                let place = if place.is_empty() {
                    key.clone()
                } else {
                    format!("{place}.{key}")
                };
                ungranted_secrets(item, &place, granted, problems);
            }
        }
        _ => {}
    }
}

/// The allow rules a proposal may not use: each must lie within one the
/// operator granted in `mcp.allowNetwork`.
fn wider_than_granted(network: &PolicySpec, mcp: &McpConfig) -> Vec<Problem> {
    let granted: Vec<Rule> = mcp
        .allow_network
        .iter()
        .filter_map(|r| r.parse().ok())
        .collect();
    let mut problems = Vec::new();
    for (i, text) in network.allow.iter().enumerate() {
        let place = format!("network.allow[{i}]");
        match text.parse::<Rule>() {
            Err(e) => problems.push(problem(place, e.to_string())),
            Ok(rule) if !granted.iter().any(|g| rule.within(g)) => problems.push(problem(
                place,
                format!(
                    "`{text}` is more than an assistant may open: it is not within `mcp.allowNetwork` ({})",
                    if mcp.allow_network.is_empty() {
                        "empty".to_string()
                    } else {
                        mcp.allow_network.join(", ")
                    }
                ),
            )),
            Ok(_) => {}
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_problem_is_placed_at_the_proposal_field() {
        let own = "checks[api]";
        assert_eq!(
            proposal_place("checks[api].collectors[0].assertions[1].operator", own).as_deref(),
            Some("collectors[0].assertions[1].operator")
        );
        assert_eq!(proposal_place("checks[api]", own).as_deref(), Some("id"));
        assert_eq!(
            proposal_place("assignments[0].system", own).as_deref(),
            Some("system")
        );
        assert_eq!(proposal_place("checks[api2].interval", own), None);
        assert_eq!(proposal_place("environments[0].fields", own), None);
    }

    #[test]
    fn allow_rules_must_lie_within_what_the_operator_granted() {
        let mcp = McpConfig {
            allow_network: vec!["127.0.0.1:8080".into(), "*.example.com:443".into()],
            ..McpConfig::default()
        };
        let spec = |allow: &[&str]| PolicySpec {
            allow: allow.iter().map(|s| s.to_string()).collect(),
            deny: Vec::new(),
        };
        assert!(
            wider_than_granted(&spec(&["127.0.0.1:8080", "api.example.com:443"]), &mcp).is_empty()
        );
        let refused = wider_than_granted(
            &spec(&["127.0.0.1:8080", "127.0.0.0/8", "nonsense rule"]),
            &mcp,
        );
        let places: Vec<&str> = refused.iter().map(|p| p.place.as_str()).collect();
        assert_eq!(places, ["network.allow[1]", "network.allow[2]"]);
        assert!(
            refused[0].message.contains("mcp.allowNetwork"),
            "{}",
            refused[0].message
        );
        assert!(
            !wider_than_granted(&spec(&["10.0.0.1"]), &McpConfig::default()).is_empty(),
            "nothing is granted by default"
        );
    }

    #[test]
    fn only_granted_secrets_may_be_referenced() {
        let value = json!({"strategy": {"config": {"auth": {"bearer": "${{ secrets.API_TOKEN }}"}}},
            "collectors": [{"secretEnv": {"KEY": "${{secrets.SHOP_KEY}}"}}]});
        let mut problems = Vec::new();
        ungranted_secrets(&value, "", &["SHOP_KEY".to_string()], &mut problems);
        let places: Vec<&str> = problems.iter().map(|p| p.place.as_str()).collect();
        assert_eq!(places, ["strategy.config.auth.bearer"]);
        assert!(
            problems[0].message.contains("`API_TOKEN`"),
            "{}",
            problems[0].message
        );
    }

    #[test]
    fn the_yaml_holds_what_was_proposed_and_nothing_more() {
        let proposal: Proposal = serde_json::from_value(json!({
            "id": "checkout", "system": "shop", "interval": "30s",
            "strategy": {"plugin": "http", "config": {"baseUrl": "{{ environment.baseUrl }}"}},
            "collectors": [{"plugin": "request", "config": {"url": "/health"},
                "assertions": [{"field": "statusCode", "operator": "equals", "value": 200}]}],
        }))
        .unwrap();
        let draft_yaml = serde_yaml_ng::to_string(&json!({
            "checks": [proposal.check_value()],
            "assignments": [proposal.assignment_value()],
        }))
        .unwrap();
        let back: crate::config::ConfigFile = serde_yaml_ng::from_str(&draft_yaml).unwrap();
        assert_eq!(back.checks[0].interval.to_string(), "30s");
        assert_eq!(back.assignments[0].system, "shop");
        assert!(!draft_yaml.contains("timeout"), "{draft_yaml}");
        assert!(!draft_yaml.contains("environments"), "{draft_yaml}");
    }
}
