//! The OTLP exporter behind a bounded buffer: runs add their spans under a
//! lock without waking anyone, except the run that starts a batch or fills
//! one; one task exports what gathered every second or every full batch.
//! Whatever does not fit or does not arrive is counted, never retried into
//! the runs' way.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SpanData, SpanExporter as _};
use tokio::sync::{Notify, mpsc, oneshot};

use crate::config::OtlpProtocol;

/// Spans that may wait for export: past this a run's spans are dropped (a
/// run holds at most a few hundred).
const QUEUE_SPANS: usize = 65_536;
/// Spans sent in one export request.
const MAX_BATCH_SPANS: usize = 512;
/// How long spans wait for a fuller batch: runs show up within seconds.
const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// One export request's bound, after which its spans count as failed.
pub const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// What became of the spans handed to the exporter.
#[derive(Debug, Default)]
pub struct ExportStats {
    pub exported: AtomicU64,
    /// Spans dropped because the queue was full.
    pub dropped_queue_full: AtomicU64,
    /// Spans dropped because their export failed or timed out.
    pub dropped_export_failed: AtomicU64,
}

/// Where and how spans go, resolved from the config and the environment.
#[derive(Debug, Clone, PartialEq)]
pub struct Destination {
    /// `None` lets the exporter read `OTEL_EXPORTER_OTLP_*` itself.
    pub endpoint: Option<String>,
    pub protocol: OtlpProtocol,
}

/// Spans waiting for the export task, shared with the runs.
#[derive(Debug, Default)]
struct Waiting {
    spans: Mutex<Vec<SpanData>>,
    /// Told when a batch starts (its second is counted from then) or fills.
    wake: Notify,
}

/// The sending side of the export task.
#[derive(Debug)]
pub struct SpanQueue {
    waiting: Arc<Waiting>,
    flushes: mpsc::Sender<oneshot::Sender<()>>,
    pub stats: Arc<ExportStats>,
}

impl SpanQueue {
    /// Builds the exporter and starts its task on the current runtime.
    pub fn start(destination: &Destination, resource: &Resource) -> Result<SpanQueue, String> {
        let mut exporter = build_exporter(destination)?;
        exporter.set_resource(resource);
        Ok(SpanQueue::with(exporter))
    }

    fn with<E: opentelemetry_sdk::trace::SpanExporter + 'static>(exporter: E) -> SpanQueue {
        let waiting = Arc::new(Waiting::default());
        let stats = Arc::new(ExportStats::default());
        let (flushes, flush_requests) = mpsc::channel(16);
        tokio::spawn(export_loop(
            exporter,
            waiting.clone(),
            flush_requests,
            stats.clone(),
        ));
        SpanQueue {
            waiting,
            flushes,
            stats,
        }
    }

    /// Hands a run's spans over, or counts them dropped when the buffer is
    /// full.
    pub fn send(&self, spans: Vec<SpanData>) {
        let count = spans.len();
        let mut waiting = self.waiting.spans.lock().unwrap_or_else(|e| e.into_inner());
        let before = waiting.len();
        if before + count > QUEUE_SPANS {
            drop(waiting);
            self.stats
                .dropped_queue_full
                .fetch_add(count as u64, Ordering::Relaxed);
            return;
        }
        waiting.extend(spans);
        let after = waiting.len();
        drop(waiting);
        if before == 0 || (before < MAX_BATCH_SPANS && after >= MAX_BATCH_SPANS) {
            self.waiting.wake.notify_one();
        }
    }

    /// Exports everything queued so far, waiting at most `within`.
    pub async fn flush(&self, within: Duration) {
        let (done, exported) = oneshot::channel();
        let flush = async {
            if self.flushes.send(done).await.is_ok() {
                let _ = exported.await;
            }
        };
        let _ = tokio::time::timeout(within, flush).await;
    }
}

fn take(waiting: &Waiting) -> Vec<SpanData> {
    std::mem::take(&mut *waiting.spans.lock().unwrap_or_else(|e| e.into_inner()))
}

