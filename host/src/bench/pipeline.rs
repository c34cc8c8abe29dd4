//! Whole-pipeline throughput: N HTTP checks (http strategy + request
//! collector + an assertion) against a loopback server, persisted to SQLite
//! or PostgreSQL, next to a native Rust client doing the same requests (a
//! new connection each, as wasi:http does) in the same process. Then one
//! pass as `checkhost run` makes it, whose wall time is set against the sum
//! of its runs' latencies divided by its concurrency. With a hostile guest,
//! the same ordinary checks also run beside hostile slices that hold their
//! caps (host memory, sockets, linear memory) until their deadline, run
//! after run, and their throughput is set against what it was without them.
//! Last, the process CPU per run with every run traced and exported over
//! OTLP/HTTP (to a sink on a thread of its own, left out of the count, as
//! a collector elsewhere would be) against traces off, in turns.

use std::path::Path;
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::scratch::Scratch;
use crate::config::ConfigFile;
use crate::pipeline::plugins::PluginSet;
use crate::pipeline::run::{Pipeline, Selection};
use crate::pipeline::secrets::SecretProvider;
use crate::runtime::{Runtime, RuntimeConfig};
use crate::store::Store;

const BODY: &str = r#"{"status":"up"}"#;

pub struct PipelineReport {
    pub engine: &'static str,
    pub runs: usize,
    pub native_per_sec: f64,
    /// The same client on connections it keeps alive.
    pub native_keep_alive_per_sec: f64,
    pub checkhost_per_sec: f64,
    pub concurrency: usize,
    /// One pass over `pass_checks` checks, as `checkhost run` does it.
    pub pass_checks: usize,
    pub pass_wall: Duration,
    /// Σ run latency / concurrency: the wall time of a pass that only waits
    /// for its checks.
    pub pass_ideal: Duration,
    pub neighbours: Option<NeighbourReport>,
    pub traces: TraceCost,
}

/// Process CPU per run without and with traces (every run traced, its
/// requests carrying `traceparent`, its spans exported).
pub struct TraceCost {
    pub runs: usize,
    pub off: Duration,
    pub on: Duration,
    pub spans_exported: u64,
    pub spans_dropped: u64,
}

/// Ordinary runs per second without and with hostile slices beside them.
pub struct NeighbourReport {
    pub hostile_percent: u32,
    pub hold: Duration,
    pub alone_per_sec: f64,
    pub beside_hostile_per_sec: f64,
}

/// The hostile test guest, the share of slices it takes, and how long each
/// hostile run holds its caps (its check's timeout).
pub struct HostileMix {
    pub plugin: std::path::PathBuf,
    pub percent: u32,
    pub hold: Duration,
}

/// What the hostile slices do, in turn: each fills one cap to just under
/// its limit and holds it until its deadline ends the run. (Spinning on
/// the CPU is left out: what a spinner takes is its share of the cores,
/// which the deadline bounds, not a cap it holds.)
const ATTACKS: &[&str] = &[
    "{mode: fields, bytes: 900, hold: true}",
    "{mode: sockets, target: '{addr}', bytes: 60, hold: true}",
    "{mode: memory-hold, bytes: 56}",
];

