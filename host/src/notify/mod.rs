//! Notifications: which webhooks a transition goes to (policy, maintenance
//! windows), the bodies they get, and their delivery from the outbox.

pub mod deliver;
pub mod maintenance;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::config::dependencies::Dependencies;
use crate::config::{ConfigFile, TimeSpan, WebhookFormat, WebhookTarget};
use crate::pipeline::secrets::{SecretProvider, reference_name};
use crate::runtime::mask::Masker;
use crate::store::entity::EntityId;
use crate::store::outbox::{Notice, Route, idempotency_key};
use crate::store::slo::SloReport;
use crate::store::state::{Flap, Status, TransitionKind};
use crate::store::{Store, StoreError, TransitionEvent};
use maintenance::Window;

/// A webhook target, ready to render and send.
pub struct Target {
    pub config: WebhookTarget,
    /// The URL with its secret resolved; `Err` names what is missing.
    pub url: Result<String, String>,
    pub signing_key: Option<Result<String, String>>,
    /// Extra headers with their secrets resolved.
    pub headers: Result<Vec<(String, String)>, String>,
    pub timeout: Duration,
    pub reminder_every: Option<Duration>,
    template: Option<minijinja::Environment<'static>>,
}

/// The notification side of one configuration.
pub struct Notifier {
    pub targets: HashMap<String, Target>,
    windows: Vec<Window>,
    /// `(system, check)` → the targets of that assignment.
    routes: HashMap<(String, String), Vec<String>>,
    /// Whose unhealthiness holds whose notices.
    pub dependencies: Dependencies,
    names: Names,
    masker: Masker,
}

/// Display names for bodies.
#[derive(Default)]
struct Names {
    systems: HashMap<String, String>,
    checks: HashMap<String, String>,
    environments: HashMap<String, String>,
}

/// Why a configured notification cannot be set up; `validate` reports these
/// at their place first, so serve only meets them if validation was skipped.
#[derive(Debug, thiserror::Error)]
#[error("{place}: {message}")]
pub struct NotifyConfigError {
    pub place: String,
    pub message: String,
}

fn resolve(text: &str, secrets: &SecretProvider) -> Result<String, String> {
    match reference_name(text) {
        None => Ok(text.to_string()),
        Some(name) => secrets
            .resolve(name)
            .ok_or_else(|| format!("secret `{name}` is not available")),
    }
}

/// Compiles a target's body template.
pub fn compile_template(source: &str) -> Result<minijinja::Environment<'static>, String> {
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.add_template_owned("body", source.to_string())
        .map_err(|e| format!("template does not compile: {e}"))?;
    Ok(env)
}

impl Notifier {
    pub fn new(
        config: &ConfigFile,
        secrets: &SecretProvider,
        masker: Masker,
    ) -> Result<Notifier, NotifyConfigError> {
        let error = |place: String, message: String| NotifyConfigError { place, message };
        let mut targets = HashMap::new();
        for t in &config.notifications.targets {
            let place = format!("notifications.targets[{}]", t.id);
            let timeout = t.timeout.get();
            let reminder_every = t.minimum_reminder_interval.as_ref().map(TimeSpan::get);
            let template = match (t.format, &t.template) {
                (WebhookFormat::Template, Some(source)) => Some(
                    compile_template(source).map_err(|m| error(format!("{place}.template"), m))?,
                ),
                (WebhookFormat::Template, None) => {
                    return Err(error(
                        format!("{place}.template"),
                        "`format: template` needs a template".into(),
                    ));
                }
                _ => None,
            };
            targets.insert(
                t.id.clone(),
                Target {
                    url: resolve(&t.url, secrets),
                    signing_key: t.signing_secret.as_ref().map(|s| resolve(s, secrets)),
                    headers: t
                        .headers
                        .iter()
                        .map(|(name, value)| Ok((name.clone(), resolve(value, secrets)?)))
                        .collect(),
                    timeout,
                    reminder_every,
                    template,
                    config: t.clone(),
                },
            );
        }
        let windows = config
            .notifications
            .maintenance
            .iter()
            .map(|w| {
                Window::parse(w).map_err(|(field, m)| {
                    error(format!("notifications.maintenance[{}].{field}", w.id), m)
                })
            })
            .collect::<Result<_, _>>()?;
        let defaults: Vec<String> = config
            .notifications
            .targets
            .iter()
            .filter(|t| t.default)
            .map(|t| t.id.clone())
            .collect();
        // Without targets nothing is ever sent: a large fleet without
        // notifications keeps no per-assignment tables for them.
        let notifying = !config.notifications.targets.is_empty();
        let routes = config
            .assignments
            .iter()
            .filter(|_| notifying)
            .map(|a| {
                let mut ids = defaults.clone();
                for id in &a.notify {
                    if !ids.contains(id) {
                        ids.push(id.clone());
                    }
                }
                ((a.system.clone(), a.check.clone()), ids)
            })
            .collect();
        let names = Names {
            systems: config
                .systems
                .iter()
                .filter(|_| notifying)
                .map(|s| (s.id.clone(), s.name.clone().unwrap_or_else(|| s.id.clone())))
                .collect(),
            checks: config
                .checks
                .iter()
                .map(|c| (c.id.clone(), c.name.clone().unwrap_or_else(|| c.id.clone())))
                .collect(),
            environments: config
                .environments
                .iter()
                .map(|e| (e.id.clone(), e.name.clone().unwrap_or_else(|| e.id.clone())))
                .collect(),
        };
        Ok(Notifier {
            targets,
            windows,
            routes,
            dependencies: Dependencies::new(config),
            names,
            masker,
        })
    }

