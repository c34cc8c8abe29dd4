//! Probe ingest: batches of probe runs posted to `/api/v1/probe/runs` of a
//! server in this process (token check, slice check, assertions judged,
//! masking, the batched writer with its per-probe cursor), against
//! `bench store` (the same number of finished runs straight into the
//! writer) in the same run. Then the `checkhost probe` process itself,
//! idle and under load, against a server in this process: its CPU per run
//! and its resident memory, read from `/proc`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::watch;

use super::scratch::Scratch;
use crate::api::ApiState;
use crate::clock::now_ms;
use crate::pipeline::setup::Setup;
use crate::probe::wire::{Batch, MAX_BATCH_RUNS, ProbeRun, ProbeToken, RUNS_PATH, SliceRef};
use crate::runtime::{CollectorOutcome, Runtime, RuntimeConfig};
use crate::serve::generation::Generation;
use crate::serve::live::LiveConfig;
use crate::serve::metrics::Metrics;
use crate::store::Store;

pub struct ProbeReport {
    pub store: super::store::StoreReport,
    pub runs: usize,
    pub probes: usize,
    pub ingest: Duration,
    /// The probe process idle and loaded, when measured.
    pub process: Vec<ProcessSample>,
}

/// The `checkhost probe` process over one measured window.
pub struct ProcessSample {
    pub label: &'static str,
    pub slices: usize,
    pub window: Duration,
    /// Runs the server stored from it in the window.
    pub runs: u64,
    /// Its user and system CPU in the window.
    pub cpu: Duration,
    pub rss_mib: f64,
}

impl ProbeReport {
    pub fn render(&self) -> String {
        let store = self.store.runs as f64 / self.store.store.as_secs_f64();
        let ingest = self.runs as f64 / self.ingest.as_secs_f64();
        format!(
            "{store_report}\n\
             probe ingest ({probes} probes, {batch} runs per batch, over HTTP): {ingest:>9.0} runs/s\n\
             ratio probe ingest / checkhost store:                       {ratio:>9.2}",
            store_report = self.store.render(),
            probes = self.probes,
            batch = MAX_BATCH_RUNS,
            ratio = ingest / store,
        ) + &self
            .process
            .iter()
            .map(|p| {
                // Idle, the CPU is heartbeats, not runs.
                let per_run = if p.runs >= p.slices as u64 {
                    format!(
                        ", {:.2} ms per run",
                        p.cpu.as_secs_f64() * 1000.0 / p.runs as f64
                    )
                } else {
                    String::new()
                };
                format!(
                    "\nprobe process, {label:<6} ({slices} slices, {window}s): {runs:>6} runs, \
                     CPU {cpu:>5} ms{per_run}, RSS {rss:.0} MiB",
                    label = p.label,
                    slices = p.slices,
                    window = p.window.as_secs(),
                    runs = p.runs,
                    cpu = p.cpu.as_millis(),
                    rss = p.rss_mib,
                )
            })
            .collect::<String>()
    }
}

fn config_yaml(plugins: &std::path::Path, slices: usize) -> String {
    let mut yaml = format!(
        "plugins: {}\nlocations: [{{id: eu}}]\nchecks:\n  - id: tick\n    interval: 1h\n    \
         strategy: {{plugin: noop}}\n    collectors:\n      - plugin: hostile\n        \
         config: {{mode: noop}}\n        assertions: [{{field: ok, operator: exists}}]\n    \
         locations: [eu]\n",
        plugins.display()
    );
    super::push_systems(&mut yaml, slices, "tick");
    yaml
}

