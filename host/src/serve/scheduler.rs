//! The scheduler: every slice on its own fixed grid — a phase spread from a
//! hash of its id, ticks at `phase + k × interval` so nothing drifts — never
//! overlapping itself, resuming after a restart from its last stored run,
//! with bounded concurrency whose backpressure stops the clock rather than
//! queueing without limit.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tracing::Instrument;

use super::live::LiveConfig;
use super::metrics::Metrics;
use crate::clock::now_ms;
use crate::runtime::Runtime;
use crate::store::Store;
use crate::store::entity::SliceId;

pub struct Scheduler {
    live: Arc<LiveConfig>,
    runtime: Arc<Runtime>,
    store: Arc<Store>,
    metrics: Arc<Metrics>,
    permits: Arc<Semaphore>,
}

struct Slot {
    interval_ms: i64,
    /// The configuration's `paused`.
    paused: bool,
    due_ms: i64,
    running: Arc<AtomicBool>,
}

/// The first tick of a slice's grid at or after `t`.
fn grid_at_or_after(t: i64, phase: i64, interval: i64) -> i64 {
    t + (phase - t).rem_euclid(interval)
}

/// A slice's phase within its interval, from a stable hash of its id.
fn phase(key: &SliceId, interval_ms: i64) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in key.to_string().bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    (hash % interval_ms as u64) as i64
}

/// When a slice first runs. Never run: its next grid tick. Overdue (its
/// last run is an interval or more ago): once, soon — within a few seconds
/// spread by its phase, not all at once. Otherwise its next grid tick at
/// least half an interval after its last run.
pub fn first_due(key: &SliceId, interval_ms: i64, last_run_ms: Option<i64>, now: i64) -> i64 {
    let phase = phase(key, interval_ms);
    match last_run_ms {
        None => grid_at_or_after(now, phase, interval_ms),
        Some(last) if now - last >= interval_ms => now + phase % interval_ms.min(5_000),
        Some(last) => grid_at_or_after(now.max(last + interval_ms / 2), phase, interval_ms),
    }
}

/// The tick after a run that was due at `due` and finished at `now`, for
/// the shared schedule: on the grid, and at least half an interval away (a
/// slice taken over late does not run twice in a row).
pub fn tick_after(due: i64, interval_ms: i64, now: i64) -> i64 {
    let mut next = due + interval_ms;
    if next < now + interval_ms / 2 {
        let behind = (now + interval_ms / 2 - next + interval_ms - 1) / interval_ms;
        next += behind * interval_ms;
    }
    next
}

/// The tick after `due`: the next point of the grid, never `finish +
/// interval`. A slice that fell more than an interval behind (the host was
/// stalled) rejoins its grid instead of catching up in a burst.
fn next_due(key: &SliceId, due: i64, interval_ms: i64, now: i64) -> i64 {
    let next = due + interval_ms;
    if next + interval_ms < now {
        grid_at_or_after(now, phase(key, interval_ms), interval_ms)
    } else {
        next
    }
}

impl Scheduler {
    pub fn new(
        live: Arc<LiveConfig>,
        runtime: Arc<Runtime>,
        store: Arc<Store>,
        metrics: Arc<Metrics>,
        concurrency: usize,
    ) -> Arc<Scheduler> {
        Arc::new(Scheduler {
            live,
            runtime,
            store,
            metrics,
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
        })
    }

    /// The live configuration this scheduler follows.
    pub fn live(&self) -> &Arc<LiveConfig> {
        &self.live
    }