    /// The maintenance window silencing this entity at `at_ms`, if any.
    fn silenced_by(&self, t: &TransitionEvent, system: &str, at_ms: i64) -> Option<&str> {
        self.windows
            .iter()
            .find(|w| w.silences(system, t.environment_id.as_deref(), at_ms))
            .map(|w| w.id.as_str())
    }

    /// The maintenance window open for `system` (in `environment`) at
    /// `now_ms`, or else the next to open: `(id, start, end)`.
    pub fn maintenance(
        &self,
        system: &str,
        environment: Option<&str>,
        now_ms: i64,
    ) -> Option<(&str, i64, i64)> {
        self.windows
            .iter()
            .filter_map(|w| {
                let (start, end) = w.occurrence(system, environment, now_ms)?;
                Some((w.id.as_str(), start, end))
            })
            .min_by_key(|(_, start, _)| *start)
    }

    /// Masks every configured secret in `text` (error messages, say).
    pub fn mask(&self, text: &str) -> String {
        self.masker.text(text)
    }

    /// The targets this transition's assignment notifies.
    fn targets_of(&self, system: &str, check: &str) -> &[String] {
        self.routes
            .get(&(system.to_string(), check.to_string()))
            .map_or(&[], Vec::as_slice)
    }

    /// The notice for one target, or `None` when its policy keeps quiet.
    /// A maintenance window (`silenced`) or an unhealthy dependency
    /// (`held_by`) keeps it in the log unsent.
    fn notice(
        &self,
        t: &TransitionEvent,
        system: &str,
        target: &Target,
        reminder: u32,
        silenced: Option<&str>,
        held_by: Option<&str>,
    ) -> Option<Notice> {
        let c = &target.config;
        // The one notice that says the slice flaps goes to every target.
        let wanted = reminder > 0
            || t.flapping == Some(Flap::Started)
            || match t.kind {
                TransitionKind::Escalation => c.on_escalation,
                TransitionKind::DeEscalation => c.on_de_escalation,
                TransitionKind::Recovery => c.on_recovery,
            };
        if !wanted {
            return None;
        }
        let idempotency_key = idempotency_key(t, &c.id, reminder);
        let (body, content_type) = self.body(t, system, target, reminder, &idempotency_key);
        Some(Notice {
            target: c.id.clone(),
            idempotency_key,
            body: self.masker.text(&body),
            content_type,
            suppressed: silenced
                .map(|w| format!("silenced by maintenance window `{w}`"))
                .or_else(|| {
                    held_by.map(|d| format!("held: it depends on `{d}`, which is unhealthy"))
                })
                .or_else(|| {
                    (reminder == 0 && t.flapping == Some(Flap::Held))
                        .then(|| "held back: the slice is flapping".to_string())
                }),
            // Released when the dependency recovers, unless a window or
            // flapping would have kept it quiet anyway.
            held_by: held_by
                .filter(|_| silenced.is_none() && t.flapping != Some(Flap::Held))
                .map(str::to_string),
        })
    }

