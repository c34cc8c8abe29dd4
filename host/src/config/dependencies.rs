//! Dependencies between systems (`dependsOn`): while a dependency is
//! unhealthy, the notices of what depends on it are held, so one failure
//! pages once. Validated here (unknown targets, cycles) and resolved into
//! the lookups the notifier needs.

use std::collections::{BTreeMap, HashMap};

use super::ConfigFile;

/// A `dependsOn` entry: a system, or one environment of it
/// (`db::production`). Its text is the entity id whose status counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DependencyRef {
    pub system: String,
    pub environment: Option<String>,
}

impl DependencyRef {
    pub fn parse(text: &str) -> Result<DependencyRef, String> {
        let (system, environment) = match text.split_once("::") {
            Some((system, env)) => (system, Some(env)),
            None => (text, None),
        };
        if system.is_empty() || environment.is_some_and(str::is_empty) {
            return Err(format!(
                "`{text}` is not a dependency: write `system` or `system::environment`"
            ));
        }
        Ok(DependencyRef {
            system: system.to_string(),
            environment: environment.map(str::to_string),
        })
    }

    /// The entity whose status the dependency follows.
    pub fn entity_id(&self) -> String {
        match &self.environment {
            Some(env) => format!("{}::{env}", self.system),
            None => self.system.clone(),
        }
    }
}

/// The configuration's dependencies, resolved. Entries that do not parse
/// or name nothing are left out: `validate` reports them.
#[derive(Debug, Default)]
pub struct Dependencies {
    /// `(system, check)` → the entities whose unhealthiness holds its
    /// notices: the system's `dependsOn`, then the assignment's.
    of_assignment: HashMap<(String, String), Vec<String>>,
    /// Each resolved `dependsOn` entry with the system that declares it
    /// (for a system's own, or one of its assignments').
    edges: Vec<(DependencyRef, String)>,
}

