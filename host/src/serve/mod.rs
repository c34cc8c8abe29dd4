//! `checkhost serve`'s parts below the API: the live configuration, the
//! scheduler, hot reload, daily retention, reminders, the probe watchdog,
//! the objectives' gauges, metrics and the
//! operational HTTP endpoints. `cli/serve.rs` puts them together with the
//! API, the status page and the cluster.

pub mod cost;
pub mod generation;
pub mod http;
pub mod live;
pub mod metrics;
pub mod probes;
pub mod reload;
pub mod scheduler;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::clock::now_ms;
use crate::notify::Notifier;
use crate::store::Store;
use crate::store::retention::RetentionPolicy;
use live::LiveConfig;

/// How often unhealthy entities are checked for due reminders, at most:
/// twice per shortest reminder interval, so none is late by more than half.
const REMINDER_SWEEP: Duration = Duration::from_secs(10);

pub async fn remind_every(
    store: Arc<Store>,
    notifier: Arc<dyn Fn() -> Arc<Notifier> + Send + Sync>,
    live: Arc<LiveConfig>,
    mut stop: watch::Receiver<bool>,
) {
    // An entity whose slices are all paused or gone stays unhealthy in the
    // database, but nobody works on it any more: no reminders.
    let still_monitored = |t: &crate::store::TransitionEvent| {
        let generation = live.generation();
        let entity = crate::store::entity::EntityId::parse(&t.entity_id);
        entity
            .slices_in(&generation.slices)
            .any(|(key, def)| !live.is_paused(&key.system, &key.check, def.paused))
    };
    loop {
        let shortest = notifier()
            .targets
            .values()
            .filter_map(|t| t.reminder_every)
            .min()
            .unwrap_or(REMINDER_SWEEP);
        let every = (shortest / 2).clamp(Duration::from_millis(250), REMINDER_SWEEP);
        tokio::select! {
            _ = stop.changed() => return,
            () = tokio::time::sleep(every) => {}
        }
        match crate::notify::remind(store.clone(), || notifier(), still_monitored, now_ms()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(reminders = n, "reminders queued"),
            Err(e) => tracing::warn!("reminders skipped this round: {e}"),
        }
    }
}

/// The objectives' gauges on `/metrics` and their burn-rate notices,
/// evaluated now and every `metrics.sloEvery` (reading a window of
/// aggregates on every scrape would let scrapers set the database's load).
pub async fn watch_slos(
    store: Arc<Store>,
    live: Arc<live::LiveConfig>,
    metrics: Arc<metrics::Metrics>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let generation = live.generation();
        let now = now_ms();
        let mut reports = Vec::new();
        for def in crate::store::slo::SloDef::all(&generation.setup.config.file) {
            let report = match store.slo(&def, now).await {
                Ok(report) => report,
                Err(e) => {
                    tracing::warn!(slo = %def.id, "objective not evaluated: {e}");
                    continue;
                }
            };
            let paging = report.alert.is_some();
            let notifier = &generation.notifier;
            match store
                .set_slo_paging(&def.id, &def.system, paging, now, || {
                    notifier.slo_notices(&report, paging, now)
                })
                .await
            {
                Ok(true) => {
                    tracing::info!(slo = %def.id, paging, "objective's page condition changed")
                }
                Ok(false) => {}
                Err(e) => tracing::warn!(slo = %def.id, "page condition not recorded: {e}"),
            }
            reports.push(report);
        }
        metrics.observe_slos(reports);
        let every = generation.setup.config.file.metrics.slo_every.get();
        tokio::select! {
            _ = stop.changed() => return,
            () = tokio::time::sleep(every.max(Duration::from_secs(1))) => {}
        }
    }
}

/// Retention once a day, the first an hour after start so a restart loop
/// does not hammer the database.
pub async fn daily_retention(store: Arc<Store>, mut stop: watch::Receiver<bool>) {
    let mut wait = Duration::from_secs(3600);
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            () = tokio::time::sleep(wait) => {}
        }
        match store.retention(RetentionPolicy::default(), now_ms()).await {
            Ok(report) => tracing::info!(?report, "retention applied"),
            Err(e) => tracing::error!("retention failed, retrying tomorrow: {e}"),
        }
        wait = Duration::from_secs(86_400);
    }
}