    fn body(
        &self,
        t: &TransitionEvent,
        system: &str,
        target: &Target,
        reminder: u32,
        key: &str,
    ) -> (String, String) {
        let name = |map: &HashMap<String, String>, id: &str| {
            map.get(id).cloned().unwrap_or_else(|| id.to_string())
        };
        let environment = t
            .environment_id
            .as_deref()
            .map(|e| json!({"id": e, "name": name(&self.names.environments, e)}));
        let at = DateTime::<Utc>::from_timestamp_millis(t.at_ms)
            .map(|d| d.to_rfc3339())
            .unwrap_or_default();
        let context = json!({
            "event": match (reminder, t.flapping) {
                (1.., _) => "reminder",
                (0, Some(Flap::Started)) => "flapping",
                _ => "transition",
            },
            "idempotencyKey": key,
            "kind": t.kind.as_str(),
            "reminder": reminder,
            "at": at,
            "transition": t,
            "system": {"id": system, "name": name(&self.names.systems, system)},
            "check": {"id": t.check_id, "name": name(&self.names.checks, &t.check_id)},
            "environment": environment,
            // "2 of 3 checks" healthy in the entity after the change.
            "healthyChecks": t.healthy_checks,
            "totalChecks": t.total_checks,
            // The systems whose notices this one's failure holds.
            "dependents": self
                .dependencies
                .dependents_of(&t.entity_id)
                .iter()
                .map(|d| json!({"id": d, "name": name(&self.names.systems, d)}))
                .collect::<Vec<_>>(),
        });
        render(target, &context, slack_text(&context, t))
    }

    /// A reminder at `now_ms` for a transition that still stands, if its
    /// target wants one and no window silences it now.
    pub fn reminder(
        &self,
        t: &TransitionEvent,
        target: &str,
        sent: u32,
        now_ms: i64,
    ) -> Option<Notice> {
        let system = system_of(t);
        let system = system.as_str();
        let target = self.targets.get(target)?;
        if !self
            .targets_of(system, &t.check_id)
            .contains(&target.config.id)
            || self.silenced_by(t, system, now_ms).is_some()
        {
            return None;
        }
        self.notice(t, system, target, sent.max(1), None, None)
    }
}

impl Notifier {
    /// The notices of an objective that starts (`paging`) or stops burning
    /// its error budget fast: to the targets of its assignment, or of any
    /// of its system's assignments for a system's objective; silenced by a
    /// maintenance window of the system like any notice.
    pub fn slo_notices(&self, report: &SloReport, paging: bool, at_ms: i64) -> Vec<Notice> {
        let mut targets: Vec<&String> = Vec::new();
        for ((system, check), ids) in &self.routes {
            if system == &report.system && report.check.as_ref().is_none_or(|c| c == check) {
                for id in ids {
                    if !targets.contains(&id) {
                        targets.push(id);
                    }
                }
            }
        }
        targets.sort();
        let silenced = self
            .windows
            .iter()
            .find(|w| w.silences(&report.system, None, at_ms))
            .map(|w| format!("silenced by maintenance window `{}`", w.id));
        let system_name = self
            .names
            .systems
            .get(&report.system)
            .cloned()
            .unwrap_or_else(|| report.system.clone());
        targets
            .into_iter()
            .filter_map(|id| self.targets.get(id))
            .filter(|t| paging || t.config.on_recovery)
            .map(|target| {
                let key = slo_key(&report.id, at_ms, &target.config.id);
                let kind = if paging { "page" } else { "recovered" };
                let context = json!({
                    "event": "slo",
                    "kind": kind,
                    "idempotencyKey": key,
                    "at": DateTime::<Utc>::from_timestamp_millis(at_ms)
                        .map(|d| d.to_rfc3339())
                        .unwrap_or_default(),
                    "system": {"id": report.system, "name": system_name},
                    "slo": report,
                });
                let burn = report
                    .burn_rates
                    .iter()
                    .find(|b| b.window == "1h")
                    .and_then(|b| b.rate)
                    .unwrap_or(0.0);
                let text = if paging {
                    format!(
                        ":rotating_light: *{system_name}* burns its {} objective's error \
                         budget fast: {burn:.1}× over the last hour",
                        report.objective_label()
                    )
                } else {
                    format!(
                        ":large_green_circle: *{system_name}* no longer burns its {} \
                         objective's error budget fast",
                        report.objective_label()
                    )
                };
                let (body, content_type) = render(target, &context, text);
                Notice {
                    target: target.config.id.clone(),
                    idempotency_key: key,
                    body: self.masker.text(&body),
                    content_type,
                    suppressed: silenced.clone(),
                    held_by: None,
                }
            })
            .collect()
    }
}

