//! `GET /api/v1/systems` over real HTTP with N systems × E environments of
//! stored states, against a plain `SELECT` of the same rows through the same
//! driver in the same run: p50 and p99 of each.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::QueryBuilder;
use tokio::sync::watch;

use super::scratch::Scratch;
use crate::api::ApiState;
use crate::clock::now_ms;
use crate::pipeline::setup::Setup;
use crate::runtime::{Runtime, RuntimeConfig};
use crate::serve::generation::Generation;
use crate::serve::metrics::Metrics;
use crate::serve::scheduler::Scheduler;
use crate::store::Store;
use crate::store::db::{Db, with_pool};

pub struct ApiReport {
    pub systems: usize,
    pub environments: usize,
    pub requests: usize,
    pub bytes: usize,
    /// The first request: a full read of the states and a fresh answer.
    pub first: Duration,
    pub api: (Duration, Duration),
    pub select: (Duration, Duration),
}

impl ApiReport {
    pub fn render(&self) -> String {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        format!(
            "GET /api/v1/systems: {systems} systems × {envs} environments ({rows} states), \
             {kib:.0} KiB per answer, {n} requests\n\
             API over HTTP    p50 {ap50:>7.2} ms   p99 {ap99:>7.2} ms   (first request {first:.2} ms)\n\
             plain SELECT     p50 {sp50:>7.2} ms   p99 {sp99:>7.2} ms\n\
             ratio (API / SELECT)  p50 {r50:.2}   p99 {r99:.2}",
            systems = self.systems,
            envs = self.environments,
            rows = self.systems * (self.environments + 1),
            kib = self.bytes as f64 / 1024.0,
            n = self.requests,
            first = ms(self.first),
            ap50 = ms(self.api.0),
            ap99 = ms(self.api.1),
            sp50 = ms(self.select.0),
            sp99 = ms(self.select.1),
            r50 = ms(self.api.0) / ms(self.select.0),
            r99 = ms(self.api.1) / ms(self.select.1),
        )
    }
}

fn config_yaml(plugins: &Path, systems: usize, environments: usize) -> String {
    let mut yaml = format!(
        "plugins: {}\nchecks:\n  - id: tick\n    interval: 1h\n    strategy: {{plugin: noop}}\n    \
         collectors: [{{plugin: hostile, config: {{mode: noop}}}}]\nenvironments:\n",
        plugins.display()
    );
    let envs: Vec<String> = (0..environments).map(|e| format!("e{e}")).collect();
    for env in &envs {
        yaml.push_str(&format!("  - {{id: {env}}}\n"));
    }
    yaml.push_str("systems:\n");
    for i in 0..systems {
        yaml.push_str(&format!(
            "  - {{id: s{i}, name: System {i}, environments: [{}]}}\n",
            envs.join(", ")
        ));
    }
    yaml.push_str("assignments:\n");
    for i in 0..systems {
        yaml.push_str(&format!("  - {{system: s{i}, check: tick}}\n"));
    }
    yaml
}

/// Every entity a status, changed at some point over the last week: what a
/// fleet that has run for a while stores.
async fn store_states(url: &str, systems: usize, environments: usize) -> anyhow::Result<()> {
    let db = Db::connect(url).await?;
    let mut entities = Vec::with_capacity(systems * (environments + 1));
    for i in 0..systems {
        entities.push(format!("s{i}"));
        for e in 0..environments {
            entities.push(format!("s{i}::e{e}"));
        }
    }
    let statuses = ["healthy", "degraded", "unhealthy"];
    let now = now_ms();
    with_pool!(&db.write().await, pool => {
        for (n, chunk) in entities.chunks(1000).enumerate() {
            let mut q = QueryBuilder::new("INSERT INTO entity_state (entity_id, status, updated_at) ");
            q.push_values(chunk.iter().enumerate(), |mut row, (i, entity)| {
                let age = ((n * 1000 + i) as i64 * 7_919) % (7 * crate::store::DAY_MS);
                row.push_bind(entity.as_str())
                    .push_bind(statuses[(n + i) % 3])
                    .push_bind(now - age);
            });
            q.build().execute(pool).await?;
        }
    });
    db.close().await;
    Ok(())
}

fn quantiles(mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.99))
}

pub async fn run(
    guests: &Path,
    database: &str,
    systems: usize,
    environments: usize,
    requests: usize,
) -> anyhow::Result<ApiReport> {
    let (_dir, config) = super::noop_workspace(guests, |plugins| {
        config_yaml(plugins, systems, environments)
    })?;
    let runtime = Arc::new(Runtime::new(RuntimeConfig::default())?);
    let (setup, _) = Setup::load(&config, None, &runtime, None)
        .await
        .map_err(anyhow::Error::msg)?;
    let scratch = Scratch::new(database, "api").await?;
    let store = Arc::new(Store::open(&scratch.url()).await?);
    store_states(&scratch.url(), systems, environments).await?;
    let generation = Generation::prepare(setup, &runtime, &store).await;
    let scheduler = Scheduler::new(
        Arc::new(generation),
        runtime.clone(),
        store.clone(),
        Metrics::new(),
        1,
    );
    let (stop_tx, stop) = watch::channel(false);
    let app = crate::api::router(ApiState {
        store: store.clone(),
        scheduler,
        runtime,
        stop,
        systems_json: Default::default(),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/api/v1/systems", listener.local_addr()?);
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let client = reqwest::Client::new();
    let mut bytes = 0;
    let mut api = Vec::with_capacity(requests);
    let mut first = Duration::ZERO;
    for i in 0..requests + requests / 10 {
        let started = Instant::now();
        let body = client
            .get(&url)
            .send()
            .await?
            .error_for_status()?
            .bytes()
            .await?;
        if i == 0 {
            first = started.elapsed();
        }
        if i >= requests / 10 {
            api.push(started.elapsed());
        }
        bytes = body.len();
    }
    let db = Db::connect(&scratch.url()).await?;
    let mut select = Vec::with_capacity(requests);
    for i in 0..requests + requests / 10 {
        let started = Instant::now();
        let rows: Vec<(String, String, i64)> = with_pool!(&db.read().await, pool => {
            sqlx::query_as("SELECT entity_id, status, updated_at FROM entity_state")
                .fetch_all(pool)
                .await?
        });
        if i >= requests / 10 {
            select.push(started.elapsed());
        }
        std::hint::black_box(rows);
    }
    db.close().await;
    let _ = stop_tx.send(true);
    server.abort();
    store.close().await;
    scratch.drop_database().await;
    Ok(ApiReport {
        systems,
        environments,
        requests,
        bytes,
        first,
        api: quantiles(api),
        select: quantiles(select),
    })
}