pub async fn run(
    guests: &std::path::Path,
    database: &str,
    n: usize,
    slices: usize,
    probes: usize,
) -> anyhow::Result<ProbeReport> {
    let slices = slices.clamp(1, n.max(1));
    let probes = probes.max(1);
    let store_report = super::store::run(database, n, slices).await?;

    let (_dir, config) = super::noop_workspace(guests, |plugins| config_yaml(plugins, slices))?;
    let runtime = Arc::new(Runtime::new(RuntimeConfig::default())?);
    let (setup, _) = Setup::load(&config, None, &runtime, None, false)
        .await
        .map_err(anyhow::Error::msg)?;
    let scratch = Scratch::new(database, "probe").await?;
    let store = Arc::new(Store::open(&scratch.url()).await?);
    let file = &setup.config.file;
    store
        .sync_config(&file.checks, &file.assignments, &file.systems, now_ms())
        .await?;
    let generation = Generation::prepare(setup, &runtime, &store, Default::default()).await;
    let live = LiveConfig::new(Arc::new(generation), store.clone());
    let (stop_tx, stop) = watch::channel(false);
    let state = ApiState {
        store: store.clone(),
        live,
        runtime,
        metrics: Metrics::new(),
        stop,
        systems_json: Default::default(),
        probes: Default::default(),
    };
    let app = crate::api::router(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}{RUNS_PATH}", listener.local_addr()?);
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let mut tokens = Vec::new();
    for _ in 0..probes {
        let token = ProbeToken::generate().map_err(|e| anyhow::anyhow!("{e}"))?;
        store
            .create_probe(&token.probe, "eu", &token.secret_hash(), now_ms())
            .await?;
        tokens.push(token);
    }
    let client = reqwest::Client::new();
    // Each probe's runs, already in batches: building them is not timed.
    let at = now_ms();
    let mut batches: Vec<Vec<(usize, Vec<u8>)>> = (0..probes)
        .map(|p| {
            let mine: Vec<usize> = (p..n + slices).step_by(probes).collect();
            mine.chunks(MAX_BATCH_RUNS)
                .map(|chunk| {
                    let runs: Vec<ProbeRun> = chunk
                        .iter()
                        .map(|&i| (i, 0.4 + (i % 97) as f64 * 0.013))
                        .map(|(i, latency_ms)| ProbeRun {
                            seq: i as i64 + 1,
                            slice: SliceRef {
                                system: format!("s{}", i % slices),
                                check: "tick".into(),
                                environment: None,
                            },
                            at_ms: at,
                            latency_ms,
                            error: None,
                            // As large as `bench store`'s typical HTTP result.
                            collectors: vec![CollectorOutcome {
                                id: "hostile".into(),
                                result: json!({"ok": true, "bodyLength": 15, "redirects": 0,
                                    "responseTimeMs": latency_ms, "statusText": "OK"}),
                                error: None,
                            }],
                        })
                        .collect();
                    let count = runs.len();
                    (
                        count,
                        serde_json::to_vec(&Batch { runs }).unwrap_or_default(),
                    )
                })
                .collect()
        })
        .collect();
    let post = |token: &ProbeToken, body: Vec<u8>| {
        let request = client
            .post(&url)
            .bearer_auth(token.to_string())
            .header("content-type", "application/json")
            .body(body);
        async move {
            let answer = request.send().await?;
            anyhow::ensure!(
                answer.status().is_success(),
                "batch refused: {}",
                answer.status()
            );
            Ok::<_, anyhow::Error>(())
        }
    };
    // Each probe posts its batches one after another, as `checkhost probe`
    // does. The first batches create every slice: a start-up cost, not
    // timed, as in `bench store`.
    let warm_up = slices.div_ceil(MAX_BATCH_RUNS * probes).max(1);
    let send_all = |batches: Vec<Vec<(usize, Vec<u8>)>>| {
        let post = &post;
        let tokens = &tokens;
        async move {
            let sends = tokens
                .iter()
                .zip(batches)
                .map(|(token, batches)| async move {
                    let mut runs = 0;
                    for (count, body) in batches {
                        post(token, body).await?;
                        runs += count;
                    }
                    Ok::<_, anyhow::Error>(runs)
                });
            let mut runs = 0;
            for result in futures::future::join_all(sends).await {
                runs += result?;
            }
            Ok::<_, anyhow::Error>(runs)
        }
    };
    let first: Vec<Vec<(usize, Vec<u8>)>> = batches
        .iter_mut()
        .map(|b| b.drain(..warm_up.min(b.len())).collect())
        .collect();
    send_all(first).await?;
    let started = Instant::now();
    let ingested = send_all(batches).await?;
    let ingest = started.elapsed();
    let _ = stop_tx.send(true);
    server.abort();
    store.close().await;
    scratch.drop_database().await;
    Ok(ProbeReport {
        store: store_report,
        runs: ingested.max(1),
        probes,
        ingest,
        process: Vec::new(),
    })
}

/// How long the probe process settles (components compiled, first work)
/// before its window is measured.
const SETTLE: Duration = Duration::from_secs(10);

/// The `checkhost probe` process (this binary) against a server in this
/// process, with `slices` slices at one location: idle (every hour, so a
/// window holds heartbeats only) and loaded (every second).
pub async fn process(
    guests: &std::path::Path,
    slices: usize,
    window: Duration,
) -> anyhow::Result<Vec<ProcessSample>> {
    let mut samples = Vec::new();
    for (label, interval) in [("idle", "1h"), ("loaded", "1s")] {
        samples.push(process_sample(guests, label, interval, slices, window).await?);
    }
    Ok(samples)
}

