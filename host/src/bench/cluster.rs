//! Cluster coordination cost on PostgreSQL: N nodes (each with its own
//! store, writer and scheduler, in this process) claim no-op slices from
//! the shared schedule for a while; against one node of the local scheduler
//! on the same slices in the same run. Reports claimed slices/s, the
//! coordination statements per run and CPU per run.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::scratch::Scratch;
use super::serve::{config_yaml, cpu_time, metric_sum};
use crate::clock::now_ms;
use crate::cluster::Cluster;
use crate::pipeline::setup::Setup;
use crate::runtime::{Runtime, RuntimeConfig};
use crate::serve::generation::Generation;
use crate::serve::live::LiveConfig;
use crate::serve::metrics::Metrics;
use crate::serve::scheduler::Scheduler;
use crate::store::Store;

/// One measured configuration.
pub struct Leg {
    pub nodes: usize,
    pub runs: f64,
    pub statements: u64,
    pub cpu: Duration,
    pub elapsed: Duration,
}

pub struct ClusterReport {
    pub slices: usize,
    pub interval: Duration,
    pub single: Leg,
    pub cluster: Leg,
}

impl ClusterReport {
    pub fn render(&self) -> String {
        let cpu_per_run = |l: &Leg| l.cpu.as_secs_f64() * 1e6 / l.runs.max(1.0);
        let (single, cluster) = (cpu_per_run(&self.single), cpu_per_run(&self.cluster));
        format!(
            "{slices} no-op slices every {interval:?} on PostgreSQL\n\
             local scheduler, 1 node:  {sr:>8.0} runs/s   {sc:>6.0} µs CPU/run\n\
             cluster, {n} node(s):       {cr:>8.0} claimed slices/s   {cc:>6.0} µs CPU/run   \
             {rt:.3} coordination statements/run\n\
             CPU per run, cluster / local: {ratio:.2}",
            slices = self.slices,
            interval = self.interval,
            n = self.cluster.nodes,
            sr = self.single.runs / self.single.elapsed.as_secs_f64(),
            sc = single,
            cr = self.cluster.runs / self.cluster.elapsed.as_secs_f64(),
            cc = cluster,
            rt = self.cluster.statements as f64 / self.cluster.runs.max(1.0),
            ratio = cluster / single,
        )
    }
}

struct Node {
    store: Arc<Store>,
    scheduler: Arc<Scheduler>,
    metrics: Arc<Metrics>,
}

async fn node(config: &Path, runtime: &Arc<Runtime>, url: &str) -> anyhow::Result<Node> {
    let (setup, _) = Setup::load(config, None, runtime, None, false)
        .await
        .map_err(anyhow::Error::msg)?;
    let store = Arc::new(Store::open(url).await?);
    let file = &setup.config.file;
    store
        .sync_config(&file.checks, &file.assignments, &file.systems, now_ms())
        .await?;
    let generation = Generation::prepare(setup, runtime, &store, Default::default()).await;
    let metrics = Metrics::new();
    let scheduler = Scheduler::new(
        LiveConfig::new(Arc::new(generation), store.clone()),
        runtime.clone(),
        store.clone(),
        metrics.clone(),
        256,
    );
    Ok(Node {
        store,
        scheduler,
        metrics,
    })
}

pub async fn run(
    guests: &Path,
    database: &str,
    nodes: usize,
    slices: usize,
    interval: Duration,
    duration: Duration,
) -> anyhow::Result<ClusterReport> {
    anyhow::ensure!(
        database.starts_with("postgres"),
        "bench cluster needs --database postgres://…: nodes share one PostgreSQL"
    );
    let (_dir, config) =
        super::noop_workspace(guests, |plugins| config_yaml(plugins, slices, interval))?;
    let runtime = Arc::new(Runtime::new(RuntimeConfig {
        instance_slots: 256,
        // 1 MiB a no-op guest: the slots, not the budget, bound this bench.
        guest_memory_budget_mib: 256 * 2,
        ..RuntimeConfig::default()
    })?);

    let single = {
        let scratch = Scratch::new(database, "cluster_single").await?;
        let n = node(&config, &runtime, &scratch.url()).await?;
        let (stop_tx, stop) = watch::channel(false);
        let cpu = cpu_time();
        let started = Instant::now();
        let task = tokio::spawn(n.scheduler.clone().run(stop));
        tokio::time::sleep(duration).await;
        let _ = stop_tx.send(true);
        let mut in_flight = task.await?;
        while in_flight.join_next().await.is_some() {}
        let leg = Leg {
            nodes: 1,
            runs: metric_sum(&n.metrics.render(), "checkhost_runs_total{"),
            statements: 0,
            cpu: cpu_time().saturating_sub(cpu),
            elapsed: started.elapsed(),
        };
        n.store.close().await;
        scratch.drop_database().await;
        leg
    };

    let scratch = Scratch::new(database, "cluster").await?;
    let mut members = Vec::new();
    for i in 0..nodes.max(1) {
        let n = node(&config, &runtime, &scratch.url()).await?;
        let cluster = Cluster::new(
            format!("bench-{i}"),
            String::new(),
            n.scheduler.clone(),
            n.store.clone(),
        );
        members.push((n, cluster));
    }
    let (stop_tx, stop) = watch::channel(false);
    let cpu = cpu_time();
    let started = Instant::now();
    let tasks: Vec<_> = members
        .iter()
        .map(|(_, c)| tokio::spawn(c.clone().run(stop.clone())))
        .collect();
    tokio::time::sleep(duration).await;
    let _ = stop_tx.send(true);
    for task in tasks {
        let mut in_flight = task.await?;
        while in_flight.join_next().await.is_some() {}
    }
    let elapsed = started.elapsed();
    let mut runs = 0.0;
    let mut statements = 0;
    for (n, c) in &members {
        c.finish().await;
        runs += metric_sum(&n.metrics.render(), "checkhost_runs_total{");
        statements += c.statements.load(Ordering::Relaxed);
    }
    let cluster = Leg {
        nodes: nodes.max(1),
        runs,
        statements,
        cpu: cpu_time().saturating_sub(cpu),
        elapsed,
    };
    for (n, _) in &members {
        n.store.close().await;
    }
    scratch.drop_database().await;
    Ok(ClusterReport {
        slices,
        interval,
        single,
        cluster,
    })
}
