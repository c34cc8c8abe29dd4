//! A batch applied in memory: each run, in order, is folded into its slice's
//! recent outcomes and its hourly aggregate, and its entities are
//! re-evaluated — yielding the rows to write and exactly one transition per
//! status change, however many runs of one entity the batch holds.

use std::collections::HashMap;

use super::entity::{EntityId, entities_of, split_key};
use super::fields::{FieldBucket, FieldMap};
use super::sketch::Sketch;
use super::state::{
    CheckCounts, FAILED, NO_PROBE, PASSED, Status, TransitionKind, outcomes_status, runs_needed,
    worst,
};
use super::{HOUR_MS, NewRun, TransitionEvent};
use crate::config::Thresholds;

/// A slice as the batch sees it: loaded under the entity locks, then updated.
#[derive(Debug, Clone)]
pub struct SliceState {
    pub check_id: String,
    /// Its environment and location, as the `env_key` column holds them.
    pub env_key: String,
    /// Newest first, `1` failed, `0` passed; as many as the thresholds need.
    pub outcomes: String,
    pub status: Status,
    /// Outcomes and status as loaded: an unchanged slice is not rewritten.
    pub stored: (String, Status),
    pub thresholds: Thresholds,
    /// The assignment exists and is not paused.
    pub assigned: bool,
    /// The slice's `counts` column: the configuration selects it, or it
    /// carries the runs of a check that could not be prepared.
    pub selected: bool,
    /// `selected` as loaded: a changed one is written back.
    pub stored_selected: bool,
    /// A probe slice's newest run by measured time (`None` for the
    /// server's own slices, whose runs come in order). Written only with
    /// a change of outcomes, so a steady slice still costs no write: a
    /// no-probe run always changes them, and it is what spooled runs
    /// arrive behind.
    pub newest_at: Option<i64>,
}

impl SliceState {
    /// Whether the slice counts in its entities; when not, it is measured
    /// but counts for nothing.
    pub fn counts(&self) -> bool {
        self.assigned && self.selected
    }

    fn record(&mut self, outcome: char) {
        self.outcomes.insert(0, outcome);
        self.outcomes
            .truncate(runs_needed(&self.thresholds).max(1) as usize);
        self.status = self.evaluate();
    }

    /// Whether the batch changed what is stored: a steady slice (`00000`
    /// stays `00000`) costs no write.
    pub fn changed(&self) -> bool {
        self.stored.0 != self.outcomes
            || self.stored.1 != self.status
            || self.stored_selected != self.selected
    }

    /// The slice's status under its thresholds.
    pub fn evaluate(&self) -> Status {
        outcomes_status(&self.thresholds, &self.outcomes, self.status)
    }
}

/// One hourly bucket of one slice.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Aggregate {
    pub total: i64,
    pub healthy: i64,
    pub unhealthy: i64,
    /// Runs with a latency: those of checks that could not be prepared have
    /// none, and averages divide by this, not by `total`.
    pub latency_count: i64,
    pub latency_sum: f64,
    pub latency_min: f64,
    pub latency_max: f64,
    pub sketch: Sketch,
    /// The runs' marked result fields.
    pub fields: FieldMap,
}

impl Aggregate {
    fn add(&mut self, run: &NewRun) {
        for f in &run.fields {
            let sample = FieldBucket::new(f.value, run.at_ms);
            self.fields
                .entry(format!("{}.{}", f.collector, f.field))
                .and_modify(|b| b.merge(&sample))
                .or_insert(sample);
        }
        let (latency_ms, healthy) = (run.latency_ms, run.healthy);
        self.total += 1;
        if healthy {
            self.healthy += 1;
        } else {
            self.unhealthy += 1;
        }
        let Some(latency_ms) = latency_ms else {
            return;
        };
        if self.latency_count == 0 {
            self.latency_min = latency_ms;
            self.latency_max = latency_ms;
        } else {
            self.latency_min = self.latency_min.min(latency_ms);
            self.latency_max = self.latency_max.max(latency_ms);
        }
        self.latency_count += 1;
        self.latency_sum += latency_ms;
        self.sketch.add(latency_ms);
    }

    /// The sketch's estimate, clamped to the bucket's own range: a bucket
    /// midpoint can lie outside [min, max] when few runs fall in it.
    pub fn p95(&self) -> f64 {
        if self.latency_count == 0 {
            return 0.0;
        }
        self.sketch
            .quantile(0.95)
            .clamp(self.latency_min, self.latency_max)
    }
}

