//! The probe endpoints under `/api/v1/probe/` (a probe's own token, scoped
//! to its location): its work, its components by digest, heartbeats and
//! batches of runs; and `GET /api/v1/probes`, the list operators read.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use super::ApiState;
use super::error::{ApiError, ErrorBody, Params};
use super::systems::NoParams;
use crate::clock::now_ms;
use crate::probe::wire::{
    Batch, BatchReply, Heartbeat, HeartbeatReply, MAX_BATCH_BYTES, MAX_BATCH_RUNS, ProbeToken,
    Work, WorkItem,
};
use crate::runtime::ComponentDigest;
use crate::runtime::text::{bounded, inert};
use crate::serve::generation::Generation;
use crate::serve::metrics::ReasonLabels;
use crate::store::entity::SliceId;
use crate::store::probes::{HeartbeatRow, ProbeRecord};
use crate::store::{DAY_MS, ProbeRunKey};

/// How old a spooled run may be and still be stored.
const MAX_RUN_AGE_MS: i64 = 7 * DAY_MS;

/// The probe a request comes from: its token's id, its location.
#[derive(Debug, Clone)]
pub struct Caller {
    probe: String,
    location: String,
    /// As its last heartbeat measured it.
    clock_skew_ms: Option<i64>,
}

/// Finds the probe whose token the request carries. The token is never
/// logged; its id is, on refusal.
async fn caller(state: &ApiState, headers: &HeaderMap) -> Result<Caller, ApiError> {
    let refuse = || ApiError::unauthorized("send `Authorization: Bearer <probe token>`");
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .and_then(ProbeToken::parse)
        .ok_or_else(refuse)?;
    let record = state.store.probe(&token.probe).await?;
    let valid = record.as_ref().is_some_and(|r: &ProbeRecord| {
        r.revoked_at_ms.is_none() && same(r.token_hash.as_bytes(), token.secret_hash().as_bytes())
    });
    match record {
        Some(r) if valid => Ok(Caller {
            probe: r.id,
            location: r.location_id,
            clock_skew_ms: r.clock_skew_ms,
        }),
        _ => {
            tracing::warn!(probe = %token.probe, "probe refused: unknown, revoked or wrong token");
            count_refusals(state, "token", 1);
            Err(refuse())
        }
    }
}

/// Middleware: the probe endpoints need a probe's token, checked from the
/// headers before any body is read; the caller rides on to the handler.
pub async fn authenticate(
    State(state): State<ApiState>,
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    // A declared body beyond the batch limit is refused before it is read.
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_BATCH_BYTES) {
        return ApiError::too_large(format!("a batch is limited to {MAX_BATCH_BYTES} bytes"))
            .into_response();
    }
    match caller(&state, request.headers()).await {
        Ok(caller) => {
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Err(e) => e.into_response(),
    }
}

fn count_refusals(state: &ApiState, reason: &str, count: u64) {
    state
        .metrics
        .probe_batches_refused
        .get_or_create(&ReasonLabels {
            reason: reason.into(),
        })
        .inc_by(count);
}

/// Compared in constant time, so the answer's timing leaks no prefix.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// What the probe endpoints keep between requests.
pub struct ProbeDesk {
    /// Each location's work as last rendered, so a heartbeat does not
    /// render every slice again: valid for its generation and pauses, and
    /// for a minute (secrets resolved from files or the environment may
    /// rotate).
    work: std::sync::Mutex<HashMap<String, CachedWork>>,
    /// Batches being read and stored at once: each may hold
    /// `MAX_BATCH_BYTES` in memory, so many probes reconnecting together
    /// wait their turn (a 503 they retry) rather than exhaust the node.
    batches: Arc<tokio::sync::Semaphore>,
}

/// Batches one node takes at once.
const CONCURRENT_BATCHES: usize = 4;
/// How long a batch may take to arrive and be stored.
const BATCH_TIME: std::time::Duration = std::time::Duration::from_secs(60);

impl Default for ProbeDesk {
    fn default() -> Self {
        ProbeDesk {
            work: Default::default(),
            batches: Arc::new(tokio::sync::Semaphore::new(CONCURRENT_BATCHES)),
        }
    }
}

