//! `GET /api/v1/systems` over real HTTP with N systems × E environments of
//! stored states, against a plain `SELECT` of the same rows through the same
//! driver in the same run: p50 and p99 of each. Beside it, the status page:
//! its first page and a search, with a day of hourly aggregates stored for
//! every slice (uptime and sparklines read them).

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
use crate::serve::live::LiveConfig;
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
    /// `GET /`: the first page of the index.
    pub page: (Duration, Duration),
    pub page_bytes: usize,
    /// `GET /?q=…`: a search that finds one system.
    pub search: (Duration, Duration),
}

impl ApiReport {
    pub fn render(&self) -> String {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        format!(
            "GET /api/v1/systems: {systems} systems × {envs} environments ({rows} states), \
             {kib:.0} KiB per answer, {n} requests\n\
             API over HTTP    p50 {ap50:>7.2} ms   p99 {ap99:>7.2} ms   (first request {first:.2} ms)\n\
             plain SELECT     p50 {sp50:>7.2} ms   p99 {sp99:>7.2} ms\n\
             ratio (API / SELECT)  p50 {r50:.2}   p99 {r99:.2}\n\
             status page (first {shown} systems, {page_kib:.0} KiB)  p50 {pp50:>7.2} ms   p99 {pp99:>7.2} ms\n\
             status page search (?q=)             p50 {qp50:>7.2} ms   p99 {qp99:>7.2} ms",
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
            shown = self.systems.min(100),
            page_kib = self.page_bytes as f64 / 1024.0,
            pp50 = ms(self.page.0),
            pp99 = ms(self.page.1),
            qp50 = ms(self.search.0),
            qp99 = ms(self.search.1),
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
    with_pool!(&db.write().await?, pool => {
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

/// A slice per system and environment, each with the last 24 hourly
/// aggregates: what the status page reads for uptime and sparklines.
async fn store_history(url: &str, systems: usize, environments: usize) -> anyhow::Result<()> {
    let db = Db::connect(url).await?;
    let hour = crate::store::HOUR_MS;
    let now = now_ms().div_euclid(hour) * hour;
    let slices: Vec<(String, String)> = (0..systems)
        .flat_map(|i| (0..environments).map(move |e| (format!("s{i}"), format!("e{e}"))))
        .collect();
    with_pool!(&db.write().await?, pool => {
        for chunk in slices.chunks(1000) {
            let mut q = QueryBuilder::new("INSERT INTO slices (system_id, check_id, environment_id, env_key) ");
            q.push_values(chunk, |mut row, (system, env)| {
                row.push_bind(system.as_str())
                    .push_bind("tick")
                    .push_bind(env.as_str())
                    .push_bind(env.as_str());
            });
            q.build().execute(pool).await?;
        }
        let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM slices").fetch_all(pool).await?;
        let rows: Vec<(i64, i64)> = ids
            .iter()
            .flat_map(|id| (0..24).map(move |h| (*id, now - h * hour)))
            .collect();
        for chunk in rows.chunks(1000) {
            let mut q = QueryBuilder::new(
                "INSERT INTO aggregates_hourly (slice_id, bucket, total, healthy, unhealthy, latency_sum, \
                 latency_min, latency_max, p95, sketch, latency_count) ",
            );
            q.push_values(chunk, |mut row, (id, bucket)| {
                row.push_bind(*id)
                    .push_bind(*bucket)
                    .push_bind(120_i64)
                    .push_bind(119_i64)
                    .push_bind(1_i64)
                    .push_bind(120.0 * 12.5)
                    .push_bind(3.0)
                    .push_bind(80.0)
                    .push_bind(30.0)
                    .push_bind("")
                    .push_bind(120_i64);
            });
            q.build().execute(pool).await?;
        }
        // A database that has run for a while has planner statistics
        // (PostgreSQL's autovacuum gathers them); fresh rows have none.
        sqlx::query("ANALYZE").execute(pool).await?;
    });
    db.close().await;
    Ok(())
}

/// p50 and p99 of `requests` GETs of `url` (after a tenth as many to warm
/// up), and the size of the last answer.
async fn measure(
    client: &reqwest::Client,
    url: &str,
    requests: usize,
) -> anyhow::Result<((Duration, Duration), usize)> {
    let mut samples = Vec::with_capacity(requests);
    let mut bytes = 0;
    for i in 0..requests + requests / 10 {
        let started = Instant::now();
        let body = client
            .get(url)
            .send()
            .await?
            .error_for_status()?
            .bytes()
            .await?;
        if i >= requests / 10 {
            samples.push(started.elapsed());
        }
        bytes = body.len();
    }
    Ok((quantiles(samples), bytes))
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
    let (setup, _) = Setup::load(&config, None, &runtime, None, false)
        .await
        .map_err(anyhow::Error::msg)?;
    let scratch = Scratch::new(database, "api").await?;
    let store = Arc::new(Store::open(&scratch.url()).await?);
    store_states(&scratch.url(), systems, environments).await?;
    store_history(&scratch.url(), systems, environments).await?;
    let generation = Generation::prepare(setup, &runtime, &store, Default::default()).await;
    let live = LiveConfig::new(Arc::new(generation), store.clone());
    let (stop_tx, stop) = watch::channel(false);
    let state = ApiState {
        store: store.clone(),
        live,
        runtime,
        metrics: crate::serve::metrics::Metrics::new(),
        stop,
        systems_json: Default::default(),
        probes: Default::default(),
    };
    let app = crate::api::router(state.clone()).merge(crate::web::router(state));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let url = format!("{base}/api/v1/systems");
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
    // A page costs more than a cached JSON answer: a quarter as many.
    let pages = (requests / 4).max(10);
    let (page, page_bytes) = measure(&client, &format!("{base}/"), pages).await?;
    let last = systems.saturating_sub(1);
    let (search, _) = measure(&client, &format!("{base}/?q=System+{last}"), pages).await?;
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
        page,
        page_bytes,
        search,
    })
}