/// What the batch needs from the database, read once per batch.
#[derive(Debug, Default)]
pub struct Loaded {
    pub slices: HashMap<i64, SliceState>,
    /// Status of the counting slices *not* in this batch, per system:
    /// `(check, environment key ("" for env-less), status)`.
    pub others: HashMap<String, Vec<(String, String, Status)>>,
    /// Stored entity statuses and check counts; an entity absent here
    /// starts healthy.
    pub entities: HashMap<String, (Status, Option<CheckCounts>)>,
    pub aggregates: HashMap<(i64, i64), Aggregate>,
    /// Env-less slices that held the runs of a check that could not be
    /// prepared, now that its environments run again: they stop counting.
    pub released: Vec<i64>,
}

/// A run queued for the batch, with the ids it was given before the write.
#[derive(Clone, Copy)]
pub struct PendingRun<'a> {
    pub id: i64,
    pub slice_id: i64,
    pub run: &'a NewRun,
    pub result_json: &'a str,
}

#[derive(Debug, Default)]
pub struct Applied {
    /// Final status and check counts of every entity that changed, with
    /// the time it changed.
    pub entities: Vec<(String, Status, CheckCounts, i64)>,
    /// Per run of the batch (same order), the transitions it caused.
    pub transitions: Vec<Vec<TransitionEvent>>,
}

pub fn hour_bucket(at_ms: i64) -> i64 {
    at_ms.div_euclid(HOUR_MS) * HOUR_MS
}