async fn process_sample(
    guests: &std::path::Path,
    label: &'static str,
    interval: &str,
    slices: usize,
    window: Duration,
) -> anyhow::Result<ProcessSample> {
    use anyhow::Context;
    let (dir, config) = super::noop_workspace(guests, |plugins| {
        let mut yaml = format!(
            "plugins: {}\nlocations: [{{id: eu}}]\nprobes: {{heartbeat: 2s}}\nchecks:\n  \
             - id: tick\n    interval: {interval}\n    strategy: {{plugin: noop}}\n    \
             collectors: [{{plugin: hostile, config: {{mode: noop}}}}]\n    locations: [eu]\n",
            plugins.display()
        );
        super::push_systems(&mut yaml, slices, "tick");
        yaml
    })?;
    let runtime = Arc::new(Runtime::new(RuntimeConfig::default())?);
    let (setup, _) = Setup::load(&config, None, &runtime, None, false)
        .await
        .map_err(anyhow::Error::msg)?;
    let scratch = Scratch::new("sqlite", "probe-process").await?;
    let store = Arc::new(Store::open(&scratch.url()).await?);
    let file = &setup.config.file;
    store
        .sync_config(&file.checks, &file.assignments, &file.systems, now_ms())
        .await?;
    let generation = Generation::prepare(setup, &runtime, &store, Default::default()).await;
    let (_stop_tx, stop) = watch::channel(false);
    let state = ApiState {
        store: store.clone(),
        live: LiveConfig::new(Arc::new(generation), store.clone()),
        runtime,
        metrics: Metrics::new(),
        stop,
        systems_json: Default::default(),
        probes: Default::default(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = crate::api::router(state);
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let stored = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = {
        let stored = stored.clone();
        let mut events = store.subscribe();
        tokio::spawn(async move {
            while let Ok(event) = events.recv().await {
                if event.run.is_some() {
                    stored.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
        })
    };

    let token = ProbeToken::generate().map_err(|e| anyhow::anyhow!("{e}"))?;
    store
        .create_probe(&token.probe, "eu", &token.secret_hash(), now_ms())
        .await?;
    let token_file = dir.path().join("probe.token");
    std::fs::write(&token_file, token.to_string())?;
    let exe = std::env::current_exe().context("finding this checkhost binary")?;
    let mut child = tokio::process::Command::new(exe)
        .arg("probe")
        .arg("--server")
        .arg(format!("http://{addr}"))
        .args(["--location", "eu", "--token-file"])
        .arg(&token_file)
        .arg("--spool")
        .arg(dir.path().join("spool.db"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("starting `checkhost probe`")?;
    let pid = child.id().context("the probe exited at once")?;
    tokio::time::sleep(SETTLE).await;
    let (cpu0, runs0) = (
        cpu_of(pid)?,
        stored.load(std::sync::atomic::Ordering::Relaxed),
    );
    tokio::time::sleep(window).await;
    let (cpu1, runs1) = (
        cpu_of(pid)?,
        stored.load(std::sync::atomic::Ordering::Relaxed),
    );
    let rss_mib = rss_of(pid)?;
    anyhow::ensure!(
        child.try_wait()?.is_none(),
        "`checkhost probe` stopped during the measurement"
    );
    let _ = child.kill().await;
    counter.abort();
    server.abort();
    store.close().await;
    scratch.drop_database().await;
    Ok(ProcessSample {
        label,
        slices,
        window,
        runs: runs1 - runs0,
        cpu: cpu1.saturating_sub(cpu0),
        rss_mib,
    })
}

/// User plus system CPU of a process, from `/proc/<pid>/stat`.
fn cpu_of(pid: u32) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The fields after the command's closing parenthesis: utime and stime
    // are the 12th and 13th.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    let (Some(user), Some(system)) = (ticks(11), ticks(12)) else {
        anyhow::bail!("/proc/{pid}/stat: unexpected form");
    };
    // SAFETY: sysconf reads a constant of the system.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Ok(Duration::from_millis((user + system) * 1000 / hz))
}

/// Resident memory of a process in MiB, from `/proc/<pid>/status`.
fn rss_of(pid: u32) -> anyhow::Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map(|kib| kib / 1024.0)
        .ok_or_else(|| anyhow::anyhow!("/proc/{pid}/status has no VmRSS"))
}