fn pending(waiting: &Waiting) -> usize {
    waiting
        .spans
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .len()
}

/// Exports full batches as they fill, and what gathered a second after a
/// batch began; ends when the queue is dropped.
async fn export_loop<E: opentelemetry_sdk::trace::SpanExporter>(
    exporter: E,
    waiting: Arc<Waiting>,
    mut flush_requests: mpsc::Receiver<oneshot::Sender<()>>,
    stats: Arc<ExportStats>,
) {
    loop {
        // Wait for the first span of a batch (or a flush), unless spans
        // came while the last batch was being sent: their second runs now.
        if pending(&waiting) == 0 {
            tokio::select! {
                () = waiting.wake.notified() => {}
                request = flush_requests.recv() => match request {
                    Some(done) => {
                        export_all(&exporter, take(&waiting), &stats).await;
                        let _ = done.send(());
                        continue;
                    }
                    None => {
                        export_all(&exporter, take(&waiting), &stats).await;
                        return;
                    }
                },
            }
        }
        let due = tokio::time::Instant::now() + FLUSH_EVERY;
        // Full batches leave at once; the rest when the second is up.
        loop {
            if pending(&waiting) >= MAX_BATCH_SPANS {
                let mut spans = take(&waiting);
                let rest = spans.split_off(spans.len() - spans.len() % MAX_BATCH_SPANS);
                export_all(&exporter, spans, &stats).await;
                if !rest.is_empty() {
                    waiting
                        .spans
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .splice(0..0, rest);
                }
                continue;
            }
            tokio::select! {
                () = waiting.wake.notified() => {}
                () = tokio::time::sleep_until(due) => {
                    export_all(&exporter, take(&waiting), &stats).await;
                    break;
                }
                request = flush_requests.recv() => {
                    export_all(&exporter, take(&waiting), &stats).await;
                    match request {
                        Some(done) => {
                            let _ = done.send(());
                            break;
                        }
                        None => return,
                    }
                }
            }
        }
    }
}

/// `spans` in requests of at most a batch each.
async fn export_all<E: opentelemetry_sdk::trace::SpanExporter>(
    exporter: &E,
    mut spans: Vec<SpanData>,
    stats: &ExportStats,
) {
    while !spans.is_empty() {
        let rest = spans.split_off(spans.len().min(MAX_BATCH_SPANS));
        export(exporter, std::mem::replace(&mut spans, rest), stats).await;
    }
}

async fn export<E: opentelemetry_sdk::trace::SpanExporter>(
    exporter: &E,
    batch: Vec<SpanData>,
    stats: &ExportStats,
) {
    let count = batch.len() as u64;
    match tokio::time::timeout(EXPORT_TIMEOUT, exporter.export(batch)).await {
        Ok(Ok(())) => {
            stats.exported.fetch_add(count, Ordering::Relaxed);
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, spans = count, "trace export failed; spans dropped");
            stats
                .dropped_export_failed
                .fetch_add(count, Ordering::Relaxed);
        }
        Err(_) => {
            tracing::warn!(spans = count, "trace export timed out; spans dropped");
            stats
                .dropped_export_failed
                .fetch_add(count, Ordering::Relaxed);
        }
    }
}

fn build_exporter(destination: &Destination) -> Result<opentelemetry_otlp::SpanExporter, String> {
    let built = match destination.protocol {
        OtlpProtocol::Grpc => {
            let builder = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_protocol(Protocol::Grpc)
                .with_timeout(EXPORT_TIMEOUT);
            match &destination.endpoint {
                Some(endpoint) => builder.with_endpoint(endpoint.clone()).build(),
                None => builder.build(),
            }
        }
        OtlpProtocol::HttpProtobuf => {
            let client = reqwest::Client::builder()
                .timeout(EXPORT_TIMEOUT)
                .build()
                .map_err(|e| format!("cannot build the OTLP HTTP client: {e}"))?;
            let builder = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_protocol(Protocol::HttpBinary)
                .with_http_client(OtlpHttpClient(client))
                .with_timeout(EXPORT_TIMEOUT);
            match &destination.endpoint {
                // As OTEL_EXPORTER_OTLP_ENDPOINT: the signal's path goes under it.
                Some(endpoint) => builder
                    .with_endpoint(format!("{}/v1/traces", endpoint.trim_end_matches('/')))
                    .build(),
                None => builder.build(),
            }
        }
    };
    built.map_err(|e| format!("cannot set up OTLP trace export: {e}"))
}

