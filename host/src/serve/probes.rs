//! The probe watchdog: when no probe of a location has reported within
//! `probes.offlineAfter` heartbeats, each of the location's slices records
//! a `no-probe` run per interval: degraded, never stale, never unhealthy.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::watch;

use super::live::LiveConfig;
use super::metrics::{LocationLabels, Metrics, ProbeLabels};
use crate::clock::now_ms;
use crate::store::entity::SliceId;
use crate::store::probes::ProbeRecord;
use crate::store::{NewRun, Store, StoreError};

/// A cluster node that has not beaten for this long is gone.
const NODE_GONE_MS: i64 = 5_000;

/// Checks the probes every heartbeat until `stop`. In a cluster (`node`
/// is this node's id) only the live node with the lowest id records
/// `no-probe` runs, so a location's slices get one per interval, not one
/// per node.
pub async fn watch_probes(
    store: Arc<Store>,
    live: Arc<LiveConfig>,
    metrics: Arc<Metrics>,
    node: Option<String>,
    mut stop: watch::Receiver<bool>,
) {
    let started = now_ms();
    let mut ledger: Option<Ledger> = None;
    loop {
        let generation = live.generation();
        let file = &generation.setup.config.file;
        let window = file.probes.offline_window_ms();
        if !file.locations.is_empty() {
            let pass = async {
                let probes = store.probes().await?;
                observe(&metrics, &file.locations, &probes, window);
                // A server that just started has not heard from anyone yet.
                if now_ms() - started >= window && leads(&store, node.as_deref()).await? {
                    record_offline(&store, &live, &probes, window, &mut ledger).await?;
                } else {
                    ledger = None;
                }
                Ok::<(), StoreError>(())
            };
            if let Err(e) = pass.await {
                ledger = None;
                tracing::warn!("probe watchdog: {e}");
            }
        }
        let heartbeat = file.probes.heartbeat.as_millis().max(100);
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(heartbeat as u64)) => {}
            _ = stop.changed() => return,
        }
    }
}

/// When each slice of the offline locations last ran, read from the
/// database once when the set of offline locations changes (or this node
/// takes over), then kept as the watchdog records: reading every slice's
/// newest run each heartbeat would cost a node of 100,000 slices dearly.
struct Ledger {
    offline: BTreeSet<String>,
    last: HashMap<SliceId, i64>,
}

/// Whether this process records `no-probe` runs: alone, or as the live
/// cluster node with the lowest id.
async fn leads(store: &Store, node: Option<&str>) -> Result<bool, StoreError> {
    let Some(me) = node else {
        return Ok(true);
    };
    let now = now_ms();
    let leader = store
        .nodes()
        .await?
        .into_iter()
        .filter(|n| n.stopped_at_ms.is_none() && now - n.heartbeat_at_ms <= NODE_GONE_MS)
        .map(|n| n.id)
        .min();
    Ok(leader.is_none_or(|id| id == me))
}

/// The probes' gauges: online probes per declared location, each live
/// probe's spool as its last heartbeat said.
fn observe(
    metrics: &Metrics,
    locations: &[crate::config::Location],
    probes: &[ProbeRecord],
    window: i64,
) {
    let now = now_ms();
    for location in locations {
        let online = probes
            .iter()
            .filter(|p| p.location_id == location.id && p.online(now, window))
            .count();
        metrics
            .probes_online
            .get_or_create(&LocationLabels {
                location: location.id.clone(),
            })
            .set(online as i64);
    }
    for p in probes.iter().filter(|p| p.revoked_at_ms.is_none()) {
        let labels = ProbeLabels {
            probe: p.id.clone(),
            location: p.location_id.clone(),
        };
        metrics
            .probe_spool_depth
            .get_or_create(&labels)
            .set(p.spool_depth.unwrap_or(0));
        metrics
            .probe_spool_dropped
            .get_or_create(&labels)
            .set(p.spool_dropped.unwrap_or(0));
    }
}

/// One `no-probe` run for each due slice of each location without a probe
/// online.
async fn record_offline(
    store: &Store,
    live: &LiveConfig,
    probes: &[ProbeRecord],
    window: i64,
    ledger: &mut Option<Ledger>,
) -> Result<(), StoreError> {
    let generation = live.generation();
    let now = now_ms();
    let online: BTreeSet<&str> = probes
        .iter()
        .filter(|p| p.online(now, window))
        .map(|p| p.location_id.as_str())
        .collect();
    let offline_locations: BTreeSet<String> = generation
        .setup
        .config
        .file
        .locations
        .iter()
        .filter(|l| !online.contains(l.id.as_str()))
        .map(|l| l.id.clone())
        .collect();
    let offline: Vec<_> = generation
        .probe_slices
        .iter()
        .filter(|(key, def)| {
            key.location
                .as_ref()
                .is_some_and(|l| offline_locations.contains(l))
                && !live.is_paused(&key.system, &key.check, def.paused)
        })
        .collect();
    if offline.is_empty() {
        *ledger = None;
        return Ok(());
    }
    if ledger
        .as_ref()
        .is_none_or(|l| l.offline != offline_locations)
    {
        *ledger = Some(Ledger {
            offline: offline_locations,
            last: store.last_runs().await?,
        });
    }
    let Some(ledger) = ledger.as_mut() else {
        return Ok(());
    };
    for (key, def) in offline {
        if ledger
            .last
            .get(key)
            .is_some_and(|at| now - at < def.interval_ms)
        {
            continue;
        }
        let location = key.location.clone().unwrap_or_default();
        let run = NewRun {
            system_id: key.system.clone(),
            check_id: key.check.clone(),
            environment_id: key.environment.clone(),
            location_id: Some(location.clone()),
            healthy: false,
            latency_ms: None,
            result: json!({}),
            error: Some(format!("no probe online in {location}")),
            at_ms: now,
            fields: Vec::new(),
            origin: None,
            no_probe: true,
        };
        store.record_run(run).await?;
        ledger.last.insert(key.clone(), now);
    }
    Ok(())
}
