//! `checkhost serve`: the long-running host put together — the store, the
//! live configuration and its scheduler (or, on PostgreSQL, the cluster
//! node that schedules from the shared table), hot reload, retention,
//! notifications and one HTTP server for the API, the status page and the
//! operational endpoints; then a graceful shutdown.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

use crate::api::ApiState;
use crate::clock::now_ms;
use crate::cluster::Cluster;
use crate::notify::deliver::{self, Deliverer};
use crate::pipeline::setup::Setup;
use crate::runtime::Runtime;
use crate::serve::generation::Generation;
use crate::serve::http::Endpoints;
use crate::serve::live::LiveConfig;
use crate::serve::metrics::Metrics;
use crate::serve::reload::Reloader;
use crate::serve::scheduler::Scheduler;
use crate::store::{Store, WriterConfig};
use crate::telemetry::{FLUSH_AT_EXIT, Traces};

/// Exit code for a configuration, database or port that keeps the daemon
/// from starting.
const START_ERROR: u8 = 2;

pub struct ServeOptions {
    pub config: PathBuf,
    pub plugins: Option<PathBuf>,
    pub database: Option<String>,
    pub listen: SocketAddr,
    /// How long in-flight runs may take to finish on shutdown.
    pub grace: Duration,
    /// Runs at once; at the bound the scheduler waits.
    pub concurrency: usize,
    /// Refuse to start, or to reload, without `checkhost.lock`.
    pub require_lock: bool,
}

fn refuse(message: impl std::fmt::Display) -> anyhow::Result<ExitCode> {
    eprintln!(
        "error: {}",
        crate::runtime::text::inert(&message.to_string())
    );
    Ok(ExitCode::from(START_ERROR))
}