/// Middleware on `POST runs`: a batch is read only with a free slot.
pub async fn one_batch_at_a_time(
    State(state): State<ApiState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    match state.probes.batches.clone().try_acquire_owned() {
        // A stalled upload gives its slot back: the probe sends it again.
        Ok(_slot) => match tokio::time::timeout(BATCH_TIME, next.run(request)).await {
            Ok(response) => response,
            Err(_) => {
                count_refusals(&state, "timeout", 1);
                ApiError::timeout(format!(
                    "the batch was not read and stored within {} s: send it again",
                    BATCH_TIME.as_secs()
                ))
                .into_response()
            }
        },
        Err(_) => {
            count_refusals(&state, "busy", 1);
            let mut response = ApiError::unavailable(format!(
                "{CONCURRENT_BATCHES} probe batches are being stored: retry shortly"
            ))
            .into_response();
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
            response
        }
    }
}

struct CachedWork {
    generation: u64,
    pauses: u64,
    at: std::time::Instant,
    work: Arc<Work>,
}

const WORK_TTL: std::time::Duration = std::time::Duration::from_secs(60);

/// The caller's location's work, from the cache while it holds.
fn cached_work(state: &ApiState, generation: &Generation, caller: &Caller) -> Arc<Work> {
    let pauses = state.live.pause_version();
    let mut cache = state.probes.work.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(hit) = cache.get(&caller.location)
        && hit.generation == generation.id
        && hit.pauses == pauses
        && hit.at.elapsed() < WORK_TTL
    {
        return hit.work.clone();
    }
    let work = Arc::new(work_of(state, generation, caller));
    cache.insert(
        caller.location.clone(),
        CachedWork {
            generation: generation.id,
            pauses,
            at: std::time::Instant::now(),
            work: work.clone(),
        },
    );
    work
}

/// The work of one location under a generation, with a version that
/// changes whenever the work does.
fn work_of(state: &ApiState, generation: &Generation, caller: &Caller) -> Work {
    let mut items: Vec<WorkItem> = Vec::new();
    for (key, def) in &generation.probe_slices {
        if key.location.as_deref() != Some(caller.location.as_str())
            || state.live.is_paused(&key.system, &key.check, def.paused)
        {
            continue;
        }
        items.extend(generation.probe_work(key, &state.runtime, &state.store));
    }
    let file = &generation.setup.config.file;
    Work {
        version: version_of(&items),
        location: caller.location.clone(),
        probe: caller.probe.clone(),
        heartbeat_ms: file.probes.heartbeat.as_millis(),
        items,
    }
}

fn version_of(items: &[WorkItem]) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    let _ = serde_json::to_writer(&mut hasher, items);
    hex::encode(&hasher.finalize()[..8])
}

/// `GET /api/v1/probe/work`: the slices of the caller's location, ready to
/// run, secrets included (this channel only; a probe never writes them).
pub async fn work(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
) -> Result<Response, ApiError> {
    let generation = state.live.generation();
    let mut work = Work::clone(&cached_work(&state, &generation, &caller));
    // The cache is per location; the probe id is the caller's own.
    work.probe = caller.probe;
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(work)).into_response())
}

/// `GET /api/v1/probe/components/{digest}`: a component file of the
/// current configuration, by its digest.
pub async fn component(
    State(state): State<ApiState>,
    Path(digest): Path<String>,
) -> Result<Response, ApiError> {
    let digest: ComponentDigest =
        digest
            .parse()
            .map_err(|e: crate::runtime::digest::BadDigest| {
                ApiError::bad_request("digest", e.to_string())
            })?;
    let generation = state.live.generation();
    let Some(path) = generation.setup.plugins.path_of(&digest) else {
        return Err(ApiError::not_found(format!(
            "no component {digest} in this configuration"
        )));
    };
    let bytes = tokio::fs::read(&path)
        .await
        .map_err(|e| ApiError::not_found(format!("{}: {e}", path.display())))?;
    // The file changed since it was loaded: a probe must not get other bytes
    // under this digest.
    if ComponentDigest::of(&bytes) != digest {
        tracing::warn!(path = %path.display(), "{digest} changed on disk since it was loaded");
        return Err(ApiError::conflict(format!(
            "component {digest} changed on the server since it was loaded: it needs a reload"
        )));
    }
    Ok(([(header::CONTENT_TYPE, "application/wasm")], bytes).into_response())
}

/// `POST /api/v1/probe/heartbeat`.
pub async fn heartbeat(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Result<Json<HeartbeatReply>, ApiError> {
    let beat: Heartbeat = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request("body", format!("not a heartbeat: {e}")))?;
    let now = now_ms();
    let skew = beat.clock_ms.saturating_sub(now);
    state
        .store
        .probe_heartbeat(
            &caller.probe,
            HeartbeatRow {
                version: &beat.version,
                clock_skew_ms: skew,
                spool_depth: beat.spool_depth,
                spool_dropped: beat.spool_dropped,
            },
            now,
        )
        .await?;
    let generation = state.live.generation();
    Ok(Json(HeartbeatReply {
        work_version: cached_work(&state, &generation, &caller).version.clone(),
        server_ms: now,
        clock_skew_ms: skew,
    }))
}