impl PipelineReport {
    pub fn render(&self) -> String {
        format!(
            "native HTTP client (new connection per request, {c} at once): {:>9.0} requests/s\n\
             native HTTP client (keep-alive, {c} connections):            {:>9.0} requests/s\n\
             checkhost pipeline (http+request+assert+{e}, {c} at once):  {:>9.0} runs/s\n\
             ratio checkhost / native:                                      {:>9.2}\n\
             ratio checkhost / native keep-alive:                           {:>9.2}\n\
             ({} runs each)\n\
             one pass of {} checks: wall {:.0} ms, Σ latency / concurrency {:.0} ms, ratio {:.2}\n\
             process CPU per run, traces off (median turn):                {:>9.1} µs\n\
             process CPU per run, traces on (100 %, exported over OTLP):   {:>9.1} µs\n\
             ratio traces on / off:                                         {:>9.3} \
             ({} runs each way, {} spans exported, {} dropped)",
            self.native_per_sec,
            self.native_keep_alive_per_sec,
            self.checkhost_per_sec,
            self.checkhost_per_sec / self.native_per_sec,
            self.checkhost_per_sec / self.native_keep_alive_per_sec,
            self.runs,
            self.pass_checks,
            self.pass_wall.as_secs_f64() * 1000.0,
            self.pass_ideal.as_secs_f64() * 1000.0,
            self.pass_wall.as_secs_f64() / self.pass_ideal.as_secs_f64(),
            self.traces.off.as_secs_f64() * 1e6,
            self.traces.on.as_secs_f64() * 1e6,
            self.traces.on.as_secs_f64() / self.traces.off.as_secs_f64(),
            self.traces.runs,
            self.traces.spans_exported,
            self.traces.spans_dropped,
            c = self.concurrency,
            e = self.engine,
        ) + &self.neighbours.as_ref().map_or(String::new(), |n| {
            format!(
                "\nordinary runs alone:                                           {:>9.0} runs/s\n\
                 ordinary runs beside {}% hostile slices holding their caps {} ms: {:>9.0} runs/s\n\
                 ratio beside / alone:                                          {:>9.2}",
                n.alone_per_sec,
                n.hostile_percent,
                n.hold.as_millis(),
                n.beside_hostile_per_sec,
                n.beside_hostile_per_sec / n.alone_per_sec,
            )
        })
    }
}

/// A loopback HTTP server answering every request with `BODY`. It closes
/// the connection after each answer, unless the request asks
/// `Connection: keep-alive` (only the keep-alive baseline does).
pub(super) async fn serve() -> anyhow::Result<std::net::SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let mut len = 0;
                loop {
                    let end = loop {
                        if let Some(at) = buf[..len].windows(4).position(|w| w == b"\r\n\r\n") {
                            break at + 4;
                        }
                        if len == buf.len() {
                            return;
                        }
                        match conn.read(&mut buf[len..]).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => len += n,
                        }
                    };
                    let keep = String::from_utf8_lossy(&buf[..end])
                        .to_ascii_lowercase()
                        .contains("connection: keep-alive");
                    let response = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: {}\r\n\r\n{BODY}",
                        BODY.len(),
                        if keep { "keep-alive" } else { "close" }
                    );
                    if conn.write_all(response.as_bytes()).await.is_err() || !keep {
                        return;
                    }
                    buf.copy_within(end..len, 0);
                    len -= end;
                }
            });
        }
    });
    Ok(addr)
}

/// `requests` GETs one after another on one kept-alive connection.
async fn native_keep_alive(addr: std::net::SocketAddr, requests: usize) -> anyhow::Result<()> {
    let mut conn = TcpStream::connect(addr).await?;
    conn.set_nodelay(true)?;
    let request = format!("GET /health HTTP/1.1\r\nHost: {addr}\r\nConnection: keep-alive\r\n\r\n");
    let mut buf = [0u8; 4096];
    for _ in 0..requests {
        conn.write_all(request.as_bytes()).await?;
        let mut len = 0;
        loop {
            let n = conn.read(&mut buf[len..]).await?;
            anyhow::ensure!(n > 0, "the server closed a kept-alive connection");
            len += n;
            let head = buf[..len].windows(4).position(|w| w == b"\r\n\r\n");
            if head.is_some_and(|at| len >= at + 4 + BODY.len()) {
                break;
            }
        }
        anyhow::ensure!(buf.starts_with(b"HTTP/1.1 200"), "unexpected response");
    }
    Ok(())
}

