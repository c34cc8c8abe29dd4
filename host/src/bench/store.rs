//! Record-only store throughput: N finished HTTP runs through the batched
//! writer (aggregates, slice state, entity state, transitions), next to
//! plain batched INSERTs of the same run rows through the same driver into
//! the same schema, measured in the same process.

use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{Value, json};
use sqlx::QueryBuilder;

use super::scratch::Scratch;
use crate::clock::now_ms;
use crate::config::{Assignment, EnvSelection, System, Thresholds};
use crate::store::db::{Db, WritePool, with_pool};
use crate::store::{FieldSample, NewRun, Store};

pub struct StoreReport {
    pub engine: &'static str,
    pub runs: usize,
    pub slices: usize,
    pub baseline: Duration,
    pub store: Duration,
    pub baseline_bytes: u64,
    pub store_bytes: u64,
}

impl StoreReport {
    fn per_sec(&self, d: Duration) -> f64 {
        self.runs as f64 / d.as_secs_f64()
    }

    pub fn render(&self) -> String {
        let (base, store) = (self.per_sec(self.baseline), self.per_sec(self.store));
        format!(
            "{engine}: {runs} runs over {slices} slices (each slice created beforehand)\n\
             plain batched INSERTs of the run rows (1,000 per transaction): {base:>9.0} runs/s  {bb:>5} bytes/run\n\
             checkhost store (runs + aggregates + state + transitions):     {store:>9.0} runs/s  {sb:>5} bytes/run\n\
             ratio store / plain INSERTs:                                   {ratio:>9.2}",
            engine = self.engine,
            runs = self.runs,
            slices = self.slices,
            bb = self.baseline_bytes / self.runs.max(1) as u64,
            sb = self.store_bytes / self.runs.max(1) as u64,
            ratio = store / base,
        )
    }
}

/// The stored result of a typical HTTP run (`http` + `request` + one
/// assertion), as the pipeline writes it.
fn typical_result(latency_ms: f64) -> Value {
    json!({
        "assertions": {"passed": 1},
        "collectors": [{"id": "request", "result": {"bodyLength": 15, "redirects": 0,
                        "responseTimeMs": latency_ms, "statusCode": 200, "statusText": "OK"}}]
    })
}

/// What the pipeline samples from that result: the request collector's
/// marked fields.
fn typical_fields(latency_ms: f64) -> Vec<FieldSample> {
    [
        ("bodyLength", 15.0),
        ("responseTimeMs", latency_ms),
        ("statusCode", 200.0),
    ]
    .into_iter()
    .map(|(field, value)| FieldSample {
        collector: "request".into(),
        field: field.into(),
        value,
    })
    .collect()
}

fn runs(n: usize, slices: usize) -> Vec<NewRun> {
    let start = now_ms();
    (0..n)
        .map(|i| {
            let latency_ms = 0.4 + (i % 97) as f64 * 0.013;
            NewRun {
                system_id: format!("s{}", i % slices),
                check_id: "health".into(),
                environment_id: None,
                location_id: None,
                // One failure in 200 keeps transitions in the mix.
                healthy: i % 200 != 0,
                latency_ms: Some(latency_ms),
                result: typical_result(latency_ms),
                error: None,
                at_ms: start + (i / 16) as i64,
                fields: typical_fields(latency_ms),
                origin: None,
                no_probe: false,
            }
        })
        .collect()
}

pub async fn run(database: &str, n: usize, slices: usize) -> anyhow::Result<StoreReport> {
    let slices = slices.clamp(1, n.max(1));
    let mut runs = runs(n + slices, slices);
    // The first run of every slice creates it: a start-up cost, not timed.
    let measured = runs.split_off(slices);
    let warm_up = runs;
    let runs = measured;

    let scratch = Scratch::new(database, "baseline").await?;
    let db = Db::connect(&scratch.url()).await?;
    let before = scratch.size().await?;
    let started = Instant::now();
    plain_inserts(&db, &runs).await?;
    let baseline = started.elapsed();
    db.close().await;
    let baseline_bytes = scratch.size().await?.saturating_sub(before);
    scratch.drop_database().await;

    let scratch = Scratch::new(database, "store").await?;
    let store = Store::open(&scratch.url()).await?;
    let engine = store.engine();
    let assignments: Vec<Assignment> = (0..slices)
        .map(|i| Assignment {
            system: format!("s{i}"),
            check: "health".into(),
            environments: EnvSelection::All,
            thresholds: Thresholds::default(),
            paused: false,
            notify: Vec::new(),
            flapping: None,
            locations: None,
            depends_on: Vec::new(),
            slo: None,
        })
        .collect();
    let systems: Vec<System> = (0..slices)
        .map(|i| System {
            id: format!("s{i}"),
            name: None,
            metadata: Default::default(),
            environments: Vec::new(),
            depends_on: Vec::new(),
            slo: None,
        })
        .collect();
    store
        .sync_config(&[], &assignments, &systems, now_ms())
        .await?;
    for chunk in warm_up.chunks(4096) {
        let recorded = chunk.iter().cloned().map(|r| store.record_run(r));
        for result in futures::future::join_all(recorded).await {
            result?;
        }
    }
    let before = scratch.size().await?;
    let started = Instant::now();
    // Producers as a busy host has them: thousands of runs in flight.
    let results: Vec<_> = futures::stream::iter(runs.into_iter().map(|r| store.record_run(r)))
        .buffer_unordered(4096)
        .collect()
        .await;
    let elapsed = started.elapsed();
    for result in results {
        result?;
    }
    store.close().await;
    let store_bytes = scratch.size().await?.saturating_sub(before);
    scratch.drop_database().await;

    Ok(StoreReport {
        engine,
        runs: n,
        slices,
        baseline,
        store: elapsed,
        baseline_bytes,
        store_bytes,
    })
}

/// The baseline: the same run rows, 1,000 per transaction, two multi-row
/// INSERTs each, one after another.
async fn plain_inserts(db: &Db, runs: &[NewRun]) -> anyhow::Result<()> {
    let at = now_ms();
    with_pool!(&db.write().await?, pool => {
        for (n, batch) in runs.chunks(1000).enumerate() {
            let mut tx = pool.begin_write().await?;
            for (m, chunk) in batch.chunks(500).enumerate() {
                let mut q = QueryBuilder::new(
                    "INSERT INTO runs (id, slice_id, status, latency_ms, result, error) ",
                );
                q.push_values(chunk.iter().enumerate(), |mut row, (i, run)| {
                    let seq = (n * 1000 + m * 500 + i) as i64;
                    row.push_bind((at << 20) + seq)
                        .push_bind(seq % 1000)
                        .push_bind(if run.healthy { "healthy" } else { "unhealthy" })
                        .push_bind(run.latency_ms)
                        .push_bind(run.result.to_string())
                        .push_bind(run.error.as_deref());
                });
                q.build().execute(&mut *tx).await?;
            }
            tx.commit().await?;
        }
    });
    Ok(())
}