/// The daemon's own HTTP client for OTLP/HTTP, so the exporter brings no
/// second one.
#[derive(Debug)]
struct OtlpHttpClient(reqwest::Client);

/// A collector's answer is a few bytes; a larger one is not read.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for OtlpHttpClient {
    async fn send_bytes(
        &self,
        request: http::Request<Bytes>,
    ) -> Result<http::Response<Bytes>, opentelemetry_http::HttpError> {
        let request = reqwest::Request::try_from(request)?;
        let mut response = self.0.execute(request).await?;
        let mut answer = http::Response::builder().status(response.status());
        if let Some(headers) = answer.headers_mut() {
            *headers = response.headers().clone();
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                break;
            }
            body.extend_from_slice(&chunk);
        }
        Ok(answer.body(Bytes::from(body))?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_sdk::error::OTelSdkResult;

    /// Remembers how many spans each export held.
    #[derive(Debug, Clone, Default)]
    struct Recorder(Arc<std::sync::Mutex<Vec<usize>>>);

    impl opentelemetry_sdk::trace::SpanExporter for Recorder {
        async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
            self.0.lock().unwrap().push(batch.len());
            Ok(())
        }
    }

    fn span() -> SpanData {
        SpanData {
            span_context: opentelemetry::trace::SpanContext::empty_context(),
            parent_span_id: opentelemetry::trace::SpanId::INVALID,
            parent_span_is_remote: false,
            span_kind: opentelemetry::trace::SpanKind::Internal,
            name: "run".into(),
            start_time: std::time::SystemTime::UNIX_EPOCH,
            end_time: std::time::SystemTime::UNIX_EPOCH,
            attributes: Vec::new(),
            dropped_attributes_count: 0,
            events: Default::default(),
            links: Default::default(),
            status: opentelemetry::trace::Status::Unset,
            instrumentation_scope: Default::default(),
        }
    }

    #[tokio::test]
    async fn spans_go_out_every_second_however_often_runs_come() {
        let recorder = Recorder::default();
        let queue = SpanQueue::with(recorder.clone());
        // A run every 100 ms for 2.5 s: never a batch of 512 spans, never a
        // pause of a second.
        for _ in 0..25 {
            queue.send(vec![span()]);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let while_running = recorder.0.lock().unwrap().len();
        assert!(
            while_running >= 2,
            "{while_running} exports in 2.5 s of runs"
        );
        queue.flush(Duration::from_secs(5)).await;
        let exports = recorder.0.lock().unwrap().clone();
        assert_eq!(exports.iter().sum::<usize>(), 25);
        assert_eq!(queue.stats.exported.load(Ordering::Relaxed), 25);
    }

    #[tokio::test]
    async fn full_batches_leave_at_once_and_an_overfull_queue_drops() {
        let recorder = Recorder::default();
        let queue = SpanQueue::with(recorder.clone());
        queue.send((0..MAX_BATCH_SPANS + 10).map(|_| span()).collect());
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            recorder.0.lock().unwrap().clone(),
            [MAX_BATCH_SPANS],
            "the full batch left before its second was up"
        );
        queue.send((0..QUEUE_SPANS).map(|_| span()).collect());
        assert_eq!(
            queue.stats.dropped_queue_full.load(Ordering::Relaxed),
            QUEUE_SPANS as u64
        );
        queue.flush(Duration::from_secs(5)).await;
        assert_eq!(
            queue.stats.exported.load(Ordering::Relaxed),
            MAX_BATCH_SPANS as u64 + 10
        );
    }
}
