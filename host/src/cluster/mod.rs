//! Several nodes on one PostgreSQL: each node heartbeats, the node with the
//! newest configuration keeps the shared schedule in line with it, and
//! every node claims due slices under a lease, runs them and hands them
//! back with their next tick — so each slice runs once per interval
//! cluster-wide and a dead node's slices move on when their leases end.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::clock::now_ms;
use crate::serve::generation::Generation;
use crate::serve::scheduler::{Scheduler, first_due, tick_after};
use crate::store::Store;
use crate::store::entity::SliceId;
use crate::store::schedule::{Claim, ScheduleRow};

/// How often a node says it is alive and looks at the cluster's versions.
const HEARTBEAT: Duration = Duration::from_secs(1);
/// A node silent this long no longer counts as alive.
const DEAD_AFTER_MS: i64 = 5_000;
/// How often due slices are claimed, and how far ahead.
const CLAIM_EVERY: Duration = Duration::from_millis(100);
const LOOKAHEAD_MS: i64 = 250;
/// Slices claimed per round at most.
const CLAIM_LIMIT: i64 = 1_000;
/// How long after its due time a claimed run may still start: its lease is
/// this plus the longest check timeout, so a run that starts in time ends
/// inside its lease, and one admitted later is not started at all.
const START_WINDOW: Duration = Duration::from_secs(1);

pub struct Cluster {
    pub node: String,
    pub listen: String,
    pub scheduler: Arc<Scheduler>,
    pub store: Arc<Store>,
    /// Finished runs as `(slice, claimed due time, next due time)`, handed
    /// back in batches.
    released: Mutex<Vec<(String, i64, i64)>>,
    /// Claims whose run has not started yet: they hold no permit, but will.
    waiting: AtomicUsize,
    /// What this node knows of the cluster.
    view: tokio::sync::Mutex<View>,
    /// Statements sent for coordination (heartbeats, claims, hand-backs,
    /// syncs): what `bench cluster` divides by the runs.
    pub statements: AtomicU64,
}

/// What this node knows of the cluster, refreshed each heartbeat.
#[derive(Default)]
struct View {
    /// The configuration version that owns the schedule.
    owner: Option<String>,
    /// The generation this node last registered (node row, version).
    registered: Option<u64>,
    /// The generation whose slices this node last wrote to the schedule.
    synced: Option<u64>,
    /// The version last reported as newer than ours (logged once).
    reported: Option<String>,
}

/// Whether this node must write the schedule: it runs the owning version
/// and either loaded a new generation or just became the owner again
/// (another version, or nobody reachable, owned it meanwhile).
fn must_sync(view: &View, previous_owner: Option<&str>, mine: &str, generation: u64) -> bool {
    view.owner.as_deref() == Some(mine)
        && (view.synced != Some(generation) || previous_owner != Some(mine))
}

/// A generation's slices by schedule id, with what the schedule needs.
struct Slices {
    by_id: HashMap<String, (SliceId, i64)>,
    /// The longest check timeout: a run must start while it still fits in
    /// its lease.
    longest: Duration,
}

impl Slices {
    /// The lease beyond due: the start window and the longest run.
    fn hold_ms(&self) -> i64 {
        i64::try_from(self.longest.saturating_add(START_WINDOW).as_millis()).unwrap_or(i64::MAX)
    }
}

impl Slices {
    fn of(generation: &Generation) -> Slices {
        let file = &generation.setup.config.file;
        let longest = file
            .checks
            .iter()
            .map(|c| c.timeout.get())
            .max()
            .unwrap_or(Duration::from_secs(30));
        Slices {
            by_id: generation
                .slices
                .iter()
                .map(|(k, d)| (k.to_string(), (k.clone(), d.interval_ms)))
                .collect(),
            longest,
        }
    }
}

impl Cluster {
    pub fn new(
        node: String,
        listen: String,
        scheduler: Arc<Scheduler>,
        store: Arc<Store>,
    ) -> Arc<Cluster> {
        Arc::new(Cluster {
            node,
            listen,
            scheduler,
            store,
            released: Mutex::new(Vec::new()),
            view: tokio::sync::Mutex::new(View::default()),
            waiting: AtomicUsize::new(0),
            statements: AtomicU64::new(0),
        })
    }