/// `POST /api/v1/probe/runs`: a batch. A malformed or oversized one is
/// refused whole (400, 413), as is every batch while the probe's clock is
/// off (409). Otherwise each run is judged on its own: one the probe was
/// not given, dated in the future, older than seven days or not fitting its
/// check is refused and counted, and the others are stored together, in
/// order, or not at all.
pub async fn runs(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Result<Json<BatchReply>, ApiError> {
    let refused = |reason: &str, count: u64| count_refusals(&state, reason, count);
    let batch: Batch = serde_json::from_slice(&body).map_err(|e| {
        refused("malformed", 1);
        ApiError::bad_request("body", format!("not a batch of runs: {e}"))
    })?;
    if batch.runs.len() > MAX_BATCH_RUNS {
        refused("size", 1);
        return Err(ApiError::too_large(format!(
            "a batch holds at most {MAX_BATCH_RUNS} runs, this one {}",
            batch.runs.len()
        )));
    }
    let generation = state.live.generation();
    let tolerance = generation
        .setup
        .config
        .file
        .probes
        .max_clock_skew
        .as_millis();
    if let Some(skew) = caller.clock_skew_ms
        && skew.abs() > tolerance
    {
        refused("clock", 1);
        return Err(ApiError::conflict(format!(
            "this probe's clock is {skew} ms off the server's (tolerance {tolerance} ms): \
             fix its clock; its runs wait in its spool"
        )));
    }
    let now = now_ms();
    let mut accepted = Vec::with_capacity(batch.runs.len());
    let mut refusals = Vec::new();
    let mut refused_runs = 0;
    for run in batch.runs {
        let key = SliceId::located(
            &run.slice.system,
            &run.slice.check,
            run.slice.environment.as_deref(),
            Some(&caller.location),
        );
        let seq = run.seq;
        let (reason, why) = if !generation.probe_slices.contains_key(&key) {
            (
                "slice",
                format!("not a slice location {} runs", caller.location),
            )
        } else if run.at_ms > now + tolerance {
            ("clock", "dated in the future".to_string())
        } else if run.at_ms < now - MAX_RUN_AGE_MS {
            ("age", "older than 7 days".to_string())
        } else {
            let origin = ProbeRunKey {
                probe: caller.probe.clone(),
                seq,
            };
            match generation.probe_run(&key, origin, run, &state.runtime, &state.store) {
                Ok(new_run) => {
                    accepted.push(new_run);
                    continue;
                }
                Err(why) => ("malformed", why),
            }
        };
        refused(reason, 1);
        refused_runs += 1;
        // Probe-controlled text, cut and made inert before it is logged.
        let slice = inert(&bounded(key.to_string(), 200));
        tracing::warn!(probe = %caller.probe, reason, %slice, seq, "probe run refused: {why}");
        if refusals.len() < 10 {
            refusals.push(format!(
                "run {seq} of {slice}: {}",
                inert(&bounded(why, 500))
            ));
        }
    }
    let recorded = state.store.record_runs(accepted).await?;
    let duplicates = recorded.iter().filter(|r| r.duplicate).count();
    Ok(Json(BatchReply {
        stored: recorded.len() - duplicates,
        duplicates,
        refused: refused_runs,
        refusals,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProbeList {
    pub items: Vec<ProbeView>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProbeView {
    #[serde(flatten)]
    pub probe: ProbeRecord,
    /// Heartbeats within the configured window.
    pub online: bool,
}

/// The probes, their location, version, last heartbeat and spool.
#[utoipa::path(
    get,
    path = "/api/v1/probes",
    tag = "status",
    responses((status = 200, body = ProbeList), (status = 401, body = ErrorBody))
)]
pub async fn list(
    State(state): State<ApiState>,
    Params(NoParams {}): Params<NoParams>,
) -> Result<Json<ProbeList>, ApiError> {
    let generation = state.live.generation();
    let probes = &generation.setup.config.file.probes;
    let window = probes.offline_window_ms();
    let now = now_ms();
    let items = state
        .store
        .probes()
        .await?
        .into_iter()
        .map(|probe| ProbeView {
            online: probe.online(now, window),
            probe,
        })
        .collect();
    Ok(Json(ProbeList { items }))
}