/// A notice's body in the target's format: Slack's `{text}`, the
/// target's template over `context`, or `context` as JSON.
fn render(target: &Target, context: &serde_json::Value, slack_text: String) -> (String, String) {
    match target.config.format {
        WebhookFormat::Slack => (
            json!({"text": slack_text}).to_string(),
            "application/json".into(),
        ),
        WebhookFormat::Template => {
            let rendered = target
                .template
                .as_ref()
                .and_then(|env| env.get_template("body").ok())
                .map(|tpl| tpl.render(minijinja::value::Serde(context)));
            let body = match rendered {
                Some(Ok(body)) => body,
                // The notice still goes out: an operator hears about what
                // happened and about the template.
                Some(Err(e)) => {
                    json!({"error": format!("template failed: {e}"), "fallback": context})
                        .to_string()
                }
                None => context.to_string(),
            };
            let content_type = target
                .config
                .content_type
                .clone()
                .unwrap_or_else(|| "application/json".into());
            (body, content_type)
        }
        WebhookFormat::Json => (context.to_string(), "application/json".into()),
    }
}

impl Notifier {
    /// A message no transition caused, for one target: in its format,
    /// masked, and signed on delivery like every notice.
    pub fn message(&self, target: &str, text: &str, at_ms: i64) -> Result<Notice, String> {
        let target = self.targets.get(target).ok_or_else(|| {
            let mut known: Vec<&str> = self.targets.keys().map(String::as_str).collect();
            known.sort();
            format!(
                "unknown notification target `{target}`; configured: {}",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            )
        })?;
        let key = format!(
            "message:{}:{at_ms}:{:016x}",
            target.config.id,
            fastrand::u64(..)
        );
        let context = json!({
            "event": "message",
            "idempotencyKey": key,
            "at": DateTime::<Utc>::from_timestamp_millis(at_ms)
                .map(|d| d.to_rfc3339())
                .unwrap_or_default(),
            "text": text,
        });
        let (body, content_type) = render(target, &context, text.to_string());
        Ok(Notice {
            target: target.config.id.clone(),
            idempotency_key: key,
            body: self.masker.text(&body),
            content_type,
            suppressed: None,
            held_by: None,
        })
    }
}

/// One key per objective, change and target.
fn slo_key(slo: &str, at_ms: i64, target: &str) -> String {
    use sha2::{Digest, Sha256};
    let text = format!("slo/{slo}/{at_ms}/{target}");
    hex::encode(&Sha256::digest(text.as_bytes())[..16])
}

/// The system of a transition's entity.
fn system_of(t: &TransitionEvent) -> String {
    EntityId::parse(&t.entity_id).system().to_string()
}

impl Route for Notifier {
    fn has_dependencies(&self) -> bool {
        !self.dependencies.is_empty()
    }

    fn dependencies(&self, t: &TransitionEvent) -> Vec<String> {
        self.dependencies.of(&system_of(t), &t.check_id).to_vec()
    }

    fn route(&self, t: &TransitionEvent, held_by: Option<&str>) -> Vec<Notice> {
        if !t.own_slice {
            return Vec::new();
        }
        let system = system_of(t);
        let system = system.as_str();
        // The first measurement of a healthy entity is a baseline, not news.
        if t.from == Status::Unknown && t.to == Status::Healthy {
            return Vec::new();
        }
        let targets = self.targets_of(system, &t.check_id);
        if targets.is_empty() {
            return Vec::new();
        }
        // Decided once per transition: windows can be long recurrences.
        let silenced = self.silenced_by(t, system, t.at_ms);
        targets
            .iter()
            .filter_map(|id| self.targets.get(id))
            .filter_map(|target| self.notice(t, system, target, 0, silenced, held_by))
            .collect()
    }
}