impl Dependencies {
    pub fn new(config: &ConfigFile) -> Dependencies {
        let known = |r: &DependencyRef| {
            config.system(&r.system).is_some_and(|s| {
                r.environment
                    .as_ref()
                    .is_none_or(|e| s.environments.contains(e))
            })
        };
        let resolve = |texts: &[String]| -> Vec<DependencyRef> {
            texts
                .iter()
                .filter_map(|t| DependencyRef::parse(t).ok())
                .filter(known)
                .collect()
        };
        let mut of_assignment = HashMap::new();
        let mut edges: Vec<(DependencyRef, String)> = Vec::new();
        let mut edge = |r: &DependencyRef, dependent: &str| {
            if !edges.iter().any(|(e, d)| e == r && d == dependent) {
                edges.push((r.clone(), dependent.to_string()));
            }
        };
        for a in &config.assignments {
            let Some(system) = config.system(&a.system) else {
                continue;
            };
            let mut refs = resolve(&system.depends_on);
            refs.extend(resolve(&a.depends_on));
            if refs.is_empty() {
                continue;
            }
            for r in &refs {
                edge(r, &a.system);
            }
            let mut ids: Vec<String> = Vec::new();
            for id in refs.iter().map(DependencyRef::entity_id) {
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
            of_assignment.insert((a.system.clone(), a.check.clone()), ids);
        }
        for system in &config.systems {
            for r in resolve(&system.depends_on) {
                edge(&r, &system.id);
            }
        }
        Dependencies {
            of_assignment,
            edges,
        }
    }

    /// The entities whose being unhealthy holds the notices of this
    /// assignment.
    pub fn of(&self, system: &str, check: &str) -> &[String] {
        self.of_assignment
            .get(&(system.to_string(), check.to_string()))
            .map_or(&[], Vec::as_slice)
    }

    /// The systems whose notices an unhealthy `entity` (`db`,
    /// `db::production`, `db::production@eu-west`) holds: those depending
    /// on its system or on its environment, then, through them, the
    /// systems depending on those in any environment.
    pub fn dependents_of(&self, entity: &str) -> Vec<String> {
        let base = entity.split('@').next().unwrap_or(entity);
        let (system, environment) = base
            .split_once("::")
            .map_or((base, None), |(s, e)| (s, Some(e)));
        let mut found: Vec<String> = Vec::new();
        let mut queue: Vec<String> = Vec::new();
        let reach = |d: &String, found: &mut Vec<String>, queue: &mut Vec<String>| {
            if d != system && !found.contains(d) {
                found.push(d.clone());
                queue.push(d.clone());
            }
        };
        for (r, dependent) in &self.edges {
            let env_matches = r
                .environment
                .as_deref()
                .is_none_or(|e| environment == Some(e));
            if r.system == system && env_matches {
                reach(dependent, &mut found, &mut queue);
            }
        }
        while let Some(next) = queue.pop() {
            for (r, dependent) in &self.edges {
                if r.system == next {
                    reach(dependent, &mut found, &mut queue);
                }
            }
        }
        found.sort();
        found
    }

    pub fn is_empty(&self) -> bool {
        self.of_assignment.is_empty()
    }
}

/// What is wrong with the configuration's `dependsOn` entries, by place:
/// a malformed entry, an unknown system or environment, a cycle.
pub fn problems(config: &ConfigFile) -> Vec<(String, String)> {
    let mut out = Vec::new();
    // system → (its dependencies' systems, the place that first says so)
    let mut edges: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut check = |place: String, owner: &str, texts: &[String]| {
        for (i, text) in texts.iter().enumerate() {
            let place = format!("{place}.dependsOn[{i}]");
            let r = match DependencyRef::parse(text) {
                Ok(r) => r,
                Err(e) => {
                    out.push((place, e));
                    continue;
                }
            };
            match config.system(&r.system) {
                None => out.push((place, format!("unknown system `{}`", r.system))),
                Some(s) => match &r.environment {
                    Some(env) if !s.environments.contains(env) => out.push((
                        place,
                        format!("system `{}` is not in environment `{env}`", r.system),
                    )),
                    _ => {
                        edges
                            .entry(owner.to_string())
                            .or_default()
                            .entry(r.system.clone())
                            .or_insert(place);
                    }
                },
            }
        }
    };
    for system in &config.systems {
        check(
            format!("systems[{}]", system.id),
            &system.id,
            &system.depends_on,
        );
    }
    for (i, a) in config.assignments.iter().enumerate() {
        check(format!("assignments[{i}]"), &a.system, &a.depends_on);
    }
    if let Some((place, cycle)) = first_cycle(&edges) {
        out.push((
            place,
            format!("dependencies form a cycle: {}", cycle.join(" → ")),
        ));
    }
    out
}

/// A cycle among the systems, as the place of its first edge and the path
/// `a → b → a`.
fn first_cycle(
    edges: &BTreeMap<String, BTreeMap<String, String>>,
) -> Option<(String, Vec<String>)> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit<'a>(
        node: &'a str,
        edges: &'a BTreeMap<String, BTreeMap<String, String>>,
        marks: &mut HashMap<&'a str, Mark>,
        path: &mut Vec<&'a str>,
    ) -> Option<(String, Vec<String>)> {
        marks.insert(node, Mark::Open);
        path.push(node);
        for (next, place) in edges.get(node).into_iter().flatten() {
            match marks.get(next.as_str()) {
                Some(Mark::Open) => {
                    let start = path.iter().position(|p| p == next).unwrap_or(0);
                    let mut cycle: Vec<String> =
                        path[start..].iter().map(|s| s.to_string()).collect();
                    cycle.push(next.clone());
                    return Some((place.clone(), cycle));
                }
                Some(Mark::Done) => {}
                None => {
                    if let Some(found) = visit(next, edges, marks, path) {
                        return Some(found);
                    }
                }
            }
        }
        path.pop();
        marks.insert(node, Mark::Done);
        None
    }
    let mut marks = HashMap::new();
    for node in edges.keys() {
        if !marks.contains_key(node.as_str())
            && let Some(found) = visit(node, edges, &mut marks, &mut Vec::new())
        {
            return Some(found);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(yaml: &str) -> ConfigFile {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    const CHAIN: &str = "
environments: [{id: prod}]
systems:
  - {id: net}
  - {id: db, dependsOn: [net]}
  - {id: api, environments: [prod], dependsOn: [db]}
  - {id: web, environments: [prod]}
checks: [{id: up, strategy: {plugin: http}}]
assignments:
  - {system: net, check: up}
  - {system: db, check: up}
  - {system: api, check: up}
  - {system: web, check: up, dependsOn: ['api::prod']}
";

    #[test]
    fn a_chain_resolves_to_direct_dependencies_and_transitive_dependents() {
        let c = config(CHAIN);
        assert!(problems(&c).is_empty(), "{:?}", problems(&c));
        let d = Dependencies::new(&c);
        assert_eq!(d.of("api", "up"), ["db"]);
        assert_eq!(d.of("web", "up"), ["api::prod"]);
        assert!(d.of("net", "up").is_empty());
        assert_eq!(d.dependents_of("net"), ["api", "db", "web"]);
        // web depends on api's prod environment only.
        assert_eq!(d.dependents_of("api::prod"), ["web"]);
        assert_eq!(d.dependents_of("api::prod@eu-west"), ["web"]);
        assert!(d.dependents_of("api::staging").is_empty());
        assert!(d.dependents_of("web").is_empty());
    }

    #[test]
    fn unknown_targets_malformed_entries_and_cycles_are_named_by_place() {
        let c = config(
            "
environments: [{id: prod}]
systems:
  - {id: a, dependsOn: [b, ghost, 'b::prod', '::x']}
  - {id: b, dependsOn: [c]}
  - {id: c}
checks: [{id: up, strategy: {plugin: http}}]
assignments:
  - {system: c, check: up, dependsOn: [a]}
",
        );
        let found = problems(&c);
        let text = |place: &str| {
            found
                .iter()
                .find(|(p, _)| p == place)
                .map(|(_, m)| m.as_str())
                .unwrap_or_else(|| panic!("nothing at {place}: {found:?}"))
        };
        assert_eq!(text("systems[a].dependsOn[1]"), "unknown system `ghost`");
        assert_eq!(
            text("systems[a].dependsOn[2]"),
            "system `b` is not in environment `prod`"
        );
        assert!(text("systems[a].dependsOn[3]").contains("not a dependency"));
        // Named where the cycle closes.
        assert_eq!(
            text("assignments[0].dependsOn[0]"),
            "dependencies form a cycle: a → b → c → a"
        );
    }

    #[test]
    fn a_system_depending_on_itself_is_a_cycle() {
        let c = config("systems: [{id: a, dependsOn: [a]}]");
        assert_eq!(
            problems(&c),
            [(
                "systems[a].dependsOn[0]".to_string(),
                "dependencies form a cycle: a → a".to_string()
            )]
        );
    }
}
