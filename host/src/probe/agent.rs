//! `checkhost probe`: fetches its location's work from the server, fetches
//! each component by digest (verified, cached), runs every slice on its
//! interval in the sandbox, spools the runs, and delivers them in order in
//! batches. While the server is away it keeps running the work it has.
//! With `OTEL_EXPORTER_OTLP_*` set, it traces its runs as the server does
//! (their assertions are judged at the server, so a trace says `ran` or
//! `failed`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;

use super::spool::{Spool, SpoolError};
use super::wire::{
    Batch, BatchReply, COMPONENTS_PATH, HEARTBEAT_PATH, Heartbeat, HeartbeatReply, MAX_BATCH_RUNS,
    ProbeRun, ProbeToken, RUNS_PATH, RunWork, Task, WORK_PATH, Work, WorkItem,
};
use crate::clock::now_ms;
use crate::runtime::mask::Masker;
use crate::runtime::{
    CollectorRun, ComponentDigest, NetworkPolicy, Plugin, RunOutcome, RunSpec, Runtime,
};
use crate::telemetry::{FinishedRun, PluginUse, RunEnd, RunTrace, Traces};

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("{0}")]
    Spool(#[from] SpoolError),
    #[error("server {url}: {message}")]
    Server { url: String, message: String },
    #[error("component {digest}: {message}")]
    Component {
        digest: ComponentDigest,
        message: String,
    },
}

pub struct ProbeOptions {
    /// `http(s)://host:port` of each server node to use, in order of
    /// preference; at least one.
    pub servers: Vec<String>,
    pub token: ProbeToken,
    /// The location this probe serves; the server's token says the same.
    pub location: String,
    /// Where fetched components are kept, by digest.
    pub components: PathBuf,
    pub spool: PathBuf,
    pub spool_max_runs: usize,
    pub traces: Traces,
}

/// The probe's view of the server: one or more nodes, any of which takes
/// probe traffic. Requests go to the current one and move on to the next
/// when it cannot be reached.
struct Server {
    bases: Vec<String>,
    current: AtomicUsize,
    token: String,
    http: reqwest::Client,
}

impl Server {
    fn base(&self) -> &str {
        &self.bases[self.current.load(Ordering::Relaxed) % self.bases.len()]
    }

    fn error(&self, message: impl std::fmt::Display) -> ProbeError {
        ProbeError::Server {
            url: self.base().to_string(),
            message: message.to_string(),
        }
    }