fn slack_text(context: &Value, t: &TransitionEvent) -> String {
    let icon = match t.to {
        Status::Healthy => ":large_green_circle:",
        Status::Degraded => ":large_yellow_circle:",
        Status::Unhealthy => ":red_circle:",
        Status::Unknown => ":white_circle:",
    };
    let text = |path: &str| context.pointer(path).and_then(Value::as_str).unwrap_or("");
    let env = context
        .pointer("/environment/name")
        .and_then(Value::as_str)
        .map(|e| format!(" ({e})"))
        .unwrap_or_default();
    let reminder = match text("/event") {
        "reminder" => "Still ",
        "flapping" => "Flapping: ",
        _ => "",
    };
    let dependents: Vec<&str> = context
        .pointer("/dependents")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|d| d.get("name").and_then(Value::as_str))
        .collect();
    let holds = if dependents.is_empty() || t.to != Status::Unhealthy {
        String::new()
    } else {
        format!(" (alerts of {} are held)", dependents.join(", "))
    };
    format!(
        "{icon} {reminder}*{}*{env} is {} (was {}): check {}{holds}",
        text("/system/name"),
        t.to,
        t.from,
        text("/check/name"),
    )
}

/// Reminders: every few seconds, an unhealthy entity whose last notice at a
/// target is older than the target's interval gets another, unless
/// `still_monitored` says its assignment is paused or gone.
pub async fn remind(
    store: Arc<Store>,
    notifier: impl Fn() -> Arc<Notifier>,
    still_monitored: impl Fn(&TransitionEvent) -> bool,
    now_ms: i64,
) -> Result<usize, StoreError> {
    let notifier = notifier();
    store.sweep_holds(notifier.as_ref(), now_ms).await?;
    let mut written = 0;
    for (id, target) in &notifier.targets {
        let Some(every) = target.reminder_every else {
            continue;
        };
        let overdue = store
            .overdue_reminders(id, now_ms - every.as_millis() as i64)
            .await?;
        // A transition still held by an unhealthy dependency is not
        // reminded of either.
        let deps: Vec<String> = overdue
            .iter()
            .flat_map(|o| notifier.dependencies(&o.transition))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let unhealthy: std::collections::HashSet<String> = if deps.is_empty() {
            Default::default()
        } else {
            store
                .statuses_of(&deps)
                .await?
                .into_iter()
                .filter(|s| s.status == Status::Unhealthy)
                .map(|s| s.entity_id)
                .collect()
        };
        let reminders: Vec<(TransitionEvent, Notice)> = overdue
            .into_iter()
            .filter(|o| still_monitored(&o.transition))
            .filter(|o| {
                !notifier
                    .dependencies(&o.transition)
                    .iter()
                    .any(|d| unhealthy.contains(d))
            })
            .filter_map(|o| {
                let notice = notifier.reminder(&o.transition, id, o.sent, now_ms)?;
                Some((o.transition, notice))
            })
            .collect();
        if !reminders.is_empty() {
            written += reminders.len();
            store.insert_reminders(&reminders, now_ms).await?;
        }
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(yaml: &str) -> ConfigFile {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    const BASE: &str = "
systems: [{id: shop, name: Web shop, environments: [prod]}]
environments: [{id: prod, name: Production}]
checks: [{id: web, name: Home page, strategy: {plugin: http}}]
assignments:
  - {system: shop, check: web, notify: [pager]}
notifications:
  targets:
    - {id: chat, url: 'http://127.0.0.1:1/chat', format: slack, default: true, onDeEscalation: false}
    - {id: pager, url: 'http://127.0.0.1:1/pager', format: template, contentType: text/plain,
       template: '{{ system.name }} {{ transition.to }} {{ idempotencyKey }}'}
  maintenance:
    - {id: nightly, systems: [shop], cron: '0 2 * * *', duration: 1h}
";

    fn transition(
        entity: &str,
        env: Option<&str>,
        from: Status,
        to: Status,
        at_ms: i64,
    ) -> TransitionEvent {
        TransitionEvent {
            id: Some(7),
            own_slice: true,
            entity_id: entity.into(),
            from,
            to,
            kind: TransitionKind::classify(from, to),
            check_id: "web".into(),
            environment_id: env.map(Into::into),
            healthy_checks: Some(1),
            total_checks: Some(2),
            flapping: None,
            run_id: Some(99),
            at_ms,
        }
    }

    fn notifier() -> Notifier {
        let secrets = SecretProvider {
            env_prefix: None,
            dir: None,
        };
        Notifier::new(&config(BASE), &secrets, Masker::default()).unwrap()
    }

    const NOON: i64 = 1_764_158_400_000; // 2025-11-26T12:00:00Z

    #[test]
    fn an_escalation_goes_to_default_and_assigned_targets_once_per_change() {
        let n = notifier();
        let t = transition(
            "shop::prod",
            Some("prod"),
            Status::Healthy,
            Status::Unhealthy,
            NOON,
        );
        let notices = n.route(&t, None);
        let targets: Vec<&str> = notices.iter().map(|n| n.target.as_str()).collect();
        assert_eq!(targets, ["chat", "pager"]);
        assert!(
            notices[0]
                .body
                .contains("*Web shop* (Production) is unhealthy")
        );
        assert_eq!(notices[1].content_type, "text/plain");
        assert_eq!(
            notices[1].body,
            format!("Web shop unhealthy {}", notices[1].idempotency_key)
        );
        assert_ne!(notices[0].idempotency_key, notices[1].idempotency_key);
        let rollup = TransitionEvent {
            own_slice: false,
            ..transition("shop", None, Status::Healthy, Status::Unhealthy, NOON)
        };
        assert!(
            n.route(&rollup, None).is_empty(),
            "the rollup it caused stays quiet"
        );
        let envless = transition("shop", None, Status::Healthy, Status::Unhealthy, NOON);
        assert_eq!(
            n.route(&envless, None).len(),
            2,
            "a slice without environment notifies on the system"
        );
    }

    #[test]
    fn policy_and_maintenance_decide_what_is_sent() {
        let n = notifier();
        let baseline = transition(
            "shop::prod",
            Some("prod"),
            Status::Unknown,
            Status::Healthy,
            NOON,
        );
        assert!(n.route(&baseline, None).is_empty());
        let better = transition(
            "shop::prod",
            Some("prod"),
            Status::Unhealthy,
            Status::Degraded,
            NOON,
        );
        let targets: Vec<String> = n
            .route(&better, None)
            .into_iter()
            .map(|n| n.target)
            .collect();
        assert_eq!(targets, ["pager"], "chat has de-escalations off");
        let night = NOON - 10 * 3_600_000 + 30 * 60_000; // 02:30
        let silenced = n.route(
            &transition(
                "shop::prod",
                Some("prod"),
                Status::Healthy,
                Status::Unhealthy,
                night,
            ),
            None,
        );
        assert_eq!(silenced.len(), 2);
        assert!(
            silenced.iter().all(
                |n| n.suppressed.as_deref() == Some("silenced by maintenance window `nightly`")
            )
        );
    }

    #[test]
    fn a_flapping_slice_says_so_once_then_its_notices_are_held() {
        let n = notifier();
        let started = TransitionEvent {
            flapping: Some(Flap::Started),
            ..transition(
                "shop::prod",
                Some("prod"),
                Status::Unhealthy,
                Status::Degraded,
                NOON,
            )
        };
        let notices = n.route(&started, None);
        let targets: Vec<&str> = notices.iter().map(|n| n.target.as_str()).collect();
        assert_eq!(
            targets,
            ["chat", "pager"],
            "every target hears it, de-escalations off or not"
        );
        assert!(notices.iter().all(|n| n.suppressed.is_none()));
        assert!(
            notices[0].body.contains("Flapping: "),
            "{}",
            notices[0].body
        );
        let held = TransitionEvent {
            flapping: Some(Flap::Held),
            ..transition(
                "shop::prod",
                Some("prod"),
                Status::Healthy,
                Status::Unhealthy,
                NOON,
            )
        };
        let notices = n.route(&held, None);
        assert_eq!(notices.len(), 2);
        assert!(
            notices
                .iter()
                .all(|n| n.suppressed.as_deref() == Some("held back: the slice is flapping")),
            "{notices:?}"
        );
    }

    #[test]
    fn reminders_get_their_own_key_and_bodies_are_masked() {
        let secrets = SecretProvider {
            env_prefix: None,
            dir: None,
        };
        let n = Notifier::new(
            &config(BASE),
            &secrets,
            Masker::new(["Web shop".to_string()]),
        )
        .unwrap();
        let t = transition(
            "shop::prod",
            Some("prod"),
            Status::Healthy,
            Status::Unhealthy,
            NOON,
        );
        let first = n.route(&t, None);
        let reminder = n.reminder(&t, "chat", 1, NOON + 60_000).unwrap();
        let night = NOON - 10 * 3_600_000 + 30 * 60_000; // 02:30, in the window
        assert!(n.reminder(&t, "chat", 1, night).is_none(), "silenced now");
        assert_ne!(reminder.idempotency_key, first[0].idempotency_key);
        assert!(reminder.body.contains("Still"), "{}", reminder.body);
        assert!(
            !reminder.body.contains("Web shop"),
            "masked: {}",
            reminder.body
        );
    }
}