/// One GET on a fresh connection, reading the whole response.
async fn native_request(addr: std::net::SocketAddr) -> anyhow::Result<()> {
    let mut conn = TcpStream::connect(addr).await?;
    conn.write_all(
        format!("GET /health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await?;
    let mut response = Vec::new();
    conn.read_to_end(&mut response).await?;
    anyhow::ensure!(response.starts_with(b"HTTP/1.1 200"), "unexpected response");
    Ok(())
}

fn config(addr: std::net::SocketAddr, systems: usize) -> anyhow::Result<ConfigFile> {
    Ok(serde_yaml_ng::from_str(&config_yaml(
        addr,
        systems,
        0,
        Duration::ZERO,
    ))?)
}

/// `systems` ordinary slices (systems `s…`), then `hostile` slices of the
/// hostile checks, in turn, on systems `h…` of their own.
fn config_yaml(
    addr: std::net::SocketAddr,
    systems: usize,
    hostile: usize,
    hold: Duration,
) -> String {
    let mut yaml = format!(
        "checks:
  - id: health
    timeout: 10s
    strategy: {{plugin: http, config: {{baseUrl: 'http://{addr}'}}}}
    network: {{allow: ['127.0.0.1/32']}}
    collectors:
      - plugin: request
        config: {{url: /health}}
        assertions: [{{field: statusCode, operator: equals, value: 200}}]
"
    );
    if hostile > 0 {
        for (i, attack) in ATTACKS.iter().enumerate() {
            yaml.push_str(&format!(
                "  - id: hostile{i}
    timeout: {}ms
    strategy: {{plugin: http, config: {{baseUrl: 'http://{addr}'}}}}
    network: {{allow: ['127.0.0.1/32']}}
    collectors: [{{plugin: hostile, config: {}}}]
",
                hold.as_millis(),
                attack.replace("{addr}", &addr.to_string())
            ));
        }
    }
    yaml.push_str("systems:\n");
    for i in 0..systems {
        yaml.push_str(&format!("  - {{id: s{i}}}\n"));
    }
    for i in 0..hostile.div_ceil(ATTACKS.len()) {
        yaml.push_str(&format!("  - {{id: h{i}}}\n"));
    }
    yaml.push_str("assignments:\n");
    for i in 0..systems {
        yaml.push_str(&format!("  - {{system: s{i}, check: health}}\n"));
    }
    for i in 0..hostile {
        yaml.push_str(&format!(
            "  - {{system: h{}, check: hostile{}}}\n",
            i / ATTACKS.len(),
            i % ATTACKS.len()
        ));
    }
    yaml
}

pub async fn run(
    guests: &Path,
    database: &str,
    runs: usize,
    concurrency: usize,
    pass_checks: usize,
    hostile: Option<HostileMix>,
) -> anyhow::Result<PipelineReport> {
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
    // The same requests on `concurrency` connections kept alive.
    let per_connection = runs.div_ceil(concurrency);
    let start = Instant::now();
    futures::future::try_join_all(
        (0..concurrency).map(|_| native_keep_alive(addr, per_connection)),
    )
    .await?;
    let native_keep_alive = start.elapsed();

    let runtime = Runtime::new(RuntimeConfig {
        instance_slots: (concurrency as u32 * 2).max(16),
        ..RuntimeConfig::default()
    })?;
    let mut plugins = PluginSet::load_dir(&runtime, guests, None).await?;
    if let Some(mix) = &hostile {
        plugins.add(runtime.load(&mix.plugin).await?)?;
    }
    let scratch = Scratch::new(database, "pipeline").await?;
    let store = Store::open(&scratch.url()).await?;
    let pass = |config| Pipeline {
        runtime: &runtime,
        plugins: &plugins,
        config,
        store: &store,
        secrets: SecretProvider {
            env_prefix: None,
            dir: None,
        },
        concurrency,
        start_by: None,
        traces: Default::default(),
    };
    let selection = Selection::default();

    let config = config(addr, 200.min(runs.max(1)))?;
    let pipeline = pass(&config);
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

    let ordinary = 200.min(runs.max(1));
    let hostile_config: Option<(&HostileMix, ConfigFile)> = match &hostile {
        None => None,
        Some(mix) => {
            let slices =
                (ordinary * mix.percent as usize).div_ceil(100 - mix.percent.min(99) as usize);
            let yaml = config_yaml(addr, 0, slices, mix.hold);
            Some((mix, serde_yaml_ng::from_str(&yaml)?))
        }
    };
    let neighbours = match &hostile_config {
        None => None,
        Some((mix, hostile_config)) => {
            // Several hold periods each, so the hostile runs' filling of
            // their caps is counted as often as it happens, not once.
            let window = mix.hold * 4;
            let alone = ordinary_throughput(&pass(&config), runs, ordinary, window).await?;
            // The hostile slices run pass after pass beside the ordinary
            // ones, each holding its caps until its deadline, until the
            // ordinary runs are counted.
            let counted = std::sync::atomic::AtomicBool::new(false);
            let hostile_passes = async {
                let hostile = pass(hostile_config);
                while !counted.load(std::sync::atomic::Ordering::Relaxed) {
                    hostile.run(&selection, &|_| {}).await?;
                }
                anyhow::Ok(())
            };
            let measured = async {
                let beside = ordinary_throughput(&pass(&config), runs, ordinary, window).await;
                counted.store(true, std::sync::atomic::Ordering::Relaxed);
                beside
            };
            let (beside, hostile_passes) = tokio::join!(measured, hostile_passes);
            hostile_passes?;
            Some(NeighbourReport {
                hostile_percent: mix.percent,
                hold: mix.hold,
                alone_per_sec: alone,
                beside_hostile_per_sec: beside?,
            })
        }
    };

    let traces = trace_cost(&pass(&config), &config, runs).await?;

    let config = one_pass_config(addr, pass_checks)?;
    let start = Instant::now();
    let reports = pass(&config).run(&selection, &|_| {}).await?;
    let pass_wall = start.elapsed();
    let latency_sum: f64 = reports.iter().map(|r| r.latency_ms).sum();
    let pass_ideal = Duration::from_secs_f64(latency_sum / 1000.0 / concurrency as f64);

    store.close().await;
    scratch.drop_database().await;
    Ok(PipelineReport {
        engine: store.engine(),
        runs: done,
        native_per_sec: per_sec(runs, native),
        native_keep_alive_per_sec: per_sec(per_connection * concurrency, native_keep_alive),
        checkhost_per_sec: per_sec(done, checkhost),
        concurrency,
        pass_checks,
        pass_wall,
        pass_ideal,
        neighbours,
        traces,
    })
}

/// Turns of runs each side takes in the trace cost.
const TRACE_TURNS: usize = 6;

/// CPU per run of passes of `config` with traces off and on, in turns so
/// that drift in the machine falls on both.
async fn trace_cost(
    untraced: &Pipeline<'_>,
    config: &ConfigFile,
    runs: usize,
) -> anyhow::Result<TraceCost> {
    let sink = OtlpSink::start()?;
    let traces = crate::telemetry::Traces::start(
        &crate::config::TracesConfig {
            endpoint: Some(format!("http://{}", sink.addr)),
            protocol: Some(crate::config::OtlpProtocol::HttpProtobuf),
            sample_ratio: Some(1.0),
        },
        |_| None,
    )?;
    let mut propagating = config.clone();
    for check in &mut propagating.checks {
        check.propagate_trace = true;
    }
    let traced = Pipeline {
        runtime: untraced.runtime,
        plugins: untraced.plugins,
        config: &propagating,
        store: untraced.store,
        secrets: untraced.secrets.clone(),
        concurrency: untraced.concurrency,
        start_by: None,
        traces: traces.clone(),
    };
    // Turns of off, on, on, off: the store grows run by run, and a drift
    // linear in time falls on both sides alike; the median turn of each
    // side leaves out a turn the machine disturbed.
    let turn = runs.div_ceil(4).max(500);
    let (mut off, mut on) = (Vec::new(), Vec::new());
    for _ in 0..TRACE_TURNS / 2 {
        off.push(cpu_of(untraced, turn, &sink).await?);
        on.push(cpu_of(&traced, turn, &sink).await?);
        on.push(cpu_of(&traced, turn, &sink).await?);
        off.push(cpu_of(untraced, turn, &sink).await?);
    }
    traces.flush(Duration::from_secs(30)).await;
    let stats = traces.stats().expect("traces are on");
    let load = |n: &std::sync::atomic::AtomicU64| n.load(std::sync::atomic::Ordering::Relaxed);
    let median = |mut turns: Vec<Duration>| {
        turns.sort();
        turns[turns.len() / 2] / turn as u32
    };
    Ok(TraceCost {
        runs: turn * TRACE_TURNS,
        off: median(off),
        on: median(on),
        spans_exported: load(&stats.exported),
        spans_dropped: load(&stats.dropped_queue_full) + load(&stats.dropped_export_failed),
    })
}

/// The process CPU (user and system, the sink's thread left out) spent on
/// passes of `pipeline` until `runs` runs are done.
async fn cpu_of(pipeline: &Pipeline<'_>, runs: usize, sink: &OtlpSink) -> anyhow::Result<Duration> {
    let selection = Selection::default();
    let before = process_cpu().saturating_sub(sink.cpu());
    let mut done = 0;
    while done < runs {
        let reports = pipeline.run(&selection, &|_| {}).await?;
        anyhow::ensure!(reports.iter().all(|r| r.healthy), "a benchmark run failed");
        done += reports.len();
    }
    let after = process_cpu().saturating_sub(sink.cpu());
    Ok(after.saturating_sub(before) / done as u32 * runs as u32)
}

fn process_cpu() -> Duration {
    // SAFETY: an all-zero rusage is valid, and getrusage only writes the
    // struct it is given.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let time = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    time(usage.ru_utime) + time(usage.ru_stime)
}

/// An OTLP/HTTP endpoint that takes every export and keeps nothing: a
/// collector's stand-in, on a thread of its own whose CPU is not the runs'.
struct OtlpSink {
    addr: std::net::SocketAddr,
    /// The sink thread's id, for its CPU in /proc.
    thread: i64,
}

impl OtlpSink {
    fn start() -> anyhow::Result<OtlpSink> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let (tell, thread) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("otlp-sink".into())
            .spawn(move || {
                // SAFETY: gettid has no preconditions.
                let _ = tell.send(unsafe { libc::syscall(libc::SYS_gettid) });
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a runtime for the sink");
                runtime.block_on(async move {
                    let app = axum::Router::new().route(
                        "/v1/traces",
                        axum::routing::post(|_body: axum::body::Bytes| async {
                            (
                                [("content-type", "application/x-protobuf")],
                                Vec::<u8>::new(),
                            )
                        }),
                    );
                    if let Ok(listener) = TcpListener::from_std(listener) {
                        let _ = axum::serve(listener, app).await;
                    }
                });
            })?;
        Ok(OtlpSink {
            addr,
            thread: thread.recv()?,
        })
    }

    /// The CPU the sink's thread has used so far.
    fn cpu(&self) -> Duration {
        std::fs::read_to_string(format!("/proc/self/task/{}/schedstat", self.thread))
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse().ok())
            .map_or(Duration::ZERO, Duration::from_nanos)
    }
}