/// Applies the runs in order to `loaded`, which then holds the new slice
/// states and aggregates to write.
pub fn apply(loaded: &mut Loaded, runs: &[PendingRun<'_>]) -> Applied {
    let mut touched_by_system: HashMap<String, Vec<i64>> = HashMap::new();
    for p in runs {
        let system = &p.run.system_id;
        let ids = touched_by_system.entry(system.clone()).or_default();
        if !ids.contains(&p.slice_id) {
            ids.push(p.slice_id);
        }
    }
    let mut changed_entities: HashMap<String, (Status, CheckCounts, i64)> = HashMap::new();
    let mut transitions = Vec::with_capacity(runs.len());
    for p in runs {
        let run = p.run;
        if let Some(slice) = loaded.slices.get_mut(&p.slice_id) {
            // A check that could not be prepared reports on the system
            // through its env-less slice, which counts until the
            // environments run again.
            if run.latency_ms.is_none() && !run.no_probe {
                slice.selected = true;
            }
            // A probe's run delivered after a later one (it waited in the
            // spool while the server recorded no-probe runs, say) is kept
            // for history; the slice's state follows the newest.
            let late = slice.newest_at.is_some_and(|newest| run.at_ms < newest);
            if run.location_id.is_some() {
                slice.newest_at = Some(slice.newest_at.map_or(run.at_ms, |n| n.max(run.at_ms)));
            }
            if !late {
                slice.record(match (run.no_probe, run.healthy) {
                    (true, _) => NO_PROBE,
                    (false, true) => PASSED,
                    (false, false) => FAILED,
                });
            }
        }
        if !run.no_probe {
            loaded
                .aggregates
                .entry((p.slice_id, hour_bucket(run.at_ms)))
                .or_default()
                .add(run);
        }

        let mut caused = Vec::new();
        let entities = entities_of(
            &run.system_id,
            run.environment_id.as_deref(),
            run.location_id.as_deref(),
        );
        for entity in entities {
            let (status, counts) = entity_state(loaded, &touched_by_system, &entity);
            if status == Status::Unknown {
                continue;
            }
            let id = entity.to_string();
            let (previous, previous_counts) = match changed_entities.get(&id) {
                Some((s, c, _)) => (Some(*s), Some(*c)),
                None => match loaded.entities.get(&id) {
                    Some((s, c)) => (Some(*s), *c),
                    None => (None, None),
                },
            };
            if previous == Some(status) && previous_counts == Some(counts) {
                continue;
            }
            changed_entities.insert(id.clone(), (status, counts, run.at_ms));
            if previous == Some(status) {
                // Only the counts moved ("1 of 2" to "0 of 2" while degraded).
                continue;
            }
            // An entity never measured, or left with nothing enabled, has no
            // status to leave: its first measurement is a baseline.
            let from = previous
                .filter(|s| *s != Status::Unknown)
                .unwrap_or(Status::Healthy);
            if from != status {
                caused.push(TransitionEvent {
                    id: None,
                    own_slice: false,
                    entity_id: id,
                    from,
                    to: status,
                    kind: TransitionKind::classify(from, status),
                    check_id: run.check_id.clone(),
                    // A rollup is the system's, not one environment's.
                    environment_id: entity.environment().map(str::to_string),
                    healthy_checks: Some(counts.healthy_checks),
                    total_checks: Some(counts.total_checks),
                    flapping: None,
                    run_id: Some(p.id),
                    at_ms: run.at_ms,
                });
            }
        }
        mark_own(&mut caused);
        transitions.push(caused);
    }
    let mut entities: Vec<_> = changed_entities
        .into_iter()
        .map(|(entity, (status, counts, at))| (entity, status, counts, at))
        .collect();
    entities.sort_by(|a, b| a.0.cmp(&b.0));
    Applied {
        entities,
        transitions,
    }
}

/// One change sends one notice: of the entities a change moved, each
/// notifies unless a narrower one of them did (a rollup echoes its
/// environment, an environment its location).
pub fn mark_own(transitions: &mut [TransitionEvent]) {
    let entities: Vec<EntityId> = transitions
        .iter()
        .map(|t| EntityId::parse(&t.entity_id))
        .collect();
    for (t, entity) in transitions.iter_mut().zip(&entities) {
        t.own_slice = !entities.iter().any(|other| entity.covers(other));
    }
}

/// Worst over the counting slices an entity holds, and its check counts:
/// the batch's slices as they are now, the others as loaded.
fn entity_state(
    loaded: &Loaded,
    touched_by_system: &HashMap<String, Vec<i64>>,
    entity: &EntityId,
) -> (Status, CheckCounts) {
    let in_scope = |env_key: &str| {
        let (env, location) = split_key(env_key);
        entity.holds(env, location)
    };
    let system = entity.system();
    let others = loaded
        .others
        .get(system)
        .into_iter()
        .flatten()
        .filter(|(_, env_key, _)| in_scope(env_key))
        .map(|(check, _, status)| (check.as_str(), *status));
    let touched = touched_by_system
        .get(system)
        .into_iter()
        .flatten()
        .filter_map(|id| loaded.slices.get(id))
        .filter(|s| s.counts() && in_scope(&s.env_key))
        .map(|s| (s.check_id.as_str(), s.status));
    let slices: Vec<(&str, Status)> = others.chain(touched).collect();
    (
        worst(slices.iter().map(|(_, s)| *s)),
        CheckCounts::of(slices),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn slice(env: Option<&str>, thresholds: Thresholds) -> SliceState {
        SliceState {
            check_id: "web".into(),
            env_key: env.unwrap_or("").to_string(),
            outcomes: String::new(),
            status: Status::Unknown,
            stored: (String::new(), Status::Unknown),
            thresholds,
            assigned: true,
            selected: true,
            stored_selected: true,
            newest_at: None,
        }
    }

    fn new_run(env: Option<&str>, healthy: bool, at_ms: i64, latency_ms: f64) -> NewRun {
        NewRun {
            system_id: "shop".into(),
            check_id: "web".into(),
            environment_id: env.map(str::to_string),
            location_id: None,
            healthy,
            latency_ms: Some(latency_ms),
            result: json!({}),
            error: None,
            at_ms,
            fields: Vec::new(),
            origin: None,
            no_probe: false,
        }
    }

    const ONE_OF_ONE: CheckCounts = CheckCounts {
        healthy_checks: 1,
        total_checks: 1,
    };

    const STRICT: Thresholds = Thresholds::Consecutive {
        degraded: 1,
        unhealthy: 1,
        healthy: 1,
    };

    #[test]
    fn a_probe_slice_follows_its_newest_run_and_no_probe_runs_make_it_degraded() {
        let mut loaded = Loaded::default();
        let mut located = slice(Some("prod"), STRICT);
        located.env_key = "prod@eu".into();
        loaded.slices.insert(1, located);
        let at = |healthy: bool, at_ms: i64, no_probe: bool| NewRun {
            location_id: Some("eu".into()),
            no_probe,
            latency_ms: (!no_probe).then_some(1.0),
            ..new_run(Some("prod"), healthy, at_ms, 1.0)
        };
        // Measured at 100; nobody online at 200; a spooled run from 150
        // arrives late; a fresh one at 300.
        let runs = [
            at(true, 100, false),
            at(false, 200, true),
            at(true, 150, false),
            at(true, 300, false),
        ];
        let mut seen = Vec::new();
        for (i, run) in runs.iter().enumerate() {
            let pending = [PendingRun {
                id: i as i64,
                slice_id: 1,
                run,
                result_json: "{}",
            }];
            let applied = apply(&mut loaded, &pending);
            let own: Vec<String> = applied.transitions[0]
                .iter()
                .filter(|t| t.own_slice)
                .map(|t| format!("{} {}", t.entity_id, t.to))
                .collect();
            seen.push((loaded.slices[&1].status, own));
            // As the writer stores them for the next batch.
            for (entity, status, counts, _) in applied.entities {
                loaded.entities.insert(entity, (status, Some(counts)));
            }
        }
        assert_eq!(
            seen,
            [
                (Status::Healthy, vec![]),
                (Status::Degraded, vec!["shop::prod@eu degraded".to_string()]),
                (Status::Degraded, vec![]),
                (Status::Healthy, vec!["shop::prod@eu healthy".to_string()]),
            ],
            "the late run moves nothing; only the narrowest entity notifies"
        );
        assert_eq!(loaded.slices[&1].newest_at, Some(300));
        // Only measured runs count in the hourly bucket.
        assert_eq!(loaded.aggregates.values().map(|a| a.total).sum::<i64>(), 3);
    }

    #[test]
    fn a_flip_and_back_in_one_batch_is_two_transitions_per_entity() {
        let mut loaded = Loaded::default();
        loaded.slices.insert(1, slice(Some("prod"), STRICT));
        let runs = [
            new_run(Some("prod"), true, 1, 1.0),
            new_run(Some("prod"), false, 2, 1.0),
            new_run(Some("prod"), false, 3, 1.0),
            new_run(Some("prod"), true, 4, 1.0),
        ];
        let pending: Vec<_> = runs
            .iter()
            .enumerate()
            .map(|(i, run)| PendingRun {
                id: i as i64,
                slice_id: 1,
                run,
                result_json: "{}",
            })
            .collect();
        let applied = apply(&mut loaded, &pending);
        let kinds: Vec<Vec<(String, TransitionKind)>> = applied
            .transitions
            .iter()
            .map(|ts| ts.iter().map(|t| (t.entity_id.clone(), t.kind)).collect())
            .collect();
        let both = |k| vec![("shop".to_string(), k), ("shop::prod".to_string(), k)];
        assert_eq!(
            kinds,
            [
                vec![],
                both(TransitionKind::Escalation),
                vec![],
                both(TransitionKind::Recovery)
            ]
        );
        assert_eq!(
            applied.entities,
            [
                ("shop".to_string(), Status::Healthy, ONE_OF_ONE, 4),
                ("shop::prod".to_string(), Status::Healthy, ONE_OF_ONE, 4)
            ]
        );
        assert_eq!(
            loaded.slices[&1].outcomes, "0",
            "trimmed to what thresholds need"
        );
    }

    #[test]
    fn the_rollup_sees_slices_outside_the_batch_and_ignores_paused_ones() {
        let mut loaded = Loaded::default();
        loaded.slices.insert(1, slice(Some("prod"), STRICT));
        let mut paused = slice(Some("dev"), STRICT);
        paused.assigned = false;
        loaded.slices.insert(2, paused);
        loaded.others.insert(
            "shop".into(),
            vec![("api".into(), "staging".into(), Status::Degraded)],
        );
        loaded
            .entities
            .insert("shop".into(), (Status::Degraded, None));
        let runs = [
            new_run(Some("dev"), false, 1, 1.0),
            new_run(Some("prod"), true, 2, 1.0),
        ];
        let pending = [
            PendingRun {
                id: 1,
                slice_id: 2,
                run: &runs[0],
                result_json: "{}",
            },
            PendingRun {
                id: 2,
                slice_id: 1,
                run: &runs[1],
                result_json: "{}",
            },
        ];
        let applied = apply(&mut loaded, &pending);
        assert!(applied.transitions.iter().all(Vec::is_empty), "{applied:?}");
        assert_eq!(
            applied.entities,
            [
                (
                    "shop".to_string(),
                    Status::Degraded,
                    CheckCounts {
                        healthy_checks: 1,
                        total_checks: 2
                    },
                    2
                ),
                ("shop::prod".to_string(), Status::Healthy, ONE_OF_ONE, 2)
            ],
            "first healthy evaluation stores the baseline without a transition"
        );
    }

    #[test]
    fn p95_stays_inside_the_bucket_range() {
        for latencies in [
            vec![4.14],
            vec![4.14, 4.15],
            (1..=14).map(f64::from).collect(),
        ] {
            let mut a = Aggregate::default();
            for l in &latencies {
                a.add(&new_run(None, true, 0, *l));
            }
            let p95 = a.p95();
            assert!(
                a.latency_min <= p95 && p95 <= a.latency_max,
                "p95 {p95} outside [{}, {}] for {} runs",
                a.latency_min,
                a.latency_max,
                latencies.len()
            );
        }
    }
}
