//! Whole-pipeline throughput: N HTTP checks (http strategy + request
//! collector + an assertion) against a loopback server, persisted to SQLite,
//! next to a native Rust client doing the same requests (a new connection
//! each, as wasi:http does) in the same process.

use std::path::Path;
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::config::ConfigFile;
use crate::pipeline::plugins::PluginSet;
use crate::pipeline::run::{Pipeline, Selection};
use crate::pipeline::secrets::SecretProvider;
use crate::runtime::{Runtime, RuntimeConfig};
use crate::store::{NewRun, Store};

const BODY: &str = r#"{"status":"up"}"#;

pub struct PipelineReport {
    pub runs: usize,
    pub native_per_sec: f64,
    pub checkhost_per_sec: f64,
    /// `Store::record_run` alone, one after another: the persistence ceiling.
    pub store_per_sec: f64,
    pub concurrency: usize,
}

impl PipelineReport {
    pub fn render(&self) -> String {
        format!(
            "native HTTP client (new connection per request, {c} at once): {:>9.0} requests/s\n\
             checkhost pipeline (http+request+assert+SQLite, {c} at once):  {:>9.0} runs/s\n\
             ratio checkhost / native:                                      {:>9.2}\n\
             SQLite persistence alone (record_run, one transaction each):  {:>9.0} runs/s\n\
             ({} runs each)",
            self.native_per_sec,
            self.checkhost_per_sec,
            self.checkhost_per_sec / self.native_per_sec,
            self.store_per_sec,
            self.runs,
            c = self.concurrency,
        )
    }
}

async fn serve() -> anyhow::Result<std::net::SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let mut len = 0;
                while !buf[..len].windows(4).any(|w| w == b"\r\n\r\n") && len < buf.len() {
                    match conn.read(&mut buf[len..]).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => len += n,
                    }
                }
                let response = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{BODY}",
                    BODY.len()
                );
                let _ = conn.write_all(response.as_bytes()).await;
            });
        }
    });
    Ok(addr)
}

/// One GET on a fresh connection, reading the whole response.
async fn native_request(addr: std::net::SocketAddr) -> anyhow::Result<()> {
    let mut conn = TcpStream::connect(addr).await?;
    conn.write_all(format!("GET /health HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await?;
    let mut response = Vec::new();
    conn.read_to_end(&mut response).await?;
    anyhow::ensure!(response.starts_with(b"HTTP/1.1 200"), "unexpected response");
    Ok(())
}

fn config(addr: std::net::SocketAddr, systems: usize) -> anyhow::Result<ConfigFile> {
    let mut yaml = format!(
        "checks:
  - id: health
    timeout: 10s
    strategy: {{plugin: http, config: {{baseUrl: 'http://{addr}'}}}}
    collectors:
      - plugin: request
        config: {{url: /health}}
        assertions: [{{field: statusCode, operator: equals, value: 200}}]
systems:
"
    );
    for i in 0..systems {
        yaml.push_str(&format!("  - {{id: s{i}}}\n"));
    }
    yaml.push_str("assignments:\n");
    for i in 0..systems {
        yaml.push_str(&format!("  - {{system: s{i}, check: health}}\n"));
    }
    Ok(serde_yaml_ng::from_str(&yaml)?)
}

pub async fn run(guests: &Path, runs: usize, concurrency: usize) -> anyhow::Result<PipelineReport> {
    let addr = serve().await?;
    let concurrency = concurrency.max(1);

    for _ in 0..100 {
        native_request(addr).await?;
    }
    let start = Instant::now();
    let results: Vec<_> = futures::stream::iter((0..runs).map(|_| native_request(addr)))
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let native = start.elapsed();
    results.into_iter().collect::<anyhow::Result<Vec<_>>>()?;

    let runtime = Runtime::new(RuntimeConfig {
        instance_slots: (concurrency as u32 * 2).max(16),
        ..RuntimeConfig::default()
    })?;
    let plugins = PluginSet::load_dir(&runtime, guests).await?;
    let dir = tempfile::tempdir()?;
    let store = Store::open(&format!(
        "sqlite://{}",
        dir.path().join("bench.db").display()
    ))
    .await?;
    let batch = 200.min(runs.max(1));
    let config = config(addr, batch)?;
    let pipeline = Pipeline {
        runtime: &runtime,
        plugins: &plugins,
        config: &config,
        store: &store,
        secrets: SecretProvider {
            env_prefix: None,
            dir: None,
        },
        concurrency,
    };
    let selection = Selection::default();
    pipeline.run(&selection, &|_| {}).await?;
    let start = Instant::now();
    let mut done = 0;
    while done < runs {
        let reports = pipeline.run(&selection, &|_| {}).await?;
        anyhow::ensure!(
            reports.iter().all(|r| r.healthy),
            "benchmark run failed: {:?}",
            reports.iter().find(|r| !r.healthy)
        );
        done += reports.len();
    }
    let checkhost = start.elapsed();

    let start = Instant::now();
    for i in 0..runs {
        store
            .record_run(&NewRun {
                system_id: format!("s{}", i % batch),
                check_id: "health".into(),
                environment_id: None,
                healthy: true,
                latency_ms: 1.0,
                result: serde_json::json!({"statusCode": 200}),
                error: None,
                at_ms: crate::pipeline::run::now_ms(),
            })
            .await?;
    }
    let store_only = start.elapsed();
    Ok(PipelineReport {
        runs: done,
        native_per_sec: per_sec(runs, native),
        checkhost_per_sec: per_sec(done, checkhost),
        store_per_sec: per_sec(runs, store_only),
        concurrency,
    })
}

fn per_sec(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}