/// Ordinary (non-hostile) runs per second over passes of `pipeline` until
/// `runs` of them are done and `window` has passed; every ordinary run
/// must be healthy.
async fn ordinary_throughput(
    pipeline: &Pipeline<'_>,
    runs: usize,
    per_pass: usize,
    window: Duration,
) -> anyhow::Result<f64> {
    let selection = Selection::default();
    let start = Instant::now();
    let mut done = 0;
    while done < runs || start.elapsed() < window {
        let reports = pipeline.run(&selection, &|_| {}).await?;
        let ordinary: Vec<_> = reports.iter().filter(|r| r.check == "health").collect();
        anyhow::ensure!(
            ordinary.len() == per_pass && ordinary.iter().all(|r| r.healthy),
            "an ordinary run failed beside hostile ones: {:?}",
            ordinary.iter().find(|r| !r.healthy)
        );
        done += ordinary.len();
    }
    Ok(per_sec(done, start.elapsed()))
}

/// `pass_checks` systems of their own, so the pass creates its slices as a
/// first `checkhost run` does.
fn one_pass_config(addr: std::net::SocketAddr, pass_checks: usize) -> anyhow::Result<ConfigFile> {
    let mut config = config(addr, pass_checks)?;
    for s in &mut config.systems {
        s.id = format!("pass-{}", s.id);
    }
    for a in &mut config.assignments {
        a.system = format!("pass-{}", a.system);
    }
    Ok(config)
}

fn per_sec(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}
