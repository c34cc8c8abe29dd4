//! The probe watchdog: when no probe of a location has reported within
//! `probes.offlineAfter` heartbeats, each of the location's slices records
//! a `no-probe` run per interval: degraded, never stale, never unhealthy.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::watch;

use super::live::LiveConfig;
use crate::clock::now_ms;
use crate::store::{NewRun, Store};

/// Checks the probes every heartbeat until `stop`.
pub async fn watch_probes(
    store: Arc<Store>,
    live: Arc<LiveConfig>,
    mut stop: watch::Receiver<bool>,
) {
    let started = now_ms();
    loop {
        let generation = live.generation();
        let probes = &generation.setup.config.file.probes;
        let heartbeat = probes.heartbeat.as_millis().max(100);
        let window = heartbeat * i64::from(probes.offline_after.max(1));
        // A server that just started has not heard from anyone yet.
        if !generation.probe_slices.is_empty()
            && now_ms() - started >= window
            && let Err(e) = record_offline(&store, &live, window).await
        {
            tracing::warn!("probe watchdog: {e}");
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(heartbeat as u64)) => {}
            _ = stop.changed() => return,
        }
    }
}

/// One `no-probe` run for each due slice of each location without a probe
/// online.
async fn record_offline(
    store: &Store,
    live: &LiveConfig,
    window: i64,
) -> Result<(), crate::store::StoreError> {
    let generation = live.generation();
    let now = now_ms();
    let online: BTreeSet<String> = store
        .probes()
        .await?
        .into_iter()
        .filter(|p| p.online(now, window))
        .map(|p| p.location_id)
        .collect();
    let offline: Vec<_> = generation
        .probe_slices
        .iter()
        .filter(|(key, def)| {
            key.location.as_ref().is_some_and(|l| !online.contains(l))
                && !live.is_paused(&key.system, &key.check, def.paused)
        })
        .collect();
    if offline.is_empty() {
        return Ok(());
    }
    let last: HashMap<_, i64> = store.last_runs().await?;
    for (key, def) in offline {
        if last.get(key).is_some_and(|at| now - at < def.interval_ms) {
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
    }
    Ok(())
}