    /// Claims and runs due slices until `stop`; returns the runs in flight.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) -> JoinSet<()> {
        let mut tasks = JoinSet::new();
        let mut next_heartbeat = 0;
        let mut slices: Option<(u64, Arc<Slices>)> = None;
        loop {
            let generation = self.scheduler.live().generation();
            let current = match &slices {
                Some((id, s)) if *id == generation.id => s.clone(),
                _ => {
                    let s = Arc::new(Slices::of(&generation));
                    slices = Some((generation.id, s.clone()));
                    s
                }
            };
            let now = now_ms();
            if now >= next_heartbeat {
                self.beat(&generation, now).await;
                next_heartbeat = now + HEARTBEAT.as_millis() as i64;
            }
            self.hand_back().await;
            let owner = self.view.lock().await.owner.clone();
            if owner.as_deref() == Some(generation.config_version.as_str()) {
                self.claim(&generation, &current, &mut tasks).await;
            }
            tokio::select! {
                _ = stop.changed() => break,
                () = tokio::time::sleep(CLAIM_EVERY) => {}
            }
            while tasks.try_join_next().is_some() {}
        }
        tasks
    }

    /// Hands back what is left and the node's other leases, and says the
    /// node stopped: its slices are free for the others at once.
    pub async fn finish(&self) {
        self.hand_back().await;
        if let Err(e) = self.store.node_stopped(&self.node).await {
            tracing::warn!("cannot hand the leases back; they expire on their own: {e}");
        }
    }

    /// Registers the node and, if it runs the owning version, writes the
    /// shared configuration and schedule: done once before the daemon
    /// serves, so its first answers already see them.
    pub async fn join(&self) {
        self.beat(&self.scheduler.live().generation(), now_ms())
            .await;
    }

    async fn beat(&self, generation: &Generation, now: i64) {
        let mut view = self.view.lock().await;
        if let Err(e) = self.heartbeat(generation, &mut view, now).await {
            tracing::warn!(
                "cluster heartbeat failed, claiming nothing until the database answers: {e}"
            );
            view.owner = None;
        }
    }

    async fn heartbeat(
        &self,
        generation: &Generation,
        view: &mut View,
        now: i64,
    ) -> Result<(), crate::store::StoreError> {
        let mine = generation.config_version.as_str();
        self.statements.fetch_add(2, Ordering::Relaxed);
        if view.registered != Some(generation.id) {
            self.store.register_config(mine).await?;
            self.store
                .register_node(&self.node, &self.listen, mine)
                .await?;
            view.registered = Some(generation.id);
        } else {
            self.store.heartbeat(&self.node, mine).await?;
        }
        let previous = view.owner.take();
        view.owner = self.store.newest_live_config(DEAD_AFTER_MS).await?;
        let Some(owner) = view.owner.clone() else {
            return Ok(());
        };
        if owner != mine {
            // Another node runs a newer configuration: its slices may be
            // ones this node does not know how to run.
            view.synced = None;
            if view.reported.as_deref() != Some(owner.as_str()) {
                tracing::warn!(
                    node = %self.node,
                    ours = mine,
                    cluster = %owner,
                    "this node's configuration is older than the one the cluster runs: \
                     claiming nothing until it loads that version"
                );
                view.reported = Some(owner);
            }
        } else if must_sync(view, previous.as_deref(), mine, generation.id) {
            self.sync(generation, now).await?;
            view.synced = Some(generation.id);
            view.reported = None;
        }
        Ok(())
    }

    /// Writes this configuration's slices to the schedule; new slices
    /// start where the local scheduler would start them.
    async fn sync(
        &self,
        generation: &Generation,
        now: i64,
    ) -> Result<(), crate::store::StoreError> {
        // The shared checks and assignments (thresholds, paused flags) follow
        // the owning version, like the schedule.
        let file = &generation.setup.config.file;
        self.store
            .sync_config(&file.checks, &file.assignments, &file.systems, now)
            .await?;
        let last = self.store.last_runs().await?;
        let rows: Vec<ScheduleRow> = generation
            .slices
            .iter()
            .map(|(key, def)| {
                let last_run = last.get(key).copied();
                ScheduleRow {
                    slice: key.to_string(),
                    system_id: key.system.clone(),
                    check_id: key.check.clone(),
                    interval_ms: def.interval_ms,
                    due_at: first_due(key, def.interval_ms, last_run, now),
                }
            })
            .collect();
        self.store
            .sync_schedule(&generation.config_version, &rows)
            .await?;
        // Config sync, last_runs, and the schedule's transaction (begin,
        // inserts, delete, commit): counted roughly, it happens on change.
        self.statements
            .fetch_add(8 + rows.len().div_ceil(500) as u64, Ordering::Relaxed);
        tracing::info!(node = %self.node, slices = rows.len(), version = %generation.config_version, "schedule synced");
        Ok(())
    }

    async fn hand_back(&self) {
        let next = std::mem::take(&mut *self.released.lock().unwrap_or_else(|e| e.into_inner()));
        if next.is_empty() {
            return;
        }
        self.statements
            .fetch_add(next.len().div_ceil(500) as u64, Ordering::Relaxed);
        if let Err(e) = self.store.release(&self.node, &next).await {
            // Retried next round; if the lease runs out first, the fence on
            // the claimed due time makes the retry a no-op.
            tracing::warn!(
                slices = next.len(),
                "cannot hand slices back, retrying: {e}"
            );
            self.released
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend(next);
        }
    }

    async fn claim(
        self: &Arc<Self>,
        generation: &Arc<Generation>,
        slices: &Arc<Slices>,
        tasks: &mut JoinSet<()>,
    ) {
        // Claims are capped by what this node can run now: a claim that
        // waits for admission burns its lease, and the cluster's other
        // nodes could have run it.
        let free =
            self.scheduler.free_permits() as i64 - self.waiting.load(Ordering::Relaxed) as i64;
        if free <= 0 || !self.scheduler.runtime_admits() {
            return;
        }
        let now = now_ms();
        // Taken before the claim: the lease's length counts from no later
        // than the database's start of it.
        let claimed = Instant::now();
        self.statements.fetch_add(1, Ordering::Relaxed);
        let claims = match self
            .store
            .claim_due(
                &self.node,
                &generation.config_version,
                now + LOOKAHEAD_MS,
                now,
                slices.hold_ms(),
                free.min(CLAIM_LIMIT),
            )
            .await
        {
            Ok(claims) => claims,
            Err(e) => {
                tracing::warn!("cannot claim due slices: {e}");
                return;
            }
        };
        for claim in claims {
            let Some((key, interval)) = slices.by_id.get(&claim.slice).cloned() else {
                // Synced by another generation of this version (a reload
                // raced the claim): hand it back untouched.
                self.released
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push((claim.slice, claim.due_at, claim.due_at));
                continue;
            };
            let this = self.clone();
            self.waiting.fetch_add(1, Ordering::Relaxed);
            // Started by then, the run ends inside its lease; later, another
            // node may hold the lease, so it is not started at all.
            let start_by = claimed + claim.lease.saturating_sub(slices.longest);
            tasks.spawn(async move { this.run_claim(claim, key, interval, start_by).await });
        }
    }

    async fn run_claim(&self, claim: Claim, key: SliceId, interval_ms: i64, start_by: Instant) {
        let wait = (claim.due_at - now_ms()).max(0) as u64;
        tokio::time::sleep(Duration::from_millis(wait)).await;
        self.waiting.fetch_sub(1, Ordering::Relaxed);
        if Instant::now() >= start_by {
            // Another node may hold it by now: never run it twice.
            tracing::warn!(slice = %claim.slice, "lease ran out before the run could start; left to the cluster");
            return;
        }
        // The runtime checks `start_by` again once it admits the run; one
        // it did not start goes back on its due time, for any node to run.
        let started = self
            .scheduler
            .run_claimed(&key, claim.due_at, start_by)
            .await;
        let next = if started {
            tick_after(claim.due_at, interval_ms, now_ms())
        } else {
            tracing::warn!(slice = %claim.slice, "admitted too late to start inside its lease; handed back");
            claim.due_at
        };
        self.released
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((claim.slice, claim.due_at, next));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_that_becomes_the_owner_again_rewrites_the_schedule() {
        let view = |owner: Option<&str>, synced| View {
            owner: owner.map(str::to_string),
            synced,
            ..View::default()
        };
        assert!(
            must_sync(&view(Some("v2"), None), None, "v2", 1),
            "first start"
        );
        assert!(
            !must_sync(&view(Some("v2"), Some(1)), Some("v2"), "v2", 1),
            "steady"
        );
        assert!(
            must_sync(&view(Some("v2"), Some(1)), Some("v2"), "v2", 2),
            "reloaded"
        );
        assert!(
            must_sync(&view(Some("v2"), Some(1)), None, "v2", 1),
            "back from a partition, others may have rewritten it"
        );
        assert!(
            !must_sync(&view(Some("v3"), Some(1)), Some("v2"), "v2", 1),
            "not the owner"
        );
    }
}