    /// Runs until `stop` turns true; returns the runs still in flight, for
    /// the caller to give a grace period.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) -> JoinSet<()> {
        let mut slots: HashMap<SliceId, Slot> = HashMap::new();
        let mut queue: BinaryHeap<Reverse<(i64, SliceId)>> = BinaryHeap::new();
        let mut tasks = JoinSet::new();
        self.reconcile(&mut slots, &mut queue).await;
        loop {
            let now = now_ms();
            let wait = queue
                .peek()
                .map_or(Duration::from_secs(3600), |Reverse((due, _))| {
                    Duration::from_millis((due - now).max(0) as u64)
                });
            tokio::select! {
                _ = stop.changed() => break,
                () = self.live.changed() => self.reconcile(&mut slots, &mut queue).await,
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                () = tokio::time::sleep(wait) => {
                    while let Some(Reverse((due, key))) = queue.peek().cloned() {
                        if due > now_ms() {
                            break;
                        }
                        queue.pop();
                        let Some(slot) = slots.get_mut(&key) else {
                            continue; // removed by a reload
                        };
                        if slot.due_ms != due {
                            continue; // rescheduled by a reload
                        }
                        slot.due_ms = next_due(&key, due, slot.interval_ms, now_ms());
                        queue.push(Reverse((slot.due_ms, key.clone())));
                        if self.live.is_paused(&key.system, &key.check, slot.paused) {
                            continue;
                        }
                        if slot.running.load(Ordering::Acquire) {
                            self.metrics.ticks_skipped.inc();
                            continue;
                        }
                        let running = slot.running.clone();
                        // Backpressure: at the concurrency bound the clock waits.
                        let permit = tokio::select! {
                            permit = self.permits.clone().acquire_owned() => permit,
                            _ = stop.changed() => return tasks,
                        };
                        let Ok(permit) = permit else { return tasks };
                        running.store(true, Ordering::Release);
                        let this = self.clone();
                        tasks.spawn(async move {
                            this.run_slice(&key, due, None).await;
                            running.store(false, Ordering::Release);
                            drop(permit);
                        });
                    }
                }
            }
        }
        tasks
    }

    /// Slots left under the concurrency bound.
    pub fn free_permits(&self) -> usize {
        self.permits.available_permits()
    }

    /// Whether the runtime admits a new run now: no run waits for a pool
    /// slot or for room in the memory budget.
    pub fn runtime_admits(&self) -> bool {
        self.runtime.pool_usage().runs_waiting == 0
    }

    /// Runs a slice claimed from the shared schedule, within the
    /// concurrency bound, unless it could start only after `start_by`;
    /// false when it did not run.
    pub async fn run_claimed(&self, key: &SliceId, due_ms: i64, start_by: Instant) -> bool {
        let Ok(_permit) = self.permits.clone().acquire_owned().await else {
            return false;
        };
        self.run_slice(key, due_ms, Some(start_by)).await
    }

    /// Runs a slice; false when nothing ran (see `Generation::run`).
    async fn run_slice(&self, key: &SliceId, due_ms: i64, start_by: Option<Instant>) -> bool {
        let started = now_ms();
        self.metrics
            .scheduler_lag
            .observe((started - due_ms).max(0) as f64 / 1000.0);
        self.metrics.in_flight.inc();
        let generation = self.live.generation();
        let span = tracing::info_span!(
            "run",
            system = %key.system,
            check = %key.check,
            environment = key.environment.as_deref().unwrap_or("-"),
        );
        let outcome = generation
            .run(key, &self.runtime, &self.store, start_by)
            .instrument(span.clone())
            .await;
        self.metrics.in_flight.dec();
        let _entered = span.enter();
        match outcome {
            None => false,
            Some(Ok(report)) => {
                self.metrics
                    .observe_run(&key.check, generation.strategy_of(key), &report);
                tracing::info!(
                    run_id = report.run_id,
                    healthy = report.healthy,
                    latency_ms = report.latency_ms,
                    error = report.error.as_deref().unwrap_or(""),
                    "run recorded"
                );
                for t in &report.transitions {
                    tracing::info!(entity = %t.entity_id, from = %t.from, to = %t.to, "status changed");
                }
                true
            }
            Some(Err(error)) => {
                self.metrics.observe_unpersisted(&key.check);
                tracing::error!("{error}");
                true
            }
        }
    }

    /// Brings the slot table in line with the current generation.
    async fn reconcile(
        &self,
        slots: &mut HashMap<SliceId, Slot>,
        queue: &mut BinaryHeap<Reverse<(i64, SliceId)>>,
    ) {
        let generation = self.live.generation();
        slots.retain(|key, _| generation.slices.contains_key(key));
        let new: Vec<&SliceId> = generation
            .slices
            .keys()
            .filter(|k| !slots.contains_key(*k))
            .collect();
        let last_runs = if new.is_empty() {
            HashMap::new()
        } else {
            self.store.last_runs().await.unwrap_or_else(|e| {
                tracing::warn!("cannot read the last runs, slices start on their grid: {e}");
                HashMap::new()
            })
        };
        let now = now_ms();
        for (key, def) in &generation.slices {
            let interval = def.interval_ms;
            if let Some(slot) = slots.get_mut(key) {
                slot.paused = def.paused;
            }
            match slots.get_mut(key) {
                Some(slot) if slot.interval_ms == interval => {}
                Some(slot) => {
                    slot.interval_ms = interval;
                    slot.due_ms = grid_at_or_after(now, phase(key, interval), interval);
                    queue.push(Reverse((slot.due_ms, key.clone())));
                }
                None => {
                    let last = last_runs.get(key).copied();
                    let due = first_due(key, interval, last, now);
                    queue.push(Reverse((due, key.clone())));
                    slots.insert(
                        key.clone(),
                        Slot {
                            interval_ms: interval,
                            paused: def.paused,
                            due_ms: due,
                            running: Arc::new(AtomicBool::new(false)),
                        },
                    );
                }
            }
        }
        self.metrics.slices.set(slots.len() as i64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(check: &str) -> SliceId {
        SliceId {
            system: "shop".into(),
            check: check.into(),
            environment: Some("prod".into()),
            location: None,
        }
    }

    #[test]
    fn a_late_claim_skips_to_a_tick_half_an_interval_away() {
        assert_eq!(tick_after(10_000, 2_000, 10_500), 12_000);
        assert_eq!(
            tick_after(10_000, 2_000, 11_200),
            14_000,
            "12 s is too close"
        );
        assert_eq!(
            tick_after(10_000, 2_000, 19_000),
            20_000,
            "half an interval on"
        );
        assert_eq!((tick_after(10_000, 2_000, 123_456) - 10_000) % 2_000, 0);
    }

    #[test]
    fn phases_spread_and_ticks_stay_on_the_grid() {
        let phases: std::collections::HashSet<i64> = (0..50)
            .map(|i| phase(&key(&format!("c{i}")), 30_000))
            .collect();
        assert!(phases.len() > 40, "slices of one interval spread out");
        let k = key("web");
        let first = first_due(&k, 30_000, None, 1_000_000);
        assert!((1_000_000..1_030_000).contains(&first));
        // A late finish does not move the next tick.
        assert_eq!(next_due(&k, first, 30_000, first + 29_000), first + 30_000);
        assert_eq!(
            (next_due(&k, first, 30_000, first + 10 * 30_000 + 5) - first) % 30_000,
            0,
            "a stalled slice rejoins its grid"
        );
    }

    #[test]
    fn after_a_restart_an_overdue_slice_runs_once_soon_and_a_fresh_one_waits() {
        let k = key("web");
        let now = 10_000_000;
        let first = first_due(&k, 60_000, None, now) + 60_000;
        let overdue = first_due(&k, 60_000, Some(now - 600_000), now);
        assert!(overdue - now < 5_000, "soon: {}", overdue - now);
        // Half an interval after the last run at least, then its grid.
        let recent = first_due(&k, 60_000, Some(now - 1_000), now);
        assert!((now + 29_000..now + 89_000).contains(&recent), "{recent}");
        assert_eq!((recent - phase(&k, 60_000)).rem_euclid(60_000), 0);
        // A last run on the grid: the very next tick, one interval later.
        let on_grid = first - 60_000;
        assert_eq!(first_due(&k, 60_000, Some(on_grid), on_grid + 5_000), first);
    }
}