    /// Sends a request to the current node, then to each other one in turn
    /// while they cannot be reached.
    async fn send(
        &self,
        build: impl Fn(&reqwest::Client, &str) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, reqwest::Error> {
        let mut tries = self.bases.len();
        loop {
            let url = self.base();
            match build(&self.http, url).bearer_auth(&self.token).send().await {
                Err(e) if tries > 1 && (e.is_connect() || e.is_timeout()) => {
                    tries -= 1;
                    self.current.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!("{url} cannot be reached, trying {}: {e}", self.base());
                }
                answer => return answer,
            }
        }
    }

    async fn get(&self, path: &str) -> Result<reqwest::Response, ProbeError> {
        let response = self
            .send(|http, base| http.get(format!("{base}{path}")))
            .await
            .map_err(|e| self.error(e))?;
        self.checked(response).await
    }

    async fn post<T: serde::Serialize>(
        &self,
        path: &str,
        body: &T,
    ) -> Result<reqwest::Response, ProbeError> {
        let body = serde_json::to_vec(body).map_err(|e| self.error(e))?;
        let response = self
            .send(|http, base| {
                http.post(format!("{base}{path}"))
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(body.clone())
            })
            .await
            .map_err(|e| self.error(e))?;
        self.checked(response).await
    }

    async fn checked(&self, response: reqwest::Response) -> Result<reqwest::Response, ProbeError> {
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        Err(self.error(format!(
            "{status}: {}",
            text.chars().take(500).collect::<String>()
        )))
    }
}

/// What a batch delivery came to.
enum Delivery {
    /// Stored (or stored before), but for the runs the server refused one
    /// by one (counted as dropped): forget them.
    Stored { refused: usize },
    /// Too large for the server: send fewer at a time.
    TooLarge(String),
    /// The server refuses this batch for good (400, 403): drop it,
    /// counted, rather than block the spool behind it.
    Refused(String),
    /// Not now (unreachable, 5xx, clock skew): keep them and try again.
    Later(String),
}

/// Runs the probe until `stop` turns true.
pub async fn run(
    options: ProbeOptions,
    runtime: Arc<Runtime>,
    mut stop: watch::Receiver<bool>,
) -> Result<(), ProbeError> {
    let spool = Arc::new(Spool::open(&options.spool, options.spool_max_runs).await?);
    let url = options.servers.join(", ");
    let server = Arc::new(Server {
        bases: options
            .servers
            .iter()
            .map(|s| s.trim_end_matches('/').to_string())
            .collect(),
        current: AtomicUsize::new(0),
        token: options.token.to_string(),
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| ProbeError::Server {
                url: url.clone(),
                message: e.to_string(),
            })?,
    });
    std::fs::create_dir_all(&options.components).map_err(|e| ProbeError::Server {
        url: url.clone(),
        message: format!("cannot create {}: {e}", options.components.display()),
    })?;
    let spooled = Arc::new(Notify::new());
    let sender = tokio::spawn(deliver(
        server.clone(),
        spool.clone(),
        spooled.clone(),
        stop.clone(),
    ));
    let mut plugins: HashMap<ComponentDigest, Arc<Plugin>> = HashMap::new();
    let mut runners: JoinSet<()> = JoinSet::new();
    let mut version = String::new();
    let mut heartbeat = Duration::from_secs(10);
    loop {
        // The work, when it changed: the runners restart on the new one.
        match beat(&server, &spool, &version).await {
            Ok(reply) if reply.work_version != version => {
                match fetch_work(&server, &runtime, &options.components, &mut plugins).await {
                    Ok(work) => {
                        if work.location != options.location {
                            tracing::error!(
                                "this probe's token is for location {}, not {}",
                                work.location,
                                options.location
                            );
                        }
                        tracing::info!(slices = work.items.len(), version = %work.version, "work received");
                        heartbeat = Duration::from_millis(work.heartbeat_ms.max(100) as u64);
                        version = work.version.clone();
                        runners.abort_all();
                        for item in work.items {
                            runners.spawn(run_slice(
                                item,
                                runtime.clone(),
                                plugins.clone(),
                                spool.clone(),
                                spooled.clone(),
                                (options.traces.clone(), options.location.clone()),
                            ));
                        }
                    }
                    Err(e) => tracing::warn!("keeping the previous work: {e}"),
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("heartbeat: {e}"),
        }
        tokio::select! {
            _ = tokio::time::sleep(heartbeat) => {}
            _ = stop.changed() => break,
        }
    }
    runners.abort_all();
    let _ = sender.await;
    Ok(())
}

async fn read_json<T: serde::de::DeserializeOwned>(
    server: &Server,
    response: reqwest::Response,
) -> Result<T, ProbeError> {
    let body = response.bytes().await.map_err(|e| server.error(e))?;
    serde_json::from_slice(&body).map_err(|e| server.error(format!("unexpected answer: {e}")))
}

async fn beat(server: &Server, spool: &Spool, version: &str) -> Result<HeartbeatReply, ProbeError> {
    let (spool_depth, spool_dropped) = spool.depth().await?;
    let response = server
        .post(
            HEARTBEAT_PATH,
            &Heartbeat {
                version: env!("CARGO_PKG_VERSION").to_string(),
                clock_ms: now_ms(),
                spool_depth,
                spool_dropped,
            },
        )
        .await?;
    let reply: HeartbeatReply = read_json(server, response).await?;
    if version.is_empty() || reply.clock_skew_ms.abs() > 1_000 {
        tracing::debug!(skew_ms = reply.clock_skew_ms, "heartbeat");
    }
    Ok(reply)
}

/// The location's work, with every component it names loaded. A component
/// that cannot be had (download failed, digest mismatch) fails the fetch,
/// and the probe keeps running what it ran before.
async fn fetch_work(
    server: &Server,
    runtime: &Runtime,
    dir: &Path,
    plugins: &mut HashMap<ComponentDigest, Arc<Plugin>>,
) -> Result<Work, ProbeError> {
    let work: Work = read_json(server, server.get(WORK_PATH).await?).await?;
    for item in &work.items {
        let Task::Run(run) = &item.task else {
            continue;
        };
        let refs = std::iter::once(&run.strategy).chain(run.collectors.iter().map(|c| &c.plugin));
        for plugin in refs {
            if let std::collections::hash_map::Entry::Vacant(slot) = plugins.entry(plugin.digest) {
                slot.insert(component(server, runtime, dir, plugin.digest).await?);
            }
        }
    }
    Ok(work)
}

/// A component by digest: from the cache folder when there, else from
/// the server; verified against the digest either way before it loads.
async fn component(
    server: &Server,
    runtime: &Runtime,
    dir: &Path,
    digest: ComponentDigest,
) -> Result<Arc<Plugin>, ProbeError> {
    let fail = |message: String| ProbeError::Component { digest, message };
    let path = dir.join(format!("{}.wasm", digest.to_string().replace(':', "-")));
    let cached = tokio::fs::read(&path).await.ok();
    if cached.as_deref().map(ComponentDigest::of) != Some(digest) {
        let bytes = server
            .get(&format!("{COMPONENTS_PATH}/{digest}"))
            .await?
            .bytes()
            .await
            .map_err(|e| server.error(e))?;
        let actual = ComponentDigest::of(&bytes);
        if actual != digest {
            return Err(fail(format!(
                "the server sent bytes with digest {actual}: refused"
            )));
        }
        let partial = path.with_extension("part");
        tokio::fs::write(&partial, &bytes)
            .await
            .and(tokio::fs::rename(&partial, &path).await)
            .map_err(|e| fail(format!("cannot cache it in {}: {e}", dir.display())))?;
    }
    runtime
        .load_pinned(&path, Some(digest))
        .await
        .map_err(|e| fail(e.to_string()))
}

/// Runs one slice on its interval, at a phase of its own (the slice's
/// hash), spooling each run, and tracing it when `traces` are on.
async fn run_slice(
    item: WorkItem,
    runtime: Arc<Runtime>,
    plugins: HashMap<ComponentDigest, Arc<Plugin>>,
    spool: Arc<Spool>,
    spooled: Arc<Notify>,
    (traces, location): (Traces, String),
) {
    let interval = item.interval_ms.max(100);
    let phase = {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        item.slice.hash(&mut h);
        (h.finish() % interval as u64) as i64
    };
    let policy = match &item.task {
        Task::Run(work) => match NetworkPolicy::from_spec(&work.network) {
            Ok(p) => Some(Arc::new(p)),
            Err(e) => {
                tracing::error!(slice = %item.slice, "network policy: {e}");
                return;
            }
        },
        Task::Fail { .. } => None,
    };
    loop {
        let now = now_ms();
        let next = (now - phase).div_euclid(interval) * interval + phase + interval;
        tokio::time::sleep(Duration::from_millis((next - now).max(0) as u64)).await;
        let at_ms = now_ms();
        let mut traced = None;
        let (latency_ms, error, collectors) = match &item.task {
            Task::Run(work) => {
                let Some(spec) = policy.as_ref().and_then(|p| spec_of(work, &plugins, p)) else {
                    tracing::error!(slice = %item.slice, "a component of this slice is not loaded");
                    return;
                };
                let trace = traces.begin(work.propagate_trace);
                let parent = trace.as_ref().map(|t| t.parent);
                // Without a start-by instant every run is started.
                let Some(mut outcome) = runtime.run_by(spec, None, parent).await else {
                    continue;
                };
                outcome.restore_unrun(work.failed_collectors.clone());
                if let Some(trace) = trace {
                    traced = Some((trace, work, RanRun::of(&mut outcome)));
                }
                let latency_ms =
                    (outcome.duration_ms - outcome.stats.queued.as_secs_f64() * 1000.0).max(0.0);
                let error = outcome
                    .failure
                    .as_ref()
                    .map(ToString::to_string)
                    .or(outcome.connect_error.clone());
                (latency_ms, error, outcome.collectors)
            }
            Task::Fail { error } => (0.0, Some(error.clone()), Vec::new()),
        };
        let run = ProbeRun {
            seq: 0,
            slice: item.slice.clone(),
            at_ms,
            latency_ms,
            error,
            collectors,
        };
        let spooling = std::time::Instant::now();
        match spool.push(run, now_ms()).await {
            Ok(_) => spooled.notify_one(),
            Err(e) => tracing::error!(slice = %item.slice, "run not spooled: {e}"),
        }
        if let Some((trace, work, ran)) = traced {
            let slice = &item.slice;
            ran.trace(
                &traces,
                &trace,
                work,
                &plugins,
                (slice, &location),
                spooling,
            );
        }
    }
}

/// What a probe's traced run leaves for its trace once it is spooled.
struct RanRun {
    timeline: Option<crate::runtime::timeline::Timeline>,
    error: Option<String>,
}

impl RanRun {
    fn of(outcome: &mut RunOutcome) -> RanRun {
        RanRun {
            timeline: outcome.timeline.take(),
            error: outcome.error(),
        }
    }

    fn trace(
        &self,
        traces: &Traces,
        trace: &RunTrace,
        work: &RunWork,
        plugins: &HashMap<ComponentDigest, Arc<Plugin>>,
        (slice, location): (&super::wire::SliceRef, &str),
        spooling: std::time::Instant,
    ) {
        let plugin = |digest: &ComponentDigest, id: &'static str| {
            plugins.get(digest).map_or(
                PluginUse {
                    id,
                    digest: *digest,
                },
                |p| PluginUse::of(p),
            )
        };
        let masker = Masker::new(work.secrets.iter().cloned());
        traces.end(
            trace,
            &FinishedRun {
                system: &slice.system,
                check: &slice.check,
                environment: slice.environment.as_deref(),
                location: Some(location),
                run_id: None,
                end: if self.error.is_some() {
                    RunEnd::Failed
                } else {
                    RunEnd::Ran
                },
                error: self.error.as_deref(),
                strategy: plugin(&work.strategy.digest, "strategy"),
                collectors: work
                    .collectors
                    .iter()
                    .map(|c| plugin(&c.plugin.digest, "collector"))
                    .collect(),
                timeline: self.timeline.as_ref(),
                judged: None,
                persisted: (spooling, std::time::Instant::now()),
                failed_assertions: 0,
                masker: &masker,
            },
        );
    }
}

fn spec_of(
    item: &RunWork,
    plugins: &HashMap<ComponentDigest, Arc<Plugin>>,
    policy: &Arc<NetworkPolicy>,
) -> Option<RunSpec> {
    let mut collectors = Vec::with_capacity(item.collectors.len());
    for c in &item.collectors {
        collectors.push(CollectorRun {
            plugin: plugins.get(&c.plugin.digest)?.clone(),
            config_json: c.config.clone(),
            env: c.env.clone(),
        });
    }
    Some(RunSpec {
        strategy: plugins.get(&item.strategy.digest)?.clone(),
        strategy_config: item.strategy_config.clone(),
        collectors,
        context: (&item.context).into(),
        limits: item.limits,
        policy: policy.clone(),
        secrets: item.secrets.clone(),
    })
}

/// Delivers the spool oldest first, a batch at a time, until `stop`; on
/// stop it tries once more to empty the spool.
async fn deliver(
    server: Arc<Server>,
    spool: Arc<Spool>,
    spooled: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = Duration::from_millis(250);
    // Halved while the server answers 413, back to full after a success.
    let mut batch = MAX_BATCH_RUNS;
    loop {
        let stopping = *stop.borrow();
        let runs = match spool.oldest(batch).await {
            Ok(runs) => runs,
            Err(e) => {
                tracing::error!("{e}");
                Vec::new()
            }
        };
        let last = runs.last().map(|r| r.seq);
        let sent = runs.len();
        let outcome = match last {
            None => None,
            Some(_) => Some(send(&server, runs).await),
        };
        let wait = match (outcome, last) {
            (Some(Delivery::Stored { refused }), Some(seq)) => {
                backoff = Duration::from_millis(250);
                batch = MAX_BATCH_RUNS;
                if let Err(e) = spool.delivered(seq, refused).await {
                    tracing::error!("{e}");
                }
                continue;
            }
            (Some(Delivery::TooLarge(why)), Some(seq)) => {
                if sent > 1 {
                    batch = (sent / 2).max(1);
                    tracing::warn!(
                        "the server finds {sent} runs too large, sending {batch}: {why}"
                    );
                    continue;
                }
                tracing::error!("the server refuses a single run as too large, dropped: {why}");
                if let Err(e) = spool.refused(seq).await {
                    tracing::error!("{e}");
                }
                continue;
            }
            (Some(Delivery::Refused(why)), Some(seq)) => {
                tracing::error!("the server refused a batch, dropped: {why}");
                if let Err(e) = spool.refused(seq).await {
                    tracing::error!("{e}");
                }
                continue;
            }
            (Some(Delivery::Later(why)), _) => {
                tracing::warn!("runs stay spooled: {why}");
                backoff = (backoff * 2).min(Duration::from_secs(10));
                backoff
            }
            _ => Duration::from_secs(1),
        };
        if stopping {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = spooled.notified() => {}
            _ = stop.changed() => {}
        }
    }
}

async fn send(server: &Server, runs: Vec<ProbeRun>) -> Delivery {
    let body = match serde_json::to_vec(&Batch { runs }) {
        Ok(body) => body,
        Err(e) => return Delivery::Refused(e.to_string()),
    };
    let sent = server
        .send(|http, base| {
            http.post(format!("{base}{RUNS_PATH}"))
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.clone())
        })
        .await;
    let response = match sent {
        Ok(r) => r,
        Err(e) => return Delivery::Later(e.to_string()),
    };
    let status = response.status();
    if status.is_success() {
        let body = response.bytes().await.unwrap_or_default();
        return match serde_json::from_slice::<BatchReply>(&body) {
            Ok(reply) => {
                tracing::debug!(
                    stored = reply.stored,
                    duplicates = reply.duplicates,
                    refused = reply.refused,
                    "batch delivered"
                );
                for why in &reply.refusals {
                    tracing::warn!("the server refused {why}");
                }
                Delivery::Stored {
                    refused: reply.refused,
                }
            }
            Err(e) => Delivery::Later(e.to_string()),
        };
    }
    let text = response.text().await.unwrap_or_default();
    let why = format!("{status}: {}", text.chars().take(500).collect::<String>());
    match status.as_u16() {
        413 => Delivery::TooLarge(why),
        400 | 403 => Delivery::Refused(why),
        _ => Delivery::Later(why),
    }
}