pub async fn serve(options: ServeOptions, runtime: Runtime) -> anyhow::Result<ExitCode> {
    let runtime = Arc::new(runtime);
    let setup = match Setup::load(
        &options.config,
        options.plugins.as_ref(),
        &runtime,
        None,
        options.require_lock,
    )
    .await
    {
        Ok((setup, _)) => setup,
        Err(e) => return refuse(e),
    };
    // Started with a lock, the daemon never reloads without one: deleting
    // the lock must not turn pinning off unnoticed.
    let require_lock = options.require_lock || setup.lock.is_some();
    let problems = crate::validate::blocking_problems(&setup, &runtime, None).await;
    if !problems.is_empty() {
        for p in &problems {
            eprintln!(
                "error: {}: {}",
                options.config.display(),
                crate::runtime::text::inert(&p.to_string())
            );
        }
        return Ok(ExitCode::from(START_ERROR));
    }
    let metrics = Metrics::new();
    metrics.costs.reconfigure(
        setup.config.file.metrics.check_labels,
        &setup
            .config
            .file
            .checks
            .iter()
            .map(|c| c.id.as_str())
            .collect(),
    );
    let writer = WriterConfig {
        // The daemon outlives database outages: runs wait (and the scheduler
        // with them, through backpressure) until the database is back.
        retry_for: Duration::MAX,
        observer: Some({
            let metrics = metrics.clone();
            Arc::new(move |took, runs| metrics.observe_commit(took, runs))
        }),
        ..WriterConfig::default()
    };
    let store =
        match Store::open_with(&setup.database_url(options.database.as_deref()), writer).await {
            Ok(store) => Arc::new(store),
            Err(e) => return refuse(e),
        };
    let listener = match tokio::net::TcpListener::bind(options.listen).await {
        Ok(l) => l,
        Err(e) => return refuse(format!("cannot listen on {}: {e}", options.listen)),
    };
    // Plugins must not reach this daemon's own API through a local address.
    if let Ok(addr) = listener.local_addr() {
        crate::runtime::policy::guard_own_listener(addr);
    }
    let plugin_dir = options.plugins.clone().or_else(|| {
        let plugins = setup.config.file.plugins.as_ref();
        plugins.map(|p| setup.config.resolve(p))
    });
    let traces = match Traces::start(&setup.config.file.traces, |name| std::env::var(name).ok()) {
        Ok(traces) => traces,
        Err(e) => return refuse(format!("traces: {e}")),
    };
    if let Some(stats) = traces.stats() {
        metrics.watch_traces(stats);
    }
    let generation = Generation::prepare(setup, &runtime, &store, traces.clone()).await;
    let file = &generation.setup.config.file;
    // A cluster node leaves the shared checks and assignments to the nodes
    // of the owning configuration version (see `cluster`). What the sync
    // re-derives (a check removed while the daemon was down) is notified
    // under this configuration's targets.
    if !store.shared() {
        store.set_router(generation.notifier.clone());
        store
            .sync_config(&file.checks, &file.assignments, &file.systems, now_ms())
            .await?;
    }
    tracing::info!(
        slices = generation.slices.len(),
        database = store.engine(),
        listen = %options.listen,
        "checkhost serving"
    );
    let live = LiveConfig::new(Arc::new(generation), store.clone());
    let scheduler = Scheduler::new(
        live.clone(),
        runtime.clone(),
        store.clone(),
        metrics.clone(),
        options.concurrency,
    );
    let (stop_tx, stop) = watch::channel(false);

    match store.pauses().await {
        Ok(pauses) => {
            for ((system, check), paused) in pauses {
                live.set_paused(&system, &check, paused);
            }
        }
        Err(e) => return refuse(format!("cannot read the API pauses: {e}")),
    }
    // On PostgreSQL the node joins the cluster: due slices come from the
    // shared schedule, so several nodes can split the work.
    let node = node_id(options.listen);
    let cluster = store.shared().then(|| {
        Cluster::new(
            node.clone(),
            options.listen.to_string(),
            scheduler.clone(),
            store.clone(),
        )
    });
    if let Some(cluster) = &cluster {
        cluster.join().await;
    }
    let endpoints = Endpoints {
        metrics: metrics.clone(),
        store: store.clone(),
        runtime: runtime.clone(),
    };
    let api = ApiState {
        store: store.clone(),
        live: live.clone(),
        runtime: runtime.clone(),
        metrics: metrics.clone(),
        stop: stop.clone(),
        systems_json: Default::default(),
        probes: Default::default(),
    };
    let reloader = Arc::new(Reloader {
        config_path: options.config.clone(),
        plugins_flag: options.plugins.clone(),
        require_lock,
        runtime: runtime.clone(),
        store: store.clone(),
        live: live.clone(),
        metrics: metrics.clone(),
    });
    let app = crate::serve::http::router(endpoints)
        .merge(crate::web::router(api.clone()))
        .merge(crate::mcp::daemon::router(
            api.clone(),
            options.config.clone(),
            reloader.clone(),
        ))
        .merge(crate::api::router(api));
    let server = {
        let mut stop = stop.clone();
        tokio::spawn(async move {
            let shutdown = async move {
                let _ = stop.changed().await;
            };
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
            {
                tracing::error!("HTTP server stopped: {e}");
            }
        })
    };
    let reloads = tokio::spawn(reloader.run(plugin_dir, stop.clone()));
    let retention = tokio::spawn(crate::serve::daily_retention(store.clone(), stop.clone()));
    let objectives = tokio::spawn(crate::serve::watch_slos(
        store.clone(),
        live.clone(),
        metrics.clone(),
        stop.clone(),
    ));
    let watchdog = tokio::spawn(crate::serve::probes::watch_probes(
        store.clone(),
        live.clone(),
        metrics.clone(),
        store.shared().then(|| node.clone()),
        stop.clone(),
    ));
    let current_notifier = {
        let live = live.clone();
        Arc::new(move || live.generation().notifier.clone())
    };
    let deliveries = tokio::spawn(
        Deliverer {
            store: store.clone(),
            owner: format!("{}-{}", std::process::id(), now_ms()),
            notifier: current_notifier.clone(),
            client: deliver::client(),
        }
        .run(stop.clone()),
    );
    let reminders = tokio::spawn(crate::serve::remind_every(
        store.clone(),
        current_notifier,
        live.clone(),
        stop.clone(),
    ));
    let scheduling = match &cluster {
        Some(cluster) => tokio::spawn(cluster.clone().run(stop.clone())),
        None => tokio::spawn(scheduler.clone().run(stop.clone())),
    };

    wait_for_shutdown_signal().await;
    tracing::info!("shutting down: no new runs, letting runs in flight finish");
    let _ = stop_tx.send(true);
    let mut in_flight = scheduling.await?;
    let finished = tokio::time::timeout(options.grace, async {
        while in_flight.join_next().await.is_some() {}
    })
    .await;
    if finished.is_err() {
        tracing::warn!(
            runs = in_flight.len(),
            grace_ms = options.grace.as_millis() as u64,
            "runs still going after the grace period are abandoned, not recorded"
        );
        in_flight.abort_all();
    }
    if let Some(cluster) = &cluster {
        cluster.finish().await;
    }
    // Open event streams end on stop; a client that stopped reading must
    // not hold the daemon up beyond the grace period.
    let server = async {
        if tokio::time::timeout(options.grace, server).await.is_err() {
            tracing::warn!("HTTP connections still open after the grace period are dropped");
        }
    };
    let _ = tokio::join!(
        server, reloads, retention, objectives, watchdog, deliveries, reminders
    );
    store.close().await;
    traces.flush(FLUSH_AT_EXIT).await;
    tracing::info!("stopped; every reported run is committed");
    Ok(ExitCode::SUCCESS)
}

/// `<host>:<port>-<pid>-<start ms>`: unique among the nodes of a cluster,
/// even when a restarted container gets the same host name and pid.
fn node_id(listen: SocketAddr) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "node".into());
    format!(
        "{host}:{}-{}-{}",
        listen.port(),
        std::process::id(),
        now_ms()
    )
}

pub(super) async fn wait_for_shutdown_signal() {
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without signal handlers the daemon can only be killed.
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
